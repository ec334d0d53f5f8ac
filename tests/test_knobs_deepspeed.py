"""``paramwise_cfg.freeze_below`` (with ``min_lr_scale``) under DeepSpeed
ZeRO-2 and ZeRO-3: mmengine's ``FlexibleRunner`` and ``DeepSpeedStrategy``
train the light toy detector on 2 CPU processes (tests/
knobs_deepspeed_worker.py; DDP and FSDP are in tests/light/
test_light_knobs.py).

DeepSpeed wraps the model after our constructor built the optimizer, so the
frozen parameters are in no group it steps, ZeRO-3 partitions and gathers
them like the others, their values stay, and the groups equal a single
process build. Resuming the iteration-2 checkpoint with the same settings
continues; with ``freeze_below`` changed it is refused with our error
naming the change, at ZeRO-2 (through tools/dist_compat.py's
check_zero_resume) as at ZeRO-3 (our optimizer's own check).
"""
import json

import pytest
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS

from conftest import ROOT, torchrun
from knobs_deepspeed_worker import CHANGED, ENGINES, KNOBS
from light.cli_toys import CONFIG

#: ids 0 (scale 0.0625, floored to 0.1) and 1 (0.125) < freeze_below 0.2
FROZEN = {'backbone.patch_embed.weight', 'backbone.patch_embed.bias',
          'backbone.blocks.0.weight', 'backbone.blocks.0.bias'}
KEYS = ('group_name', 'lr_scale', 'initial_lr', 'weight_decay',
        'param_names')


@pytest.fixture(scope='module')
def found(tmp_path_factory):
    """Per engine, the runs of both ranks, and the output."""
    tmp = tmp_path_factory.mktemp('knobs_deepspeed')
    output = torchrun(ROOT / 'tests' / 'knobs_deepspeed_worker.py',
                      tmp / 'w', tmp / 'found', ','.join(ENGINES),
                      timeout=300)
    ranks = [json.loads((tmp / f'found.{r}.json').read_text())
             for r in (0, 1)]
    return {e: [r[e] for r in ranks] for e in ENGINES}, output


def single_process_groups(knobs: dict) -> list:
    """The toy's groups built in this process with a plain OptimWrapper."""
    import light.cli_toys  # noqa: F401  (registers the toy detector)
    cfg = Config.fromfile(CONFIG)
    cfg.model.pop('init_cfg')
    cfg.optim_wrapper.paramwise_cfg.update(knobs)
    wrapper = build_optim_wrapper(MODELS.build(cfg.model), cfg.optim_wrapper)
    for group in wrapper.optimizer.param_groups:
        group['initial_lr'] = group['lr']  # as the scheduler will set it
    return [{k: g[k] for k in KEYS} for g in wrapper.optimizer.param_groups]


@pytest.mark.parametrize('engine', ENGINES)
def test_frozen_layers_stay_out_and_unchanged(found, engine):
    runs, output = found
    reference = single_process_groups(KNOBS)
    optimized = {n for g in reference for n in g['param_names']}
    # the floor composes: id 0 frozen at its floored scale, the others
    # keep theirs (0.5**(4 - id))
    assert 'layer ids 0-1 frozen by paramwise_cfg.freeze_below=0.2 ' \
        '(lr_scale 0.1-0.125): left out of the optimizer' in output
    assert sorted({g['lr_scale'] for g in reference}) == [0.25, 0.5, 1.]
    for rank, rank_runs in enumerate(runs[engine]):
        for run, iters in (('first', [0, 4]), ('same', [2, 4])):
            got = rank_runs[run]
            assert 'error' not in got, (rank, run, got)
            assert got['iters'] == iters, (rank, run)
            params = got['params']
            assert set(params) == optimized | FROZEN
            assert not optimized & FROZEN
            for name, (requires_grad, changed) in params.items():
                assert requires_grad is (name not in FROZEN), (rank, name)
                assert changed is (name not in FROZEN), (rank, run, name)
            groups = got['groups']
            for group in groups:  # what DeepSpeed steps, in every group
                assert group.pop('stepped') == group['param_names']
            assert groups == reference, (rank, run)


@pytest.mark.parametrize('engine', ENGINES)
def test_resume_with_changed_freeze_below_is_refused(found, engine):
    runs, _ = found
    assert CHANGED['freeze_below'] == 0.11  # unfreezes id 1
    for rank_runs in runs[engine]:  # both ranks stop, neither hangs
        error = rank_runs['changed']['error']
        assert error.startswith('layer decay: the checkpoint'), error
        assert '  - paramwise_cfg.freeze_below: 0.2 -> 0.11\n' in error
        assert '2 groups are new: layer_1_decay (1 parameter), ' \
            'layer_1_no_decay (1 parameter)' in error
        assert 'backbone.blocks.0.weight' in error
