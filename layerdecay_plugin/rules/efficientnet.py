"""EfficientNets (mmdet's ``EfficientNet``, mmpretrain's
``EfficientNetV2``): one ``layers`` list whose element 0 is the stem conv
and whose later elements are stages, each a sequence of blocks
``layers.i.j`` or a single conv module (V2's last 1x1 conv) counted as a
stage of one block. ``depths`` = blocks per stage after the stem.

Ids (``layer_wise`` / ``stage_wise``):

- ``layers.0.*``: 0 / 0
- ``layers.i.j.*`` (``i`` >= 1): ``1 + sum(depths[:i - 1]) + j`` / ``i``
- ``layers.i.conv.*`` (a single conv): ``1 + sum(depths[:i - 1])`` / ``i``
- anything else: ``N + 1`` / ``N + 1``
"""
import re
from typing import Sequence

from .common import BackboneRules, per_block_min_num_layers, staged_id

_LAYER = re.compile(r'^layers\.(\d+)\.(?:(\d+)\.)?')


def efficientnet_layer_id(name: str, num_layers: int,
                          depths: Sequence[int]) -> int:
    """Layer id of an EfficientNet parameter.

    Args:
        name: Parameter name relative to the backbone, e.g.
            ``'layers.4.2.expand_conv.conv.weight'``.
        num_layers: The ``num_layers`` in effect.
        depths: Blocks per stage after the stem, e.g.
            ``[1, 2, 2, 3, 5, 8, 1]``.

    Returns:
        int: The layer id.
    """
    return staged_id(name, num_layers, depths, 'layers.0.', _LAYER)


def efficientnet_stage_id(name: str, num_layers: int,
                          depths: Sequence[int] = ()) -> int:
    """Stage id of an EfficientNet parameter: ``layers.i`` is ``i`` (the
    stem ``layers.0`` is 0).

    Args:
        name: Parameter name relative to the backbone.
        num_layers: The ``num_layers`` in effect.
        depths: Unused; part of the common rule signature.

    Returns:
        int: The stage id.
    """
    return staged_id(name, num_layers, depths, 'layers.0.', _LAYER, True)


EFFICIENTNET = BackboneRules('EfficientNet', {
    'layer_wise': efficientnet_layer_id,
    'stage_wise': efficientnet_stage_id
}, per_block_min_num_layers)
