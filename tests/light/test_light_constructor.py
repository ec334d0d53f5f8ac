"""The constructor built as a config builds it
(``mmengine.optim.build_optim_wrapper``) on toy torch modules: the
ConvNeXt-named drop-in, registered rules and config rules."""
from typing import Dict

import pytest
import torch.nn as nn

from layerdecay_plugin import (LayerDecayConfigError, register_backbone_rules,
                               vit_blocks_layer_id)
from layerdecay_plugin.grouping import group_layer_id
from light.toys import ToyConvNeXt, ToyDetector, layer_decay_groups

BASE_LR, BASE_WD = 1e-3, 0.05


def groups_of(model: nn.Module, **paramwise_cfg) -> list:
    """Param groups our registered constructor builds for ``model``."""
    return layer_decay_groups(
        model, paramwise_cfg,
        dict(type='AdamW', lr=BASE_LR, weight_decay=BASE_WD))


def ids_by_name(groups: list) -> Dict[str, int]:
    """Layer id of every parameter name, read from its group's name."""
    return {name: group_layer_id(g['group_name'])
            for g in groups for name in g['param_names']}


def assert_lr_and_weight_decay(groups: list, model: nn.Module,
                               decay_rate: float, num_layers: int) -> None:
    """lr = base x decay_rate ** (num_layers + 1 - id); no weight decay on
    1-D parameters and biases, the optimizer's on the rest."""
    params = dict(model.named_parameters())
    for group in groups:
        layer_id = group_layer_id(group['group_name'])
        assert group['lr'] == pytest.approx(
            BASE_LR * decay_rate**(num_layers + 1 - layer_id))
        for name in group['param_names']:
            flat = params[name].ndim <= 1 or name.endswith('.bias')
            assert group['weight_decay'] == (0. if flat else BASE_WD), name


def test_convnext_named_toy_layer_wise():
    model = ToyDetector(ToyConvNeXt((1, 1, 7, 1)))
    groups = groups_of(model, decay_rate=0.8, num_layers=6)
    ids = ids_by_name(groups)
    assert ids['backbone.downsample_layers.0.1.weight'] == 0
    assert ids['backbone.stages.0.0.gamma'] == 1
    assert ids['backbone.stages.2.6.depthwise_conv.weight'] == 5
    assert ids['backbone.stages.3.0.norm.weight'] == 6
    assert ids['backbone.norm3.weight'] == ids['neck.0.weight'] == 7
    assert_lr_and_weight_decay(groups, model, 0.8, 6)
    assert sum(len(g['params']) for g in groups) == \
        len(list(model.parameters()))


def test_convnext_named_toy_stage_wise_and_inferred_num_layers():
    model = ToyDetector(ToyConvNeXt())
    groups = groups_of(model, decay_rate=0.7, decay_type='stage_wise')
    assert_lr_and_weight_decay(groups, model, 0.7, 4)  # 4 stages inferred


def test_num_layers_too_small_is_an_error():
    model = ToyDetector(ToyConvNeXt((1, 1, 12, 1)))  # needs 4 + 11 // 3
    with pytest.raises(LayerDecayConfigError, match='num_layers'):
        groups_of(model, decay_rate=0.8, num_layers=5)


class ToyBlocksNet(nn.Module):
    """A backbone the plugin does not know: stem, ``blocks.i``, norm."""

    def __init__(self, num_blocks: int = 3):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 2)
        self.blocks = nn.ModuleList(
            nn.Linear(8, 8) for _ in range(num_blocks))
        self.norm = nn.LayerNorm(8)
        self.depths = [num_blocks]  # what registered rules read by default


class ToyModel(nn.Module):

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(8, 2)


def toy_blocks_id(name: str, num_layers: int, depths) -> int:
    """stem 0, ``blocks.i`` i + 1, anything else the head's id."""
    if name.startswith('stem.'):
        return 0
    if name.startswith('blocks.'):
        return int(name.split('.')[1]) + 1
    return num_layers + 1


def test_registered_rules():
    class RegisteredNet(ToyBlocksNet):
        pass

    register_backbone_rules(RegisteredNet, layer_wise=toy_blocks_id)
    model = ToyModel(RegisteredNet())
    groups = groups_of(model, decay_rate=0.9)  # num_layers 3 inferred
    ids = ids_by_name(groups)
    assert [ids[f'backbone.blocks.{i}.weight'] for i in range(3)] == [1, 2, 3]
    assert ids['backbone.stem.weight'] == 0
    assert ids['head.weight'] == 4
    assert_lr_and_weight_decay(groups, model, 0.9, 3)


def test_config_rules():
    model = ToyModel(ToyBlocksNet())
    rules = dict(layer_wise=[(r'^stem\.', 0), (r'^blocks\.(\d+)\.', 1),
                             (r'^norm\.', 'last')])
    groups = groups_of(model, decay_rate=0.9, num_layers=3, rules=rules)
    ids = ids_by_name(groups)
    assert ids['backbone.norm.weight'] == 3
    assert ids['backbone.blocks.0.bias'] == 1
    assert_lr_and_weight_decay(groups, model, 0.9, 3)


def test_unknown_backbone_names_the_ways_to_add_it():
    with pytest.raises(LayerDecayConfigError,
                       match='register_backbone_rules') as error:
        groups_of(ToyModel(ToyBlocksNet()), decay_rate=0.9)
    assert 'ToyBlocksNet' in str(error.value)


def test_builtin_family_by_name():
    model = ToyModel(ToyBlocksNet(4))
    groups = groups_of(model, decay_rate=0.9, rules='vit_blocks')
    ids = ids_by_name(groups)
    assert ids['backbone.blocks.3.weight'] == ids['backbone.norm.weight'] == 4
    assert_lr_and_weight_decay(groups, model, 0.9, 4)
    assert vit_blocks_layer_id('blocks.3.weight', 4) == 4


class _Stage(nn.Module):
    """A Swin stage whose ``blocks`` is a plain module: ``len()`` fails on
    it, as on a custom class, so depths must come from the names."""

    def __init__(self, depth: int, downsample_first: bool):
        super().__init__()
        if downsample_first:
            self.downsample = nn.Linear(4, 4)
        self.blocks = nn.Module()
        for j in range(depth):
            self.blocks.add_module(str(j), nn.Linear(4, 4))


@pytest.mark.parametrize('family', ['swin', 'swin_v2'])
def test_swin_depths_from_names_when_modules_cannot_say(family):
    backbone = nn.Module()
    backbone.stages = nn.Module()
    for i, depth in enumerate((1, 2)):
        backbone.stages.add_module(
            str(i), _Stage(depth, family == 'swin_v2' and i > 0))
    ids = ids_by_name(groups_of(ToyModel(backbone), decay_rate=0.9,
                                rules=family))
    assert ids['backbone.stages.1.blocks.1.weight'] == 3
    if family == 'swin_v2':  # the V2 downsample runs before its blocks
        assert ids['backbone.stages.1.downsample.weight'] == 2
