"""The one exception type of the plugin."""


class LayerDecayConfigError(ValueError):
    """A layer-decay setting is missing, mistyped or out of range.

    Messages name the key, the value received and what would be valid.
    """
