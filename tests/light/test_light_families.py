"""Every backbone family without mmdet, mmpretrain or timm: a small real
backbone of each family, rebuilt from what ``tools/record_golden_groups.py``
recorded of it (``family_groups.json``: parameter names and shapes, the
plain attributes its family's depth reader takes), gets through
``mmengine.optim.build_optim_wrapper`` with ``paramwise_cfg.rules=
'<family>'`` exactly the groups our constructor gave the real class
(kept fresh by ``tests/test_golden_groups.py`` in the full tier).

A rebuilt backbone has no real class, so the class lookup cannot apply:
naming the family is what selects its rules; recorded by class, the groups
also show that the name and the class give the same rules.
"""
import ast
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping

import pytest
import torch.nn as nn

import layerdecay_plugin  # noqa: F401  (registers the constructor)
from layerdecay_plugin import LayerDecayConfigError
from layerdecay_plugin.backbones.depths import backbone_depths
from layerdecay_plugin.backbones.resolve import spec_for
from layerdecay_plugin.backbones.families import FAMILIES as BUILTIN_RULES
from light.toys import ToyDetector, auto_model, backbone_from_shapes, \
    layer_decay_groups, shape_rows

GOLDEN = json.loads(
    (Path(__file__).parent / 'family_groups.json').read_text())
FAMILIES = GOLDEN['families']
COLUMNS = tuple(GOLDEN['group_columns'])
CASES = [(family, decay_type) for family in sorted(FAMILIES)
         for decay_type in sorted(FAMILIES[family]['cases'])]


def rebuilt(family: str) -> nn.Module:
    """The recorded backbone of a family, as a torch-only module tree."""
    case = FAMILIES[family]
    # Values are Python literals: MViT's stage_indices has int keys.
    attrs = {name: ast.literal_eval(text)
             for name, text in case['attrs'].items()}
    return backbone_from_shapes(case['params'], attrs)


def our_groups(model: nn.Module, paramwise_cfg: Mapping) -> List[Dict]:
    """Our constructor's groups, built as a config builds them."""
    return layer_decay_groups(model, paramwise_cfg, GOLDEN['optimizer'])


def as_records(rows: List[list], model: nn.Module) -> List[Dict[str, Any]]:
    """Recorded group rows as dicts, parameter indices as names."""
    names = [name for name, _ in model.named_parameters()]
    records = [dict(zip(COLUMNS, row)) for row in rows]
    for record in records:
        record['params'] = [names[i] for i in record['params']]
    return records


def assert_same_groups(golden: List[Mapping], groups: List[Mapping]) -> None:
    """Same groups in the same order, compared field by field so that a
    failure names the group and the field."""
    assert [g['group_name'] for g in groups] == \
        [g['group_name'] for g in golden]
    for ref, got in zip(golden, groups):
        for key in COLUMNS:
            ours = got['param_names' if key == 'params' else key]
            assert ours == ref[key], (ref['group_name'], key)


def test_every_family_the_plugin_names_is_recorded():
    assert sorted(FAMILIES) == sorted(BUILTIN_RULES), (
        'every family paramwise_cfg.rules accepts needs a recorded '
        'backbone: add one to FAMILY_BACKBONES in '
        'tools/record_golden_groups.py and run it with .venv/bin/python')


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_rebuilt_backbone_is_the_recorded_one(family):
    backbone = rebuilt(family)
    assert shape_rows(backbone) == FAMILIES[family]['params']
    # Its depths, read as the family reads them, are the real backbone's.
    depths = backbone_depths(backbone, spec_for(backbone, family))
    assert list(depths) == FAMILIES[family]['depths']


@pytest.mark.parametrize('family,decay_type', CASES)
def test_family_by_name_gives_the_real_class_groups(family, decay_type):
    case = FAMILIES[family]['cases'][decay_type]
    model = ToyDetector(rebuilt(family))
    groups = our_groups(model, dict(case['paramwise_cfg'], rules=family))
    assert_same_groups(as_records(case['groups'], model), groups)


def test_rebuilt_backbone_needs_the_family_name():
    model = ToyDetector(rebuilt('resnet'))
    with pytest.raises(LayerDecayConfigError, match='cannot map'):
        our_groups(model, dict(decay_rate=0.8))


def test_auto_rules_on_a_runnable_toy():
    model = auto_model()
    golden = GOLDEN['auto']
    auto = our_groups(model, golden['paramwise_cfg'])
    assert_same_groups(as_records(golden['groups'], model), auto)
    # Its forward order gives the ids that its naming (timm's) gives.
    by_name = our_groups(model, dict(golden['paramwise_cfg'],
                                     rules='vit_blocks'))
    assert_same_groups(as_records(golden['groups'], model), by_name)
