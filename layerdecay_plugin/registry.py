"""The constructor's names in mmengine's root ``OPTIM_WRAPPER_CONSTRUCTORS``.

:data:`NAME` is unique to this plugin and the one configs should use.
:data:`SHARED_NAME`, the plugin's class name, is also taken by mmpose's
ViTPose constructor (``mmpose.engine.optim_wrappers``) and by the class of
mmengine's own tutorial, which many projects copy; both register it with
``force=True``. So the plugin registers it only where it is free, never
fails to import because another class holds it, and makes any other
holder of it (now or registered later) refuse a ``paramwise_cfg`` with
keys only this plugin knows, naming the holder and :data:`NAME`. The
holder's own configs (mmpose's ``layer_decay_rate``, the tutorial's
``decay_factor``) build it exactly as before.
"""
import types
from typing import Any, Dict, Optional

from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, Registry

from .backbones.types import class_path
from .config import LAYER_DECAY_KEYS
from .errors import LayerDecayConfigError

#: The plugin's own name: what configs write.
NAME = 'LayerDecayPluginConstructor'
#: Its class name, shared with other projects' classes.
SHARED_NAME = 'LayerDecayOptimWrapperConstructor'
#: ``paramwise_cfg`` keys that mean this plugin (``num_layers`` is mmpose's
#: too).
OWN_KEYS = frozenset(LAYER_DECAY_KEYS) - {'num_layers'}


def holder_of(registry: Registry = OPTIM_WRAPPER_CONSTRUCTORS
              ) -> Optional[type]:
    """The other class that holds :data:`SHARED_NAME` in ``registry``
    (unwrapped), or None when it is free or the plugin's."""
    held = registry.module_dict.get(SHARED_NAME)
    if held is None or getattr(held, 'layer_decay_plugin', False):
        return None
    return getattr(held, 'layer_decay_holder', held)


def shared_name_problem(paramwise_cfg: Any, holder: type) -> str:
    """The message for a ``paramwise_cfg`` of this plugin given to another
    class registered as :data:`SHARED_NAME`; ``''`` when the config is not
    ours (the holder's own keys)."""
    ours = sorted(OWN_KEYS & set(paramwise_cfg or {})) \
        if isinstance(paramwise_cfg, dict) else []
    if not ours:
        return ''
    return (f"optim_wrapper.constructor='{SHARED_NAME}' builds "
            f'{class_path(holder)} here, not layerdecay_plugin\'s constructor: '
            f'that module registered its own class under the same name '
            "(mmpose's ViTPose constructor and the class of mmengine's "
            'tutorial do), and it does not know paramwise_cfg '
            f'{", ".join(ours)}. Write '
            f"optim_wrapper.constructor='{NAME}', the plugin's own name.")


def _guarded(holder: type) -> type:
    """``holder`` refusing this plugin's ``paramwise_cfg`` by name."""

    def __init__(self, optim_wrapper_cfg, paramwise_cfg=None, *args,
                 **kwargs):
        problem = shared_name_problem(paramwise_cfg, holder)
        if problem:
            raise LayerDecayConfigError(problem)
        holder.__init__(self, optim_wrapper_cfg, paramwise_cfg, *args,
                        **kwargs)

    attrs: Dict[str, Any] = dict(
        __init__=__init__, __module__=holder.__module__,
        __qualname__=holder.__qualname__, __doc__=holder.__doc__,
        layer_decay_holder=holder)
    return type(holder.__name__, (holder, ), attrs)


def register(cls: type,
             registry: Registry = OPTIM_WRAPPER_CONSTRUCTORS) -> None:
    """Register the plugin's constructor under :data:`NAME`, and under
    :data:`SHARED_NAME` where that is free; guard any other holder of it.

    Args:
        cls: The plugin's constructor class.
        registry: Where; mmengine's root registry, whose children (mmdet's,
            mmseg's, mmpretrain's, mmpose's) resolve bare names through it.
    """
    cls.layer_decay_plugin = True
    registry.register_module(name=NAME, module=cls, force=True)
    holder = holder_of(registry)
    if holder is None:
        registry.register_module(name=SHARED_NAME, module=cls, force=True)
    else:
        registry.module_dict[SHARED_NAME] = _guarded(holder)
    _watch(registry)


def _watch(registry: Registry) -> None:
    """Guard a class that takes :data:`SHARED_NAME` after the plugin (a
    ``force=True`` registration imported later), by wrapping the
    registry's ``_register_module``, through which every registration
    goes; once per registry."""
    if getattr(registry, '_layer_decay_watched', False):
        return
    original = registry._register_module

    def _register_module(self, module, module_name=None, force=False):
        original(module=module, module_name=module_name, force=force)
        if self.module_dict.get(SHARED_NAME) is module and \
                holder_of(self) is module:
            self.module_dict[SHARED_NAME] = _guarded(module)

    registry._register_module = types.MethodType(_register_module, registry)
    registry._layer_decay_watched = True


#: Names configs reach for when they mean this plugin: the peers' layer-decay
#: constructors (mmdet's and mmseg's, mmseg's BEiT one, mmpretrain's).
LOOK_ALIKES = ('LearningRateDecayOptimizerConstructor',
               'LayerDecayOptimizerConstructor',
               'LearningRateDecayOptimWrapperConstructor')
_OURS = (NAME, SHARED_NAME)


def _is_ours(name: Any) -> bool:
    return isinstance(name, str) and name.lower() in {
        n.lower() for n in _OURS}


def constructor_problem(optim_wrapper: Any,
                        scope: Optional[str] = None) -> str:
    """What keeps a config's ``optim_wrapper`` from the layer decay it
    asks for, before anything is built; ``''`` when nothing does.

    - this plugin's name given as ``optim_wrapper.type`` (it is a
      constructor, not a wrapper);
    - a constructor name the registry does not know, with a case slip of
      this plugin's names or a peer's layer-decay constructor (mmseg's,
      mmdet's, mmpretrain's) that is not registered here: "did you mean";
    - this plugin's ``paramwise_cfg`` keys (``decay_rate``, ...) with no
      constructor, or mmengine's default one, which ignores them.

    Args:
        optim_wrapper: The config's ``optim_wrapper``.
        scope: The default scope whose registry names are looked up in, as
            a runner looks them up (mmdet's own constructors are in mmdet's
            registry, not the root one); None: the current default scope.

    Returns:
        str: The message (it names the key, the value and the fix).
    """
    if not isinstance(optim_wrapper, dict):
        return ''
    fix = f"optim_wrapper.constructor='{NAME}'"
    wrapper_type = optim_wrapper.get('type')
    if _is_ours(wrapper_type):
        return (f"optim_wrapper.type='{wrapper_type}' names layerdecay_plugin's "
                "constructor, but type is the optimizer wrapper "
                "('OptimWrapper', 'AmpOptimWrapper'); did you mean "
                f"optim_wrapper=dict(type='OptimWrapper', constructor="
                f"'{NAME}', ...)?")
    constructor = optim_wrapper.get('constructor')
    if isinstance(constructor, str) and \
            registered(constructor, scope) is None:
        if _is_ours(constructor) or constructor in LOOK_ALIKES:
            return (f"optim_wrapper.constructor='{constructor}' is not a "
                    'registered optimizer wrapper constructor here; did you '
                    f'mean {fix}? (With layerdecay_plugin in custom_imports; '
                    "it takes the keys of mmdet's layer-decay constructor, "
                    'decay_rate, decay_type and num_layers.)')
        return ''
    paramwise = optim_wrapper.get('paramwise_cfg')
    ours = sorted(OWN_KEYS & set(paramwise)) \
        if isinstance(paramwise, dict) else []
    if ours and constructor in (None, 'DefaultOptimWrapperConstructor'):
        shown = repr(constructor) if constructor else 'not set (mmengine\'s ' \
            'DefaultOptimWrapperConstructor)'
        return (f'optim_wrapper.paramwise_cfg sets {", ".join(ours)}, but '
                f'optim_wrapper.constructor is {shown}, which ignores '
                f'them: the run would train without layer decay. Set {fix}.')
    return ''


def registered(constructor: str, scope: Optional[str] = None
               ) -> Optional[type]:
    """The class ``constructor`` names in the registry of ``scope`` (None:
    the current default scope), as a runner builds it; None if unknown."""
    with OPTIM_WRAPPER_CONSTRUCTORS.switch_scope_and_registry(
            scope) as registry:
        return registry.get(constructor)
