"""Sphinx configuration of the documentation site: README.md and docs/*.md,
written in MyST Markdown (as OpenMMLab's projects are). Built by
``make docs``; nothing is fetched from the network (no intersphinx)."""
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The version from pyproject.toml: importing the package would import torch.
_project = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']

project = _project['name']
release = version = _project['version']
copyright = '2026, the layerdecay_plugin authors'

extensions = ['myst_parser']
source_suffix = {'.md': 'markdown'}
root_doc = 'index'
exclude_patterns = ['_build']
# Anchors for `page.md#a-heading` links, as GitHub makes them.
myst_heading_anchors = 3

html_theme = 'alabaster'
html_title = f'{project} {release}'
html_theme_options = {'description': 'Layer-wise lr decay for MMDetection 3.x'}
