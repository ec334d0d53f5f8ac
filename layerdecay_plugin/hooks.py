"""``LayerDecayLrHook``: the lr of each layer group in the training log,
and the groups that trained in the run's log dir.

mmengine's ``RuntimeInfoHook`` logs only the first param group's lr; with
layer decay that is the stem's. This hook adds one ``layer_{id}_lr`` scalar
per layer id (or only the lowest and highest), which the ``LoggerHook``
prints and sends to every visualizer backend (TensorBoard, local, ...);
with several towers, the layers of each tower but the first are
``{tower}.layer_{id}_lr`` (``groupnames``).
When training starts (after any resume) it writes ``layer_decay.json`` next
to the log: what the summary of the run reads. An optimizer without
layer-decay groups gets a warning then, with the reason
(:func:`no_layer_decay_reason`), also written to the file for the summary.
"""
import json
import logging
import os.path as osp
from typing import Any, Dict, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from .groupnames import layer_lr_scalar, parse_group_name
from .registry import NAME, constructor_problem, registered
from .report import group_data, record_title
from .resume import record_of
from .sharding import checked_fsdp_shapes, numel, original_shape

#: The file :meth:`LayerDecayLrHook.before_train` writes in the log dir:
#: :func:`run_data` and ``no_layer_decay`` (:func:`no_layer_decay_reason`
#: for an optimizer without layer-decay groups, else None).
RUN_FILE = 'layer_decay.json'


def tower_lrs(param_groups) -> Dict[str, Dict[int, float]]:
    """lr of each layer id of each tower, taken from the first group of
    that id.

    Args:
        param_groups: An optimizer's ``param_groups``.

    Returns:
        dict: tower (``''``: the first, whose ids hold the head's) ->
        layer id -> lr, towers in order of their first group, ids sorted.
    """
    lrs: Dict[str, Dict[int, float]] = {}
    for group in param_groups:
        name = parse_group_name(group.get('group_name'))
        if name is not None:
            lrs.setdefault(name.tower, {}).setdefault(name.layer_id,
                                                      group['lr'])
    return {t: dict(sorted(ids.items())) for t, ids in lrs.items()}


def layer_lrs(param_groups) -> Dict[int, float]:
    """lr of each layer id of the first tower (and the head), taken from the
    first group of that id.

    Args:
        param_groups: An optimizer's ``param_groups``.

    Returns:
        dict[int, float]: layer id -> lr, sorted by id.
    """
    return tower_lrs(param_groups).get('', {})


def run_data(optimizer, model, iteration: int) -> Dict[str, Any]:
    """What :data:`RUN_FILE` holds: the groups an optimizer has now.

    Args:
        optimizer (torch.optim.Optimizer): The optimizer that trains.
        model (nn.Module): Its model (FSDP units keep the original shapes).
        iteration: The iteration training starts at (0, or where a resume
            continues).

    Returns:
        dict: ``iter``; ``record``, the settings the optimizer was built
        with (``resume.record_of``, None for another constructor's);
        ``title``, the table title those give (None without a record); and
        ``groups`` (``report.group_data``), their lr_scale, lr and
        ``initial_lr`` as they are after a resume: a resume with
        ``resume_mismatch='keep_checkpoint'`` gives them the checkpoint's.
    """
    # DeepSpeed's ZeRO optimizer wraps the optimizer the constructor built
    record = record_of(optimizer) or record_of(
        getattr(optimizer, 'optimizer', None))
    # our constructor refused FSDP's flat parameters already
    shapes = checked_fsdp_shapes(model) if record is not None else {}
    return dict(iter=iteration, record=record, title=record_title(record),
                groups=group_data(optimizer.param_groups,
                                  optimizer.defaults,
                                  lambda p: numel(original_shape(p, shapes))))


def no_layer_decay_reason(optim_wrapper: Any) -> str:
    """Why a runner's optimizer has no layer-decay groups (none named
    ``layer_{id}_...``, as this plugin's and mmdet's constructors name
    them), from the runner's config.

    Args:
        optim_wrapper: The config's ``optim_wrapper``; names are looked up
            in the registry of the current default scope (the runner's).

    Returns:
        str: :func:`~layerdecay_plugin.registry.constructor_problem` where
        it names one, else the constructor the config has, and the fix.
    """
    problem = constructor_problem(optim_wrapper)
    constructor = optim_wrapper.get('constructor') \
        if isinstance(optim_wrapper, dict) else None
    built = registered(constructor) if isinstance(constructor, str) else None
    if problem:
        return problem
    if getattr(built, 'layer_decay_plugin', False):
        return (f'optim_wrapper.constructor={constructor!r} is '
                "layerdecay_plugin's constructor, but the optimizer that "
                'trains has no group named layer_{id}_...: something replaced '
                'its param groups after it was built.')
    shown = repr(constructor) if constructor else \
        "not set (mmengine's DefaultOptimWrapperConstructor)"
    return ("the optimizer was not built by layerdecay_plugin's constructor: "
            f'optim_wrapper.constructor is {shown}, so the run has no layer '
            f"decay. Set optim_wrapper.constructor='{NAME}' and "
            'paramwise_cfg=dict(decay_rate=...) to get it.')


def why_no_layer_lrs(path: str) -> str:
    """Why a run whose hook wrote a :data:`RUN_FILE` logged no layer lr.

    Args:
        path: The file.

    Returns:
        str: The reason the hook wrote (``no_layer_decay``; for a file of
        an older version without it, a constructor without layer ids), or,
        where there were layer groups, that no ``LoggerHook`` logged them.
    """
    with open(path) as f:
        data = json.load(f)
    if any(g.get('layer_id') is not None for g in data['groups']):
        return 'LayerDecayLrHook ran, but no LoggerHook logged its scalars.'
    reason = data.get('no_layer_decay') or (
        "the optimizer was not built by layerdecay_plugin's constructor: "
        f"set optim_wrapper.constructor='{NAME}'.")
    return ('LayerDecayLrHook ran, but the optimizer had no layer-decay '
            f'groups: {reason}')


@HOOKS.register_module()
class LayerDecayLrHook(Hook):
    """Writes the lr of layer-decay groups to the message hub, and the groups
    that train to ``<log_dir>/layer_decay.json``.

    Args:
        interval (int): Every how many training iterations. Defaults to 1
            (the ``LoggerHook`` decides what is printed).
        layers (str): ``'ends'`` for the lowest and highest layer id only
            (of each tower), ``'all'`` for every layer id. Defaults to
            ``'ends'``.
    """
    priority = 'NORMAL'

    def __init__(self, interval: int = 1, layers: str = 'ends') -> None:
        if layers not in ('ends', 'all'):
            raise ValueError(f"LayerDecayLrHook: layers={layers!r} is "
                             "invalid, use 'ends' or 'all'")
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'LayerDecayLrHook: interval={interval!r} must '
                             'be a positive int')
        self.interval = interval
        self.layers = layers

    def before_train(self, runner) -> None:
        """Write :data:`RUN_FILE` (rank 0). mmengine calls this after
        ``load_or_resume``: the groups are those that train. Without
        layer-decay groups, warn with the reason (also in the file's
        ``no_layer_decay``; None otherwise)."""
        optimizer = getattr(runner.optim_wrapper, 'optimizer', None)
        if optimizer is None or not is_main_process():
            return  # e.g. an OptimWrapperDict: several optimizers
        data = run_data(optimizer, runner.model, runner.iter)
        data['no_layer_decay'] = None
        if not tower_lrs(runner.optim_wrapper.param_groups):  # as logged
            data['no_layer_decay'] = no_layer_decay_reason(
                runner.cfg.get('optim_wrapper'))
            print_log('LayerDecayLrHook: the optimizer has no layer-decay '
                      'param groups (none named layer_{id}_...), so there is '
                      'no layer lr to log: '
                      f'{data["no_layer_decay"]}', logger='current',
                      level=logging.WARNING)
        with open(osp.join(runner.log_dir, RUN_FILE), 'w') as f:
            json.dump(data, f, indent=1, default=repr)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        # Same moment RuntimeInfoHook records `lr`: the lr this step uses.
        if runner.iter % self.interval:
            return
        for tower, lrs in tower_lrs(
                runner.optim_wrapper.param_groups).items():
            if self.layers == 'ends':
                ids = sorted(lrs)
                lrs = {i: lrs[i] for i in (ids[0], ids[-1])}
            for layer_id, lr in lrs.items():
                runner.message_hub.update_scalar(
                    'train/' + layer_lr_scalar(layer_id, tower), lr)
