"""Validation of ``paramwise_cfg`` for layer decay, and of every
``decay_type`` / ``rules`` combination. Torch-free.

Every check raises :class:`LayerDecayConfigError` with a message that names
the key, the value it got and what would be valid.
"""
import math
import warnings
from typing import (Any, Collection, Dict, Mapping, NamedTuple, Optional,
                    Tuple)

from ..errors import LayerDecayConfigError
from ..rules import DECAY_TYPES, NO_DECAY_NAMES, BackboneRules
from .components import parse_components
from .custom_keys import parse_custom_keys
from .rules_key import RulesCfg, parse_rules
from .towers import TowerCfg, parse_backbone_attr, parse_towers
from .values import (check_decay_rate, check_mult, check_num_layers,
                     did_you_mean, is_real)

LAYER_DECAY_KEYS = ('decay_rate', 'decay_type', 'num_layers', 'backbone_attr',
                    'rules', 'no_decay_names', 'resume_mismatch',
                    'min_lr_scale', 'freeze_below', 'model_no_decay',
                    'components', 'towers')

#: Other constructors' names for a key -> the plugin's: mmseg's
#: ``LayerDecayOptimizerConstructor`` (BEiT), mmpretrain's
#: ``LearningRateDecayOptimWrapperConstructor`` and mmpose's ViTPose
#: constructor call the decay factor ``layer_decay_rate``; timm's
#: ``param_groups_layer_decay`` calls the lr-scale floor ``min_scale`` and
#: the freezing threshold ``no_opt_scale``.
KEY_ALIASES = {'layer_decay_rate': 'decay_rate', 'min_scale': 'min_lr_scale',
               'no_opt_scale': 'freeze_below'}
#: Who gives each alias of :data:`KEY_ALIASES` that name, for the log line.
ALIAS_ORIGINS = {
    'layer_decay_rate': "mmseg's BEiT, mmpretrain's and mmpose's "
                        'layer-decay constructors',
    'min_scale': "timm's param_groups_layer_decay",
    'no_opt_scale': "timm's param_groups_layer_decay",
    "decay_type='layer_wise_vit'": "mmseg, whose BEiT constructor's "
                                   'deprecation warning asks for it',
}
#: Other constructors' values of ``decay_type`` -> the plugin's.
DECAY_TYPE_ALIASES = {'layer_wise_vit': 'layer_wise'}

#: What a resumed checkpoint whose groups differ from the config's does (see
#: :mod:`layerdecay_plugin.resume`): ``'error'`` (default) raises,
#: ``'keep_checkpoint'`` loads the checkpoint's values after one warning.
RESUME_MISMATCH_KEY = 'resume_mismatch'
RESUME_MISMATCH_MODES = ('error', 'keep_checkpoint')

#: mmengine ``DefaultOptimWrapperConstructor`` options, composed with layer
#: decay (see the constructor).
MMENGINE_PARAMWISE_KEYS = ('custom_keys', 'bias_lr_mult', 'bias_decay_mult',
                           'norm_decay_mult', 'dwconv_decay_mult',
                           'flat_decay_mult', 'dcn_offset_lr_mult',
                           'bypass_duplicate')

# No num_layers: it is inferred from the backbone, and any fixed value would
# be wrong for most backbones (ConvNeXt-T needs 6, Swin-T 12).
EXAMPLE = "paramwise_cfg=dict(decay_rate=0.9, decay_type='layer_wise')"


class LayerDecayCfg(NamedTuple):
    """Validated layer-decay settings.

    Attributes:
        decay_rate: Per-layer lr decay factor (> 0).
        decay_type: ``'layer_wise'`` or ``'stage_wise'``.
        num_layers: As given, or None to infer it from the backbone.
        backbone_attr: Dotted attribute path of the backbone in the model
            (the first tower's).
        rules: A built-in family name, compiled config rules, or None to
            pick rules by the backbone's class.
        no_decay_names: Last name components that get no weight decay.
        mmengine: The mmengine paramwise options given, to compose with.
        resume_mismatch: ``'error'`` or ``'keep_checkpoint'``: what loading
            an optimizer state whose groups differ from these does.
        min_lr_scale: The smallest lr scale a layer gets (scales below it
            are raised to it), or None for none.
        freeze_below: Parameters whose lr scale (after ``min_lr_scale``)
            is below it are left out of the optimizer, frozen; 0: none.
        model_no_decay: Whether the names the backbone declares with
            ``no_weight_decay()`` / ``no_weight_decay_keywords()`` get no
            weight decay.
        components: Module path -> lr factor, or a ``DecayedComponent``
            (never weight decay).
        towers: Each tower's attribute, ``decay_rate``, ``num_layers`` and
            rules (:mod:`.towers`); empty: the one backbone above.
    """
    decay_rate: float
    decay_type: str
    num_layers: Optional[int]
    backbone_attr: str = 'backbone'
    rules: RulesCfg = None
    no_decay_names: Tuple[str, ...] = NO_DECAY_NAMES
    mmengine: Mapping[str, Any] = {}
    resume_mismatch: str = 'error'
    min_lr_scale: Optional[float] = None
    freeze_below: float = 0.
    model_no_decay: bool = True
    components: Mapping[str, Any] = {}
    towers: Tuple[TowerCfg, ...] = ()


def aliases_used(cfg: Any) -> Dict[str, str]:
    """The keys (and ``decay_type`` values) of ``cfg`` spelled as another
    constructor spells them -> what they are read as (see
    :data:`KEY_ALIASES`, :data:`DECAY_TYPE_ALIASES`)."""
    if not isinstance(cfg, Mapping):
        return {}
    used = {k: KEY_ALIASES[k] for k in cfg if k in KEY_ALIASES}
    value = cfg.get('decay_type')
    if isinstance(value, str) and value in DECAY_TYPE_ALIASES:
        used[f'decay_type={value!r}'] = \
            f'decay_type={DECAY_TYPE_ALIASES[value]!r}'
    return used


def canonical_keys(cfg: Mapping) -> Dict[str, Any]:
    """``cfg`` with the aliases of :data:`KEY_ALIASES` and
    :data:`DECAY_TYPE_ALIASES` renamed.

    Raises:
        LayerDecayConfigError: If a key is given under both names.
    """
    for alias, key in aliases_used(cfg).items():
        if alias in cfg and key in cfg:
            raise LayerDecayConfigError(
                f'paramwise_cfg sets both {alias}={cfg[alias]!r} and '
                f'{key}={cfg[key]!r}: {alias} is the name other OpenMMLab '
                f'constructors give {key}; keep one of them.')
    renamed = {KEY_ALIASES.get(k, k): v for k, v in cfg.items()}
    if isinstance(renamed.get('decay_type'), str):
        renamed['decay_type'] = DECAY_TYPE_ALIASES.get(
            renamed['decay_type'], renamed['decay_type'])
    return renamed


def parse_paramwise_cfg(cfg: Optional[Mapping],
                        hyper_parameters: Optional[Collection[str]] = None,
                        optimizer: str = 'the optimizer') -> LayerDecayCfg:
    """Check a ``paramwise_cfg`` and return its layer-decay settings.

    Args:
        cfg: The ``paramwise_cfg`` of ``optim_wrapper``.
        hyper_parameters: The optimizer's param-group keys, against which
            ``custom_keys`` entries are checked
            (:func:`.custom_keys.optimizer_keys`); None: not checked.
        optimizer: The optimizer's name, for messages.

    Returns:
        LayerDecayCfg: The validated settings.

    Raises:
        LayerDecayConfigError: On any missing, unknown or invalid key.
    """
    if not cfg:
        raise LayerDecayConfigError(
            'LayerDecayOptimWrapperConstructor needs optim_wrapper.'
            f'paramwise_cfg with at least decay_rate, got {cfg!r}; '
            f'e.g. {EXAMPLE}')
    if not isinstance(cfg, Mapping):
        raise LayerDecayConfigError(
            f'paramwise_cfg must be a dict, got {type(cfg).__name__} '
            f'{cfg!r}; e.g. {EXAMPLE}')
    cfg = canonical_keys(cfg)
    for key in cfg:
        if key not in LAYER_DECAY_KEYS + MMENGINE_PARAMWISE_KEYS:
            hint = did_you_mean(key,
                                LAYER_DECAY_KEYS + MMENGINE_PARAMWISE_KEYS)
            raise LayerDecayConfigError(
                f'paramwise_cfg has unknown key {key!r} (value '
                f'{cfg[key]!r}); {hint}valid keys are '
                f'{", ".join(LAYER_DECAY_KEYS + MMENGINE_PARAMWISE_KEYS)}.')

    if 'decay_rate' not in cfg:
        raise LayerDecayConfigError(
            'paramwise_cfg.decay_rate is missing: set the per-layer lr '
            f'decay factor, a number > 0 (typically 0.65-0.95); e.g. '
            f'{EXAMPLE}')
    decay_rate = check_decay_rate('paramwise_cfg.decay_rate',
                                  cfg['decay_rate'])

    decay_type = cfg.get('decay_type', 'layer_wise')
    if decay_type not in DECAY_TYPES:
        raise LayerDecayConfigError(
            f'paramwise_cfg.decay_type={decay_type!r} is invalid: use one '
            f'of {", ".join(repr(t) for t in DECAY_TYPES)}.')

    num_layers = check_num_layers('paramwise_cfg.num_layers',
                                  cfg.get('num_layers'))
    attrs = parse_backbone_attr(cfg.get('backbone_attr', 'backbone'))
    rules = parse_rules(cfg.get('rules'), decay_type)
    towers = parse_towers(attrs, cfg.get('towers'), decay_rate, num_layers,
                          rules, decay_type)
    return LayerDecayCfg(
        decay_rate, decay_type, num_layers, attrs[0], rules,
        _no_decay_names(cfg.get('no_decay_names', NO_DECAY_NAMES)),
        _mmengine_options(cfg, hyper_parameters, optimizer),
        _resume_mismatch(cfg.get(RESUME_MISMATCH_KEY, 'error')),
        *_scale_limits(cfg.get('min_lr_scale'), cfg.get('freeze_below', 0.)),
        _model_no_decay(cfg.get('model_no_decay', True)),
        parse_components(cfg.get('components', {})), towers)


def _scale_limits(floor: Any, threshold: Any) -> Tuple[Optional[float],
                                                       float]:
    """``min_lr_scale`` in (0, 1] or None, ``freeze_below`` in [0, 1),
    and a floor below the threshold (else nothing would be frozen)."""
    if floor is not None and (not is_real(floor) or not 0 < floor <= 1):
        raise LayerDecayConfigError(
            f'paramwise_cfg.min_lr_scale={floor!r} is invalid: it must be '
            'a number in (0, 1], the smallest lr scale a layer gets (e.g. '
            '0.01: no layer below 1% of its lr); leave it out for no '
            'floor. (timm calls it min_scale.)')
    if not is_real(threshold) or not 0 <= threshold < 1:
        raise LayerDecayConfigError(
            f'paramwise_cfg.freeze_below={threshold!r} is invalid: it must '
            'be a number in [0, 1): parameters whose lr scale is below it '
            'are frozen and left out of the optimizer (e.g. 0.01); 0 or '
            'leaving it out freezes nothing. (timm calls it no_opt_scale.)')
    if floor is not None and threshold and floor >= threshold:
        raise LayerDecayConfigError(
            f'paramwise_cfg.min_lr_scale={floor!r} is not below '
            f'paramwise_cfg.freeze_below={threshold!r}: no lr scale is '
            'below the floor, so freeze_below would freeze nothing. Lower '
            'min_lr_scale below freeze_below, or drop one of them.')
    return (None if floor is None else float(floor)), float(threshold)


def _model_no_decay(value: Any) -> bool:
    if not isinstance(value, bool):
        raise LayerDecayConfigError(
            f'paramwise_cfg.model_no_decay={value!r} must be True (the '
            'default: the names the backbone declares with '
            'no_weight_decay() / no_weight_decay_keywords() get no weight '
            'decay) or False (only no_decay_names, 1-D parameters and '
            'biases).')
    return value


def check_against_rules(cfg: LayerDecayCfg, rules: BackboneRules,
                        rate_key: str = 'paramwise_cfg.decay_rate') -> None:
    """Check the settings against the rules the backbone got: the decay
    type must be one the rules have; a ``decay_rate`` above 1 warns.

    Args:
        cfg: The validated settings.
        rules: The backbone's rules.
        rate_key: Where ``cfg.decay_rate`` was given, for the warning (a
            tower's own ``towers[...].decay_rate``).

    Raises:
        LayerDecayConfigError: For a decay type the rules lack.
    """
    if cfg.decay_type not in rules.ids:
        raise LayerDecayConfigError(
            f"paramwise_cfg.decay_type='{cfg.decay_type}' is not "
            f'available for {rules.name} backbones; use '
            f'{" or ".join(map(repr, sorted(rules.ids)))}.')
    if cfg.decay_rate > 1:
        warnings.warn(
            f'{rate_key}={cfg.decay_rate:g} > 1: earlier '
            'backbone layers get a larger lr than later ones and the '
            'head. Use a value < 1 for the usual layer decay.',
            UserWarning, stacklevel=3)


def _resume_mismatch(value: Any) -> str:
    if value not in RESUME_MISMATCH_MODES:
        raise LayerDecayConfigError(
            f'paramwise_cfg.{RESUME_MISMATCH_KEY}={value!r} is invalid: use '
            "'error' (the default: resuming a checkpoint whose layer-decay "
            "groups differ from this config's is an error) or "
            "'keep_checkpoint' (resume with the checkpoint's lr_scale, lr "
            'and weight decay, after one warning).')
    return value


def check_optimizer_cfg(optimizer: Any) -> None:
    """Check the optimizer's ``lr`` and ``weight_decay``, which layer decay
    scales per group: both must be set, finite and >= 0.

    Args:
        optimizer: ``optim_wrapper.optimizer``; anything but a dict is left
            to mmengine, which reports it.

    Raises:
        LayerDecayConfigError: Naming the key, its value and the fix.
    """
    if not isinstance(optimizer, Mapping):
        return
    for key, example in (('lr', '1e-4'), ('weight_decay', '0.05')):
        value = optimizer.get(key)
        if value is None:
            raise LayerDecayConfigError(
                f'optim_wrapper.optimizer.{key} is not set: layer decay '
                f'sets {key} per param group from it, so give it '
                "explicitly (e.g. optimizer=dict(type='AdamW', lr=1e-4, "
                'weight_decay=0.05)).')
        if not is_real(value) or not math.isfinite(value) or value < 0:
            raise LayerDecayConfigError(
                f'optim_wrapper.optimizer.{key}={value!r} is invalid: it '
                f'must be a finite number >= 0, e.g. {key}={example}.')


def _no_decay_names(value: Any) -> Tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or \
            not all(isinstance(v, str) for v in value):
        raise LayerDecayConfigError(
            f'paramwise_cfg.no_decay_names={value!r} is invalid: give a '
            "list of parameter name endings, e.g. ['cls_token', "
            "'pos_embed'], or [] for mmdet's exact rule.")
    return tuple(value)


_MULT_KEYS = ('bias_lr_mult', 'bias_decay_mult', 'norm_decay_mult',
              'dwconv_decay_mult', 'flat_decay_mult', 'dcn_offset_lr_mult')


def _mmengine_options(cfg: Mapping,
                      hyper_parameters: Optional[Collection[str]],
                      optimizer: str) -> Dict[str, Any]:
    options = {k: cfg[k] for k in MMENGINE_PARAMWISE_KEYS if k in cfg}
    for key in _MULT_KEYS:
        if key in options:
            check_mult(f'paramwise_cfg.{key}', options[key])
    if not isinstance(options.get('bypass_duplicate', False), bool):
        raise LayerDecayConfigError(
            'paramwise_cfg.bypass_duplicate='
            f'{options["bypass_duplicate"]!r} must be True or False.')
    if 'custom_keys' in options:
        parse_custom_keys(options['custom_keys'], hyper_parameters,
                          optimizer)
    return options
