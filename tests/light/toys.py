"""Toy torch models for the light tier (and for recording golden groups).

Torch only: the ConvNeXt-named backbone gets ConvNeXt ids through the
plugin's name drop-in, exactly as mmdet's constructor gives them by class
name, so no mmpretrain class is needed.
"""
from typing import Iterable, Sequence, Tuple

import torch
import torch.nn as nn

#: (name, shape, requires_grad) of one parameter.
ParamShape = Tuple[str, Sequence[int], bool]


class ToyConvNeXt(nn.Module):
    """Parameters named as mmpretrain's ConvNeXt, without its forward.

    Args:
        depths: Blocks per stage (four stages).
        channels: Width of the stem, grown x2 per stage.
    """

    def __init__(self, depths: Sequence[int] = (1, 1, 4, 1),
                 channels: int = 4):
        super().__init__()
        widths = [channels * 2**i for i in range(4)]
        self.depths = list(depths)
        self.downsample_layers = nn.ModuleList()
        self.stages = nn.ModuleList()
        for i, (depth, width) in enumerate(zip(depths, widths)):
            c_in = 3 if i == 0 else widths[i - 1]
            self.downsample_layers.append(
                nn.Sequential(nn.LayerNorm(c_in), nn.Conv2d(c_in, width, 2)))
            self.stages.append(
                nn.Sequential(*(_toy_block(width) for _ in range(depth))))
        self.norm3 = nn.LayerNorm(widths[-1])


def _toy_block(width: int) -> nn.Module:
    """A ConvNeXt block's parameter kinds: depthwise conv, norm, 1x1s and
    the 1-D layer scale ``gamma``."""
    block = nn.Module()
    block.depthwise_conv = nn.Conv2d(width, width, 7, groups=width)
    block.norm = nn.LayerNorm(width)
    block.pointwise_conv1 = nn.Linear(width, 4 * width)
    block.pointwise_conv2 = nn.Linear(4 * width, width)
    block.gamma = nn.Parameter(torch.ones(width))
    return block


class ToyDetector(nn.Module):
    """Backbone + neck + head, the attribute layout both constructors read.

    Args:
        backbone: The backbone module.
        width: Channels the neck takes.
    """

    def __init__(self, backbone: nn.Module, width: int = 32):
        super().__init__()
        self.backbone = backbone
        self.neck = nn.Sequential(nn.Conv2d(width, 8, 1), nn.BatchNorm2d(8))
        self.head = nn.Sequential(nn.Conv2d(8, 4, 3), nn.GroupNorm(2, 4))


def toy_models() -> dict:
    """The toy detectors whose mmdet groups are recorded as golden.

    Returns:
        dict: ``{case name: (model, paramwise_cfg)}``; ``frozen`` freezes the
        stem so that skipped parameters are covered too.
    """
    frozen = ToyDetector(ToyConvNeXt())
    for param in frozen.backbone.downsample_layers[0].parameters():
        param.requires_grad = False
    return {
        'toy_layer_wise': (ToyDetector(ToyConvNeXt((1, 1, 7, 1))),
                           dict(decay_rate=0.8, decay_type='layer_wise',
                                num_layers=6)),
        'toy_stage_wise': (ToyDetector(ToyConvNeXt()),
                           dict(decay_rate=0.7, decay_type='stage_wise',
                                num_layers=4)),
        'toy_frozen_stem': (frozen,
                            dict(decay_rate=0.9, decay_type='layer_wise',
                                 num_layers=8)),
    }


class ConvNeXt(nn.Module):
    """Backbone node of a rebuilt model: the class name is what selects
    ConvNeXt rules in both constructors (mmdet: ``'ConvNeXt' in`` the
    name; ours: the name plus mmpretrain's parameter layout)."""


def model_from_shapes(params: Iterable[ParamShape],
                      backbone_attr: str = 'backbone') -> nn.Module:
    """A module tree with exactly the given parameters, in the given order.

    ``named_parameters()`` lists a module's own parameters before its
    children's, children in insertion order; adding parameters in the order
    a real model listed them recreates that order.

    Args:
        params: ``(name, shape, requires_grad)`` in ``named_parameters()``
            order.
        backbone_attr: Top-level child to make a :class:`ConvNeXt`.

    Returns:
        nn.Module: Zero-filled parameters, nothing else.
    """
    root = nn.Module()
    for name, shape, requires_grad in params:
        *path, leaf = name.split('.')
        node = root
        for depth, part in enumerate(path):
            if part not in node._modules:
                is_backbone = depth == 0 and part == backbone_attr
                node.add_module(part, ConvNeXt() if is_backbone
                                else nn.Module())
            node = node._modules[part]
        node.register_parameter(
            leaf, nn.Parameter(torch.zeros(*shape),
                               requires_grad=requires_grad))
    return root
