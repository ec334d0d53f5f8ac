"""Two-process training on CPU with torchrun (gloo, see tools/train.py):
both ranks build identical groups, only rank 0 prints the table."""
import json

from conftest import ROOT, torchrun
from make_shapes_coco import make_dataset

DEMO = ROOT / 'configs' / \
    'mask-rcnn_convnext-t-p4-w7_fpn_layerdecay_shapes-demo-cpu.py'

CONFIG = """
_base_ = [{demo!r}]
custom_imports = dict(
    imports=['mmpretrain.models', 'layerdecay_plugin', 'dist_helpers'],
    allow_failed_imports=False)
model = dict(
    backbone=dict(arch='atto', drop_path_rate=0.),
    neck=dict(in_channels=[40, 80, 160, 320]))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=5))
train_dataloader = dict(
    batch_size=1,
    dataset=dict(
        data_root={data!r},
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(type='Resize', scale=(128, 128), keep_ratio=True),
            dict(type='PackDetInputs')
        ]))
train_cfg = dict(max_iters=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=2)
]
default_hooks = dict(checkpoint=dict(interval=2))
custom_hooks = [dict(type='DumpGroupsHook')]
"""


def test_torchrun_two_processes_on_cpu(tmp_path):
    data = tmp_path / 'shapes'
    make_dataset(str(data), num_images=4, size=128)
    config = tmp_path / 'dist_cfg.py'
    config.write_text(CONFIG.format(demo=str(DEMO), data=str(data) + '/'))
    work = tmp_path / 'work'
    output = torchrun(ROOT / 'tools' / 'train.py', config, '--work-dir', work)
    assert 'Distributed training: True' in output
    assert 'Iter(train) [2/2]' in output
    rank0, rank1 = (json.loads((work / f'groups_rank{r}.json').read_text())
                    for r in (0, 1))
    assert rank0 == rank1 and len(rank0) >= 12
    assert all(g['params'] == g['param_names'] for g in rank0)
    # the table once on the console and once in rank 0's log file; mmengine
    # writes no log file for rank 1 unless asked, and rank 1 prints nothing
    title = 'layer decay: ConvNeXt, layer_wise'
    assert output.count(title) == 1
    log_files = list(work.rglob('*.log'))
    assert len(log_files) == 1 and log_files[0].read_text().count(title) == 1
    assert (work / 'iter_2.pth').exists()
