"""Pure name -> id rules, checked on names of toy ConvNeXt modules and
against mmdet's own functions."""
import ast
import inspect

import pytest
from mmdet.engine.optimizers.layer_decay_optimizer_constructor import (
    get_layer_id_for_convnext, get_stage_id_for_convnext)

from layerdecay_plugin import rules
from layerdecay_plugin.backbones.families import FAMILIES
from layerdecay_plugin.config import parse_auto_rules
from layerdecay_plugin.grouping import ParamInfo, plan_groups
from layerdecay_plugin.rules import (convnext_layer_id,
                                     convnext_min_num_layers,
                                     convnext_stage_id, is_no_decay,
                                     layer_scale)

from conftest import toy_convnext_cls
from layerdecay_plugin.errors import LayerDecayConfigError

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


RULE_MODULES = ['rules', 'rules.common', 'rules.auto', 'rules.convnext',
                'rules.hourglass', 'rules.hrnet', 'rules.pvt',
                'rules.staged', 'rules.swin', 'rules.vgg', 'rules.vit',
                'rules.timm', 'rules.timm_names', 'rules.mscan',
                'backbones.families', 'backbones.types',
                'backbones.depths', 'backbones.config_rules', 'checks.ids',
                'checks.num_layers', 'checks.frozen', 'checks.twins',
                'config.paramwise', 'config.rules_key']


@pytest.mark.parametrize('module', RULE_MODULES + ['grouping', 'config'])
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


def test_group_layer_id_inverts_group_names():
    from layerdecay_plugin.grouping import group_layer_id
    assert group_layer_id('layer_12_no_decay_lr_x2') == 12
    assert group_layer_id('layer_0_decay') == 0
    assert group_layer_id(None) is None
    assert group_layer_id('backbone') is None


H = 'head'  # num_layers + 1
# family -> (depths, {relative name: (layer_wise id, stage_wise id)}), with
# num_layers at each decay type's minimum; ids follow each module's table.
FAMILY_NAMES = {
    'csp': ([2, 2, 2, 3], {
        'stem.0.conv.weight': (0, 0),
        'stage1.0.conv.weight': (1, 1),
        'stage1.1.main_conv.conv.weight': (2, 1),
        'stage2.0.bn.weight': (3, 2),
        'stage4.1.conv1.conv.weight': (8, 4),
        'stage4.2.blocks.0.conv2.conv.weight': (9, 4),
        'extra_norm.weight': (H, H),
    }),
    'darknet': ([1, 2, 8, 8, 4], {
        'conv1.conv.weight': (0, 0),
        'conv_res_block1.conv.conv.weight': (1, 1),
        'conv_res_block1.res0.conv1.conv.weight': (1, 1),
        'conv_res_block2.conv.bn.weight': (2, 2),
        'conv_res_block2.res1.conv2.conv.weight': (3, 2),
        'conv_res_block5.res3.conv2.conv.weight': (23, 5),
    }),
    'mobilenet_v2': ([1, 2, 3, 4, 3, 3, 1, 1], {
        'conv1.conv.weight': (0, 0),
        'layer1.0.conv.0.conv.weight': (1, 1),
        'layer2.1.conv.2.bn.bias': (3, 2),
        'layer7.0.conv.1.conv.weight': (17, 7),
        'conv2.conv.weight': (18, 8),
    }),
    'efficientnet': ([1, 2, 2, 3, 5, 8, 1], {
        'layers.0.conv.weight': (0, 0),
        'layers.1.0.depthwise_conv.conv.weight': (1, 1),
        'layers.2.1.expand_conv.conv.weight': (3, 2),
        'layers.6.7.linear_conv.bn.bias': (21, 6),
        'layers.7.conv.weight': (22, 7),
    }),
    'hrnet': ([4, 1, 4, 3], {
        'conv1.weight': (0, 0),
        'bn2.bias': (0, 0),
        'layer1.3.conv3.weight': (4, 1),
        'transition1.1.0.0.weight': (5, 2),
        'stage2.0.branches.1.0.conv1.weight': (5, 2),
        'stage2.0.fuse_layers.0.1.0.weight': (5, 2),
        'transition2.2.0.0.weight': (6, 3),
        'stage3.3.branches.0.3.conv2.weight': (9, 3),
        'stage4.2.fuse_layers.3.0.2.1.bias': (12, 4),
    }),
    'pvt': ([3, 3, 3, 3], {  # v1: position embedding + 2 blocks a stage
        'layers.0.0.projection.weight': (0, 0),
        'layers.0.1.0.pos_embed': (1, 1),
        'layers.0.1.2.attn.attn.in_proj_weight': (3, 1),
        'layers.0.2.weight': (3, 1),
        'layers.1.0.projection.weight': (4, 2),
        'layers.3.1.2.ffn.layers.1.weight': (12, 4),
        'layers.3.2.bias': (12, 4),
    }),
    'hourglass': ([1, 1], {
        'stem.0.conv.weight': (0, 0),
        'hourglass_modules.0.up1.0.conv1.conv.weight': (1, 1),
        'remap_convs.0.bn.bias': (1, 1),
        'inters.0.conv1.weight': (1, 1),
        'out_convs.1.conv.weight': (2, 2),
    }),
    'swin_v2': ([2, 2, 6, 2], {
        'patch_embed.projection.weight': (0, 0),
        'stages.0.blocks.1.attn.w_msa.qkv.weight': (2, 1),
        'stages.1.downsample.reduction.weight': (3, 2),
        'stages.1.blocks.0.norm1.weight': (3, 2),
        'stages.3.blocks.1.ffn.layers.1.weight': (12, 4),
        'norm3.weight': (H, H),
    }),
    'hivit': ([2, 3, 11], {  # a PatchMerge starts stages 1 and 2
        'pos_embed': (0, 0),
        'patch_embed.proj.weight': (0, 0),
        'blocks.0.mlp.fc1.weight': (1, 1),
        'blocks.2.reduction.weight': (3, 2),
        'blocks.15.attn.qkv.weight': (16, 3),
        'fc_norm.weight': (16, 3),
    }),
    'mvit': ([1, 2, 5, 2], {
        'patch_embed.projection.weight': (0, 0),
        'blocks.0.attn.qkv.weight': (1, 1),
        'blocks.1.proj.weight': (2, 2),
        'blocks.8.mlp.fc1.weight': (9, 4),
        'blocks.9.norm2.weight': (10, 4),
        'norm3.weight': (H, H),
    }),
}


@pytest.mark.parametrize('family', sorted(FAMILY_NAMES))
@pytest.mark.parametrize('decay_type', ['layer_wise', 'stage_wise'])
def test_family_ids_on_name_lists(family, decay_type):
    depths, expected = FAMILY_NAMES[family]
    family_rules = FAMILIES[family].rules
    num_layers = family_rules.min_num_layers(depths, decay_type)
    rule = family_rules.ids[decay_type]
    column = 0 if decay_type == 'layer_wise' else 1
    for name, ids in expected.items():
        want = num_layers + 1 if ids[column] == H else ids[column]
        assert rule(name, num_layers, depths) == want, name
    # the deepest name listed gets num_layers: ids stop below the head's
    assert max(rule(n, num_layers, depths) for n in expected
               if expected[n][column] != H) == num_layers


def test_vgg_ids_count_convolutions_not_layers():
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28, 31, 33]
    assert rules.vgg_min_num_layers(convs, 'layer_wise') == 14
    assert rules.vgg_layer_id('features.0.weight', 14, convs) == 0
    assert rules.vgg_layer_id('features.2.bias', 14, convs) == 1
    assert rules.vgg_layer_id('features.33.weight', 14, convs) == 14
    # with norms: a norm goes with the convolution before it
    assert rules.vgg_layer_id('features.1.weight', 1, [0, 3]) == 0
    assert rules.vgg_layer_id('features.4.bias', 1, [0, 3]) == 1
    assert rules.vgg_layer_id('l2_norm.weight', 14, convs) == 15
    # stages: pools widen the gaps; SSD's fc6/fc7 are a sixth stage
    assert rules.vgg_min_num_layers(convs, 'stage_wise') == 5
    assert [rules.vgg_stage_id(f'features.{i}.weight', 5, convs)
            for i in convs] == [0, 0, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5]
    assert rules.vgg_stage_id('features.4.bias', 1, [0, 3, 7]) == 0
    assert rules.vgg_stage_id('features.8.bias', 1, [0, 3, 7]) == 1


def test_block_helpers():
    assert rules.block_id(0, 0, [2, 3]) == 1
    assert rules.block_id(1, 2, [2, 3]) == 5
    assert [rules.stage_of_block(i, [2, 3]) for i in range(6)] == \
        [0, 0, 1, 1, 1, 1]


def test_ids_from_order_stem_blocks_and_extras():
    """Owners in forward order: a stem before the first block is 0, blocks
    count up, others take the next block's id (or the last one's)."""
    ids = rules.ids_from_order([
        (['conv1.weight', 'bn1.weight'], False),
        (['layer1.0.conv.weight'], True),
        (['down.weight'], False),
        (['layer2.0.conv.weight', 'layer2.0.bn.bias'], True),
        (['final_norm.weight'], False),
    ])
    assert ids == {'conv1.weight': 0, 'bn1.weight': 0,
                   'layer1.0.conv.weight': 1, 'down.weight': 2,
                   'layer2.0.conv.weight': 2, 'layer2.0.bn.bias': 2,
                   'final_norm.weight': 2}
    # no stem: blocks from 0; no block at all: every owner is one
    assert rules.ids_from_order([(['a'], True), (['b'], True)]) == \
        {'a': 0, 'b': 1}
    assert rules.ids_from_order([(['a'], False), (['b'], False)]) == \
        {'a': 0, 'b': 1}
    assert rules.ids_from_order([]) == {}


def test_parse_auto_rules():
    assert parse_auto_rules('swin', 'layer_wise') is None
    assert parse_auto_rules(None, 'layer_wise') is None
    assert parse_auto_rules('auto', 'layer_wise').input_shape == \
        rules.DEFAULT_INPUT_SHAPE
    assert parse_auto_rules(
        dict(type='auto', input_shape=[2, 3, 64, 96]),
        'layer_wise').input_shape == (2, 3, 64, 96)
    for bad in ([3, 64, 0], (1, 3), 'big', [1, 3, 64.0, 64]):
        with pytest.raises(LayerDecayConfigError, match='input_shape='):
            parse_auto_rules(dict(type='auto', input_shape=bad),
                                   'layer_wise')
    with pytest.raises(LayerDecayConfigError, match="'shape'"):
        parse_auto_rules(dict(type='auto', shape=(1, 3, 8, 8)),
                               'layer_wise')
    with pytest.raises(LayerDecayConfigError, match='stage_wise'):
        parse_auto_rules('auto', 'stage_wise')
