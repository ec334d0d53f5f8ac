# mmdet's Cascade Mask R-CNN ConvNeXt-S (COCO, 3x, AMP, ImageNet-pretrained
# backbone) trained with FSDP: only the optimizer constructor and the
# runner/strategy are changed. Train with mmdet's tools/train.py (it builds
# `runner_type`) or ours, one process per GPU:
#   torchrun --nproc_per_node=8 tools/train.py CONFIG
# Layer decay under FSDP needs use_orig_params=True (with False, FSDP merges
# the parameters of many layers into one tensor and the constructor refuses
# it). Param groups are identical to a single-process run.
_base_ = [
    'mmdet::convnext/'
    'cascade-mask-rcnn_convnext-s-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'
]

custom_imports = dict(
    imports=['mmpretrain.models', 'layerdecay_plugin'],
    allow_failed_imports=False)

optim_wrapper = dict(constructor='LayerDecayPluginConstructor')

runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        type='MMFullyShardedDataParallel',
        use_orig_params=True,
        # one FSDP unit per ~10M parameters
        auto_wrap_policy=dict(
            type='torch.distributed.fsdp.wrap.size_based_auto_wrap_policy',
            min_num_params=int(1e7))),
    # one full checkpoint on rank 0, loadable without FSDP
    state_dict_cfg='full')
