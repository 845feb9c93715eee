#!/usr/bin/env bash
# External trainers against the real libraries: makes the pinned venv (scripts/external_env.sh)
# and runs the tests that need it — DSPyTrainer with MIPROv2, COPRO, SIMBA and GEPA and
# UpstreamGEPA on datasets:arithmetic (all ok, every request recorded, counted, the same
# at any max_workers), OpenEvolveTrainer on llm4ad:online_bin_packing_mini and
# internal:numeric_param (the same checks, its best program re-scored by us, the feedback in
# its prompts), against a candidate that tries to set its own score and in real mode against
# a mock endpoint (recorded, then replayed strictly without a request), and the
# reference's DSPy configs unchanged on an hf fixture cache.
# Fails (never skips) when something cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=$(scripts/external_env.sh)
echo "external trainers' Python: $PYTHON"
export TRACE_BENCH_EXTERNAL_PYTHON=$PYTHON
cargo test --locked --test external_libraries --test hf -- --ignored
