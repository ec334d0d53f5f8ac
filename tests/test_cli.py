"""`python -m layerdecay_plugin inspect CONFIG` (and the form without the
command): table, JSON and plot from real configs, ours and mmdet's."""
import json
import logging
import runpy
import subprocess
import sys

import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger

from conftest import CONVNEXT_CONFIGS, ROOT
from layerdecay_plugin.cli import main
from layerdecay_plugin.cli.inspect import missing_plugin_import
from layerdecay_plugin.registry import NAME

GPU_CONFIG = ROOT / 'configs' / \
    'mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco_layerdecay.py'
MMDET_T = next(p for p in CONVNEXT_CONFIGS if p.name.startswith('mask-rcnn'))
R50 = "_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']\n"
IMPORT = "custom_imports = dict(imports=['layerdecay_plugin'])\n"


def write_config(tmp_path, text: str) -> str:
    path = tmp_path / 'my_config.py'
    path.write_text(text)
    return str(path)


def test_project_config_table_json_plot(tmp_path, capsys):
    """One table (the constructor's own log table is skipped), sorted by
    layer, and where --json/--plot went."""
    out_json, out_png = tmp_path / 'groups.json', tmp_path / 'lr.png'
    log = tmp_path / 'log.txt'
    logger = MMLogger.get_instance('layerdecay-cli-test', log_file=str(log),
                                   log_level=logging.INFO)
    assert main([str(GPU_CONFIG), '--json', str(out_json), '--plot',
                 str(out_png)]) == 0
    for handler in logger.handlers:
        handler.flush()
    assert '| layer_' not in log.read_text()  # no second table in the log
    text = capsys.readouterr().out
    lines = text.splitlines()
    title = lines.index(f'{GPU_CONFIG}: {NAME}')  # as the config names it
    # the header line the training log has above the same table
    assert lines[title + 1] == (
        'layer decay: ConvNeXt, layer_wise, decay_rate=0.95, num_layers=6, '
        'base lr=0.0001, weight decay=0.05')
    assert 'sample parameters' in text and 'backbone.stages.2.3' in text
    rows = [line.split()[1] for line in text.splitlines()
            if line.startswith('| layer_')]
    assert rows.count('layer_0_decay') == 1
    ids = [int(name.split('_')[1]) for name in rows]
    assert ids == sorted(ids)
    assert f'wrote {out_json}: ' in text and f'wrote {out_png}: ' in text
    data = json.loads(out_json.read_text())
    assert [g['layer_id'] for g in data['groups']] == ids
    assert {g['layer_id'] for g in data['groups']} == set(range(8))
    stem = data['params']['backbone.downsample_layers.0.0.weight']
    assert stem == dict(group='layer_0_decay', layer_id=0,
                        lr=pytest.approx(1e-4 * 0.95**7), weight_decay=0.05)
    assert data['params']['backbone.norm3.bias']['weight_decay'] == 0.
    assert out_png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_mmdet_config_with_constructor_switched_and_mmdets_own(tmp_path):
    """Same groups whichever constructor builds them."""
    ours, theirs = tmp_path / 'ours.json', tmp_path / 'theirs.json'
    main(['inspect', str(MMDET_T), '--json', str(theirs)])
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


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(['--help'])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert '--cfg-options' in out and '--plot' in out


def test_module_entry_point_exit_status_and_quiet_start(tmp_path):
    """The real entry point on a config that would not train: exit 1, the
    message, no traceback, no pkg_resources notice."""
    config = write_config(tmp_path, R50 + (
        "custom_hooks = [dict(type='LayerDecayLrHook')]\n"))
    result = subprocess.run(
        [sys.executable, '-m', 'layerdecay_plugin', config],
        capture_output=True, text=True)
    assert result.returncode == 1
    assert "custom_hooks=[dict(type='LayerDecayLrHook')]" in result.stderr
    assert 'Traceback' not in result.stderr
    assert 'pkg_resources' not in result.stderr + result.stdout


def test_train_script_refuses_it_with_the_same_message(tmp_path, capsys,
                                                       monkeypatch):
    """tools/train.py, instead of mmengine's KeyError: 'LayerDecayLrHook is
    not in the mmdet::hook registry', before building anything."""
    config = write_config(tmp_path, R50 + (
        "custom_hooks = [dict(type='LayerDecayLrHook')]\n"))
    work = tmp_path / 'work'
    # as `python tools/train.py CONFIG --work-dir WORK`, in this process
    monkeypatch.setattr(sys, 'argv', ['tools/train.py', config,
                                      '--work-dir', str(work)])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / 'tools' / 'train.py'), run_name='__main__')
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f'{config}: error: the config sets ')
    assert "custom_hooks=[dict(type='LayerDecayLrHook')]" in err
    assert "imports=[..., 'layerdecay_plugin']" in err
    assert not work.exists()  # stopped before the Runner


def test_config_error_is_a_message_and_exit_1(tmp_path, capsys):
    config = write_config(tmp_path, R50 + IMPORT + (
        'optim_wrapper = dict(constructor='
        "'LayerDecayOptimWrapperConstructor',\n"
        '    paramwise_cfg=dict(decay_rate=0.9, num_layer=16))\n'))
    assert main([config]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"{config}: error: ") and \
        "unknown key 'num_layer'" in captured.err
    assert 'Traceback' not in captured.err + captured.out


def test_missing_config_file_exits_2_without_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / 'nope.py')])
    assert exit_.value.code == 2
    assert 'no config file at' in capsys.readouterr().err


def test_config_without_the_plugin_import_is_refused(tmp_path, capsys):
    """Training would fail with mmengine's registry KeyError; the CLI, which
    imports the plugin itself, must not hide that."""
    config = write_config(tmp_path, R50 + (
        "optim_wrapper = dict(constructor='LayerDecayOptimWrapperConstructor',"
        '\n    paramwise_cfg=dict(decay_rate=0.9))\n'))
    assert main([config]) == 1
    err = capsys.readouterr().err
    assert "optim_wrapper.constructor='LayerDecayOptimWrapperConstructor'" \
        in err
    assert "KeyError: 'LayerDecayOptimWrapperConstructor is not in" in err
    assert "imports=[..., 'layerdecay_plugin']" in err


@pytest.mark.parametrize('cfg,verdict', [
    (dict(custom_hooks=[dict(type='LayerDecayLrHook')]), 'error'),
    (dict(custom_hooks=[dict(type='LayerDecayLrHook')],
          custom_imports=dict(imports=['mmpretrain.models'])), 'error'),
    (dict(custom_hooks=[dict(type='LayerDecayLrHook')],
          custom_imports=dict(imports=['mypkg.models'])), 'warning'),
    (dict(custom_hooks=[dict(type='LayerDecayLrHook')],
          custom_imports=dict(imports=['layerdecay_plugin.hooks'])), None),
    (dict(optim_wrapper=dict(constructor='Other')), None),
    (dict(optim_wrapper=dict(constructor='LayerDecayPluginConstructor',
                             paramwise_cfg=dict(decay_rate=0.9))), 'error'),
    (dict(optim_wrapper=dict(constructor='LayerDecayOptimWrapperConstructor',
                             paramwise_cfg=dict(decay_rate=0.9))), 'error'),
    # mmpose's ViTPose constructor has the shared class name
    (dict(optim_wrapper=dict(constructor='LayerDecayOptimWrapperConstructor',
                             paramwise_cfg=dict(layer_decay_rate=0.75,
                                                num_layers=12))), None),
])
def test_missing_plugin_import_cases(cfg, verdict):
    problem = missing_plugin_import(Config(cfg))
    if verdict is None:
        assert problem is None
    else:
        where = "optim_wrapper.constructor='{}'".format(
            cfg['optim_wrapper']['constructor']) if 'optim_wrapper' in cfg \
            else "custom_hooks=[dict(type='LayerDecayLrHook')]"
        assert problem.startswith(verdict) and where in problem


def test_custom_keys_warning_points_at_the_config(tmp_path, capsys):
    config = write_config(tmp_path, R50 + IMPORT + (
        "optim_wrapper = dict(constructor='LayerDecayOptimWrapperConstructor',"
        '\n    paramwise_cfg=dict(decay_rate=0.9,\n'
        "        custom_keys={'nek': dict(lr_mult=2.)}))\n"))
    with pytest.warns(UserWarning, match=r"custom_keys\['nek'\]") as record:
        assert main(['inspect', config]) == 0
    assert (record[0].filename, record[0].lineno) == (config, 5)
    assert "Did you mean 'neck'" in str(record[0].message)
    assert 'layer_17_decay' in capsys.readouterr().out


def test_unreadable_config_is_a_message_and_exit_1(tmp_path, capsys):
    """docs/troubleshooting.md's 'Duplicate key' entry: two bases defining
    the same keys."""
    demo = ROOT / 'configs' / \
        'mask-rcnn_convnext-t-p4-w7_fpn_layerdecay_shapes-demo-cpu.py'
    swin = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
    config = write_config(tmp_path, f'_base_ = [{str(demo)!r}, {swin!r}]\n')
    assert main([config]) == 1
    err = capsys.readouterr().err
    assert 'error: cannot read the config: KeyError:' in err
    assert 'Duplicate key is not allowed among bases' in err


def test_missing_backbone_names_the_child_of_a_backbone_class():
    """No child named like a backbone: the one whose class has rules."""
    import torch.nn as nn
    from mmpretrain.models import ConvNeXt

    from conftest import build_groups
    from layerdecay_plugin import (LayerDecayConfigError,
                                   LayerDecayOptimWrapperConstructor)
    model = nn.Module()
    model.stem = nn.Conv2d(3, 3, 1)
    model.encoder = ConvNeXt(arch='atto')
    model.head = nn.Linear(320, 3)
    with pytest.raises(LayerDecayConfigError,
                       match=r"its children: \['stem', 'encoder', 'head'\]\)"
                       r"\. `encoder` looks like the backbone: set "
                       r"paramwise_cfg.backbone_attr='encoder'\."):
        build_groups(LayerDecayOptimWrapperConstructor, model,
                     dict(decay_rate=0.9))


def test_rtmdet_convnext_schedule_floor_is_reported(capsys):
    """mmdet's RTMDet-L ConvNeXt-B config as shipped (mmdet's own
    layer-decay constructor; init_cfg dropped, nothing downloaded): its
    cosine schedule's absolute ``eta_min=base_lr * 0.05`` is just below the
    stem's lr (0.001 * 0.8**13 = 5.5e-5), so it is no warning; but every
    layer ends at it, which flattens the decay 18x: the info line, with the
    ratio that keeps it, after the table."""
    from conftest import MMDET_CONFIGS
    config = str(MMDET_CONFIGS / 'rtmdet' /
                 'rtmdet_l_convnext_b_4xb32-100e_coco.py')
    assert main(['inspect', config]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f'{config}: LearningRateDecayOptimizerConstructor' in lines
    notes = [line for line in lines
             if line.startswith(('warning: ', 'info: '))]
    assert lines[-1:] == notes == [  # after the table and its footnote
        'info: layer decay: param_scheduler[1] CosineAnnealingLR('
        'eta_min=5e-05) is an absolute floor: every layer ends at 5e-05, so '
        'the stem-to-head lr ratio goes from 0.055 at the start to 1 at the '
        'end of the schedule (18.2x flatter) and the shallow layers\' lr '
        'barely falls. To keep each layer\'s ratio, use eta_min_ratio=0.05 '
        'instead (the same floor for an lr of 0.001, relative to each '
        'layer\'s lr).']
