"""Sphinx configuration of the documentation site: README.md and docs/*.md,
written in MyST Markdown (as OpenMMLab's projects are). Built by
``make docs``; nothing is fetched from the network (no intersphinx)."""
import re
import tomllib
from pathlib import Path

from docutils import nodes

ROOT = Path(__file__).resolve().parents[1]
# The version from pyproject.toml: importing the package would import torch.
_project = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']

project = _project['name']
release = version = _project['version']
copyright = '2026, the layerdecay_plugin authors'

# sphinx_copybutton: a copy button on every code block (commands, configs).
extensions = ['myst_parser', 'sphinx_copybutton']
source_suffix = {'.md': 'markdown'}
root_doc = 'index'
exclude_patterns = ['_build']
# Anchors for `page.md#a-heading` links, as GitHub makes them.
myst_heading_anchors = 3

# Furo (pinned in requirements-dev.txt): a wide, readable text column, a
# search box and the page's own contents. _static/custom.css wraps long code
# lines and wide tables, so at 1280 px nothing scrolls sideways
# (tests/test_docs_render.py checks it in a headless browser).
html_theme = 'furo'
html_title = f'{project} {release}'
html_static_path = ['_static']
html_css_files = ['custom.css']


# Inline code in a table may break after . ( , / = (an invisible <wbr>, not
# copied with the text): without it a table of long identifiers (the one in
# backbones.md) is wider than the text column at 1280 px and scrolls sideways.
_BREAK_AFTER = re.compile(r'(?<=[.(,/=])(?=\S)')


def _break_code_in_tables(app, doctree, docname):
    if app.builder.format != 'html':
        return
    for table in doctree.findall(nodes.table):
        for text in list(table.findall(nodes.Text)):
            if not isinstance(text.parent, nodes.literal):
                continue
            parts = _BREAK_AFTER.split(str(text))
            if len(parts) > 1:
                pieces = [nodes.Text(parts[0])]
                for part in parts[1:]:
                    pieces += [nodes.raw('', '<wbr>', format='html'),
                               nodes.Text(part)]
                text.parent.replace(text, pieces)


def setup(app):
    app.connect('doctree-resolved', _break_code_in_tables)
