"""Backbones whose layers are named units run one after another (a stage
of blocks, a branch stage, a fusion module), not a stem plus numbered
stages ``{prefix}{i}.j`` (that is :mod:`.staged`): one factory,
:func:`unit_rules`, makes a family's rules from a function that places a
parameter name in its unit and in its block there. The placing functions
of mmseg's real-time, encoder-decoder and pyramid backbones are in
:mod:`.realtime`, :mod:`.branches` and :mod:`.pyramids`.

``depths`` = blocks per unit, in the order the units first run.

Ids (``layer_wise`` / ``stage_wise``):

- the stem: 0 / 0
- block ``j`` of unit ``u`` (both from 0): ``1 + sum(depths[:u]) + j`` /
  ``u + 1``; a negative ``j`` counts from the unit's end (``-1``: its last
  block, for a norm or a side output that reads it)
- anything else: ``N + 1`` / ``N + 1``
"""
from typing import Callable, Optional, Sequence, Tuple

from .common import BackboneRules, block_id, per_block_min_num_layers

#: The place of the stem's parameters.
STEM = (-1, 0)

#: ``(unit, block)`` of a name, :data:`STEM`, or None (not the family's).
Place = Optional[Tuple[int, int]]

#: ``locate(name, depths) -> place``: pure, names and numbers only.
Locate = Callable[[str, Sequence[int]], Place]


def unit_layer_id(place: Place, num_layers: int,
                  depths: Sequence[int]) -> int:
    """Layer id of a place (see the module docstring).

    Args:
        place: ``(unit, block)``, :data:`STEM` or None.
        num_layers: The ``num_layers`` in effect.
        depths: Blocks per unit.

    Returns:
        int: The id; ``num_layers + 1`` for None or a unit past
        ``depths``.
    """
    if place is None:
        return num_layers + 1
    unit, block = place
    if unit < 0:
        return 0
    if unit >= len(depths):
        return num_layers + 1
    return block_id(unit, block + depths[unit] if block < 0 else block,
                    depths)


def unit_rules(name: str, locate: Locate) -> BackboneRules:
    """The rules of a family of units (see the module docstring).

    Args:
        name: The family's display name (messages, the group table).
        locate: Places a parameter name relative to the backbone.

    Returns:
        BackboneRules: ``layer_wise`` (one id per block) and
        ``stage_wise`` (one id per unit) rules.
    """

    def layer_id(param: str, num_layers: int, depths: Sequence[int]) -> int:
        return unit_layer_id(locate(param, depths), num_layers, depths)

    def stage_id(param: str, num_layers: int,
                 depths: Sequence[int] = ()) -> int:
        place = locate(param, depths)
        if place is None or place[0] >= len(depths):
            return num_layers + 1
        return place[0] + 1

    return BackboneRules(name, {
        'layer_wise': layer_id,
        'stage_wise': stage_id
    }, per_block_min_num_layers)
