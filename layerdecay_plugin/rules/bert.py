"""BERT text towers: HuggingFace's ``BertModel`` and mmdet's ``BertModel``
(Grounding DINO's ``language_model``), which holds one under
``language_backbone.body.model``. One stage of ``encoder.layer.i`` blocks;
``depths`` = ``[number of encoder layers]``.

Ids (``layer_wise`` and ``stage_wise`` alike, as for a plain ViT), as
ELECTRA's layer-wise lr decay (and HuggingFace's recipes after it) gives
them:

- ``embeddings.*`` (word, position, token type, their norm): 0
- ``encoder.layer.i.*``: ``i + 1``
- anything else (``pooler.*``): ``N + 1``, the head's lr, as ELECTRA's task
  heads
"""
from typing import Any, List, Sequence

from .common import BackboneRules, _part
from .vit import vit_min_num_layers

#: Where mmdet's ``BertModel`` keeps HuggingFace's.
MMDET_BERT_PREFIX = 'language_backbone.body.model.'
#: How the names show the blocks (``depths`` read from names).
BERT_BLOCKS = (r'(?:language_backbone\.body\.model\.)?encoder\.layer\.'
               r'(?P<block>\d+)\.')


def bert_layer_id(name: str, num_layers: int,
                  depths: Sequence[int] = ()) -> int:
    """Layer id of a BERT parameter (HuggingFace's names, or mmdet's with
    ``language_backbone.body.model.`` before them).

    ``embeddings`` are 0, ``encoder.layer.i`` is ``i + 1``, anything else
    (the pooler) ``num_layers + 1``.

    A rule (:data:`~layerdecay_plugin.rules.common.IdRule`); ``depths``
    unused.
    """
    if name.startswith(MMDET_BERT_PREFIX):
        name = name[len(MMDET_BERT_PREFIX):]
    if name.startswith('embeddings.'):
        return 0
    if name.startswith('encoder.layer.'):
        return _part(name, 2) + 1
    return num_layers + 1


def bert_depths(backbone: Any) -> List[int]:
    """``[number of encoder layers]`` of HuggingFace's ``BertModel``, or of
    the one mmdet's wraps; read by duck typing."""
    body = getattr(getattr(backbone, 'language_backbone', None), 'body', None)
    model = backbone if body is None else body.model
    return [len(model.encoder.layer)]


BERT = BackboneRules('BERT', {
    'layer_wise': bert_layer_id,
    'stage_wise': bert_layer_id
}, vit_min_num_layers)  # one id per encoder layer, both types
