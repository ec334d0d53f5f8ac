"""Which rules a backbone gets: the one resolver over every rule source.

The sources, in the order they are asked (the first that answers wins):

1. the config: ``paramwise_cfg.rules`` as ``'auto'`` (:mod:`.auto`), as
   ``(regex, id)`` pairs (:mod:`.config_rules`) or as a family name
   (:mod:`.families`);
2. the class table, built-in and registered (:mod:`.classes`,
   :mod:`.registered`): the nearest class in the backbone's MRO;
3. timm's ``group_matcher`` for timm models (:mod:`.timm`);
4. a class named ``ConvNeXt`` with mmpretrain's ConvNeXt layout
   (:mod:`.convnext_layout`), as mmdet's constructor does;
5. the backbone's own ``get_layer_depth`` (:mod:`.layer_depth`).
"""
from typing import Any, List, NamedTuple, Optional, Sequence

import torch.nn as nn
from mmengine.logging import print_log

from ..errors import LayerDecayConfigError
from ..rules import AutoRules, BackboneRules
from ..rules.common import with_stem_tokens
from ..sharding import clean_name, unwrap
from .auto import auto_spec
from .classes import likely_backbone, spec_by_class, supported_backbones
from .config_rules import spec_from_matchers
from .convnext_layout import spec_by_convnext_layout
from .depths import backbone_depths
from .families import FAMILIES
from .layer_depth import spec_by_layer_depth
from .timm import spec_by_timm
from .types import BackboneSpec, class_path

#: The sources that need only the backbone, in the order they are asked.
_BY_BACKBONE = (spec_by_class, spec_by_timm, spec_by_convnext_layout,
                spec_by_layer_depth)


class Resolved(NamedTuple):
    """A backbone's rules, its blocks per stage and how they were chosen."""
    rules: BackboneRules
    depths: List[int]
    source: str


def spec_for(backbone: Any, rules: Optional[str] = None) -> BackboneSpec:
    """The rules for a backbone instance from a family name or the
    backbone itself (sources 1-5 of the module docstring, without
    ``'auto'`` and regexes), and how they were chosen.

    Args:
        backbone: The model's backbone module.
        rules: A built-in family name from ``paramwise_cfg.rules``, which
            overrides the class lookup.

    Returns:
        BackboneSpec: The rules, with ``source`` saying which way applied.

    Raises:
        LayerDecayConfigError: If none applies, or for a ConvNeXt-named
            class without the ConvNeXt layout.
    """
    if isinstance(rules, str):
        return FAMILIES[rules].spec(f'config (paramwise_cfg.rules={rules!r})')
    for source in _BY_BACKBONE:
        spec = source(backbone)
        if spec is not None:
            return spec
    raise LayerDecayConfigError(
        'layerdecay_plugin cannot map the parameters of backbone class '
        f'{class_path(type(backbone))} to layers. To fix it, set one of: '
        "paramwise_cfg.rules='auto' (ids from its forward order on a dummy "
        "input; rules=dict(type='auto', input_shape=(1, 3, H, W)) sets the "
        'size); paramwise_cfg.rules=dict(layer_wise=[(regex, id), ...]); a '
        f'family, paramwise_cfg.rules={next(iter(FAMILIES))!r} or another '
        f'of the {len(FAMILIES)} in docs/backbones.md; or '
        'layerdecay_plugin.register_backbone_rules(YourClass, layer_wise=fn) '
        'in a module of custom_imports (docs/backbones.md). Known without '
        "that: timm models (bare, features_only, in mmpretrain's "
        'TIMMBackbone), backbones with get_layer_depth(param_name, prefix), '
        f'and these classes and subclasses: {supported_backbones()}.')


def resolve(backbone: nn.Module, rules: Any,
            names: Sequence[str]) -> Resolved:
    """The rules for a backbone under ``paramwise_cfg.rules``, logged.

    Args:
        backbone: The (unwrapped) backbone.
        rules: ``LayerDecayCfg.rules``: None, a family name, auto settings
            or compiled regex rules.
        names: Its trainable parameter names, relative to it (the regex
            rules are checked against them).

    Returns:
        Resolved: The rules, blocks per stage and how they were chosen;
        whatever chose them, register tokens get the stem's id
        (:func:`~layerdecay_plugin.rules.common.with_stem_tokens`).
    """
    if isinstance(rules, AutoRules):
        spec = auto_spec(backbone, rules)
    elif isinstance(rules, dict):
        spec = spec_from_matchers(rules, names)
    else:
        spec = spec_for(backbone, rules)
    print_log(
        f'layer decay: backbone {class_path(type(backbone))} gets '
        f'{spec.rules.name} rules, chosen by {spec.source}',
        logger='current')
    with_tokens = spec.rules._replace(
        ids={t: with_stem_tokens(r) for t, r in spec.rules.ids.items()})
    return Resolved(with_tokens, list(backbone_depths(backbone, spec)),
                    spec.source)


def find_backbone(model: nn.Module, attr: str) -> nn.Module:
    """The backbone at ``paramwise_cfg.backbone_attr``, through FSDP and
    checkpoint wrappers.

    Raises:
        LayerDecayConfigError: If there is no module there, naming the
            model's children and the module that looks like its backbone.
    """
    backbone = model
    for part in attr.split('.'):
        backbone = getattr(unwrap(backbone), part, None)
    if isinstance(backbone, nn.Module):
        return unwrap(backbone)  # wrapped as an FSDP unit
    children = [n for n, _ in model.named_children()]
    likely = likely_backbone(
        (clean_name(path), type(unwrap(sub)))
        for path, sub in unwrap(model).named_modules())
    hint = (f' `{likely}` looks like the backbone: set '
            f'paramwise_cfg.backbone_attr={likely!r}.' if likely else '')
    raise LayerDecayConfigError(
        'LayerDecayOptimWrapperConstructor needs a model with a '
        f'backbone module at `{attr}`, but {class_path(type(model))} '
        f'has {type(backbone).__name__} there (its children: '
        f'{children}).{hint} Set paramwise_cfg.backbone_attr to the '
        "backbone's attribute, or use the default constructor for "
        'models without a backbone.')
