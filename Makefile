# The commands of the README. Each sets up .venv itself (tools/setup_env.sh,
# idempotent) so it works on a fresh clone.
PY := .venv/bin/python
DEMO_CONFIG := configs/mask-rcnn_convnext-t-p4-w7_fpn_layerdecay_shapes-demo-cpu.py
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD := 1

.PHONY: setup demo test test-light test-compat

setup:
	bash tools/setup_env.sh

# Ends with tools/train.py's summary of the run (group table, each layer's lr, where the
# checkpoint, log, scalars and the picture of every layer's lr went): docs/demo.md.
demo: setup
	$(PY) tools/make_shapes_coco.py data/shapes --images 32 --size 256
	$(PY) tools/train.py $(DEMO_CONFIG) --work-dir work_dirs/demo

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The light tier alone (tests/light: torch + mmengine only, see docs/compatibility.md), in a light venv
# of the pinned torch/mmengine built once per machine by tools/light_env.sh: no mmcv compile.
test-light:
	bash tools/test_light.sh current

# The light tier on the oldest and the newest stack pyproject.toml claims (docs/compatibility.md,
# "Compatibility"); the venvs are cached outside the clone, keyed by stack.
test-compat:
	bash tools/test_light.sh oldest newest

# The documentation site from README.md and docs/*.md (Sphinx with MyST Markdown,
# docs/conf.py) into docs/_build/html; warnings are errors, nothing is fetched.
.PHONY: docs
docs: setup
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

# The front page (quick start) and the configuration page of the built site, rendered by
# headless Chromium at 1280 px into docs/_build/shots/*.png; fails if a page scrolls
# sideways (tests/test_docs_render.py, which the test suite runs too).
.PHONY: docs-shots
docs-shots: docs
	$(PY) tests/test_docs_render.py docs/_build/html docs/_build/shots
