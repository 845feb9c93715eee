#!/usr/bin/env bash
# The upstream LLM4AD package (PyPI `llm4ad`) through the binary: install it with the
# few packages its tasks import into a venv under target/, then run
# check_llm4ad_upstream.py with that venv's python (it is also the evaluators' python,
# via --llm4ad-python / llm4ad_python). Fails (never skips) when anything is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/llm4ad-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
pip() { "$venv/bin/pip" install --quiet --disable-pip-version-check "$@"; }
# --no-deps: llm4ad declares torch, wandb, openai, ... that no task imports.
pip --no-deps "llm4ad==1.11"
pip "numpy<2" scipy pytz "matplotlib<3.10" "pandas<2.3"
cargo build --quiet --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/debug/trace-bench"
"$venv/bin/python" "$root/scripts/check_llm4ad_upstream.py" "$root" "$bin"
