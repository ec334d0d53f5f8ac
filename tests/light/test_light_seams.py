"""The seams of the optimizer config (issue #20): the registry name,
``custom_keys`` entries and the weight decay they give back, and the
schedule's absolute floors; torch + mmengine only."""
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from layerdecay_plugin import LayerDecayConfigError
from layerdecay_plugin.checks.schedule import check_schedule
from layerdecay_plugin.config import optimizer_keys, parse_custom_keys
from light.toys import ToyConvNeXt, ToyDetector, layer_decay_groups

ROOT = Path(__file__).resolve().parents[2]
ADAMW = dict(type='AdamW', lr=1e-3, weight_decay=0.05)
GOOD = dict(decay_rate=0.8)

# ----------------------------------------------------------- the registry

STAND_IN = '''
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module(force=True)
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """As mmengine's tutorial and mmpose's ViTPose constructor have it."""

    def __init__(self, optim_wrapper_cfg, paramwise_cfg=None):
        self.decay_factor = paramwise_cfg.get('decay_factor', 0.5)
        super().__init__(optim_wrapper_cfg, None)
'''

CHECK = '''
import torch.nn as nn
from mmengine.optim import build_optim_wrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as R
import layerdecay_plugin
from layerdecay_plugin import LayerDecayConfigError
from light.toys import ToyConvNeXt, ToyDetector

assert R.get('LayerDecayPluginConstructor') is \\
    layerdecay_plugin.LayerDecayOptimWrapperConstructor
model = ToyDetector(ToyConvNeXt())
optimizer = dict(type='AdamW', lr=1e-3, weight_decay=0.05)
# the plugin's own name builds the plugin's groups
wrapper = build_optim_wrapper(model, dict(
    constructor='LayerDecayPluginConstructor', optimizer=optimizer,
    paramwise_cfg=dict(decay_rate=0.8)))
assert wrapper.optimizer.param_groups[0]['group_name'].startswith('layer_')
# the shared name still builds the stand-in for its own keys
wrapper = build_optim_wrapper(model, dict(
    constructor='LayerDecayOptimWrapperConstructor', optimizer=optimizer,
    paramwise_cfg=dict(decay_factor=0.7)))
assert wrapper.optimizer.param_groups[0].get('group_name') is None
# and names the clash for the plugin's keys
try:
    build_optim_wrapper(model, dict(
        constructor='LayerDecayOptimWrapperConstructor', optimizer=optimizer,
        paramwise_cfg=dict(decay_rate=0.8)))
except LayerDecayConfigError as error:
    print(error)
else:
    raise AssertionError('the clash was silent')
'''


@pytest.mark.parametrize('plugin_first', [True, False])
def test_a_class_forcing_the_shared_name_is_named(tmp_path, plugin_first):
    (tmp_path / 'stand_in.py').write_text(STAND_IN)
    imports = ['import layerdecay_plugin', 'import stand_in']
    if not plugin_first:
        imports.reverse()
    code = '\n'.join(imports) + '\n' + CHECK
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path), str(ROOT / 'tests'), str(ROOT)] +
        [p for p in [os.environ.get('PYTHONPATH')] if p]))
    out = subprocess.run([sys.executable, '-c', code], env=env, timeout=300,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert ("optim_wrapper.constructor='LayerDecayOptimWrapperConstructor' "
            'builds stand_in.LayerDecayOptimWrapperConstructor here') \
        in out.stdout
    assert "Write optim_wrapper.constructor='LayerDecayPluginConstructor'" \
        in out.stdout
    assert 'decay_rate' in out.stdout


def test_both_names_are_the_plugin_where_free():
    from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as R

    import layerdecay_plugin
    for name in ('LayerDecayPluginConstructor',
                 'LayerDecayOptimWrapperConstructor'):
        assert R.get(name) is \
            layerdecay_plugin.LayerDecayOptimWrapperConstructor


# ---------------------------------------------------- custom_keys entries


def test_optimizer_keys_are_the_optimizer_arguments():
    import torch
    assert optimizer_keys(torch.optim.SGD)[:2] == ('lr', 'momentum')
    assert 'betas' in optimizer_keys(torch.optim.AdamW)
    assert optimizer_keys('NotAClass') is None


@pytest.mark.parametrize('entry,words', [
    (dict(decay_multi=0.), ["custom_keys['bias'] has unknown key "
                            "'decay_multi'", "did you mean 'decay_mult'",
                            'lr_mult, decay_mult, lr, betas, eps',
                            'nothing reads it']),
    (dict(lr_multi=0.1), ["'lr_multi'", "did you mean 'lr_mult'"]),
    (dict(momentum=0.9), ["'momentum'", "AdamW's param groups"]),
    (dict(decay_mult=-1.), ['decay_mult=-1', '>= 0']),
    (dict(decay_mult='0'), ["decay_mult='0'", 'finite number']),
    (dict(eps=-1e-8), ['eps=-1e-08', '>= 0']),
])
def test_custom_keys_entries_are_checked(entry, words):
    model = ToyDetector(ToyConvNeXt())
    with pytest.raises(LayerDecayConfigError) as error:
        layer_decay_groups(model, dict(GOOD, custom_keys={'bias': entry}),
                           ADAMW)
    for word in words:
        assert word in str(error.value)


def test_an_optimizer_hyper_parameter_is_a_valid_entry_key():
    model = ToyDetector(ToyConvNeXt())
    sgd = dict(type='SGD', lr=0.1, weight_decay=1e-4)
    groups = layer_decay_groups(
        model, dict(GOOD, custom_keys={'head': dict(momentum=0.5,
                                                    decay_mult=1.)}), sgd)
    assert {g.get('momentum') for g in groups if 'head' in
            g['param_names'][0]} == {0.5}


def test_parse_custom_keys_without_an_optimizer_checks_values_only():
    assert parse_custom_keys({'x': dict(anything=1)}) == \
        {'x': dict(anything=1)}
    with pytest.raises(LayerDecayConfigError, match='must be a dict'):
        parse_custom_keys({'x': 0.1})


# ------------------------------------ weight decay given back by an entry


def test_an_entry_without_decay_mult_giving_decay_back_is_named():
    model = ToyDetector(ToyConvNeXt())
    with pytest.warns(UserWarning) as record:
        groups = layer_decay_groups(
            model, dict(GOOD, custom_keys={'backbone': dict(lr_mult=0.1)}),
            ADAMW)
    text = '\n'.join(str(w.message) for w in record)
    assert "custom_keys['backbone'] sets no decay_mult" in text
    assert 'weight_decay=0.05 again' in text
    assert "e.g. 'backbone.downsample_layers.0.0.weight'" in text
    assert 'decay_mult=1. in this entry' in text
    # what it warns about is what happens
    norm = next(g for g in groups
                if 'backbone.downsample_layers.0.0.weight' in
                g['param_names'])
    assert norm['weight_decay'] == 0.05


@pytest.mark.parametrize('entry', [dict(lr_mult=0.1, decay_mult=1.),
                                   dict(lr_mult=0.1, decay_mult=0.)])
def test_an_entry_with_decay_mult_is_silent(entry):
    model = ToyDetector(ToyConvNeXt())
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        layer_decay_groups(model, dict(GOOD, custom_keys={'backbone': entry}),
                           ADAMW)


def test_an_entry_on_weights_only_is_silent():
    model = ToyDetector(ToyConvNeXt())
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        layer_decay_groups(
            model, dict(GOOD, custom_keys={'pointwise_conv1.weight':
                                           dict(lr_mult=2.)}), ADAMW)


# ---------------------------------------------------------- the schedule

LAYERS = [(0, 0.8**13), (1, 0.8**12), (12, 0.8), (13, 1.0)]


def test_a_floor_above_a_layers_start_warns_with_the_ratio_fix():
    notes = check_schedule(
        [dict(type='LinearLR', start_factor=0.1),
         dict(type='CosineAnnealingLR', eta_min=0.07, T_max=10)], LAYERS, 1.)
    assert [n.level for n in notes] == ['warning']
    text = notes[0].text
    assert 'param_scheduler[1] CosineAnnealingLR(eta_min=0.07)' in text
    assert 'layer(s) 0, 1' in text
    assert 'rise or stay flat' in text
    assert 'use eta_min_ratio=0.07 instead' in text


def test_a_floor_that_flattens_the_decay_is_an_info_line():
    notes = check_schedule(dict(type='CosineAnnealingLR', eta_min=0.05),
                           LAYERS, 1.)
    assert [n.level for n in notes] == ['info']
    assert 'from 0.055 at the start to 1 at the end' in notes[0].text
    assert 'eta_min_ratio=0.05' in notes[0].text


@pytest.mark.parametrize('scheduler', [
    dict(type='CosineAnnealingLR', eta_min_ratio=0.05),
    dict(type='CosineAnnealingLR', eta_min=0.),
    dict(type='CosineAnnealingLR'),
    dict(type='MultiStepLR', milestones=[8, 11]),
    dict(type='PolyLR', eta_min=1e-9),
    dict(type='CosineAnnealingParamScheduler', param_name='momentum',
         eta_min=0.9),
])
def test_relative_schedules_keep_every_ratio(scheduler):
    assert check_schedule([scheduler], LAYERS, 1.) == []


def test_poly_and_one_cycle_fixes():
    poly, = check_schedule(dict(type='PolyLR', eta_min=0.5), LAYERS, 1.)
    assert poly.level == 'warning' and "lower eta_min to under 1% of the " \
        "lowest layer's starting lr" in poly.text
    # a floor already below every start but flattening: the same fix holds
    info, = check_schedule(dict(type='PolyLR', eta_min=0.02), LAYERS, 1.)
    assert info.level == 'info' and 'lower eta_min to under 1%' in info.text
    cycle, = check_schedule(dict(type='OneCycleLR', eta_max=0.01), LAYERS,
                            1.)
    assert cycle.level == 'warning' and 'eta_max as a list' in cycle.text


def test_a_runner_checks_its_schedule_before_the_first_iteration(tmp_path):
    """No hook, no extra config: the constructor finds the Runner's
    param_scheduler and warns before training; the warning is true (the
    stem's lr rises)."""
    from mmengine.runner import Runner

    from light.cli_toys import LightToyDetector  # noqa: F401 (registers)
    from light.cli_toys import toy_run_cfg
    cfg = toy_run_cfg(str(tmp_path), 'seams_schedule', 4, 8,
                      [dict(type='CosineAnnealingLR', eta_min=7e-4, T_max=4,
                            by_epoch=False)], [], None)
    runner = Runner.from_cfg(cfg)
    with pytest.warns(UserWarning, match=r'param_scheduler\[0\] '
                      r'CosineAnnealingLR\(eta_min=0.0007\) is an absolute '
                      r'floor at or above the starting lr of layer\(s\) 0'):
        runner.train()
    groups = runner.optim_wrapper.optimizer.param_groups
    stem = next(g for g in groups if g['group_name'].startswith('layer_0_'))
    assert stem['lr'] > stem['initial_lr']  # it rose, as the warning said


# ------------------------------------------- the other constructors' keys


def with_log_lines(make):
    """``make()`` and the messages it logs to the current mmengine logger."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger.addHandler(handler)
    try:
        return make(), lines
    finally:
        logger.removeHandler(handler)


def test_layer_decay_rate_is_read_as_decay_rate():
    """mmseg's BEiT, mmpretrain's and mmpose's constructors spell the factor
    layer_decay_rate: the same groups, and one log line says so."""
    theirs, lines = with_log_lines(lambda: layer_decay_groups(
        ToyDetector(ToyConvNeXt()), dict(layer_decay_rate=0.8), ADAMW))
    ours = layer_decay_groups(ToyDetector(ToyConvNeXt()),
                              dict(decay_rate=0.8), ADAMW)
    assert [(g['group_name'], g['lr'], g['weight_decay']) for g in theirs] \
        == [(g['group_name'], g['lr'], g['weight_decay']) for g in ours]
    assert sum('paramwise_cfg.layer_decay_rate is read as decay_rate' in line
               for line in lines) == 1


def test_both_spellings_is_an_error():
    with pytest.raises(LayerDecayConfigError,
                       match=r'sets both layer_decay_rate=0.8 and '
                       r'decay_rate=0.9: .* keep one of them'):
        layer_decay_groups(ToyDetector(ToyConvNeXt()),
                           dict(layer_decay_rate=0.8, decay_rate=0.9), ADAMW)


def test_mmsegs_layer_wise_vit_is_read_as_layer_wise():
    """mmseg's BEiT constructor sets decay_type='layer_wise_vit' and its
    deprecation warning asks users to write it: the same groups as
    'layer_wise', and one log line."""
    theirs, lines = with_log_lines(lambda: layer_decay_groups(
        ToyDetector(ToyConvNeXt()),
        dict(decay_rate=0.8, decay_type='layer_wise_vit'), ADAMW))
    ours = layer_decay_groups(ToyDetector(ToyConvNeXt()),
                              dict(decay_rate=0.8, decay_type='layer_wise'),
                              ADAMW)
    assert [(g['group_name'], g['lr'], g['weight_decay']) for g in theirs] \
        == [(g['group_name'], g['lr'], g['weight_decay']) for g in ours]
    assert sum("paramwise_cfg.decay_type='layer_wise_vit' is read as "
               "decay_type='layer_wise'" in line for line in lines) == 1
    with pytest.raises(LayerDecayConfigError, match='decay_type='):
        layer_decay_groups(ToyDetector(ToyConvNeXt()),
                           dict(decay_rate=0.8, decay_type='layer_wise_x'),
                           ADAMW)
