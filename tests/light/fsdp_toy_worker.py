"""torchrun worker of test_light_sharding.py: a toy detector under FSDP
(use_orig_params=True, three wrap policies, with and without mmengine
options, with layer decay on one tower and on two) gets the same groups as
unwrapped; use_orig_params=False is refused.
Writes its findings to the JSON file named by argv[1] (rank 0); argv[2] is
the device, ``cpu`` (gloo) or ``cuda`` (nccl, one GPU a process)."""
import functools
import json
import os
import sys

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp.wrap import (ModuleWrapPolicy,
                                         size_based_auto_wrap_policy)

from layerdecay_plugin import (LayerDecayConfigError,
                               LayerDecayOptimWrapperConstructor,
                               register_backbone_rules)


class Block(nn.Module):

    def __init__(self, channels: int):
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, 3, padding=1,
                                groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.fc = nn.Linear(channels, channels)
        self.gamma = nn.Parameter(torch.ones(channels))


class ToyBackbone(nn.Module):

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 1)
        self.pos_embed = nn.Parameter(torch.zeros(1, 8, 2, 2))
        self.blocks = nn.ModuleList(Block(8) for _ in range(4))


def toy_rule(name: str, num_layers: int, depths) -> int:
    if name.startswith('stem') or name == 'pos_embed':
        return 0
    if name.startswith('blocks.'):
        return int(name.split('.')[1]) + 1
    return num_layers + 1


register_backbone_rules(ToyBackbone, layer_wise=toy_rule,
                        depths=lambda b: [len(b.blocks)])


class ToyDetector(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = ToyBackbone()
        self.text = ToyBackbone()  # a second tower (paramwise 'towers')
        self.head = nn.Sequential(nn.Conv2d(8, 4, 1), nn.BatchNorm2d(4))


PARAMWISE = {
    'plain': dict(decay_rate=0.8),
    'mmengine_options': dict(
        decay_rate=0.8, flat_decay_mult=0.5, norm_decay_mult=0.,
        custom_keys={'blocks.1.fc': dict(lr_mult=2.)}),
    'towers': dict(decay_rate=0.8, backbone_attr=['backbone', 'text'],
                   towers=dict(text=dict(decay_rate=0.6))),
}
POLICIES = {
    'no_wrap': None,
    'module_wrap': ModuleWrapPolicy({Block}),
    'size_based': functools.partial(size_based_auto_wrap_policy,
                                    min_num_params=50),
}


def groups(model: nn.Module, paramwise: dict) -> dict:
    wrapper = LayerDecayOptimWrapperConstructor(
        dict(type='OptimWrapper',
             optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
        paramwise)(model)
    return {
        name: [g['group_name'], g['lr'], g['weight_decay'], g['lr_scale']]
        for g in wrapper.optimizer.param_groups for name in g['param_names']
    }


def main(out: str, device_type: str) -> None:
    if device_type == 'cuda':
        device = torch.device('cuda', int(os.environ['LOCAL_RANK']))
        torch.cuda.set_device(device)
        dist.init_process_group('nccl')
    else:
        device = torch.device('cpu')
        dist.init_process_group('gloo')
    found = {}
    for key, paramwise in PARAMWISE.items():
        torch.manual_seed(0)
        found[f'{key}/reference'] = groups(ToyDetector(), paramwise)
        for policy_name, policy in POLICIES.items():
            model = FSDP(ToyDetector(), device_id=device,
                         use_orig_params=True,
                         auto_wrap_policy=policy)
            found[f'{key}/{policy_name}'] = groups(model, paramwise)
    for policy_name in ('no_wrap', 'module_wrap'):
        model = FSDP(ToyDetector(), device_id=device, use_orig_params=False,
                     auto_wrap_policy=POLICIES[policy_name])
        try:
            groups(model, PARAMWISE['plain'])
            found[f'flat/{policy_name}'] = 'no error'
        except LayerDecayConfigError as exc:
            found[f'flat/{policy_name}'] = str(exc)
    if dist.get_rank() == 0:
        with open(out, 'w') as f:
            json.dump(found, f)
    dist.destroy_process_group()


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
