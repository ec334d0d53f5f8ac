"""mmseg 1.2.2's layer-decay constructors against ours, both run live.

mmseg has two: ``LearningRateDecayOptimizerConstructor`` (ConvNeXt-named
backbones ``layer_wise`` and ``stage_wise``, BEiT- and MAE-named ones
``layer_wise``) and ``LayerDecayOptimizerConstructor`` (BEiT, the decay
rate spelled ``layer_decay_rate``). Here:

- the configs of mmseg's package that name them are listed, and one of
  each model (BEiT-B, MAE-B: 12 layers at a smaller width; ConvNeXt-T as
  shipped) is built on the CPU and given an optimizer by mmseg's
  constructor and, with only the constructor's name switched, by ours:
  every parameter's lr and weight decay are compared; the differences are
  exactly those of docs/openmmlab.md, and ``no_decay_names=[]`` gives
  mmseg's groups;
- the cases of mmseg's own unit test of the two constructors
  (``tests/test_engine/test_layer_decay_optimizer_constructor.py`` of the
  mmsegmentation repository, not in the wheel), rebuilt, run with ours and
  with mmseg's, live;
- every mmseg backbone class with rules passes the forward-order check of
  ``tests/test_forward_order.py`` and gets as many layers as it has blocks.

One module-scoped fixture builds each model once. mmpretrain's unit-test
cases are rebuilt in ``tests/test_peer_unit_tests.py``.
"""
import ast
import copy
import functools
import warnings
from pathlib import Path

import mmseg
import pytest
import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from conftest import assert_same_groups
from layerdecay_plugin import LayerDecayConfigError, parse_paramwise_cfg
from layerdecay_plugin.backbones.classes import BACKBONES
from layerdecay_plugin.backbones.depths import backbone_depths
from layerdecay_plugin.backbones.families import FAMILIES
from layerdecay_plugin.backbones.resolve import spec_for
from layerdecay_plugin.backbones.types import class_path
from test_forward_order import HRNET_EXTRA, assert_forward_order, \
    constructor_ids

MMSEG_CONFIGS = Path(mmseg.__file__).parent / '.mim' / 'configs'
OURS = 'LayerDecayPluginConstructor'
MMSEG_NAMES = ('LearningRateDecayOptimizerConstructor',
               'LayerDecayOptimizerConstructor')
#: One config per model mmseg fine-tunes with layer decay.
CONFIGS = {
    'beit': 'beit/beit-base_upernet_8xb2-160k_ade20k-640x640.py',
    'mae': 'mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py',
    'convnext': 'convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py',
}
# Smaller than shipped, to build in a fraction of a second: BEiT-B's and
# MAE-B's 12 layers, 12 heads and parameter names kept at width 48 (768
# shipped) and image size 64 (640/512: the size of the relative position
# tables), the heads' channels 48/64 (768/512); ConvNeXt-T's backbone as
# shipped.
_VIT_WIDTH = dict(
    backbone=dict(embed_dims=48, img_size=(64, 64)), neck=dict(embed_dim=48),
    decode_head=dict(in_channels=[48] * 4, channels=48),
    auxiliary_head=dict(in_channels=48, channels=48))
NARROW = dict(beit=_VIT_WIDTH, mae=_VIT_WIDTH, convnext=dict(
    decode_head=dict(channels=64), auxiliary_head=dict(channels=64)))
#: Parameters to which mmseg gives weight decay and we do not (tokens and
#: position tables, matched on the last name component).
NO_DECAY = ('cls_token', 'pos_embed', 'relative_position_bias_table')

BEIT = dict(img_size=(32, 32), patch_size=16, embed_dims=32, num_layers=3,
            num_heads=2, out_indices=(2, ))
BN = dict(norm_cfg=dict(type='BN'))
# mmseg class: (kwargs, input size, has stages, blocks a person counts)
BACKBONES_CASES = {
    'BEiT': (dict(BEIT, final_norm=True), 32, False, 3),
    'MAE': (dict(BEIT), 32, False, 3),
    'VisionTransformer': (dict(BEIT, pre_norm=True, final_norm=True), 32,
                          False, 3),
    'MixVisionTransformer': (dict(embed_dims=8, num_layers=[1, 2, 1, 1],
                                  num_heads=[1, 1, 1, 1]), 64, True, 5),
    'SwinTransformer': (dict(embed_dims=16, depths=(2, 2, 2, 2),
                             num_heads=(1, 1, 1, 1), window_size=2,
                             pretrain_img_size=64), 64, True, 8),
    'ResNet': (dict(depth=18), 64, True, 8),
    'ResNetV1c': (dict(depth=18), 64, True, 8),
    'MSCAN': (dict(embed_dims=[8, 16, 32, 64], depths=[1, 1, 2, 1], **BN),
              64, True, 5),
    'HRNet': (dict(extra=HRNET_EXTRA, **BN), 64, True, 6),
}


def _no_sync_bn(cfg):
    """SyncBN -> BN everywhere in a config dict (CPU, one process)."""
    if isinstance(cfg, dict):
        for key, value in cfg.items():
            if key == 'norm_cfg' and isinstance(value, dict) and \
                    value.get('type') == 'SyncBN':
                value['type'] = 'BN'
            else:
                _no_sync_bn(value)
    elif isinstance(cfg, list):
        for value in cfg:
            _no_sync_bn(value)


def _build(key):
    import mmpretrain.models  # noqa: F401  (mmpretrain.ConvNeXt)
    from mmseg.models import backbones
    from mmseg.registry import MODELS
    if key in BACKBONES_CASES:
        return getattr(backbones, key)(**BACKBONES_CASES[key][0])
    cfg = Config.fromfile(str(MMSEG_CONFIGS / CONFIGS[key]))
    cfg.merge_from_dict(dict(model=NARROW[key]))
    cfg.model.pretrained = None
    cfg.model.backbone.init_cfg = None
    _no_sync_bn(cfg.model)
    return MODELS.build(cfg.model), cfg.optim_wrapper


@pytest.fixture(scope='module')
def mmseg_built():
    """``key -> built``: a config's ``(segmentor, optim_wrapper cfg)`` or a
    small backbone of ``BACKBONES_CASES``, each built once."""
    import mmseg.engine.optimizers  # noqa: F401  (mmseg's constructors)
    import mmseg.models  # noqa: F401
    import layerdecay_plugin  # noqa: F401

    @functools.lru_cache(maxsize=None)
    def get(key):
        with DefaultScope.overwrite_default_scope('mmseg'):
            return _build(key)

    return get


def groups_of(model, optim_wrapper, **paramwise):
    """Param groups built as a config builds them, in mmseg's scope; on
    the CPU an ``AmpOptimWrapper`` becomes an ``OptimWrapper``."""
    cfg = copy.deepcopy(dict(optim_wrapper))
    cfg.pop('loss_scale', None)
    cfg['type'] = 'OptimWrapper'
    cfg['paramwise_cfg'] = dict(cfg.get('paramwise_cfg', {}), **paramwise)
    with DefaultScope.overwrite_default_scope('mmseg'), \
            warnings.catch_warnings():
        warnings.simplefilter('ignore')  # mmseg's deprecation warnings
        return build_optim_wrapper(model, cfg).optimizer.param_groups


def per_param(groups):
    return {n: (g['lr'], g['weight_decay'])
            for g in groups for n in g['param_names']}


def _literal(node):
    """A config value: literals and ``dict(...)`` calls."""
    if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'dict':
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v)
                for k, v in zip(node.keys, node.values)}
    return ast.literal_eval(node)


def _optim_wrapper(path):
    """The ``optim_wrapper`` a config file sets itself (read, not run:
    loading nine configs and their bases takes seconds)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and \
                getattr(node.targets[0], 'id', '') == 'optim_wrapper':
            return _literal(node.value)
    return {}


def test_mmseg_ships_these_layer_decay_configs():
    """Every config of the package naming mmseg's constructors: one of
    each model is compared below; all their paramwise_cfg are ours."""
    found = {}
    for path in sorted(MMSEG_CONFIGS.rglob('*.py')):
        if any(name in path.read_text() for name in MMSEG_NAMES):
            optim_wrapper = _optim_wrapper(path)
            assert optim_wrapper['constructor'] in MMSEG_NAMES
            found[str(path.relative_to(MMSEG_CONFIGS))] = optim_wrapper
    assert set(CONFIGS.values()) <= set(found)
    assert sorted({p.split('/')[0] for p in found}) == \
        ['beit', 'convnext', 'mae']
    assert len(found) == 9, sorted(found)
    for optim_wrapper in found.values():
        parse_paramwise_cfg(optim_wrapper['paramwise_cfg'])


@pytest.mark.parametrize('key,decay_type', [
    ('beit', None), ('mae', None), ('convnext', None),
    ('convnext', 'layer_wise')])
def test_shipped_config_with_our_constructor(mmseg_built, key, decay_type):
    """The config's optim_wrapper as shipped (mmseg's constructor) and with
    ``constructor`` switched to ours: every parameter gets mmseg's lr; its
    weight decay too except tokens and position tables (none in
    ConvNeXt), and ``no_decay_names=[]`` gives mmseg's exact groups."""
    model, optim_wrapper = mmseg_built(key)
    if decay_type:  # mmseg's other ConvNeXt branch, its num_layers kept
        optim_wrapper = dict(optim_wrapper, paramwise_cfg=dict(
            optim_wrapper.paramwise_cfg, decay_type=decay_type))
    ref = groups_of(model, optim_wrapper)
    switched = dict(optim_wrapper, constructor=OURS)
    theirs, ours = per_param(ref), per_param(groups_of(model, switched))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert sorted(ours) == sorted(theirs) == sorted(trainable)
    assert len(ours) > 200
    differ = {n for n in ours if ours[n] != theirs[n]}
    expected = {n for n, p in model.named_parameters()
                if n.rsplit('.', 1)[-1] in NO_DECAY and p.ndim > 1}
    assert differ == expected
    assert len(expected) == {'beit': 13, 'mae': 14, 'convnext': 0}[key]
    base_wd = optim_wrapper['optimizer']['weight_decay']
    for name in differ:
        assert ours[name] == (theirs[name][0], 0.0)
        assert theirs[name][1] == base_wd
    assert_same_groups(ref, groups_of(model, switched, no_decay_names=[]))
    # the log line naming the rules' source names the difference
    source = spec_for(model.backbone).source
    assert ("unlike mmseg's constructor" in source) == bool(expected)


def test_beit_final_norm_is_the_last_layer_not_the_head(mmseg_built):
    """mmseg's rule gives a final norm (``final_norm=True``, off in its
    configs) the head's lr; ours the last layer's, where it runs. Config
    rules give mmseg's choice back."""
    model = _segmentor(mmseg_built('BEiT')).module
    optim_wrapper = dict(
        type='OptimWrapper', constructor='LayerDecayOptimizerConstructor',
        optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
        paramwise_cfg=dict(num_layers=3, layer_decay_rate=0.9))
    ref = groups_of(model, optim_wrapper)
    switched = dict(optim_wrapper, constructor=OURS)
    theirs = per_param(ref)
    ours = per_param(groups_of(model, switched, no_decay_names=[]))
    assert {n for n in ours if ours[n] != theirs[n]} == \
        {'backbone.ln1.weight', 'backbone.ln1.bias'}
    assert ours['backbone.ln1.weight'][0] == \
        ours['backbone.layers.2.ln1.weight'][0] == 0.9 * theirs[
            'backbone.ln1.weight'][0]
    mmseg_rules = dict(layer_wise=[
        (r'^(cls_token|pos_embed|patch_embed)', 0),
        (r'^layers\.(\d+)\.', 1),
        (r'^ln1\.', 'head'),
    ])
    assert_same_groups(ref, groups_of(model, switched, no_decay_names=[],
                                      rules=mmseg_rules))


# mmseg's unit test of its constructors
# (tests/test_engine/test_layer_decay_optimizer_constructor.py in the
# mmsegmentation repository, not in the wheel), its cases rebuilt: toy
# backbones with the names, shapes, order and frozen flag of its toys, in
# a segmentor whose head is a grouped 1x1 conv, base lr 1, weight decay
# 0.05, decay_rate 2. Its expected groups, restated as (layer id, decays)
# in the order they are built: lr_scale = lr = 2 ** (num_layers + 1 - id),
# weight decay 0.05 or 0. mmseg's constructors run live on each case.
def _toy(class_name, **parts):
    """An instance of a fresh ``nn.Module`` class named ``class_name``
    (mmseg serves backbones by class name) holding ``parts`` in order."""
    module = type(class_name, (nn.Module, ), {})()
    for name, part in parts.items():
        setattr(module, name, part)
    return module


def _ones(frozen=False):
    return nn.Parameter(torch.ones(1), requires_grad=not frozen)


def toy_convnext():
    return _toy(
        'ToyConvNeXt',
        stages=nn.ModuleList(
            nn.Sequential(ConvModule(3, 4, kernel_size=1, bias=True))
            for _ in range(4)),
        norm0=nn.BatchNorm2d(2), cls_token=_ones(), mask_token=_ones(),
        pos_embed=_ones(), stem_norm=_ones(),
        **{f'downsample_norm{i}': nn.BatchNorm2d(2) for i in range(3)},
        lin=_ones(frozen=True),
        downsample_layers=nn.ModuleList(
            nn.Sequential(nn.Conv2d(3, 4, kernel_size=1)) for _ in range(4)))


def toy_vit(class_name):
    return _toy(class_name, cls_token=_ones(), patch_embed=_ones(),
                layers=nn.ModuleList(nn.Conv2d(3, 3, 1) for _ in range(3)))


def _segmentor(backbone):
    """The segmentor in a ``.module`` wrapper, as a data-parallel one."""
    wrapper = nn.Module()
    wrapper.module = _toy('ToySegmentor', backbone=backbone,
                          decode_head=nn.Conv2d(2, 2, 1, groups=2))
    return wrapper


_D, _N = True, False  # a group with / without weight decay
CONVNEXT_STAGE_WISE = [(0, _N), (7, _N), (1, _D), (1, _N), (2, _D), (2, _N),
                       (3, _D), (3, _N), (4, _D), (4, _N), (0, _D), (7, _D)]
CONVNEXT_LAYER_WISE = CONVNEXT_STAGE_WISE[:8] + [(6, _D), (6, _N), (0, _D),
                                                  (7, _D)]
VIT_LAYER_WISE = [(0, _N), (1, _D), (1, _N), (2, _D), (2, _N), (3, _D),
                  (3, _N), (4, _D), (4, _N)]


def check_groups(optim_wrapper, ids, num_layers):
    optimizer = optim_wrapper.optimizer
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults['lr'] == 1
    assert optimizer.defaults['weight_decay'] == 0.05
    assert [(g['weight_decay'], g['lr_scale'], g['lr'])
            for g in optimizer.param_groups] == [
                (0.05 if decays else 0.0, 2.0**(num_layers + 1 - i),
                 2.0**(num_layers + 1 - i)) for i, decays in ids]


def _build_with(model, constructor, paramwise_cfg):
    cfg = dict(type='OptimWrapper', constructor=constructor,
               optimizer=dict(type='AdamW', lr=1, betas=(0.9, 0.999),
                              weight_decay=0.05),
               paramwise_cfg=copy.deepcopy(paramwise_cfg))
    with DefaultScope.overwrite_default_scope('mmseg'), \
            warnings.catch_warnings():
        warnings.simplefilter('ignore')  # decay_rate > 1, deprecations
        return build_optim_wrapper(model, cfg)


def _both(backbone, paramwise_cfg, constructor, **ours):
    """mmseg's wrapper and ours (``ours``: our extra paramwise keys)."""
    model = _segmentor(backbone)
    return (_build_with(model, constructor, paramwise_cfg),
            _build_with(model, OURS, dict(paramwise_cfg, **ours)))


def test_mmsegs_unit_test_cases_with_ours(mmseg_built):
    """Its ConvNeXt toy is served by class name and layout, as mmseg
    serves it; its BEiT/MAE toys are not mmseg's classes (mmseg matches
    'BEiT'/'MAE' in the class name, we match classes: docs/openmmlab.md),
    so ours is given the family: ``rules='vit'``. Each: mmseg's expected
    groups, and ours identical to mmseg's run live (order, names, every
    parameter's lr and weight decay, parameter objects)."""
    mmseg_built('MAE')  # imports mmseg's modules
    lr_decay, beit = MMSEG_NAMES
    cases = [  # backbone, constructor, paramwise_cfg, ours, groups
        (toy_convnext(), lr_decay, dict(decay_type='stage_wise'), {},
         CONVNEXT_STAGE_WISE),
        (toy_convnext(), lr_decay, dict(decay_type='layer_wise'), {},
         CONVNEXT_LAYER_WISE),
        (toy_vit('ToyBEiT'), lr_decay, dict(decay_type='layer_wise'),
         dict(rules='vit'), VIT_LAYER_WISE),
        (toy_vit('ToyMAE'), lr_decay, dict(decay_type='layer_wise'),
         dict(rules='vit'), VIT_LAYER_WISE),
        (toy_vit('ToyBEiT'), beit, {}, dict(rules='vit'), VIT_LAYER_WISE),
    ]
    for backbone, constructor, cfg, extra, ids in cases:
        num_layers = 6 if ids[-1][0] == 7 else 3
        rate = 'layer_decay_rate' if constructor == beit else 'decay_rate'
        theirs, ours = _both(backbone,
                             dict(cfg, num_layers=num_layers, **{rate: 2}),
                             constructor, **extra)
        check_groups(theirs, ids, num_layers)
        check_groups(ours, ids, num_layers)
        assert_same_groups(theirs.optimizer.param_groups,
                           ours.optimizer.param_groups)
    # a backbone without rules (its empty ToyViT): mmseg raises a bare
    # NotImplementedError, ours (documented) an error naming the ways to
    # add them
    model = _segmentor(_toy('ToyViT'))
    for decay_type in ('layer_wise', 'stage_wise'):
        cfg = dict(decay_rate=2, decay_type=decay_type, num_layers=3)
        with pytest.raises(NotImplementedError):
            _build_with(model, lr_decay, cfg)
        with pytest.raises(LayerDecayConfigError, match="rules='auto'"):
            _build_with(model, OURS, cfg)


@pytest.mark.parametrize('case', sorted(BACKBONES_CASES))
def test_mmseg_backbone_follows_forward_order(mmseg_built, case):
    backbone = mmseg_built(case)
    _, size, has_stages, blocks = BACKBONES_CASES[case]
    spec = spec_for(backbone)
    assert spec.source.startswith('class mmseg.'), spec.source
    for decay_type in ['layer_wise'] + ['stage_wise'] * has_stages:
        ids, num_layers = constructor_ids(backbone, decay_type)
        depths = backbone_depths(backbone, spec)
        assert num_layers == spec.rules.min_num_layers(depths, decay_type)
        if decay_type == 'layer_wise':
            assert num_layers == blocks
        assert_forward_order(backbone, ids, num_layers, (1, 3, size, size))


def test_mscan_ids_on_names():
    """SegNeXt's MSCAN-T (blocks [3, 3, 5, 2], 13 layers, 4 stages): PVT's
    ids under flat names, (layer_wise, stage_wise); the head's: (14, 5)."""
    depths = [3, 3, 5, 2]
    expected = {
        'patch_embed1.proj.0.weight': (0, 0),
        'block1.0.attn.proj_1.weight': (1, 1),
        'block1.2.mlp.fc2.bias': (3, 1),
        'norm1.weight': (3, 1),
        'patch_embed2.proj.weight': (4, 2),
        'block2.2.layer_scale_1': (6, 2),
        'patch_embed3.norm.bias': (7, 3),
        'block3.4.norm2.weight': (11, 3),
        'norm3.bias': (11, 3),
        'block4.1.mlp.dwconv.weight': (13, 4),
        'norm4.weight': (13, 4),
        'extra_norm.weight': (14, 5),
        'block0.0.weight': (14, 5),
    }
    rules = FAMILIES['mscan'].rules
    assert [rules.min_num_layers(depths, t)
            for t in ('layer_wise', 'stage_wise')] == [13, 4]
    layer, stage = rules.ids['layer_wise'], rules.ids['stage_wise']
    assert {n: (layer(n, 13, depths), stage(n, 4, depths))
            for n in expected} == expected


def test_which_mmseg_backbones_have_rules():
    """Every mmseg class has rules by class (theirs or inherited), each
    checked above or in tests/test_mmseg_backbones.py, but the documented
    exceptions: TIMMBackbone gets the timm model's (checked there too) and
    VPD cannot be built without CompVis's ldm (docs/backbones.md)."""
    from mmseg.models import backbones
    from test_mmseg_backbones import CASES
    with_rules = {
        name for name in backbones.__all__
        if any(class_path(cls) in BACKBONES
               for cls in getattr(backbones, name).__mro__)
    }
    subclasses = {'ResNetV1d', 'ResNeXt', 'ResNeSt'}
    assert with_rules == set(backbones.__all__) - {'TIMMBackbone', 'VPD'}
    assert with_rules == set(BACKBONES_CASES) | subclasses | (
        set(CASES) - {'mmpretrain.PoolFormer'})


def test_inspect_a_shipped_config_with_ours(tmp_path, capsys):
    """``inspect`` on mmseg's MAE config with only the constructor switched
    (narrowed as above): mmseg's key ``layer_decay_rate`` reaches the
    table's title, and an ``AmpOptimWrapper`` with ``loss_scale`` (mmseg's
    ConvNeXt configs) is inspected on the CPU."""
    from layerdecay_plugin.cli import main
    config = tmp_path / 'mae_ours.py'
    config.write_text(
        f"_base_ = [{str(MMSEG_CONFIGS / CONFIGS['mae'])!r}]\n"
        "custom_imports = dict(imports=['layerdecay_plugin'], "
        "allow_failed_imports=False)\n"
        f"model = dict(pretrained=None, **{NARROW['mae']!r})\n"
        f"optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic', "
        f"constructor={OURS!r})\n")
    assert main(['inspect', str(config)]) == 0
    out = capsys.readouterr().out
    assert 'decay_rate=0.65, num_layers=12' in out
    assert 'layer_13_decay' in out
