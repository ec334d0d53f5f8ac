"""What every rule source of :mod:`layerdecay_plugin.backbones` returns and
shares: a backbone's rules plus how to read its blocks per stage.

Torch-free: backbones are read by duck typing (``named_parameters``,
attributes), classes are named by their import path, so nothing here
imports mmdet, mmpretrain or timm.
"""
from typing import Any, Callable, List, NamedTuple, Optional, Sequence

from ..rules import BackboneRules

#: ``backbone -> blocks per stage`` (each family says what it counts).
Depths = Callable[[Any], Sequence[int]]


def no_depths(backbone: Any) -> Sequence[int]:
    """For rules that read nothing from the module (config regexes, auto,
    timm, ``get_layer_depth``)."""
    return []


class BlockNames(NamedTuple):
    """How a family's parameter names show its blocks per stage.

    Attributes:
        pattern: Regex matched at the start of a name relative to the
            backbone, with a group ``block`` (block index in its stage) and,
            for backbones with stages, a group ``stage``.
        first_stage: Index of the first stage in names (1 for ResNet's
            ``layer1``).
        num_stages: Stages the family always has (stages without
            parameters count 0 blocks); None: as many as the names show.
    """
    pattern: str
    first_stage: int = 0
    num_stages: Optional[int] = None


class BackboneSpec(NamedTuple):
    """The rules of a backbone, how to read its blocks per stage, and how
    they were chosen.

    Attributes:
        rules: The id rules.
        depths: Reads blocks per stage from the module.
        source: How the rules were chosen, for the log and for messages.
        block_names: Where ``depths`` fails (a custom class without the
            attribute), blocks per stage are read from parameter names.
    """
    rules: BackboneRules
    depths: Depths = no_depths
    source: str = 'class'
    block_names: Optional[BlockNames] = None


def class_path(cls: type) -> str:
    """``'module.QualName'`` of a class."""
    return f'{cls.__module__}.{cls.__qualname__}'


def param_names(backbone: Any) -> List[str]:
    """Every parameter name of a module (frozen ones included); none for
    an object without ``named_parameters``."""
    named = getattr(backbone, 'named_parameters', None)
    return [n for n, _ in named()] if callable(named) else []
