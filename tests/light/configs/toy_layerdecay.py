# A torch-only config for the light tier: the toy detector comes from
# tests/light/cli_toys.py (tests/ on the path), the constructor and hook from
# the plugin; no default_scope, no mmdet base.
custom_imports = dict(imports=['light.cli_toys', 'layerdecay_plugin'],
                      allow_failed_imports=False)
model = dict(type='LightToyDetector', num_blocks=3,
             init_cfg=dict(type='Pretrained', checkpoint='nowhere.pth'))
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='LayerDecayPluginConstructor',
    paramwise_cfg=dict(decay_rate=0.9, rules='vit_blocks', num_layers=3),
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
