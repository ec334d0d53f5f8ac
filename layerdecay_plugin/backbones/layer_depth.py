"""Rule source "``get_layer_depth``": a backbone of no known class that
implements mmpretrain's ``get_layer_depth(param_name, prefix)`` protocol
is served through that method.
"""
from typing import Any, Optional, Sequence

from ..rules import BackboneRules
from .classes import with_difference
from .types import BackboneSpec, class_path


def spec_by_layer_depth(backbone: Any) -> Optional[BackboneSpec]:
    """Rules from the backbone's ``get_layer_depth``, or None without one.

    Its depths run 0 (stem) .. n - 1 (head), so ``num_layers`` needs
    ``n - 2``; the head's depth maps to ours, ``num_layers + 1``.
    """
    if not callable(getattr(backbone, 'get_layer_depth', None)):
        return None
    theirs = backbone.get_layer_depth('', prefix='')[1]

    def rule(name: str, num_layers: int, depths: Sequence[int] = ()) -> int:
        depth, total = backbone.get_layer_depth(name)
        return num_layers + 1 if depth == total - 1 else depth

    rules = BackboneRules(
        f'{type(backbone).__name__} (get_layer_depth)', {'layer_wise': rule},
        lambda depths, decay_type: theirs - 2)
    return BackboneSpec(rules, source=with_difference(
        f'{type(backbone).__name__}.get_layer_depth',
        class_path(type(backbone))))
