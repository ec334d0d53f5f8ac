"""timm models: layer ids from the model's own ``group_matcher``.

timm describes the layers of each of its models with
``model.group_matcher(coarse)``: a dict of regexes (or a function) that
``timm.optim.param_groups_layer_decay`` turns into layer ids with
``timm.models.group_with_matcher``. :func:`timm_group_keys` and
:func:`timm_layer_ids` do the same on plain names, so that ids can be
computed for the names a backbone really has: those of a bare timm model,
or of a ``features_only`` wrapper mapped back with :func:`original_name`.

Ids follow timm's grouping minus its known mistakes:

- parameters of the model itself (``cls_token``, register and
  distillation tokens, position tables, ...) get the stem's id 0 (timm
  missed ``reg_token`` for a long time, which put it at the deepest
  layer's lr);
- names the matcher leaves out (a bare model's classifier too), and names
  it only attaches to the previous group (timm's ``MATCH_PREV_GROUP``
  suffix ``99999``: ``^norm``, which up to timm 1.0.29 also caught a ViT's
  ``norm_pre`` that runs before the first block), are placed by the
  forward order (:func:`fill_from_order`), not at the deepest group;
- where timm's ids would decrease along the forward pass, they are raised
  to the largest id before (:func:`running_max`), so that no layer runs
  after a deeper one with a smaller lr;
- ids never depend on ``requires_grad`` (timm's depend on which parameters
  exist, so the caller passes every name, frozen ones included).

Torch-free: the torch side is
``layerdecay_plugin.backbones.timm``.
"""
import re
from itertools import chain
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping,
                    Optional, Tuple, Union)

#: timm's suffix for "same group as the previous one" (``MATCH_PREV_GROUP``).
MATCH_PREV = 99999.

Key = Tuple[float, ...]
#: ``name -> key``; None for a name the matcher leaves out.
Grouping = Callable[[str], Optional[Key]]
Matcher = Union[Mapping[str, Any], Callable[[str], Any]]


def compile_matcher(matcher: Matcher) -> Grouping:
    """A timm ``group_matcher`` as a function from name to sort key.

    Same keys as ``timm.models._manipulate.group_with_matcher``: for a dict
    matcher, ``(group ordinal, *regex groups, *suffix)`` of the first regex
    that matches; for a function matcher, its value as a tuple.

    Args:
        matcher: What ``model.group_matcher(coarse)`` returns.

    Returns:
        Callable: ``name -> key``, None where timm would use ``inf`` (the
        name is left out).
    """
    if not isinstance(matcher, Mapping):

        def call(name: str) -> Optional[Key]:
            value = matcher(name)
            key = tuple(value) if isinstance(value, (tuple, list)) else (
                value, )
            key = tuple(float(v) for v in key)
            return None if float('inf') in key else key

        return call
    compiled = []
    for ordinal, spec in enumerate(matcher.values()):
        if spec is None:
            continue
        if isinstance(spec, (tuple, list)):
            compiled += [(re.compile(regex), (ordinal, ), suffix)
                         for regex, suffix in spec]
        else:
            compiled.append((re.compile(spec), (ordinal, ), None))

    def match(name: str) -> Optional[Key]:
        for regex, prefix, suffix in compiled:
            found = regex.match(name)
            if found:
                parts = (prefix, found.groups(), suffix)
                return tuple(
                    map(float, chain.from_iterable(filter(None, parts))))
        return None

    return match


def timm_layer_ids(keys: Mapping[str, Optional[Key]]) -> Dict[str, int]:
    """timm's layer ids of the names its matcher matches.

    As ``group_with_matcher``: keys sorted, one id per distinct key, a key
    ending in :data:`MATCH_PREV` joining the previous id. Names left out
    (key None) are absent here; timm would give them one more id.

    Args:
        keys: Name -> key from :func:`compile_matcher`.

    Returns:
        dict: Matched name -> id, from 0.
    """
    ids_of: Dict[Key, int] = {}
    layer = -1
    for key in sorted({k for k in keys.values() if k is not None}):
        if layer < 0 or key[-1] != MATCH_PREV:
            layer += 1
        ids_of[key] = layer
    return {n: ids_of[k] for n, k in keys.items() if k is not None}


def is_top_level(name: str) -> bool:
    """Whether a name (relative to the timm model) is a parameter of the
    model itself rather than of a submodule: its class, register and
    distillation tokens, position tables, CoaT's per-stage class tokens.
    They belong to the stem: they enter with the embedding, and their use
    cannot be timed (the model's own call starts before everything)."""
    return '.' not in name


def anchored_ids(keys: Mapping[str, Optional[Key]]) -> Dict[str, int]:
    """Ids of the names whose place timm's matcher really states.

    timm's ids (:func:`timm_layer_ids`) of names matched without the
    "previous group" suffix, tokens at the stem's id; the others (left out,
    or matched with the suffix) are for :func:`fill_from_order`.

    Args:
        keys: Name -> key from :func:`compile_matcher`, every parameter of
            the model (frozen ones included).

    Returns:
        dict: Name -> id for the anchored names.
    """
    ids = timm_layer_ids(keys)
    anchored = {
        name: ids[name]
        for name, key in keys.items()
        if key is not None and key[-1] != MATCH_PREV
    }
    anchored.update((name, 0) for name in keys if is_top_level(name))
    return anchored


def fill_from_order(anchored: Mapping[str, int], names: Iterable[str],
                    first_call: Mapping[str, int]) -> Dict[str, int]:
    """Ids of the other names from the forward order.

    A name gets the id of the next anchored parameter to run after it (the
    smallest id among those that run later), or the largest id when none
    runs later: so ids never decrease along the forward pass as long as the
    anchored ones do not. A name whose module never runs is absent (it gets
    the head's id).

    Args:
        anchored: Name -> id from :func:`anchored_ids`.
        names: The names to place.
        first_call: Name -> index of the first call of its module.

    Returns:
        dict: Placed name -> id.
    """
    timed = sorted((first_call[n], i) for n, i in anchored.items()
                   if n in first_call)
    last = max(anchored.values(), default=0)
    placed = {}
    for name in names:
        if name not in first_call:
            continue
        later = [i for t, i in timed if t > first_call[name]]
        placed[name] = min(later) if later else last
    return placed


def dense_ids(ids: Mapping[str, int]) -> Dict[str, int]:
    """Ids renumbered 0, 1, 2, ... in their order (an id no name holds any
    more leaves no gap)."""
    rank = {old: new for new, old in enumerate(sorted(set(ids.values())))}
    return {name: rank[i] for name, i in ids.items()}


def running_max(ids: Mapping[str, int], first_call: Mapping[str, int]
                ) -> Tuple[Dict[str, int], List[str]]:
    """Ids raised where they would decrease along the forward pass.

    Walking the names in forward order, an id below the largest one seen
    so far is raised to it (CaiT's matcher deliberately gives its
    class-token blocks, which run last, the ids of earlier blocks). Names
    whose module never runs keep their id.

    Args:
        ids: Name -> id.
        first_call: Name -> index of the first call of its module.

    Returns:
        tuple: The new ids, and the names that were raised.
    """
    out = dict(ids)
    raised = []
    top = -1
    for name in sorted((n for n in ids if n in first_call),
                       key=lambda n: (first_call[n], ids[n])):
        if out[name] < top:
            out[name] = top
            raised.append(name)
        top = max(top, out[name])
    return out, raised


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
