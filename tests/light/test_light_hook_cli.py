"""``LayerDecayLrHook`` under mmengine's real ``Runner`` (its scalars and
``layer_decay.json``), ``python -m layerdecay_plugin`` (``inspect``: table,
JSON, exit codes, the module entry; ``summary``: a finished run, a resumed
one; the forms without a command) and ``tools/train.py`` (its summary at the
end) on a torch-only config:
``configs/toy_layerdecay.py``, whose model comes from
:mod:`light.cli_toys`."""
import json
import math
import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS, DefaultScope, init_default_scope
from mmengine.runner import Runner

from layerdecay_plugin.cli import main
from layerdecay_plugin.cli.lr_table import layer_lr_series
from layerdecay_plugin.cli.summary import (PNG_NAME, find_run, read_scalars,
                                           summarize_run)
from layerdecay_plugin.hooks import RUN_FILE
from layerdecay_plugin.registry import NAME
from light.cli_toys import LightToyDetector, toy_run_cfg
from light.conftest import HEAVY

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CONFIG = str(HERE / 'configs' / 'toy_layerdecay.py')
# What the config sets: 3 blocks, num_layers 3, so the neck and head get id 4.
BASE_LR, BASE_WD, DECAY, HEAD_ID = 1e-3, 0.05, 0.9, 4
MAX_ITERS, START, WARMUP, MILESTONE, GAMMA = 6, 0.25, 4, 4, 0.1
# The line above the group table, in the training log and the CLI alike.
HEADER = ('layer decay: ViT (blocks.i), layer_wise, decay_rate=0.9, '
          'num_layers=3, base lr=0.001, weight decay=0.05')
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def layer_id(name: str) -> int:
    """The ``vit_blocks`` id of a toy parameter, written out by hand."""
    if name.startswith('backbone.patch_embed.'):
        return 0
    if name.startswith('backbone.blocks.'):
        return int(name.split('.')[2]) + 1
    if name.startswith('backbone.norm.'):
        return HEAD_ID - 1
    return HEAD_ID


def expected_groups() -> Dict[str, List[Tuple[str, int]]]:
    """Group name -> [(parameter name, numel)] the config must give: no
    weight decay on biases and 1-D parameters."""
    groups: Dict[str, List[Tuple[str, int]]] = {}
    for name, param in LightToyDetector().named_parameters():
        decay = param.ndim > 1 and not name.endswith('.bias')
        key = f"layer_{layer_id(name)}_{'decay' if decay else 'no_decay'}"
        groups.setdefault(key, []).append((name, param.numel()))
    return groups


def lr_of(group_name: str) -> float:
    """Base lr x the layer-decay scale of a ``layer_{id}_...`` group."""
    return BASE_LR * DECAY**(HEAD_ID - int(group_name.split('_')[1]))


@pytest.fixture(autouse=True)
def keep_default_scope():
    """Give back the default scope the session had.

    The Runner and the CLI make ``'mmengine'`` (the config sets none) the
    current scope; the full tier, which collects this file first, builds
    mmdet models under the ``'mmdet'`` scope its conftest set.
    """
    before = DefaultScope.get_current_instance()
    yield
    if before is not None:
        init_default_scope(before.scope_name)


# ----------------------------------------------------------------- the hook


def factor(it: int) -> float:
    """Scheduler factor at iteration ``it``: LinearLR reaches 1 at
    ``WARMUP - 1``, then MultiStepLR steps at ``MILESTONE``."""
    warm = START + (1 - START) * min(it, WARMUP - 1) / (WARMUP - 1)
    return warm * (GAMMA if it >= MILESTONE else 1.)


@HOOKS.register_module(force=True)
class LightRecordLrs(Hook):
    """Per iteration, the optimizer's groups and the hook's scalars, at the
    moment the step uses them."""
    priority = 'LOW'  # after LayerDecayLrHook (NORMAL)

    def __init__(self):
        self.groups: Dict[int, List[dict]] = {}
        self.hub: Dict[int, Dict[str, float]] = {}
        self.losses: List[float] = []
        self.changed: Dict[str, bool] = {}

    def before_train(self, runner):
        self.start = {name: p.detach().clone()
                      for name, p in runner.model.named_parameters()}

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.losses.append(float(torch.as_tensor(outputs['loss']).detach()))

    def after_train(self, runner):
        self.optim_wrapper = type(runner.optim_wrapper).__name__
        self.device = next(runner.model.parameters()).device.type
        self.changed = {name: not torch.equal(p.detach(), self.start[name])
                        for name, p in runner.model.named_parameters()}

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        # the optimizer's own groups: mmengine >= 0.10's
        # optim_wrapper.param_groups adds a base-lr entry
        self.groups[runner.iter] = [
            dict(name=g['group_name'], lr=g['lr'], lr_scale=g['lr_scale'])
            for g in runner.optim_wrapper.optimizer.param_groups]
        self.hub[runner.iter] = {
            key: buffer.current()
            for key, buffer in runner.message_hub.log_scalars.items()
            if key.startswith('train/layer_')}


def toy_cfg(tmp_path: Path, optim_wrapper: Optional[dict] = None,
            checkpoint: bool = False, **hook_args) -> Config:
    """The config :func:`train` trains, with ``LayerDecayLrHook(
    **hook_args)``, the optim wrapper updated by ``optim_wrapper`` and, if
    ``checkpoint``, checkpoints at the last but one iteration (to resume)
    and at the end."""
    cfg = toy_run_cfg(
        str(tmp_path), f'light-hook-{tmp_path.name}', MAX_ITERS,
        2 * MAX_ITERS,
        [dict(type='LinearLR', start_factor=START, by_epoch=False, begin=0,
              end=WARMUP),
         dict(type='MultiStepLR', by_epoch=False, begin=0, end=MAX_ITERS,
              milestones=[MILESTONE], gamma=GAMMA)],
        [dict(type='LayerDecayLrHook', **hook_args),
         dict(type='LightRecordLrs')],
        MAX_ITERS - 1 if checkpoint else None)
    cfg.optim_wrapper.update(optim_wrapper or {})
    return cfg


def train(tmp_path: Path, optim_wrapper: Optional[dict] = None,
          checkpoint: bool = False,
          **hook_args) -> Tuple[LightRecordLrs, Path]:
    """Train the config's model ``MAX_ITERS`` iterations (on a GPU where
    there is one, as the Runner does) with ``LayerDecayLrHook(**hook_args)``
    and the config's optim wrapper updated by ``optim_wrapper``; return the
    record and the log dir."""
    cfg = toy_cfg(tmp_path, optim_wrapper, checkpoint, **hook_args)
    runner = Runner.from_cfg(cfg)
    runner.train()
    record = next(h for h in runner.hooks if isinstance(h, LightRecordLrs))
    return record, Path(runner.log_dir)


@pytest.fixture(scope='module')
def all_layers_run(tmp_path_factory) -> Tuple[LightRecordLrs, Path, Path]:
    """One run with ``layers='all'`` and checkpoints, for the hook's and
    the summary's tests: the record, the work dir and the log dir."""
    before = DefaultScope.get_current_instance()  # as keep_default_scope
    work = tmp_path_factory.mktemp('all_layers')
    record, log_dir = train(work, checkpoint=True, layers='all')
    if before is not None:
        init_default_scope(before.scope_name)
    return record, work, log_dir


def test_hook_logs_every_layers_lr_as_the_optimizer_has_it(all_layers_run):
    record, _, log_dir = all_layers_run
    ids = range(HEAD_ID + 1)
    for it in range(MAX_ITERS):
        groups = record.groups[it]
        assert {g['name'] for g in groups} == set(expected_groups())
        for group in groups:
            # the scheduler moves every group by the same factor
            assert group['lr'] == pytest.approx(
                lr_of(group['name']) * factor(it), rel=1e-9)
            assert group['lr'] == pytest.approx(
                BASE_LR * group['lr_scale'] * factor(it), rel=1e-9)
            layer = group['name'].split('_')[1]
            assert record.hub[it][f'train/layer_{layer}_lr'] == group['lr']
        assert set(record.hub[it]) == {f'train/layer_{i}_lr' for i in ids}
    # What the LoggerHook sent to the visualizer (step = iteration + 1,
    # one JSON object a line) and printed.
    scalars_file = log_dir / 'vis_data' / 'scalars.json'
    scalars = [json.loads(line)
               for line in scalars_file.read_text().splitlines()]
    assert [s['step'] for s in scalars] == list(range(1, MAX_ITERS + 1))
    for it, logged in enumerate(scalars):
        assert {f'layer_{i}_lr': logged[f'layer_{i}_lr'] for i in ids} == \
            {k[len('train/'):]: v for k, v in record.hub[it].items()}
    log_text = next(log_dir.glob('*.log')).read_text()
    assert 'layer_0_lr: ' in log_text and f'layer_{HEAD_ID}_lr: ' in log_text


def test_hook_writes_the_groups_that_train(all_layers_run):
    """``layer_decay.json`` in the log dir: the settings the optimizer was
    built with, the title they give and its groups when training starts
    (lr under the warm-up's first factor, initial_lr before it)."""
    _, _, log_dir = all_layers_run
    data = json.loads((log_dir / RUN_FILE).read_text())
    assert data['iter'] == 0 and data['title'] == HEADER
    assert data['record'] == dict(
        paramwise_cfg=dict(decay_rate=DECAY, rules='vit_blocks',
                           num_layers=3),
        lr=BASE_LR, weight_decay=BASE_WD, family='ViT (blocks.i)',
        num_layers=3)
    groups = expected_groups()
    assert sorted(g['group_name'] for g in data['groups']) == sorted(groups)
    for group in data['groups']:
        name = group.pop('group_name')
        assert group == dict(
            layer_id=int(name.split('_')[1]),
            lr_scale=pytest.approx(lr_of(name) / BASE_LR, rel=1e-12),
            lr=pytest.approx(lr_of(name) * START, rel=1e-12),
            initial_lr=pytest.approx(lr_of(name), rel=1e-12),
            weight_decay=0. if name.endswith('no_decay') else BASE_WD,
            num_tensors=len(groups[name]),
            num_elements=sum(numel for _, numel in groups[name]), extra={})


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason='AmpOptimWrapper needs a CUDA device')
@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
def test_amp_optim_wrapper_on_cuda(tmp_path, dtype):
    """mmdet's ConvNeXt configs train with ``AmpOptimWrapper``: our groups
    and lrs go through its loss scaling and autocast unchanged, and every
    parameter trains."""
    record, _ = train(tmp_path, dict(type='AmpOptimWrapper', dtype=dtype),
                      layers='all')
    assert (record.optim_wrapper, record.device) == ('AmpOptimWrapper',
                                                     'cuda')
    for it in range(MAX_ITERS):
        assert {g['name']: g['lr'] for g in record.groups[it]} == {
            name: pytest.approx(lr_of(name) * factor(it), rel=1e-9)
            for name in expected_groups()}
    assert all(map(math.isfinite, record.losses)), record.losses
    assert all(record.changed.values()), record.changed


def test_hook_ends_and_interval(tmp_path):
    """``layers='ends'``: the stem's and the head's lr only; ``interval=2``:
    odd iterations keep the value of the one before."""
    record, log_dir = train(tmp_path, layers='ends', interval=2)
    for it in range(MAX_ITERS):
        logged = it - it % 2
        assert record.hub[it] == {
            'train/layer_0_lr': pytest.approx(lr_of('layer_0') *
                                              factor(logged), rel=1e-9),
            f'train/layer_{HEAD_ID}_lr': pytest.approx(
                BASE_LR * factor(logged), rel=1e-9)}
    # the summary shows the two layers and says how to get all of them
    summary = summarize_run(str(log_dir))
    assert f"(layers [0, {HEAD_ID}] only: LayerDecayLrHook(layers='all')" \
        in summary
    assert set(layer_lr_series(read_scalars(
        str(log_dir / 'vis_data' / 'scalars.json')))) == {0, HEAD_ID}


@pytest.mark.parametrize('args,match', [(dict(layers='first'), "'ends'"),
                                        (dict(interval=0), 'positive int')])
def test_hook_arguments_are_checked(args, match):
    with pytest.raises(ValueError, match=match):
        HOOKS.build(dict(type='LayerDecayLrHook', **args))


# ------------------------------------------------------------------ the CLI


def table_rows(text: str) -> List[List[str]]:
    """Cells of the table's group rows."""
    return [[cell.strip() for cell in line.strip('|').split('|')]
            for line in text.splitlines() if line.startswith('| layer_')]


def check_table(text: str, samples: bool = True) -> None:
    """Rows ordered by layer (decay first), each with its lr_scale, lr,
    weight decay and counts (and sample names: the CLI's table, not the
    training log's)."""
    groups = expected_groups()
    rows = table_rows(text)
    order = sorted(groups, key=lambda g: (int(g.split('_')[1]),
                                          g.endswith('no_decay')))
    assert [row[0] for row in rows] == order
    for row in rows:
        assert len(row) == 7 + samples
        name, layer, scale, lr, decay, tensors, elements = row[:7]
        assert int(layer) == int(name.split('_')[1])
        assert float(scale) == pytest.approx(lr_of(name) / BASE_LR, rel=1e-3)
        assert float(lr) == pytest.approx(lr_of(name), rel=1e-3)
        assert float(decay) == (0. if name.endswith('no_decay') else BASE_WD)
        assert int(tensors) == len(groups[name])
        numels = [numel for _, numel in groups[name]]
        assert int(elements.replace(',', '')) == sum(numels)
        if samples:
            assert row[7].startswith(groups[name][0][0])


def test_table(capsys):
    assert main([CONFIG]) == 0
    out = capsys.readouterr().out
    # log lines may come first, when a logger writes to this capture
    lines = out.splitlines()
    title = lines.index(f'{CONFIG}: {NAME}')
    # then the training log's header line, then the table
    assert lines[title + 1] == HEADER and lines[title + 2].startswith('+-')
    check_table(out)


def test_inspect_command_is_the_form_without_a_command(capsys):
    """``inspect CONFIG`` prints what ``CONFIG`` does; ``--help`` of the
    program and of each command show the arguments."""
    assert main(['inspect', CONFIG]) == 0
    out = capsys.readouterr().out
    assert main([CONFIG]) == 0
    assert capsys.readouterr().out == out
    check_table(out)
    for argv, shown in ((['--help'], ('inspect CONFIG', 'summary WORK_DIR',
                                      '--cfg-options', '--plot')),
                        (['inspect', '--help'], ('--cfg-options', '--json',
                                                 '--plot')),
                        (['summary', '--help'], ('WORK_DIR', '--plot'))):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
        help_text = capsys.readouterr().out
        assert all(word in help_text for word in shown), (argv, help_text)


def test_custom_keys_warning_points_at_the_config_line(tmp_path, capsys):
    """A custom_keys entry that matches nothing: the warning names the line
    of the config given on the command line that sets it."""
    config = tmp_path / 'typo.py'
    config.write_text(
        f'_base_ = [{CONFIG!r}]\noptim_wrapper = dict(paramwise_cfg=dict(\n'
        "    custom_keys={'nek': dict(lr_mult=2.)}))\n")
    with pytest.warns(UserWarning, match=r"custom_keys\['nek'\]") as record:
        assert main(['inspect', str(config)]) == 0
    assert (record[0].filename, record[0].lineno) == (str(config), 3)
    assert "Did you mean 'neck'" in str(record[0].message)
    assert '| layer_4_decay ' in capsys.readouterr().out


def test_json(tmp_path, capsys):
    out = tmp_path / 'groups.json'
    assert main([CONFIG, '--json', str(out)]) == 0
    data = json.loads(out.read_text())
    groups = expected_groups()
    assert f'wrote {out}: {len(groups)} groups and ' in capsys.readouterr().out
    assert data['config'] == CONFIG
    assert data['constructor'] == NAME
    ids = [g['layer_id'] for g in data['groups']]
    assert ids == sorted(ids) and set(ids) == set(range(HEAD_ID + 1))
    for group in data['groups']:
        name = group['group_name']
        assert group['layer_id'] == int(name.split('_')[1])
        assert group['param_names'] == [n for n, _ in groups[name]]
        assert group['lr'] == pytest.approx(lr_of(name), rel=1e-12)
        assert group['lr_scale'] == pytest.approx(lr_of(name) / BASE_LR)
    params = {n: (g, numel) for g, ps in groups.items() for n, numel in ps}
    assert data['params'].keys() == params.keys()
    for name, entry in data['params'].items():
        group = params[name][0]
        assert entry == dict(
            group=group, layer_id=layer_id(name),
            lr=pytest.approx(lr_of(group), rel=1e-12),
            weight_decay=0. if group.endswith('no_decay') else BASE_WD)


def test_config_error_is_a_message_and_exit_1(capsys):
    assert main([CONFIG, '--cfg-options',
                 'optim_wrapper.paramwise_cfg.num_layer=3']) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f'{CONFIG}: error: ')
    assert "unknown key 'num_layer'" in captured.err
    assert 'Traceback' not in captured.err + captured.out


# mmengine 0.7's Config leaves its temporary copy of an unreadable file open
# after removing its directory: a harmless unlink error when it is collected.
@pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')
def test_unreadable_config_is_a_message_and_exit_1(tmp_path, capsys):
    config = tmp_path / 'broken.py'
    config.write_text('model = dict(type=\n')
    assert main([str(config)]) == 1
    assert 'error: cannot read the config: ' in capsys.readouterr().err


def test_missing_config_file_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / 'nope.py')])
    assert exit_.value.code == 2
    assert 'no config file at' in capsys.readouterr().err


def test_module_entry_imports_no_heavy_package(tmp_path):
    """The real ``python -m layerdecay_plugin``, every module it loads
    listed by ``-v``: none of mmdet, mmcv, mmpretrain, even where they are
    installed (the full tier's venv), and no warning about a missing scope.

    ``-v``, not ``-X importtime``: importtime misses modules loaded by
    ``importlib.import_module``, which is how mmengine imports a scope's
    registry and a config's ``custom_imports``.
    """
    out = tmp_path / 'groups.json'
    path = [str(ROOT), str(ROOT / 'tests'), os.environ.get('PYTHONPATH', '')]
    result = subprocess.run(
        [sys.executable, '-v', '-m', 'layerdecay_plugin', CONFIG, '--json',
         str(out)],
        capture_output=True, text=True, cwd=str(tmp_path),
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path))))
    assert result.returncode == 0, result.stderr[-2000:]
    check_table(result.stdout)
    assert len(json.loads(out.read_text())['groups']) == len(expected_groups())
    # -v: "import 'light.cli_toys' # <...SourceFileLoader object at ...>"
    loaded = set(re.findall(r"^import '([\w.]+)' #", result.stderr, re.M))
    assert {'layerdecay_plugin.cli', 'light.cli_toys'} <= loaded
    assert not {name.split('.')[0] for name in loaded} & set(HEAVY)
    assert 'mmengine - WARNING' not in result.stdout + result.stderr


def log_of(log: Path, run) -> str:
    """What a new current MMLogger, writing to ``log``, got while ``run()``
    ran (the CLI builds under it, as training does)."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_instance(f'light-cli-{log.parent.name}-{log.stem}',
                                   log_file=str(log))
    run()
    for handler in logger.handlers:
        handler.flush()
    return log.read_text()


def test_num_layers_larger_than_needed_says_what_it_costs(tmp_path, capsys):
    """num_layers=5 where the toy needs 3: patch_embed and the 3 blocks
    (ids fixed by their index) get decay_rate**2 more, the final norm (id
    num_layers) keeps its lr, and id 4 is empty."""
    log = log_of(tmp_path / 'larger.txt', lambda: main([
        CONFIG, '--cfg-options', 'optim_wrapper.paramwise_cfg.num_layers=5'
    ]))
    assert ("layer decay: paramwise_cfg.num_layers=5 is larger than this ViT "
            "(blocks.i) backbone needs with decay_type='layer_wise' (3): "
            'layer ids [4] hold no parameter; of its 10 trainable '
            'parameters, 8 get decay_rate**2 = 0.81 times the lr '
            'num_layers=3 gives them') in log
    assert 'num_layers=5, base lr' in capsys.readouterr().out
    # the command prints its table; the constructor's is not logged
    assert '| layer_' not in log
    # the config's own num_layers=3 is what the toy needs: no such line
    assert 'is larger than' not in log_of(tmp_path / 'needed.txt',
                                          lambda: main([CONFIG]))


def test_missing_backbone_names_the_likely_child(capsys):
    assert main([CONFIG, '--cfg-options',
                 'optim_wrapper.paramwise_cfg.backbone_attr=trunk']) == 1
    err = capsys.readouterr().err
    assert "backbone module at `trunk`" in err
    assert ("`backbone` looks like the backbone: set "
            "paramwise_cfg.backbone_attr='backbone'.") in err


# --------------------------------------------- the summary of a finished run


def summary_lrs(text: str) -> Dict[int, List[float]]:
    """layer id -> its lrs in the summary's lr table."""
    rows = re.findall(r'^  (\d+)(?: \([a-z ]+\))?((?: +[\d.e+-]+)+)$',
                      text, re.M)
    return {int(i): [float(v) for v in values.split()]
            for i, values in rows}


def test_cli_summary_of_a_work_dir(all_layers_run, capsys):
    """``--work-dir``: the training log's table under its header, each
    layer's lr at the first, highest and last iteration, what the log's lr
    and base_lr were, the files, and the PNG of the scalars."""
    record, work, log_dir = all_layers_run
    assert main(['--work-dir', str(work)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f'===== layer decay: what {log_dir} did ====='
    assert lines[1] == HEADER and lines[2].startswith('+-')
    check_table(out, samples=False)
    # the first iteration, the schedule's peak (the end of the warm-up,
    # iteration WARMUP - 1 counted from 0) and the last
    assert re.search(rf'^  layer\s+iter 1\s+iter {WARMUP} \(max\)\s+'
                     rf'iter {MAX_ITERS}$', out, re.M)
    lrs = summary_lrs(out)
    assert sorted(lrs) == list(range(HEAD_ID + 1))
    for layer, shown in lrs.items():
        hub = [record.hub[it][f'train/layer_{layer}_lr']
               for it in (0, WARMUP - 1, MAX_ITERS - 1)]
        assert shown == pytest.approx(hub, rel=1e-4)
    # mmengine's lr: the first group's (the patch embedding's); base_lr
    # (mmengine >= 0.8): optimizer.lr under the schedule, the head's
    explained = {line.split()[0]: line for line in lines
                 if ' in the log is ' in line}
    assert "the optimizer's first param group's lr" in explained['`lr`']
    assert explained['`lr`'].endswith(': here layer 0 (stem)')
    scalars = read_scalars(str(log_dir / 'vis_data' / 'scalars.json'))
    assert ('`base_lr`' in explained) == ('base_lr' in scalars[-1])
    if 'base_lr' in scalars[-1]:
        assert 'optimizer.lr under the schedule' in explained['`base_lr`']
        assert explained['`base_lr`'].endswith(
            f': here layer {HEAD_ID} (neck and heads)')
    png = log_dir / PNG_NAME
    files = dict(line.split(':', 1) for line in lines[-4:])
    assert files['checkpoint'].strip() == str(work / f'iter_{MAX_ITERS}.pth')
    assert files['log'].strip() == str(log_dir / f'{log_dir.name}.log')
    assert files['scalars'].strip() == str(log_dir / 'vis_data' /
                                           'scalars.json')
    assert files['picture'].strip().startswith(str(png))
    assert png.read_bytes()[:8] == PNG_MAGIC
    # a log dir works too, and --plot puts the picture elsewhere
    other = work / 'elsewhere.png'
    assert main(['--work-dir', str(log_dir), '--plot', str(other)]) == 0
    assert f'picture:    {other}' in capsys.readouterr().out
    assert other.read_bytes()[:8] == PNG_MAGIC


def test_summary_reads_what_the_hook_logged(all_layers_run):
    """The series plotted are the hook's values at every iteration."""
    record, work, log_dir = all_layers_run
    run = find_run(str(work))
    assert (Path(run.log_dir), Path(run.scalars)) == (
        log_dir, log_dir / 'vis_data' / 'scalars.json')
    series = layer_lr_series(read_scalars(run.scalars))
    assert series == {
        layer: [(it + 1, record.hub[it][f'train/layer_{layer}_lr'])
                for it in range(MAX_ITERS)]
        for layer in range(HEAD_ID + 1)}


def test_work_dir_errors(tmp_path, capsys):
    """No run there, or a run without the hook: exit 1 with what to do;
    a CONFIG and --work-dir together, or neither: argparse's exit 2."""
    assert main(['--work-dir', str(tmp_path)]) == 1
    assert 'no finished run here' in capsys.readouterr().err
    run = tmp_path / '20260101_000000' / 'vis_data'
    run.mkdir(parents=True)
    (run / 'scalars.json').write_text(
        '{"lr": 0.001, "loss": 1.0, "step": 1}\n')
    assert main(['--work-dir', str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert 'no layer_{id}_lr scalars' in err
    assert "custom_hooks=[dict(type='LayerDecayLrHook', layers='all')]" in err
    assert main(['summary', str(tmp_path)]) == 1
    assert 'no layer_{id}_lr scalars' in capsys.readouterr().err
    for argv in ([], [CONFIG, '--work-dir', str(tmp_path)],
                 ['--work-dir', str(tmp_path), '--json', 'x.json'],
                 ['summary'], ['summary', str(tmp_path), '--json', 'x.json'],
                 ['inspect'], ['inspect', CONFIG, '--work-dir', 'w'],
                 ['summary', str(tmp_path), CONFIG]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2, argv


def test_summary_command_reads_the_json_not_the_log(all_layers_run,
                                                     tmp_path, capsys):
    """``summary DIR`` prints what ``--work-dir DIR`` does; without the log
    file the table is still there: it comes from layer_decay.json."""
    _, work, log_dir = all_layers_run
    assert main(['summary', str(log_dir), '--plot',
                 str(tmp_path / 'a.png')]) == 0
    out = capsys.readouterr().out
    assert main(['--work-dir', str(log_dir), '--plot',
                 str(tmp_path / 'a.png')]) == 0
    assert capsys.readouterr().out == out
    copy = tmp_path / log_dir.name
    shutil.copytree(str(log_dir), str(copy))
    (copy / f'{log_dir.name}.log').unlink()
    text = summarize_run(str(copy), str(tmp_path / 'b.png'))
    lines = text.splitlines()
    assert lines[1] == HEADER and lines[2].startswith('+-')
    check_table(text, samples=False)
    assert 'log:        (none)' in lines
    # all but the files' lines as with the log
    assert text.replace(str(copy), str(log_dir)).split('\ncheckpoint:')[0] \
        == out.split('\ncheckpoint:')[0]
    # and without layer_decay.json (a run of another version): no table
    (copy / RUN_FILE).unlink()
    text = summarize_run(str(copy), str(tmp_path / 'b.png'))
    assert f'(no {RUN_FILE} in {copy}: ' in text and '| layer_' not in text
    assert sorted(summary_lrs(text)) == list(range(HEAD_ID + 1))


def test_summary_of_a_keep_checkpoint_resume(all_layers_run, tmp_path,
                                             capsys):
    """Resumed one iteration before the end with another decay_rate and
    ``resume_mismatch='keep_checkpoint'``: the checkpoint's groups train.
    The summary says so at the top with both values, and shows the groups
    and the lrs that trained, in one column for the one iteration."""
    first, work, _ = all_layers_run
    last = MAX_ITERS - 1  # the iteration resumed at, counted from 0
    cfg = toy_cfg(tmp_path, layers='all')
    cfg.optim_wrapper.paramwise_cfg.update(
        decay_rate=0.7, resume_mismatch='keep_checkpoint')
    cfg.resume, cfg.load_from = True, str(work / f'iter_{last}.pth')
    runner = Runner.from_cfg(cfg)
    runner.train()
    resumed = next(h for h in runner.hooks if isinstance(h, LightRecordLrs))
    assert resumed.hub == {last: first.hub[last]}
    data = json.loads((Path(runner.log_dir) / RUN_FILE).read_text())
    assert data['iter'] == last
    assert data['record']['paramwise_cfg']['decay_rate'] == 0.7
    assert data['title'] == HEADER.replace('decay_rate=0.9', 'decay_rate=0.7')
    capsys.readouterr()  # the training log
    assert main(['summary', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1:6] == [
        "NOTE: this run did not train with its config's layer decay:",
        '  decay_rate: 0.9 trained, 0.7 in the config',
        f'  It resumed at iteration {last} with paramwise_cfg.'
        "resume_mismatch='keep_checkpoint', which keeps the checkpoint's "
        'groups.',
        '  The table and the lrs below are those that trained.',
        HEADER]
    check_table(out, samples=False)  # decay_rate 0.9's lr_scales and lrs
    assert re.search(rf'^  layer\s+iter {MAX_ITERS}$', out, re.M)
    assert summary_lrs(out) == {
        layer: [pytest.approx(first.hub[last][f'train/layer_{layer}_lr'],
                              rel=1e-4)]
        for layer in range(HEAD_ID + 1)}


def write_scalars(work: Path, lrs: Dict[int, List[float]]) -> Path:
    """A run's ``vis_data/scalars.json`` with only ``layer_{id}_lr``
    scalars: layer id -> lr at steps 1, 2, ..."""
    run = work / '20260101_000000'
    (run / 'vis_data').mkdir(parents=True)
    steps = zip(*lrs.values())
    (run / 'vis_data' / 'scalars.json').write_text(''.join(
        json.dumps(dict({f'layer_{i}_lr': v for i, v in zip(lrs, values)},
                        step=step)) + '\n'
        for step, values in enumerate(steps, 1)))
    return run


@pytest.mark.parametrize('head,columns', [
    ([1e-3], ['iter 1']),
    ([1e-3, 1e-3], ['iter 1', 'iter 2']),
    ([2e-3, 1e-3, 1e-4], ['iter 1', 'iter 3']),
    ([1e-4, 1e-4, 1e-3], ['iter 1', 'iter 3']),
    ([1e-4, 1e-3, 1e-4], ['iter 1', 'iter 2 (max)', 'iter 3']),
])
def test_summary_columns_are_distinct_iterations(tmp_path, head, columns):
    """The first, highest and last logged iteration, each once."""
    write_scalars(tmp_path, {0: [lr / 2 for lr in head], 1: head})
    text = summarize_run(str(tmp_path), str(tmp_path / 'x.png'))
    header = next(line for line in text.splitlines()
                  if line.startswith('  layer '))
    assert re.split(r'\s{2,}', header.strip())[1:] == columns
    assert summary_lrs(text)[1] == [head[int(c.split()[1]) - 1]
                                    for c in columns]


# ----------------------------------------------------------- tools/train.py


def train_script(monkeypatch, *argv) -> None:
    """``python tools/train.py ARGV`` as a user runs it, in this process
    (a subprocess would spend ~10 s importing torch and mmengine again)."""
    monkeypatch.syspath_prepend(str(ROOT / 'tools'))  # its dist_compat
    monkeypatch.setattr(sys, 'argv', ['tools/train.py', *map(str, argv)])
    runpy.run_path(str(ROOT / 'tools' / 'train.py'), run_name='__main__')


def test_train_script_ends_with_the_summary(tmp_path, monkeypatch, capsys):
    work = tmp_path / 'work'
    cfg = toy_cfg(work, checkpoint=True, layers='all')
    config = tmp_path / 'toy_train.py'
    cfg.dump(str(config))
    train_script(monkeypatch, config, '--work-dir', work)
    out = capsys.readouterr().out
    summary = out[out.index('===== layer decay: what '):].splitlines()
    assert HEADER in summary and 'picture:' in summary[-2]
    assert summary[-1] == ('again, for this or any finished run: python -m '
                           f'layerdecay_plugin summary {work}')
    assert sorted(summary_lrs('\n'.join(summary))) == list(range(HEAD_ID + 1))
    assert f'iter_{MAX_ITERS}.pth' in '\n'.join(summary)
    log_dir, = work.glob('2*_*')
    assert (log_dir / PNG_NAME).read_bytes()[:8] == PNG_MAGIC


# ------------------------- a run that meant layer decay hears why it has none

from layerdecay_plugin.cli.summary import SummaryError  # noqa: E402


def test_inspect_prints_the_schedule_notes_after_the_table(tmp_path, capsys):
    """``check_schedule`` on the groups built: an absolute ``eta_min`` at
    or above the stem's lr is a warning, one below it that flattens the
    decay an info line; printed after the table."""
    stem_lr = BASE_LR * 0.7**HEAD_ID  # 2.401e-4, the head's / 4.16
    config = tmp_path / 'floors.py'
    config.write_text(
        f'_base_ = [{CONFIG!r}]\n'
        'optim_wrapper = dict(paramwise_cfg=dict(decay_rate=0.7))\n'
        'param_scheduler = [\n'
        "    dict(type='CosineAnnealingLR', eta_min=3e-4, T_max=10),\n"
        "    dict(type='PolyLR', eta_min=1e-4, power=1., end=10)]\n")
    assert main(['inspect', str(config)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    notes = [line for line in lines
             if line.startswith(('warning: ', 'info: '))]
    assert lines[-2:] == notes  # after the table and its footnotes
    assert notes[0].startswith(
        'warning: layer decay: param_scheduler[0] CosineAnnealingLR('
        'eta_min=0.0003) is an absolute floor at or above the starting lr '
        f'of layer(s) 0 (layer 0 starts at {stem_lr:.3g})')
    assert 'use eta_min_ratio=0.3 instead' in notes[0]
    assert notes[1].startswith(
        'info: layer decay: param_scheduler[1] PolyLR(eta_min=0.0001) is an '
        'absolute floor: every layer ends at 0.0001')
    # the config as it is: no schedule, no note
    assert main(['inspect', CONFIG]) == 0
    assert 'layer decay: param_scheduler' not in capsys.readouterr().out


def test_inspect_takes_a_registered_constructor_without_decay_keys(capsys):
    """The default constructor, named, without layer-decay keys: built, and
    the table says there is no layer decay (no "did you mean")."""
    assert main([CONFIG, '--cfg-options',
                 'optim_wrapper.constructor=DefaultOptimWrapperConstructor',
                 'optim_wrapper.paramwise_cfg=None']) == 0
    assert 'no layer decay in this config' in capsys.readouterr().out


def test_hook_with_layer_decay_gives_no_reason(all_layers_run):
    _, _, log_dir = all_layers_run
    assert json.loads((log_dir / RUN_FILE).read_text())[
        'no_layer_decay'] is None
    assert 'no layer-decay param groups' not in next(
        log_dir.glob('*.log')).read_text()


def hooked_cfg(work: Path, constructor: Optional[str],
               paramwise: Optional[dict]) -> Config:
    """The toy run with ``LayerDecayLrHook(layers='all')`` only (whose
    groups need no name), ``constructor`` (None: no key) and ``paramwise``
    as ``paramwise_cfg``."""
    cfg = toy_run_cfg(str(work), f'light-why-{work.name}', MAX_ITERS,
                      2 * MAX_ITERS, [],
                      [dict(type='LayerDecayLrHook', layers='all')], None)
    del cfg.optim_wrapper['constructor']
    if constructor is not None:
        cfg.optim_wrapper.constructor = constructor
    cfg.optim_wrapper.paramwise_cfg = paramwise
    return cfg


NOT_OURS = ("the optimizer was not built by layerdecay_plugin's constructor: "
            "optim_wrapper.constructor is 'DefaultOptimWrapperConstructor', "
            'so the run has no layer decay. Set optim_wrapper.constructor='
            f"'{NAME}' and paramwise_cfg=dict(decay_rate=...) to get it.")
MISSING = ("optim_wrapper.paramwise_cfg sets decay_rate, rules, but "
           "optim_wrapper.constructor is not set (mmengine's "
           'DefaultOptimWrapperConstructor), which ignores them: the run '
           f"would train without layer decay. Set optim_wrapper.constructor="
           f"'{NAME}'.")


@pytest.mark.parametrize('paramwise,reason', [
    (None, NOT_OURS),  # another constructor, no layer decay asked
    (dict(decay_rate=DECAY, rules='vit_blocks', num_layers=3), MISSING),
])
def test_hook_without_layer_decay_groups_says_why(tmp_path, paramwise,
                                                  reason):
    """The hook on an optimizer mmengine's default constructor built: a
    warning before training with the reason (``constructor_problem`` where
    the config has layer-decay keys, else the constructor it has), the
    reason in layer_decay.json, and the summary names it instead of
    advising to add the hook that was there."""
    cfg = hooked_cfg(tmp_path, None if paramwise else
                     'DefaultOptimWrapperConstructor', paramwise)
    runner = Runner.from_cfg(cfg)
    runner.train()
    log_dir = Path(runner.log_dir)
    data = json.loads((log_dir / RUN_FILE).read_text())
    assert data['no_layer_decay'] == reason
    assert ('WARNING - LayerDecayLrHook: the optimizer has no layer-decay '
            'param groups (none named layer_{id}_...), so there is no layer '
            f'lr to log: {reason}') in next(log_dir.glob('*.log')).read_text()
    with pytest.raises(SummaryError) as error:
        summarize_run(str(tmp_path))
    assert str(error.value).endswith(
        'no layer_{id}_lr scalars, so no per-layer lr to show; '
        'LayerDecayLrHook ran, but the optimizer had no layer-decay groups: '
        + reason)
    assert "custom_hooks=[dict(type='LayerDecayLrHook'" not in \
        str(error.value)


def test_summary_of_a_hooked_run_without_scalars_asks_for_the_backend(
        tmp_path):
    """The hook wrote layer_decay.json but no LocalVisBackend wrote
    scalars: the advice is the backend, not the hook."""
    run = tmp_path / '20260101_000000'
    run.mkdir()
    (run / RUN_FILE).write_text('{"groups": []}')
    with pytest.raises(SummaryError, match='add LocalVisBackend to '
                       'visualizer.vis_backends') as error:
        summarize_run(str(tmp_path))
    assert 'LayerDecayLrHook' in str(error.value)
    assert "custom_hooks=[dict(type='LayerDecayLrHook'" not in \
        str(error.value)


def test_train_script_summary_names_the_missing_constructor(
        tmp_path, monkeypatch, capsys):
    """tools/train.py with the hook and mmengine's default constructor (no
    layer decay asked: it trains): its last words name the constructor."""
    work = tmp_path / 'work'
    cfg = hooked_cfg(work, 'DefaultOptimWrapperConstructor', None)
    config = tmp_path / 'toy_default.py'
    cfg.dump(str(config))
    train_script(monkeypatch, config, '--work-dir', work)
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1] == (
        '(no layer decay summary: ' + str(
            next(work.glob('2*_*')) / 'vis_data' / 'scalars.json') +
        ': no layer_{id}_lr scalars, so no per-layer lr to show; '
        'LayerDecayLrHook ran, but the optimizer had no layer-decay groups: '
        f'{NOT_OURS})')
