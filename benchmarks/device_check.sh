#!/usr/bin/env bash
# Thin wrapper of benchmarks/device_check.py (see its docstring): quiet TensorFlow logs,
# unbuffered output, the repository root on the path, and the first Python found of
# $PYTHON, <repo>/.venv/bin/python, python3. Arguments pass through, e.g.
#   benchmarks/device_check.sh --output_dir runs/device_check
#   benchmarks/device_check.sh --cpu_smoke --output_dir /tmp/dc
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"
else PY=python3
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}" PYTHONUNBUFFERED=1
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT"
exec "$PY" -m benchmarks.device_check "$@"
