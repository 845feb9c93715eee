#!/usr/bin/env bash
# LLM4AD tasks with the real python3 and numpy: the circle-packing scorer on valid and
# invalid packings, and the reference's m1_validation.yaml run unchanged. Installs numpy
# into a throwaway venv and puts it first on PATH (the evaluator runs `python3`).
# Fails (never skips) when anything is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/check-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "numpy>=1.24"
cargo build --quiet --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/debug/trace-bench"
PATH="$venv/bin:$PATH" "$venv/bin/python" "$root/scripts/check_llm4ad.py" "$root" "$bin"
