"""Light tier: ``min_lr_scale`` and ``freeze_below`` (timm's ``min_scale``
and ``no_opt_scale``), the no-decay names a backbone declares
(``no_weight_decay()`` / ``no_weight_decay_keywords()``,
``model_no_decay``), and register tokens at the stem (issue #23 items 2
and 3). Torch and mmengine only."""
import copy
import json
import logging
import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from torch.nn.parallel import DistributedDataParallel

from layerdecay_plugin import LayerDecayConfigError
from layerdecay_plugin.config import parse_paramwise_cfg
from light.cli_toys import LightToyViT
from light.dist import torchrun

HERE = Path(__file__).resolve().parent
OPTIMIZER = dict(type='AdamW', lr=1e-3, weight_decay=0.05)


class Toy(nn.Module):
    """A ``blocks.i`` ViT (6 blocks) with register tokens, and a head."""

    def __init__(self, backbone: nn.Module = None):
        super().__init__()
        self.backbone = backbone or LightToyViT(6)
        self.head = nn.Linear(8, 1)


def build(model: nn.Module, **paramwise):
    torch.manual_seed(0)
    return build_optim_wrapper(model, dict(
        type='OptimWrapper', constructor='LayerDecayPluginConstructor',
        optimizer=dict(OPTIMIZER),
        paramwise_cfg=dict(dict(decay_rate=0.5, rules='vit_blocks'),
                           **paramwise)))


def by_param(wrapper) -> dict:
    return {n: (g['group_name'], g['lr_scale'], g['weight_decay'])
            for g in wrapper.optimizer.param_groups for n in g['param_names']}


def logged(tmp_path, make):
    """What ``make()`` logs to the current mmengine logger."""
    path = tmp_path / f'log{len(list(tmp_path.glob("log*.txt")))}.txt'
    logger = MMLogger.get_instance(f'knobs-{tmp_path.name}-{path.stem}',
                                   log_file=str(path),
                                   log_level=logging.INFO)
    result = make()
    for handler in logger.handlers:
        handler.flush()
    return result, path.read_text()


# ------------------------------------------------------------- validation


@pytest.mark.parametrize('key,value,says', [
    ('min_lr_scale', 0, 'a number in (0, 1]'),
    ('min_lr_scale', 1.5, 'a number in (0, 1]'),
    ('min_lr_scale', '0.1', 'a number in (0, 1]'),
    ('min_lr_scale', True, 'a number in (0, 1]'),
    ('min_lr_scale', math.nan, 'a number in (0, 1]'),
    ('freeze_below', 1, 'a number in [0, 1)'),
    ('freeze_below', -0.1, 'a number in [0, 1)'),
    ('freeze_below', None, 'a number in [0, 1)'),
    ('model_no_decay', 'yes', 'must be True'),
])
def test_invalid_values_name_the_key_value_and_fix(key, value, says):
    with pytest.raises(LayerDecayConfigError) as error:
        parse_paramwise_cfg({'decay_rate': 0.9, key: value})
    assert f'paramwise_cfg.{key}={value!r}' in str(error.value)
    assert says in str(error.value)


@pytest.mark.parametrize('floor', [0.05, 0.1])
def test_a_floor_not_below_the_threshold_is_an_error_naming_both(floor):
    with pytest.raises(LayerDecayConfigError) as error:
        parse_paramwise_cfg(dict(decay_rate=0.9, min_lr_scale=floor,
                                 freeze_below=0.05))
    message = str(error.value)
    assert f'paramwise_cfg.min_lr_scale={floor!r}' in message
    assert 'paramwise_cfg.freeze_below=0.05' in message
    assert 'would freeze nothing' in message


def test_timm_names_are_aliases():
    cfg = parse_paramwise_cfg(dict(decay_rate=0.9, min_scale=0.01,
                                   no_opt_scale=0.02))
    assert (cfg.min_lr_scale, cfg.freeze_below) == (0.01, 0.02)
    assert parse_paramwise_cfg(dict(decay_rate=0.9)).freeze_below == 0.
    with pytest.raises(LayerDecayConfigError,
                       match='sets both no_opt_scale=0.02 and freeze_below'):
        parse_paramwise_cfg(dict(decay_rate=0.9, no_opt_scale=0.02,
                                 freeze_below=0.02))


def test_alias_is_logged_with_where_it_comes_from(tmp_path):
    _, text = logged(tmp_path, lambda: build(Toy(), min_scale=0.1))
    assert 'paramwise_cfg.min_scale is read as min_lr_scale (its name in ' \
        "timm's param_groups_layer_decay)" in text


# ------------------------------------------------------------ the floor


def test_min_lr_scale_raises_the_scales_below_it():
    # num_layers 6, decay 0.5: ids 0..7 have scales 0.5**(7 - id)
    groups = by_param(build(Toy(), min_lr_scale=0.05))
    assert groups['backbone.patch_embed.weight'] == ('layer_0_decay', 0.05,
                                                     0.05)
    assert groups['backbone.blocks.2.weight'][1] == 0.0625  # 0.5**4
    assert groups['backbone.blocks.1.weight'][1] == 0.05    # 0.5**5 raised
    assert groups['head.weight'][1] == 1.
    # ids stay: the floored layers keep their own groups
    assert groups['backbone.blocks.0.weight'][0] == 'layer_1_decay'
    wrapper = build(Toy(), min_lr_scale=0.05)
    lrs = {g['group_name']: g['lr'] for g in wrapper.optimizer.param_groups}
    assert lrs['layer_0_decay'] == pytest.approx(0.05 * 1e-3)


# ----------------------------------------------------------- the threshold


def test_freeze_below_leaves_parameters_out_and_freezes_them(tmp_path):
    model = Toy()
    wrapper, text = logged(tmp_path, lambda: build(
        model, min_lr_scale=0.02, freeze_below=0.1))
    groups = by_param(wrapper)
    # scales 0.5**(7 - id): ids 0-3 (0.0078-0.0625, floored to 0.02) < 0.1
    frozen = ['backbone.patch_embed.weight', 'backbone.patch_embed.bias'] + \
        [f'backbone.blocks.{i}.{k}' for i in range(3) for k in ('weight',
                                                                 'bias')]
    assert not set(frozen) & set(groups)
    assert {n for n, p in model.named_parameters() if not p.requires_grad} \
        == set(frozen)
    assert groups['backbone.blocks.3.weight'][:2] == ('layer_4_decay', 0.125)
    assert 'layer ids 0-3 frozen by paramwise_cfg.freeze_below=0.1 ' \
        '(lr_scale 0.02-0.0625): left out of the optimizer,' in text
    assert 'requires_grad=False (8 tensors, 256 elements)' in text
    # built again (inspect, a second Runner build): the same groups, and
    # the ids are still named as frozen by freeze_below, not by the model
    again, text = logged(tmp_path, lambda: build(
        model, min_lr_scale=0.02, freeze_below=0.1))
    assert by_param(again) == groups
    assert 'layer ids 0-3 frozen by paramwise_cfg.freeze_below' in text
    assert 'no trainable parameter' not in text


def test_freeze_below_that_freezes_nothing_changes_nothing():
    assert by_param(build(Toy(), freeze_below=0.005)) == by_param(build(Toy()))


def trained_state(wrapper) -> dict:
    params = [p for g in wrapper.optimizer.param_groups for p in g['params']]
    sum(p.sum() for p in params).backward()
    wrapper.step()
    return copy.deepcopy(wrapper.state_dict())


def test_resume_names_a_changed_threshold_and_floor():
    saved = trained_state(build(Toy(), freeze_below=0.1))
    build(Toy(), freeze_below=0.1).load_state_dict(copy.deepcopy(saved))
    with pytest.raises(LayerDecayConfigError) as error:
        build(Toy(), freeze_below=0.05).load_state_dict(copy.deepcopy(saved))
    assert 'paramwise_cfg.freeze_below: 0.1 -> 0.05' in str(error.value)
    assert 'groups are new: layer_3_decay' in str(error.value)
    saved = trained_state(build(Toy()))
    with pytest.raises(LayerDecayConfigError,
                       match='paramwise_cfg.min_lr_scale: not set -> 0.05'):
        build(Toy(), min_lr_scale=0.05).load_state_dict(saved)


def test_ddp_wrapped_first_without_find_unused_is_refused(tmp_path):
    """mmengine's Runner wraps the model in DDP before it builds the
    optimizer: DDP would wait for the frozen parameters' gradients."""
    dist.init_process_group('gloo', store=dist.HashStore(), rank=0,
                            world_size=1)
    try:
        for find_unused in (False, True):
            model = Toy()
            ddp = DistributedDataParallel(
                model, find_unused_parameters=find_unused)
            if not find_unused:
                with pytest.raises(LayerDecayConfigError) as error:
                    build(ddp, freeze_below=0.1)
                message = str(error.value)
                assert 'paramwise_cfg.freeze_below=0.1 freezes 8 ' \
                    'parameter(s) of layer ids 0-3' in message
                assert 'find_unused_parameters = True' in message
                assert all(p.requires_grad for p in model.parameters())
            else:
                build(ddp, freeze_below=0.1)
                assert not model.backbone.patch_embed.weight.requires_grad
        # frozen in the model before wrapping: nothing for DDP to wait for
        model = Toy()
        build(model, freeze_below=0.1)
        build(DistributedDataParallel(model), freeze_below=0.1)
    finally:
        dist.destroy_process_group()


def test_trains_under_ddp_and_fsdp_with_frozen_layers(tmp_path):
    """Runner + DDP (find_unused_parameters=True; without it the build is
    refused) and FlexibleRunner + FSDP on 2 CPU processes."""
    from light.test_light_resume import engines as resume_engines

    # FSDP on the CPU from torch 2.1 and mmengine 0.8 (FlexibleRunner)
    engines = ['ddp', 'ddp_find_unused'] + \
        (['fsdp'] if 'fsdp' in resume_engines() else [])
    out = tmp_path / 'found'
    torchrun(HERE / 'knobs_worker.py', tmp_path / 'w', out, ','.join(engines),
             env=dict(CUDA_VISIBLE_DEVICES=''))
    ranks = [json.loads((tmp_path / f'found.{r}.json').read_text())
             for r in range(2)]
    assert 'find_unused_parameters=True' in ranks[0]['ddp']['error']
    for engine in engines[1:]:
        found = [r[engine] for r in ranks]
        assert all('backbone.patch_embed.weight' not in f['optimized']
                   for f in found)
        assert len(found[0]['optimized']) == 12  # 14 less the stem's 2
        for name in found[0]['params']:
            stem = name.startswith('backbone.patch_embed.')
            assert all(f['params'][name][0] is not stem for f in found)
            changed = [f['params'][name][1] for f in found
                       if f['params'][name][1] is not None]
            assert changed, (engine, name)  # some rank holds it
            assert all(c is not stem for c in changed), (engine, name)


# ------------------------------------------ no-decay names of the backbone


class DeclaringViT(LightToyViT):
    """timm's way: names and keywords that never decay."""

    def __init__(self):
        super().__init__(4)
        self.logit_scale = nn.Parameter(torch.ones(2, 1))
        self.cpb_mlp = nn.Linear(2, 2)

    def no_weight_decay(self):
        return {'logit_scale', 'blocks.*.weight'}

    def no_weight_decay_keywords(self):
        return {'cpb_mlp'}


class Wrapper(nn.Module):
    """mmpretrain's TIMMBackbone: the timm model one level down."""

    def __init__(self):
        super().__init__()
        self.timm_model = DeclaringViT()


@pytest.mark.parametrize('backbone,prefix', [
    (DeclaringViT, 'backbone.'), (Wrapper, 'backbone.timm_model.')])
def test_the_backbones_own_no_decay_names(tmp_path, backbone, prefix):
    rules = [(r'^(timm_model\.)?(patch_embed|logit_scale|cpb_mlp)', 0),
             (r'^(timm_model\.)?blocks\.(\d+)\.', 1), ('.', 'last')]
    groups, text = logged(tmp_path, lambda: by_param(build(
        Toy(backbone()), rules=dict(layer_wise=rules), num_layers=4)))
    for name in ('logit_scale', 'blocks.0.weight', 'blocks.3.weight',
                 'cpb_mlp.weight'):
        assert groups[prefix + name][2] == 0, name
    assert groups[prefix + 'patch_embed.weight'][2] == 0.05
    owner = prefix.rstrip('.')
    assert f'layer decay: no weight decay for what the backbone declares: ' \
        f'{owner}.no_weight_decay() = blocks.*.weight, logit_scale (5 ' \
        f'trainable parameters); {owner}.no_weight_decay_keywords() = ' \
        'cpb_mlp (2 trainable parameters)' in text
    off = by_param(build(Toy(backbone()), rules=dict(layer_wise=rules),
                         num_layers=4, model_no_decay=False))
    assert off[prefix + 'logit_scale'][2] == 0.05
    assert off[prefix + 'blocks.0.weight'][2] == 0.05
    assert off[prefix + 'cpb_mlp.weight'][2] == 0.05


def test_a_custom_keys_entry_giving_back_declared_names_is_named():
    """``logit_scale`` (2-D, declared by the backbone) loses its weight
    decay to an entry without decay_mult: the warning names it."""
    import warnings
    rules = [(r'^(patch_embed|logit_scale|cpb_mlp)', 0),
             (r'^blocks\.(\d+)\.', 1), ('.', 'last')]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        groups = by_param(build(
            Toy(DeclaringViT()), rules=dict(layer_wise=rules), num_layers=4,
            custom_keys={'logit_scale': dict(lr_mult=0.5)}))
    assert groups['backbone.logit_scale'][2] == 0.05  # mmengine's decay
    text = ' '.join(str(w.message) for w in caught)
    assert "custom_keys['logit_scale'] sets no decay_mult" in text
    assert 'names the backbone declares' in text


@pytest.mark.parametrize('token', ['register_tokens', 'storage_tokens',
                                   'reg_token'])
@pytest.mark.parametrize('rules', [
    'vit_blocks', dict(layer_wise=[(r'^blocks\.(\d+)\.', 1),
                                   ('^patch_embed', 0), ('.', 'last')])])
def test_register_tokens_at_the_stem_without_decay(token, rules):
    model = Toy()
    setattr(model.backbone, token, nn.Parameter(torch.zeros(1, 4, 8)))
    groups = by_param(build(model, rules=rules, num_layers=6))
    assert groups[f'backbone.{token}'] == ('layer_0_no_decay',
                                           0.5**7, 0.)
