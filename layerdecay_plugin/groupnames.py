"""Group names: the one place that makes them and reads them back.

A group is named ``layer_{id}_{decay|no_decay}`` (mmdet's names), plus a
suffix for what sets it apart from the layer's default group (``_lr_x2``,
``_wd0.01``, extra option keys such as ``_momentum0.8``); the layer id is
data made into the name here and read back only here (by the hook, the
CLI, the summary and the resume guard). ``LayerDecayLrHook``'s scalars are
named here too: ``layer_{id}_lr``.

With several towers (``paramwise_cfg.backbone_attr`` a list), the groups of
the first tower and of the parameters outside every tower keep these
names; those of every other tower start with its attribute:
``language_model.layer_3_decay``, scalar ``language_model.layer_3_lr``.
The tower is read back here too (``''``: the first). Torch-free.
"""
import re
from collections import Counter
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple


class Settings(NamedTuple):
    """What a parameter gets besides its layer id.

    Attributes:
        label: ``'decay'`` or ``'no_decay'``, the word in the group name.
        weight_decay: Its weight decay.
        lr: Its lr before the layer scale.
        extra: Sorted ``(key, value)`` pairs of extra group keys (mmengine's
            ``custom_keys`` entries such as ``lr_mult``, ``momentum``).
    """
    label: str
    weight_decay: float
    lr: float
    extra: Tuple[Tuple[str, Any], ...] = ()


def group_names(groups: Sequence[Tuple], base_lr: float,
                base_wd: float) -> List[str]:
    """Names that say what each group is, unique among the groups.

    ``layer_{id}_{decay|no_decay}`` (mmdet's names), after
    :func:`tower_prefix` for a tower other than the first, then
    ``_lr_x{mult}`` when the lr is not the layer's default and
    ``_wd{value}`` when a ``decay`` group's weight decay is not the
    optimizer's. Groups that would still share a name differ in extra keys
    only; those keys are appended (``_momentum0.8``).

    Args:
        groups: ``(layer id, settings)`` or ``(layer id, settings, tower)``
            of each group, in group order (tower ``''``: the first, and
            the parameters outside every tower).
        base_lr: Optimizer lr.
        base_wd: Optimizer weight decay.

    Returns:
        list[str]: One name per group.
    """
    names = [tower_prefix(g[2] if len(g) > 2 else '') +
             _visible_name(g[0], g[1], base_lr, base_wd) for g in groups]
    counts = Counter(names)
    names = [
        name + _extra_suffix(g[1].extra) if counts[name] > 1 else name
        for name, g in zip(names, groups)
    ]
    seen: Counter = Counter()
    unique = []
    for name in names:  # values that print alike (1e-7 vs 1.00000001e-7)
        unique.append(f'{name}_{seen[name]}' if seen[name] else name)
        seen[name] += 1
    return unique


def tower_prefix(tower: str) -> str:
    """What the group and scalar names of a tower start with: ``''`` for
    the first tower (``tower=''``), else its attribute and a dot."""
    return f'{tower}.' if tower else ''


def _visible_name(layer_id: int, setting: Settings, base_lr: float,
                  base_wd: float) -> str:
    name = f'layer_{layer_id}_{setting.label}'
    if setting.lr != base_lr:
        name += f'_lr_x{setting.lr / base_lr:g}'
    if setting.label == 'decay' and setting.weight_decay != base_wd:
        name += f'_wd{setting.weight_decay:g}'
    return name


def _extra_suffix(extra: Sequence[Tuple[str, Any]]) -> str:
    return ''.join(f'_{key}{_short(value)}' for key, value in extra)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f'{value:g}'
    return str(value).replace(' ', '')


class GroupName(NamedTuple):
    """A group name read back.

    Attributes:
        layer_id: The layer id.
        decay: False for a ``no_decay`` group (weight decay 0).
        suffix: What follows ``layer_{id}_{decay|no_decay}`` (``''`` for a
            layer's default group).
        tower: The tower's attribute (``''``: the first tower, or outside
            every tower; mmdet's names).
    """
    layer_id: int
    decay: bool
    suffix: str = ''
    tower: str = ''


# An optional tower (dotted identifiers, the shortest that fits), then
# mmdet's name.
_TOWER = r'(?:((?:[A-Za-z_]\w*\.)*?[A-Za-z_]\w*)\.)?'
_GROUP_NAME = re.compile(r'^' + _TOWER + r'layer_(\d+)_(no_)?decay(.*)$')


def parse_group_name(group_name: Any) -> Optional[GroupName]:
    """A group name ``[{tower}.]layer_{id}_{decay|no_decay}{suffix}`` (ours
    or mmdet's) read back.

    Args:
        group_name: A param group's ``group_name``, or None.

    Returns:
        GroupName | None: None for groups not named that way.
    """
    match = _GROUP_NAME.match(str(group_name or ''))
    if not match:
        return None
    return GroupName(int(match.group(2)), not match.group(3), match.group(4),
                     match.group(1) or '')


def group_tower(group_name: Any) -> str:
    """The tower of a group name (``''``: the first tower, the parameters
    outside every tower, or a group not named ``layer_{id}_...``)."""
    parsed = parse_group_name(group_name)
    return '' if parsed is None else parsed.tower


def group_layer_id(group_name: Any) -> Optional[int]:
    """Layer id from a group name ``[{tower}.]layer_{id}_...`` (ours or
    mmdet's); the id counts within its tower (:func:`group_tower`).

    Args:
        group_name: A param group's ``group_name``, or None.

    Returns:
        int | None: The id, or None for groups not named that way.
    """
    parsed = parse_group_name(group_name)
    return None if parsed is None else parsed.layer_id


def layer_lr_scalar(layer_id: int, tower: str = '') -> str:
    """The name of the scalar ``LayerDecayLrHook`` logs for a layer's lr
    (``layer_{id}_lr``; ``{tower}.layer_{id}_lr`` for a tower other than
    the first)."""
    return f'{tower_prefix(tower)}layer_{layer_id}_lr'


_LAYER_LR = re.compile(r'^' + _TOWER + r'layer_(\d+)_lr$')


def parse_lr_scalar(key: str) -> Optional[Tuple[str, int]]:
    """``(tower, layer id)`` of a :func:`layer_lr_scalar` name, else None."""
    match = _LAYER_LR.match(key)
    return (match.group(1) or '', int(match.group(2))) if match else None


def parse_layer_lr_scalar(key: str) -> Optional[int]:
    """The layer id of a :func:`layer_lr_scalar` name of the first tower,
    else None."""
    parsed = parse_lr_scalar(key)
    return parsed[1] if parsed and not parsed[0] else None
