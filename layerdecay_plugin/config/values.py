"""Checks of single values that several keys share. Torch-free."""
import difflib
import math
import numbers
from typing import Any, Iterable, Optional

from ..errors import LayerDecayConfigError


def is_real(value: Any) -> bool:
    """A real number, not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """``"did you mean 'x'? "`` for the choice closest to ``word``, or ``''``
    when none is close."""
    close = difflib.get_close_matches(str(word), list(choices), 1)
    return f'did you mean {close[0]!r}? ' if close else ''


def check_mult(where: str, value: Any) -> None:
    """A multiplier of the lr or weight decay: finite and >= 0.

    Raises:
        LayerDecayConfigError: Naming ``where`` and the value.
    """
    if not is_real(value) or not math.isfinite(value) or value < 0:
        raise LayerDecayConfigError(
            f'{where}={value!r} is invalid: it must be a finite number >= 0 '
            '(a multiplier of the lr or weight decay).')


def check_decay_rate(where: str, value: Any) -> float:
    """A per-layer lr decay factor (``decay_rate``, a tower's too): a
    finite number > 0.

    Raises:
        LayerDecayConfigError: Naming ``where`` and the value.
    """
    if not is_real(value) or not math.isfinite(value) or value <= 0:
        raise LayerDecayConfigError(
            f'{where}={value!r} is invalid: it must be a finite number > 0, '
            'typically 0.65-0.95 (values above 1 are allowed and give '
            'earlier layers a larger lr).')
    return float(value)


def check_num_layers(where: str, value: Any) -> Optional[int]:
    """``num_layers`` (a tower's too): a positive int, or None to infer it.

    Raises:
        LayerDecayConfigError: Naming ``where`` and the value.
    """
    if value is not None and (not isinstance(value, int)
                              or isinstance(value, bool) or value < 1):
        raise LayerDecayConfigError(
            f'{where}={value!r} is invalid: it must be a positive int (e.g. '
            '6 for ConvNeXt-T, 12 for ConvNeXt-S/B/L/XL with layer_wise), or '
            'leave it out to infer it from the backbone.')
    return value
