"""Checks of the layer ids a backbone's rules give, whatever chose the rules
(registered class, class name + layout, ``get_layer_depth``, config rules).

Torch-free: parameters arrive as ``(name, numel, trainable)`` and the rule
as a callable.
"""
import warnings
from typing import Callable, List, Optional, Sequence, Tuple

from ..errors import LayerDecayConfigError

#: ``(name relative to the backbone, number of elements, trainable)``
BackboneParam = Tuple[str, int, bool]

#: Largest share of the backbone's elements a rule may leave at the head's
#: id; above it the rule most likely does not know the backbone's names.
MAX_HEAD_SHARE = 0.5


def check_layer_ids(backbone_cls: str, source: str,
                    params: Sequence[BackboneParam],
                    layer_id: Callable[[str], int], head_id: int) -> None:
    """Refuse rules that leave most of a backbone at the head's lr.

    A rule that does not know a backbone's names gives them the head's id
    (``num_layers + 1``, lr scale 1): no layer decay, and nothing else
    shows it (mmpretrain's ``HiViT.get_layer_depth`` looks for ``layers.``
    where its blocks are ``blocks.``). The share is counted over all the
    backbone's elements, frozen ones included, so freezing stages cannot
    trip the check; a backbone with nothing trainable gets a warning
    instead, since layer decay then has no effect.

    Args:
        backbone_cls: The backbone's class path, for messages.
        source: How its rules were chosen, for messages.
        params: Every backbone parameter.
        layer_id: The rule in effect, on names relative to the backbone.
        head_id: The head's id, ``num_layers + 1``.

    Raises:
        LayerDecayConfigError: If more than :data:`MAX_HEAD_SHARE` of the
            elements get ``head_id``.
    """
    if not any(trainable and numel for _, numel, trainable in params):
        warnings.warn(
            f'layer decay: backbone {backbone_cls} has no trainable '
            'parameter (entirely frozen), so layer decay has no effect: '
            'every trained parameter gets the head\'s lr. Unfreeze part of '
            'the backbone, or use the default constructor.',
            UserWarning, stacklevel=3)
        return
    at_head = [(name, numel)
               for name, numel, layer in _with_ids(params, layer_id)
               if layer == head_id]
    total = sum(numel for _, numel, _ in params)
    share = sum(numel for _, numel in at_head) / total
    if share > MAX_HEAD_SHARE:
        examples = [name for name, _ in at_head[:5]]
        raise LayerDecayConfigError(
            f'layer decay rules for backbone {backbone_cls} (chosen by '
            f'{source}) give {share:.0%} of its elements the head\'s id '
            f'{head_id} (lr scale 1, no decay), e.g. {examples}: the rules '
            'do not know these names. Describe the backbone with '
            'paramwise_cfg.rules=dict(layer_wise=[(regex, id), ...]) or '
            'register_backbone_rules; see docs/backbones.md.')


def _with_ids(params: Sequence[BackboneParam], layer_id: Callable[[str], int]
              ) -> List[Tuple[str, int, Optional[int]]]:
    """``(name, numel, id)``; id None for a frozen name the rule rejects."""
    out = []
    for name, numel, trainable in params:
        try:
            layer: Optional[int] = layer_id(name)
        except Exception:  # noqa: BLE001 - frozen names are never grouped,
            # and rules (config regexes, registered ones) need only know
            # the trained ones
            if trainable:
                raise
            layer = None
        out.append((name, numel, layer))
    return out
