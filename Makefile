# The two commands of the README. Each sets up .venv itself (tools/setup_env.sh,
# idempotent) so it works on a fresh clone.
PY := .venv/bin/python
DEMO_CONFIG := configs/mask-rcnn_convnext-t-p4-w7_fpn_layerdecay_shapes-demo-cpu.py
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD := 1

.PHONY: setup demo test test-light test-compat

setup:
	bash tools/setup_env.sh

demo: setup
	$(PY) tools/make_shapes_coco.py data/shapes --images 32 --size 256
	$(PY) tools/train.py $(DEMO_CONFIG) --work-dir work_dirs/demo

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The light tier alone (tests/light: torch + mmengine only, see README), in a light venv
# of the pinned torch/mmengine built once per machine by tools/light_env.sh: no mmcv compile.
test-light:
	bash tools/test_light.sh current

# The light tier on the oldest and the newest stack pyproject.toml claims (README,
# "Compatibility"); the venvs are cached outside the clone, keyed by stack.
test-compat:
	bash tools/test_light.sh oldest newest
