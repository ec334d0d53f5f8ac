"""Checks of single values that several keys share. Torch-free."""
import math
import numbers
from typing import Any

from ..errors import LayerDecayConfigError


def is_real(value: Any) -> bool:
    """A real number, not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_mult(where: str, value: Any) -> None:
    """A multiplier of the lr or weight decay: finite and >= 0.

    Raises:
        LayerDecayConfigError: Naming ``where`` and the value.
    """
    if not is_real(value) or not math.isfinite(value) or value < 0:
        raise LayerDecayConfigError(
            f'{where}={value!r} is invalid: it must be a finite number >= 0 '
            '(a multiplier of the lr or weight decay).')
