"""Layer decay on both towers of mmdet's Grounding DINO (issue #23): its
shipped ``grounding_dino_swin-t_finetune_16xb2_1x_coco.py`` config, Swin-T
as ``backbone`` and mmdet's ``BertModel`` as ``language_model``, with
``backbone_attr=['backbone', 'language_model']``.

Offline: mmdet's ``BertModel`` loads its tokenizer, config and weights
with ``from_pretrained(name)``; ``name`` points at a tiny BERT (2 layers,
hidden size 32, a 12-word vocabulary) written to a temporary directory
with ``save_pretrained``, so mmdet's own loading path runs. The config's
encoder checkpointing (``num_cp=6``, which needs fairscale) is off; it
changes no parameter. The config's ``custom_keys`` (``'backbone'``:
``lr_mult=0.1``, which mmengine also applies to
``language_model.language_backbone.*``) are composed: mmengine's own
constructor, run live on the same model, gives each parameter the lr and
weight decay layer decay then scales.
"""
import copy
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.optim import DefaultOptimWrapperConstructor, build_optim_wrapper

from conftest import MMDET_CONFIGS, _register
from layerdecay_plugin import LayerDecayConfigError
from layerdecay_plugin.cli import main
from layerdecay_plugin.groupnames import parse_group_name
from layerdecay_plugin.resume import record_of
from layerdecay_plugin.rules import is_no_decay
from layerdecay_plugin.rules.bert import bert_layer_id
from layerdecay_plugin.rules.swin import swin_layer_id

CONFIG = 'grounding_dino/grounding_dino_swin-t_finetune_16xb2_1x_coco.py'
WORDS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '.', '?', 'a', 'cat',
         'dog', 'person', 'car']
TOWERS = dict(decay_rate=0.8, backbone_attr=['backbone', 'language_model'],
              towers=dict(language_model=dict(decay_rate=0.9)))
SWIN_T = [2, 2, 6, 2]  # the config's depths: num_layers 12
BERT_LAYERS = 2


def tiny_bert(path: Path) -> str:
    """A BERT directory ``from_pretrained`` reads without a network."""
    from transformers import BertConfig, BertModel, BertTokenizer
    path.mkdir()
    (path / 'vocab.txt').write_text('\n'.join(WORDS) + '\n')
    BertTokenizer(str(path / 'vocab.txt')).save_pretrained(str(path))
    BertModel(BertConfig(vocab_size=len(WORDS), hidden_size=32,
                         num_hidden_layers=BERT_LAYERS, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)
              ).save_pretrained(str(path))
    return str(path)


@pytest.fixture(scope='module')
def bert(tmp_path_factory) -> str:
    pytest.importorskip('transformers')
    return tiny_bert(tmp_path_factory.mktemp('bert') / 'tiny-bert')


@pytest.fixture(scope='module')
def detector(bert):
    """The shipped config, its model built on the CPU, and its
    ``optim_wrapper`` switched to our constructor on both towers."""
    _register()
    from mmdet.registry import MODELS
    cfg = Config.fromfile(str(MMDET_CONFIGS / CONFIG))
    cfg.model.language_model.name = bert
    cfg.model.backbone.init_cfg = None
    cfg.model.encoder.num_cp = 0
    model = MODELS.build(cfg.model)
    optim = copy.deepcopy(cfg.optim_wrapper.to_dict())
    optim.pop('_delete_', None)
    return model, optim


def ours(detector, **paramwise):
    model, optim = detector
    paramwise = dict(optim['paramwise_cfg'], **dict(TOWERS, **paramwise))
    return build_optim_wrapper(model, dict(
        optim, constructor='LayerDecayPluginConstructor',
        paramwise_cfg=paramwise)).optimizer


def test_each_tower_decays_by_its_own_layers(detector):
    model, optim = detector
    optimizer = ours(detector)
    # mmengine's constructor, live, on the config's own paramwise_cfg
    plain = {k: v for k, v in optim.items() if k != 'paramwise_cfg'}
    reference = DefaultOptimWrapperConstructor(
        plain, optim['paramwise_cfg'])(model).optimizer
    ref = {id(p): g for g in reference.param_groups for p in g['params']}
    names = {id(p): n for n, p in model.named_parameters()}
    seen = {'backbone': set(), 'language_model': set(), 'head': set()}
    for group in optimizer.param_groups:
        parsed = parse_group_name(group['group_name'])
        for param in group['params']:
            name = names[id(param)]
            if name.startswith('backbone.'):
                tower, layer = '', swin_layer_id(name[9:], 12, SWIN_T)
                scale = 0.8**(13 - layer)
                seen['backbone'].add(layer)
            elif name.startswith('language_model.'):
                tower = 'language_model'
                layer = bert_layer_id(name[15:], BERT_LAYERS)
                scale = 0.9**(BERT_LAYERS + 1 - layer)
                seen['language_model'].add(layer)
            else:
                tower, layer, scale = '', 13, 1.
                seen['head'].add(name.split('.')[0])
            assert (parsed.tower, parsed.layer_id) == (tower, layer), name
            assert group['lr_scale'] == pytest.approx(scale), name
            # custom_keys composed: mmengine's lr (lr_mult=0.1 for every
            # name with 'backbone', language_backbone's too) times the scale
            assert group['lr'] == pytest.approx(
                ref[id(param)]['lr'] * scale), name
            # an entry's weight decay where one matches, else layer
            # decay's (none for 1-D parameters and biases)
            assert group['weight_decay'] == (
                ref[id(param)]['weight_decay'] if 'backbone' in name else
                0. if is_no_decay(name, param.ndim) else 1e-4), name
    assert seen['backbone'] == set(range(13)) | {13}  # out norms: the head
    assert seen['language_model'] == set(range(BERT_LAYERS + 1))
    assert {'encoder', 'decoder', 'bbox_head', 'neck'} <= seen['head']
    record = record_of(optimizer)
    assert record['towers'] == [
        dict(attr='backbone', family='Swin', num_layers=12, decay_rate=0.8),
        dict(attr='language_model', family='BERT', num_layers=BERT_LAYERS,
             decay_rate=0.9)]


def test_resume_with_another_tower_decay_rate_is_refused(detector):
    saved = ours(detector).state_dict()
    changed = ours(detector, towers=dict(language_model=dict(decay_rate=0.7)))
    with pytest.raises(LayerDecayConfigError) as error:
        changed.load_state_dict(saved)
    message = str(error.value)
    assert "paramwise_cfg.towers: {'language_model': {'decay_rate': 0.9}} " \
        "-> {'language_model': {'decay_rate': 0.7}}" in message
    assert 'language_model.layer_0_decay_lr_x0.1' in message


def test_inspect_shows_one_block_per_tower(bert, tmp_path, capsys):
    config = tmp_path / 'grounding_dino_towers.py'
    config.write_text(
        f"_base_ = ['mmdet::{CONFIG}']\n"
        "custom_imports = dict(imports=['layerdecay_plugin'], "
        'allow_failed_imports=False)\n'
        f"model = dict(language_model=dict(name={bert!r}), "
        'encoder=dict(num_cp=0))\n'
        "optim_wrapper = dict(constructor='LayerDecayPluginConstructor', "
        f'paramwise_cfg={TOWERS!r})\n')
    assert main(['inspect', str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    title = lines.index('layer decay: 2 towers, layer_wise, base lr=0.0001, '
                        'weight decay=0.0001')
    assert lines[title + 1].startswith(
        'backbone: Swin, decay_rate=0.8, num_layers=12, and layer 13:')
    second = lines.index('language_model: BERT, decay_rate=0.9, num_layers=2')
    rows = [i for i, line in enumerate(lines) if line.startswith('| ')
            and not line.startswith('| group ')]
    first_rows = [i for i in rows if i < second]
    assert all(lines[i].startswith('| layer_') for i in first_rows)
    assert len(first_rows) == 16
    assert [lines[i].split('|')[1].strip() for i in rows if i > second] == [
        f'language_model.layer_{i}_decay_lr_x0.1' for i in range(3)]
