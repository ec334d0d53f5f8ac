"""Which id rules apply to a backbone module, and its blocks per stage.

Backbones are matched by class, walking the MRO, so subclasses of a supported
backbone (ResNeXt of ResNet, ...) inherit its rules. Classes are named by
their import path, so nothing here imports mmdet or mmpretrain. A backbone of
no known class that implements mmpretrain's ``get_layer_depth(param_name,
prefix)`` is served through that method. timm models (used directly, as a
``features_only`` wrapper or in mmpretrain's ``TIMMBackbone``) get ids from
their own ``group_matcher`` (``layerdecay_plugin.timm_spec``, imported only
for them).
"""
import re
from typing import (Any, Callable, Dict, Iterable, List, NamedTuple, Optional,
                    Sequence, Tuple, Union)

from .errors import LayerDecayConfigError
from .rules import (BUILTIN_RULES, CONVNEXT, BackboneRules, IdRule,
                    per_block_min_num_layers)

Depths = Callable[[Any], Sequence[int]]


class BackboneSpec(NamedTuple):
    """Rules of a backbone class plus how to read its blocks per stage.

    ``source`` says how :func:`spec_for` chose the rules, for the log and
    for error messages.
    """
    rules: BackboneRules
    depths: Depths
    source: str = 'class'


def _attr_depths(attr: str) -> Depths:
    return lambda backbone: list(getattr(backbone, attr))


def _len_of(attr: str) -> Depths:
    return lambda backbone: [len(getattr(backbone, attr))]


def _swin_depths(backbone: Any) -> Sequence[int]:
    return [len(stage.blocks) for stage in backbone.stages]


# The readers below count modules (frozen ones included) rather than read
# config attributes a subclass might not set (MViT's stage_indices aside);
# each family's module in rules/ says what its depths are.


def _numbered(backbone: Any, prefix: str) -> List[Any]:
    """``backbone.{prefix}1``, ``{prefix}2``, ... while they exist."""
    found = []
    while hasattr(backbone, f'{prefix}{len(found) + 1}'):
        found.append(getattr(backbone, f'{prefix}{len(found) + 1}'))
    return found


def _is_sequence(module: Any) -> bool:
    """A container whose children are numbered (``Sequential``,
    ``ModuleList``) rather than one conv module (``conv``, ``bn``)."""
    names = [name for name, _ in module.named_children()]
    return bool(names) and all(name.isdigit() for name in names)


def _stage_lengths(prefix: str) -> Depths:
    return lambda backbone: [len(s) for s in _numbered(backbone, prefix)]


def _darknet_depths(backbone: Any) -> Sequence[int]:
    return [
        sum(name.startswith('res') for name, _ in stage.named_children())
        for stage in _numbered(backbone, 'conv_res_block')
    ]


def _mobilenet_v2_depths(backbone: Any) -> Sequence[int]:
    return [len(layer) for layer in _numbered(backbone, 'layer')] + [1]


def _efficientnet_depths(backbone: Any) -> Sequence[int]:
    return [
        len(layer) if _is_sequence(layer) else 1
        for layer in list(backbone.layers)[1:]
    ]


def _hrnet_depths(backbone: Any) -> Sequence[int]:
    return [len(backbone.layer1)] + [
        len(getattr(backbone, f'stage{s}')) for s in (2, 3, 4)
    ]


def _pvt_depths(backbone: Any) -> Sequence[int]:
    return [len(stage[1]) for stage in backbone.layers]


def _hourglass_depths(backbone: Any) -> Sequence[int]:
    return [1] * len(backbone.hourglass_modules)


def _vgg_depths(backbone: Any) -> Sequence[int]:
    """``features`` indices of the convolutions (4-D weights)."""
    return [
        int(name) for name, layer in backbone.features.named_children()
        if getattr(getattr(layer, 'weight', None), 'ndim', 0) == 4
    ]


def _hivit_depths(backbone: Any) -> Sequence[int]:
    """Blocks per stage; a ``PatchMerge`` (with ``reduction``) starts the
    next stage."""
    depths = [0]
    for block in backbone.blocks:
        if hasattr(block, 'reduction') and depths[-1]:
            depths.append(0)
        depths[-1] += 1
    return depths


def _mvit_depths(backbone: Any) -> Sequence[int]:
    """Blocks per stage from ``stage_indices`` (last block of each stage)."""
    ends = sorted(backbone.stage_indices)
    return [end - start for start, end in zip([-1] + ends[:-1], ends)]


#: Built-in families by the name a config may give in ``paramwise_cfg.rules``:
#: their rules and how to read their blocks per stage from the module.
FAMILIES: Dict[str, BackboneSpec] = {
    name: BackboneSpec(BUILTIN_RULES[name], depths)
    for name, depths in (
        ('convnext', _attr_depths('depths')),
        ('swin', _swin_depths),
        ('vit', _len_of('layers')),
        ('vit_blocks', _len_of('blocks')),
        ('resnet', _attr_depths('stage_blocks')),
        ('swin_v2', _swin_depths),
        ('hivit', _hivit_depths),
        ('mvit', _mvit_depths),
        ('csp', _stage_lengths('stage')),
        ('darknet', _darknet_depths),
        ('mobilenet_v2', _mobilenet_v2_depths),
        ('efficientnet', _efficientnet_depths),
        ('hrnet', _hrnet_depths),
        ('pvt', _pvt_depths),
        ('hourglass', _hourglass_depths),
        ('vgg', _vgg_depths),
    )
}

#: ``'module.QualName'`` of a backbone class -> its spec. Extend with
#: :func:`register_backbone_rules`.
BACKBONES: Dict[str, BackboneSpec] = {
    'mmpretrain.models.backbones.convnext.ConvNeXt': FAMILIES['convnext'],
    'mmdet.models.backbones.swin.SwinTransformer': FAMILIES['swin'],
    'mmpretrain.models.backbones.vision_transformer.VisionTransformer':
    FAMILIES['vit'],
    'mmdet.models.backbones.resnet.ResNet': FAMILIES['resnet'],
    'mmpretrain.models.backbones.resnet.ResNet': FAMILIES['resnet'],
    # ViTDet's ViT (mmdet projects) uses `blocks.i`. timm's models (its
    # VisionTransformer too) get their own group_matcher: see timm_spec.
    'projects.ViTDet.vitdet.vit.ViT': FAMILIES['vit_blocks'],
    # mmdet's other backbones (its ResNet subclasses ResNetV1d, ResNeXt,
    # Res2Net, ResNeSt, DetectoRS_*, TridentResNet and RegNet get ResNet's).
    'mmdet.models.backbones.csp_darknet.CSPDarknet': FAMILIES['csp'],
    'mmdet.models.backbones.cspnext.CSPNeXt': FAMILIES['csp'],
    'mmdet.models.backbones.darknet.Darknet': FAMILIES['darknet'],
    'mmdet.models.backbones.mobilenet_v2.MobileNetV2':
    FAMILIES['mobilenet_v2'],
    'mmdet.models.backbones.efficientnet.EfficientNet':
    FAMILIES['efficientnet'],
    'mmdet.models.backbones.hrnet.HRNet': FAMILIES['hrnet'],
    'mmdet.models.backbones.pvt.PyramidVisionTransformer':  # and V2
    FAMILIES['pvt'],
    'mmdet.models.backbones.hourglass.HourglassNet': FAMILIES['hourglass'],
    'mmdet.models.backbones.ssd_vgg.SSDVGG': FAMILIES['vgg'],
    # mmpretrain's (its RegNet subclasses its ResNet; ViTEVA02 its ViT).
    # Its Swin's get_layer_depth gives the same layer ids, but no stages.
    'mmpretrain.models.backbones.swin_transformer.SwinTransformer':
    FAMILIES['swin'],
    'mmpretrain.models.backbones.swin_transformer_v2.SwinTransformerV2':
    FAMILIES['swin_v2'],
    'mmpretrain.models.backbones.tinyvit.TinyViT': FAMILIES['swin'],
    # HiViT's own get_layer_depth looks for `layers.`, its blocks are
    # `blocks.`: it would leave every block at the head's lr.
    'mmpretrain.models.backbones.hivit.HiViT': FAMILIES['hivit'],
    'mmpretrain.models.backbones.mvit.MViT': FAMILIES['mvit'],
    'mmpretrain.models.backbones.efficientnet_v2.EfficientNetV2':
    FAMILIES['efficientnet'],
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


#: mmpretrain's wrapper of timm models.
TIMM_BACKBONE = 'mmpretrain.models.backbones.timm_backbone.TIMMBackbone'


def is_timm_backbone(backbone: Any) -> bool:
    """Whether a backbone is a timm model (its class or a base class is
    timm's: a model used directly or a ``features_only`` wrapper) or
    mmpretrain's ``TIMMBackbone``; by class path, importing nothing."""
    paths = [class_path(cls) for cls in type(backbone).__mro__]
    return TIMM_BACKBONE in paths or any(
        path.startswith('timm.') for path in paths)


class BlockNames(NamedTuple):
    """How a family's parameter names show its blocks per stage.

    Attributes:
        pattern: Regex matched at the start of a name relative to the
            backbone, with a group ``block`` (block index in its stage) and,
            for backbones with stages, a group ``stage``.
        first_stage: Index of the first stage in names (1 for ResNet's
            ``layer1``).
        num_stages: Stages the family always has (stages without
            parameters count 0 blocks); None: as many as the names show.
    """
    pattern: str
    first_stage: int = 0
    num_stages: Optional[int] = None


#: Swin V1 and V2 name their blocks alike.
_SWIN_BLOCKS = BlockNames(r'stages\.(?P<stage>\d+)\.blocks\.(?P<block>\d+)\.')

#: Family name (``BackboneRules.name``) -> how its names show blocks per
#: stage, read when the backbone has no attribute to read them from.
BLOCK_NAMES: Dict[str, BlockNames] = {
    'ConvNeXt': BlockNames(r'stages\.(?P<stage>\d+)\.(?P<block>\d+)\.', 0, 4),
    'Swin': _SWIN_BLOCKS,
    'SwinV2': _SWIN_BLOCKS,
    'ViT': BlockNames(r'layers\.(?P<block>\d+)\.'),
    'ViT (blocks.i)': BlockNames(r'blocks\.(?P<block>\d+)\.'),
    'ResNet': BlockNames(r'layer(?P<stage>\d+)\.(?P<block>\d+)\.', 1),
}


def depths_from_names(names: Iterable[str], blocks: BlockNames) -> List[int]:
    """Blocks per stage, read from parameter names.

    Names are the ground truth of every family (attributes such as
    ``depths`` are a convenience a custom class may lack): stage ``i`` has
    ``1 +`` the largest block index any name shows in it.

    Args:
        names: Parameter names relative to the backbone, frozen ones
            included.
        blocks: How the family's names show stages and blocks.

    Returns:
        list[int]: Blocks per stage, from ``blocks.first_stage``; empty when
        no name shows a block.
    """
    regex = re.compile(blocks.pattern)
    last: Dict[int, int] = {}
    for name in names:
        match = regex.match(name)
        if match:
            found = match.groupdict()
            stage = int(found.get('stage') or blocks.first_stage)
            last[stage] = max(last.get(stage, -1), int(found['block']))
    if not last:
        return []
    count = blocks.num_stages or max(last) - blocks.first_stage + 1
    return [last.get(blocks.first_stage + i, -1) + 1 for i in range(count)]


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


def _param_names(backbone: Any) -> List[str]:
    named = getattr(backbone, 'named_parameters', None)
    return [n for n, _ in named()] if callable(named) else []


def _convnext_by_name(backbone: Any) -> Optional[BackboneSpec]:
    """mmdet's constructor serves any class whose name contains
    ``ConvNeXt``; so do we when its names follow mmpretrain's layout."""
    cls = type(backbone)
    if 'ConvNeXt' not in cls.__name__:
        return None
    names = _param_names(backbone)
    problem = convnext_layout_problem(names)
    if not problem:
        return BackboneSpec(
            CONVNEXT,
            lambda b: depths_from_names(_param_names(b),
                                        BLOCK_NAMES['ConvNeXt']),
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


def spec_for(backbone: Any, rules: Union[None, str] = None) -> BackboneSpec:
    """The rules for a backbone instance, and how they were chosen.

    In order: a built-in family named in the config; the nearest supported
    class in the backbone's MRO; a timm model or mmpretrain's
    ``TIMMBackbone`` (timm's ``group_matcher``); a class whose name contains
    ``ConvNeXt`` with mmpretrain's ConvNeXt parameter layout (as mmdet's
    constructor does); the backbone's ``get_layer_depth`` method.

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
        return FAMILIES[rules]._replace(
            source=f'config (paramwise_cfg.rules={rules!r})')
    for cls in type(backbone).__mro__:
        spec = BACKBONES.get(class_path(cls))
        if spec is not None:
            return spec._replace(source=f'class {class_path(cls)}')
    if is_timm_backbone(backbone):
        # Here, not at the top: it imports torch, and timm when it must
        # build the model of a features_only wrapper.
        from .timm_spec import timm_rules
        return BackboneSpec(timm_rules(backbone), lambda b: [],
                            "timm's group_matcher of the model")
    spec = _convnext_by_name(backbone)
    if spec is not None:
        return spec
    if callable(getattr(backbone, 'get_layer_depth', None)):
        return _layer_depth_spec(backbone)._replace(
            source=f'{type(backbone).__name__}.get_layer_depth')
    raise LayerDecayConfigError(
        'LayerDecayOptimWrapperConstructor cannot map the parameters of '
        f'backbone class {class_path(type(backbone))} to layers. To fix '
        "it, set one of: paramwise_cfg.rules='auto' (ids from its forward "
        "order on a dummy input; rules=dict(type='auto', input_shape=(1, 3, "
        "H, W)) to set the size); paramwise_cfg.rules=dict(layer_wise=["
        "(regex, id), ...]); a built-in family name, paramwise_cfg.rules="
        f'{"|".join(map(repr, BUILTIN_RULES))}; or call '
        'layerdecay_plugin.register_backbone_rules(YourClass, layer_wise=fn) '
        'in a module listed in custom_imports. See docs/backbones.md. Known '
        'without that: timm models (directly, features_only, or in '
        "mmpretrain's TIMMBackbone), backbones with mmpretrain's "
        'get_layer_depth(param_name, prefix), and these classes and their '
        f'subclasses: {supported_backbones()}.')


def backbone_depths(backbone: Any, spec: BackboneSpec) -> Sequence[int]:
    """Blocks per stage of a backbone, read as its spec says, else from its
    parameter names (:data:`BLOCK_NAMES`)."""
    try:
        return list(spec.depths(backbone))
    except (AttributeError, TypeError) as exc:
        blocks = BLOCK_NAMES.get(spec.rules.name)
        depths = depths_from_names(_param_names(backbone),
                                   blocks) if blocks else []
        if depths:
            return depths
        raise LayerDecayConfigError(
            f'cannot read blocks per stage of {spec.rules.name} backbone '
            f'{class_path(type(backbone))} ({exc}), nor from its parameter '
            'names; with a custom class, pass depths= to '
            'register_backbone_rules.') from None
