"""The group table fits 120 characters and explains itself: ids with no
trainable parameter, groups the optimizer treats alike kept apart, and what
was left out to fit (issue #24)."""
import logging

import pytest
from mmengine.logging import MMLogger

from layerdecay_plugin.checks.frozen import frozen_ids, frozen_note, id_ranges
from layerdecay_plugin.checks.twins import twin_note, twin_pairs
from layerdecay_plugin.report import GroupTableFilter, log_group_table
from layerdecay_plugin.table import MAX_WIDTH, GroupRow, format_group_table
from light.toys import ToyConvNeXt, ToyDetector, layer_decay_groups

OPTIMIZER = dict(type='AdamW', lr=1e-4, weight_decay=0.05)


def test_id_ranges():
    assert id_ranges([3, 0, 1, 2, 5, 7, 8, 5]) == '0-3, 5, 7-8'
    assert id_ranges([4]) == '4' and id_ranges([]) == ''


def test_frozen_ids_are_those_without_a_trainable_parameter():
    params = [(0, False), (0, False), (1, False), (1, True), (2, True),
              (3, False)]
    assert frozen_ids(params) == [0, 3]
    assert frozen_note(params, frozen_stages=1) == (
        'layer ids 0, 3 frozen (backbone.frozen_stages=1): no trainable '
        'parameter, so no group')
    assert frozen_note([(0, False), (1, True)], None, 'model.encoder') == \
        'layer id 0 frozen: no trainable parameter, so no group'
    assert frozen_note([(0, True), (1, True)], frozen_stages=-1) == ''


def group(name, layer_id, lr=1e-4, weight_decay=0., names=(), **extra):
    return dict(group_name=name, layer_id=layer_id, lr=lr,
                weight_decay=weight_decay, extra=extra,
                param_names=list(names))


SWIN_LIKE = [
    group('layer_0_decay', 0, weight_decay=0.05, names=['b.patch.w']),
    group('layer_0_no_decay', 0, names=['b.patch.bias']),
    group('layer_0_no_decay_decay_mult0', 0, names=['b.patch.norm.weight'],
          decay_mult=0.),
    group('layer_1_no_decay_decay_mult0', 1, lr=2e-4,
          names=['b.blocks.0.norm1.weight', 'b.blocks.0.rpb_table'],
          decay_mult=0.),
    group('layer_1_no_decay', 1, lr=2e-4, names=['b.blocks.0.qkv.bias']),
    group('other', None),
]


def test_twins_same_lr_decay_and_optimizer_keys():
    pairs = [(a['group_name'], b['group_name'])
             for a, b in twin_pairs(SWIN_LIKE)]
    assert pairs == [('layer_0_no_decay', 'layer_0_no_decay_decay_mult0'),
                     ('layer_1_no_decay', 'layer_1_no_decay_decay_mult0')]
    # a key the optimizer reads (momentum) makes them different groups
    assert twin_pairs([group('layer_0_no_decay', 0),
                       group('layer_0_no_decay_momentum0.5', 0,
                             momentum=0.5)]) == []
    assert twin_note(SWIN_LIKE[:1]) == ''


def test_twin_note_names_the_custom_keys_entries_that_matched():
    custom_keys = {'norm': dict(decay_mult=0.), 'rpb_table':
                   dict(decay_mult=0.), 'unused': dict(lr_mult=0.1)}
    note = twin_note(SWIN_LIKE, custom_keys)
    assert note.startswith(
        'layer_0_no_decay and layer_0_no_decay_decay_mult0 (and 1 more '
        'pair) have the same lr and weight decay: kept apart because '
        "custom_keys['norm'] and custom_keys['rpb_table'] matched the "
        "second's parameters and gave them decay_mult=0")
    assert "group order, which checkpoints rely on" in note
    assert "custom_keys['unused']" not in note
    assert 'a custom_keys entry matched' in twin_note(SWIN_LIKE)


def rows(count=3, name='layer_{}_no_decay_decay_mult0', sample='', extra=''):
    return [GroupRow(name.format(i), i, 0.5, 5e-5, 0.05 * (i % 2), 4,
                     123456789, sample, extra) for i in range(count)]


def widths(text):
    return [len(line) for line in text.splitlines()]


def test_a_table_that_fits_is_unchanged():
    text = format_group_table(rows(extra='decay_mult=0'), 'title',
                              notes=['a note'])
    assert text == format_group_table(rows(extra='decay_mult=0'), 'title',
                                      notes=['a note'], wide=True)
    assert text.splitlines()[-1] == 'a note' and 'to fit' not in text


def test_samples_shortened_then_extra_and_samples_left_out():
    long = 'backbone.stages.0.blocks.0.attn.w_msa.qkv.weight, ' * 2 + '...'
    text = format_group_table(rows(name='layer_{}_decay', sample=long),
                              samples=True, hint=' (see --wide)')
    assert max(widths(text)) <= MAX_WIDTH
    # a first name too long for the room is cut; one that fits stays whole
    assert '| backbone.stages.0.blocks.0.attn.w_m... |' in text
    assert text.splitlines()[-1] == (
        f'to fit {MAX_WIDTH} characters: shortened sample parameters '
        '(see --wide)')
    names = ', '.join(f'backbone.blocks.0.weight_{i}' for i in range(5))
    text = format_group_table(rows(name='layer_{}_decay', sample=names),
                              samples=True)
    assert '| backbone.blocks.0.weight_0, ...' in text
    wide = format_group_table(rows(sample=long), samples=True, wide=True)
    assert long in wide and max(widths(wide)) > MAX_WIDTH
    # names as long as Swin's with an extra column: both columns go
    crowded = rows(name='layer_{}_no_decay_decay_mult0_lr_x0.1',
                   sample=long, extra='decay_mult=0, lr_mult=0.1')
    text = format_group_table(crowded, samples=True)
    assert max(widths(text)) <= MAX_WIDTH
    assert text.splitlines()[1].split() == [
        '|', 'group', '|', 'layer', 'id', '|', 'lr_scale', '|', 'lr', '|',
        'wd', '|', '#tensors', '|', '#elements', '|']
    assert text.splitlines()[-1] == \
        f'to fit {MAX_WIDTH} characters: left out extra, sample parameters'


def test_group_names_shortened_last():
    text = format_group_table(rows(name='layer_{}_' + 'x' * 120))
    assert max(widths(text)) <= MAX_WIDTH
    assert 'shortened group names' in text


def test_title_and_notes_wrapped():
    title = ('layer decay: ' + 'timm TIMMBackbone of FeatureListNet, ' * 3 +
             'layer_wise, decay_rate=0.9')
    note = 'word ' * 60
    text = format_group_table(rows(), title, notes=[note])
    assert max(widths(text)) <= MAX_WIDTH
    lines = text.splitlines()
    assert lines[0].startswith('layer decay: ') and lines[1].startswith('  ')
    assert lines[-1].startswith('  word')


def read_log(tmp_path, make):
    logger = MMLogger.get_instance(f'light-table-{tmp_path.name}',
                                   log_file=str(tmp_path / 'log.txt'),
                                   log_level=logging.INFO)
    result = make(logger)
    for handler in logger.handlers:
        handler.flush()
    return result, (tmp_path / 'log.txt').read_text()


def test_filter_keeps_the_notes_of_a_dropped_table(tmp_path):
    def log(logger):
        table_filter = GroupTableFilter()
        logger.addFilter(table_filter)
        log_group_table(rows(), 'layer decay: toy', ['layer id 0 frozen'])
        log_group_table(rows(), 'layer decay: toy', [''])
        logger.removeFilter(table_filter)

    _, text = read_log(tmp_path, log)
    assert '| layer_' not in text and 'layer decay: toy' not in text
    assert text.count('layer id 0 frozen') == 1


@pytest.fixture
def frozen_toy():
    model = ToyDetector(ToyConvNeXt())
    backbone = model.backbone
    for module in (backbone.downsample_layers[0], backbone.stages[0]):
        for param in module.parameters():
            param.requires_grad = False
    backbone.frozen_stages = 1
    return model


def test_constructor_logs_the_frozen_ids(tmp_path, frozen_toy):
    groups, log = read_log(tmp_path, lambda _: layer_decay_groups(
        frozen_toy, dict(decay_rate=0.9), OPTIMIZER))
    # ConvNeXt ids: the stem is id 0, stage 0 id 1
    assert min(int(g['group_name'].split('_')[1]) for g in groups) == 2
    assert 'layer ids 0-1 frozen (backbone.frozen_stages=1): no trainable ' \
        'parameter, so no group' in log
    table = log[log.index('layer decay: ConvNeXt'):]
    assert all(len(line) <= MAX_WIDTH for line in table.splitlines())


def test_no_note_when_nothing_is_frozen_or_alike(tmp_path):
    model = ToyDetector(ToyConvNeXt())
    model.backbone.frozen_stages = -1
    _, log = read_log(tmp_path, lambda _: layer_decay_groups(
        model, dict(decay_rate=0.9), OPTIMIZER))
    assert 'frozen' not in log and 'kept apart' not in log
    assert 'to fit' not in log


def test_constructor_explains_groups_kept_apart(tmp_path):
    model = ToyDetector(ToyConvNeXt())
    groups, log = read_log(tmp_path, lambda _: layer_decay_groups(
        model, dict(decay_rate=0.9, custom_keys={'.norm.': dict(
            decay_mult=0.)}), OPTIMIZER))
    names = {g['group_name'] for g in groups}
    assert {'layer_1_no_decay', 'layer_1_no_decay_decay_mult0'} <= names
    assert "custom_keys['.norm.'] matched the second's parameters and " \
        'gave them decay_mult=0' in log
