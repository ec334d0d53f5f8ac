"""The torch-free half of ``rules='auto'``: its config value and how blocks
recorded in forward order become layer ids.

``layerdecay_plugin.auto`` runs the backbone once on a dummy input, finds its
blocks and records the order in which parameter-owning modules first run;
:func:`ids_from_order` turns that order into ids:

- everything that runs before the first block is the stem: id 0;
- blocks get consecutive ids in the order they first run (from 1 after a
  stem, else from 0);
- a parameter outside every block (a downsample layer, a transition, a
  final norm) gets the id of the next block to run, or the last block's id
  when no block runs after it;
- the last block's id is the inferred ``num_layers``.

Ids therefore never decrease along the forward pass.
"""
# typing's generics, not collections.abc's: those are subscriptable only
# from Python 3.9, and the package supports 3.8.
from typing import (Any, Dict, List, Mapping, NamedTuple, Optional, Sequence,
                    Tuple)

from ..errors import LayerDecayConfigError

AUTO = 'auto'

#: Default dummy input: one 224 px RGB image, the size classification
#: backbones are built for (windowed attention and fixed position tables
#: accept it).
DEFAULT_INPUT_SHAPE = (1, 3, 224, 224)

_EXAMPLE = "rules=dict(type='auto', input_shape=(1, 3, 224, 224))"


class AutoRules(NamedTuple):
    """``paramwise_cfg.rules='auto'``, validated.

    Attributes:
        input_shape: Shape of the dummy input the backbone runs on once.
    """
    input_shape: Tuple[int, ...] = DEFAULT_INPUT_SHAPE


def parse_auto_rules(value: Any, decay_type: str) -> Optional[AutoRules]:
    """Recognise and check ``rules='auto'`` or ``rules=dict(type='auto',
    input_shape=...)``.

    Args:
        value: ``paramwise_cfg.rules``.
        decay_type: ``paramwise_cfg.decay_type``.

    Returns:
        AutoRules or None: None when ``value`` does not ask for auto rules.

    Raises:
        LayerDecayConfigError: For an invalid input shape, an unknown key,
            or ``decay_type='stage_wise'`` (auto rules know blocks, not
            stages).
    """
    if isinstance(value, str) and value == AUTO:
        spec: Mapping = {}
    elif isinstance(value, Mapping) and value.get('type') == AUTO:
        spec = value
    else:
        return None
    unknown = sorted(set(spec) - {'type', 'input_shape'})
    if unknown:
        raise LayerDecayConfigError(
            f'paramwise_cfg.rules has unknown key(s) {unknown} for auto '
            f"rules; the keys are 'type' and 'input_shape', e.g. "
            f'{_EXAMPLE}.')
    shape = spec.get('input_shape', DEFAULT_INPUT_SHAPE)
    if not isinstance(shape, Sequence) or isinstance(shape, str) \
            or len(shape) < 3 or not all(
                isinstance(s, int) and not isinstance(s, bool) and s > 0
                for s in shape):
        raise LayerDecayConfigError(
            f'paramwise_cfg.rules input_shape={shape!r} is invalid: give '
            'the dummy input shape as positive ints (batch, channels, '
            f'height, width), e.g. {_EXAMPLE}.')
    if decay_type != 'layer_wise':
        raise LayerDecayConfigError(
            f"paramwise_cfg.rules='auto' with decay_type={decay_type!r}: "
            'auto rules give one id per block in forward order and know no '
            "stages; use decay_type='layer_wise', or a built-in family's "
            'rules for stage_wise.')
    return AutoRules(tuple(shape))


def ids_from_order(
        owners: Sequence[Tuple[Sequence[str], bool]]) -> Dict[str, int]:
    """Layer ids from parameter owners listed in forward order.

    Args:
        owners: ``(parameter names, is_block)`` per owner, in the order the
            owners first run: a block with all its parameters, or a module
            outside every block with its own. With no block at all, every
            owner counts as one.

    Returns:
        dict: Parameter name -> layer id; the largest id is the last
        block's, the inferred ``num_layers``.
    """
    if not owners:
        return {}
    if not any(is_block for _, is_block in owners):
        owners = [(names, True) for names, _ in owners]
    first = next(i for i, (_, is_block) in enumerate(owners) if is_block)
    block_ids: List[Optional[int]] = []
    next_id = 1 if first > 0 else 0
    for _, is_block in owners:
        block_ids.append(next_id if is_block else None)
        next_id += is_block
    ids: Dict[str, int] = {}
    following = next_id - 1  # the last block's id
    # Walk backwards so that an owner outside the blocks takes the id of the
    # next block to run (or the last block's when none follows).
    for index in range(len(owners) - 1, -1, -1):
        names, _ = owners[index]
        if block_ids[index] is not None:
            following = block_ids[index]
        layer = 0 if index < first else following
        ids.update((name, layer) for name in names)
    return ids
