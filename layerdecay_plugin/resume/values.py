"""How the resume guard compares and shows the values it reports: numbers
equal up to rounding, ``None`` shown as ``not set``. Torch-free."""
import math
from typing import Any


def is_number(value: Any) -> bool:
    """Whether ``value`` is an int or a float (not a bool).

    Args:
        value: Any value.

    Returns:
        bool: True for a number.
    """
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def same_value(a: Any, b: Any) -> bool:
    """Whether two values are the same setting: numbers up to rounding
    (relative tolerance 1e-9), anything else by ``==``.

    Args:
        a: One value.
        b: The other.

    Returns:
        bool: True when they are the same.
    """
    if is_number(a) and is_number(b):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.)
    return a == b


def show_value(value: Any) -> str:
    """A value as a message shows it: ``not set`` for None, ``%g`` for a
    float, else its ``repr``.

    Args:
        value: Any value.

    Returns:
        str: What the message shows.
    """
    if value is None:
        return 'not set'
    if isinstance(value, float):
        return f'{value:g}'
    return repr(value)
