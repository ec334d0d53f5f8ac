"""``python -m layerdecay_plugin summary WORK_DIR``: what lr did each layer
get in a finished training run?

mmengine's Runner writes each run to ``WORK_DIR/<timestamp>/``: the scalars
of every logged iteration (``vis_data/scalars.json``, one JSON object a
line, ``step`` = iteration, counted from 1), where ``LayerDecayLrHook`` puts
one ``layer_{id}_lr`` scalar per layer id (``{tower}.layer_{id}_lr`` for a
tower other than the first), and the hook's
``layer_decay.json``: the groups as they were when training started, after
any resume. This module reads those two files (never the log's text) into a
short text summary (the group table, each layer's lr at the first logged
iteration, the highest and the last, where the files are) and a PNG of
every layer's lr over the iterations. ``tools/train.py`` prints it after
training. It reads files only: no model, no optimizer, no registry.
"""
import argparse
import json
import math
import os
import os.path as osp
import re
import sys
from typing import Dict, List, NamedTuple, Optional, Tuple

from ..hooks import RUN_FILE, why_no_layer_lrs
from ..report import record_blocks, record_title
from ..resume import infer_settings
from .lr_table import explain_log_lrs, layer_name, lr_table, tower_lr_series
from .render import Series, group_table, plot

HELP = 'show what lr every layer got in a finished training run'
#: What the picture is called, in the run's log dir.
PNG_NAME = 'layer_lrs.png'
_RUN_DIR = re.compile(r'^\d{8}_\d{6}$')  # mmengine's timestamp
HOOK_FIX = ("custom_hooks=[dict(type='LayerDecayLrHook', layers='all')] "
            "(and LocalVisBackend in visualizer.vis_backends, as mmdet's "
            'default_runtime has it)')
#: The settings the groups show, compared with the record's.
_SETTINGS = ('decay_rate', 'num_layers', 'lr', 'weight_decay')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments."""
    parser.add_argument(
        'work_dir', metavar='WORK_DIR',
        help='the work dir of a finished run (or one of its <timestamp> '
        'dirs); prints its group table and each layer\'s lr at the first, '
        'highest and last iteration')
    parser.add_argument(
        '--plot', metavar='PATH',
        help="where to write the PNG of every layer's lr over the "
        f'iterations; default <timestamp>/{PNG_NAME}')


def run(args: argparse.Namespace) -> int:
    """Print the summary of a run and write its picture.

    Returns:
        int: 0, or 1 for a work dir without a run's layer lrs (the message
        on stderr).
    """
    try:
        print(summarize_run(args.work_dir, args.plot))
    except SummaryError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    return 0


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
    groups: Optional[str]


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
            hooked = any(osp.isfile(osp.join(path, d, RUN_FILE))
                         for d in os.listdir(path) if _RUN_DIR.match(d))
            raise SummaryError(
                f'{path}: no finished run here (no <timestamp>/vis_data/'
                'scalars.json); give the work dir of a training run. '
                'Scalars are written by LocalVisBackend: ' + (
                    f'LayerDecayLrHook ran (<timestamp>/{RUN_FILE}), add '
                    'LocalVisBackend to visualizer.vis_backends.'
                    if hooked else f'{HOOK_FIX}.'))
        log_dir, work_dir = osp.join(path, runs[-1]), path
    log = osp.join(log_dir, osp.basename(osp.normpath(log_dir)) + '.log')
    checkpoint = None
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            checkpoint = f.read().strip() or None
    groups = osp.join(log_dir, RUN_FILE)
    return RunFiles(work_dir, log_dir,
                    osp.join(log_dir, 'vis_data', 'scalars.json'),
                    log if osp.isfile(log) else None, checkpoint,
                    groups if osp.isfile(groups) else None)


def read_scalars(path: str) -> List[dict]:
    """The JSON objects of a ``scalars.json``, one per logged step."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def not_as_configured(record: Optional[dict],
                      groups: List[dict]) -> Dict[str, Tuple[float, float]]:
    """Settings the groups that trained show but their config does not
    give: after a resume with ``resume_mismatch='keep_checkpoint'`` they
    are the checkpoint's.

    Args:
        record: The settings the optimizer was built with (the config's).
        groups: The groups that trained (``report.group_data``).

    Returns:
        dict: setting -> (trained, configured), in :data:`_SETTINGS` order.
    """
    if not record:
        return {}
    trained = infer_settings(groups)
    paramwise = record.get('paramwise_cfg') or {}
    first = (record.get('towers') or [{}])[0]  # infer_settings reads it
    configured = dict(decay_rate=first.get('decay_rate',
                                           paramwise.get('decay_rate')),
                      num_layers=record.get('num_layers',
                                            paramwise.get('num_layers')),
                      lr=record.get('lr'),
                      weight_decay=record.get('weight_decay'))
    return {
        key: (trained[key], configured[key]) for key in _SETTINGS
        if key in trained and configured[key] is not None and
        not math.isclose(trained[key], configured[key], rel_tol=1e-5)
    }


def _groups_part(run: RunFiles) -> Tuple[List[str], Optional[str]]:
    """The lines on the groups that trained (a note where they are not the
    config's, the table) and the table's title."""
    if run.groups is None:
        return [f'(no {RUN_FILE} in {run.log_dir}: LayerDecayLrHook writes '
                'the groups there when training starts)'], None
    with open(run.groups) as f:
        data = json.load(f)
    record, groups = data.get('record'), data['groups']
    title = data.get('title')
    blocks = record_blocks(record)
    out = []
    differ = not_as_configured(record, groups)
    if differ:
        out.append("NOTE: this run did not train with its config's layer "
                   'decay:')
        out += [f'  {key}: {trained:g} trained, {config:g} in the config'
                for key, (trained, config) in differ.items()]
        if data.get('iter'):
            out.append(
                f'  It resumed at iteration {data["iter"]} with '
                "paramwise_cfg.resume_mismatch='keep_checkpoint', which "
                "keeps the checkpoint's groups.")
        out.append('  The table and the lrs below are those that trained.')
        trained = {k: t for k, (t, _) in differ.items()}
        title = record_title(record, trained)
        blocks = record_blocks(record, trained)
    if title is None:
        title = ("(groups of another constructor than layerdecay_plugin's: "
                 'no layer-decay settings recorded)')
    out.append(group_table(groups, title, blocks=blocks))
    return out, title


def summarize_run(path: str, png: Optional[str] = None) -> str:
    """Write the picture of a run and return its text summary.

    Args:
        path: A work dir or a run's log dir (see :func:`find_run`).
        png: Where to write the picture; default ``layer_lrs.png`` in the
            run's log dir.

    Returns:
        str: The summary: a note where the groups that trained are not the
        config's (a ``keep_checkpoint`` resume), the group table, each
        layer's lr at the first logged iteration, the highest and the last,
        what the log's ``lr``/``base_lr`` are, and where the checkpoint,
        log, scalars and picture are.

    Raises:
        SummaryError: If the run has no ``layer_{id}_lr`` scalars.
    """
    run = find_run(path)
    scalars = read_scalars(run.scalars)
    towers = tower_lr_series(scalars)
    series = towers.get('', {})
    if not series:
        raise SummaryError(
            f'{run.scalars}: no layer_{{id}}_lr scalars, so no per-layer lr '
            'to show; ' + (f'train with {HOOK_FIX}.' if run.groups is None
                            else why_no_layer_lrs(run.groups)))
    groups, title = _groups_part(run)
    png = png or osp.join(run.log_dir, PNG_NAME)
    plot([Series(f'{tower + ": " if tower else ""}layer '
                 f'{layer_name(i, None if tower else max(own))}', points,
                 marker='.' if len(points) < 50 else None,
                 shade=i / max(max(own), 1))
          for tower, own in towers.items()
          for i, points in sorted(own.items(), reverse=True)],
         png, '\n'.join(([title.splitlines()[0]] if title else []) +
                        [f'lr of each layer: {run.log_dir}']),
         'iteration', legend_outside=True)
    out = [f'===== layer decay: what {run.log_dir} did =====']
    out += groups
    out += ['', 'lr of each layer (LayerDecayLrHook) at the first logged '
            'iteration, the highest and the last:']
    out += lr_table(series)
    for tower, own in towers.items():
        if tower:
            out += [f'  {tower} (a tower of its own):'] + lr_table(own, False)
    out += explain_log_lrs(scalars, series)
    out += ['',
            f'checkpoint: {run.checkpoint or "(none written)"}',
            f'log:        {run.log or "(none)"}',
            f'scalars:    {run.scalars}',
            f'picture:    {png} (every layer\'s lr over the iterations)']
    return '\n'.join(out)
