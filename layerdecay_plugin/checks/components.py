"""``paramwise_cfg.components`` against the model, and what it gives.

A component is a module path (``'bbox_head'``, ``'decoder'``); a parameter
belongs to the longest path that is its name or a prefix of it at a ``.``
boundary, and that path's factor multiplies its lr: the lr mmengine's
options give it (``base_lr`` where none does), before the layer-decay scale.
A component with a ``decay_rate`` (:class:`DecayedComponent`) gives its
``<path>.layers.<i>`` ``lr_mult * decay_rate ** (L - 1 - i)``, L being
1 + the highest ``i`` trained, and the rest under it ``lr_mult``.
Weight decay is never touched. Each path must give its factor to at least
one trained parameter, else the build stops with an error that says why
(no such module, with close paths; a module without parameters; only frozen
parameters; every parameter taken by a longer path). Torch-free.
"""
import difflib
import re
from typing import (Any, Collection, Dict, Iterable, List, Mapping,
                    Optional, Tuple)

from ..config.components import (COMPONENTS_KEY, ComponentSpec,
                                 DecayedComponent)
from ..errors import LayerDecayConfigError

_WHERE = f'optim_wrapper.paramwise_cfg.{COMPONENTS_KEY}'
# Wrapper modules' attributes (FSDP, activation checkpointing), which no
# config names.
_WRAPPERS = ('_fsdp_wrapped_module', '_checkpoint_wrapped_module')
# A layer of a component's ``layers`` (mmdet's DETR decoders), right after
# the component's path and its ``.``.
_LAYER = re.compile(r'layers\.(\d+)(?:\.|$)')
_LAYERS_IN = re.compile(r'\.layers\.\d+(?=\.|$)')


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


def layer_of(name: str, path: str) -> Optional[int]:
    """The ``i`` of a parameter under ``<path>.layers.<i>``, or None
    (``'decoder.layers.3.ffn.w'`` -> 3; ``'decoder.norm.weight'``,
    ``'decoder.ref_point_head.layers.0.weight'`` -> None)."""
    match = _LAYER.match(name, len(path) + 1) \
        if name.startswith(path + '.') else None
    return int(match.group(1)) if match else None


def layer_counts(components: Mapping[str, ComponentSpec],
                 names: Iterable[str]) -> Dict[str, int]:
    """L of each decayed component: 1 + the highest ``i`` of ``names``
    under ``<path>.layers.<i>`` (0 where there is none)."""
    names = list(names)
    return {path: 1 + max((i for i in (layer_of(n, path) for n in names)
                           if i is not None), default=-1)
            for path, spec in components.items()
            if isinstance(spec, DecayedComponent)}


def component_factors(components: Mapping[str, ComponentSpec],
                      names: Iterable[str],
                      all_names: Optional[Iterable[str]] = None
                      ) -> Dict[str, float]:
    """The lr factor of each of ``names`` that lies under a component.

    Args:
        components: Module path -> factor or :class:`DecayedComponent`.
        names: Names of the trained parameters.
        all_names: Names of all parameters, frozen ones included, whose
            ``layers.<i>`` give a decayed component's L (as a backbone
            counts its frozen layers); default ``names``.

    Returns:
        dict: Name -> factor: its component's factor, or for a decayed
        component ``lr_mult * decay_rate ** (L - 1 - i)`` in its layer
        ``i`` and ``lr_mult`` outside its layers.
    """
    names = list(names)
    counts = layer_counts(components,
                          names if all_names is None else all_names)
    factors = {}
    for name in names:
        path = component_of(name, components)
        if path is not None:
            factors[name] = _factor_in(components[path], layer_of(name, path),
                                       counts.get(path, 0))
    return factors


def _factor_in(spec: ComponentSpec, layer: Optional[int],
               count: int) -> float:
    if not isinstance(spec, DecayedComponent):
        return spec
    if layer is None:
        return spec.lr_mult
    return spec.lr_mult * spec.decay_rate**(count - 1 - layer)


def shown(spec: ComponentSpec) -> str:
    """A component's factor as the config gives it, for messages."""
    if isinstance(spec, DecayedComponent):
        return (f'dict(lr_mult={spec.lr_mult:g}, '
                f'decay_rate={spec.decay_rate:g})')
    return f'{spec:g}'


def apply_components(options: Mapping[int, Mapping[str, Any]],
                     params: Iterable[Tuple[str, int]],
                     components: Mapping[str, ComponentSpec],
                     base_lr: float,
                     all_names: Optional[Iterable[str]] = None
                     ) -> Dict[int, Dict[str, Any]]:
    """mmengine's per-parameter options with the component factors applied.

    Args:
        options: What mmengine's options give each parameter, by key
            (``id(param)``): ``lr``, ``weight_decay``, extra keys; a
            parameter without options may be missing.
        params: ``(full name, key)`` of each trainable parameter.
        components: Module path -> lr factor or :class:`DecayedComponent`
            (``paramwise_cfg.components``).
        base_lr: The optimizer's lr.
        all_names: Names of all parameters, frozen ones included (they
            count a decayed component's layers).

    Returns:
        dict: A new dict of options: where a parameter's factor
        (:func:`component_factors`) is not 1, ``lr`` is the option's lr
        (``base_lr`` where none was set) times the factor; nothing else
        changes, ``weight_decay`` included.
    """
    params = list(params)
    factors = component_factors(components, (name for name, _ in params),
                                all_names)
    result = {key: dict(value) for key, value in options.items()}
    for name, key in params:
        factor = factors.get(name, 1)
        if factor == 1:
            continue
        option = result.setdefault(key, {})
        option['lr'] = option.get('lr', base_lr) * factor
    return result


def check_components(components: Mapping[str, ComponentSpec],
                     all_names: Collection[str],
                     trainable_names: Collection[str],
                     module_names: Collection[str]) -> None:
    """Refuse a component that gives its factor to no trained parameter,
    and a ``decay_rate`` on a path without trained ``layers.<i>``.

    Args:
        components: Module path -> lr factor or :class:`DecayedComponent`.
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
        where = f'{_WHERE}[{path!r}]={shown(factor)}'
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
    for path, count in layer_counts(components, trainable_names).items():
        if not count:
            _no_layers(path, components[path], trainable_names)


def _no_layers(path: str, spec: ComponentSpec,
               trainable_names: Collection[str]) -> None:
    inside = [n for n in trainable_names if under(n, path)]
    parts = sorted({n[len(path) + 1:].split('.')[0]
                    for n in inside if n != path})
    there = (f'under it are {", ".join(parts[:8])}'
             f'{", ..." if len(parts) > 8 else ""} (e.g. {inside[0]!r})'
             if parts else f'{path!r} is a parameter')
    nested = sorted({n[:m.start()] for n in inside
                     for m in _LAYERS_IN.finditer(n)} - {path})
    hint = (f' The model has layers.<i> under '
            f'{" and ".join(map(repr, nested[:3]))}.' if nested else '')
    raise LayerDecayConfigError(
        f'{_WHERE}[{path!r}]={shown(spec)}: decay_rate decays the lr across '
        f"'{path}.layers.<i>', but no trained parameter lies in such a "
        f'layer: {there}.{hint} Give the decay_rate to the module whose '
        "layers are named layers.<i> (mmdet's DETR decoders: 'decoder'), "
        'or give the path a plain factor.')


def component_counts(components: Mapping[str, ComponentSpec],
                     names: Iterable[str]) -> Dict[str, int]:
    """How many of ``names`` each component gives its factor to."""
    counts = dict.fromkeys(components, 0)
    for name in names:
        path = component_of(name, components)
        if path is not None:
            counts[path] += 1
    return counts


def components_note(components: Mapping[str, ComponentSpec],
                    trainable_names: Iterable[str],
                    all_names: Optional[Iterable[str]] = None) -> str:
    """One log line: each component's factor (a decayed one's layers and
    the range of their factors) and how many trained tensors it gives it
    to (the groups show it as ``_lr_x{factor}``)."""
    names = list(trainable_names)
    counts = component_counts(components, names)
    layers = layer_counts(components,
                          names if all_names is None else all_names)
    listed = ', '.join(
        f'{path!r} {_noted(path, spec, names, layers.get(path, 0))} '
        f'({counts[path]} tensors)' for path, spec in components.items())
    return (f'layer decay: paramwise_cfg.{COMPONENTS_KEY} multiply the lr '
            f'(not the weight decay) of: {listed}; a parameter under '
            'several takes the longest path.')


def _noted(path: str, spec: ComponentSpec, names: List[str],
           count: int) -> str:
    if not isinstance(spec, DecayedComponent):
        return f'x{spec:g}'
    trained = sorted({layer_of(n, path) for n in names} - {None})
    if not trained:
        return f'x{spec.lr_mult:g}, no layers.<i> to decay'
    low, high = (_factor_in(spec, i, count) for i in (trained[0], count - 1))
    return (f'x{spec.lr_mult:g}, layers {trained[0]}-{count - 1} decayed '
            f'by {spec.decay_rate:g} (x{low:.3g}-x{high:.3g})')


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

