"""A compact, one-table summary of the param groups (instead of one log
line per parameter), ordered by layer whatever the optimizer's order."""
import contextlib
from contextvars import ContextVar
from typing import (Any, Iterable, Iterator, List, Mapping, NamedTuple,
                    Optional, Sequence, Union)

from mmengine.logging import print_log

# Keys every layer-decay group has (initial_lr: added by lr schedulers);
# anything else in a group is an option that can set two otherwise
# identical-looking groups apart.
STANDARD_GROUP_KEYS = frozenset(
    ('params', 'param_names', 'lr', 'weight_decay', 'lr_scale', 'group_name',
     'initial_lr'))


# Set while a caller (the inspect CLI) prints its own table: the titles the
# tables would have had, so that the caller can print the same header line.
_TITLES: ContextVar[Optional[List[str]]] = ContextVar('layerdecay_titles',
                                                      default=None)


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
                num_layers: int, base_lr: float, base_wd: float) -> str:
    """The line above the group table: what made these groups."""
    return (f'layer decay: {family}, {decay_type}, decay_rate='
            f'{decay_rate:g}, num_layers={num_layers}, base lr='
            f'{base_lr:g}, weight decay={base_wd:g}')


def log_group_table(rows: Iterable[GroupRow], title: str) -> None:
    """Log the table to the current mmengine logger, unless a caller is
    printing its own (see :func:`table_not_logged`): then only its title is
    kept for that caller."""
    titles = _TITLES.get()
    if titles is None:
        print_log('\n' + format_group_table(rows, title), logger='current')
    else:
        titles.append(title)


@contextlib.contextmanager
def table_not_logged() -> Iterator[List[str]]:
    """Skip :func:`log_group_table` inside the block; other log lines (the
    inferred ``num_layers``, config notes) still appear.

    Yields:
        list[str]: The titles of the skipped tables (``layer decay: ConvNeXt,
        layer_wise, decay_rate=...``), filled as they are skipped.
    """
    titles: List[str] = []
    token = _TITLES.set(titles)
    try:
        yield titles
    finally:
        _TITLES.reset(token)
