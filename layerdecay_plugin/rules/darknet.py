"""mmdet's ``Darknet`` (YOLOv3): a stem ``conv1`` and stages
``conv_res_block{i}`` (``i`` from 1), each a downsampling ``conv`` followed
by residual blocks ``res{j}``; one id per residual block, the downsampling
conv with the first block it feeds. ``depths`` = residual blocks per stage.

Ids (``layer_wise`` / ``stage_wise``):

- ``conv1.*``: 0 / 0
- ``conv_res_block{i}.conv.*``: ``1 + sum(depths[:i - 1])`` / ``i``
- ``conv_res_block{i}.res{j}.*``: ``1 + sum(depths[:i - 1]) + j`` / ``i``
- anything else: ``N + 1`` / ``N + 1``
"""
import re
from typing import Sequence

from .common import BackboneRules, per_block_min_num_layers, staged_id

_BLOCK = re.compile(r'^conv_res_block(\d+)\.(?:conv|res(\d+))\.')


def darknet_layer_id(name: str, num_layers: int,
                     depths: Sequence[int]) -> int:
    """Layer id of a ``Darknet`` parameter.

    Args:
        name: Parameter name relative to the backbone, e.g.
            ``'conv_res_block3.res4.conv1.conv.weight'``.
        num_layers: The ``num_layers`` in effect.
        depths: Residual blocks per stage, e.g. ``[1, 2, 8, 8, 4]``.

    Returns:
        int: The layer id.
    """
    return staged_id(name, num_layers, depths, 'conv1.', _BLOCK)


def darknet_stage_id(name: str, num_layers: int,
                     depths: Sequence[int] = ()) -> int:
    """Stage id of a ``Darknet`` parameter: ``conv1`` is 0,
    ``conv_res_block{i}`` is ``i``.

    Args:
        name: Parameter name relative to the backbone.
        num_layers: The ``num_layers`` in effect.
        depths: Unused; part of the common rule signature.

    Returns:
        int: The stage id.
    """
    return staged_id(name, num_layers, depths, 'conv1.', _BLOCK, True)


DARKNET = BackboneRules('Darknet', {
    'layer_wise': darknet_layer_id,
    'stage_wise': darknet_stage_id
}, per_block_min_num_layers)
