"""Warnings about the user's config that are not errors, attributed to the
config file rather than to mmengine's or this package's files.
"""
import contextlib
import os
import re
import sys
import warnings
from contextvars import ContextVar
from typing import Iterator, Optional

_CONFIG_FILE: ContextVar[Optional[str]] = ContextVar(
    'layerdecay_config_file', default=None)
# Frames in these packages are never the place a user should look at.
_LIBRARY_PACKAGES = ('mmengine', 'mmdet', 'mmpretrain', 'mmcv', 'torch',
                     'layerdecay_plugin')


@contextlib.contextmanager
def config_file(path: Optional[str]) -> Iterator[None]:
    """Attribute config messages emitted inside the block to ``path``.

    Args:
        path: The config file being built (the CLI sets it; under a
            ``Runner`` the runner's ``cfg.filename`` is found without it).
    """
    token = _CONFIG_FILE.set(path)
    try:
        yield
    finally:
        _CONFIG_FILE.reset(token)


def warn_in_config(message: str, key: str) -> None:
    """``UserWarning`` attributed to the config that sets ``key``.

    The location is the config file (set by :func:`config_file`, or the
    file of the ``Runner`` building the optimizer) at the first line naming
    ``key``; without a config file, the first calling frame outside
    mmengine, mmdet, torch and this package.

    Args:
        message: The warning text; it names the config key itself.
        key: The string to look for in the config file.
    """
    path = _CONFIG_FILE.get() or _runner_config_file()
    if path and os.path.isfile(path):
        lineno = _line_of(path, key)
        if lineno is None:
            message += (f' (It is not in {os.path.basename(path)}: it comes '
                        'from a _base_ config or --cfg-options.)')
        warnings.warn_explicit(message, UserWarning, path, lineno or 1)
        return
    frame = _user_frame()
    if frame is None:
        warnings.warn(message, UserWarning, stacklevel=2)
        return
    warnings.warn_explicit(message, UserWarning, frame.f_code.co_filename,
                           frame.f_lineno,
                           module=frame.f_globals.get('__name__'),
                           module_globals=frame.f_globals)


def _line_of(path: str, key: str) -> Optional[int]:
    pattern = re.compile(r'''['"]''' + re.escape(key) + r'''['"]''')
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            if pattern.search(line):
                return lineno
    return None


def _runner_config_file() -> Optional[str]:
    # Under mmengine's Runner the optimizer is built inside
    # Runner.build_optim_wrapper; its config file is the user's.
    runner_mod = sys.modules.get('mmengine.runner.runner')
    if runner_mod is None:
        return None
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get('self')
        if isinstance(owner, runner_mod.Runner):
            return getattr(owner.cfg, 'filename', None)
        frame = frame.f_back
    return None


def _is_library(filename: str) -> bool:
    parts = re.split(r'[\\/]', filename)
    return filename.startswith('<frozen') or any(
        p in _LIBRARY_PACKAGES for p in parts)


def _user_frame():
    frame = sys._getframe(1)
    while frame is not None and _is_library(frame.f_code.co_filename):
        frame = frame.f_back
    return frame

