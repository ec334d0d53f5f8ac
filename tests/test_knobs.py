"""Full tier: real timm models declare their own no-decay names
(``no_weight_decay()``), and a DINOv2-style ViT's register tokens sit at
the stem without weight decay (issue #23 item 3)."""
import pytest
import torch.nn as nn
from mmengine.optim import build_optim_wrapper

import layerdecay_plugin  # noqa: F401  (registers the constructor)

timm = pytest.importorskip('timm')


class Detector(nn.Module):

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(8, 1)


def groups_of(backbone: nn.Module, **paramwise) -> dict:
    wrapper = build_optim_wrapper(Detector(backbone), dict(
        type='OptimWrapper', constructor='LayerDecayPluginConstructor',
        optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
        paramwise_cfg=dict(decay_rate=0.8, **paramwise)))
    return {n: (g['group_name'], g['weight_decay'])
            for g in wrapper.optimizer.param_groups for n in g['param_names']}


def test_swinv2_declares_cpb_mlp_and_logit_scale():
    model = timm.create_model('swinv2_tiny_window8_256', pretrained=False,
                              embed_dim=16, depths=(1, 1, 1, 1),
                              num_heads=(1, 1, 1, 1), num_classes=0)
    declared = {n for n in model.no_weight_decay()}
    groups = groups_of(model)
    cpb = [n for n in groups if 'cpb_mlp' in n and n.endswith('.weight')]
    assert cpb and all(groups[n][1] == 0. for n in cpb)
    assert any('cpb_mlp' in n for n in declared)
    scales = [n for n in groups if n.endswith('logit_scale')]
    assert scales and all(groups[n][1] == 0. for n in scales)
    off = groups_of(timm.create_model(
        'swinv2_tiny_window8_256', pretrained=False, embed_dim=16,
        depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), num_classes=0),
        model_no_decay=False)
    assert all(off[n][1] == 0.05 for n in cpb)


def test_vit_register_tokens_at_the_stem_without_decay():
    model = timm.create_model('vit_small_patch14_reg4_dinov2',
                              pretrained=False, img_size=28, embed_dim=16,
                              depth=2, num_heads=1, num_classes=0)
    groups = groups_of(model)
    assert groups['backbone.reg_token'] == ('layer_0_no_decay', 0.)
    assert groups['backbone.cls_token'] == ('layer_0_no_decay', 0.)
