"""mmseg's ``MSCAN`` (SegNeXt): stages numbered from 1, each a patch embed
``patch_embed{s}``, blocks ``block{s}.j`` and a norm ``norm{s}``, run in
that order (the norm is on the main path, not an out norm). That is PVT's
stage ``[patch embed, blocks, norm]`` under flat names, so the names are
read as PVT's (``patch_embed{s}`` as ``layers.{s-1}.0``, ``block{s}.j`` as
``layers.{s-1}.1.j``, ``norm{s}`` as ``layers.{s-1}.2``) and given
:mod:`.pvt`'s ids. ``depths`` = blocks per stage.

Ids (``layer_wise`` / ``stage_wise``):

- ``patch_embed1.*`` (the stem): 0 / 0
- ``patch_embed{s}.*`` (``s`` >= 2): its stage's first block / ``s``
- ``block{s}.j.*``: ``1 + sum(depths[:s - 1]) + j`` / ``s``
- ``norm{s}.*``: its stage's last block / ``s``
- anything else: ``N + 1`` / ``N + 1``
"""
import re
from typing import Optional, Sequence

from .common import BackboneRules, per_block_min_num_layers
from .pvt import pvt_layer_id, pvt_stage_id

_PART = re.compile(r'^(patch_embed|block|norm)(\d+)\.')
_PVT_PART = {'patch_embed': '0', 'block': '1', 'norm': '2'}


def _as_pvt(name: str) -> Optional[str]:
    """``block2.0.mlp.fc1.weight`` -> ``layers.1.1.0.mlp.fc1.weight``;
    None for a name outside the stages."""
    match = _PART.match(name)
    if not match or int(match.group(2)) < 1:
        return None
    part, stage = match.groups()
    return (f'layers.{int(stage) - 1}.{_PVT_PART[part]}.'
            f'{name[match.end():]}')


def mscan_layer_id(name: str, num_layers: int,
                   depths: Sequence[int]) -> int:
    """Layer id of an mmseg ``MSCAN`` parameter, one id per block.

    A rule (:data:`~layerdecay_plugin.rules.common.IdRule`) on names such
    as ``'block3.1.attn.proj_1.weight'``; ``depths``: blocks per stage,
    e.g. ``[3, 3, 5, 2]``.
    """
    pvt_name = _as_pvt(name)
    if pvt_name is None:
        return num_layers + 1
    return pvt_layer_id(pvt_name, num_layers, depths)


def mscan_stage_id(name: str, num_layers: int,
                   depths: Sequence[int] = ()) -> int:
    """Stage id of an mmseg ``MSCAN`` parameter: ``patch_embed1`` is 0,
    anything else of stage ``s`` is ``s``.

    A rule (:data:`~layerdecay_plugin.rules.common.IdRule`); ``depths``
    unused.
    """
    pvt_name = _as_pvt(name)
    if pvt_name is None:
        return num_layers + 1
    return pvt_stage_id(pvt_name, num_layers, depths)


MSCAN = BackboneRules('MSCAN', {
    'layer_wise': mscan_layer_id,
    'stage_wise': mscan_stage_id
}, per_block_min_num_layers)
