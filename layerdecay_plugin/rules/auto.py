"""The torch-free half of ``rules='auto'``: which modules are blocks, and how blocks recorded in forward order become layer ids.

``layerdecay_plugin.backbones.auto`` describes the backbone's module tree to
:func:`find_blocks` (see there: repeated siblings of one class, the
innermost ones), runs the backbone once on a dummy input and records the
order in which parameter-owning modules first run; :func:`ids_from_order`
turns that order into ids:

- everything that runs before the first block is the stem: id 0, except
  what sits in the first block's stage (its downsample conv);
- blocks get consecutive ids in the order they first run (from 1 after a
  stem, else from 0);
- a parameter outside every block (a downsample layer, a transition, a
  final norm) gets the id of the next block to run, or the last block's id
  when no block runs after it: as in timm's ``group_matcher``, a stage's
  downsample goes with the stage's first block;
- the last block's id is the inferred ``num_layers``.

Ids therefore never decrease along the forward pass.
"""
# typing's generics, not collections.abc's: those are subscriptable only
# from Python 3.9, and the package supports 3.8.
from typing import (Collection, Dict, Iterable, List, Mapping,
                    NamedTuple, Optional, Sequence, Set, Tuple)

AUTO = 'auto'

#: Default dummy input: one 224 px RGB image, the size classification
#: backbones are built for (windowed attention and fixed position tables
#: accept it).
DEFAULT_INPUT_SHAPE = (1, 3, 224, 224)


class AutoRules(NamedTuple):
    """``paramwise_cfg.rules='auto'``, validated.

    Attributes:
        input_shape: Shape of the dummy input the backbone runs on once.
    """
    input_shape: Tuple[int, ...] = DEFAULT_INPUT_SHAPE


def ids_from_order(owners: Sequence[Tuple[Sequence[str], bool]],
                   staged: Collection[int] = ()) -> Dict[str, int]:
    """Layer ids from parameter owners listed in forward order.

    Args:
        owners: ``(parameter names, is_block)`` per owner, in the order the
            owners first run: a block with all its parameters, or a module
            outside every block with its own. With no block at all, every
            owner counts as one.
        staged: Indices of owners that run before the first block but are
            no stem: they sit in the first block's stage (its downsample
            conv) and go with it; unless nothing runs before them.

    Returns:
        dict: Parameter name -> layer id; the largest id is the last
        block's, the inferred ``num_layers``.
    """
    if not owners:
        return {}
    if not any(is_block for _, is_block in owners):
        owners = [(names, True) for names, _ in owners]
    first = next(i for i, (_, is_block) in enumerate(owners) if is_block)
    stem = [i < first and i not in staged for i in range(len(owners))]
    if not any(stem):  # the first stage's first module is the stem
        stem = [i < first for i in range(len(owners))]
    block_ids: List[Optional[int]] = []
    next_id = 1 if any(stem) else 0
    for _, is_block in owners:
        block_ids.append(next_id if is_block else None)
        next_id += is_block
    ids: Dict[str, int] = {}
    following = next_id - 1  # the last block's id
    # Walk backwards so that an owner outside the blocks takes the id of the
    # next block to run (or the last block's when none follows).
    for index in range(len(owners) - 1, -1, -1):
        names, _ = owners[index]
        if block_ids[index] is not None:
            following = block_ids[index]
        layer = 0 if stem[index] else following
        ids.update((name, layer) for name in names)
    return ids


#: Parameter-owning modules a repeated module needs to be a block (a
#: residual or transformer block); repeated pairs (a conv + norm) are
#: blocks only in a backbone without any bigger one, elsewhere they are the
#: parts of blocks (timm's ``ConvNormAct``) or transitions (a downsample).
BLOCK_MODULES = 3
PAIR_MODULES = 2


class ModuleNode(NamedTuple):
    """What :func:`find_blocks` needs to know of one module.

    Attributes:
        kind: Its class path; None for a container that never runs itself
            (``nn.ModuleList``, ``nn.ModuleDict``) and so is never a block.
        owners: Parameter-owning modules in its subtree, itself included.
        generic: A plain container class (``nn.Sequential``): one of them
            is like another only among siblings.
        element: A numbered element of a container (``nn.Sequential``,
            ``nn.ModuleList``, ``nn.ModuleDict``), not a named attribute.
    """
    kind: Optional[str]
    owners: int
    generic: bool = False
    element: bool = False


def _parent(name: str) -> str:
    return name.rpartition('.')[0]


def _alike_siblings(modules: Mapping[str, ModuleNode], among: Iterable[str]
                    ) -> Tuple[Set[str], Set[Optional[str]]]:
    """Those of ``among`` that have a sibling of their kind in ``among``
    (attributes of a numbered element excepted, see :func:`_repeated`),
    and their kinds that are classes, not plain containers."""
    siblings: Dict[Tuple[str, Optional[str]], List[str]] = {}
    for name in among:
        siblings.setdefault((_parent(name), modules[name].kind),
                            []).append(name)
    repeated = {name for (parent, _), names in siblings.items()
                if len(names) > 1 and (modules[names[0]].element
                                       or not modules[parent].element)
                for name in names}
    return repeated, {modules[name].kind for name in repeated
                      if not modules[name].generic}


def _repeated(modules: Mapping[str, ModuleNode], min_owners: int) -> Set[str]:
    """Modules of ``min_owners`` or more owners that repeat, and their kin.

    Repeated: a sibling is of the same kind, except for attributes of a
    numbered element of a container: those are its parts (a MaxViT block's
    ``attn_block`` and ``attn_grid``, a GhostNet bottleneck's ``ghost1``
    and ``ghost2``), the element is the block. Kin: the other modules of such
    a class (RegNet's ``s1.b1``, its stage's only ``Bottleneck``), and the
    other heavy children of a parent of repeated modules or of a module
    like that parent next to it (EfficientNet's ``blocks.0.0``, the only
    block of its ``Sequential``, of a class no other block has).
    """
    heavy = {name: node for name, node in modules.items()
             if name and node.kind is not None and node.owners >= min_owners}
    repeated, kinds = _alike_siblings(modules, heavy)
    holders = {_parent(name) for name in repeated}
    # Two ModuleLists of one parent are not alike (ConvNeXt's
    # downsample_layers and stages).
    like = {(_parent(name), modules[name].kind) for name in holders
            if name and modules[name].kind is not None}
    holders |= {name for name, node in modules.items()
                if name and (_parent(name), node.kind) in like}
    return repeated | {name for name, node in heavy.items()
                       if node.kind in kinds or _parent(name) in holders}


def _innermost(modules: Mapping[str, ModuleNode],
               repeated: Set[str]) -> List[str]:
    """The repeated modules without a repeated one inside, in module
    order."""
    outer = set()
    for name in repeated:
        while name:
            name = _parent(name)
            outer.add(name)
    return [name for name in modules if name in repeated and name not in outer]


def _container(node: ModuleNode) -> bool:
    return node.kind is None or node.generic


def _inside(name: str, outer: str) -> bool:
    return name.startswith(outer + '.')


def _blocks_in(modules: Mapping[str, ModuleNode],
               stages: Sequence[str]) -> Dict[str, List[str]]:
    """Two-module blocks held in stages: stage -> its blocks.

    Held: a module of two or more owners whose parent is a plain container
    (an ``nn.Sequential``, ``nn.ModuleList``, ``nn.ModuleDict``) inside the
    stage, or the stage itself when it is one. Held modules of one kind
    that repeat among siblings, and the other held modules of that class,
    are blocks (the outermost of them). Attributes of a class are its parts
    (a RegNet ``Bottleneck``'s three conv + norm pairs), never held.
    """
    held: Dict[str, str] = {}
    for stage in stages:
        held.update((name, stage) for name, node in modules.items()
                    if _inside(name, stage) and node.kind is not None
                    and node.owners >= PAIR_MODULES
                    and _container(modules[_parent(name)]))
    repeated, kinds = _alike_siblings(modules, held)
    inner = repeated | {name for name in held if modules[name].kind in kinds}
    found: Dict[str, List[str]] = {}
    for name in modules:
        if name in inner and not any(_inside(name, o) for o in inner):
            found.setdefault(held[name], []).append(name)
    return found


def _stages_of_pairs(modules: Mapping[str, ModuleNode], stages: List[str]
                     ) -> Optional[Dict[str, List[str]]]:
    """Stage -> its two-module blocks, when every stage holds some.

    The stages must be two or more siblings of one kind, each holding
    blocks (see :func:`_blocks_in`) and besides them only modules of fewer
    than three owners (a downsample conv, the transitions of a CSP stage),
    so that a stem of conv + norm pairs, or a stage whose weight sits in a
    bigger module, stays one block. None otherwise.
    """
    if len(stages) < 2 or len({(_parent(name), modules[name].kind)
                               for name in stages}) > 1:
        return None
    found = _blocks_in(modules, stages)
    for stage in stages:
        blocks = found.get(stage)
        if not blocks:
            return None
        for name, node in modules.items():
            if (_inside(name, stage) and node.kind is not None
                    and node.owners >= BLOCK_MODULES
                    and not any(name == block or _inside(name, block)
                                or _inside(block, name)
                                for block in blocks)):
                return None
    return found


def find_blocks(modules: Mapping[str, ModuleNode]) -> List[str]:
    """A backbone's blocks: its innermost repeated modules.

    A module is repeated when a sibling (another child of its parent: in a
    ``Sequential``, ``ModuleList``, ``ModuleDict``, or a plain attribute
    like RegNet's ``b1``, ``b2``) is of the same kind; its kin count too
    (see :func:`_repeated`). Only the innermost count: a Swin's
    ``stages.i.blocks.j``, not ``stages.i``; a RegNet's ``s{i}.b{j}``, not
    its stages nor their conv + norm pairs. Modules of three or more
    parameter owners win; pairs (conv + norm) count only when there are no
    such, or inside stages: when the modules found are outermost (nothing
    around them repeats) and each holds repeated pairs in a plain container
    (stages ``[downsample conv, Block, Block]``), the pairs are the blocks
    and the rest of each stage its transitions (see
    :func:`_stages_of_pairs`). None: the backbone has no repeated
    structure.

    Args:
        modules: Every module by name relative to the backbone (``''``
            for the backbone), in the backbone's module order.

    Returns:
        list[str]: The blocks' names, in module order.
    """
    repeated = _repeated(modules, BLOCK_MODULES)
    blocks = _innermost(modules, repeated)
    if not blocks:
        return _innermost(modules, _repeated(modules, PAIR_MODULES))
    stages = [name for name in blocks
              if not any(_inside(name, other) for other in repeated)]
    inside = _stages_of_pairs(modules, stages) or {}
    return [inner for name in blocks for inner in inside.get(name, [name])]


def describe_blocks(blocks: Sequence[str], most: int = 6) -> str:
    """Where blocks are, in one short line: siblings as a range.

    Args:
        blocks: Block names, in forward order.
        most: Runs of siblings shown before the rest is elided.

    Returns:
        str: E.g. ``'s1.b1, s2.b1, s3.b1..b4, s4.b1..b7'``.
    """
    runs: List[Tuple[str, List[str]]] = []
    for name in blocks:
        parent, _, leaf = name.rpartition('.')
        if runs and runs[-1][0] == parent:
            runs[-1][1].append(leaf)
        else:
            runs.append((parent, [leaf]))
    shown = [(f'{parent}.' if parent else '')
             + (leaves[0] if len(leaves) == 1 else
                f'{leaves[0]}..{leaves[-1]}')
             for parent, leaves in runs]
    if len(shown) > most:
        shown = shown[:most - 1] + ['...', shown[-1]]
    return ', '.join(shown)
