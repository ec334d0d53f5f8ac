"""mmdet's ``SSDVGG``: one ``features`` sequence of convolutions (with
ReLUs, pools and optional norms in between) and SSD's ``fc6``/``fc7`` convs
appended; one id per convolution, a norm with the convolution before it.
The first convolution is the stem (0). ``depths`` here are the
``features`` indices of the convolutions (e.g. ``[0, 2, 5, 7, ...]``),
since the indices in the names also count parameter-free layers; a pooling
layer between two convolutions widens their gap, which is how stages show
(SSD300: 5 VGG stages plus ``fc6``/``fc7``).

Ids (``layer_wise`` / ``stage_wise``):

- ``features.k.*``: the number of convolutions before index ``k`` (the
  first convolution: 0, the last: ``N``) / the number of stage starts
  before it (the first stage: 0)
- anything else: ``N + 1`` / ``N + 1``
"""
import bisect
import re
from typing import List, Sequence

from .common import BackboneRules

_FEATURE = re.compile(r'^features\.(\d+)\.')


def vgg_layer_id(name: str, num_layers: int, depths: Sequence[int]) -> int:
    """Layer id of an ``SSDVGG`` parameter.

    A rule (:data:`~layerdecay_plugin.rules.common.IdRule`) on names such
    as ``'features.7.weight'``; ``depths``: sorted ``features`` indices of
    the convolutions.
    """
    match = _FEATURE.match(name)
    if not match:
        return num_layers + 1
    return max(bisect.bisect_right(depths, int(match.group(1))) - 1, 0)


def _stage_starts(depths: Sequence[int]) -> List[bool]:
    """Per convolution, whether it starts a new stage: its gap to the
    previous one is wider than the narrowest gap (a pool sits in it)."""
    gaps = [b - a for a, b in zip(depths, depths[1:])]
    narrowest = min(gaps, default=0)
    return [False] + [gap > narrowest for gap in gaps]


def vgg_stage_id(name: str, num_layers: int, depths: Sequence[int]) -> int:
    """Stage id of an ``SSDVGG`` parameter: the stage of its convolution,
    from 0.

    A rule (:data:`~layerdecay_plugin.rules.common.IdRule`); ``depths``:
    sorted ``features`` indices of the convolutions.
    """
    if not _FEATURE.match(name):
        return num_layers + 1
    conv = vgg_layer_id(name, num_layers, depths)
    return sum(_stage_starts(depths)[:conv + 1])


def vgg_min_num_layers(depths: Sequence[int], decay_type: str) -> int:
    """One id per convolution (stage) from 0: their count - 1.

    Args:
        depths: ``features`` indices of the convolutions.
        decay_type: ``'layer_wise'`` or ``'stage_wise'``.

    Returns:
        int: The minimum valid ``num_layers``.
    """
    if decay_type == 'stage_wise':
        return max(sum(_stage_starts(depths)), 1)
    return max(len(depths) - 1, 1)


VGG = BackboneRules('VGG', {
    'layer_wise': vgg_layer_id,
    'stage_wise': vgg_stage_id
}, vgg_min_num_layers)
