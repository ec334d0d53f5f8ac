"""``paramwise_cfg.components`` on mmdet's shipped Deformable DETR: the
transformer's decoder, the head and a backbone stage at their own lr
factors, composed with the config's own ``custom_keys`` (backbone,
``sampling_offsets`` and ``reference_points`` at ``lr_mult=0.1``) and with
layer decay over its ResNet; weight decay exactly as without components."""
import pytest
from mmengine.config import Config

from conftest import MMDET_CONFIGS, _register, build_groups
from layerdecay_plugin import (LayerDecayConfigError,
                               LayerDecayOptimWrapperConstructor)
from layerdecay_plugin.checks.components import component_of
from layerdecay_plugin.checks.custom_keys import winning_key

CONFIG = MMDET_CONFIGS / 'deformable_detr' / \
    'deformable-detr_r50_16xb2-50e_coco.py'
COMPONENTS = {'neck': 1.0, 'bbox_head': 2.0, 'decoder': 0.5,
              'backbone.layer4': 3.0}

pytestmark = pytest.mark.filterwarnings('ignore:.*custom_keys')


@pytest.fixture(scope='module')
def detr():
    """The config (ResNet-18 for speed, no pretrained weights) and its
    model."""
    _register()
    from mmdet.registry import MODELS
    cfg = Config.fromfile(str(CONFIG))
    cfg.model.backbone.update(init_cfg=None, depth=18)
    cfg.model.neck.in_channels = [128, 256, 512]
    return cfg, MODELS.build(cfg.model)


def groups_of(detr, **paramwise):
    cfg, model = detr
    return build_groups(
        LayerDecayOptimWrapperConstructor, model,
        dict(cfg.optim_wrapper.paramwise_cfg, decay_rate=0.9, **paramwise),
        dict(cfg.optim_wrapper.optimizer))


def per_param(groups) -> dict:
    return {n: g for g in groups for n in g['param_names']}


@pytest.fixture(scope='module')
def built(detr):
    return (per_param(groups_of(detr)),
            per_param(groups_of(detr, components=COMPONENTS)))


def test_lr_is_the_product_and_weight_decay_is_unchanged(detr, built):
    cfg, _ = detr
    base_lr = cfg.optim_wrapper.optimizer.lr
    custom_keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    keys = sorted(sorted(custom_keys), key=len, reverse=True)
    without, with_components = built
    assert sorted(with_components) == sorted(without)
    seen = set()
    for name, group in with_components.items():
        plain = without[name]
        assert group['weight_decay'] == plain['weight_decay'], name
        assert group['lr_scale'] == plain['lr_scale'], name
        path = component_of(name, COMPONENTS)
        factor = COMPONENTS[path] if path else 1.
        key = winning_key(name, keys)
        lr_mult = custom_keys[key].get('lr_mult', 1.) if key else 1.
        expected = base_lr * lr_mult * factor * group['lr_scale']
        assert group['lr'] == pytest.approx(expected, rel=1e-12), name
        assert plain['lr'] * factor == pytest.approx(group['lr'],
                                                     rel=1e-12), name
        seen.add((path, key, group['lr_scale'] < 1))
    # every composition happened: the decoder's sampling_offsets (0.1 x
    # 0.5), a backbone stage under layer decay and the backbone's custom
    # key (0.1 x 3 x scale), the head alone, the encoder untouched
    assert {('decoder', 'sampling_offsets', False),
            ('backbone.layer4', 'backbone', True), ('bbox_head', None, False),
            (None, 'sampling_offsets', False), ('neck', None, False),
            (None, None, False)} <= seen
    name = 'decoder.layers.0.cross_attn.sampling_offsets.weight'
    assert with_components[name]['group_name'].endswith('_lr_x0.05')
    head = with_components['bbox_head.cls_branches.0.weight']
    assert head['group_name'].endswith('_decay_lr_x2')
    assert head['lr'] == pytest.approx(2 * base_lr)


@pytest.mark.parametrize('components,message', [
    ({'transformer.decoder': 2.}, r"components\['transformer.decoder'\]=2 "
     "matches no module or parameter of the model. The model has it at "
     "'decoder'"),
    ({'backbone.layer1': 2.}, r"components\['backbone.layer1'\]=2 matches "
     r'only parameters that are not trained \(\d+, e.g. '
     "'backbone.layer1.0.conv1.weight'"),
    ({'positional_encoding': 2.}, "has the module 'positional_encoding', "
     'but it holds no parameter'),
    ({'bbox_head.cls_branches.0.weight': 2.,
      'bbox_head.cls_branches.0.bias': 2., 'bbox_head.cls_branches': 1.},
     r"components\['bbox_head.cls_branches'\]=1 gives its factor to no "
     'parameter'),
])
def test_misuse_on_the_real_model(detr, components, message):
    with pytest.raises(LayerDecayConfigError, match=message):
        groups_of(detr, components=components)


def test_a_decay_across_the_decoders_layers(detr, built):
    """``dict(lr_mult, decay_rate)`` on the decoder: its 6 layers take
    lr_mult x 0.8 ** (5 - i), on top of custom_keys and the layer scale;
    weight decay exactly as without components."""
    cfg, _ = detr
    base_lr = cfg.optim_wrapper.optimizer.lr
    custom_keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    keys = sorted(sorted(custom_keys), key=len, reverse=True)
    without, _ = built
    decayed = per_param(groups_of(detr, components={
        'decoder': dict(lr_mult=2., decay_rate=0.8)}))
    assert sorted(decayed) == sorted(without)
    layers = set()
    for name, group in decayed.items():
        assert group['weight_decay'] == without[name]['weight_decay'], name
        factor = 1.
        if name.startswith('decoder.layers.'):
            layer = int(name.split('.')[2])
            factor = 2. * 0.8**(5 - layer)
            layers.add(layer)
        key = winning_key(name, keys)
        lr_mult = custom_keys[key].get('lr_mult', 1.) if key else 1.
        expected = base_lr * lr_mult * factor * group['lr_scale']
        assert group['lr'] == pytest.approx(expected, rel=1e-12), name
    assert layers == set(range(6))
    name = 'decoder.layers.0.cross_attn.sampling_offsets.weight'
    assert decayed[name]['lr'] == pytest.approx(base_lr * 0.1 * 2 * 0.8**5)
