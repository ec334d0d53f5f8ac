"""torchrun worker of test_light_resume.py: the light toy config trained on
2 CPU processes (gloo) by mmengine's ``Runner`` with DDP, and its
``FlexibleRunner`` with FSDP and with ``ZeroRedundancyOptimizer``, each
resumed from its iteration-2 checkpoint: unchanged, with ``decay_rate``
changed, and with ``num_layers`` changed. Writes to the JSON file argv[3]
(rank 0), per engine and run, each iteration's lr per group and the
optimizer's step count at the start, or the error of the run.

Usage: torchrun --nproc_per_node=2 resume_worker.py ENGINE[,ENGINE...] \
    WORK_DIR OUT [RUN,...]
(engines: ddp, fsdp, zero, and deepspeed_zero2/3 where DeepSpeed is
installed; runs: same, decay_rate, num_layers, all three by default)
"""
import json
import os
import sys

from mmengine.config import Config
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS, RUNNERS
from mmengine.runner import Runner

import dist_compat
from layerdecay_plugin import LayerDecayConfigError
from light.cli_toys import toy_run_cfg

MAX_ITERS = 4
# Resumed from the unchanged run's checkpoint: same groups, other lr_scales;
# other groups (head id 4 -> 6: groups new and gone, parameters moved).
CHANGES = dict(decay_rate=dict(decay_rate=0.5), num_layers=dict(num_layers=5))

STRATEGIES = {
    'ddp': None,  # Runner, MMDistributedDataParallel
    'fsdp': dict(
        type='FSDPStrategy',
        model_wrapper=dict(
            type='MMFullyShardedDataParallel', use_orig_params=True,
            auto_wrap_policy=dict(
                type='torch.distributed.fsdp.wrap.'
                'size_based_auto_wrap_policy', min_num_params=50)),
        state_dict_cfg='full'),
    'zero': dict(type='DDPStrategy'),
    # full tier only (needs DeepSpeed): tests/test_resume.py
    'deepspeed_zero2': dict(type='DeepSpeedStrategy',
                            zero_optimization=dict(stage=2),
                            train_micro_batch_size_per_gpu=2,
                            gradient_accumulation_steps=1),
    'deepspeed_zero3': dict(type='DeepSpeedStrategy',
                            zero_optimization=dict(stage=3),
                            train_micro_batch_size_per_gpu=2,
                            gradient_accumulation_steps=1),
}


@HOOKS.register_module()
class ResumeRecordHook(Hook):
    """Each iteration's lr per group, and the step count at the start."""

    def before_train(self, runner) -> None:
        optimizer = runner.optim_wrapper.optimizer
        inner = getattr(optimizer, 'optim', optimizer)  # ZeRO's local one
        steps = [float(s['step']) for s in inner.state.values()
                 if 'step' in s]
        self.record = dict(step_at_start=max(steps) if steps else 0.,
                           lrs={})

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.record['lrs'][runner.iter] = {
            g['group_name']: g['lr']
            for g in runner.optim_wrapper.optimizer.param_groups}


def config(engine: str, work_dir: str, **paramwise) -> Config:
    cfg = toy_run_cfg(
        work_dir, f'resume-{engine}-{os.path.basename(work_dir)}', MAX_ITERS,
        4 * MAX_ITERS,
        [dict(type='LinearLR', start_factor=0.25, by_epoch=False, begin=0,
              end=MAX_ITERS)],
        [dict(type='ResumeRecordHook')], 2)
    cfg.optim_wrapper.paramwise_cfg.update(paramwise)
    if engine.startswith('deepspeed'):
        cfg.optim_wrapper.type = 'DeepSpeedOptimWrapper'
    if engine == 'zero':
        cfg.optim_wrapper.optimizer = dict(
            type='ZeroRedundancyOptimizer', optimizer_type='AdamW',
            lr=cfg.optim_wrapper.optimizer.lr,
            weight_decay=cfg.optim_wrapper.optimizer.weight_decay)
    if STRATEGIES[engine] is not None:
        cfg.runner_type = 'FlexibleRunner'
        cfg.strategy = STRATEGIES[engine]
    dist_compat.apply(cfg)
    return cfg


def train(cfg: Config) -> dict:
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else \
        Runner.from_cfg(cfg)
    runner.train()
    return next(h for h in runner.hooks
                if isinstance(h, ResumeRecordHook)).record


def resume_runs(engine: str, work: str, runs: list) -> dict:
    """Train, then resume unchanged ('same') and with CHANGES."""
    found = dict(first=train(config(engine, os.path.join(work, 'first'))))
    checkpoint = os.path.join(work, 'first', 'iter_2.pth')
    for key in runs:
        change = CHANGES.get(key, {})
        cfg = config(engine, os.path.join(work, key), **change)
        cfg.resume, cfg.load_from = True, checkpoint
        try:
            found[key] = train(cfg)
        except LayerDecayConfigError as error:
            found[key] = str(error)
        except Exception as error:  # noqa: BLE001  (what the test must see)
            found[key] = f'{type(error).__name__}: {error}'
    return found


def main(engines: str, work: str, out: str,
         runs: str = 'same,decay_rate,num_layers') -> None:
    found = {
        engine: resume_runs(engine, os.path.join(work, engine),
                            runs.split(','))
        for engine in engines.split(',')
    }
    if get_rank() == 0:
        with open(out, 'w') as f:
            json.dump(found, f)


if __name__ == '__main__':
    main(*sys.argv[1:5])
