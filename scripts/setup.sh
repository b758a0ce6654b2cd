#!/usr/bin/env bash
# Set up stemfill in ./.venv from the project's own files.
# The pinned CPU torch wheel goes first, so that nothing pulls a multi-GB CUDA build.
# As root with apt-get available, FluidSynth (for the synthetic audio datasets) is installed too.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null && ! command -v fluidsynth >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fluidsynth >/dev/null) \
    || echo "setup: could not install fluidsynth (synthetic audio datasets need it)" >&2
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
echo "setup: done (.venv)"
