"""Which id rules apply to a backbone module, and its blocks per stage.

Backbones are matched by class, walking the MRO, so subclasses of a supported
backbone (ResNeXt of ResNet, ...) inherit its rules. Classes are named by
their import path, so nothing here imports mmdet or mmpretrain. A backbone of
no known class that implements mmpretrain's ``get_layer_depth(param_name,
prefix)`` is served through that method.
"""
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence, Union

from .errors import LayerDecayConfigError
from .rules import (BUILTIN_RULES, CONVNEXT, RESNET, SWIN, VIT, VIT_BLOCKS,
                    BackboneRules, IdRule, per_block_min_num_layers)

Depths = Callable[[Any], Sequence[int]]


class BackboneSpec(NamedTuple):
    """Rules of a backbone class plus how to read its blocks per stage."""
    rules: BackboneRules
    depths: Depths


def _attr_depths(attr: str) -> Depths:
    return lambda backbone: list(getattr(backbone, attr))


def _len_of(attr: str) -> Depths:
    return lambda backbone: [len(getattr(backbone, attr))]


def _swin_depths(backbone: Any) -> Sequence[int]:
    return [len(stage.blocks) for stage in backbone.stages]


#: ``'module.QualName'`` of a backbone class -> its spec. Extend with
#: :func:`register_backbone_rules`.
BACKBONES: Dict[str, BackboneSpec] = {
    'mmpretrain.models.backbones.convnext.ConvNeXt':
    BackboneSpec(CONVNEXT, _attr_depths('depths')),
    'mmdet.models.backbones.swin.SwinTransformer':
    BackboneSpec(SWIN, _swin_depths),
    'mmpretrain.models.backbones.vision_transformer.VisionTransformer':
    BackboneSpec(VIT, _len_of('layers')),
    'mmdet.models.backbones.resnet.ResNet':
    BackboneSpec(RESNET, _attr_depths('stage_blocks')),
    'mmpretrain.models.backbones.resnet.ResNet':
    BackboneSpec(RESNET, _attr_depths('stage_blocks')),
    # ViTDet's ViT (mmdet projects) and timm's use `blocks.i`.
    'projects.ViTDet.vitdet.vit.ViT':
    BackboneSpec(VIT_BLOCKS, _len_of('blocks')),
    'timm.models.vision_transformer.VisionTransformer':
    BackboneSpec(VIT_BLOCKS, _len_of('blocks')),
}

#: What a config may name in ``paramwise_cfg.rules`` -> its depths reader.
_BUILTIN_DEPTHS: Dict[str, Depths] = {
    'convnext': _attr_depths('depths'),
    'swin': _swin_depths,
    'vit': _len_of('layers'),
    'vit_blocks': _len_of('blocks'),
    'resnet': _attr_depths('stage_blocks'),
}


def class_path(cls: type) -> str:
    """``'module.QualName'`` of a class."""
    return f'{cls.__module__}.{cls.__qualname__}'


def register_backbone_rules(backbone_cls: Union[type, str],
                            layer_wise: IdRule,
                            stage_wise: Optional[IdRule] = None,
                            depths: Optional[Depths] = None,
                            min_num_layers: Optional[Callable] = None,
                            name: Optional[str] = None) -> None:
    """Teach the constructor a backbone class (and its subclasses).

    Args:
        backbone_cls: The class, or its ``'module.QualName'``.
        layer_wise: ``rule(name, num_layers, depths) -> id`` for
            ``layer_wise``; ``name`` is relative to the backbone, backbone ids
            run 0..num_layers, ``num_layers + 1`` is the head's.
        stage_wise: The same for ``stage_wise``; without it that decay type
            is refused for this class.
        depths: ``backbone -> blocks per stage``; defaults to the
            ``depths`` attribute.
        min_num_layers: ``(depths, decay_type) -> int``; defaults to the
            block count (layer_wise) and stage count (stage_wise).
        name: Family name for messages; defaults to the class name.
    """
    path = backbone_cls if isinstance(backbone_cls,
                                      str) else class_path(backbone_cls)
    ids = {'layer_wise': layer_wise}
    if stage_wise is not None:
        ids['stage_wise'] = stage_wise
    BACKBONES[path] = BackboneSpec(
        BackboneRules(name or path.rsplit('.', 1)[-1], ids, min_num_layers
                      or per_block_min_num_layers), depths
        or _attr_depths('depths'))


def _layer_depth_spec(backbone: Any) -> BackboneSpec:
    """Rules from mmpretrain's ``get_layer_depth`` protocol.

    Its depths run 0 (stem) .. n - 1 (head), so ``num_layers`` needs
    ``n - 2``; the head's depth maps to ours, ``num_layers + 1``.
    """
    theirs = backbone.get_layer_depth('', prefix='')[1]

    def rule(name: str, num_layers: int, depths: Sequence[int] = ()) -> int:
        depth, total = backbone.get_layer_depth(name)
        return num_layers + 1 if depth == total - 1 else depth

    rules = BackboneRules(
        f'{type(backbone).__name__} (get_layer_depth)', {'layer_wise': rule},
        lambda depths, decay_type: theirs - 2)
    return BackboneSpec(rules, lambda b: [])


def supported_backbones() -> str:
    """The supported classes, for messages."""
    return ', '.join(sorted(BACKBONES))


def spec_for(backbone: Any, rules: Union[None, str] = None) -> BackboneSpec:
    """The rules for a backbone instance.

    Args:
        backbone: The model's backbone module.
        rules: A built-in family name from ``paramwise_cfg.rules``, which
            overrides the class lookup.

    Returns:
        BackboneSpec: Rules of the nearest supported class in its MRO, else
        its ``get_layer_depth`` method.

    Raises:
        LayerDecayConfigError: If neither applies.
    """
    if isinstance(rules, str):
        return BackboneSpec(BUILTIN_RULES[rules], _BUILTIN_DEPTHS[rules])
    for cls in type(backbone).__mro__:
        spec = BACKBONES.get(class_path(cls))
        if spec is not None:
            return spec
    if callable(getattr(backbone, 'get_layer_depth', None)):
        return _layer_depth_spec(backbone)
    raise LayerDecayConfigError(
        'LayerDecayOptimWrapperConstructor cannot map the parameters of '
        f'backbone class {class_path(type(backbone))}. Supported: '
        f'{supported_backbones()} (and subclasses), and any backbone with '
        "mmpretrain's get_layer_depth(param_name, prefix). To add yours, "
        "either give paramwise_cfg.rules=dict(layer_wise=[(regex, id), "
        "...]) or a built-in family name ('convnext', 'swin', 'vit', "
        "'vit_blocks', 'resnet'), or call "
        'layerdecay_plugin.register_backbone_rules(YourClass, layer_wise=fn) '
        'in a module listed in custom_imports. See the README.')


def backbone_depths(backbone: Any, spec: BackboneSpec) -> Sequence[int]:
    """Blocks per stage of a backbone, read as its spec says."""
    try:
        return list(spec.depths(backbone))
    except (AttributeError, TypeError) as exc:
        raise LayerDecayConfigError(
            f'cannot read blocks per stage of {spec.rules.name} backbone '
            f'{class_path(type(backbone))} ({exc}); with a custom class, '
            'pass depths= to register_backbone_rules.') from None
