"""timm models: layer ids from the model's own ``group_matcher``.

timm describes the layers of each of its models with
``model.group_matcher(coarse)``: a dict of regexes (or a function) that
``timm.optim.param_groups_layer_decay`` turns into layer ids with
``timm.models.group_with_matcher``. :func:`compile_matcher` and
:func:`timm_layer_ids` do the same on plain names, so that ids can be
computed for the names a backbone really has: those of a bare timm model,
or of a ``features_only`` wrapper mapped back with
:func:`layerdecay_plugin.rules.timm_names.original_name`.

Ids follow timm's grouping minus its known mistakes
(:func:`timm_ids_in_order`):

- parameters of the model itself (``cls_token``, register and
  distillation tokens, position tables, ...) that enter with the
  embedding get the stem's id 0 (timm missed ``reg_token`` for a long
  time, which put it at the deepest layer's lr); those first used after a
  deeper layer has run (Visformer's ``pos_embed2``, CaiT's ``cls_token``,
  :func:`enters_mid_network`) keep timm's id where the forward order
  agrees, and else join the layer that takes them (CaiT's class-attention
  blocks), not the stem;
- names the matcher leaves out (a bare model's classifier too) are placed
  by the forward order (:func:`fill_from_order`), not at the deepest
  group;
- names it only attaches to the previous group (timm's
  ``MATCH_PREV_GROUP`` suffix ``99999``: a stage's transition or
  downsample, final norms) keep that group's id where the forward order
  agrees, and join the previous group in the forward order where it does
  not (:func:`follow_prev`: ``^norm`` also caught a ViT's ``norm_pre``,
  which runs before the first block, up to timm 1.0.29);
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
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional,
                    Tuple, Union)

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
    distillation tokens, position tables, CoaT's per-stage class tokens,
    Visformer's per-stage position tables."""
    return '.' not in name


def enters_mid_network(name: str, anchored: Mapping[str, int],
                       first_use: Mapping[str, int]) -> bool:
    """Whether a parameter of the model itself is first used after a layer
    deeper than the stem has run (Visformer's ``pos_embed2``, CaiT's
    ``cls_token``), rather than with the embedding (a ViT's tokens).

    Args:
        name: A name :func:`is_top_level` accepts.
        anchored: Name -> id of the names the matcher places.
        first_use: Name -> index of its first use in the forward order;
            a parameter of the model itself counts as used when a tensor
            operation takes it, not when the model is called.
    """
    if name not in first_use:
        return False
    return any(i > 0 and first_use.get(n, first_use[name]) < first_use[name]
               for n, i in anchored.items())


def where_it_fits(anchored: Mapping[str, int], wanted: Mapping[str, int],
                  first_call: Mapping[str, int]) -> Dict[str, int]:
    """The names of ``wanted`` whose id lies between the ids of the
    anchored names (and of those kept before them) that run before and
    after them, with that id.

    Args:
        anchored: Name -> id, not decreasing along ``first_call``.
        wanted: Name -> the id timm gives it.
        first_call: Name -> index of its first use.
    """
    timed = [(first_call[n], i) for n, i in anchored.items()
             if n in first_call]
    kept: Dict[str, int] = {}
    for name in sorted((n for n in wanted if n in first_call),
                       key=first_call.__getitem__):
        when, want = first_call[name], wanted[name]
        before = [i for t, i in timed if t <= when] + list(kept.values())
        after = [i for t, i in timed if t >= when]
        if max(before, default=want) <= want <= min(after, default=want):
            kept[name] = want
    return kept


def follow_prev(anchored: Mapping[str, int], wanted: Mapping[str, int],
                first_call: Mapping[str, int]
                ) -> Tuple[Dict[str, int], List[str]]:
    """Ids of the names timm attaches to the previous group.

    timm's suffix ``99999`` gives a transition or downsample that ends a
    stage (CSPNet's ``conv_transition``, DenseNet's and HRNet's
    ``transition``) the id of the stage's last block. A name keeps that id
    where the forward order agrees (:func:`where_it_fits`); else it gets
    the id of the last name before it: the previous group in the forward
    order (a ViT's ``norm_pre``, which ``^norm`` caught up to timm 1.0.29
    but runs before the first block, joins the embedding, as timm 1.0.31
    puts it; EfficientViM's ``norm.0``, on stage 0's output, joins stage 0
    rather than the last one).

    Args:
        anchored: Name -> id of the names the matcher places, not
            decreasing along ``first_call``.
        wanted: Name -> timm's id (:func:`timm_layer_ids`).
        first_call: Name -> index of the first call of its module.

    Returns:
        tuple: Name -> id for the names that ran, and those of them that
        did not keep timm's id.
    """
    kept = where_it_fits(anchored, wanted, first_call)
    timed = [(first_call[n], i) for n, i in chain(anchored.items(),
                                                  kept.items())
             if n in first_call]
    placed = dict(kept)
    moved = [n for n in wanted if n in first_call and n not in kept]
    for name in moved:
        when = first_call[name]
        before = [i for t, i in timed if t <= when]
        placed[name] = max(before) if before else min(
            (i for t, i in timed), default=0)
    return placed, moved


def timm_ids_in_order(keys: Mapping[str, Optional[Key]],
                      first_call: Mapping[str, int], timed: bool = True,
                      own: Optional[Iterable[str]] = None
                      ) -> Tuple[Dict[str, int], Dict[str, List[str]]]:
    """Layer ids of every name: timm's (:func:`timm_layer_ids`) minus the
    fixes of the module docstring.

    Args:
        keys: Name -> key from :func:`compile_matcher` (None: left out),
            every parameter of the model (frozen ones included).
        first_call: Name -> index of the first call of its module (of its
            first use, for a parameter of the model itself).
        timed: Whether ``first_call`` is the forward order (False: it is
            the registration order, no ids are raised and every parameter
            of the model itself is at the stem).
        own: The parameters of the model itself (default: the names
            :func:`is_top_level` accepts; a wrapper's names differ).

    Returns:
        tuple: Name -> id (dense, from 0; names that never ran and that
        the matcher leaves out are absent), and the names each fix moved:
        ``raised`` (:func:`running_max`), ``placed`` (by
        :func:`fill_from_order`), ``prev`` (timm's previous group given up
        for the one before them in the forward order, :func:`follow_prev`),
        ``mid`` (parameters of the model itself that enter mid-network,
        not at the stem).
    """
    theirs = timm_layer_ids(keys)
    own = [n for n in keys if is_top_level(n)] if own is None else [
        n for n in own if n in keys]
    prev = {n: i for n, i in theirs.items()
            if keys[n][-1] == MATCH_PREV and n not in own}
    anchored = {n: i for n, i in theirs.items()
                if keys[n][-1] != MATCH_PREV and n not in own}
    mid = [n for n in own
           if timed and enters_mid_network(n, anchored, first_call)]
    anchored.update((n, 0) for n in own if n not in mid)
    raised: List[str] = []
    if timed:
        anchored, raised = running_max(anchored, first_call)
    # Tokens that enter mid-network keep timm's id where it fits, else
    # they join the layer that takes them (fill_from_order).
    anchored.update(where_it_fits(anchored, {
        n: theirs[n] for n in mid
        if n in theirs and keys[n][-1] != MATCH_PREV}, first_call))
    after_prev, moved = follow_prev(anchored, prev, first_call)
    anchored.update(after_prev)
    rest = [n for n in keys if n not in anchored]
    ids = dict(anchored)
    ids.update(fill_from_order(anchored, rest, first_call))
    return dense_ids(ids), dict(raised=raised, placed=rest, mid=mid,
                                prev=moved)


def fill_from_order(anchored: Mapping[str, int], names: Iterable[str],
                    first_call: Mapping[str, int]) -> Dict[str, int]:
    """Ids of the other names from the forward order.

    A name gets the id of the next anchored parameter to run after it (the
    smallest id among those that run later), or the largest id when none
    runs later: so ids never decrease along the forward pass as long as the
    anchored ones do not. A name whose module never runs is absent (it gets
    the head's id).

    Args:
        anchored: Name -> id of the names already placed.
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
