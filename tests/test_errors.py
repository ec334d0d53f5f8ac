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
    (None, ['paramwise_cfg', 'None', 'decay_rate=0.95']),
    ({}, ['paramwise_cfg', '{}', 'decay_rate=0.95']),
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


@pytest.mark.parametrize('missing', ['lr', 'weight_decay'])
def test_optimizer_without_lr_or_weight_decay(missing):
    optimizer = {k: v for k, v in OPTIMIZER.items() if k != missing}
    with pytest.raises(LayerDecayConfigError,
                       match=f'optimizer.{missing} is not set'):
        construct(GOOD, optimizer)


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


def test_unsupported_backbone_names_class_and_supported_ones():
    _register()
    from mmdet.models.backbones import MobileNetV2
    model = nn.Module()
    model.backbone = MobileNetV2()
    with pytest.raises(LayerDecayConfigError) as err:
        construct(GOOD)(model)
    msg = str(err.value)
    assert 'mmdet.models.backbones.mobilenet_v2.MobileNetV2' in msg
    assert 'mmdet.models.backbones.swin.SwinTransformer' in msg
    assert 'mmpretrain.models.backbones.convnext.ConvNeXt' in msg
    assert 'register_backbone_rules' in msg and 'rules=dict(' in msg


def test_convnext_lookalike_by_name_only_is_refused():
    """mmdet accepts any class whose name contains 'ConvNeXt'."""

    class ConvNeXt(nn.Module):
        depths = [3, 3, 9, 3]

    model = nn.Module()
    model.backbone = ConvNeXt()
    with pytest.raises(LayerDecayConfigError, match='cannot map'):
        construct(GOOD)(model)


def test_decay_rate_above_one_warns(toy_detector):
    with pytest.warns(UserWarning, match='decay_rate=1.1 > 1'):
        construct(dict(GOOD, decay_rate=1.1))(toy_detector())
