"""``python -m layerdecay_plugin inspect CONFIG``: what lr will each layer
get?

Builds only the model of a config (no dataset, no weights: ``init_weights``
is never called and ``init_cfg`` is dropped) and the optimizer its
``optim_wrapper`` describes, then prints one row per param group ordered by
layer id, and what the config's ``param_scheduler`` does to the layers' lrs
(``checks.schedule``). Works with this plugin's constructor, mmdet's
``LearningRateDecayOptimizerConstructor`` and any other constructor. A
config that asks for layer decay and would not get it
(``registry.constructor_problem``) is refused before anything is built.
"""
import argparse
import copy
import json
import os
import sys
import warnings
from typing import Any, Dict, List, Optional

from ..checks.schedule import check_towers_schedule
from ..errors import LayerDecayConfigError
from ..messages import config_warnings
from ..registry import NAME, OWN_KEYS, SHARED_NAME, constructor_problem
from ..report import (GroupTableFilter, group_data, record_blocks,
                      record_title)
from ..resume import record_of
from ..table import row_order
from .render import group_table, lr_per_layer, plot, tower_order

HELP = ("show the lr and weight decay every layer of a config gets from "
        "its optim_wrapper's constructor")
PLUGIN = 'layerdecay_plugin'
# Type names this package registers, and where a config names them.
_OUR_TYPES = {
    name: f"optim_wrapper.constructor='{name}'"
    for name in (NAME, SHARED_NAME)
}
_OUR_TYPES['LayerDecayLrHook'] = "custom_hooks=[dict(type='LayerDecayLrHook')]"
# Top-level packages known not to import this plugin themselves.
_OPENMMLAB = ('mmengine', 'mmcv', 'mmdet', 'mmpretrain', 'mmcls', 'mmseg',
              'mmdet3d', 'mmpose', 'mmrotate', 'mmyolo')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments."""
    from mmengine.config import DictAction
    parser.add_argument('config', type=_existing_file, metavar='CONFIG',
                        help='an mmdet-style config file')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={},
        metavar='K=V', help='override config keys, e.g. '
        'optim_wrapper.constructor=LayerDecayOptimWrapperConstructor')
    parser.add_argument('--json', metavar='PATH',
                        help='write groups and every parameter as JSON')
    parser.add_argument('--plot', metavar='PATH',
                        help='write a PNG of lr per layer id')
    parser.add_argument('--wide', action='store_true',
                        help='every column in full (default: at most 120 '
                        'characters wide)')


def _existing_file(path: str) -> str:
    # argparse prints "error: argument CONFIG: ..." and exits with status 2,
    # without a traceback.
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f'no config file at {path!r}')
    return path


def missing_plugin_import(cfg) -> Optional[str]:
    """Why training this config would not find the plugin, if it would not.

    A config that names ``LayerDecayPluginConstructor``,
    ``LayerDecayOptimWrapperConstructor`` (with this plugin's
    ``paramwise_cfg`` keys: other projects register classes of that name)
    or ``LayerDecayLrHook`` without importing ``layerdecay_plugin`` fails under
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
    optim_wrapper = cfg.get('optim_wrapper') or {}
    constructor = optim_wrapper.get('constructor')
    if constructor == SHARED_NAME and not OWN_KEYS & set(
            optim_wrapper.get('paramwise_cfg') or {}):
        constructor = None  # mmpose's class, or the one of mmengine's docs
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


def training_scope(cfg) -> Optional[str]:
    """The default scope a ``Runner`` gives a config: ``'mmengine'`` (the
    root registries, no mmdet import) where it sets none, none for None."""
    return cfg.get('default_scope', 'mmengine')


def wiring_problem(cfg) -> str:
    """:func:`~layerdecay_plugin.registry.constructor_problem`, names looked
    up as training does: ``custom_imports`` imported, in the registry of
    the default scope (mmdet's constructors are in mmdet's, not the root).

    Args:
        cfg: The merged config.

    Returns:
        str: Why its run would not get the layer decay it asks for (the
        key, the value and the fix); ``''`` when it would.
    """
    from mmengine.utils import import_modules_from_strings

    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    return constructor_problem(cfg.get('optim_wrapper'), training_scope(cfg))


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


def build_optimizer(cfg, config: str):
    """Build a config's model and optimizer.

    The constructor's own log table is filtered out of the current logger
    (this command prints a sorted one with sample names); its other log
    lines still appear. Config warnings point at ``config``.

    Args:
        cfg: The merged ``Config`` (see :func:`load_config`).
        config: Its path.

    Returns:
        tuple: The optimizer and the model.
    """
    import torch
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.utils import import_modules_from_strings

    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    scope = training_scope(cfg)  # the scope training gets
    if scope is not None:
        init_default_scope(scope)
    model_cfg = copy.deepcopy(cfg.model)  # ConfigDict: models read attributes
    _drop_init_cfg(model_cfg)
    model = MODELS.build(model_cfg)
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    if optim_cfg.get('type') == 'AmpOptimWrapper' and \
            not torch.cuda.is_available():
        # same groups, no GPU needed; OptimWrapper takes no AMP arguments
        optim_cfg['type'] = 'OptimWrapper'
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            optim_cfg.pop(key, None)
    logger = MMLogger.get_current_instance()
    table_filter = GroupTableFilter()
    logger.addFilter(table_filter)
    try:
        with config_warnings(config):
            wrapper = build_optim_wrapper(model, optim_cfg)
    finally:
        logger.removeFilter(table_filter)
    return wrapper.optimizer, model


def summarize(optimizer, model) -> Dict[str, Any]:
    """Groups and per-parameter settings as plain data.

    Args:
        optimizer: The optimizer.
        model: The model its parameters belong to, to name them.

    Returns:
        dict: ``groups`` (``report.group_data`` and their ``param_names``,
        sorted by layer id, decay before no-decay) and ``params`` (name ->
        group, layer id, lr, weight decay).
    """
    names = {id(p): n for n, p in model.named_parameters()}
    rows = group_data(optimizer.param_groups, optimizer.defaults,
                      lambda p: p.numel())
    params = {}
    for row, group in zip(rows, optimizer.param_groups):
        row['param_names'] = [names.get(id(p), '?') for p in group['params']]
        for param_name in row['param_names']:
            params[param_name] = dict(
                group=row['group_name'], layer_id=row['layer_id'],
                lr=row['lr'], weight_decay=row['weight_decay'])
    # Same order as the table: by tower, layer, decay first, else mmdet's.
    towers = tower_order(rows)
    rows.sort(key=lambda r: (towers[r.get('tower', '')], ) + row_order(
        r['layer_id'], r['weight_decay']))
    return dict(groups=rows, params=params)


def schedule_notes(cfg, groups: List[dict], base_lr: float) -> list:
    """What the config's ``param_scheduler`` does to the layers' lrs:
    :func:`~layerdecay_plugin.checks.schedule.check_towers_schedule` on
    each tower's layers, as the constructor reports it when a runner builds
    it.

    Args:
        cfg: The merged config.
        groups: The groups (:func:`summarize`).
        base_lr: The optimizer's ``lr``.

    Returns:
        list[Note]: Warnings and info lines; empty without layer ids.
    """
    return check_towers_schedule(
        cfg.get('param_scheduler'),
        [(g.get('tower', ''), g['layer_id'], g['lr_scale']) for g in groups],
        base_lr)


def run(args: argparse.Namespace) -> int:
    """Print the table of a config's groups; write ``--json``/``--plot``.

    Returns:
        int: 0; 1 for a config that cannot be read or would not train (a
        ``LayerDecayConfigError``, or the plugin not in ``custom_imports``);
        2 for one that asks for layer decay and would train without it
        (:func:`wiring_problem`). The message is printed to stderr without
        a traceback.
    """
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
    problem = wiring_problem(cfg)
    if problem:
        print(f'{args.config}: error: {problem}', file=sys.stderr)
        return 2
    try:
        optimizer, model = build_optimizer(cfg, args.config)
    except LayerDecayConfigError as error:
        print(f'{args.config}: error: {error}', file=sys.stderr)
        return 1
    summary = summarize(optimizer, model)
    constructor = cfg.optim_wrapper.get('constructor',
                                        'DefaultOptimWrapperConstructor')
    title = f'{args.config}: {constructor}'
    if not any(g['layer_id'] is not None for g in summary['groups']):
        print(f'{title}: no layer decay in this config: the constructor '
              f'built {len(summary["groups"])} param group(s) without layer '
              f"ids. Set optim_wrapper.constructor='{NAME}' and "
              'paramwise_cfg=dict(decay_rate=...) to get it.')
    header = record_title(record_of(optimizer))
    if header:  # the line the training log has above the same table
        title += '\n' + header
    print(group_table(summary['groups'], title, samples=True,
                      wide=args.wide,
                      blocks=record_blocks(record_of(optimizer))))
    for note in schedule_notes(cfg, summary['groups'],
                               optimizer.defaults['lr']):
        print(f'{note.level}: {note.text}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(config=args.config, constructor=constructor,
                           **summary), f, indent=1, default=repr)
        print(f'wrote {args.json}: {len(summary["groups"])} groups and '
              f'{len(summary["params"])} parameters')
    if args.plot:
        plot(lr_per_layer(summary['groups']), args.plot,
             f'{os.path.basename(args.config)}: {constructor}',
             'layer id (0 = stem, highest = neck and heads)')
        print(f'wrote {args.plot}: lr per layer id')
    return 0
