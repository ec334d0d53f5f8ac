"""One compact table instead of one line per parameter."""
import logging

from mmengine.logging import MMLogger

from conftest import our_groups
from layerdecay_plugin.report import GroupRow, format_group_table


def test_table_columns_and_rows():
    text = format_group_table([
        GroupRow('layer_0_decay', 0, 0.5, 5e-5, 0.05, 3, 1234567),
        GroupRow('layer_1_no_decay', 1, 1.0, 1e-4, 0.0, 2, 10),
    ], title='layer decay: ConvNeXt')
    lines = text.splitlines()
    assert lines[0].startswith('layer decay: ConvNeXt')
    header = next(line for line in lines if 'group' in line)
    for column in ('layer id', 'lr_scale', 'lr', 'weight decay', '#tensors',
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
