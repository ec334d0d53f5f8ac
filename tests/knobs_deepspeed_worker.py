"""torchrun worker of test_knobs_deepspeed.py: the light toy config of
tests/light/resume_worker.py (4 iterations, a checkpoint at iteration 2)
with ``min_lr_scale`` and ``freeze_below`` set, trained on 2 CPU processes
(gloo) by ``FlexibleRunner`` with ``DeepSpeedStrategy`` at ZeRO stage 2 and
3; then resumed from its iteration-2 checkpoint unchanged and with
``freeze_below`` changed. Writes to ``OUT.{rank}.json``, per engine and run,
each parameter's ``requires_grad`` and whether training changed it (whole
values: gathered under ZeRO-3), the optimizer's groups with the names of
the parameters DeepSpeed really steps in each, or the error of the run.

Usage: torchrun --nproc_per_node=2 knobs_deepspeed_worker.py WORK_DIR OUT \
    [ENGINE,...]
"""
import os
import sys
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS, RUNNERS

import dist_compat
from dist_helpers import _detector, _members
from layerdecay_plugin import LayerDecayConfigError
from light.dist import write_and_leave
from light.resume_worker import config

#: rules 'vit_blocks', num_layers 3: ids 0-4 have scales 0.5**(4 - id),
#: i.e. 0.0625 (raised to 0.1 by the floor), 0.125, 0.25, 0.5, 1: ids 0
#: and 1 (the stem and the first block) are frozen.
KNOBS = dict(decay_rate=0.5, min_lr_scale=0.1, freeze_below=0.2)
#: Resumed with only id 0 frozen: id 1's groups are new.
CHANGED = dict(KNOBS, freeze_below=0.11)
ENGINES = ('deepspeed_zero2', 'deepspeed_zero3')


def whole_values(model) -> dict:
    """Every parameter's whole value, gathered where ZeRO-3 partitioned
    it (collective: every rank calls it)."""
    import deepspeed  # after patch_deepspeed chose the CPU accelerator
    params = list(model.named_parameters())
    partitioned = [p for _, p in params if hasattr(p, 'ds_id')]
    with deepspeed.zero.GatheredParameters(partitioned,
                                           enabled=bool(partitioned)):
        return {n: p.detach().clone() for n, p in params}


@HOOKS.register_module()
class FrozenRecordHook(Hook):
    """Parameters before and after training, and the stepped groups."""

    def before_train(self, runner) -> None:
        self.start_iter = runner.iter
        self.before = whole_values(_detector(runner.model))

    def after_train(self, runner) -> None:
        model = _detector(runner.model)
        after = whole_values(model)
        names = {id(p): n for n, p in model.named_parameters()}
        optimizer = runner.optim_wrapper.optimizer
        self.record = dict(
            params={n: [p.requires_grad,
                        not torch.equal(after[n], self.before[n])]
                    for n, p in model.named_parameters()},
            groups=[dict({k: g[k] for k in ('group_name', 'lr_scale',
                                            'initial_lr', 'weight_decay',
                                            'param_names')},
                         stepped=[names[id(p)] for p in members])
                    for g, members in zip(optimizer.param_groups,
                                          _members(optimizer))],
            iters=[self.start_iter, runner.iter])


def train(engine: str, work_dir: str, knobs: dict,
          resume_from: Optional[str] = None) -> dict:
    cfg = config(engine, work_dir, **knobs)
    cfg.custom_hooks = [dict(type='FrozenRecordHook')]
    if resume_from:
        cfg.resume, cfg.load_from = True, resume_from
    runner = RUNNERS.build(cfg)
    try:
        runner.train()
    except LayerDecayConfigError as error:
        return dict(error=str(error))
    except Exception as error:  # noqa: BLE001  (what the test must see)
        return dict(error=f'{type(error).__name__}: {error}')
    return next(h for h in runner.hooks
                if isinstance(h, FrozenRecordHook)).record


def runs(engine: str, work: str) -> dict:
    found = dict(first=train(engine, os.path.join(work, 'first'), KNOBS))
    checkpoint = os.path.join(work, 'first', 'iter_2.pth')
    found['same'] = train(engine, os.path.join(work, 'same'), KNOBS,
                          checkpoint)
    found['changed'] = train(engine, os.path.join(work, 'changed'), CHANGED,
                             checkpoint)
    return found


def main(work: str, out: str, engines: str = ','.join(ENGINES)) -> None:
    dist_compat.patch_deepspeed()
    write_and_leave(
        {e: runs(e, os.path.join(work, e)) for e in engines.split(',')}, out)


if __name__ == '__main__':
    main(*sys.argv[1:4])
