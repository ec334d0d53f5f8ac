"""Parity with mmdet's constructor without mmdet: our groups against the
golden groups that ``tools/record_golden_groups.py`` recorded from mmdet's
``LearningRateDecayOptimizerConstructor`` (kept fresh by
``tests/test_golden_groups.py`` in the full tier)."""
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping

import pytest

import layerdecay_plugin  # noqa: F401  (registers the constructor)
from light.toys import layer_decay_groups, model_from_shapes, toy_models

GOLDEN = json.loads(
    (Path(__file__).parent / 'golden_groups.json').read_text())
KEYS = ('group_name', 'lr', 'lr_scale', 'weight_decay', 'param_names')


def our_records(model, paramwise_cfg: Mapping,
                optimizer: Mapping) -> List[Dict[str, Any]]:
    """Our constructor's groups, built as a config would build them, in the
    golden file's record format."""
    optimizer = dict(optimizer)
    if 'betas' in optimizer:  # JSON turned the tuple into a list
        optimizer['betas'] = tuple(optimizer['betas'])
    return [{key: group[key] for key in KEYS}
            for group in layer_decay_groups(model, paramwise_cfg, optimizer)]


def assert_same(golden: List[Mapping], ours: List[Mapping]) -> None:
    """Same groups in the same order, compared field by field so that a
    failure names the group and the field."""
    assert [g['group_name'] for g in ours] == \
        [g['group_name'] for g in golden]
    for ref, got in zip(golden, ours):
        for key in KEYS:
            assert got[key] == ref[key], (ref['group_name'], key)


def test_golden_file_covers_every_case():
    assert sorted(GOLDEN['toys']) == sorted(toy_models())
    assert len(GOLDEN['configs']) == 3  # mmdet 3.3.0 ships three


@pytest.mark.parametrize('case', sorted(GOLDEN['toys']))
def test_toy_models_match_mmdet(case):
    model, paramwise_cfg = toy_models()[case]
    golden = GOLDEN['toys'][case]
    assert golden['paramwise_cfg'] == paramwise_cfg, 'golden file is stale'
    assert_same(golden['groups'],
                our_records(model, paramwise_cfg, golden['optimizer']))


@pytest.mark.parametrize('config', sorted(GOLDEN['configs']))
def test_shipped_convnext_configs_match_mmdet(config):
    case = GOLDEN['configs'][config]
    model = model_from_shapes(case['params'])
    # The rebuilt tree must be the recorded model, name for name.
    assert [[n, list(p.shape), p.requires_grad]
            for n, p in model.named_parameters()] == case['params']
    assert_same(case['groups'],
                our_records(model, case['paramwise_cfg'], case['optimizer']))
