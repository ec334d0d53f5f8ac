"""mmseg 1.2.2's own backbone classes (and mmpretrain's PoolFormer, which
mmseg's PoolFormer configs fine-tune) get layer ids from ``decay_rate``
alone, by class, and pass the forward-order check of
``tests/test_forward_order.py``: along the order in which the real
module's parameters first run, ids never decrease, the stem gets 0, the
deepest block ``num_layers``; ``num_layers`` is the count of blocks a
person counts (docs/backbones.md), ``stage_wise`` the count of units.
mmseg's ``TIMMBackbone`` gets the ids of the timm model inside, as
mmpretrain's does. ``VPD`` is the one class left without rules: it needs
CompVis's ``ldm`` package (docs/backbones.md).

Each real module is built once, small (narrow channels, fewest blocks),
and run at 64 px.
"""
import functools

import pytest
from mmengine.registry import DefaultScope

from layerdecay_plugin.backbones.depths import backbone_depths
from layerdecay_plugin.backbones.resolve import spec_for
from layerdecay_plugin.rules.units import STEM, unit_layer_id, unit_rules
from test_forward_order import assert_forward_order, constructor_ids

BN = dict(norm_cfg=dict(type='BN'))
RESNET18 = dict(depth=18, stem_channels=16, base_channels=16, **BN)
STDC1 = dict(stdc_type='STDCNet1', in_channels=3,
             channels=(8, 16, 32, 64, 128), bottleneck_type='cat',
             act_cfg=dict(type='ReLU'), **BN)
TWINS = dict(num_heads=[1, 1, 1, 1], mlp_ratios=[1, 1, 1, 1])
# class: (kwargs, layers a person counts, units (stage_wise layers));
# mmseg's unless the class names its package.
CASES = {
    # ResNet-18's 8 blocks, 2 attention refinements, 4 spatial layers, FFM
    'BiSeNetV1': (dict(backbone_cfg=dict(type='ResNet', **RESNET18),
                       spatial_channels=(8, 8, 8, 32),
                       context_channels=(32, 64, 128), out_channels=32,
                       **BN), 15, 7),
    # detail stages 2-3, stem block, GE layers 2 + 2 + 4, CE block, BGA
    'BiSeNetV2': (dict(detail_channels=(8, 8, 32),
                       semantic_channels=(4, 8, 16, 32),
                       semantic_expansion_ratio=2, bga_channels=32, **BN),
                  13, 7),
    'CGNet': (dict(num_channels=(8, 16, 32), num_blocks=(2, 3), **BN), 5, 2),
    # 2 + 2 stem blocks, 3 stages of parallel branches
    'DDRNet': (dict(channels=8, ppm_channels=8, **BN), 7, 5),
    'PIDNet': (dict(channels=8, ppm_channels=8, **BN), 7, 5),
    # encoder: 7 after the first downsampler; decoder: 4
    'ERFNet': (dict(enc_downsample_channels=(4, 8, 16),
                    enc_stage_non_bottlenecks=(1, 4),
                    enc_non_bottleneck_channels=(8, 16),
                    dec_upsample_channels=(8, 4),
                    dec_stages_non_bottleneck=(1, 1),
                    dec_non_bottleneck_channels=(8, 4)), 11, 2),
    # 2 dsconvs, 3 x 3 bottlenecks, pyramid pooling, feature fusion
    'FastSCNN': (dict(downsample_dw_channels=(8, 16), global_in_channels=16,
                      global_block_channels=(16, 24, 32),
                      global_out_channels=32, higher_in_channels=16,
                      lower_in_channels=32, fusion_out_channels=32), 13, 6),
    # ResNet-18's 8 blocks, the pyramid pooling
    'ICNet': (dict(backbone_cfg=dict(type='ResNetV1c', **RESNET18,
                                     dilations=(1, 1, 2, 4),
                                     strides=(1, 2, 1, 1)),
                   layer_channels=(32, 128), light_branch_middle_channels=8,
                   psp_out_channels=32, out_channels=(16, 32, 32), **BN),
              9, 5),
    # 17 inverted residuals, no last conv (mmdet's has one)
    'MobileNetV2': (dict(widen_factor=0.25), 17, 7),
    # 'small': 11 blocks and the last 1x1 conv
    'MobileNetV3': (dict(arch='small'), 12, 12),
    'PCPVT': (dict(TWINS, embed_dims=[8, 16, 32, 64], depths=[1, 2, 1, 1],
                   norm_after_stage=True), 5, 4),
    'SVT': (dict(embed_dims=[8, 16, 32], num_heads=[1, 1, 1],
                 mlp_ratios=[1, 1, 1], depths=[2, 2, 2],
                 windiow_sizes=[2, 2, 2]), 6, 3),
    # STDC1's 2 + 2 + 2 modules and the final conv
    'STDCNet': (dict(STDC1, with_final_conv=True), 7, 4),
    # STDC1's 6 modules, 2 attention refinements, FFM
    'STDCContextPathNet': (dict(backbone_cfg=dict(STDC1, type='STDCNet'),
                                last_in_channels=(128, 64),
                                out_channels=16,
                                ffm_cfg=dict(in_channels=48, out_channels=32,
                                             scale_factor=4)), 9, 5),
    # 4 encoder stages after the first, 4 decoder stages
    'UNet': (dict(base_channels=8, **BN), 8, 2),
    'mmpretrain.PoolFormer': (dict(arch=dict(layers=[1, 1, 2, 1],
                                             embed_dims=[8, 16, 32, 64],
                                             mlp_ratios=[1, 1, 1, 1],
                                             layer_scale_init_value=1e-5),
                                   out_indices=(0, 2, 4, 6),
                                   frozen_stages=-1), 5, 4),
}
SHAPE = (1, 3, 64, 64)


def build(case):
    """A backbone of :data:`CASES` (or a registry config), built in mmseg's
    scope, as a segmentor config builds it."""
    import mmpretrain.models  # noqa: F401  (registers mmpretrain's)
    import mmseg.models  # noqa: F401
    from mmseg.registry import MODELS
    cfg = case if isinstance(case, dict) else dict(
        type=case, init_cfg=None, **CASES[case][0])
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(cfg)


@pytest.fixture(scope='module')
def built():
    return functools.lru_cache(maxsize=None)(build)  # each built once


@pytest.mark.parametrize('case', sorted(CASES))
def test_mmseg_backbone_follows_forward_order(built, case):
    backbone = built(case)
    _, layers, units = CASES[case]
    spec = spec_for(backbone)
    assert spec.source.startswith('class mm'), spec.source
    depths = backbone_depths(backbone, spec)
    for decay_type, count in (('layer_wise', layers), ('stage_wise', units)):
        ids, num_layers = constructor_ids(backbone, decay_type)
        assert num_layers == count == spec.rules.min_num_layers(
            depths, decay_type), decay_type
        assert_forward_order(backbone, ids, num_layers, SHAPE)


def test_timm_backbone_of_mmseg_is_mmpretrains():
    """mmseg's TIMMBackbone gets the ids mmpretrain's gets: the timm
    model's, under ``timm_model.``."""
    ids = {}
    for scope in ('mmseg', 'mmpretrain'):
        backbone = build(dict(type=f'{scope}.TIMMBackbone',
                              model_name='convnext_atto', pretrained=False,
                              features_only=True))
        assert spec_for(backbone).source.startswith('timm')
        ids[scope], num_layers = constructor_ids(backbone, 'layer_wise')
        assert num_layers == 12
        assert_forward_order(backbone, ids[scope], num_layers, SHAPE)
    assert ids['mmseg'] == ids['mmpretrain']


def test_vpd_needs_ldm():
    """VPD cannot be built without CompVis's ``ldm`` (not on PyPI; the
    ``ldm`` there is another package), so it has no rules; the docs say
    so. Fails once ``ldm`` is installed: then VPD needs rules."""
    from mmseg.models.backbones import vpd
    assert not vpd.has_ldm
    with pytest.raises(AssertionError, match='install required packages'):
        vpd.VPD(diffusion_cfg={}, class_embed_path='')


def test_unit_rules_on_names():
    """The factory on a toy placement: a unit's negative block counts from
    its end, a unit past ``depths`` and an unplaced name get the head's
    id."""
    places = {'stem.w': STEM, 'a.0.w': (0, 0), 'a.1.w': (0, 1),
              'a_norm.w': (0, -1), 'b.w': (1, 0), 'gone.w': (2, 0)}
    rules = unit_rules('Toy', lambda name, depths: places.get(name))
    depths = [2, 1]
    layer, stage = rules.ids['layer_wise'], rules.ids['stage_wise']
    assert {n: (layer(n, 3, depths), stage(n, 2, depths))
            for n in list(places) + ['head.w']} == {
        'stem.w': (0, 0), 'a.0.w': (1, 1), 'a.1.w': (2, 1),
        'a_norm.w': (2, 1), 'b.w': (3, 2), 'gone.w': (4, 3),
        'head.w': (4, 3)}
    assert unit_layer_id(None, 3, depths) == 4
    assert rules.min_num_layers(depths, 'layer_wise') == 3
    assert rules.min_num_layers(depths, 'stage_wise') == 2
