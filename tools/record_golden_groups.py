"""Record the param groups of mmdet's layer-decay constructor as golden data.

The light test tier (``tests/light``, torch + mmengine only) compares our
constructor against these groups, so parity with mmdet is checked without
mmdet installed. Cases: the toy ConvNeXt-named detectors of
``tests/light/toys.py``, and the detector of every ConvNeXt config mmdet
ships (``init_cfg=None``), stored with each parameter's name and shape so the
light tier can rebuild an equivalent module tree.

Run from the repo root with the full stack after changing a case or
upgrading mmdet (``tests/test_golden_groups.py`` fails while the file is
stale)::

    .venv/bin/python tools/record_golden_groups.py
"""
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / 'tests' / 'light' / 'golden_groups.json'
#: Optimizer of the toy cases (the config cases use their config's).
TOY_OPTIMIZER = dict(type='AdamW', lr=1e-4, weight_decay=0.05)
#: Group keys recorded; ``params`` is replaced by ``param_names``.
GROUP_KEYS = ('group_name', 'lr', 'lr_scale', 'weight_decay', 'param_names')


def group_records(groups: List[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """The recorded part of each optimizer param group, in group order.

    Args:
        groups: ``optimizer.param_groups`` of a layer-decay constructor.

    Returns:
        list[dict]: One dict of :data:`GROUP_KEYS` per group.
    """
    return [{key: group[key] for key in GROUP_KEYS} for group in groups]


def param_records(model) -> List[list]:
    """``[name, shape, requires_grad]`` of every parameter, in order.

    Args:
        model: A torch module.

    Returns:
        list[list]: JSON-ready rows for ``light.toys.model_from_shapes``.
    """
    return [[name, list(param.shape), param.requires_grad]
            for name, param in model.named_parameters()]


def mmdet_groups(model, paramwise_cfg: Mapping,
                 optimizer: Mapping) -> List[Dict[str, Any]]:
    """Groups mmdet's ``LearningRateDecayOptimizerConstructor`` builds.

    Args:
        model: A model with a ConvNeXt-named ``backbone``.
        paramwise_cfg: Its layer-decay settings.
        optimizer: The optimizer config (``lr``, ``weight_decay``).

    Returns:
        list[dict]: :func:`group_records` of the groups.
    """
    from mmdet.engine.optimizers import LearningRateDecayOptimizerConstructor
    from mmengine.logging import MMLogger

    # mmdet logs every parameter at INFO; keep the recording quiet.
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')
    try:
        wrapper = LearningRateDecayOptimizerConstructor(
            dict(type='OptimWrapper', optimizer=dict(optimizer)),
            dict(paramwise_cfg))(model)
    finally:
        logger.setLevel(level)
    return group_records(wrapper.optimizer.param_groups)


def convnext_configs() -> List[Path]:
    """mmdet's shipped ConvNeXt detection configs, sorted by name."""
    import mmdet
    return sorted((Path(mmdet.__file__).parent / '.mim' / 'configs' /
                   'convnext').glob('*.py'))


def config_case(config: Path) -> Dict[str, Any]:
    """Golden record of one shipped config's detector.

    Args:
        config: Path of an mmdet ConvNeXt config.

    Returns:
        dict: Its ``paramwise_cfg``, ``optimizer``, ``params`` (see
        :func:`param_records`) and mmdet's ``groups``.
    """
    import mmpretrain.models  # noqa: F401  (registers mmpretrain.ConvNeXt)
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(str(config))
    cfg.model.backbone.init_cfg = None  # no checkpoint download
    model = MODELS.build(cfg.model)
    paramwise_cfg = cfg.optim_wrapper.paramwise_cfg.to_dict()
    optimizer = cfg.optim_wrapper.optimizer.to_dict()
    return dict(paramwise_cfg=paramwise_cfg, optimizer=optimizer,
                params=param_records(model),
                groups=mmdet_groups(model, paramwise_cfg, optimizer))


def golden_data() -> Dict[str, Any]:
    """Everything the golden file holds, computed now.

    Returns:
        dict: ``toys`` (case name -> paramwise_cfg, optimizer, groups) and
        ``configs`` (config file name -> :func:`config_case`).
    """
    sys.path.insert(0, str(ROOT / 'tests'))
    from light.toys import toy_models

    toys = {
        name: dict(paramwise_cfg=cfg, optimizer=TOY_OPTIMIZER,
                   groups=mmdet_groups(model, cfg, TOY_OPTIMIZER))
        for name, (model, cfg) in toy_models().items()
    }
    configs = {path.name: config_case(path) for path in convnext_configs()}
    return dict(toys=toys, configs=configs)


def dumps(data: Mapping[str, Any]) -> str:
    """The file's text: one group or parameter per line keeps it small and
    its diffs readable; floats keep their exact repr."""
    return json.dumps(data, indent=1, sort_keys=True) + '\n'


def main() -> None:
    GOLDEN.write_text(dumps(golden_data()))
    print(f'wrote {GOLDEN.relative_to(ROOT)} '
          f'({GOLDEN.stat().st_size / 1024:.0f} KB)')


if __name__ == '__main__':
    main()
