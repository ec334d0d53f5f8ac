"""Light tier: ``paramwise_cfg.components``, lr factors of modules that never
touch weight decay (issue #23 item 4): the key's validation, the pure
functions, the constructor on a toy detector composed with layer decay,
``custom_keys`` and mmengine's multipliers, the build-time errors, and
resume; the dict form ``dict(lr_mult=..., decay_rate=...)`` that decays a
component's lr across its ``layers.<i>``. Torch and mmengine only."""
import copy
import logging
import math

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MMLogger

from layerdecay_plugin import LayerDecayConfigError
from layerdecay_plugin.checks.components import (apply_components,
                                                 check_components,
                                                 component_factors,
                                                 component_of,
                                                 components_note, layer_of)
from layerdecay_plugin.config import parse_components, parse_paramwise_cfg
from layerdecay_plugin.config.components import DecayedComponent
from layerdecay_plugin.registry import OWN_KEYS
from light.test_light_resume import build as build_paramwise
from light.toys import ToyConvNeXt, ToyDetector


# ------------------------------------------------------------- the key


def test_valid_components_are_floats_in_the_configs_order():
    assert parse_components({'neck': 1, 'bbox_head': 2.5, 'decoder': .5}) \
        == {'neck': 1., 'bbox_head': 2.5, 'decoder': .5}
    assert list(parse_components({'b': 1, 'a': 2})) == ['b', 'a']
    assert parse_components({}) == {}
    cfg = parse_paramwise_cfg(dict(decay_rate=0.9,
                                   components={'encoder.layers.0': 3}))
    assert cfg.components == {'encoder.layers.0': 3.}
    assert parse_paramwise_cfg(dict(decay_rate=0.9)).components == {}
    # a key only this plugin reads: under another constructor's name it
    # is refused by name (registry.shared_name_problem)
    assert 'components' in OWN_KEYS


@pytest.mark.parametrize('value,message', [
    (['neck', 2.], r"components=\['neck', 2.0\] is invalid: give a dict of "
     'module path'),
    ({1: 2.}, r'has the key 1 \(int, value 2.0\): keys are module paths'),
    ({'bbox_head.*': 2.}, r"components\['bbox_head.\*'\]: .* not a "
     'pattern; .* use custom_keys'),
    ({'^decoder': 2.}, 'not a pattern'),
    ({'': 2.}, r"components\[''\] names the whole model: .* optimizer.lr"),
    ({'neck..conv': 2.}, r"components\['neck..conv'\] has an empty name "
     'part'),
    ({'.neck': 2.}, 'has an empty name part'),
    ({'neck': True}, r"components\['neck'\]=True is invalid: a factor is "
     r'a number > 0 .*\(got bool\)'),
    ({'neck': '2'}, r"components\['neck'\]='2' is invalid: .*\(got str\)"),
    ({'neck': None}, r'\(got NoneType\)'),
    ({'neck': math.inf}, 'must be a finite number > 0'),
    ({'neck': math.nan}, 'must be a finite number > 0'),
    ({'neck': 0}, r"components\['neck'\]=0 is invalid: a factor must be "
     r'> 0. To stop training a module, freeze it \(requires_grad=False, '
     'a frozen_stages .*freeze_below .* custom_keys entry with '
     'lr_mult=0'),
    ({'neck': -1.}, r"components\['neck'\]=-1.0 is invalid"),
])
def test_misuse_of_the_key_names_entry_value_and_fix(value, message):
    with pytest.raises(LayerDecayConfigError, match=message):
        parse_paramwise_cfg(dict(decay_rate=0.9, components=value))


def test_a_misspelt_key_is_suggested():
    with pytest.raises(LayerDecayConfigError,
                       match="did you mean 'components'"):
        parse_paramwise_cfg(dict(decay_rate=0.9, component={'neck': 2.}))


# ------------------------------------------------------ the pure functions


def test_the_longest_path_at_a_dot_boundary_wins():
    paths = ['bbox_head', 'bbox_head.cls_branches', 'neck']
    assert component_of('bbox_head.cls_branches.0.weight', paths) == \
        'bbox_head.cls_branches'
    assert component_of('bbox_head.reg_branches.0.weight', paths) == \
        'bbox_head'
    assert component_of('necks.0.weight', paths) is None  # not 'neck'
    assert component_of('neck', ['neck']) == 'neck'  # a parameter's name
    assert component_of('backbone.x', paths) is None


def test_factors_scale_the_lr_and_never_the_weight_decay():
    options = {1: dict(lr=0.1, weight_decay=0.5, lr_mult=0.1),
               2: dict(weight_decay=0.)}
    before = copy.deepcopy(options)
    params = [('backbone.w', 1), ('head.w', 2), ('head.cls.w', 3),
              ('neck.w', 4), ('other.w', 5)]
    out = apply_components(options, params, {
        'backbone': 0.5, 'head': 2., 'head.cls': 3., 'neck': 1.}, 1.)
    assert out == {1: dict(lr=0.05, weight_decay=0.5, lr_mult=0.1),
                   2: dict(lr=2., weight_decay=0.), 3: dict(lr=3.)}
    assert options == before  # not changed in place
    assert apply_components(options, params, {}, 1.) == before


NAMES = ['backbone.stem.weight', 'bbox_head.transformer.decoder.norm.weight',
         'bbox_head.cls.weight', 'neck.conv.weight', 'neck.conv.bias']
MODULES = ['', 'backbone', 'backbone.stem', 'bbox_head',
           'bbox_head.transformer', 'bbox_head.transformer.decoder',
           'bbox_head.transformer.decoder.norm', 'bbox_head.cls',
           'bbox_head.loss_cls', 'neck', 'neck.conv']


@pytest.mark.parametrize('components,message', [
    ({'nek': 2.}, r"components\['nek'\]=2 matches no module or parameter "
     "of the model. Did you mean 'neck'"),
    ({'decoder': .5}, r"components\['decoder'\]=0.5 matches no module or "
     "parameter of the model. The model has it at "
     "'bbox_head.transformer.decoder'"),
    ({'module.neck': 2.}, "Did you mean 'neck'.* without a wrapper's "
     "'module.' prefix"),
    ({'zzz_qqq': 2.}, 'Its top-level modules are backbone, bbox_head, '
     'neck'),
    ({'bbox_head.loss_cls': 2.}, "the model has the module "
     "'bbox_head.loss_cls', but it holds no parameter"),
    ({'backbone': 2.}, r"components\['backbone'\]=2 matches only "
     r"parameters that are not trained \(1, e.g. 'backbone.stem.weight': "
     'requires_grad=False'),
    ({'neck': 2., 'neck.conv': 1.}, r"components\['neck'\]=2 gives its "
     'factor to no parameter: each of the 2 it covers lies under a longer '
     r"path of components \('neck.conv'; the longest path wins\)"),
])
def test_a_component_that_gives_its_factor_to_nothing(components, message):
    trained = [n for n in NAMES if not n.startswith('backbone')]
    with pytest.raises(LayerDecayConfigError, match=message):
        check_components(components, NAMES, trained, MODULES)


def test_components_that_match_are_silent_and_noted():
    components = {'bbox_head': 2., 'bbox_head.transformer.decoder': .5,
                  'neck.conv.bias': 3., 'backbone': 1.}
    check_components(components, NAMES, NAMES, MODULES)
    note = components_note(components, NAMES)
    assert "'bbox_head' x2 (1 tensors), 'bbox_head.transformer.decoder' " \
        "x0.5 (1 tensors), 'neck.conv.bias' x3 (1 tensors), 'backbone' x1 " \
        '(1 tensors)' in note
    assert 'not the weight decay' in note and 'longest path' in note


# --------------------------------------------------- the constructor, live


def build(model=None, optimizer=None, **paramwise):
    return build_paramwise(paramwise, model, optimizer)


def per_param(wrapper) -> dict:
    """name -> (lr, weight decay, lr_scale, group's extra lr_mult)."""
    return {n: (g['lr'], g['weight_decay'], g['lr_scale'], g.get('lr_mult'))
            for g in wrapper.optimizer.param_groups
            for n in g['param_names']}


COMPOSED = dict(decay_rate=0.8, min_lr_scale=0.3, bias_lr_mult=3.,
                custom_keys={'stages.2.0': dict(lr_mult=0.1,
                                                decay_mult=0.5),
                             'head.1': dict(lr_mult=0.2, decay_mult=1.)})
FACTORS = {'backbone.stages.2': 4., 'backbone.stages.2.1': 0.25,
           'backbone.downsample_layers.0': 5., 'head': 2., 'neck': 1.}


def factor_of(name: str) -> float:
    path = component_of(name, FACTORS)
    return FACTORS[path] if path else 1.


def test_lr_is_the_product_and_weight_decay_is_unchanged():
    """lr = base lr x (custom_keys lr_mult or bias_lr_mult) x component
    factor x layer scale (min_lr_scale floored); weight decay exactly the
    run without components, custom_keys' side effect included."""
    without = per_param(build(**COMPOSED))
    with_components = per_param(build(**COMPOSED, components=FACTORS))
    assert sorted(with_components) == sorted(without)
    changed = 0
    for name, (lr, wd, scale, lr_mult) in with_components.items():
        old_lr, old_wd, old_scale, _ = without[name]
        assert (wd, scale) == (old_wd, old_scale), name
        assert lr == pytest.approx(old_lr * factor_of(name), rel=1e-12)
        changed += factor_of(name) != 1
    assert changed > 10
    lr, wd, scale, lr_mult = with_components[
        'backbone.stages.2.0.pointwise_conv1.bias']  # every rule at once
    assert (lr_mult, wd) == (0.1, 0.05 * 0.5)
    assert lr == pytest.approx(1e-3 * 0.1 * 4 * scale, rel=1e-12)
    assert scale == pytest.approx(max(0.8**3, 0.3))
    lr, _, scale, _ = with_components[
        'backbone.stages.2.1.pointwise_conv1.bias']  # bias_lr_mult too
    assert lr == pytest.approx(1e-3 * 3. * 0.25 * scale, rel=1e-12)
    # layer 0: scale 0.8 ** 6 raised to min_lr_scale, then the factor
    lr, _, scale, _ = with_components['backbone.downsample_layers.0.1.weight']
    assert (scale, lr) == (0.3, pytest.approx(1e-3 * 0.3 * 5, rel=1e-12))
    lr, wd, scale, lr_mult = with_components['head.1.weight']
    assert (lr, wd, scale, lr_mult) == (pytest.approx(1e-3 * 0.2 * 2), 0.05,
                                        1., 0.2)
    # neck: factor 1 splits nothing
    names = [g['group_name'] for g in build(
        decay_rate=0.8, components={'neck': 1.}).optimizer.param_groups]
    assert names == [g['group_name'] for g in build(
        decay_rate=0.8).optimizer.param_groups]


def test_group_names_and_the_log_line_show_the_factor():
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        wrapper = build(decay_rate=0.8, components={'head': 2.,
                                                    'neck.0': 0.5})
    finally:
        logger.removeHandler(handler)
    names = {g['group_name'] for g in wrapper.optimizer.param_groups}
    assert {'layer_6_decay_lr_x2', 'layer_6_no_decay_lr_x2',
            'layer_6_decay_lr_x0.5', 'layer_6_no_decay_lr_x0.5',
            'layer_6_no_decay'} <= names
    text = '\n'.join(r.getMessage() for r in records)
    assert "paramwise_cfg.components multiply the lr (not the weight " \
        "decay) of: 'head' x2 (4 tensors), 'neck.0' x0.5 (2 tensors)" in text


def test_freeze_below_and_frozen_parameters():
    """A component does not change what freeze_below freezes (the layer
    scale decides), and one covering only frozen parameters is an error
    at build time."""
    plain = build(decay_rate=0.5, freeze_below=0.1)
    scaled = build(decay_rate=0.5, freeze_below=0.1,
                   components={'backbone': 100.})
    assert set(per_param(plain)) == set(per_param(scaled))
    with pytest.raises(LayerDecayConfigError,
                       match=r"components\['backbone.downsample_layers.0'\]"
                       '=2 matches only parameters that are not trained'):
        build(decay_rate=0.5, freeze_below=0.1,
              components={'backbone.downsample_layers.0': 2.})
    model = ToyDetector(ToyConvNeXt())
    model.neck.requires_grad_(False)
    with pytest.raises(LayerDecayConfigError,
                       match=r"components\['neck'\]=2 matches only "
                       r"parameters that are not trained \(4, e\.g\. "
                       "'neck.0.weight'"):
        build(model, decay_rate=0.8, components={'neck': 2.})


def test_a_typo_is_an_error_at_build_time():
    with pytest.raises(LayerDecayConfigError,
                       match=r"components\['heads'\]=2 matches no module or "
                       "parameter of the model. Did you mean 'head'"):
        build(decay_rate=0.8, components={'heads': 2.})


# ------------------------------------------------------------- resume


def trained_state(wrapper) -> dict:
    params = [p for g in wrapper.optimizer.param_groups for p in g['params']]
    sum(p.sum() for p in params).backward()
    wrapper.step()
    return copy.deepcopy(wrapper.state_dict())


@pytest.mark.parametrize('changed', [{'head': 3.}, {'head': 2.000001},
                                     {'head': 2., 'neck': 0.5}, None])
def test_a_changed_factor_is_refused_on_resume(changed):
    saved = trained_state(build(decay_rate=0.8, components={'head': 2.}))
    # unchanged: loads
    build(decay_rate=0.8, components={'head': 2.}).load_state_dict(
        copy.deepcopy(saved))
    paramwise = dict(decay_rate=0.8)
    if changed is not None:
        paramwise['components'] = changed
    with pytest.raises(LayerDecayConfigError) as error:
        build(**paramwise).load_state_dict(copy.deepcopy(saved))
    shown = 'not set' if changed is None else repr(changed)
    assert f"paramwise_cfg.components: {{'head': 2.0}} -> {shown}" \
        in str(error.value).replace("{'head': 2}", "{'head': 2.0}")


# ------------------------------------------ decay across a component's layers


def test_the_dict_form_is_parsed():
    assert parse_components({
        'decoder': dict(lr_mult=2, decay_rate=0.9), 'neck': dict(lr_mult=3),
        'head': {}, 'x': dict(decay_rate=1)}) == {
            'decoder': DecayedComponent(2., .9), 'neck': 3., 'head': 1.,
            'x': DecayedComponent(1., 1.)}
    assert type(parse_components({'neck': dict(lr_mult=3)})['neck']) is float
    cfg = parse_paramwise_cfg(dict(decay_rate=0.9, components={
        'decoder': dict(decay_rate=0.8, lr_mult=0.5)}))
    assert cfg.components == {'decoder': DecayedComponent(0.5, 0.8)}


@pytest.mark.parametrize('value,message', [
    (dict(lr_mult=2., decay=0.9), r"components\['decoder'\] has the unknown "
     r"key 'decay' \(value 0.9\); did you mean 'decay_rate'\? a component "
     'given as a dict takes lr_mult'),
    (dict(lr_mul=2.), "unknown key 'lr_mul'.*did you mean 'lr_mult'"),
    (dict(zzz=2.), r"unknown key 'zzz' \(value 2.0\); a component"),
    (dict(decay_rate=0), r"components\['decoder'\].decay_rate=0 is "
     'invalid: it must be a finite number > 0'),
    (dict(decay_rate=-0.5), r"\.decay_rate=-0.5 is invalid"),
    (dict(decay_rate=math.inf), r"\.decay_rate=inf is invalid"),
    (dict(decay_rate='0.9'), r"\.decay_rate='0.9' is invalid"),
    (dict(decay_rate=True), r"\.decay_rate=True is invalid"),
    (dict(lr_mult=0, decay_rate=0.9), r"components\['decoder'\].lr_mult=0 "
     'is invalid: a factor must be > 0'),
    (dict(lr_mult=None), r"\.lr_mult=None is invalid: .*\(got NoneType\)"),
])
def test_misuse_of_the_dict_form(value, message):
    with pytest.raises(LayerDecayConfigError, match=message):
        parse_paramwise_cfg(dict(decay_rate=0.9,
                                 components={'decoder': value}))


LAYERED = ['decoder.layers.0.w', 'decoder.layers.0.b', 'decoder.layers.1.w',
           'decoder.layers.2.w', 'decoder.norm.weight',
           'decoder.ref_point_head.layers.0.weight', 'neck.w']


def test_layer_factors_decay_towards_the_first_layer():
    assert [layer_of(n, 'decoder') for n in LAYERED] == \
        [0, 0, 1, 2, None, None, None]
    assert layer_of('decoder.layers.12', 'decoder') == 12
    assert layer_of('decoder.layers.x.w', 'decoder') is None
    assert layer_of('decoders.layers.0.w', 'decoder') is None
    decayed = DecayedComponent(2., 0.5)
    assert component_factors({'decoder': decayed, 'neck': 3.}, LAYERED) == {
        'decoder.layers.0.w': 0.5, 'decoder.layers.0.b': 0.5,
        'decoder.layers.1.w': 1., 'decoder.layers.2.w': 2.,
        'decoder.norm.weight': 2., 'neck.w': 3.,
        'decoder.ref_point_head.layers.0.weight': 2.}
    # a longer path wins and leaves L alone; L counts the trained layers
    assert component_factors({'decoder': decayed, 'decoder.layers.2': 5.},
                             LAYERED)['decoder.layers.0.w'] == 0.5
    assert component_factors({'decoder': decayed},
                             LAYERED[2:])['decoder.layers.1.w'] == 1.
    assert component_factors({'decoder': decayed}, LAYERED[:3]) == {
        'decoder.layers.0.w': 1., 'decoder.layers.0.b': 1.,
        'decoder.layers.1.w': 2.}
    # given all names (frozen layers too), L counts every layer
    assert component_factors({'decoder': decayed}, LAYERED[:3],
                             LAYERED)['decoder.layers.1.w'] == 1.
    options = {1: dict(lr=0.1, weight_decay=0.5), 2: dict(weight_decay=0.)}
    params = [('decoder.layers.0.w', 1), ('decoder.layers.1.w', 2),
              ('decoder.layers.2.w', 3), ('decoder.norm.weight', 4)]
    assert apply_components(options, params, {'decoder': decayed}, 1.) == {
        1: dict(lr=0.1 * 0.5, weight_decay=0.5),
        2: dict(weight_decay=0.), 3: dict(lr=2.), 4: dict(lr=2.)}


@pytest.mark.parametrize('path,message', [
    ('decoder.norm', r"components\['decoder.norm'\]=dict\(lr_mult=2, "
     r"decay_rate=0.5\): decay_rate decays the lr across "
     r"'decoder.norm.layers.<i>', but no trained parameter lies in such a "
     r"layer: under it are weight \(e.g. 'decoder.norm.weight'\)\. Give the "
     'decay_rate to the module whose layers'),
    ('decoder.layers', r"under it are 0, 1, 2 \(e.g. 'decoder.layers.0.w'\)"
     r"\. The model has layers.<i> under 'decoder'\."),
    ('bbox_head', "under it are transformer .* The model has layers.<i> "
     "under 'bbox_head.transformer.decoder'"),
    ('neck.w', r"no trained parameter lies in such a layer: 'neck.w' is a "
     'parameter'),
])
def test_a_decay_rate_without_layers_is_an_error(path, message):
    with pytest.raises(LayerDecayConfigError, match=message):
        names = LAYERED + ['bbox_head.transformer.decoder.layers.0.w']
        check_components({path: DecayedComponent(2., 0.5)}, names, names, [])


def test_the_log_line_shows_the_layers_and_their_factors():
    note = components_note({'decoder': DecayedComponent(2., 0.5),
                            'neck': 3.}, LAYERED)
    assert "of: 'decoder' x2, layers 0-2 decayed by 0.5 (x0.5-x2) " \
        "(6 tensors), 'neck' x3 (1 tensors);" in note
    assert "'decoder' x1, layers 1-2 decayed by 0.9 (x0.9-x1)" in \
        components_note({'decoder': DecayedComponent(1., 0.9)}, LAYERED[2:])


class ToyDecoder(nn.Module):
    """mmdet's DETR decoders' names: ``layers.<i>`` and a ``norm``."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))
        self.norm = nn.LayerNorm(4)


def decoder_model():
    torch.manual_seed(0)
    model = ToyDetector(ToyConvNeXt())
    model.decoder = ToyDecoder()
    return model


DECAYED = dict(decay_rate=0.8,
               custom_keys={'decoder.layers.1': dict(lr_mult=0.1,
                                                    decay_mult=1.)})


def test_the_constructor_decays_the_decoders_lr_only():
    """lr = base lr x custom_keys lr_mult x lr_mult x decay_rate ** (2 - i);
    weight decay and layer scales exactly the run without components."""
    without = per_param(build(decoder_model(), **DECAYED))
    decayed = per_param(build(decoder_model(), **DECAYED, components={
        'decoder': dict(lr_mult=2., decay_rate=0.5), 'head': 3.}))
    assert sorted(decayed) == sorted(without)
    expected = {'decoder.layers.0': 2 * 0.25, 'decoder.layers.1': 2 * 0.5,
                'decoder.layers.2': 2., 'decoder.norm': 2., 'head': 3.}
    for name, (lr, wd, scale, lr_mult) in decayed.items():
        assert (wd, scale) == without[name][1:3], name
        factor = next((f for p, f in expected.items()
                       if component_of(name, [p])), 1.)
        assert lr == pytest.approx(without[name][0] * factor, rel=1e-12)
    assert decayed['decoder.layers.0.weight'][0] == pytest.approx(1e-3 * .5)
    assert decayed['decoder.layers.1.weight'][:2] == (
        pytest.approx(1e-3 * 0.1 * 1.), 0.05)
    assert decayed['decoder.layers.2.bias'][:2] == (pytest.approx(2e-3), 0.)
    assert decayed['decoder.norm.weight'][:2] == (pytest.approx(2e-3), 0.)
    # a frozen last layer still counts: layer 1 keeps its factor
    model = decoder_model()
    model.decoder.layers[2].requires_grad_(False)
    frozen = per_param(build(model, **DECAYED, components={
        'decoder': dict(lr_mult=2., decay_rate=0.5)}))
    assert 'decoder.layers.2.weight' not in frozen
    assert frozen['decoder.layers.1.weight'][0] == \
        pytest.approx(without['decoder.layers.1.weight'][0] * 2 * 0.5)
    with pytest.raises(LayerDecayConfigError,
                       match=r"components\['decoder.norm'\]=dict\(lr_mult=1"
                       r", decay_rate=0.9\): decay_rate decays"):
        build(decoder_model(), decay_rate=0.8,
              components={'decoder.norm': dict(decay_rate=0.9)})


def test_a_changed_decay_rate_is_refused_on_resume():
    components = {'decoder': dict(lr_mult=2., decay_rate=0.5)}
    saved = trained_state(build(decoder_model(), decay_rate=0.8,
                                components=components))
    build(decoder_model(), decay_rate=0.8,
          components=components).load_state_dict(copy.deepcopy(saved))
    with pytest.raises(LayerDecayConfigError,
                       match=r"paramwise_cfg.components: .*'decay_rate': 0.5"
                       r".* -> .*'decay_rate': 0.6"):
        build(decoder_model(), decay_rate=0.8, components={
            'decoder': dict(lr_mult=2., decay_rate=0.6)}).load_state_dict(
                copy.deepcopy(saved))
