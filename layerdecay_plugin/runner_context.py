"""The mmengine runner that is building the optimizer, if any.

Why the stack: under mmengine's ``Runner`` (and ``FlexibleRunner``) the
optimizer is built inside the runner's own methods, and the constructor
mmengine calls gets no argument naming the runner's config (only the
``optim_wrapper`` dict and the model). The config file and the
``param_scheduler`` the plugin checks against its groups are known to the
runner alone. It is the nearest frame whose ``self`` is a runner; nothing
else is read from the frames.
"""
import sys
from typing import Any, Optional

_RUNNERS = (('mmengine.runner.runner', 'Runner'),
            ('mmengine.runner._flexible_runner', 'FlexibleRunner'))


def building_runner() -> Optional[Any]:
    """The ``Runner`` or ``FlexibleRunner`` on the call stack, else None."""
    classes = tuple(
        getattr(sys.modules[module], name) for module, name in _RUNNERS
        if module in sys.modules and hasattr(sys.modules[module], name))
    if not classes:
        return None
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get('self')
        if isinstance(owner, classes):
            return owner
        frame = frame.f_back
    return None


def runner_config(key: str) -> Any:
    """``key`` of the building runner's config (None without a runner or
    without the key)."""
    runner = building_runner()
    cfg = getattr(runner, 'cfg', None)
    return None if cfg is None else cfg.get(key)
