"""torchrun worker of test_light_knobs.py: the light toy config with
``freeze_below`` (its stem, layer id 0, frozen) trained on 2 CPU processes
(gloo): by mmengine's ``Runner`` with DDP as it wraps by default
(``find_unused_parameters=False``: refused at build time), with
``find_unused_parameters=True``, and by ``FlexibleRunner`` with FSDP.
Writes to ``OUT.{rank}.json``, per engine, each parameter's
``requires_grad``, whether training changed it (None for an empty FSDP
shard) and the optimizer's parameter names, or the error.

Usage: torchrun --nproc_per_node=2 knobs_worker.py WORK_DIR OUT
"""
import os
import sys

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS, RUNNERS
from mmengine.runner import Runner

import dist_compat
from layerdecay_plugin import LayerDecayConfigError
from layerdecay_plugin.sharding import clean_name
from light.cli_toys import toy_run_cfg
from light.dist import write_and_leave

MAX_ITERS = 3
#: num_layers=3, decay_rate=0.9: the stem's scale is 0.9**4 = 0.656, the
#: first block's 0.729.
FREEZE_BELOW = 0.7
ENGINES = ('ddp', 'ddp_find_unused', 'fsdp')


@HOOKS.register_module()
class KnobsRecordHook(Hook):
    """The local parameters before and after training."""

    def before_train(self, runner) -> None:
        self.before = {n: p.detach().clone()
                       for n, p in runner.model.named_parameters()}

    def after_train(self, runner) -> None:
        self.record = {
            'params': {
                clean_name(n).replace('module.', '', 1): [p.requires_grad,
                            None if p.numel() == 0 else
                            not torch.equal(p.detach(), self.before[n])]
                for n, p in runner.model.named_parameters()},
            'optimized': sorted(
                n for g in runner.optim_wrapper.optimizer.param_groups
                for n in g['param_names']),
        }


def train(engine: str, work_dir: str) -> dict:
    cfg = toy_run_cfg(work_dir, f'knobs-{engine}', MAX_ITERS, 2 * MAX_ITERS,
                      [], [dict(type='KnobsRecordHook')], None)
    cfg.optim_wrapper.paramwise_cfg.update(freeze_below=FREEZE_BELOW)
    if engine == 'fsdp':
        cfg.runner_type = 'FlexibleRunner'
        cfg.strategy = dict(
            type='FSDPStrategy',
            model_wrapper=dict(type='MMFullyShardedDataParallel',
                               use_orig_params=True))
    dist_compat.apply(cfg)
    if engine == 'ddp_find_unused':
        cfg.model_wrapper_cfg.find_unused_parameters = True
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else \
        Runner.from_cfg(cfg)
    try:
        runner.train()
    except LayerDecayConfigError as error:
        return dict(error=str(error))
    return next(h for h in runner.hooks
                if isinstance(h, KnobsRecordHook)).record


def main(work: str, out: str, engines: str = ','.join(ENGINES)) -> None:
    write_and_leave(
        {e: train(e, os.path.join(work, e)) for e in engines.split(',')},
        out)


if __name__ == '__main__':
    main(*sys.argv[1:4])
