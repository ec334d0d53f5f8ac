"""How a checkpoint's param groups differ from an optimizer's
(:func:`compare_groups`), in the user's terms: groups renamed, new or
gone, parameters that move, values that change. Torch-free.
"""
import math
from typing import Any, Dict, List, Mapping, NamedTuple, Sequence, Tuple

from ..groupnames import parse_group_name
from .values import is_number, same_value, show_value

#: Group keys compared by group name: layer decay sets them, and torch would
#: replace them with the checkpoint's. ``lr`` is compared through
#: ``initial_lr`` (see :func:`compare_groups`).
COMPARED_KEYS = ('lr_scale', 'weight_decay', 'lr_mult', 'decay_mult')

_EXAMPLES = 3


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
                 for key in COMPARED_KEYS if not same_value(old.get(key),
                                                            new.get(key))]
        # The lr, where the lr_scale does not already say it changes:
        # initial_lr is the lr before any scheduler, lr when none ran.
        lr_key = 'initial_lr' if 'initial_lr' in old else 'lr'
        if same_value(old.get('lr_scale'), new.get('lr_scale')) \
                and ('initial_lr' in old) == ('initial_lr' in new) \
                and not same_value(old.get(lr_key), new.get(lr_key)):
            found.append(_change('lr', old.get(lr_key), new.get(lr_key)))
        if found:
            changes.setdefault(', '.join(found), []).append(name)
    # By tower (the first, then the others by name), then by layer (groups
    # come in parameter order: a stem, then stage 1's downsampling before
    # its blocks, ...).
    ordered = sorted(changes.items(), key=lambda item: _layer_key(item[1]))
    return [f'{", ".join(names)}: {change}' for change, names in ordered]


def _layer_key(names: Sequence[str]) -> Tuple[str, float]:
    parsed = parse_group_name(names[0])
    return ('', math.inf) if parsed is None \
        else (parsed.tower, parsed.layer_id)


def _change(key: str, old: Any, new: Any) -> str:
    def show(value):
        return f'{value:.3g}' if is_number(value) else show_value(value)
    return f'{key} {show(old)} -> {show(new)}'


def _count(items: Sequence, noun: str) -> str:
    return f'{len(items)} {noun}{"s" if len(items) != 1 else ""}'


def _examples(names: Sequence[str], most: int = _EXAMPLES) -> str:
    more = len(names) - most
    shown = ', '.join(names[:most])
    return f'{shown}, ...' if more > 0 else shown
