"""Cost of layer decay: optimizer build time and step time, side by side.

(a) build time on Mask R-CNN ConvNeXt-XL, logging to a file as in a real
    run: ours vs mmdet's LearningRateDecayOptimizerConstructor vs the
    single-group floor (mmengine's default constructor, no paramwise_cfg);
(b) AdamW step time on Mask R-CNN ConvNeXt-B: layer-decay groups vs one
    group;
(c) our build time against the number of parameter tensors on synthetic
    ViT-like models up to ~20k tensors.

Usage: python benchmarks/bench_constructor.py [--repeats N]
Prints medians and ratios; run it on an idle machine.
"""
import argparse
import gc
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests'))
from conftest import CONVNEXT_CONFIGS, _register, build_detector  # noqa

OPTIM = dict(type='OptimWrapper',
             optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05))
MASK_RCNN = next(p for p in CONVNEXT_CONFIGS if p.name.startswith('mask'))


def file_logger(tmp: str):
    """An MMLogger writing to a file (console stream sent to /dev/null)."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_instance(f'bench-{time.time()}',
                                   log_file=os.path.join(tmp, 'run.log'),
                                   log_level=logging.INFO)
    for handler in logger.handlers:
        if type(handler) is logging.StreamHandler:
            handler.setStream(open(os.devnull, 'w'))
    return logger


def constructors():
    from mmdet.engine.optimizers import LearningRateDecayOptimizerConstructor
    from mmengine.optim import DefaultOptimWrapperConstructor

    from layerdecay_plugin import LayerDecayOptimWrapperConstructor
    layer = dict(decay_rate=0.8, decay_type='layer_wise', num_layers=12)
    return {
        'floor (mmengine default, 1 group)':
        lambda m: DefaultOptimWrapperConstructor(dict(OPTIM))(m),
        'mmdet LearningRateDecayOptimizerConstructor':
        lambda m: LearningRateDecayOptimizerConstructor(dict(OPTIM),
                                                        dict(layer))(m),
        'ours LayerDecayOptimWrapperConstructor':
        lambda m: LayerDecayOptimWrapperConstructor(dict(OPTIM),
                                                    dict(layer))(m),
    }


def timed(fn, repeats: int, number: int = 1):
    """Median over `repeats` of the mean seconds of `number` calls of fn(),
    after one warm-up call, with the garbage collector off (as timeit)."""
    fn()
    times = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times.append((time.perf_counter() - start) / number)
    finally:
        gc.enable()
    return statistics.median(times)


def bench_build(repeats: int) -> None:
    model = build_detector(MASK_RCNN, arch='xlarge')
    tensors = sum(1 for _ in model.parameters())
    print(f'\n(a) optimizer build, Mask R-CNN ConvNeXt-XL ({tensors} tensors, '
          f'{sum(p.numel() for p in model.parameters()) / 1e6:.0f}M params), '
          f'logging to a file, median of {repeats} interleaved means of 5')
    with tempfile.TemporaryDirectory() as tmp:
        file_logger(tmp)
        builders = constructors()
        samples = {name: [] for name in builders}
        for _ in range(repeats):  # interleaved, so drift hits all alike
            for name, build in builders.items():
                samples[name].append(timed(lambda: build(model), 1, 5))
        results = {k: statistics.median(v) for k, v in samples.items()}
        log_lines = len(Path(tmp, 'run.log').read_text().splitlines())
    floor = next(iter(results.values()))
    for name, seconds in results.items():
        print(f'  {name:45s} {seconds * 1e3:9.1f} ms  {seconds / floor:6.2f}x')
    print(f'  (log file after all runs: {log_lines} lines)')


def bench_step(repeats: int) -> None:
    from layerdecay_plugin import LayerDecayOptimWrapperConstructor
    from mmengine.optim import DefaultOptimWrapperConstructor
    model = build_detector(MASK_RCNN, arch='base')
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    wrappers = {
        'one group': DefaultOptimWrapperConstructor(dict(OPTIM))(model),
        'layer-decay groups': LayerDecayOptimWrapperConstructor(
            dict(OPTIM), dict(decay_rate=0.8, num_layers=12))(model),
    }
    print(f'\n(b) AdamW step, Mask R-CNN ConvNeXt-B '
          f'({sum(p.numel() for p in model.parameters()) / 1e6:.0f}M params), '
          f'median of {repeats}, interleaved')
    times = {name: [] for name in wrappers}
    for name, wrapper in wrappers.items():
        wrapper.optimizer.step()  # allocate state
    for _ in range(repeats):
        for name, wrapper in wrappers.items():
            start = time.perf_counter()
            wrapper.optimizer.step()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times['one group'])
    for name, values in times.items():
        groups = len(wrappers[name].optimizer.param_groups)
        med = statistics.median(values)
        print(f'  {name:20s} {groups:3d} groups {med * 1e3:8.1f} ms '
              f'{med / base:6.3f}x')


class SyntheticViT(nn.Module):

    def __init__(self, blocks: int, per_block: int = 10):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, 4, 2)
        self.blocks = nn.ModuleList(
            nn.Sequential(*[nn.Linear(4, 4) for _ in range(per_block)])
            for _ in range(blocks))
        self.norm = nn.LayerNorm(4)


def bench_scaling(repeats: int) -> None:
    from layerdecay_plugin import LayerDecayOptimWrapperConstructor
    from mmengine.optim import DefaultOptimWrapperConstructor
    blocks = 24  # a fixed depth, as in real backbones: ~50 groups
    print(f'\n(c) build time vs number of tensors (synthetic ViT-like, '
          f"{blocks} blocks, rules='vit_blocks'), median of {repeats} means "
          'of 3')
    print(f'  {"tensors":>8s} {"ours ms":>9s} {"us/tensor":>10s} '
          f'{"floor ms":>9s}')
    for per_block in (20, 50, 100, 200, 400):
        model = nn.Module()
        model.backbone = SyntheticViT(blocks, per_block)
        model.head = nn.Linear(4, 4)
        n = sum(1 for _ in model.parameters())
        ours = timed(lambda: LayerDecayOptimWrapperConstructor(
            dict(OPTIM), dict(decay_rate=0.99, rules='vit_blocks'))(model),
            repeats, 3)
        floor = timed(lambda: DefaultOptimWrapperConstructor(dict(OPTIM))(
            model), repeats, 3)
        print(f'  {n:8d} {ours * 1e3:9.1f} {ours / n * 1e6:10.2f} '
              f'{floor * 1e3:9.1f}')
    print('  (torch.optim.Optimizer.add_param_group checks each new group '
          'against all earlier ones, so with the number of groups growing '
          'too, the optimizer build itself grows quadratically)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=7)
    args = parser.parse_args()
    _register()
    print(f'machine: {platform.processor() or platform.machine()}, '
          f'{os.cpu_count()} CPUs, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads')
    bench_build(args.repeats)
    bench_step(args.repeats)
    bench_scaling(args.repeats)


if __name__ == '__main__':
    main()
