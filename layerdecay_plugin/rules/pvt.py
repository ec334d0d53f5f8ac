"""mmdet's ``PyramidVisionTransformer`` (v1) and ``...V2``: stages
``layers.i`` = ``[patch embed, blocks, norm]``, i.e. ``layers.i.0.*``,
``layers.i.1.k.*`` and ``layers.i.2.*``. v1's position embedding is element
0 of the block list and counts as a block. A later stage's patch embed runs
before its blocks and shares the id of the first; stage 0's is the stem.
``depths`` = elements of each stage's block list.

Ids (``layer_wise`` / ``stage_wise``):

- ``layers.0.0.*`` (the first patch embed): 0 / 0
- ``layers.i.0.*`` (``i`` >= 1): ``1 + sum(depths[:i])`` / ``i + 1``
- ``layers.i.1.k.*``: ``1 + sum(depths[:i]) + k`` / ``i + 1``
- ``layers.i.2.*`` (stage norm): ``sum(depths[:i + 1])`` / ``i + 1``
- anything else: ``N + 1`` / ``N + 1``
"""
import re
from typing import Sequence

from .common import BackboneRules, block_id, per_block_min_num_layers

_PART = re.compile(r'^layers\.(\d+)\.([012])\.(?:(\d+)\.)?')


def pvt_layer_id(name: str, num_layers: int, depths: Sequence[int]) -> int:
    """Layer id of an mmdet PVT (v1 or v2) parameter.

    A rule (:data:`~layerdecay_plugin.rules.common.IdRule`) on names such
    as ``'layers.2.1.1.attn.attn.in_proj_weight'``; ``depths``: elements of
    each stage's block list, e.g. ``[2, 2, 2, 2]``.
    """
    match = _PART.match(name)
    if not match:
        return num_layers + 1
    stage, part = int(match.group(1)), match.group(2)
    if part == '0':
        return 0 if stage == 0 else block_id(stage, 0, depths)
    if part == '1':
        return block_id(stage, int(match.group(3) or 0), depths)
    return block_id(stage, depths[stage] - 1, depths)


def pvt_stage_id(name: str, num_layers: int,
                 depths: Sequence[int] = ()) -> int:
    """Stage id of an mmdet PVT parameter: the first patch embed is 0,
    anything else in ``layers.i`` is ``i + 1``.

    A rule (:data:`~layerdecay_plugin.rules.common.IdRule`); ``depths``
    unused.
    """
    match = _PART.match(name)
    if not match:
        return num_layers + 1
    if name.startswith('layers.0.0.'):
        return 0
    return int(match.group(1)) + 1


PVT = BackboneRules('PVT', {
    'layer_wise': pvt_layer_id,
    'stage_wise': pvt_stage_id
}, per_block_min_num_layers)
