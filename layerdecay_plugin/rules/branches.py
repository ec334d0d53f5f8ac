"""mmseg's backbones with parallel paths: their units (:mod:`.units`) and
where each name sits. Ids never decrease along the forward pass: paths
that run one after the other (BiSeNet's spatial path after its context
path) are counted one after the other, in that order; branches that run
interleaved within a stage (DDRNet's, PIDNet's) share one id per stage,
as HRNet's branches share one per ``HRModule``. ``depths`` = blocks per
unit.

``BiSeNetV1``: the context path's ResNet (its stem, then one id per
``layer{i}.j``), the context path's two attention refinements
(``gap_conv``, ``arm32``, ``conv_head32``; ``arm16``, ``conv_head16``),
the spatial path's ``layer{i}``, the feature fusion ``ffm``. ``depths`` =
``[*blocks per ResNet stage, 2, len(spatial layers), 1]`` (R-18: ``[2, 2,
2, 2, 2, 4, 1]``, 15 layers). Each with the prefix ``context_path.``,
``spatial_path.`` where it lives:

- ``backbone.`` + a ResNet stem: 0 / 0
- ``backbone.layer{i}.j.*``: ``1 + sum(depths[:i - 1]) + j`` / ``i``
- ``gap_conv``, ``arm32``, ``conv_head32``: ``R + 1``; ``arm16``,
  ``conv_head16``: ``R + 2`` / ``S + 1`` (``R`` ResNet blocks, ``S``
  stages)
- ``layer{k}.*`` (spatial): ``R + 2 + k`` / ``S + 2``
- ``ffm.*``: ``N`` / ``S + 3``

``BiSeNetV2``: the detail branch (``detail.detail_branch.0`` the stem, one
id per later stage), then the semantic branch (``semantic.stage1``, the
stem block; one id per gather-and-expand layer ``semantic.stage{s}.j``;
``stage4_CEBlock``), then the aggregation ``bga``. ``depths`` =
``[len(detail_branch) - 1, 1, len(stage2), len(stage3), len(stage4), 1,
1]`` (as shipped ``[2, 1, 2, 2, 4, 1, 1]``: 13 layers).

``ICNet``: its full-resolution branch ``conv_sub1`` runs first and is a
stem with the ResNet's; one id per ResNet block (``backbone.layer{i}.j``);
``conv_sub2`` reads ``layer2``'s output and shares its last block's id;
the pyramid pooling (``psp_modules``, ``psp_bottleneck``, ``conv_sub4``)
is the last layer. ``depths`` = ``[*blocks per ResNet stage, 1]``.

``STDCContextPathNet``: its ``backbone.`` (an ``STDCNet``: ids of
:mod:`.realtime`), then one id per attention refinement ``arms.i`` with its
``convs.i`` (``conv_avg`` with the first), then ``ffm``. ``depths`` =
``[*STDCNet's, len(arms), 1]``.

``DDRNet``, ``PIDNet``: ``stem.0``, ``stem.1`` (convs) are the stem; one
id per block of the stem's block lists ``stem.2`` and ``stem.4``; then one
id per stage of parallel branches: ``{context,spatial,i,p,d}_branch_layers.k``
with the fusions after them (``compression_{k+1}``, ``down_{k+1}``,
``pag_{k+1}``, ``diff_{k+1}``), the last with ``spp`` and ``dfm``.
``depths`` = ``[len(stem.2), len(stem.4), 1, 1, 1]`` (DDRNet-23-slim: 7
layers; stages 1-5 ``stage_wise``).

Anything else, in each: ``N + 1`` / ``N + 1``.
"""
import re
from typing import Sequence

from .realtime import stdc_place
from .units import STEM, Place, unit_rules

_RESNET_STEM = ('conv1.', 'bn1.', 'gn1.', 'norm1.', 'stem.')
_RESNET = re.compile(r'^layer(\d+)\.(\d+)\.')


def resnet_place(name: str) -> Place:
    """Place of a ResNet parameter: a stem, stages ``layer{i}`` as units
    ``i - 1``, or None."""
    if name.startswith(_RESNET_STEM):
        return STEM
    match = _RESNET.match(name)
    return (int(match.group(1)) - 1, int(match.group(2))) if match else None


_BISENET_V1 = re.compile(r'^(?:context_path\.(?:(gap_conv|arm32|conv_head32)'
                         r'|arm16|conv_head16)|spatial_path\.layer(\d+))\.')


def bisenetv1_place(name: str, depths: Sequence[int]) -> Place:
    """Place of an mmseg ``BiSeNetV1`` parameter (a ResNet context path)."""
    if name.startswith('context_path.backbone.'):
        return resnet_place(name[len('context_path.backbone.'):])
    if name.startswith('ffm.'):
        return len(depths) - 1, 0
    match = _BISENET_V1.match(name)
    if not match:
        return None
    first, spatial = match.groups()
    if spatial:
        return len(depths) - 2, int(spatial) - 1
    return len(depths) - 3, 0 if first else 1


_BISENET_V2 = re.compile(r'^(?:detail\.detail_branch\.(\d+)|'
                         r'semantic\.stage(\d+)(_CEBlock)?(?:\.(\d+))?)\.')


def bisenetv2_place(name: str, depths: Sequence[int]) -> Place:
    """Place of an mmseg ``BiSeNetV2`` parameter."""
    if name.startswith('bga.'):
        return len(depths) - 1, 0
    match = _BISENET_V2.match(name)
    if not match:
        return None
    detail, stage, context, block = match.groups()
    if detail:
        return STEM if detail == '0' else (0, int(detail) - 1)
    if context:
        return len(depths) - 2, 0
    return int(stage), int(block or 0)


def icnet_place(name: str, depths: Sequence[int]) -> Place:
    """Place of an mmseg ``ICNet`` parameter (its ResNet ``backbone``)."""
    if name.startswith('conv_sub1.'):
        return STEM
    if name.startswith('backbone.'):
        return resnet_place(name[len('backbone.'):])
    if name.startswith('conv_sub2.'):
        return 1, -1
    if name.startswith(('psp_modules.', 'psp_bottleneck.', 'conv_sub4.')):
        return len(depths) - 1, 0
    return None


_CONTEXT_PATH = re.compile(r'^(?:arms|convs)\.(\d+)\.')


def stdc_context_path_place(name: str, depths: Sequence[int]) -> Place:
    """Place of an mmseg ``STDCContextPathNet`` parameter."""
    if name.startswith('backbone.'):
        return stdc_place(name[len('backbone.'):], depths[:-2])
    if name.startswith('ffm.'):
        return len(depths) - 1, 0
    if name.startswith('conv_avg.'):
        return len(depths) - 2, 0
    match = _CONTEXT_PATH.match(name)
    return (len(depths) - 2, int(match.group(1))) if match else None


#: The stem's block lists: ``stem`` is [conv, conv, blocks, ReLU, blocks,
#: (ReLU)].
_DUAL_STEM = re.compile(r'^stem\.(\d+)\.(\d+)\.')
_DUAL = re.compile(r'^(?:[a-z]+_branch_layers\.(\d+)|'
                   r'(?:compression|down|pag|diff)_(\d+))\.')


def ddrnet_place(name: str, depths: Sequence[int]) -> Place:
    """Place of an mmseg ``DDRNet`` or ``PIDNet`` parameter."""
    match = _DUAL_STEM.match(name)
    if match:
        return (int(match.group(1)) - 2) // 2, int(match.group(2))
    if name.startswith('stem.'):
        return STEM
    if name.startswith(('spp.', 'dfm.')):
        return len(depths) - 1, 0
    match = _DUAL.match(name)
    if not match:
        return None
    branch, fusion = match.groups()
    return 2 + (int(branch) if branch else int(fusion) - 1), 0


BISENET_V1 = unit_rules('BiSeNetV1', bisenetv1_place)
BISENET_V2 = unit_rules('BiSeNetV2', bisenetv2_place)
ICNET = unit_rules('ICNet', icnet_place)
STDC_CONTEXT_PATH = unit_rules('STDCContextPathNet', stdc_context_path_place)
DDRNET = unit_rules('DDRNet', ddrnet_place)
