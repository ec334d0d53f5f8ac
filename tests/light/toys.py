"""Toy torch models for the light tier (and for recording golden groups).

Torch only: the ConvNeXt-named backbone gets ConvNeXt ids through the
plugin's name drop-in, exactly as mmdet's constructor gives them by class
name, so no mmpretrain class is needed. Recorded real models are rebuilt
from their parameter names and shapes: mmdet's ConvNeXt detectors
(:func:`model_from_shapes`) and a backbone of every family
(:func:`backbone_from_shapes`, which gets its rules by name,
``paramwise_cfg.rules``). :class:`ToyViT` runs, for ``rules='auto'``.
"""
from typing import (Any, Dict, Iterable, List, Mapping, NamedTuple,
                    Optional, Sequence, Tuple, Type)

import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper

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


class Backbone(nn.Module):
    """Backbone node of a rebuilt model of any family: a class no rule
    knows, so only ``paramwise_cfg.rules='<family>'`` selects its rules."""


class _Node(NamedTuple):
    """One module of a parameter tree: its own parameters and children,
    both in first-listed order."""
    params: List[ParamShape]
    children: Dict[str, '_Node']


def _param_tree(params: Iterable[ParamShape]) -> _Node:
    """The module tree that the dotted parameter names describe."""
    root = _Node([], {})
    for name, shape, requires_grad in params:
        *path, leaf = name.split('.')
        node = root
        for part in path:
            node = node.children.setdefault(part, _Node([], {}))
        node.params.append((leaf, shape, requires_grad))
    return root


def _build(node: _Node, module: nn.Module,
           classes: Optional[Mapping[str, Type[nn.Module]]] = None
           ) -> nn.Module:
    """Fill ``module`` with the node's parameters and children.

    A node whose children are all numbered becomes an ``nn.ModuleList``,
    as real stages and block lists are: family depth readers take its
    ``len()`` and index it. Indices between its children that own no
    parameter (a ReLU between convs) are filled with ``nn.Identity`` so
    that ``[i]`` is child ``'i'``; trailing ones cannot be seen from
    parameter names and stay absent. ``classes`` gives the class of some
    direct children by name (the backbone's).
    """
    for leaf, shape, requires_grad in node.params:
        module.register_parameter(
            leaf, nn.Parameter(torch.zeros(*shape),
                               requires_grad=requires_grad))
    names = list(node.children)
    if names and all(name.isdigit() for name in names):
        names = [str(i) for i in range(max(map(int, names)) + 1)]
    for name in names:
        child = node.children.get(name)
        if child is None:
            module.add_module(name, nn.Identity())
            continue
        numbered = bool(child.children) and all(
            part.isdigit() for part in child.children)
        cls = (classes or {}).get(
            name, nn.ModuleList if numbered else nn.Module)
        module.add_module(name, _build(child, cls()))
    return module


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
    return _build(_param_tree(params), nn.Module(), {backbone_attr: ConvNeXt})


def shape_rows(module: nn.Module) -> List[list]:
    """``[name, shape]`` of every parameter, in order, with a third item
    ``False`` for a frozen one: the JSON rows of a recorded backbone.

    Args:
        module: A torch module.

    Returns:
        list[list]: Rows for :func:`backbone_from_shapes`.
    """
    return [[name, list(param.shape)] + ([] if param.requires_grad else
                                         [False])
            for name, param in module.named_parameters()]


def backbone_from_shapes(rows: Iterable[Sequence[Any]],
                         attrs: Optional[Mapping[str, Any]] = None
                         ) -> nn.Module:
    """A :class:`Backbone` with exactly the given parameters and attributes.

    Args:
        rows: :func:`shape_rows` of a backbone: ``[name, shape]``, or
            ``[name, shape, False]`` when frozen, names relative to it.
        attrs: Plain attributes to set, the ones a family's depth reader
            takes (``depths``, ``stage_blocks``, ...).

    Returns:
        Backbone: Zero-filled parameters, numbered containers as
        ``nn.ModuleList`` (see :func:`_build`), the attributes.
    """
    params = [(row[0], row[1], len(row) < 3 or bool(row[2])) for row in rows]
    backbone = _build(_param_tree(params), Backbone())
    for name, value in (attrs or {}).items():
        setattr(backbone, name, value)
    return backbone


class ToyViT(nn.Module):
    """A runnable torch-only ViT named as timm's (``blocks.i``, final
    ``norm``), for ``rules='auto'``: its forward order gives the same ids
    as ``rules='vit_blocks'``.

    Args:
        num_blocks: Transformer-like blocks.
        width: Token width.
    """

    def __init__(self, num_blocks: int = 3, width: int = 8):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, width))
        self.patch_embed = nn.Conv2d(3, width, 4, stride=4)
        self.blocks = nn.ModuleList(
            ToyViTBlock(width) for _ in range(num_blocks))
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1)
        x = x + self.pos_embed[:, :x.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class ToyViTBlock(nn.Module):
    """Pre-norm residual block: enough parameter owners (four) to count as
    a block for ``rules='auto'``, without real attention."""

    def __init__(self, width: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def auto_model() -> nn.Module:
    """The detector whose ``rules='auto'`` groups are recorded: a runnable
    :class:`ToyViT` (auto rules run the backbone once)."""
    return ToyDetector(ToyViT(), width=8)


def layer_decay_groups(model: nn.Module, paramwise_cfg: Mapping,
                       optimizer: Mapping) -> List[dict]:
    """The param groups our constructor builds for ``model``, through
    mmengine's ``build_optim_wrapper`` as a config builds them (the plugin
    must be imported, which registers the constructor).

    Args:
        model: The model.
        paramwise_cfg: The layer-decay settings.
        optimizer: The optimizer config.

    Returns:
        list[dict]: ``optimizer.param_groups``.
    """
    wrapper = build_optim_wrapper(
        model,
        dict(type='OptimWrapper',
             constructor='LayerDecayOptimWrapperConstructor',
             optimizer=dict(optimizer), paramwise_cfg=dict(paramwise_cfg)))
    return wrapper.optimizer.param_groups
