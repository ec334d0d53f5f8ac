"""A compact, one-table summary of the param groups (instead of one log
line per parameter)."""
import io
from typing import Iterable, NamedTuple

from rich.box import ASCII
from rich.console import Console
from rich.table import Table


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


def format_group_table(rows: Iterable[GroupRow],
                       title: str = '',
                       samples: bool = False) -> str:
    """Render param groups as a plain-text table.

    Args:
        rows: One row per group.
        title: Optional title line.
        samples: Add a column with a sample of parameter names.

    Returns:
        str: The table, ASCII only, suitable for log files.
    """
    table = Table(title=title or None, box=ASCII, title_justify='left')
    columns = ['group', 'layer id', 'lr_scale', 'lr', 'weight decay',
               '#tensors', '#elements'] + (['sample parameters'] if samples
                                           else [])
    for column in columns:
        table.add_column(column, justify='left' if column in (
            'group', 'sample parameters') else 'right')
    for row in rows:
        cells = [row.group_name, str(row.layer_id), f'{row.lr_scale:.4g}',
                 f'{row.lr:.4g}', f'{row.weight_decay:g}',
                 str(row.num_tensors), f'{row.num_elements:,}']
        table.add_row(*cells + ([row.sample] if samples else []))
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(table)
    return out.getvalue().rstrip()
