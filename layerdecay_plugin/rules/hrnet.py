"""mmdet's ``HRNet``: a two-conv stem, ``layer1`` (bottleneck blocks), then
``transition{t}`` + ``stage{t + 1}`` for ``t`` = 1..3, each stage a
sequence of multi-branch ``HRModule`` s. One id per block of ``layer1`` and
per ``HRModule``; a transition runs before the stage it feeds and shares the
id of that stage's first module. ``depths`` = ``[len(layer1), len(stage2),
len(stage3), len(stage4)]`` (HRNet-w18: ``[4, 1, 4, 3]``).

Ids (``layer_wise`` / ``stage_wise``):

- stem ``conv1``, ``conv2`` and their norms: 0 / 0
- ``layer1.j.*``: ``1 + j`` / 1
- ``transition{t}.*``: ``1 + sum(depths[:t])`` / ``t + 1``
- ``stage{s}.m.*`` (``s`` = 2..4): ``1 + sum(depths[:s - 1]) + m`` / ``s``
- anything else: ``N + 1`` / ``N + 1``
"""
import re
from typing import Optional, Sequence, Tuple

from .common import BackboneRules, block_id, per_block_min_num_layers

_STEM = re.compile(r'^(conv|bn|gn|norm)[12]\.')
_STAGE = re.compile(r'^(?:layer1|stage([2-9]))\.(\d+)\.')
_TRANSITION = re.compile(r'^transition(\d+)\.')


def _hrnet_position(name: str) -> Optional[Tuple[int, int]]:
    """(stage index from 0 with ``layer1`` as 0, block index) of a
    non-stem name, or None."""
    match = _STAGE.match(name)
    if match:
        return int(match.group(1) or 1) - 1, int(match.group(2))
    match = _TRANSITION.match(name)
    if match:
        return int(match.group(1)), 0
    return None


def hrnet_layer_id(name: str, num_layers: int, depths: Sequence[int]) -> int:
    """Layer id of an mmdet ``HRNet`` parameter.

    A rule (:data:`~layerdecay_plugin.rules.common.IdRule`) on names such
    as ``'stage3.2.branches.1.0.conv1.weight'``; ``depths``:
    ``[len(layer1), len(stage2), len(stage3), len(stage4)]``.
    """
    if _STEM.match(name):
        return 0
    position = _hrnet_position(name)
    return num_layers + 1 if position is None else block_id(*position, depths)


def hrnet_stage_id(name: str, num_layers: int,
                   depths: Sequence[int] = ()) -> int:
    """Stage id of an mmdet ``HRNet`` parameter: the stem is 0, ``layer1``
    is 1, ``transition{t}`` and ``stage{t + 1}`` are ``t + 1``.

    A rule (:data:`~layerdecay_plugin.rules.common.IdRule`); ``depths``
    unused.
    """
    if _STEM.match(name):
        return 0
    position = _hrnet_position(name)
    return num_layers + 1 if position is None else position[0] + 1


HRNET = BackboneRules('HRNet', {
    'layer_wise': hrnet_layer_id,
    'stage_wise': hrnet_stage_id
}, per_block_min_num_layers)
