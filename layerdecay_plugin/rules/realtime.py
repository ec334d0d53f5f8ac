"""mmseg's single-path real-time and encoder-decoder backbones: their
units (:mod:`.units`) and where each name sits. One id per block a paper's
layer table counts, in the order the blocks run; ``depths`` = blocks per
unit.

``STDCNet`` (STDC): ``stages.0``, ``stages.1`` (two convs, the paper's
Stage1-2) are the stem; units ``stages.{i}`` (``i`` >= 2) of
``STDCModule`` s, then ``final_conv`` (``with_final_conv=True``) as a unit
of one block. ``depths`` = ``[len(stages.2), len(stages.3), ...(, 1)]``
(STDC1: ``[2, 2, 2]``).

- ``stages.0.*``, ``stages.1.*``: 0 / 0
- ``stages.{i}.j.*``: ``1 + sum(depths[:i - 2]) + j`` / ``i - 1``
- ``final_conv.*``: ``N`` / ``len(depths)``

``FastSCNN``: units the ``dsconv`` s of ``learning_to_downsample`` (its
``conv`` is the stem), each ``global_feature_extractor.bottleneck{i}``, its
pyramid pooling (``ppm`` and the ``out`` conv after it), the
``feature_fusion`` module. ``depths`` = ``[2, 3, 3, 3, 1, 1]``: 13 layers
after the stem.

- ``learning_to_downsample.conv.*``: 0 / 0
- ``learning_to_downsample.dsconv{k}.*``: ``k`` / 1
- ``global_feature_extractor.bottleneck{i}.j.*``:
  ``1 + sum(depths[:i]) + j`` / ``i + 1``
- ``global_feature_extractor.(ppm|out).*``: ``N - 1`` / ``len(depths) - 1``
- ``feature_fusion.*``: ``N`` / ``len(depths)``

``CGNet``: the three ``stem`` convs and ``norm_prelu_0`` (the stem's
output norm) are the stem; units ``level1``, ``level2`` of
``ContextGuidedBlock`` s; ``norm_prelu_{s}`` normalises level ``s``'s
output and shares its last block's id. ``depths`` = ``[len(level1),
len(level2)]`` (``[3, 21]`` as shipped).

- ``stem.*``, ``norm_prelu_0.*``: 0 / 0
- ``level{s}.j.*``: ``1 + sum(depths[:s - 1]) + j`` / ``s``
- ``norm_prelu_{s}.*``: ``sum(depths[:s])`` / ``s``

``ERFNet``: one id per element of ``encoder`` and ``decoder``, as the
paper's layer table numbers them (``encoder.0``, the first downsampler,
is the stem); units the encoder and the decoder. ``depths`` =
``[len(encoder) - 1, len(decoder)]`` (``[15, 6]`` as shipped).

- ``encoder.0.*``: 0 / 0
- ``encoder.k.*``: ``k`` / 1
- ``decoder.k.*``: ``len(encoder) + k`` / 2

``UNet``: ``encoder.0`` (the first conv block) is the stem; one id per
``encoder.i``, then per ``decoder.k``, which run deepest first
(``decoder.{len - 1}`` first). ``depths`` = ``[len(encoder) - 1,
len(decoder)]`` (``[4, 4]`` with 5 stages).

- ``encoder.0.*``: 0 / 0
- ``encoder.i.*``: ``i`` / 1
- ``decoder.k.*``: ``N - k`` / 2

Anything else, in each: ``N + 1`` / ``N + 1``.
"""
import re
from typing import Sequence

from .units import STEM, Place, unit_rules

#: STDCNet's stem: the paper's Stage1 and Stage2, one conv each.
STDC_SHALLOW = 2
_STDC = re.compile(r'^stages\.(\d+)\.(?:(\d+)\.)?')


def stdc_place(name: str, depths: Sequence[int]) -> Place:
    """Place of an mmseg ``STDCNet`` parameter (see the module docstring)."""
    match = _STDC.match(name)
    if match:
        stage = int(match.group(1))
        if stage < STDC_SHALLOW:
            return STEM
        return stage - STDC_SHALLOW, int(match.group(2) or 0)
    if name.startswith('final_conv.'):
        return len(depths) - 1, 0
    return None


_FAST = re.compile(
    r'^(?:learning_to_downsample\.dsconv(\d+)|'
    r'global_feature_extractor\.(?:bottleneck(\d+)\.(\d+)|(ppm|out)))\.')


def fastscnn_place(name: str, depths: Sequence[int]) -> Place:
    """Place of an mmseg ``FastSCNN`` parameter."""
    if name.startswith('learning_to_downsample.conv.'):
        return STEM
    if name.startswith('feature_fusion.'):
        return len(depths) - 1, 0
    match = _FAST.match(name)
    if not match:
        return None
    dsconv, bottleneck, block, pooling = match.groups()
    if dsconv:
        return 0, int(dsconv) - 1
    if bottleneck:
        return int(bottleneck), int(block)
    return len(depths) - 2, 0


_CGNET = re.compile(r'^(?:level(\d+)\.(\d+)|norm_prelu_(\d+))\.')


def cgnet_place(name: str, depths: Sequence[int]) -> Place:
    """Place of an mmseg ``CGNet`` parameter."""
    if name.startswith(('stem.', 'norm_prelu_0.')):
        return STEM
    match = _CGNET.match(name)
    if not match:
        return None
    level, block, norm = match.groups()
    if level:
        return int(level) - 1, int(block)
    return int(norm) - 1, -1


_CODER = re.compile(r'^(encoder|decoder)\.(\d+)\.')


def erfnet_place(name: str, depths: Sequence[int]) -> Place:
    """Place of an mmseg ``ERFNet`` parameter."""
    match = _CODER.match(name)
    if not match:
        return None
    part, index = match.group(1), int(match.group(2))
    if part == 'decoder':
        return 1, index
    return STEM if index == 0 else (0, index - 1)


def unet_place(name: str, depths: Sequence[int]) -> Place:
    """Place of an mmseg ``UNet`` parameter: as ERFNet's, but the decoder
    runs from its last element to its first."""
    match = _CODER.match(name)
    if match and match.group(1) == 'decoder':
        return 1, -1 - int(match.group(2))
    return erfnet_place(name, depths)


STDC = unit_rules('STDCNet', stdc_place)
FASTSCNN = unit_rules('FastSCNN', fastscnn_place)
CGNET = unit_rules('CGNet', cgnet_place)
ERFNET = unit_rules('ERFNet', erfnet_place)
UNET = unit_rules('UNet', unet_place)
