"""Train a detector from an mmdet-style config with mmengine's Runner, or the
runner the config names in ``runner_type`` (as mmdet's tools/train.py does;
``FlexibleRunner`` with a ``strategy`` for FSDP, DeepSpeed or DDP).

Usage: python tools/train.py CONFIG [--work-dir DIR] [--resume]
       [--cfg-options k=v ...]
       torchrun --nproc_per_node=N tools/train.py CONFIG ...

Under ``torchrun`` it applies the workarounds of ``tools/dist_compat.py`` that
mmengine 0.10.7 needs (FSDP resume on torch >= 2.1, ZeroRedundancyOptimizer
checkpoints, DeepSpeed 0.19; on CPU also gloo and CPU device ids).

A config that names the plugin's constructor or hook without importing
``layerdecay_plugin`` in ``custom_imports`` is refused with the fix (mmdet's
own tools/train.py would stop with a registry ``KeyError``); exit status 1.
So is one that asks for layer decay and would train without it, or stop
with mmengine's ``KeyError`` traceback: the plugin's name as
``optim_wrapper.type``, a misspelt or another project's layer-decay
constructor name ("did you mean"), ``decay_rate`` & co. with no
constructor; exit status 2. After training
it prints what the run did (``layerdecay_plugin.cli.summary``): the group
table, each layer's lr at the first, the highest and the last iteration,
and where the checkpoint, log, scalars and the picture of every layer's lr
were written.
"""
import argparse
import os
import os.path as osp
import sys

# mmengine 0.10.7 resumes with torch.load(weights_only=True) on torch>=2.6.
os.environ.setdefault('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')

import warnings  # noqa: E402

# mmengine imports (and reloads) pkg_resources to find `mmdet::` bases.
warnings.filterwarnings('ignore', 'pkg_resources is deprecated', UserWarning)

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.dist import is_main_process  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import dist_compat  # noqa: E402  (tools/, next to this script)
from layerdecay_plugin.cli.inspect import (  # noqa: E402
    missing_plugin_import, wiring_problem)
from layerdecay_plugin.cli.summary import (  # noqa: E402
    SummaryError, summarize_run)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config')
    parser.add_argument('--work-dir')
    parser.add_argument('--resume', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    # Importing layerdecay_plugin (above) registers its types, so this
    # script would train such a config where mmdet's tools/train.py fails.
    problem = missing_plugin_import(cfg)
    if problem:
        print(f'{args.config}: {problem}', file=sys.stderr)
        if problem.startswith('error'):
            sys.exit(1)
    problem = wiring_problem(cfg)  # in the scope the Runner will set
    if problem:
        print(f'{args.config}: error: {problem}', file=sys.stderr)
        sys.exit(2)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.resume = args.resume or cfg.get('resume', False)
    if 'LOCAL_RANK' in os.environ:
        dist_compat.apply(cfg)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else \
        Runner.from_cfg(cfg)
    runner.train()
    if is_main_process():
        print_summary(runner.log_dir)


def print_summary(log_dir: str) -> None:
    """What the run did, last, so that it is the first thing read."""
    try:
        print('\n' + summarize_run(log_dir), flush=True)
    except SummaryError as error:  # training itself went fine
        print(f'\n(no layer decay summary: {error})', flush=True)
        return
    print('again, for this or any finished run: python -m layerdecay_plugin '
          f'summary {osp.dirname(log_dir)}', flush=True)


if __name__ == '__main__':
    main()
