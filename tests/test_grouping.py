"""Group names tell the truth: the layer, the lr multiplier and the weight
decay, never the opposite; groups that look alike show what sets them apart;
mmengine options that change nothing split no group."""
import re

import pytest
import torch.nn as nn

from conftest import MMDET_CONFIGS, OPTIMIZER, _register, our_groups
from layerdecay_plugin.grouping import (ParamInfo, Settings, group_names,
                                        param_settings, plan_groups)

BASE_LR, BASE_WD = 1.0, 0.1
_NAME = re.compile(r'^layer_(\d+)_(decay|no_decay)(?:_lr_x([\d.e+-]+))?'
                   r'(?:_wd([\d.e+-]+))?(.*)$')


def plan(params, base_wd=BASE_WD):
    """Groups of toy parameters: backbone.* at id 0, the rest at id 2."""
    return plan_groups(params, lambda n: 0 if n.startswith('backbone') else 2,
                       0.5, 1, BASE_LR, base_wd)


def assert_names_tell_the_truth(groups, base_lr, base_wd):
    """Each name parses to the group's layer, lr multiplier and weight
    decay, and no two groups share a name."""
    names = [g['group_name'] for g in groups]
    assert len(set(names)) == len(names), names
    for group in groups:
        match = _NAME.match(group['group_name'])
        assert match, group['group_name']
        layer, label, lr_x, wd, _ = match.groups()
        mult = group['lr'] / group['lr_scale'] / base_lr
        assert float(lr_x or 1) == pytest.approx(mult, rel=1e-5), names
        if label == 'no_decay':
            assert group['weight_decay'] == 0 and wd is None
        else:
            assert group['weight_decay'] == pytest.approx(
                float(wd) if wd else base_wd)


def test_composed_options_name_what_the_group_gets():
    groups = plan([
        ParamInfo('backbone.a.w', 2, {'lr': 0.5}),
        ParamInfo('backbone.a.v', 2),
        ParamInfo('backbone.a.b', 1, {'weight_decay': 0.3}),
        ParamInfo('head.w', 2, {'lr': 2., 'weight_decay': 0., 'lr_mult': 2.,
                                'decay_mult': 0.}),
    ])
    assert [g.group_name for g in groups] == [
        'layer_0_decay_lr_x0.5', 'layer_0_decay',
        'layer_0_decay_wd0.3',       # a 1-D parameter given weight decay
        'layer_2_no_decay_lr_x2',    # a 2-D weight whose decay was removed
    ]
    assert groups[2].weight_decay == 0.3
    assert (groups[3].lr, groups[3].weight_decay) == (2., 0.)
    assert groups[3].extra == {'lr_mult': 2., 'decay_mult': 0.}


def test_options_that_change_nothing_split_no_group():
    """RTMDet's norm_decay_mult=0, bias_decay_mult=0 give 1-D parameters and
    biases the weight decay 0 they have anyway."""
    plain = plan([ParamInfo('backbone.n.weight', 1),
                  ParamInfo('backbone.c.bias', 1),
                  ParamInfo('backbone.c.weight', 2)])
    touched = plan([ParamInfo('backbone.n.weight', 1, {'weight_decay': 0.}),
                    ParamInfo('backbone.c.bias', 1, {'weight_decay': 0.}),
                    ParamInfo('backbone.c.weight', 2, {'lr': BASE_LR})])
    assert touched == plain
    assert [g.group_name for g in plain] == ['layer_0_no_decay',
                                             'layer_0_decay']


def test_groups_alike_but_for_extra_keys_show_them():
    groups = plan([
        ParamInfo('backbone.a.bias', 1),
        ParamInfo('backbone.n.weight', 1, {'weight_decay': 0.,
                                           'decay_mult': 0.}),
        ParamInfo('backbone.a.w', 2, {'momentum': 0.8}),
        ParamInfo('backbone.b.w', 2, {'momentum': 0.9}),
        ParamInfo('backbone.c.w', 2, {'betas': (0.9, 0.99)}),
        ParamInfo('head.w', 2, {'momentum': 0.8}),  # alone: plain name
    ])
    assert [g.group_name for g in groups] == [
        'layer_0_no_decay', 'layer_0_no_decay_decay_mult0',
        'layer_0_decay_momentum0.8', 'layer_0_decay_momentum0.9',
        'layer_0_decay_betas(0.9,0.99)', 'layer_2_decay'
    ]
    assert groups[-1].extra == {'momentum': 0.8}


def test_names_stay_unique_when_extras_print_alike():
    names = group_names([(0, Settings('decay', BASE_WD, BASE_LR,
                                      (('eps', 1e-8), ))),
                         (0, Settings('decay', BASE_WD, BASE_LR,
                                      (('eps', 1.0000001e-8), )))],
                        BASE_LR, BASE_WD)
    assert names == ['layer_0_decay_eps1e-08', 'layer_0_decay_eps1e-08_1']


def test_mmdet_labels_kept_without_options_even_at_zero_weight_decay():
    """mmdet splits decay / no_decay whatever the weight decay; 'decay'
    means the optimizer's weight decay, here 0."""
    groups = plan([ParamInfo('backbone.w', 2), ParamInfo('backbone.b', 1)],
                  base_wd=0.)
    assert [(g.group_name, g.weight_decay) for g in groups] == [
        ('layer_0_decay', 0.), ('layer_0_no_decay', 0.)]
    assert param_settings({'weight_decay': 0.}, False, BASE_LR, 0.) == \
        Settings('decay', 0., BASE_LR)


def _build(cfg_dict):
    from mmdet.registry import MODELS
    return MODELS.build(cfg_dict)


def test_swin_config_names_what_separates_groups():
    """mmdet's Swin config: custom_keys decay_mult=0 for norms and position
    tables; those groups carry decay_mult, plain biases do not."""
    _register()
    from mmengine.config import Config
    cfg = Config.fromfile(
        str(MMDET_CONFIGS / 'swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'))
    model = nn.Module()
    model.backbone = _build(dict(cfg.model.backbone, init_cfg=None,
                                 embed_dims=16, depths=(1, 1, 2, 1),
                                 num_heads=(1, 1, 2, 2)))
    model.neck = nn.Conv2d(128, 8, 1)
    paramwise = dict(cfg.optim_wrapper.paramwise_cfg, decay_rate=0.9)
    optimizer = dict(cfg.optim_wrapper.optimizer)
    groups = our_groups(model, paramwise, optimizer)
    names = [g['group_name'] for g in groups]
    assert {'layer_1_no_decay', 'layer_1_no_decay_decay_mult0'} <= set(names)
    assert not any(re.search(r'_\d+$', n) for n in names), names
    assert_names_tell_the_truth(groups, optimizer['lr'],
                                optimizer['weight_decay'])


@pytest.mark.filterwarnings("ignore:.*custom_keys")
def test_deformable_detr_config_no_no_decay_group_with_weight_decay():
    """custom_keys={'backbone': dict(lr_mult=0.1)} gives every backbone
    parameter, 1-D ones included, the optimizer's weight decay."""
    _register()
    from mmengine.config import Config
    cfg = Config.fromfile(str(MMDET_CONFIGS / 'deformable_detr' /
                              'deformable-detr_r50_16xb2-50e_coco.py'))
    model = nn.Module()
    # trainable norms and stage 1: 1-D parameters in layer 1
    model.backbone = _build(dict(
        cfg.model.backbone, init_cfg=None, depth=18, frozen_stages=0,
        norm_cfg=dict(type='BN', requires_grad=True)))
    model.neck = nn.Conv2d(512, 8, 1)
    paramwise = dict(cfg.optim_wrapper.paramwise_cfg, decay_rate=0.9)
    optimizer = dict(cfg.optim_wrapper.optimizer)
    groups = our_groups(model, paramwise, optimizer)
    names = [g['group_name'] for g in groups]
    layer_1 = groups[names.index('layer_1_decay_lr_x0.1')]
    assert 'backbone.layer1.0.bn1.weight' in layer_1['param_names']
    assert layer_1['weight_decay'] == optimizer['weight_decay']
    assert not any('no_decay' in n and '_wd' in n for n in names)
    assert_names_tell_the_truth(groups, optimizer['lr'],
                                optimizer['weight_decay'])


def test_convnext_names_without_options_are_mmdets(toy_detector):
    groups = our_groups(toy_detector(), dict(decay_rate=0.9, num_layers=5),
                        OPTIMIZER)
    assert all(re.fullmatch(r'layer_\d+_(no_)?decay', g['group_name'])
               for g in groups)
