"""ConvNeXt (mmpretrain, V1 and V2): mmdet's own layer and stage ids.

mmpretrain's names: ``downsample_layers.i.*``, ``stages.i.j.*``, out norms
``norm{i}``.

Ids (``layer_wise`` / ``stage_wise``):

- tokens, ``pos_embed``: 0 / 0
- ``downsample_layers.0`` (stem): 0 / 0
- ``stages.0.*``: 1 / 1
- ``downsample_layers.1``: 2 / 0
- ``stages.1.*``: 2 / 2
- ``downsample_layers.2``: 3 / 0
- ``stages.2.j.*``: ``3 + j // 3`` / 3
- ``downsample_layers.3``: ``N`` / 0
- ``stages.3.*``: ``N`` / 4
- out norms ``norm{i}``: ``N + 1`` / ``N + 1``
"""
from typing import Sequence

from .common import TOKEN_NAMES, BackboneRules, _part


def _check_stage(name: str, stage: int) -> int:
    if not 0 <= stage <= 3:
        raise ValueError(f'ConvNeXt rules know stages 0-3; parameter '
                         f'{name!r} is in stage {stage}')
    return stage


def convnext_layer_id(name: str, num_layers: int,
                      depths: Sequence[int] = ()) -> int:
    """Layer id of a ConvNeXt parameter for ``layer_wise`` decay.

    Same mapping as mmdet's ``get_layer_id_for_convnext``: the stem is 0,
    stage 0 is 1, stage 1 (with its downsample) is 2, stage 2 blocks are
    grouped three at a time from 3, stage 3 (with its downsample) is
    ``num_layers``, anything else (out norms) is ``num_layers + 1``.

    A rule (:data:`~layerdecay_plugin.rules.common.IdRule`) on names such
    as ``'stages.2.4.depthwise_conv.weight'``; ``depths`` unused.

    Raises:
        ValueError: For a stage index outside 0-3 (mmdet's rule only knows
            four-stage ConvNeXts).
    """
    if name in TOKEN_NAMES:
        return 0
    if name.startswith('downsample_layers.'):
        stage = _check_stage(name, _part(name, 1))
        return (0, 2, 3, num_layers)[stage]
    if name.startswith('stages.'):
        stage = _check_stage(name, _part(name, 1))
        if stage == 2:
            return 3 + _part(name, 2) // 3
        return (1, 2, None, num_layers)[stage]
    return num_layers + 1


def convnext_stage_id(name: str, num_layers: int,
                      depths: Sequence[int] = ()) -> int:
    """Stage id of a ConvNeXt parameter for ``stage_wise`` decay.

    Same mapping as mmdet's ``get_stage_id_for_convnext``: tokens and all
    downsample layers are 0, stage ``i`` is ``i + 1``, anything else is
    ``num_layers + 1``.

    A rule (:data:`~layerdecay_plugin.rules.common.IdRule`); ``depths``
    unused.
    """
    if name in TOKEN_NAMES or name.startswith('downsample_layers.'):
        return 0
    if name.startswith('stages.'):
        return _part(name, 1) + 1
    return num_layers + 1


def convnext_min_num_layers(depths: Sequence[int], decay_type: str) -> int:
    """Smallest ``num_layers`` that keeps every ConvNeXt id below the head's.

    ``layer_wise``: stage 2's last block has id ``3 + (depths[2] - 1) // 3``
    and must stay below stage 3's ``num_layers``, so ConvNeXt-T (depth 9)
    needs 6 and ConvNeXt-S/B/L/XL (depth 27) need 12, the values of mmdet's
    configs. ``stage_wise``: one id per stage, so 4.

    Args:
        depths: Blocks per stage, e.g. ``[3, 3, 9, 3]``.
        decay_type: ``'layer_wise'`` or ``'stage_wise'``.

    Returns:
        int: The minimum valid ``num_layers``.
    """
    if len(depths) != 4:
        raise ValueError(
            f'ConvNeXt rules need 4 stages, got depths={list(depths)}')
    if decay_type == 'layer_wise':
        return 4 + (depths[2] - 1) // 3
    return len(depths)


CONVNEXT = BackboneRules(
    'ConvNeXt', {
        'layer_wise': convnext_layer_id,
        'stage_wise': convnext_stage_id
    }, convnext_min_num_layers)
