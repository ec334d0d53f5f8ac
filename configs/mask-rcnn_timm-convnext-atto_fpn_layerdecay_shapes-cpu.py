# timm's ConvNeXt-atto through mmpretrain's TIMMBackbone (features_only, as
# mmdet's timm example configs use it) in Mask R-CNN with layer decay on the
# shapes data, CPU: the demo config (data, schedule, hooks) with this
# backbone. decay_rate alone: the layer ids come from timm's own
# group_matcher of the model (stem 0, then one id per block, the
# downsample of a stage with its first block), num_layers (12) is inferred.
# Data first: .venv/bin/python tools/make_shapes_coco.py data/shapes
_base_ = ['./mask-rcnn_convnext-t-p4-w7_fpn_layerdecay_shapes-demo-cpu.py']

model = dict(
    backbone=dict(
        _delete_=True,  # mmpretrain ConvNeXt's keys mean nothing to timm's
        type='mmpretrain.TIMMBackbone',
        model_name='convnext_atto',
        features_only=True,
        pretrained=False,  # random weights: no download
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1),
    neck=dict(in_channels=[40, 80, 160, 320]))

optim_wrapper = dict(
    # _delete_ drops the demo's num_layers=6 (mmpretrain ConvNeXt-T's): timm
    # groups ConvNeXt-atto into 12 blocks after the stem, inferred and
    # logged when left out.
    paramwise_cfg=dict(_delete_=True, decay_rate=0.9))
