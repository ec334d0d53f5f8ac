"""The one grouping algorithm: parameter names in, ordered param groups out.

Torch-free: parameters arrive as :class:`ParamInfo` and the id rule as a
callable, so every backbone's rules feed the same code path.
"""
import re
from typing import (Any, Callable, Dict, Iterable, List, Mapping, NamedTuple,
                    Optional, Sequence, Tuple)

from .rules import NO_DECAY_NAMES, is_no_decay, layer_scale

_EMPTY: Mapping[str, Any] = {}


class ParamInfo(NamedTuple):
    """What grouping needs to know of one trainable parameter.

    Attributes:
        name: Full name in the model.
        ndim: Number of dimensions.
        options: What mmengine's paramwise options give it (``lr``,
            ``weight_decay`` and any extra ``custom_keys`` entries); empty
            when none applies.
    """
    name: str
    ndim: int
    options: Mapping[str, Any] = _EMPTY


class GroupPlan(NamedTuple):
    """One optimizer param group, before parameter objects are attached."""
    group_name: str
    layer_id: int
    lr_scale: float
    lr: float
    weight_decay: float
    param_names: List[str]
    extra: Dict[str, Any]


def plan_groups(params: Iterable[ParamInfo],
                layer_id_of: Callable[[str], int],
                decay_rate: float,
                num_layers: int,
                base_lr: float,
                base_wd: float,
                no_decay_names: Sequence[str] = NO_DECAY_NAMES
                ) -> List[GroupPlan]:
    """Group trainable parameters that share a layer id and hyper-parameters.

    A parameter's lr is ``lr_scale(layer id) * (its mmengine lr or
    base_lr)``; its weight decay is its mmengine weight decay where an
    mmengine rule set one, else 0 for 1-D parameters, biases and
    ``no_decay_names``, else ``base_wd``. Groups come out in the order their
    first parameter appears and hold their names in parameter order, which
    is the order mmdet produces, so an optimizer state saved with one loads
    into the other.

    Args:
        params: Trainable parameters in ``named_parameters()`` order.
        layer_id_of: Maps a full parameter name to its layer id.
        decay_rate: Per-layer lr decay factor.
        num_layers: The ``num_layers`` in effect.
        base_lr: Optimizer lr.
        base_wd: Optimizer weight decay.
        no_decay_names: Last name components that get no weight decay.

    Returns:
        list[GroupPlan]: Groups named ``layer_{id}_{decay|no_decay}``, with a
        suffix describing mmengine options where they apply.
    """
    groups: Dict[Tuple, GroupPlan] = {}
    names_used: Dict[str, Tuple] = {}
    for param in params:
        layer_id = layer_id_of(param.name)
        no_decay = is_no_decay(param.name, param.ndim, no_decay_names)
        default_wd = 0. if no_decay else base_wd
        options = param.options
        if options:  # only with mmengine options; the common path skips it
            options = dict(options)
            weight_decay = options.pop('weight_decay', default_wd)
            own_lr = options.pop('lr', base_lr)
            extra_key = repr(sorted(options.items()))
        else:
            weight_decay, own_lr, extra_key = default_wd, base_lr, ''
        key = (layer_id, no_decay, weight_decay, own_lr, extra_key)
        if key not in groups:
            scale = layer_scale(decay_rate, num_layers, layer_id)
            name = _group_name(layer_id, no_decay, default_wd, weight_decay,
                               own_lr, base_lr)
            if name in names_used:  # same look, different extra options
                name = f'{name}_{sum(n.startswith(name) for n in names_used)}'
            names_used[name] = key
            groups[key] = GroupPlan(name, layer_id, scale, scale * own_lr,
                                    weight_decay, [], dict(options))
        groups[key].param_names.append(param.name)
    return list(groups.values())


def _group_name(layer_id: int, no_decay: bool, default_wd: float,
                weight_decay: float, own_lr: float, base_lr: float) -> str:
    name = f'layer_{layer_id}_{"no_decay" if no_decay else "decay"}'
    if own_lr != base_lr:
        name += f'_lr_x{own_lr / base_lr:g}'
    if weight_decay != default_wd:
        name += f'_wd{weight_decay:g}'
    return name


_LAYER_PREFIX = re.compile(r'^layer_(\d+)_')


def group_layer_id(group_name: Any) -> Optional[int]:
    """Layer id from a group name ``layer_{id}_...`` (ours or mmdet's).

    Args:
        group_name: A param group's ``group_name``, or None.

    Returns:
        int | None: The id, or None for groups not named that way.
    """
    match = _LAYER_PREFIX.match(str(group_name or ''))
    return int(match.group(1)) if match else None
