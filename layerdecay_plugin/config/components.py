"""Validation of ``paramwise_cfg.components``: module path -> lr factor.

A component is a module of the model named by its dotted path, as
``named_modules()`` names it (``'neck'``, ``'bbox_head'``,
``'bbox_head.cls_branches'``, ``'decoder'``). Its factor multiplies the lr
of every trainable parameter under it and never its weight decay (which is
what sets it apart from a ``custom_keys`` entry). A component given as
``dict(lr_mult=2.0, decay_rate=0.9)`` also decays the lr across its
``layers.<i>`` (:class:`DecayedComponent`). Here only the key's shape is
checked; what it matches in the model is checked when the optimizer is
built (:mod:`layerdecay_plugin.checks.components`). Torch-free.
"""
import math
import re
from typing import Any, Dict, Mapping, NamedTuple, Union

from ..errors import LayerDecayConfigError
from .values import check_decay_rate, did_you_mean, is_real

#: The key in ``paramwise_cfg``.
COMPONENTS_KEY = 'components'
#: What a component given as a dict takes.
COMPONENT_KEYS = ('lr_mult', 'decay_rate')


class DecayedComponent(NamedTuple):
    """A component whose lr decays across its layers: the parameters under
    ``<path>.layers.<i>.`` take ``lr_mult * decay_rate ** (L - 1 - i)`` (L:
    the number of layers), the others under the path ``lr_mult``."""
    lr_mult: float
    decay_rate: float


#: What a component gives: a factor, or a factor decayed across layers.
ComponentSpec = Union[float, DecayedComponent]

_EXAMPLE = ("components={'neck': 1.0, 'bbox_head': 2.0, "
            "'decoder': 0.5}")
# Characters of regexes and globs, which no module path contains.
_PATTERN = re.compile(r'[\s*?^$|+()\[\]{}\\/]')


def parse_components(value: Any) -> Dict[str, ComponentSpec]:
    """Check ``paramwise_cfg.components``.

    Args:
        value: The ``components`` given: ``{module path: lr factor}``, a
            factor being a number or ``dict(lr_mult=..., decay_rate=...)``
            (``lr_mult`` 1.0 where left out).

    Returns:
        dict: Module path -> factor (a float > 0), or a
        :class:`DecayedComponent` for a dict with a ``decay_rate`` (a dict
        without one gives its ``lr_mult``), in the config's order.

    Raises:
        LayerDecayConfigError: For anything but a dict of dotted module
            paths to finite numbers > 0 or such dicts, naming the entry and
            the fix.
    """
    where = f'paramwise_cfg.{COMPONENTS_KEY}'
    if not isinstance(value, Mapping):
        raise LayerDecayConfigError(
            f'{where}={value!r} is invalid: give a dict of module path in '
            f'the model -> lr factor, e.g. {_EXAMPLE}.')
    parsed: Dict[str, ComponentSpec] = {}
    for path, factor in value.items():
        _check_path(where, path, factor)
        entry = f'{where}[{path!r}]'
        parsed[path] = _decayed(entry, factor) if isinstance(
            factor, Mapping) else _factor(entry, factor)
    return parsed


def _decayed(where: str, spec: Mapping) -> ComponentSpec:
    for key in spec:
        if key not in COMPONENT_KEYS:
            raise LayerDecayConfigError(
                f'{where} has the unknown key {key!r} (value {spec[key]!r}); '
                f'{did_you_mean(key, COMPONENT_KEYS)}a component given as a '
                'dict takes lr_mult (default 1.0) and decay_rate, e.g. '
                'dict(lr_mult=2.0, decay_rate=0.9).')
    lr_mult = _factor(f'{where}.lr_mult', spec.get('lr_mult', 1.0))
    if 'decay_rate' not in spec:
        return lr_mult
    return DecayedComponent(lr_mult, check_decay_rate(
        f'{where}.decay_rate', spec['decay_rate']))


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
