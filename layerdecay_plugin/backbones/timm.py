"""Rule source "timm": a timm model used directly, a ``features_only``
wrapper of one, or mmpretrain's or mmseg's ``TIMMBackbone`` around either.

Ids come from the timm model's own ``group_matcher(coarse=False)``
(``coarse=True`` for ``stage_wise``), the source timm's
``param_groups_layer_decay`` uses, applied to the names the backbone
really has (:mod:`layerdecay_plugin.rules.timm` says how, and which of
timm's mistakes are not copied):

- a model with ``group_matcher`` (or a wrapper holding one, such as
  ``FeatureGetterNet.model``) gives its matcher and names;
- a wrapper that rebuilt the model (``FeatureListNet`` and co., a family's
  ``*Features`` class) has neither: the model of its
  ``pretrained_cfg['architecture']`` is built on the meta device (no
  memory, no weights) for them, and the wrapper's names are mapped back
  (``stages_0`` -> ``stages.0``);
- the timm model runs once on zeros (:mod:`.timm_order`) for its forward
  order: names the matcher leaves out are placed by it, names it only
  attaches to the previous group keep that group where it agrees,
  parameters of the model itself first used mid-network go where they are
  used, and ids that would decrease along it are raised; when the model
  cannot be mapped at all (no matcher found, or one that leaves out most
  of the model), every id comes from the forward order (``rules='auto'``'s
  block finding). All of it is logged.

Nothing here imports timm unless the backbone is a timm one.
"""
import logging
import time
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log

from ..errors import LayerDecayConfigError
from ..rules import BackboneRules
from ..rules.timm import compile_matcher, is_top_level, timm_ids_in_order
from ..rules.timm_names import original_name
from ..sharding import clean_name
from .auto import auto_layer_ids
from .timm_order import dummy_shapes, forward_order
from .types import BackboneSpec, class_path

#: mmpretrain's and mmseg's wrappers of timm models (``timm_model``).
TIMM_BACKBONES = (
    'mmpretrain.models.backbones.timm_backbone.TIMMBackbone',
    'mmseg.models.backbones.timm_backbone.TIMMBackbone',
)


def is_timm_backbone(backbone: Any) -> bool:
    """Whether a backbone is a timm model (its class or a base class is
    timm's: a model used directly or a ``features_only`` wrapper) or
    mmpretrain's or mmseg's ``TIMMBackbone``; by class path, importing
    nothing."""
    paths = [class_path(cls) for cls in type(backbone).__mro__]
    return any(path in TIMM_BACKBONES or path.startswith('timm.')
               for path in paths)


_COARSE = {'layer_wise': False, 'stage_wise': True}


def timm_model_of(backbone: Any) -> Tuple[nn.Module, str]:
    """The timm model in a timm backbone and the prefix of its names there.

    Args:
        backbone: A backbone :func:`is_timm_backbone` accepts.

    Returns:
        tuple: ``(backbone.timm_model, 'timm_model.')`` for mmpretrain's
        or mmseg's ``TIMMBackbone``, ``(backbone, '')`` for a timm model.
    """
    classes = [class_path(c) for c in type(backbone).__mro__]
    if any(path in TIMM_BACKBONES for path in classes):
        return backbone.timm_model, 'timm_model.'
    return backbone, ''


def _has_matcher(module: Any) -> bool:
    return callable(getattr(module, 'group_matcher', None))


def _reference(model: nn.Module) -> Tuple[Optional[nn.Module], str]:
    """The timm model whose ``group_matcher`` and names describe ``model``,
    and how it was found (for the log)."""
    if _has_matcher(model):
        return model, 'its group_matcher'
    for name, child in model.named_children():
        if _has_matcher(child):  # FeatureGetterNet.model, FeatureHookNet.body
            return child, f'the group_matcher of its {name!r}'
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    arch = cfg.get('architecture')
    if not arch:
        return None, ('no group_matcher and no pretrained_cfg '
                      "['architecture'] to build one from")
    import timm  # only for timm backbones

    try:
        # On the meta device: names and matcher without memory or weights.
        with torch.device('meta'):
            reference = timm.create_model(arch, pretrained=False)
        how = 'built on the meta device'
    except Exception:  # noqa: BLE001 - some models compute on tensors
        try:
            reference = timm.create_model(arch, pretrained=False)
            how = 'built on the CPU: the meta device failed'
        except Exception as exc:  # noqa: BLE001 - any failure: forward order
            return None, (f'no group_matcher; building {arch!r} to read it '
                          f'failed ({type(exc).__name__}: {exc})')
    if not _has_matcher(reference):
        return None, f'{arch!r} has no group_matcher'
    return reference, f'the group_matcher of {arch!r} ({how})'


#: Largest share of a model's parameters its group_matcher may leave out;
#: above it the matcher does not describe the model (timm 1.0.29's LeViT
#: and RepViT matchers name ViT modules they lack) and every id comes from
#: the forward order. Counted in tensors, not elements: a MobileNetV3's one
#: left-out conv_head holds half of its elements.
MAX_LEFT_OUT = 0.5


class TimmGrouping:
    """Layer ids of a timm model, per decay type, computed once each.

    Args:
        model: The timm model (bare or a ``features_only`` wrapper).
        label: How to call it in the log.
    """

    def __init__(self, model: nn.Module, label: str) -> None:
        self.model = model
        self.label = label
        self.reference, self.how = _reference(model)
        self._order: Optional[Tuple[Dict[str, int],
                                    Optional[Tuple[int, ...]]]] = None
        self._ids: Dict[str, Dict[str, int]] = {}

    def order(self, own: Tuple[str, ...] = ()
              ) -> Tuple[Dict[str, int], Optional[Tuple[int, ...]]]:
        """Name -> first use, and the dummy input shape that gave it (None:
        registration order); ``own``: the parameters of the model itself,
        timed by their first use (the same for both decay types)."""
        if self._order is None:
            self._order = forward_order(self.model, own)
        return self._order

    def ids(self, decay_type: str) -> Dict[str, int]:
        """Name (relative to the timm model) -> id; parameters that never
        run and that the matcher leaves out are absent (the head's id)."""
        if decay_type not in self._ids:
            start = time.perf_counter()
            self._ids[decay_type] = self._compute(decay_type)
            ids = self._ids[decay_type]
            print_log(
                f'layer decay: timm {self.label}, {decay_type}: '
                f'{max(ids.values(), default=0) + 1} layer ids for '
                f'{len(ids)} parameters in '
                f'{time.perf_counter() - start:.2f} s', logger='current')
        return self._ids[decay_type]

    def _compute(self, decay_type: str) -> Dict[str, int]:
        if self.reference is None:
            return self._all_from_order(decay_type, self.how)
        # Names as in the unwrapped model (FSDP units add infixes).
        names = [clean_name(n) for n, _ in self.model.named_parameters()]
        # The reference is the model itself when it carries a matcher, so
        # its names may hold FSDP's infixes too.
        known = {clean_name(n) for n, _ in self.reference.named_parameters()}
        original = {n: original_name(n, known) for n in names}
        grouping = compile_matcher(
            self.reference.group_matcher(coarse=_COARSE[decay_type]))
        # By original names: parameters of the model itself are told by them.
        grouped = {o: grouping(o) for o in original.values() if o}
        keys = {n: grouped[o] if o else None for n, o in original.items()}
        left_out = [n for n, k in keys.items() if k is None]
        if len(left_out) > MAX_LEFT_OUT * len(names):
            return self._all_from_order(
                decay_type, f'{self.how} leaves out {len(left_out)} of '
                f'{len(names)} parameters, e.g. {_some(left_out)}')
        own = tuple(n for n, o in original.items() if o and is_top_level(o))
        order, shape = self.order(own)
        ids, moved = timm_ids_in_order(keys, order, timed=shape is not None,
                                       own=own)
        self._log(decay_type, moved, shape,
                  [n for n in moved['placed'] if original[n] is None])
        return ids

    def _log(self, decay_type: str, moved: Dict[str, List[str]],
             shape: Optional[Tuple[int, ...]], unmapped: List[str]) -> None:
        source = f'the forward order on a dummy input {shape}' if shape \
            else 'registration order'
        head = f'layer decay: timm {self.label} ({decay_type}): '
        if moved['raised']:
            print_log(
                f'{head}{self.how} gives ids that decrease along the forward '
                f'pass; raised to the id before for {len(moved["raised"])} '
                f'parameter(s): {_some(moved["raised"])}', logger='current')
        if moved['prev']:
            print_log(
                f'{head}{len(moved["prev"])} parameter(s) that {self.how} '
                'attaches to the previous group, which the forward order does '
                f'not run before them, joined the group before them there: '
                f'{_some(moved["prev"])}', logger='current')
        if moved['mid']:
            print_log(
                f'{head}{len(moved["mid"])} parameter(s) of the model itself '
                f'first used mid-network, placed where {source} uses them '
                f'rather than at the stem: {_some(moved["mid"])}',
                logger='current')
        if moved['placed']:
            print_log(
                f'{head}{len(moved["placed"])} parameter(s) placed by '
                f'{source} rather than by {self.how}: '
                f'{_some(moved["placed"])}'
                + (f'; {len(unmapped)} of them not mapped back to the timm '
                   f"model's names: {_some(unmapped)}" if unmapped else ''),
                logger='current')

    def _all_from_order(self, decay_type: str, why: str) -> Dict[str, int]:
        if decay_type != 'layer_wise':
            raise LayerDecayConfigError(
                f'layer decay: timm {self.label} gets no ids from a '
                f'group_matcher ({why}), so they would come from the forward '
                "order, which knows no stages: use decay_type='layer_wise', "
                'or describe the stages with paramwise_cfg.rules=dict('
                'stage_wise=[(regex, id), ...]).')
        _, shape = self.order()
        if shape is None:
            raise LayerDecayConfigError(
                f'layer decay: timm {self.label} gets no ids from a '
                f'group_matcher ({why}), and it does not run on a dummy input '
                f'{dummy_shapes(self.model)} to give them from the forward '
                "order. Use paramwise_cfg.rules=dict(type='auto', "
                'input_shape=(1, 3, H, W)) with a shape it accepts, or '
                'paramwise_cfg.rules=dict(layer_wise=[(regex, id), ...]).')
        print_log(
            f'layer decay: timm {self.label}: no ids from a group_matcher '
            f'({why}); every id from the forward order on a dummy input '
            f"{shape}, blocks found as rules='auto' finds them",
            logger='current',
            level=logging.WARNING)
        return {clean_name(n): i
                for n, i in auto_layer_ids(self.model, shape).items()}


def _some(names: List[str]) -> str:
    return str(names[:4])[:-1] + (', ...]' if len(names) > 4 else ']')


def timm_rules(backbone: Any) -> BackboneRules:
    """Rules for a timm backbone (see the module docstring).

    Args:
        backbone: A backbone :func:`is_timm_backbone` accepts.

    Returns:
        BackboneRules: ``layer_wise`` and ``stage_wise`` rules; ids are
        computed the first time a rule runs, once per decay type.
    """
    model, prefix = timm_model_of(backbone)
    label = type(model).__name__
    arch = (getattr(model, 'pretrained_cfg', None) or {}).get('architecture')
    if arch:
        label += f" ('{arch}')"
    if prefix:
        label = f'{type(backbone).__name__} of {label}'
    grouping = TimmGrouping(model, label)

    def rule_for(decay_type: str):

        def rule(name: str, num_layers: int, depths=()) -> int:
            if not name.startswith(prefix):
                return num_layers + 1
            return grouping.ids(decay_type).get(name[len(prefix):],
                                                num_layers + 1)

        return rule

    return BackboneRules(
        f'timm {label}', {t: rule_for(t) for t in _COARSE},
        lambda depths, decay_type: max(
            max(grouping.ids(decay_type).values(), default=0), 1))


def spec_by_timm(backbone: Any) -> Optional[BackboneSpec]:
    """timm's ``group_matcher`` rules for a timm backbone, else None."""
    if not is_timm_backbone(backbone):
        return None
    return BackboneSpec(timm_rules(backbone),
                        source="timm's group_matcher of the model")
