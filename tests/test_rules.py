"""Pure name -> id rules, checked on names of toy ConvNeXt modules and
against mmdet's own functions."""
import ast
import inspect

import pytest
from mmdet.engine.optimizers.layer_decay_optimizer_constructor import (
    get_layer_id_for_convnext, get_stage_id_for_convnext)

from layerdecay_plugin import rules
from layerdecay_plugin.grouping import ParamInfo, plan_groups
from layerdecay_plugin.rules import (convnext_layer_id,
                                     convnext_min_num_layers,
                                     convnext_stage_id, is_no_decay,
                                     layer_scale)

from conftest import toy_convnext_cls

TINY_NAMES = {
    'downsample_layers.0.0.weight': (0, 0),
    'stages.0.2.gamma': (1, 1),
    'downsample_layers.1.1.weight': (2, 0),
    'stages.1.0.depthwise_conv.weight': (2, 2),
    'downsample_layers.2.1.bias': (3, 0),
    'stages.2.0.norm.weight': (3, 3),
    'stages.2.2.pointwise_conv1.weight': (3, 3),
    'stages.2.3.gamma': (4, 3),
    'stages.2.8.pointwise_conv2.bias': (5, 3),
    'downsample_layers.3.0.weight': (6, 0),
    'stages.3.2.gamma': (6, 4),
    'norm3.weight': (7, 7),
    'cls_token': (0, 0),
    'pos_embed': (0, 0),
    'mask_token': (0, 0),
}


@pytest.mark.parametrize('name,ids', TINY_NAMES.items())
def test_convnext_tiny_ids(name, ids):
    assert convnext_layer_id(name, 6) == ids[0]
    assert convnext_stage_id(name, 6) == ids[1]


@pytest.mark.parametrize('depths', [(1, 1, 4, 1), (2, 2, 6, 2), (3, 3, 27, 3),
                                    (1, 2, 1, 1)])
@pytest.mark.parametrize('extra', [0, 3])
def test_rules_match_mmdet_functions_on_toy_names(depths, extra):
    """Every name of a toy ConvNeXt gets mmdet's id, both decay types."""
    backbone = toy_convnext_cls()(depths=depths, out_indices=(0, 1, 2, 3))
    for decay_type in ('layer_wise', 'stage_wise'):
        n = convnext_min_num_layers(depths, decay_type) + extra
        for name, _ in backbone.named_parameters():
            full = f'backbone.{name}'
            if decay_type == 'layer_wise':
                assert convnext_layer_id(name, n) == \
                    get_layer_id_for_convnext(full, n), name
            else:
                assert convnext_stage_id(name, n) == \
                    get_stage_id_for_convnext(full, n + 2), name


@pytest.mark.parametrize('depths,layer_wise', [((3, 3, 9, 3), 6),
                                               ((3, 3, 27, 3), 12),
                                               ((2, 2, 6, 2), 5),
                                               ((2, 2, 8, 2), 6),
                                               ((1, 1, 1, 1), 4)])
def test_min_num_layers(depths, layer_wise):
    assert convnext_min_num_layers(depths, 'layer_wise') == layer_wise
    assert convnext_min_num_layers(depths, 'stage_wise') == 4


@pytest.mark.parametrize('depths', [(3, 3, 9, 3), (3, 3, 27, 3), (2, 2, 6, 2)])
@pytest.mark.parametrize('decay_type', ['layer_wise', 'stage_wise'])
def test_min_num_layers_keeps_backbone_below_head(depths, decay_type):
    """At the minimum, ids never decrease with depth, stay <= num_layers, and
    one less would break it (an id reaches the head's or collides)."""
    backbone = toy_convnext_cls()(depths=depths, tokens=False)
    rule = rules.CONVNEXT.ids[decay_type]
    names = [n for n, _ in backbone.named_parameters()
             if n.startswith(('stages.', 'downsample_layers.'))]
    last_stage = ('stages.3.', 'downsample_layers.3.')

    def early_and_last(n):
        early = max(rule(x, n) for x in names if not x.startswith(last_stage))
        return early, rule('stages.3.0.gamma', n)

    n = convnext_min_num_layers(depths, decay_type)
    ids = [rule(x, n) for x in names if x.startswith('stages.')]
    assert ids == sorted(ids)
    early, last = early_and_last(n)
    assert early < last <= n
    early, last = early_and_last(n - 1)
    assert early >= last or last > n - 1


def test_stage_outside_0_to_3_is_a_clear_error():
    with pytest.raises(ValueError, match='stage 4'):
        convnext_layer_id('stages.4.0.gamma', 6)
    with pytest.raises(ValueError, match='4 stages'):
        convnext_min_num_layers([1, 1, 1, 1, 1], 'layer_wise')


def test_layer_scale_and_no_decay():
    assert layer_scale(0.9, 6, 7) == 1.0
    assert layer_scale(0.9, 6, 0) == 0.9**7
    assert is_no_decay('backbone.norm3.weight', 1)
    assert is_no_decay('neck.conv.bias', 1)
    assert is_no_decay('backbone.cls_token', 3)  # tokens: deliberate
    assert is_no_decay('backbone.stages.0.blocks.0.attn.w_msa.'
                       'relative_position_bias_table', 2)
    assert not is_no_decay('backbone.cls_token', 3, ())  # mmdet's rule
    assert not is_no_decay('backbone.scalar', 0)


def test_plan_groups_order_and_sharing():
    names = [ParamInfo(*p) for p in [
        ('backbone.stages.0.0.w', 2), ('head.w', 2), ('head.b', 1),
        ('backbone.stages.0.0.b', 1), ('backbone.stages.0.1.w', 2)]]
    plan = plan_groups(names, lambda n: 1 if n.startswith('backbone') else 3,
                       0.5, 2, 1.0, 0.1)
    assert [g.group_name for g in plan] == [
        'layer_1_decay', 'layer_3_decay', 'layer_3_no_decay',
        'layer_1_no_decay'
    ]
    assert plan[0].param_names == ['backbone.stages.0.0.w',
                                   'backbone.stages.0.1.w']
    assert plan[0].lr == 0.25 and plan[0].weight_decay == 0.1
    assert plan[2].lr == 1.0 and plan[2].weight_decay == 0.


@pytest.mark.parametrize('module', ['rules', 'grouping', 'config'])
def test_pure_modules_import_no_torch_registry_or_logging(module):
    import importlib
    source = inspect.getsource(importlib.import_module(
        f'layerdecay_plugin.{module}'))
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split('.')[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split('.')[0])
    assert not imported & {'torch', 'mmengine', 'mmdet', 'logging'}


def test_plan_groups_composes_mmengine_options():
    params = [ParamInfo('backbone.a.w', 2, {'lr': 0.5}),
              ParamInfo('backbone.a.v', 2),
              ParamInfo('backbone.a.b', 1, {'weight_decay': 0.3}),
              ParamInfo('head.w', 2, {'lr': 2., 'weight_decay': 0.,
                                      'lr_mult': 2., 'decay_mult': 0.})]
    plan = plan_groups(params, lambda n: 0 if n.startswith('backbone') else 2,
                       0.5, 1, 1.0, 0.1)
    by_name = {g.group_name: g for g in plan}
    assert list(by_name) == ['layer_0_decay_lr_x0.5', 'layer_0_decay',
                             'layer_0_no_decay_wd0.3', 'layer_2_decay_lr_x2_wd0']
    assert by_name['layer_0_decay_lr_x0.5'].lr == 0.25 * 0.5
    assert by_name['layer_0_no_decay_wd0.3'].weight_decay == 0.3
    head = by_name['layer_2_decay_lr_x2_wd0']
    assert (head.lr, head.weight_decay) == (2., 0.)
    assert head.extra == {'lr_mult': 2., 'decay_mult': 0.}


def test_group_layer_id_inverts_group_names():
    from layerdecay_plugin.grouping import group_layer_id
    assert group_layer_id('layer_12_no_decay_lr_x2') == 12
    assert group_layer_id('layer_0_decay') == 0
    assert group_layer_id(None) is None
    assert group_layer_id('backbone') is None
