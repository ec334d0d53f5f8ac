"""Imported by the torchrun workers of test_distributed.py (custom_imports):
each rank dumps the param groups it built."""
import json
import os

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


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
