# The two commands of the README. Each sets up .venv itself (tools/setup_env.sh,
# idempotent) so it works on a fresh clone.
PY := .venv/bin/python
DEMO_CONFIG := configs/mask-rcnn_convnext-t-p4-w7_fpn_layerdecay_shapes-demo-cpu.py
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD := 1

.PHONY: setup demo test test-light

setup:
	bash tools/setup_env.sh

demo: setup
	$(PY) tools/make_shapes_coco.py data/shapes --images 32 --size 256
	$(PY) tools/train.py $(DEMO_CONFIG) --work-dir work_dirs/demo

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The light tier alone: torch + mmengine only (tests/light, see README).
# --confcutdir keeps pytest from loading tests/conftest.py, which imports mmdet.
test-light: setup
	$(PY) -m pytest -q --confcutdir=tests/light tests/light
