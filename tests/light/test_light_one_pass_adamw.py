"""``OnePassAdamW`` is torch's AdamW, one multi-tensor pass for all groups.

Against ``torch.optim.AdamW(foreach=True)`` run live over the same groups:
the same parameters and state bit for bit (from torch 2.1; to rounding on
torch 2.0), on the CPU and (where there is one) on CUDA; checkpoints load either way; torch's own step where the one
pass does not apply; selected by name in a config with the plugin's
constructor.
"""
import pytest
import torch

from layerdecay_plugin import OnePassAdamW
from light.toys import ToyConvNeXt, ToyDetector

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
SHAPES = [(3, 4), (5, ), (7, 2), (2, ), (6, 6), (4, )]


def groups_of(params, **extra):
    """Three groups of the kind layer decay makes: lr and weight decay
    differ, one group has none."""
    return [dict(params=params[:2], lr=5e-4, weight_decay=0.05, **extra),
            dict(params=params[2:4], lr=7.5e-4, weight_decay=0., **extra),
            dict(params=params[4:], lr=1e-3, **extra)]


def run(cls, device, steps=4, drop=None, state=None, **kwargs):
    """``steps`` steps of ``cls`` over fresh copies of the same tensors and
    gradients; parameter ``drop`` has no gradient at step 2."""
    torch.manual_seed(0)
    params = [torch.randn(s, device=device, requires_grad=True)
              for s in SHAPES]
    optimizer = cls(groups_of(params), lr=1e-3, weight_decay=0.01,
                    **kwargs)
    if state is not None:
        optimizer.load_state_dict(state)
    for step in range(steps):
        for i, p in enumerate(params):
            p.grad = None if (step == 2 and i == drop) else \
                torch.randn_like(p)
        optimizer.step()
    return params, optimizer


#: torch 2.0's foreach AdamW updates the first moment with mul and add
#: where later versions (and OnePassAdamW) use lerp: there the two agree to
#: rounding, from torch 2.1 bit for bit.
BIT_EXACT = tuple(int(v) for v in torch.__version__.split('.')[:2]) >= (2, 1)


def same(x, y):
    return torch.equal(x, y) if BIT_EXACT else torch.allclose(
        x, y, rtol=1e-5, atol=1e-6)


def assert_same(a, b):
    (params_a, opt_a), (params_b, opt_b) = a, b
    assert all(same(x, y) for x, y in zip(params_a, params_b))
    state_a, state_b = opt_a.state_dict(), opt_b.state_dict()
    assert state_a['param_groups'] == state_b['param_groups']
    for key, state in state_a['state'].items():
        assert state.keys() == state_b['state'][key].keys()
        for name, value in state.items():
            assert same(value, state_b['state'][key][name]), name


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('kwargs', [
    dict(), dict(amsgrad=True), dict(maximize=True),
    dict(betas=(0.8, 0.99), eps=1e-6)], ids=['plain', 'amsgrad', 'maximize',
                                            'betas'])
def test_bit_identical_to_torch(device, kwargs):
    torch_ = run(torch.optim.AdamW, device, foreach=True, drop=1, **kwargs)
    ours = run(OnePassAdamW, device, foreach=True, drop=1, **kwargs)
    assert_same(torch_, ours)


def test_one_pass_is_taken(monkeypatch):
    """One call of each multi-tensor op for all three groups."""
    calls = []
    addcdiv = torch._foreach_addcdiv_
    monkeypatch.setattr(torch, '_foreach_addcdiv_',
                        lambda *a, **k: calls.append(len(a[0])) or
                        addcdiv(*a, **k))
    run(OnePassAdamW, 'cpu', steps=1)
    assert calls == [len(SHAPES)]


def test_torch_step_where_one_pass_does_not_apply(monkeypatch):
    monkeypatch.setattr(OnePassAdamW, '_one_pass', None)  # must not run
    assert_same(run(torch.optim.AdamW, 'cpu', foreach=False),
                run(OnePassAdamW, 'cpu', foreach=False))


def test_groups_that_disagree_on_betas_take_torch_step(monkeypatch):
    monkeypatch.setattr(OnePassAdamW, '_one_pass', None)
    torch.manual_seed(0)
    params = [torch.randn(s, requires_grad=True) for s in SHAPES]
    groups = groups_of(params)
    groups[0]['betas'] = (0.5, 0.9)
    optimizer = OnePassAdamW(groups, foreach=True)
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()


def test_checkpoints_load_either_way():
    """A state dict of one continues in the other, bit for bit."""
    _, torch_opt = run(torch.optim.AdamW, 'cpu', steps=2, foreach=True)
    _, ours_opt = run(OnePassAdamW, 'cpu', steps=2, foreach=True)
    assert_same(run(torch.optim.AdamW, 'cpu', state=ours_opt.state_dict(),
                    foreach=True),
                run(OnePassAdamW, 'cpu', state=torch_opt.state_dict(),
                    foreach=True))


def test_selected_by_name_with_layer_decay():
    from mmengine.optim import build_optim_wrapper

    import layerdecay_plugin  # noqa: F401  (registers the names)
    model = ToyDetector(ToyConvNeXt())
    wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', constructor='LayerDecayPluginConstructor',
        optimizer=dict(type='OnePassAdamW', lr=1e-3, weight_decay=0.05),
        paramwise_cfg=dict(decay_rate=0.5)))
    assert type(wrapper.optimizer) is OnePassAdamW
    assert len({g['lr'] for g in wrapper.optimizer.param_groups}) > 2
