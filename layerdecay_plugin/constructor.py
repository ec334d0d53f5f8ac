"""``LayerDecayOptimWrapperConstructor``: layer-wise lr decay for mmengine."""
import logging
import warnings
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

import torch.nn as nn
from mmengine.dist import get_dist_info
from mmengine.logging import MMLogger, print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

from .backbones import BackboneSpec, backbone_depths, class_path, spec_for
from .config import LayerDecayCfg, parse_paramwise_cfg
from .declarative import rules_from_matchers
from .errors import LayerDecayConfigError
from .grouping import GroupPlan, ParamInfo, plan_groups
from .report import GroupRow, format_group_table
from .rules import BackboneRules, layer_scale


# Registered in mmengine's root registry: mmdet's, mmseg's and mmpretrain's
# registries are its children, so the bare type name resolves under any of
# their default scopes.
@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise learning-rate decay, a checked drop-in for mmdet's
    ``LearningRateDecayOptimizerConstructor``.

    Each trainable parameter gets a layer id from its backbone's rules
    (parameters outside the backbone get ``num_layers + 1``) and lr
    ``decay_rate ** (num_layers + 1 - layer_id)`` times its lr under
    mmengine's paramwise options (``base_lr`` when none apply). Its weight
    decay is what an mmengine option gives it where one applies, else 0 for
    1-D parameters, biases, tokens and position tables, else the optimizer's.
    Parameters sharing all of these share one group, named
    ``layer_{id}_{decay|no_decay}``. For ConvNeXt without mmengine options
    the groups are identical to mmdet's.

    ``paramwise_cfg`` keys (see the README for details):

    - ``decay_rate`` (float, required): per-layer factor, > 0.
    - ``decay_type`` (str): ``'layer_wise'`` (default) or ``'stage_wise'``.
    - ``num_layers`` (int): inferred from the backbone when omitted; an
      error when smaller than the backbone needs.
    - ``backbone_attr`` (str): the backbone's attribute path in the model,
      default ``'backbone'``.
    - ``rules`` (str or dict): a built-in family name, or
      ``{decay_type: [(regex, id), ...]}``; default: chosen by the
      backbone's class.
    - ``no_decay_names`` (list[str]): name endings that never decay.
    - mmengine's ``custom_keys``, ``bias_lr_mult``, ``bias_decay_mult``,
      ``norm_decay_mult``, ``dwconv_decay_mult``, ``flat_decay_mult``,
      ``dcn_offset_lr_mult``, ``bypass_duplicate``.

    Args:
        optim_wrapper_cfg (dict): The optimizer wrapper config, with
            ``optimizer.lr`` and ``optimizer.weight_decay`` set.
        paramwise_cfg (dict): The settings above.

    Raises:
        LayerDecayConfigError: For any invalid setting, naming the key, its
            value and the fix.
    """

    def __init__(self,
                 optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None):
        self.layer_decay: LayerDecayCfg = parse_paramwise_cfg(paramwise_cfg)
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        for key, value in (('lr', self.base_lr),
                           ('weight_decay', self.base_wd)):
            if value is None:
                raise LayerDecayConfigError(
                    f'optim_wrapper.optimizer.{key} is not set: layer decay '
                    f'sets {key} per param group from it, so give it '
                    'explicitly (e.g. optimizer=dict(type=\'AdamW\', '
                    'lr=1e-4, weight_decay=0.05)).')

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   is_dcn_module=None) -> None:
        """Add the model's trainable parameters to ``params`` as layer groups.

        Args:
            params (list[dict]): Param groups, extended in place.
            module (nn.Module): The (unwrapped) model, with a backbone at
                ``paramwise_cfg.backbone_attr``.
            prefix (str): Unused, kept for the parent's signature.
            is_dcn_module: Unused, kept for the parent's signature.
        """
        cfg = self.layer_decay
        backbone = self._backbone(module)
        named = {n: p for n, p in module.named_parameters() if p.requires_grad}
        head = cfg.backbone_attr + '.'
        rel_names = [n[len(head):] for n in named if n.startswith(head)]
        rules, depths = self._rules(backbone, rel_names)
        if cfg.decay_type not in rules.ids:
            raise LayerDecayConfigError(
                f"paramwise_cfg.decay_type='{cfg.decay_type}' is not "
                f'available for {rules.name} backbones; use '
                f'{" or ".join(map(repr, sorted(rules.ids)))}.')
        if cfg.decay_rate > 1:
            warnings.warn(
                f'paramwise_cfg.decay_rate={cfg.decay_rate:g} > 1: earlier '
                'backbone layers get a larger lr than later ones and the '
                'head. Use a value < 1 for the usual layer decay.',
                UserWarning, stacklevel=2)
        num_layers = self._num_layers(rules, depths, rel_names)
        rule = rules.ids[cfg.decay_type]

        def layer_id_of(name: str) -> int:
            if name.startswith(head):
                return rule(name[len(head):], num_layers, depths)
            return num_layers + 1

        options = self._mmengine_options(module, named)
        plan = plan_groups(
            (ParamInfo(n, p.ndim, options.get(id(p), {}))
             for n, p in named.items()), layer_id_of, cfg.decay_rate,
            num_layers, self.base_lr, self.base_wd, cfg.no_decay_names)
        params.extend(_to_param_group(g, named) for g in plan)
        self._report(plan, named, rules.name, num_layers)

    def _backbone(self, module: nn.Module) -> nn.Module:
        attr = self.layer_decay.backbone_attr
        backbone = module
        for part in attr.split('.'):
            backbone = getattr(backbone, part, None)
        if not isinstance(backbone, nn.Module):
            children = [n for n, _ in module.named_children()]
            raise LayerDecayConfigError(
                'LayerDecayOptimWrapperConstructor needs a model with a '
                f'backbone module at `{attr}`, but {class_path(type(module))} '
                f'has {type(backbone).__name__} there (its children: '
                f'{children}). Set paramwise_cfg.backbone_attr to the '
                "backbone's attribute, or use the default constructor for "
                'models without a backbone.')
        return backbone

    def _rules(self, backbone: nn.Module, rel_names: List[str]):
        rules = self.layer_decay.rules
        if isinstance(rules, dict):
            return rules_from_matchers(rules, rel_names), []
        spec: BackboneSpec = spec_for(backbone, rules)
        return spec.rules, backbone_depths(backbone, spec)

    def _num_layers(self, rules: BackboneRules, depths: List[int],
                    rel_names: List[str]) -> int:
        cfg = self.layer_decay
        needed = rules.min_num_layers(depths, cfg.decay_type)
        if cfg.num_layers is None:
            print_log(
                f'layer decay: num_layers not set, inferred {needed} for '
                f'{rules.name} ({cfg.decay_type}, blocks per stage {depths})',
                logger='current')
            return needed
        if cfg.num_layers < needed:
            rule = rules.ids[cfg.decay_type]
            worst = max((layer_scale(cfg.decay_rate, cfg.num_layers,
                                     rule(n, cfg.num_layers, depths))
                         for n in rel_names),
                        default=1.)
            raise LayerDecayConfigError(
                f'paramwise_cfg.num_layers={cfg.num_layers} is too small for '
                f'this {rules.name} backbone with decay_type='
                f'{cfg.decay_type!r}: it needs num_layers >= {needed}; with '
                f'{cfg.num_layers} backbone layers would share the lr of '
                'later layers or the head, or exceed it (largest lr_scale '
                f'here: {worst:.3g}). Set num_layers={needed} or leave it out '
                'to infer it.')
        return cfg.num_layers

    def _mmengine_options(self, module: nn.Module,
                          named: Dict[str, nn.Parameter]) -> Dict[int, dict]:
        """What mmengine's own constructor gives each parameter, by id()."""
        mm_cfg = self.layer_decay.mmengine
        if not mm_cfg:
            return {}
        for key in mm_cfg.get('custom_keys', {}):
            if not any(key in n for n in named):
                warnings.warn(
                    f'paramwise_cfg.custom_keys[{key!r}] matches no '
                    'trainable parameter name; check it for typos.',
                    UserWarning, stacklevel=3)
        # Reuse mmengine's own rules (custom_keys precedence, DCN and norm
        # detection) rather than re-implementing them, through a plain
        # default constructor (its add_params recurses through self), with
        # its per-parameter log lines silenced.
        default = DefaultOptimWrapperConstructor(
            dict(self.optim_wrapper_cfg, optimizer=self.optimizer_cfg),
            dict(mm_cfg))
        mm_groups: List[dict] = []
        with _quiet_logger():
            default.add_params(mm_groups, module)
        options: Dict[int, dict] = {}
        for group in mm_groups:
            param = group['params'][0]
            options.setdefault(
                id(param), {k: v for k, v in group.items() if k != 'params'})
        return options

    def _report(self, plan: List[GroupPlan], named: dict, family: str,
                num_layers: int) -> None:
        if get_dist_info()[0] != 0:
            return
        rows = [
            GroupRow(g.group_name, g.layer_id, g.lr_scale, g.lr,
                     g.weight_decay, len(g.param_names),
                     sum(named[n].numel() for n in g.param_names))
            for g in plan
        ]
        cfg = self.layer_decay
        title = (f'layer decay: {family}, {cfg.decay_type}, decay_rate='
                 f'{cfg.decay_rate:g}, num_layers={num_layers}, base lr='
                 f'{self.base_lr:g}, weight decay={self.base_wd:g}')
        print_log('\n' + format_group_table(rows, title), logger='current')


@contextmanager
def _quiet_logger() -> Iterator[None]:
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _to_param_group(plan: GroupPlan, named: dict) -> dict:
    # Key order and content as mmdet builds them; mmengine's extra
    # custom_keys entries (lr_mult, decay_mult, momentum, ...) follow.
    return {
        'weight_decay': plan.weight_decay,
        'params': [named[n] for n in plan.param_names],
        'param_names': plan.param_names,
        'lr_scale': plan.lr_scale,
        'group_name': plan.group_name,
        'lr': plan.lr,
        **plan.extra,
    }
