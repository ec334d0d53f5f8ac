"""Layer ids that hold only frozen parameters: no group has them, so the
group table skips them; the note under it says which and why. Torch-free.
"""
from typing import Any, Iterable, List, Tuple

#: ``(layer id, trainable)`` of one backbone parameter.
IdOfParam = Tuple[int, bool]


def id_ranges(ids: Iterable[int]) -> str:
    """Sorted ids as ranges: ``[0, 1, 2, 3, 5]`` -> ``'0-3, 5'``."""
    spans: List[List[int]] = []
    for i in sorted(set(ids)):
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ', '.join(f'{a}-{b}' if b > a else str(a) for a, b in spans)


def frozen_ids(params: Iterable[IdOfParam]) -> List[int]:
    """The ids whose parameters are all frozen (``requires_grad=False``).

    Args:
        params: ``(layer id, trainable)`` of every backbone parameter,
            frozen ones included.

    Returns:
        list[int]: Sorted ids with a parameter and no trainable one.
    """
    frozen, trainable = set(), set()
    for layer_id, is_trainable in params:
        (trainable if is_trainable else frozen).add(layer_id)
    return sorted(frozen - trainable)


def frozen_note(params: Iterable[IdOfParam], frozen_stages: Any = None,
                owner: str = 'backbone') -> str:
    """The note under the group table about ids with no trainable parameter.

    Args:
        params: ``(layer id, trainable)`` of every backbone parameter.
        frozen_stages: The backbone's ``frozen_stages``, where it has that
            attribute (mmdet's ResNet, Swin, ...), else None.
        owner: Where the backbone is in the model, for the note.

    Returns:
        str: e.g. ``'layer ids 0-3 frozen (backbone.frozen_stages=1): no
        trainable parameter, so no group'``; empty when every id holding
        parameters has a trainable one.
    """
    ids = frozen_ids(params)
    if not ids:
        return ''
    why = ('' if frozen_stages is None else
           f' ({owner}.frozen_stages={frozen_stages})')
    noun = 'layer ids' if len(ids) > 1 else 'layer id'
    return (f'{noun} {id_ranges(ids)} frozen{why}: no trainable parameter, '
            'so no group')
