"""The one grouping algorithm: parameter names in, ordered param groups out.

Torch-free: parameters arrive as :class:`ParamInfo` and the id rule as a
callable, so every backbone's rules feed the same code path.
"""
from typing import (Any, Callable, Collection, Dict, Iterable, List,
                    Mapping, NamedTuple, Optional, Sequence, Tuple)

from .groupnames import Settings, group_names, group_layer_id
from .rules import NO_DECAY_NAMES, is_no_decay
from .rules.common import effective_scale

__all__ = ['GroupPlan', 'ParamInfo', 'Settings', 'group_layer_id',
           'group_names', 'param_settings', 'plan_groups']

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
    """One optimizer param group, before parameter objects are attached;
    ``tower`` is ``''`` but for a tower other than the first."""
    group_name: str
    layer_id: int
    lr_scale: float
    lr: float
    weight_decay: float
    param_names: List[str]
    extra: Dict[str, Any]
    tower: str = ''


def param_settings(options: Mapping[str, Any], default_no_decay: bool,
                   base_lr: float, base_wd: float) -> Settings:
    """The lr, weight decay and extra keys of one parameter.

    Without mmengine options, or when they leave lr and weight decay at the
    layer-decay defaults and add no key, the parameter gets mmdet's settings
    and label (``'decay'``: the optimizer's weight decay, ``'no_decay'``:
    0), so options that change nothing cannot split mmdet's groups. When
    options change something, the label follows the weight decay actually
    given: ``'no_decay'`` exactly when it is 0.

    Args:
        options: What mmengine's options give the parameter (may be empty).
        default_no_decay: Whether layer decay alone gives it weight decay 0
            (1-D parameters, biases, ``no_decay_names``).
        base_lr: Optimizer lr.
        base_wd: Optimizer weight decay.

    Returns:
        Settings: The parameter's label, weight decay, lr and extra keys.
    """
    default_wd = 0. if default_no_decay else base_wd
    label = 'no_decay' if default_no_decay else 'decay'
    if not options:
        return Settings(label, default_wd, base_lr)
    extra = dict(options)
    weight_decay = extra.pop('weight_decay', default_wd)
    lr = extra.pop('lr', base_lr)
    if not extra and weight_decay == default_wd and lr == base_lr:
        return Settings(label, default_wd, base_lr)
    return Settings('no_decay' if weight_decay == 0 else 'decay',
                    weight_decay, lr, tuple(sorted(extra.items())))


def plan_groups(params: Iterable[ParamInfo],
                layer_id_of: Callable[[str], int],
                decay_rate: float,
                num_layers: int,
                base_lr: float,
                base_wd: float,
                no_decay_names: Sequence[str] = NO_DECAY_NAMES,
                min_lr_scale: Optional[float] = None,
                no_decay_params: Collection[str] = (),
                tower_of: Optional[Callable[[str], str]] = None,
                scale_of: Optional[Callable[[str, int], float]] = None
                ) -> List[GroupPlan]:
    """Group trainable parameters that share a layer id and hyper-parameters.

    A parameter's lr is ``lr_scale(layer id) * (its mmengine lr or
    base_lr)``, the scale raised to ``min_lr_scale`` where below it; its
    weight decay is its mmengine weight decay where an mmengine rule set
    one, else 0 for 1-D parameters, biases, ``no_decay_names`` and
    ``no_decay_params``, else ``base_wd`` (see :func:`param_settings`).
    Groups come out in the order their first parameter appears and hold
    their names in parameter order, which is the order mmdet produces, so an
    optimizer state saved with one loads into the other.

    With several towers, ``tower_of`` says which tower a parameter's id
    counts in (``''``: the first, and the parameters outside every tower)
    and ``scale_of`` gives the lr scale of an id in a tower; groups of
    different towers never merge, and are named as :func:`group_names`
    says.

    Args:
        params: Trainable parameters in ``named_parameters()`` order.
        layer_id_of: Maps a full parameter name to its layer id.
        decay_rate: Per-layer lr decay factor.
        num_layers: The ``num_layers`` in effect.
        base_lr: Optimizer lr.
        base_wd: Optimizer weight decay.
        no_decay_names: Last name components that get no weight decay.
        min_lr_scale: The smallest lr scale (None: no floor).
        no_decay_params: Full names that get no weight decay (those the
            backbone declares, :mod:`.backbones.no_decay`).
        tower_of: Maps a full parameter name to its tower; None: one tower.
        scale_of: ``(tower, layer id) -> lr scale``, ``min_lr_scale``
            applied; None: from ``decay_rate`` and ``num_layers``.

    Returns:
        list[GroupPlan]: Groups named as :func:`group_names` says.
    """
    if scale_of is None:
        def scale_of(tower: str, layer_id: int) -> float:
            return effective_scale(decay_rate, num_layers, layer_id,
                                   min_lr_scale)
    # key -> (layer id, settings, tower, parameter names)
    groups: Dict[Tuple, Tuple[int, Settings, str, List[str]]] = {}
    for param in params:
        layer_id = layer_id_of(param.name)
        tower = tower_of(param.name) if tower_of else ''
        setting = param_settings(
            param.options,
            is_no_decay(param.name, param.ndim, no_decay_names)
            or param.name in no_decay_params, base_lr, base_wd)
        # repr: extra values may be unhashable (lists)
        key = (tower, layer_id) + setting[:3] + (repr(setting.extra), )
        if key not in groups:
            groups[key] = (layer_id, setting, tower, [])
        groups[key][3].append(param.name)
    names = group_names([g[:3] for g in groups.values()], base_lr, base_wd)
    plans = []
    for name, (layer_id, setting, tower, members) in zip(names,
                                                         groups.values()):
        scale = scale_of(tower, layer_id)
        plans.append(
            GroupPlan(name, layer_id, scale, scale * setting.lr,
                      setting.weight_decay, members, dict(setting.extra),
                      tower))
    return plans
