"""Resume is exact or loud, on a real detector: mmdet's Mask R-CNN
ConvNeXt-atto (the demo config at 128 px) trained one iteration by
mmengine's ``Runner`` with our constructor; its checkpoint is then resumed
with layer-decay settings changed, as we wrote it and as mmdet's
``LearningRateDecayOptimizerConstructor`` writes it (our groups are mmdet's
key for key, see test_parity.py, and mmdet records no settings: the same
checkpoint without its ``layer_decay`` record). The unchanged resumes, bit
for bit and across both constructors, are in test_training.py.

The toys of the light tier (tests/light/test_light_resume.py) cover every
setting, ``resume_mismatch`` and DDP/FSDP/ZeroRedundancyOptimizer; this file
adds what needs the full stack: the real detector, mmdet's checkpoints and
DeepSpeed.
"""
import json
from pathlib import Path
from typing import Dict, List

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner

from conftest import ARCH_CHANNELS, ROOT, _register, torchrun
from layerdecay_plugin import LayerDecayConfigError
from layerdecay_plugin.resume import STATE_KEY
from make_shapes_coco import make_dataset

DEMO = ROOT / 'configs' / \
    'mask-rcnn_convnext-t-p4-w7_fpn_layerdecay_shapes-demo-cpu.py'
DECAY, NUM_LAYERS = 0.95, 5  # ConvNeXt-atto needs num_layers >= 5


@HOOKS.register_module(force=True)
class _ResumeIters(Hook):
    """The iterations that trained."""

    def __init__(self):
        self.iters: List[int] = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.iters.append(runner.iter)


def detector_cfg(work: Path, data: Path, **paramwise) -> Config:
    """The demo config on ConvNeXt-atto at 128 px, 1 iteration, one
    checkpoint with the optimizer at the end."""
    cfg = Config.fromfile(str(DEMO))
    cfg.work_dir = str(work)
    cfg.model.backbone.update(arch='atto', drop_path_rate=0.)
    cfg.model.neck.in_channels = ARCH_CHANNELS['atto']
    cfg.optim_wrapper.paramwise_cfg.update(
        dict(dict(num_layers=NUM_LAYERS), **paramwise))
    cfg.train_dataloader.dataset.data_root = str(data) + '/'
    cfg.train_dataloader.dataset.pipeline[2].scale = (128, 128)
    cfg.train_cfg.max_iters = 1
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.5,
                                by_epoch=False, begin=0, end=4)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=1, save_optimizer=True)
    cfg.custom_hooks = [dict(type='_ResumeIters')]
    cfg.randomness = dict(seed=0)
    return cfg


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('shapes')
    make_dataset(str(root), num_images=4, size=128)
    return root


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory, data) -> Dict[str, Path]:
    """Our iter_1.pth, and the same as mmdet's constructor writes it."""
    _register()
    work = tmp_path_factory.mktemp('resume')
    Runner.from_cfg(detector_cfg(work, data)).train()
    ours = work / 'iter_1.pth'
    checkpoint = torch.load(ours, map_location='cpu', weights_only=False)
    assert checkpoint['optimizer'].pop(STATE_KEY)['paramwise_cfg'] == dict(
        decay_rate=DECAY, decay_type='layer_wise', num_layers=NUM_LAYERS)
    mmdet = work / 'mmdet_iter_1.pth'
    torch.save(checkpoint, mmdet)
    return dict(ours=ours, mmdet=mmdet)


def resume_error(checkpoint: Path, work: Path, data: Path,
                 **paramwise) -> str:
    """Resume ``checkpoint`` to iteration 2 under our constructor with
    ``paramwise`` changed; the error, raised before any iteration."""
    cfg = detector_cfg(work, data, **paramwise)
    cfg.train_cfg.max_iters = 2
    cfg.resume, cfg.load_from = True, str(checkpoint)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(LayerDecayConfigError) as error:
        runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, _ResumeIters))
    assert hook.iters == []
    return str(error.value)


@pytest.mark.parametrize('checkpoint', ['ours', 'mmdet'])
def test_changed_decay_rate_is_named(checkpoints, data, tmp_path,
                                     checkpoint):
    message = resume_error(checkpoints[checkpoint], tmp_path, data,
                           decay_rate=0.5)
    # ours records its settings; mmdet's are read back from its groups
    setting = ('paramwise_cfg.decay_rate: 0.95 -> 0.5'
               if checkpoint == 'ours' else
               'decay_rate in effect (read from the groups): 0.95 -> 0.5')
    assert f'  - {setting}\n' in message
    # 0.95 ** 6 -> 0.5 ** 6
    assert '  - layer_0_decay, layer_0_no_decay: lr_scale 0.735 -> 0.0156' \
        in message
    assert "resume_mismatch='keep_checkpoint' (one warning" in message


def test_changed_num_layers_is_named(checkpoints, data, tmp_path):
    message = resume_error(checkpoints['ours'], tmp_path, data, num_layers=7)
    assert '  - paramwise_cfg.num_layers: 5 -> 7\n' in message
    # stage 3 and the head move up by 2 ids, their groups otherwise kept
    assert '  - 4 groups are renamed: layer_5_no_decay -> layer_7_no_decay, ' \
        'layer_5_decay -> layer_7_decay, layer_6_no_decay -> ' \
        'layer_8_no_decay, layer_6_decay -> layer_8_decay\n' in message
    assert 'move from' not in message
    # the same parameters in the same order: the state fits, so
    # resume_mismatch='keep_checkpoint' is offered
    assert "resume_mismatch='keep_checkpoint' (one warning" in message


def test_deepspeed_zero2_changed_groups_are_named(tmp_path):
    """DeepSpeed ZeRO-1/2 checks its flat buffers' layout before it loads
    the optimizer state into ours, so without tools/dist_compat.py's
    check_zero_resume a changed grouping stops with DeepSpeed's "parameter-
    alignment layout does not match"; with it, with our error. A changed
    decay_rate (same layout) reaches our optimizer's own check. ZeRO-3
    loads into our optimizer first (checked like any optimizer)."""
    out = tmp_path / 'found.json'
    torchrun(ROOT / 'tests' / 'light' / 'resume_worker.py',
             'deepspeed_zero2', tmp_path / 'w', out, 'decay_rate,num_layers')
    found = json.loads(out.read_text())['deepspeed_zero2']
    assert found['first']['step_at_start'] == 0
    assert '  - paramwise_cfg.decay_rate: 0.9 -> 0.5\n' in \
        found['decay_rate'], found['decay_rate']
    assert '  - paramwise_cfg.num_layers: 3 -> 5\n' in \
        found['num_layers'], found['num_layers']
    assert "'keep_checkpoint' cannot help" in found['num_layers']
