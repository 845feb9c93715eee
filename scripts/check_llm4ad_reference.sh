#!/usr/bin/env bash
# The reference's converted-folder layout (benchmarks/LLM4AD: llm4ad_loader.py beside
# benchmark_tasks/) through --root in a venv WITHOUT OpenTrace: a fixture loader that
# imports opto at its top, like the reference's, and task folders we wrote
# (tests/fixtures/llm4ad_reference). Fails (never skips) when anything is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/reference-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "numpy>=1.24"
cargo build --quiet --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/debug/trace-bench"
"$venv/bin/python" "$root/scripts/check_llm4ad_reference.py" "$root" "$bin"
