"""GPU evidence for layer decay (issue #22): one prepared script.

What it does, in this order (the JSON is rewritten after each part, so a run
cut short still leaves what it measured):

1. A timm ViT and a timm ConvNeXt, each inside a tiny detector-like module
   (``backbone`` + a linear head), get layer decay through mmengine's
   ``build_optim_wrapper`` (``constructor=
   'LayerDecayPluginConstructor'``, ``decay_rate=0.75``) and train a
   few steps on one device, then under FSDP (``use_orig_params=True``, one
   FSDP unit per timm block) in
   ``torchrun --nproc_per_node=N`` processes. The groups (names, lr,
   weight_decay, lr_scale, param_names) of both are checked equal to those
   the constructor builds on the unwrapped model.
2. ``torch.optim.AdamW`` step time, layer-decay groups vs one group, over the
   same models' parameters, with ``foreach=True`` and with ``fused=True``:
   the two optimizers are timed alternately in one run
   (``torch.cuda.synchronize()`` around each step); medians, quartiles,
   min/max and the ratio of medians. A ratio above 1.05 is flagged
   ("ratio > 1.05: see issue #22 item 2"). With foreach, the plugin's
   ``OnePassAdamW`` (all groups in one multi-tensor pass) is timed in the
   same rotation, and checked to give bit-identical parameters and state
   to torch's AdamW with the same groups after a few steps.
3. The light test tier (``pytest --confcutdir=tests/light tests/light``) in a
   subprocess with CUDA visible, so the tests that can use it do; pass/fail
   counts are recorded (``--skip-light`` leaves it out).

``--device cuda`` (the default): ``vit_base_patch16_224`` and
``convnext_tiny``, bf16 ``AmpOptimWrapper``, NCCL, one process per GPU.
``--device cpu`` runs the same code paths with ``vit_tiny_patch16_224`` and
``convnext_atto``, float32 ``OptimWrapper`` (mmengine's AmpOptimWrapper needs
a GPU), gloo with 2 processes, one thread a process, fused AdamW only where
torch can do it on the CPU; ``tests/light/test_light_gpu_check.py`` runs it
that way.

Outputs in ``--out`` (default ``work_dirs/gpu_check``): ``gpu_check.json``
and ``gpu_check.md``; the exit status is non-zero when a check failed (a
ratio above 1.05 is a finding, not a failure). Safe to run twice: both files
are rewritten, the workers' files go to a fresh temporary directory and
torchrun picks a free port.

Usage::

    python tools/gpu_check.py --out work_dirs/gpu_check
    python tools/gpu_check.py --device cpu --skip-light --steps 5 --warmup 2

Only the plugin's public API, torch, mmengine and timm are imported (no
mmdet/mmcv/mmpretrain), so it runs in the light venvs that have timm too.
"""
import argparse
import datetime
import json
import logging
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a clone without installing
    sys.path.insert(0, str(ROOT))

#: timm architectures per device kind: key -> (model name, input size).
ARCHS = {
    'cuda': {'vit': ('vit_base_patch16_224', 224),
             'convnext': ('convnext_tiny', 224)},
    'cpu': {'vit': ('vit_tiny_patch16_224', 224),
            'convnext': ('convnext_atto', 64)},
}
#: The timm block class of each family: one FSDP unit each.
BLOCKS = {'vit': ('timm.models.vision_transformer', 'Block'),
          'convnext': ('timm.models.convnext', 'ConvNeXtBlock')}
DECAY_RATE = 0.75
LR, WEIGHT_DECAY = 1e-4, 0.05
NUM_CLASSES = 10
RATIO_LIMIT = 1.05
RATIO_LINE = f'ratio > {RATIO_LIMIT}: see issue #22 item 2'


# -- the models and their optimizers ------------------------------------------


class Net(nn.Module):
    """A timm model as ``backbone`` and a linear head: what the constructor
    needs to find the backbone (``paramwise_cfg.backbone_attr``)."""

    def __init__(self, arch: str):
        super().__init__()
        import timm
        self.backbone = timm.create_model(arch, pretrained=False,
                                          num_classes=0)
        self.head = nn.Linear(self.backbone.num_features, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def wrapper_cfg(device: str, fsdp: bool = False, **optimizer: Any) -> dict:
    """The optim_wrapper config: bf16 AMP on CUDA, float32 on the CPU."""
    cfg = dict(
        type='OptimWrapper',
        constructor='LayerDecayPluginConstructor',
        optimizer=dict(type='AdamW', lr=LR, weight_decay=WEIGHT_DECAY,
                       **optimizer),
        paramwise_cfg=dict(decay_rate=DECAY_RATE, backbone_attr='backbone'))
    if device == 'cuda':
        cfg.update(type='AmpOptimWrapper', dtype='bfloat16')
        if fsdp:
            cfg['use_fsdp'] = True  # ShardedGradScaler
    return cfg


class Warnings(logging.Handler):
    """Collects the warnings mmengine's logger gets (the constructor's)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage()[:500])


def build_wrapper(model: nn.Module, cfg: dict,
                  warnings: Optional[list] = None):
    """mmengine's ``build_optim_wrapper``; the warnings the constructor logs
    are appended to ``warnings``."""
    import layerdecay_plugin  # noqa: F401  (registers the constructor)
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper
    logger = MMLogger.get_current_instance()
    handler = Warnings()
    logger.addHandler(handler)
    try:
        return build_optim_wrapper(model, cfg)
    finally:
        logger.removeHandler(handler)
        if warnings is not None:
            warnings.extend(handler.messages)


def groups_of(optimizer: torch.optim.Optimizer) -> List[dict]:
    """The groups as plain data, in a fixed order."""
    found = [
        dict(group_name=g.get('group_name'), lr=g['lr'],
             weight_decay=g['weight_decay'], lr_scale=g.get('lr_scale'),
             param_names=sorted(g.get('param_names') or []))
        for g in optimizer.param_groups
    ]
    return sorted(found, key=lambda g: (str(g['group_name']),
                                        g['param_names'][:1]))


def group_diff(expected: List[dict], found: List[dict]) -> List[str]:
    """What differs between two group lists (empty: equal), at most 10."""
    if expected == found:
        return []
    diffs = []
    by_name = {g['group_name']: g for g in expected}
    found_names = {g['group_name'] for g in found}
    for name in sorted(set(by_name) - found_names, key=str):
        diffs.append(f'missing group {name}')
    for group in found:
        ref = by_name.get(group['group_name'])
        if ref is None:
            diffs.append(f'unexpected group {group["group_name"]}')
            continue
        for key in ('lr', 'weight_decay', 'lr_scale', 'param_names'):
            if group[key] != ref[key]:
                if key == 'param_names':
                    extra = sorted(set(group[key]) - set(ref[key]))[:3]
                    lost = sorted(set(ref[key]) - set(group[key]))[:3]
                    diffs.append(f'{group["group_name"]}: param_names '
                                 f'extra {extra}, missing {lost}')
                else:
                    diffs.append(f'{group["group_name"]}: {key} '
                                 f'{group[key]!r} != {ref[key]!r}')
    return (diffs or ['groups differ (duplicate group names?)'])[:10]


def reference_groups(arch: str) -> List[dict]:
    """The groups the constructor builds on the unwrapped model (on the CPU,
    float32 OptimWrapper: the optimizer wrapper does not change groups)."""
    torch.manual_seed(0)
    return groups_of(build_wrapper(Net(arch), wrapper_cfg('cpu')).optimizer)


def train(model: nn.Module, optim_wrapper, size: int, steps: int,
          device: torch.device, batch: int, seed: int = 0) -> dict:
    """A few steps of classification on random data."""
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.numel()]
    before = sum(float(p.detach().double().sum()) for p in params)
    losses, seconds = [], []
    for _ in range(steps):
        x = torch.randn(batch, 3, size, size, generator=gen).to(device)
        y = torch.randint(0, NUM_CLASSES, (batch, ), generator=gen).to(device)
        sync(device)
        start = time.perf_counter()
        with optim_wrapper.optim_context(model):
            loss = F.cross_entropy(model(x).float(), y)
        optim_wrapper.update_params(loss)
        sync(device)
        seconds.append(time.perf_counter() - start)
        losses.append(float(loss))
    after = sum(float(p.detach().double().sum()) for p in params)
    return dict(steps=steps, batch=batch, losses=losses,
                finite=all(math.isfinite(v) for v in losses),
                params_changed=before != after,
                median_step_s=statistics.median(seconds) if seconds else None)


def error_text(exc: BaseException) -> str:
    """A failure as one line for the report (the run goes on)."""
    return f'{type(exc).__name__}: {exc}'.replace('\n', ' ')[:1000]


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def single_device(key: str, arch: str, size: int, args,
                  expected: List[dict]) -> dict:
    try:
        return _single_device(arch, size, args, expected)
    except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
        return dict(error=error_text(exc))


def _single_device(arch: str, size: int, args, expected: List[dict]) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = Net(arch).to(device)
    warnings: List[str] = []
    wrapper = build_wrapper(model, wrapper_cfg(args.device), warnings)
    found = groups_of(wrapper.optimizer)
    result = dict(wrapper=type(wrapper).__name__,
                  groups_equal=found == expected,
                  group_diff=group_diff(expected, found),
                  constructor_warnings=warnings)
    result.update(train(model, wrapper, size, args.train_steps, device,
                        args.batch))
    result['groups_equal_after_training'] = \
        groups_of(wrapper.optimizer) == expected
    return result


# -- FSDP: this script again, under torchrun ----------------------------------


def fsdp_worker(args) -> None:
    """One torchrun process: both models under FSDP, groups and a few steps.
    Rank 0 writes {key: {groups, training, ...}} to ``args.fsdp_worker``."""
    import importlib

    import torch.distributed as dist
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    if args.device == 'cuda':
        device = torch.device('cuda', int(os.environ['LOCAL_RANK']))
        torch.cuda.set_device(device)
        dist.init_process_group('nccl')
    else:
        device = torch.device('cpu')
        dist.init_process_group('gloo')  # before anything asks for a group
    rank, world = dist.get_rank(), dist.get_world_size()
    found: Dict[str, Any] = {}
    for key, (arch, size) in ARCHS[args.arch_set].items():
        module, name = BLOCKS[key]
        block = getattr(importlib.import_module(module), name)
        torch.manual_seed(0)
        model = FSDP(Net(arch), device_id=device, use_orig_params=True,
                     auto_wrap_policy=ModuleWrapPolicy({block}))
        warnings: List[str] = []
        try:
            wrapper = build_wrapper(model,
                                    wrapper_cfg(args.device, fsdp=True),
                                    warnings)
            groups = groups_of(wrapper.optimizer)
            result = dict(wrapper=type(wrapper).__name__, groups=groups,
                          constructor_warnings=warnings)
            result.update(train(model, wrapper, size, args.train_steps,
                                device, args.batch, seed=rank))
            result['groups_equal_after_training'] = \
                groups_of(wrapper.optimizer) == groups
            del wrapper
        except Exception as exc:  # noqa: BLE001 - the same on every rank
            result = dict(error=error_text(exc), groups=None,
                          constructor_warnings=warnings)
        # Every rank must have built the same groups and trained.
        everyone: List[Any] = [None] * world
        dist.all_gather_object(everyone, result)
        found[key] = dict(
            everyone[0], ranks=world,
            same_groups_on_all_ranks=all(r['groups'] == result['groups']
                                         for r in everyone),
            all_ranks_finite=all(r.get('finite') for r in everyone),
            all_ranks_changed=all(r.get('params_changed')
                                  for r in everyone))
        del model
    if rank == 0:
        Path(args.fsdp_worker).write_text(json.dumps(found))
    dist.barrier()
    dist.destroy_process_group()


def under_fsdp(args, nproc: int, expected: Dict[str, List[dict]]) -> dict:
    """Run :func:`fsdp_worker` in ``nproc`` processes, compare the groups."""
    with tempfile.TemporaryDirectory(prefix='gpu_check_') as tmp:
        out = Path(tmp) / 'fsdp.json'
        env = dict(os.environ)
        path = [str(ROOT)] + [p for p in [env.get('PYTHONPATH')] if p]
        env['PYTHONPATH'] = os.pathsep.join(path)
        if args.device == 'cpu':
            # One thread a process; no CUDA, so that nothing picks a GPU by
            # LOCAL_RANK.
            env.update(OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
        command = [
            sys.executable, '-m', 'torch.distributed.run', '--standalone',
            f'--nproc_per_node={nproc}', str(Path(__file__).resolve()),
            '--fsdp-worker', str(out), '--device', args.device,
            '--arch-set', args.arch_set, '--train-steps',
            str(args.train_steps), '--batch', str(args.batch)
        ]
        start = time.perf_counter()
        try:
            done = subprocess.run(command, env=env, capture_output=True,
                                  text=True, timeout=args.fsdp_timeout)
            returncode, output = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as exc:
            returncode = 'timeout'
            output = f'{exc.stdout or ""}{exc.stderr or ""}'
            if isinstance(output, bytes):
                output = output.decode(errors='replace')
        seconds = time.perf_counter() - start
        workers = json.loads(out.read_text()) if out.is_file() else {}
    backend = 'nccl' if args.device == 'cuda' else 'gloo'
    results = {}
    for key in ARCHS[args.arch_set]:
        worker = workers.get(key)
        if worker is None:
            results[key] = dict(ok=False, nproc=nproc, backend=backend,
                                returncode=returncode,
                                output_tail=output[-4000:])
            continue
        groups = worker.pop('groups')
        worker.update(nproc=nproc, backend=backend)
        if groups is not None:
            worker.update(groups_equal=groups == expected[key],
                          group_diff=group_diff(expected[key], groups))
        results[key] = worker
    for result in results.values():
        result['seconds_all_models'] = round(seconds, 1)
        if returncode != 0 and 'output_tail' not in result:
            result['returncode'] = returncode
            result['output_tail'] = output[-4000:]
    return results


# -- the optimizer step benchmark ---------------------------------------------


def fused_support(device: str) -> Optional[str]:
    """None if torch's fused AdamW works on ``device``, else why not."""
    try:
        param = torch.zeros(4, device=device, requires_grad=True)
        param.grad = torch.ones_like(param)
        torch.optim.AdamW([param], lr=LR, fused=True).step()
        return None
    except Exception as exc:  # RuntimeError / ValueError: not supported
        return f'{type(exc).__name__}: {exc}'.splitlines()[0][:300]


def stats(seconds: List[float]) -> dict:
    ms = sorted(v * 1e3 for v in seconds)
    q1, _, q3 = statistics.quantiles(ms, n=4, method='inclusive') \
        if len(ms) > 1 else (ms[0], ms[0], ms[0])
    return dict(n=len(ms), median_ms=statistics.median(ms), q1_ms=q1,
                q3_ms=q3, iqr_ms=q3 - q1, min_ms=ms[0], max_ms=ms[-1])


def timed_step(optimizer: torch.optim.Optimizer,
               device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    optimizer.step()
    sync(device)
    return time.perf_counter() - start


def one_pass_equal(model: nn.Module, groups: List[dict],
                   steps: int = 5) -> bool:
    """``OnePassAdamW`` over ``groups`` gives the parameters and state of
    ``torch.optim.AdamW`` (foreach) over the same groups, bit for bit."""
    from layerdecay_plugin import OnePassAdamW
    index = {id(p): i for i, p in enumerate(model.parameters())}
    originals = list(model.parameters())
    results = []
    for cls in (torch.optim.AdamW, OnePassAdamW):
        copies = [p.detach().clone().requires_grad_() for p in originals]
        optimizer = cls([dict(g, params=[copies[index[id(p)]]
                                         for p in g['params']])
                         for g in groups], foreach=True)
        gen = torch.Generator(device=originals[0].device).manual_seed(0)
        for _ in range(steps):
            for p in copies:
                p.grad = torch.randn(p.shape, generator=gen, device=p.device,
                                     dtype=p.dtype)
            optimizer.step()
        results.append((copies, optimizer.state_dict()['state']))
    (a, state_a), (b, state_b) = results
    return all(torch.equal(x, y) for x, y in zip(a, b)) and all(
        torch.equal(state_a[k][n], state_b[k][n])
        for k in state_a for n in state_a[k])


def bench_pair(model: nn.Module, impl: str, args) -> dict:
    """AdamW ``impl`` ('foreach' or 'fused'): layer-decay groups vs one
    group over the same parameters and gradients, timed alternately; with
    foreach also ``OnePassAdamW`` over the layer-decay groups."""
    from mmengine.optim import DefaultOptimWrapperConstructor

    device = torch.device(args.device)
    flags = {impl: True}
    plain = dict(type='OptimWrapper',
                 optimizer=dict(type='AdamW', lr=LR,
                                weight_decay=WEIGHT_DECAY, **flags))
    optimizers = {
        'layer_decay': build_wrapper(model, wrapper_cfg('cpu',
                                                        **flags)).optimizer,
        'one_group': DefaultOptimWrapperConstructor(plain)(model).optimizer,
    }
    if impl == 'foreach':
        cfg = wrapper_cfg('cpu', **flags)
        cfg['optimizer']['type'] = 'OnePassAdamW'
        optimizers['one_pass'] = build_wrapper(model, cfg).optimizer
    for optimizer in optimizers.values():
        for _ in range(args.warmup):  # allocates the state, warms kernels
            optimizer.step()
    times: Dict[str, List[float]] = {k: [] for k in optimizers}
    order = list(optimizers)
    for step in range(args.steps):
        # Rotate which goes first, so drift hits all alike.
        shift = step % len(order)
        for key in order[shift:] + order[:shift]:
            times[key].append(timed_step(optimizers[key], device))
    result: Dict[str, Any] = {k: stats(v) for k, v in times.items()}
    result['groups'] = len(optimizers['layer_decay'].param_groups)
    result['ratio'] = (result['layer_decay']['median_ms'] /
                       result['one_group']['median_ms'])
    result['over_limit'] = result['ratio'] > RATIO_LIMIT
    if 'one_pass' in optimizers:
        result['one_pass_ratio'] = (result['one_pass']['median_ms'] /
                                    result['one_group']['median_ms'])
        result['one_pass_equal'] = one_pass_equal(
            model, optimizers['layer_decay'].param_groups)
    return result


def benchmark(args) -> dict:
    device = torch.device(args.device)
    fused_skip = fused_support(args.device)
    results = {}
    for key, (arch, _) in ARCHS[args.arch_set].items():
        torch.manual_seed(0)
        model = Net(arch).to(device)
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:
            p.grad = torch.randn_like(p)
        entry: Dict[str, Any] = dict(
            arch=arch, tensors=len(params),
            elements=sum(p.numel() for p in params), steps=args.steps,
            warmup=args.warmup)
        for impl in ('foreach', 'fused'):
            if impl == 'fused' and fused_skip:
                entry[impl] = dict(skipped=fused_skip)
                continue
            try:
                entry[impl] = bench_pair(model, impl, args)
            except Exception as exc:  # noqa: BLE001 - recorded
                entry[impl] = dict(error=error_text(exc))
        results[key] = entry
        del model, params
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    return results


# -- the light tier -----------------------------------------------------------


def light_tier(args) -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(ROOT)] + [p for p in [env.get('PYTHONPATH')] if p])
    command = [sys.executable, '-m', 'pytest', '-q', '-rfE', '--tb=short',
               '-p', 'no:cacheprovider', '--confcutdir=tests/light',
               'tests/light']
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=args.light_timeout)
        returncode, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        returncode = 'timeout'
        output = exc.stdout or ''
        if isinstance(output, bytes):
            output = output.decode(errors='replace')
    result: Dict[str, Any] = dict(
        command=' '.join(command[1:]), returncode=returncode,
        seconds=round(time.perf_counter() - start, 1),
        cuda_visible=args.device == 'cuda')
    summary = [line for line in output.splitlines()
               if re.search(r'\d+ (passed|failed|error)', line)]
    result['summary'] = summary[-1].strip('= ') if summary else None
    for count, what in re.findall(
            r'(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)',
            result['summary'] or ''):
        result[what.rstrip('s') if what.startswith('error') else what] = \
            int(count)
    result['ok'] = returncode == 0
    if not result['ok']:
        result['output_tail'] = output[-4000:]
        # the whole output beside the report, for the failures' tracebacks
        (Path(args.out) / 'light.log').write_text(output)
    return result


# -- the report ---------------------------------------------------------------


def model_ok(entry: dict) -> bool:
    return bool(entry.get('groups_equal') and entry.get('finite')
                and entry.get('params_changed')
                and entry.get('groups_equal_after_training')
                and entry.get('same_groups_on_all_ranks', True)
                and entry.get('all_ranks_finite', True)
                and entry.get('all_ranks_changed', True))


def problems_of(report: dict) -> List[str]:
    problems = []
    for key, entry in report.get('models', {}).items():
        for where in ('single', 'fsdp'):
            if where in entry and not model_ok(entry[where]):
                error = entry[where].get('error')
                problems.append(f'{key} {where}: ' +
                                (error[:300] if error else 'check failed'))
    for key, entry in report.get('benchmark', {}).items():
        for impl in ('foreach', 'fused'):
            if 'error' in entry.get(impl, {}):
                problems.append(f'benchmark {key} {impl}: '
                                f'{entry[impl]["error"][:300]}')
            if entry.get(impl, {}).get('one_pass_equal') is False:
                problems.append(f'benchmark {key} {impl}: OnePassAdamW '
                                "differs from torch's AdamW")
    light = report.get('light')
    if light and not light.get('skipped') and not light.get('ok'):
        problems.append('light tier failed')
    return problems


def fmt_stats(s: dict) -> str:
    return (f'{s["median_ms"]:.3f} (IQR {s["q1_ms"]:.3f}–{s["q3_ms"]:.3f}, '
            f'min {s["min_ms"]:.3f}, max {s["max_ms"]:.3f})')


def markdown(report: dict) -> str:
    env = report['environment']
    lines = [
        '# GPU check (issue #22)', '',
        f'- date: {report["started"]}; device: {env["device_name"]} '
        f'({report["device"]}, {env["devices"]} visible); torch '
        f'{env["torch"]}, mmengine {env["mmengine"]}, timm {env["timm"]}',
        f'- total time: {report.get("elapsed_s", "unfinished")} s', ''
    ]
    models = report.get('models', {})
    if models:
        lines += [
            '## Training with layer decay', '',
            '| model | where | wrapper | groups | groups equal to unwrapped '
            '| losses | params changed |', '|---|---|---|---|---|---|---|'
        ]
        for key, entry in models.items():
            for where in ('single', 'fsdp'):
                r = entry.get(where)
                if r is None:
                    continue
                label = ('one device' if where == 'single' else
                         f'FSDP, {r.get("nproc")} × {r.get("backend")}')
                losses = ', '.join(f'{v:.3f}' for v in r.get('losses', []))
                lines.append(
                    f'| {entry["arch"]} | {label} | {r.get("wrapper", "—")} '
                    f'| {entry["groups"]} | {r.get("groups_equal")} '
                    f'| {losses or "—"} | {r.get("params_changed")} |')
                notes = [f'difference: {d}' for d in r.get('group_diff') or []]
                if r.get('error'):
                    notes.append(f'error: {r["error"]}')
                notes += [f'constructor warning: {w}'
                          for w in r.get('constructor_warnings') or []]
                if r.get('output_tail'):
                    errors = [line for line in r['output_tail'].splitlines()
                              if 'Error' in line] or ['(see the JSON)']
                    notes.append(f'workers exited {r.get("returncode")}: '
                                 f'{errors[-1][:500]}')
                for note in notes:
                    note = note.replace('|', '\\|').replace('\n', ' ')
                    lines.append(f'|  | {note} | | | | | |')
        if any(e.get('fsdp', {}).get('nproc') == 1 for e in models.values()):
            lines += ['', 'FSDP in one process shards nothing (torch uses '
                      'NO_SHARD at world size 1): the groups are checked on '
                      'the wrapped model, not across shards.']
        lines.append('')
    bench = report.get('benchmark', {})
    if bench:
        lines += [
            '## AdamW step: layer-decay groups vs one group', '',
            'Milliseconds per step: median (IQR, min, max); the '
            'optimizers timed in rotation in one run.', '',
            '| model | tensors | groups | impl | layer decay | one group '
            '| ratio of medians |', '|---|---|---|---|---|---|---|'
        ]
        flagged = []
        for key, entry in bench.items():
            for impl in ('foreach', 'fused'):
                r = entry[impl]
                if 'skipped' in r or 'error' in r:
                    why = (f'skipped: {r["skipped"]}' if 'skipped' in r else
                           f'error: {r["error"]}').replace('|', '\\|')
                    lines.append(f'| {entry["arch"]} | {entry["tensors"]} | '
                                 f'| {impl} | {why} | | |')
                    continue
                lines.append(
                    f'| {entry["arch"]} | {entry["tensors"]} | {r["groups"]} '
                    f'| {impl} | {fmt_stats(r["layer_decay"])} '
                    f'| {fmt_stats(r["one_group"])} | {r["ratio"]:.3f} |')
                if 'one_pass' in r:
                    same = 'bit-identical to torch' if r['one_pass_equal'] \
                        else 'DIFFERS from torch'
                    lines.append(
                        f'| {entry["arch"]} | {entry["tensors"]} | '
                        f'{r["groups"]} | OnePassAdamW ({same}) '
                        f'| {fmt_stats(r["one_pass"])} '
                        f'| {fmt_stats(r["one_group"])} '
                        f'| {r["one_pass_ratio"]:.3f} |')
                if r['over_limit']:
                    flagged.append(f'{entry["arch"]} {impl}: ratio '
                                   f'{r["ratio"]:.3f}')
            lines.append('')
        if flagged:
            lines += [f'**{RATIO_LINE}** ({"; ".join(flagged)})', '']
        else:
            lines += [f'Every ratio ≤ {RATIO_LIMIT}.', '']
        n = min(e['steps'] for e in bench.values())
        if n < 50:
            lines += [f'Only {n} steps timed: below the 50 that issue #22 '
                      'asks for (a smoke run).', '']
    light = report.get('light')
    if light:
        lines += ['## Light test tier', '']
        if light.get('skipped'):
            lines.append(f'skipped ({light["skipped"]})')
        else:
            lines.append(f'`{light["command"]}` (CUDA visible: '
                         f'{light["cuda_visible"]}): {light["summary"]} in '
                         f'{light["seconds"]} s, exit {light["returncode"]}')
        lines.append('')
    problems = report.get('problems') or []
    lines += ['## Verdict', '',
              ('FAILED: ' + '; '.join(problems)) if problems else
              'All checks passed.', '']
    return '\n'.join(lines)


def write(report: dict, out: Path) -> None:
    report['problems'] = problems_of(report)
    report['ok'] = not report['problems']
    (out / 'gpu_check.json').write_text(json.dumps(report, indent=1))
    (out / 'gpu_check.md').write_text(markdown(report))


def environment(device: str) -> dict:
    import mmengine
    import timm
    cuda = device == 'cuda'
    return dict(
        python=platform.python_version(), torch=torch.__version__,
        mmengine=mmengine.__version__, timm=timm.__version__,
        cuda=torch.version.cuda,
        devices=torch.cuda.device_count() if cuda else 1,
        device_name=(torch.cuda.get_device_name(0) if cuda else
                     f'CPU ({platform.machine()}, {os.cpu_count()} cores)'))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='GPU evidence for layer decay (issue #22)')
    parser.add_argument('--device', choices=('cuda', 'cpu'), default='cuda')
    parser.add_argument('--out', default='work_dirs/gpu_check',
                        help='output directory (JSON + markdown)')
    parser.add_argument('--steps', type=int, default=None,
                        help='timed AdamW steps per optimizer (default 100 '
                        'on cuda, 5 on cpu)')
    parser.add_argument('--warmup', type=int, default=None,
                        help='untimed steps first (default 10 cuda, 2 cpu)')
    parser.add_argument('--train-steps', type=int, default=3)
    parser.add_argument('--batch', type=int, default=None,
                        help='training batch (default 16 cuda, 2 cpu)')
    parser.add_argument('--nproc', type=int, default=None,
                        help='FSDP processes (default: the GPUs; 2 on cpu)')
    parser.add_argument('--skip-light', action='store_true',
                        help='leave out the light test tier')
    parser.add_argument('--skip-fsdp', action='store_true')
    parser.add_argument('--light-timeout', type=int, default=300)
    parser.add_argument('--fsdp-timeout', type=int, default=300)
    # Internal: the torchrun worker, and which architectures it builds.
    parser.add_argument('--fsdp-worker', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--arch-set', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cuda = args.device == 'cuda'
    if args.steps is None:
        args.steps = 100 if cuda else 5
    if args.warmup is None:
        args.warmup = 10 if cuda else 2
    if args.batch is None:
        args.batch = 16 if cuda else 2
    if args.arch_set is None:
        args.arch_set = args.device
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.fsdp_worker:
        fsdp_worker(args)
        return 0
    if args.device == 'cuda' and not torch.cuda.is_available():
        print('gpu_check: no CUDA device here; use --device cpu',
              file=sys.stderr)
        return 2
    if args.device == 'cpu':
        # One thread: on a small shared machine (CI: 2 cores) a second
        # thread makes the step times swing by seconds.
        torch.set_num_threads(1)
    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: Dict[str, Any] = dict(
        issue=22, device=args.device,
        started=datetime.datetime.now().isoformat(timespec='seconds'),
        environment=environment(args.device), models={})
    nproc = args.nproc or (torch.cuda.device_count()
                           if args.device == 'cuda' else 2)

    def step(name: str) -> None:
        report['elapsed_s'] = round(time.perf_counter() - start, 1)
        write(report, out)
        print(f'[gpu_check] {name} done at {report["elapsed_s"]} s',
              flush=True)

    expected = {}
    for key, (arch, size) in ARCHS[args.arch_set].items():
        expected[key] = reference_groups(arch)
        report['models'][key] = dict(
            arch=arch, input_size=size, groups=len(expected[key]),
            group_names=[g['group_name'] for g in expected[key]],
            single=single_device(key, arch, size, args, expected[key]))
        step(f'{arch} on one device')
    if not args.skip_fsdp:
        for key, result in under_fsdp(args, nproc, expected).items():
            report['models'][key]['fsdp'] = result
        step(f'FSDP ({nproc} processes)')
    report['benchmark'] = benchmark(args)
    step('AdamW step benchmark')
    if args.skip_light:
        report['light'] = dict(skipped='--skip-light')
    else:
        report['light'] = light_tier(args)
    step('light tier')
    text = markdown(report)
    print(text)
    return 0 if report['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
