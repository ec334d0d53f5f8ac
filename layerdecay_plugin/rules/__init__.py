"""Pure rules that map a backbone parameter name to a layer or stage id.

Nothing here imports torch, a registry or a logger: every function takes
plain names and numbers so that it can be tested on lists of strings.
:mod:`.common` has the shared pieces (rule signature, ``BackboneRules``,
lr scale); :mod:`.staged` the factory of every stem-plus-stages family;
each other module documents its families' id tables. Which family a
backbone gets is decided in :mod:`layerdecay_plugin.backbones`, whose
``families`` table lists them all.
"""
from .auto import AUTO, DEFAULT_INPUT_SHAPE, AutoRules, ids_from_order
from .common import (DECAY_TYPES, NO_DECAY_NAMES, TOKEN_NAMES, BackboneRules,
                     IdRule, Matcher, block_id, is_no_decay, layer_scale,
                     per_block_min_num_layers, stage_of_block)
from .convnext import (CONVNEXT, convnext_layer_id, convnext_min_num_layers,
                       convnext_stage_id)
from .hourglass import HOURGLASS, hourglass_layer_id
from .hrnet import HRNET, hrnet_layer_id, hrnet_stage_id
from .pvt import PVT, pvt_layer_id, pvt_stage_id
from .staged import staged, staged_id
from .swin import SWIN, SWIN_V2, swin_layer_id, swin_stage_id, \
    swin_v2_layer_id
from .vgg import VGG, vgg_layer_id, vgg_min_num_layers, vgg_stage_id
from .vit import (HIVIT, MVIT, VIT, VIT_BLOCKS, blocks_stage_id,
                  vit_blocks_layer_id, vit_layer_id, vit_min_num_layers)

__all__ = [
    'AUTO', 'CONVNEXT', 'DECAY_TYPES', 'DEFAULT_INPUT_SHAPE', 'HIVIT',
    'HOURGLASS', 'HRNET', 'MVIT', 'NO_DECAY_NAMES', 'PVT', 'SWIN', 'SWIN_V2',
    'TOKEN_NAMES', 'VGG', 'VIT', 'VIT_BLOCKS', 'AutoRules', 'BackboneRules',
    'IdRule', 'Matcher', 'block_id', 'blocks_stage_id', 'convnext_layer_id',
    'convnext_min_num_layers', 'convnext_stage_id', 'hourglass_layer_id',
    'hrnet_layer_id', 'hrnet_stage_id', 'ids_from_order', 'is_no_decay',
    'layer_scale', 'per_block_min_num_layers', 'pvt_layer_id',
    'pvt_stage_id', 'stage_of_block', 'staged', 'staged_id',
    'swin_layer_id', 'swin_stage_id', 'swin_v2_layer_id', 'vgg_layer_id',
    'vgg_min_num_layers', 'vgg_stage_id', 'vit_blocks_layer_id',
    'vit_layer_id', 'vit_min_num_layers'
]
