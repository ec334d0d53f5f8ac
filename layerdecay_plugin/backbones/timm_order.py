"""The forward order of a timm model: when each parameter is first used on
a dummy input, for the names its ``group_matcher`` does not place by
itself (:func:`layerdecay_plugin.rules.timm.timm_ids_in_order`).

A parameter of a submodule is used when its module is first called; a
parameter of the model itself (a token, a position table) when a tensor
operation first takes it, which tells Visformer's ``pos_embed2``, added
before the second stage, from a ViT's ``pos_embed``, added with the
embedding. The model's own call starts before everything, so it cannot
time them.
"""
import logging
from typing import Any, Collection, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from torch.overrides import TorchFunctionMode

from ..errors import LayerDecayConfigError
from ..sharding import clean_name, unwrap
from .trace import first_calls, fsdp_units, param_first_calls

#: Side of the dummy input for models without a fixed input size: enough
#: for timm's CNNs (stride 32 and more), a fraction of the cost at 224 px.
SMALL_SIZE = 128


def dummy_shapes(model: nn.Module) -> List[Tuple[int, ...]]:
    """Inputs to try the timm model on: its patch embedding's fixed size
    where it has one, else :data:`SMALL_SIZE` and then its
    ``pretrained_cfg['input_size']``; with the channels of that
    ``input_size``, then those of its first convolution (``in_chans``)."""
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    channels, *size = cfg.get('input_size', (3, 224, 224))
    fixed = bool(cfg.get('fixed_input_size'))
    for module in model.modules():
        img_size = getattr(module, 'img_size', None)
        if isinstance(img_size, (tuple, list)) and len(img_size) == 2 and \
                all(isinstance(s, int) for s in img_size):
            size, fixed = list(img_size), True
            break
    sizes = [tuple(size)]
    if not fixed and max(size) > SMALL_SIZE:
        sizes.insert(0, (SMALL_SIZE, SMALL_SIZE))
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)),
                None)
    all_channels = [channels] + ([conv.in_channels] if conv is not None
                                 and conv.in_channels != channels else [])
    return [(1, c, *hw) for c in all_channels for hw in sizes]


def _tensors(value: Any):
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, torch.Tensor):
        yield value


#: Tensor methods that read metadata: no use of the values.
_METADATA = frozenset(('__get__', 'size', 'dim', 'numel', 'is_floating_point',
                       'is_complex', 'element_size', 'get_device'))


class _FirstUse(TorchFunctionMode):
    """Records when tensor operations first take the given parameters, on
    the clock of :func:`first_calls`: module ``k`` first called at
    ``2k``, a use after ``k`` modules were first called at ``2k - 1``.
    Reading metadata (``.shape``, ``.dtype``) is no use, and nothing
    before the model's own call (:func:`first_calls` reads the dtype of
    its first parameter) is."""

    def __init__(self, model: nn.Module, watched: Dict[int, str]) -> None:
        super().__init__()
        self.watched = watched
        self.used: Dict[str, int] = {}
        self.called: Dict[int, int] = {}
        # Registered before first_calls' hooks, so they run first.
        self.hooks = [m.register_forward_pre_hook(self._enter)
                      for m in model.modules()]

    def _enter(self, module: nn.Module, args) -> None:
        self.called.setdefault(id(module), len(self.called))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if not self.called or getattr(func, '__name__', '') in _METADATA:
            return func(*args, **(kwargs or {}))
        for tensor in _tensors((args, kwargs or {})):
            name = self.watched.get(id(tensor))
            if name is not None and name not in self.used:
                self.used[name] = 2 * len(self.called) - 1
        return func(*args, **(kwargs or {}))

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()


def _timed(model: nn.Module, shape: Tuple[int, ...],
           own: Collection[str]) -> Dict[str, int]:
    """Name -> first use (doubled first calls, first uses of ``own``)."""
    watched = {id(p): clean_name(n) for n, p in model.named_parameters()
               if clean_name(n) in own}
    if not watched:
        calls = param_first_calls(model, first_calls(model, shape))
        return {clean_name(n): 2 * t for n, t in calls.items()}
    mode = _FirstUse(model, watched)
    try:
        with mode:
            called = first_calls(model, shape)
    finally:
        mode.remove()
    calls = param_first_calls(model, called)
    timed = {clean_name(n): 2 * t for n, t in calls.items()}
    timed.update(mode.used)
    return timed


def forward_order(model: nn.Module, own: Collection[str] = ()
                  ) -> Tuple[Dict[str, int], Optional[Tuple[int, ...]]]:
    """Name -> first use of the parameter on a dummy input, and that
    input's shape; registration order and None when no dummy input works,
    or when the model holds FSDP units (which a dry run would break).

    Args:
        model: The timm model (bare or a ``features_only`` wrapper).
        own: Names (as :func:`clean_name` gives them) of the parameters of
            the timm model itself, timed by their first use.
    """
    names = [clean_name(n) for n, _ in model.named_parameters()]
    by_registration = {n: i for i, n in enumerate(names)}
    units = fsdp_units(model)
    if units:
        print_log(
            f'layer decay: the timm model {type(unwrap(model)).__name__} '
            f'holds {len(units)} FSDP unit(s), which a run on a dummy input '
            'would initialise outside training; placing the parameters its '
            'group_matcher leaves out by registration order instead',
            logger='current')
        return by_registration, None
    for shape in dummy_shapes(model):
        try:
            return _timed(model, shape, own), shape
        except LayerDecayConfigError:  # the shape; the next may do
            pass
    print_log(
        f'layer decay: running the timm model {type(model).__name__} on a '
        f'dummy input {dummy_shapes(model)} failed; placing the parameters '
        'its group_matcher leaves out by registration order instead',
        logger='current', level=logging.WARNING)
    return by_registration, None
