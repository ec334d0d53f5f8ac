"""The lr schedule checked against the layer groups: an absolute floor or
target (``eta_min``, ``min_value``, ``eta_max``) is the same lr for every
group, so it pulls the decayed layers toward one value.

mmengine's lr schedulers with an absolute value (their ``*ParamScheduler``
forms with ``param_name='lr'`` too):

- ``CosineAnnealingLR`` and ``CosineRestartLR``: ``eta_min`` (their
  ``eta_min_ratio`` is relative to each group's lr: the fix);
- ``PolyLR``: ``eta_min`` (no ratio form);
- ``ReduceOnPlateauLR``: ``min_value`` (a list gives one per group);
- ``OneCycleLR``: ``eta_max`` (a list gives one per group); its start is
  ``eta_max / div_factor``, its end that over ``final_div_factor``.

A floor at or above a layer's starting lr makes that layer's lr rise or
stay flat while the others anneal: a warning, not an error, since such a
run still trains and mmengine accepts it (an error would refuse configs
that work as their authors meant, e.g. a floor just above a frozen stem's
lr). A floor that shrinks the ratio between the stem's and the head's lr
at the end of the schedule by more than :data:`MAX_SHRINK` is an info line,
unless it is below :data:`NEGLIGIBLE` of the stem's starting lr.
Torch-free; :func:`report_schedule` logs what :func:`check_schedule`
finds.
"""
import logging
import math
import warnings
from typing import (Any, Dict, Iterable, List, Mapping, NamedTuple, Optional,
                    Sequence, Tuple)

from mmengine.logging import print_log

#: How much a floor may shrink the stem-to-head lr ratio at the end of the
#: schedule before it is mentioned.
MAX_SHRINK = 2.
#: A floor below this share of the stem's starting lr is taken as 0: every
#: layer's lr is then near 0 when the floor starts to count.
NEGLIGIBLE = 0.01

#: scheduler type -> its absolute key, and its relative form (if any).
ABSOLUTE_KEYS = {
    'CosineAnnealing': ('eta_min', 'eta_min_ratio'),
    'CosineRestart': ('eta_min', 'eta_min_ratio'),
    'Poly': ('eta_min', None),
    'ReduceOnPlateau': ('min_value', None),
    'OneCycle': ('eta_max', None),
}


class Note(NamedTuple):
    """One finding: ``level`` is ``'warning'`` or ``'info'``."""
    level: str
    text: str


def _family(scheduler_type: Any) -> str:
    """``'CosineAnnealingLR'`` / ``'CosineAnnealingParamScheduler'`` ->
    ``'CosineAnnealing'``; ``''`` for others."""
    name = getattr(scheduler_type, '__name__', str(scheduler_type))
    for suffix in ('LR', 'ParamScheduler'):
        if name.endswith(suffix):
            name = name[:-len(suffix)]
    return name if name in ABSOLUTE_KEYS else ''


def _schedulers(param_scheduler: Any) -> List[Mapping]:
    if isinstance(param_scheduler, Mapping):
        return [param_scheduler]
    if isinstance(param_scheduler, Sequence) and \
            not isinstance(param_scheduler, str):
        return [s for s in param_scheduler if isinstance(s, Mapping)]
    return []


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _ids(ids: Sequence[int]) -> str:
    ids = sorted(ids)
    if len(ids) > 2 and ids == list(range(ids[0], ids[-1] + 1)):
        return f'{ids[0]}-{ids[-1]}'
    return ', '.join(map(str, ids))


def check_schedule(param_scheduler: Any, layers: Sequence[Tuple[int, float]],
                   base_lr: float, tower: str = '') -> List[Note]:
    """What the schedule's absolute values do to the layers' lrs.

    Args:
        param_scheduler: The config's ``param_scheduler`` (a dict or a
            list of dicts; ``None`` when there is none).
        layers: ``(layer id, starting lr)`` of each layer, stem first,
            the head's (highest id) last.
        base_lr: The optimizer's ``lr``.
        tower: The tower whose layers these are, named in the notes
            (``''``: the first tower, or the one backbone).

    Returns:
        list[Note]: Warnings for floors at or above a layer's starting lr,
        info lines for floors that flatten the decay; empty when the
        schedule keeps every ratio.
    """
    notes: List[Note] = []
    if len(layers) < 2:
        return notes
    layers = sorted(layers)
    layer = f'tower {tower!r} layer' if tower else 'layer'
    stem_lr, head_lr = layers[0][1], layers[-1][1]
    for index, scheduler in enumerate(_schedulers(param_scheduler)):
        family = _family(scheduler.get('type'))
        if not family or scheduler.get('param_name', 'lr') != 'lr':
            continue
        key, ratio_key = ABSOLUTE_KEYS[family]
        value = scheduler.get(key)
        if not _number(value) or value <= 0:
            continue  # unset, 0, or a list (one per group): no common value
        where = (f'param_scheduler[{index}] {scheduler["type"]}'
                 f'({key}={value:g})')
        if family == 'OneCycle':
            notes.append(_one_cycle(where, value, layers, layer))
            continue
        fix = (f'use {ratio_key}={value / base_lr:.3g} instead (the same '
               f'floor for an lr of {base_lr:g}, relative to each layer\'s '
               'lr)' if ratio_key else
               f'lower {key} to under {NEGLIGIBLE:.0%} of the lowest '
               f'layer\'s starting lr ({stem_lr:.3g}), e.g. {key}=0')
        above = [i for i, lr in layers if value >= lr]
        if above:
            notes.append(Note('warning', (
                f'layer decay: {where} is an absolute floor at or above the '
                f'starting lr of {layer}(s) {_ids(above)} ({layer} '
                f'{layers[0][0]} starts at {stem_lr:.3g}): their lr would '
                'rise or stay flat while the others anneal, and the decay '
                f'between them is lost. Fix: {fix}.')))
            continue
        # At the end every group is at the floor (below its start): the
        # stem-to-head ratio goes from stem_lr / head_lr to 1.
        shrink = head_lr / stem_lr
        if shrink > MAX_SHRINK and value >= NEGLIGIBLE * stem_lr:
            notes.append(Note('info', (
                f'layer decay: {where} is an absolute floor: every layer '
                f'ends at {value:.3g}, so the stem-to-head lr ratio goes '
                f'from {stem_lr / head_lr:.3g} at the start to 1 at the end '
                f'of the schedule ({shrink:.3g}x flatter) and the shallow '
                'layers\' lr barely falls. To keep each layer\'s ratio, '
                f'{fix}.')))
    return notes


def _one_cycle(where: str, value: float,
               layers: Sequence[Tuple[int, float]], layer: str) -> Note:
    return Note('warning', (
        f'layer decay: {where} sets every group\'s lr from one absolute '
        f'eta_max ({value:g}), ignoring each layer\'s decayed lr: {layer}s '
        f'{_ids([i for i, _ in layers])} all train at the same lr. Fix: '
        'give eta_max as a list with one value per param group (each '
        'layer\'s lr times the peak factor), or use another schedule.'))


def check_towers_schedule(param_scheduler: Any,
                          groups: Iterable[Tuple[str, Optional[int], float]],
                          base_lr: float) -> List[Note]:
    """:func:`check_schedule` on each tower's layers, their lrs before any
    option (``base_lr`` times the lr scale).

    Args:
        param_scheduler: The config's ``param_scheduler``.
        groups: ``(tower, layer id, lr scale)`` of each group (tower
            ``''``: the first, whose ids hold the head's; layer id None: a
            group not named by layer, skipped).
        base_lr: The optimizer's ``lr``.

    Returns:
        list[Note]: The notes of every tower, the first tower's first. A
        tower other than the first is checked against the head's lr (scale
        1), after its last layer.
    """
    towers: Dict[str, Dict[int, float]] = {}
    for tower, layer_id, scale in groups:
        if layer_id is not None:
            towers.setdefault(tower, {}).setdefault(layer_id,
                                                    scale * base_lr)
    notes: List[Note] = []
    for tower in sorted(towers):  # '' first
        lrs = towers[tower]
        if tower:
            lrs.setdefault(max(lrs) + 1, base_lr)
        notes += check_schedule(param_scheduler, sorted(lrs.items()),
                                base_lr, tower)
    return notes


def report_schedule(param_scheduler: Any,
                    groups: Iterable[Tuple[str, Optional[int], float]],
                    base_lr: float) -> List[Note]:
    """:func:`check_towers_schedule`, its warnings as ``UserWarning`` s
    and its info lines in the log.

    Args:
        param_scheduler: The config's ``param_scheduler`` (None: nothing
            to check, as outside a runner).
        groups: ``(tower, layer id, lr scale)`` of each group.
        base_lr: The optimizer's ``lr``.

    Returns:
        list[Note]: What was reported.
    """
    notes = check_towers_schedule(param_scheduler, groups, base_lr)
    for note in notes:
        if note.level == 'warning':
            warnings.warn(note.text, UserWarning, stacklevel=2)
            print_log(note.text, logger='current', level=logging.WARNING)
        else:
            print_log(note.text, logger='current', level=logging.INFO)
    return notes
