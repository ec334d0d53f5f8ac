"""Pure rules that map a backbone parameter name to a layer or stage id, one
module per backbone family.

Nothing here imports torch, a registry or a logger: every function takes
plain names and numbers so that it can be tested on lists of strings.
:mod:`.common` has the shared pieces (rule signature, ``BackboneRules``,
lr scale); each family module documents its id table. Which family a
backbone class gets is decided in ``layerdecay_plugin.backbones``.
"""
from .auto import AUTO, DEFAULT_INPUT_SHAPE, AutoRules, ids_from_order, \
    parse_auto_rules
from .common import (DECAY_TYPES, NO_DECAY_NAMES, TOKEN_NAMES, BackboneRules,
                     IdRule, block_id, is_no_decay, layer_scale,
                     per_block_min_num_layers, stage_of_block, staged_id)
# Private helpers importable from the former rules.py, kept importable.
from .common import _part  # noqa: F401
from .convnext import _check_stage  # noqa: F401
from .resnet import _RESNET_LAYER, _RESNET_STEM  # noqa: F401
from .vit import _VIT_EMBED, _vit_id  # noqa: F401
from .convnext import (CONVNEXT, convnext_layer_id, convnext_min_num_layers,
                       convnext_stage_id)
from .csp import CSP, csp_layer_id, csp_stage_id
from .darknet import DARKNET, darknet_layer_id, darknet_stage_id
from .efficientnet import (EFFICIENTNET, efficientnet_layer_id,
                           efficientnet_stage_id)
from .hourglass import HOURGLASS, hourglass_layer_id
from .hrnet import HRNET, hrnet_layer_id, hrnet_stage_id
from .mobilenet import (MOBILENET_V2, mobilenet_v2_layer_id,
                        mobilenet_v2_stage_id)
from .pvt import PVT, pvt_layer_id, pvt_stage_id
from .resnet import RESNET, resnet_layer_id, resnet_stage_id
from .swin import SWIN, SWIN_V2, swin_layer_id, swin_stage_id, \
    swin_v2_layer_id
from .vgg import VGG, vgg_layer_id, vgg_min_num_layers, vgg_stage_id
from .vit import (HIVIT, MVIT, VIT, VIT_BLOCKS, blocks_stage_id,
                  vit_blocks_layer_id, vit_layer_id, vit_min_num_layers)

#: Built-in families by the name a config may give in ``paramwise_cfg.rules``.
BUILTIN_RULES = {
    'convnext': CONVNEXT,
    'swin': SWIN,
    'vit': VIT,
    'vit_blocks': VIT_BLOCKS,
    'resnet': RESNET,
    'swin_v2': SWIN_V2,
    'hivit': HIVIT,
    'mvit': MVIT,
    'csp': CSP,
    'darknet': DARKNET,
    'mobilenet_v2': MOBILENET_V2,
    'efficientnet': EFFICIENTNET,
    'hrnet': HRNET,
    'pvt': PVT,
    'hourglass': HOURGLASS,
    'vgg': VGG,
}

__all__ = [
    'AUTO', 'BUILTIN_RULES', 'CONVNEXT', 'CSP', 'DARKNET', 'DECAY_TYPES',
    'DEFAULT_INPUT_SHAPE', 'EFFICIENTNET', 'HIVIT', 'HOURGLASS', 'HRNET',
    'MOBILENET_V2', 'MVIT', 'NO_DECAY_NAMES', 'PVT', 'RESNET', 'SWIN',
    'SWIN_V2', 'TOKEN_NAMES', 'VGG', 'VIT', 'VIT_BLOCKS', 'AutoRules',
    'BackboneRules', 'IdRule', 'block_id', 'blocks_stage_id',
    'convnext_layer_id', 'convnext_min_num_layers', 'convnext_stage_id',
    'csp_layer_id', 'csp_stage_id', 'darknet_layer_id', 'darknet_stage_id',
    'efficientnet_layer_id', 'efficientnet_stage_id', 'hourglass_layer_id',
    'hrnet_layer_id', 'hrnet_stage_id', 'ids_from_order', 'is_no_decay',
    'layer_scale', 'mobilenet_v2_layer_id', 'mobilenet_v2_stage_id',
    'parse_auto_rules', 'per_block_min_num_layers', 'pvt_layer_id',
    'pvt_stage_id', 'resnet_layer_id', 'resnet_stage_id', 'stage_of_block',
    'staged_id',
    'swin_layer_id', 'swin_stage_id', 'swin_v2_layer_id',
    'vgg_layer_id', 'vgg_min_num_layers', 'vgg_stage_id',
    'vit_blocks_layer_id',
    'vit_layer_id', 'vit_min_num_layers'
]
