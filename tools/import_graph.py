"""The package's import graph, read from the source (every import, those
inside functions too): its circles, the arrows that run back up the
layers of docs/design.md, and the size of each module.

Usage: python tools/import_graph.py [--dot]

Run by tests/light/test_light_structure.py, which fails on any circle,
upward arrow or module over MAX_LINES.
"""
import ast
import sys
from pathlib import Path
from typing import Dict, List, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = 'layerdecay_plugin'
MAX_LINES = 350

#: The pipeline, bottom to top: a module may import only from its own
#: layer or the ones below it (the first prefix that matches decides).
LAYERS: Tuple[Tuple[str, ...], ...] = (
    ('errors', 'one_pass_adamw'),
    ('rules', ),
    ('sharding', 'groupnames'),
    ('backbones.types', 'backbones.depths', 'backbones.families'),
    ('config', ),
    ('backbones', ),
    ('runner_context', 'messages', 'checks'),
    ('options', 'grouping', 'table', 'report'),
    ('resume', 'registry'),
    ('constructor', 'hooks'),
    ('cli', 'summary', '__main__', '__init__'),
)


def module_name(path: Path) -> str:
    """``backbones/auto.py`` -> ``backbones.auto``; a package's
    ``__init__.py`` is the package (the root's is ``__init__``)."""
    parts = list(path.relative_to(ROOT / PACKAGE).with_suffix('').parts)
    if parts[-1] == '__init__' and len(parts) > 1:
        parts = parts[:-1]
    return '.'.join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom,
             known: Set[str]) -> List[str]:
    """Modules of the package an ``ImportFrom`` names."""
    if node.level:
        base = module.split('.') if module != '__init__' else []
        if not is_package:
            base = base[:-1]
        base = base[:len(base) - (node.level - 1)] if node.level > 1 \
            else base
        target = '.'.join(base + ([node.module] if node.module else []))
    elif node.module and (node.module == PACKAGE
                          or node.module.startswith(PACKAGE + '.')):
        target = node.module[len(PACKAGE) + 1:]
    else:
        return []
    # `from . import auto` names a module; `from .x import name` names x.
    subs = [f'{target}.{a.name}' if target else a.name for a in node.names]
    found = [sub for sub in subs if sub in known]
    if len(found) < len(subs):
        found.append(target or '__init__')
    return [f for f in found if f in known]


def graph() -> Dict[str, Set[str]]:
    """Module -> modules of the package it imports (anywhere in it)."""
    files = {module_name(p): p for p in (ROOT / PACKAGE).rglob('*.py')}
    known = set(files)
    edges: Dict[str, Set[str]] = {m: set() for m in files}
    for module, path in files.items():
        is_package = path.name == '__init__.py'
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                edges[module].update(_resolve(module, is_package, node,
                                              known))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith(PACKAGE + '.'):
                        name = alias.name[len(PACKAGE) + 1:]
                        if name in known:
                            edges[module].add(name)
        edges[module].discard(module)
    return edges


def cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components of more than one module."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def layer_of(module: str) -> int:
    """The layer of a module (the first prefix in :data:`LAYERS`)."""
    for level, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + '.') for p in prefixes):
            return level
    raise KeyError(f'{module} is in no layer of tools/import_graph.LAYERS')


def upward(edges: Dict[str, Set[str]]) -> List[Tuple[str, str]]:
    """Imports of a module from a higher layer than its own."""
    return sorted((a, b) for a, targets in edges.items() for b in targets
                  if layer_of(b) > layer_of(a))


def sizes() -> Dict[str, int]:
    """Lines of each module."""
    return {module_name(p): len(p.read_text().splitlines())
            for p in (ROOT / PACKAGE).rglob('*.py')}


def main() -> int:
    edges = graph()
    if '--dot' in sys.argv:
        print('digraph layerdecay_plugin {')
        for a, targets in sorted(edges.items()):
            for b in sorted(targets):
                print(f'  "{a}" -> "{b}";')
        print('}')
        return 0
    circles, up = cycles(edges), upward(edges)
    big = {m: n for m, n in sizes().items() if n > MAX_LINES}
    print(f'{len(edges)} modules, '
          f'{sum(map(len, edges.values()))} imports between them')
    print(f'circles: {len(circles)}' + ''.join(f'\n  {c}' for c in circles))
    print(f'upward arrows: {len(up)}' + ''.join(f'\n  {a} -> {b}'
                                                for a, b in up))
    print(f'modules over {MAX_LINES} lines: {len(big)}' + ''.join(
        f'\n  {m}: {n}' for m, n in sorted(big.items())))
    return 1 if circles or up or big else 0


if __name__ == '__main__':
    sys.exit(main())
