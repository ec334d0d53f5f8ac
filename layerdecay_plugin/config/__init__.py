"""The optimizer part of a config, validated: ``paramwise_cfg``
(:mod:`.paramwise`), its ``rules`` key (:mod:`.rules_key`) and its
``custom_keys`` (:mod:`.custom_keys`). Every
check raises :class:`~layerdecay_plugin.errors.LayerDecayConfigError`
naming the key, the value and the fix. Torch-free.
"""
from .components import COMPONENTS_KEY, parse_components
from .custom_keys import ENTRY_KEYS, optimizer_keys, parse_custom_keys
from .paramwise import (KEY_ALIASES, LAYER_DECAY_KEYS,
                        MMENGINE_PARAMWISE_KEYS, RESUME_MISMATCH_KEY,
                        RESUME_MISMATCH_MODES, LayerDecayCfg, aliases_used,
                        check_against_rules, check_optimizer_cfg,
                        parse_paramwise_cfg)
from .rules_key import (AutoRules, RulesCfg, parse_auto_rules,
                        parse_matchers, parse_rules)

__all__ = [
    'COMPONENTS_KEY', 'ENTRY_KEYS', 'KEY_ALIASES', 'LAYER_DECAY_KEYS',
    'MMENGINE_PARAMWISE_KEYS',
    'RESUME_MISMATCH_KEY', 'RESUME_MISMATCH_MODES', 'AutoRules',
    'LayerDecayCfg', 'RulesCfg', 'aliases_used', 'check_against_rules', 'check_optimizer_cfg',
    'optimizer_keys', 'parse_auto_rules', 'parse_custom_keys',
    'parse_components', 'parse_matchers', 'parse_paramwise_cfg', 'parse_rules'
]
