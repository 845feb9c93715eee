#!/usr/bin/env bash
# The external trainers' venv for CI, made by our own `trace-bench external-env` (the pinned
# dspy[optuna]==3.4.1, gepa==0.1.4, openevolve==0.4.0 and trainers/external/constraints.txt)
# under target/, so a warm machine reuses it. Prints the venv's Python. Fails when it cannot be made.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -q
target/debug/trace-bench external-env --dir target/external-env
