"""Pyramid transformers of mmseg's configs named by stage lists rather than
PVT's ``layers.i.{0,1,2}``: their units (:mod:`.units`, a unit per stage)
and where each name sits. ``depths`` = blocks per stage.

mmseg's Twins ``PCPVT`` and ``SVT`` (a subclass): per stage ``i`` (from
0) a patch embed ``patch_embeds.i``, blocks ``layers.i.j``, a position
encoding ``position_encodings.i`` (run after block 0) and, with
``norm_after_stage``, a norm ``norm_list.i`` after the blocks; PVT's ids:

- ``patch_embeds.0.*`` (the stem): 0 / 0
- ``patch_embeds.i.*`` (``i`` >= 1), ``position_encodings.i.*``: the
  stage's first block / ``i + 1``
- ``layers.i.j.*``: ``1 + sum(depths[:i]) + j`` / ``i + 1``
- ``norm_list.i.*``: the stage's last block / ``i + 1``

mmpretrain's ``PoolFormer`` (mmseg's PoolFormer configs fine-tune it):
``network`` alternates stages (even indices) and patch embeds that
downsample between them (odd); ``norm{i}`` are out norms:

- ``patch_embed.*`` (the stem): 0 / 0
- ``network.{2i}.j.*``: ``1 + sum(depths[:i]) + j`` / ``i + 1``
- ``network.{2i - 1}.*``: stage ``i``'s first block / ``i + 1``

Anything else, in each (out norms among them): ``N + 1`` / ``N + 1``.
"""
import re
from typing import Sequence

from .units import STEM, Place, unit_rules

_TWINS = re.compile(r'^(?:(patch_embeds|position_encodings|norm_list)\.(\d+)'
                    r'|layers\.(\d+)\.(\d+))\.')


def twins_place(name: str, depths: Sequence[int]) -> Place:
    """Place of an mmseg Twins (``PCPVT``, ``SVT``) parameter."""
    match = _TWINS.match(name)
    if not match:
        return None
    part, index, stage, block = match.groups()
    if stage:
        return int(stage), int(block)
    if part == 'patch_embeds' and index == '0':
        return STEM
    return int(index), -1 if part == 'norm_list' else 0


_POOLFORMER = re.compile(r'^network\.(\d+)\.(?:(\d+)\.)?')


def poolformer_place(name: str, depths: Sequence[int]) -> Place:
    """Place of an mmpretrain ``PoolFormer`` parameter."""
    if name.startswith('patch_embed.'):
        return STEM
    match = _POOLFORMER.match(name)
    if not match:
        return None
    index, block = int(match.group(1)), int(match.group(2) or 0)
    if index % 2:  # a patch embed: with the first block of the next stage
        return (index + 1) // 2, 0
    return index // 2, block


TWINS = unit_rules('Twins', twins_place)
POOLFORMER = unit_rules('PoolFormer', poolformer_place)
