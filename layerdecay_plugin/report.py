"""A compact, one-table summary of the param groups (instead of one log
line per parameter)."""
from typing import Iterable, List, NamedTuple, Sequence


class GroupRow(NamedTuple):
    """What the report shows of one param group."""
    group_name: str
    layer_id: int
    lr_scale: float
    lr: float
    weight_decay: float
    num_tensors: int
    num_elements: int
    sample: str = ''


_COLUMNS = ('group', 'layer id', 'lr_scale', 'lr', 'weight decay',
            '#tensors', '#elements', 'sample parameters')
_LEFT = ('group', 'sample parameters')


def format_group_table(rows: Iterable[GroupRow],
                       title: str = '',
                       samples: bool = False) -> str:
    """Render param groups as a plain ASCII table.

    Plain string formatting on purpose: rich's renderer took ~30x the time
    of building the optimizer itself on a ConvNeXt-XL detector, and this
    table is built on every training start.

    Args:
        rows: One row per group.
        title: Optional title line.
        samples: Add a column with a sample of parameter names.

    Returns:
        str: The table, ASCII only, suitable for log files.
    """
    columns = _COLUMNS if samples else _COLUMNS[:-1]
    cells: List[Sequence[str]] = [[
        row.group_name,
        str(row.layer_id), f'{row.lr_scale:.4g}', f'{row.lr:.4g}',
        f'{row.weight_decay:g}',
        str(row.num_tensors), f'{row.num_elements:,}', row.sample
    ][:len(columns)] for row in rows]
    widths = [
        max([len(c)] + [len(r[i]) for r in cells])
        for i, c in enumerate(columns)
    ]

    def line(values: Sequence[str]) -> str:
        return '| ' + ' | '.join(
            v.ljust(w) if c in _LEFT else v.rjust(w)
            for v, w, c in zip(values, widths, columns)) + ' |'

    rule = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'
    out = ([title] if title else []) + [rule, line(columns), rule]
    out += [line(r) for r in cells] + [rule]
    return '\n'.join(out)
