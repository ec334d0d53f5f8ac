"""Names of a timm ``features_only`` wrapper mapped back to those of the
timm model it was built from, whose ``group_matcher`` names them
(:mod:`layerdecay_plugin.rules.timm`).

Torch-free.
"""
import re
from typing import Iterator, Mapping, Optional, Union


def name_candidates(name: str) -> Iterator[str]:
    """Names a ``features_only`` wrapper's parameter may have had in the
    timm model it was built from, most likely first.

    ``FeatureListNet``/``FeatureDictNet``/``FeatureHookNet`` flatten a
    top-level ``nn.Sequential`` into ``{name}_{child}`` (``stages.0`` ->
    ``stages_0``); ``FeatureGetterNet`` and ``FeatureGraphNet`` keep the
    model under one attribute (``model.blocks.0``); a family's own
    ``*Features`` class keeps the names.

    Args:
        name: Parameter name in the wrapper.

    Yields:
        str: The name itself, then each way of turning one underscore of
        its first component into a dot (a numbered child first), then the
        name without its first component.
    """
    first, dot, rest = name.partition('.')
    yield name
    cuts = [m.start() for m in re.finditer('_', first)]
    numbered = [c for c in cuts if first[c + 1:].isdigit()]
    for cut in numbered + [c for c in cuts if c not in numbered]:
        yield f'{first[:cut]}.{first[cut + 1:]}{dot}{rest}'
    if rest:
        yield rest


def original_name(name: str, known: Union[set, Mapping]) -> Optional[str]:
    """The first of :func:`name_candidates` the timm model has.

    Args:
        name: Parameter name in the wrapper.
        known: Parameter names of the timm model the wrapper came from.

    Returns:
        str | None: The original name, None when no candidate is known.
    """
    return next((c for c in name_candidates(name) if c in known), None)
