"""mmdet's ``MobileNetV2``: a stem ``conv1``, stages ``layer{i}`` (``i``
from 1) of inverted residual blocks, and a last 1x1 ``conv2`` that runs
after them and counts as a stage of one block. ``depths`` = blocks per
stage, ``conv2``'s 1 last.

Ids (``layer_wise`` / ``stage_wise``):

- ``conv1.*``: 0 / 0
- ``layer{i}.j.*``: ``1 + sum(depths[:i - 1]) + j`` / ``i``
- ``conv2.*``: ``sum(depths)`` (= ``N``) / ``len(depths)``
- anything else: ``N + 1`` / ``N + 1``
"""
import re
from typing import Sequence

from .common import BackboneRules, per_block_min_num_layers, staged_id

_LAYER = re.compile(r'^layer(\d+)\.(\d+)\.')


def mobilenet_v2_layer_id(name: str, num_layers: int,
                          depths: Sequence[int]) -> int:
    """Layer id of an mmdet ``MobileNetV2`` parameter.

    Args:
        name: Parameter name relative to the backbone, e.g.
            ``'layer4.2.conv.1.conv.weight'``.
        num_layers: The ``num_layers`` in effect.
        depths: Blocks per stage, ``conv2``'s 1 last, e.g.
            ``[1, 2, 3, 4, 3, 3, 1, 1]``.

    Returns:
        int: The layer id.
    """
    if name.startswith('conv2.'):
        return sum(depths)  # a stage of one block after the others
    return staged_id(name, num_layers, depths, 'conv1.', _LAYER)


def mobilenet_v2_stage_id(name: str, num_layers: int,
                          depths: Sequence[int]) -> int:
    """Stage id of an mmdet ``MobileNetV2`` parameter: ``conv1`` is 0,
    ``layer{i}`` is ``i``, ``conv2`` is ``len(depths)``.

    Args:
        name: Parameter name relative to the backbone.
        num_layers: The ``num_layers`` in effect.
        depths: Blocks per stage, ``conv2``'s 1 last.

    Returns:
        int: The stage id.
    """
    if name.startswith('conv2.'):
        return len(depths)
    return staged_id(name, num_layers, depths, 'conv1.', _LAYER, True)


MOBILENET_V2 = BackboneRules('MobileNetV2', {
    'layer_wise': mobilenet_v2_layer_id,
    'stage_wise': mobilenet_v2_stage_id
}, per_block_min_num_layers)
