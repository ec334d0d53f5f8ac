"""Validation of ``paramwise_cfg.rules``: a built-in family name, ``'auto'``
(or ``dict(type='auto', input_shape=...)``), or a dict of decay type ->
ordered ``(regex, id)`` pairs. Torch-free.
"""
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from ..backbones.families import FAMILIES
from ..errors import LayerDecayConfigError
from ..rules import DECAY_TYPES, Matcher
from ..rules.auto import AUTO, DEFAULT_INPUT_SHAPE, AutoRules

_EXAMPLE = "rules=dict(type='auto', input_shape=(1, 3, 224, 224))"


def parse_auto_rules(value: Any, decay_type: str) -> Optional[AutoRules]:
    """Recognise and check ``rules='auto'`` or ``rules=dict(type='auto',
    input_shape=...)``.

    Args:
        value: ``paramwise_cfg.rules``.
        decay_type: ``paramwise_cfg.decay_type``.

    Returns:
        AutoRules or None: None when ``value`` does not ask for auto rules.

    Raises:
        LayerDecayConfigError: For an invalid input shape, an unknown key,
            or ``decay_type='stage_wise'`` (auto rules know blocks, not
            stages).
    """
    if isinstance(value, str) and value == AUTO:
        spec: Mapping = {}
    elif isinstance(value, Mapping) and value.get('type') == AUTO:
        spec = value
    else:
        return None
    unknown = sorted(set(spec) - {'type', 'input_shape'})
    if unknown:
        raise LayerDecayConfigError(
            f'paramwise_cfg.rules has unknown key(s) {unknown} for auto '
            f"rules; the keys are 'type' and 'input_shape', e.g. "
            f'{_EXAMPLE}.')
    shape = spec.get('input_shape', DEFAULT_INPUT_SHAPE)
    if not isinstance(shape, Sequence) or isinstance(shape, str) \
            or len(shape) < 3 or not all(
                isinstance(s, int) and not isinstance(s, bool) and s > 0
                for s in shape):
        raise LayerDecayConfigError(
            f'paramwise_cfg.rules input_shape={shape!r} is invalid: give '
            'the dummy input shape as positive ints (batch, channels, '
            f'height, width), e.g. {_EXAMPLE}.')
    if decay_type != 'layer_wise':
        raise LayerDecayConfigError(
            f"paramwise_cfg.rules='auto' with decay_type={decay_type!r}: "
            'auto rules give one id per block in forward order and know no '
            "stages; use decay_type='layer_wise', or a built-in family's "
            'rules for stage_wise.')
    return AutoRules(tuple(shape))


_MATCHERS_EXAMPLE = (
    "rules=dict(layer_wise=[(r'^(cls_token|pos_embed|patch_embed)', "
    "0), (r'^blocks\\.(\\d+)\\.', 1), (r'^norm\\.', 'last')])")

#: What ``paramwise_cfg.rules`` becomes: None (chosen by the backbone's
#: class), a family name, auto settings, or compiled regex rules.
RulesCfg = Union[None, str, AutoRules, Dict[str, List[Matcher]]]


def parse_matchers(spec: Any) -> Dict[str, List[Matcher]]:
    """Validate and compile ``paramwise_cfg.rules`` given as a dict.

    Args:
        spec: ``{decay_type: [(regex, id), ...]}``.

    Returns:
        dict: decay type -> compiled ``(pattern, id)`` pairs.

    Raises:
        LayerDecayConfigError: Naming the offending entry.
    """
    if not isinstance(spec, Mapping) or not spec:
        raise LayerDecayConfigError(
            f'paramwise_cfg.rules={spec!r} is invalid: give a built-in '
            'family name or a dict of decay type -> [(regex, id), ...], '
            f'e.g. {_MATCHERS_EXAMPLE}')
    compiled = {}
    for decay_type, pairs in spec.items():
        where = f'paramwise_cfg.rules[{decay_type!r}]'
        if decay_type not in DECAY_TYPES:
            raise LayerDecayConfigError(
                f'{where}: unknown decay type {decay_type!r}; use '
                f'{" or ".join(map(repr, DECAY_TYPES))}.')
        if not isinstance(pairs, Sequence) or isinstance(pairs, str) \
                or not pairs:
            raise LayerDecayConfigError(
                f'{where}={pairs!r} must be a non-empty list of '
                f'(regex, id) pairs, e.g. {_MATCHERS_EXAMPLE}')
        compiled[decay_type] = [_compile(where, i, p)
                                for i, p in enumerate(pairs)]
    return compiled


def _compile(where: str, index: int, pair: Any) -> Matcher:
    where = f'{where}[{index}]'
    if not isinstance(pair, Sequence) or isinstance(pair, str) \
            or len(pair) != 2:
        raise LayerDecayConfigError(
            f'{where}={pair!r} must be a (regex, id) pair.')
    pattern, value = pair
    try:
        regex = re.compile(pattern)
    except (re.error, TypeError) as exc:
        raise LayerDecayConfigError(
            f'{where}: {pattern!r} is not a valid regex ({exc}).') from None
    if value not in ('last', 'head') and (not isinstance(value, int)
                                          or isinstance(value, bool)):
        raise LayerDecayConfigError(
            f"{where}: id {value!r} is invalid; use an int (an offset when "
            "the regex has a capture group), 'last' or 'head'.")
    return regex, value


def parse_rules(value: Any, decay_type: str) -> RulesCfg:
    if value is None:
        return None
    auto = parse_auto_rules(value, decay_type)  # 'auto' or dict(type='auto')
    if auto is not None:
        return auto
    if isinstance(value, str):
        if value not in FAMILIES:
            raise LayerDecayConfigError(
                f'paramwise_cfg.rules={value!r} is not a built-in family; '
                f'use one of {", ".join(map(repr, FAMILIES))}, '
                "'auto' (ids from the forward order), or a dict of "
                '(regex, id) rules.')
        return value
    matchers = parse_matchers(value)
    if decay_type not in matchers:
        raise LayerDecayConfigError(
            f'paramwise_cfg.rules has no {decay_type!r} entry but '
            f'decay_type={decay_type!r}; add rules for it or change '
            'decay_type.')
    return matchers


