"""``paramwise_cfg.components`` against the model, and what it gives.

A component is a module path (``'bbox_head'``, ``'decoder'``); a parameter
belongs to the longest path that is its name or a prefix of it at a ``.``
boundary, and that path's factor multiplies its lr: the lr mmengine's
options give it (``base_lr`` where none does), before the layer-decay scale.
Weight decay is never touched. Each path must give its factor to at least
one trained parameter, else the build stops with an error that says why
(no such module, with close paths; a module without parameters; only frozen
parameters; every parameter taken by a longer path). Torch-free.
"""
import difflib
from typing import (Any, Collection, Dict, Iterable, List, Mapping,
                    Optional, Tuple)

from ..config.components import COMPONENTS_KEY
from ..errors import LayerDecayConfigError

_WHERE = f'optim_wrapper.paramwise_cfg.{COMPONENTS_KEY}'
# Wrapper modules' attributes (FSDP, activation checkpointing), which no
# config names.
_WRAPPERS = ('_fsdp_wrapped_module', '_checkpoint_wrapped_module')


def under(name: str, path: str) -> bool:
    """Whether ``name`` is ``path`` or lies under it (``path`` is a prefix
    at a ``.`` boundary: ``'neck'`` covers ``'neck.conv.weight'``, not
    ``'necks.0.weight'``)."""
    return name == path or name.startswith(path + '.')


def component_of(name: str, paths: Iterable[str]) -> Optional[str]:
    """The component a parameter belongs to: the longest of ``paths`` it
    lies :func:`under`, or None."""
    best = None
    for path in paths:
        if under(name, path) and (best is None or len(path) > len(best)):
            best = path
    return best


def apply_components(options: Mapping[int, Mapping[str, Any]],
                     params: Iterable[Tuple[str, int]],
                     components: Mapping[str, float],
                     base_lr: float) -> Dict[int, Dict[str, Any]]:
    """mmengine's per-parameter options with the component factors applied.

    Args:
        options: What mmengine's options give each parameter, by key
            (``id(param)``): ``lr``, ``weight_decay``, extra keys; a
            parameter without options may be missing.
        params: ``(full name, key)`` of each trainable parameter.
        components: Module path -> lr factor (``paramwise_cfg.components``).
        base_lr: The optimizer's lr.

    Returns:
        dict: A new dict of options: under a component with a factor other
        than 1, ``lr`` is the option's lr (``base_lr`` where none was set)
        times the factor; nothing else changes, ``weight_decay`` included.
    """
    result = {key: dict(value) for key, value in options.items()}
    for name, key in params:
        path = component_of(name, components)
        if path is None or components[path] == 1:
            continue
        option = result.setdefault(key, {})
        option['lr'] = option.get('lr', base_lr) * components[path]
    return result


def check_components(components: Mapping[str, float],
                     all_names: Collection[str],
                     trainable_names: Collection[str],
                     module_names: Collection[str]) -> None:
    """Refuse a component that gives its factor to no trained parameter.

    Args:
        components: Module path -> lr factor.
        all_names: Names of all the model's parameters, frozen included.
        trainable_names: Names of the parameters the optimizer gets.
        module_names: The model's module names (``named_modules()``).

    Raises:
        LayerDecayConfigError: Naming the path, why it gives its factor to
            nothing, and the fix.
    """
    counts = component_counts(components, trainable_names)
    for path, factor in components.items():
        if counts[path]:
            continue
        where = f'{_WHERE}[{path!r}]={factor:g}'
        trained = [n for n in trainable_names if under(n, path)]
        frozen = [n for n in all_names if under(n, path)]
        if trained:
            longer = sorted({component_of(n, components) for n in trained})
            raise LayerDecayConfigError(
                f'{where} gives its factor to no parameter: each of the '
                f'{len(trained)} it covers lies under a longer path of '
                f'{COMPONENTS_KEY} ({", ".join(map(repr, longer))}; the '
                'longest path wins). Drop the entry, or drop the longer '
                'ones.')
        if frozen:
            raise LayerDecayConfigError(
                f'{where} matches only parameters that are not trained '
                f'({len(frozen)}, e.g. {frozen[0]!r}: requires_grad=False, '
                'a frozen_stages of the model, or left out by '
                'paramwise_cfg.freeze_below), so its factor changes '
                'nothing. Drop the entry, or train those parameters.')
        if path in module_names:
            raise LayerDecayConfigError(
                f'{where}: the model has the module {path!r}, but it holds '
                'no parameter (a loss, an activation, a container left '
                'empty), so its factor changes nothing. Drop the entry or '
                'name the module that holds the parameters.')
        raise LayerDecayConfigError(
            f'{where} matches no module or parameter of the model.'
            f'{_hint(path, all_names, module_names)} A key is the full '
            'dotted path from the model, as model.named_modules() names '
            "it, e.g. 'neck' or 'bbox_head.cls_branches'.")


def component_counts(components: Mapping[str, float],
                     names: Iterable[str]) -> Dict[str, int]:
    """How many of ``names`` each component gives its factor to."""
    counts = dict.fromkeys(components, 0)
    for name in names:
        path = component_of(name, components)
        if path is not None:
            counts[path] += 1
    return counts


def components_note(components: Mapping[str, float],
                    trainable_names: Iterable[str]) -> str:
    """One log line: each component's factor and how many trained tensors
    it gives it to (the groups show it as ``_lr_x{factor}``)."""
    counts = component_counts(components, trainable_names)
    listed = ', '.join(f'{path!r} x{factor:g} ({counts[path]} tensors)'
                       for path, factor in components.items())
    return (f'layer decay: paramwise_cfg.{COMPONENTS_KEY} multiply the lr '
            f'(not the weight decay) of: {listed}; a parameter under '
            'several takes the longest path.')


def _hint(path: str, all_names: Iterable[str],
          module_names: Iterable[str]) -> str:
    candidates = _paths(all_names, module_names)
    if path.startswith('module.') and path[len('module.'):] in candidates:
        return (f' Did you mean {path[len("module."):]!r}? Paths are '
                "taken without a wrapper's 'module.' prefix.")
    # deeper or shallower than given: 'decoder' for 'transformer.decoder'
    # (mmdet 3 keeps it at the top), or the other way round
    parts = path.split('.')
    tails = {'.'.join(parts[i:]) for i in range(1, len(parts))}
    nested = sorted(c for c in candidates
                    if c.endswith('.' + path) or c in tails)
    if nested:
        return (' The model has it at '
                f'{" and ".join(map(repr, nested[:3]))}.')
    close = difflib.get_close_matches(path, sorted(candidates), n=3,
                                      cutoff=0.6)
    if close:
        return f' Did you mean {" or ".join(map(repr, close))}?'
    top = sorted({c.split('.')[0] for c in candidates})
    return f' Its top-level modules are {", ".join(top[:12])}.'


def _paths(all_names: Iterable[str],
           module_names: Iterable[str]) -> List[str]:
    """Every module path and parameter name of the model, wrappers left
    out."""
    paths = {m for m in module_names if m}
    for name in all_names:
        parts = name.split('.')
        paths.update('.'.join(parts[:i]) for i in range(1, len(parts) + 1))
    return [p for p in paths if not any(w in p for w in _WRAPPERS)]

