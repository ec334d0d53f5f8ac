"""Validation of ``paramwise_cfg.custom_keys``: a dict of name substring ->
entry, each entry's keys and values.

mmengine copies every key of an entry into the param groups of the
parameters it matches, so a misspelt key (``decay_multi``, the spelling of
mmpose's ViTPose configs) is never an error there: the group carries it
and nothing reads it. Here an entry's keys must be ``lr_mult``,
``decay_mult`` or a hyper-parameter of the configured optimizer's param
groups (its constructor's arguments: ``momentum`` for SGD, ``betas`` for
AdamW, ...). Torch-free.
"""
import inspect
from typing import Any, Collection, Dict, Mapping, Optional, Tuple

from ..errors import LayerDecayConfigError
from .values import check_mult, did_you_mean, is_real

#: The keys mmengine itself reads from an entry.
ENTRY_KEYS = ('lr_mult', 'decay_mult')


def optimizer_keys(optimizer_cls: Any) -> Optional[Tuple[str, ...]]:
    """The hyper-parameters an optimizer class keeps in its param groups:
    its constructor's arguments after the parameters.

    Args:
        optimizer_cls: The class (``torch.optim.AdamW``, ...), or anything
            else (a name the registry did not resolve).

    Returns:
        tuple[str] | None: The names; None when they cannot be read (the
        entries' keys are then not checked against the optimizer).
    """
    if not inspect.isclass(optimizer_cls):
        return None
    try:
        params = list(inspect.signature(optimizer_cls).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None  # takes any key
    return tuple(p.name for p in params[1:]
                 if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


def parse_custom_keys(value: Any,
                      hyper_parameters: Optional[Collection[str]] = None,
                      optimizer: str = 'the optimizer'
                      ) -> Dict[str, Mapping]:
    """Check ``paramwise_cfg.custom_keys``.

    Args:
        value: The ``custom_keys`` given.
        hyper_parameters: The optimizer's param-group keys
            (:func:`optimizer_keys`); None: entry keys other than
            :data:`ENTRY_KEYS` are not checked.
        optimizer: The optimizer's name, for messages.

    Returns:
        dict: The entries, unchanged.

    Raises:
        LayerDecayConfigError: For a custom_keys that is not a dict of
            dicts, an unknown entry key (with a "did you mean" and the
            valid keys) or a value that is not a number >= 0.
    """
    if not isinstance(value, Mapping):
        raise LayerDecayConfigError(
            f'paramwise_cfg.custom_keys={value!r} must be a dict of '
            "name substring -> dict(lr_mult=..., decay_mult=...).")
    valid = ENTRY_KEYS + tuple(k for k in hyper_parameters or ()
                               if k not in ENTRY_KEYS)
    for key, entry in value.items():
        where = f'paramwise_cfg.custom_keys[{key!r}]'
        if not isinstance(entry, Mapping):
            raise LayerDecayConfigError(
                f'{where}={entry!r} must be a dict such as '
                'dict(lr_mult=0.1, decay_mult=1.0).')
        for name, setting in entry.items():
            if hyper_parameters is not None and name not in valid:
                hint = did_you_mean(name, valid)
                raise LayerDecayConfigError(
                    f'{where} has unknown key {name!r} (value {setting!r}); '
                    f'{hint}an entry\'s keys are lr_mult, decay_mult or a '
                    f'hyper-parameter of {optimizer}\'s param groups: '
                    f'{", ".join(valid)}. mmengine would copy {name!r} into '
                    'the param groups, where nothing reads it.')
            if name in ENTRY_KEYS:
                check_mult(f'{where}.{name}', setting)
            elif is_real(setting) and setting < 0:
                raise LayerDecayConfigError(
                    f'{where}.{name}={setting!r} is invalid: a param-group '
                    'hyper-parameter must be >= 0.')
    return dict(value)
