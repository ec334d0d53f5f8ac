"""Record golden param groups for the light test tier.

The light test tier (``tests/light``, torch + mmengine only) compares our
constructor against groups recorded here with the full stack, so what needs
mmdet, mmpretrain or timm is checked without them. Two files:

- ``tests/light/golden_groups.json``: the groups of mmdet's layer-decay
  constructor for the toy ConvNeXt-named detectors of
  ``tests/light/toys.py`` and for the detector of every ConvNeXt config
  mmdet ships (``init_cfg=None``), stored with each parameter's name and
  shape so the light tier can rebuild an equivalent module tree;
- ``tests/light/family_groups.json``: for every family that
  ``paramwise_cfg.rules`` names, one small real backbone (its parameters,
  the plain attributes its family's depth reader takes, its depths) and the
  groups our constructor builds for it by class, layer_wise and
  stage_wise, so the light tier can rebuild it and check that naming the
  family gives the same groups; plus ``rules='auto'`` on a runnable toy.

Run from the repo root with the full stack after changing a case or the
rules, or upgrading mmdet, mmpretrain or timm (``tests/test_golden_groups.py``
fails while a file is stale)::

    .venv/bin/python tools/record_golden_groups.py
"""
import ast
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Tuple

ROOT = Path(__file__).resolve().parents[1]
# The toy models live in the light tier (tests/light/toys.py, `light.toys`).
sys.path.insert(0, str(ROOT / 'tests'))
GOLDEN = ROOT / 'tests' / 'light' / 'golden_groups.json'
FAMILY_GOLDEN = ROOT / 'tests' / 'light' / 'family_groups.json'
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


@contextmanager
def quiet_logger() -> Iterator[None]:
    """mmengine's current logger at WARNING inside the block: the recording
    needs no per-parameter lines or group tables."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')
    try:
        yield
    finally:
        logger.setLevel(level)


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

    with quiet_logger():  # mmdet logs every parameter at INFO
        wrapper = LearningRateDecayOptimizerConstructor(
            dict(type='OptimWrapper', optimizer=dict(optimizer)),
            dict(paramwise_cfg))(model)
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
    from light.toys import toy_models

    toys = {
        name: dict(paramwise_cfg=cfg, optimizer=TOY_OPTIMIZER,
                   groups=mmdet_groups(model, cfg, TOY_OPTIMIZER))
        for name, (model, cfg) in toy_models().items()
    }
    configs = {path.name: config_case(path) for path in convnext_configs()}
    return dict(toys=toys, configs=configs)


# --- Families: our constructor on a small real backbone of each. ---

#: Family name (what ``paramwise_cfg.rules`` accepts) -> the real backbone
#: recorded for it: ``(package, class, kwargs)``, randomly initialised
#: (no checkpoint). The small variants of
#: ``tests/test_forward_order.py``, shrunk further where its parameter list
#: would be long; whatever the class, it must get this family's rules by
#: class, so that the recording is the real class's groups.
_BN = dict(norm_cfg=dict(type='BN'))
_RESNET18 = dict(depth=18, stem_channels=16, base_channels=16, **_BN)
_STDC1 = dict(stdc_type='STDCNet1', in_channels=3,
              channels=(8, 16, 32, 64, 128), bottleneck_type='cat',
              act_cfg=dict(type='ReLU'), **_BN)
FAMILY_BACKBONES: Dict[str, Tuple[str, str, Dict[str, Any]]] = {
    'convnext': ('mmpretrain', 'ConvNeXt',
                 dict(arch=dict(depths=[1, 1, 4, 1],
                                channels=[8, 16, 32, 64]))),
    'swin': ('mmdet', 'SwinTransformer',
             dict(embed_dims=16, depths=(1, 2, 1, 1), num_heads=(1, 1, 1, 1),
                  window_size=2, pretrain_img_size=64)),
    'swin_v2': ('mmpretrain', 'SwinTransformerV2',
                dict(arch=dict(embed_dims=16, depths=[1, 2, 1, 1],
                               num_heads=[1, 1, 1, 1],
                               extra_norm_every_n_blocks=0),
                     img_size=64, window_size=2)),
    'vit': ('mmpretrain', 'VisionTransformer',
            dict(arch=dict(embed_dims=32, num_layers=3, num_heads=2,
                           feedforward_channels=64),
                 img_size=32, patch_size=16)),
    # num_classes=0: no classifier, which timm's own group_matcher (what a
    # timm ViT gets by class) leaves out and places by the forward order
    'vit_blocks': ('timm', 'VisionTransformer',
                   dict(img_size=32, patch_size=16, embed_dim=8, depth=3,
                        num_heads=1, num_classes=0)),
    'hivit': ('mmpretrain', 'HiViT',
              dict(arch=dict(embed_dims=64, depths=[1, 1, 2], num_heads=2),
                   img_size=64)),
    'mvit': ('mmpretrain', 'MViT',
             dict(arch=dict(embed_dims=16, num_layers=4, num_heads=1,
                            downscale_indices=[1, 3]), img_size=64)),
    'resnet': ('mmdet', 'ResNet', dict(depth=18)),
    'csp': ('mmdet', 'CSPDarknet', dict(deepen_factor=0.33,
                                        widen_factor=0.125)),
    'darknet': ('mmdet', 'Darknet', dict(depth=53)),
    'mobilenet_v2': ('mmdet', 'MobileNetV2', dict(widen_factor=0.25)),
    'efficientnet': ('mmdet', 'EfficientNet', dict(arch='b0')),
    'hrnet': ('mmdet', 'HRNet', dict(extra=dict(
        stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK',
                    num_blocks=(2, ), num_channels=(8, )),
        stage2=dict(num_modules=1, num_branches=2, block='BASIC',
                    num_blocks=(1, 1), num_channels=(8, 16)),
        stage3=dict(num_modules=2, num_branches=3, block='BASIC',
                    num_blocks=(1, 1, 1), num_channels=(8, 16, 32)),
        stage4=dict(num_modules=1, num_branches=4, block='BASIC',
                    num_blocks=(1, 1, 1, 1), num_channels=(8, 16, 32, 64))))),
    'pvt': ('mmdet', 'PyramidVisionTransformer',
            dict(embed_dims=8, num_layers=[1, 2, 1, 1],
                 num_heads=[1, 1, 1, 1], pretrain_img_size=64)),
    'hourglass': ('mmdet', 'HourglassNet',
                  dict(downsample_times=1, num_stacks=2,
                       stage_channels=(8, 8), stage_blocks=(1, 1),
                       feat_channel=8)),
    'vgg': ('mmdet', 'SSDVGG', dict(depth=16, out_indices=(3, 4),
                                    out_feature_indices=(22, 34))),
    'mscan': ('mmseg', 'MSCAN', dict(embed_dims=[8, 16, 32, 64],
                                     depths=[1, 2, 1, 1],
                                     norm_cfg=dict(type='BN'))),
    # mmseg's real-time, encoder-decoder and pyramid backbones, narrow
    # (tests/test_mmseg_backbones.py checks the same against their forward
    # order); built in mmseg's scope (nested backbone_cfg, UNet's upsample)
    'mobilenet_v3': ('mmseg', 'MobileNetV3', dict(arch='small')),
    'twins': ('mmseg', 'SVT', dict(embed_dims=[8, 16, 32], num_heads=[1] * 3,
                                   mlp_ratios=[1] * 3, depths=[2, 1, 1],
                                   windiow_sizes=[2] * 3)),
    'poolformer': ('mmpretrain', 'PoolFormer',
                   dict(arch=dict(layers=[1, 1, 2, 1],
                                  embed_dims=[8, 16, 32, 64],
                                  mlp_ratios=[1, 1, 1, 1],
                                  layer_scale_init_value=1e-5),
                        out_indices=(0, 2, 4, 6), frozen_stages=-1)),
    'stdc': ('mmseg', 'STDCNet', dict(_STDC1, with_final_conv=True)),
    'stdc_context_path': ('mmseg', 'STDCContextPathNet', dict(
        backbone_cfg=dict(_STDC1, type='STDCNet'), last_in_channels=(128, 64),
        out_channels=16,
        ffm_cfg=dict(in_channels=48, out_channels=32, scale_factor=4))),
    'fastscnn': ('mmseg', 'FastSCNN', dict(
        downsample_dw_channels=(8, 16), global_in_channels=16,
        global_block_channels=(16, 24, 32), global_out_channels=32,
        higher_in_channels=16, lower_in_channels=32,
        fusion_out_channels=32)),
    'cgnet': ('mmseg', 'CGNet', dict(num_channels=(8, 16, 32),
                                     num_blocks=(2, 3), **_BN)),
    'erfnet': ('mmseg', 'ERFNet', dict(
        enc_downsample_channels=(4, 8, 16), enc_stage_non_bottlenecks=(1, 4),
        enc_non_bottleneck_channels=(8, 16), dec_upsample_channels=(8, 4),
        dec_stages_non_bottleneck=(1, 1), dec_non_bottleneck_channels=(8, 4))),
    'unet': ('mmseg', 'UNet', dict(base_channels=8, **_BN)),
    'bisenetv1': ('mmseg', 'BiSeNetV1', dict(
        backbone_cfg=dict(type='ResNet', **_RESNET18),
        spatial_channels=(8, 8, 8, 32), context_channels=(32, 64, 128),
        out_channels=32, **_BN)),
    'bisenetv2': ('mmseg', 'BiSeNetV2', dict(
        detail_channels=(8, 8, 32), semantic_channels=(4, 8, 16, 32),
        semantic_expansion_ratio=2, bga_channels=32, **_BN)),
    'icnet': ('mmseg', 'ICNet', dict(
        backbone_cfg=dict(type='ResNetV1c', dilations=(1, 1, 2, 4),
                          strides=(1, 2, 1, 1), **_RESNET18),
        layer_channels=(32, 128), light_branch_middle_channels=8,
        psp_out_channels=32, out_channels=(16, 32, 32), **_BN)),
    'ddrnet': ('mmseg', 'PIDNet', dict(channels=8, ppm_channels=8, **_BN)),
    # HuggingFace's (mmdet's BertModel wraps one): BertConfig's fields
    'bert': ('transformers', 'BertModel',
             dict(vocab_size=16, hidden_size=8, num_hidden_layers=2,
                  num_attention_heads=1, intermediate_size=16,
                  max_position_embeddings=16)),
}
#: Recorded cases of each family; ``num_layers`` is left to inference, so
#: that the depths read from the backbone decide it.
FAMILY_CFGS: Dict[str, Dict[str, Any]] = {
    'layer_wise': dict(decay_rate=0.8, decay_type='layer_wise'),
    'stage_wise': dict(decay_rate=0.7, decay_type='stage_wise'),
}
#: ``rules='auto'`` on the runnable ``light.toys.ToyViT``.
AUTO_CFG = dict(decay_rate=0.8,
                rules=dict(type='auto', input_shape=[1, 3, 8, 8]))
#: Columns of a recorded family group: ``params`` are indices into the
#: toy detector's parameters, the backbone's rows first, then
#: ``light.toys.ToyDetector``'s neck and head (names once, not once per
#: decay type).
FAMILY_GROUP_COLUMNS = ('group_name', 'lr', 'lr_scale', 'weight_decay',
                        'params')


def build_backbone(family: str):
    """The real backbone recorded for a family (:data:`FAMILY_BACKBONES`).

    Args:
        family: A key of :data:`FAMILY_BACKBONES`.

    Returns:
        nn.Module: The backbone, randomly initialised.
    """
    package, cls, kwargs = FAMILY_BACKBONES[family]
    if package == 'transformers':
        import transformers
        return getattr(transformers, cls)(transformers.BertConfig(**kwargs))
    if package == 'timm':
        from timm.models import vision_transformer as module
    elif package == 'mmseg':
        from mmengine.registry import DefaultScope
        from mmseg.models import backbones as module
        with DefaultScope.overwrite_default_scope('mmseg'):
            return getattr(module, cls)(**kwargs)
    else:
        import mmpretrain.models  # noqa: F401  (registers mmpretrain's)
        from mmdet.utils import register_all_modules
        register_all_modules(init_default_scope=True)
        if package == 'mmdet':
            from mmdet.models import backbones as module
        else:
            from mmpretrain.models import backbones as module
    return getattr(module, cls)(**kwargs)


class _AttrReads:
    """Stands in for a backbone and notes the attributes read from it."""

    def __init__(self, backbone) -> None:
        self._backbone = backbone
        self.names: List[str] = []

    def __getattr__(self, name: str) -> Any:
        # Called only for names this object lacks: the backbone's.
        self.names.append(name)
        return getattr(self._backbone, name)


def depth_attrs(backbone, depths) -> Dict[str, str]:
    """The plain attributes a depth reader takes from a backbone.

    Submodules (``stages``, ``layer1``, ...) are rebuilt from parameter
    names; anything else it reads (ConvNeXt's ``depths``, ResNet's
    ``stage_blocks``, MViT's ``stage_indices``) must be set on the rebuilt
    backbone, so it is recorded.

    Args:
        backbone: The real backbone.
        depths: ``backbone -> blocks per stage``, the family's reader.

    Returns:
        dict: Attribute name -> ``repr`` of its value (a Python literal:
        MViT's ``stage_indices`` is a dict with int keys, which JSON would
        turn into strings).

    Raises:
        ValueError: If a value does not survive ``ast.literal_eval``.
    """
    import torch

    reads = _AttrReads(backbone)
    depths(reads)
    attrs = {}
    for name in dict.fromkeys(reads.names):
        value = getattr(backbone, name, None)
        if value is None or callable(value) or isinstance(
                value, (torch.nn.Module, torch.Tensor)):
            continue
        text = repr(value)
        if ast.literal_eval(text) != value:
            raise ValueError(f'{name}={text} is not a Python literal')
        attrs[name] = text
    return attrs


def our_groups(model, paramwise_cfg: Mapping,
               optimizer: Mapping) -> List[Mapping[str, Any]]:
    """Groups our constructor builds, through mmengine's builder as a
    config builds them (and as the light tier does), table log silenced.

    Args:
        model: A model with a ``backbone``.
        paramwise_cfg: The layer-decay settings.
        optimizer: The optimizer config.

    Returns:
        list[dict]: ``optimizer.param_groups``.
    """
    import layerdecay_plugin  # noqa: F401  (registers the constructor)
    from light.toys import layer_decay_groups

    with quiet_logger():
        return layer_decay_groups(model, paramwise_cfg, optimizer)


def group_rows(groups: List[Mapping[str, Any]], model) -> List[list]:
    """Groups as rows of :data:`FAMILY_GROUP_COLUMNS`.

    Args:
        groups: ``optimizer.param_groups``.
        model: The model they were built for.

    Returns:
        list[list]: One row per group, in group order.
    """
    index = {name: i for i, (name, _) in enumerate(model.named_parameters())}
    return [[g['group_name'], g['lr'], g['lr_scale'], g['weight_decay'],
             [index[name] for name in g['param_names']]] for g in groups]


def family_case(family: str) -> Dict[str, Any]:
    """Golden record of one family.

    Args:
        family: A key of :data:`FAMILY_BACKBONES`.

    Returns:
        dict: ``backbone`` (its class path), ``attrs`` (see
        :func:`depth_attrs`), ``depths`` (as the plugin reads them),
        ``params`` (``light.toys.shape_rows``) and ``cases`` (decay type
        -> ``paramwise_cfg`` and ``groups`` rows for the backbone in a
        ``light.toys.ToyDetector``).

    Raises:
        ValueError: If the backbone's class does not get the family's rules.
    """
    from layerdecay_plugin.backbones.depths import backbone_depths
    from layerdecay_plugin.backbones.families import \
        FAMILIES as BUILTIN_RULES
    from layerdecay_plugin.backbones.resolve import spec_for
    from layerdecay_plugin.backbones.timm import is_timm_backbone
    from layerdecay_plugin.backbones.types import class_path
    from light.toys import ToyDetector, shape_rows

    backbone = build_backbone(family)
    # A timm model gets timm's own group_matcher by class; its groups here
    # must still equal the family's (the light tier selects it by name).
    if is_timm_backbone(backbone):
        spec = spec_for(backbone, family)
    else:
        spec = spec_for(backbone)
    if spec.rules is not BUILTIN_RULES[family].rules:
        raise ValueError(f'{family}: {class_path(type(backbone))} gets '
                         f'{spec.rules.name} rules by class')
    model = ToyDetector(backbone)
    cases = {
        decay_type: dict(paramwise_cfg=cfg,
                         groups=group_rows(
                             our_groups(model, cfg, TOY_OPTIMIZER), model))
        for decay_type, cfg in FAMILY_CFGS.items()
    }
    return dict(backbone=class_path(type(backbone)),
                attrs=depth_attrs(backbone, spec.depths),
                depths=list(backbone_depths(backbone, spec)),
                params=shape_rows(backbone), cases=cases)


def family_data() -> Dict[str, Any]:
    """Everything the family file holds, computed now.

    Returns:
        dict: ``optimizer``, ``group_columns``, ``families`` (family ->
        :func:`family_case`) and ``auto`` (``paramwise_cfg`` and ``groups``
        of ``light.toys.auto_model``, which the light tier builds itself).
    """
    from light.toys import auto_model

    model = auto_model()
    auto = dict(paramwise_cfg=AUTO_CFG,
                groups=group_rows(
                    our_groups(model, AUTO_CFG, TOY_OPTIMIZER), model))
    return dict(optimizer=TOY_OPTIMIZER,
                group_columns=list(FAMILY_GROUP_COLUMNS),
                families={f: family_case(f) for f in FAMILY_BACKBONES},
                auto=auto)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(',', ':'), sort_keys=True)


def dumps(data: Any) -> str:
    """A golden file's text: JSON with one table row (a parameter, a
    group) per line, which keeps it small and makes a diff name the rows
    that changed. Dicts are sorted and nested one key per line; a list of
    lists or dicts is a table, a row per line; other lists stay on one
    line. Floats keep their exact repr."""

    def dump(value: Any, pad: str) -> str:
        if isinstance(value, dict) and value:
            items = [f'{pad} {json.dumps(key)}: {dump(value[key], pad + " ")}'
                     for key in sorted(value)]
            return '{\n' + ',\n'.join(items) + f'\n{pad}}}'
        if isinstance(value, (list, tuple)) and value and all(
                isinstance(row, (list, tuple, dict)) for row in value):
            rows = [f'{pad} {_compact(row)}' for row in value]
            return '[\n' + ',\n'.join(rows) + f'\n{pad}]'
        return json.dumps(value)

    return dump(data, '') + '\n'


def main() -> None:
    for path, data in ((GOLDEN, golden_data()),
                       (FAMILY_GOLDEN, family_data())):
        path.write_text(dumps(data))
        print(f'wrote {path.relative_to(ROOT)} '
              f'({path.stat().st_size / 1024:.0f} KB)')


if __name__ == '__main__':
    main()
