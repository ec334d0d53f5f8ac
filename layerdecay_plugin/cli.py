"""``python -m layerdecay_plugin CONFIG``: what lr does each layer get?

Builds only the model of a config (no dataset, no weights: ``init_weights``
is never called and ``init_cfg`` is dropped) and the optimizer its
``optim_wrapper`` describes, then prints one row per param group ordered by
layer id. Works with this plugin's constructor, mmdet's
``LearningRateDecayOptimizerConstructor`` and any other constructor.

``python -m layerdecay_plugin --work-dir DIR``: what lr did each layer get?
Reads a finished run (:mod:`layerdecay_plugin.summary`): its group table,
each layer's lr at the first, the highest and the last iteration, and a
PNG of every layer's lr over the iterations.
"""
import argparse
import copy
import json
import os
import sys
import warnings
from typing import Any, Dict, List, Optional, Sequence

from .errors import LayerDecayConfigError
from .grouping import group_layer_id
from .messages import config_file
from .report import (GroupRow, format_extra, format_group_table, group_extras,
                     row_order, table_not_logged)
from .summary import SummaryError, summarize_run

PLUGIN = 'layerdecay_plugin'
# Type names only this package registers, and where a config names them.
_OUR_TYPES = {
    'LayerDecayOptimWrapperConstructor':
    "optim_wrapper.constructor='LayerDecayOptimWrapperConstructor'",
    'LayerDecayLrHook': "custom_hooks=[dict(type='LayerDecayLrHook')]"
}
# Top-level packages known not to import this plugin themselves.
_OPENMMLAB = ('mmengine', 'mmcv', 'mmdet', 'mmpretrain', 'mmcls', 'mmseg',
              'mmdet3d', 'mmpose', 'mmrotate', 'mmyolo')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        prog='python -m layerdecay_plugin',
        usage='%(prog)s CONFIG [--cfg-options K=V ...] [--json PATH] '
        '[--plot PATH]\n       %(prog)s --work-dir DIR [--plot PATH]',
        description='Show the lr and weight decay every layer of a config '
        "gets from its optim_wrapper's constructor; or, with --work-dir, "
        'what lr every layer got in a finished training run.')
    parser.add_argument('config', type=_existing_file, nargs='?',
                        help='an mmdet-style config file')
    parser.add_argument(
        '--work-dir', metavar='DIR',
        help='instead of a config: the work dir of a finished run (or one '
        'of its <timestamp> dirs); prints its group table and each '
        "layer's lr at the first, highest and last iteration, and writes "
        "the PNG of every layer's lr over the iterations "
        "(LayerDecayLrHook's scalars) to --plot or <timestamp>/layer_lrs.png")
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={},
        help='override config keys, e.g. optim_wrapper.constructor='
        'LayerDecayOptimWrapperConstructor')
    parser.add_argument('--json', metavar='PATH',
                        help='write groups and every parameter as JSON')
    parser.add_argument('--plot', metavar='PATH',
                        help='write a PNG of lr per layer id (with '
                        "--work-dir: of every layer's lr per iteration)")
    args = parser.parse_args(argv)
    if (args.config is None) == (args.work_dir is None):
        parser.error('give a CONFIG or --work-dir DIR (one of them)')
    if args.work_dir and (args.cfg_options or args.json):
        parser.error('--cfg-options and --json apply to a CONFIG, not to '
                     '--work-dir')
    return args


def _existing_file(path: str) -> str:
    # argparse prints "error: argument config: ..." and exits with status 2,
    # without a traceback.
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f'no config file at {path!r}')
    return path


def missing_plugin_import(cfg) -> Optional[str]:
    """Why training this config would not find the plugin, if it would not.

    A config that names ``LayerDecayOptimWrapperConstructor`` or
    ``LayerDecayLrHook`` without importing ``layerdecay_plugin`` fails under
    a Runner (mmdet's ``tools/train.py``) with mmengine's ``KeyError: '...
    is not in the ... registry'``. The CLI and this project's
    ``tools/train.py`` import the plugin themselves, which would hide that;
    both refuse such a config with this message.

    Args:
        cfg: The merged config.

    Returns:
        str | None: An error message (prefixed ``error:``) when no
        ``custom_imports`` module can have imported the plugin, a warning
        (prefixed ``warning:``) when only non-OpenMMLab modules might, None
        when the plugin is imported.
    """
    hooks = [h.get('type') for h in cfg.get('custom_hooks') or []
             if isinstance(h, dict)]
    constructor = (cfg.get('optim_wrapper') or {}).get('constructor')
    named = [t for t in _OUR_TYPES if t == constructor or t in hooks]
    if not named:
        return None
    imports = (cfg.get('custom_imports') or {}).get('imports') or []
    if isinstance(imports, str):
        imports = [imports]
    if any(m == PLUGIN or m.startswith(PLUGIN + '.') for m in imports):
        return None
    fix = (f"add {PLUGIN!r} to custom_imports: custom_imports = dict("
           f"imports=[..., {PLUGIN!r}], allow_failed_imports=False)")
    where = ' and '.join(_OUR_TYPES[t] for t in named)
    others = [m for m in imports if m.split('.')[0] not in _OPENMMLAB]
    if others:
        return (f'warning: the config sets {where} but its custom_imports '
                f'({imports}) do not list {PLUGIN!r}; training finds it only '
                f'if one of {others} imports it. Otherwise {fix}.')
    return (f'error: the config sets {where} but no custom_imports import '
            f"{PLUGIN!r} (custom_imports: {imports or 'none'}), so training "
            f"would fail with KeyError: '{named[0]} is not in the ... "
            f"registry' (this command imports the plugin itself, which "
            f'would hide that). Fix: {fix}.')


def _drop_init_cfg(node: Any) -> None:
    # Pretrained weights would be downloaded by init_weights, which is never
    # called; dropping init_cfg makes that explicit.
    if isinstance(node, dict):
        node.pop('init_cfg', None)
        for value in node.values():
            _drop_init_cfg(value)
    elif isinstance(node, list):
        for value in node:
            _drop_init_cfg(value)


def load_config(config: str, cfg_options: Optional[dict] = None):
    """The config file merged with ``--cfg-options``.

    Args:
        config: Path of the config file.
        cfg_options: Overrides, as ``--cfg-options`` gives them.

    Returns:
        Config: The merged config.
    """
    from mmengine.config import Config

    with warnings.catch_warnings():
        # mmengine imports (and reloads) pkg_resources to resolve `mmdet::`
        # bases: setuptools' deprecation notice, twice, is noise here.
        warnings.filterwarnings('ignore', 'pkg_resources is deprecated',
                                UserWarning)
        cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def build_param_groups(cfg, config: str):
    """Build a config's model and optimizer; return (param groups, model,
    optimizer defaults).

    The constructor's own log table is skipped (the CLI prints a sorted one
    with sample names); its other log lines still appear.

    Args:
        cfg: The merged ``Config`` (see :func:`load_config`).
        config: Its path, to attribute config warnings to.

    Returns:
        tuple: The optimizer's ``param_groups``, the model, the optimizer's
        ``defaults`` and the header line the training log gives the table
        (``layer decay: <family>, <decay_type>, decay_rate=...``; ``''``
        for other constructors).
    """
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.utils import import_modules_from_strings

    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    # The scope training gets: mmengine's Runner uses 'mmengine' (the root
    # registries) when a config sets none, and no scope for None. mmdet
    # configs set 'mmdet' in their default_runtime base; a torch-only config
    # must not import mmdet (or warn that it is missing) to build its model.
    scope = cfg.get('default_scope', 'mmengine')
    if scope is not None:
        init_default_scope(scope)
    model_cfg = copy.deepcopy(cfg.model)  # ConfigDict: models read attributes
    _drop_init_cfg(model_cfg)
    model = MODELS.build(model_cfg)
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    if optim_cfg.get('type') == 'AmpOptimWrapper' and \
            not torch.cuda.is_available():
        optim_cfg['type'] = 'OptimWrapper'  # same groups, no GPU needed
    with table_not_logged() as titles, config_file(config):
        wrapper = build_optim_wrapper(model, optim_cfg)
    optimizer = wrapper.optimizer
    return (optimizer.param_groups, model, optimizer.defaults,
            titles[-1] if titles else '')


def summarize(groups: List[dict], model,
              defaults: Optional[dict] = None) -> Dict[str, Any]:
    """Groups and per-parameter settings as plain data.

    Args:
        groups: An optimizer's ``param_groups``.
        model: The model the parameters belong to, to name them.
        defaults: The optimizer's ``defaults``, so that only a group's own
            extra options are listed.

    Returns:
        dict: ``groups`` (sorted by layer id, decay before no-decay) and
        ``params`` (name -> group, layer id, lr, weight decay).
    """
    names = {id(p): n for n, p in model.named_parameters()}
    rows, params = [], {}
    for index, group in enumerate(groups):
        name = str(group.get('group_name', f'group_{index}'))
        layer_id = group_layer_id(name)
        param_names = [names.get(id(p), '?') for p in group['params']]
        rows.append(dict(
            group_name=name, layer_id=layer_id,
            lr_scale=group.get('lr_scale', 1.0), lr=group['lr'],
            weight_decay=group.get('weight_decay', 0.),
            num_tensors=len(param_names),
            num_elements=sum(p.numel() for p in group['params']),
            extra=group_extras(group, defaults or {}),
            param_names=param_names))
        for param_name in param_names:
            params[param_name] = dict(group=name, layer_id=layer_id,
                                      lr=group['lr'],
                                      weight_decay=rows[-1]['weight_decay'])
    # Same order as the table: by layer, decay first, otherwise mmdet's.
    rows.sort(key=lambda r: row_order(r['layer_id'], r['weight_decay']))
    return dict(groups=rows, params=params)


def plot(summary: Dict[str, Any], path: str, title: str) -> None:
    """PNG of lr per layer id, decay and no-decay groups apart, log scale."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, marker, pick in (('weight decay', 'o', True),
                                ('no weight decay', 'x', False)):
        points = [(g['layer_id'], g['lr']) for g in summary['groups']
                  if g['layer_id'] is not None and
                  (g['weight_decay'] > 0) == pick]
        if points:
            ax.plot(*zip(*sorted(points)), marker=marker, linestyle='',
                    label=label, markersize=8)
    ax.set_yscale('log')
    ax.set_xlabel('layer id (0 = stem, highest = neck and heads)')
    ax.set_ylabel('lr')
    ax.set_title(title, fontsize=8)
    ax.grid(True, which='both', alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m layerdecay_plugin`` and
    ``layerdecay-inspect``.

    Returns:
        int: 0, or 1 for a config that cannot be read or would not train
        (a ``LayerDecayConfigError``, or the plugin not in
        ``custom_imports``) or a work dir without a run's layer lrs: the
        message is printed to stderr without a traceback. A missing
        config file exits with argparse's status 2.
    """
    args = parse_args(argv)
    if args.work_dir:
        try:
            print(summarize_run(args.work_dir, args.plot))
        except SummaryError as error:
            print(f'error: {error}', file=sys.stderr)
            return 1
        return 0
    try:
        cfg = load_config(args.config, args.cfg_options)
    except Exception as error:  # noqa: BLE001  syntax, duplicate keys, ...
        # mmengine raises whatever the file caused; all are the user's to
        # fix in the config, and a traceback into mmengine does not help.
        print(f'{args.config}: error: cannot read the config: '
              f'{type(error).__name__}: {error}', file=sys.stderr)
        return 1
    problem = missing_plugin_import(cfg)
    if problem:
        print(f'{args.config}: {problem}', file=sys.stderr)
        if problem.startswith('error'):
            return 1
    try:
        groups, model, defaults, header = build_param_groups(
            cfg, args.config)
    except LayerDecayConfigError as error:
        print(f'{args.config}: error: {error}', file=sys.stderr)
        return 1
    summary = summarize(groups, model, defaults)
    constructor = cfg.optim_wrapper.get('constructor',
                                        'DefaultOptimWrapperConstructor')
    title = f'{args.config}: {constructor}'
    if not any(g['layer_id'] is not None for g in summary['groups']):
        print(f'{title}: no layer decay in this config: the constructor '
              f'built {len(groups)} param group(s) without layer ids. Set '
              "optim_wrapper.constructor='LayerDecayOptimWrapperConstructor' "
              'and paramwise_cfg=dict(decay_rate=...) to get it.')
    if header:  # the line the training log has above the same table
        title += '\n' + header
    rows = [
        GroupRow(g['group_name'], '-' if g['layer_id'] is None else
                 g['layer_id'], g['lr_scale'], g['lr'], g['weight_decay'],
                 g['num_tensors'], g['num_elements'],
                 ', '.join(g['param_names'][:2]) +
                 (', ...' if g['num_tensors'] > 2 else ''),
                 format_extra(g['extra']))
        for g in summary['groups']
    ]
    print(format_group_table(rows, title, samples=True))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(config=args.config, constructor=constructor,
                           **summary), f, indent=1, default=repr)
        print(f'wrote {args.json}: {len(rows)} groups and '
              f'{len(summary["params"])} parameters')
    if args.plot:
        plot(summary, args.plot,
             f'{os.path.basename(args.config)}: {constructor}')
        print(f'wrote {args.plot}: lr per layer id')
    return 0


if __name__ == '__main__':
    sys.exit(main())
