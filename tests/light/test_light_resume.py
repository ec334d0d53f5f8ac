"""Resume is exact or loud (``layerdecay_plugin.resume``), torch + mmengine
only: the comparison on plain groups, the optimizer our constructor builds
loading other groups' state, mmengine's ``Runner`` resuming the light toy
config with every layer-decay setting changed, unchanged, and with
``resume_mismatch='keep_checkpoint'``, and DDP, FSDP and
``ZeroRedundancyOptimizer`` on 2 CPU processes (``resume_worker.py``)."""
import copy
import json
import math
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.optim import (DefaultOptimWrapperConstructor,
                            build_optim_wrapper)
from mmengine.registry import HOOKS, DefaultScope, init_default_scope
from mmengine.runner import Runner

from layerdecay_plugin import LayerDecayConfigError, parse_paramwise_cfg
from layerdecay_plugin.resume import (STATE_KEY, compare_groups,
                                      describe_settings, infer_settings,
                                      mismatch_message)
from layerdecay_plugin.resume import record_of as record_of_optimizer
from light.cli_toys import LightToyDetector  # noqa: F401  (registers it)
from light.cli_toys import toy_run_cfg
from light.dist import torchrun
from light.toys import ToyConvNeXt, ToyDetector

HERE = Path(__file__).resolve().parent
OPTIMIZER = dict(type='AdamW', lr=1e-3, weight_decay=0.05)


# ------------------------------------------------ the comparison, torch-free


def layer_groups(decay_rate: float, num_layers: int, lr: float = 1e-3,
                 wd: float = 0.05, members: Optional[Dict] = None,
                 **extra) -> List[dict]:
    """Groups as mmdet names them (``layer_{id}_decay`` / ``_no_decay``),
    two parameters each unless ``members`` says otherwise."""
    groups = []
    for layer in range(num_layers + 2):
        scale = decay_rate**(num_layers + 1 - layer)
        for kind, decay in (('decay', wd), ('no_decay', 0.)):
            name = f'layer_{layer}_{kind}'
            names = (members or {}).get(
                name, [f'p{layer}.{kind}.{i}' for i in range(2)])
            groups.append(dict(
                group_name=name, param_names=names, params=list(names),
                lr_scale=scale, lr=lr * scale, initial_lr=lr * scale,
                weight_decay=decay, **extra))
    return groups


def test_settings_are_read_back_from_the_groups():
    assert infer_settings(layer_groups(0.8, 9, lr=2e-4, wd=0.1)) == dict(
        decay_rate=0.8, num_layers=9, lr=2e-4, weight_decay=0.1)
    assert infer_settings([dict(params=[1], lr=1.)]) == {}


def test_same_groups_have_no_difference():
    diff = compare_groups(layer_groups(0.8, 3), layer_groups(0.8, 3))
    assert diff.lines == [] and diff.loadable


def test_changed_groups_in_the_users_terms():
    moved = [f'backbone.stages.1.{i}.weight' for i in range(14)]
    old = layer_groups(0.8, 3, members={'layer_3_decay': moved,
                                        'layer_2_decay': []})
    new = layer_groups(0.5, 3, members={'layer_2_decay': moved,
                                        'layer_3_decay': []})
    new.append(dict(group_name='layer_5_decay', param_names=['extra'],
                    params=[0], lr_scale=1., weight_decay=0.05))
    diff = compare_groups(old, new)
    assert diff.lines[0] == \
        'layer_0_decay, layer_0_no_decay: lr_scale 0.41 -> 0.0625'
    assert diff.lines[-3:] == [
        'group layer_5_decay is new (1 parameter)',
        '14 parameters move from layer_3_decay to layer_2_decay '
        '(backbone.stages.1.0.weight, backbone.stages.1.1.weight, '
        'backbone.stages.1.2.weight, ...)',
        '1 parameter is in no group of the checkpoint (extra)']
    assert not diff.loadable
    gone = compare_groups(new, old)
    assert 'group layer_5_decay is gone (1 parameter)' in gone.lines
    assert '1 parameter of the checkpoint is in no group here (extra)' in \
        gone.lines


def test_renamed_groups_and_their_values():
    """num_layers 1 -> 2 shifts the head group's id: renamed, not gone and
    new with every parameter moved; a rename with another lr_scale says
    both."""
    old = layer_groups(0.5, 1)
    new = layer_groups(0.5, 1)
    for group in new[-2:]:
        group['group_name'] = group['group_name'].replace('_2_', '_3_')
    diff = compare_groups(old, new)
    assert diff.lines == ['2 groups are renamed: layer_2_decay -> '
                          'layer_3_decay, layer_2_no_decay -> '
                          'layer_3_no_decay']
    assert diff.loadable
    new[-1]['lr_scale'] = 0.5
    assert compare_groups(old, new).lines[0] == \
        'layer_3_no_decay: lr_scale 1 -> 0.5'


def test_base_lr_and_weight_decay_changes():
    diff = compare_groups(layer_groups(0.8, 1), layer_groups(0.8, 1, lr=2e-3,
                                                             wd=0.1))
    assert diff.loadable
    assert diff.lines == [
        'layer_0_decay: weight_decay 0.05 -> 0.1, lr 0.00064 -> 0.00128',
        'layer_0_no_decay: lr 0.00064 -> 0.00128',
        'layer_1_decay: weight_decay 0.05 -> 0.1, lr 0.0008 -> 0.0016',
        'layer_1_no_decay: lr 0.0008 -> 0.0016',
        'layer_2_decay: weight_decay 0.05 -> 0.1, lr 0.001 -> 0.002',
        'layer_2_no_decay: lr 0.001 -> 0.002',
    ]


def test_groups_without_parameter_names_by_count_and_size():
    """mmengine's default constructor names no parameters."""
    default = [dict(params=list(range(12)), lr=1e-3, weight_decay=0.05)]
    diff = compare_groups(default, layer_groups(0.8, 3))
    assert diff.lines[:2] == [
        "the checkpoint's groups name no parameters: it was saved without "
        "layer decay (e.g. mmengine's default constructor)",
        'the checkpoint has 1 param groups, this config builds 10']
    assert not diff.loadable
    same = [dict(params=g['params']) for g in layer_groups(0.8, 3)]
    assert compare_groups(same, layer_groups(0.8, 3)).lines == []


def test_settings_lines_recorded_then_read_from_groups():
    old, new = layer_groups(0.8, 9), layer_groups(0.5, 12)
    recorded = describe_settings(
        dict(paramwise_cfg=dict(decay_rate=0.8), lr=1e-3, weight_decay=.05),
        dict(paramwise_cfg=dict(decay_rate=0.5, num_layers=12), lr=1e-3,
             weight_decay=0.05), old, new)
    assert recorded == ['paramwise_cfg.decay_rate: 0.8 -> 0.5',
                        'paramwise_cfg.num_layers: not set -> 12',
                        'num_layers in effect (read from the groups): '
                        '9 -> 12']
    # mmdet's constructor records nothing: what the groups say
    assert describe_settings(None, {}, old, new) == [
        'decay_rate in effect (read from the groups): 0.8 -> 0.5',
        'num_layers in effect (read from the groups): 9 -> 12']


def test_message_names_the_ways_out_and_caps_lists():
    diff = compare_groups(layer_groups(0.8, 30), layer_groups(0.5, 30))
    message = mismatch_message(['paramwise_cfg.decay_rate: 0.8 -> 0.5'],
                               diff, keep_checkpoint=False)
    assert '  - paramwise_cfg.decay_rate: 0.8 -> 0.5' in message
    assert '  - ... and 22 more' in message
    assert len(message.splitlines()) < 25
    assert 'load_from=<checkpoint> without resume' in message
    assert "resume_mismatch='keep_checkpoint'" in message
    warning = mismatch_message([], diff, keep_checkpoint=True)
    assert 'Ways out' not in warning and 'keep_checkpoint' in warning


@pytest.mark.parametrize('value', ['warn', None, True])
def test_resume_mismatch_is_checked(value):
    with pytest.raises(LayerDecayConfigError,
                       match=f"paramwise_cfg.resume_mismatch={value!r} is "
                       "invalid: use 'error'"):
        parse_paramwise_cfg(dict(decay_rate=0.9, resume_mismatch=value))
    assert parse_paramwise_cfg(dict(
        decay_rate=0.9, resume_mismatch='keep_checkpoint')).resume_mismatch \
        == 'keep_checkpoint'
    assert parse_paramwise_cfg(dict(decay_rate=0.9)).resume_mismatch == \
        'error'


# ------------------------------------------------- the optimizer we build


def build(paramwise_cfg: dict, model=None, optimizer=None):
    """Our optim wrapper for the toy ConvNeXt detector (one fixed model,
    so that state dicts of several builds fit each other)."""
    torch.manual_seed(0)
    return build_optim_wrapper(
        model or ToyDetector(ToyConvNeXt()),
        dict(type='OptimWrapper',
             constructor='LayerDecayOptimWrapperConstructor',
             optimizer=dict(optimizer or OPTIMIZER),
             paramwise_cfg=dict(paramwise_cfg)))


def trained_state(wrapper) -> dict:
    """The wrapper's state dict after one AdamW step."""
    params = [p for g in wrapper.optimizer.param_groups for p in g['params']]
    sum(p.sum() for p in params).backward()
    wrapper.step()
    return copy.deepcopy(wrapper.state_dict())


LAYER_WISE = dict(decay_rate=0.8, num_layers=6)


def test_unchanged_state_loads_bit_for_bit():
    saved = trained_state(build(LAYER_WISE))
    assert saved[STATE_KEY] == dict(paramwise_cfg=LAYER_WISE, lr=1e-3,
                                    weight_decay=0.05, family='ConvNeXt',
                                    num_layers=6)
    wrapper = build(LAYER_WISE)
    wrapper.load_state_dict(copy.deepcopy(saved))
    loaded = wrapper.state_dict()
    assert loaded['param_groups'] == saved['param_groups']
    for key, state in saved['state'].items():
        assert all(torch.equal(state[k], loaded['state'][key][k])
                   for k in state)


def test_record_holds_family_and_num_layers_in_effect():
    """The table title of a run, from its optimizer: the family and the
    num_layers in effect (here inferred, not set)."""
    wrapper = build(dict(decay_rate=0.8))
    record = record_of_optimizer(wrapper.optimizer)
    assert record == dict(paramwise_cfg=dict(decay_rate=0.8), lr=1e-3,
                          weight_decay=0.05, family='ConvNeXt', num_layers=5)
    assert trained_state(wrapper)[STATE_KEY] == record
    assert record_of_optimizer(torch.optim.SGD([torch.zeros(1)], lr=1.)) \
        is None


def test_record_saved_without_family_and_num_layers_resumes():
    """A checkpoint saved before the record held them, nothing changed:
    loads as before."""
    saved = trained_state(build(LAYER_WISE))
    del saved[STATE_KEY]['family'], saved[STATE_KEY]['num_layers']
    wrapper = build(LAYER_WISE)
    wrapper.load_state_dict(copy.deepcopy(saved))
    assert wrapper.state_dict()['param_groups'] == saved['param_groups']
    # and a change is still named by the settings it records
    with pytest.raises(LayerDecayConfigError,
                       match='paramwise_cfg.decay_rate: 0.8 -> 0.5'):
        build(dict(LAYER_WISE, decay_rate=0.5)).load_state_dict(saved)


def test_decay_type_change_is_a_named_error_not_torchs():
    """Other groups: torch alone says 'loaded state dict has a different
    number of parameter groups'."""
    saved = trained_state(build(LAYER_WISE))
    wrapper = build(dict(LAYER_WISE, decay_type='stage_wise', num_layers=4))
    before = [without_params(g) for g in wrapper.optimizer.param_groups]
    with pytest.raises(LayerDecayConfigError) as error:
        wrapper.load_state_dict(saved)
    message = str(error.value)
    assert "paramwise_cfg.decay_type: not set -> 'stage_wise'" in message
    assert 'paramwise_cfg.num_layers: 6 -> 4' in message
    assert '  - 2 groups are renamed: layer_7_no_decay -> layer_5_no_decay, ' \
        'layer_7_decay -> layer_5_decay\n' in message
    assert '  - 2 groups are gone: layer_6_no_decay (9 parameters), ' \
        'layer_6_decay (4 parameters)\n' in message
    assert "'keep_checkpoint' cannot help" in message
    assert [without_params(g) for g in wrapper.optimizer.param_groups] == \
        before  # nothing loaded


@pytest.mark.parametrize('change,setting,effect', [
    (dict(rules=dict(layer_wise=[(r'^downsample_layers\.0\.', 0),
                                 (r'^stages\.(\d+)\.', 1),
                                 (r'^(downsample_layers|norm)', 'last')])),
     "paramwise_cfg.rules: not set -> {'layer_wise': ",
     '2 parameters move from layer_7_no_decay to layer_6_no_decay '
     '(backbone.norm3.weight, backbone.norm3.bias)'),
    (dict(no_decay_names=['weight']),
     "paramwise_cfg.no_decay_names: not set -> ['weight']",
     '1 parameter moves from layer_0_decay to layer_0_no_decay '
     '(backbone.downsample_layers.0.1.weight)'),
    (dict(bias_lr_mult=2.), 'paramwise_cfg.bias_lr_mult: not set -> 2',
     '7 groups are new: layer_0_no_decay_lr_x2 (1 parameter), '
     'layer_2_no_decay_lr_x2 (4 parameters), '),
])
def test_each_setting_changed_is_named(change, setting, effect):
    saved = trained_state(build(LAYER_WISE))
    with pytest.raises(LayerDecayConfigError) as error:
        build(dict(LAYER_WISE, **change)).load_state_dict(saved)
    assert setting in str(error.value)
    assert effect in str(error.value)


def test_checkpoint_of_the_default_constructor():
    model = ToyDetector(ToyConvNeXt())
    default = DefaultOptimWrapperConstructor(
        dict(type='OptimWrapper', optimizer=dict(OPTIMIZER)))(model)
    saved = trained_state(default)
    with pytest.raises(LayerDecayConfigError,
                       match='the checkpoint has 1 param groups, this '
                       'config builds 14'):
        build(LAYER_WISE, model).load_state_dict(saved)


def test_settings_record_survives_a_weights_only_load(tmp_path):
    path = tmp_path / 'optimizer.pth'
    torch.save(trained_state(build(dict(LAYER_WISE, custom_keys={
        'neck': dict(lr_mult=2.)}))), path)
    record = torch.load(path, weights_only=True)[STATE_KEY]
    assert record['paramwise_cfg']['custom_keys'] == {'neck': {'lr_mult': 2.}}


# ------------------------------------------------- mmengine's Runner


@pytest.fixture(autouse=True)
def keep_default_scope():
    """Give back the default scope the session had (see
    test_light_hook_cli.py)."""
    before = DefaultScope.get_current_instance()
    yield
    if before is not None:
        init_default_scope(before.scope_name)


@HOOKS.register_module(force=True)
class LightResumeRecord(Hook):
    """The optimizer state when training starts, and each iteration's
    groups."""
    priority = 'LOW'

    def __init__(self):
        self.groups: Dict[int, List[dict]] = {}
        self.state: Optional[dict] = None

    def before_train(self, runner):
        self.state = copy.deepcopy(runner.optim_wrapper.optimizer.state_dict())

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.groups[runner.iter] = [
            without_params(g)
            for g in runner.optim_wrapper.optimizer.param_groups]


MAX_ITERS = 4


def runner_for(work: Path, resume_from: Optional[Path] = None,
               optimizer: Optional[dict] = None, **paramwise) -> Runner:
    """A Runner of the light toy config, its layer decay and optimizer
    updated, resuming from ``resume_from`` when given."""
    cfg = toy_run_cfg(
        str(work), f'light-resume-{work.name}', MAX_ITERS, 2 * MAX_ITERS,
        [dict(type='LinearLR', start_factor=0.25, by_epoch=False, begin=0,
              end=MAX_ITERS)],
        [dict(type='LightResumeRecord')], 2)
    cfg.optim_wrapper.paramwise_cfg.update(paramwise)
    cfg.optim_wrapper.optimizer.update(optimizer or {})
    if resume_from is not None:
        cfg.resume, cfg.load_from = True, str(resume_from)
    return Runner.from_cfg(cfg)


def without_params(group: dict, *keys: str) -> dict:
    return {k: v for k, v in group.items() if k not in ('params', ) + keys}


def record_of(runner: Runner) -> LightResumeRecord:
    return next(h for h in runner.hooks if isinstance(h, LightResumeRecord))


def log_of(runner: Runner) -> str:
    return next(Path(runner.log_dir).glob('*.log')).read_text()


@pytest.fixture(scope='module')
def first_run(tmp_path_factory):
    """The toy config trained 4 iterations; its iteration-2 checkpoint."""
    before = DefaultScope.get_current_instance()
    work = tmp_path_factory.mktemp('resume') / 'first'
    runner = runner_for(work)
    runner.train()
    if before is not None:
        init_default_scope(before.scope_name)
    return record_of(runner), work / 'iter_2.pth'


def test_runner_resume_unchanged_is_exact(first_run, tmp_path):
    first, checkpoint = first_run
    runner = runner_for(tmp_path / 'same', checkpoint)
    runner.train()
    resumed = record_of(runner)
    assert sorted(resumed.groups) == [2, 3]
    for it in (2, 3):
        assert resumed.groups[it] == first.groups[it]
    saved = torch.load(checkpoint, map_location='cpu',
                       weights_only=False)['optimizer']
    assert resumed.state['param_groups'] == saved['param_groups']
    assert resumed.state['state'].keys() == saved['state'].keys()
    for key, state in saved['state'].items():
        for name, value in state.items():
            # the Runner puts the model on CUDA where there is one
            assert torch.equal(resumed.state['state'][key][name].cpu(),
                               value)
    assert 'layer decay: resuming' not in log_of(runner)


# setting changed -> (a line of its settings, a line of what changes)
RUNNER_CHANGES = {
    'decay_rate': (dict(decay_rate=0.5),
                   'paramwise_cfg.decay_rate: 0.9 -> 0.5',
                   'layer_0_decay, layer_0_no_decay: lr_scale 0.656 -> '
                   '0.0625'),
    'num_layers': (dict(num_layers=12), 'paramwise_cfg.num_layers: 3 -> 12',
                   '2 parameters move from layer_3_no_decay to '
                   'layer_12_no_decay (backbone.norm.weight, '
                   'backbone.norm.bias)'),
    'custom_keys': (dict(custom_keys={'neck': dict(lr_mult=2.)}),
                    "paramwise_cfg.custom_keys: not set -> {'neck': "
                    "{'lr_mult': 2.0}}",
                    'group layer_4_decay_lr_x2 is new (2 parameters)'),
    'rules': (dict(rules=dict(layer_wise=[
        (r'^patch_embed', 0), (r'^blocks\.(\d+)\.', 1), (r'^norm', 'head')])),
        "paramwise_cfg.rules: 'vit_blocks' -> {'layer_wise'",
        '2 parameters move from layer_3_no_decay to layer_4_no_decay'),
    'lr': (dict(optimizer=dict(lr=2e-3)), 'optimizer.lr: 0.001 -> 0.002',
           'layer_4_decay, layer_4_no_decay: lr 0.001 -> 0.002'),
    'weight_decay': (dict(optimizer=dict(weight_decay=0.1)),
                     'optimizer.weight_decay: 0.05 -> 0.1',
                     'layer_0_decay, layer_1_decay, layer_2_decay, '
                     'layer_3_decay, layer_4_decay: weight_decay 0.05 -> '
                     '0.1'),
}


@pytest.mark.parametrize('setting', list(RUNNER_CHANGES))
def test_runner_resume_changed_is_a_named_error(first_run, tmp_path,
                                                setting):
    change, settings_line, effect_line = RUNNER_CHANGES[setting]
    runner = runner_for(tmp_path / setting, first_run[1], **change)
    with pytest.raises(LayerDecayConfigError) as error:
        runner.train()
    message = str(error.value)
    assert f'  - {settings_line}' in message
    assert f'  - {effect_line}' in message
    assert 'load_from=<checkpoint> without resume' in message
    assert record_of(runner).groups == {}  # raised before training
    # and before torch replaced anything: the groups are as built, their
    # lr before the scheduler (initial_lr) that of this config
    built = build_optim_wrapper(runner.model, runner.cfg.optim_wrapper)
    groups = runner.optim_wrapper.optimizer.param_groups
    assert [without_params(g, 'lr', 'initial_lr') for g in groups] == \
        [without_params(g, 'lr') for g in built.optimizer.param_groups]
    assert [g['initial_lr'] for g in groups] == \
        [g['lr'] for g in built.optimizer.param_groups]


def test_keep_checkpoint_resumes_as_saved_after_one_warning(first_run,
                                                            tmp_path):
    first, checkpoint = first_run
    runner = runner_for(tmp_path / 'keep', checkpoint, decay_rate=0.5,
                        resume_mismatch='keep_checkpoint')
    runner.train()
    resumed = record_of(runner)
    for it in (2, 3):  # today's behaviour: the checkpoint's lrs train
        assert resumed.groups[it] == first.groups[it]
    log = log_of(runner)
    assert log.count('WARNING - layer decay: resuming with the ') == 1
    assert 'layer_0_decay, layer_0_no_decay: lr_scale 0.656 -> 0.0625' in \
        log


def test_keep_checkpoint_cannot_keep_other_groups(first_run, tmp_path):
    runner = runner_for(tmp_path / 'keep_other', first_run[1], num_layers=5,
                        resume_mismatch='keep_checkpoint')
    with pytest.raises(LayerDecayConfigError,
                       match="'keep_checkpoint' cannot help"):
        runner.train()


# ----------------------------------------------- DDP, FSDP, ZeRO on 2 CPUs


def engines() -> List[str]:
    """DDP everywhere; FSDP on the CPU from torch 2.1, and mmengine's
    FlexibleRunner (FSDP, ZeroRedundancyOptimizer) from mmengine 0.8."""
    from mmengine.utils import digit_version
    import mmengine
    found = ['ddp']
    if digit_version(torch.__version__) >= digit_version('2.1.0') and \
            digit_version(mmengine.__version__) >= digit_version('0.8.0'):
        found += ['fsdp', 'zero']
    return found


def test_distributed_resume_exact_or_named(tmp_path):
    out = tmp_path / 'found.json'
    # Two processes over gloo on the CPU, also where a GPU is visible
    # (mmengine would put both on cuda:LOCAL_RANK).
    torchrun(HERE / 'resume_worker.py', ','.join(engines()), tmp_path / 'w',
             out, env=dict(CUDA_VISIBLE_DEVICES=''))
    found = json.loads(out.read_text())
    assert sorted(found) == sorted(engines())
    for engine, runs in found.items():
        first, same = runs['first'], runs['same']
        assert isinstance(same, dict), (engine, same)
        assert (first['step_at_start'], same['step_at_start']) == (0, 2)
        for it in ('2', '3'):
            assert same['lrs'][it] == first['lrs'][it], engine
        assert 'layer_0_decay, layer_0_no_decay: lr_scale 0.656 -> 0.0625' \
            in runs['decay_rate'], (engine, runs['decay_rate'])
        assert '  - 2 groups are renamed: layer_4_decay -> layer_6_decay, ' \
            'layer_4_no_decay -> layer_6_no_decay\n' in runs['num_layers'], \
            (engine, runs['num_layers'])
        assert '  - group layer_5_no_decay is new (2 parameters)\n' in \
            runs['num_layers'], engine
        # FSDP's optimizer state dict keeps the groups, not the record
        settings = ('decay_rate in effect (read from the groups): 0.9 -> 0.5'
                    if engine == 'fsdp' else
                    'paramwise_cfg.decay_rate: 0.9 -> 0.5')
        assert settings in runs['decay_rate'], engine
        assert not math.isnan(first['lrs']['3']['layer_0_decay'])
