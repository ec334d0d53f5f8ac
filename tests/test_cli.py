"""`python -m layerdecay_plugin CONFIG`: table, JSON and plot from real
configs, ours and mmdet's."""
import json
import subprocess
import sys

import pytest

from conftest import CONVNEXT_CONFIGS, ROOT
from layerdecay_plugin.cli import main

GPU_CONFIG = ROOT / 'configs' / \
    'mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco_layerdecay.py'
MMDET_T = next(p for p in CONVNEXT_CONFIGS if p.name.startswith('mask-rcnn'))


def test_project_config_table_json_plot(tmp_path, capsys):
    out_json, out_png = tmp_path / 'groups.json', tmp_path / 'lr.png'
    assert main([str(GPU_CONFIG), '--json', str(out_json), '--plot',
                 str(out_png)]) == 0
    text = capsys.readouterr().out
    assert 'LayerDecayOptimWrapperConstructor' in text
    assert 'sample parameters' in text and 'backbone.stages.2.3' in text
    data = json.loads(out_json.read_text())
    assert [g['layer_id'] for g in data['groups']] == sorted(
        g['layer_id'] for g in data['groups'])
    assert {g['layer_id'] for g in data['groups']} == set(range(8))
    stem = data['params']['backbone.downsample_layers.0.0.weight']
    assert stem == dict(group='layer_0_decay', layer_id=0,
                        lr=pytest.approx(1e-4 * 0.95**7), weight_decay=0.05)
    assert data['params']['backbone.norm3.bias']['weight_decay'] == 0.
    assert out_png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_mmdet_config_with_constructor_switched_and_mmdets_own(tmp_path):
    """Same groups whichever constructor builds them."""
    ours, theirs = tmp_path / 'ours.json', tmp_path / 'theirs.json'
    main([str(MMDET_T), '--json', str(theirs)])
    main([str(MMDET_T), '--json', str(ours), '--cfg-options',
          'optim_wrapper.constructor=LayerDecayOptimWrapperConstructor',
          'custom_imports.imports=[mmpretrain.models,layerdecay_plugin]'])
    a, b = json.loads(ours.read_text()), json.loads(theirs.read_text())
    assert a['constructor'] == 'LayerDecayOptimWrapperConstructor'
    assert b['constructor'] == 'LearningRateDecayOptimizerConstructor'
    assert a['params'] == b['params'] and a['groups'] == b['groups']


def test_config_without_layer_decay_says_so(capsys):
    config = MMDET_T.parent.parent / 'faster_rcnn' / \
        'faster-rcnn_r50_fpn_1x_coco.py'
    assert main([str(config)]) == 0
    assert 'no layer decay in this config' in capsys.readouterr().out


def test_module_entry_point_runs():
    result = subprocess.run(
        [sys.executable, '-m', 'layerdecay_plugin', '--help'],
        capture_output=True, text=True, check=True)
    assert '--cfg-options' in result.stdout and '--plot' in result.stdout
