"""Rule source "registered functions": ``register_backbone_rules`` teaches
the class table a backbone class (and its subclasses) from a module listed
in ``custom_imports``.
"""
from typing import Callable, Optional, Union

from ..rules import BackboneRules, IdRule, per_block_min_num_layers
from .classes import BACKBONES
from .depths import attr_depths
from .types import BackboneSpec, Depths, class_path


def register_backbone_rules(backbone_cls: Union[type, str],
                            layer_wise: IdRule,
                            stage_wise: Optional[IdRule] = None,
                            depths: Optional[Depths] = None,
                            min_num_layers: Optional[Callable] = None,
                            name: Optional[str] = None) -> None:
    """Teach the constructor a backbone class (and its subclasses).

    Args:
        backbone_cls: The class, or its ``'module.QualName'``.
        layer_wise: ``rule(name, num_layers, depths) -> id`` for
            ``layer_wise``; ``name`` is relative to the backbone, backbone ids
            run 0..num_layers, ``num_layers + 1`` is the head's.
        stage_wise: The same for ``stage_wise``; without it that decay type
            is refused for this class.
        depths: ``backbone -> blocks per stage``; defaults to the
            ``depths`` attribute.
        min_num_layers: ``(depths, decay_type) -> int``; defaults to the
            block count (layer_wise) and stage count (stage_wise).
        name: Family name for messages; defaults to the class name.
    """
    path = backbone_cls if isinstance(backbone_cls,
                                      str) else class_path(backbone_cls)
    ids = {'layer_wise': layer_wise}
    if stage_wise is not None:
        ids['stage_wise'] = stage_wise
    BACKBONES[path] = BackboneSpec(
        BackboneRules(name or path.rsplit('.', 1)[-1], ids, min_num_layers
                      or per_block_min_num_layers), depths
        or attr_depths('depths'))
