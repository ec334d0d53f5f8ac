# CPU variant with mmengine's ZeroRedundancyOptimizer (optimizer state
# sharded across DDP ranks), used by tests/test_sharded.py: the FSDP CPU
# config's model and data, FlexibleRunner with DDPStrategy on 2 CPU processes.
_base_ = ['./mask-rcnn_convnext-atto_fpn_layerdecay_shapes-fsdp-cpu.py']

strategy = dict(_delete_=True, type='DDPStrategy')
optim_wrapper = dict(
    optimizer=dict(
        _delete_=True,
        type='ZeroRedundancyOptimizer',
        optimizer_type='AdamW',
        lr=2e-4,
        betas=(0.9, 0.999),
        weight_decay=0.05))
