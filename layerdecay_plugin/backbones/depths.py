"""Readers of a backbone's blocks per stage (the ``depths`` every id rule
takes), one per family layout, and the fallback that reads them from
parameter names.

The readers count modules (frozen ones included) rather than read config
attributes a subclass might not set (MViT's ``stage_indices`` aside); each
family's rules module says what its depths are. Torch-free: modules are
read by duck typing.
"""
import re
from typing import Any, Dict, Iterable, List, Sequence

from ..errors import LayerDecayConfigError
from .types import BackboneSpec, BlockNames, Depths, class_path, param_names


def attr_depths(attr: str) -> Depths:
    """Blocks per stage kept in an attribute (``depths``, ``stage_blocks``)."""
    return lambda backbone: list(getattr(backbone, attr))


def len_of(attr: str) -> Depths:
    """One stage: the length of a block list (``layers``, ``blocks``)."""
    return lambda backbone: [len(getattr(backbone, attr))]


def swin_depths(backbone: Any) -> Sequence[int]:
    return [len(stage.blocks) for stage in backbone.stages]


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


def stage_lengths(prefix: str) -> Depths:
    """Lengths of numbered stages ``{prefix}1``, ``{prefix}2``, ..."""
    return lambda backbone: [len(s) for s in _numbered(backbone, prefix)]


def darknet_depths(backbone: Any) -> Sequence[int]:
    return [
        sum(name.startswith('res') for name, _ in stage.named_children())
        for stage in _numbered(backbone, 'conv_res_block')
    ]


def mobilenet_v2_depths(backbone: Any) -> Sequence[int]:
    """Blocks of ``layer{i}``, and 1 for the last conv ``conv2`` where
    there is one (mmdet's; mmseg's MobileNetV2 has none)."""
    tail = [1] if hasattr(backbone, 'conv2') else []
    return [len(layer) for layer in _numbered(backbone, 'layer')] + tail


def numbered_count(prefix: str) -> Depths:
    """One block each of ``{prefix}1``, ``{prefix}2``, ... (MobileNetV3's
    ``layer{i}``, its last conv included)."""
    return lambda backbone: [1] * len(_numbered(backbone, prefix))


def lengths_of(attr: str) -> Depths:
    """The lengths of the stage lists in ``attr`` (Twins' ``layers``)."""
    return lambda backbone: [len(stage) for stage in getattr(backbone, attr)]


def efficientnet_depths(backbone: Any) -> Sequence[int]:
    return [
        len(layer) if _is_sequence(layer) else 1
        for layer in list(backbone.layers)[1:]
    ]


def _blocks(module: Any) -> int:
    """A numbered container's length; 1 for any other module."""
    return len(module) if _is_sequence(module) else 1


def _resnet_blocks(resnet: Any) -> List[int]:
    return [len(layer) for layer in _numbered(resnet, 'layer')]


def stdc_depths(backbone: Any) -> Sequence[int]:
    """mmseg STDCNet: the ``STDCModule`` lists among ``stages`` (not the
    two stem convs), then 1 for ``final_conv`` where there is one."""
    tail = [1] if hasattr(backbone, 'final_conv') else []
    return [len(s) for s in backbone.stages if _is_sequence(s)] + tail


def stdc_context_path_depths(backbone: Any) -> Sequence[int]:
    return list(stdc_depths(backbone.backbone)) + [len(backbone.arms), 1]


def fastscnn_depths(backbone: Any) -> Sequence[int]:
    """mmseg FastSCNN: its ``dsconv`` s, each bottleneck's blocks, the
    pyramid pooling, the feature fusion."""
    extractor = backbone.global_feature_extractor
    return [len(_numbered(backbone.learning_to_downsample, 'dsconv'))] + [
        len(s) for s in _numbered(extractor, 'bottleneck')
    ] + [1, 1]


def coder_depths(backbone: Any) -> Sequence[int]:
    """ERFNet's and UNet's encoder after its first element, and decoder."""
    return [len(backbone.encoder) - 1, len(backbone.decoder)]


def bisenetv1_depths(backbone: Any) -> Sequence[int]:
    """The context path ResNet's blocks per stage, its two attention
    refinements, the spatial path's layers, the feature fusion."""
    return _resnet_blocks(backbone.context_path.backbone) + [
        2, len(_numbered(backbone.spatial_path, 'layer')), 1
    ]


def bisenetv2_depths(backbone: Any) -> Sequence[int]:
    """The detail branch's stages after the first, the semantic branch's
    stages (the stem block one), its context block, the aggregation."""
    return [len(backbone.detail.detail_branch) - 1] + [
        _blocks(s) for s in _numbered(backbone.semantic, 'stage')
    ] + [1, 1]


def icnet_depths(backbone: Any) -> Sequence[int]:
    return _resnet_blocks(backbone.backbone) + [1]


def ddrnet_depths(backbone: Any) -> Sequence[int]:
    """DDRNet's and PIDNet's: the stem's block lists, then one per stage of
    parallel branches."""
    branches = [len(module) for name, module in backbone.named_children()
                if name.endswith('_branch_layers')]
    return [len(m) for m in backbone.stem if _is_sequence(m)] + \
        [1] * max(branches)


def poolformer_depths(backbone: Any) -> Sequence[int]:
    """mmpretrain PoolFormer: the stages at even indices of ``network``."""
    return [len(stage) for stage in list(backbone.network)[::2]]


def hrnet_depths(backbone: Any) -> Sequence[int]:
    return [len(backbone.layer1)] + [
        len(getattr(backbone, f'stage{s}')) for s in (2, 3, 4)
    ]


def pvt_depths(backbone: Any) -> Sequence[int]:
    return [len(stage[1]) for stage in backbone.layers]


def hourglass_depths(backbone: Any) -> Sequence[int]:
    return [1] * len(backbone.hourglass_modules)


def vgg_depths(backbone: Any) -> Sequence[int]:
    """``features`` indices of the convolutions (4-D weights)."""
    return [
        int(name) for name, layer in backbone.features.named_children()
        if getattr(getattr(layer, 'weight', None), 'ndim', 0) == 4
    ]


def hivit_depths(backbone: Any) -> Sequence[int]:
    """Blocks per stage; a ``PatchMerge`` (with ``reduction``) starts the
    next stage."""
    depths = [0]
    for block in backbone.blocks:
        if hasattr(block, 'reduction') and depths[-1]:
            depths.append(0)
        depths[-1] += 1
    return depths


def mvit_depths(backbone: Any) -> Sequence[int]:
    """Blocks per stage from ``stage_indices`` (last block of each stage)."""
    ends = sorted(backbone.stage_indices)
    return [end - start for start, end in zip([-1] + ends[:-1], ends)]


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


def backbone_depths(backbone: Any, spec: BackboneSpec) -> Sequence[int]:
    """Blocks per stage of a backbone, read as its spec says, else from its
    parameter names (``spec.block_names``).

    Raises:
        LayerDecayConfigError: If neither way reads them.
    """
    try:
        return list(spec.depths(backbone))
    except (AttributeError, TypeError) as exc:
        depths = depths_from_names(param_names(backbone), spec.block_names) \
            if spec.block_names else []
        if depths:
            return depths
        raise LayerDecayConfigError(
            f'cannot read blocks per stage of {spec.rules.name} backbone '
            f'{class_path(type(backbone))} ({exc}), nor from its parameter '
            'names; with a custom class, pass depths= to '
            'register_backbone_rules.') from None
