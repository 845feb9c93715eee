#!/usr/bin/env bash
# The analysis outputs in the tools researchers use: every notebook in notebooks/ runs headless
# (nbclient; matplotlib's inline backend, which rasterises with Agg, no display) against a fresh run and once on its own; report.html renders in
# headless Chromium (a non-blank screenshot with coloured curves); compare passes two runs of
# the same config. Installs what it needs (PyPI into a venv, Debian's chromium) and fails,
# never skips, when it cannot.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/analysis-venv"
keep="$root/target/check-analysis"   # executed notebooks and the screenshot, for a look
start=$SECONDS

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  "pandas>=2.0" "matplotlib>=3.7" "nbclient>=0.10" "nbformat>=5.9" "ipykernel>=6.29" \
  "tensorboard>=2.16" "pillow>=10"

"$root/scripts/ensure_chromium.sh" check_analysis

cargo build --quiet --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/debug/trace-bench"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rm -rf "$keep" && mkdir -p "$keep"

# A fresh run of the smoke matrix, its HTML report, and the gate on two runs of one config.
"$bin" run --runs-dir "$work/runs" --run-id fresh >/dev/null
"$bin" report "$work/runs/fresh" --html >/dev/null
"$bin" run --runs-dir "$work/runs" --run-id again >/dev/null
"$bin" compare "$work/runs/fresh" "$work/runs/again" >/dev/null \
  || { echo "check_analysis: FAIL: compare of two runs of one config did not pass" >&2; exit 1; }

# Agg rendering into the notebook (not a window), so the check below can see every figure.
export MPLBACKEND="module://matplotlib_inline.backend_inline" TRACE_BENCH_BIN="$bin" PATH="$(dirname "$bin"):$PATH"
TRACE_BENCH_RUN_DIR="$work/runs/fresh" \
  "$venv/bin/python" "$root/scripts/check_analysis.py" notebooks "$keep" "$root"/notebooks/*.ipynb
# Without TRACE_BENCH_RUN_DIR a notebook makes its own run with the binary on PATH.
env -u TRACE_BENCH_RUN_DIR -u TRACE_BENCH_BIN \
  "$venv/bin/python" "$root/scripts/check_analysis.py" notebooks "$keep/self-run" "$root/notebooks/01_quick_start.ipynb"

page="$work/runs/fresh/report.html"
if grep -Eq '<script|src=|href=|url\(' "$page"; then
  echo "check_analysis: FAIL: report.html loads something from outside the file" >&2
  exit 1
fi
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$work/chromium" --hide-scrollbars --window-size=1280,2600 \
  --screenshot="$keep/report.png" "file://$page" >"$work/chromium.log" 2>&1 \
  || { cat "$work/chromium.log" >&2; echo "check_analysis: FAIL: chromium could not render report.html" >&2; exit 1; }
[ -s "$keep/report.png" ] || { cat "$work/chromium.log" >&2; echo "check_analysis: FAIL: no screenshot" >&2; exit 1; }
"$venv/bin/python" "$root/scripts/check_analysis.py" screenshot "$keep/report.png"
echo "check_analysis: OK in $((SECONDS - start)) s (executed notebooks and screenshot in $keep)"
