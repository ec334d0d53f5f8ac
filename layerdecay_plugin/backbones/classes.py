"""Rule source "class table": a backbone gets the rules of the nearest class
in its MRO that the table knows, so subclasses of a supported backbone
inherit its rules. The table is built from the families' entries and
extended by ``register_backbone_rules``.
"""
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .families import FAMILIES
from .types import BackboneSpec, class_path

#: ``'module.QualName'`` of a backbone class -> its spec.
BACKBONES: Dict[str, BackboneSpec] = {
    path: family.spec('class')
    for family in FAMILIES.values() for path in family.classes
}

#: What mmpretrain's constructor gives every backbone and ours does not.
_MMPRETRAIN_WD = (
    'where no paramwise_cfg key applies, tokens, position tables, biases and '
    '1-D parameters get no weight decay (no_decay_names=[], '
    "bias_decay_mult=1.0 and flat_decay_mult=1.0 give mmpretrain's back)")

#: Classes whose own codebase's layer-decay constructor gives some of their
#: parameters another lr or weight decay than ours -> what differs, named
#: in the log line that says how the rules were chosen (docs/openmmlab.md);
#: a class served through its ``get_layer_depth`` (BEiTViT, MixMIM) too.
DIFFERENCES: Dict[str, str] = {
    'mmseg.models.backbones.beit.BEiT': (  # and MAE, its subclass
        "unlike mmseg's constructor, cls_token, pos_embed and "
        'relative_position_bias_table get no weight decay (no_decay_names=[] '
        "gives it back) and a final norm ln1 gets the last layer's lr, not "
        "the head's (docs/openmmlab.md)"),
    # MAE's and EVA-02's (ViTEVA02, a subclass), and mmpose's ViTPose,
    # whose configs build mmpretrain.VisionTransformer
    'mmpretrain.models.backbones.vision_transformer.VisionTransformer': (
        "unlike mmpretrain's and mmpose's constructors, a final norm "
        "(ln1, ln2) gets the last layer's lr and pre_norm the stem's, not "
        "the head's (config rules give theirs back); unlike mmpretrain's, "
        f'{_MMPRETRAIN_WD} (docs/openmmlab.md)'),
    'mmpretrain.models.backbones.beit.BEiTViT': (
        f"unlike mmpretrain's constructor, {_MMPRETRAIN_WD} "
        '(docs/openmmlab.md)'),
    'mmpretrain.models.backbones.mixmim.MixMIMTransformer': (
        f"unlike mmpretrain's constructor, {_MMPRETRAIN_WD} "
        '(docs/openmmlab.md)'),
    'mmpretrain.models.backbones.resnet.ResNet': (  # SparK's ResNet-50
        "unlike mmpretrain's constructor, whose ResNet.get_layer_depth gives "
        '2-3 blocks of a stage one id, each block gets its own id (config '
        f"rules give mmpretrain's back), and {_MMPRETRAIN_WD} "
        '(docs/openmmlab.md)'),
    'mmpretrain.models.backbones.hivit.HiViT': (
        "unlike mmpretrain's constructor, whose HiViT.get_layer_depth looks "
        "for layers. and leaves every block at the head's lr, each block "
        'gets its own id (nothing gives that back), and '
        f'{_MMPRETRAIN_WD} (docs/openmmlab.md)'),
}


def spec_by_class(backbone: Any) -> Optional[BackboneSpec]:
    """The spec of the nearest known class in the backbone's MRO, or None;
    its ``source`` names the class and, where its own codebase's
    constructor differs, how (:data:`DIFFERENCES`)."""
    for cls in type(backbone).__mro__:
        path = class_path(cls)
        spec = BACKBONES.get(path)
        if spec is not None:
            return spec._replace(source=with_difference(f'class {path}',
                                                        path))
    return None


def with_difference(source: str, path: str) -> str:
    """How rules were chosen, and for a class whose own codebase's
    constructor differs (:data:`DIFFERENCES`), how it differs."""
    note = DIFFERENCES.get(path)
    return f'{source}; {note}' if note else source


def supported_backbones() -> str:
    """The supported classes, short, by package, for messages:
    ``mmdet: CSPDarknet, ...; mmpretrain: ConvNeXt, ...``."""
    by_package: Dict[str, List[str]] = {}
    for path in BACKBONES:
        package = path.split('.', 1)[0]
        package = 'mmdet projects' if package == 'projects' else package
        name = path.rsplit('.', 1)[-1]
        if name not in by_package.setdefault(package, []):
            by_package[package].append(name)
    return '; '.join(f'{package}: {", ".join(sorted(names))}'
                     for package, names in sorted(by_package.items()))


def likely_backbone(modules: Iterable[Tuple[str, type]]) -> Optional[str]:
    """The module that most looks like a model's backbone, for the error of
    a wrong ``backbone_attr``: the shallowest one named like a backbone
    (``img_backbone``, ``detector.backbone``), else the shallowest of a
    class with rules.

    Args:
        modules: ``(name, class)`` of every module of the model.

    Returns:
        str | None: Its name in the model, or None.
    """
    candidates = []
    for path, cls in modules:
        named = 'backbone' in path.rsplit('.', 1)[-1].lower()
        known = any(class_path(c) in BACKBONES for c in cls.__mro__)
        if path and (named or known):
            candidates.append((not named, path.count('.'), path))
    return min(candidates)[2] if candidates else None
