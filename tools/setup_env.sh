#!/usr/bin/env bash
# Creates .venv at the repo root with the pinned OpenMMLab stack and the plugin installed
# in editable mode. Idempotent: a second run only checks a stamp file. The mmcv wheel is
# compiled without debug information (-O3 -g0: 8 minutes on 2 idle cores and a 1.4 MB
# wheel; Python's default -g took 35 minutes on a loaded machine and made 32 MB), every
# op kept, and cached outside the clone, so that a fresh clone on the same machine (what
# CI is) reuses it. Each stage prints one line when it is done, with its time
# (`[setup] torch 2.14.1, torchvision 0.29.1: 41 s`); the mmcv compile also prints its
# estimate before and its progress once a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3}
CACHE=${LAYERDECAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/layerdecay_plugin}
MMCV_VERSION=2.1.0
MMPOSE_VERSION=1.3.2
# Everything that changes the compiled mmcv is in the wheel cache's folder name, so a wheel
# built another way (the old -g builds in $CACHE/wheels) is never picked up.
MMCV_CFLAGS=-g0
MMCV_WHEELS=$CACHE/wheels/mmcv-$MMCV_VERSION-cxx20-O3$MMCV_CFLAGS
STAMP=$VENV/.stack-stamp
# The stamp records everything that decides what gets installed.
WANT=$(cat tools/setup_env.sh requirements-dev.txt pyproject.toml | sha256sum | cut -d' ' -f1)

if [[ -f $STAMP && $(cat "$STAMP") == "$WANT" ]]; then
  echo "[setup] $VENV is up to date (its stamp matches this script, requirements-dev.txt" \
    "and pyproject.toml)"
  exit 0
fi

SETUP_START=$SECONDS
# Runs a stage's command, then prints the stage and how long it took.
stage() {
  local label=$1 start=$SECONDS
  shift
  "$@"
  echo "[setup] $label: $((SECONDS - start)) s"
}
# A package's pin in requirements-dev.txt, for the stage's line.
pin() { sed -n "s/^$1==\([^ #]*\).*/\1/p" requirements-dev.txt; }

if [[ -x $VENV/bin/python ]]; then
  echo "[setup] venv: $VENV exists ($("$VENV/bin/python" --version))"
else
  stage "venv $VENV ($("$PY" --version))" "$PY" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip "$@"; }

# pkg_resources is needed by mmcv's setup.py and by mmengine's `mmdet::` config inheritance.
stage 'build tools (setuptools<81, wheel, ninja, psutil)' \
  pip install -q 'setuptools>=77.0.3,<81' wheel ninja psutil
stage 'torch 2.14.1, torchvision 0.29.1' pip install -q torch==2.14.1 torchvision==0.29.1
stage 'mmengine 0.10.7' pip install -q mmengine==0.10.7

CHECK_START=$SECONDS
if "$VENV/bin/python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
  echo "[setup] mmcv $MMCV_VERSION: already installed, with its ops (checked in $((SECONDS - CHECK_START)) s)"
else
  mkdir -p "$MMCV_WHEELS"
  WHEEL=$(ls "$MMCV_WHEELS"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n1 || true)
  if [[ -z $WHEEL ]]; then
    echo "[setup] building mmcv $MMCV_VERSION with ops: about 8 minutes on 2 idle cores, once per" \
      "machine; the wheel is cached in $MMCV_WHEELS"
    BUILD=$(mktemp -d)
    pip download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-$MMCV_VERSION.tar.gz -C "$BUILD"
    # torch 2.14's headers need C++20; mmcv 2.1.0 hard-codes -std=c++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$BUILD/mmcv-$MMCV_VERSION/setup.py"
    # --no-build-isolation: an isolated build cannot see torch and silently skips the ops.
    SRC=$BUILD/mmcv-$MMCV_VERSION
    # A CPU build compiles the generic and the CPU sources (not parrots/mlu/npu/cuda).
    TOTAL=$(ls "$SRC"/mmcv/ops/csrc/pytorch/*.cpp "$SRC"/mmcv/ops/csrc/pytorch/cpu/*.cpp | wc -l)
    # setuptools takes CFLAGS from the environment *instead of* Python's own
    # (-DNDEBUG -g -fwrapv -O3 ...), so pass those with -g0 after them: optimised as
    # before, without the debug info that is most of the compile's time (one source:
    # 39 s with -g, 26 s with -g0) and of the wheel's size. CFLAGS=-g0 alone would
    # build at -O0 with asserts on.
    PY_CFLAGS=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_config_var('CFLAGS'))")
    (cd "$SRC" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} CFLAGS="$PY_CFLAGS $MMCV_CFLAGS" \
      "$VENV/bin/python" -m pip wheel -q --no-build-isolation --no-deps . -w "$BUILD/dist") &
    COMPILE=$!
    START=$SECONDS
    # Progress once a minute: the compile itself prints nothing for its whole duration.
    while kill -0 "$COMPILE" 2>/dev/null; do
      sleep 60 & wait $! || true
      if kill -0 "$COMPILE" 2>/dev/null; then
        DONE=$(find "$SRC" -name '*.o' | wc -l)
        echo "[setup] compiling mmcv ops: $(( (SECONDS - START) / 60 )) min, ~$DONE of $TOTAL sources"
      fi
    done
    wait "$COMPILE"
    echo "[setup] mmcv compiled in $(( (SECONDS - START) / 60 )) min"
    cp "$BUILD"/dist/mmcv-*.whl "$MMCV_WHEELS/"
    rm -rf "$BUILD"
    WHEEL=$(ls "$MMCV_WHEELS"/mmcv-$MMCV_VERSION-*.whl | head -n1)
    echo "[setup] mmcv wheel: $(du -h "$WHEEL" | cut -f1)"
    stage "mmcv $MMCV_VERSION from the wheel just built" pip install -q "$WHEEL"
  else
    stage "mmcv $MMCV_VERSION from the cached wheel $WHEEL (no compile)" pip install -q "$WHEEL"
  fi
fi

# deepspeed is an sdist: DS_BUILD_OPS=0 installs it in ~30 s without compiling its ops (the
# tests run it on CPU with gloo, which needs none of them).
DS_BUILD_OPS=0 stage "mmdet $(pin mmdet), mmpretrain $(pin mmpretrain) and the rest of requirements-dev.txt" \
  pip install -q -r requirements-dev.txt
# mmpose only for the registry tests (its ViTPose constructor takes the plugin's class
# name): a pure-Python wheel whose own requirements (chumpy, xtcocotools) do not build
# here and are not needed to import its optimizer-wrapper module.
stage "mmpose $MMPOSE_VERSION (--no-deps)" pip install -q --no-deps "mmpose==$MMPOSE_VERSION"
stage 'layerdecay_plugin (editable install)' pip install -q --no-deps -e .
stage 'import check (mmcv.ops, mmdet, mmpretrain, layerdecay_plugin)' \
  "$VENV/bin/python" -c "import mmcv.ops, mmdet.models, mmpretrain.models, layerdecay_plugin"
echo "$WANT" > "$STAMP"
echo "[setup] environment ready in $VENV: $((SECONDS - SETUP_START)) s in all"
