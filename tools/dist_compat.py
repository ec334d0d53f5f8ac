"""Workarounds that mmengine 0.10.7's distributed runners need today, for the
tests, the CPU configs and tools/train.py. None of it is part of the plugin:
the plugin only has to be right about the parameters it is given.

Any machine (torch >= 2.1):

- ``FSDPStrategy.load_optim_state_dict`` calls
  ``FSDP.optim_state_dict_to_load(state_dict, model, optimizer)``, the
  argument order of torch 2.0; torch 2.1 made it ``(model, optimizer,
  state_dict)``, so resuming an FSDP run fails ("unhashable type: 'dict'").
  :func:`patch_fsdp_resume` calls it the current way.
- mmengine's ``ZeroRedundancyOptimizer.state_dict`` gathers the shards from
  every rank, but ``DDPStrategy.save_checkpoint`` runs on rank 0 only, so
  saving a checkpoint hangs. :func:`patch_zero_checkpoint` gathers on every
  rank first.
- DeepSpeed 0.19.8: mmengine's ``DeepSpeedStrategy`` registers
  ``deepspeed.runtime.fp16.onebit`` optimizers, a module DeepSpeed 0.19.7
  removed, so its constructor fails. :func:`patch_deepspeed` guards it.
- DeepSpeed ZeRO-1/2 resumes its own checkpoint format and checks its flat
  buffers' layout before it loads the optimizer state into the optimizer
  our constructor built, so a layer-decay config that changed the groups
  stops with DeepSpeed's "parameter-alignment layout does not match"
  instead of the plugin's error that names the change.
  :func:`patch_deepspeed` runs the plugin's check first
  (``layerdecay_plugin.resume.check_load``; see docs/resume.md).

Machines without GPU only:

- mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device``; it skips
  its own initialisation when a process group exists, so :func:`init_gloo`
  makes one first.
- ``DDPStrategy`` / ``MMDistributedDataParallel`` get ``device_ids=[rank]``
  and ``FSDPStrategy`` gets ``device_id=rank``, both taken for CUDA devices:
  :func:`adapt_for_cpu` sets ``device_ids=None`` / ``device_id=cpu``.
- DeepSpeed needs ``DS_ACCELERATOR=cpu`` and compiles a shared-memory
  communication op with g++ on first use (~2 minutes), which gloo runs do not
  need: :func:`patch_deepspeed` skips it.
"""
import os

import torch

FSDP_TYPES = ('FSDPStrategy', )
DEEPSPEED_TYPES = ('DeepSpeedStrategy', )


def apply(cfg) -> None:
    """Apply what a config's runner needs, in place (see the module doc).

    Args:
        cfg (mmengine.Config): A ``Runner`` config (DDP through
            ``model_wrapper_cfg``) or a ``FlexibleRunner`` config (with
            ``strategy``), run under torchrun.
    """
    cfg.launcher = 'pytorch'
    kind = (cfg.get('strategy') or {}).get('type')
    if kind in FSDP_TYPES:
        patch_fsdp_resume()
    elif kind in DEEPSPEED_TYPES:
        patch_deepspeed()
    elif kind is not None:
        patch_zero_checkpoint()
    if not torch.cuda.is_available():
        init_gloo()
        adapt_for_cpu(cfg)


def init_gloo() -> None:
    """Start the gloo process group of a torchrun worker, once."""
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend='gloo')


def adapt_for_cpu(cfg) -> None:
    """Make a config's distributed settings work on CPU, in place.

    Args:
        cfg (mmengine.Config): A ``Runner`` or ``FlexibleRunner`` config.
    """
    strategy = cfg.get('strategy')
    if strategy is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel', device_ids=None)
        return
    kind = strategy.get('type')
    wrapper = dict(strategy.get('model_wrapper') or {})
    if kind in FSDP_TYPES:
        wrapper.setdefault('type', 'MMFullyShardedDataParallel')
        wrapper['device_id'] = torch.device('cpu')
    elif kind in DEEPSPEED_TYPES:
        return  # no wrapper to adapt; patch_deepspeed chose the CPU backend
    else:  # DDPStrategy and subclasses
        wrapper.setdefault('type', 'MMDistributedDataParallel')
        wrapper['device_ids'] = None
    strategy['model_wrapper'] = wrapper


def patch_deepspeed() -> None:
    """Let mmengine 0.10.7's DeepSpeedStrategy run DeepSpeed 0.19.8."""
    import sys
    if not torch.cuda.is_available():
        os.environ.setdefault('DS_ACCELERATOR', 'cpu')
        import deepspeed.comm.torch  # noqa: F401

        # `import deepspeed.comm.torch as m` binds deepspeed.comm's `torch`
        # attribute, not the module whose function the backend calls.
        sys.modules['deepspeed.comm.torch'].build_shm_op = lambda: None
    import mmengine._strategy.deepspeed as mm_deepspeed
    register = mm_deepspeed.register_deepspeed_optimizers
    if getattr(register, '_guarded', False):
        return

    def guarded():
        try:
            return register()
        except ImportError:  # deepspeed.runtime.fp16.onebit is gone
            return []

    guarded._guarded = True
    mm_deepspeed.register_deepspeed_optimizers = guarded
    check_zero_resume()


def check_zero_resume() -> None:
    """Check a ZeRO-1/2 checkpoint's layer-decay groups before DeepSpeed's
    own layout checks (the ZeRO-3 optimizer loads the state into our
    optimizer first, which checks it itself)."""
    from deepspeed.checkpoint.constants import BASE_OPTIMIZER_STATE
    from deepspeed.runtime.zero.stage_1_and_2 import DeepSpeedZeroOptimizer

    from layerdecay_plugin.resume import check_load

    load = DeepSpeedZeroOptimizer.load_state_dict
    if getattr(load, '_checks_layer_decay', False):
        return

    def load_state_dict(self, state_dict_list, *args, **kwargs):
        # One entry per data-parallel rank, the same groups in each; each
        # rank reads only its own (the others are None) unless the
        # checkpoint is elastic, which keeps no groups (a list): nothing
        # to check then.
        base = next((sd.get(BASE_OPTIMIZER_STATE)
                     for sd in state_dict_list or () if sd), None)
        if isinstance(base, dict):
            check_load(self.optimizer, base)
        return load(self, state_dict_list, *args, **kwargs)

    load_state_dict._checks_layer_decay = True
    DeepSpeedZeroOptimizer.load_state_dict = load_state_dict


def patch_zero_checkpoint() -> None:
    """Gather ZeroRedundancyOptimizer shards on every rank before rank 0
    saves a checkpoint (DDPStrategy.save_checkpoint is rank-0 only)."""
    from mmengine._strategy import DDPStrategy
    from mmengine.optim import ZeroRedundancyOptimizer

    save = DDPStrategy.save_checkpoint
    if getattr(save, '_gathers_zero', False):
        return

    def save_checkpoint(self, *args, **kwargs):
        optimizer = getattr(getattr(self, 'optim_wrapper', None), 'optimizer',
                            None)
        if not isinstance(optimizer, ZeroRedundancyOptimizer):
            return save(self, *args, **kwargs)
        optimizer.consolidate_state_dict()  # collective: every rank
        # state_dict() would gather again, on rank 0 alone: skip that.
        optimizer.consolidate_state_dict = lambda *a, **k: None
        try:
            return save(self, *args, **kwargs)
        finally:
            del optimizer.consolidate_state_dict

    save_checkpoint._gathers_zero = True
    DDPStrategy.save_checkpoint = save_checkpoint


def patch_fsdp_resume() -> None:
    """Call FSDP.optim_state_dict_to_load with torch >= 2.1's arguments."""
    from mmengine._strategy import FSDPStrategy
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    if getattr(FSDPStrategy.load_optim_state_dict, '_fixed', False):
        return

    def load_optim_state_dict(self, state_dict: dict) -> None:
        optimizer = self.optim_wrapper.optimizer
        self.optim_wrapper.load_state_dict(
            FSDP.optim_state_dict_to_load(self.model, optimizer, state_dict))

    load_optim_state_dict._fixed = True
    FSDPStrategy.load_optim_state_dict = load_optim_state_dict
