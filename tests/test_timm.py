"""timm backbones get layer decay from ``decay_rate`` alone: a timm model
used directly, its ``features_only`` wrapper, and mmpretrain's
``TIMMBackbone`` around either, in a detector that trains.

Over architectures of every kind timm has (convolutional, mobile,
hierarchical transformers, plain ViTs with class, register and
distillation tokens), each at its smallest size, ``pretrained=False``:

- parity: on the bare model, the partition of parameters into layers and
  their order equal ``timm.optim.param_groups_layer_decay``'s, except the
  documented fixes (parameters the matcher leaves out placed by the
  forward order, and those it attaches to the previous group where the
  forward order runs them elsewhere); a stage's transition or downsample
  and a position table added mid-network are where timm puts them;
- the ``features_only`` wrapper (renamed, head dropped) gets the bare
  model's layers for the parameters it keeps;
- every result passes ``tests/test_forward_order.py``'s check.
"""
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from conftest import ROOT, _register, our_groups
from layerdecay_plugin import LayerDecayConfigError
from layerdecay_plugin.backbones.auto import first_calls, param_first_calls
from layerdecay_plugin.rules.timm import (MATCH_PREV, compile_matcher,
                                          fill_from_order, is_top_level,
                                          running_max, timm_ids_in_order,
                                          timm_layer_ids)
from layerdecay_plugin.rules.timm_names import name_candidates, original_name
from layerdecay_plugin.backbones.timm_order import (dummy_shapes,
                                                    forward_order)
from test_forward_order import assert_forward_order, constructor_ids

timm = pytest.importorskip('timm')
from timm.models import group_parameters  # noqa: E402
from timm.models._features import _module_list  # noqa: E402
from timm.optim import param_groups_layer_decay  # noqa: E402

#: Smallest variant per family -> what it covers.
ARCHS = {
    'convnext_atto': 'conv, stages with downsample',
    'resnet10t': 'conv, deep stem',
    'regnetx_002': 'conv, blocks as numbered attributes (s1.b1)',
    'hgnetv2_b0': 'conv, downsample the matcher leaves out',
    'efficientnet_b0': 'mobile, its own *Features class',
    'mobilenetv3_small_050': 'mobile, its own *Features class',
    'mobilenetv4_conv_small_035': 'mobile',
    'mobilevit_xxs': 'mobile hybrid (ByobNet)',
    'efficientvit_b0': 'mobile',
    'edgenext_xx_small': 'mobile hybrid',
    'levit_128s': 'mobile transformer',
    'pvt_v2_b0': 'hierarchical transformer',
    'swin_tiny_patch4_window7_224': 'hierarchical transformer',
    'vit_tiny_patch16_224': 'plain ViT, class token',
    'vit_pwee_patch16_reg1_gap_256': 'plain ViT, register token, fc_norm',
    'deit_tiny_distilled_patch16_224': 'plain ViT, distillation token',
    'eva02_tiny_patch14_224': 'EVA-02',
    'cs3darknet_focus_s': "CSP, transition in the last block's group",
    'cspnext_tiny': "CSPNeXt, attention and final conv in that group",
    'densenet121': "DenseNet, transition in the last layer's group",
    'hrnet_w18_small': "HRNet, transition in the last block's group",
    'efficientvim_m1': 'downsample ending a stage, per-stage norms',
    'visformer_tiny': 'position tables added before stages 2 and 3',
}
#: Smaller inputs for models of a fixed input size (cheaper, same names).
SMALL = {
    'swin_tiny_patch4_window7_224': dict(img_size=64, window_size=2),
    'vit_tiny_patch16_224': dict(img_size=64),
    'vit_pwee_patch16_reg1_gap_256': dict(img_size=64),
    'deit_tiny_distilled_patch16_224': dict(img_size=64),
    'eva02_tiny_patch14_224': dict(img_size=56),
    'densenet121': dict(growth_rate=8, block_config=(2, 3, 2, 2)),
    'visformer_tiny': dict(img_size=64),
}
#: stage_wise (group_matcher(coarse=True)) is checked on these.
STAGE_WISE = ('convnext_atto', 'resnet10t', 'efficientnet_b0',
              'swin_tiny_patch4_window7_224', 'vit_tiny_patch16_224')


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """Tiny models run fastest on one thread; two threads spin against
    each other on a shared 2-core machine (a ConvNeXt-atto forward takes
    seconds instead of 50 ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def models():
    built = {}

    def get(arch, features_only=False):
        if (arch, features_only) not in built:
            built[arch, features_only] = timm.create_model(
                arch, pretrained=False, features_only=features_only,
                **SMALL.get(arch, {}))
        return built[arch, features_only]

    return get


@pytest.fixture(scope='module')
def our_ids(models):
    """(ids, num_layers) our constructor gives, once per case."""
    done = {}

    def get(arch, features_only=False, decay_type='layer_wise'):
        key = (arch, features_only, decay_type)
        if key not in done:
            done[key] = constructor_ids(models(arch, features_only),
                                        decay_type)
        return done[key]

    return get


def timm_ids(model):
    """timm's own layer id of every parameter (0 = shallowest)."""
    groups = param_groups_layer_decay(model, layer_decay=0.5)
    names = {id(p): n for n, p in model.named_parameters()}
    steps = {names[id(p)]: round(-math.log2(g['lr_scale']))
             for g in groups for p in g['params']}
    deepest = max(steps.values())
    return {n: deepest - k for n, k in steps.items()}


def assert_same_partition(ours, theirs, names):
    """Same layers in the same order: an increasing one-to-one map takes
    their ids to ours."""
    pairs = sorted({(theirs[n], ours[n]) for n in names})
    assert len({t for t, _ in pairs}) == len(pairs), 'split'
    assert len({o for _, o in pairs}) == len(pairs), 'merged'
    assert [o for _, o in pairs] == sorted(o for _, o in pairs), pairs


def documented_fixes(model):
    """Names whose id differs from timm's on purpose: names the matcher
    leaves out (forward order), and names it attaches to the previous
    group where that group runs after them (EfficientViM's per-stage
    ``norm.0``: timm puts it with the last block)."""
    keys = compile_matcher(model.group_matcher(coarse=False))
    theirs = timm_ids(model)
    when = param_first_calls(model, first_calls(model, working_shape(model)))
    anchored = [(when[n], theirs[n]) for n, _ in model.named_parameters()
                if n in when and not is_top_level(n)
                and keys(n) is not None and keys(n)[-1] != MATCH_PREV]

    def against_the_order(name):
        return any(t <= when[name] and i > theirs[name]
                   or t >= when[name] and i < theirs[name]
                   for t, i in anchored)

    return {n for n, _ in model.named_parameters()
            if keys(n) is None or keys(n)[-1] == MATCH_PREV
            and against_the_order(n)}


def own_parameters(model):
    """Names of the parameters of the timm model itself (``model.`` for
    ``FeatureGetterNet``): the forward-order check times them at the
    model's call, before the stem."""
    inner = getattr(model, 'model', None)
    if isinstance(inner, nn.Module):
        return [f'model.{n}' for n, _ in inner.named_parameters(
            recurse=False)]
    return [n for n, _ in model.named_parameters(recurse=False)]


def features_to_bare(features, bare):
    """Wrapper name -> bare model name, from timm's own renaming."""
    names = [n for n, _ in features.named_parameters()]
    if isinstance(getattr(features, 'model', None), nn.Module):
        return {n: n[len('model.'):] for n in names}  # FeatureGetterNet
    renamed = {new: old for new, old, _ in _module_list(
        bare, flatten_sequential=True)}
    return {n: '.'.join([renamed.get(n.split('.')[0], n.split('.')[0])] +
                        n.split('.')[1:]) for n in names}


def working_shape(model):
    """The first dummy input the model runs on, as the rules pick it."""
    for shape in dummy_shapes(model):
        try:
            first_calls(model, shape)
            return shape
        except LayerDecayConfigError:
            pass
    raise AssertionError('no dummy input runs')


def test_enough_families():
    assert len(ARCHS) >= 15


@pytest.mark.parametrize('arch', sorted(ARCHS))
def test_matcher_ids_equal_timms(arch, models):
    """Our reading of group_matcher is timm's group_with_matcher."""
    model = models(arch)
    for coarse in (False, True):
        matcher = model.group_matcher(coarse=coarse)
        keys = compile_matcher(matcher)
        names = [n for n, _ in model.named_parameters()]
        theirs = group_parameters(model, matcher, reverse=True)
        ours = timm_layer_ids({n: keys(n) for n in names})
        assert ours == {n: theirs[n] for n in ours}
        left_out = set(names) - set(ours)
        # timm puts what its matcher leaves out in one last group
        assert {theirs[n] for n in left_out} <= {max(theirs.values())}


@pytest.mark.parametrize('arch', sorted(ARCHS))
def test_parity_with_timm_on_the_bare_model(arch, models, our_ids):
    model = models(arch)
    ours, num_layers = our_ids(arch)
    theirs = timm_ids(model)
    fixed = documented_fixes(model)
    compared = [n for n in ours if n not in fixed]
    # HRNet's classification head, which the matcher leaves out, holds a
    # quarter of its tensors
    assert len(compared) > (0.75 if arch == 'hrnet_w18_small' else 0.9) * \
        len(ours)
    assert_same_partition(ours, theirs, compared)
    assert num_layers == max(ours.values())  # the backbone's own head too


@pytest.mark.parametrize('arch', sorted(ARCHS))
@pytest.mark.parametrize('features_only', [False, True],
                         ids=['bare', 'features_only'])
def test_ids_follow_forward_order(arch, features_only, models, our_ids):
    model = models(arch, features_only)
    shape = working_shape(model)
    types = ['layer_wise'] + (['stage_wise'] if arch in STAGE_WISE else [])
    for decay_type in types:
        ids, num_layers = our_ids(arch, features_only, decay_type)
        # timed at the model's call, which starts before the stem:
        # test_position_tables_stay_with_their_stage checks them
        later = [n for n in own_parameters(model) if ids.get(n, 0) > 0]
        assert_forward_order(model, ids, num_layers, shape, ignore=later)
        if later:  # timed by their first use, as the rules time them
            when, _ = forward_order(model, later)
            order = sorted((n for n in ids if ids[n] <= num_layers),
                           key=when.__getitem__)
            assert [ids[n] for n in order] == sorted(ids[n] for n in order)


@pytest.mark.parametrize('arch', sorted(ARCHS))
def test_features_only_keeps_the_bare_layers(arch, models, our_ids):
    bare, features = models(arch), models(arch, True)
    bare_ids, _ = our_ids(arch)
    ids, num_layers = our_ids(arch, True)
    to_bare = features_to_bare(features, bare)
    assert set(to_bare.values()) <= set(bare_ids)
    mapped = {n: bare_ids[to_bare[n]] for n in ids}
    assert_same_partition(ids, mapped, list(ids))
    assert max(ids.values()) == num_layers


@pytest.mark.parametrize('features_only', [False, True],
                         ids=['bare', 'features_only'])
def test_position_tables_stay_with_their_stage(features_only, models,
                                               our_ids):
    """Visformer adds ``pos_embed2`` after ``patch_embed2``, before
    ``stage2``: timm's group of that stage, not the stem (#21 item 6);
    ``pos_embed1`` enters with the embedding: the stem."""
    ids, _ = our_ids('visformer_tiny', features_only)
    pre = 'model.' if features_only else ''
    assert ids[pre + 'pos_embed1'] == 0
    for k in (2, 3):
        assert ids[pre + f'pos_embed{k}'] == ids[
            pre + f'patch_embed{k}.proj.weight'] == ids[
            pre + f'stage{k}.0.norm2.weight'] > ids[
            pre + f'stage{k - 1}.0.norm2.weight']


def test_transitions_stay_with_the_last_block(models, our_ids):
    """timm attaches a stage's transition to the stage's last block, and it
    runs there: kept, not merged with the next stage's first block."""
    ids, _ = our_ids('cs3darknet_focus_s')
    assert ids['stages.0.conv_transition.conv.weight'] == ids[
        'stages.0.blocks.0.conv1.conv.weight'] < ids[
        'stages.1.conv_down.conv.weight']
    ids, _ = our_ids('densenet121')
    assert ids['features.transition1.conv.weight'] == ids[
        'features.denseblock1.denselayer2.conv1.weight'] < ids[
        'features.denseblock2.denselayer1.conv1.weight']
    # EfficientViM's norm.0 (stage 0's output, for the head): timm puts it
    # with the last block, the forward order runs it after stage 0
    ids, _ = our_ids('efficientvim_m1')
    assert ids['norm.0.weight'] == ids['stages.0.downsample.dwconv1.conv.'
                                       'weight'] < ids['stages.1.blocks.0.'
                                                       'alpha']


def test_a_matcher_that_does_not_describe_the_model_gives_forward_order():
    """timm 1.0.29's LeViT and RepViT matchers named ViT modules: one or
    two groups for the whole model. Every id then comes from the forward
    order, and stage_wise is refused."""
    model = timm.create_model('resnet10t', pretrained=False)
    model.group_matcher = lambda coarse=False: dict(
        stem=r'^cls_token|pos_embed|patch_embed',
        blocks=[(r'^blocks\.(\d+)', None), (r'^norm', (99999, ))])
    ids, num_layers = constructor_ids(model, 'layer_wise')
    assert num_layers == 4 and ids['layer4.0.conv1.weight'] == 4
    assert_forward_order(model, ids, num_layers, (1, 3, 64, 64))
    with pytest.raises(LayerDecayConfigError, match='knows no stages'):
        constructor_ids(model, 'stage_wise')


def test_register_token_missing_from_the_matcher_goes_to_the_stem():
    """timm issue 2712: reg_token was missing from ViT's group_matcher and
    got the deepest layer's lr (and weight decay)."""
    vit = timm.create_model('vit_pwee_patch16_reg1_gap_256', pretrained=False)
    vit.group_matcher = lambda coarse=False: dict(  # timm before the fix
        stem=r'^cls_token|pos_embed|patch_embed',
        blocks=[(r'^blocks\.(\d+)', None), (r'^norm', (99999, ))])
    assert timm_ids(vit)['reg_token'] == max(timm_ids(vit).values())
    groups = our_groups(nn.ModuleDict(dict(backbone=vit)),
                        dict(decay_rate=0.5))
    group = next(g for g in groups if 'backbone.reg_token' in g['param_names'])
    assert group['group_name'] == 'layer_0_no_decay'
    assert group['weight_decay'] == 0


def test_frozen_parameters_change_nothing():
    """timm issue 2691: frozen parameters shift timm's lr_scale."""
    model = timm.create_model('convnext_atto', pretrained=False)
    wrapped = nn.ModuleDict(dict(backbone=model))

    def scales():
        return {n: g['lr_scale'] for g in our_groups(wrapped, dict(
            decay_rate=0.5)) for n in g['param_names']}

    before = scales()
    for name, param in model.named_parameters():
        param.requires_grad = not name.startswith(('stem', 'stages.0'))
    after = scales()
    assert after == {n: before[n] for n in after}
    assert len(after) < len(before)


class _Infixed(nn.Module):
    """Stands for FSDP around a bare timm model: the names gain
    ``_fsdp_wrapped_module.`` and attributes (``group_matcher``) are
    forwarded, so the model is its own matcher's reference."""

    def __init__(self, module):
        super().__init__()
        self._fsdp_wrapped_module = module

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._fsdp_wrapped_module, name)

    def forward(self, *args):
        return self._fsdp_wrapped_module(*args)


def test_a_wrapped_bare_model_keeps_its_matcher_ids():
    """A bare timm model under FSDP: its own names carry the wrapper's
    infix, and the matcher's ids must still reach every block (they fell
    back to the forward order for all, issue #22's gpu_check)."""
    model = timm.create_model('convnext_atto', pretrained=False)
    bare, _ = constructor_ids(model, 'layer_wise')
    wrapped, _ = constructor_ids(_Infixed(model), 'layer_wise')
    assert {n.replace('_fsdp_wrapped_module.', ''): i
            for n, i in wrapped.items()} == bare


def test_norm_pre_runs_first_so_it_is_not_with_the_last_block():
    """timm 1.0.29's ViT matcher put a CLIP-style ViT's `norm_pre` with the
    last block (`^norm`, previous group), though it runs before the first
    (fixed in 1.0.31): the forward order places it."""
    vit = timm.create_model('vit_base_patch16_clip_224', pretrained=False,
                            embed_dim=32, depth=2, num_heads=2, img_size=32)
    vit.group_matcher = lambda coarse=False: dict(  # timm 1.0.29's
        stem=r'^cls_token|reg_token|pos_embed|patch_embed',
        blocks=[(r'^blocks\.(\d+)', None), (r'^norm', (99999, ))])
    theirs = timm_ids(vit)
    assert theirs['norm_pre.weight'] == theirs['blocks.1.norm1.weight']
    ids, num_layers = constructor_ids(vit, 'layer_wise')
    assert ids['norm_pre.weight'] <= ids['blocks.0.norm1.weight'] == 1
    assert ids['norm.weight'] == num_layers == 2
    assert_forward_order(vit, ids, num_layers, (1, 3, 32, 32))


def test_timm_backbone_of_mmpretrain(models, our_ids):
    """mmpretrain.TIMMBackbone, features_only False and True: the ids of
    the timm model inside, under `timm_model.`."""
    _register()
    from mmdet.registry import MODELS
    for features_only in (False, True):
        backbone = MODELS.build(dict(  # as a detector config builds it
            type='mmpretrain.TIMMBackbone', model_name='convnext_atto',
            features_only=features_only, pretrained=False))
        ids, num_layers = constructor_ids(backbone, 'layer_wise')
        assert num_layers == 12
        inner, _ = our_ids('convnext_atto', features_only)
        assert {n[len('timm_model.'):]: i for n, i in ids.items()} == {
            n: inner[n] for n in (n[len('timm_model.'):] for n in ids)}
        assert_forward_order(backbone, ids, num_layers, (1, 3, 64, 64))


def test_cannot_map_puts_the_fix_first():
    model = nn.Module()
    model.backbone = nn.Sequential(nn.Conv2d(3, 4, 1))
    with pytest.raises(LayerDecayConfigError) as error:
        our_groups(model, dict(decay_rate=0.9))
    msg = str(error.value)
    fixes = [msg.index(s) for s in ("rules='auto'", 'rules=dict(layer_wise',
                                    'register_backbone_rules')]
    assert max(fixes) < msg.index('Known without that')
    assert 'timm models' in msg and 'mmdet: ' in msg
    assert len(msg) < 1400  # it lists every class with rules (~50)


def test_timm_is_not_imported_for_other_backbones():
    """A backbone of another kind, known or not, does not import timm
    (torch + mmengine only, as the light tier)."""
    code = (
        'import sys\n'
        'import torch.nn as nn\n'
        'import layerdecay_plugin\n'
        'from light.toys import auto_model, layer_decay_groups\n'
        'optimizer = dict(type="AdamW", lr=1e-4, weight_decay=0.05)\n'
        'auto = dict(type="auto", input_shape=(1, 3, 8, 8))\n'
        'layer_decay_groups(auto_model(), dict(decay_rate=0.9, rules=auto), '
        'optimizer)\n'
        'model = nn.Module()\n'
        'model.backbone = nn.Conv2d(3, 4, 1)\n'
        'try:\n'
        '    layer_decay_groups(model, dict(decay_rate=0.9), optimizer)\n'
        'except layerdecay_plugin.LayerDecayConfigError:\n'
        '    pass\n'
        'else:\n'
        '    raise AssertionError("an unknown backbone was mapped")\n'
        'assert "timm" not in sys.modules, "timm imported"\n')
    subprocess.run([sys.executable, '-c', code], check=True,
                   cwd=ROOT / 'tests', timeout=300,
                   env=dict(os.environ, OMP_NUM_THREADS='1'))


# pure pieces on toys


def test_name_candidates_undo_feature_flattening():
    known = {'stages.0.blocks.1.w', 'stem.0.w', 'conv_stem.w', 'norm_pre.w',
             'body.conv1.w'}
    assert original_name('stages_0.blocks.1.w', known) == 'stages.0.blocks.1.w'
    assert original_name('stem_0.w', known) == 'stem.0.w'
    assert original_name('conv_stem.w', known) == 'conv_stem.w'
    assert original_name('norm_pre.w', known) == 'norm_pre.w'
    assert original_name('body_conv1.w', known) == 'body.conv1.w'
    assert original_name('model.stem.0.w', known) == 'stem.0.w'
    assert original_name('head_fc.w', known) is None
    assert list(name_candidates('a_b_1.w'))[:2] == ['a_b_1.w', 'a_b.1.w']


def test_fill_and_running_max():
    anchored = {'stem': 0, 'b0': 1, 'b1': 2, 'late': 1}
    when = {'stem': 0, 'pre': 1, 'b0': 2, 'b1': 3, 'late': 4, 'final': 5}
    raised, names = running_max(anchored, when)
    assert raised == {'stem': 0, 'b0': 1, 'b1': 2, 'late': 2}
    assert names == ['late']
    placed = fill_from_order(raised, ['pre', 'final', 'unused'], when)
    assert placed == {'pre': 1, 'final': 2}  # 'unused' never ran: head


def test_timm_ids_in_order_on_a_toy():
    """Every fix on one toy: a transition keeps timm's previous group, a
    norm_pre-like name joins the group before it in the forward order, a
    token at the stem gets 0, a position table added mid-network keeps
    timm's id, a token timm puts at the stem but first used after a block
    joins the layer that takes it, the head follows the last block."""
    prev = MATCH_PREV
    keys = {'stem': (0., ), 'cls': (0., ), 'pre': (2., prev),
            'b0': (1., 0.), 'trans': (1., 0., prev), 'pos1': (1., 1.),
            'b1': (1., 1.), 'tok': (0., ), 'b2': (1., 2.),
            'norm': (2., prev), 'head': None}
    when = {n: t for t, n in enumerate(keys)}
    ids, moved = timm_ids_in_order(keys, when, own=['cls', 'pos1', 'tok'])
    assert ids == dict(stem=0, cls=0, pre=0, b0=1, trans=1, pos1=2, b1=2,
                       tok=3, b2=3, norm=3, head=3)
    assert moved == dict(raised=[], placed=['tok', 'head'], mid=['pos1',
                         'tok'], prev=['pre'])
    # registration order only (no dry run): tokens at the stem
    ids, moved = timm_ids_in_order(keys, when, timed=False,
                                   own=['cls', 'pos1', 'tok'])
    assert ids['pos1'] == ids['tok'] == 0 and moved['mid'] == []


# the shipped config: a detector with a timm backbone trains


CONFIG = ROOT / 'configs' / \
    'mask-rcnn_timm-convnext-atto_fpn_layerdecay_shapes-cpu.py'


def test_timm_backbone_detector_trains(tmp_path):
    from test_examples import layer_ids, shrunk, train
    cfg = shrunk(CONFIG, tmp_path)
    cfg.default_hooks.checkpoint = None  # saving is tested with Swin
    runner = train(cfg)
    groups = runner.optim_wrapper.optimizer.param_groups
    # timm's ConvNeXt-atto: stem 0, 12 blocks, num_layers 12 inferred
    assert max(layer_ids(runner)) == 13
    for group, layer_id in zip(groups, layer_ids(runner)):
        assert group['initial_lr'] == pytest.approx(
            2e-4 * 0.9**(13 - layer_id))
    by_name = {n: i for g, i in zip(groups, layer_ids(runner))
               for n in g['param_names']}
    prefix = 'backbone.timm_model.'
    assert by_name[prefix + 'stem_0.weight'] == 0
    assert by_name[prefix + 'stages_0.blocks.0.conv_dw.weight'] == 1
    assert by_name[prefix + 'stages_3.blocks.1.mlp.fc2.weight'] == 12
    assert by_name['neck.lateral_convs.0.conv.weight'] == 13


def test_inspect_cli_accepts_the_config(capsys):
    from layerdecay_plugin.cli import main
    assert main([str(CONFIG)]) == 0
    out = capsys.readouterr().out
    assert "timm TIMMBackbone of FeatureListNet ('convnext_atto')" in out
    assert '| layer_13_decay ' in out
