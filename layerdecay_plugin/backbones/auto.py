"""Rule source "auto" (``paramwise_cfg.rules='auto'``): layer ids from a
backbone's forward order.

For a backbone no rule knows. The backbone runs once on a dummy input (in
eval mode, without gradients, its train/eval flags restored afterwards, so
BatchNorm statistics and the random state are untouched), forward pre-hooks
recording the order in which parameter-owning modules first run. Blocks
are found from the module tree, not from names
(:func:`layerdecay_plugin.rules.auto.find_blocks`):

- a block is a module whose class repeats among its siblings, wherever
  they are kept: an ``nn.Sequential``, ``nn.ModuleList``, ``nn.ModuleDict``
  or plain attributes (RegNet's ``s3.b1``, ``s3.b2``); so are other modules
  of its class (RegNet's ``s1.b1``, its stage's only block) and lone ones
  where blocks sit (EfficientNet's ``blocks.0.0``); attributes repeated
  inside a numbered element are its parts (MaxViT's ``attn_block`` and
  ``attn_grid``), the element is the block;
- only the innermost count: Swin's ``stages.i.blocks.j``, not
  ``stages.i``; ResNet's ``layer{i}.j``, not ``layer{i}``;
- blocks of three or more parameter-owning modules (residual, transformer
  blocks) win; repeated pairs (conv + norm) are blocks only in a backbone
  without such, or inside stages (sibling stages of one kind, each holding
  them in a plain container besides small transitions:
  ``stages.i = Sequential(downsample conv, Block, Block)``); elsewhere
  they are parts of blocks (timm's ``ConvNormAct``, a RegNet
  ``Bottleneck``'s attributes) or transitions (ConvNeXt's downsample
  layers);
- a backbone without any repeated structure gets one block per
  parameter-owning module (a VGG's convolutions).

:func:`layerdecay_plugin.rules.auto.ids_from_order` turns the recorded
order into ids (stem 0, blocks 1, 2, ... in the order they run, everything
else with the next block to run: a stage's downsample, the first stage's
too, with the stage's first block, as timm groups them). The log says
how many blocks it found and where. Cost: one forward pass at the dummy
input's size plus a hook per module, paid once when the optimizer is built
(at 224 px on one CPU thread: 0.3 s for a ResNet-50 or Swin-T, 0.6 s for a
ConvNeXt-B); the time is logged.
"""
import time
from typing import Dict, List, Optional, Tuple

import torch.nn as nn
from mmengine.logging import print_log

from ..rules.auto import AutoRules
from ..rules import BackboneRules, ids_from_order
from ..rules import auto as auto_rules
from .trace import first_call_of, first_calls, owned, param_first_calls
from .types import BackboneSpec, class_path

__all__ = ['auto_layer_ids', 'auto_spec', 'find_blocks', 'first_calls',
           'module_nodes', 'param_first_calls']


def module_nodes(backbone: nn.Module) -> Dict[str, auto_rules.ModuleNode]:
    """The backbone's module tree as :func:`find_blocks` reads it.

    Args:
        backbone: The backbone.

    Returns:
        dict: Module name (relative, ``''`` for the backbone) ->
        :class:`~layerdecay_plugin.rules.auto.ModuleNode`, in module order.
    """
    containers = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
    modules = dict(backbone.named_modules())
    nodes = {}
    for name, module in modules.items():
        # ModuleList/ModuleDict never run, so they have no place in the
        # forward order; a Sequential that only chains its children is
        # like another only next to it (a stage, a conv + norm pair, ...).
        kind = None if isinstance(module, (nn.ModuleList, nn.ModuleDict)) \
            else class_path(type(module))
        generic = isinstance(module, nn.Sequential) and \
            type(module).forward is nn.Sequential.forward
        owners = sum(1 for m in module.modules() if owned(m))
        # Numbered: timm's feature extractors are ModuleDicts of stages.
        parent, _, last = name.rpartition('.')
        element = last.isdigit() and isinstance(modules[parent], containers)
        nodes[name] = auto_rules.ModuleNode(kind, owners, generic, element)
    return nodes


def find_blocks(backbone: nn.Module) -> List[str]:
    """Module names of the backbone's blocks (see
    :func:`layerdecay_plugin.rules.auto.find_blocks`).

    Args:
        backbone: The backbone.

    Returns:
        list[str]: Block module names relative to the backbone, innermost
        blocks only, in module order; empty when it has none.
    """
    return auto_rules.find_blocks(module_nodes(backbone))


def _enclosing(name: str, blocks: set) -> Optional[str]:
    parts = name.split('.') if name else []
    for end in range(1, len(parts) + 1):
        prefix = '.'.join(parts[:end])
        if prefix in blocks:
            return prefix
    return None


def _in_stage(name: str, block: str, blocks: List[str]) -> bool:
    """Whether ``name`` and ``block`` share a module holding some blocks
    but not all (their stage: ``stages.0`` for ``stages.0.0``, the first
    stage's downsample, and ``stages.0.1``, its first block)."""
    if name == block:
        return False
    parts, theirs = name.split('.'), block.split('.')
    common = 0
    while (common < min(len(parts), len(theirs))
           and parts[common] == theirs[common]):
        common += 1
    stage = '.'.join(parts[:common])
    return bool(stage) and not all(
        b == stage or b.startswith(stage + '.') for b in blocks)


def _ids_and_blocks(backbone: nn.Module, input_shape: Tuple[int, ...]
                    ) -> Tuple[Dict[str, int], List[str]]:
    """Layer ids (see :func:`auto_layer_ids`) and the blocks that ran, in
    the order they ran."""
    calls = first_calls(backbone, input_shape)
    blocks = set(find_blocks(backbone))
    # A block starts when its first module runs (a ModuleList of blocks
    # never runs itself).
    starts = {block: min((t for n, t in calls.items()
                          if n == block or n.startswith(block + '.')),
                         default=None) for block in blocks}
    owners: Dict[str, Tuple[List[str], bool, int]] = {}
    for mname, module in backbone.named_modules():
        names = [f'{mname}.{p}' if mname else p for p in owned(module)]
        block = _enclosing(mname, blocks)
        key = mname if block is None else block
        when = first_call_of(key, calls) if starts.get(key) is None \
            else starts[key]
        if names and when is not None:
            owners.setdefault(key, ([], block is not None, when))[0].extend(
                names)
    ordered = sorted(owners.items(), key=lambda item: item[1][2])
    ran = [key for key, (_, is_block, _) in ordered if is_block]
    first = next((i for i, (_, (_, is_block, _)) in enumerate(ordered)
                  if is_block), 0)
    staged = [index for index, (key, _) in enumerate(ordered[:first])
              if _in_stage(key, ran[0], ran)]
    ids = ids_from_order([(names, is_block)
                          for _, (names, is_block, _) in ordered], staged)
    return ids, ran


def auto_layer_ids(backbone: nn.Module,
                   input_shape: Tuple[int, ...]) -> Dict[str, int]:
    """Layer id of every backbone parameter whose module runs.

    Args:
        backbone: The backbone.
        input_shape: Shape of the dummy input.

    Returns:
        dict: Parameter name relative to the backbone -> id.
    """
    return _ids_and_blocks(backbone, input_shape)[0]


def _found(backbone: nn.Module, blocks: List[str]) -> str:
    """'13 blocks (Bottleneck) at s1.b1, s2.b1, s3.b1..b4, s4.b1..b7'."""
    if not blocks:
        return ('no repeated blocks (one id per parameter-owning module, '
                'the backbone has no repeated structure)')
    modules = dict(backbone.named_modules())
    kinds = list(dict.fromkeys(type(modules[b]).__name__ for b in blocks))
    return (f'{len(blocks)} blocks ({", ".join(kinds)}) at '
            f'{auto_rules.describe_blocks(blocks)}')


def auto_spec(backbone: nn.Module, cfg: AutoRules) -> BackboneSpec:
    """Rules for ``paramwise_cfg.rules='auto'``.

    Args:
        backbone: The backbone.
        cfg: The validated auto settings.

    Returns:
        BackboneSpec: ``layer_wise`` rules from the forward order;
        parameters whose module never runs get the head's id.

    Raises:
        LayerDecayConfigError: If the dummy forward pass fails.
    """
    start = time.perf_counter()
    ids, blocks = _ids_and_blocks(backbone, cfg.input_shape)
    last = max(ids.values(), default=1)
    print_log(
        f"layer decay: rules='auto' found {_found(backbone, blocks)}; "
        f'{last + 1} layer ids (0..{last}) for {len(ids)} parameters, from '
        f'one run of {class_path(type(backbone))} on a dummy input '
        f'{tuple(cfg.input_shape)} in {time.perf_counter() - start:.2f} s',
        logger='current')

    def rule(name: str, num_layers: int, depths=()) -> int:
        return ids.get(name, num_layers + 1)

    name = f'auto ({len(blocks)} blocks)' if blocks else \
        'auto (one id per module)'
    rules = BackboneRules(name, {'layer_wise': rule},
                          lambda depths, decay_type: max(last, 1))
    return BackboneSpec(
        rules, source=f'auto (forward order on a dummy input {tuple(cfg.input_shape)})')
