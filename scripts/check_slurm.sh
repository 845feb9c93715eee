#!/usr/bin/env bash
# A real single-node Slurm (Debian's slurm-wlm + munge) runs trace-bench's job arrays:
# a 48-job stub matrix with --jobs-per-task 5 equals a local run; a second submission is
# scancelled mid-way, shows as unfinished in `status`, and resumes to the same result; a
# failing job shows in `status` and results.csv; a 3-shard run plus `report` equals the
# local run; the API key never lands in a file. Fails (never skips) when anything is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/slurm_ci.sh
slurm_ci_install
cargo build --locked -q
BIN=$ROOT/target/debug/trace-bench
slurm_ci_start
W=$(mktemp -d /tmp/tb-slurm.XXXXXX)
cleanup() { slurm_ci_stop; rm -rf "$W"; }
trap cleanup EXIT
cd "$W"
export OPENAI_API_KEY=sk-slurm-secret-4f9a1c  # must never be written anywhere
cat > matrix.yaml <<'YAML'
seeds: [1, 2, 3]
tasks: [internal:numeric_param, internal:code_param, internal:multi_param, internal:non_trainable]
trainers: [PrioritySearch, NoOp, BasicSearch, GEPA-Base]
YAML

wait_gone() {  # wait until Slurm job $1 has left the queue (at most 120 s)
  local i
  for i in $(seq 1 600); do
    [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0
    sleep 0.2
  done
  echo "job $1 still queued after 120 s" >&2; squeue -t all >&2; return 1
}
ids() {  # array and report job ids of a submission: ids RUN_DIR N
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1]+"/meta/slurm/submit-"+sys.argv[2]+"/submission.json")); print(s["array_job_id"], s["report_job_id"])' "$1" "$2"
}

echo "-- local reference run"
"$BIN" run --config matrix.yaml --run-id local > local.log 2>&1 || true   # non_trainable fails: exit 1

echo "-- slurm: 48 jobs, 5 per task"
t0=$(date +%s.%N)
"$BIN" run --config matrix.yaml --run-id onslurm --executor slurm --jobs-per-task 5 --max-concurrent 4 > submit.log
cat submit.log
read -r ARRAY REPORT < <(ids runs/onslurm 1)
wait_gone "$ARRAY"; wait_gone "$REPORT"
t1=$(date +%s.%N)
echo "array + report: $(python3 -c "print(round($t1-$t0, 1))") s"
[ "$(squeue -h -r -t all -j "$ARRAY" -o %T | sort | uniq -c | tr -s ' ')" = " 7 COMPLETED
 3 FAILED" ] || { echo "unexpected array states:"; squeue -h -r -t all -j "$ARRAY" -o '%K %T'; exit 1; }
"$BIN" status runs/onslurm > status.log   # failed jobs are final: exit 0
cat status.log
grep -q "failed       12" status.log
grep -q "every job has a final status" status.log

echo "-- slurm: scancel mid-way, status, resume"
"$BIN" run --config matrix.yaml --run-id cancelled --executor slurm --jobs-per-task 5 --max-concurrent 1 > /dev/null
read -r ARRAY2 REPORT2 < <(ids runs/cancelled 1)
for i in $(seq 1 300); do   # until at least one task is done, then cancel the rest
  [ "$(ls runs/cancelled/jobs 2>/dev/null | wc -l)" -ge 5 ] && break
  sleep 0.1
done
scancel "$ARRAY2"
wait_gone "$ARRAY2"; wait_gone "$REPORT2"
if "$BIN" status runs/cancelled > status2.log; then echo "status of a cancelled run must exit non-zero"; exit 1; fi
cat status2.log
grep -q "job(s) left" status2.log
"$BIN" run --config matrix.yaml --run-id cancelled --executor slurm --jobs-per-task 5 --resume auto > resume.log
cat resume.log
read -r ARRAY3 REPORT3 < <(ids runs/cancelled 2)
wait_gone "$ARRAY3"; wait_gone "$REPORT3"
"$BIN" status runs/cancelled > status3.log && grep -q "every job has a final status" status3.log

echo "-- 3 shards + report"
for i in 1 2 3; do "$BIN" run --config matrix.yaml --run-id sharded --shard "$i/3" > "shard$i.log" 2>&1 & done
wait || true
"$BIN" report runs/sharded > /dev/null

python3 "$ROOT/scripts/check_slurm.py" runs/local runs/onslurm runs/cancelled runs/sharded

echo "-- the API key is in no file"
if grep -rl "$OPENAI_API_KEY" runs; then echo "the API key was written to the files above"; exit 1; fi
grep -q "OPENAI_API_KEY\|--export=ALL" runs/onslurm/meta/slurm/submit-1/array.sh
echo "slurm checks passed"
