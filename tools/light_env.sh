#!/usr/bin/env bash
# Builds (once) the virtualenv of one light stack and prints its python's path.
#
#   bash tools/light_env.sh STACK      STACK: a name in tools/light_stacks.txt
#
# A light stack is torch + mmengine + pytest + hypothesis and nothing of mmdet, mmcv or
# mmpretrain: what tests/light needs. The stacks and their pins are in
# tools/light_stacks.txt: `current` is the pinned dev stack without the heavy packages (no
# mmcv compile; pip, so that torch 2.14.1 comes from this machine's disk); `oldest` and
# `newest` are the ends of the range pyproject.toml claims (`make test-compat`; uv, with
# everything resolved as PyPI was at the file's `@exclude-newer` date, so a new release of
# some dependency cannot change a cold build). The plugin is not installed into them: the
# venvs are shared by every clone on the machine, so the tests run with the clone on
# PYTHONPATH (tools/test_light.sh).
#
# The venvs live outside the clone, like the mmcv wheel, in
# $CACHE/light-venvs/<stack>-<key>, where <key> hashes the stack's line, the date, the
# interpreter's version and this script: changing any of them builds a new venv, and a venv
# of the same stack unused for 7 days is deleted then. A cold build downloads torch's CUDA
# wheels (PyPI has no CPU build, ~5 GB a venv): measured 30 s (oldest) and 34 s (newest)
# on this project's VMs; `current` copies torch 2.14.1 from local disk.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${LAYERDECAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/layerdecay_plugin}
UV_VERSION=0.13.9
STACK=${1:?usage: tools/light_env.sh STACK (a name in tools/light_stacks.txt)}

# Its line of tools/light_stacks.txt: Python version, then the exact pins.
LINE=$(awk -v s="$STACK" '$1 == s { $1 = ""; print; exit }' tools/light_stacks.txt)
if [[ -z $LINE ]]; then
  echo "tools/light_env.sh: unknown stack '$STACK'; the stacks are:" \
    "$(awk '!/^[#@]/ && NF { printf "%s ", $1 }' tools/light_stacks.txt)" >&2
  exit 2
fi
read -r PYVER PINS <<< "$LINE"
EXCLUDE_NEWER=$(awk '$1 == "@exclude-newer" { print $2 }' tools/light_stacks.txt)
: "${EXCLUDE_NEWER:?tools/light_stacks.txt has no @exclude-newer line}"

log() { echo "[light-env $STACK] $*" >&2; }

# The newest installed final release X.Y.Z of Python $1: pyenv's versions first (these
# machines have 3.8-3.13 there; Debian only 3.11), then pythonX.Y on PATH. Full paths: uv
# is confused by pyenv's shims.
find_python() {
  local root cand
  root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
  # Final releases only: not 3.13.0t (free-threaded) or 3.13.0rc1.
  cand=$(ls -d "$root"/versions/"$1".* 2>/dev/null | grep -E "/$1\.[0-9]+$" \
    | sort -V | tail -n1 || true)
  if [[ -n $cand && -x $cand/bin/python ]]; then echo "$cand/bin/python"; return; fi
  cand=$(command -v "python$1" || true)
  # ensurepip, not venv: Debian ships venv without it unless python3-venv is installed.
  if [[ -n $cand ]] && "$cand" -c 'import ensurepip' 2>/dev/null; then
    echo "$cand"; return
  fi
  echo "tools/light_env.sh: no Python $1 found (looked in $root/versions and PATH);" \
    "install it with 'pyenv install $1' or put python$1 (with venv) on PATH" >&2
  exit 2
}

INTERP=$(find_python "$PYVER")
FULLVER=$("$INTERP" -c 'import platform; print(platform.python_version())')
KEY=$( (printf '%s\n' "$STACK" "$FULLVER" "$PINS" "$EXCLUDE_NEWER"; cat tools/light_env.sh) \
  | sha256sum | cut -c1-12)
VENV=$CACHE/light-venvs/$STACK-$KEY

ready() {
  touch "$VENV/.ready"  # its time is the last use, for the clean-up below
  echo "$VENV/bin/python"
  exit 0
}

[[ -f $VENV/.ready ]] && ready
# One builder per venv: a second caller (another clone, a parallel make) waits for it.
mkdir -p "$CACHE/light-venvs"
exec 9>"$VENV.lock"
if ! flock -n 9; then
  log "waiting for another build of $VENV"
  flock 9
fi
[[ -f $VENV/.ready ]] && ready

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
  UV_HOME=$CACHE/uv-$UV_VERSION
  UV=$UV_HOME/bin/uv
  exec 8>"$UV_HOME.lock"
  flock 8
  if [[ ! -x $UV ]]; then
    log "installing uv $UV_VERSION"
    rm -rf "$UV_HOME.tmp"
    "$INTERP" -m venv "$UV_HOME.tmp"
    "$UV_HOME.tmp/bin/python" -m pip install -q "uv==$UV_VERSION" >&2
    rm -rf "$UV_HOME"
    mv "$UV_HOME.tmp" "$UV_HOME"  # the venv's scripts keep working: uv is a binary
  fi
  flock -u 8
  export UV_CACHE_DIR=$CACHE/uv-cache
  "$UV" venv -q -p "$INTERP" "$VENV" >&2
  # shellcheck disable=SC2086
  "$UV" pip install -q -p "$VENV/bin/python" --exclude-newer "$EXCLUDE_NEWER" $PINS >&2
fi
# What the tier needs, checked once here so that a broken venv is never marked ready:
# yapf (mmengine < 0.9's Config breaks on yapf >= 0.40.2) and numpy (a torch built
# against numpy 1 cannot convert numpy 2 arrays).
"$VENV/bin/python" - >&2 <<'EOF'
import cv2, hypothesis, mmengine, numpy, pytest, torch
from mmengine.config import Config
Config(dict(a=1)).pretty_text
torch.from_numpy(numpy.zeros(1))
EOF
touch "$VENV/.ready"
log "ready in $(( SECONDS - START )) s"
# Venvs of this stack left by earlier pins, unused for 7 days and not being built.
for OLD in "$CACHE/light-venvs/$STACK"-*/; do
  OLD=${OLD%/}
  [[ $OLD == "$VENV" ]] && continue
  if [[ -n $(find "$OLD/.ready" -mtime +7 2>/dev/null) ]] \
      && flock -n "$OLD.lock" true 2>/dev/null; then
    log "removing $OLD (unused for 7 days)"
    rm -rf "$OLD" "$OLD.lock"
  fi
done
echo "$VENV/bin/python"
