"""The built-in backbone families: one entry each, the one table.

An entry holds everything about a family: the name a config gives in
``paramwise_cfg.rules``, its rules (which carry the display name the log
and the group table show), how to read its blocks per stage from the
module, how its parameter names show them (the fallback for a class
without the attribute), and the backbone classes that get it, by import
path (subclasses inherit it: ResNeXt of ResNet, ...).

Families with a stem plus numbered stages of numbered blocks are rows of
one factory (:func:`layerdecay_plugin.rules.staged.staged`); the others have
rule functions of their own in :mod:`layerdecay_plugin.rules`. Adding a
family is adding an entry here (and a rule function if its naming is
irregular). Torch-free.
"""
from typing import Dict, NamedTuple, Optional, Tuple

from ..rules import (CONVNEXT, HIVIT, HOURGLASS, HRNET, MVIT, PVT, SWIN,
                     SWIN_V2, VGG, VIT, VIT_BLOCKS, BackboneRules)
from ..rules.bert import BERT, BERT_BLOCKS, bert_depths
from ..rules.branches import (BISENET_V1, BISENET_V2, DDRNET, ICNET,
                              STDC_CONTEXT_PATH)
from ..rules.mscan import MSCAN
from ..rules.pyramids import POOLFORMER, TWINS
from ..rules.realtime import CGNET, ERFNET, FASTSCNN, STDC, UNET
from ..rules.staged import staged
from . import depths as d
from .types import BackboneSpec, BlockNames, Depths


class Family(NamedTuple):
    """One built-in backbone family.

    Attributes:
        rules: Its id rules; ``rules.name`` is the display name.
        depths: Reads blocks per stage from the module.
        classes: ``'module.QualName'`` of the backbone classes that get it.
        block_names: How its names show blocks per stage, when a class
            lacks what ``depths`` reads.
    """
    rules: BackboneRules
    depths: Depths
    classes: Tuple[str, ...] = ()
    block_names: Optional[BlockNames] = None

    def spec(self, source: str) -> BackboneSpec:
        """The family as a rule source returns it."""
        return BackboneSpec(self.rules, self.depths, source,
                            self.block_names)


_SWIN_BLOCKS = BlockNames(r'stages\.(?P<stage>\d+)\.blocks\.(?P<block>\d+)\.')
_MMDET = 'mmdet.models.backbones.'
_MMPRETRAIN = 'mmpretrain.models.backbones.'
_MMSEG = 'mmseg.models.backbones.'

#: Family name (as ``paramwise_cfg.rules`` names it) -> family.
FAMILIES: Dict[str, Family] = {
    'convnext': Family(
        CONVNEXT, d.attr_depths('depths'),
        (_MMPRETRAIN + 'convnext.ConvNeXt', ),
        BlockNames(r'stages\.(?P<stage>\d+)\.(?P<block>\d+)\.', 0, 4)),
    # mmpretrain's Swin's own get_layer_depth gives the same layer ids, but
    # no stages; TinyViT names its blocks as Swin does, mmseg's Swin is
    # mmdet's.
    'swin': Family(
        SWIN, d.swin_depths,
        (_MMDET + 'swin.SwinTransformer',
         _MMPRETRAIN + 'swin_transformer.SwinTransformer',
         _MMPRETRAIN + 'tinyvit.TinyViT', _MMSEG + 'swin.SwinTransformer'),
        _SWIN_BLOCKS),
    # mmpretrain's (its ViTEVA02 subclasses it); mmseg's ViT (pre-norm
    # ln_pre), and its BEiT and MAE (a BEiT subclass), which mmseg's own
    # constructor gives these ids but with the final norm at the head's.
    'vit': Family(
        VIT, d.len_of('layers'),
        (_MMPRETRAIN + 'vision_transformer.VisionTransformer',
         _MMSEG + 'vit.VisionTransformer', _MMSEG + 'beit.BEiT'),
        BlockNames(r'layers\.(?P<block>\d+)\.')),
    # ViTDet's ViT (mmdet projects). timm's models (its VisionTransformer
    # too) get their own group_matcher: see backbones.timm.
    'vit_blocks': Family(
        VIT_BLOCKS, d.len_of('blocks'), ('projects.ViTDet.vitdet.vit.ViT', ),
        BlockNames(r'blocks\.(?P<block>\d+)\.')),
    # One id per residual block layer{i}.j after the stem conv1/bn1 (stem.
    # with deep_stem). mmdet's ResNetV1d, ResNeXt, Res2Net, ResNeSt,
    # DetectoRS_*, TridentResNet and RegNet subclass mmdet's ResNet;
    # mmpretrain's RegNet subclasses its ResNet; mmseg's ResNetV1c,
    # ResNetV1d, ResNeXt and ResNeSt subclass its ResNet.
    'resnet': Family(
        staged('ResNet', ('conv1.', 'bn1.', 'gn1.', 'norm1.', 'stem.'),
               r'^layer(\d+)\.(\d+)\.'), d.attr_depths('stage_blocks'),
        (_MMDET + 'resnet.ResNet', _MMPRETRAIN + 'resnet.ResNet',
         _MMSEG + 'resnet.ResNet'),
        BlockNames(r'layer(?P<stage>\d+)\.(?P<block>\d+)\.', 1)),
    'swin_v2': Family(
        SWIN_V2, d.swin_depths,
        (_MMPRETRAIN + 'swin_transformer_v2.SwinTransformerV2', ),
        _SWIN_BLOCKS),
    # HiViT's own get_layer_depth looks for `layers.`, its blocks are
    # `blocks.`: it would leave every block at the head's lr.
    'hivit': Family(HIVIT, d.hivit_depths, (_MMPRETRAIN + 'hivit.HiViT', )),
    'mvit': Family(MVIT, d.mvit_depths, (_MMPRETRAIN + 'mvit.MViT', )),
    # YOLOX's CSPDarknet and RTMDet's CSPNeXt: a stem, then stages
    # stage{i} = [downsampling conv, (SPP), CSP layers], one id per element.
    'csp': Family(
        staged('CSP', 'stem.', r'^stage(\d+)\.(\d+)\.'),
        d.stage_lengths('stage'),
        (_MMDET + 'csp_darknet.CSPDarknet', _MMDET + 'cspnext.CSPNeXt')),
    # YOLOv3's Darknet: stem conv1, stages conv_res_block{i} = a downsampling
    # conv (with the first block it feeds) and residual blocks res{j}.
    'darknet': Family(
        staged('Darknet', 'conv1.', r'^conv_res_block(\d+)\.(?:conv|res(\d+))\.'),
        d.darknet_depths, (_MMDET + 'darknet.Darknet', )),
    # A stem conv1, stages layer{i}, and a last 1x1 conv2 after them that
    # counts as a stage of one block (mmdet's; mmseg's has no conv2).
    'mobilenet_v2': Family(
        staged('MobileNetV2', 'conv1.', r'^layer(\d+)\.(\d+)\.', tail='conv2.'),
        d.mobilenet_v2_depths, (_MMDET + 'mobilenet_v2.MobileNetV2',
                                _MMSEG + 'mobilenet_v2.MobileNetV2')),
    # mmseg's: a stem conv layer0, then one block per layer{i}, the last
    # 1x1 conv included; each layer is its own stage.
    'mobilenet_v3': Family(
        staged('MobileNetV3', 'layer0.', r'^layer(\d+)\.(?:(\d+)\.)?'),
        d.numbered_count('layer'), (_MMSEG + 'mobilenet_v3.MobileNetV3', )),
    # layers.0 is the stem conv, later layers.i are stages of blocks
    # layers.i.j, or one conv module counted as a stage of one block.
    'efficientnet': Family(
        staged('EfficientNet', 'layers.0.', r'^layers\.(\d+)\.(?:(\d+)\.)?'),
        d.efficientnet_depths,
        (_MMDET + 'efficientnet.EfficientNet',
         _MMPRETRAIN + 'efficientnet_v2.EfficientNetV2')),
    # mmseg's HRNet is mmdet's.
    'hrnet': Family(HRNET, d.hrnet_depths,
                    (_MMDET + 'hrnet.HRNet', _MMSEG + 'hrnet.HRNet')),
    # mmdet's PVT v1 (v2 subclasses it); mmseg's MixVisionTransformer
    # (SegFormer) names its stages as PVT v2 does.
    'pvt': Family(PVT, d.pvt_depths,
                  (_MMDET + 'pvt.PyramidVisionTransformer',
                   _MMSEG + 'mit.MixVisionTransformer')),
    # SegNeXt: PVT's stages under flat names patch_embed{s}, block{s}.j,
    # norm{s}.
    'mscan': Family(
        MSCAN, d.stage_lengths('block'), (_MMSEG + 'mscan.MSCAN', ),
        BlockNames(r'block(?P<stage>\d+)\.(?P<block>\d+)\.', 1)),
    # mmseg's Twins PCPVT (SVT subclasses it): PVT's ids, stage lists.
    'twins': Family(TWINS, d.lengths_of('layers'), (_MMSEG + 'twins.PCPVT', ),
                    BlockNames(r'layers\.(?P<stage>\d+)\.(?P<block>\d+)\.')),
    # mmseg's PoolFormer configs fine-tune mmpretrain's.
    'poolformer': Family(POOLFORMER, d.poolformer_depths,
                         (_MMPRETRAIN + 'poolformer.PoolFormer', )),
    # mmseg's real-time and encoder-decoder networks (rules.realtime,
    # rules.branches): one id per block a paper's layer table counts, in
    # the order the blocks run.
    'stdc': Family(STDC, d.stdc_depths, (_MMSEG + 'stdc.STDCNet', )),
    'stdc_context_path': Family(STDC_CONTEXT_PATH, d.stdc_context_path_depths,
                                (_MMSEG + 'stdc.STDCContextPathNet', )),
    'fastscnn': Family(FASTSCNN, d.fastscnn_depths,
                       (_MMSEG + 'fast_scnn.FastSCNN', )),
    'cgnet': Family(
        CGNET, d.stage_lengths('level'), (_MMSEG + 'cgnet.CGNet', ),
        BlockNames(r'level(?P<stage>\d+)\.(?P<block>\d+)\.', 1)),
    'erfnet': Family(ERFNET, d.coder_depths, (_MMSEG + 'erfnet.ERFNet', )),
    'unet': Family(UNET, d.coder_depths, (_MMSEG + 'unet.UNet', )),
    'bisenetv1': Family(BISENET_V1, d.bisenetv1_depths,
                        (_MMSEG + 'bisenetv1.BiSeNetV1', )),
    'bisenetv2': Family(BISENET_V2, d.bisenetv2_depths,
                        (_MMSEG + 'bisenetv2.BiSeNetV2', )),
    'icnet': Family(ICNET, d.icnet_depths, (_MMSEG + 'icnet.ICNet', )),
    # PIDNet is DDRNet with a third branch.
    'ddrnet': Family(DDRNET, d.ddrnet_depths,
                     (_MMSEG + 'ddrnet.DDRNet', _MMSEG + 'pidnet.PIDNet')),
    'hourglass': Family(HOURGLASS, d.hourglass_depths,
                        (_MMDET + 'hourglass.HourglassNet', )),
    'vgg': Family(VGG, d.vgg_depths, (_MMDET + 'ssd_vgg.SSDVGG', )),
    # Text towers (Grounding DINO's language_model): HuggingFace's
    # BertModel, and mmdet's, which wraps one.
    'bert': Family(
        BERT, bert_depths,
        ('mmdet.models.language_models.bert.BertModel',
         'transformers.models.bert.modeling_bert.BertModel'),
        BlockNames(BERT_BLOCKS)),
}
