"""Layer decay composed with mmengine's paramwise options, checked against
mmengine's own DefaultOptimWrapperConstructor built with the same options."""
import pytest
from mmengine.optim import DefaultOptimWrapperConstructor

from conftest import (CONVNEXT_CONFIGS, OPTIMIZER, _register,
                      assert_same_groups, build_detector,
                      mmdet_groups, our_groups)
from layerdecay_plugin.rules import is_no_decay, layer_scale

R50_DCN = dict(dcn=dict(type='DCNv2', deform_groups=1,
                        fallback_on_stride=False),
               stage_with_dcn=(False, True, True, True))

OPTIONS = [
    dict(custom_keys={'neck': dict(lr_mult=2.),
                      'backbone.stages.0': dict(lr_mult=0.5, decay_mult=0.),
                      'backbone.stages.0.0': dict(lr_mult=0.25)}),
    dict(bias_lr_mult=2., bias_decay_mult=0.),
    dict(norm_decay_mult=0.5, flat_decay_mult=0.3),
    dict(dwconv_decay_mult=0.1, bias_lr_mult=3.),
    dict(custom_keys={'head': dict(lr_mult=10., decay_mult=2.)},
         norm_decay_mult=0., bias_decay_mult=0.5, bypass_duplicate=True),
]


def mmengine_by_name(model, options):
    """name -> what mmengine's constructor sets for the parameter (before
    the optimizer fills in its defaults), by walking parameters in order."""
    groups = []
    DefaultOptimWrapperConstructor(
        dict(type='OptimWrapper', optimizer=OPTIMIZER),
        dict(options)).add_params(groups, model)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert len(groups) == len(names)
    return dict(zip(names, groups))


def check_composition(model, layer_cfg, options, num_layers):
    mm = mmengine_by_name(model, options)
    ours = our_groups(model, dict(layer_cfg, **options))
    base_lr, base_wd = OPTIMIZER['lr'], OPTIMIZER['weight_decay']
    seen = set()
    for group in ours:
        layer_id = int(group['group_name'].split('_')[1])
        scale = layer_scale(layer_cfg['decay_rate'], num_layers, layer_id)
        assert group['lr_scale'] == scale
        for name, param in zip(group['param_names'], group['params']):
            ref = mm[name]
            assert ref['params'][0] is param
            assert group['lr'] == scale * ref.get('lr', base_lr), name
            default = 0. if is_no_decay(name, param.ndim) else base_wd
            assert group['weight_decay'] == ref.get('weight_decay',
                                                    default), name
            for key, value in ref.items():  # custom_keys extras kept
                if key not in ('params', 'lr', 'weight_decay'):
                    assert group[key] == value
            seen.add(name)
    assert seen == set(mm)
    return ours


@pytest.mark.parametrize('options', OPTIONS)
def test_convnext_detector_composition(options):
    model = build_detector(CONVNEXT_CONFIGS[-1], arch='atto')
    layer_cfg = dict(decay_rate=0.9, num_layers=5)
    ours = check_composition(model, layer_cfg, options, 5)
    # group economy: far fewer groups than tensors
    assert len(ours) < 40 < sum(len(g['params']) for g in ours)


def test_resnet_with_dcn_offset_lr_mult():
    _register()
    from mmdet.models.backbones import ResNet
    import torch.nn as nn
    model = nn.Module()
    model.backbone = ResNet(depth=50, frozen_stages=-1, **R50_DCN)
    model.neck = nn.Conv2d(2048, 4, 1)
    options = dict(dcn_offset_lr_mult=0.1, bias_lr_mult=2.)
    ours = check_composition(model, dict(decay_rate=0.8), options, 16)
    offsets = [g for g in ours
               if any('conv_offset' in n for n in g['param_names'])]
    assert offsets and all('_lr_x0.1' in g['group_name'] for g in offsets)


def test_no_options_keeps_mmdet_groups():
    model = build_detector(CONVNEXT_CONFIGS[-1])
    cfg = dict(decay_rate=0.95, decay_type='layer_wise', num_layers=6)
    assert_same_groups(mmdet_groups(model, cfg), our_groups(model, cfg))


def test_options_that_change_nothing_keep_mmdets_groups():
    """RTMDet's paramwise options (inherited by mmdet's RTMDet ConvNeXt-B
    config) give every parameter the lr and weight decay layer decay gives
    it anyway, so the groups stay mmdet's (it ignores these options)."""
    model = build_detector(CONVNEXT_CONFIGS[-1], arch='atto')
    cfg = dict(decay_rate=0.8, num_layers=5)
    rtmdet = dict(norm_decay_mult=0, bias_decay_mult=0, bypass_duplicate=True)
    assert_same_groups(mmdet_groups(model, cfg),
                       our_groups(model, dict(cfg, **rtmdet)))
