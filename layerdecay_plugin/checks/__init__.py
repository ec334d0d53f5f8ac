"""Checks of what the rules and options give, before any group is built:
the ids (:mod:`.ids`), ``num_layers`` (:mod:`.num_layers`), the
``custom_keys`` against the model's names (:mod:`.custom_keys`) and the
schedule against the groups (:mod:`.schedule`); and the table's notes:
frozen layer ids (:mod:`.frozen`) and groups kept apart (:mod:`.twins`).
"""
