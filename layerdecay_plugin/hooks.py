"""``LayerDecayLrHook``: the lr of each layer group in the training log.

mmengine's ``RuntimeInfoHook`` logs only the first param group's lr; with
layer decay that is the stem's. This hook adds one ``layer_{id}_lr`` scalar
per layer id (or only the lowest and highest), which the ``LoggerHook``
prints and sends to every visualizer backend (TensorBoard, local, ...).
"""
from typing import Dict, Optional

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from .grouping import group_layer_id


def layer_lrs(param_groups) -> Dict[int, float]:
    """lr of each layer id, taken from the first group of that id.

    Args:
        param_groups: An optimizer's ``param_groups``.

    Returns:
        dict[int, float]: layer id -> lr, sorted by id.
    """
    lrs: Dict[int, float] = {}
    for group in param_groups:
        layer_id = group_layer_id(group.get('group_name'))
        if layer_id is not None:
            lrs.setdefault(layer_id, group['lr'])
    return dict(sorted(lrs.items()))


@HOOKS.register_module()
class LayerDecayLrHook(Hook):
    """Writes the lr of layer-decay groups to the message hub.

    Args:
        interval (int): Every how many training iterations. Defaults to 1
            (the ``LoggerHook`` decides what is printed).
        layers (str): ``'ends'`` for the lowest and highest layer id only,
            ``'all'`` for every layer id. Defaults to ``'ends'``.
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

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        # Same moment RuntimeInfoHook records `lr`: the lr this step uses.
        if runner.iter % self.interval:
            return
        lrs = layer_lrs(runner.optim_wrapper.param_groups)
        if self.layers == 'ends' and lrs:
            ids = sorted(lrs)
            lrs = {i: lrs[i] for i in (ids[0], ids[-1])}
        for layer_id, lr in lrs.items():
            runner.message_hub.update_scalar(f'train/layer_{layer_id}_lr', lr)
