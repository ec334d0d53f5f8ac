"""The package's structure (docs/design.md, "Layout of the code"): no
import circle, lazy imports included; no import that runs back up the
pipeline's layers; no module over tools/import_graph.MAX_LINES lines."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'tools'))
import import_graph  # noqa: E402


def test_no_import_circle():
    assert import_graph.cycles(import_graph.graph()) == []


def test_every_module_has_a_layer_and_no_import_runs_up():
    edges = import_graph.graph()
    for module in edges:
        import_graph.layer_of(module)  # raises for a module in no layer
    assert import_graph.upward(edges) == []


def test_no_module_is_too_big():
    big = {m: n for m, n in import_graph.sizes().items()
           if n > import_graph.MAX_LINES}
    assert big == {}


def test_the_graph_sees_lazy_imports_and_circles(tmp_path, monkeypatch):
    """The checker itself: an import inside a function counts, and a
    circle through it is found."""
    package = tmp_path / import_graph.PACKAGE
    package.mkdir()
    (package / '__init__.py').write_text('')
    (package / 'a.py').write_text('from .b import x\n')
    (package / 'b.py').write_text('def f():\n    from . import a\n')
    monkeypatch.setattr(import_graph, 'ROOT', tmp_path)
    edges = import_graph.graph()
    assert edges['b'] == {'a'}
    assert import_graph.cycles(edges) == [['a', 'b']]
