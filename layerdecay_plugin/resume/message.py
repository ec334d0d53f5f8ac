"""The verdict on a checkpoint's optimizer state: nothing when its groups
are the optimizer's, else the error (or, with
``resume_mismatch='keep_checkpoint'``, the warning) that says which
settings differ, what that changes and the ways out. Torch-free.
"""
from typing import List, Mapping, Optional, Sequence

from ..config import RESUME_MISMATCH_KEY
from ..errors import LayerDecayConfigError
from .diff import GroupDiff, compare_groups
from .settings import STATE_KEY, describe_settings

#: How many lines of each list a message shows.
MAX_LINES = 10


def _capped(lines: Sequence[str]) -> List[str]:
    if len(lines) <= MAX_LINES:
        return list(lines)
    return list(lines[:MAX_LINES - 1]) + [
        f'... and {len(lines) - MAX_LINES + 1} more']


def mismatch_message(settings: Sequence[str], diff: GroupDiff,
                     keep_checkpoint: bool) -> str:
    """The error (or, with ``keep_checkpoint``, the warning) for a
    checkpoint whose groups differ from the config's.

    Args:
        settings: :func:`~.settings.describe_settings` lines.
        diff: :func:`~.diff.compare_groups` result, with lines.
        keep_checkpoint: Whether ``resume_mismatch='keep_checkpoint'`` is
            set and the state is loadable: the warning, not the error.

    Returns:
        str: The message.
    """
    key = f'optim_wrapper.paramwise_cfg.{RESUME_MISMATCH_KEY}'
    if keep_checkpoint:
        head = ('layer decay: resuming with the checkpoint\'s param groups '
                f"as {key}='keep_checkpoint' asks: the run trains with "
                'their lr_scale, lr and weight decay, not with the ones the '
                'group table of this config shows.')
    else:
        head = ('layer decay: the checkpoint\'s optimizer was built with '
                'other layer-decay param groups than this config builds. '
                'torch\'s Optimizer.load_state_dict would give every group '
                'the checkpoint\'s lr, lr_scale, initial_lr and weight '
                'decay, so the lrs that train would not be the ones the '
                'group table shows; nothing was loaded.')
    parts = [head, 'Settings that differ (checkpoint -> this config):']
    parts += [f'  - {line}' for line in _capped(settings)] or [
        '  - none recorded or readable from the groups; see the groups']
    parts.append('What changes in the param groups (checkpoint -> this '
                 'config):')
    parts += [f'  - {line}' for line in _capped(diff.lines)]
    if keep_checkpoint:
        return '\n'.join(parts)
    parts += [
        'Ways out:',
        '  - resume as saved: set optim_wrapper back to the checkpoint\'s '
        'settings above;',
        '  - change layer decay from this checkpoint on: load it as weights '
        'only, load_from=<checkpoint> without resume (a fresh optimizer '
        'state and lr schedule, counted from iteration 0);',
    ]
    if diff.loadable:
        parts.append(
            f"  - keep the checkpoint's values for this run: set {key}="
            "'keep_checkpoint' (one warning lists these differences).")
    else:
        parts.append(
            f"  - {key}='keep_checkpoint' cannot help: the checkpoint's "
            'optimizer state belongs to other groups or parameters (torch '
            'would refuse it, or give moments to the wrong parameters).')
    return '\n'.join(parts)


def check_state_dict(current_groups: Sequence[Mapping],
                     current_record: Optional[Mapping],
                     state_dict: Mapping, mode: str) -> Optional[str]:
    """Check a checkpoint's optimizer state against the groups built.

    Args:
        current_groups: The optimizer's ``param_groups``.
        current_record: Its :func:`~.settings.settings_record`.
        state_dict: The optimizer state about to be loaded.
        mode: ``'error'`` or ``'keep_checkpoint'``.

    Returns:
        str | None: None when the groups are the same; with
        ``'keep_checkpoint'`` and a loadable state, the warning to log.

    Raises:
        LayerDecayConfigError: When the groups differ, unless
            ``'keep_checkpoint'`` applies.
    """
    saved = state_dict.get('param_groups')
    if not isinstance(saved, (list, tuple)):
        return None  # not an optimizer state: torch reports it
    diff = compare_groups(saved, current_groups)
    if not diff.lines:
        return None
    settings = describe_settings(state_dict.get(STATE_KEY), current_record,
                                 saved, current_groups)
    keep = mode == 'keep_checkpoint' and diff.loadable
    message = mismatch_message(settings, diff, keep)
    if not keep:
        raise LayerDecayConfigError(message)
    return message
