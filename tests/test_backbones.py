"""Swin, ViT, ResNet/ResNeXt, get_layer_depth backbones, config rules and
registered rules, on real mmdet/mmpretrain modules."""
import pytest
import torch
import torch.nn as nn

from conftest import (MMDET_CONFIGS, _register, assert_same_groups,
                      build_detector, our_groups)
from layerdecay_plugin import register_backbone_rules
from layerdecay_plugin.backbones.classes import BACKBONES
from layerdecay_plugin.backbones.types import class_path
from layerdecay_plugin.errors import LayerDecayConfigError
from layerdecay_plugin import (resnet_layer_id, swin_layer_id,
                               vit_blocks_layer_id)

SWIN_T = MMDET_CONFIGS / 'swin' / 'mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
R50 = MMDET_CONFIGS / 'faster_rcnn' / 'faster-rcnn_r50_fpn_1x_coco.py'


def group_of(groups):
    """param name -> (layer id, lr, weight decay)."""
    return {n: (int(g['group_name'].split('_')[1]), g['lr'], g['weight_decay'])
            for g in groups for n in g['param_names']}


def wrap(backbone: nn.Module, attr: str = 'backbone') -> nn.Module:
    model = nn.Module()
    setattr(model, attr, backbone)
    model.head = nn.Linear(4, 2)
    return model


def check_monotone(groups, num_layers):
    ids = sorted({int(g['group_name'].split('_')[1]) for g in groups})
    lrs = {int(g['group_name'].split('_')[1]): g['lr'] for g in groups}
    assert ids[-1] == num_layers + 1
    assert [lrs[i] for i in ids] == sorted(lrs[i] for i in ids)
    assert max(g['lr_scale'] for g in groups) == 1.0


def test_swin_t_detector_ids_and_inferred_num_layers():
    model = build_detector(SWIN_T)
    groups = our_groups(model, dict(decay_rate=0.9))
    ids = group_of(groups)
    # depths (2, 2, 6, 2): 12 blocks, num_layers inferred as 12
    assert ids['backbone.patch_embed.projection.weight'][0] == 0
    assert ids['backbone.stages.0.blocks.0.attn.w_msa.qkv.weight'][0] == 1
    assert ids['backbone.stages.0.blocks.1.ffn.layers.0.0.weight'][0] == 2
    assert ids['backbone.stages.0.downsample.reduction.weight'][0] == 2
    assert ids['backbone.stages.2.blocks.5.norm1.weight'][0] == 10
    assert ids['backbone.stages.3.blocks.1.norm2.weight'][0] == 12
    assert ids['backbone.norm3.weight'][0] == 13
    assert ids['neck.lateral_convs.0.conv.weight'][0] == 13
    # position tables get no weight decay (deliberate difference)
    table = 'backbone.stages.1.blocks.0.attn.w_msa.relative_position_bias_table'
    assert ids[table][2] == 0.
    assert ids['backbone.stages.1.blocks.0.attn.w_msa.qkv.weight'][2] == 0.05
    check_monotone(groups, 12)
    stage = group_of(our_groups(model, dict(decay_rate=0.9,
                                            decay_type='stage_wise')))
    assert stage['backbone.stages.2.blocks.5.norm1.weight'][0] == 3
    assert stage['backbone.stages.0.downsample.reduction.weight'][0] == 1
    assert stage['backbone.patch_embed.projection.weight'][0] == 0


def test_swin_absolute_pos_embed():
    _register()
    from mmdet.models.backbones import SwinTransformer
    model = wrap(SwinTransformer(depths=(1, 1, 2, 1), num_heads=(1, 1, 1, 1),
                                 embed_dims=8, use_abs_pos_embed=True,
                                 pretrain_img_size=32))
    ids = group_of(our_groups(model, dict(decay_rate=0.9)))
    assert ids['backbone.absolute_pos_embed'] == (0, 1e-4 * 0.9**6, 0.)


def test_resnet50_detector_ids_any_depth():
    model = build_detector(R50)  # frozen_stages=1: stem and layer1 frozen
    groups = our_groups(model, dict(decay_rate=0.9))
    ids = group_of(groups)
    assert 'backbone.conv1.weight' not in ids
    assert ids['backbone.layer2.0.conv1.weight'][0] == 4
    assert ids['backbone.layer3.5.conv3.weight'][0] == 13
    assert ids['backbone.layer4.2.bn3.weight'] == (16, 1e-4 * 0.9, 0.)
    assert ids['rpn_head.rpn_conv.weight'][0] == 17
    check_monotone(groups, 16)
    assert resnet_layer_id('layer4.35.conv1.weight', 66,
                           [3, 30, 48, 36]) == 1 + 3 + 30 + 48 + 35


@pytest.mark.parametrize('kind', ['ResNeXt', 'ResNetV1d', 'mmpretrain.ResNet'])
def test_resnet_subclasses_by_mro(kind):
    _register()
    if kind.startswith('mmpretrain'):
        from mmpretrain.models import backbones
    else:
        from mmdet.models import backbones
    cls = getattr(backbones, kind.split('.')[-1])
    extra = dict(groups=32, base_width=4) if kind == 'ResNeXt' else {}
    model = wrap(cls(depth=50, frozen_stages=-1, **extra))
    ids = group_of(our_groups(model, dict(decay_rate=0.9)))
    stem = 'backbone.stem.0.weight' if kind == 'ResNetV1d' else \
        'backbone.conv1.weight'
    assert ids[stem][0] == 0
    assert ids['backbone.layer1.0.conv2.weight'][0] == 1
    assert ids['backbone.layer4.2.conv2.weight'][0] == 16
    stage = group_of(our_groups(model, dict(decay_rate=0.9,
                                            decay_type='stage_wise')))
    assert stage['backbone.layer3.1.conv2.weight'][0] == 3
    assert stage[stem][0] == 0


def test_mmpretrain_vit_matches_its_get_layer_depth():
    _register()
    from mmpretrain.models import VisionTransformer
    vit = VisionTransformer(arch='deit-tiny', img_size=32, patch_size=16,
                            final_norm=True)
    model = wrap(vit)
    groups = our_groups(model, dict(decay_rate=0.75))
    ids = group_of(groups)
    assert ids['backbone.cls_token'] == (0, 1e-4 * 0.75**13, 0.)
    assert ids['backbone.pos_embed'][0] == 0
    assert ids['backbone.layers.11.ffn.layers.1.weight'][0] == 12
    assert ids['backbone.ln1.weight'][0] == 12  # final norm with last layer
    for name, (layer_id, _, _) in ids.items():
        if name.startswith('backbone.') and not name.startswith(
                'backbone.ln1'):
            assert layer_id == vit.get_layer_depth(name, 'backbone.')[0]
    check_monotone(groups, 12)
    # stage_wise: one id per block too, so the same inferred num_layers
    stage = our_groups(model, dict(decay_rate=0.75, decay_type='stage_wise'))
    assert_same_groups(groups, stage)


def test_plain_blocks_vit_via_builtin_name_and_config_rules():
    """ViTDet-style `blocks.i` naming, chosen by name or written as regexes:
    both give the same groups."""

    class PlainViT(nn.Module):

        def __init__(self, depth=4):
            super().__init__()
            self.cls_token = nn.Parameter(nn.init.zeros_(nn.Linear(8, 1).weight))
            self.pos_embed = nn.Parameter(nn.init.zeros_(nn.Linear(8, 5).weight))
            self.patch_embed = nn.Conv2d(3, 8, 4)
            self.blocks = nn.ModuleList(nn.Linear(8, 8) for _ in range(depth))
            self.norm = nn.LayerNorm(8)

    model = wrap(PlainViT())
    by_name = our_groups(model, dict(decay_rate=0.8, rules='vit_blocks'))
    by_regex = our_groups(model, dict(decay_rate=0.8, rules=dict(layer_wise=[
        (r'^(cls_token|pos_embed|patch_embed)', 0),
        (r'^blocks\.(\d+)\.', 1),
        (r'^norm\.', 'last'),
    ])))
    assert_same_groups(by_name, by_regex)
    ids = group_of(by_name)
    assert ids['backbone.blocks.3.weight'][0] == 4
    assert ids['backbone.norm.weight'][0] == 4
    assert ids['backbone.cls_token'][2] == 0.
    assert vit_blocks_layer_id('fc_norm.weight', 4) == 4


def test_get_layer_depth_protocol_mmpretrain_beit():
    _register()
    from mmpretrain.models import BEiTViT
    assert class_path(BEiTViT) not in BACKBONES
    beit = BEiTViT(arch=dict(embed_dims=16, num_layers=3, num_heads=2,
                             feedforward_channels=32), img_size=32,
                   patch_size=16)
    groups = our_groups(wrap(beit), dict(decay_rate=0.9))
    total = beit.get_layer_depth('x', 'backbone.')[1]
    for name, (layer_id, _, _) in group_of(groups).items():
        depth = beit.get_layer_depth(name, 'backbone.')[0]
        assert layer_id == (depth if depth < total - 1 else total - 1), name
    check_monotone(groups, total - 2)


def test_mmpretrain_swin_registered_rule_matches_its_get_layer_depth():
    """Registered for stage_wise; its layer ids are unchanged."""
    _register()
    from mmpretrain.models import SwinTransformer
    swin = SwinTransformer(arch='tiny', img_size=64)
    groups = our_groups(wrap(swin), dict(decay_rate=0.9))
    total = swin.get_layer_depth('x', 'backbone.')[1]
    for name, (layer_id, _, _) in group_of(groups).items():
        depth = swin.get_layer_depth(name, 'backbone.')[0]
        assert layer_id == (depth if depth < total - 1 else total - 1), name
    stage = group_of(our_groups(wrap(swin), dict(decay_rate=0.9,
                                                 decay_type='stage_wise')))
    assert stage['backbone.stages.2.blocks.5.norm1.weight'][0] == 3
    assert stage['backbone.stages.2.downsample.reduction.weight'][0] == 3


def test_hivit_gets_a_rule_not_its_broken_get_layer_depth():
    """mmpretrain's HiViT.get_layer_depth looks for `layers.`; its blocks
    are `blocks.`, so it would put every block at the head's lr."""
    _register()
    from mmpretrain.models import HiViT
    hivit = HiViT(arch=dict(embed_dims=64, depths=[1, 1, 2], num_heads=2),
                  img_size=64)
    upstream, total = hivit.get_layer_depth('blocks.3.mlp.fc1.weight')
    assert upstream == total - 1  # the head's depth: upstream is wrong
    ids = group_of(our_groups(wrap(hivit), dict(decay_rate=0.9)))
    # 2 MLP blocks, merge, 2 MLP blocks, merge, 2 attention blocks
    assert ids['backbone.patch_embed.proj.weight'][0] == 0
    assert ids['backbone.blocks.3.mlp.fc1.weight'][0] == 4
    assert ids['backbone.blocks.7.attn.qkv.weight'][0] == 8
    stage = group_of(our_groups(wrap(hivit), dict(decay_rate=0.9,
                                                  decay_type='stage_wise')))
    assert [stage[f'backbone.blocks.{i}.norm2.weight'][0]
            for i in (0, 1, 3, 4, 6, 7)] == [1, 1, 2, 2, 3, 3]


class ToyUnknownNet(nn.Module):
    """No rule knows it: a stem, a list of residual-like blocks, a norm."""

    def __init__(self, blocks=3):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.body = nn.Sequential(*(nn.Sequential(
            nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4),
            nn.Conv2d(4, 4, 1)) for _ in range(blocks)))
        self.norm = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.norm(self.body(self.stem(x)))


def test_unknown_backbone_error_names_auto_as_a_fix():
    with pytest.raises(LayerDecayConfigError, match="rules='auto'"):
        our_groups(wrap(ToyUnknownNet()), dict(decay_rate=0.9))


def test_auto_rules_for_an_unknown_backbone():
    backbone = ToyUnknownNet()
    backbone.train()
    running = backbone.norm.running_mean.clone()
    groups = our_groups(wrap(backbone), dict(
        decay_rate=0.5, rules=dict(type='auto', input_shape=(1, 3, 8, 8))))
    ids = group_of(groups)
    assert ids['backbone.stem.weight'][0] == 0
    assert [ids[f'backbone.body.{i}.0.weight'][0] for i in range(3)] == \
        [1, 2, 3]
    assert ids['backbone.norm.weight'][0] == 3  # runs last: the last block's
    assert ids['head.weight'][0] == 4
    check_monotone(groups, 3)
    # the dry run leaves the module as it was
    assert backbone.training and backbone.body[0][1].training
    assert torch.equal(backbone.norm.running_mean, running)


def test_auto_rules_report_a_failing_dummy_input():
    with pytest.raises(LayerDecayConfigError, match=r'\(1, 5, 8, 8\)'):
        our_groups(wrap(ToyUnknownNet()), dict(
            decay_rate=0.9, rules=dict(type='auto',
                                       input_shape=(1, 5, 8, 8))))
    with pytest.raises(LayerDecayConfigError, match='stage_wise'):
        our_groups(wrap(ToyUnknownNet()), dict(
            decay_rate=0.9, decay_type='stage_wise', rules='auto'))
    with pytest.raises(LayerDecayConfigError, match="'hrnet'.*'auto'"):
        our_groups(wrap(ToyUnknownNet()), dict(decay_rate=0.9,
                                               rules='atuo'))


def test_register_backbone_rules_for_a_new_class():

    class MyNet(nn.Module):
        depths = [2]

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 3)
            self.body = nn.ModuleList(nn.Conv2d(4, 4, 3) for _ in range(2))

    def rule(name, num_layers, depths):
        return 0 if name.startswith('stem') else int(name.split('.')[1]) + 1

    class Sub(MyNet):
        pass

    register_backbone_rules(MyNet, layer_wise=rule)
    try:
        ids = group_of(our_groups(wrap(Sub()), dict(decay_rate=0.5)))
    finally:
        del BACKBONES[class_path(MyNet)]
    assert ids['backbone.stem.weight'] == (0, 1e-4 * 0.5**3, 0.05)
    assert ids['backbone.body.1.weight'] == (2, 1e-4 * 0.5, 0.05)
    assert ids['head.weight'][0] == 3


def test_backbone_attr_for_other_names(toy_detector):
    model = toy_detector()
    other = nn.Module()
    other.img_backbone = model.backbone
    other.neck = model.neck
    ours = our_groups(other, dict(decay_rate=0.9, backbone_attr='img_backbone',
                                  no_decay_names=[]))
    ref = our_groups(model, dict(decay_rate=0.9, no_decay_names=[]))
    assert [g['lr'] for g in ours] == [g['lr'] for g in ref][:len(ours)]
    assert group_of(ours)['img_backbone.stages.2.3.gamma'][0] == 4


def test_tokens_get_no_weight_decay_by_default(toy_detector):
    model = toy_detector()
    default = group_of(our_groups(model, dict(decay_rate=0.9)))
    mmdet_like = group_of(our_groups(model, dict(decay_rate=0.9,
                                                 no_decay_names=[])))
    for token in ('cls_token', 'mask_token', 'pos_embed'):
        assert default[f'backbone.{token}'][2] == 0.
        assert mmdet_like[f'backbone.{token}'][2] == 0.05


def test_swin_rule_pure():
    depths = [2, 2, 6, 2]
    assert swin_layer_id('stages.1.blocks.1.norm1.weight', 12, depths) == 4
    assert swin_layer_id('stages.1.downsample.norm.weight', 12, depths) == 4
    assert swin_layer_id('norm2.weight', 12, depths) == 13


def test_timm_vision_transformer_by_class_path():
    timm = pytest.importorskip('timm')
    vit = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=16, embed_dim=8, depth=3, num_heads=1,
        num_classes=2)
    groups = our_groups(wrap(vit), dict(decay_rate=0.5))
    ids = group_of(groups)
    assert ids['backbone.cls_token'] == (0, 1e-4 * 0.5**4, 0.)
    assert ids['backbone.patch_embed.proj.weight'][0] == 0
    assert ids['backbone.blocks.2.mlp.fc1.weight'][0] == 3
    assert ids['backbone.norm.weight'][0] == 3
    # timm's matcher leaves its classifier out: placed by the forward order
    # (it runs after the last block), not at the head's lr (docs/timm.md)
    assert ids['backbone.head.weight'][0] == 3
    check_monotone(groups, 3)
