"""Light tier guard: fail the run if mmdet, mmcv or mmpretrain got imported.

Run alone with ``pytest --confcutdir=tests/light tests/light``: then
``tests/conftest.py`` (which imports mmdet) is not loaded, and anything that
imports the heavy stack on the way (a test, a helper, the plugin itself) is
a bug of this tier, caught at the end of the session. Collected by the full
run, ``tests/conftest.py`` has already imported mmdet, so the check is off.
"""
import sys
from typing import List, Mapping, Optional

import pytest

#: Top-level packages the light tier must never import.
HEAVY = ('mmdet', 'mmcv', 'mmpretrain')


def heavy_modules(modules: Optional[Mapping] = None) -> List[str]:
    """Top-level heavy packages present in ``modules``.

    Args:
        modules: A module table; defaults to ``sys.modules``.

    Returns:
        list[str]: The entries of :data:`HEAVY` that were imported.
    """
    modules = sys.modules if modules is None else modules
    return [name for name in HEAVY if name in modules]


# Decided once, at import: only a light-only run (no heavy package loaded
# by an outer conftest) can prove that the tier stays light.
ENFORCE = not heavy_modules()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Turn a passing light-only run into a failure if it went heavy."""
    found = heavy_modules()
    if ENFORCE and found:
        reporter = session.config.pluginmanager.get_plugin('terminalreporter')
        message = (f'light test tier imported {", ".join(found)}: it must '
                   'need only torch, mmengine, pytest and hypothesis')
        if reporter is not None:
            # Own line: -q leaves the cursor after the progress dots.
            reporter.write(f'\nERROR: {message}\n', red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
