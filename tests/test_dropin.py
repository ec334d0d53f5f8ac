"""Drop-in for mmdet's ``LearningRateDecayOptimizerConstructor``: what it
serves (ConvNeXt-named backbones, every config mmdet ships with it) gets
identical param groups with only the constructor name switched."""
import ast
import logging
from pathlib import Path
from typing import Dict, List

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger

from conftest import (MMDET_CONFIGS, assert_same_groups, build_detector,
                      mmdet_groups, our_groups)
from layerdecay_plugin import (LayerDecayConfigError,
                               LayerDecayOptimWrapperConstructor)
from layerdecay_plugin.backbones.convnext_layout import \
    convnext_layout_problem
from layerdecay_plugin.backbones.depths import depths_from_names
from layerdecay_plugin.backbones.families import FAMILIES
from layerdecay_plugin.backbones.resolve import spec_for
from layerdecay_plugin.backbones.types import BlockNames
from layerdecay_plugin.rules import convnext_min_num_layers

MMDET_CONSTRUCTOR = 'LearningRateDecayOptimizerConstructor'


class LabConvNeXt(nn.Module):
    """A research-code ConvNeXt: mmpretrain's ``stages.i.j`` and
    ``downsample_layers.i`` names, but no ``depths`` attribute and not a
    subclass of mmpretrain's class; 1-D tokens, a loose stem norm, BN
    downsample norms and an out norm that mmdet's rule leaves at the head's
    id, a frozen parameter, and downsample layers registered after the
    stages (so after them in ``named_parameters``)."""

    def __init__(self, blocks=(1, 1, 1, 1), width=4):
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(*(nn.Conv2d(width, width, 1) for _ in range(n)))
            for n in blocks)
        self.norm0 = nn.GroupNorm(1, width)
        self.cls_token = nn.Parameter(torch.zeros(1))
        self.mask_token = nn.Parameter(torch.zeros(1))
        self.pos_embed = nn.Parameter(torch.zeros(1))
        self.stem_norm = nn.Parameter(torch.ones(width))
        for i in range(3):
            self.add_module(f'downsample_norm{i}', nn.BatchNorm2d(width))
        self.frozen_scale = nn.Parameter(torch.ones(2), requires_grad=False)
        self.downsample_layers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(3 if i == 0 else width, width, 1))
            for i in range(len(blocks)))


class Detector(nn.Module):

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Conv2d(2, 2, 1, groups=2)


class DataParallelLike(nn.Module):
    """A wrapper with ``.module``, which the constructors unwrap."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.module = model


# mmdet's test: lr=1, weight_decay=0.05, decay_rate=2, num_layers=6, so
# lr_scale = 2 ** (7 - id). (group name, lr_scale, weight decay) in order.
EXPECTED = {
    'layer_wise': [
        ('layer_0_no_decay', 128, 0.), ('layer_7_no_decay', 1, 0.),
        ('layer_1_decay', 64, .05), ('layer_1_no_decay', 64, 0.),
        ('layer_2_decay', 32, .05), ('layer_2_no_decay', 32, 0.),
        ('layer_3_decay', 16, .05), ('layer_3_no_decay', 16, 0.),
        ('layer_6_decay', 2, .05), ('layer_6_no_decay', 2, 0.),
        ('layer_0_decay', 128, .05), ('layer_7_decay', 1, .05)],
    'stage_wise': [
        ('layer_0_no_decay', 128, 0.), ('layer_7_no_decay', 1, 0.),
        ('layer_1_decay', 64, .05), ('layer_1_no_decay', 64, 0.),
        ('layer_2_decay', 32, .05), ('layer_2_no_decay', 32, 0.),
        ('layer_3_decay', 16, .05), ('layer_3_no_decay', 16, 0.),
        ('layer_4_decay', 8, .05), ('layer_4_no_decay', 8, 0.),
        ('layer_0_decay', 128, .05), ('layer_7_decay', 1, .05)],
}


def build_optimizer(cls, model, paramwise_cfg):
    wrapper_cfg = dict(type='OptimWrapper', optimizer=dict(
        type='AdamW', lr=1, betas=(0.9, 0.999), weight_decay=0.05))
    return cls(wrapper_cfg, paramwise_cfg)(model).optimizer


@pytest.mark.parametrize('decay_type', ['layer_wise', 'stage_wise'])
def test_mmdets_own_constructor_test_passes_with_ours(decay_type):
    """What mmdet's unit test of its constructor checks, with our class."""
    from mmdet.engine.optimizers import LearningRateDecayOptimizerConstructor
    model = DataParallelLike(Detector(LabConvNeXt()))
    assert not hasattr(model.module.backbone, 'depths')
    cfg = dict(decay_rate=2, decay_type=decay_type, num_layers=6)
    with pytest.warns(UserWarning, match='decay_rate=2 > 1'):
        optimizer = build_optimizer(LayerDecayOptimWrapperConstructor, model,
                                    cfg)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults['lr'] == 1
    assert optimizer.defaults['weight_decay'] == 0.05
    assert [(g['group_name'], g['lr_scale'], g['weight_decay'])
            for g in optimizer.param_groups] == EXPECTED[decay_type]
    assert all(g['lr'] == g['lr_scale'] for g in optimizer.param_groups)
    names = {n for g in optimizer.param_groups for n in g['param_names']}
    assert 'backbone.frozen_scale' not in names
    reference = build_optimizer(LearningRateDecayOptimizerConstructor, model,
                                cfg)
    assert_same_groups(reference.param_groups, optimizer.param_groups)


@pytest.mark.parametrize('decay_type', ['layer_wise', 'stage_wise'])
@pytest.mark.parametrize('blocks', [(2, 1, 7, 1), (1, 2, 4, 3)])
def test_blocks_per_stage_read_from_names(blocks, decay_type):
    """num_layers inferred from the names equals the smallest value that
    mmdet needs, and the groups are mmdet's with that value."""
    model = Detector(LabConvNeXt(blocks))
    needed = convnext_min_num_layers(blocks, decay_type)
    cfg = dict(decay_rate=0.8, decay_type=decay_type)
    assert_same_groups(mmdet_groups(model, dict(cfg, num_layers=needed)),
                       our_groups(model, cfg))


def test_convnext_rules_by_config_without_depths_attribute():
    """rules='convnext' serves a class of any name; blocks from names."""
    lab = type('LabBackbone', (LabConvNeXt, ), {})
    model = Detector(lab((2, 1, 7, 1)))
    with pytest.raises(LayerDecayConfigError, match='cannot map'):
        our_groups(model, dict(decay_rate=0.8))
    ours = our_groups(model, dict(decay_rate=0.8, rules='convnext'))
    reference = our_groups(Detector(LabConvNeXt((2, 1, 7, 1))),
                           dict(decay_rate=0.8))
    assert [(g['group_name'], g['param_names']) for g in ours] == \
        [(g['group_name'], g['param_names']) for g in reference]


class ConvNeXtWithoutTheLayout(nn.Module):

    def __init__(self, num_stages=4):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.blocks = nn.Sequential(nn.Conv2d(4, 4, 1))
        self.stages = nn.ModuleList(nn.Sequential(nn.Conv2d(4, 4, 1))
                                    for _ in range(num_stages))


def test_convnext_named_class_without_the_layout_is_an_error():
    model = Detector(ConvNeXtWithoutTheLayout())
    with pytest.raises(LayerDecayConfigError) as err:
        our_groups(model, dict(decay_rate=0.9))
    msg = str(err.value)
    for fragment in ('ConvNeXtWithoutTheLayout', 'downsample_layers.i.*',
                     'stages.i.j.*', 'no parameter named '
                     'downsample_layers.i.*', "'stem.weight'", 'rules=dict'):
        assert fragment in msg


def test_convnext_layout_problems():
    names = ['downsample_layers.0.0.weight', 'stages.0.0.gamma']
    assert convnext_layout_problem(names) == ''
    assert 'stages.i.j.*' in convnext_layout_problem(names[:1])
    odd = names + ['stages.4.0.gamma', 'stages.norm.weight']
    problem = convnext_layout_problem(odd)
    assert '2 parameter(s) outside stage indices 0-3' in problem
    assert "'stages.4.0.gamma'" in problem


def test_depths_from_names():
    convnext = FAMILIES['convnext'].block_names
    assert depths_from_names(
        ['stages.0.0.w', 'stages.0.2.w', 'stages.2.5.w', 'norm0.w'],
        convnext) == [3, 0, 6, 0]  # four stages, empty ones count 0
    resnet = FAMILIES['resnet'].block_names
    assert depths_from_names(['conv1.weight', 'layer1.0.conv1.weight',
                              'layer1.2.bn1.bias', 'layer3.1.conv.weight'],
                             resnet) == [3, 0, 2]
    assert depths_from_names(['blocks.0.w', 'blocks.11.w', 'norm.w'],
                             FAMILIES['vit_blocks'].block_names) == [12]
    assert depths_from_names(['stem.w'], BlockNames(r'x(?P<block>\d)')) == []


@pytest.fixture
def log_lines():
    """Messages the current MMLogger receives during the test."""
    lines: List[str] = []

    class Collect(logging.Handler):

        def emit(self, record):
            lines.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = Collect(level=logging.INFO)
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


class LayerDepthNet(nn.Module):

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])

    def get_layer_depth(self, name, prefix=''):
        if name.startswith('layers.'):
            return int(name.split('.')[1]) + 1, 4
        return 3, 4


@pytest.mark.parametrize('backbone,paramwise,source', [
    (LabConvNeXt(), {}, "class name + layout ('ConvNeXt' in LabConvNeXt"),
    (LayerDepthNet(), {}, 'LayerDepthNet.get_layer_depth'),
    (LabConvNeXt(), dict(rules='convnext'),
     "config (paramwise_cfg.rules='convnext')"),
    (LayerDepthNet(), dict(rules=dict(layer_wise=[(r'^layers\.(\d+)\.', 1)])),
     'config (paramwise_cfg.rules regexes)'),
], ids=['name+layout', 'get_layer_depth', 'config-family', 'config-regex'])
def test_log_says_how_rules_were_chosen(backbone, paramwise, source,
                                        log_lines):
    model = nn.Module()
    model.backbone = backbone
    model.head = nn.Linear(2, 2)
    our_groups(model, dict(decay_rate=0.9, **paramwise))
    chosen = [line for line in log_lines if 'chosen by' in line]
    assert len(chosen) == 1 and source in chosen[0], log_lines


def test_registered_class_source_names_the_class():
    from conftest import _register
    _register()
    from mmpretrain.models import ConvNeXt
    spec = spec_for(ConvNeXt(arch='atto'))
    assert spec.source == \
        'class mmpretrain.models.backbones.convnext.ConvNeXt'


# Every config of mmdet's package using its constructor ----------------------


def _bases(path: Path, text: str) -> List[Path]:
    """The files a config's ``_base_`` names, resolved."""
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_'
                for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return []
            values = [value] if isinstance(value, str) else list(value)
            return [(path.parent / v).resolve() for v in values]
    return []


def configs_using_mmdet_constructor() -> List[Path]:
    """Configs that name mmdet's constructor, and those inheriting one."""
    texts: Dict[Path, str] = {
        p.resolve(): p.read_text(encoding='utf-8')
        for p in MMDET_CONFIGS.rglob('*.py')
    }
    found = {p for p, text in texts.items() if MMDET_CONSTRUCTOR in text}
    while True:
        names = {p.name for p in found}
        more = {
            p for p, text in texts.items()
            if p not in found and any(n in text for n in names)
            and set(_bases(p, text)) & found
        }
        if not more:
            return sorted(found)
        found |= more


MMDET_CONSTRUCTOR_CONFIGS = configs_using_mmdet_constructor()


def test_scan_finds_mmdets_configs():
    names = {p.name for p in MMDET_CONSTRUCTOR_CONFIGS}
    assert len(names) >= 4
    assert {'rtmdet_l_convnext_b_4xb32-100e_coco.py',  # named in the file
            'cascade-mask-rcnn_convnext-s-p4-w7_fpn_4conv1fc-giou_amp-ms-'
            'crop-3x_coco.py'} <= names  # inherited


@pytest.mark.parametrize('config', MMDET_CONSTRUCTOR_CONFIGS,
                         ids=lambda p: p.stem)
def test_mmdet_config_as_it_is_gives_mmdets_groups(config):
    """Order, names, lrs, weight decays and parameter objects, with the
    config's own paramwise_cfg (RTMDet's norm_decay_mult=0,
    bias_decay_mult=0, bypass_duplicate=True included) and optimizer."""
    optim_wrapper = Config.fromfile(str(config)).optim_wrapper
    assert optim_wrapper.constructor == MMDET_CONSTRUCTOR
    paramwise = optim_wrapper.paramwise_cfg.to_dict()
    optimizer = optim_wrapper.optimizer.to_dict()
    model = build_detector(config)
    ours = our_groups(model, paramwise, optimizer)
    assert_same_groups(mmdet_groups(model, paramwise, optimizer), ours)
