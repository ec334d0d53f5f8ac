"""Pure pieces on plain data: rules on name lists, grouping, config
validation messages and the group table."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from layerdecay_plugin import (LayerDecayConfigError, parse_paramwise_cfg,
                               resnet_layer_id)
from layerdecay_plugin.grouping import ParamInfo, plan_groups
from layerdecay_plugin.table import GroupRow, format_group_table
from layerdecay_plugin.rules import (convnext_layer_id, convnext_stage_id,
                                     layer_scale, swin_layer_id, vit_blocks_layer_id,
                                     vit_layer_id)

# (rule, num_layers, depths, name -> expected id), one family per row; ids
# as docs/backbones.md's table of supported backbones gives them.
FAMILIES = [
    (convnext_layer_id, 6, (3, 3, 9, 3), {
        'downsample_layers.0.0.weight': 0,
        'stages.0.2.gamma': 1,
        'downsample_layers.1.1.weight': 2,
        'stages.1.0.norm.weight': 2,
        'stages.2.0.depthwise_conv.weight': 3,
        'stages.2.8.pointwise_conv1.bias': 5,  # 3 + 8 // 3
        'downsample_layers.3.1.weight': 6,
        'stages.3.2.gamma': 6,
        'norm3.weight': 7,
    }),
    (convnext_stage_id, 4, (3, 3, 9, 3), {
        'downsample_layers.2.1.weight': 0,
        'stages.0.0.gamma': 1,
        'stages.3.2.gamma': 4,
        'norm3.bias': 5,
    }),
    (swin_layer_id, 12, (2, 2, 6, 2), {
        'patch_embed.projection.weight': 0,
        'stages.0.blocks.0.attn.w_msa.qkv.weight': 1,
        'stages.0.downsample.reduction.weight': 2,  # its stage's last block
        'stages.1.blocks.0.norm1.weight': 3,
        'stages.3.blocks.1.ffn.layers.0.0.weight': 12,
        'norm3.weight': 13,
    }),
    (resnet_layer_id, 16, (3, 4, 6, 3), {
        'conv1.weight': 0,
        'bn1.weight': 0,
        'layer1.0.conv1.weight': 1,
        'layer2.1.conv2.weight': 5,
        'layer4.2.bn3.bias': 16,
    }),
    (vit_layer_id, 12, (), {
        'cls_token': 0,
        'patch_embed.projection.weight': 0,
        'layers.0.attn.qkv.weight': 1,
        'layers.11.ffn.layers.1.weight': 12,
        'ln1.weight': 12,
    }),
    (vit_blocks_layer_id, 4, (), {
        'pos_embed': 0,
        'blocks.0.mlp.fc1.weight': 1,
        'blocks.3.norm1.weight': 4,
        'norm.weight': 4,
    }),
]


@pytest.mark.parametrize('rule,num_layers,depths,expected', FAMILIES,
                         ids=lambda v: getattr(v, '__name__', ''))
def test_family_rules_on_name_lists(rule, num_layers, depths, expected):
    got = {name: rule(name, num_layers, depths) for name in expected}
    assert got == expected


def test_convnext_rule_refuses_a_fifth_stage():
    with pytest.raises(ValueError, match="'stages.4.0.gamma'"):
        convnext_layer_id('stages.4.0.gamma', 6)


@given(st.integers(0, 40), st.integers(6, 20))
def test_convnext_ids_stay_in_range(block, num_layers):
    """Any stage-2 block of a deep enough ConvNeXt gets a backbone id."""
    layer_id = convnext_layer_id(f'stages.2.{block}.gamma', num_layers)
    assert 0 < layer_id <= max(num_layers, 3 + block // 3)


@given(st.floats(0.5, 1.0), st.integers(1, 24), st.data())
def test_layer_scale_is_decay_rate_power(decay_rate, num_layers, data):
    layer_id = data.draw(st.integers(0, num_layers + 1))
    assert layer_scale(decay_rate, num_layers, layer_id) == pytest.approx(
        decay_rate**(num_layers + 1 - layer_id))
    assert layer_scale(decay_rate, num_layers, num_layers + 1) == 1


def test_plan_groups_order_names_and_settings():
    params = [
        ParamInfo('backbone.stem.weight', 4),
        ParamInfo('backbone.stem.bias', 1),
        ParamInfo('neck.conv.weight', 4),
        ParamInfo('backbone.block.weight', 2),
        ParamInfo('backbone.cls_token', 3),
    ]
    ids = {'backbone.stem': 0, 'backbone.block': 1, 'backbone.cls_token': 0}

    def layer_id_of(name):
        return next((v for k, v in ids.items() if name.startswith(k)), 2)

    plans = plan_groups(params, layer_id_of, decay_rate=0.5, num_layers=1,
                        base_lr=1.0, base_wd=0.1)
    # Groups in order of their first parameter, names in parameter order.
    assert [(p.group_name, p.param_names) for p in plans] == [
        ('layer_0_decay', ['backbone.stem.weight']),
        ('layer_0_no_decay', ['backbone.stem.bias', 'backbone.cls_token']),
        ('layer_2_decay', ['neck.conv.weight']),
        ('layer_1_decay', ['backbone.block.weight']),
    ]
    assert [(p.lr, p.weight_decay) for p in plans] == [(0.25, 0.1),
                                                       (0.25, 0.),
                                                       (1.0, 0.1),
                                                       (0.5, 0.1)]


# (paramwise_cfg, what the message must contain: key, value, fix)
BAD_CFGS = [
    (dict(decay_rate=0.9, num_layer=6),
     ["unknown key 'num_layer'", '(value 6)', "did you mean 'num_layers'"]),
    (dict(num_layers=6), ['decay_rate is missing', 'e.g.']),
    (dict(decay_rate=-0.5), ['decay_rate=-0.5', 'finite number > 0']),
    (dict(decay_rate='0.9'), ["decay_rate='0.9'", 'finite number > 0']),
    (dict(decay_rate=0.9, decay_type='layerwise'),
     ["decay_type='layerwise'", "'layer_wise'", "'stage_wise'"]),
    (dict(decay_rate=0.9, num_layers=0),
     ['num_layers=0', 'positive int', 'leave it out']),
    ({}, ['needs optim_wrapper.paramwise_cfg', 'decay_rate']),
]


@pytest.mark.parametrize('cfg,parts', BAD_CFGS, ids=lambda v: str(v)[:30])
def test_config_errors_name_key_value_and_fix(cfg, parts):
    with pytest.raises(LayerDecayConfigError) as error:
        parse_paramwise_cfg(cfg)
    for part in parts:
        assert part in str(error.value)


def test_valid_config_defaults():
    cfg = parse_paramwise_cfg(dict(decay_rate=0.9))
    assert (cfg.decay_rate, cfg.decay_type, cfg.num_layers) == \
        (0.9, 'layer_wise', None)


def test_group_table_sorted_by_layer_decay_first():
    rows = [
        GroupRow('other', '-', 1., 1e-4, 0., 1, 10),
        GroupRow('layer_7_decay', 7, 1., 1e-4, 0.05, 2, 20),
        GroupRow('layer_0_no_decay', 0, 0.5, 5e-5, 0., 3, 30),
        GroupRow('layer_0_decay', 0, 0.5, 5e-5, 0.05, 4, 4000),
    ]
    table = format_group_table(rows, title='groups')
    lines = table.splitlines()
    assert lines[0] == 'groups'
    body = [line.split('|')[1].strip() for line in lines[4:-1]]
    assert body == ['layer_0_decay', 'layer_0_no_decay', 'layer_7_decay',
                    'other']
    assert '4,000' in table and 'extra' not in lines[2]
