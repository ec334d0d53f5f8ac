"""One compact table instead of one line per parameter."""
import logging
import re
import warnings

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger, print_log

from conftest import MMDET_CONFIGS, build_detector, our_groups
from layerdecay_plugin.report import (GroupTableFilter, format_extra,
                                      group_data, group_extras,
                                      log_group_table, record_title,
                                      table_title)
from layerdecay_plugin.table import (MAX_WIDTH, GroupRow, format_group_table,
                                     sort_rows)

SWIN = 'swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
R50 = 'faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'


def test_table_columns_and_rows():
    text = format_group_table([
        GroupRow('layer_0_decay', 0, 0.5, 5e-5, 0.05, 3, 1234567),
        GroupRow('layer_1_no_decay', 1, 1.0, 1e-4, 0.0, 2, 10),
    ], title='layer decay: ConvNeXt')
    lines = text.splitlines()
    assert lines[0].startswith('layer decay: ConvNeXt')
    header = next(line for line in lines if 'group' in line)
    for column in ('layer id', 'lr_scale', 'lr', 'wd', '#tensors',
                   '#elements'):
        assert column in header
    assert any('layer_0_decay' in line and '1,234,567' in line and
               '5e-05' in line for line in lines)
    assert text.isascii()


def test_constructor_logs_one_table_not_one_line_per_parameter(
        toy_detector, tmp_path):
    logger = MMLogger.get_instance('layerdecay-report-test',
                                   log_file=str(tmp_path / 'log.txt'),
                                   log_level=logging.INFO)
    model = toy_detector()
    groups = our_groups(model, dict(decay_rate=0.9))
    for handler in logger.handlers:
        handler.flush()
    log = (tmp_path / 'log.txt').read_text()
    assert log.count('layer decay: ConvNeXt, layer_wise') == 1
    assert 'num_layers not set, inferred 5' in log
    for group in groups:
        assert log.count(group['group_name'] + ' ') == 1
    assert 'stages.2.3.gamma' not in log  # no per-parameter lines


def test_table_sorted_by_layer_decay_first_stable():
    rows = [GroupRow('layer_2_no_decay', 2, 1., 1e-4, 0., 1, 1),
            GroupRow('head', '-', 1., 1e-4, 0., 1, 1),
            GroupRow('layer_0_no_decay', 0, 1., 1e-4, 0., 1, 1),
            GroupRow('layer_2_decay_b', 2, 1., 1e-4, 0.05, 1, 1),
            GroupRow('layer_0_decay', 0, 1., 1e-4, 0.05, 1, 1),
            GroupRow('layer_2_decay_a', 2, 1., 1e-4, 0.05, 1, 1)]
    assert [r.group_name for r in sort_rows(rows)] == [
        'layer_0_decay', 'layer_0_no_decay', 'layer_2_decay_b',
        'layer_2_decay_a', 'layer_2_no_decay', 'head']
    lines = format_group_table(rows).splitlines()
    assert [line.split()[1] for line in lines[3:-1]] == [
        r.group_name for r in sort_rows(rows)]


def test_extra_column_only_when_some_group_has_extras():
    plain = GroupRow('layer_0_decay', 0, 1., 1e-4, 0.05, 1, 1)
    assert 'extra' not in format_group_table([plain])
    text = format_group_table([plain, plain._replace(
        extra=format_extra(dict(lr_mult=0.1, decay_mult=0.)))])
    assert 'extra' in text.splitlines()[1]
    assert 'decay_mult=0, lr_mult=0.1' in text


def test_group_extras_leave_out_optimizer_defaults():
    group = dict(params=[], param_names=[], lr=1e-4, weight_decay=0.,
                 lr_scale=1., group_name='layer_0_decay', betas=(0.9, 0.999),
                 eps=1e-8, decay_mult=0., momentum=0.5)
    defaults = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, momentum=0.9)
    assert group_extras(group, defaults) == dict(decay_mult=0., momentum=0.5)


def read_log(make_groups, tmp_path):
    """Build groups with a fresh logger writing to a file; return both."""
    logger = MMLogger.get_instance(f'layerdecay-report-{tmp_path.name}',
                                   log_file=str(tmp_path / 'log.txt'),
                                   log_level=logging.INFO)
    groups = make_groups()
    for handler in logger.handlers:
        handler.flush()
    return groups, (tmp_path / 'log.txt').read_text()


def table_names(log: str):
    return [m.group(1) for m in re.finditer(r'^\| (layer_\S+) ', log,
                                            re.MULTILINE)]


def test_log_table_in_layer_order_groups_in_mmdets(toy_detector, tmp_path):
    model = toy_detector()
    groups, log = read_log(
        lambda: our_groups(model, dict(decay_rate=0.9)), tmp_path)
    names = [g['group_name'] for g in groups]
    # mmdet's order: where each group's first parameter appears; not layer
    # order for ConvNeXt (all downsample layers come before the stages)
    order = [n for n, _ in model.named_parameters()]
    firsts = [order.index(g['param_names'][0]) for g in groups]
    assert firsts == sorted(firsts)
    group_ids = [int(n.split('_')[1]) for n in names]
    assert group_ids != sorted(group_ids)
    ids = [int(n.split('_')[1]) for n in table_names(log)]
    assert ids == sorted(ids) and sorted(table_names(log)) == sorted(names)
    for layer_id in set(ids):
        in_layer = [n for n in table_names(log)
                    if n.startswith(f'layer_{layer_id}_')]
        assert in_layer == sorted(in_layer, key=lambda n: 'no_decay' in n)


def twins_show_their_difference(groups, log: str) -> int:
    """Groups with the same layer, lr and weight decay have different
    ``extra`` cells in the logged table; returns how many such sets."""
    looks = {}
    for g in groups:
        looks.setdefault((g['group_name'].split('_')[1], g['lr'],
                          g['weight_decay']), []).append(g['group_name'])
    cells = {line.split()[1]: line.split('|')[8].strip()
             for line in log.splitlines() if line.startswith('| layer_')}
    twins = [names for names in looks.values() if len(names) > 1]
    for names in twins:
        assert len({cells[n] for n in names}) == len(names), names
    return len(twins)


def test_groups_that_look_alike_differ_in_the_extra_column(
        toy_detector, tmp_path):
    groups, log = read_log(lambda: our_groups(toy_detector(), dict(
        decay_rate=0.9, custom_keys={'neck': dict(eps=1e-6)})), tmp_path)
    assert twins_show_their_difference(groups, log) >= 1
    assert 'eps=1e-06' in log


def test_mmdet_swin_config_table_and_no_warning(tmp_path):
    """mmdet's Swin config with only the constructor switched: no warning
    for its absolute_pos_embed key (Swin-T has no such parameter: info
    instead), look-alike groups differ in the table and a note says why
    they are kept apart, and the table fits 120 characters."""
    cfg = Config.fromfile(str(MMDET_CONFIGS / SWIN))
    model = build_detector(MMDET_CONFIGS / SWIN)
    paramwise = dict(cfg.optim_wrapper.paramwise_cfg, decay_rate=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        groups, log = read_log(lambda: our_groups(model, paramwise),
                               tmp_path)
    assert "custom_keys['absolute_pos_embed']: this model has no" in log
    assert twins_show_their_difference(groups, log) == 14
    assert ' '.join(log.split()).count(
        'layer_0_no_decay and layer_0_no_decay_decay_mult0 (and 13 more '
        "pairs) have the same lr and weight decay: kept apart because "
        "custom_keys['norm'] and custom_keys['relative_position_bias_table'] "
        "matched the second's parameters and gave them decay_mult=0") == 1
    assert max(map(len, table_lines(log))) <= MAX_WIDTH


def table_lines(log: str) -> list:
    """The lines of the logged table: its title, rows and notes."""
    lines = log[log.index('\nlayer decay: ') + 1:].splitlines()
    end = max(i for i, line in enumerate(lines) if line.startswith('+-'))
    while end + 1 < len(lines) and not re.match(r'\d\d/\d\d ',
                                                lines[end + 1]):
        end += 1
    return lines[:end + 1]


def test_frozen_stages_of_mmdets_r50_are_named(tmp_path):
    """mmdet's Faster R-CNN R-50 (frozen_stages=1: stem and layer1, ids
    0-3): the table starts at id 4 and a note under it says why."""
    model = build_detector(MMDET_CONFIGS / R50)
    assert model.backbone.frozen_stages == 1
    groups, log = read_log(lambda: our_groups(model, dict(decay_rate=0.9)),
                           tmp_path)
    assert min(int(g['group_name'].split('_')[1]) for g in groups) == 4
    lines = table_lines(log)
    assert lines[4].startswith('| layer_4_decay ')
    assert 'layer ids 0-3 frozen (backbone.frozen_stages=1): no trainable ' \
        'parameter, so no group' in lines
    assert max(map(len, lines)) <= MAX_WIDTH


def test_table_filter_drops_the_table_only(tmp_path):
    """What the inspect command adds to the logger while it builds: the
    constructor's table goes, its other lines stay."""
    logger = MMLogger.get_instance('layerdecay-report-filter',
                                   log_file=str(tmp_path / 'log.txt'),
                                   log_level=logging.INFO)
    rows = [GroupRow('layer_0_decay', 0, 0.5, 5e-5, 0.05, 3, 12)]
    title = table_title('ConvNeXt', 'layer_wise', 0.9, 6, 1e-4, 0.05)
    table_filter = GroupTableFilter()
    logger.addFilter(table_filter)
    log_group_table(rows, title)
    print_log('layer decay: num_layers not set, inferred 6', logger='current')
    logger.removeFilter(table_filter)
    log_group_table(rows, title)
    for handler in logger.handlers:
        handler.flush()
    log = (tmp_path / 'log.txt').read_text()
    assert log.count('| layer_0_decay ') == 1
    assert 'num_layers not set, inferred 6' in log


def test_record_title_is_the_constructors_title():
    record = dict(paramwise_cfg=dict(decay_rate=0.9, custom_keys={}),
                  lr=1e-4, weight_decay=0.05, family='ConvNeXt',
                  num_layers=6)
    title = table_title('ConvNeXt', 'layer_wise', 0.9, 6, 1e-4, 0.05)
    assert record_title(record) == title
    assert record_title(record, dict(decay_rate=0.7, lr=2e-4)) == \
        title.replace('0.9', '0.7').replace('0.0001', '0.0002')
    record['paramwise_cfg']['decay_type'] = 'stage_wise'
    assert ', stage_wise, ' in record_title(record)
    assert record_title(None) is None


def test_group_data_of_an_optimizer():
    weight, bias = torch.nn.Parameter(torch.ones(3, 4)), \
        torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([
        dict(params=[weight], group_name='layer_2_decay', lr_scale=0.5,
             lr=5e-5, weight_decay=0.05, lr_mult=0.1),
        dict(params=[bias], weight_decay=0.)], lr=1e-4)
    optimizer.param_groups[0]['initial_lr'] = 5e-5
    first, second = group_data(optimizer.param_groups, optimizer.defaults,
                               lambda p: p.numel())
    assert first == dict(group_name='layer_2_decay', layer_id=2,
                         lr_scale=0.5, lr=5e-5, initial_lr=5e-5,
                         weight_decay=0.05, num_tensors=1, num_elements=12,
                         extra=dict(lr_mult=0.1))
    assert second == dict(group_name='group_1', layer_id=None, lr_scale=1.0,
                          lr=1e-4, weight_decay=0., num_tensors=1,
                          num_elements=3, extra={})
