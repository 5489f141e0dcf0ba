#!/usr/bin/env bash
# Creates .venv and installs r1 with its test tools. torch is installed first and pinned to the CPU build
# (2.13.0): an unpinned torch would pull gigabytes of CUDA packages. On a GPU machine, install the torch you
# want first and the project's range will keep it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
.venv/bin/python -m pip install -q -e ".[dev]"
echo "r1 installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
