"""The inspect command's table on mmdet's shipped configs (issue #24): at
most 120 characters by default, everything with ``--wide``, the frozen ids
of a ResNet with ``frozen_stages=1`` and why Swin's look-alike groups are
kept apart; timm backbones say what stands in for blocks per stage."""
import itertools
import logging

import pytest
from mmengine.logging import MMLogger

from conftest import MMDET_CONFIGS, ROOT
from layerdecay_plugin.cli import main
from layerdecay_plugin.table import MAX_WIDTH

SWIN = MMDET_CONFIGS / 'swin' / 'mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
RETINANET = MMDET_CONFIGS / 'retinanet' / 'retinanet_r50_fpn_1x_coco.py'
TIMM = ROOT / 'configs' / \
    'mask-rcnn_timm-convnext-atto_fpn_layerdecay_shapes-cpu.py'
SWITCH = ['--cfg-options',
          'optim_wrapper.constructor=LayerDecayPluginConstructor',
          'optim_wrapper.paramwise_cfg.decay_rate=0.8',
          'model.backbone.init_cfg=None',
          'custom_imports.imports=[layerdecay_plugin]']


RUNS = itertools.count()


def inspect(tmp_path, capsys, *args):
    """The command's output and its log lines (the constructor's notes)."""
    run = next(RUNS)
    log = tmp_path / f'log{run}.txt'
    logger = MMLogger.get_instance(f'table-width-{run}', log_file=str(log),
                                   log_level=logging.INFO)
    assert main(['inspect', *map(str, args)]) == 0
    for handler in logger.handlers:
        handler.flush()
    return capsys.readouterr().out, log.read_text()


def table(out: str, config) -> list:
    """The table's lines: its header line (the training log's title), rules,
    rows and the note on what was left out to fit."""
    lines = out.splitlines()
    start = lines.index(f'{config}: LayerDecayPluginConstructor') + 1
    end = max(i for i, line in enumerate(lines) if line.startswith('+-'))
    while end + 1 < len(lines) and (lines[end + 1].startswith('to fit') or
                                    lines[end + 1].startswith('  ')):
        end += 1
    return lines[start:end + 1]


def row(lines, group):
    return next([c.strip() for c in line.strip('|').split('|')]
                for line in lines if line.startswith(f'| {group} '))


def one_line(text: str) -> str:
    return ' '.join(text.split())


def test_swin_table_fits_and_wide_shows_all(tmp_path, capsys):
    """Was 228 characters (two sample names of up to 49 characters and
    the extra column); the group names (up to 29) and the numbers take
    106."""
    out, log = inspect(tmp_path, capsys, SWIN, *SWITCH)
    lines = table(out, SWIN)
    assert max(map(len, lines)) <= MAX_WIDTH
    assert lines[-1] == (
        f'to fit {MAX_WIDTH} characters: left out extra, sample parameters '
        '(--wide shows all; --json has every parameter)')
    assert len(row(lines, 'layer_0_no_decay_decay_mult0')) == 7
    # the constructor's note, which names the custom_keys entries
    assert "custom_keys['norm'] and custom_keys['relative_position_bias_" \
        "table'] matched the second's parameters and gave them " \
        'decay_mult=0' in one_line(log)
    assert "optimizer state's group order, which checkpoints rely on" in \
        one_line(log)
    assert '| layer_' not in log

    wide, _ = inspect(tmp_path, capsys, SWIN, *SWITCH, '--wide')
    lines = table(wide, SWIN)
    assert max(map(len, lines)) > MAX_WIDTH and 'to fit' not in wide
    assert row(lines, 'layer_1_no_decay_decay_mult0')[7:] == [
        'decay_mult=0', 'backbone.stages.0.blocks.0.norm1.weight, '
        'backbone.stages.0.blocks.0.norm1.bias, ...']


def test_resnet_frozen_stages_are_named(tmp_path, capsys):
    """mmdet's RetinaNet R-50 (frozen_stages=1): ids 0-3 have no group,
    and the command says so; the table fits (was 168 characters), sample
    names shortened."""
    out, log = inspect(tmp_path, capsys, RETINANET, *SWITCH)
    lines = table(out, RETINANET)
    assert lines[4].startswith('| layer_4_decay ')
    assert 'layer ids 0-3 frozen (backbone.frozen_stages=1): no trainable ' \
        'parameter, so no group' in log
    assert max(map(len, lines)) <= MAX_WIDTH
    assert row(lines, 'layer_4_decay')[7].startswith('backbone.layer2.0.conv1')
    assert lines[-1].startswith(f'to fit {MAX_WIDTH} characters: shortened '
                                'sample parameters')


def test_timm_says_what_stands_in_for_blocks_per_stage(tmp_path, capsys):
    """A timm backbone's rules read no blocks per stage: the log says what
    num_layers was inferred from, not ``blocks per stage []``."""
    pytest.importorskip('timm')
    out, log = inspect(tmp_path, capsys, TIMM)
    assert 'blocks per stage []' not in log + out
    assert 'inferred 12 for timm TIMMBackbone' in log
    assert "the last id its rules give; they read no blocks per stage" in log
    assert max(map(len, table(out, TIMM))) <= MAX_WIDTH
