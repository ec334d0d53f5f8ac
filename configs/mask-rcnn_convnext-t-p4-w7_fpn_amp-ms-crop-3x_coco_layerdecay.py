# The config a real user runs: mmdet's Mask R-CNN ConvNeXt-T (GPU, AMP,
# COCO, 3x schedule, ImageNet-pretrained backbone) with only the optimizer
# constructor switched to layerdecay_plugin's. Same param groups as mmdet's,
# plus validation of paramwise_cfg.
_base_ = ['mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py']

custom_imports = dict(
    imports=['mmpretrain.models', 'layerdecay_plugin'],
    allow_failed_imports=False)

optim_wrapper = dict(constructor='LayerDecayPluginConstructor')
