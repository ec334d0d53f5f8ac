"""Optimizer step under FSDP: layer-decay param groups vs one group.

Two CPU processes (gloo) wrap the same Mask R-CNN ConvNeXt detector with
FSDP (use_orig_params=True, one unit per ConvNeXt block), then time AdamW's
step over the rank's shard views with (a) the groups of
LayerDecayOptimWrapperConstructor and (b) a single group (mmengine's default
constructor, no paramwise_cfg). Both optimizers hold the same parameters and
the same gradients; the two are timed alternately in one run, so machine
noise hits both alike, and the ratio of medians is reported.

Usage: .venv/bin/python -m torch.distributed.run --nproc_per_node=2 \\
           benchmarks/bench_fsdp_step.py [--arch tiny] [--repeats 30]
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests'))
from conftest import CONVNEXT_CONFIGS, build_detector  # noqa: E402

OPTIM = dict(type='OptimWrapper',
             optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05))


def timed_step(optimizer: torch.optim.Optimizer) -> float:
    dist.barrier()
    start = time.perf_counter()
    optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--arch', default='tiny')
    parser.add_argument('--repeats', type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core per process on a 2-core machine
    dist.init_process_group('gloo')

    from mmengine.model import MMFullyShardedDataParallel
    from mmengine.optim import DefaultOptimWrapperConstructor
    from mmpretrain.models.backbones.convnext import ConvNeXtBlock
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    from layerdecay_plugin import LayerDecayOptimWrapperConstructor

    config = next(p for p in CONVNEXT_CONFIGS if p.name.startswith('mask'))
    torch.manual_seed(0)
    model = MMFullyShardedDataParallel(
        build_detector(config, arch=args.arch),
        device_id=torch.device('cpu'), use_orig_params=True,
        auto_wrap_policy=ModuleWrapPolicy({ConvNeXtBlock}))
    layered = LayerDecayOptimWrapperConstructor(
        dict(OPTIM), dict(decay_rate=0.8))(model).optimizer
    single = DefaultOptimWrapperConstructor(dict(OPTIM))(model).optimizer
    params = [p for g in single.param_groups for p in g['params']]
    for p in params:
        p.grad = torch.randn_like(p)
    for optimizer in (layered, single):  # allocate AdamW state
        optimizer.step()
    times = {'layer decay': [], 'one group': []}
    for _ in range(args.repeats):
        times['layer decay'].append(timed_step(layered))
        times['one group'].append(timed_step(single))
    if dist.get_rank() == 0:
        shard = sum(p.numel() for p in params)
        print(f'Mask R-CNN ConvNeXt-{args.arch} under FSDP, 2 CPU processes, '
              f'rank 0 shard {shard:,} elements in {len(params)} views; '
              f'{len(layered.param_groups)} layer-decay groups vs '
              f'{len(single.param_groups)}; {args.repeats} alternating steps')
        medians = {k: statistics.median(v) for k, v in times.items()}
        for key, value in medians.items():
            print(f'  AdamW step, {key:11s}: median {value * 1e3:7.2f} ms')
        print(f'  ratio layer decay / one group: '
              f'{medians["layer decay"] / medians["one group"]:.3f}')
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
