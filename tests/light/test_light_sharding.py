"""layerdecay_plugin.sharding: original names and shapes under FSDP and
ZeRO-3, and the refusal of FSDP's flat parameters."""
import json
import types
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from layerdecay_plugin import LayerDecayConfigError
from layerdecay_plugin.sharding import (check_not_flat, clean_name,
                                        fsdp_original_shapes,
                                        original_shape, unwrap)
from light.dist import torchrun

HERE = Path(__file__).resolve().parent
TORCH = tuple(int(part) for part in torch.__version__.split('.')[:2])


@pytest.mark.parametrize('name, clean', [
    ('backbone.stages.0.0.gamma', 'backbone.stages.0.0.gamma'),
    ('backbone.stages.0._fsdp_wrapped_module.0.gamma',
     'backbone.stages.0.0.gamma'),
    ('_fsdp_wrapped_module.backbone._fsdp_wrapped_module.'
     '_checkpoint_wrapped_module.stem.weight', 'backbone.stem.weight'),
])
def test_clean_name(name, clean):
    assert clean_name(name) == clean


def test_unwrap_goes_through_nested_wrappers():
    inner = nn.Linear(2, 2)
    outer = nn.Module()
    outer._fsdp_wrapped_module = nn.Module()
    outer._fsdp_wrapped_module._checkpoint_wrapped_module = inner
    assert unwrap(outer) is inner and unwrap(inner) is inner


def test_original_shape_prefers_zero3_then_fsdp_then_own():
    param = nn.Parameter(torch.empty(0))
    assert original_shape(param, {}) == (0, )
    assert original_shape(param, {id(param): (4, 3)}) == (4, 3)
    param.ds_shape = torch.Size([8, 2, 3, 3])  # as deepspeed.zero.Init sets
    assert original_shape(param, {id(param): (4, 3)}) == (8, 2, 3, 3)


def test_fsdp_unit_without_original_shapes_is_an_error():
    # A torch that keeps the originals elsewhere must not fall back to the
    # shard views' 1-D shapes, which would drop every weight's decay.
    unit = nn.Linear(2, 2)
    unit._handle = types.SimpleNamespace(flat_param=types.SimpleNamespace())
    with pytest.raises(LayerDecayConfigError, match='use_orig_params=True'):
        fsdp_original_shapes(nn.Sequential(unit))
    assert fsdp_original_shapes(nn.Sequential(nn.Linear(2, 2))) == {}


def test_torch_2_0_fsdp_units_give_their_original_shapes():
    # torch 2.0 keeps a unit's handles in a list, `_handles` (2.1+:
    # `_handle`); missing it would leave every weight a 1-D shard view.
    param = nn.Parameter(torch.empty(3))
    unit = nn.Linear(2, 2)
    unit._handles = [types.SimpleNamespace(flat_param=types.SimpleNamespace(
        _params=[param], _shapes=[torch.Size([4, 3])]))]
    assert fsdp_original_shapes(nn.Sequential(unit)) == {id(param): (4, 3)}
    unit._handles[0].flat_param = types.SimpleNamespace()
    with pytest.raises(LayerDecayConfigError, match='use_orig_params=True'):
        fsdp_original_shapes(nn.Sequential(unit))


def test_torch_2_0_flat_parameter_is_refused():
    # torch 2.0's FlatParameter is a class of that name, with no
    # `_is_flat_param` flag.
    FlatParameter = type('FlatParameter', (nn.Parameter, ), {})
    flat = FlatParameter(torch.zeros(10))
    with pytest.raises(LayerDecayConfigError, match='use_orig_params=True'):
        check_not_flat([('_fsdp_wrapped_module._flat_param', flat)])
    check_not_flat([('weight', nn.Parameter(torch.zeros(2)))])


def test_flat_parameter_is_refused_with_the_fix():
    flat = nn.Parameter(torch.zeros(10))
    flat._is_flat_param = True  # what FSDP's FlatParameter carries
    with pytest.raises(LayerDecayConfigError) as err:
        check_not_flat([('_fsdp_wrapped_module._flat_param', flat)])
    message = str(err.value)
    assert "'_fsdp_wrapped_module._flat_param'" in message
    assert 'use_orig_params=True' in message
    assert "model_wrapper=dict(type='MMFullyShardedDataParallel', " \
        'use_orig_params=True)' in message


@pytest.mark.parametrize('device', [
    pytest.param('cpu', marks=pytest.mark.skipif(
        TORCH < (2, 1), reason='FSDP on the CPU needs torch >= 2.1 (2.0.1 '
        'asks for an NVIDIA driver)')),
    pytest.param('cuda', marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason='no CUDA device')),
])
def test_fsdp_groups_equal_unwrapped(tmp_path, device):
    """Toy detector under real FSDP (2 CPU ranks with gloo, or up to 2 GPUs
    with nccl): every parameter gets the unwrapped model's group, lr and
    weight decay, for three wrap policies, with mmengine's options
    (flat_decay_mult, norm_decay_mult, custom_keys) too, and with a second
    tower (its groups named after it, its own decay_rate);
    use_orig_params=False raises."""
    out = tmp_path / 'found.json'
    nproc = 2 if device == 'cpu' else min(2, torch.cuda.device_count())
    # On the CPU, hide any GPU: mmengine's logger otherwise looks a CPU
    # rank's local rank up in CUDA_VISIBLE_DEVICES (IndexError past its end).
    env = dict(CUDA_VISIBLE_DEVICES='') if device == 'cpu' else None
    torchrun(HERE / 'fsdp_toy_worker.py', out, device, nproc=nproc,
             timeout=300, env=env)
    found = json.loads(out.read_text())
    towers = found['towers/reference']
    assert towers['text.blocks.0.fc.weight'][0] == 'text.layer_1_decay'
    assert towers['text.blocks.0.fc.weight'][3] == pytest.approx(0.6**4)
    assert towers['backbone.blocks.0.fc.weight'][0] == 'layer_1_decay'
    for key in ('plain', 'mmengine_options', 'towers'):
        reference = found[f'{key}/reference']
        # the options case has groups that only the true shapes separate
        assert len({tuple(v[:3]) for v in reference.values()}) > 8
        for policy in ('no_wrap', 'module_wrap', 'size_based'):
            assert found[f'{key}/{policy}'] == reference, (key, policy)
    for policy in ('no_wrap', 'module_wrap'):
        assert 'use_orig_params=True' in found[f'flat/{policy}'], policy
