"""``rules='auto'`` finds blocks wherever a backbone keeps them: toys of
torch modules, each the kind of backbone a person counts blocks in, and
the pure block finder on plain module tables.

The counts asserted are the ones a person gives (the number of layer ids
before the fix in the comments: one per parameter-owning module).
"""
from typing import Dict, List

import pytest
import torch
import torch.nn as nn

from layerdecay_plugin.backbones import auto
from layerdecay_plugin.backbones.auto import auto_layer_ids, find_blocks
from layerdecay_plugin.grouping import group_layer_id
from layerdecay_plugin.rules.auto import (ModuleNode, describe_blocks,
                                          find_blocks as blocks_of)
from light.toys import ToyDetector, layer_decay_groups

SHAPE = (1, 3, 16, 16)


class ModuleDictViT(nn.Module):
    """A ViT-like encoder whose 4 layers (torch's own) sit in an
    ``nn.ModuleDict``, run in its order."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.embed = nn.Conv2d(3, width, 4, stride=4)
        self.layers = nn.ModuleDict({
            name: nn.TransformerEncoderLayer(width, 2, 32, batch_first=True,
                                             norm_first=True)
            for name in ('low', 'mid', 'high', 'top')
        })
        self.norm = nn.LayerNorm(width)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        for layer in self.layers.values():
            x = layer(x)
        return self.norm(x)


class ConvNormBlock(nn.Module):
    """A residual block of two parameter-owning modules."""

    def __init__(self, width: int):
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, padding=1)
        self.norm = nn.BatchNorm2d(width)

    def forward(self, x):
        return x + self.norm(self.conv(x))


class ConvNormNet(nn.Module):
    """Stem (conv, norm), 6 residual conv + norm blocks, a final norm."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.stem_norm = nn.BatchNorm2d(width)
        self.blocks = nn.Sequential(*(ConvNormBlock(width) for _ in range(6)))
        self.norm = nn.BatchNorm2d(width)

    def forward(self, x):
        return self.norm(self.blocks(self.stem_norm(self.stem(x))))


class ConvBN(nn.Module):
    """timm's ``ConvNormAct``: a conv + norm pair, the part of a block."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """RegNet's block: three ``ConvBN`` and a shortcut in the first one."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = ConvBN(cin, cout)
        self.conv2 = ConvBN(cout, cout, 3, stride)
        self.conv3 = ConvBN(cout, cout)
        self.downsample = ConvBN(cin, cout, 1, stride) \
            if stride > 1 or cin != cout else None

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(self.conv3(self.conv2(self.conv1(x))) + shortcut)


class Stage(nn.Module):
    """Blocks as numbered attributes ``b1``, ``b2``, ... (timm's RegNet)."""

    def __init__(self, depth: int, cin: int, cout: int):
        super().__init__()
        for i in range(depth):
            self.add_module(f'b{i + 1}', Bottleneck(cin if i == 0 else cout,
                                                    cout, 2 if i == 0 else 1))

    def forward(self, x):
        for block in self.children():
            x = block(x)
        return x


class NumberedNet(nn.Module):
    """RegNet-like: ``stem``, stages ``s1``..``s3`` of 1, 1, 3 blocks,
    a classifier; stages, blocks and conv + norm pairs all repeat."""

    def __init__(self):
        super().__init__()
        self.stem = ConvBN(3, 4, 3, 2)
        self.s1 = Stage(1, 4, 8)
        self.s2 = Stage(1, 8, 8)
        self.s3 = Stage(3, 8, 16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.s3(self.s2(self.s1(self.stem(x))))
        return self.fc(x.mean((2, 3)))


class PlainNet(nn.Module):
    """No repeated structure: a VGG-like chain of single layers."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 8, 3),
            nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 1, stride=2))
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def layer_count(ids: Dict[str, int]) -> int:
    return len(set(ids.values()))


def test_blocks_in_a_module_dict():
    backbone = ModuleDictViT()
    assert find_blocks(backbone) == [
        f'layers.{n}' for n in ('low', 'mid', 'high', 'top')]
    ids = auto_layer_ids(backbone, SHAPE)
    # before: 26 ids, one per parameter-owning module
    assert layer_count(ids) == 5
    assert ids['embed.weight'] == 0
    assert [ids[f'layers.{n}.linear2.weight']
            for n in ('low', 'mid', 'high', 'top')] == [1, 2, 3, 4]
    assert ids['layers.top.self_attn.in_proj_weight'] == 4
    assert ids['norm.weight'] == 4  # after the last block: its id


def test_two_module_residual_blocks():
    backbone = ConvNormNet()
    assert find_blocks(backbone) == [f'blocks.{i}' for i in range(6)]
    ids = auto_layer_ids(backbone, SHAPE)
    # before: 15 ids
    assert layer_count(ids) == 7
    assert ids['stem.weight'] == ids['stem_norm.bias'] == 0
    assert [ids[f'blocks.{i}.norm.weight'] for i in range(6)] == \
        [1, 2, 3, 4, 5, 6]


def test_numbered_attribute_blocks_inside_stages():
    backbone = NumberedNet()
    # Bottlenecks, not their stages nor their conv + norm pairs; the
    # stages of one block count as much as the stage of three.
    assert find_blocks(backbone) == ['s1.b1', 's2.b1', 's3.b1', 's3.b2',
                                     's3.b3']
    ids = auto_layer_ids(backbone, SHAPE)
    # before: 39 ids
    assert layer_count(ids) == 6
    assert ids['stem.conv.weight'] == ids['stem.bn.bias'] == 0
    assert ids['s1.b1.downsample.conv.weight'] == 1
    assert [ids[f's3.b{i}.conv2.bn.weight'] for i in (1, 2, 3)] == [3, 4, 5]
    assert ids['fc.weight'] == 5


def test_a_backbone_with_fsdp_units_is_never_run(tmp_path):
    """The dry run of rules='auto' on a backbone holding FSDP units would
    start FSDP's lazy initialisation with an inner unit as root, and the
    first training step then failed (seen on CUDA, issue #22's
    gpu_check): it is refused by name, and the model still trains."""
    import torch.distributed as dist
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    from layerdecay_plugin import LayerDecayConfigError

    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store',
                            rank=0, world_size=1)
    try:
        backbone = ConvNormNet()
        backbone.blocks[0] = FSDP(backbone.blocks[0], use_orig_params=True,
                                  device_id=torch.device('cpu'))
        model = FSDP(backbone, use_orig_params=True,
                     device_id=torch.device('cpu'))
        with pytest.raises(LayerDecayConfigError,
                           match=r"FSDP unit\(s\) \(e.g. 'blocks.0'\)"):
            auto_layer_ids(backbone, SHAPE)
        model(torch.zeros(SHAPE)).sum().backward()
    finally:
        dist.destroy_process_group()


def test_no_repeated_structure_one_id_per_module():
    backbone = PlainNet()
    assert find_blocks(backbone) == []
    ids = auto_layer_ids(backbone, SHAPE)
    assert ids == {
        'features.0.weight': 0, 'features.0.bias': 0,
        'features.2.weight': 1, 'features.2.bias': 1,
        'features.3.weight': 2, 'features.3.bias': 2,
        'features.5.weight': 3, 'features.5.bias': 3,
        'fc.weight': 4, 'fc.bias': 4}


def test_the_log_and_table_say_how_many_blocks_and_where(monkeypatch):
    logged: List[str] = []
    monkeypatch.setattr(auto, 'print_log',
                        lambda msg, *args, **kwargs: logged.append(msg))
    groups = layer_decay_groups(
        ToyDetector(NumberedNet(), width=16),
        dict(decay_rate=0.5, rules=dict(type='auto', input_shape=SHAPE)),
        dict(type='AdamW', lr=1e-3, weight_decay=0.05))
    found = [msg for msg in logged if 'found' in msg]
    assert len(found) == 1 and found[0].startswith(
        "layer decay: rules='auto' found 5 blocks (Bottleneck) at s1.b1, "
        's2.b1, s3.b1..b3; 6 layer ids (0..5) for ')
    ids = {name: group_layer_id(g['group_name'])
           for g in groups for name in g['param_names']}
    assert ids['backbone.stem.conv.weight'] == 0
    assert ids['backbone.s3.b3.conv3.conv.weight'] == 5
    assert ids['neck.0.weight'] == 6
    monkeypatch.undo()
    spec = auto.auto_spec(PlainNet(), auto.AutoRules(SHAPE))
    assert spec.rules.name == 'auto (one id per module)'
    assert auto.auto_spec(ConvNormNet(), auto.AutoRules(SHAPE)).rules.name \
        == 'auto (6 blocks)'


def node(kind, owners, generic=False, element=False):
    return ModuleNode(kind, owners, generic, element)


def test_find_blocks_on_module_tables():
    # ConvNeXt (mmpretrain's names): downsample pairs repeat too, but
    # heavier blocks exist, so they are transitions.
    convnext = {'': node('ConvNeXt', 15), 'downsample_layers':
                node(None, 4)}
    for i in range(2):
        convnext[f'downsample_layers.{i}'] = node('torch.nn.Sequential', 2,
                                                  True)
    convnext['stages'] = node(None, 8)
    for i in range(2):
        convnext[f'stages.{i}'] = node('torch.nn.Sequential', 4, True)
        for j in range(2):
            convnext[f'stages.{i}.{j}'] = node('Block', 3)
    assert blocks_of(convnext) == ['stages.0.0', 'stages.0.1', 'stages.1.0',
                                   'stages.1.1']
    # A generic Sequential is like another only next to it: a lone
    # Sequential elsewhere is no block.
    lone = {'': node('Net', 9), 'a': node('torch.nn.Sequential', 3, True),
            'b': node('Net2', 6), 'b.0': node('torch.nn.Sequential', 3, True),
            'b.1': node('torch.nn.Sequential', 3, True)}
    assert blocks_of(lone) == ['b.0', 'b.1']
    # ...but a class is a class: its lone instance is a block too.
    assert blocks_of(dict(lone, a=node('Block', 3), **{
        'b.0': node('Block', 3), 'b.1': node('Block', 3)})) == \
        ['a', 'b.0', 'b.1']
    # EfficientNet (timm's names): the first stage's only block is of a
    # class no other block has, but sits where blocks sit.
    efficientnet = {'': node('EfficientNet', 12),
                    'conv_stem': node('Conv', 1),
                    'blocks': node('torch.nn.Sequential', 11, True),
                    'blocks.0': node('torch.nn.Sequential', 3, True),
                    'blocks.0.0': node('DepthwiseSeparableConv', 3),
                    'blocks.1': node('torch.nn.Sequential', 8, True),
                    'blocks.1.0': node('InvertedResidual', 4),
                    'blocks.1.1': node('InvertedResidual', 4)}
    assert blocks_of(efficientnet) == ['blocks.0.0', 'blocks.1.0',
                                       'blocks.1.1']
    # MaxViT (timm's names): the two attentions repeat inside each block of
    # a Sequential, as its parts: the block is the block.
    maxvit = {'': node('MaxxVit', 14),
              'blocks': node('torch.nn.Sequential', 14, True)}
    for i in range(2):
        maxvit.update({
            f'blocks.{i}': node('MaxxVitBlock', 7, element=True),
            f'blocks.{i}.conv': node('MbConvBlock', 3),
            f'blocks.{i}.attn_block': node('PartitionAttention', 3),
            f'blocks.{i}.attn_grid': node('PartitionAttention', 3)})
    assert blocks_of(maxvit) == ['blocks.0', 'blocks.1']
    # Containers that never run are never blocks; single modules neither.
    assert blocks_of({'': node('Net', 4), 'x': node(None, 2),
                      'y': node(None, 2), 'x.0': node('Conv', 1),
                      'x.1': node('Conv', 1)}) == []
    assert blocks_of({}) == []


@pytest.mark.parametrize('blocks, text', [
    (['s1.b1', 's2.b1', 's3.b1', 's3.b2', 's3.b3'],
     's1.b1, s2.b1, s3.b1..b3'),
    ([f'blocks.{i}' for i in range(12)], 'blocks.0..11'),
    (['a', 'b'], 'a..b'),
    ([f's{i}.b' for i in range(9)], 's0.b, s1.b, s2.b, s3.b, s4.b, ..., s8.b'),
    ([], ''),
])
def test_describe_blocks(blocks, text):
    assert describe_blocks(blocks) == text
