#!/usr/bin/env bash
# Set up stemfill in ./.venv from the project's own files.
# The pinned CPU torch wheel goes first, so that nothing pulls a multi-GB CUDA build.
# As root with apt-get available, FluidSynth and a small General MIDI soundfont (TimGM6mb, 6 MB) are
# installed too: the synthetic audio datasets, `stemfill render` and the offline audio route use them.
# basic-pitch goes in with --no-deps: its Linux requirements pull TensorFlow, which its ONNX model
# (run by onnxruntime) does not need; its real runtime requirements are in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null \
   && { ! command -v fluidsynth >/dev/null || [ ! -e /usr/share/sounds/sf2/TimGM6mb.sf2 ]; }; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
     fluidsynth timgm6mb-soundfont >/dev/null) \
    || echo "setup: could not install fluidsynth and timgm6mb-soundfont (audio rendering needs them)" >&2
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -m pip install -q --no-deps "basic-pitch==0.4.0"
echo "setup: done (.venv)"
