"""Warnings about the user's config that are not errors, attributed to the
config file rather than to mmengine's or this package's files.
"""
import contextlib
import os
import re
import sys
import warnings
from typing import Iterator, List, Optional

from .runner_context import building_runner

# Frames in these packages are never the place a user should look at.
_LIBRARY_PACKAGES = ('mmengine', 'mmdet', 'mmpretrain', 'mmcv', 'torch',
                     'layerdecay_plugin')


class ConfigWarning(UserWarning):
    """A ``UserWarning`` about a config key; it carries the key, so that
    whoever knows the config file can point at the line that sets it
    (:func:`warn_at_config`).

    Args:
        message: The warning text; it names the config key itself.
        key: The string to look for in the config file.
    """

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


def warn_in_config(message: str, key: str) -> None:
    """:class:`ConfigWarning` attributed to the config that sets ``key``.

    Under mmengine's ``Runner`` (or ``FlexibleRunner``) the location is the
    runner's config file at the first line naming ``key``; otherwise the
    first calling frame outside mmengine, mmdet, torch and this package (a
    caller that knows the config file re-attributes it:
    :func:`config_warnings`).

    Args:
        message: The warning text; it names the config key itself.
        key: The string to look for in the config file.
    """
    warning = ConfigWarning(message, key)
    path = _runner_config_file()
    if path and os.path.isfile(path):
        warn_at_config(warning, path)
        return
    frame = _user_frame()
    if frame is None:
        warnings.warn(warning, stacklevel=2)
        return
    warnings.warn_explicit(warning, ConfigWarning, frame.f_code.co_filename,
                           frame.f_lineno,
                           module=frame.f_globals.get('__name__'),
                           module_globals=frame.f_globals)


def warn_at_config(warning: ConfigWarning, path: str) -> None:
    """Emit ``warning`` at the first line of the config file ``path`` that
    names its key (line 1, and a note saying where else it may come from,
    when none does).

    Args:
        warning: The warning.
        path: The config file (it exists).
    """
    lineno = _line_of(path, warning.key)
    if lineno is None:
        warning = ConfigWarning(
            f'{warning} (It is not in {os.path.basename(path)}: it comes '
            'from a _base_ config or --cfg-options.)', warning.key)
    warnings.warn_explicit(warning, ConfigWarning, path, lineno or 1)


@contextlib.contextmanager
def config_warnings(path: str) -> Iterator[None]:
    """Attribute the :class:`ConfigWarning` s emitted inside the block to
    the config file ``path`` (:func:`warn_at_config`); other warnings are
    emitted again as they were. For a caller that builds from a config
    outside a ``Runner``: the inspect command.

    Args:
        path: The config file being built.
    """
    caught: List[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            yield
    finally:
        for item in caught:
            if isinstance(item.message, ConfigWarning):
                warn_at_config(item.message, path)
            else:
                warnings.warn_explicit(item.message, item.category,
                                       item.filename, item.lineno,
                                       source=item.source)


def _line_of(path: str, key: str) -> Optional[int]:
    pattern = re.compile(r'''['"]''' + re.escape(key) + r'''['"]''')
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            if pattern.search(line):
                return lineno
    return None


def _runner_config_file() -> Optional[str]:
    """The config file of the runner building the optimizer, if any (why
    the stack: see :mod:`.runner_context`)."""
    return getattr(getattr(building_runner(), 'cfg', None), 'filename', None)


def _is_library(filename: str) -> bool:
    parts = re.split(r'[\\/]', filename)
    return filename.startswith('<frozen') or any(
        p in _LIBRARY_PACKAGES for p in parts)


def _user_frame():
    """The first calling frame outside the libraries, or None.

    Why the stack: called from plain code (a script, a test) with no config
    file, the warning belongs at the caller's line; how many library frames
    lie in between (mmengine's builders, the constructor) varies, so no
    fixed ``stacklevel`` finds it.
    """
    frame = sys._getframe(1)
    while frame is not None and _is_library(frame.f_code.co_filename):
        frame = frame.f_back
    return frame
