#!/usr/bin/env bash
# Builds (once) the virtualenv of one light stack and prints its python's path.
#
#   bash tools/light_env.sh STACK      STACK: current | oldest | newest
#
# A light stack is torch + mmengine + pytest + hypothesis and nothing of mmdet, mmcv or
# mmpretrain: what tests/light needs. The stacks and their pins are in
# tools/light_stacks.txt: `current` is the pinned dev stack without the heavy packages (no
# mmcv compile, torch from this machine's disk); `oldest` and `newest` are the ends of the
# range pyproject.toml claims (`make test-compat`). The plugin is not installed
# into them: the venvs are shared by every clone on the machine, so the tests run with the
# clone on PYTHONPATH (tools/test_light.sh).
#
# The venvs live outside the clone, like the mmcv wheel, in
# $CACHE/light-venvs/<stack>-<key>, where <key> hashes the stack's pins and the
# interpreter's version: changing a pin builds a new venv, anything else reuses it.
# A cold build downloads torch's CUDA wheels (PyPI has no CPU build): oldest ~2.6 GB,
# newest ~3 GB, a few minutes each; current copies torch 2.14.1 from this machine's disk.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${LAYERDECAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/layerdecay_plugin}
UV_VERSION=0.13.9
STACK=${1:?usage: tools/light_env.sh STACK (a name in tools/light_stacks.txt)}

# Its line of tools/light_stacks.txt: Python version, then the exact pins.
LINE=$(awk -v s="$STACK" '$1 == s { $1 = ""; print; exit }' tools/light_stacks.txt)
if [[ -z $LINE ]]; then
  echo "tools/light_env.sh: unknown stack '$STACK'; the stacks are:" \
    "$(awk '!/^#/ && NF { printf "%s ", $1 }' tools/light_stacks.txt)" >&2
  exit 2
fi
read -r PYVER PINS <<< "$LINE"

log() { echo "[light-env $STACK] $*" >&2; }

# The newest installed patch release of Python $1: pyenv's versions first (these machines
# have 3.8-3.13 there; Debian only 3.11), then pythonX.Y on PATH. Full paths: uv is
# confused by pyenv's shims.
find_python() {
  local root cand
  root=$(pyenv root 2>/dev/null || true)
  if [[ -n $root ]]; then
    cand=$(ls -d "$root"/versions/"$1".*/bin/python 2>/dev/null | sort -V | tail -n1 || true)
    [[ -n $cand ]] && { echo "$cand"; return; }
  fi
  cand=$(command -v "python$1" || true)
  if [[ -n $cand ]] && "$cand" -c 'import venv' 2>/dev/null; then echo "$cand"; return; fi
  echo "tools/light_env.sh: no Python $1 found (looked in \$(pyenv root)/versions and PATH);" \
    "install it with 'pyenv install $1' or put python$1 on PATH" >&2
  exit 2
}

INTERP=$(find_python "$PYVER")
FULLVER=$("$INTERP" -c 'import platform; print(platform.python_version())')
KEY=$(printf '%s\n' "$STACK" "$FULLVER" "$PINS" | sha256sum | cut -c1-12)
VENV=$CACHE/light-venvs/$STACK-$KEY
if [[ -f $VENV/.ready ]]; then
  echo "$VENV/bin/python"
  exit 0
fi
# One builder per venv: a second caller (another clone, a parallel make) waits for it.
mkdir -p "$CACHE/light-venvs"
exec 9>"$VENV.lock"
flock 9
if [[ -f $VENV/.ready ]]; then
  echo "$VENV/bin/python"
  exit 0
fi

START=$SECONDS
log "building $VENV: Python $FULLVER, $PINS"
rm -rf "$VENV"  # what an interrupted build left
if [[ $STACK == current ]]; then
  # pip reads this machine's configuration, which points at torch 2.14.1 on local disk.
  "$INTERP" -m venv "$VENV"
  # shellcheck disable=SC2086  # PINS is a list of requirement words
  "$VENV/bin/python" -m pip install -q $PINS >&2
else
  # uv: the pip on these machines is capped at torch<=2.14.1 by a machine-wide constraints
  # file, which uv does not read, and uv downloads the multi-GB CUDA wheels in parallel.
  UV=$CACHE/uv-$UV_VERSION/bin/uv
  if [[ ! -x $UV ]]; then
    log "installing uv $UV_VERSION"
    "$INTERP" -m venv "$CACHE/uv-$UV_VERSION"
    "$CACHE/uv-$UV_VERSION/bin/python" -m pip install -q "uv==$UV_VERSION" >&2
  fi
  export UV_CACHE_DIR=$CACHE/uv-cache
  "$UV" venv -q -p "$INTERP" "$VENV" >&2
  # shellcheck disable=SC2086
  "$UV" pip install -q -p "$VENV/bin/python" $PINS >&2
fi
# What the tier imports, checked once here so that a broken venv is never marked ready.
"$VENV/bin/python" -c 'import torch, mmengine, pytest, hypothesis' >&2
touch "$VENV/.ready"
log "ready in $(( SECONDS - START )) s"
echo "$VENV/bin/python"
