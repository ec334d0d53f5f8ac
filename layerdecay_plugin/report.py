"""A compact, one-table summary of the param groups (instead of one log
line per parameter), ordered by layer whatever the optimizer's order: the
rows, the title above them, and the groups as plain data (what the inspect
command and ``LayerDecayLrHook``'s ``layer_decay.json`` hold)."""
import logging
from typing import (Any, Callable, Dict, Iterable, List, Mapping, NamedTuple,
                    Optional, Sequence, Tuple, Union)

from mmengine.logging import MMLogger

from .config import KEY_ALIASES, parse_paramwise_cfg
from .groupnames import group_layer_id

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


_COLUMNS = ('group', 'layer id', 'lr_scale', 'lr', 'wd',
            '#tensors', '#elements', 'extra', 'sample parameters')
_LEFT = ('group', 'extra', 'sample parameters')
#: The widest a table is unless asked for in full (``wide``).
MAX_WIDTH = 120
# Narrowest useful sample and group cells, '...' included.
_MIN_SAMPLE = 20
_MIN_GROUP = 12


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
                       samples: bool = False,
                       notes: Sequence[str] = (),
                       wide: bool = False,
                       hint: str = '') -> str:
    """Render param groups as a plain ASCII table, ordered by layer.

    Plain string formatting on purpose: rich's renderer took ~30x the time
    of building the optimizer itself on a ConvNeXt-XL detector, and this
    table is built on every training start.

    Args:
        rows: One row per group, in any order (see :func:`sort_rows`).
        title: Optional title line(s).
        samples: Add a column with a sample of parameter names.
        notes: Lines under the table (frozen ids, groups kept apart).
        wide: Every column in full, however wide.
        hint: Where the full table is, for the note that says what was
            left out (e.g. ``' (--wide shows them)'``).

    Returns:
        str: The table, ASCII only, suitable for log files. The ``extra``
        column appears only when some group has extra options. Unless
        ``wide``, every line is at most :data:`MAX_WIDTH` characters (bar
        a title part without ``', '`` to break at): sample names are
        shortened, then the ``extra`` column and the sample names left out,
        then group names shortened, and a last note says so.
    """
    rows = sort_rows(rows)
    shown = [
        c for c in _COLUMNS
        if (c != 'extra' or any(r.extra for r in rows)) and (
            c != 'sample parameters' or samples)
    ]
    cells: List[Dict[str, str]] = [
        dict(zip(_COLUMNS,
                 (row.group_name, str(row.layer_id), f'{row.lr_scale:.4g}',
                  f'{row.lr:.4g}', f'{row.weight_decay:g}',
                  str(row.num_tensors), f'{row.num_elements:,}', row.extra,
                  row.sample))) for row in rows
    ]
    limit = None if wide else MAX_WIDTH
    shown, changed = _fit(shown, cells, limit)
    widths = [_width(c, cells) for c in shown]

    def line(values: Sequence[str]) -> str:
        return '| ' + ' | '.join(
            v.ljust(w) if c in _LEFT else v.rjust(w)
            for v, w, c in zip(values, widths, shown)) + ' |'

    rule = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'
    out = _wrap(title.split('\n'), limit, ', ') if title else []
    out += [rule, line(shown), rule]
    out += [line([r[c] for c in shown]) for r in cells] + [rule]
    if changed:
        notes = list(notes) + [f'to fit {MAX_WIDTH} characters: {changed}'
                               f'{hint}']
    return '\n'.join(out + _wrap([n for n in notes if n], MAX_WIDTH, ' '))


def _width(column: str, cells: Sequence[Mapping[str, str]]) -> int:
    return max([len(column)] + [len(r[column]) for r in cells])


def _table_width(shown: Sequence[str],
                 cells: Sequence[Mapping[str, str]]) -> int:
    return 1 + sum(_width(c, cells) + 3 for c in shown)


def _shorten(cells: List[Dict[str, str]], column: str, width: int) -> bool:
    """Cut the cells of a column to ``width``: the first name whole where
    it fits (``'a, ...'``, else ``'a'``), else cut, ending ``'...'``."""
    long = [r for r in cells if len(r[column]) > width]
    for r in long:
        first = r[column].split(', ')[0]
        r[column] = next((c for c in (first + ', ...', first)
                          if len(c) <= width), r[column][:width - 3] + '...')
    return bool(long)


def _fit(shown: List[str], cells: List[Dict[str, str]],
         limit: Optional[int]) -> Tuple[List[str], str]:
    """The columns that fit ``limit`` characters, their cells shortened in
    place; and what changed, in words (empty: nothing)."""
    dropped: List[str] = []
    shortened: List[str] = []
    if limit is None or _table_width(shown, cells) <= limit:
        return shown, ''
    for drop in ('extra', 'sample parameters'):
        if 'sample parameters' in shown:
            rest = [c for c in shown if c != 'sample parameters']
            room = limit - _table_width(rest, cells) - 3
            if room >= _MIN_SAMPLE:
                if _shorten(cells, 'sample parameters', room):
                    shortened.append('sample parameters')
                break
        if drop in shown:
            shown = [c for c in shown if c != drop]
            dropped.append(drop)
    room = limit - _table_width(shown[1:], cells) - 3
    if room < _width('group', cells):
        _shorten(cells, 'group', max(room, _MIN_GROUP))
        shortened.append('group names')
    return shown, '; '.join(
        f'{verb} {", ".join(what)}'
        for verb, what in (('left out', dropped), ('shortened', shortened))
        if what)


def _wrap(lines: Sequence[str], limit: Optional[int], sep: str) -> List[str]:
    """Lines longer than ``limit`` broken after ``sep``, continued with an
    indent of two spaces; a part longer than ``limit`` stays whole."""
    out: List[str] = []
    for text in lines:
        parts = text.split(sep)
        current = parts[0]
        for part in parts[1:]:
            if limit is not None and len(current + sep + part) > limit:
                out.append(current + sep.rstrip())
                current = '  ' + part
            else:
                current += sep + part
        out.append(current)
    return out


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
        {k: paramwise[k] for k in ('decay_rate', 'decay_type',
                                   *KEY_ALIASES) if k in paramwise})
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


def log_group_table(rows: Iterable[GroupRow], title: str,
                    notes: Sequence[str] = ()) -> None:
    """Log the table to the current mmengine logger, as one record (which
    :class:`GroupTableFilter` recognises).

    Args:
        rows: One row per group.
        title: The line above the table (:func:`table_title`).
        notes: What the groups alone do not show (frozen ids, groups kept
            apart); empty ones are skipped.
    """
    notes = [n for n in notes if n]
    MMLogger.get_current_instance().log(
        logging.INFO,
        '\n' + format_group_table(rows, title, notes=notes, hint=LOG_HINT),
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
        record.msg = '\n' + '\n'.join(_wrap(notes, MAX_WIDTH, ' '))
        record.args = ()
        return bool(notes)
