"""``paramwise_cfg.freeze_below``: which parameters it freezes, whether the
model's data-parallel wrapper allows it, and the note under the group
table. Torch-free.

Frozen parameters are left out of the optimizer and get
``requires_grad=False`` (as timm's ``no_opt_scale`` does), so no gradient
is computed or reduced for them. mmengine's ``Runner`` (and
``FlexibleRunner``'s ``DDPStrategy``) wraps the model in
``DistributedDataParallel`` before it builds the optimizer; DDP then waits
for the gradients of every parameter that required them at wrap time,
and without ``find_unused_parameters=True`` torch fails at the second
iteration. :func:`check_wrapper` refuses that case at build time. FSDP
(``use_orig_params=True``) and DeepSpeed (which builds the optimizer
first) need nothing.
"""
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

from ..errors import LayerDecayConfigError
from .frozen import id_ranges

#: ``(full name, layer id, trainable, number of elements)`` of a parameter.
ParamOfId = Tuple[str, int, bool, int]


def ids_below(ids: Iterable[int], scale_of: Callable[[int], float],
              threshold: float) -> List[int]:
    """The layer ids whose lr scale is below ``threshold``.

    Args:
        ids: Layer ids (repeats allowed).
        scale_of: The lr scale of an id, ``min_lr_scale`` applied.
        threshold: ``paramwise_cfg.freeze_below``; 0 freezes nothing.

    Returns:
        list[int]: Sorted ids.
    """
    if not threshold:
        return []
    return sorted(i for i in set(ids) if scale_of(i) < threshold)


def check_wrapper(names: Sequence[str], ids: Sequence[int],
                  threshold: float, find_unused: Optional[bool]) -> None:
    """Refuse to freeze parameters that a DistributedDataParallel wrapper
    built without ``find_unused_parameters`` already waits for.

    Args:
        names: Trainable parameters to freeze.
        ids: Their layer ids.
        threshold: ``paramwise_cfg.freeze_below``.
        find_unused: The wrapper's ``find_unused_parameters``; None when
            the model is not in a DistributedDataParallel wrapper.

    Raises:
        LayerDecayConfigError: Naming the parameters, the wrapper and the
            fixes.
    """
    if not names or find_unused is None or find_unused:
        return
    raise LayerDecayConfigError(
        f'paramwise_cfg.freeze_below={threshold:g} freezes {len(names)} '
        f'parameter(s) of layer ids {id_ranges(ids)} (e.g. {names[0]!r}), '
        'but the model was wrapped in DistributedDataParallel with '
        'find_unused_parameters=False before the optimizer was built '
        "(mmengine's Runner does so), and DDP would wait for their "
        'gradients (torch fails at the second iteration). Set '
        'find_unused_parameters=True: in the config, '
        '`find_unused_parameters = True` (Runner) or strategy=dict('
        "type='DDPStrategy', model_wrapper=dict(type="
        "'MMDistributedDataParallel', find_unused_parameters=True)) "
        '(FlexibleRunner); or freeze those layers in the model before it is '
        "wrapped (the backbone's frozen_stages); or lower freeze_below.")


def freeze_note(params: Iterable[ParamOfId], ids: Sequence[int],
                scale_of: Callable[[int], float], threshold: float) -> str:
    """The note under the group table about the ids ``freeze_below``
    freezes.

    Args:
        params: Every parameter of the model.
        ids: The ids :func:`ids_below` found.
        scale_of: The lr scale of an id, ``min_lr_scale`` applied.
        threshold: ``paramwise_cfg.freeze_below``.

    Returns:
        str: e.g. ``'layer ids 0-2 frozen by paramwise_cfg.freeze_below=
        0.05 (lr_scale 0.0134-0.0352): left out of the optimizer,
        requires_grad=False (6 tensors, 1,234 elements)'``; empty when
        nothing is frozen.
    """
    if not ids:
        return ''
    chosen = set(ids)
    tensors = elements = 0
    for _, layer_id, _, size in params:
        if layer_id in chosen:
            tensors += 1
            elements += size
    scales = [scale_of(i) for i in ids]
    low, high = min(scales), max(scales)
    span = f'{low:.3g}' if low == high else f'{low:.3g}-{high:.3g}'
    noun = 'layer ids' if len(ids) > 1 else 'layer id'
    return (f'{noun} {id_ranges(ids)} frozen by paramwise_cfg.freeze_below='
            f'{threshold:g} (lr_scale {span}): left out of the optimizer, '
            f'requires_grad=False ({tensors} tensors, {elements:,} '
            'elements)')
