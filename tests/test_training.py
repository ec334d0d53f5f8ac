"""Training with mmengine's Runner: every group's lr follows
base lr x lr_scale x scheduler factor, and resume restores identical groups."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner

from conftest import ARCH_CHANNELS, ROOT, _register
from make_shapes_coco import make_dataset

DEMO = ROOT / 'configs' / \
    'mask-rcnn_convnext-t-p4-w7_fpn_layerdecay_shapes-demo-cpu.py'
BASE_LR, DECAY, NUM_LAYERS = 2e-4, 0.95, 5  # atto needs 5
START, WARMUP, MILESTONE, GAMMA = 0.25, 3, 5, 0.1


def factor(it: int) -> float:
    # mmengine's LinearLR reaches its end factor at iteration `end - 1`
    warm = START + (1 - START) * min(it, WARMUP - 1) / (WARMUP - 1)
    return warm * (GAMMA if it >= MILESTONE else 1.)


@HOOKS.register_module(force=True)
class _RecordHook(Hook):
    priority = 'LOW'  # after LayerDecayLrHook

    def __init__(self):
        self.iters, self.state_at_start = {}, None

    def before_train(self, runner):
        # deep copy: state_dict() shares the live tensors
        self.state_at_start = copy.deepcopy(
            runner.optim_wrapper.optimizer.state_dict())

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        hub = runner.message_hub
        self.iters[runner.iter] = dict(
            groups=[dict(g) for g in runner.optim_wrapper.optimizer.param_groups],
            hub={k: v.current() for k, v in hub.log_scalars.items()
                 if k.startswith('train/layer_')})


def make_cfg(tmp_path: Path, max_iters: int, work: str) -> Config:
    data = tmp_path / 'shapes'
    if not data.exists():
        make_dataset(str(data), num_images=4, size=128)
    cfg = Config.fromfile(str(DEMO))
    cfg.work_dir = str(tmp_path / work)
    cfg.model.backbone.update(arch='atto', drop_path_rate=0.)
    cfg.model.neck.in_channels = ARCH_CHANNELS['atto']
    cfg.optim_wrapper.paramwise_cfg.num_layers = NUM_LAYERS
    cfg.optim_wrapper.optimizer.lr = BASE_LR
    cfg.train_dataloader.dataset.data_root = str(data) + '/'
    cfg.train_dataloader.dataset.pipeline[2].scale = (128, 128)
    cfg.train_cfg.max_iters = max_iters
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=START, by_epoch=False, begin=0,
             end=WARMUP),
        dict(type='MultiStepLR', by_epoch=False, begin=0, end=8,
             milestones=[MILESTONE], gamma=GAMMA)
    ]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        by_epoch=False, interval=4)
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks = [dict(type='LayerDecayLrHook', layers='all'),
                        dict(type='_RecordHook')]
    cfg.randomness = dict(seed=0)
    return cfg


def run(cfg: Config) -> _RecordHook:
    _register()
    runner = Runner.from_cfg(cfg)
    runner.train()
    return next(h for h in runner.hooks if isinstance(h, _RecordHook))


def check_lrs(record: _RecordHook, iters) -> None:
    head = NUM_LAYERS + 1
    for it in iters:
        groups = record.iters[it]['groups']
        assert {int(g['group_name'].split('_')[1]) for g in groups} == \
            set(range(head + 1))
        for g in groups:
            layer_id = int(g['group_name'].split('_')[1])
            expected = BASE_LR * DECAY**(head - layer_id) * factor(it)
            assert g['lr'] == pytest.approx(expected, rel=1e-9), (it, g[
                'group_name'])
            assert g['lr'] == pytest.approx(
                BASE_LR * g['lr_scale'] * factor(it), rel=1e-9)
            hub = record.iters[it]['hub'][f'train/layer_{layer_id}_lr']
            assert hub == pytest.approx(expected, rel=1e-9)


def assert_state_restored(saved_ckpt: Path, record: _RecordHook) -> None:
    """The optimizer state at the start of a resumed run is the saved one,
    in identical groups."""
    saved = torch.load(saved_ckpt, map_location='cpu',
                       weights_only=False)['optimizer']
    loaded = record.state_at_start
    assert loaded['state'] and loaded['state'].keys() == saved['state'].keys()
    for k in saved['state']:
        assert torch.equal(loaded['state'][k]['exp_avg'],
                           saved['state'][k]['exp_avg'])

    def layout(state):
        return [(g['group_name'], g['param_names'], g['params'], g['lr_scale'],
                 g['weight_decay']) for g in state['param_groups']]

    assert layout(loaded) == layout(saved)


@pytest.fixture(scope='module')
def first(tmp_path_factory):
    """One uninterrupted run of 8 iterations under our constructor, with a
    checkpoint at iteration 4: the reference every resume below is compared
    with, and the checkpoint they resume."""
    tmp_path = tmp_path_factory.mktemp('training')
    record = run(make_cfg(tmp_path, 8, 'first'))
    ckpt = tmp_path / 'first' / 'iter_4.pth'
    assert ckpt.exists()
    return record, ckpt, tmp_path


def test_train_and_resume(first, tmp_path):
    first, ckpt, data_dir = first
    # during warm-up (0-1), after it (2-4) and after the milestone (5-7)
    check_lrs(first, range(8))

    cfg = make_cfg(data_dir, 8, 'resumed')
    cfg.resume, cfg.load_from = True, str(ckpt)
    resumed = run(cfg)
    assert sorted(resumed.iters) == [4, 5, 6, 7]
    check_lrs(resumed, range(4, 8))
    assert_state_restored(ckpt, resumed)
    # the run continues exactly as the uninterrupted one
    for it in range(4, 8):
        assert [g['lr'] for g in resumed.iters[it]['groups']] == \
            [g['lr'] for g in first.iters[it]['groups']]


MMDET_CONSTRUCTOR = 'LearningRateDecayOptimizerConstructor'
OURS = 'LayerDecayOptimWrapperConstructor'


def test_resume_ours_under_mmdets_constructor(first):
    first, ckpt, data_dir = first
    cfg = make_cfg(data_dir, 6, 'resumed_by_mmdet')
    cfg.optim_wrapper.constructor = MMDET_CONSTRUCTOR
    cfg.resume, cfg.load_from = True, str(ckpt)
    resumed = run(cfg)
    assert sorted(resumed.iters) == [4, 5]
    assert_state_restored(ckpt, resumed)
    check_lrs(resumed, range(4, 6))
    for it in (4, 5):
        assert [g['lr'] for g in resumed.iters[it]['groups']] == \
            [g['lr'] for g in first.iters[it]['groups']]


def test_resume_mmdets_under_ours(tmp_path):
    cfg = make_cfg(tmp_path, 2, 'first')
    cfg.optim_wrapper.constructor = MMDET_CONSTRUCTOR
    cfg.default_hooks.checkpoint.interval = 2
    run(cfg)
    ckpt = tmp_path / 'first' / 'iter_2.pth'
    cfg = make_cfg(tmp_path, 4, 'resumed')
    cfg.resume, cfg.load_from = True, str(ckpt)
    resumed = run(cfg)
    assert sorted(resumed.iters) == [2, 3]
    assert_state_restored(ckpt, resumed)
    check_lrs(resumed, range(2, 4))


def shapes_cfg(config: Path, tmp_path: Path, max_iters: int = 2) -> Config:
    """An mmdet config retargeted to the generated shapes data on CPU, with
    our constructor and an inferred num_layers."""
    data = tmp_path / 'shapes'
    make_dataset(str(data), num_images=4, size=128)
    cfg = Config.fromfile(str(config))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.custom_imports = dict(imports=['layerdecay_plugin'],
                              allow_failed_imports=False)
    cfg.model.backbone.init_cfg = None
    for head in ('bbox_head', 'mask_head'):
        if head in cfg.model.roi_head:
            cfg.model.roi_head[head].num_classes = 3
    with_mask = 'mask_head' in cfg.model.roi_head
    cfg.train_dataloader = dict(
        batch_size=2, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=True),
        dataset=dict(
            type='CocoDataset', data_root=str(data) + '/',
            metainfo=dict(classes=('square', 'circle', 'triangle')),
            ann_file='annotations/train.json', data_prefix=dict(img='images/'),
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True,
                     with_mask=with_mask),
                dict(type='Resize', scale=(128, 128), keep_ratio=True),
                dict(type='PackDetInputs')
            ]))
    for key in ('val', 'test'):
        cfg[f'{key}_dataloader'] = cfg[f'{key}_evaluator'] = None
        cfg[f'{key}_cfg'] = None
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.5,
                                by_epoch=False, begin=0, end=max_iters)]
    cfg.optim_wrapper = dict(
        type='OptimWrapper', constructor='LayerDecayOptimWrapperConstructor',
        paramwise_cfg=dict(decay_rate=0.9),
        optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=0.05))
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=max_iters)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(by_epoch=False)
    cfg.custom_hooks = [dict(type='_RecordHook')]
    cfg.randomness = dict(seed=0)
    return cfg


# Swin-T Mask R-CNN trains in tests/test_examples.py (the shipped shapes
# config, mmdet's Swin backbone), with the same checks of its ids.
@pytest.mark.parametrize('config,num_layers,last_block', [
    ('faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', 16,
     'backbone.layer4.2.conv3.weight'),
])
def test_train_other_backbones(tmp_path, config, num_layers, last_block):
    from conftest import MMDET_CONFIGS
    record = run(shapes_cfg(MMDET_CONFIGS / config, tmp_path))
    assert sorted(record.iters) == [0, 1]
    for it, factor_ in ((0, 0.5), (1, 1.)):
        groups = record.iters[it]['groups']
        ids = {int(g['group_name'].split('_')[1]) for g in groups}
        assert max(ids) == num_layers + 1  # inferred num_layers
        for g in groups:
            layer_id = int(g['group_name'].split('_')[1])
            assert g['lr'] == pytest.approx(
                BASE_LR * 0.9**(num_layers + 1 - layer_id) * factor_)
        last = next(g for g in groups if last_block in g['param_names'])
        assert last['group_name'] == f'layer_{num_layers}_decay'
    assert (tmp_path / 'work' / 'iter_2.pth').exists()
