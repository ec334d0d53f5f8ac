"""AdamW that steps every param group in one multi-tensor pass.

Layer decay gives an optimizer one param group per layer and kind (about
28 for a ConvNeXt-T or a ViT-B), and torch's ``foreach`` AdamW launches its
kernels once per group. :class:`OnePassAdamW` is ``torch.optim.AdamW``
with the same state, the same ``state_dict`` and bit-identical updates
(checked on torch 2.11, 2.14 and 2.15; torch 2.0's foreach step updates
the first moment with ``mul`` and ``add`` instead of ``lerp``, so there
they agree to rounding),
whose step gathers the tensors of all groups and hands each group's lr and
weight decay to torch's ``_foreach_*`` kernels as per-tensor scalar lists:
one launch per operation instead of one per operation and group.

It takes the one pass when the groups agree on everything but ``lr`` and
``weight_decay`` and the step is the plain foreach one (no ``fused``,
``capturable``, ``differentiable``, tensor lr, sparse or complex gradients,
and every gradient on one device with one dtype); otherwise it is torch's
AdamW unchanged. Select it with ``optimizer=dict(type='OnePassAdamW', ...)``
(registered in mmengine's ``OPTIMIZERS`` on import of the plugin).
"""
from typing import Callable, List, Optional

import torch
from mmengine.registry import OPTIMIZERS

#: Group settings that must agree across groups for the one pass.
SHARED = ('betas', 'eps', 'amsgrad', 'maximize')
#: Settings under which torch's own step is used.
TORCH_ONLY = ('fused', 'capturable', 'differentiable')


@OPTIMIZERS.register_module(force=True)
class OnePassAdamW(torch.optim.AdamW):
    """``torch.optim.AdamW`` whose foreach step covers all groups at once.

    Takes the arguments of ``torch.optim.AdamW``. See the module docstring
    for when the one pass applies.
    """

    def _one_pass_possible(self) -> bool:
        groups = self.param_groups
        if any(g.get(k) for g in groups for k in TORCH_ONLY):
            return False
        if any(g.get('foreach') is False for g in groups):
            return False
        if any(isinstance(g['lr'], torch.Tensor) for g in groups):
            return False
        first = groups[0]
        return all(g.get(k) == first.get(k) for g in groups for k in SHARED)

    def step(self, closure: Optional[Callable[[], float]] = None
             ) -> Optional[float]:
        """One optimization step (see ``torch.optim.AdamW.step``)."""
        if not self._one_pass_possible():
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            done = self._one_pass()
        if not done:
            super().step()
        return loss

    def _state_of(self, param: torch.Tensor, amsgrad: bool) -> dict:
        """The parameter's state, made as torch's AdamW makes it."""
        state = self.state[param]
        if not state:
            scalar = torch.float64 \
                if torch.get_default_dtype() == torch.float64 \
                else torch.float32
            state['step'] = torch.tensor(0.0, dtype=scalar)
            state['exp_avg'] = torch.zeros_like(
                param, memory_format=torch.preserve_format)
            state['exp_avg_sq'] = torch.zeros_like(
                param, memory_format=torch.preserve_format)
            if amsgrad:
                state['max_exp_avg_sq'] = torch.zeros_like(
                    param, memory_format=torch.preserve_format)
        return state

    def _one_pass(self) -> bool:
        """The step of torch's ``_multi_tensor_adam`` (decoupled weight
        decay, no capturable) over all groups; False, having changed
        nothing, when the gradients rule it out."""
        first = self.param_groups[0]
        beta1, beta2 = first['betas']
        amsgrad, maximize = first['amsgrad'], first['maximize']
        params: List[torch.Tensor] = []
        lrs: List[float] = []
        weight_decays: List[float] = []
        for group in self.param_groups:
            for param in group['params']:
                if param.grad is not None:
                    params.append(param)
                    lrs.append(group['lr'])
                    weight_decays.append(group['weight_decay'])
        if not params:
            return True
        grads = [p.grad for p in params]
        kinds = {(g.device, g.dtype) for g in grads}
        if len(kinds) > 1 or any(g.is_sparse or torch.is_complex(g)
                                 for g in grads):
            return False
        states = [self._state_of(p, amsgrad) for p in params]
        steps = [s['step'] for s in states]
        exp_avgs = [s['exp_avg'] for s in states]
        exp_avg_sqs = [s['exp_avg_sq'] for s in states]

        if maximize:
            grads = torch._foreach_neg(grads)
        torch._foreach_add_(steps, 1)
        decayed = [i for i, w in enumerate(weight_decays) if w != 0]
        if decayed:
            torch._foreach_mul_([params[i] for i in decayed],
                                [1 - lrs[i] * weight_decays[i]
                                 for i in decayed])
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
        del grads

        counts = [s.item() for s in steps]
        step_sizes = [(lr / (1 - beta1**n)) * -1 for lr, n in zip(lrs, counts)]
        bias_correction2_sqrt = [(1 - beta2**n)**0.5 for n in counts]
        if amsgrad:
            max_sqs = [s['max_exp_avg_sq'] for s in states]
            torch._foreach_maximum_(max_sqs, exp_avg_sqs)
            denom = torch._foreach_sqrt(max_sqs)
        else:
            denom = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denom, bias_correction2_sqrt)
        torch._foreach_add_(denom, first['eps'])
        torch._foreach_addcdiv_(params, exp_avgs, denom, step_sizes)
        return True
