# Swin-T Mask R-CNN with layer decay on the shapes data, CPU: the demo config
# (data, schedule, hooks) with mmdet's Swin-T backbone in place of ConvNeXt-T.
# Data first: .venv/bin/python tools/make_shapes_coco.py data/shapes
_base_ = ['./mask-rcnn_convnext-t-p4-w7_fpn_layerdecay_shapes-demo-cpu.py']

model = dict(
    backbone=dict(
        _delete_=True,  # a ConvNeXt's keys mean nothing to Swin
        type='SwinTransformer',
        embed_dims=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        init_cfg=None),  # random weights: no download
    neck=dict(in_channels=[96, 192, 384, 768]))

optim_wrapper = dict(
    # _delete_ drops the demo's num_layers=6 (ConvNeXt-T's): Swin-T needs
    # 12, which is inferred and logged when left out.
    paramwise_cfg=dict(_delete_=True, decay_rate=0.9),
    # Swin usually trains with a smaller lr than ConvNeXt.
    optimizer=dict(lr=1e-4))
