"""torchrun worker of test_sharded.py: the CPU config's detector with its
backbone built under ``deepspeed.zero.Init`` (ZeRO-3 partitions every
parameter at construction: empty data, real shape in ``ds_shape``) and the
rest partitioned after, gets the same groups as the same detector built
normally. Writes both to the JSON file argv[2]."""
import json
import sys

import dist_compat

dist_compat.patch_deepspeed()
dist_compat.init_gloo()

import deepspeed  # noqa: E402
import mmpretrain.models  # noqa: E402,F401
from mmdet.registry import MODELS  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402

import layerdecay_plugin  # noqa: E402,F401


def groups(model) -> list:
    cfg = Config.fromfile(sys.argv[1])
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return [{k: v for k, v in g.items() if k != 'params'}
            for g in wrapper.optimizer.param_groups]


def main() -> None:
    register_all_modules()
    cfg = Config.fromfile(sys.argv[1])
    found = dict(reference=groups(MODELS.build(cfg.model)))
    zero3 = dict(train_micro_batch_size_per_gpu=1,
                 zero_optimization=dict(stage=3))
    model = MODELS.build(cfg.model)
    # mmdet's anchor generators call torch.Tensor(list of floats), which
    # zero.Init's patched tensor constructors reject: build the backbone
    # under zero.Init, and partition the rest after construction.
    with deepspeed.zero.Init(config_dict_or_path=zero3):
        model.backbone = MODELS.build(cfg.model.backbone)
    deepspeed.zero.Init(module=model, config_dict_or_path=zero3)
    params = list(model.parameters())
    found['partitioned'] = sum(
        hasattr(p, 'ds_shape') and p.numel() == 0 for p in params)
    found['num_params'] = len(params)
    found['zero3'] = groups(model)
    with open(sys.argv[2], 'w') as f:
        json.dump(found, f)


if __name__ == '__main__':
    main()
