"""A config that asks for layer decay and would not get it is refused, by
``tools/train.py`` (a real subprocess: exit 2, the message, no traceback,
nothing built) and by ``python -m layerdecay_plugin inspect``, before
anything is built: the plugin's name as ``optim_wrapper.type``, a look-alike
constructor name ("did you mean"), ``decay_rate`` with no constructor.
Torch-only: ``configs/toy_layerdecay.py``, whose model comes from
:mod:`light.cli_toys`."""
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from layerdecay_plugin.cli import main
from layerdecay_plugin.registry import NAME

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CONFIG = str(HERE / 'configs' / 'toy_layerdecay.py')
DID_YOU_MEAN = f"did you mean optim_wrapper.constructor='{NAME}'?"


def no_constructor(tmp_path: Path) -> str:
    """The toy config with its ``paramwise_cfg`` (``decay_rate``, ...) and
    no ``constructor``: mmengine's default one would ignore them."""
    config = tmp_path / 'no_constructor.py'
    config.write_text(
        f'_base_ = [{CONFIG!r}]\n'
        "optim_wrapper = dict(_delete_=True, type='OptimWrapper',\n"
        "    paramwise_cfg=dict(decay_rate=0.9, rules='vit_blocks', "
        'num_layers=3),\n'
        "    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))\n")
    return str(config)


# (what the config gets, what the message must say)
CASES = {
    'look-alike constructor': (
        ['--cfg-options',
         'optim_wrapper.constructor=LayerDecayOptimizerConstructor'],
        ["optim_wrapper.constructor='LayerDecayOptimizerConstructor' is not "
         'a registered optimizer wrapper constructor here', DID_YOU_MEAN]),
    'case slip of ours': (
        ['--cfg-options',
         'optim_wrapper.constructor=LayerdecayPluginConstructor'],
        ["optim_wrapper.constructor='LayerdecayPluginConstructor'",
         DID_YOU_MEAN]),
    'our name as type': (
        ['--cfg-options', f'optim_wrapper.type={NAME}'],
        [f"optim_wrapper.type='{NAME}' names layerdecay_plugin's "
         'constructor', "did you mean optim_wrapper=dict(type='OptimWrapper', "
         f"constructor='{NAME}', ...)?"]),
    'decay_rate, no constructor': (
        [], ['optim_wrapper.paramwise_cfg sets decay_rate, rules, '
             "but optim_wrapper.constructor is not set (mmengine's "
             'DefaultOptimWrapperConstructor), which ignores them: the run '
             'would train without layer decay. Set '
             f"optim_wrapper.constructor='{NAME}'."]),
}


def argv(case: str, tmp_path: Path) -> List[str]:
    """The config and its ``--cfg-options`` for a case of :data:`CASES`."""
    options, _ = CASES[case]
    config = no_constructor(tmp_path) if case.endswith('no constructor') \
        else CONFIG
    return [config, *options]


@pytest.mark.parametrize('case', ['look-alike constructor', 'our name as type',
                                  'decay_rate, no constructor'])
def test_train_script_refuses_it_before_the_runner(case, tmp_path):
    """``python tools/train.py``: exit 2 with the message instead of
    mmengine's ``KeyError`` traceback or a run without layer decay."""
    work = tmp_path / 'work'
    path = [str(ROOT), str(ROOT / 'tests'), os.environ.get('PYTHONPATH', '')]
    result = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'train.py'),
         *argv(case, tmp_path), '--work-dir', str(work)],
        capture_output=True, text=True, cwd=str(tmp_path),
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path))))
    assert result.returncode == 2, result.stderr[-3000:]
    config = argv(case, tmp_path)[0]
    assert result.stderr.startswith(f'{config}: error: '), result.stderr
    for text in CASES[case][1]:
        assert text in result.stderr
    assert 'Traceback' not in result.stderr + result.stdout
    assert not work.exists()  # stopped before the Runner


@pytest.mark.parametrize('case', list(CASES))
def test_inspect_refuses_it_before_building(case, tmp_path, capsys):
    assert main(['inspect', *argv(case, tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f'{argv(case, tmp_path)[0]}: error: ')
    for text in CASES[case][1]:
        assert text in captured.err
    assert '| layer_' not in captured.out  # nothing built
    assert 'Traceback' not in captured.err + captured.out

