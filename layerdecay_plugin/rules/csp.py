"""CSP backbones (mmdet's ``CSPDarknet`` of YOLOX and ``CSPNeXt`` of
RTMDet): a ``stem`` and stages ``stage{i}`` (``i`` from 1), each a sequence
of a downsampling conv, an optional SPP block and CSP layers; one id per
element of a stage. ``depths`` = elements per stage.

Ids (``layer_wise`` / ``stage_wise``):

- ``stem.*``: 0 / 0
- ``stage{i}.k.*``: ``1 + sum(depths[:i - 1]) + k`` / ``i``
- anything else: ``N + 1`` / ``N + 1``
"""
import re
from typing import Sequence

from .common import BackboneRules, per_block_min_num_layers, staged_id

_STAGE = re.compile(r'^stage(\d+)\.(\d+)\.')


def csp_layer_id(name: str, num_layers: int, depths: Sequence[int]) -> int:
    """Layer id of a ``CSPDarknet``/``CSPNeXt`` parameter.

    Args:
        name: Parameter name relative to the backbone, e.g.
            ``'stage2.1.blocks.0.conv1.conv.weight'``.
        num_layers: The ``num_layers`` in effect.
        depths: Elements per stage, e.g. ``[2, 2, 2, 3]``.

    Returns:
        int: The layer id.
    """
    return staged_id(name, num_layers, depths, 'stem.', _STAGE)


def csp_stage_id(name: str, num_layers: int,
                 depths: Sequence[int] = ()) -> int:
    """Stage id of a ``CSPDarknet``/``CSPNeXt`` parameter: the stem is 0,
    ``stage{i}`` is ``i``.

    Args:
        name: Parameter name relative to the backbone.
        num_layers: The ``num_layers`` in effect.
        depths: Unused; part of the common rule signature.

    Returns:
        int: The stage id.
    """
    return staged_id(name, num_layers, depths, 'stem.', _STAGE, True)


CSP = BackboneRules('CSP', {
    'layer_wise': csp_layer_id,
    'stage_wise': csp_stage_id
}, per_block_min_num_layers)
