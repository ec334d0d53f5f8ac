"""Several towers (``paramwise_cfg.backbone_attr`` a list, ``towers``),
torch + mmengine only: the config's checks, the group names made and read
back, the torch-free grouping, and toy detectors with an image backbone
and a text tower through ``build_optim_wrapper``: ids, lr scales, the
table's blocks, the resume record and guard, the hook's and the summary's
names. Grounding DINO itself: ``tests/test_towers.py``."""
import logging

import pytest
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper

from layerdecay_plugin import LayerDecayConfigError, parse_paramwise_cfg
from layerdecay_plugin.cli.lr_table import layer_lr_series, tower_lr_series
from layerdecay_plugin.config.towers import TowerCfg
from layerdecay_plugin.groupnames import (Settings, group_names,
                                          layer_lr_scalar, parse_group_name,
                                          parse_layer_lr_scalar,
                                          parse_lr_scalar)
from layerdecay_plugin.grouping import ParamInfo, plan_groups
from layerdecay_plugin.hooks import layer_lrs, tower_lrs
from layerdecay_plugin.report import group_data, record_blocks, record_title
from layerdecay_plugin.resume import STATE_KEY, infer_settings, record_of
from layerdecay_plugin.resume.diff import compare_groups
from layerdecay_plugin.rules.bert import bert_layer_id
from layerdecay_plugin.table import GroupRow, format_group_table
from light.toys import ToyConvNeXt, ToyDetector, layer_decay_groups

OPTIMIZER = dict(type='AdamW', lr=1e-3, weight_decay=0.05)
TOWERS = dict(decay_rate=0.8, backbone_attr=['backbone', 'text'],
              towers=dict(text=dict(decay_rate=0.5, rules='bert')))


class ToyText(nn.Module):
    """Parameters named as HuggingFace's BertModel: embeddings, encoder
    layers, a pooler."""

    def __init__(self, num_layers: int = 3, width: int = 8):
        super().__init__()
        self.embeddings = nn.Module()
        self.embeddings.word_embeddings = nn.Embedding(20, width)
        self.embeddings.LayerNorm = nn.LayerNorm(width)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(
            nn.Linear(width, width) for _ in range(num_layers))
        self.pooler = nn.Linear(width, width)


def two_towers() -> nn.Module:
    model = ToyDetector(ToyConvNeXt())
    model.text = ToyText()
    return model


def by_param(groups) -> dict:
    return {n: g for g in groups for n in g['param_names']}


def cfg_error(**paramwise) -> str:
    with pytest.raises(LayerDecayConfigError) as error:
        parse_paramwise_cfg(dict(dict(decay_rate=0.8), **paramwise))
    return str(error.value)


# ------------------------------------------------------------ the config


def test_a_str_and_a_one_element_list_are_one_tower():
    one = parse_paramwise_cfg(dict(decay_rate=0.8, num_layers=6))
    listed = parse_paramwise_cfg(dict(decay_rate=0.8, num_layers=6,
                                      backbone_attr=['backbone']))
    assert one == listed
    assert one.towers == (TowerCfg('backbone', 0.8, 6, None), )


def test_towers_take_the_top_level_keys_unless_overridden():
    cfg = parse_paramwise_cfg(dict(TOWERS, rules='auto'))
    assert cfg.backbone_attr == 'backbone'
    assert [(t.attr, t.decay_rate, t.num_layers) for t in cfg.towers] == [
        ('backbone', 0.8, None), ('text', 0.5, None)]
    assert cfg.towers[1].rules == 'bert'
    assert cfg.towers[0].rules == cfg.rules  # 'auto' settings, inherited


@pytest.mark.parametrize('paramwise,expected', [
    (dict(towers=dict(text=dict(decay_rate=0.9))),
     "paramwise_cfg.towers has key 'text', which is not a tower of "
     "backbone_attr=['backbone']"),
    (dict(backbone_attr=['backbone', 'language_model'],
          towers=dict(language_modle=dict(decay_rate=0.9))),
     "did you mean 'language_model'?"),
    (dict(backbone_attr=['backbone', 'text'],
          towers=dict(text=dict(decay_rat=0.9))),
     "paramwise_cfg.towers['text'].decay_rat=0.9: unknown key; did you "
     "mean 'decay_rate'? a tower overrides only decay_rate, num_layers, "
     'rules.'),
    (dict(backbone_attr=['backbone', 'backbone.stem']),
     "has 'backbone.stem' inside 'backbone': the towers overlap"),
    (dict(backbone_attr=['backbone', 'text', 'backbone']),
     "lists 'backbone' twice: the towers overlap"),
    (dict(backbone_attr=['backbone', 'text'], num_layers=12),
     'paramwise_cfg.num_layers=12 with several towers (backbone_attr='
     "['backbone', 'text']) is ambiguous: each tower has its own. Set it "
     'per tower, e.g. towers=dict(backbone=dict(num_layers=12))'),
    (dict(backbone_attr=[]), 'paramwise_cfg.backbone_attr=[] is invalid'),
    (dict(backbone_attr=['backbone', 3]), 'or a list of them'),
    (dict(backbone_attr=['backbone', 'text'], towers=['text']),
     "paramwise_cfg.towers=['text'] is invalid: give a dict"),
    (dict(backbone_attr=['backbone', 'text'], towers=dict(text=0.9)),
     "paramwise_cfg.towers['text']=0.9 is invalid: give a dict"),
    (dict(backbone_attr=['backbone', 'text'],
          towers=dict(text=dict(decay_rate=-1))),
     "paramwise_cfg.towers['text'].decay_rate=-1 is invalid: it must be a "
     'finite number > 0'),
    (dict(backbone_attr=['backbone', 'text'],
          towers=dict(text=dict(num_layers=0))),
     "paramwise_cfg.towers['text'].num_layers=0 is invalid: it must be a "
     'positive int'),
    (dict(backbone_attr=['backbone', 'text'],
          towers=dict(text=dict(rules='bret'))),
     "paramwise_cfg.towers['text'].rules='bret' is not a built-in family"),
])
def test_every_misuse_names_the_key_and_the_fix(paramwise, expected):
    assert expected in cfg_error(**paramwise)


def test_top_level_checks_keep_their_messages():
    assert cfg_error(decay_rate='x').startswith(
        "paramwise_cfg.decay_rate='x' is invalid: it must be a finite "
        'number > 0')
    assert cfg_error(num_layers=1.5).startswith(
        'paramwise_cfg.num_layers=1.5 is invalid: it must be a positive int')


# ------------------------------------------------------ names and grouping


def test_group_and_scalar_names_carry_the_tower():
    setting = Settings('decay', 0.05, 1e-3)
    names = group_names([(3, setting), (3, setting, 'text'),
                         (3, setting._replace(lr=2e-3), 'a.b')], 1e-3, 0.05)
    assert names == ['layer_3_decay', 'text.layer_3_decay',
                     'a.b.layer_3_decay_lr_x2']
    assert [parse_group_name(n).tower for n in names] == ['', 'text', 'a.b']
    assert parse_group_name('a.layer_1.layer_3_no_decay_lr_x0.1') == (
        3, False, '_lr_x0.1', 'a.layer_1')
    assert layer_lr_scalar(4) == 'layer_4_lr'
    assert layer_lr_scalar(4, 'text') == 'text.layer_4_lr'
    assert parse_lr_scalar('text.layer_4_lr') == ('text', 4)
    assert parse_layer_lr_scalar('text.layer_4_lr') is None  # not the first
    assert parse_layer_lr_scalar('layer_4_lr') == 4


def test_plan_groups_never_merges_towers():
    params = [ParamInfo(n, 2) for n in ('backbone.a', 'text.a', 'head.a')]
    ids = {'backbone.a': 1, 'text.a': 1, 'head.a': 3}
    plans = plan_groups(
        params, ids.get, 0.5, 2, 1e-3, 0.05,
        tower_of=lambda n: 'text' if n.startswith('text.') else '',
        scale_of=lambda tower, i: (0.1 if tower else 0.5)**(3 - i))
    assert [(p.group_name, p.tower, p.lr_scale) for p in plans] == [
        ('layer_1_decay', '', 0.25), ('text.layer_1_decay', 'text',
                                      pytest.approx(0.01)),
        ('layer_3_decay', '', 1.)]
    # the single-tower call is unchanged
    assert [p.group_name for p in plan_groups(params, ids.get, 0.5, 2, 1e-3,
                                              0.05)] == \
        ['layer_1_decay', 'layer_3_decay']


# ------------------------------------------------------------- toy models


def test_one_listed_tower_gives_the_groups_of_a_str():
    plain = layer_decay_groups(ToyDetector(ToyConvNeXt()),
                               dict(decay_rate=0.8), OPTIMIZER)
    listed = layer_decay_groups(ToyDetector(ToyConvNeXt()),
                                dict(decay_rate=0.8,
                                     backbone_attr=['backbone']), OPTIMIZER)
    assert [{k: v for k, v in g.items() if k != 'params'} for g in plain] \
        == [{k: v for k, v in g.items() if k != 'params'} for g in listed]


def test_each_tower_gets_its_own_ids_and_scales():
    model = two_towers()
    groups = by_param(layer_decay_groups(model, TOWERS, OPTIMIZER))
    alone = by_param(layer_decay_groups(ToyDetector(ToyConvNeXt()),
                                        dict(decay_rate=0.8), OPTIMIZER))
    for name, group in alone.items():  # the image tower and the head: as
        assert groups[name]['group_name'] == group['group_name']  # alone
        assert groups[name]['lr_scale'] == group['lr_scale']
    assert groups['neck.0.weight']['lr_scale'] == 1.
    text = [n for n, _ in model.text.named_parameters()]
    assert len(text) == 11
    for name in text:  # BERT ids, num_layers=3 inferred, decay_rate=0.5
        layer = bert_layer_id(name, 3)
        group = groups['text.' + name]
        assert parse_group_name(group['group_name'])[:2] == (
            layer, '.bias' not in name and 'LayerNorm' not in name)
        assert group['group_name'].startswith('text.layer_')
        assert group['lr_scale'] == 0.5**(4 - layer)
    assert groups['text.pooler.weight']['lr_scale'] == 1.  # its head


def test_a_tower_the_model_lacks_or_reaches_twice_is_an_error():
    with pytest.raises(LayerDecayConfigError,
                       match="backbone module at `text`"):
        layer_decay_groups(ToyDetector(ToyConvNeXt()), TOWERS, OPTIMIZER)
    model = two_towers()
    model.alias = model.text  # the same module under two attributes
    with pytest.raises(LayerDecayConfigError,
                       match="towers 'text' and 'alias' are the same module"):
        layer_decay_groups(model, dict(TOWERS, backbone_attr=[
            'backbone', 'text', 'alias']), OPTIMIZER)
    model = two_towers()
    model.inner = model.backbone.stages[0]  # one inside another
    with pytest.raises(LayerDecayConfigError,
                       match="towers 'backbone' and 'inner' hold one"):
        layer_decay_groups(model, dict(TOWERS, backbone_attr=[
            'backbone', 'text', 'inner']), OPTIMIZER)


def test_a_tower_num_layers_too_small_names_the_tower_key():
    with pytest.raises(LayerDecayConfigError,
                       match=r"paramwise_cfg\.towers\['text'\]\.num_layers=2 "
                             'is too small for this BERT backbone'):
        layer_decay_groups(two_towers(), dict(TOWERS, towers=dict(
            text=dict(rules='bert', num_layers=2))), OPTIMIZER)


def test_a_tower_decay_rate_above_one_warns_under_its_own_key():
    with pytest.warns(UserWarning) as caught:
        layer_decay_groups(two_towers(), dict(TOWERS, towers=dict(
            text=dict(rules='bert', decay_rate=1.5))), OPTIMIZER)
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("paramwise_cfg.towers['text'].decay_rate=1.5 > 1")
               for m in messages), messages
    assert not any(m.startswith('paramwise_cfg.decay_rate=') for m in messages)


def build(paramwise, model=None):
    return build_optim_wrapper(model or two_towers(), dict(
        type='OptimWrapper', constructor='LayerDecayPluginConstructor',
        optimizer=dict(OPTIMIZER), paramwise_cfg=dict(paramwise))).optimizer


def test_the_table_has_one_block_per_tower(tmp_path):
    log = tmp_path / 'log.txt'
    logger = MMLogger.get_instance('towers-table', log_file=str(log),
                                   log_level=logging.INFO)
    optimizer = build(TOWERS)
    for handler in logger.handlers:
        handler.flush()
    text = log.read_text()
    title = ('layer decay: 2 towers, layer_wise, base lr=0.001, weight '
             'decay=0.05')
    first = ('backbone: ConvNeXt, decay_rate=0.8, num_layers=5, and layer '
             '6: the parameters outside every tower')
    second = 'text: BERT, decay_rate=0.5, num_layers=3'
    lines = text.splitlines()
    # num_layers inferred per tower, each note naming its tower
    assert 'layer decay: backbone: num_layers not set, inferred 5' in text
    assert 'layer decay: text: num_layers not set, inferred 3 for BERT' in text
    start = lines.index(title)
    assert lines[start + 1] == first
    block = lines.index(second)
    assert all(not line.startswith('| text.') for line in lines[:block])
    assert lines[block + 4].startswith('| text.layer_0_decay ')
    # inspect and the summary draw the same from the record
    record = record_of(optimizer)
    assert record['towers'] == [
        dict(attr='backbone', family='ConvNeXt', num_layers=5,
             decay_rate=0.8),
        dict(attr='text', family='BERT', num_layers=3, decay_rate=0.5)]
    assert record_title(record) == title
    assert record_blocks(record) == {'': first, 'text': second}
    data = group_data(optimizer.param_groups, optimizer.defaults,
                      lambda p: p.numel())
    assert {g.get('tower', '') for g in data} == {'', 'text'}


def test_one_tower_keeps_its_table():
    rows = [GroupRow('layer_0_decay', 0, 0.5, 5e-4, 0.05, 1, 1)]
    assert format_group_table(rows, 'title').splitlines()[1].startswith(
        '+-')
    blocks = format_group_table(
        rows + [rows[0]._replace(group_name='t.layer_0_decay', tower='t')],
        'title', blocks={'': 'first', 't': 't: x'}).splitlines()
    rows_at = [i for i, line in enumerate(blocks) if 'layer_0' in line]
    assert blocks[1] == 'first'
    assert rows_at[0] < blocks.index('t: x') < rows_at[1]
    assert blocks[rows_at[1]].startswith('| t.layer_0_decay ')


def test_resume_refuses_a_changed_tower_decay_rate():
    saved = build(TOWERS).state_dict()
    assert saved[STATE_KEY]['towers'][1]['decay_rate'] == 0.5
    changed = build(dict(TOWERS, towers=dict(
        text=dict(decay_rate=0.7, rules='bert'))))
    with pytest.raises(LayerDecayConfigError) as error:
        changed.load_state_dict(saved)
    message = str(error.value)
    assert "  - paramwise_cfg.towers: {'text': {'decay_rate': 0.5, " in \
        message
    assert 'text.layer_0_decay' in message
    # the first tower's settings are read from its groups only (the text
    # tower's first here)
    found = infer_settings(changed.param_groups[::-1])
    assert (found['decay_rate'], found['num_layers']) == (0.8, 5)


def test_resume_lists_changed_groups_tower_by_tower():
    saved = build(TOWERS).param_groups
    current = build(dict(TOWERS, decay_rate=0.7, towers=dict(
        text=dict(decay_rate=0.6, rules='bert')))).param_groups
    lines = compare_groups(saved, current).lines
    towers = [parse_group_name(line.split(',')[0].split(':')[0]).tower
              for line in lines]
    # the first tower's layers, then the text tower's, not interleaved
    assert towers == sorted(towers) and set(towers) == {'', 'text'}, lines


def test_the_schedule_is_checked_tower_by_tower(monkeypatch):
    import layerdecay_plugin.constructor as constructor
    # an absolute floor above the text tower's first layer only
    monkeypatch.setattr(constructor, 'runner_config', lambda key: [
        dict(type='CosineAnnealingLR', eta_min=1e-4, T_max=4)])
    with pytest.warns(UserWarning) as caught:
        groups = build(TOWERS).param_groups
    warned = [str(w.message) for w in caught
              if 'CosineAnnealingLR(eta_min=0.0001)' in str(w.message)]
    assert len(warned) == 1, warned
    assert "starting lr of tower 'text' layer(s) 0 " in warned[0]
    # inspect says the same, from the groups as it tabulates them
    from layerdecay_plugin.cli.inspect import schedule_notes, summarize
    notes = schedule_notes(
        dict(param_scheduler=[dict(type='CosineAnnealingLR', eta_min=1e-4,
                                   T_max=4)]),
        summarize(build(TOWERS), two_towers())['groups'], 1e-3)
    assert [n.text for n in notes if n.level == 'warning'] == warned
    text_0 = next(g for g in groups if g['group_name'].startswith(
        'text.layer_0_'))
    assert text_0['lr'] < 1e-4 < min(g['lr'] for g in groups
                                     if not g['group_name'].startswith('text.'))


def test_the_hook_and_the_summary_name_each_tower():
    optimizer = build(TOWERS)
    lrs = tower_lrs(optimizer.param_groups)
    assert list(lrs) == ['', 'text']
    assert sorted(lrs['text']) == [0, 1, 2, 3, 4]  # 4: the pooler
    assert lrs['text'][0] == pytest.approx(1e-3 * 0.5**4)
    assert layer_lrs(optimizer.param_groups) == lrs['']
    scalars = [dict(step=1, **{layer_lr_scalar(i, t): lr
                               for t, ids in lrs.items()
                               for i, lr in ids.items()})]
    assert tower_lr_series(scalars)['text'][0] == [(1, lrs['text'][0])]
    assert sorted(layer_lr_series(scalars)) == list(range(7))


def test_the_hook_logs_each_tower_and_the_summary_tabulates_it():
    from types import SimpleNamespace

    from mmengine.logging import MessageHub

    from layerdecay_plugin.cli.lr_table import lr_table
    from layerdecay_plugin.hooks import LayerDecayLrHook
    optimizer = build(TOWERS)
    hub = MessageHub.get_instance('towers-hook')
    runner = SimpleNamespace(iter=0, message_hub=hub,
                             optim_wrapper=SimpleNamespace(
                                 param_groups=optimizer.param_groups))
    LayerDecayLrHook(layers='ends').before_train_iter(runner, 0)
    logged = {k[len('train/'):]: v.current()
              for k, v in hub.log_scalars.items()}
    assert sorted(logged) == ['layer_0_lr', 'layer_6_lr', 'text.layer_0_lr',
                              'text.layer_4_lr']
    series = tower_lr_series([dict(step=1, **logged)])
    assert list(series) == ['', 'text']
    first, text = lr_table(series['']), lr_table(series['text'], False)
    assert first[1].startswith('  0 (stem) ') and \
        first[2].startswith('  6 (neck and heads) ')
    assert [line.split()[0] for line in text[1:3]] == ['0', '4']
