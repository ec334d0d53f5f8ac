"""mmdet's ``HourglassNet`` (CornerNet, CentripetalNet): a ``stem`` and
``num_stacks`` stacks; stack ``k`` is ``hourglass_modules.k`` with its
``out_convs.k``, ``conv1x1s.k``, ``remap_convs.k`` and ``inters.k``, which
run together before stack ``k + 1``. An hourglass is an encoder-decoder
with skip branches, so it has no finer order than the stack: one id per
stack for both decay types. ``depths`` = ``[1] * num_stacks``.

- ``stem.*``: 0
- ``hourglass_modules.k.*``, ``out_convs.k.*``, ``conv1x1s.k.*``,
  ``remap_convs.k.*``, ``inters.k.*``: ``k + 1``
- anything else: ``N + 1``
"""
import re
from typing import Sequence

from .common import BackboneRules, per_block_min_num_layers

_STACK = re.compile(
    r'^(?:hourglass_modules|out_convs|conv1x1s|remap_convs|inters)\.(\d+)\.')


def hourglass_layer_id(name: str, num_layers: int,
                       depths: Sequence[int] = ()) -> int:
    """Layer (= stage) id of an ``HourglassNet`` parameter: its stack + 1.

    A rule (:data:`~layerdecay_plugin.rules.common.IdRule`) on names such
    as ``'hourglass_modules.1.low2.up1.0.conv1.conv.weight'``; ``depths``
    unused.
    """
    if name.startswith('stem.'):
        return 0
    match = _STACK.match(name)
    return int(match.group(1)) + 1 if match else num_layers + 1


HOURGLASS = BackboneRules('Hourglass', {
    'layer_wise': hourglass_layer_id,
    'stage_wise': hourglass_layer_id
}, per_block_min_num_layers)
