"""The golden groups of the light tier are today's: computed again with the
recording script's own functions, they equal the committed files (mmdet's
groups for ConvNeXt, ours for a real backbone of every family)."""
import json
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / 'tools'))

import record_golden_groups as record  # noqa: E402

REGENERATE = ('run `.venv/bin/python tools/record_golden_groups.py` and '
              'commit it')


def test_golden_groups_are_current():
    committed = json.loads(record.GOLDEN.read_text())
    # Through JSON as the script writes it: tuples become lists.
    fresh = json.loads(record.dumps(record.golden_data()))
    assert fresh == committed, (
        'tests/light/golden_groups.json is stale (mmdet, a toy model or a '
        f'shipped config changed); {REGENERATE}')


def test_family_groups_are_current():
    committed = json.loads(record.FAMILY_GOLDEN.read_text())
    fresh = json.loads(record.dumps(record.family_data()))
    assert fresh == committed, (
        'tests/light/family_groups.json is stale (our rules or grouping, a '
        'recorded backbone of mmdet, mmpretrain or timm, or a toy model '
        'changed). It holds our own groups, not a reference: a difference is '
        'a change in the lrs users get, so read `git diff` of the file after '
        'regenerating and check the new ids against the network '
        f'(tests/test_forward_order.py) before committing; {REGENERATE}')
