"""The original names and shapes of parameters under sharded engines.

Layer decay reads two things from a parameter: its name (for the layer id)
and its number of dimensions (1-D parameters get no weight decay). Sharded
engines change both without changing the model:

- FSDP (``use_orig_params=True``) puts ``_fsdp_wrapped_module.`` into the
  names of wrapped submodules (``_checkpoint_wrapped_module.`` under
  activation checkpointing) and turns every original parameter into a 1-D
  view of this rank's shard, empty on ranks that hold none of it. The flat
  parameter of each FSDP unit keeps the original shapes.
- DeepSpeed ZeRO-3 (a model built under ``deepspeed.zero.Init``) replaces each
  parameter's data by an empty tensor and keeps the real shape in
  ``ds_shape``.
- FSDP with ``use_orig_params=False`` exposes only ``_flat_param`` tensors,
  one per unit, each mixing many layers: no per-layer lr is possible.

The functions here recover the originals without communication, so every
rank computes the same groups.
"""
import math
from typing import Dict, Iterable, List, Tuple

import torch.nn as nn
# torch's own: drops the FSDP and activation-checkpoint wrapper components,
# e.g. 'backbone.stages.0._fsdp_wrapped_module.0.gamma' ->
# 'backbone.stages.0.0.gamma'.
from torch.distributed.fsdp._common_utils import \
    clean_tensor_name as clean_name

from .errors import LayerDecayConfigError

#: Module attributes under which wrappers keep the module they wrap; each
#: appears as an extra component in parameter names.
WRAPPED_MODULE_ATTRS = ('_fsdp_wrapped_module', '_checkpoint_wrapped_module')

Shape = Tuple[int, ...]


def unwrap(module: nn.Module) -> nn.Module:
    """The module an FSDP or checkpoint wrapper wraps (itself otherwise)."""
    while True:
        inner = next((module._modules[attr] for attr in WRAPPED_MODULE_ATTRS
                      if attr in module._modules), None)
        if inner is None:
            return module
        module = inner


def check_not_flat(named: Iterable[Tuple[str, nn.Parameter]]) -> None:
    """Refuse FSDP's flat parameters (``use_orig_params=False``).

    Args:
        named: ``(name, parameter)`` pairs of the model.

    Raises:
        LayerDecayConfigError: If any parameter is an FSDP ``FlatParameter``.
    """
    for name, param in named:
        if _is_flat_param(param):
            raise LayerDecayConfigError(
                f'parameter {name!r} is an FSDP flat parameter: the model '
                'is wrapped with use_orig_params=False, which merges the '
                'parameters of many layers into one tensor, so they cannot '
                'get per-layer learning rates. Layer decay under FSDP needs '
                'use_orig_params=True; add it to the strategy, e.g. '
                "strategy=dict(type='FSDPStrategy', model_wrapper=dict("
                "type='MMFullyShardedDataParallel', use_orig_params=True)).")


def _is_flat_param(param: nn.Parameter) -> bool:
    # torch >= 2.1 flags FlatParameters with `_is_flat_param`; torch 2.0's
    # are instances of a class of that name, without the flag.
    return bool(getattr(param, '_is_flat_param', False)) or \
        type(param).__name__ == 'FlatParameter'


def _flat_params(module: nn.Module) -> List[object]:
    """The flat parameters of an FSDP unit (none for other modules): torch
    >= 2.1 keeps the unit's handle in ``_handle``, torch 2.0 a list in
    ``_handles``, both plain instance attributes."""
    # vars(), not getattr: nn.Module.__getattr__ raises (slowly) for every
    # module that is not a unit, i.e. nearly all of them.
    attrs = vars(module)
    handle = attrs.get('_handle')
    handles = [handle] if handle is not None else \
        list(attrs.get('_handles') or ())
    return [flat for flat in (getattr(h, 'flat_param', None) for h in handles)
            if flat is not None]


def fsdp_original_shapes(module: nn.Module) -> Dict[int, Shape]:
    """Original shapes of parameters that FSDP turned into shard views.

    Reads the metadata FSDP keeps on each unit's flat parameter: no
    communication, no unsharding. Empty for a model without FSDP.

    Args:
        module: The model, or any module containing the FSDP units.

    Returns:
        dict: ``id(parameter) -> original shape``.

    Raises:
        LayerDecayConfigError: If an FSDP unit's flat parameter lacks that
            metadata (a torch version that keeps it elsewhere): the shard
            views' own shapes would silently drop every weight's decay.
    """
    shapes: Dict[int, Shape] = {}
    for submodule in module.modules():
        for flat in _flat_params(submodule):
            # use_orig_params=False (no `_params`) is refused before this,
            # by check_not_flat.
            params = getattr(flat, '_params', None)
            originals = getattr(flat, '_shapes', None)
            if params is None or originals is None:
                raise LayerDecayConfigError(
                    f'FSDP unit {type(submodule).__name__} keeps no original '
                    'parameters and shapes on its flat parameter (_params, '
                    '_shapes), where torch 2.x FSDP with use_orig_params='
                    'True keeps them: layer decay cannot tell a weight from '
                    'a 1-D shard view. Use use_orig_params=True with a torch '
                    'version that keeps them, or train without FSDP.')
            # `_params` and `_shapes` both skip FSDP's alignment padding; a
            # shared parameter is the same object as its first occurrence.
            for param, shape in zip(params, originals):
                shapes[id(param)] = tuple(shape)
    return shapes


def checked_fsdp_shapes(module: nn.Module) -> Dict[int, Shape]:
    """:func:`check_not_flat`, then :func:`fsdp_original_shapes`, on a model.

    Flat parameters live only in FSDP units, so a model without any (the
    usual, unsharded case) costs one walk over its modules and nothing else.

    Args:
        module: The model, or any module containing the FSDP units.

    Returns:
        dict: ``id(parameter) -> original shape``; empty without FSDP.

    Raises:
        LayerDecayConfigError: As the two functions do.
    """
    if not any(_flat_params(m) for m in module.modules()):
        return {}
    check_not_flat(module.named_parameters())
    return fsdp_original_shapes(module)


def original_shape(param: nn.Parameter, fsdp_shapes: Dict[int,
                                                           Shape]) -> Shape:
    """A parameter's shape before sharding.

    Args:
        param: The parameter the optimizer will hold.
        fsdp_shapes: From :func:`fsdp_original_shapes`.

    Returns:
        tuple: ZeRO-3's ``ds_shape`` if set, else FSDP's recorded shape,
        else the parameter's own shape.
    """
    ds_shape = getattr(param, 'ds_shape', None)
    if ds_shape is not None:
        return tuple(ds_shape)
    return fsdp_shapes.get(id(param), tuple(param.shape))


def numel(shape: Shape) -> int:
    """Number of elements of a shape."""
    return math.prod(shape)
