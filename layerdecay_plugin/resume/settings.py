"""The settings an optimizer was built with: recorded in the state dicts
it saves (:func:`settings_record`), read back from layer groups where no
record was saved (:func:`infer_settings`), and compared, checkpoint ->
config, in the user's terms (:func:`describe_settings`). Torch-free.
"""
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..config import RESUME_MISMATCH_KEY
from ..groupnames import GroupName, parse_group_name
from .values import is_number, same_value, show_value

#: Top-level key of the optimizer state dict where the settings a checkpoint
#: was built with are recorded (the param groups stay exactly mmdet's).
STATE_KEY = 'layer_decay'


def settings_record(paramwise_cfg: Mapping,
                    lr: float,
                    weight_decay: float,
                    family: Optional[str] = None,
                    num_layers: Optional[int] = None,
                    towers: Optional[Sequence[Mapping]] = None
                    ) -> Dict[str, Any]:
    """The settings an optimizer was built with, as plain values that any
    ``torch.load`` (also ``weights_only=True``) reads back.

    Args:
        paramwise_cfg: The ``paramwise_cfg`` as written in the config.
        lr: The optimizer's base lr.
        weight_decay: The optimizer's base weight decay.
        family: The display name of the backbone family whose rules gave
            the layer ids, if known.
        num_layers: The ``num_layers`` in effect (given or inferred), if
            known.
        towers: With several towers (or ``paramwise_cfg.towers``), per
            tower its ``attr``, ``family``, ``num_layers`` and
            ``decay_rate`` in effect; ``family`` and ``num_layers`` are
            then the first tower's.

    Returns:
        dict: ``paramwise_cfg`` (without ``resume_mismatch``, which does not
        change the groups), ``lr`` and ``weight_decay``; ``family``,
        ``num_layers`` and ``towers`` when given (for the table title of the
        run; :func:`describe_settings` does not compare them, so records
        saved without them compare equal; a tower's ``decay_rate`` is in
        ``paramwise_cfg``, which it compares).
    """
    cfg = {k: _plain(v) for k, v in paramwise_cfg.items()
           if k != RESUME_MISMATCH_KEY}
    record: Dict[str, Any] = dict(paramwise_cfg=cfg, lr=float(lr),
                                  weight_decay=float(weight_decay))
    if family is not None:
        record['family'] = str(family)
    if num_layers is not None:
        record['num_layers'] = int(num_layers)
    if towers:
        record['towers'] = [_plain(dict(t)) for t in towers]
    return record


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def infer_settings(param_groups: Sequence[Mapping]) -> Dict[str, float]:
    """Layer-decay settings read back from layer groups (ours or mmdet's):
    ``decay_rate`` from the lr scales of the two highest consecutive layer
    ids, ``num_layers`` from the highest id and its scale, ``lr`` from its
    ``initial_lr`` (else ``lr``) and scale, ``weight_decay`` as the largest
    of the ``layer_{id}_decay`` groups. With several towers, from the
    groups of the first (and the head's).

    Args:
        param_groups: Param groups, or their state-dict form.

    Returns:
        dict: The settings found; empty for groups not named
        ``layer_{id}_decay`` / ``layer_{id}_no_decay``.
    """
    # A layer group at the layer's default lr and weight decay (ours and
    # mmdet's names); groups of mmengine options carry suffixes (_lr_x2).
    plain: Dict[int, Tuple[GroupName, Mapping]] = {}
    for group in param_groups:
        name = parse_group_name(group.get('group_name'))
        if name is not None and name.suffix == '' and not name.tower \
                and is_number(group.get('lr_scale')):
            plain.setdefault(name.layer_id, (name, group))
    if not plain:
        return {}
    scales = {i: group['lr_scale'] for i, (_, group) in plain.items()}
    found: Dict[str, float] = {}
    top = max(plain)
    scale = scales[top]
    below = [i for i in plain if i + 1 in plain]
    if below:
        low = max(below)
        if scales[low + 1]:
            rate = scales[low] / scales[low + 1]
            found['decay_rate'] = float(f'{rate:.6g}')
    rate = found.get('decay_rate')
    if scale == 1:
        found['num_layers'] = top - 1
    elif rate and rate != 1 and scale > 0:
        found['num_layers'] = top - 1 + round(math.log(scale) /
                                              math.log(rate))
    top_group = plain[top][1]
    lr = top_group.get('initial_lr', top_group.get('lr'))
    if is_number(lr) and scale:
        found['lr'] = float(f'{lr / scale:.6g}')
    decays = [group['weight_decay'] for name, group in plain.values()
              if name.decay and is_number(group.get('weight_decay'))]
    if decays:
        found['weight_decay'] = max(decays)
    return found


def describe_settings(saved_record: Optional[Mapping],
                      current_record: Optional[Mapping],
                      saved_groups: Sequence[Mapping],
                      current_groups: Sequence[Mapping]) -> List[str]:
    """Settings that differ, ``checkpoint -> config``: the recorded
    settings where both sides have them (``paramwise_cfg``, ``lr`` and
    ``weight_decay`` of :func:`settings_record`; its ``family`` and
    ``num_layers`` are not compared), then those in effect, read from the
    groups (:func:`infer_settings`), where they add something.

    Args:
        saved_record: The checkpoint's record, or None (mmdet's
            constructor, the default constructor, an FSDP checkpoint).
        current_record: This config's record.
        saved_groups: The checkpoint's param groups.
        current_groups: This optimizer's param groups.

    Returns:
        list[str]: One line per setting.
    """
    lines = []
    shown: Dict[str, Tuple[Any, Any]] = {}
    if saved_record and current_record:
        old_cfg = saved_record.get('paramwise_cfg', {})
        new_cfg = current_record.get('paramwise_cfg', {})
        for key in sorted(set(old_cfg) | set(new_cfg)):
            old, new = old_cfg.get(key), new_cfg.get(key)
            if not same_value(old, new):
                lines.append(f'paramwise_cfg.{key}: {show_value(old)} -> '
                             f'{show_value(new)}')
                shown[key] = (old, new)
        for key in ('lr', 'weight_decay'):
            old, new = saved_record.get(key), current_record.get(key)
            if not same_value(old, new):
                lines.append(f'optimizer.{key}: {show_value(old)} -> '
                             f'{show_value(new)}')
                shown[key] = (old, new)
    old_eff, new_eff = (infer_settings(saved_groups),
                        infer_settings(current_groups))
    for key in ('decay_rate', 'num_layers', 'lr', 'weight_decay'):
        if key not in old_eff or key not in new_eff:
            continue
        old, new = old_eff[key], new_eff[key]
        if same_value(old, new) or (
                key in shown and same_value(shown[key][0], old)
                and same_value(shown[key][1], new)):
            continue
        lines.append(f'{key} in effect (read from the groups): '
                     f'{show_value(old)} -> {show_value(new)}')
    return lines
