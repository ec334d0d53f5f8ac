"""ResNet and its relatives: one id per residual block ``layer{i}.j``.

Covers mmdet's ``ResNet``, ``ResNetV1d``, ``ResNeXt``, ``Res2Net``,
``ResNeSt``, ``DetectoRS_ResNet``/``ResNeXt``, ``TridentResNet``,
``RegNet`` (all subclasses of mmdet's ``ResNet``) and mmpretrain's
``ResNet`` and ``RegNet``. ``depths`` = ``stage_blocks``.

Ids (``layer_wise`` / ``stage_wise``):

- stem (``conv1``/``bn1``, ``stem`` if deep): 0 / 0
- ``layer{i}.j.*`` (``i`` from 1): ``1 + sum(depths[:i - 1]) + j`` / ``i``
- anything else: ``N + 1`` / ``N + 1``
"""
import re
from typing import Sequence

from .common import BackboneRules, per_block_min_num_layers, staged_id

_RESNET_LAYER = re.compile(r'^layer(\d+)\.(\d+)\.')
_RESNET_STEM = ('conv1.', 'bn1.', 'gn1.', 'norm1.', 'stem.')


def resnet_layer_id(name: str, num_layers: int, depths: Sequence[int]) -> int:
    """Layer id of a ResNet parameter, one id per residual block.

    The stem (``conv1``/``bn1``, or ``stem`` with ``deep_stem``) is 0; block
    ``j`` of ``layer{i}`` is ``1 + sum(depths[:i-1]) + j``, so any depth works
    (ResNet-50: 16 block ids, ResNet-101: 33); anything else is
    ``num_layers + 1``.

    Args:
        name: Parameter name relative to the backbone.
        num_layers: The ``num_layers`` in effect.
        depths: Blocks per stage (``stage_blocks``), e.g. ``[3, 4, 6, 3]``.

    Returns:
        int: The layer id.
    """
    return staged_id(name, num_layers, depths, _RESNET_STEM, _RESNET_LAYER)


def resnet_stage_id(name: str, num_layers: int,
                    depths: Sequence[int] = ()) -> int:
    """Stage id of a ResNet parameter: the stem is 0, ``layer{i}`` is ``i``.

    Args:
        name: Parameter name relative to the backbone.
        num_layers: The ``num_layers`` in effect.
        depths: Unused; part of the common rule signature.

    Returns:
        int: The stage id.
    """
    return staged_id(name, num_layers, depths, _RESNET_STEM, _RESNET_LAYER,
                     True)


RESNET = BackboneRules('ResNet', {
    'layer_wise': resnet_layer_id,
    'stage_wise': resnet_stage_id
}, per_block_min_num_layers)
