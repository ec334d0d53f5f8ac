"""Light test tier: needs only torch, mmengine, pytest and hypothesis.

A package (this ``__init__.py``) so that its ``conftest`` and modules are
imported as ``light.*`` and never replace ``tests/conftest.py`` in
``sys.modules``, which the full-stack tests import as ``conftest``.
"""
