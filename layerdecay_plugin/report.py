"""A compact, one-table summary of the param groups (instead of one log
line per parameter), ordered by layer whatever the optimizer's order: the
rows (drawn by :mod:`.table`), the title above them (and with several
towers the sub-title of each tower's block), and the groups as plain data
(what the inspect command and ``LayerDecayLrHook``'s ``layer_decay.json``
hold)."""
import logging
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional,
                    Sequence, Tuple)

from mmengine.logging import MMLogger

from .config import KEY_ALIASES, parse_paramwise_cfg
from .groupnames import parse_group_name
from .table import MAX_WIDTH, GroupRow, format_group_table, wrap_lines

# Keys every layer-decay group has (initial_lr: added by lr schedulers);
# anything else in a group is an option that can set two otherwise
# identical-looking groups apart.
STANDARD_GROUP_KEYS = frozenset(
    ('params', 'param_names', 'lr', 'weight_decay', 'lr_scale', 'group_name',
     'initial_lr'))

#: The start of every table title (:func:`table_title`).
TITLE_START = 'layer decay: '
#: Where the logged table's left-out detail is.
LOG_HINT = ' (python -m layerdecay_plugin inspect CONFIG --wide shows all)'
# The LogRecord attribute with the notes of a logged table.
_NOTES = 'layer_decay_notes'


def format_extra(options: Mapping[str, Any]) -> str:
    """``key=value`` list of a group's extra options, sorted by key.

    Args:
        options: A group's keys beyond :data:`STANDARD_GROUP_KEYS`, e.g. the
            ``custom_keys`` entries mmengine copies into it.

    Returns:
        str: e.g. ``'decay_mult=0, lr_mult=0.1'``; empty without options.
    """
    return ', '.join(
        f'{k}={v:g}' if isinstance(v, float) else f'{k}={v}'
        for k, v in sorted(options.items()))


def group_extras(group: Mapping[str, Any],
                 defaults: Mapping[str, Any]) -> dict:
    """The keys of an optimizer param group that are not standard.

    torch copies every optimizer default (``betas``, ``eps``, ...) into each
    group; those are left out unless the group overrides them.

    Args:
        group: One of ``optimizer.param_groups``.
        defaults: ``optimizer.defaults``.

    Returns:
        dict: The group's own options, e.g. ``{'lr_mult': 0.1}``.
    """
    return {
        k: v
        for k, v in group.items() if k not in STANDARD_GROUP_KEYS and
        (k not in defaults or v != defaults[k])
    }


def table_title(family: str, decay_type: str, decay_rate: float,
                num_layers: Optional[int], base_lr: float,
                base_wd: float) -> str:
    """The line above the group table: what made these groups."""
    return (f'{TITLE_START}{family}, {decay_type}, decay_rate='
            f'{decay_rate:g}, num_layers={num_layers}, base lr='
            f'{base_lr:g}, weight decay={base_wd:g}')


def tower_titles(towers: Sequence[Mapping[str, Any]], decay_type: str,
                 base_lr: float, base_wd: float
                 ) -> Tuple[str, Optional[Dict[str, str]]]:
    """The title of the table and, with several towers, the sub-title of
    each tower's block.

    Args:
        towers: Per tower ``attr``, ``family``, ``decay_rate`` and
            ``num_layers``, the first first.
        decay_type: ``paramwise_cfg.decay_type``.
        base_lr: The optimizer's lr.
        base_wd: The optimizer's weight decay.

    Returns:
        tuple: :func:`table_title` and None for one tower; for several, a
        title without a family and ``blocks`` for
        ``format_group_table``: tower (``''``: the first, whose block also
        holds the parameters outside every tower) -> ``'attr: family,
        decay_rate=..., num_layers=...'``.
    """
    first = towers[0]
    if len(towers) == 1:
        return table_title(first['family'], decay_type, first['decay_rate'],
                           first['num_layers'], base_lr, base_wd), None
    blocks = {}
    for index, tower in enumerate(towers):
        text = (f"{tower['attr']}: {tower['family']}, decay_rate="
                f"{tower['decay_rate']:g}, num_layers={tower['num_layers']}")
        if not index:
            text += (f", and layer {tower['num_layers'] + 1}: the "
                     'parameters outside every tower')
        blocks[tower['attr'] if index else ''] = text
    return (f'{TITLE_START}{len(towers)} towers, {decay_type}, base lr='
            f'{base_lr:g}, weight decay={base_wd:g}'), blocks


def _record_titles(record: Optional[Mapping[str, Any]],
                   settings: Optional[Mapping[str, Any]]
                   ) -> Tuple[Optional[str], Optional[Dict[str, str]]]:
    if not record:
        return None, None
    paramwise = record.get('paramwise_cfg') or {}
    # decay_type's default lives in the config's parser
    parsed = parse_paramwise_cfg(
        {k: paramwise[k] for k in ('decay_rate', 'decay_type',
                                   *KEY_ALIASES) if k in paramwise})
    towers = [dict(t) for t in record.get('towers') or ()] or [dict(
        attr=parsed.backbone_attr, family=record.get('family', '?'),
        decay_rate=parsed.decay_rate,
        num_layers=record.get('num_layers', paramwise.get('num_layers')))]
    values = dict(lr=record['lr'], weight_decay=record['weight_decay'])
    values.update(settings or {})
    for key in ('decay_rate', 'num_layers'):  # the first tower's groups
        towers[0][key] = values.get(key, towers[0][key])
    return tower_titles(towers, parsed.decay_type, values['lr'],
                        values['weight_decay'])


def record_title(record: Optional[Mapping[str, Any]],
                 settings: Optional[Mapping[str, Any]] = None
                 ) -> Optional[str]:
    """The table title of the settings an optimizer was built with.

    Args:
        record: What ``resume.record_of(optimizer)`` gives (``paramwise_cfg``,
            ``lr``, ``weight_decay``, ``family``, ``num_layers``, with
            several towers ``towers``), or None.
        settings: Values that replace the record's: ``decay_rate``,
            ``num_layers`` (of the first tower), ``lr``, ``weight_decay``
            (those that trained, where they are not the record's).

    Returns:
        str | None: The title the constructor logged above its table
        (:func:`tower_titles`); None without a record (an optimizer that
        another constructor built).
    """
    return _record_titles(record, settings)[0]


def record_blocks(record: Optional[Mapping[str, Any]],
                  settings: Optional[Mapping[str, Any]] = None
                  ) -> Optional[Dict[str, str]]:
    """The sub-titles of the towers' blocks the constructor logged
    (:func:`tower_titles`), from the same arguments as
    :func:`record_title`; None for one tower or without a record."""
    return _record_titles(record, settings)[1]


def group_data(param_groups: Sequence[Mapping[str, Any]],
               defaults: Mapping[str, Any],
               numel: Callable[[Any], int]) -> List[Dict[str, Any]]:
    """An optimizer's param groups as plain data, in its order.

    Args:
        param_groups: ``optimizer.param_groups``.
        defaults: ``optimizer.defaults`` (see :func:`group_extras`).
        numel: Number of elements of a parameter (before any sharding).

    Returns:
        list[dict]: Per group ``group_name`` (``group_{index}`` for a group
        without one), ``layer_id`` (None for groups not named
        ``layer_{id}_...``), ``lr_scale``, ``lr``, ``initial_lr`` (where an
        lr scheduler set it), ``weight_decay``, ``num_tensors``,
        ``num_elements``, ``extra`` (:func:`group_extras`) and, for a
        tower other than the first, ``tower`` (its attribute; the ids of
        each tower count apart).
    """
    out = []
    for index, group in enumerate(param_groups):
        name = str(group.get('group_name', f'group_{index}'))
        parsed = parse_group_name(name)
        data = dict(group_name=name,
                    layer_id=None if parsed is None else parsed.layer_id,
                    lr_scale=group.get('lr_scale', 1.0), lr=group['lr'])
        if 'initial_lr' in group:
            data['initial_lr'] = group['initial_lr']
        data.update(weight_decay=group.get('weight_decay', 0.),
                    num_tensors=len(group['params']),
                    num_elements=sum(numel(p) for p in group['params']),
                    extra=group_extras(group, defaults))
        if parsed is not None and parsed.tower:
            data['tower'] = parsed.tower
        out.append(data)
    return out


def log_group_table(rows: Iterable[GroupRow], title: str,
                    notes: Sequence[str] = (),
                    blocks: Optional[Mapping[str, str]] = None) -> None:
    """Log the table to the current mmengine logger, as one record (which
    :class:`GroupTableFilter` recognises).

    Args:
        rows: One row per group.
        title: The line above the table (:func:`tower_titles`).
        notes: What the groups alone do not show (frozen ids, groups kept
            apart); empty ones are skipped.
        blocks: With several towers, the sub-title of each tower's block
            (:func:`tower_titles`).
    """
    notes = [n for n in notes if n]
    MMLogger.get_current_instance().log(
        logging.INFO,
        '\n' + format_group_table(rows, title, notes=notes, hint=LOG_HINT,
                                  blocks=blocks),
        extra={_NOTES: notes})


class GroupTableFilter(logging.Filter):
    """Drops the table of :func:`log_group_table` records, keeping their
    notes, and lets every other record through (the inferred
    ``num_layers``, config notes): for a caller that prints its own table
    from the optimizer's groups, the inspect command, which adds it to the
    current ``MMLogger`` while it builds the optimizer. The notes say what
    the groups cannot (frozen ids, which ``custom_keys`` entries matched)."""

    def filter(self, record: logging.LogRecord) -> bool:
        notes = getattr(record, _NOTES, None)
        if notes is None:
            return True
        record.msg = '\n' + '\n'.join(wrap_lines(notes, MAX_WIDTH, ' '))
        record.args = ()
        return bool(notes)
