"""Every misconfiguration raises LayerDecayConfigError naming the key, the
bad value and the fix (where mmdet is silent or crashes obscurely)."""
import math

import pytest
import torch.nn as nn

from conftest import OPTIMIZER, _register
from layerdecay_plugin import (LayerDecayConfigError,
                               LayerDecayOptimWrapperConstructor)

GOOD = dict(decay_rate=0.9, decay_type='layer_wise', num_layers=5)


def construct(paramwise_cfg, optimizer=OPTIMIZER):
    return LayerDecayOptimWrapperConstructor(
        dict(type='OptimWrapper', optimizer=dict(optimizer)), paramwise_cfg)


BAD_CFGS = [
    # (paramwise_cfg, fragments the message must contain)
    (None, ['paramwise_cfg', 'None', 'decay_rate=0.9']),
    ({}, ['paramwise_cfg', '{}', 'decay_rate=0.9']),
    (dict(num_layers=6), ['decay_rate is missing', '> 0']),
    (dict(GOOD, decay_rate='0.9'), ["decay_rate='0.9'", '> 0']),
    (dict(GOOD, decay_rate=0), ['decay_rate=0 ', '> 0']),
    (dict(GOOD, decay_rate=-0.5), ['decay_rate=-0.5', '> 0']),
    (dict(GOOD, decay_rate=math.nan), ['decay_rate=nan', 'finite']),
    (dict(GOOD, decay_rate=True), ['decay_rate=True', 'number']),
    (dict(GOOD, decay_type='layerwise'),
     ["decay_type='layerwise'", "'layer_wise', 'stage_wise'"]),
    (dict(GOOD, decay_type='my_layer_wise'),
     ["decay_type='my_layer_wise'", "'layer_wise', 'stage_wise'"]),
    (dict(GOOD, decay_type=None), ['decay_type=None', "'stage_wise'"]),
    (dict(GOOD, num_layers=6.0), ['num_layers=6.0', 'positive int']),
    (dict(GOOD, num_layers='6'), ["num_layers='6'", 'positive int']),
    (dict(GOOD, num_layers=0), ['num_layers=0', 'positive int']),
    (dict(GOOD, num_layers=-3), ['num_layers=-3', 'positive int']),
    (dict(GOOD, num_layers=True), ['num_layers=True', 'positive int']),
    (dict(decay_rate=0.9, num_layer=6),
     ["unknown key 'num_layer'", "did you mean 'num_layers'", '6']),
    (dict(GOOD, decay_typ='stage_wise'),
     ["'decay_typ'", "did you mean 'decay_type'"]),
    (dict(GOOD, custom_keys=['head']), ["custom_keys=['head']", 'dict']),
    (dict(GOOD, custom_keys={'head': 10.}),
     ["custom_keys['head']=10.0", 'lr_mult=0.1']),
    (dict(GOOD, custom_keys={'head': dict(lr_mult=-1)}),
     ["custom_keys['head'].lr_mult=-1", '>= 0']),
    (dict(GOOD, norm_decay_mult='0'), ["norm_decay_mult='0'", '>= 0']),
    (dict(GOOD, bias_lr_mult=math.inf), ['bias_lr_mult=inf', 'finite']),
    (dict(GOOD, bypass_duplicate='yes'),
     ["bypass_duplicate='yes'", 'True or False']),
    (dict(GOOD, norm_decay=0.), ["'norm_decay'",
                                 "did you mean 'norm_decay_mult'"]),
    (dict(GOOD, backbone_attr='img backbone'),
     ["backbone_attr='img backbone'", "'img_backbone'"]),
    (dict(GOOD, rules='vit_block'), ["rules='vit_block'", "'vit_blocks'"]),
    (dict(GOOD, rules=dict(layer_wise=[('^blocks[', 1)])),
     ["rules['layer_wise'][0]", "'^blocks['", 'not a valid regex']),
    (dict(GOOD, rules=dict(layer_wise=[('^blocks', 'first')])),
     ["rules['layer_wise'][0]", "'first'", "'last' or 'head'"]),
    (dict(GOOD, rules=dict(layer_wise='^blocks')),
     ["rules['layer_wise']='^blocks'", '(regex, id) pairs']),
    (dict(GOOD, rules=dict(layerwise=[('.*', 1)])),
     ["unknown decay type 'layerwise'"]),
    (dict(GOOD, decay_type='stage_wise', rules=dict(layer_wise=[('.*', 1)])),
     ["no 'stage_wise' entry", "decay_type='stage_wise'"]),
    (dict(GOOD, no_decay_names='cls_token'),
     ["no_decay_names='cls_token'", 'list']),
]


@pytest.mark.parametrize('cfg,fragments', BAD_CFGS)
def test_bad_paramwise_cfg(cfg, fragments):
    with pytest.raises(LayerDecayConfigError) as err:
        construct(cfg)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_missing_decay_rate_suggests_a_config_without_num_layers():
    """num_layers is inferred; any fixed example is wrong for most
    backbones (ConvNeXt-T needs 6, Swin-T 12)."""
    with pytest.raises(LayerDecayConfigError) as err:
        construct(dict(decay_type='layer_wise'))
    msg = str(err.value)
    assert "e.g. paramwise_cfg=dict(decay_rate=0.9, decay_type='layer_wise')"\
        in msg
    assert 'num_layers' not in msg


@pytest.mark.parametrize('missing', ['lr', 'weight_decay'])
def test_optimizer_without_lr_or_weight_decay(missing):
    optimizer = {k: v for k, v in OPTIMIZER.items() if k != missing}
    with pytest.raises(LayerDecayConfigError,
                       match=f'optimizer.{missing} is not set'):
        construct(GOOD, optimizer)


def test_missing_weight_decay_named_before_mmengine_refuses_it():
    """mmengine raises a bare ValueError('base_wd should not be None')."""
    optimizer = {k: v for k, v in OPTIMIZER.items() if k != 'weight_decay'}
    with pytest.raises(LayerDecayConfigError,
                       match='optimizer.weight_decay is not set'):
        construct(dict(GOOD, norm_decay_mult=0.), optimizer)


@pytest.mark.parametrize('key', ['lr', 'weight_decay'])
@pytest.mark.parametrize('value', ['1e-4', -1e-4, math.nan, math.inf, True,
                                   [1e-4]])
def test_optimizer_lr_and_weight_decay_must_be_finite_non_negative(key,
                                                                    value):
    with pytest.raises(LayerDecayConfigError) as err:
        construct(GOOD, dict(OPTIMIZER, **{key: value}))
    msg = str(err.value)
    assert f'optim_wrapper.optimizer.{key}={value!r} is invalid' in msg
    assert 'finite number >= 0' in msg


def test_zero_lr_and_weight_decay_are_valid(toy_detector):
    groups = construct(GOOD, dict(OPTIMIZER, lr=0, weight_decay=0.))(
        toy_detector()).optimizer.param_groups
    assert {(g['lr'], g['weight_decay']) for g in groups} == {(0., 0.)}


def test_num_layers_too_small_for_convnext_s():
    """mmdet silently gives lr_scale 2.44 here (decay 0.8, num_layers 6)."""
    _register()
    from mmpretrain.models import ConvNeXt
    model = nn.Module()
    model.backbone = ConvNeXt(arch='small')
    with pytest.raises(LayerDecayConfigError) as err:
        construct(dict(decay_rate=0.8, num_layers=6))(model)
    msg = str(err.value)
    for fragment in ('num_layers=6', 'num_layers >= 12', '2.44',
                     'num_layers=12'):
        assert fragment in msg


@pytest.mark.parametrize('decay_type,given,needed', [('layer_wise', 4, 5),
                                                     ('stage_wise', 3, 4)])
def test_num_layers_too_small_toy(toy_detector, decay_type, given, needed):
    with pytest.raises(LayerDecayConfigError,
                       match=f'num_layers={given} is too small.*'
                       f'>= {needed}'):
        construct(dict(decay_rate=0.9, decay_type=decay_type,
                       num_layers=given))(toy_detector())


def test_model_without_backbone():
    with pytest.raises(LayerDecayConfigError,
                       match='backbone module at `backbone`, but '
                       'torch.nn.modules.conv.Conv2d has NoneType'):
        construct(GOOD)(nn.Conv2d(3, 3, 1))


def test_backbone_attribute_that_is_not_a_module():
    model = nn.Module()
    model.backbone = None
    model.img_backbone = nn.Linear(2, 2)
    with pytest.raises(LayerDecayConfigError,
                       match=r"has NoneType there \(its children: "
                       r"\['img_backbone'\]\).*backbone_attr"):
        construct(GOOD)(model)


def test_rule_matching_no_parameter(toy_detector):
    rules = dict(layer_wise=[(r'^stages\.(\d+)\.', 1), (r'^blocks\.', 1),
                             (r'.*', 0)])
    with pytest.raises(LayerDecayConfigError,
                       match=r"rules\['layer_wise'\]\[1\]: regex .*blocks.* "
                       r"matches no"):
        construct(dict(GOOD, rules=rules))(toy_detector())


def test_backbone_parameter_matching_no_rule(toy_detector):
    rules = dict(layer_wise=[(r'^stages\.(\d+)\.', 1)])
    with pytest.raises(LayerDecayConfigError,
                       match="match no rule for .* e.g. "
                       r"\['cls_token'.*catch-all"):
        construct(dict(GOOD, rules=rules))(toy_detector())


def test_stage_wise_unavailable_for_get_layer_depth_backbones():

    class Net(nn.Module):

        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(2, 2)])

        def get_layer_depth(self, name, prefix=''):
            return (1 if name.startswith('layers') else 2), 3

    model = nn.Module()
    model.backbone = Net()
    with pytest.raises(LayerDecayConfigError,
                       match="decay_type='stage_wise' is not available for "
                       "Net \\(get_layer_depth\\).*'layer_wise'"):
        construct(dict(decay_rate=0.9, decay_type='stage_wise'))(model)


def test_custom_key_typo_warns(toy_detector):
    with pytest.warns(UserWarning,
                      match=r"custom_keys\['nek'\] matches no trainable"):
        construct(dict(GOOD, custom_keys={'nek': dict(lr_mult=2.)}))(
            toy_detector())


class MysteryNet(nn.Module):
    """A backbone class nothing knows."""

    def __init__(self):
        super().__init__()
        self.body = nn.Conv2d(3, 4, 1)


def test_unsupported_backbone_names_class_and_supported_ones():
    _register()
    model = nn.Module()
    model.backbone = MysteryNet()
    with pytest.raises(LayerDecayConfigError) as err:
        construct(GOOD)(model)
    msg = str(err.value)
    assert f'{__name__}.MysteryNet' in msg
    # the fixes first, then the known classes, shortened per package
    assert msg.index("rules='auto'") < msg.index('mmdet: ')
    assert 'mmdet: ' in msg and 'SwinTransformer' in msg
    assert 'mmpretrain: ' in msg and 'ConvNeXt' in msg
    assert 'register_backbone_rules' in msg and 'rules=dict(' in msg


def test_convnext_lookalike_by_name_only_is_refused():
    """mmdet accepts any class whose name contains 'ConvNeXt'; we want
    mmpretrain's ConvNeXt parameter names too (tests/test_dropin.py)."""

    class ConvNeXt(nn.Module):
        depths = [3, 3, 9, 3]

        def __init__(self):
            super().__init__()
            self.body = nn.Linear(2, 2)

    model = nn.Module()
    model.backbone = ConvNeXt()
    with pytest.raises(LayerDecayConfigError,
                       match=r"ConvNeXt in its name.*expected "
                       r"downsample_layers\.i\.\* and stages\.i\.j\.\*.*"
                       r"found no parameter named"):
        construct(GOOD)(model)


def test_decay_rate_above_one_warns(toy_detector):
    with pytest.warns(UserWarning, match='decay_rate=1.1 > 1'):
        construct(dict(GOOD, decay_rate=1.1))(toy_detector())


def test_entirely_frozen_backbone_warns_layer_decay_has_no_effect(
        toy_detector):
    model = toy_detector()
    model.backbone.requires_grad_(False)
    with pytest.warns(UserWarning) as caught:
        groups = construct(GOOD)(model).optimizer.param_groups
    messages = [str(w.message) for w in caught]
    assert any('ToyConvNeXt has no trainable parameter' in m
               and 'layer decay has no effect' in m for m in messages)
    assert {g['lr_scale'] for g in groups} == {1.}


def test_rules_leaving_most_of_the_backbone_at_the_head_are_refused():
    from layerdecay_plugin.checks.ids import check_layer_ids
    params = [('stem.w', 10, True), ('blocks.0.w', 60, True),
              ('blocks.1.w', 60, False), ('norm.w', 2, True)]
    ids = {'stem.w': 0}
    with pytest.raises(LayerDecayConfigError) as err:
        check_layer_ids('pkg.Net', 'Net.get_layer_depth', params,
                        lambda n: ids.get(n, 5), head_id=5)
    msg = str(err.value)
    for fragment in ('pkg.Net', 'chosen by Net.get_layer_depth', '92%',
                     "['blocks.0.w', 'blocks.1.w', 'norm.w']"):
        assert fragment in msg
    # half is allowed; frozen names the rule rejects do not count at the head
    check_layer_ids('pkg.Net', 'x', params[:2] + [('other', 70, False)],
                    lambda n: ids[n] if n != 'blocks.0.w' else 5, head_id=5)


class _HiViTLike(nn.Module):
    """HiViT's modules, parameters and get_layer_depth, but not a HiViT
    subclass, so only get_layer_depth can serve it (a rule registered for
    HiViT does not apply)."""

    def __init__(self, hivit: nn.Module):
        super().__init__()
        for name, param in hivit.named_parameters(recurse=False):
            self.register_parameter(name, param)
        for name, child in hivit.named_children():
            self.add_module(name, child)
        self._hivit_cls = type(hivit)

    def get_layer_depth(self, param_name, prefix=''):
        return self._hivit_cls.get_layer_depth(self, param_name, prefix)


def test_hivit_get_layer_depth_is_refused():
    """mmpretrain's HiViT.get_layer_depth looks for `layers.`, but its blocks
    are `blocks.`: every block would get the head's lr."""
    _register()
    from mmpretrain.models.backbones import HiViT
    hivit = HiViT(arch=dict(embed_dims=64, depths=[1, 1, 2], num_heads=2),
                  img_size=64, out_indices=[1])
    model = nn.Module()
    model.backbone = _HiViTLike(hivit)
    with pytest.raises(LayerDecayConfigError) as err:
        construct(dict(decay_rate=0.9))(model)
    msg = str(err.value)
    assert '_HiViTLike' in msg and '_HiViTLike.get_layer_depth' in msg
    assert "'blocks.0." in msg
