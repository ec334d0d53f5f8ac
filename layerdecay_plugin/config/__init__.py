"""The optimizer part of a config, validated: ``paramwise_cfg``
(:mod:`.paramwise`), its ``rules`` key (:mod:`.rules_key`). Every
check raises :class:`~layerdecay_plugin.errors.LayerDecayConfigError`
naming the key, the value and the fix. Torch-free.
"""
from .paramwise import (LAYER_DECAY_KEYS, MMENGINE_PARAMWISE_KEYS,
                        RESUME_MISMATCH_KEY, RESUME_MISMATCH_MODES,
                        LayerDecayCfg, check_against_rules,
                        check_optimizer_cfg, parse_paramwise_cfg)
from .rules_key import (AutoRules, RulesCfg, parse_auto_rules,
                        parse_matchers, parse_rules)

__all__ = [
    'LAYER_DECAY_KEYS', 'MMENGINE_PARAMWISE_KEYS', 'RESUME_MISMATCH_KEY',
    'RESUME_MISMATCH_MODES', 'AutoRules', 'LayerDecayCfg', 'RulesCfg',
    'check_against_rules', 'check_optimizer_cfg', 'parse_auto_rules',
    'parse_matchers', 'parse_paramwise_cfg', 'parse_rules'
]
