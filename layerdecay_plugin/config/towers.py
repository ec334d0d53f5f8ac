"""Validation of ``paramwise_cfg.backbone_attr`` and ``paramwise_cfg.towers``:
one backbone, or several towers (a detector's image backbone and its text
model, ``['backbone', 'language_model']``), each with its own rules,
``num_layers`` and ``decay_rate``. Torch-free.

A tower's ``decay_rate``, ``num_layers`` and ``rules`` are checked by the
same functions as the top-level keys (:mod:`.values`, :mod:`.rules_key`);
a tower without an override takes the top-level ``decay_rate`` and
``rules``. ``num_layers`` belongs to one backbone, so with several towers
it is given per tower (or inferred for each).
"""
from typing import Any, Mapping, NamedTuple, Optional, Tuple

from ..errors import LayerDecayConfigError
from .rules_key import RulesCfg, parse_rules
from .values import check_decay_rate, check_num_layers, did_you_mean

TOWERS_KEY = 'towers'
#: What ``towers[attr]`` may override.
TOWER_KEYS = ('decay_rate', 'num_layers', 'rules')
_EXAMPLE = ("backbone_attr=['backbone', 'language_model'], "
            'towers=dict(language_model=dict(decay_rate=0.9))')


class TowerCfg(NamedTuple):
    """The settings of one tower.

    Attributes:
        attr: Its dotted attribute path in the model.
        decay_rate: Its per-layer lr decay factor.
        num_layers: As given, or None to infer it from the tower.
        rules: A built-in family name, compiled config rules, auto
            settings, or None to pick rules by the tower's class.
    """
    attr: str
    decay_rate: float
    num_layers: Optional[int]
    rules: RulesCfg = None


def tower_key(attr: str, key: str) -> str:
    """How messages name a tower's key: ``paramwise_cfg.towers['x'].key``."""
    return f'paramwise_cfg.{TOWERS_KEY}[{attr!r}].{key}'


def parse_backbone_attr(value: Any) -> Tuple[str, ...]:
    """``backbone_attr``: one attribute path, or a non-empty list of
    distinct ones of which none lies inside another.

    Raises:
        LayerDecayConfigError: Naming the value and the fix.
    """
    attrs = [value] if isinstance(value, str) else value
    if not isinstance(attrs, (list, tuple)) or not attrs or not all(
            isinstance(a, str) and a and all(p.isidentifier()
                                             for p in a.split('.'))
            for a in attrs):
        raise LayerDecayConfigError(
            f'paramwise_cfg.backbone_attr={value!r} is invalid: give the '
            "attribute path of the backbone in the model, e.g. 'backbone' "
            "or 'img_backbone', or a list of them for several towers, e.g. "
            "['backbone', 'language_model'].")
    for index, attr in enumerate(attrs):
        for other in attrs[:index]:
            if attr == other or attr.startswith(other + '.') or \
                    other.startswith(attr + '.'):
                inner, outer = sorted((attr, other), key=len, reverse=True)
                what = (f'lists {attr!r} twice' if attr == other else
                        f'has {inner!r} inside {outer!r}')
                raise LayerDecayConfigError(
                    f'paramwise_cfg.backbone_attr={list(attrs)!r} {what}: '
                    'the towers overlap, so a parameter would get two layer '
                    'ids. List each tower once and none inside another.')
    return tuple(attrs)


def parse_towers(attrs: Tuple[str, ...], towers: Any, decay_rate: float,
                 num_layers: Optional[int], rules: RulesCfg,
                 decay_type: str) -> Tuple[TowerCfg, ...]:
    """Each tower's settings: ``towers[attr]`` over the top-level ones.

    Args:
        attrs: :func:`parse_backbone_attr`'s.
        towers: ``paramwise_cfg.towers`` (None: no overrides).
        decay_rate: The validated top-level ``decay_rate``.
        num_layers: The validated top-level ``num_layers``.
        rules: The validated top-level ``rules``.
        decay_type: ``paramwise_cfg.decay_type``, for a tower's ``rules``.

    Returns:
        tuple[TowerCfg]: One per tower, in ``attrs`` order.

    Raises:
        LayerDecayConfigError: For a top-level ``num_layers`` with several
            towers, a ``towers`` key not in ``backbone_attr``, an unknown
            override, or an invalid value.
    """
    if num_layers is not None and len(attrs) > 1:
        raise LayerDecayConfigError(
            f'paramwise_cfg.num_layers={num_layers!r} with several towers '
            f'(backbone_attr={list(attrs)!r}) is ambiguous: each tower has '
            'its own. Set it per tower, e.g. towers=dict('
            f'{attrs[0]}=dict(num_layers={num_layers})), or leave it out to '
            'infer each.')
    if towers is None:
        towers = {}
    if not isinstance(towers, Mapping):
        raise LayerDecayConfigError(
            f'paramwise_cfg.{TOWERS_KEY}={towers!r} is invalid: give a dict '
            'of tower attribute -> overrides of '
            f'{", ".join(TOWER_KEYS)}, e.g. {_EXAMPLE}.')
    for attr, overrides in towers.items():
        if attr not in attrs:
            hint = did_you_mean(attr, attrs)
            raise LayerDecayConfigError(
                f'paramwise_cfg.{TOWERS_KEY} has key {attr!r}, which is not '
                f'a tower of backbone_attr={list(attrs)!r}; {hint}add it to '
                f'backbone_attr or use one of its names, e.g. {_EXAMPLE}.')
        if not isinstance(overrides, Mapping):
            raise LayerDecayConfigError(
                f'paramwise_cfg.{TOWERS_KEY}[{attr!r}]={overrides!r} is '
                f'invalid: give a dict with any of {", ".join(TOWER_KEYS)}, '
                f'e.g. {_EXAMPLE}.')
        for key in overrides:
            if key not in TOWER_KEYS:
                hint = did_you_mean(key, TOWER_KEYS)
                raise LayerDecayConfigError(
                    f'{tower_key(attr, key)}={overrides[key]!r}: unknown '
                    f'key; {hint}a tower overrides only '
                    f'{", ".join(TOWER_KEYS)}.')
    return tuple(
        _tower(attr, towers.get(attr, {}), decay_rate, num_layers, rules,
               decay_type) for attr in attrs)


def _tower(attr: str, overrides: Mapping, decay_rate: float,
           num_layers: Optional[int], rules: RulesCfg,
           decay_type: str) -> TowerCfg:
    if 'decay_rate' in overrides:
        decay_rate = check_decay_rate(tower_key(attr, 'decay_rate'),
                                      overrides['decay_rate'])
    if 'num_layers' in overrides:
        num_layers = check_num_layers(tower_key(attr, 'num_layers'),
                                      overrides['num_layers'])
    if 'rules' in overrides:
        try:
            rules = parse_rules(overrides['rules'], decay_type)
        except LayerDecayConfigError as error:  # the same check, its key
            raise LayerDecayConfigError(str(error).replace(
                'paramwise_cfg.rules', tower_key(attr, 'rules'))) from None
    return TowerCfg(attr, decay_rate, num_layers, rules)


def towers_of(cfg: Any) -> Tuple[TowerCfg, ...]:
    """The towers of a ``LayerDecayCfg``: its ``towers``, or its one
    backbone where it has none (a settings tuple made by hand)."""
    return cfg.towers or (TowerCfg(cfg.backbone_attr, cfg.decay_rate,
                                   cfg.num_layers, cfg.rules), )
