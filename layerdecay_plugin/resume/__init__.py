"""Resume is exact or loud.

torch's ``Optimizer.load_state_dict`` gives every param group the
checkpoint's ``lr``, ``lr_scale``, ``initial_lr``, ``weight_decay`` and
``group_name``. When the layer-decay config changed since the checkpoint was
saved, a resumed run would therefore train with the old lrs while the group
table shows the new ones, or fail with torch's bare "different number of
parameter groups". :func:`guard_resume` makes the optimizer our constructor
builds compare, before anything is loaded, the checkpoint's groups with its
own, and raise a :class:`~layerdecay_plugin.errors.LayerDecayConfigError`
that says which settings differ, what that changes and the ways out; with
``paramwise_cfg.resume_mismatch='keep_checkpoint'`` it loads the
checkpoint's values (torch's behaviour) after one warning that lists the
differences.

The comparison and the messages are pure functions on plain param-group
dicts, torch-free: the settings recorded and read back
(:mod:`.settings`), the groups compared (:mod:`.diff`), the verdict and its
message (:mod:`.message`), on values compared and shown as
:mod:`.values` does. Only :mod:`.guard` touches the optimizer.
"""
from .diff import COMPARED_KEYS, GroupDiff, compare_groups
from .guard import check_load, guard_resume, record_of
from .message import MAX_LINES, check_state_dict, mismatch_message
from .settings import (STATE_KEY, describe_settings, infer_settings,
                       settings_record)

__all__ = [
    'COMPARED_KEYS', 'GroupDiff', 'MAX_LINES', 'STATE_KEY', 'check_load',
    'check_state_dict', 'compare_groups', 'describe_settings',
    'guard_resume', 'infer_settings', 'mismatch_message', 'record_of',
    'settings_record'
]
