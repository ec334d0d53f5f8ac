"""The example configs in configs/ train as shipped on the shapes data
(shrunk to 128 px, batch 1, 2 iterations) and pass the inspect CLI."""
import math

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import ROOT, _register
from layerdecay_plugin.cli import load_config, main
from make_shapes_coco import make_dataset

CONFIGS = ROOT / 'configs'
DEMO = CONFIGS / 'mask-rcnn_convnext-t-p4-w7_fpn_layerdecay_shapes-demo-cpu.py'
# mmpretrain's ConvNeXt-atto (the timm one infers its own num_layers)
ATTO = [CONFIGS / f'{name}_convnext-atto_fpn_layerdecay_shapes-{kind}-cpu.py'
        for name, kind in (('mask-rcnn', 'fsdp'), ('mask-rcnn', 'deepspeed'),
                           ('mask-rcnn', 'zero'), ('retinanet', 'zero3'))]
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
    # the last block is the last backbone layer (this run also stands for
    # mmdet's own Swin config, which this one only retargets to the data)
    last = next(g for g in groups if 'backbone.stages.3.blocks.1.attn.w_msa.'
                'qkv.weight' in g['param_names'])
    assert last['group_name'] == 'layer_12_decay'
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


def test_demo_records_every_layers_lr_at_every_iteration():
    """What tools/train.py's summary and picture are made of."""
    cfg = Config.fromfile(str(DEMO))
    assert cfg.custom_hooks == [dict(type='LayerDecayLrHook', layers='all')]
    assert cfg.default_hooks.logger.interval == 1


def test_atto_configs_set_the_num_layers_atto_needs(tmp_path):
    """5, not the 6 of ConvNeXt-T they inherit from the demo: no error (not
    too small) and no 'larger than needed' line (not too large); with 6,
    that line says what it costs."""
    from mmengine.logging import MMLogger
    for config in ATTO:
        paramwise = load_config(str(config)).optim_wrapper.paramwise_cfg
        assert (paramwise.decay_type, paramwise.num_layers) == \
            ('layer_wise', 5), config
    # the base of the other three; the CLI builds its model and groups
    fsdp = ATTO[0]
    log = tmp_path / 'log.txt'
    logger = MMLogger.get_instance('layerdecay-atto-test', log_file=str(log))
    assert main([str(fsdp)]) == 0
    assert main([str(fsdp), '--cfg-options',
                 'optim_wrapper.paramwise_cfg.num_layers=6']) == 0
    for handler in logger.handlers:
        handler.flush()
    text = log.read_text()
    assert text.count('is larger than') == 1
    assert ("paramwise_cfg.num_layers=6 is larger than this ConvNeXt backbone "
            "needs with decay_type='layer_wise' (5): layer ids [5] hold no "
            'parameter; of its ') in text
    assert 'get decay_rate**1 = 0.95 times the lr num_layers=5 gives them' \
        in text
