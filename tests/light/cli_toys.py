"""A trainable toy detector and data set in mmengine's root registries, for
the light tier's CLI and hook tests.

Torch and mmengine only: ``tests/light/configs/toy_layerdecay.py`` names
them through ``custom_imports`` (``light.cli_toys``), as a real config names
its model package, so the CLI and mmengine's ``Runner`` build them by type
name without mmdet's registries.
"""
import os
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, MODELS
from torch.utils.data import Dataset

WIDTH = 8


class LightToyViT(nn.Module):
    """A ``blocks.i`` ViT's parameter names (``rules='vit_blocks'``):
    ``patch_embed`` (id 0), ``blocks.i`` (id ``i + 1``), ``norm`` (id
    ``num_layers``).

    Args:
        num_blocks: Number of blocks.
    """

    def __init__(self, num_blocks: int = 3):
        super().__init__()
        self.patch_embed = nn.Linear(4, WIDTH)
        self.blocks = nn.ModuleList(
            nn.Linear(WIDTH, WIDTH) for _ in range(num_blocks))
        self.norm = nn.LayerNorm(WIDTH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for block in self.blocks:
            x = x + torch.relu(block(x))
        return self.norm(x)


@MODELS.register_module()
class LightToyDetector(BaseModel):
    """Backbone, neck and head (the layout layer decay reads) with a
    regression loss, so that a ``Runner`` can train it.

    Args:
        num_blocks: Blocks of the backbone.
        init_cfg: Dropped by the CLI, as for a real detector.
    """

    def __init__(self, num_blocks: int = 3, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.backbone = LightToyViT(num_blocks)
        self.neck = nn.Linear(WIDTH, WIDTH)
        self.head = nn.Linear(WIDTH, 1)

    def forward(self, inputs: torch.Tensor,
                data_samples: Optional[torch.Tensor] = None,
                mode: str = 'tensor'):
        out = self.head(torch.relu(self.neck(self.backbone(inputs))))
        if mode == 'loss':
            return dict(loss=((out.squeeze(-1) - data_samples)**2).mean())
        return out


@DATASETS.register_module()
class LightToyDataset(Dataset):
    """``size`` fixed random samples ``dict(inputs, data_samples)`` in
    memory, the target being the sum of the inputs.

    Args:
        size: Number of samples.
    """

    def __init__(self, size: int = 8):
        generator = torch.Generator().manual_seed(0)
        self.inputs = torch.randn(size, 4, generator=generator)
        self.targets = self.inputs.sum(-1)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, idx: int) -> Dict[str, torch.Tensor]:
        return dict(inputs=self.inputs[idx], data_samples=self.targets[idx])


CONFIG = os.path.join(os.path.dirname(__file__), 'configs',
                      'toy_layerdecay.py')


def toy_run_cfg(work_dir: str, experiment: str, max_iters: int,
                num_samples: int, param_scheduler: List[dict],
                custom_hooks: List[dict],
                checkpoint_interval: Optional[int]) -> Config:
    """``tests/light/configs/toy_layerdecay.py`` as a Runner trains it:
    batches of 2 in a fixed order, a log line per iteration.

    Args:
        work_dir: The work dir.
        experiment: A name unique in the process (mmengine looks its
            logger and visualizer up by it).
        max_iters: Iterations to train.
        num_samples: Samples in the data set (``2 * max_iters``: one pass).
        param_scheduler: The schedulers.
        custom_hooks: The custom hooks.
        checkpoint_interval: Iterations between checkpoints; None for none.
    """
    cfg = Config.fromfile(CONFIG)
    # names no real checkpoint: the CLI never loads weights, a Runner would
    del cfg.model.init_cfg
    cfg.merge_from_dict(dict(
        work_dir=work_dir,
        experiment_name=experiment,
        train_dataloader=dict(
            batch_size=2, num_workers=0,
            dataset=dict(type='LightToyDataset', size=num_samples),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        param_scheduler=param_scheduler,
        default_hooks=dict(
            checkpoint=None if checkpoint_interval is None else dict(
                type='CheckpointHook', by_epoch=False,
                interval=checkpoint_interval),
            logger=dict(type='LoggerHook', interval=1)),
        log_processor=dict(by_epoch=False),
        env_cfg=dict(cudnn_benchmark=False),  # mmengine 0.7 has no default
        custom_hooks=custom_hooks,
        randomness=dict(seed=0)))
    return cfg
