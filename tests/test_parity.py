"""Our param groups equal mmdet's LearningRateDecayOptimizerConstructor's,
on real detectors from mmdet's shipped ConvNeXt configs and on toys."""
import warnings

import pytest
import torch

from conftest import (CONVNEXT_CONFIGS, assert_same_groups,
                      build_detector, mmdet_groups, our_groups)
from layerdecay_plugin.rules import convnext_min_num_layers

DEPTH2 = {'atto': 6, 'femto': 6, 'pico': 6, 'nano': 8, 'tiny': 9}
V2 = dict(use_grn=True, layer_scale_init_value=0.)


def needed(arch, decay_type='layer_wise'):
    return convnext_min_num_layers([3, 3, DEPTH2.get(arch, 27), 3],
                                   decay_type)


def test_mmdet_ships_the_convnext_configs():
    names = [p.name for p in CONVNEXT_CONFIGS]
    assert 'mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py' in names
    assert len(names) == 3


@pytest.mark.parametrize('config', CONVNEXT_CONFIGS, ids=lambda p: p.stem)
def test_shipped_configs_stage_wise(config):
    """The configs' own paramwise_cfg switched to stage_wise; as they are
    (layer_wise), tests/test_dropin.py checks every config mmdet ships with
    its constructor."""
    from mmengine.config import Config
    model = build_detector(config)
    cfg = dict(Config.fromfile(str(config)).optim_wrapper.paramwise_cfg)
    cfg['decay_type'] = 'stage_wise'
    assert_same_groups(mmdet_groups(model, cfg), our_groups(model, cfg))


CASES = [
    # arch, version kwargs, out_indices, frozen_stages, decay_type, extra
    ('atto', {}, [0, 1, 2, 3], 0, 'layer_wise', 0),
    ('femto', V2, [0, 1, 2, 3], 1, 'layer_wise', 2),
    ('pico', {}, [3], 0, 'stage_wise', 0),
    ('nano', V2, [1, 2, 3], 2, 'layer_wise', 0),
    ('tiny', {}, [0, 1, 2, 3], 0, 'stage_wise', 8),
    ('tiny', V2, [2, 3], 3, 'layer_wise', 1),
    ('small', {}, [0, 1, 2, 3], 1, 'layer_wise', 0),
    ('base', V2, [0, 1, 2, 3], 0, 'stage_wise', 0),
    ('large', {}, [1, 3], 0, 'layer_wise', 0),
    ('xlarge', {}, [0, 1, 2, 3], 2, 'layer_wise', 4),
    ('xlarge', V2, [0, 1, 2, 3], 0, 'stage_wise', 2),
]


@pytest.mark.parametrize('arch,version,out_indices,frozen,decay_type,extra',
                         CASES)
def test_every_arch_in_a_real_detector(arch, version, out_indices, frozen,
                                       decay_type, extra):
    config = CONVNEXT_CONFIGS[-1]  # mask-rcnn_convnext-t-...
    assert config.name.startswith('mask-rcnn')
    model = build_detector(config, arch=arch, out_indices=out_indices,
                           frozen_stages=frozen, **version)
    cfg = dict(decay_rate=0.8, decay_type=decay_type,
               num_layers=needed(arch, decay_type) + extra)
    ref = mmdet_groups(model, cfg)
    assert_same_groups(ref, our_groups(model, cfg))
    if decay_type == 'layer_wise' and not frozen:
        # one backbone group per layer id plus the head's
        assert {g['group_name'].split('_')[1] for g in ref} == \
            {str(i) for i in range(cfg['num_layers'] + 2)}


@pytest.mark.parametrize('decay_type', ['layer_wise', 'stage_wise'])
@pytest.mark.parametrize('decay_rate', [0.65, 1.0, 1.2])
@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(frozen_stages=2),
    dict(norm_cfg=dict(type='BN')),
    dict(norm_cfg=dict(type='GN', num_groups=2), use_grn=True),
    dict(depths=(2, 1, 7, 1), out_indices=(0, 2)),
],
                         ids=['tokens', 'frozen', 'bn', 'gn-grn', 'odd-depths'])
def test_toy_convnext_with_odd_extras(toy_detector, kwargs, decay_rate,
                                      decay_type):
    model = toy_detector(**kwargs)
    model.head[1].weight.requires_grad_(False)  # frozen param in the head
    depths = kwargs.get('depths', (1, 1, 4, 1))
    # no_decay_names=[]: mmdet decays backbone tokens, we do not by default
    cfg = dict(decay_rate=decay_rate, decay_type=decay_type,
               num_layers=convnext_min_num_layers(depths, decay_type),
               no_decay_names=[])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        ours = our_groups(model, cfg)
    warned = [w for w in caught if 'decay_rate' in str(w.message)]
    assert len(warned) == (decay_rate > 1)
    ref = mmdet_groups(model, cfg)
    assert_same_groups(ref, ours)
    names = [n for g in ours for n in g['param_names']]
    assert 'head.1.weight' not in names and len(names) == len(set(names))
    assert 'backbone.cls_token' in names


def test_inferred_num_layers_equals_mmdets_config_value():
    config = CONVNEXT_CONFIGS[-1]
    model = build_detector(config)
    cfg = dict(decay_rate=0.95, decay_type='layer_wise')
    assert_same_groups(mmdet_groups(model, dict(cfg, num_layers=6)),
                       our_groups(model, cfg))


def test_optimizer_state_moves_between_constructors(toy_detector):
    """A state saved with mmdet's groups loads into ours and vice versa."""
    from layerdecay_plugin import LayerDecayOptimWrapperConstructor
    from mmdet.engine.optimizers import LearningRateDecayOptimizerConstructor
    model = toy_detector()
    cfg = dict(decay_rate=0.9, num_layers=5, no_decay_names=[])
    wrappers = []
    for cls in (LearningRateDecayOptimizerConstructor,
                LayerDecayOptimWrapperConstructor):
        wrappers.append(cls(dict(type='OptimWrapper', optimizer=dict(
            type='AdamW', lr=1e-3, weight_decay=0.05)), dict(cfg))(model))
    for src, dst in (wrappers, wrappers[::-1]):
        model.zero_grad()
        model.backbone.downsample_layers[0][0].weight.sum().backward()
        src.step()
        dst.load_state_dict(src.state_dict())
        a, b = src.optimizer.state_dict(), dst.optimizer.state_dict()
        assert a['param_groups'] == b['param_groups']
        assert a['state'].keys() == b['state'].keys()
        for k in a['state']:
            assert torch.equal(a['state'][k]['exp_avg'],
                               b['state'][k]['exp_avg'])
