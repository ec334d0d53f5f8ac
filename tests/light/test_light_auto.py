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


@pytest.mark.skipif(
    tuple(int(v) for v in torch.__version__.split('.')[:2]) < (2, 1),
    reason='FSDP on the CPU needs torch 2.1')
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


# Stages of blocks of two parameter-owning modules (issue #21, item 5):
# the stages hold more, but a person counts the blocks inside them.


class StagedNet(nn.Module):
    """Stem conv, then stages ``[downsample conv, Block, Block, ...]`` in
    an ``nn.ModuleList`` (``depths`` blocks each), the blocks residual
    conv + norm pairs of one class."""

    def __init__(self, depths=(2, 2, 2), width: int = 4):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width * (i or 1), width * (i + 1), 2,
                                    stride=2),
                          *(ConvNormBlock(width * (i + 1))
                            for _ in range(depth)))
            for i, depth in enumerate(depths))

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x


def test_blocks_inside_stages_of_a_downsample_and_blocks():
    """The issue's reproduction: 3 stages of 2 blocks are 6 blocks, not 3
    (before: 3 blocks, ids 0..3). A stage's downsample goes with the block
    after it (timm's convention), the first stage's too: the stem is
    ``stem``."""
    backbone = StagedNet()
    assert find_blocks(backbone) == [f'stages.{i}.{j}' for i in range(3)
                                     for j in (1, 2)]
    ids = auto_layer_ids(backbone, SHAPE)
    assert sorted(set(ids.values())) == list(range(7))
    assert ids['stem.weight'] == 0
    assert [ids[f'stages.{i}.{j}.conv.weight'] for i in range(3)
            for j in (1, 2)] == [1, 2, 3, 4, 5, 6]
    assert [ids[f'stages.{i}.0.weight'] for i in range(3)] == [1, 3, 5]


def test_stages_of_one_and_of_three_blocks():
    backbone = StagedNet(depths=(1, 1, 3))
    # the lone blocks of the first two stages are blocks too
    assert find_blocks(backbone) == ['stages.0.1', 'stages.1.1', 'stages.2.1',
                                     'stages.2.2', 'stages.2.3']
    ids = auto_layer_ids(backbone, SHAPE)
    assert layer_count(ids) == 6
    assert [ids[f'stages.{i}.0.bias'] for i in range(3)] == [1, 2, 3]
    assert ids['stages.2.3.norm.bias'] == 5


def test_stages_of_one_block_each():
    """Nothing repeats inside a stage: the stages are the blocks, which
    gives the ids of one block per stage all the same."""
    backbone = StagedNet(depths=(1, 1, 1))
    assert find_blocks(backbone) == ['stages.0', 'stages.1', 'stages.2']
    ids = auto_layer_ids(backbone, SHAPE)
    assert layer_count(ids) == 4
    assert [(ids[f'stages.{i}.0.weight'], ids[f'stages.{i}.1.conv.weight'])
            for i in range(3)] == [(1, 1), (2, 2), (3, 3)]


class ClassStage(nn.Module):
    """timm's stage layout: a class with a ``downsample`` and its blocks in
    ``blocks``, an ``nn.Sequential``."""

    def __init__(self, depth: int, cin: int, cout: int):
        super().__init__()
        self.downsample = ConvBN(cin, cout, 2, 2)
        self.blocks = nn.Sequential(*(ConvNormBlock(cout)
                                      for _ in range(depth)))

    def forward(self, x):
        return self.blocks(self.downsample(x))


class ClassStagedNet(nn.Module):
    """Three ``ClassStage`` (2, 3, 2 blocks) as attributes ``stage1``..
    ``stage3``: the stages repeat, one class, and so do the blocks inside
    them; the deeper, more numerous repetition wins."""

    def __init__(self):
        super().__init__()
        self.stem = ConvBN(3, 4, 3)
        self.stage1 = ClassStage(2, 4, 4)
        self.stage2 = ClassStage(3, 4, 8)
        self.stage3 = ClassStage(2, 8, 8)

    def forward(self, x):
        return self.stage3(self.stage2(self.stage1(self.stem(x))))


def test_blocks_inside_repeated_stage_classes():
    backbone = ClassStagedNet()
    assert find_blocks(backbone) == [
        f'stage{i}.blocks.{j}' for i, depth in ((1, 2), (2, 3), (3, 2))
        for j in range(depth)]
    ids = auto_layer_ids(backbone, SHAPE)
    # before: 4 ids (stem, 3 stages)
    assert layer_count(ids) == 8
    assert ids['stem.conv.weight'] == ids['stem.bn.bias'] == 0
    assert [ids[f'stage{i}.downsample.conv.weight'] for i in (1, 2, 3)] == \
        [1, 3, 6]
    assert ids['stage3.blocks.1.norm.weight'] == 7


class CSPLayer(nn.Module):
    """mmdet's ``CSPLayer``: main and short 1x1 convs, the blocks in
    ``blocks``, a final conv over both."""

    def __init__(self, width: int, depth: int):
        super().__init__()
        half = width // 2
        self.main_conv = ConvBN(width, half)
        self.short_conv = ConvBN(width, half)
        self.blocks = nn.Sequential(*(ConvNormBlock(half)
                                      for _ in range(depth)))
        self.final_conv = ConvBN(2 * half, width)

    def forward(self, x):
        short = self.short_conv(x)
        main = self.blocks(self.main_conv(x))
        return self.final_conv(torch.cat([main, short], 1))


class CSPNet(nn.Module):
    """mmdet's ``CSPDarknet`` layout: a stem, then stages ``stage1``..
    ``stage3``, each an ``nn.Sequential`` of a downsample conv and a
    ``CSPLayer`` of 2 blocks."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        for i in range(1, 4):
            self.add_module(f'stage{i}', nn.Sequential(
                ConvBN(width, width, 3, 2), CSPLayer(width, 2)))

    def forward(self, x):
        return self.stage3(self.stage2(self.stage1(self.stem(x))))


def test_blocks_inside_csp_stages():
    backbone = CSPNet()
    assert find_blocks(backbone) == [f'stage{i}.1.blocks.{j}'
                                     for i in (1, 2, 3) for j in (0, 1)]
    ids = auto_layer_ids(backbone, SHAPE)
    # before: 4 ids (stem, 3 stages)
    assert layer_count(ids) == 7
    assert ids['stem.weight'] == 0
    # downsample and the split convs with the stage's first block
    assert [ids[f'stage{i}.0.conv.weight'] for i in (1, 2, 3)] == [1, 3, 5]
    assert ids['stage2.1.main_conv.bn.weight'] == \
        ids['stage2.1.short_conv.conv.weight'] == 3
    assert ids['stage3.1.blocks.1.conv.weight'] == 6
    when = auto.param_first_calls(backbone, auto.first_calls(backbone, SHAPE))
    along = [ids[name] for name in sorted(ids, key=when.__getitem__)]
    assert along == sorted(along)


def test_blocks_of_conv_norm_pairs_inside_one_block_stages_stay_parts():
    """RegNet with one ``Bottleneck`` per stage: the stages are the blocks;
    the conv + norm pairs of each Bottleneck are its parts (attributes of a
    class), not blocks."""
    backbone = NumberedNet()
    backbone.s3 = Stage(1, 8, 16)
    assert find_blocks(backbone) == ['s1', 's2', 's3']
    assert layer_count(auto_layer_ids(backbone, SHAPE)) == 4


def test_pairs_in_stages_on_module_tables():
    seq = 'torch.nn.Sequential'
    # CSPNeXt (mmdet's names): a stem of three conv + norm pairs next to
    # stages whose weight sits in a CSPLayer: stem and stages stay blocks.
    cspnext = {'': node('CSPNeXt', 20),
               'stem': node(seq, 6, True)}
    for j in range(3):
        cspnext[f'stem.{j}'] = node('ConvModule', 2, element=True)
    for i in (1, 2):
        cspnext.update({
            f'stage{i}': node(seq, 7, True),
            f'stage{i}.0': node('ConvModule', 2, element=True),
            f'stage{i}.1': node('CSPLayer', 5, element=True)})
    assert blocks_of(cspnext) == ['stem', 'stage1', 'stage2']
    # MLP-Mixer (timm's names): two Mlp pairs inside each block of a
    # Sequential are its parts.
    mixer = {'': node('MlpMixer', 13), 'stem': node('PatchEmbed', 1),
             'blocks': node(seq, 12, True)}
    for i in range(2):
        mixer.update({
            f'blocks.{i}': node('MixerBlock', 6, element=True),
            f'blocks.{i}.mlp_tokens': node('Mlp', 2),
            f'blocks.{i}.mlp_channels': node('Mlp', 2)})
    assert blocks_of(mixer) == ['blocks.0', 'blocks.1']
    # Stages of different classes (Inception's Mixed_6a, Block8) are no
    # stages of one kind: their conv + norm pairs stay parts.
    inception = {'': node('Inception', 12)}
    for name, kind in (('mixed', 'Mixed'), ('block', 'Block8'),
                       ('pair', 'Mixed')):
        inception.update({name: node(kind, 4),
                          f'{name}.branch': node(seq, 4, True)})
        for j in range(2):
            inception[f'{name}.branch.{j}'] = node('ConvNormAct', 2,
                                                   element=True)
    assert blocks_of(inception) == ['mixed', 'block', 'pair']


def test_ids_from_order_staged_owners_go_with_the_first_block():
    from layerdecay_plugin.rules.auto import ids_from_order
    owners = [(['stem'], False), (['down'], False), (['b0'], True),
              (['b1'], True)]
    assert ids_from_order(owners) == {'stem': 0, 'down': 0, 'b0': 1,
                                      'b1': 2}
    assert ids_from_order(owners, staged=[1]) == {'stem': 0, 'down': 1,
                                                  'b0': 1, 'b1': 2}
    # nothing before them: the first stage's modules are the stem
    assert ids_from_order(owners[1:], staged=[0]) == {'down': 0, 'b0': 1,
                                                      'b1': 2}
