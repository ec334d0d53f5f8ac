"""What every family's rules share: the rule signature, the family record,
the lr scale and the default no-weight-decay test.

Every rule has the signature ``rule(name, num_layers, depths) -> id`` where
``name`` is relative to the backbone (``stages.2.4.gamma``, not
``backbone.stages.2.4.gamma``) and ``depths`` is the family's description of
the backbone read from the module (blocks per stage for most families; each
family module says what it reads). Ids follow mmdet's
``LearningRateDecayOptimizerConstructor``: backbone ids run from 0 (stem) to
``num_layers``; everything outside the backbone, plus backbone parameters no
rule claims (e.g. out norms added for detection), gets ``num_layers + 1``
(lr scale 1).

Torch-free: plain names and numbers in, ids out.
"""
from typing import (Any, Callable, Dict, NamedTuple, Optional, Pattern,
                    Sequence, Tuple)

DECAY_TYPES = ('layer_wise', 'stage_wise')

#: Backbone-level embeddings that mmdet puts at layer 0.
TOKEN_NAMES = ('cls_token', 'mask_token', 'pos_embed')

#: Parameters that get no weight decay by default besides 1-D ones and biases:
#: embeddings and position tables (matched on the last name component).
NO_DECAY_NAMES = ('cls_token', 'mask_token', 'dist_token', 'reg_token',
                  'register_tokens', 'storage_tokens', 'pos_embed',
                  'absolute_pos_embed', 'relative_position_bias_table',
                  'rel_pos_h', 'rel_pos_w')

#: Register tokens (timm's ``reg_token``, DINOv2's ``register_tokens``,
#: DINOv3's ``storage_tokens``): stem id 0 whatever the backbone's rules
#: say (:func:`with_stem_tokens`); some rules know only ``cls_token``.
STEM_TOKENS = ('reg_token', 'register_tokens', 'storage_tokens')

#: A compiled ``(regex, id)`` rule of ``paramwise_cfg.rules`` (see
#: :mod:`layerdecay_plugin.config.rules_key`).
Matcher = Tuple[Pattern, Any]

#: ``rule(relative_name, num_layers, depths) -> id``
IdRule = Callable[[str, int, Sequence[int]], int]


class BackboneRules(NamedTuple):
    """The id rules of one backbone family.

    Attributes:
        name: Human-readable family name, used in messages and reports.
        ids: ``decay_type -> rule``; a family may lack ``stage_wise``.
        min_num_layers: ``(depths, decay_type) -> smallest valid num_layers``;
            below it some backbone id would reach the head's id or exceed
            ``num_layers`` (lr scale above the head's).
    """
    name: str
    ids: Dict[str, IdRule]
    min_num_layers: Callable[[Sequence[int], str], int]


def _part(name: str, index: int) -> int:
    return int(name.split('.')[index])


def block_id(stage: int, block: int, depths: Sequence[int]) -> int:
    """Layer id of block ``block`` of stage ``stage`` (both from 0) when
    every block gets its own id after a stem at 0:
    ``1 + sum(depths[:stage]) + block``.

    Args:
        stage: Stage index, counted from 0.
        block: Block index in its stage, counted from 0.
        depths: Blocks per stage.

    Returns:
        int: The layer id.
    """
    return 1 + sum(depths[:stage]) + block


def stage_of_block(index: int, depths: Sequence[int]) -> int:
    """Stage (from 0) of the ``index``-th block of a flat block list.

    Args:
        index: Block index over the whole backbone, from 0.
        depths: Blocks per stage; blocks past their sum belong to the last
            stage.

    Returns:
        int: The stage index.
    """
    end = 0
    for stage, depth in enumerate(depths):
        end += depth
        if index < end:
            return stage
    return max(len(depths) - 1, 0)


def per_block_min_num_layers(depths: Sequence[int], decay_type: str) -> int:
    """Backbones with one id per block (Swin, ViT, ResNet, ...): the block
    count for ``layer_wise``, the stage count for ``stage_wise``.

    Args:
        depths: Blocks per stage.
        decay_type: ``'layer_wise'`` or ``'stage_wise'``.

    Returns:
        int: The minimum valid ``num_layers``.
    """
    return sum(depths) if decay_type == 'layer_wise' else len(depths)


def layer_scale(decay_rate: float, num_layers: int, layer_id: int) -> float:
    """lr multiplier of a layer id, exactly as mmdet computes it.

    Args:
        decay_rate: Per-layer decay factor.
        num_layers: The ``num_layers`` in effect.
        layer_id: Id from a rule, in ``[0, num_layers + 1]``.

    Returns:
        float: ``decay_rate ** (num_layers + 1 - layer_id)``.
    """
    # Written as mmdet writes it so the floats are bit-identical.
    return decay_rate**(num_layers + 2 - layer_id - 1)


def effective_scale(decay_rate: float, num_layers: int, layer_id: int,
                    min_lr_scale: Optional[float] = None) -> float:
    """:func:`layer_scale`, raised to ``min_lr_scale`` where below it
    (``paramwise_cfg.min_lr_scale``; None: no floor)."""
    scale = layer_scale(decay_rate, num_layers, layer_id)
    return scale if min_lr_scale is None else max(scale, min_lr_scale)


def with_stem_tokens(rule: IdRule) -> IdRule:
    """``rule``, with the register tokens of :data:`STEM_TOKENS` (as a
    name's last component) at the stem's id 0, as ``cls_token``."""

    def stem_tokens_first(name: str, num_layers: int,
                          depths: Sequence[int]) -> int:
        if name.rsplit('.', 1)[-1] in STEM_TOKENS:
            return 0
        return rule(name, num_layers, depths)

    return stem_tokens_first


def is_no_decay(name: str, ndim: int,
                no_decay_names: Sequence[str] = NO_DECAY_NAMES) -> bool:
    """Whether a parameter gets weight decay 0 by default.

    Args:
        name: Full parameter name in the model.
        ndim: Number of dimensions of the parameter.
        no_decay_names: Last name components that never decay (tokens and
            position tables by default; ``()`` gives mmdet's exact rule).

    Returns:
        bool: True for 1-D parameters, biases, mmdet's top-level
        ``pos_embed``/``cls_token`` and ``no_decay_names``.
    """
    return (ndim == 1 or name.endswith('.bias')
            or name in ('pos_embed', 'cls_token')
            or name.rsplit('.', 1)[-1] in no_decay_names)
