#!/usr/bin/env bash
# Real outside software reads our files: installs tensorboard and pandas from PyPI into a
# throwaway venv, runs a small stub matrix, and checks every job with check_outputs.py.
# Fails (never skips) when anything is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/check-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "tensorboard>=2.16" "pandas>=2.0"

cargo build --quiet --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/debug/trace-bench"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/check.yaml" <<'YAML'
runs_dir: runs
mode: stub
seeds: [1, 2]
max_workers: 2
tasks:
  - internal:numeric_param
  - internal:multi_param
  - trace_examples:opentrace_greeting
  - internal:code_param
  - veribench:smoke_placeholder
trainers:
  - id: PrioritySearch
    params_variants: [{ps_steps: 4}]
  - id: GEPA-UCB
    params_variants: [{gepa_iters: 5}]
YAML
(cd "$work" && "$bin" run --config check.yaml --run-id check >/dev/null)
"$venv/bin/python" "$root/scripts/check_outputs.py" "$work/runs/check"
