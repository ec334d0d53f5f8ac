"""Plain and hierarchical ViTs whose blocks form one flat list.

mmpretrain's ``VisionTransformer`` (and ``ViTEVA02``, a subclass) and
mmseg's ``VisionTransformer``, ``BEiT`` and ``MAE`` name their blocks
``layers.i``; ViTDet's ``ViT``, timm's ``VisionTransformer``,
mmpretrain's ``HiViT`` and ``MViT`` name them ``blocks.i``. HiViT and MViT
have stages (HiViT: a ``PatchMerge`` block starts each later stage; MViT:
the blocks listed in ``downscale_indices``), so their ``stage_wise`` gives
one id per stage; ``depths`` = blocks per stage (a plain ViT: one stage).

Ids (``layer_wise`` / ``stage_wise``):

- tokens (register tokens too: ``reg_token``, DINOv2's
  ``register_tokens``, DINOv3's ``storage_tokens``), ``pos_embed``,
  ``patch_embed``, the pre-norm (``pre_norm``;
  mmseg's ``ln_pre``): 0 / 0
- block ``i`` (``layers.i`` / ``blocks.i``): ``i + 1`` / plain ViT ``i + 1``,
  HiViT and MViT: its stage + 1
- final norm (``ln1``/``ln2``; ``norm``/``fc_norm``): ``N`` / ``N``
- anything else (out norms ``norm{i}``): ``N + 1`` / ``N + 1``
"""
from typing import Sequence

from .common import (BackboneRules, _part, per_block_min_num_layers,
                     stage_of_block)


def vit_min_num_layers(depths: Sequence[int], decay_type: str) -> int:
    """ViTs have one id per block for both decay types: the block count.

    Args:
        depths: ``[number of blocks]``.
        decay_type: ``'layer_wise'`` or ``'stage_wise'`` (same result).

    Returns:
        int: The minimum valid ``num_layers``.
    """
    return sum(depths)


# `patch_embed` without the dot, as mmseg's constructor matches it: a
# patch embedding kept as a bare parameter is one too.
_VIT_EMBED = ('cls_token', 'dist_token', 'reg_token', 'register_tokens',
              'storage_tokens', 'mask_token', 'pos_embed', 'patch_embed',
              'pre_norm.', 'ln_pre.')


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

    Tokens, ``pos_embed``, ``patch_embed`` and the pre-norm (``pre_norm``,
    mmseg's ``ln_pre``) are 0, block ``layers.i`` is ``i + 1``, the final
    norms ``ln1``/``ln2`` go with the last layer (``num_layers``), anything
    else is ``num_layers + 1``. A plain ViT has one block per stage, so
    ``stage_wise`` is the same. mmseg's ``VisionTransformer``, ``BEiT`` and
    ``MAE`` name theirs the same way.

    A rule (:data:`~layerdecay_plugin.rules.common.IdRule`); ``depths``
    unused.
    """
    return _vit_id(name, num_layers, 'layers.', ('ln1.', 'ln2.'))


def vit_blocks_layer_id(name: str, num_layers: int,
                        depths: Sequence[int] = ()) -> int:
    """Layer id for ViTs with ``blocks.i`` naming (ViTDet, timm).

    As :func:`vit_layer_id`, with blocks ``blocks.i`` and final norms
    ``norm``/``fc_norm``.

    A rule (:data:`~layerdecay_plugin.rules.common.IdRule`); ``depths``
    unused.
    """
    return _vit_id(name, num_layers, 'blocks.', ('norm.', 'fc_norm.'))


def blocks_stage_id(name: str, num_layers: int,
                    depths: Sequence[int]) -> int:
    """Stage id of a ``blocks.i`` ViT with stages (HiViT, MViT).

    Embeddings are 0, block ``i`` gets its stage + 1 (stages from
    ``depths``), the final norm ``norm``/``fc_norm`` goes with the last
    stage (``num_layers``), anything else is ``num_layers + 1``.

    A rule (:data:`~layerdecay_plugin.rules.common.IdRule`); ``depths``:
    blocks per stage, e.g. ``[2, 3, 11]``.
    """
    if name.startswith('blocks.'):
        return stage_of_block(_part(name, 1), depths) + 1
    return vit_blocks_layer_id(name, num_layers)


VIT = BackboneRules('ViT', {
    'layer_wise': vit_layer_id,
    'stage_wise': vit_layer_id
}, vit_min_num_layers)
VIT_BLOCKS = BackboneRules('ViT (blocks.i)', {
    'layer_wise': vit_blocks_layer_id,
    'stage_wise': vit_blocks_layer_id
}, vit_min_num_layers)
HIVIT = BackboneRules('HiViT', {
    'layer_wise': vit_blocks_layer_id,
    'stage_wise': blocks_stage_id
}, per_block_min_num_layers)
MVIT = BackboneRules('MViT', {
    'layer_wise': vit_blocks_layer_id,
    'stage_wise': blocks_stage_id
}, per_block_min_num_layers)
