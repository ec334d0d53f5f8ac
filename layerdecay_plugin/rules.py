"""Pure rules that map a backbone parameter name to a layer or stage id.

Nothing here imports torch, a registry or a logger: every function takes plain
names and numbers so that it can be tested on lists of strings.

Every rule has the signature ``rule(name, num_layers, depths) -> id`` where
``name`` is relative to the backbone (``stages.2.4.gamma``, not
``backbone.stages.2.4.gamma``) and ``depths`` is the number of blocks per
stage. Ids follow mmdet's ``LearningRateDecayOptimizerConstructor``: backbone
ids run from 0 (stem) to ``num_layers``; everything outside the backbone, plus
backbone parameters no rule claims (e.g. out norms added for detection), gets
``num_layers + 1`` (lr scale 1).
"""
import re
from typing import Callable, Dict, NamedTuple, Sequence

DECAY_TYPES = ('layer_wise', 'stage_wise')

#: Backbone-level embeddings that mmdet puts at layer 0.
TOKEN_NAMES = ('cls_token', 'mask_token', 'pos_embed')

#: Parameters that get no weight decay by default besides 1-D ones and biases:
#: embeddings and position tables (matched on the last name component).
NO_DECAY_NAMES = ('cls_token', 'mask_token', 'dist_token', 'reg_token',
                  'pos_embed', 'absolute_pos_embed',
                  'relative_position_bias_table', 'rel_pos_h', 'rel_pos_w')

#: ``rule(relative_name, num_layers, depths) -> id``
IdRule = Callable[[str, int, Sequence[int]], int]


class BackboneRules(NamedTuple):
    """The id rules of one backbone family.

    Attributes:
        name: Human-readable family name, used in messages and reports.
        ids: ``decay_type -> rule``; a family may lack ``stage_wise``.
        min_num_layers: ``(depths, decay_type) -> smallest valid num_layers``;
            below it some backbone id would reach the head's id or exceed
            ``num_layers`` (lr scale above the head's).
    """
    name: str
    ids: Dict[str, IdRule]
    min_num_layers: Callable[[Sequence[int], str], int]


def _part(name: str, index: int) -> int:
    return int(name.split('.')[index])


def _check_stage(name: str, stage: int) -> int:
    if not 0 <= stage <= 3:
        raise ValueError(f'ConvNeXt rules know stages 0-3; parameter '
                         f'{name!r} is in stage {stage}')
    return stage


# ConvNeXt (mmpretrain) ------------------------------------------------------


def convnext_layer_id(name: str, num_layers: int,
                      depths: Sequence[int] = ()) -> int:
    """Layer id of a ConvNeXt parameter for ``layer_wise`` decay.

    Same mapping as mmdet's ``get_layer_id_for_convnext``: the stem is 0,
    stage 0 is 1, stage 1 (with its downsample) is 2, stage 2 blocks are
    grouped three at a time from 3, stage 3 (with its downsample) is
    ``num_layers``, anything else (out norms) is ``num_layers + 1``.

    Args:
        name: Parameter name relative to the backbone, e.g.
            ``'stages.2.4.depthwise_conv.weight'``.
        num_layers: The ``num_layers`` in effect.
        depths: Unused; part of the common rule signature.

    Returns:
        int: The layer id.

    Raises:
        ValueError: For a stage index outside 0-3 (mmdet's rule only knows
            four-stage ConvNeXts).
    """
    if name in TOKEN_NAMES:
        return 0
    if name.startswith('downsample_layers.'):
        stage = _check_stage(name, _part(name, 1))
        return (0, 2, 3, num_layers)[stage]
    if name.startswith('stages.'):
        stage = _check_stage(name, _part(name, 1))
        if stage == 2:
            return 3 + _part(name, 2) // 3
        return (1, 2, None, num_layers)[stage]
    return num_layers + 1


def convnext_stage_id(name: str, num_layers: int,
                      depths: Sequence[int] = ()) -> int:
    """Stage id of a ConvNeXt parameter for ``stage_wise`` decay.

    Same mapping as mmdet's ``get_stage_id_for_convnext``: tokens and all
    downsample layers are 0, stage ``i`` is ``i + 1``, anything else is
    ``num_layers + 1``.

    Args:
        name: Parameter name relative to the backbone.
        num_layers: The ``num_layers`` in effect.
        depths: Unused; part of the common rule signature.

    Returns:
        int: The stage id.
    """
    if name in TOKEN_NAMES or name.startswith('downsample_layers.'):
        return 0
    if name.startswith('stages.'):
        return _part(name, 1) + 1
    return num_layers + 1


def convnext_min_num_layers(depths: Sequence[int], decay_type: str) -> int:
    """Smallest ``num_layers`` that keeps every ConvNeXt id below the head's.

    ``layer_wise``: stage 2's last block has id ``3 + (depths[2] - 1) // 3``
    and must stay below stage 3's ``num_layers``, so ConvNeXt-T (depth 9)
    needs 6 and ConvNeXt-S/B/L/XL (depth 27) need 12, the values of mmdet's
    configs. ``stage_wise``: one id per stage, so 4.

    Args:
        depths: Blocks per stage, e.g. ``[3, 3, 9, 3]``.
        decay_type: ``'layer_wise'`` or ``'stage_wise'``.

    Returns:
        int: The minimum valid ``num_layers``.
    """
    if len(depths) != 4:
        raise ValueError(
            f'ConvNeXt rules need 4 stages, got depths={list(depths)}')
    if decay_type == 'layer_wise':
        return 4 + (depths[2] - 1) // 3
    return len(depths)


# Swin Transformer (mmdet) ---------------------------------------------------


def swin_layer_id(name: str, num_layers: int, depths: Sequence[int]) -> int:
    """Layer id of an mmdet ``SwinTransformer`` parameter, one id per block.

    ``patch_embed`` and ``absolute_pos_embed`` are 0; block ``j`` of stage
    ``i`` is ``1 + sum(depths[:i]) + j``; a stage's downsample (patch
    merging) runs after its blocks and shares its last block's id; out norms
    ``norm{i}`` are ``num_layers + 1``.

    Args:
        name: Parameter name relative to the backbone.
        num_layers: The ``num_layers`` in effect.
        depths: Blocks per stage, e.g. ``[2, 2, 6, 2]``.

    Returns:
        int: The layer id.
    """
    if name.startswith(('patch_embed.', 'absolute_pos_embed')):
        return 0
    if name.startswith('stages.'):
        stage = _part(name, 1)
        if name.split('.')[2] == 'blocks':
            return 1 + sum(depths[:stage]) + _part(name, 3)
        return sum(depths[:stage + 1])  # downsample
    return num_layers + 1


def swin_stage_id(name: str, num_layers: int,
                  depths: Sequence[int] = ()) -> int:
    """Stage id of an mmdet ``SwinTransformer`` parameter.

    ``patch_embed`` and ``absolute_pos_embed`` are 0, stage ``i`` (its blocks
    and its downsample) is ``i + 1``, anything else (out norms) is
    ``num_layers + 1``.

    Args:
        name: Parameter name relative to the backbone.
        num_layers: The ``num_layers`` in effect.
        depths: Unused; part of the common rule signature.

    Returns:
        int: The stage id.
    """
    if name.startswith('stages.'):
        return _part(name, 1) + 1
    if name.startswith(('patch_embed.', 'absolute_pos_embed')):
        return 0
    return num_layers + 1


def per_block_min_num_layers(depths: Sequence[int], decay_type: str) -> int:
    """Backbones with one id per block (Swin, ViT, ResNet): the block count
    for ``layer_wise``, the stage count for ``stage_wise``.

    Args:
        depths: Blocks per stage.
        decay_type: ``'layer_wise'`` or ``'stage_wise'``.

    Returns:
        int: The minimum valid ``num_layers``.
    """
    return sum(depths) if decay_type == 'layer_wise' else len(depths)


# Vision Transformer ---------------------------------------------------------


def vit_min_num_layers(depths: Sequence[int], decay_type: str) -> int:
    """ViTs have one id per block for both decay types: the block count.

    Args:
        depths: ``[number of blocks]``.
        decay_type: ``'layer_wise'`` or ``'stage_wise'`` (same result).

    Returns:
        int: The minimum valid ``num_layers``.
    """
    return sum(depths)


_VIT_EMBED = ('cls_token', 'dist_token', 'reg_token', 'mask_token',
              'pos_embed', 'patch_embed.', 'pre_norm.')


def _vit_id(name: str, num_layers: int, blocks: str,
            final_norms: Sequence[str]) -> int:
    if name.startswith(_VIT_EMBED):
        return 0
    if name.startswith(blocks):
        return _part(name, 1) + 1
    if name.startswith(final_norms):
        return num_layers
    return num_layers + 1


def vit_layer_id(name: str, num_layers: int, depths: Sequence[int] = ()) -> int:
    """Layer id of an mmpretrain ``VisionTransformer`` parameter.

    Tokens, ``pos_embed``, ``patch_embed`` and ``pre_norm`` are 0, block
    ``layers.i`` is ``i + 1``, the final norms ``ln1``/``ln2`` go with the
    last layer (``num_layers``), anything else is ``num_layers + 1``. A
    plain ViT has one block per stage, so ``stage_wise`` is the same.

    Args:
        name: Parameter name relative to the backbone.
        num_layers: The ``num_layers`` in effect.
        depths: Unused; part of the common rule signature.

    Returns:
        int: The layer id.
    """
    return _vit_id(name, num_layers, 'layers.', ('ln1.', 'ln2.'))


def vit_blocks_layer_id(name: str, num_layers: int,
                        depths: Sequence[int] = ()) -> int:
    """Layer id for ViTs with ``blocks.i`` naming (ViTDet, timm).

    As :func:`vit_layer_id`, with blocks ``blocks.i`` and final norms
    ``norm``/``fc_norm``.

    Args:
        name: Parameter name relative to the backbone.
        num_layers: The ``num_layers`` in effect.
        depths: Unused; part of the common rule signature.

    Returns:
        int: The layer id.
    """
    return _vit_id(name, num_layers, 'blocks.', ('norm.', 'fc_norm.'))


# ResNet / ResNeXt (mmdet) ---------------------------------------------------

_RESNET_LAYER = re.compile(r'^layer(\d+)\.(\d+)\.')
_RESNET_STEM = ('conv1.', 'bn1.', 'gn1.', 'norm1.', 'stem.')


def resnet_layer_id(name: str, num_layers: int, depths: Sequence[int]) -> int:
    """Layer id of a ResNet parameter, one id per residual block.

    The stem (``conv1``/``bn1``, or ``stem`` with ``deep_stem``) is 0; block
    ``j`` of ``layer{i}`` is ``1 + sum(depths[:i-1]) + j``, so any depth works
    (ResNet-50: 16 block ids, ResNet-101: 33); anything else is
    ``num_layers + 1``.

    Args:
        name: Parameter name relative to the backbone.
        num_layers: The ``num_layers`` in effect.
        depths: Blocks per stage (``stage_blocks``), e.g. ``[3, 4, 6, 3]``.

    Returns:
        int: The layer id.
    """
    if name.startswith(_RESNET_STEM):
        return 0
    match = _RESNET_LAYER.match(name)
    if match:
        stage, block = int(match.group(1)), int(match.group(2))
        return 1 + sum(depths[:stage - 1]) + block
    return num_layers + 1


def resnet_stage_id(name: str, num_layers: int,
                    depths: Sequence[int] = ()) -> int:
    """Stage id of a ResNet parameter: the stem is 0, ``layer{i}`` is ``i``.

    Args:
        name: Parameter name relative to the backbone.
        num_layers: The ``num_layers`` in effect.
        depths: Unused; part of the common rule signature.

    Returns:
        int: The stage id.
    """
    if name.startswith(_RESNET_STEM):
        return 0
    match = _RESNET_LAYER.match(name)
    return int(match.group(1)) if match else num_layers + 1


CONVNEXT = BackboneRules(
    'ConvNeXt', {
        'layer_wise': convnext_layer_id,
        'stage_wise': convnext_stage_id
    }, convnext_min_num_layers)
SWIN = BackboneRules('Swin', {
    'layer_wise': swin_layer_id,
    'stage_wise': swin_stage_id
}, per_block_min_num_layers)
VIT = BackboneRules('ViT', {
    'layer_wise': vit_layer_id,
    'stage_wise': vit_layer_id
}, vit_min_num_layers)
VIT_BLOCKS = BackboneRules('ViT (blocks.i)', {
    'layer_wise': vit_blocks_layer_id,
    'stage_wise': vit_blocks_layer_id
}, vit_min_num_layers)
RESNET = BackboneRules('ResNet', {
    'layer_wise': resnet_layer_id,
    'stage_wise': resnet_stage_id
}, per_block_min_num_layers)

#: Built-in families by the name a config may give in ``paramwise_cfg.rules``.
BUILTIN_RULES = {
    'convnext': CONVNEXT,
    'swin': SWIN,
    'vit': VIT,
    'vit_blocks': VIT_BLOCKS,
    'resnet': RESNET,
}


def layer_scale(decay_rate: float, num_layers: int, layer_id: int) -> float:
    """lr multiplier of a layer id, exactly as mmdet computes it.

    Args:
        decay_rate: Per-layer decay factor.
        num_layers: The ``num_layers`` in effect.
        layer_id: Id from a rule, in ``[0, num_layers + 1]``.

    Returns:
        float: ``decay_rate ** (num_layers + 1 - layer_id)``.
    """
    # Written as mmdet writes it so the floats are bit-identical.
    return decay_rate**(num_layers + 2 - layer_id - 1)


def is_no_decay(name: str, ndim: int,
                no_decay_names: Sequence[str] = NO_DECAY_NAMES) -> bool:
    """Whether a parameter gets weight decay 0 by default.

    Args:
        name: Full parameter name in the model.
        ndim: Number of dimensions of the parameter.
        no_decay_names: Last name components that never decay (tokens and
            position tables by default; ``()`` gives mmdet's exact rule).

    Returns:
        bool: True for 1-D parameters, biases, mmdet's top-level
        ``pos_embed``/``cls_token`` and ``no_decay_names``.
    """
    return (ndim == 1 or name.endswith('.bias')
            or name in ('pos_embed', 'cls_token')
            or name.rsplit('.', 1)[-1] in no_decay_names)
