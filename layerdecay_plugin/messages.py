"""Messages about the user's config that are not errors, attributed to the
config rather than to mmengine's or this package's files.

``custom_keys`` is checked against the whole model: a key that matches no
parameter name at all is most likely a typo (warning); one that matches only
frozen parameters, or that names a token or position table this backbone
variant lacks (mmdet's Swin configs list ``absolute_pos_embed`` for every
variant), does nothing but is not a mistake (info).
"""
import contextlib
import difflib
import logging
import os
import re
import sys
import warnings
from contextvars import ContextVar
from typing import Collection, Iterable, Iterator, Optional, Tuple

from mmengine.logging import print_log

from .rules import NO_DECAY_NAMES

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


def check_custom_keys(custom_keys: Iterable[str],
                      all_names: Collection[str],
                      trainable_names: Collection[str]) -> None:
    """Warn about ``custom_keys`` entries that match no parameter at all.

    mmengine applies ``custom_keys[key]`` to every parameter whose full name
    contains ``key``. A key matching a trainable parameter is fine and
    silent; one matching only frozen parameters, or a standard token /
    position-table name (``no_decay_names``' defaults) absent from this
    model, is logged as info; any other key gets a ``UserWarning`` with
    close parameter-name components as suggestions.

    Args:
        custom_keys: The keys of ``paramwise_cfg.custom_keys``.
        all_names: Names of all the model's parameters, frozen included.
        trainable_names: Names of the parameters that are trained.
    """
    for key in custom_keys:
        if any(key in n for n in trainable_names):
            continue
        where = f'optim_wrapper.paramwise_cfg.custom_keys[{key!r}]'
        frozen = [n for n in all_names if key in n]
        if frozen:
            print_log(
                f'{where} matches only parameters that are not trained '
                f'({len(frozen)}, e.g. {frozen[0]}: frozen or '
                'requires_grad=False); it changes nothing.',
                logger='current', level=logging.INFO)
        elif key in NO_DECAY_NAMES:
            print_log(
                f'{where}: this model has no {key!r} parameter (a standard '
                'token / position-table name that configs list for the '
                'backbone variants that have one); it changes nothing.',
                logger='current', level=logging.INFO)
        else:
            hints = difflib.get_close_matches(
                key, _name_parts(all_names), n=3, cutoff=0.6)
            hint = (f' Did you mean {" or ".join(map(repr, hints))}?'
                    if hints else '')
            warn_in_config(
                f'{where} matches no trainable or frozen parameter name of '
                f'the model, so it changes nothing.{hint} Parameter '
                'names look like '
                f'{next(iter(all_names), "?")!r}; a key matches every name '
                'that contains it.', key)


def _name_parts(names: Iterable[str]) -> Tuple[str, ...]:
    # Candidate keys: the dotted components and the name prefixes, e.g.
    # 'norm', 'backbone.stages'.
    parts = set()
    for name in names:
        pieces = name.split('.')
        parts.update(pieces)
        parts.update('.'.join(pieces[:i]) for i in range(1, len(pieces)))
    return tuple(sorted(parts))


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

