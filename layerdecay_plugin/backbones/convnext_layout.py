"""Rule source "ConvNeXt by class name + layout": mmdet's constructor serves
any class whose name contains ``ConvNeXt``; so do we when its parameter
names follow mmpretrain's ConvNeXt layout, with blocks per stage read from
the names.
"""
import re
from typing import Any, Optional, Sequence

from ..errors import LayerDecayConfigError
from .depths import depths_from_names
from .families import FAMILIES
from .types import BackboneSpec, class_path, param_names

_CONVNEXT_STAGE = re.compile(r'stages\.[0-3]\.\d+\.')
_CONVNEXT_DOWNSAMPLE = re.compile(r'downsample_layers\.[0-3]\.')


def convnext_layout_problem(names: Sequence[str]) -> str:
    """What keeps parameter names from mmpretrain's ConvNeXt layout.

    The layout: ``downsample_layers.i.*`` and ``stages.i.j.*`` with stage
    indices 0-3; other names (out norms, tokens, extra norms) are free.

    Args:
        names: Parameter names relative to the backbone.

    Returns:
        str: ``''`` when the names follow the layout, else what is wrong.
    """
    stages = [n for n in names if n.startswith('stages.')]
    downsample = [n for n in names if n.startswith('downsample_layers.')]
    missing = [what for what, found in (('stages.i.j.*', stages), (
        'downsample_layers.i.*', downsample)) if not found]
    if missing:
        return f'no parameter named {" or ".join(missing)}'
    odd = [n for n in stages if not _CONVNEXT_STAGE.match(n)] + \
        [n for n in downsample if not _CONVNEXT_DOWNSAMPLE.match(n)]
    if odd:
        return (f'{len(odd)} parameter(s) outside stage indices 0-3 or '
                f'without a block index, e.g. {odd[:3]}')
    return ''


def spec_by_convnext_layout(backbone: Any) -> Optional[BackboneSpec]:
    """ConvNeXt's rules for a ConvNeXt-named class with the layout; None
    for other names, and for a ConvNeXt-named class without the layout that
    has ``get_layer_depth`` (that source serves it).

    Raises:
        LayerDecayConfigError: For a ConvNeXt-named class without the
            layout nor ``get_layer_depth``, where mmdet would silently give
            its parameters the head's lr.
    """
    cls = type(backbone)
    if 'ConvNeXt' not in cls.__name__:
        return None
    names = param_names(backbone)
    problem = convnext_layout_problem(names)
    if not problem:
        family = FAMILIES['convnext']
        return BackboneSpec(
            family.rules,
            lambda b: depths_from_names(param_names(b), family.block_names),
            f"class name + layout ('ConvNeXt' in {cls.__name__}, "
            "parameters named as mmpretrain's ConvNeXt)")
    if callable(getattr(backbone, 'get_layer_depth', None)):
        return None
    raise LayerDecayConfigError(
        f'backbone class {class_path(cls)} has ConvNeXt in its name, so '
        "mmdet's constructor would give it ConvNeXt layer ids, but its "
        "parameters do not follow mmpretrain's ConvNeXt layout: expected "
        'downsample_layers.i.* and stages.i.j.* with stage i in 0-3, found '
        f'{problem} (names: {names[:5]}{" ..." if len(names) > 5 else ""}). '
        'Describe its layers with paramwise_cfg.rules=dict(layer_wise=['
        '(regex, id), ...]) or register_backbone_rules; see docs/backbones.md.')
