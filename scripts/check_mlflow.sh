#!/usr/bin/env bash
# A real MLflow tracking server (PyPI `mlflow`, sqlite backend, proxied artifacts, on
# loopback) takes a stub run through `trace-bench export`, and MLflow's own Python client
# reads it back (scripts/check_mlflow.py): one child run per job, per-step metrics equal
# iterations.csv, params equal job_meta.json, artifacts listed; a second export adds
# nothing; the bearer token never reaches the run directory. Then, with the server
# stopped, the live mirror (tests/mlflow.rs, replaying the run's job_finished events) ends
# quickly with every job pending, and after a restart `export` fills MLflow in.
# Installs what it needs into target/mlflow-venv and fails, never skips, when it cannot.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/mlflow-venv"
start=$SECONDS
fail() { echo "check_mlflow: FAIL: $*" >&2; exit 1; }

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "mlflow>=2.9"
"$venv/bin/python" -c 'import mlflow; print("check_mlflow: mlflow", mlflow.__version__)'

cargo build --quiet --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/debug/trace-bench"

work="$(mktemp -d)"
server_pid=""

stop_server_group() {
  if [ -n "$server_pid" ]; then
    kill -- "-$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap 'stop_server_group; rm -rf "$work"' EXIT

port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
uri="http://127.0.0.1:$port"
start_server() {
  # setsid: the server's workers share one process group, so one kill stops them all.
  setsid "$venv/bin/mlflow" server --backend-store-uri "sqlite:///$work/mlflow.db" \
    --artifacts-destination "$work/artifacts" --host 127.0.0.1 --port "$port" \
    >>"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 120); do
    if "$venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('$uri/health', timeout=1)" 2>/dev/null; then
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; fail "mlflow server exited"; }
    sleep 1
  done
  cat "$work/server.log" >&2
  fail "mlflow server did not answer on $uri within 120 s"
}

cat >"$work/mlflow.yaml" <<'EOF'
mode: stub
seeds: [1, 2]
tasks:
  - internal:numeric_param
  - internal:multi_param
trainers:
  - id: PrioritySearch
  - id: GEPA-Base
EOF
check() { "$venv/bin/python" -W ignore "$root/scripts/check_mlflow.py" "$@"; }
secret="tb-secret-$RANDOM$RANDOM"

start_server
"$bin" run --config "$work/mlflow.yaml" --runs-dir "$work/runs" --run-id first >/dev/null 2>&1 \
  || fail "the stub run failed"
MLFLOW_TRACKING_TOKEN="$secret" "$bin" export "$work/runs/first" --mlflow "$uri" --experiment tb-check \
  || fail "export of the stub run failed"
check "$uri" tb-check "$work/runs/first" "$work/counts1.json"
MLFLOW_TRACKING_TOKEN="$secret" "$bin" export "$work/runs/first" --mlflow "$uri" --experiment tb-check >"$work/export2.txt" \
  || fail "the second export failed"
grep -q "0 job(s) sent" "$work/export2.txt" || fail "the second export sent jobs again: $(cat "$work/export2.txt")"
check "$uri" tb-check "$work/runs/first" "$work/counts2.json" --same-as "$work/counts1.json"
if grep -rqF "$secret" "$work/runs"; then
  fail "MLFLOW_TRACKING_TOKEN was written into the run directory: $(grep -rlF "$secret" "$work/runs")"
fi

# The server goes away; a live-mirrored run must still end quickly, with everything pending.
stop_server_group
"$bin" run --config "$work/mlflow.yaml" --runs-dir "$work/runs" --run-id offline >/dev/null 2>&1 \
  || fail "the second stub run failed"
t0=$SECONDS
TB_MLFLOW_REPLAY_DIR="$work/runs/offline" TB_MLFLOW_REPLAY_URI="$uri" TB_MLFLOW_REPLAY_EXPERIMENT=tb-check \
  cargo test --quiet --manifest-path "$root/Cargo.toml" --test mlflow live_mirror_with_the_server_down \
  >"$work/replay.txt" 2>&1 || { cat "$work/replay.txt" >&2; fail "the live mirror against a stopped server"; }
pending="$("$venv/bin/python" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["jobs"]))' "$work/runs/offline/meta/mlflow_pending.json")" \
  || fail "the live mirror recorded nothing pending"
[ "$pending" = 8 ] || fail "the live mirror lists $pending pending jobs, expected all 8"
echo "check_mlflow: live mirror with the server down: $pending jobs pending, test done in $((SECONDS - t0)) s (its build included)"

# Back up: `export` with no --mlflow/--experiment uses what the mirror recorded.
start_server
"$bin" export "$work/runs/offline" || fail "export after the restart failed"
[ ! -f "$work/runs/offline/meta/mlflow_pending.json" ] || fail "export left meta/mlflow_pending.json"
check "$uri" tb-check "$work/runs/offline" "$work/counts3.json"
check "$uri" tb-check "$work/runs/first" "$work/counts4.json" --same-as "$work/counts1.json"

echo "check_mlflow: passed in $((SECONDS - start)) s"
