# CPU variant of the DeepSpeed config, used by tests/test_sharded.py: the FSDP
# CPU config's model and data, trained with DeepSpeed ZeRO (stage 2 here; the
# tests also run stage 3) through mmengine's DeepSpeedStrategy on 2 CPU
# processes:
#   .venv/bin/python -m torch.distributed.run --nproc_per_node=2 tools/train.py \
#       configs/mask-rcnn_convnext-atto_fpn_layerdecay_shapes-deepspeed-cpu.py
# tools/train.py applies the CPU workarounds of tools/dist_cpu.py
# (DS_ACCELERATOR=cpu, mmengine/DeepSpeed 0.19 import guard).
_base_ = ['./mask-rcnn_convnext-atto_fpn_layerdecay_shapes-fsdp-cpu.py']

strategy = dict(
    _delete_=True,
    type='DeepSpeedStrategy',
    zero_optimization=dict(stage=2),
    train_micro_batch_size_per_gpu=1,
    gradient_accumulation_steps=1)
# DeepSpeed steps the optimizer itself; the constructor's AdamW (with its
# layer-decay param groups) becomes DeepSpeed's client optimizer.
optim_wrapper = dict(type='DeepSpeedOptimWrapper')
