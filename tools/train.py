"""Train a detector from an mmdet-style config with mmengine's Runner.

Usage: python tools/train.py CONFIG [--work-dir DIR] [--resume]
       [--cfg-options k=v ...]

Under ``torchrun`` on a machine without GPU it initialises ``torch.distributed``
with gloo itself, because mmengine's ``pytorch`` launcher calls
``torch.cuda.set_device``.
"""
import argparse
import os
import os.path as osp

# mmengine 0.10.7 resumes with torch.load(weights_only=True) on torch>=2.6.
os.environ.setdefault('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config')
    parser.add_argument('--work-dir')
    parser.add_argument('--resume', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.resume = args.resume or cfg.get('resume', False)
    if 'LOCAL_RANK' in os.environ:
        if torch.cuda.is_available():
            cfg.launcher = 'pytorch'
        else:
            # CPU: mmengine skips its own init when a group already exists.
            torch.distributed.init_process_group(backend='gloo')
            cfg.launcher = 'pytorch'
            cfg.model_wrapper_cfg = dict(
                type='MMDistributedDataParallel', device_ids=None)
    Runner.from_cfg(cfg).train()


if __name__ == '__main__':
    main()
