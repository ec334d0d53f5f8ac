"""What a finished training run did with layer decay, read from its work dir.

mmengine's Runner writes each run to ``WORK_DIR/<timestamp>/``: the log
(``<timestamp>.log``, with the constructor's group table) and the scalars of
every logged iteration (``vis_data/scalars.json``, one JSON object a line,
``step`` = iteration, counted from 1). ``LayerDecayLrHook`` puts one
``layer_{id}_lr`` scalar per layer id there. This module turns them into a
short text summary (the group table, each layer's lr at the first logged
iteration, the highest and the last, where the files are) and a PNG of
every layer's lr over the iterations. ``tools/train.py`` prints it after
training and ``layerdecay-inspect --work-dir DIR`` for any finished run.

Plain files only: no torch, no registry, so it runs in the light tier.
"""
import json
import math
import os
import os.path as osp
import re
from typing import Dict, List, NamedTuple, Optional, Tuple

#: What the picture is called, in the run's log dir.
PNG_NAME = 'layer_lrs.png'
_RUN_DIR = re.compile(r'^\d{8}_\d{6}$')  # mmengine's timestamp
_LAYER_LR = re.compile(r'^layer_(\d+)_lr$')
HOOK_FIX = ("custom_hooks=[dict(type='LayerDecayLrHook', layers='all')] "
            "(and LocalVisBackend in visualizer.vis_backends, as mmdet's "
            'default_runtime has it)')

#: layer id -> [(iteration, lr)], iterations ascending.
Series = Dict[int, List[Tuple[int, float]]]


class SummaryError(ValueError):
    """A work dir without what the summary needs; the message says what is
    missing and how to get it."""


class RunFiles(NamedTuple):
    """The files of one run in a work dir (``None``: not written)."""
    work_dir: str
    log_dir: str
    scalars: str
    log: Optional[str]
    checkpoint: Optional[str]


def find_run(path: str) -> RunFiles:
    """The newest run in a work dir, or the run of a log dir.

    Args:
        path: A work dir (``--work-dir`` of training), or one of its
            ``<timestamp>`` log dirs.

    Returns:
        RunFiles: Its files; the checkpoint is the work dir's
        ``last_checkpoint``.

    Raises:
        SummaryError: If no run there wrote ``vis_data/scalars.json``.
    """
    if not osp.isdir(path):
        raise SummaryError(f'{path}: no such directory')
    if osp.isfile(osp.join(path, 'vis_data', 'scalars.json')):
        log_dir, work_dir = path, osp.dirname(osp.abspath(path))
    else:
        runs = sorted(
            d for d in os.listdir(path) if _RUN_DIR.match(d) and
            osp.isfile(osp.join(path, d, 'vis_data', 'scalars.json')))
        if not runs:
            raise SummaryError(
                f'{path}: no finished run here (no <timestamp>/vis_data/'
                'scalars.json); give the --work-dir of a training run. '
                f'Scalars are written by LocalVisBackend: {HOOK_FIX}.')
        log_dir, work_dir = osp.join(path, runs[-1]), path
    log = osp.join(log_dir, osp.basename(osp.normpath(log_dir)) + '.log')
    checkpoint = None
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            checkpoint = f.read().strip() or None
    return RunFiles(work_dir, log_dir,
                    osp.join(log_dir, 'vis_data', 'scalars.json'),
                    log if osp.isfile(log) else None, checkpoint)


def read_scalars(path: str) -> List[dict]:
    """The JSON objects of a ``scalars.json``, one per logged step."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def layer_lr_series(scalars: List[dict]) -> Series:
    """Every ``layer_{id}_lr`` scalar over the iterations.

    Args:
        scalars: What :func:`read_scalars` returns.

    Returns:
        dict: layer id -> [(iteration, lr)], ids and iterations ascending.
    """
    series: Series = {}
    for entry in scalars:
        for key, value in entry.items():
            match = _LAYER_LR.match(key)
            if match:
                series.setdefault(int(match.group(1)), []).append(
                    (int(entry['step']), float(value)))
    return {i: sorted(points) for i, points in sorted(series.items())}


def group_table(log: Optional[str]) -> Optional[str]:
    """The last group table a training log has, with its header line
    (``layer decay: <family>, <decay_type>, decay_rate=...``).

    The constructor logs it once per build (again after a resume); its
    lines follow the log record's prefix line unprefixed.
    """
    if log is None:
        return None
    with open(log, errors='replace') as f:
        lines = f.read().splitlines()
    found = None
    for i, line in enumerate(lines[:-1]):
        if line.startswith('layer decay: ') and lines[i + 1].startswith('+'):
            end = i + 1
            while end < len(lines) and lines[end][:1] in ('+', '|'):
                end += 1
            found = '\n'.join(lines[i:end])
    return found


def layer_name(layer_id: int, head_id: int) -> str:
    """``'3'``, ``'0 (stem)'`` or ``'7 (neck and heads)'``."""
    if layer_id == 0:
        return '0 (stem)'
    if layer_id == head_id:
        return f'{layer_id} (neck and heads)'
    return str(layer_id)


def plot_layer_lrs(series: Series, path: str, title: str) -> None:
    """PNG of every layer's lr over the iterations, log scale: layer decay
    shows as parallel lines ``-log(decay_rate)`` apart, the schedule as
    their common shape.

    Args:
        series: What :func:`layer_lr_series` returns (not empty).
        path: Where to write the PNG.
        title: The picture's title.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    head_id = max(series)
    colors = plt.get_cmap('viridis')
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for layer_id, points in sorted(series.items(), reverse=True):
        ax.plot(*zip(*points), marker='.' if len(points) < 50 else None,
                color=colors(layer_id / max(head_id, 1)),
                label=f'layer {layer_name(layer_id, head_id)}')
    ax.set_yscale('log')
    ax.set_xlabel('iteration')
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel('lr')
    ax.set_title(title, fontsize=8)
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=7, loc='center left', bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _same_layer(value: Optional[float], series: Series, step: int
                ) -> Optional[int]:
    # The layer whose lr the scalar equals at that step, if exactly one.
    if value is None:
        return None
    hits = [i for i, points in series.items()
            if any(s == step and math.isclose(v, value, rel_tol=1e-9)
                   for s, v in points)]
    return hits[0] if len(hits) == 1 else None


def _explain_log_lrs(scalars: List[dict], series: Series) -> List[str]:
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


def summarize_run(path: str, png: Optional[str] = None) -> str:
    """Write the picture of a run and return its text summary.

    Args:
        path: A work dir or a run's log dir (see :func:`find_run`).
        png: Where to write the picture; default ``layer_lrs.png`` in the
            run's log dir.

    Returns:
        str: The summary: the group table, each layer's lr at the first
        logged iteration, the highest and the last, what the log's
        ``lr``/``base_lr`` are, and where the checkpoint, log, scalars and
        picture are.

    Raises:
        SummaryError: If the run has no ``layer_{id}_lr`` scalars.
    """
    run = find_run(path)
    scalars = read_scalars(run.scalars)
    series = layer_lr_series(scalars)
    if not series:
        raise SummaryError(
            f'{run.scalars}: no layer_{{id}}_lr scalars, so no per-layer lr '
            f'to show; train with {HOOK_FIX}.')
    table = group_table(run.log)
    png = png or osp.join(run.log_dir, PNG_NAME)
    # the table's header line says what made these lrs (decay_rate, ...)
    plot_layer_lrs(series, png, '\n'.join(
        ([table.splitlines()[0]] if table else []) +
        [f'lr of each layer: {run.log_dir}']))
    head_id = max(series)
    head = dict(series[head_id])
    steps = sorted(head)
    # The schedule's peak too (the head's highest lr, first reached): a
    # warm-up and a step down can give the first and last the same lrs.
    peak = max(steps, key=lambda s: (head[s], -s))
    columns = [(steps[0], f'iter {steps[0]}')]
    if peak not in (steps[0], steps[-1]):
        columns.append((peak, f'iter {peak} (max)'))
    columns.append((steps[-1], f'iter {steps[-1]}'))
    out = [f'===== layer decay: what {run.log_dir} did =====']
    out.append(table or '(no group table in the log: it comes from '
               'LayerDecayOptimWrapperConstructor)')
    width = max(len(layer_name(i, head_id)) for i in series)
    widths = [max(11, len(label)) for _, label in columns]
    out += ['', 'lr of each layer (LayerDecayLrHook) at the first logged '
            'iteration, the highest and the last:',
            '  ' + '  '.join(['layer'.ljust(width)] + [
                label.rjust(w) for (_, label), w in zip(columns, widths)])]
    for layer_id, points in series.items():
        values = dict(points)
        # as the log prints lrs
        cells = [(f'{values[s]:.4e}' if s in values else '-').rjust(w)
                 for (s, _), w in zip(columns, widths)]
        out.append('  ' + '  '.join([layer_name(layer_id, head_id).ljust(
            width)] + cells))
    ids = sorted(series)
    if ids != list(range(head_id + 1)):
        out.append(f'  (layers {ids} only: LayerDecayLrHook(layers=\'all\') '
                   'records every layer)')
    out += _explain_log_lrs(scalars, series)
    out += ['',
            f'checkpoint: {run.checkpoint or "(none written)"}',
            f'log:        {run.log or "(none)"}',
            f'scalars:    {run.scalars}',
            f'picture:    {png} (every layer\'s lr over the iterations)']
    return '\n'.join(out)
