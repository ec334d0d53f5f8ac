"""Resume is exact or loud.

torch's ``Optimizer.load_state_dict`` gives every param group the
checkpoint's ``lr``, ``lr_scale``, ``initial_lr``, ``weight_decay`` and
``group_name``. When the layer-decay config changed since the checkpoint was
saved, a resumed run would therefore train with the old lrs while the group
table shows the new ones, or fail with torch's bare "different number of
parameter groups". :func:`guard_resume` makes the optimizer our constructor
builds compare, before anything is loaded, the checkpoint's groups with its
own, and raise a :class:`LayerDecayConfigError` that says which settings
differ, what that changes and the ways out; with
``paramwise_cfg.resume_mismatch='keep_checkpoint'`` it loads the checkpoint's
values (torch's behaviour) after one warning that lists the differences.

The comparison and the messages are pure functions on plain param-group
dicts (no torch); only :func:`guard_resume` touches the optimizer.
"""
import logging
import math
import re
import types
from typing import (Any, Dict, List, Mapping, NamedTuple, Optional, Sequence,
                    Tuple)

from mmengine.logging import print_log

from .config import RESUME_MISMATCH_KEY
from .errors import LayerDecayConfigError
from .grouping import group_layer_id

#: Top-level key of the optimizer state dict where the settings a checkpoint
#: was built with are recorded (the param groups stay exactly mmdet's).
STATE_KEY = 'layer_decay'

#: Group keys compared by group name: layer decay sets them, and torch would
#: replace them with the checkpoint's. ``lr`` is compared through
#: ``initial_lr`` (see :func:`compare_groups`).
COMPARED_KEYS = ('lr_scale', 'weight_decay', 'lr_mult', 'decay_mult')

#: How many lines of each list a message shows.
MAX_LINES = 10

# A layer group at the layer's default lr and weight decay (ours and mmdet's
# names); groups of mmengine options carry suffixes (``_lr_x2``).
_PLAIN_GROUP = re.compile(r'^layer_(\d+)_(no_)?decay$')
_EXAMPLES = 3


# ------------------------------------------------------------ torch-free


def settings_record(paramwise_cfg: Mapping, lr: float,
                    weight_decay: float) -> Dict[str, Any]:
    """The settings an optimizer was built with, as plain values that any
    ``torch.load`` (also ``weights_only=True``) reads back.

    Args:
        paramwise_cfg: The ``paramwise_cfg`` as written in the config.
        lr: The optimizer's base lr.
        weight_decay: The optimizer's base weight decay.

    Returns:
        dict: ``paramwise_cfg`` (without ``resume_mismatch``, which does not
        change the groups), ``lr`` and ``weight_decay``.
    """
    cfg = {k: _plain(v) for k, v in paramwise_cfg.items()
           if k != RESUME_MISMATCH_KEY}
    return dict(paramwise_cfg=cfg, lr=float(lr),
                weight_decay=float(weight_decay))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def infer_settings(param_groups: Sequence[Mapping]) -> Dict[str, float]:
    """Layer-decay settings read back from layer groups (ours or mmdet's):
    ``decay_rate`` from the lr scales of the two highest consecutive layer
    ids, ``num_layers`` from the highest id and its scale, ``lr`` from its
    ``initial_lr`` (else ``lr``) and scale, ``weight_decay`` as the largest
    of the ``layer_{id}_decay`` groups.

    Args:
        param_groups: Param groups, or their state-dict form.

    Returns:
        dict: The settings found; empty for groups not named
        ``layer_{id}_decay`` / ``layer_{id}_no_decay``.
    """
    plain: Dict[int, Mapping] = {}
    for group in param_groups:
        match = _PLAIN_GROUP.match(str(group.get('group_name', '')))
        if match and _number(group.get('lr_scale')):
            plain.setdefault(int(match.group(1)), group)
    if not plain:
        return {}
    found: Dict[str, float] = {}
    top = max(plain)
    scale = plain[top]['lr_scale']
    below = [i for i in plain if i + 1 in plain]
    if below:
        low = max(below)
        if plain[low + 1]['lr_scale']:
            rate = plain[low]['lr_scale'] / plain[low + 1]['lr_scale']
            found['decay_rate'] = float(f'{rate:.6g}')
    rate = found.get('decay_rate')
    if scale == 1:
        found['num_layers'] = top - 1
    elif rate and rate != 1 and scale > 0:
        found['num_layers'] = top - 1 + round(math.log(scale) /
                                              math.log(rate))
    lr = plain[top].get('initial_lr', plain[top].get('lr'))
    if _number(lr) and scale:
        found['lr'] = float(f'{lr / scale:.6g}')
    decays = [g['weight_decay'] for g in plain.values()
              if not g['group_name'].endswith('_no_decay')
              and _number(g.get('weight_decay'))]
    if decays:
        found['weight_decay'] = max(decays)
    return found


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def describe_settings(saved_record: Optional[Mapping],
                      current_record: Optional[Mapping],
                      saved_groups: Sequence[Mapping],
                      current_groups: Sequence[Mapping]) -> List[str]:
    """Settings that differ, ``checkpoint -> config``: the recorded
    settings where both sides have them (see :func:`settings_record`),
    then those in effect, read from the groups (:func:`infer_settings`),
    where they add something.

    Args:
        saved_record: The checkpoint's record, or None (mmdet's
            constructor, the default constructor, an FSDP checkpoint).
        current_record: This config's record.
        saved_groups: The checkpoint's param groups.
        current_groups: This optimizer's param groups.

    Returns:
        list[str]: One line per setting.
    """
    lines = []
    shown: Dict[str, Tuple[Any, Any]] = {}
    if saved_record and current_record:
        old_cfg = saved_record.get('paramwise_cfg', {})
        new_cfg = current_record.get('paramwise_cfg', {})
        for key in sorted(set(old_cfg) | set(new_cfg)):
            old, new = old_cfg.get(key), new_cfg.get(key)
            if not _same(old, new):
                lines.append(f'paramwise_cfg.{key}: {_show(old)} -> '
                             f'{_show(new)}')
                shown[key] = (old, new)
        for key in ('lr', 'weight_decay'):
            old, new = saved_record.get(key), current_record.get(key)
            if not _same(old, new):
                lines.append(f'optimizer.{key}: {_show(old)} -> '
                             f'{_show(new)}')
                shown[key] = (old, new)
    old_eff, new_eff = (infer_settings(saved_groups),
                        infer_settings(current_groups))
    for key in ('decay_rate', 'num_layers', 'lr', 'weight_decay'):
        if key not in old_eff or key not in new_eff:
            continue
        old, new = old_eff[key], new_eff[key]
        if _same(old, new) or (key in shown and _same(shown[key][0], old)
                               and _same(shown[key][1], new)):
            continue
        lines.append(f'{key} in effect (read from the groups): '
                     f'{_show(old)} -> {_show(new)}')
    return lines


def _same(a: Any, b: Any) -> bool:
    if _number(a) and _number(b):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.)
    return a == b


def _show(value: Any) -> str:
    if value is None:
        return 'not set'
    if isinstance(value, float):
        return f'{value:g}'
    return repr(value)


class GroupDiff(NamedTuple):
    """How a checkpoint's param groups differ from an optimizer's.

    Attributes:
        lines: What changes, one line each, in the user's terms.
        loadable: Whether torch would load the checkpoint's state into the
            right parameters: as many groups, of the same sizes, and (where
            both name their parameters) the same parameters in the same
            order. Only then can ``resume_mismatch='keep_checkpoint'`` keep
            the checkpoint's values.
    """
    lines: List[str]
    loadable: bool


def compare_groups(saved: Sequence[Mapping],
                   current: Sequence[Mapping]) -> GroupDiff:
    """Compare a checkpoint's param groups with an optimizer's, by group
    name and parameter name where both sides name them (ours and mmdet's
    groups carry ``param_names``), else by count and sizes (mmengine's
    default constructor).

    Same-named groups must agree on :data:`COMPARED_KEYS` and on
    ``initial_lr`` (what mmengine's schedulers scale, set on both sides when
    a ``Runner`` resumes; ``lr`` when neither side has it: no scheduler).

    Args:
        saved: The checkpoint's ``param_groups``.
        current: The optimizer's ``param_groups``.

    Returns:
        GroupDiff: The differences (no lines: the groups are the same).
    """
    sizes = ([len(g['params']) for g in saved],
             [len(g['params']) for g in current])
    loadable = sizes[0] == sizes[1]
    named = all('param_names' in g for g in list(saved) + list(current))
    if not named:
        return GroupDiff(_count_lines(saved, current, sizes), loadable)
    names = [[n for g in groups for n in g['param_names']]
             for groups in (saved, current)]
    loadable = loadable and names[0] == names[1]
    renamed = _renamed(saved, current)
    # What changes for the groups that stay first: their lrs.
    lines = _value_lines(saved, current, renamed) + \
        _membership_lines(saved, current, renamed)
    if not lines and names[0] != names[1]:
        lines.append('the parameters are in another order than in the '
                     'checkpoint: its optimizer state would go to the '
                     'wrong parameters')
    return GroupDiff(lines, loadable)


def _name(group: Mapping, index: int) -> str:
    return str(group.get('group_name', f'group {index}'))


def _count_lines(saved, current, sizes) -> List[str]:
    lines = []
    if len(saved) != len(current):
        lines.append(f'the checkpoint has {len(saved)} param groups, this '
                     f'config builds {len(current)}')
    for i, (old, new) in enumerate(zip(*sizes)):
        if old != new:
            lines.append(f'{_name(current[i], i)} (group {i}) holds {new} '
                         f'parameters, {old} in the checkpoint')
    if lines and not all('param_names' in g for g in saved):
        lines.insert(0, 'the checkpoint\'s groups name no parameters: it '
                     'was saved without layer decay (e.g. mmengine\'s '
                     'default constructor)')
    return lines


def _members(groups) -> Dict[str, List[str]]:
    return {_name(g, i): list(g['param_names']) for i, g in enumerate(groups)}


def _renamed(saved, current) -> Dict[str, str]:
    """Groups gone whose parameters are exactly a new group's: renamed
    (a changed num_layers shifts the ids of whole layers), old -> new."""
    old_members, new_members = _members(saved), _members(current)
    new = [n for n in new_members if n not in old_members]
    renamed: Dict[str, str] = {}
    for old in old_members:
        if old in new_members:
            continue
        same = [n for n in new if new_members[n] == old_members[old]
                and n not in renamed.values()]
        if same:
            renamed[old] = same[0]
    return renamed


def _membership_lines(saved, current, renamed: Dict[str, str]) -> List[str]:
    where = [{n: _name(g, i) for i, g in enumerate(groups)
              for n in g['param_names']} for groups in (saved, current)]
    members = [_members(saved), _members(current)]
    new = [n for n in members[1] if n not in members[0]]
    gone = [n for n in members[0] if n not in members[1]]
    lines = []
    if len(renamed) == 1:
        (old, name), = renamed.items()
        lines.append(f'group {old} is now {name} '
                     f'({_count(members[0][old], "parameter")})')
    elif renamed:
        lines.append(f'{len(renamed)} groups are renamed: ' + _examples(
            [f'{old} -> {name}' for old, name in renamed.items()], 4))
    for names, side, what in ((new, 1, 'new'), (gone, 0, 'gone')):
        only = [(name, _count(members[side][name], 'parameter'))
                for name in names
                if name not in renamed and name not in renamed.values()]
        if len(only) == 1:
            lines.append(f'group {only[0][0]} is {what} ({only[0][1]})')
        elif only:
            lines.append(f'{len(only)} groups are {what}: ' + _examples(
                [f'{name} ({count})' for name, count in only], 4))
    moves: Dict[Tuple[str, str], List[str]] = {}
    for param, old in where[0].items():
        now = where[1].get(param)
        if now is not None and now != old and renamed.get(old) != now:
            moves.setdefault((old, now), []).append(param)
    for (old, now), params in moves.items():
        verb = 'moves' if len(params) == 1 else 'move'
        lines.append(f'{_count(params, "parameter")} {verb} from {old} to '
                     f'{now} ({_examples(params)})')
    for a, b, text in ((0, 1, 'of the checkpoint {} in no group here'),
                       (1, 0, '{} in no group of the checkpoint')):
        missing = [n for n in where[a] if n not in where[b]]
        if missing:
            verb = 'is' if len(missing) == 1 else 'are'
            lines.append(f'{_count(missing, "parameter")} '
                         f'{text.format(verb)} ({_examples(missing)})')
    return lines


def _value_lines(saved, current, renamed: Dict[str, str]) -> List[str]:
    old_by_name = {_name(g, i): g for i, g in enumerate(saved)}
    renamed_from = {new: old for old, new in renamed.items()}
    changes: Dict[str, List[str]] = {}
    for i, new in enumerate(current):
        name = _name(new, i)
        old = old_by_name.get(renamed_from.get(name, name))
        if old is None:
            continue
        found = [_change(key, old.get(key), new.get(key))
                 for key in COMPARED_KEYS if not _same(old.get(key),
                                                       new.get(key))]
        # The lr, where the lr_scale does not already say it changes:
        # initial_lr is the lr before any scheduler, lr when none ran.
        lr_key = 'initial_lr' if 'initial_lr' in old else 'lr'
        if _same(old.get('lr_scale'), new.get('lr_scale')) \
                and ('initial_lr' in old) == ('initial_lr' in new) \
                and not _same(old.get(lr_key), new.get(lr_key)):
            found.append(_change('lr', old.get(lr_key), new.get(lr_key)))
        if found:
            changes.setdefault(', '.join(found), []).append(name)
    # By layer (groups come in parameter order: a stem, then stage 1's
    # downsampling before its blocks, ...).
    ordered = sorted(changes.items(), key=lambda item: _layer_key(item[1]))
    return [f'{", ".join(names)}: {change}' for change, names in ordered]


def _layer_key(names: Sequence[str]) -> float:
    layer_id = group_layer_id(names[0])
    return math.inf if layer_id is None else layer_id


def _change(key: str, old: Any, new: Any) -> str:
    def show(value):
        return f'{value:.3g}' if _number(value) else _show(value)
    return f'{key} {show(old)} -> {show(new)}'


def _count(items: Sequence, noun: str) -> str:
    return f'{len(items)} {noun}{"s" if len(items) != 1 else ""}'


def _examples(names: Sequence[str], most: int = _EXAMPLES) -> str:
    more = len(names) - most
    shown = ', '.join(names[:most])
    return f'{shown}, ...' if more > 0 else shown


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
        settings: :func:`describe_settings` lines.
        diff: :func:`compare_groups` result, with lines.
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
        current_record: Its :func:`settings_record`.
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


# ----------------------------------------------------------------- torch


def guard_resume(optimizer, record: Mapping, mode: str = 'error') -> None:
    """Make ``optimizer`` check every state dict it loads against its own
    groups (:func:`check_state_dict`) before loading anything, and record
    ``record`` in the state dicts it saves (under :data:`STATE_KEY`).

    Instance methods, not ``Optimizer.register_load_state_dict_pre_hook``:
    torch 2.0 has no such hook, and ``ZeroRedundancyOptimizer`` loads its
    per-rank state before calling the hooks. Every path that ends in
    ``optimizer.load_state_dict`` goes through it: mmengine's
    ``Runner.resume`` and ``load_or_resume``, ``OptimWrapper`` /
    ``AmpOptimWrapper.load_state_dict``, FSDP after
    ``optim_state_dict_to_load``, ``ZeroRedundancyOptimizer``, and the
    base optimizer of DeepSpeed's ZeRO.

    Args:
        optimizer (torch.optim.Optimizer): The optimizer the constructor
            built.
        record: :func:`settings_record` of the config it was built from.
        mode: ``paramwise_cfg.resume_mismatch``.
    """
    optimizer._layer_decay_resume = (dict(record), mode)
    # On the instance, so torch's Optimizer.__getstate__ (which keeps only
    # defaults, state and param_groups) leaves them out of copies.
    optimizer.load_state_dict = types.MethodType(_load_state_dict, optimizer)
    optimizer.state_dict = types.MethodType(_state_dict, optimizer)


def record_of(optimizer) -> Optional[Dict[str, Any]]:
    """The :func:`settings_record` an optimizer was built with (None for an
    optimizer the plugin did not build)."""
    guard = getattr(optimizer, '_layer_decay_resume', None)
    return None if guard is None else dict(guard[0])


def check_load(optimizer, state_dict: Mapping) -> None:
    """Check a state dict that ``optimizer`` (or a wrapper of it, such as
    DeepSpeed's ZeRO optimizer) is about to load, as its own
    ``load_state_dict`` does; nothing for an optimizer
    :func:`guard_resume` did not guard.

    Args:
        optimizer (torch.optim.Optimizer): The optimizer the constructor
            built.
        state_dict: The optimizer state about to be loaded into it.

    Raises:
        LayerDecayConfigError: See :func:`check_state_dict`.
    """
    guard = getattr(optimizer, '_layer_decay_resume', None)
    if guard is None:
        return
    record, mode = guard
    warning = check_state_dict(optimizer.param_groups, record, state_dict,
                               mode)
    if warning is not None:
        print_log(warning, logger='current', level=logging.WARNING)


def _load_state_dict(self, state_dict: dict) -> None:
    check_load(self, state_dict)
    type(self).load_state_dict(self, state_dict)


def _state_dict(self) -> dict:
    state = type(self).state_dict(self)
    # Not on ranks where ZeroRedundancyOptimizer returns nothing.
    if isinstance(state, dict) and 'param_groups' in state:
        state[STATE_KEY] = dict(self._layer_decay_resume[0])
    return state


__all__ = [
    'COMPARED_KEYS', 'GroupDiff', 'STATE_KEY', 'check_load',
    'check_state_dict',
    'compare_groups', 'describe_settings', 'guard_resume', 'infer_settings',
    'mismatch_message', 'record_of', 'settings_record'
]
