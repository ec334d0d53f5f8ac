"""Validation of ``paramwise_cfg.components``: module path -> lr factor.

A component is a module of the model named by its dotted path, as
``named_modules()`` names it (``'neck'``, ``'bbox_head'``,
``'bbox_head.cls_branches'``, ``'decoder'``). Its factor multiplies the lr
of every trainable parameter under it and never its weight decay (which is
what sets it apart from a ``custom_keys`` entry). Here only the key's shape
is checked; what it matches in the model is checked when the optimizer is
built (:mod:`layerdecay_plugin.checks.components`). Torch-free.
"""
import math
import re
from typing import Any, Dict, Mapping

from ..errors import LayerDecayConfigError
from .values import is_real

#: The key in ``paramwise_cfg``.
COMPONENTS_KEY = 'components'

_EXAMPLE = ("components={'neck': 1.0, 'bbox_head': 2.0, "
            "'decoder': 0.5}")
# Characters of regexes and globs, which no module path contains.
_PATTERN = re.compile(r'[\s*?^$|+()\[\]{}\\/]')


def parse_components(value: Any) -> Dict[str, float]:
    """Check ``paramwise_cfg.components``.

    Args:
        value: The ``components`` given: ``{module path: lr factor}``.

    Returns:
        dict: Module path -> factor (a float > 0), in the config's order.

    Raises:
        LayerDecayConfigError: For anything but a dict of dotted module
            paths to finite numbers > 0, naming the entry and the fix.
    """
    where = f'paramwise_cfg.{COMPONENTS_KEY}'
    if not isinstance(value, Mapping):
        raise LayerDecayConfigError(
            f'{where}={value!r} is invalid: give a dict of module path in '
            f'the model -> lr factor, e.g. {_EXAMPLE}.')
    parsed: Dict[str, float] = {}
    for path, factor in value.items():
        _check_path(where, path, factor)
        parsed[path] = _factor(f'{where}[{path!r}]', factor)
    return parsed


def _check_path(where: str, path: Any, factor: Any) -> None:
    if not isinstance(path, str):
        raise LayerDecayConfigError(
            f'{where} has the key {path!r} ({type(path).__name__}, value '
            f'{factor!r}): keys are module paths, strings such as '
            f"'bbox_head' or 'bbox_head.transformer.decoder'.")
    if _PATTERN.search(path):
        raise LayerDecayConfigError(
            f'{where}[{path!r}]: a key is the dotted path of a module (or a '
            "parameter) as model.named_modules() names it, e.g. 'neck' or "
            "'bbox_head.cls_branches', not a pattern; for parameters picked "
            'by a name substring use custom_keys.')
    if not path:
        raise LayerDecayConfigError(
            f"{where}[''] names the whole model: give the dotted path of a "
            "module in the model, e.g. 'bbox_head'; to scale every lr, "
            'change optimizer.lr instead.')
    if not all(path.split('.')):
        raise LayerDecayConfigError(
            f'{where}[{path!r}] has an empty name part: give the dotted '
            "path of a module in the model, e.g. 'bbox_head' or "
            "'encoder.layers.0'.")


def _factor(where: str, factor: Any) -> float:
    if isinstance(factor, bool) or not is_real(factor):
        raise LayerDecayConfigError(
            f'{where}={factor!r} is invalid: a factor is a number > 0 that '
            f'multiplies the lr of the module\'s parameters, e.g. 2.0 (got '
            f'{type(factor).__name__}).')
    if not math.isfinite(factor):
        raise LayerDecayConfigError(
            f'{where}={factor!r} is invalid: a factor must be a finite '
            'number > 0.')
    if factor <= 0:
        raise LayerDecayConfigError(
            f'{where}={factor!r} is invalid: a factor must be > 0. To '
            'stop training a module, freeze it (requires_grad=False, a '
            'frozen_stages of its config, or paramwise_cfg.freeze_below '
            'for backbone layers) so it leaves the optimizer; to keep it '
            'in the optimizer at lr 0 on purpose, give it a custom_keys '
            'entry with lr_mult=0.')
    return float(factor)
