"""Forward-order tracing: run a backbone once on a dummy input and record
when each module first runs, for ``rules='auto'`` and for the timm models
whose group_matcher leaves parameters out.

The run is in eval mode, without gradients, its train/eval flags restored
afterwards, so BatchNorm statistics and the random state are untouched. A
backbone that holds FSDP units is never run: its forward would start FSDP's
lazy initialisation outside training, with the units in the wrong roles, and
the first training step would fail (torch: "Non-root FSDP instance's
`_is_root` should not have been set yet").
"""
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn as nn
from torch.distributed.fsdp import FullyShardedDataParallel

from ..errors import LayerDecayConfigError
from .types import class_path


def fsdp_units(module: nn.Module) -> List[str]:
    """Names of the FSDP units in ``module`` (``''`` for itself): wrappers
    of ``FullyShardedDataParallel`` and modules of ``fully_shard``, whose
    classes torch names ``FSDP<class>``."""
    return [name for name, m in module.named_modules()
            if isinstance(m, FullyShardedDataParallel)
            or type(m).__name__.startswith('FSDP')]


def owned(module: nn.Module) -> List[str]:
    return [name for name, _ in module.named_parameters(recurse=False)]


@contextmanager
def _dry_run_mode(backbone: nn.Module) -> Iterator[None]:
    """eval mode and no gradients, restoring every module's flag after."""
    modes = [(m, m.training) for m in backbone.modules()]
    backbone.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training


def first_calls(backbone: nn.Module,
                input_shape: Tuple[int, ...]) -> Dict[str, int]:
    """Run the backbone once on zeros and record when each module first ran.

    Args:
        backbone: The backbone.
        input_shape: Shape of the dummy input.

    Returns:
        dict: Module name (relative, ``''`` for the backbone) -> index of
        its first call; modules that never ran are absent.

    Raises:
        LayerDecayConfigError: If the forward pass fails, naming the shape,
            or the backbone holds FSDP units (see the module docstring).
    """
    units = fsdp_units(backbone)
    if units:
        raise LayerDecayConfigError(
            f"paramwise_cfg.rules='auto' would run backbone "
            f'{class_path(type(backbone))} on a dummy input, but it holds '
            f'{len(units)} FSDP unit(s) (e.g. {units[0] or "itself"!r}): '
            "that run would start FSDP's lazy initialisation outside "
            'training and break the first training step. Give it rules that '
            "read names (a family's, e.g. rules='convnext', or your own "
            '(regex, id) rules: docs/backbones.md), or build the optimizer '
            'before wrapping the model.')
    names = {id(m): n for n, m in backbone.named_modules()}
    calls: Dict[str, int] = {}

    def record(module: nn.Module, args) -> None:
        calls.setdefault(names[id(module)], len(calls))

    param = next(backbone.parameters(), None)
    device = param.device if param is not None else 'cpu'
    dtype = param.dtype if param is not None and param.is_floating_point() \
        else torch.float32
    # zeros, not random: the global random state stays as it was.
    dummy = torch.zeros(input_shape, device=device, dtype=dtype)
    hooks = [m.register_forward_pre_hook(record) for m in backbone.modules()]
    try:
        with _dry_run_mode(backbone):
            backbone(dummy)
    except Exception as exc:  # noqa: BLE001 - any failure means a bad shape
        raise LayerDecayConfigError(
            f"paramwise_cfg.rules='auto' ran backbone "
            f'{class_path(type(backbone))} on a dummy input of shape '
            f'{tuple(input_shape)} and it failed ({type(exc).__name__}: '
            f'{exc}). Give a shape it accepts, e.g. rules=dict('
            "type='auto', input_shape=(1, 3, 256, 256)).") from None
    finally:
        for hook in hooks:
            hook.remove()
    return calls


def first_call_of(name: str, calls: Dict[str, int]) -> Optional[int]:
    """First call of a module, or of its nearest ancestor that ran (e.g.
    ``nn.MultiheadAttention`` uses ``out_proj``'s weight without calling
    it)."""
    while True:
        if name in calls:
            return calls[name]
        if not name:
            return None
        name = name.rsplit('.', 1)[0] if '.' in name else ''


def param_first_calls(backbone: nn.Module,
                      calls: Dict[str, int]) -> Dict[str, int]:
    """Parameter name -> first call of the module that owns it.

    Args:
        backbone: The backbone.
        calls: From :func:`first_calls`.

    Returns:
        dict: For every parameter whose owner (or an ancestor) ran.
    """
    order = {}
    for mname, module in backbone.named_modules():
        when = first_call_of(mname, calls)
        for pname in owned(module):
            if when is not None:
                order[f'{mname}.{pname}' if mname else pname] = when
    return order
