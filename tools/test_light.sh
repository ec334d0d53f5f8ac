#!/usr/bin/env bash
# Runs the light test tier (tests/light) in the light venv of each STACK given
# (tools/light_env.sh builds them once per machine), then prints one line per stack.
#
#   bash tools/test_light.sh current          # make test-light
#   bash tools/test_light.sh oldest newest    # make test-compat
#
# Extra pytest arguments go in $PYTEST_ARGS. Exits non-zero if any stack failed.
set -uo pipefail
cd "$(dirname "$0")/.."
if [[ $# -eq 0 ]]; then
  echo "usage: tools/test_light.sh STACK... (names in tools/light_stacks.txt)" >&2
  exit 2
fi
declare -a SUMMARY=()
STATUS=0
for STACK in "$@"; do
  START=$SECONDS
  if ! PY=$(bash tools/light_env.sh "$STACK"); then
    SUMMARY+=("$STACK: venv build FAILED")
    STATUS=1
    continue
  fi
  STACK_LINE=$("$PY" -c 'import platform, torch, mmengine
print(f"Python {platform.python_version()}, torch {torch.__version__}, mmengine {mmengine.__version__}")')
  echo "[test-light] $STACK: $STACK_LINE"
  # The venvs are shared by all clones, so the plugin comes from this clone's tree.
  # --confcutdir: tests/conftest.py imports mmdet, which these venvs do not have.
  # shellcheck disable=SC2086
  if PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} "$PY" -m pytest -q -p no:cacheprovider \
      --confcutdir=tests/light tests/light ${PYTEST_ARGS:-}; then
    SUMMARY+=("$STACK ($STACK_LINE): passed in $(( SECONDS - START )) s")
  else
    SUMMARY+=("$STACK ($STACK_LINE): FAILED")
    STATUS=1
  fi
done
printf '[test-light] %s\n' "${SUMMARY[@]}"
exit $STATUS
