"""Checks of what the rules and options give, before any group is built:
the ids (:mod:`.ids`), ``num_layers`` (:mod:`.num_layers`) and the
``custom_keys`` against the model's names (:mod:`.custom_keys`).
"""
