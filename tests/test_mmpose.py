"""mmpose 1.3's ViTPose layer-decay constructor against ours, both run live.

mmpose's constructor (``mmpose/engine/optim_wrappers/
layer_decay_optim_wrapper.py``, registered in mmengine's root registry as
``LayerDecayOptimWrapperConstructor``, the plugin's class name: ours uses
its own, ``LayerDecayPluginConstructor``) reads ``num_layers`` and
``layer_decay_rate``: tokens and ``patch_embed`` 0, ``backbone.layers.i``
``i + 1``, anything else (the final norm included) the head's; weight
decay 0 for 1-D parameters, biases and ``pos_embed``; ``custom_keys``
ignored. Here, for each of the eight ``td-hm_ViTPose-*`` configs:

- the backbone is built from the config (``mmpretrain.VisionTransformer``
  at width ``4 * num_heads`` and 32x16 px, its layers, heads and
  parameter names kept) next to a stand-in for mmpose's ``HeatmapHead``
  (its parameter names: ``deconv_layers.*``, ``final_layer``), because
  ``mmpose.models`` needs mmpose's dependencies (``xtcocotools``), which
  are not installed;
- mmpose's constructor runs on the config's ``optim_wrapper`` as shipped;
  ours with the constructor switched and the config's ``decay_multi``
  typo fixed (``decay_mult``): every parameter gets mmpose's lr and
  weight decay except the final norm ``ln1`` (the last layer's lr, not
  the head's);
- the typo as shipped is an error with ours, naming ``decay_mult``.
"""
import copy
import functools
import warnings
from pathlib import Path

import mmpose
import pytest
import torch.nn as nn
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from layerdecay_plugin import LayerDecayConfigError
from layerdecay_plugin.backbones.resolve import spec_for

CONFIGS_DIR = (Path(mmpose.__file__).parent / '.mim' / 'configs' /
               'body_2d_keypoint' / 'topdown_heatmap' / 'coco')
CONFIGS = sorted(p.name for p in CONFIGS_DIR.glob('td-hm_ViTPose-*.py'))
OURS = 'LayerDecayPluginConstructor'
#: mmpose's ids as config rules: the final norm at the head's lr.
MMPOSE_RULES = dict(layer_wise=[
    (r'^(cls_token|mask_token|pos_embed|patch_embed)', 0),
    (r'^layers\.(\d+)\.', 1),
    (r'.*', 'head'),
])


class StandInHead(nn.Module):
    """mmpose's ``HeatmapHead`` parameters: deconv (no bias), BN, ReLU per
    ``deconv_out_channels``, then ``final_layer``."""

    def __init__(self, in_channels, out_channels, deconv_out_channels=(),
                 final_layer=None, **_):
        super().__init__()
        layers = []
        for channels in deconv_out_channels or ():
            layers += [nn.ConvTranspose2d(in_channels, 8, 4, bias=False),
                       nn.BatchNorm2d(8), nn.ReLU()]
            in_channels = 8
        if layers:
            self.deconv_layers = nn.Sequential(*layers)
        kernel = (final_layer or {}).get('kernel_size', 1)
        self.final_layer = nn.Conv2d(in_channels, out_channels, kernel)


class StandInPoseEstimator(nn.Module):

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone = backbone
        self.head = head


def _build(name):
    import mmpretrain.models  # noqa: F401
    from mmpretrain.models import VisionTransformer
    cfg = Config.fromfile(str(CONFIGS_DIR / name))  # imports mmpose's class
    backbone = dict(cfg.model.backbone)
    assert backbone.pop('type') == 'mmpretrain.VisionTransformer'
    arch = backbone['arch']
    arch = dict(VisionTransformer.arch_zoo[arch] if isinstance(arch, str)
                else arch)
    backbone.update(
        arch=dict(arch, embed_dims=4 * arch['num_heads'],
                  feedforward_channels=8 * arch['num_heads']),
        img_size=(32, 16), init_cfg=None)
    head = dict(cfg.model.head, in_channels=4 * arch['num_heads'])
    model = StandInPoseEstimator(VisionTransformer(**backbone),
                                 StandInHead(**head))
    return model, cfg.optim_wrapper


@pytest.fixture(scope='module', autouse=True)
def mmposes_constructor_registered():
    """Importing mmpose's module takes the plugin's class name in
    mmengine's root registry for the rest of the process (what a user of
    both gets, and what these tests compare against); the name is given
    back after this module, so that the test modules after it see the
    plugin there as a user without mmpose does."""
    from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as registry

    from layerdecay_plugin.registry import SHARED_NAME
    before = registry.module_dict.get(SHARED_NAME)
    import mmpose.engine.optim_wrappers.layer_decay_optim_wrapper  # noqa
    yield
    if before is None:
        registry.module_dict.pop(SHARED_NAME, None)
    else:
        registry.module_dict[SHARED_NAME] = before


@pytest.fixture(scope='module')
def mmpose_built():
    """``config name -> (model, optim_wrapper cfg)``, each built once."""
    import layerdecay_plugin  # noqa: F401
    return functools.lru_cache(maxsize=None)(_build)


def groups_of(model, optim_wrapper, constructor=None, **paramwise):
    cfg = copy.deepcopy(dict(optim_wrapper))
    cfg['constructor'] = constructor or cfg['constructor']
    cfg['paramwise_cfg'] = dict(cfg['paramwise_cfg'], **paramwise)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return build_optim_wrapper(model, cfg).optimizer.param_groups


def per_param(groups):
    return {n: (float(f"{g['lr']:.12g}"), g['weight_decay'])
            for g in groups for n in g['param_names']}


def fixed(optim_wrapper):
    """The config's optim_wrapper with ``decay_multi`` spelt
    ``decay_mult``."""
    paramwise = copy.deepcopy(dict(optim_wrapper['paramwise_cfg']))
    paramwise['custom_keys'] = {
        key: {('decay_mult' if k == 'decay_multi' else k): v
              for k, v in entry.items()}
        for key, entry in paramwise['custom_keys'].items()}
    return dict(optim_wrapper, paramwise_cfg=paramwise)


def test_the_vitpose_configs():
    assert len(CONFIGS) == 8
    assert {c.split('_')[1] for c in CONFIGS} == {
        f'ViTPose-{size}{simple}' for size in ('small', 'base', 'large',
                                               'huge')
        for simple in ('', '-simple')}


@pytest.mark.parametrize('name', CONFIGS)
def test_shipped_config_with_our_constructor(mmpose_built, name, capsys):
    """mmpose's constructor, as the config names it, against ours: the
    same lr and weight decay for every parameter but the final norm's lr;
    ``MMPOSE_RULES`` give that back too."""
    from mmpose.engine.optim_wrappers.layer_decay_optim_wrapper import \
        LayerDecayOptimWrapperConstructor as MMPose
    from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
    model, optim_wrapper = mmpose_built(name)
    assert optim_wrapper['constructor'] == 'LayerDecayOptimWrapperConstructor'
    assert issubclass(OPTIM_WRAPPER_CONSTRUCTORS.get(
        optim_wrapper['constructor']), MMPose)
    theirs = per_param(groups_of(model, optim_wrapper))
    capsys.readouterr()  # mmpose's constructor prints its paramwise_cfg
    switched = fixed(optim_wrapper)
    ours = per_param(groups_of(model, switched, OURS))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert sorted(ours) == sorted(theirs) == sorted(trainable)
    num_layers = optim_wrapper['paramwise_cfg']['num_layers']
    assert len(ours) > 12 * num_layers
    assert {n for n in ours if ours[n] != theirs[n]} == {
        'backbone.ln1.weight', 'backbone.ln1.bias'}
    rate = optim_wrapper['paramwise_cfg']['layer_decay_rate']
    assert ours['backbone.ln1.weight'] == (rate * theirs[
        'backbone.ln1.weight'][0], 0.0)
    assert per_param(groups_of(model, switched, OURS,
                               rules=MMPOSE_RULES)) == theirs
    # the log line naming the rules' source names the difference
    assert "unlike mmpretrain's and mmpose's constructors" in spec_for(
        model.backbone).source


def test_custom_keys_are_honoured(mmpose_built, capsys):
    """mmpose ignores ``custom_keys``; ours applies them as mmengine does:
    an entry with ``lr_mult`` changes the lr of what it matches."""
    model, optim_wrapper = mmpose_built(CONFIGS[0])
    cfg = fixed(optim_wrapper)
    cfg['paramwise_cfg']['custom_keys']['final_layer.weight'] = dict(
        lr_mult=0.1, decay_mult=1.0)
    theirs = per_param(groups_of(model, cfg))
    capsys.readouterr()
    ours = per_param(groups_of(model, cfg, OURS, rules=MMPOSE_RULES))
    assert {n for n in ours if ours[n] != theirs[n]} == {
        'head.final_layer.weight'}
    assert ours['head.final_layer.weight'] == (
        0.1 * theirs['head.final_layer.weight'][0],
        theirs['head.final_layer.weight'][1])


def test_the_shipped_typo_is_refused(mmpose_built):
    """``decay_multi`` (all eight configs) is copied into the param groups
    and read by nothing in mmengine; ours refuses it, naming the fix."""
    model, optim_wrapper = mmpose_built(CONFIGS[0])
    assert optim_wrapper['paramwise_cfg']['custom_keys']['bias'] == dict(
        decay_multi=0.0)
    with pytest.raises(LayerDecayConfigError, match=r"decay_multi.*"
                       r"[Dd]id you mean 'decay_mult'"):
        groups_of(model, optim_wrapper, OURS)
