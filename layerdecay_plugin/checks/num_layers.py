"""``num_layers``: inferred from the backbone when not set, refused when too
small, explained when larger than the backbone needs. Torch-free.
"""
from typing import List, NamedTuple, Optional, Sequence

from ..config.towers import tower_key
from ..errors import LayerDecayConfigError
from ..rules import BackboneRules, layer_scale


class NumLayers(NamedTuple):
    """The ``num_layers`` in effect and the note the log gets about it."""
    value: int
    note: str


def choose_num_layers(rules: BackboneRules, depths: Sequence[int],
                      names: Sequence[str], decay_type: str,
                      decay_rate: float,
                      num_layers: Optional[int],
                      tower: str = '') -> NumLayers:
    """The ``num_layers`` in effect for a backbone.

    Args:
        rules: The backbone's rules.
        depths: Its blocks per stage.
        names: Its trainable parameter names, relative to it.
        decay_type: ``paramwise_cfg.decay_type``.
        decay_rate: ``paramwise_cfg.decay_rate``.
        num_layers: ``paramwise_cfg.num_layers``, or None to infer it.
        tower: With several towers, the one this backbone is: the messages
            name it and its key ``towers[...].num_layers``.

    Returns:
        NumLayers: The value, and the note to log (``''``: none): the
        inferred value, or what an oversized one costs.

    Raises:
        LayerDecayConfigError: If ``num_layers`` is below what the
            backbone needs, naming the minimum and the scale it would give.
    """
    needed = rules.min_num_layers(depths, decay_type)
    rule = rules.ids[decay_type]
    key = (tower_key(tower, 'num_layers') if tower else
           'paramwise_cfg.num_layers')
    whose = f'{tower}: ' if tower else ''
    if num_layers is None:
        counted = (f'blocks per stage {list(depths)}' if depths else
                   'the last id its rules give; they read no blocks per '
                   'stage')
        return NumLayers(needed, (
            f'layer decay: {whose}num_layers not set, inferred {needed} for '
            f'{rules.name} ({decay_type}, {counted})'))
    if num_layers < needed:
        worst = max((layer_scale(decay_rate, num_layers,
                                 rule(n, num_layers, depths))
                     for n in names), default=1.)
        raise LayerDecayConfigError(
            f'{key}={num_layers} is too small for '
            f'this {rules.name} backbone with decay_type='
            f'{decay_type!r}: it needs num_layers >= {needed}; with '
            f'{num_layers} backbone layers would share the lr of '
            'later layers or the head, or exceed it (largest lr_scale '
            f'here: {worst:.3g}). Set num_layers={needed} or leave it out '
            'to infer it.')
    if num_layers == needed:
        return NumLayers(num_layers, '')
    # What the extra layers cost: each backbone parameter's lr_scale
    # against the one num_layers=needed gives it (the neck and heads keep
    # lr_scale 1).
    extra = [(num_layers - rule(n, num_layers, depths)) -
             (needed - rule(n, needed, depths)) for n in names]
    worse = sorted({e for e in extra if e})
    unused = sorted(set(range(num_layers + 1)) -
                    {rule(n, num_layers, depths) for n in names})
    cost = ' and '.join(
        f'{extra.count(e)} get decay_rate**{e} = {decay_rate**e:.3g} times'
        for e in worse)
    cost = (f'{cost} the lr num_layers={needed} gives them (the others, '
            'the neck and heads keep theirs)' if worse else
            f'all keep the lr num_layers={needed} gives them')
    empty = f'layer ids {unused} hold no parameter; ' if unused else ''
    return NumLayers(num_layers, (
        f'layer decay: {key}={num_layers} is larger than '
        f'this {rules.name} backbone needs with decay_type={decay_type!r} '
        f'({needed}): {empty}of its {len(names)} trainable parameters, '
        f'{cost}. Leave num_layers out, or set {needed}, unless you '
        f'reproduce a run that used {num_layers}.'))


__all__: List[str] = ['NumLayers', 'choose_num_layers']
