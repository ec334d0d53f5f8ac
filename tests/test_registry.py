"""The constructor and hook resolve by bare type name from real configs,
under mmdet's and mmpretrain's default scopes, without name collisions."""
import importlib

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from conftest import (OPTIMIZER, ROOT, _register, assert_same_groups,
                      build_detector, mmdet_groups)

NAMES = {'OPTIM_WRAPPER_CONSTRUCTORS': 'LayerDecayOptimWrapperConstructor',
         'HOOKS': 'LayerDecayLrHook'}
GPU_CONFIG = ROOT / 'configs' / \
    'mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco_layerdecay.py'


@pytest.mark.parametrize('scope', ['mmdet', 'mmpretrain', 'mmseg'])
def test_resolves_under_default_scope_without_collision(scope):
    registry_module = pytest.importorskip(f'{scope}.registry')
    _register()
    # import everything the library registers, then look for our names
    importlib.import_module(f'{scope}.utils').register_all_modules(False)
    assert len(registry_module.OPTIM_WRAPPER_CONSTRUCTORS.module_dict) > 0
    import mmengine.registry as root
    import layerdecay_plugin
    for registry_name, name in NAMES.items():
        child = getattr(registry_module, registry_name)
        # the downstream library registers nothing under our names
        assert name not in child.module_dict
        with DefaultScope.overwrite_default_scope(scope):
            assert child.get(name) is getattr(layerdecay_plugin, name)
        assert getattr(root, registry_name).get(name) is getattr(
            layerdecay_plugin, name)


def test_user_config_selects_constructor_by_name():
    """The shipped GPU config: mmdet's ConvNeXt config with only the
    constructor switched builds mmdet's exact groups."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.utils import import_modules_from_strings
    cfg = Config.fromfile(str(GPU_CONFIG))
    assert 'layerdecay_plugin' in cfg.custom_imports.imports
    import_modules_from_strings(**cfg.custom_imports)
    _register()
    model = build_detector(GPU_CONFIG)
    cfg.optim_wrapper.type = 'OptimWrapper'  # AmpOptimWrapper needs a GPU
    with DefaultScope.overwrite_default_scope('mmdet'):
        ours = build_optim_wrapper(model, cfg.optim_wrapper)
    assert type(ours.optimizer).__name__ == 'AdamW'
    assert_same_groups(
        mmdet_groups(model, cfg.optim_wrapper.paramwise_cfg,
                     dict(cfg.optim_wrapper.optimizer)),
        ours.optimizer.param_groups)
    assert OPTIMIZER['lr'] == cfg.optim_wrapper.optimizer.lr


def test_wrapped_model_is_unwrapped(tmp_path):
    """Inside MMDistributedDataParallel (a real gloo group of one)."""
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel
    from conftest import our_groups, toy_convnext_cls, ToyDetector
    _register()
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/pg',
                            rank=0, world_size=1)
    try:
        model = ToyDetector(toy_convnext_cls()())
        del model.shared  # DDP rejects nothing here, but keep it simple
        wrapped = MMDistributedDataParallel(model, device_ids=None)
        cfg = dict(decay_rate=0.9, num_layers=5)
        assert_same_groups(our_groups(model, cfg), our_groups(wrapped, cfg))
    finally:
        dist.destroy_process_group()


#: Both import orders with mmpose's real ViTPose constructor, which takes the
#: plugin's class name in mmengine's root registry with force=True (#20).
MMPOSE_CHECK = '''
import sys
from mmengine.optim import build_optim_wrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as R
from light.toys import ToyConvNeXt, ToyDetector
{imports}
import layerdecay_plugin
from layerdecay_plugin import LayerDecayConfigError
from mmpose.engine.optim_wrappers.layer_decay_optim_wrapper import \\
    LayerDecayOptimWrapperConstructor as MMPose

model = ToyDetector(ToyConvNeXt())
optimizer = dict(type='AdamW', lr=1e-3, weight_decay=0.05)
ours = build_optim_wrapper(model, dict(
    constructor='LayerDecayPluginConstructor', optimizer=optimizer,
    paramwise_cfg=dict(decay_rate=0.8)))
assert ours.optimizer.param_groups[0]['group_name'].startswith('layer_')
assert issubclass(R.get('LayerDecayOptimWrapperConstructor'), MMPose)
# mmpose's own ViTPose keys still build mmpose's class
theirs = build_optim_wrapper(model, dict(
    constructor='LayerDecayOptimWrapperConstructor', optimizer=optimizer,
    paramwise_cfg=dict(num_layers=4, layer_decay_rate=0.75)))
assert {{g['lr_scale'] for g in theirs.optimizer.param_groups}} == {{1.0}}
try:
    build_optim_wrapper(model, dict(
        constructor='LayerDecayOptimWrapperConstructor', optimizer=optimizer,
        paramwise_cfg=dict(decay_rate=0.8, num_layers=4)))
except LayerDecayConfigError as error:
    print(error)
else:
    raise AssertionError('the clash was silent')
'''


@pytest.mark.parametrize('mmpose_first', [True, False])
def test_next_to_mmposes_real_constructor(mmpose_first):
    """mmpose 1.3.2 (installed --no-deps by tools/setup_env.sh): importing
    it after the plugin used to leave no plugin name in the registry, and
    before the plugin made importing the plugin fail with a KeyError."""
    import os
    import subprocess
    import sys
    pytest.importorskip('mmpose')
    imports = ('import mmpose.engine.optim_wrappers' if mmpose_first
               else 'import layerdecay_plugin\n'
               'import mmpose.engine.optim_wrappers')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT / 'tests'), str(ROOT)] +
        [p for p in [os.environ.get('PYTHONPATH')] if p]))
    out = subprocess.run(
        [sys.executable, '-c', MMPOSE_CHECK.format(imports=imports)],
        env=env, timeout=300, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert ("optim_wrapper.constructor='LayerDecayOptimWrapperConstructor' "
            'builds mmpose.engine.optim_wrappers.layer_decay_optim_wrapper.'
            'LayerDecayOptimWrapperConstructor here') in out.stdout
    assert "Write optim_wrapper.constructor='LayerDecayPluginConstructor'" \
        in out.stdout
