"""What mmengine's own paramwise options (``custom_keys``, ``*_lr_mult``,
``*_decay_mult``) give each parameter, so that layer decay scales what
mmengine decides rather than re-implementing its rules (``custom_keys``
precedence, DCN and norm detection).
"""
import logging
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Mapping

import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor

from .sharding import Shape, unwrap


def mmengine_options(optim_wrapper_cfg: dict, mm_cfg: Mapping[str, Any],
                     module: nn.Module, named: Dict[str, nn.Parameter],
                     shapes: Dict[str, Shape]) -> Dict[int, dict]:
    """What mmengine's constructor gives each parameter, by ``id()``, as it
    would on the unwrapped, unsharded model.

    Args:
        optim_wrapper_cfg: The optimizer wrapper config, its ``optimizer``
            included.
        mm_cfg: The mmengine options of ``paramwise_cfg``.
        module: The model.
        named: Its trainable parameters by (clean) name.
        shapes: Every parameter's original shape by (clean) name.

    Returns:
        dict: ``id(param) -> group keys`` (``lr``, ``weight_decay``, extra
        ``custom_keys`` entries); empty without options.
    """
    if not mm_cfg:
        return {}
    options = _run_mmengine(optim_wrapper_cfg, mm_cfg, module)
    # mmengine's flat_decay_mult picks parameters by `param.ndim == 1`,
    # which every FSDP shard view and ZeRO-3 placeholder is. Find the
    # parameters that rule touched (their weight decay follows
    # flat_decay_mult) and undo it for those not really 1-D.
    views = [p for n, p in named.items() if len(shapes[n]) != p.ndim]
    flat_mult = mm_cfg.get('flat_decay_mult')
    if views and flat_mult is not None and \
            optim_wrapper_cfg['optimizer'].get('weight_decay'):
        probe = _run_mmengine(optim_wrapper_cfg,
                              dict(mm_cfg, flat_decay_mult=flat_mult + 1),
                              module)
        for param in views:
            mine, other = (opts.get(id(param), {})
                           for opts in (options, probe))
            if param.ndim == 1 and mine.get('weight_decay') != \
                    other.get('weight_decay'):
                del mine['weight_decay']
    return options


def _run_mmengine(optim_wrapper_cfg: dict, mm_cfg: Mapping[str, Any],
                  module: nn.Module) -> Dict[int, dict]:
    # mmengine's own rules, with its per-parameter log lines silenced.
    default = _UnwrappingConstructor(optim_wrapper_cfg, dict(mm_cfg))
    mm_groups: List[dict] = []
    with _quiet_logger():
        default.add_params(mm_groups, module)
    options: Dict[int, dict] = {}
    for group in mm_groups:
        param = group['params'][0]
        options.setdefault(
            id(param), {k: v for k, v in group.items() if k != 'params'})
    return options


class _UnwrappingConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default rules, walking through FSDP and checkpoint
    wrappers (its add_params recurses through self), so that custom_keys
    see the same names as on the unwrapped model."""

    def add_params(self, params, module, prefix='', is_dcn_module=None):
        super().add_params(params, unwrap(module), prefix, is_dcn_module)


@contextmanager
def _quiet_logger() -> Iterator[None]:
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
