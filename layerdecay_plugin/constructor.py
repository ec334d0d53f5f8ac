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

from .auto import auto_spec
from .backbones import (BackboneSpec, backbone_depths, class_path,
                        likely_backbone, spec_for)
from .checks import check_layer_ids
from .config import (LayerDecayCfg, check_optimizer_cfg,
                     parse_paramwise_cfg)
from .declarative import rules_from_matchers
from .errors import LayerDecayConfigError
from .grouping import GroupPlan, ParamInfo, plan_groups
from .messages import check_custom_keys
from .report import GroupRow, format_extra, log_group_table
from .resume import guard_resume, settings_record
from .rules import AutoRules, BackboneRules, layer_scale
from .sharding import (Shape, checked_fsdp_shapes, clean_name, numel,
                       original_shape, unwrap)


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

    ``paramwise_cfg`` keys (see docs/configuration.md for details):

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
    - ``resume_mismatch`` (str): ``'error'`` (default) or
      ``'keep_checkpoint'``: what loading an optimizer state whose groups
      differ from these does (docs/resume.md).
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
        # Set by __call__ for its add_params; None when add_params is
        # called directly.
        self._fsdp_shapes: Optional[Dict[int, Shape]] = None
        # Before the parent, which rejects a missing weight_decay with a
        # bare ValueError when a *_decay_mult is set.
        if isinstance(optim_wrapper_cfg, dict):
            check_optimizer_cfg(optim_wrapper_cfg.get('optimizer'))
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def __call__(self, model: nn.Module):
        # Here, not in add_params: the parent strips the root FSDP wrapper
        # before add_params, and the root unit keeps its flat parameter and
        # the original shapes on that wrapper.
        self._fsdp_shapes = checked_fsdp_shapes(model)
        try:
            optim_wrapper = super().__call__(model)
        finally:
            self._fsdp_shapes = None
        # Resume is exact or loud: loading a checkpoint whose groups differ
        # from these raises (or warns, see resume_mismatch) before torch
        # replaces their lrs with the checkpoint's.
        guard_resume(optim_wrapper.optimizer,
                     settings_record(self.paramwise_cfg, self.base_lr,
                                     self.base_wd),
                     self.layer_decay.resume_mismatch)
        return optim_wrapper

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
        # Names and shapes as in the unwrapped, unsharded model, so that
        # FSDP and ZeRO-3 get the same groups as a single process.
        fsdp_shapes = self._fsdp_shapes
        if fsdp_shapes is None:  # called directly: the units in `module`
            fsdp_shapes = checked_fsdp_shapes(module)
        backbone = self._backbone(module)
        all_params = [(clean_name(n), p) for n, p in module.named_parameters()]
        shapes = {n: original_shape(p, fsdp_shapes) for n, p in all_params}
        named = {n: p for n, p in all_params if p.requires_grad}
        head = cfg.backbone_attr + '.'
        rel_names = [n[len(head):] for n in named if n.startswith(head)]
        rules, depths, source = self._rules(backbone, rel_names)
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
        check_layer_ids(
            class_path(type(backbone)), source,
            [(n[len(head):], numel(shapes[n]), p.requires_grad)
             for n, p in all_params if n.startswith(head)],
            lambda name: rule(name, num_layers, depths), num_layers + 1)

        def layer_id_of(name: str) -> int:
            if name.startswith(head):
                return rule(name[len(head):], num_layers, depths)
            return num_layers + 1

        options = self._mmengine_options(module, named, shapes)
        plan = plan_groups(
            (ParamInfo(n, len(shapes[n]), options.get(id(p), {}))
             for n, p in named.items()), layer_id_of, cfg.decay_rate,
            num_layers, self.base_lr, self.base_wd, cfg.no_decay_names)
        params.extend(_to_param_group(g, named) for g in plan)
        self._report(plan, shapes, rules.name, num_layers)

    def _backbone(self, module: nn.Module) -> nn.Module:
        attr = self.layer_decay.backbone_attr
        backbone = module
        for part in attr.split('.'):
            backbone = getattr(unwrap(backbone), part, None)
        if isinstance(backbone, nn.Module):
            backbone = unwrap(backbone)  # wrapped as an FSDP unit
        if not isinstance(backbone, nn.Module):
            children = [n for n, _ in module.named_children()]
            likely = likely_backbone(
                (clean_name(path), type(unwrap(sub)))
                for path, sub in unwrap(module).named_modules())
            hint = (f' `{likely}` looks like the backbone: set '
                    f'paramwise_cfg.backbone_attr={likely!r}.'
                    if likely else '')
            raise LayerDecayConfigError(
                'LayerDecayOptimWrapperConstructor needs a model with a '
                f'backbone module at `{attr}`, but {class_path(type(module))} '
                f'has {type(backbone).__name__} there (its children: '
                f'{children}).{hint} Set paramwise_cfg.backbone_attr to the '
                "backbone's attribute, or use the default constructor for "
                'models without a backbone.')
        return backbone

    def _rules(self, backbone: nn.Module, rel_names: List[str]):
        rules = self.layer_decay.rules
        if isinstance(rules, AutoRules):
            spec = auto_spec(backbone, rules)
        elif isinstance(rules, dict):
            spec = BackboneSpec(rules_from_matchers(rules, rel_names),
                                lambda b: [],
                                'config (paramwise_cfg.rules regexes)')
        else:
            spec = spec_for(backbone, rules)
        print_log(
            f'layer decay: backbone {class_path(type(backbone))} gets '
            f'{spec.rules.name} rules, chosen by {spec.source}',
            logger='current')
        return spec.rules, backbone_depths(backbone, spec), spec.source

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
        if cfg.num_layers > needed:
            # What the extra layers cost: each backbone parameter's lr_scale
            # against the one num_layers=needed gives it (the neck and
            # heads keep lr_scale 1).
            rule = rules.ids[cfg.decay_type]
            extra = [(cfg.num_layers - rule(n, cfg.num_layers, depths)) -
                     (needed - rule(n, needed, depths)) for n in rel_names]
            worse = sorted({e for e in extra if e})
            unused = sorted(
                set(range(cfg.num_layers + 1)) -
                {rule(n, cfg.num_layers, depths) for n in rel_names})
            cost = ' and '.join(
                f'{extra.count(e)} get decay_rate**{e} = '
                f'{cfg.decay_rate**e:.3g} times' for e in worse)
            cost = (f'{cost} the lr num_layers={needed} gives them (the '
                    'others, the neck and heads keep theirs)' if worse else
                    f'all keep the lr num_layers={needed} gives them')
            empty = f'layer ids {unused} hold no parameter; ' if unused else ''
            print_log(
                f'layer decay: paramwise_cfg.num_layers={cfg.num_layers} is '
                f'larger than this {rules.name} backbone needs with '
                f'decay_type={cfg.decay_type!r} ({needed}): {empty}of its '
                f'{len(rel_names)} trainable parameters, {cost}. Leave '
                f'num_layers out, or set {needed}, unless you reproduce a '
                f'run that used {cfg.num_layers}.',
                logger='current')
        return cfg.num_layers

    def _mmengine_options(self, module: nn.Module,
                          named: Dict[str, nn.Parameter],
                          shapes: Dict[str, Shape]) -> Dict[int, dict]:
        """What mmengine's own constructor gives each parameter, by id(),
        as it would on the unwrapped, unsharded model."""
        mm_cfg = self.layer_decay.mmengine
        if not mm_cfg:
            return {}
        check_custom_keys(mm_cfg.get('custom_keys', {}), list(shapes), named)
        options = self._run_mmengine(module, mm_cfg)
        # mmengine's flat_decay_mult picks parameters by `param.ndim == 1`,
        # which every FSDP shard view and ZeRO-3 placeholder is. Find the
        # parameters that rule touched (their weight decay follows
        # flat_decay_mult) and undo it for those not really 1-D.
        views = [p for n, p in named.items() if len(shapes[n]) != p.ndim]
        flat_mult = mm_cfg.get('flat_decay_mult')
        if views and flat_mult is not None and self.base_wd:
            probe = self._run_mmengine(
                module, dict(mm_cfg, flat_decay_mult=flat_mult + 1))
            for param in views:
                mine, other = (opts.get(id(param), {})
                               for opts in (options, probe))
                if param.ndim == 1 and mine.get('weight_decay') != \
                        other.get('weight_decay'):
                    del mine['weight_decay']
        return options

    def _run_mmengine(self, module: nn.Module, mm_cfg: dict
                      ) -> Dict[int, dict]:
        # Reuse mmengine's own rules (custom_keys precedence, DCN and norm
        # detection) rather than re-implementing them, with its
        # per-parameter log lines silenced.
        default = _UnwrappingConstructor(
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

    def _report(self, plan: List[GroupPlan], shapes: Dict[str, Shape],
                family: str, num_layers: int) -> None:
        if get_dist_info()[0] != 0:
            return
        rows = [
            GroupRow(g.group_name, g.layer_id, g.lr_scale, g.lr,
                     g.weight_decay, len(g.param_names),
                     sum(numel(shapes[n]) for n in g.param_names),
                     extra=format_extra(g.extra))
            for g in plan
        ]
        cfg = self.layer_decay
        title = (f'layer decay: {family}, {cfg.decay_type}, decay_rate='
                 f'{cfg.decay_rate:g}, num_layers={num_layers}, base lr='
                 f'{self.base_lr:g}, weight decay={self.base_wd:g}')
        log_group_table(rows, title)


class _UnwrappingConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default rules, walking through FSDP and checkpoint
    wrappers (its add_params recurses through self), so that custom_keys
    see the same names as on the unwrapped model."""

    def add_params(self, params, module, prefix='', is_dcn_module=None):
        super().add_params(params, unwrap(module), prefix, is_dcn_module)


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
