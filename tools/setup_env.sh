#!/usr/bin/env bash
# Creates .venv at the repo root with the pinned OpenMMLab stack and the plugin installed
# in editable mode. Idempotent: a second run only checks a stamp file. The mmcv wheel, which
# takes ~9 minutes to compile on 2 cores, is cached outside the clone so that a fresh clone
# on the same machine (what CI is) reuses it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3}
CACHE=${LAYERDECAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/layerdecay_plugin}
MMCV_VERSION=2.1.0
STAMP=$VENV/.stack-stamp
# The stamp records everything that decides what gets installed.
WANT=$(cat tools/setup_env.sh requirements-dev.txt pyproject.toml | sha256sum | cut -d' ' -f1)

if [[ -f $STAMP && $(cat "$STAMP") == "$WANT" ]]; then
  exit 0
fi

[[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }

# pkg_resources is needed by mmcv's setup.py and by mmengine's `mmdet::` config inheritance.
pip install -q 'setuptools>=77.0.3,<81' wheel ninja psutil
pip install -q torch==2.14.1 torchvision==0.29.1
pip install -q mmengine==0.10.7

if ! "$VENV/bin/python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
  mkdir -p "$CACHE/wheels"
  WHEEL=$(ls "$CACHE"/wheels/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n1 || true)
  if [[ -z $WHEEL ]]; then
    echo "[setup] building mmcv $MMCV_VERSION with ops (about 9 minutes on 2 cores, once per machine)"
    BUILD=$(mktemp -d)
    pip download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-$MMCV_VERSION.tar.gz -C "$BUILD"
    # torch 2.14's headers need C++20; mmcv 2.1.0 hard-codes -std=c++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$BUILD/mmcv-$MMCV_VERSION/setup.py"
    # --no-build-isolation: an isolated build cannot see torch and silently skips the ops.
    (cd "$BUILD/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "$VENV/bin/python" -m pip wheel -q --no-build-isolation --no-deps . -w "$BUILD/dist")
    cp "$BUILD"/dist/mmcv-*.whl "$CACHE/wheels/"
    rm -rf "$BUILD"
    WHEEL=$(ls "$CACHE"/wheels/mmcv-$MMCV_VERSION-*.whl | head -n1)
  fi
  pip install -q "$WHEEL"
fi

pip install -q -r requirements-dev.txt
pip install -q --no-deps -e .
"$VENV/bin/python" -c "import mmcv.ops, mmdet.models, mmpretrain.models, layerdecay_plugin"
echo "$WANT" > "$STAMP"
echo "[setup] environment ready in $VENV"
