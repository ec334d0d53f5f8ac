"""The golden groups of the light tier are mmdet's groups of today: computed
again with the recording script's own functions, they equal the committed
file."""
import json
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / 'tools'))

import record_golden_groups as record  # noqa: E402


def test_golden_groups_are_current():
    committed = json.loads(record.GOLDEN.read_text())
    # Through JSON as the script writes it: tuples become lists.
    fresh = json.loads(record.dumps(record.golden_data()))
    assert fresh == committed, (
        'tests/light/golden_groups.json is stale (mmdet, a toy model or a '
        'shipped config changed); run '
        '`.venv/bin/python tools/record_golden_groups.py` and commit it')
