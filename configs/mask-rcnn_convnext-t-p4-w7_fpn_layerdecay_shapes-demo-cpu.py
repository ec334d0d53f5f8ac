# CPU demo: mmdet's Mask R-CNN ConvNeXt-T config with layerdecay_plugin's
# constructor, trained for 20 iterations on the synthetic shapes dataset that
# `make demo` generates (tools/make_shapes_coco.py). No download: the
# backbone starts from random weights (init_cfg=None). tools/train.py ends
# with a summary of the run: the group table, each layer's lr at the first,
# the highest and the last iteration, and where the checkpoint, log, scalars and the picture
# of every layer's lr (layer_lrs.png) are.
_base_ = ['mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py']

custom_imports = dict(
    imports=['mmpretrain.models', 'layerdecay_plugin'],
    allow_failed_imports=False)

data_root = 'data/shapes/'
metainfo = dict(classes=('square', 'circle', 'triangle'))
max_iters = 20

model = dict(
    backbone=dict(init_cfg=None, drop_path_rate=0.1),
    roi_head=dict(
        bbox_head=dict(num_classes=3), mask_head=dict(num_classes=3)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(256, 256), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/train.json',
        data_prefix=dict(img='images/'),
        pipeline=train_pipeline))
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=6),
    dict(
        type='MultiStepLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[15],
        gamma=0.1)
]

optim_wrapper = dict(
    type='OptimWrapper',  # AmpOptimWrapper needs a GPU
    constructor='LayerDecayPluginConstructor',
    paramwise_cfg=dict(decay_rate=0.95, decay_type='layer_wise', num_layers=6),
    optimizer=dict(lr=2e-4))

default_hooks = dict(
    # every iteration: the scalars (vis_data/scalars.json) and the picture
    # then have every iteration's lr of every layer
    logger=dict(type='LoggerHook', interval=1),
    # One weights-only checkpoint at the end (~190 MB instead of 546 MB with
    # AdamW's state); set save_optimizer=True to be able to resume from it.
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters,
                    max_keep_ckpts=1, save_optimizer=False))
# layer_{id}_lr of every layer id in the log and scalars
custom_hooks = [dict(type='LayerDecayLrHook', layers='all')]
log_processor = dict(by_epoch=False)
env_cfg = dict(cudnn_benchmark=False)
