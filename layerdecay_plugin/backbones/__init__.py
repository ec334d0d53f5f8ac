"""Which id rules a backbone gets, and its blocks per stage.

Bottom to top: :mod:`.types` (what every source returns),
:mod:`.depths` (readers of blocks per stage), :mod:`.families` (the one
table of built-in families), the rule sources (:mod:`.classes`,
:mod:`.registered`, :mod:`.layer_depth`, :mod:`.convnext_layout`,
:mod:`.config_rules`, :mod:`.timm`, :mod:`.auto`, with :mod:`.trace` for
forward order), and :mod:`.resolve`, which asks them in order. Import the
modules themselves: this package imports nothing, so that the torch-free
ones stay importable without torch.
"""
