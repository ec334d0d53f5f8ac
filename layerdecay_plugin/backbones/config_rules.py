"""Rule source "config regexes": ``paramwise_cfg.rules`` given as ordered
``(regex, id)`` pairs (validated and compiled by
:mod:`layerdecay_plugin.config.rules_key`), checked against the backbone.

In the spirit of timm's group matchers: the first regex that matches a
parameter name (relative to the backbone, ``re.match``) decides its id.

``id`` is one of

- an int: that id; if a capture group of the regex matched a number, that
  number plus this int (``(r'^blocks\\.(\\d+)\\.', 1)`` puts ``blocks.i`` at
  ``i + 1``);
- ``'last'``: ``num_layers`` (e.g. a final norm that goes with the last
  block);
- ``'head'``: ``num_layers + 1``, the lr of the neck and heads.

Torch-free; every problem raises :class:`LayerDecayConfigError`.
"""
from typing import Dict, List, Sequence, Tuple


from ..errors import LayerDecayConfigError
from ..rules import BackboneRules, IdRule, Matcher
from .types import BackboneSpec


def _resolve(matchers: List[Matcher], name: str,
             num_layers: int) -> Tuple[int, int]:
    """(matcher index, id) of a name, or (-1, -1) when nothing matches."""
    for index, (regex, value) in enumerate(matchers):
        match = regex.match(name)
        if not match:
            continue
        if value == 'last':
            return index, num_layers
        if value == 'head':
            return index, num_layers + 1
        numbers = [g for g in match.groups() if g is not None and g.isdigit()]
        if numbers:
            return index, int(numbers[0]) + value
        return index, value
    return -1, -1


def rules_from_matchers(matchers: Dict[str, List[Matcher]],
                        names: Sequence[str]) -> BackboneRules:
    """Turn compiled matchers into rules, checked against the backbone.

    Every trainable backbone parameter must match some regex and every regex
    must match some parameter, so typos cannot pass silently. The minimum
    ``num_layers`` is the largest id an int rule gives.

    Args:
        matchers: From :func:`parse_matchers`.
        names: Trainable parameter names relative to the backbone.

    Returns:
        BackboneRules: Rules named ``'config rules'``.
    """
    minimum = {}
    for decay_type, pairs in matchers.items():
        where = f'paramwise_cfg.rules[{decay_type!r}]'
        resolved = [(_resolve(pairs, n, 0), n) for n in names]
        unmatched = [n for (index, _), n in resolved if index < 0]
        if unmatched:
            raise LayerDecayConfigError(
                f'{where} match no rule for {len(unmatched)} backbone '
                f'parameter(s), e.g. {unmatched[:5]}; add a rule for them '
                "(or a catch-all (r'.*', 'head')).")
        used = {index for (index, _), _ in resolved}
        for index, (regex, _) in enumerate(pairs):
            if index not in used:
                raise LayerDecayConfigError(
                    f'{where}[{index}]: regex {regex.pattern!r} matches no '
                    'trainable backbone parameter (earlier rules may take '
                    'them all); fix or remove it.')
        minimum[decay_type] = max(
            [1] + [layer for (index, layer), _ in resolved
                   if pairs[index][1] not in ('last', 'head')])

    def make(pairs: List[Matcher]) -> IdRule:
        return lambda name, num_layers, depths=(): _resolve(
            pairs, name, num_layers)[1]

    return BackboneRules('config rules',
                         {t: make(p) for t, p in matchers.items()},
                         lambda depths, decay_type: minimum[decay_type])


def spec_from_matchers(matchers: Dict[str, List[Matcher]],
                       names: Sequence[str]) -> BackboneSpec:
    """The config's regex rules as a spec (see :func:`rules_from_matchers`)."""
    return BackboneSpec(rules_from_matchers(matchers, names),
                        source='config (paramwise_cfg.rules regexes)')
