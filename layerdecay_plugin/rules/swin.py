"""Swin-like backbones: ``stages.i.blocks.j`` plus a patch-merging
``stages.i.downsample``, one id per block.

mmdet's and mmpretrain's ``SwinTransformer`` and mmpretrain's ``TinyViT``
run a stage's downsample *after* its blocks;
mmpretrain's ``SwinTransformerV2`` runs it *before* them (at the start of
stages 1-3). The downsample shares the id of the block next to it in
forward order, so ids never decrease along the forward pass.
``depths`` = blocks per stage.

Ids (``layer_wise`` / ``stage_wise``):

- ``patch_embed.*``, ``absolute_pos_embed``: 0 / 0
- ``stages.i.blocks.j.*``: ``1 + sum(depths[:i]) + j`` / ``i + 1``
- ``stages.i.downsample.*`` run after the blocks: ``sum(depths[:i + 1])``
  / ``i + 1``
- ``stages.i.downsample.*`` run before them (V2): ``1 + sum(depths[:i])``
  / ``i + 1``
- out norms ``norm{i}``: ``N + 1`` / ``N + 1``
"""
from typing import Sequence

from .common import (BackboneRules, _part, block_id,
                     per_block_min_num_layers)

_EMBED = ('patch_embed.', 'absolute_pos_embed')


def swin_layer_id(name: str, num_layers: int, depths: Sequence[int]) -> int:
    """Layer id of an mmdet ``SwinTransformer`` parameter, one id per block.

    ``patch_embed`` and ``absolute_pos_embed`` are 0; block ``j`` of stage
    ``i`` is ``1 + sum(depths[:i]) + j``; a stage's downsample (patch
    merging) runs after its blocks and shares its last block's id; out norms
    ``norm{i}`` are ``num_layers + 1``.

    A rule (:data:`~layerdecay_plugin.rules.common.IdRule`); ``depths``:
    blocks per stage, e.g. ``[2, 2, 6, 2]``.
    """
    if name.startswith(_EMBED):
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

    A rule (:data:`~layerdecay_plugin.rules.common.IdRule`); ``depths``
    unused.
    """
    if name.startswith('stages.'):
        return _part(name, 1) + 1
    if name.startswith(_EMBED):
        return 0
    return num_layers + 1


def swin_v2_layer_id(name: str, num_layers: int,
                     depths: Sequence[int]) -> int:
    """Layer id of an mmpretrain ``SwinTransformerV2`` parameter.

    As :func:`swin_layer_id`, except that a stage's downsample runs before
    its blocks, so it shares the id of the stage's first block.

    A rule (:data:`~layerdecay_plugin.rules.common.IdRule`); ``depths``:
    blocks per stage, e.g. ``[2, 2, 6, 2]``.
    """
    if name.startswith(_EMBED):
        return 0
    if name.startswith('stages.'):
        stage = _part(name, 1)
        block = _part(name, 3) if name.split('.')[2] == 'blocks' else 0
        return block_id(stage, block, depths)
    return num_layers + 1


SWIN = BackboneRules('Swin', {
    'layer_wise': swin_layer_id,
    'stage_wise': swin_stage_id
}, per_block_min_num_layers)
SWIN_V2 = BackboneRules('SwinV2', {
    'layer_wise': swin_v2_layer_id,
    'stage_wise': swin_stage_id
}, per_block_min_num_layers)
