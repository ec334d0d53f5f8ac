"""What both commands draw and print: the group table of plain group data
(``table.format_group_table``) and one plot of lr series on a log axis."""
from typing import (Any, Dict, List, Mapping, NamedTuple, Optional,
                    Sequence, Tuple)

from ..report import format_extra
from ..table import GroupRow, format_group_table

#: Where a table that was fitted has the rest.
WIDE_HINT = ' (--wide shows all; --json has every parameter)'


def group_table(groups: Sequence[Mapping[str, Any]], title: str,
                samples: bool = False, wide: Optional[bool] = None,
                blocks: Optional[Mapping[str, str]] = None) -> str:
    """The group table of groups as ``report.group_data`` gives them.

    The lr column is the lr before the schedule (``initial_lr`` where an lr
    scheduler set it), as in the table the constructor logs.

    Args:
        groups: Group data, in any order (the table sorts by layer).
        title: The line above the table.
        samples: Add the first parameter names of each group (from its
            ``param_names``).
        wide: True: every column in full (``inspect --wide``); False: at
            most ``table.MAX_WIDTH`` characters, the note on what was left
            out pointing at ``--wide``; None: the same for a command without
            ``--wide``.
        blocks: With several towers, the sub-title of each tower's block
            (``report.record_blocks``).

    Returns:
        str: The table. The notes the constructor logs under its table
        (frozen ids, groups kept apart) reach the inspect command as a log
        line (``report.GroupTableFilter``): they need the model and the
        config, which group data lacks.
    """
    rows = [
        GroupRow(g['group_name'],
                 '-' if g['layer_id'] is None else g['layer_id'],
                 g['lr_scale'], g.get('initial_lr', g['lr']),
                 g['weight_decay'], g['num_tensors'], g['num_elements'],
                 _sample(g.get('param_names', [])) if samples else '',
                 format_extra(g['extra']), g.get('tower', ''))
        for g in groups
    ]
    hint = '' if wide is None else WIDE_HINT
    return format_group_table(rows, title, samples=samples,
                              wide=bool(wide), hint=hint, blocks=blocks)


def tower_order(groups: Sequence[Mapping[str, Any]]) -> Dict[str, int]:
    """Tower (``''``: the first) -> its place: the first tower first, the
    others in the order of their first group."""
    towers = dict.fromkeys([''] + [g.get('tower', '') for g in groups])
    return {tower: index for index, tower in enumerate(towers)}


def lr_per_layer(groups: Sequence[Mapping[str, Any]]) -> List['Series']:
    """What ``inspect --plot`` draws: each group's lr at its layer id,
    decay and no-decay groups apart, and each tower apart (a tower other
    than the first named in the legend)."""
    series = []
    for tower in tower_order(groups):
        own = [g for g in groups if g['layer_id'] is not None
               and g.get('tower', '') == tower]
        series += [
            Series(f'{tower}: {label}' if tower else label,
                   sorted((g['layer_id'], g['lr']) for g in own
                          if (g['weight_decay'] > 0) == decay),
                   line=False, marker=marker)
            for label, marker, decay in (('weight decay', 'o', True),
                                         ('no weight decay', 'x', False))]
    return series


def _sample(names: Sequence[str]) -> str:
    return ', '.join(names[:2]) + (', ...' if len(names) > 2 else '')


class Series(NamedTuple):
    """One set of points of :func:`plot`.

    Attributes:
        label: Its legend entry.
        points: ``(x, lr)`` pairs, x ascending.
        line: Join the points with a line (else markers only).
        shade: Its colour on the ``viridis`` map, 0 to 1 (None: the next
            colour of the cycle).
        marker: matplotlib's marker, None for a plain line.
    """
    label: str
    points: Sequence[Tuple[float, float]]
    line: bool = True
    shade: Optional[float] = None
    marker: Optional[str] = '.'


def plot(series: Sequence[Series], path: str, title: str, xlabel: str,
         legend_outside: bool = False) -> None:
    """Write a PNG of lr series on a log axis, integer x ticks.

    Args:
        series: What to draw, in legend order (empty series are skipped).
        path: Where to write the PNG.
        title: Its title.
        xlabel: What x is (layer id, iteration).
        legend_outside: The legend right of the axes (many series).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    colors = plt.get_cmap('viridis')
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for one in series:
        if not one.points:
            continue
        style: dict = dict(label=one.label, marker=one.marker)
        if not one.line:
            style.update(linestyle='', markersize=8)
        if one.shade is not None:
            style['color'] = colors(one.shade)
        ax.plot(*zip(*one.points), **style)
    ax.set_yscale('log')
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel('lr')
    ax.set_title(title, fontsize=8)
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(**(dict(fontsize=7, loc='center left',
                      bbox_to_anchor=(1.01, 0.5)) if legend_outside else {}))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
