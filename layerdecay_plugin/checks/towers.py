"""The towers of ``paramwise_cfg.backbone_attr``, each resolved as one
backbone is: found in the model, its rules chosen (:mod:`..backbones.
resolve`), its ``num_layers`` chosen (:mod:`.num_layers`) and its ids
checked (:mod:`.ids`); towers that reach the same module are refused.

A parameter under a tower gets that tower's id and lr scale
``decay_rate_t ** (num_layers_t + 1 - id)``; a parameter under no tower
gets the first tower's head id ``num_layers_0 + 1`` (lr scale 1), so one
backbone (one tower) gives exactly the ids it always had.
"""
from functools import partial
from typing import (Any, Callable, Dict, List, Mapping, NamedTuple, Sequence,
                    Tuple)

import torch.nn as nn
from mmengine.logging import print_log

from ..backbones.resolve import find_backbone, resolve
from ..backbones.types import class_path
from ..config import check_against_rules
from ..config.towers import TowerCfg, tower_key, towers_of
from ..errors import LayerDecayConfigError
from ..rules import BackboneRules
from ..rules.common import effective_scale
from .freeze_below import ParamOfId, freeze_note
from .frozen import frozen_note
from .ids import BackboneParam, check_layer_ids
from .num_layers import choose_num_layers


class Tower(NamedTuple):
    """One resolved tower.

    Attributes:
        attr: Its attribute path in the model.
        name: What its group names start with (``''`` for the first
            tower: mmdet's names; else ``attr``; see ``groupnames``).
        backbone: Its (unwrapped) module.
        rules: Its rules; ``rules.name`` is its family's display name.
        decay_rate: Its per-layer lr decay factor.
        num_layers: Its ``num_layers`` in effect.
        rule: Its id rule on names relative to it.
    """
    attr: str
    name: str
    backbone: nn.Module
    rules: BackboneRules
    decay_rate: float
    num_layers: int
    rule: Callable[[str], int]

    @property
    def prefix(self) -> str:
        """Its parameters' names start with this."""
        return self.attr + '.'

    def scale(self, layer_id: int, min_lr_scale: Any = None) -> float:
        """The lr scale of one of its ids, ``min_lr_scale`` applied."""
        return effective_scale(self.decay_rate, self.num_layers, layer_id,
                               min_lr_scale)

    def record(self) -> Dict[str, Any]:
        """What the resume record keeps of it (plain values)."""
        return dict(attr=self.attr, family=self.rules.name,
                    num_layers=self.num_layers, decay_rate=self.decay_rate)


def resolve_towers(model: nn.Module, cfg: Any,
                   params: Sequence[Tuple[str, int, bool]]) -> List[Tower]:
    """Every tower of the settings, resolved and checked, in config order.

    Args:
        model: The (unwrapped) model.
        cfg: The validated ``LayerDecayCfg``.
        params: ``(full name, number of elements, trainable)`` of every
            parameter of the model, frozen ones included.

    Returns:
        list[Tower]: One per tower.

    Raises:
        LayerDecayConfigError: For a tower the model lacks, towers that
            reach the same module, and every check one backbone gets.
    """
    configs = towers_of(cfg)
    several = len(configs) > 1
    modules = [find_backbone(model, t.attr) for t in configs]
    _check_disjoint(configs, modules)
    return [_tower(t, index, module, cfg, params, several)
            for index, (t, module) in enumerate(zip(configs, modules))]


def _tower(config: TowerCfg, index: int, backbone: nn.Module, cfg: Any,
           params: Sequence[Tuple[str, int, bool]], several: bool) -> Tower:
    head = config.attr + '.'
    mine: List[BackboneParam] = [(n[len(head):], size, trainable)
                                 for n, size, trainable in params
                                 if n.startswith(head)]
    rel_names = [n for n, _, trainable in mine if trainable]
    rules, depths, source = resolve(backbone, config.rules, rel_names)
    own_rate = config.decay_rate != cfg.decay_rate
    check_against_rules(
        cfg._replace(decay_rate=config.decay_rate), rules,
        tower_key(config.attr, 'decay_rate') if own_rate
        else 'paramwise_cfg.decay_rate')
    num_layers, note = choose_num_layers(
        rules, depths, rel_names, cfg.decay_type, config.decay_rate,
        config.num_layers, config.attr if several else '')
    if note:
        print_log(note, logger='current')
    by_type = rules.ids[cfg.decay_type]

    def rule(name: str) -> int:
        return by_type(name, num_layers, depths)

    check_layer_ids(class_path(type(backbone)), source, mine, rule,
                    num_layers + 1)
    return Tower(config.attr, config.attr if index else '', backbone, rules,
                 config.decay_rate, num_layers, rule)


def _check_disjoint(configs: Sequence[TowerCfg],
                    modules: Sequence[nn.Module]) -> None:
    """Refuse two towers of which one holds the other's module (the same
    module reached twice, under two attributes)."""
    for j, module in enumerate(modules):
        for i in range(j):
            inside = [m for m in modules[i].modules() if m is module]
            around = [m for m in module.modules() if m is modules[i]]
            if inside or around:
                a, b = configs[i].attr, configs[j].attr
                what = ('are the same module' if module is modules[i] else
                        'hold one another')
                raise LayerDecayConfigError(
                    f'paramwise_cfg.backbone_attr towers {a!r} and {b!r} '
                    f'{what} ({class_path(type(module))}), so its '
                    'parameters would get two layer ids: list that module '
                    'once, under one attribute.')


def locate(towers: Sequence[Tower], name: str) -> Tuple[Tower, int]:
    """The tower a parameter's id counts in, and its id: the tower it is
    under, else the first (as its head, ``num_layers + 1``).

    Args:
        towers: :func:`resolve_towers`'s.
        name: A full parameter name (sharding wrappers' parts removed).
    """
    for tower in towers:
        if name.startswith(tower.prefix):
            return tower, tower.rule(name[len(tower.prefix):])
    return towers[0], towers[0].num_layers + 1


def tower_notes(towers: Sequence[Tower], owners: Sequence[Tower],
                params: Sequence[ParamOfId],
                frozen_ids: Mapping[str, Sequence[int]],
                scale_of: Callable[[str, int], float],
                threshold: float) -> List[str]:
    """The notes under the table on ids without a group, tower by tower:
    those ``freeze_below`` froze (:func:`.freeze_below.freeze_note`) and
    those frozen in the model (:func:`.frozen.frozen_note`); with several
    towers each starts with its tower.

    Args:
        towers: :func:`resolve_towers`'s.
        owners: The tower of each parameter (:func:`locate`).
        params: ``(full name, layer id, trainable, number of elements)``
            of every parameter, in ``owners`` order.
        frozen_ids: Tower name -> the ids ``freeze_below`` froze.
        scale_of: ``(tower name, id) -> lr scale``.
        threshold: ``paramwise_cfg.freeze_below``.

    Returns:
        list[str]: Two notes per tower, empty ones included.
    """
    notes = []
    for tower in towers:
        mine = [p for p, owner in zip(params, owners) if owner is tower]
        frozen = frozen_ids[tower.name]
        held = [(i, trainable) for n, i, trainable, _ in mine
                if n.startswith(tower.prefix) and i not in frozen]
        for note in (freeze_note(mine, frozen, partial(scale_of, tower.name),
                                 threshold),
                     frozen_note(held, getattr(tower.backbone,
                                               'frozen_stages', None),
                                 tower.attr)):
            notes.append(f'{tower.attr}: {note}'
                         if note and len(towers) > 1 else note)
    return notes
