"""``custom_keys`` checked against the whole model: a key that matches no
parameter name at all is most likely a typo (warning); one that matches only
frozen parameters, or that names a token or position table this backbone
variant lacks (mmdet's Swin configs list ``absolute_pos_embed`` for every
variant), does nothing but is not a mistake (info). An entry without
``decay_mult`` that matches parameters layer decay keeps without weight
decay gives it back to them (warning).
"""
import difflib
import logging
from typing import (Collection, Dict, Iterable, List, Mapping, Optional,
                    Sequence, Tuple)

from mmengine.logging import print_log

from ..messages import warn_in_config
from ..rules import NO_DECAY_NAMES, is_no_decay


def check_custom_keys(custom_keys: Iterable[str],
                      all_names: Collection[str],
                      trainable_names: Collection[str]) -> None:
    """Warn about ``custom_keys`` entries that match no parameter at all.

    mmengine applies ``custom_keys[key]`` to every parameter whose full name
    contains ``key``. A key matching a trainable parameter is fine and
    silent; one matching only frozen parameters, or a standard token /
    position-table name (``no_decay_names``' defaults) absent from this
    model, is logged as info; any other key gets a ``UserWarning`` with
    close parameter-name components as suggestions.

    Args:
        custom_keys: The keys of ``paramwise_cfg.custom_keys``.
        all_names: Names of all the model's parameters, frozen included.
        trainable_names: Names of the parameters that are trained.
    """
    for key in custom_keys:
        if any(key in n for n in trainable_names):
            continue
        where = f'optim_wrapper.paramwise_cfg.custom_keys[{key!r}]'
        frozen = [n for n in all_names if key in n]
        if frozen:
            print_log(
                f'{where} matches only parameters that are not trained '
                f'({len(frozen)}, e.g. {frozen[0]}: frozen or '
                'requires_grad=False); it changes nothing.',
                logger='current', level=logging.INFO)
        elif key in NO_DECAY_NAMES:
            print_log(
                f'{where}: this model has no {key!r} parameter (a standard '
                'token / position-table name that configs list for the '
                'backbone variants that have one); it changes nothing.',
                logger='current', level=logging.INFO)
        else:
            hints = difflib.get_close_matches(
                key, _name_parts(all_names), n=3, cutoff=0.6)
            hint = (f' Did you mean {" or ".join(map(repr, hints))}?'
                    if hints else '')
            warn_in_config(
                f'{where} matches no trainable or frozen parameter name of '
                f'the model, so it changes nothing.{hint} Parameter '
                'names look like '
                f'{next(iter(all_names), "?")!r}; a key matches every name '
                'that contains it.', key)


def _name_parts(names: Iterable[str]) -> Tuple[str, ...]:
    # Candidate keys: the dotted components and the name prefixes, e.g.
    # 'norm', 'backbone.stages'.
    parts = set()
    for name in names:
        pieces = name.split('.')
        parts.update(pieces)
        parts.update('.'.join(pieces[:i]) for i in range(1, len(pieces)))
    return tuple(sorted(parts))


def winning_key(name: str, sorted_keys: Sequence[str]) -> Optional[str]:
    """The ``custom_keys`` entry mmengine applies to a parameter: the
    longest key (ties: alphabetical) contained in its full name."""
    return next((key for key in sorted_keys if key in name), None)


def check_decay_given_back(custom_keys: Mapping[str, Mapping],
                           params: Iterable[Tuple[str, int]],
                           no_decay_names: Sequence[str],
                           base_wd: Optional[float],
                           no_decay_params: Collection[str] = ()) -> None:
    """Warn about entries that give weight decay back.

    mmengine gives every parameter an entry matches ``weight_decay *
    decay_mult``, ``decay_mult`` defaulting to 1, so an entry meant to set
    an lr (``dict(lr_mult=0.1)``) turns weight decay back on for the 1-D
    parameters, biases and ``no_decay_names`` it matches, which layer decay
    otherwise gives 0 (mmengine issue 846). An entry with ``decay_mult``
    set, 1 included, says what it means and is silent.

    Args:
        custom_keys: ``paramwise_cfg.custom_keys``.
        params: ``(full name, ndim)`` of the trainable parameters.
        no_decay_names: ``paramwise_cfg.no_decay_names``.
        base_wd: The optimizer's weight decay.
        no_decay_params: Full names the backbone declares without weight
            decay (``no_weight_decay()``; ``paramwise_cfg.model_no_decay``).
    """
    if not base_wd or not custom_keys:
        return
    sorted_keys = sorted(sorted(custom_keys), key=len, reverse=True)
    given_back: Dict[str, List[str]] = {}
    for name, ndim in params:
        key = winning_key(name, sorted_keys)
        if key is not None and 'decay_mult' not in custom_keys[key] and (
                is_no_decay(name, ndim, no_decay_names)
                or name in no_decay_params):
            given_back.setdefault(key, []).append(name)
    for key, names in given_back.items():
        warn_in_config(
            f'optim_wrapper.paramwise_cfg.custom_keys[{key!r}] sets no '
            f'decay_mult, so mmengine gives the {len(names)} parameter(s) '
            'it matches that layer decay keeps without weight decay (1-D '
            'parameters, biases, no_decay_names, names the backbone '
            'declares) weight_decay='
            f'{base_wd:g} again, e.g. {names[0]!r}. To keep them without '
            'weight decay, give them a more specific entry with decay_mult='
            '0. (mmengine applies the longest key a name contains, e.g. '
            f"custom_keys[{names[0].rpartition('.')[0]!r}]=dict("
            f"lr_mult={custom_keys[key].get('lr_mult', 1.)!r}, "
            'decay_mult=0.)); to decay them deliberately, set decay_mult=1. '
            'in this entry (which silences this '
            'warning).', key)
