"""``LayerDecayOptimWrapperConstructor``: layer-wise lr decay for mmengine.

The constructor only orchestrates the pipeline: the config
(:mod:`.config`), the backbone's rules (:mod:`.backbones.resolve`), the
checks of ids and ``num_layers`` (:mod:`.checks`), mmengine's own options
(:mod:`.options`), the groups (:mod:`.grouping`), then the table
(:mod:`.report`) and the resume guard (:mod:`.resume`).
"""
import copy
from functools import partial
from typing import Any, Dict, List, NamedTuple, Optional

import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIMIZERS

from .backbones.no_decay import (declared_no_decay, declared_note,
                                 model_no_decay)
from .checks.components import (apply_components, check_components,
                                components_note)
from .checks.custom_keys import check_custom_keys, check_decay_given_back
from .checks.freeze_below import check_wrapper, ids_below
from .checks.schedule import report_schedule
from .checks.towers import Tower, locate, resolve_towers, tower_notes
from .checks.twins import twin_note
from .config import (LayerDecayCfg, aliases_used, check_optimizer_cfg,
                     optimizer_keys, parse_paramwise_cfg)
from .config.paramwise import ALIAS_ORIGINS
from .grouping import GroupPlan, ParamInfo, plan_groups
from .options import mmengine_options
from .registry import register
from .report import format_extra, log_group_table, tower_titles
from .runner_context import runner_config
from .resume import guard_resume, settings_record
from .sharding import (Shape, checked_fsdp_shapes, clean_name, numel,
                       original_shape)
from .table import GroupRow


class _Build(NamedTuple):
    """What one build of the optimizer reads from the model before the
    parent strips its root wrapper, and what it learns for the guard."""
    fsdp_shapes: Dict[int, Shape]
    found: dict
    # the DistributedDataParallel wrapper's find_unused_parameters; None
    # for a model not in one
    find_unused: Optional[bool] = None


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
    - ``backbone_attr`` (str or list[str]): the backbone's attribute path
      in the model, default ``'backbone'``; a list for several towers
      (``['backbone', 'language_model']``), each resolved as a backbone,
      with ids and lr scales of its own; the groups of every tower but the
      first are named ``{attr}.layer_{id}_...``.
    - ``towers`` (dict): with several towers, tower attribute -> its own
      ``decay_rate``, ``num_layers``, ``rules`` (default: the top-level
      ``decay_rate`` and ``rules``, ``num_layers`` inferred).
    - ``rules`` (str or dict): a built-in family name, or
      ``{decay_type: [(regex, id), ...]}``; default: chosen by the
      backbone's class.
    - ``no_decay_names`` (list[str]): name endings that never decay.
    - ``resume_mismatch`` (str): ``'error'`` (default) or
      ``'keep_checkpoint'``: what loading an optimizer state whose groups
      differ from these does (docs/resume.md).
    - ``min_lr_scale`` (float in (0, 1]): lr scales below it are raised
      to it (timm's ``min_scale``).
    - ``freeze_below`` (float in [0, 1)): parameters whose lr scale is
      below it are left out of the optimizer with ``requires_grad=False``
      (timm's ``no_opt_scale``).
    - ``model_no_decay`` (bool): the names the backbone declares with
      ``no_weight_decay()`` / ``no_weight_decay_keywords()`` get no weight
      decay (default True).
    - ``components`` (dict): module path -> lr factor (> 0, the longest
      path wins), or ``dict(lr_mult, decay_rate)`` to decay its
      ``layers.<i>`` too; times the lr below; never the weight decay.
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
        optimizer = optim_wrapper_cfg.get('optimizer') \
            if isinstance(optim_wrapper_cfg, dict) else None
        optimizer_type = optimizer.get('type') \
            if isinstance(optimizer, dict) else None
        self.layer_decay: LayerDecayCfg = parse_paramwise_cfg(
            paramwise_cfg, optimizer_keys(_optimizer_class(optimizer_type)),
            getattr(optimizer_type, '__name__', optimizer_type))
        for alias, key in aliases_used(paramwise_cfg).items():
            print_log(f'layer decay: paramwise_cfg.{alias} is read as {key} '
                      f'(its name in {ALIAS_ORIGINS[alias]})',
                      logger='current')
        # Before the parent, which rejects a missing weight_decay with a
        # bare ValueError when a *_decay_mult is set.
        check_optimizer_cfg(optimizer)
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        self._build: Optional[_Build] = None

    def __call__(self, model: nn.Module):
        # The parent strips the root FSDP wrapper before add_params, and the
        # root unit keeps its flat parameter and the original shapes on that
        # wrapper: they are read here. The parent's add_params(params,
        # module) takes no more arguments, so they travel on a copy of this
        # constructor made for this one build; this one keeps no state.
        build = copy.copy(self)
        build._build = _Build(
            checked_fsdp_shapes(model), {},
            model.find_unused_parameters
            if isinstance(model, DistributedDataParallel) else None)
        optim_wrapper = super(LayerDecayOptimWrapperConstructor,
                              build).__call__(model)
        # Resume is exact or loud: loading a checkpoint whose groups differ
        # from these raises (or warns, see resume_mismatch) before torch
        # replaces their lrs with the checkpoint's.
        guard_resume(optim_wrapper.optimizer,
                     settings_record(self.paramwise_cfg, self.base_lr,
                                     self.base_wd, **build._build.found),
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
        # FSDP and ZeRO-3 get the same groups as a single process; called
        # directly, the FSDP units are those in `module`.
        build = self._build or _Build(checked_fsdp_shapes(module), {})
        all_params = [(clean_name(n), p) for n, p in module.named_parameters()]
        shapes = {n: original_shape(p, build.fsdp_shapes)
                  for n, p in all_params}
        named = {n: p for n, p in all_params if p.requires_grad}
        # Each tower (one backbone, or several) resolved and checked; every
        # parameter's (tower, layer id).
        towers = resolve_towers(module, cfg, [
            (n, numel(shapes[n]), p.requires_grad) for n, p in all_params])
        where = {n: locate(towers, n) for n, _ in all_params}
        by_name = {t.name: t for t in towers}

        def scale_of(tower: str, layer_id: int) -> float:
            return by_name[tower].scale(layer_id, cfg.min_lr_scale)

        # freeze_below: out of the optimizer, requires_grad=False
        frozen_ids = {t.name: ids_below(
            (i for owner, i in where.values() if owner is t),
            partial(scale_of, t.name), cfg.freeze_below) for t in towers}
        to_freeze = [n for n in named
                     if where[n][1] in frozen_ids[where[n][0].name]]
        check_wrapper(to_freeze, [where[n][1] for n in to_freeze],
                      cfg.freeze_below, build.find_unused)
        for name in to_freeze:
            named.pop(name).requires_grad_(False)
        declared = {t.attr: declared_no_decay(t.backbone)
                    if cfg.model_no_decay else [] for t in towers}
        covered: dict = {}
        for tower in towers:
            covered.update(model_no_decay(declared[tower.attr], named,
                                          tower.prefix))

        custom_keys = cfg.mmengine.get('custom_keys', {})
        check_custom_keys(custom_keys, list(shapes), named)
        check_decay_given_back(custom_keys,
                               [(n, len(shapes[n])) for n in named],
                               cfg.no_decay_names, self.base_wd, covered)
        options = mmengine_options(
            dict(self.optim_wrapper_cfg, optimizer=self.optimizer_cfg),
            cfg.mmengine, module, named, shapes)
        if cfg.components:  # lr factors of modules, weight decay untouched
            check_components(cfg.components, list(shapes), named, [
                clean_name(m) for m, _ in module.named_modules()])
            options = apply_components(
                options, ((n, id(p)) for n, p in named.items()),
                cfg.components, self.base_lr, list(shapes))
            print_log(components_note(cfg.components, named, list(shapes)),
                      logger='current')
        plan = plan_groups(
            (ParamInfo(n, len(shapes[n]), options.get(id(p), {}))
             for n, p in named.items()), lambda n: where[n][1],
            cfg.decay_rate, towers[0].num_layers, self.base_lr, self.base_wd,
            cfg.no_decay_names, cfg.min_lr_scale, covered,
            lambda n: where[n][0].name, scale_of)
        params.extend(_to_param_group(g, named) for g in plan)
        build.found.update(family=towers[0].rules.name,
                           num_layers=towers[0].num_layers)
        if len(towers) > 1 or 'towers' in self.paramwise_cfg:
            build.found['towers'] = [t.record() for t in towers]
        if get_dist_info()[0] == 0:
            for tower in towers:
                if declared[tower.attr]:
                    print_log(declared_note(declared[tower.attr], covered,
                                            tower.attr), logger='current')
            # What the groups do not show: ids with nothing trainable (by
            # freeze_below, or frozen in the model), and groups kept apart
            # that the optimizer treats alike.
            ids = [(n, where[n][1], p.requires_grad, numel(shapes[n]))
                   for n, p in all_params]
            notes = tower_notes(towers, [where[n][0] for n, _ in all_params],
                                ids, frozen_ids, scale_of, cfg.freeze_below)
            notes.append(twin_note(
                [dict(g._asdict(), layer_id=(g.tower, g.layer_id))
                 for g in plan], custom_keys))
            self._report(plan, shapes, towers, notes)
            report_schedule(runner_config('param_scheduler'),
                            [(g.tower, g.layer_id, g.lr_scale)
                             for g in plan], self.base_lr)

    def _report(self, plan: List[GroupPlan], shapes: Dict[str, Shape],
                towers: List[Tower], notes: List[str]) -> None:
        rows = [
            GroupRow(g.group_name, g.layer_id, g.lr_scale, g.lr,
                     g.weight_decay, len(g.param_names),
                     sum(numel(shapes[n]) for n in g.param_names),
                     extra=format_extra(g.extra), tower=g.tower)
            for g in plan
        ]
        title, blocks = tower_titles([t.record() for t in towers],
                                     self.layer_decay.decay_type,
                                     self.base_lr, self.base_wd)
        log_group_table(rows, title, notes, blocks)


# In mmengine's root registry, as 'LayerDecayPluginConstructor' and, where
# free, 'LayerDecayOptimWrapperConstructor' (registry.py): mmdet's, mmseg's,
# mmpretrain's and mmpose's registries are its children, so the bare type
# name resolves under any of their default scopes.
register(LayerDecayOptimWrapperConstructor)


def _optimizer_class(optimizer_type: Any) -> Any:
    """The optimizer class a config's ``optimizer.type`` names, looked up
    as mmengine's constructor looks it up; None where it is not found
    (mmengine then reports it)."""
    if not isinstance(optimizer_type, str):
        return optimizer_type
    with OPTIMIZERS.switch_scope_and_registry(None) as registry:
        return registry.get(optimizer_type)


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
