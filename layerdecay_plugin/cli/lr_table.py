"""The lrs ``LayerDecayLrHook`` logged, read back from a run's scalars
(one ``layer_{id}_lr`` per layer id; ``{tower}.layer_{id}_lr`` for a tower
other than the first, names read by ``groupnames``), and the table of
each layer's lr at the first logged iteration, the highest and the last.
Plain data in, lines out."""
import math
from typing import Dict, List, Optional, Tuple

from ..groupnames import parse_lr_scalar

#: layer id -> [(iteration, lr)], iterations ascending.
LayerSeries = Dict[int, List[Tuple[int, float]]]


def tower_lr_series(scalars: List[dict]) -> Dict[str, LayerSeries]:
    """Every ``[{tower}.]layer_{id}_lr`` scalar over the iterations.

    Args:
        scalars: What ``summary.read_scalars`` returns.

    Returns:
        dict: tower (``''``: the first, with the head) -> layer id ->
        [(iteration, lr)], the first tower first, ids and iterations
        ascending.
    """
    found: Dict[str, LayerSeries] = {}
    for entry in scalars:
        for key, value in entry.items():
            parsed = parse_lr_scalar(key)
            if parsed is not None:
                found.setdefault(parsed[0], {}).setdefault(
                    parsed[1], []).append((int(entry['step']), float(value)))
    return {tower: {i: sorted(points) for i, points in
                    sorted(found[tower].items())}
            for tower in sorted(found, key=lambda t: t != '')}


def layer_lr_series(scalars: List[dict]) -> LayerSeries:
    """Every ``layer_{id}_lr`` scalar of the first tower (and the head)
    over the iterations.

    Args:
        scalars: What ``summary.read_scalars`` returns.

    Returns:
        dict: layer id -> [(iteration, lr)], ids and iterations ascending.
    """
    return tower_lr_series(scalars).get('', {})


def layer_name(layer_id: int, head_id: Optional[int]) -> str:
    """``'3'``, ``'0 (stem)'`` or ``'7 (neck and heads)'`` (a tower other
    than the first, ``head_id=None``: its ids alone)."""
    if head_id is None:
        return str(layer_id)
    if layer_id == 0:
        return '0 (stem)'
    if layer_id == head_id:
        return f'{layer_id} (neck and heads)'
    return str(layer_id)


def _same_layer(value: Optional[float], series: LayerSeries, step: int
                ) -> Optional[int]:
    # The layer whose lr the scalar equals at that step, if exactly one.
    if value is None:
        return None
    hits = [i for i, points in series.items()
            if any(s == step and math.isclose(v, value, rel_tol=1e-9)
                   for s, v in points)]
    return hits[0] if len(hits) == 1 else None


def explain_log_lrs(scalars: List[dict], series: LayerSeries) -> List[str]:
    """What the log's ``lr`` and ``base_lr`` were in this run."""
    last = next((s for s in reversed(scalars) if 'lr' in s), None)
    if last is None:
        return []
    head_id, step = max(series), int(last['step'])
    out = []
    for key, what in (
            ('lr', "the optimizer's first param group's lr (mmengine logs "
             "group 0's only)"),
            ('base_lr', 'optimizer.lr under the schedule (mmengine adds it '
             'for an optimizer with several groups)')):
        if key in last:
            layer = _same_layer(last[key], series, step)
            same = ('' if layer is None else
                    f': here layer {layer_name(layer, head_id)}')
            out.append(f'  {"`" + key + "`":9} in the log is {what}{same}')
    return out


def _columns(series: LayerSeries) -> List[Tuple[int, str]]:
    """(iteration, label) of the lr table: the first logged iteration, the
    schedule's peak (the head's highest lr, first reached: a warm-up and a
    step down can give the first and last the same lrs) and the last; each
    iteration once."""
    head = dict(series[max(series)])
    steps = sorted(head)
    peak = max(steps, key=lambda s: (head[s], -s))
    columns = [(steps[0], f'iter {steps[0]}')]
    if peak not in (steps[0], steps[-1]):
        columns.append((peak, f'iter {peak} (max)'))
    if steps[-1] != steps[0]:
        columns.append((steps[-1], f'iter {steps[-1]}'))
    return columns


def lr_table(series: LayerSeries, head: bool = True) -> List[str]:
    """Each layer's lr at the first logged iteration, the highest and the
    last, one line per layer id.

    Args:
        series: One tower's (:func:`tower_lr_series`).
        head: Whether its highest id is the head's (the first tower's).
    """
    top = max(series)
    head_id = top if head else None
    columns = _columns(series)
    width = max(len(layer_name(i, head_id)) for i in series)
    widths = [max(11, len(label)) for _, label in columns]
    out = ['  ' + '  '.join(['layer'.ljust(width)] + [
        label.rjust(w) for (_, label), w in zip(columns, widths)])]
    for layer_id, points in series.items():
        values = dict(points)
        # as the log prints lrs
        cells = [(f'{values[s]:.4e}' if s in values else '-').rjust(w)
                 for (s, _), w in zip(columns, widths)]
        out.append('  ' + '  '.join([layer_name(layer_id, head_id).ljust(
            width)] + cells))
    ids = sorted(series)
    if ids != list(range(top + 1)):
        out.append(f'  (layers {ids} only: LayerDecayLrHook(layers=\'all\') '
                   'records every layer)')
    return out
