# CPU variant for DeepSpeed ZeRO-3, used by tests/test_sharded.py: a
# RetinaNet with a ConvNeXt-atto backbone on the shapes data, 2 CPU processes.
# ZeRO-3 gathers each module's parameters when the module runs and requires
# every rank to run the same modules in the same order; a two-stage detector
# does not (its RoI branches depend on each rank's images) and DeepSpeed
# stops with "Detected a disagreement on list length" or hangs. A one-stage
# detector runs the same modules on every rank. That is a property of
# ZeRO-3 with two-stage detectors, not of layer decay.
_base_ = ['./mask-rcnn_convnext-atto_fpn_layerdecay_shapes-deepspeed-cpu.py']

strategy = dict(zero_optimization=dict(stage=3))
model = dict(
    _delete_=True,
    type='RetinaNet',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type='mmpretrain.ConvNeXt',
        arch='atto',
        out_indices=[1, 2, 3],
        drop_path_rate=0.,
        layer_scale_init_value=1.0,
        gap_before_final_norm=False,
        init_cfg=None),
    neck=dict(
        type='FPN',
        in_channels=[80, 160, 320],
        out_channels=64,
        add_extra_convs='on_input',
        num_outs=5),
    bbox_head=dict(
        type='RetinaHead',
        num_classes=3,
        in_channels=64,
        stacked_convs=2,
        feat_channels=64,
        anchor_generator=dict(
            type='AnchorGenerator',
            octave_base_scale=4,
            scales_per_octave=3,
            ratios=[0.5, 1.0, 2.0],
            strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[.0, .0, .0, .0],
            target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(
            type='FocalLoss',
            use_sigmoid=True,
            gamma=2.0,
            alpha=0.25,
            loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    train_cfg=dict(
        assigner=dict(
            type='MaxIoUAssigner',
            pos_iou_thr=0.5,
            neg_iou_thr=0.4,
            min_pos_iou=0,
            ignore_iof_thr=-1),
        sampler=dict(type='PseudoSampler'),
        allowed_border=-1,
        pos_weight=-1,
        debug=False),
    test_cfg=dict(
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.5),
        max_per_img=100))
