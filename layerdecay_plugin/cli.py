"""``python -m layerdecay_plugin CONFIG``: what lr does each layer get?

Builds only the model of a config (no dataset, no weights: ``init_weights``
is never called and ``init_cfg`` is dropped) and the optimizer its
``optim_wrapper`` describes, then prints one row per param group ordered by
layer id. Works with this plugin's constructor, mmdet's
``LearningRateDecayOptimizerConstructor`` and any other constructor.
"""
import argparse
import copy
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

from .grouping import group_layer_id
from .report import GroupRow, format_group_table


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        prog='python -m layerdecay_plugin',
        description='Show the lr and weight decay every layer of a config '
        "gets from its optim_wrapper's constructor.")
    parser.add_argument('config', help='an mmdet-style config file')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={},
        help='override config keys, e.g. optim_wrapper.constructor='
        'LayerDecayOptimWrapperConstructor')
    parser.add_argument('--json', metavar='PATH',
                        help='write groups and every parameter as JSON')
    parser.add_argument('--plot', metavar='PATH',
                        help='write a PNG of lr per layer id')
    return parser.parse_args(argv)


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


def build_param_groups(config: str, cfg_options: Optional[dict] = None):
    """Build a config's model and optimizer; return (cfg, param groups, model).

    Args:
        config: Path of the config file.
        cfg_options: Overrides, as ``--cfg-options`` gives them.

    Returns:
        tuple: The merged ``Config``, the optimizer's ``param_groups`` and
        the model.
    """
    import torch
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.utils import import_modules_from_strings

    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = copy.deepcopy(cfg.model)  # ConfigDict: models read attributes
    _drop_init_cfg(model_cfg)
    model = MODELS.build(model_cfg)
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    if optim_cfg.get('type') == 'AmpOptimWrapper' and \
            not torch.cuda.is_available():
        optim_cfg['type'] = 'OptimWrapper'  # same groups, no GPU needed
    wrapper = build_optim_wrapper(model, optim_cfg)
    return cfg, wrapper.optimizer.param_groups, model


def summarize(groups: List[dict], model) -> Dict[str, Any]:
    """Groups and per-parameter settings as plain data.

    Args:
        groups: An optimizer's ``param_groups``.
        model: The model the parameters belong to, to name them.

    Returns:
        dict: ``groups`` (sorted by layer id) and ``params`` (name -> group,
        layer id, lr, weight decay).
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
            param_names=param_names))
        for param_name in param_names:
            params[param_name] = dict(group=name, layer_id=layer_id,
                                      lr=group['lr'],
                                      weight_decay=rows[-1]['weight_decay'])
    rows.sort(key=lambda r: (r['layer_id'] is None, r['layer_id'] or 0,
                             r['group_name']))
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
    ``layerdecay-inspect``."""
    args = parse_args(argv)
    cfg, groups, model = build_param_groups(args.config, args.cfg_options)
    summary = summarize(groups, model)
    constructor = cfg.optim_wrapper.get('constructor',
                                        'DefaultOptimWrapperConstructor')
    title = f'{args.config}: {constructor}'
    if not any(g['layer_id'] is not None for g in summary['groups']):
        print(f'{title}: no layer decay in this config: the constructor '
              f'built {len(groups)} param group(s) without layer ids. Set '
              "optim_wrapper.constructor='LayerDecayOptimWrapperConstructor' "
              'and paramwise_cfg=dict(decay_rate=...) to get it.')
    rows = [
        GroupRow(g['group_name'], '-' if g['layer_id'] is None else
                 g['layer_id'], g['lr_scale'], g['lr'], g['weight_decay'],
                 g['num_tensors'], g['num_elements'],
                 ', '.join(g['param_names'][:2]) +
                 (', ...' if g['num_tensors'] > 2 else ''))
        for g in summary['groups']
    ]
    print(format_group_table(rows, title, samples=True))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(config=args.config, constructor=constructor,
                           **summary), f, indent=1)
    if args.plot:
        plot(summary, args.plot,
             f'{os.path.basename(args.config)}: {constructor}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
