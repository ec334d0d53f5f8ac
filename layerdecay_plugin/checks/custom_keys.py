"""``custom_keys`` checked against the whole model: a key that matches no
parameter name at all is most likely a typo (warning); one that matches only
frozen parameters, or that names a token or position table this backbone
variant lacks (mmdet's Swin configs list ``absolute_pos_embed`` for every
variant), does nothing but is not a mistake (info).
"""
import difflib
import logging
from typing import Collection, Iterable, Tuple

from mmengine.logging import print_log

from ..messages import warn_in_config
from ..rules import NO_DECAY_NAMES


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
