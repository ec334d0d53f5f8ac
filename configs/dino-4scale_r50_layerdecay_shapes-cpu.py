# DINO (4-scale, ResNet-50) with layer decay on the shapes data, CPU.
# mmdet's own optim_wrapper is kept: its custom_keys={'backbone':
# dict(lr_mult=0.1)} and clip_grad compose with layer decay, so a backbone
# layer's lr is 1e-4 x 0.1 x 0.9 ** (17 - layer id).
# Data first: .venv/bin/python tools/make_shapes_coco.py data/shapes
_base_ = ['mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py']

custom_imports = dict(
    imports=['layerdecay_plugin'], allow_failed_imports=False)

data_root = 'data/shapes/'
max_iters = 20

model = dict(
    backbone=dict(init_cfg=None),  # random weights: no download
    bbox_head=dict(num_classes=3))

train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=('square', 'circle', 'triangle')),
        ann_file='annotations/train.json',
        data_prefix=dict(img='images/'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            # DINO picks 900 queries among the encoder's tokens: 1,360 at
            # 256 px, too few below ~240 px (or lower model.num_queries)
            dict(type='Resize', scale=(256, 256), keep_ratio=True),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackDetInputs')
        ]))
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=6),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[15], gamma=0.1)
]

# Merged into mmdet's: constructor and decay_rate are added, its optimizer,
# clip_grad and custom_keys stay. ResNet-50: num_layers 16 inferred.
optim_wrapper = dict(
    constructor='LayerDecayPluginConstructor',
    paramwise_cfg=dict(decay_rate=0.9))

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5),
    # weights only, once: the optimizer state would triple the file
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters,
                    max_keep_ckpts=1, save_optimizer=False))
custom_hooks = [dict(type='LayerDecayLrHook', layers='ends')]
log_processor = dict(by_epoch=False)
