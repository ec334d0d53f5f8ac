"""mmpretrain 1.2's layer-decay constructor against ours, both run live.

mmpretrain's ``LearningRateDecayOptimWrapperConstructor``
(``mmpretrain/engine/optimizers/layer_decay_optim_wrapper_constructor.py``)
reads ``layer_decay_rate``, mmengine's ``bias_decay_mult`` /
``norm_decay_mult`` / ``flat_decay_mult`` and ``custom_keys`` (decay_mult
only), and takes each parameter's depth from the model's
``get_layer_depth``. Here:

- the configs of mmpretrain's package that name it are listed, and every
  ``paramwise_cfg`` they set is one ours parses;
- the models of six of them are built on the CPU (ViTs at width 48, their
  layers, heads and parameter names kept; ConvNeXt-V2-T, MixMIM-B and
  Swin-B at small channel widths, their depths kept) and given an
  optimizer by mmpretrain's constructor and, with only the constructor's
  name switched, by ours: every parameter's lr and weight decay are
  compared; the differences are exactly those of docs/openmmlab.md, and
  the keys it names give mmpretrain's values back;
- the three ``*_decay_mult`` keys mean the same to both, and ``lr_mult``
  in ``custom_keys`` (ignored by mmpretrain) is honoured by ours.

One module-scoped fixture builds each model once.
"""
import ast
import copy
import functools
import warnings
from pathlib import Path

import mmpretrain
import pytest
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from layerdecay_plugin import parse_paramwise_cfg
from layerdecay_plugin.backbones.resolve import spec_for

CONFIGS_DIR = Path(mmpretrain.__file__).parent / '.mim' / 'configs'
OURS = 'LayerDecayPluginConstructor'
THEIRS = 'LearningRateDecayOptimWrapperConstructor'
_VIT = dict(embed_dims=48, num_layers=12, num_heads=12,
            feedforward_channels=96)
_HEAD = dict(in_channels=48, num_classes=10)
_MAE = 'mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py'
_SWIN_B = dict(embed_dims=16, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32])
#: key -> (config of the model, narrowed fields per model part, config of
#: the optim_wrapper when another). No config of the package fine-tunes
#: EVA-02 with layer decay: its model gets MAE ViT-B's optim_wrapper.
CONFIGS = {
    'mae': (_MAE, dict(backbone=dict(arch=_VIT, img_size=32), head=_HEAD),
            None),
    'beitv2': ('beitv2/benchmarks/beit-base-p16_8xb128-coslr-100e_in1k.py',
               dict(backbone=dict(arch=_VIT, img_size=32), head=_HEAD), None),
    'eva02': ('eva02/eva02-base-p14_in1k.py',
              dict(backbone=dict(arch=dict(_VIT, feedforward_channels=64),
                                 img_size=28), head=_HEAD), _MAE),
    'convnext_v2': ('spark/benchmarks/convnextv2-tiny_8xb256-coslr-300e_in1k.py',
                    dict(backbone=dict(arch=dict(depths=[3, 3, 9, 3],
                                                 channels=[8, 16, 32, 64])),
                         head=dict(in_channels=64, num_classes=10)), None),
    'mixmim': ('mixmim/benchmarks/mixmim-base_8xb128-coslr-100e_in1k.py',
               dict(backbone=dict(arch=_SWIN_B),
                    head=dict(in_channels=128, num_classes=10)), None),
    'swin': ('simmim/benchmarks/swin-base-w6_8xb256-coslr-100e_in1k-192px.py',
             dict(backbone=dict(arch=_SWIN_B),
                  head=dict(in_channels=128, num_classes=10)), None),
}
#: key -> (parameters whose lr differs, whose weight decay differs), as
#: name predicates. A ViT's final norm (ln2 under out_type='avg_featmap')
#: runs with the last layer in ours, at the head's lr in mmpretrain; a
#: relative position table, and a 1-D parameter no key of the config
#: names (MixMIM's `norm` layers: its config names `.ln` and `.bias`),
#: get no weight decay in ours, the optimizer's in mmpretrain.
_FINAL_NORM = lambda n, ndim: n.startswith('backbone.ln2.')  # noqa: E731
_TABLE = lambda n, ndim: n.endswith('relative_position_bias_table')  # noqa
_NONE = lambda n, ndim: False  # noqa: E731
DIFFERENCES = {
    'mae': (_FINAL_NORM, _NONE),
    'beitv2': (_NONE, _TABLE),
    'eva02': (_FINAL_NORM, _NONE),
    'convnext_v2': (_NONE, _NONE),
    'mixmim': (_NONE, lambda n, ndim: _TABLE(n, ndim) or
               n.endswith('norm.weight')),
    'swin': (_NONE, _NONE),
}
#: mmpretrain's ViT.get_layer_depth as config rules: tokens and patch
#: embedding 0, layers.i i + 1, anything else (final and pre norms) the
#: head's.
VIT_AS_MMPRETRAIN = dict(layer_wise=[
    (r'^(cls_token|pos_embed|patch_embed)', 0),
    (r'^layers\.(\d+)\.', 1),
    (r'.*', 'head'),
])


def build_classifier(path, narrow, optim_from=None):
    """A shipped config's classifier, narrowed (``part -> fields``), built
    in mmpretrain's scope without init; and the optim_wrapper of that
    config (of ``optim_from`` where given)."""
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(str(CONFIGS_DIR / path))
    for part, fields in narrow.items():
        cfg.model[part].update(copy.deepcopy(fields))
    cfg.model.backbone.init_cfg = None
    cfg.model.pop('init_cfg', None)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    if optim_from:
        cfg = Config.fromfile(str(CONFIGS_DIR / optim_from))
    return model, cfg.optim_wrapper


@pytest.fixture(scope='module')
def mmpretrain_built():
    """``key -> (classifier, optim_wrapper cfg)``, each built once."""
    import mmpretrain.engine  # noqa: F401  (mmpretrain's constructor)
    import mmpretrain.models  # noqa: F401
    import layerdecay_plugin  # noqa: F401
    return functools.lru_cache(maxsize=None)(
        lambda key: build_classifier(*CONFIGS[key]))


def groups_of(model, optim_wrapper, constructor=None, **paramwise):
    """Param groups as a config builds them, in mmpretrain's scope; on the
    CPU an ``AmpOptimWrapper`` becomes an ``OptimWrapper``."""
    cfg = copy.deepcopy(dict(optim_wrapper))
    cfg.pop('loss_scale', None)
    cfg['type'] = 'OptimWrapper'
    cfg['constructor'] = constructor or cfg['constructor']
    cfg['paramwise_cfg'] = dict(cfg.get('paramwise_cfg', {}), **paramwise)
    with DefaultScope.overwrite_default_scope('mmpretrain'), \
            warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return build_optim_wrapper(model, cfg).optimizer.param_groups


def per_param(groups):
    """``name -> (lr, weight decay)``; mmpretrain makes one group per
    parameter (``param_name``), ours one per layer (``param_names``); lrs
    to 12 digits (they are computed in different orders)."""
    return {n: (float(f"{g['lr']:.12g}"), g['weight_decay'])
            for g in groups for n in g.get('param_names', [g.get(
                'param_name')])}


def _own_optim_wrapper(path):
    """The ``optim_wrapper`` a config file sets itself (its expression
    evaluated alone, not the config run: no bases)."""
    text = path.read_text()
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and \
                getattr(node.targets[0], 'id', '') == 'optim_wrapper':
            return eval(ast.get_source_segment(text, node.value),
                        {'__builtins__': {}, 'dict': dict})
    return {}


def test_mmpretrain_ships_these_layer_decay_configs():
    """Every config of the package naming mmpretrain's constructor: their
    ``paramwise_cfg`` are all ours (``layer_decay_rate`` read as
    ``decay_rate``); one of each model kind is compared below."""
    found = {}
    for path in sorted(CONFIGS_DIR.rglob('*.py')):
        if THEIRS in path.read_text():
            optim_wrapper = _own_optim_wrapper(path)
            assert optim_wrapper['constructor'] == THEIRS
            found[str(path.relative_to(CONFIGS_DIR))] = optim_wrapper
    assert len(found) == 17, sorted(found)
    assert {CONFIGS[k][2] or CONFIGS[k][0] for k in CONFIGS} <= set(found)
    for optim_wrapper in found.values():
        paramwise = dict(optim_wrapper['paramwise_cfg'])
        paramwise.pop('_delete_', None)
        parse_paramwise_cfg(paramwise)


@pytest.mark.parametrize('key', sorted(CONFIGS))
def test_shipped_config_with_our_constructor(mmpretrain_built, key):
    """The config's optim_wrapper with mmpretrain's constructor and with
    only ``constructor`` switched to ours: every parameter gets
    mmpretrain's lr and weight decay but for the differences above, and
    the keys of docs/openmmlab.md give those back."""
    model, optim_wrapper = mmpretrain_built(key)
    theirs = per_param(groups_of(model, optim_wrapper))
    ours = per_param(groups_of(model, optim_wrapper, OURS))
    ndim = {n: p.ndim for n, p in model.named_parameters()}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert sorted(ours) == sorted(theirs) == sorted(trainable)
    assert len(ours) > 150
    lr_differs, wd_differs = DIFFERENCES[key]
    rate = optim_wrapper['paramwise_cfg']['layer_decay_rate']
    base_wd = optim_wrapper['optimizer']['weight_decay']
    expected = {n for n in ours if lr_differs(n, ndim[n])
                or wd_differs(n, ndim[n])}
    assert {n for n in ours if ours[n] != theirs[n]} == expected
    assert len(expected) == dict(mae=2, eva02=2, beitv2=12, mixmim=29).get(
        key, 0)
    # the log line naming the rules' source names the difference
    source = spec_for(model.backbone).source
    assert ("unlike mmpretrain's" in source) == bool(expected), source
    for name in expected:
        (our_lr, our_wd), (their_lr, their_wd) = ours[name], theirs[name]
        if lr_differs(name, ndim[name]):  # the last layer's, not the head's
            assert our_lr == pytest.approx(rate * their_lr)
        if wd_differs(name, ndim[name]):
            assert (our_wd, their_wd) == (0.0, base_wd)
    # mmpretrain's choices back: its ViT ids as config rules, weight decay
    # where no key of the config gives 0
    paramwise = optim_wrapper['paramwise_cfg']
    restore = dict(no_decay_names=[]) if expected else {}
    if any(wd_differs(n, ndim[n]) and ndim[n] == 1 for n in ours):
        restore.update({k: 1.0 for k in ('bias_decay_mult', 'flat_decay_mult')
                        if k not in paramwise})
    if any(lr_differs(n, ndim[n]) for n in ours):
        restore['rules'] = VIT_AS_MMPRETRAIN
    assert per_param(groups_of(model, optim_wrapper, OURS,
                               **restore)) == theirs


@pytest.mark.parametrize('key', ['mae', 'convnext_v2', 'mixmim'])
def test_decay_mult_keys_mean_the_same(mmpretrain_built, key):
    """``bias_decay_mult``, ``norm_decay_mult`` and ``flat_decay_mult`` are
    mmengine's keys: given different values, and no other key, they pick
    the same parameters in both constructors (``no_decay_names=[]`` in
    ours, as mmpretrain excludes no names)."""
    model, optim_wrapper = mmpretrain_built(key)
    mults = dict(bias_decay_mult=0.5, norm_decay_mult=0.25,
                 flat_decay_mult=0.75)
    cfg = dict(optim_wrapper, paramwise_cfg=dict(
        mults, layer_decay_rate=optim_wrapper['paramwise_cfg'][
            'layer_decay_rate']))
    theirs = per_param(groups_of(model, cfg))
    restore = dict(no_decay_names=[])
    if key == 'mae':
        restore['rules'] = VIT_AS_MMPRETRAIN
    assert per_param(groups_of(model, cfg, OURS, **restore)) == theirs
    base_wd = optim_wrapper['optimizer']['weight_decay']
    # each key picks some parameters (ConvNeXt-V2's GRN has the only 1-D
    # parameters that are neither a norm's nor a bias)
    assert {round(wd / base_wd, 9) for _, wd in theirs.values()} == \
        {1, 0.5, 0.25} | ({0.75} if key == 'convnext_v2' else set())


def test_lr_mult_in_custom_keys_is_honoured(mmpretrain_built):
    """mmpretrain's constructor ignores ``lr_mult`` in ``custom_keys``
    (its docstring says so); ours applies it, as mmengine does."""
    model, optim_wrapper = mmpretrain_built('convnext_v2')
    cfg = dict(optim_wrapper, paramwise_cfg=dict(
        optim_wrapper['paramwise_cfg'],
        custom_keys={'head.': dict(lr_mult=10.0)}))
    theirs = per_param(groups_of(model, cfg))
    ours = per_param(groups_of(model, cfg, OURS))
    head = [n for n in ours if n.startswith('head.')]
    assert head and all(ours[n][0] == pytest.approx(
        10 * theirs[n][0]) for n in head)
    assert {n for n in ours if ours[n] != theirs[n]} == set(head)
