"""Backbones named as a stem plus numbered stages of numbered blocks: one
factory, :func:`staged`, makes the rules of every such family from its stem
prefixes and its block pattern (the rows are in
``layerdecay_plugin.backbones.families``: ResNet, CSP, Darknet,
EfficientNet, MobileNetV2).

Ids (``layer_wise`` / ``stage_wise``), stages ``i`` counted from 1 in the
names, ``depths`` = blocks per stage:

- the stem: 0 / 0
- block ``j`` of stage ``i``: ``1 + sum(depths[:i - 1]) + j`` / ``i`` (a
  stage element without a block index counts as block 0)
- a tail module that runs after every stage (MobileNetV2's ``conv2``):
  ``sum(depths)`` / ``len(depths)``
- anything else: ``N + 1`` / ``N + 1``
"""
import re
from typing import Optional, Pattern, Sequence, Tuple, Union

from .common import BackboneRules, block_id, per_block_min_num_layers


def staged_id(name: str, num_layers: int, depths: Sequence[int],
              stem: Union[str, Tuple[str, ...]], pattern: Pattern,
              stage_wise: bool = False) -> int:
    """Id in a backbone named as a stem plus numbered stages of numbered
    blocks (ResNet's ``layer{i}.j``, CSP's ``stage{i}.k``, ...), stages
    counted from 1 in the names.

    Args:
        name: Parameter name relative to the backbone.
        num_layers: The ``num_layers`` in effect.
        depths: Blocks per stage.
        stem: Name prefix(es) of the stem, id 0.
        pattern: Regex whose group 1 is the stage (from 1) and group 2 the
            block in it (a stage without a block index is one block).
        stage_wise: Return the stage (``i``) instead of the block's id
            ``1 + sum(depths[:i - 1]) + j``.

    Returns:
        int: The id; ``num_layers + 1`` for names outside stem and stages.
    """
    if name.startswith(stem):
        return 0
    match = pattern.match(name)
    if not match:
        return num_layers + 1
    stage = int(match.group(1))
    if stage_wise:
        return stage
    return block_id(stage - 1, int(match.group(2) or 0), depths)


def staged(name: str, stem: Union[str, Tuple[str, ...]], blocks: str,
           tail: Optional[str] = None) -> BackboneRules:
    """The rules of a staged family (see the module docstring).

    Args:
        name: The family's display name (messages, the group table).
        stem: Name prefix(es) of the stem.
        blocks: Regex matched at the start of a name: group 1 the stage
            (from 1), group 2 the block (optional).
        tail: Name prefix of a module that runs after every stage and
            counts as a stage of one block (its 1 is then the last entry
            of ``depths``).

    Returns:
        BackboneRules: ``layer_wise`` and ``stage_wise`` rules, one id per
        block.
    """
    pattern = re.compile(blocks)

    def layer_id(param: str, num_layers: int, depths: Sequence[int]) -> int:
        if tail and param.startswith(tail):
            return sum(depths)
        return staged_id(param, num_layers, depths, stem, pattern)

    def stage_id(param: str, num_layers: int,
                 depths: Sequence[int] = ()) -> int:
        if tail and param.startswith(tail):
            return len(depths)
        return staged_id(param, num_layers, depths, stem, pattern, True)

    return BackboneRules(name, {
        'layer_wise': layer_id,
        'stage_wise': stage_id
    }, per_block_min_num_layers)
