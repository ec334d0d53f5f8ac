"""Training three newly supported backbone families from mmdet's own
configs, with only the constructor switched and ``num_layers`` inferred:
RTMDet-tiny (``CSPNeXt``), RetinaNet PVTv2-b0 and Faster R-CNN HRNet-w18,
two iterations at 128 px on the shapes data. Every group's lr must be
base lr x its lr_scale x the scheduler factor, the scales must be exactly
``0.9 ** (num_layers + 1 - id)`` for ids 0..num_layers + 1, and the deepest
block must get ``num_layers``."""
import math
from pathlib import Path

import pytest
from mmengine.config import Config

from conftest import MMDET_CONFIGS
from test_training import BASE_LR, run, shapes_cfg

DECAY = 0.9  # shapes_cfg's paramwise_cfg=dict(decay_rate=0.9)


def family_cfg(config: Path, tmp_path: Path) -> Config:
    """``shapes_cfg`` for one- and two-stage detectors alike: it sets the
    classes of ``roi_head``, so a one-stage config gets an empty one through
    a child config, removed again; its ``bbox_head`` gets the classes."""
    two_stage = 'roi_head' in Config.fromfile(str(config)).model
    child = tmp_path / 'child.py'
    child.write_text(f'_base_ = [{str(config)!r}]\n'
                     'model = dict(roi_head=dict())\n')
    cfg = shapes_cfg(child, tmp_path)
    if not two_stage:
        cfg.model.pop('roi_head')
        cfg.model.bbox_head.num_classes = 3
    return cfg


@pytest.mark.parametrize('config,num_layers,last_block', [
    ('rtmdet/rtmdet_tiny_8xb32-300e_coco.py', 9,
     'backbone.stage4.2.final_conv.conv.weight'),
    ('pvt/retinanet_pvtv2-b0_fpn_1x_coco.py', 8,
     'backbone.layers.3.1.1.ffn.layers.4.weight'),
    ('hrnet/faster-rcnn_hrnetv2p-w18-1x_coco.py', 12,
     'backbone.stage4.2.branches.3.3.conv2.weight'),
])
def test_train_new_families(tmp_path, config, num_layers, last_block):
    record = run(family_cfg(MMDET_CONFIGS / config, tmp_path))
    assert sorted(record.iters) == [0, 1]
    expected_scales = {DECAY**(num_layers + 1 - i)
                       for i in range(num_layers + 2)}
    for it, factor in ((0, 0.5), (1, 1.)):
        groups = record.iters[it]['groups']
        scales = {g['lr_scale'] for g in groups}
        assert len(scales) == num_layers + 2  # every id 0..head has a group
        assert all(any(math.isclose(s, e, rel_tol=1e-12)
                       for e in expected_scales) for s in scales)
        for g in groups:
            assert g['lr'] == pytest.approx(
                BASE_LR * g['lr_scale'] * factor, rel=1e-12)
        last = next(g for g in groups if last_block in g['param_names'])
        assert last['lr_scale'] == pytest.approx(DECAY)  # id num_layers
        assert max(scales) == 1.0  # neck and heads
    assert (tmp_path / 'work' / 'iter_2.pth').exists()
