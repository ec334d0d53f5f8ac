"""The group table as plain ASCII: rows ordered by layer, fitted to
:data:`MAX_WIDTH` characters, and with several towers one block per tower
under its sub-title. Plain string formatting, torch-free."""
from typing import (Any, Dict, Iterable, List, Mapping, NamedTuple, Optional,
                    Sequence, Tuple, Union)


class GroupRow(NamedTuple):
    """What the report shows of one param group.

    ``layer_id`` is ``'-'`` for groups without one (other constructors);
    ``extra`` lists the group's non-standard keys (``decay_mult=0``, ...);
    ``tower`` is ``''`` but for a tower other than the first
    (``paramwise_cfg.backbone_attr`` a list), whose ids count apart.
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
    tower: str = ''


_COLUMNS = ('group', 'layer id', 'lr_scale', 'lr', 'wd',
            '#tensors', '#elements', 'extra', 'sample parameters')
_LEFT = ('group', 'extra', 'sample parameters')
#: The widest a table is unless asked for in full (``wide``).
MAX_WIDTH = 120
# Narrowest useful sample and group cells, '...' included.
_MIN_SAMPLE = 20
_MIN_GROUP = 12


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
                       hint: str = '',
                       blocks: Optional[Mapping[str, str]] = None) -> str:
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
        blocks: With several towers, tower (``''``: the first) -> the
            sub-title of its block, in block order. Rows of a tower are a
            block of their own under its sub-title (a tower without one
            gets its name), all blocks with the same columns.

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
    out = wrap_lines(title.split('\n'), limit, ', ') if title else []
    blocks = blocks or {}
    towers = [t for t in dict.fromkeys([''] + list(blocks) +
                                       [r.tower for r in rows])
              if t in blocks or any(r.tower == t for r in rows)]
    for tower in towers:
        if len(towers) > 1 or blocks:
            out += wrap_lines([blocks.get(tower, tower)], limit, ', ')
        out += [rule, line(shown), rule]
        out += [line([cell[c] for c in shown])
                for cell, row in zip(cells, rows) if row.tower == tower]
        out += [rule]
    if changed:
        notes = list(notes) + [f'to fit {MAX_WIDTH} characters: {changed}'
                               f'{hint}']
    return '\n'.join(out +
                     wrap_lines([n for n in notes if n], MAX_WIDTH, ' '))


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


def wrap_lines(lines: Sequence[str], limit: Optional[int],
               sep: str) -> List[str]:
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
