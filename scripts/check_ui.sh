#!/usr/bin/env bash
# `trace-bench ui` in a real Chromium: Playwright (PyPI, pinned, in a venv under target/)
# drives Debian's chromium — Playwright's own browser download is never used. On a temp
# runs dir with finished runs: the runs list, a run, its jobs filtered by status, a job and
# its transcript, launching a stub run from a config and watching it finish live, stopping
# another mid-way and resuming it, comparing two runs. Screenshots are kept in
# target/ci-artifacts/ui/. Installs what it needs and fails, never skips, when it cannot.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/ui-venv"
keep="$root/target/ci-artifacts/ui"
start=$SECONDS

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "playwright==1.65.2"

"$root/scripts/ensure_chromium.sh" check_ui

cargo build --quiet --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/debug/trace-bench"
work="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
rm -rf "$keep" && mkdir -p "$keep"

# Two finished runs of the smoke matrix (compare passes on them).
"$bin" run --runs-dir "$work/runs" --run-id done >/dev/null
"$bin" report "$work/runs/done" --html >/dev/null
"$bin" run --runs-dir "$work/runs" --run-id again >/dev/null

# Configs offered on the Launch page: a quick stub run, a slow one (a user task whose
# shell scorer sleeps), and one with a wrong type on line 5.
cfg="$work/configs"
mkdir -p "$cfg/tasks/slow"
cat >"$cfg/tasks/slow/task.yaml" <<'EOF'
id: demo:slow
description: A number scored by a slow shell script.
objective: Make x equal 3.
parameters:
  - {name: x, kind: number, initial: 0.0}
splits:
  train: [{input: null, info: 3}]
evaluator:
  kind: command
  command: [sh, '{task_dir}/score.sh']
  timeout_seconds: 60
  failure_score: -1000
EOF
cat >"$cfg/tasks/slow/score.sh" <<'EOF'
sleep 0.25
x=$(sed -n 's/.*"x":\([-0-9.e+]*\).*/\1/p' | head -n 1)
awk -v x="$x" 'BEGIN { d = x - 3; if (d < 0) d = -d; printf "{\"score\": %s, \"feedback\": \"x=%s\"}\n", -d, x }'
EOF
cat >"$cfg/quick.yaml" <<'EOF'
mode: stub
seeds: [1, 2]
tasks: [internal:numeric_param]
trainers:
  - id: PrioritySearch
    params_variants: [{ps_steps: 1, ps_batches: 1}]
EOF
cat >"$cfg/slow.yaml" <<'EOF'
tasks_dir: tasks
mode: stub
seeds: [1, 2, 3, 4, 5, 6]
max_workers: 1
tasks: [demo:slow]
trainers:
  - id: PrioritySearch
    params_variants: [{ps_steps: 2}]
EOF
printf 'mode: stub\nseeds: [1]\ntasks: [internal:numeric_param]\ntrainers: [PrioritySearch]\nmax_workers: two\n' >"$cfg/bad.yaml"

"$bin" ui --port 0 --runs-dir "$work/runs" --configs "$cfg" >"$work/ui.out" 2>"$work/ui.err" &
server=$!
url=""
for _ in $(seq 1 100); do
  url="$(sed -n 's/^open //p' "$work/ui.out" | head -n 1)"
  [ -n "$url" ] && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then
  cat "$work/ui.err" >&2
  echo "check_ui: FAIL: trace-bench ui printed no URL" >&2
  exit 1
fi
echo "check_ui: serving at $url"

"$venv/bin/python" "$root/scripts/check_ui.py" "$url" "$keep" || {
  echo "--- trace-bench ui's stderr:" >&2; cat "$work/ui.err" >&2
  for l in "$work"/runs/.ui/logs/*.log; do echo "--- $l" >&2; tail -n 20 "$l" >&2; done
  echo "check_ui: FAIL" >&2
  exit 1
}
kill -0 "$server" 2>/dev/null || { echo "check_ui: FAIL: the server died" >&2; exit 1; }
for shot in runs run job live stopped compare; do
  [ -s "$keep/$shot.png" ] || { echo "check_ui: FAIL: no screenshot $shot.png" >&2; exit 1; }
done
echo "check_ui: OK in $((SECONDS - start)) s (screenshots in $keep)"
