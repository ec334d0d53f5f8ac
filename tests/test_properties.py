"""Invariants on randomly shaped ConvNeXt-, Swin-, ViT-, CSP- and PVT-like
backbones (hypothesis): every trainable parameter in exactly one group,
frozen ones in none, lr_scale <= 1 for decay_rate <= 1, lr never falls with
depth, and the result does not depend on the order of config dicts."""
import os
import random

import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import _register, our_groups

SETTINGS = settings(max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", 20)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def convnext(depths, frozen, tokens, decay_type):
    from conftest import toy_convnext_cls
    backbone = toy_convnext_cls()(depths=depths, tokens=tokens,
                                  frozen_stages=frozen,
                                  out_indices=(0, 1, 2, 3))
    units = []
    for s, d in enumerate(depths):
        units.append([f'downsample_layers.{s}.'])
        units += [[f'stages.{s}.{j}.'] for j in range(d)]
    if decay_type == 'stage_wise':
        # mmdet's stage_wise rule (kept for parity) puts every downsample
        # layer at the stem's id 0, so they come first in lr order
        units = [[f'downsample_layers.{s}.' for s in range(4)]] + \
            [u for u in units if not u[0].startswith('downsample')]
    first = ['cls_token', 'mask_token', 'pos_embed'] if tokens else []
    return backbone, [first] + units if first else units


def swin(depths, frozen, abs_pos, decay_type):
    from mmdet.models.backbones import SwinTransformer
    backbone = SwinTransformer(
        embed_dims=8, depths=depths, num_heads=(1, 1, 1, 1), window_size=2,
        frozen_stages=frozen, use_abs_pos_embed=abs_pos,
        pretrain_img_size=16)
    units = [['patch_embed.', 'absolute_pos_embed']]
    for s, d in enumerate(depths):
        units += [[f'stages.{s}.blocks.{j}.'] for j in range(d)]
        units[-1].append(f'stages.{s}.downsample.')  # shares the last id
    return backbone, units


def vit(depth, frozen, tokens, decay_type):
    from mmpretrain.models import VisionTransformer
    backbone = VisionTransformer(
        arch=dict(embed_dims=8, num_layers=depth, num_heads=1,
                  feedforward_channels=8),
        img_size=16, patch_size=8, frozen_stages=frozen, with_cls_token=tokens,
        out_type='cls_token' if tokens else 'featmap', final_norm=True)
    units = [['cls_token', 'pos_embed', 'patch_embed.']]
    units += [[f'layers.{i}.'] for i in range(depth)]
    units.append(['ln1.'])  # id num_layers: the last block's by default
    return backbone, units


def csp(deepen, frozen, spp_last, decay_type):
    from mmdet.models.backbones import CSPNeXt
    backbone = CSPNeXt(deepen_factor=deepen, widen_factor=0.125,
                       frozen_stages=frozen,
                       spp_kernel_sizes=(5, 9, 13) if spp_last else (5, ))
    units = [['stem.']]
    for i in range(1, 5):
        units += [[f'stage{i}.{k}.'] for k in range(len(
            getattr(backbone, f'stage{i}')))]
    return backbone, units


def pvt_v2(depths, frozen, _, decay_type):
    from mmdet.models.backbones import PyramidVisionTransformerV2
    backbone = PyramidVisionTransformerV2(
        embed_dims=8, num_layers=list(depths), num_heads=[1, 1, 1, 1],
        sr_ratios=[2, 2, 1, 1])
    units = [['layers.0.0.']]
    for i, depth in enumerate(depths):
        # a later stage's patch embed shares its first block's id, the stage
        # norm its last block's
        blocks = [[f'layers.{i}.1.{k}.'] for k in range(depth)]
        blocks[0] += [f'layers.{i}.0.'] if i else []
        blocks[-1].append(f'layers.{i}.2.')
        units += blocks
    return backbone, units


depths4 = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 10),
                    st.integers(1, 3))
BACKBONES = st.one_of(
    st.builds(lambda d, f, t: ('convnext', d, f, t), depths4,
              st.integers(0, 4), st.booleans()),
    st.builds(lambda d, f, t: ('swin', d, f, t), depths4, st.integers(-1, 3),
              st.booleans()),
    st.builds(lambda d, f, t: ('vit', d, f, t), st.integers(1, 12),
              st.integers(0, 12), st.booleans()),
    st.builds(lambda d, f, t: ('csp', d, f, t), st.sampled_from([0.1, 0.33]),
              st.integers(-1, 4), st.booleans()),
    st.builds(lambda d, f, t: ('pvt_v2', d, f, t),
              st.tuples(*[st.integers(1, 3)] * 4), st.just(0), st.booleans()),
)


def build(spec, decay_type='layer_wise'):
    _register()
    kind, depths, frozen, extra = spec
    backbone, units = {'convnext': convnext, 'swin': swin, 'vit': vit,
                       'csp': csp, 'pvt_v2': pvt_v2}[kind](
                           depths, min(frozen, _max(depths)), extra,
                           decay_type)
    model = nn.Module()
    model.backbone = backbone
    model.neck = nn.Linear(4, 4)
    model.head = nn.Sequential(model.neck, nn.LayerNorm(4))  # shared module
    return model, units


def _max(depths):
    return depths if isinstance(depths, int) else 4


@SETTINGS
@given(spec=BACKBONES, decay_rate=st.floats(0.05, 1.0),
       extra_layers=st.one_of(st.none(), st.integers(0, 3)),
       decay_type=st.sampled_from(['layer_wise', 'stage_wise']))
def test_invariants(spec, decay_rate, extra_layers, decay_type):
    model, units = build(spec, decay_type)
    cfg = dict(decay_rate=decay_rate, decay_type=decay_type)
    if extra_layers is not None:
        from layerdecay_plugin.backbones.depths import backbone_depths
        from layerdecay_plugin.backbones.resolve import spec_for
        found = spec_for(model.backbone)
        cfg['num_layers'] = found.rules.min_num_layers(
            backbone_depths(model.backbone, found), decay_type) + extra_layers
    groups = our_groups(model, cfg)

    # every trainable parameter in exactly one group, frozen ones in none
    in_groups = [id(p) for g in groups for p in g['params']]
    assert len(in_groups) == len(set(in_groups))
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert set(in_groups) == trainable

    # lr_scale <= 1, the head's is 1
    assert all(g['lr_scale'] <= 1.0 for g in groups)
    lr_of = {n: g['lr'] for g in groups for n in g['param_names']}
    assert lr_of['neck.weight'] == 1e-4

    # lr never falls with depth (units in forward order)
    seen = []
    for unit in units:
        lrs = [lr for n, lr in lr_of.items() if n.startswith('backbone.') and
               n[len('backbone.'):].startswith(tuple(unit))]
        if lrs:
            assert max(lrs) == min(lrs), unit  # one id per unit
            seen.append(lrs[0])
    assert seen == sorted(seen) and all(lr <= 1e-4 for lr in seen)


@SETTINGS
@given(spec=BACKBONES, seed=st.integers(0, 2**16))
def test_independent_of_dict_order(spec, seed):
    model, _ = build(spec)
    items = [('decay_rate', 0.8), ('norm_decay_mult', 0.),
             ('bias_lr_mult', 2.),
             ('custom_keys', [('neck', dict(lr_mult=3.)),
                              ('backbone', dict(decay_mult=0.5)),
                              ('head.1', dict(lr_mult=0.5))])]

    def cfg(order):
        shuffled = [items[i] for i in order]
        return {k: dict(random.Random(seed).sample(v, len(v)))
                if k == 'custom_keys' else v for k, v in shuffled}

    order = list(range(len(items)))
    a = our_groups(model, cfg(order))
    random.Random(seed).shuffle(order)
    b = our_groups(model, cfg(order[::-1]))
    assert [(g['group_name'], g['lr'], g['weight_decay'], g['param_names'])
            for g in a] == [(g['group_name'], g['lr'], g['weight_decay'],
                             g['param_names']) for g in b]
