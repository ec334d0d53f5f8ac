"""custom_keys notes: a warning only for keys that match nothing in the whole
model, attributed to the user's config or code, never to mmengine's files."""
import inspect
import logging
import warnings

import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner import Runner

from conftest import ROOT, _register, our_groups
from layerdecay_plugin.checks.custom_keys import check_custom_keys
from layerdecay_plugin.messages import ConfigWarning, config_warnings

ALL = ['backbone.stem.weight', 'backbone.stages.0.norm.weight',
       'neck.conv.weight']
TRAINABLE = ALL[1:]


@pytest.fixture
def log(tmp_path):
    logger = MMLogger.get_instance(f'layerdecay-messages-{tmp_path.name}',
                                   log_file=str(tmp_path / 'log.txt'),
                                   log_level=logging.INFO)

    def read() -> str:
        for handler in logger.handlers:
            handler.flush()
        return (tmp_path / 'log.txt').read_text()

    return read


def test_typo_warns_at_the_callers_line_with_suggestion():
    with pytest.warns(UserWarning) as record:
        line = inspect.currentframe().f_lineno + 1
        check_custom_keys(['nrom'], ALL, TRAINABLE)
    (warning, ) = record
    assert warning.filename == __file__ and warning.lineno == line
    assert str(warning.message).startswith(
        "optim_wrapper.paramwise_cfg.custom_keys['nrom'] matches no "
        'trainable or frozen parameter name')
    assert "Did you mean 'norm'?" in str(warning.message)


def test_frozen_only_and_absent_standard_names_are_info(log):
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        check_custom_keys(['stem', 'absolute_pos_embed', 'neck'], ALL,
                          TRAINABLE)
    text = log()
    assert "custom_keys['stem'] matches only parameters that are not " \
        'trained (1, e.g. backbone.stem.weight' in text
    assert "custom_keys['absolute_pos_embed']: this model has no" in text
    assert "'neck'" not in text


def test_warning_points_at_the_config_line(tmp_path):
    """A caller that knows the config file (the inspect command) gets the
    warnings of the block at the line naming the key; other warnings as
    they were."""
    config = tmp_path / 'my_config.py'
    config.write_text('a = 1\ncustom_keys = {\n    "nek": dict(lr_mult=2.)}\n')
    with pytest.warns(UserWarning) as record, config_warnings(str(config)):
        check_custom_keys(['nek', 'heda'], ALL, TRAINABLE)
        line = inspect.currentframe().f_lineno + 1
        warnings.warn('not about the config', UserWarning)
    nek, heda, other = record
    assert (nek.filename, nek.lineno) == (str(config), 3)
    assert nek.category is ConfigWarning and nek.message.key == 'nek'
    assert heda.filename == str(config)
    assert 'comes from a _base_ config' in str(heda.message)
    assert (other.filename, other.lineno) == (__file__, line)


def test_constructor_warns_from_the_users_code(toy_detector):
    model = toy_detector()
    with pytest.warns(UserWarning, match=r"custom_keys\['nek'\]") as record:
        our_groups(model, dict(decay_rate=0.9,
                               custom_keys={'nek': dict(lr_mult=2.)}))
    # conftest.build_groups is the first frame outside the libraries
    assert record[0].filename.endswith('conftest.py')


def test_under_a_runner_the_warning_names_the_runners_config(tmp_path):
    config = ROOT / 'configs' / 'dino-4scale_r50_layerdecay_shapes-cpu.py'
    cfg = Config.fromfile(str(config))
    cfg.work_dir = str(tmp_path)
    cfg.optim_wrapper.paramwise_cfg.custom_keys['nek'] = dict(lr_mult=2.)
    _register()
    runner = Runner.from_cfg(cfg)
    with pytest.warns(UserWarning, match=r"custom_keys\['nek'\]") as record:
        runner.build_optim_wrapper(cfg.optim_wrapper)
    assert (record[0].filename, record[0].lineno) == (str(config), 1)
    assert '--cfg-options' in str(record[0].message)
