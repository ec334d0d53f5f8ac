"""The example configs in configs/ train as shipped on the shapes data
(shrunk to 128 px, batch 1, 2 iterations) and pass the inspect CLI."""
import math

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import ROOT, _register
from layerdecay_plugin.cli import main
from make_shapes_coco import make_dataset

CONFIGS = ROOT / 'configs'
SWIN = CONFIGS / 'mask-rcnn_swin-t-p4-w7_fpn_layerdecay_shapes-cpu.py'
DINO = CONFIGS / 'dino-4scale_r50_layerdecay_shapes-cpu.py'
MAX_ITERS = 2


def shrunk(config, tmp_path) -> Config:
    """The shipped config with only size, length and paths changed."""
    data = tmp_path / 'shapes'
    make_dataset(str(data), num_images=MAX_ITERS, size=128)
    cfg = Config.fromfile(str(config))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_dataloader.batch_size = 1
    cfg.train_dataloader.dataset.data_root = str(data) + '/'
    for step in cfg.train_dataloader.dataset.pipeline:
        if step.type == 'Resize':
            step.scale = (128, 128)
    cfg.train_cfg.max_iters = MAX_ITERS
    cfg.default_hooks.checkpoint.interval = MAX_ITERS
    cfg.randomness = dict(seed=0)
    return cfg


def train(cfg: Config) -> Runner:
    _register()
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert math.isfinite(runner.message_hub.get_scalar('train/loss').current())
    return runner


def layer_ids(runner: Runner):
    return [int(g['group_name'].split('_')[1])
            for g in runner.optim_wrapper.optimizer.param_groups]


def test_swin_mask_rcnn_trains(tmp_path):
    runner = train(shrunk(SWIN, tmp_path))
    groups = runner.optim_wrapper.optimizer.param_groups
    assert max(layer_ids(runner)) == 13  # Swin-T: num_layers 12 inferred
    for g, layer_id in zip(groups, layer_ids(runner)):
        assert g['initial_lr'] == pytest.approx(1e-4 * 0.9**(13 - layer_id))
    # the demo's checkpoint settings: one file, weights only
    ckpt = torch.load(tmp_path / 'work' / f'iter_{MAX_ITERS}.pth',
                      map_location='cpu', weights_only=False)
    assert 'state_dict' in ckpt and 'optimizer' not in ckpt


def test_dino_trains_with_its_custom_keys(tmp_path):
    cfg = shrunk(DINO, tmp_path)
    cfg.default_hooks.checkpoint = None  # tested with Swin; saves 190 MB
    # DINO picks num_queries (900) of its encoder's tokens: 128 px has 340
    cfg.model.num_queries = 100
    runner = train(cfg)
    groups = runner.optim_wrapper.optimizer.param_groups
    assert max(layer_ids(runner)) == 17  # ResNet-50: num_layers 16 inferred
    backbone = 0
    for g, layer_id in zip(groups, layer_ids(runner)):
        in_backbone = g['param_names'][0].startswith('backbone.')
        backbone += in_backbone
        # mmdet's custom_keys={'backbone': dict(lr_mult=0.1)} composes
        assert g['initial_lr'] == pytest.approx(
            1e-4 * (0.1 if in_backbone else 1.) * 0.9**(17 - layer_id))
        assert all(n.startswith('backbone.') == in_backbone
                   for n in g['param_names'])
    assert backbone and runner.optim_wrapper.clip_grad_kwargs


@pytest.mark.parametrize('config,head', [(SWIN, 13), (DINO, 17)],
                         ids=['swin', 'dino'])
def test_inspect_cli_accepts_the_example(config, head, capsys):
    assert main([str(config)]) == 0
    assert f'| layer_{head}_decay ' in capsys.readouterr().out
