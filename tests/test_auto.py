"""``rules='auto'`` on a real backbone whose blocks are plain attributes:
timm's RegNet (stages ``s1``..``s4`` of numbered blocks ``b1``, ``b2``,
..., each block three conv + norm pairs), bare and through mmpretrain's
``TIMMBackbone`` as an mmdet config builds it; and timm backbones whose
blocks hold repeated parts, or whose first block is of its own class.

The count asserted is the one a person gives: ``regnetx_002`` has a stem,
13 blocks (1, 1, 4, 7 per stage) and a head. Before auto found blocks
outside ``nn.Sequential``/``nn.ModuleList`` it gave 88 ids, one per
parameter-owning module. The other kinds (``nn.ModuleDict``, conv + norm
blocks, no repeated structure) are toys of torch modules in
``tests/light/test_light_auto.py``; ``tests/test_forward_order.py`` runs
auto on every mmdet backbone and the mmpretrain ones.
"""
from typing import List

import pytest
import timm
import torch.nn as nn

from conftest import _register, our_groups
from layerdecay_plugin.backbones import auto
from layerdecay_plugin.backbones.auto import (auto_layer_ids, find_blocks, first_calls,
                                    param_first_calls)

SHAPE = (1, 3, 64, 64)
DEPTHS = (1, 1, 4, 7)
BLOCKS = [f's{stage}.b{block}' for stage, depth in enumerate(DEPTHS, 1)
          for block in range(1, depth + 1)]


def regnet() -> nn.Module:
    return timm.create_model('regnetx_002', pretrained=False)


def person_ids(names: List[str], prefix: str = '') -> dict:
    """Stem 0, block ``k`` of :data:`BLOCKS` ``k + 1``, and what runs after
    the last block (the classifier) the last block's id."""
    ids = {}
    for name in names:
        rel = name[len(prefix):]
        block = [i for i, b in enumerate(BLOCKS) if rel.startswith(b + '.')]
        ids[name] = 0 if rel.startswith('stem.') else \
            block[0] + 1 if block else len(BLOCKS)
    return ids


def test_timm_regnet_blocks_are_its_13_bottlenecks():
    backbone = regnet()
    assert find_blocks(backbone) == BLOCKS
    ids = auto_layer_ids(backbone, SHAPE)
    names = [name for name, _ in backbone.named_parameters()]
    assert ids == person_ids(names)
    # and they never decrease along the forward pass
    when = param_first_calls(backbone, first_calls(backbone, SHAPE))
    along = [ids[name] for name in sorted(names, key=when.__getitem__)]
    assert along == sorted(along)


@pytest.mark.parametrize('model_name, classes, count', [
    # the first stage's only block is of a class no other block has
    ('efficientnet_b0', {'DepthwiseSeparableConv', 'InvertedResidual'}, 16),
    # repeated parts inside each block: two GhostModules, two attentions
    ('ghostnet_050', {'GhostBottleneck'}, 16),
    ('maxvit_nano_rw_256', {'MaxxVitBlock'}, 7),
])
def test_timm_blocks_a_person_counts(model_name, classes, count):
    backbone = timm.create_model(model_name, pretrained=False)
    modules = dict(backbone.named_modules())
    blocks = find_blocks(backbone)
    assert {type(modules[name]).__name__ for name in blocks} == classes
    assert len(blocks) == count


def test_timm_regnet_in_a_detector_through_timm_backbone(monkeypatch):
    """``features_only=True`` as mmdet's timm configs use it: the model is
    wrapped (timm's feature extractor, no classifier), blocks unchanged;
    the log says what auto found."""
    _register()
    from mmdet.registry import MODELS
    model = nn.Module()
    model.backbone = MODELS.build(
        dict(type='mmpretrain.TIMMBackbone', model_name='regnetx_002',
             features_only=True, pretrained=False, out_indices=(1, 2, 3, 4)))
    model.neck = nn.Conv2d(368, 8, 1)
    logged = []
    monkeypatch.setattr(auto, 'print_log',
                        lambda msg, *args, **kwargs: logged.append(msg))
    groups = our_groups(model, dict(
        decay_rate=0.8, rules=dict(type='auto', input_shape=SHAPE)))
    ids = {name: int(group['group_name'].split('_')[1])
           for group in groups for name in group['param_names']}
    backbone = [name for name in ids if name.startswith('backbone.')]
    assert {name: ids[name] for name in backbone} == person_ids(
        backbone, 'backbone.timm_model.')
    assert ids['neck.weight'] == len(BLOCKS) + 1  # the head's: num_layers 13
    assert [msg for msg in logged if ' found ' in msg][0].startswith(
        "layer decay: rules='auto' found 13 blocks (Bottleneck) at "
        'timm_model.s1.b1, timm_model.s2.b1, timm_model.s3.b1..b4, '
        'timm_model.s4.b1..b7; 14 layer ids (0..13) for ')
