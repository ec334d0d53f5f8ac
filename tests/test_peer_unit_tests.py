"""The peers' own unit tests of their layer-decay constructors, their
cases rebuilt; and mmpretrain's two backbones whose ids differ from its
constructor's. The peers' constructors run live as the reference.

The peers' wheels do not ship their tests. mmseg 1.2.2's
(``tests/test_engine/test_layer_decay_optimizer_constructor.py`` of the
mmsegmentation repository) has its cases rebuilt in ``tests/test_mmseg.py``
(``test_mmsegs_unit_test_cases_with_ours``); mmpretrain 1.2.0's
(``tests/test_engine/test_optimizers/
test_layer_decay_optim_wrapper_constructor.py``) here: the same toy
classifier (parameter names, order, ``get_layer_depth``) and paramwise
keys, given an optimizer by mmpretrain's constructor and by ours, every
parameter's lr and weight decay compared. mmpose 1.3 has no unit test of
its constructor.

Then mmpretrain's SparK ResNet-50 (its fine-tuning config) and HiViT-T
(its config, with layer decay added: no config of mmpretrain fine-tunes it
with layer decay), built small, with mmpretrain's constructor and ours:
the lrs differ where docs/openmmlab.md says, the weight decays do not, and
the log line that says how the rules were chosen names the difference.
"""
import functools
import logging
import warnings

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from layerdecay_plugin import LayerDecayConfigError
from test_mmpretrain_peer import OURS, THEIRS, build_classifier, \
    groups_of, per_param

# ------------------------------------------- mmpretrain's unit-test case


def _module(class_name, methods, **parts):
    """An instance of a fresh ``nn.Module`` class named ``class_name``
    with ``methods``, holding ``parts`` in the order given."""
    module = type(class_name, (nn.Module, ), dict(methods))()
    for name, part in parts.items():
        setattr(module, name, part)
    return module


def toy_vit_classifier(num_layers=2):
    """mmpretrain's toy: a backbone of no known class (a token, a position
    embedding, ``num_layers`` 1x1 convs as ``layers``) whose depths come
    from ViT's ``get_layer_depth``, under a 1-to-1 linear head, the
    classifier's depths from ``ImageClassifier.get_layer_depth``."""
    from mmpretrain.models import ImageClassifier, VisionTransformer
    backbone = _module(
        'ToyViTBackbone',
        dict(get_layer_depth=VisionTransformer.get_layer_depth),
        cls_token=nn.Parameter(torch.ones(1)),
        pos_embed=nn.Parameter(torch.ones(1)),
        layers=nn.ModuleList(nn.Conv2d(3, 3, 1) for _ in range(num_layers)))
    backbone.num_layers = num_layers
    return _module('ToyViT',
                   dict(get_layer_depth=ImageClassifier.get_layer_depth),
                   backbone=backbone, head=nn.Linear(1, 1))


#: Its optim_wrapper: AdamW at lr 1 and weight decay 0.05, a decay rate of
#: 2 (the lrs grow toward the stem, easy to tell apart), no weight decay
#: for biases, the token and the position embedding.
TOY_OPTIM_WRAPPER = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.0, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg=dict(
        layer_decay_rate=2.0,
        bias_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0),
        }))


def _toy_wrapper(model, constructor):
    with DefaultScope.overwrite_default_scope('mmpretrain'), \
            warnings.catch_warnings():
        warnings.simplefilter('ignore')  # layer_decay_rate 2 > 1
        return build_optim_wrapper(
            model, dict(TOY_OPTIM_WRAPPER, constructor=constructor))


def test_mmpretrains_unit_test_case_with_ours():
    """Every parameter of mmpretrain's toy gets mmpretrain's lr and weight
    decay from ours, both constructors run live.

    The one difference, documented in docs/openmmlab.md: mmpretrain makes
    one param group per parameter, in the model's order, named by
    ``param_name``; ours one per layer and weight decay, its parameters in
    ``param_names``: ``per_param`` reads both. Nothing else is mapped: the
    keys give the tokens and biases mmpretrain's weight decay, and the toy
    backbone, of no class ours knows, is served by its
    ``get_layer_depth``."""
    import mmpretrain.engine  # noqa: F401  (mmpretrain's constructor)

    import layerdecay_plugin  # noqa: F401
    model = toy_vit_classifier()
    names = [n for n, _ in model.named_parameters()]
    theirs = _toy_wrapper(model, THEIRS).optimizer
    ours = _toy_wrapper(model, OURS).optimizer
    for optimizer in (theirs, ours):
        assert isinstance(optimizer, torch.optim.AdamW)
        assert optimizer.defaults['lr'] == 1.0
        assert optimizer.defaults['weight_decay'] == 0.05
    # the reference's shape: a group per parameter, in the model's order
    assert [g['param_name'] for g in theirs.param_groups] == names
    assert per_param(ours.param_groups) == per_param(theirs.param_groups)
    # ours: a group per layer and weight decay; the head's lr is the base
    # lr, each layer toward the stem twice the one above it
    assert [g['group_name'] for g in ours.param_groups] == [
        'layer_0_no_decay', 'layer_1_decay', 'layer_1_no_decay',
        'layer_2_decay', 'layer_2_no_decay', 'layer_3_decay',
        'layer_3_no_decay']
    assert sorted(n for g in ours.param_groups
                  for n in g['param_names']) == sorted(names)
    lrs = per_param(ours.param_groups)
    assert sorted({lr for lr, _ in lrs.values()}) == [1.0, 2.0, 4.0, 8.0]
    assert lrs['head.weight'][0] == 1.0
    assert {n for n, (_, wd) in lrs.items() if wd} == {
        'backbone.layers.0.weight', 'backbone.layers.1.weight',
        'head.weight'}


# ------------------------- mmpretrain's SparK ResNet-50 and HiViT, live

#: mmpretrain's ResNet.get_layer_depth for ResNet-50 (SparK's) as config
#: rules: the stem 0, layer1 1, layer2 two blocks an id (2, 3), layer3
#: three (4, 5), layer4 6 (docs/openmmlab.md).
SPARK_RESNET50 = dict(layer_wise=[
    (r'^layer1\.', 1),
    (r'^layer2\.[01]\.', 2),
    (r'^layer2\.[23]\.', 3),
    (r'^layer3\.[0-2]\.', 4),
    (r'^layer3\.[3-5]\.', 5),
    (r'^layer4\.', 6),
    (r'.*', 0),
])
#: key -> (config, backbone and head fields narrowed: depths and names
#: kept), the layer_decay_rate added where the config has none.
MMPRETRAIN_MODELS = {
    'spark_resnet50': (
        'spark/benchmarks/resnet50_8xb256-coslr-300e_in1k.py',
        dict(backbone=dict(base_channels=8, stem_channels=8,
                           norm_cfg=dict(type='BN')),
             head=dict(in_channels=256, num_classes=10)), None),
    'hivit_tiny': (
        'hivit/hivit-tiny-p16_16xb64_in1k.py',
        dict(backbone=dict(arch=dict(embed_dims=48, depths=[1, 1, 10],
                                     num_heads=6), img_size=32),
             head=dict(in_channels=48, num_classes=10)), 0.75),
}


@pytest.fixture(scope='module')
def mmpretrain_model():
    """``key -> (classifier, optim_wrapper cfg with mmpretrain's
    constructor)``, each built once."""
    import mmpretrain.engine  # noqa: F401
    import mmpretrain.models  # noqa: F401

    import layerdecay_plugin  # noqa: F401

    @functools.lru_cache(maxsize=None)
    def get(key):
        path, narrow, rate = MMPRETRAIN_MODELS[key]
        model, optim_wrapper = build_classifier(path, narrow)
        optim_wrapper = dict(optim_wrapper, constructor=THEIRS)
        if rate:
            optim_wrapper['paramwise_cfg'] = dict(
                optim_wrapper['paramwise_cfg'], layer_decay_rate=rate)
        return model, optim_wrapper

    return get


def logged(make):
    """``make()`` and the messages it logs to mmengine's current logger."""
    lines = []
    handler = logging.Handler(level=logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        return make(), lines
    finally:
        logger.removeHandler(handler)


def _chosen_by(lines):
    chosen = [line for line in lines if 'chosen by' in line]
    assert len(chosen) == 1, lines
    return chosen[0]


def test_spark_resnet50_one_id_per_block(mmpretrain_model):
    """SparK's ResNet-50 fine-tuning config with mmpretrain's constructor
    and with ours: the same weight decays; mmpretrain's ids give 2-3
    blocks of a stage one id (7 backbone lrs), ours one id per block (17);
    ``SPARK_RESNET50`` as config rules gives mmpretrain's lrs back. The
    log line says so."""
    model, optim_wrapper = mmpretrain_model('spark_resnet50')
    assert list(model.backbone.stage_blocks) == [3, 4, 6, 3]
    theirs = per_param(groups_of(model, optim_wrapper))
    ours, lines = logged(lambda: per_param(
        groups_of(model, optim_wrapper, OURS)))
    assert sorted(ours) == sorted(theirs) and len(ours) == 161
    assert all(ours[n][1] == theirs[n][1] for n in ours)
    backbone = [n for n in ours if n.startswith('backbone.')]
    assert len({theirs[n][0] for n in backbone}) == 7
    assert len({ours[n][0] for n in backbone}) == 17
    # the same where the ids meet: the head, and layer4's last block (its
    # last id in both)
    assert {n for n in ours if ours[n] == theirs[n]} == {
        n for n in ours if n.startswith(('head.', 'backbone.layer4.2.'))}
    assert per_param(groups_of(model, optim_wrapper, OURS,
                               rules=SPARK_RESNET50)) == theirs
    assert "unlike mmpretrain's constructor, whose ResNet.get_layer_depth" \
        in _chosen_by(lines)


def test_hivit_blocks_get_ids(mmpretrain_model):
    """HiViT-T (its config's optim_wrapper, layer_decay_rate added):
    mmpretrain's ``HiViT.get_layer_depth`` looks for ``layers.`` and its
    blocks are ``blocks.``, so its constructor gives every block the
    head's lr; ours one id per block, the same weight decays. Its ids as
    config rules are refused (they leave the backbone at the head's id).
    The log line says so."""
    model, optim_wrapper = mmpretrain_model('hivit_tiny')
    theirs = per_param(groups_of(model, optim_wrapper))
    ours, lines = logged(lambda: per_param(
        groups_of(model, optim_wrapper, OURS)))
    assert sorted(ours) == sorted(theirs)
    assert all(ours[n][1] == theirs[n][1] for n in ours)
    head_lr = theirs['head.fc.weight'][0]
    blocks = [n for n in ours if n.startswith('backbone.blocks.')]
    assert len(blocks) > 100
    assert {theirs[n][0] for n in blocks} == {head_lr}
    assert len({ours[n][0] for n in blocks}) == len(model.backbone.blocks)
    assert {n for n in ours if ours[n] != theirs[n]} == set(blocks)
    assert "HiViT.get_layer_depth looks for layers." in _chosen_by(lines)
    with pytest.raises(LayerDecayConfigError, match="the head's id"):
        groups_of(model, optim_wrapper, OURS, rules=dict(layer_wise=[
            (r'^(pos_embed|patch_embed)', 0), (r'.*', 'head')]),
            num_layers=len(model.backbone.blocks))
