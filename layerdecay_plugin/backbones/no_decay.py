"""The parameters a backbone itself says get no weight decay.

timm models (and the original Swin and Swin-V2 code) declare them:
``no_weight_decay()`` returns parameter names (timm matches them with
``fnmatch``; some older models return module names, such as Swin-V2's
``cpb_mlp``) and ``no_weight_decay_keywords()`` returns substrings of
names (Swin-V2: ``cpb_mlp``, ``logit_scale``,
``relative_position_bias_table``). Any module of the backbone may declare
them (a timm model inside mmpretrain's ``TIMMBackbone``), for the names
below it. ``paramwise_cfg.model_no_decay=False`` leaves them out.
"""
from fnmatch import fnmatchcase
from typing import Dict, Iterable, List, NamedTuple, Tuple

import torch.nn as nn

from ..sharding import clean_name

#: The methods read, in the order they are reported.
METHODS = ('no_weight_decay', 'no_weight_decay_keywords')


class Declared(NamedTuple):
    """What one module of the backbone declares.

    Attributes:
        owner: The module's path in the backbone (``''``: the backbone).
        method: ``'no_weight_decay'`` or ``'no_weight_decay_keywords'``.
        names: The names or keywords it returns, sorted.
    """
    owner: str
    method: str
    names: Tuple[str, ...]


def declared_no_decay(backbone: nn.Module) -> List[Declared]:
    """What the backbone's modules declare with :data:`METHODS`.

    Args:
        backbone: The backbone (FSDP units inside it are looked through).

    Returns:
        list[Declared]: One entry per module and method that returns a
        non-empty collection of strings, in module order.
    """
    found = []
    for path, module in backbone.named_modules():
        for method in METHODS:
            # the class's, not an attribute forwarded by a wrapper
            if not callable(getattr(type(module), method, None)):
                continue
            names = getattr(module, method)()
            if names:
                found.append(Declared(clean_name(path), method,
                                      tuple(sorted(map(str, names)))))
    return found


def _declares(declared: Declared, name: str) -> bool:
    """Whether ``declared`` covers ``name`` (relative to its owner)."""
    if declared.method == 'no_weight_decay_keywords':
        return any(word in name for word in declared.names)
    return any(fnmatchcase(name, pattern) or name.startswith(pattern + '.')
               for pattern in declared.names)


def model_no_decay(declared: Iterable[Declared], names: Iterable[str],
                   prefix: str) -> Dict[str, Declared]:
    """The parameters the declarations cover.

    Args:
        declared: What :func:`declared_no_decay` found.
        names: Full names of the model's trainable parameters.
        prefix: The backbone's path in the model, with its dot
            (``'backbone.'``).

    Returns:
        dict: Full name -> the first declaration that covers it.
    """
    declared = list(declared)
    covered: Dict[str, Declared] = {}
    for name in names:
        if not name.startswith(prefix):
            continue
        rel = name[len(prefix):]
        for entry in declared:
            owner = entry.owner + '.' if entry.owner else ''
            if rel.startswith(owner) and _declares(entry, rel[len(owner):]):
                covered[name] = entry
                break
    return covered


def declared_note(declared: Iterable[Declared], covered: Dict[str, Declared],
                  owner: str) -> str:
    """The log line that says what the backbone declared and what it
    covers; empty when it declares nothing.

    Args:
        declared: What :func:`declared_no_decay` found.
        covered: What :func:`model_no_decay` found.
        owner: The backbone's path in the model, e.g. ``'backbone'``.
    """
    parts = []
    for entry in declared:
        where = f'{owner}.{entry.owner}' if entry.owner else owner
        count = sum(1 for e in covered.values() if e is entry)
        parts.append(f'{where}.{entry.method}() = '
                     f'{", ".join(entry.names)} ({count} trainable '
                     f'parameter{"s" if count != 1 else ""})')
    if not parts:
        return ''
    return ('layer decay: no weight decay for what the backbone declares: '
            + '; '.join(parts) + ' (paramwise_cfg.model_no_decay=False '
            'ignores them)')
