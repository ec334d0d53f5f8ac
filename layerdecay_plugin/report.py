"""A compact, one-table summary of the param groups (instead of one log
line per parameter), ordered by layer whatever the optimizer's order: the
rows, the title above them, and the groups as plain data (what the inspect
command and ``LayerDecayLrHook``'s ``layer_decay.json`` hold)."""
import logging
from typing import (Any, Callable, Dict, Iterable, List, Mapping, NamedTuple,
                    Optional, Sequence, Union)

from mmengine.logging import print_log

from .config import parse_paramwise_cfg
from .groupnames import group_layer_id

# Keys every layer-decay group has (initial_lr: added by lr schedulers);
# anything else in a group is an option that can set two otherwise
# identical-looking groups apart.
STANDARD_GROUP_KEYS = frozenset(
    ('params', 'param_names', 'lr', 'weight_decay', 'lr_scale', 'group_name',
     'initial_lr'))

#: The start of every table title (:func:`table_title`).
TITLE_START = 'layer decay: '


class GroupRow(NamedTuple):
    """What the report shows of one param group.

    ``layer_id`` is ``'-'`` for groups without one (other constructors);
    ``extra`` lists the group's non-standard keys (``decay_mult=0``, ...).
    """
    group_name: str
    layer_id: Union[int, str]
    lr_scale: float
    lr: float
    weight_decay: float
    num_tensors: int
    num_elements: int
    sample: str = ''
    extra: str = ''


_COLUMNS = ('group', 'layer id', 'lr_scale', 'lr', 'weight decay',
            '#tensors', '#elements', 'extra', 'sample parameters')
_LEFT = ('group', 'extra', 'sample parameters')


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


def row_order(layer_id: Any, weight_decay: float) -> tuple:
    """Sort key of a group: layer 0 first, the head last, groups without a
    layer id (other constructors) after them; within a layer, groups with
    weight decay before those without."""
    has_id = isinstance(layer_id, int)
    return (not has_id, layer_id if has_id else 0, weight_decay == 0)


def sort_rows(rows: Iterable[GroupRow]) -> List[GroupRow]:
    """Rows ordered by layer id, decay before no-decay; stable otherwise.

    Only the table is sorted: the optimizer keeps mmdet's group order, which
    its saved state depends on.
    """
    return sorted(rows, key=lambda r: row_order(r.layer_id, r.weight_decay))


def format_group_table(rows: Iterable[GroupRow],
                       title: str = '',
                       samples: bool = False) -> str:
    """Render param groups as a plain ASCII table, ordered by layer.

    Plain string formatting on purpose: rich's renderer took ~30x the time
    of building the optimizer itself on a ConvNeXt-XL detector, and this
    table is built on every training start.

    Args:
        rows: One row per group, in any order (see :func:`sort_rows`).
        title: Optional title line.
        samples: Add a column with a sample of parameter names.

    Returns:
        str: The table, ASCII only, suitable for log files. The ``extra``
        column appears only when some group has extra options.
    """
    rows = sort_rows(rows)
    shown = [
        c for c in _COLUMNS
        if (c != 'extra' or any(r.extra for r in rows)) and (
            c != 'sample parameters' or samples)
    ]
    cells: List[Sequence[str]] = []
    for row in rows:
        values = dict(
            zip(_COLUMNS,
                (row.group_name, str(row.layer_id), f'{row.lr_scale:.4g}',
                 f'{row.lr:.4g}', f'{row.weight_decay:g}',
                 str(row.num_tensors), f'{row.num_elements:,}', row.extra,
                 row.sample)))
        cells.append([values[c] for c in shown])
    widths = [
        max([len(c)] + [len(r[i]) for r in cells])
        for i, c in enumerate(shown)
    ]

    def line(values: Sequence[str]) -> str:
        return '| ' + ' | '.join(
            v.ljust(w) if c in _LEFT else v.rjust(w)
            for v, w, c in zip(values, widths, shown)) + ' |'

    rule = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'
    out = ([title] if title else []) + [rule, line(shown), rule]
    out += [line(r) for r in cells] + [rule]
    return '\n'.join(out)


def table_title(family: str, decay_type: str, decay_rate: float,
                num_layers: Optional[int], base_lr: float,
                base_wd: float) -> str:
    """The line above the group table: what made these groups."""
    return (f'{TITLE_START}{family}, {decay_type}, decay_rate='
            f'{decay_rate:g}, num_layers={num_layers}, base lr='
            f'{base_lr:g}, weight decay={base_wd:g}')


def record_title(record: Optional[Mapping[str, Any]],
                 settings: Optional[Mapping[str, Any]] = None
                 ) -> Optional[str]:
    """The table title of the settings an optimizer was built with.

    Args:
        record: What ``resume.record_of(optimizer)`` gives (``paramwise_cfg``,
            ``lr``, ``weight_decay``, ``family``, ``num_layers``), or None.
        settings: Values that replace the record's: ``decay_rate``,
            ``num_layers``, ``lr``, ``weight_decay`` (those that trained,
            where they are not the record's).

    Returns:
        str | None: The title the constructor logged above its table
        (:func:`table_title`); None without a record (an optimizer that
        another constructor built).
    """
    if not record:
        return None
    paramwise = record.get('paramwise_cfg') or {}
    # decay_type's default lives in the config's parser
    parsed = parse_paramwise_cfg(
        {k: paramwise[k] for k in ('decay_rate', 'decay_type')
         if k in paramwise})
    values = dict(decay_rate=parsed.decay_rate,
                  num_layers=record.get('num_layers',
                                        paramwise.get('num_layers')),
                  lr=record['lr'], weight_decay=record['weight_decay'])
    values.update(settings or {})
    return table_title(record.get('family', '?'), parsed.decay_type,
                       values['decay_rate'], values['num_layers'],
                       values['lr'], values['weight_decay'])


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
        ``num_elements`` and ``extra`` (:func:`group_extras`).
    """
    out = []
    for index, group in enumerate(param_groups):
        name = str(group.get('group_name', f'group_{index}'))
        data = dict(group_name=name, layer_id=group_layer_id(name),
                    lr_scale=group.get('lr_scale', 1.0), lr=group['lr'])
        if 'initial_lr' in group:
            data['initial_lr'] = group['initial_lr']
        data.update(weight_decay=group.get('weight_decay', 0.),
                    num_tensors=len(group['params']),
                    num_elements=sum(numel(p) for p in group['params']),
                    extra=group_extras(group, defaults))
        out.append(data)
    return out


def log_group_table(rows: Iterable[GroupRow], title: str) -> None:
    """Log the table to the current mmengine logger, as one record (which
    :class:`GroupTableFilter` recognises)."""
    print_log('\n' + format_group_table(rows, title), logger='current')


class GroupTableFilter(logging.Filter):
    """Drops the records of :func:`log_group_table` and lets every other
    one through (the inferred ``num_layers``, config notes): for a caller
    that prints its own table, the inspect command, which adds it to the
    current ``MMLogger`` while it builds the optimizer."""

    def filter(self, record: logging.LogRecord) -> bool:
        lines = record.getMessage().split('\n', 3)
        return not (len(lines) > 2 and lines[0] == '' and
                    lines[1].startswith(TITLE_START) and
                    lines[2].startswith('+-'))
