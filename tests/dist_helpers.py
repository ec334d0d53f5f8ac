"""Imported by the torchrun workers of test_distributed.py and
test_sharded.py (custom_imports): hooks that dump, per rank, the param groups
built and what every optimizer step used; an FSDP wrap policy by name."""
import json
import os

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import FUNCTIONS, HOOKS


@HOOKS.register_module()
class DumpGroupsHook(Hook):

    def before_train(self, runner) -> None:
        model = getattr(runner.model, 'module', runner.model)  # DDP
        names = {id(p): n for n, p in model.named_parameters()}
        groups = [
            dict(group_name=g['group_name'], lr=g['lr'],
                 weight_decay=g['weight_decay'], lr_scale=g['lr_scale'],
                 param_names=g['param_names'],
                 params=[names[id(p)] for p in g['params']])
            for g in runner.optim_wrapper.optimizer.param_groups
        ]
        path = os.path.join(runner.work_dir, f'groups_rank{get_rank()}.json')
        with open(path, 'w') as f:
            json.dump(groups, f)


def _innermost_optimizer(optimizer):
    """The torch optimizer that updates tensors: DeepSpeed's and torch's
    ZeRO wrap one (``.optimizer`` / ``.optim``)."""
    import torch
    inner = optimizer
    for attr in ('optim', 'optimizer'):
        candidate = getattr(inner, attr, None)
        if isinstance(candidate, torch.optim.Optimizer):
            inner = candidate
    return inner


def _updated_tensors(optimizer) -> list:
    """The tensors an optimizer step writes: DeepSpeed's fp32 partitions
    (ZeRO-3 puts them into its inner optimizer's groups only while it steps),
    else the inner optimizer's parameters."""
    for attr in ('fp32_partitioned_groups_flat',  # ZeRO-3
                 'single_partition_of_fp32_groups'):  # ZeRO-1/2
        tensors = getattr(optimizer, attr, None)
        if tensors is not None:
            return list(tensors)
    inner = _innermost_optimizer(optimizer)
    return [p for g in inner.param_groups for p in g['params']]


def _members(optimizer):
    """Each group's original parameters: DeepSpeed keeps them aside and puts
    flat partitions in ``param_groups``."""
    for attr in ('bit16_groups', 'fp16_groups'):  # ZeRO-1/2, ZeRO-3
        groups = getattr(optimizer, attr, None)
        if groups is not None:
            return groups
    return [g['params'] for g in optimizer.param_groups]


def _detector(model):
    from mmengine.model import BaseModel
    while not isinstance(model, BaseModel):  # DDP, FSDP, DeepSpeed engine
        model = getattr(model, 'module', None) or model.model
    return model


@HOOKS.register_module()
class RecordShardedHook(Hook):
    """Dumps, per rank, what each iteration's optimizer step used for every
    parameter (by its unwrapped name), the loss, the optimizer's step count
    at the start, and a checksum of the tensors the optimizer updates."""
    priority = 'VERY_HIGH'  # after_train_iter: before the scheduler steps

    def before_train(self, runner) -> None:
        from layerdecay_plugin.sharding import clean_name
        inner = _innermost_optimizer(runner.optim_wrapper.optimizer)
        steps = [float(s['step']) for s in inner.state.values() if 'step' in s]
        self.record = dict(
            start_iter=runner.iter, iters={},
            step_at_start=max(steps) if steps else 0.,
            sum_at_start=self._checksum(runner))
        self.names = {
            id(p): clean_name(n)
            for n, p in _detector(runner.model).named_parameters()
        }

    @staticmethod
    def _checksum(runner) -> float:
        return float(
            sum(t.detach().double().sum()
                for t in _updated_tensors(runner.optim_wrapper.optimizer)))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        optimizer = runner.optim_wrapper.optimizer
        inner = _innermost_optimizer(optimizer)
        params = {}
        for group, members, used in zip(optimizer.param_groups,
                                        _members(optimizer),
                                        inner.param_groups):
            names = [self.names[id(p)] for p in members]
            for name in names:
                params[name] = dict(
                    group_name=group['group_name'], lr_scale=group['lr_scale'],
                    lr=group['lr'], weight_decay=group['weight_decay'],
                    used_lr=used['lr'], used_weight_decay=used['weight_decay'],
                    names_match=names == group['param_names'])
        self.record['iters'][runner.iter] = dict(
            params=params, num_groups=len(optimizer.param_groups),
            loss=float(outputs['loss'].detach()))

    def after_train(self, runner) -> None:
        self.record['sum_at_end'] = self._checksum(runner)
        path = os.path.join(
            runner.work_dir,
            f'record_from{self.record["start_iter"]}_rank{get_rank()}.json')
        with open(path, 'w') as f:
            json.dump(self.record, f)


@FUNCTIONS.register_module()
def convnext_block_wrap_policy(module, recurse: bool,
                               nonwrapped_numel: int) -> bool:
    """FSDP auto-wrap policy: one unit per ConvNeXt block (what
    ``ModuleWrapPolicy({ConvNeXtBlock})`` does), by name for configs."""
    from mmpretrain.models.backbones.convnext import ConvNeXtBlock
    return True if recurse else isinstance(module, ConvNeXtBlock)
