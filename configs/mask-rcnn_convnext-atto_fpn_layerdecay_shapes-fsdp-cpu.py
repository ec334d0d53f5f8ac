# CPU variant of the FSDP config, used by tests/test_sharded.py: mmdet's Mask
# R-CNN ConvNeXt (atto, 128 px) on the generated shapes data, trained by
# mmengine's FlexibleRunner with FSDPStrategy on 2 CPU processes:
#   .venv/bin/python -m torch.distributed.run --nproc_per_node=2 \
#       tools/train.py configs/mask-rcnn_convnext-atto_fpn_layerdecay_shapes-fsdp-cpu.py
# tools/train.py sets the wrapper's device_id to the CPU (mmengine passes the
# local rank, a CUDA id). Layer decay needs use_orig_params=True.
_base_ = ['./mask-rcnn_convnext-t-p4-w7_fpn_layerdecay_shapes-demo-cpu.py']

runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        type='MMFullyShardedDataParallel',
        use_orig_params=True,
        # one FSDP unit per ~20k parameters: several units per stage
        auto_wrap_policy=dict(
            type='torch.distributed.fsdp.wrap.size_based_auto_wrap_policy',
            min_num_params=20000)),
    # a full (unsharded) checkpoint on rank 0, loadable without FSDP
    state_dict_cfg='full')

model = dict(
    backbone=dict(arch='atto', drop_path_rate=0.),
    neck=dict(in_channels=[40, 80, 160, 320]))
# ConvNeXt-atto's stage 2 has 6 blocks (T: 9), so layer_wise decay needs
# num_layers=5, not the 6 the demo sets for ConvNeXt-T; a larger value only
# puts an extra decay_rate factor on the lrs of stages 0-2.
optim_wrapper = dict(paramwise_cfg=dict(num_layers=5))
train_dataloader = dict(
    batch_size=1,
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='Resize', scale=(128, 128), keep_ratio=True),
        dict(type='PackDetInputs')
    ]))
max_iters = 4
train_cfg = dict(max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.25, by_epoch=False, begin=0,
         end=max_iters)
]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=2, max_keep_ckpts=2, save_optimizer=True))
