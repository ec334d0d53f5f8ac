# mmdet's Cascade Mask R-CNN ConvNeXt-S (COCO, 3x, ImageNet-pretrained
# backbone) trained with DeepSpeed ZeRO-2: only the optimizer constructor and
# the runner/strategy are changed. DeepSpeed does mixed precision itself, so
# its DeepSpeedOptimWrapper replaces AmpOptimWrapper. One process per GPU:
#   torchrun --nproc_per_node=8 tools/train.py CONFIG
# The constructor's AdamW, with its layer-decay param groups, becomes
# DeepSpeed's client optimizer; ZeRO keeps every group's lr and weight decay.
# For ZeRO-3, set zero_optimization=dict(stage=3).
_base_ = [
    'mmdet::convnext/'
    'cascade-mask-rcnn_convnext-s-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'
]

custom_imports = dict(
    imports=['mmpretrain.models', 'layerdecay_plugin'],
    allow_failed_imports=False)

optim_wrapper = dict(
    type='DeepSpeedOptimWrapper',
    constructor='LayerDecayPluginConstructor')

runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    fp16=dict(enabled=True, initial_scale_power=16),
    inputs_to_half=['inputs'],
    zero_optimization=dict(
        stage=2, overlap_comm=True, contiguous_gradients=True))
