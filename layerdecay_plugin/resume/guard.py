"""The optimizer side of the resume guard: :func:`guard_resume` gives the
optimizer our constructor builds ``load_state_dict`` / ``state_dict``
instance methods that check every state it loads
(:func:`~.message.check_state_dict`) and record its settings in every
state it saves; :func:`record_of` reads those settings back.
"""
import logging
import types
from typing import Any, Dict, Mapping, Optional

from mmengine.logging import print_log

from .message import check_state_dict
from .settings import STATE_KEY


def guard_resume(optimizer, record: Mapping, mode: str = 'error') -> None:
    """Make ``optimizer`` check every state dict it loads against its own
    groups (:func:`~.message.check_state_dict`) before loading anything,
    and record ``record`` in the state dicts it saves (under
    :data:`~.settings.STATE_KEY`).

    Instance methods, not ``Optimizer.register_load_state_dict_pre_hook``:
    torch 2.0 has no such hook, and ``ZeroRedundancyOptimizer`` loads its
    per-rank state before calling the hooks. Every path that ends in
    ``optimizer.load_state_dict`` goes through it: mmengine's
    ``Runner.resume`` and ``load_or_resume``, ``OptimWrapper`` /
    ``AmpOptimWrapper.load_state_dict``, FSDP after
    ``optim_state_dict_to_load``, ``ZeroRedundancyOptimizer``, and the
    base optimizer of DeepSpeed's ZeRO.

    Args:
        optimizer (torch.optim.Optimizer): The optimizer the constructor
            built.
        record: :func:`~.settings.settings_record` of the config it was
            built from.
        mode: ``paramwise_cfg.resume_mismatch``.
    """
    optimizer._layer_decay_resume = (dict(record), mode)
    # On the instance, so torch's Optimizer.__getstate__ (which keeps only
    # defaults, state and param_groups) leaves them out of copies.
    optimizer.load_state_dict = types.MethodType(_load_state_dict, optimizer)
    optimizer.state_dict = types.MethodType(_state_dict, optimizer)


def record_of(optimizer) -> Optional[Dict[str, Any]]:
    """The settings an optimizer was built with.

    Args:
        optimizer (torch.optim.Optimizer): Any optimizer.

    Returns:
        dict | None: Its :func:`~.settings.settings_record` (with the
        backbone ``family`` and the ``num_layers`` in effect), or None for
        an optimizer the plugin did not build.
    """
    guard = getattr(optimizer, '_layer_decay_resume', None)
    return None if guard is None else dict(guard[0])


def check_load(optimizer, state_dict: Mapping) -> None:
    """Check a state dict that ``optimizer`` (or a wrapper of it, such as
    DeepSpeed's ZeRO optimizer) is about to load, as its own
    ``load_state_dict`` does; nothing for an optimizer
    :func:`guard_resume` did not guard.

    Args:
        optimizer (torch.optim.Optimizer): The optimizer the constructor
            built.
        state_dict: The optimizer state about to be loaded into it.

    Raises:
        LayerDecayConfigError: See :func:`~.message.check_state_dict`.
    """
    guard = getattr(optimizer, '_layer_decay_resume', None)
    if guard is None:
        return
    record, mode = guard
    warning = check_state_dict(optimizer.param_groups, record, state_dict,
                               mode)
    if warning is not None:
        print_log(warning, logger='current', level=logging.WARNING)


def _load_state_dict(self, state_dict: dict) -> None:
    check_load(self, state_dict)
    type(self).load_state_dict(self, state_dict)


def _state_dict(self) -> dict:
    state = type(self).state_dict(self)
    # Not on ranks where ZeroRedundancyOptimizer returns nothing.
    if isinstance(state, dict) and 'param_groups' in state:
        state[STATE_KEY] = dict(self._layer_decay_resume[0])
    return state
