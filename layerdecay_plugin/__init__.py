"""Layer-wise learning-rate decay for MMDetection 3.x (mmengine).

Importing the package registers the constructor as
``LayerDecayPluginConstructor`` in mmengine's root
``OPTIM_WRAPPER_CONSTRUCTORS`` registry (see :mod:`.registry`),
``LayerDecayLrHook`` in its root ``HOOKS`` and ``OnePassAdamW`` in its root
``OPTIMIZERS``, so configs select them by name after
``custom_imports=dict(imports=['layerdecay_plugin'])``.
"""
from .backbones.families import FAMILIES
from .backbones.registered import register_backbone_rules
from .config import LayerDecayCfg, parse_paramwise_cfg
from .constructor import LayerDecayOptimWrapperConstructor
from .errors import LayerDecayConfigError
from .hooks import LayerDecayLrHook
from .one_pass_adamw import OnePassAdamW
from .rules import (BackboneRules, convnext_layer_id, convnext_min_num_layers,
                    convnext_stage_id, swin_layer_id, swin_stage_id,
                    vit_blocks_layer_id, vit_layer_id)

#: ResNet's rules, a row of the staged factory (see backbones.families).
resnet_layer_id = FAMILIES['resnet'].rules.ids['layer_wise']
resnet_stage_id = FAMILIES['resnet'].rules.ids['stage_wise']

__version__ = '0.1.0'

__all__ = [
    'BackboneRules', 'LayerDecayCfg', 'LayerDecayConfigError',
    'LayerDecayLrHook', 'LayerDecayOptimWrapperConstructor', 'OnePassAdamW',
    'convnext_layer_id', 'convnext_min_num_layers', 'convnext_stage_id',
    'parse_paramwise_cfg', 'register_backbone_rules', 'resnet_layer_id',
    'resnet_stage_id', 'swin_layer_id', 'swin_stage_id', 'vit_blocks_layer_id',
    'vit_layer_id'
]
