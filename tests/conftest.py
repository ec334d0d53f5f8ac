"""Shared helpers: real mmdet detectors, toy ConvNeXt-named models, and the
reference mmdet constructor."""
import os
import sys
from pathlib import Path

# mmengine 0.10.7 resumes with torch.load's default weights_only=True on
# torch>=2.6, which rejects its own HistoryBuffer; see docs/resume.md.
os.environ.setdefault('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tools'))

import mmdet  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from mmengine.config import Config  # noqa: E402

from light.dist import torchrun as light_torchrun  # noqa: E402

MMDET_CONFIGS = Path(mmdet.__file__).parent / '.mim' / 'configs'
CONVNEXT_CONFIGS = sorted((MMDET_CONFIGS / 'convnext').glob('*.py'))
OPTIMIZER = dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)

ARCH_CHANNELS = {
    'atto': [40, 80, 160, 320],
    'femto': [48, 96, 192, 384],
    'pico': [64, 128, 256, 512],
    'nano': [80, 160, 320, 640],
    'tiny': [96, 192, 384, 768],
    'small': [96, 192, 384, 768],
    'base': [128, 256, 512, 1024],
    'large': [192, 384, 768, 1536],
    'xlarge': [256, 512, 1024, 2048],
    'huge': [352, 704, 1408, 2816],
}


def _register() -> None:
    import mmpretrain.models  # noqa: F401  (registers mmpretrain.ConvNeXt)
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import layerdecay_plugin  # noqa: F401


def torchrun(script: Path, *args: str, nproc: int = 2,
             timeout: int = 600) -> str:
    """:func:`light.dist.torchrun` with DeepSpeed on the CPU."""
    return light_torchrun(script, *args, nproc=nproc, timeout=timeout,
                          env=dict(DS_ACCELERATOR='cpu'))


def build_detector(config: Path, **backbone) -> nn.Module:
    """Build the detector of an mmdet config, backbone fields overridden."""
    _register()
    from mmdet.registry import MODELS
    cfg = Config.fromfile(str(config))
    cfg.model.backbone.update(init_cfg=None, **backbone)
    if 'arch' in backbone and isinstance(backbone['arch'], str):
        cfg.model.neck.in_channels = ARCH_CHANNELS[backbone['arch']]
    return MODELS.build(cfg.model)


def build_groups(constructor_cls, model, paramwise_cfg, optimizer=None):
    """Param groups built by a constructor class for a model."""
    wrapper = constructor_cls(
        dict(type='OptimWrapper', optimizer=dict(optimizer or OPTIMIZER)),
        dict(paramwise_cfg))(model)
    return wrapper.optimizer.param_groups


def mmdet_groups(model, paramwise_cfg, optimizer=None):
    from mmdet.engine.optimizers import LearningRateDecayOptimizerConstructor
    return build_groups(LearningRateDecayOptimizerConstructor, model,
                        paramwise_cfg, optimizer)


def our_groups(model, paramwise_cfg, optimizer=None):
    from layerdecay_plugin import LayerDecayOptimWrapperConstructor
    return build_groups(LayerDecayOptimWrapperConstructor, model,
                        paramwise_cfg, optimizer)


def assert_same_groups(ref, ours) -> None:
    """Groups identical: order, keys, values, and parameter objects."""
    assert [g['group_name'] for g in ours] == [g['group_name'] for g in ref]
    for r, o in zip(ref, ours):
        assert list(o) == list(r), r['group_name']
        for key in r:
            if key == 'params':
                assert len(o[key]) == len(r[key])
                assert all(a is b for a, b in zip(o[key], r[key]))
            else:
                assert o[key] == r[key], (r['group_name'], key)


def toy_convnext_cls():
    """A tiny ConvNeXt subclass with odd extras: tokens and a BN/GN norm."""
    from mmpretrain.models import ConvNeXt

    class ToyConvNeXt(ConvNeXt):

        def __init__(self, depths=(1, 1, 4, 1), tokens=True, **kwargs):
            super().__init__(
                arch=dict(depths=list(depths), channels=[8, 16, 32, 64]),
                **kwargs)
            if tokens:
                self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
                self.mask_token = nn.Parameter(torch.zeros(1, 1, 8))
                self.pos_embed = nn.Parameter(torch.zeros(1, 4, 8))
            self.scalar = nn.Parameter(torch.tensor(1.))  # 0-D: decays

    return ToyConvNeXt


class ToyDetector(nn.Module):
    """Backbone + neck + head with BN, GN and a shared module."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.neck = nn.Sequential(nn.Conv2d(64, 16, 1), nn.BatchNorm2d(16))
        self.head = nn.Sequential(nn.Conv2d(16, 8, 3), nn.GroupNorm(2, 8))
        self.shared = self.head[0]  # same parameters under two names


@pytest.fixture
def toy_detector():

    def make(**kwargs):
        _register()
        return ToyDetector(toy_convnext_cls()(**kwargs))

    return make
