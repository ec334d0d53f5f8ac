"""Groups of one layer that the optimizer treats alike (same lr, weight
decay and every optimizer key) but that have different names: kept apart,
not merged (docs/inspect.md), and the note under the group table says why.
Torch-free.
"""
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .custom_keys import winning_key

#: mmengine's ``custom_keys`` factors: already applied to a group's lr and
#: weight decay, copied into the group, and read by no optimizer.
BOOKKEEPING_KEYS = ('lr_mult', 'decay_mult')


def _options(extra: Mapping[str, Any], bookkeeping: bool) -> Dict[str, Any]:
    return {k: v for k, v in extra.items()
            if (k in BOOKKEEPING_KEYS) == bookkeeping}


def _show(options: Mapping[str, Any]) -> str:
    return ', '.join(f'{k}={v:g}' if isinstance(v, float) else f'{k}={v}'
                     for k, v in sorted(options.items())) or 'none'


def twin_pairs(groups: Sequence[Mapping[str, Any]]
               ) -> List[Tuple[Mapping, Mapping]]:
    """Pairs of groups with the same layer id, lr, weight decay and
    optimizer keys, which differ in name (and ``lr_mult``/``decay_mult``).

    Args:
        groups: Group data: ``group_name``, ``layer_id`` (None: not a layer
            group, skipped), ``lr``, ``weight_decay``, ``extra`` (the
            group's other keys) and, where known, ``param_names``.

    Returns:
        list[tuple]: ``(first, second)`` by layer id; the first of each
        set is its group with the fewest extra keys (the layer's own).
    """
    sets: Dict[tuple, List[Mapping]] = {}
    for group in groups:
        if group.get('layer_id') is None:
            continue
        keys = tuple(sorted((k, repr(v)) for k, v in _options(
            group.get('extra') or {}, bookkeeping=False).items()))
        sets.setdefault((group['layer_id'], group['lr'],
                         group['weight_decay'], keys), []).append(group)
    pairs = []
    for _, members in sorted(sets.items(), key=lambda kv: kv[0][0]):
        first = min(members, key=lambda g: len(g.get('extra') or {}))
        pairs += [(first, g) for g in members if g is not first]
    return pairs


def twin_note(groups: Sequence[Mapping[str, Any]],
              custom_keys: Optional[Mapping[str, Any]] = None) -> str:
    """Why groups that look alike to the optimizer are kept apart.

    Merging them would be possible (one step does the same) but would
    change the number and order of the optimizer's groups, which its saved
    state stores by position: checkpoints of earlier runs would no longer
    load, and mmdet's ConvNeXt groups would no longer be its constructor's.

    Args:
        groups: Group data as :func:`twin_pairs` reads it.
        custom_keys: ``paramwise_cfg.custom_keys``, to name the entries
            that matched (with the groups' ``param_names``); None: the note
            names none.

    Returns:
        str: One note for all pairs; empty without any.
    """
    pairs = twin_pairs(groups)
    if not pairs:
        return ''
    first, second = pairs[0]
    more = len(pairs) - 1
    names = f"{first['group_name']} and {second['group_name']}"
    if more:
        names += f" (and {more} more pair{'s' if more > 1 else ''})"
    gave = sorted({_show(_options(b.get('extra') or {}, True))
                   for _, b in pairs})
    own = sorted({_show(_options(a.get('extra') or {}, True))
                  for a, _ in pairs})
    entries = 'a custom_keys entry'
    if custom_keys:
        order = sorted(sorted(custom_keys), key=len, reverse=True)
        matched = sorted({winning_key(n, order) for _, b in pairs
                          for n in b.get('param_names') or ()} - {None})
        if matched:
            entries = ' and '.join(f'custom_keys[{k!r}]' for k in matched)
    why = (f"{entries} matched the second's parameters and gave them "
           f"{' / '.join(gave)}")
    if own != ['none']:
        why += f" (the first's: {' / '.join(own)})"
    return (f'{names} have the same lr and weight decay: kept apart because '
            f'{why}, which the group name records. Merging them would '
            "change the optimizer state's group order, which checkpoints "
            'rely on.')
