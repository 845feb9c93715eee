"""Read an exported trace-bench run back through MLflow's own client and check it against
the run directory: one child run per finished job under one parent, per-step metrics equal
to iterations.csv, params equal to job_meta.json, statuses, artifacts listed.

usage: check_mlflow.py URI EXPERIMENT RUN_DIR COUNTS_JSON [--same-as COUNTS_JSON]

Writes the run count and every metric history length to COUNTS_JSON; with --same-as, fails
unless they equal an earlier export's (a second export must add nothing).
"""

import csv
import json
import os
import sys

from mlflow import MlflowClient

STEP_COLUMNS = {
    "score_train": "score/train",
    "score_val": "score/val",
    "best_score": "score/best",
    "tokens": "step/tokens",
    "step_seconds": "step/seconds",
    "llm_calls": "step/llm_calls",
    "evaluator_calls": "step/evaluator_calls",
    "candidates": "step/candidates",
}
STATUS = {"ok": "FINISHED", "skipped": "FINISHED", "failed": "FAILED", "timeout": "FAILED", "cancelled": "KILLED"}
SCALARS = [("task", "task_id"), ("suite", "suite"), ("trainer", "trainer_id"), ("seed", "seed"),
           ("variant_index", "variant_index"), ("job_index", "job_index"),
           ("optimizer", "resolved_optimizer"), ("guide", "resolved_guide"), ("logger", "resolved_logger")]
NESTED = [("trainer_kwargs", "resolved_trainer_kwargs"), ("optimizer_kwargs", "resolved_optimizer_kwargs"),
          ("guide_kwargs", "resolved_guide_kwargs"), ("logger_kwargs", "resolved_logger_kwargs"),
          ("eval_kwargs", "eval_kwargs"), ("raw_params", "raw_params")]


def fail(msg):
    print(f"check_mlflow: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def expected_params(meta, mode):
    """job_meta.json as values (not strings): what each MLflow param must hold."""
    out = {}
    for name, field in SCALARS:
        if meta.get(field) is not None:
            out[name] = meta[field]
    out["mode"] = mode
    for name, field in [("model", "llm_model"), ("provider", "llm_provider")]:
        if meta["llm"].get(field) is not None:
            out[name] = meta["llm"][field]

    def flatten(prefix, v):
        if isinstance(v, dict):
            for k, x in v.items():
                flatten(f"{prefix}.{k}", x)
        else:
            out[prefix] = v

    for prefix, field in NESTED:
        if field in meta:
            flatten(prefix, meta[field])
    return out


def same_value(param, value):
    if isinstance(value, str):
        return param == value[:6000]
    return json.loads(param) == value


def main():
    uri, experiment, run_dir, counts_path = sys.argv[1:5]
    same_as = sys.argv[6] if len(sys.argv) > 6 and sys.argv[5] == "--same-as" else None
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        fail(f"no experiment {experiment!r}")
    manifest = json.load(open(os.path.join(run_dir, "meta", "manifest.json")))
    run_id = manifest["run_id"]
    runs = client.search_runs([exp.experiment_id], f"tags.`trace_bench.run_id` = '{run_id}'", max_results=5000)
    parents = [r for r in runs if "trace_bench.job_id" not in r.data.tags]
    children = {r.data.tags["trace_bench.job_id"]: r for r in runs if "trace_bench.job_id" in r.data.tags}
    if len(parents) != 1:
        fail(f"{len(parents)} parent runs for {run_id}, expected 1")
    parent = parents[0]
    finished = [j["job_id"] for j in manifest["jobs"]
                if os.path.isfile(os.path.join(run_dir, "jobs", j["job_id"], "results.json"))]
    if sorted(children) != sorted(finished) or len(runs) != len(finished) + 1:
        fail(f"{len(children)} child runs ({len(runs)} runs in all) for {len(finished)} finished jobs")

    # Final metrics are compared with results.csv: both are what trace-bench read back from
    # results.json (serde_json without `float_roundtrip` can be 1 ulp off the JSON text).
    with open(os.path.join(run_dir, "results.csv"), newline="") as f:
        result_rows = {row["job_id"]: row for row in csv.DictReader(f)}
    iterations = {}
    with open(os.path.join(run_dir, "iterations.csv"), newline="") as f:
        for row in csv.DictReader(f):
            iterations.setdefault(row["job_id"], []).append(row)
    counts = {"runs": len(runs), "histories": {}}
    for job_id, run in children.items():
        jdir = os.path.join(run_dir, "jobs", job_id)
        meta = json.load(open(os.path.join(jdir, "job_meta.json")))
        results = json.load(open(os.path.join(jdir, "results.json")))
        tags = run.data.tags
        if tags.get("mlflow.parentRunId") != parent.info.run_id:
            fail(f"{job_id}: parent tag {tags.get('mlflow.parentRunId')} is not {parent.info.run_id}")
        if tags.get("trace_bench.status") != meta["status"] or run.info.status != STATUS[meta["status"]]:
            fail(f"{job_id}: status {run.info.status}/{tags.get('trace_bench.status')} for {meta['status']}")
        want = expected_params(meta, results["mode"])
        got = run.data.params
        if set(got) != set(want):
            fail(f"{job_id}: params {sorted(set(got) ^ set(want))} differ from job_meta.json")
        for k, v in want.items():
            if not same_value(got[k], v):
                fail(f"{job_id}: param {k}={got[k]!r}, job_meta.json has {v!r}")
        for column, key in STEP_COLUMNS.items():
            expected = [(int(r["step"]), float(r[column])) for r in iterations.get(job_id, []) if r[column] != ""]
            history = client.get_metric_history(run.info.run_id, key)
            got_points = sorted((m.step, m.value) for m in history)
            if got_points != sorted(expected):
                fail(f"{job_id}: {key} history {got_points[:3]}... != iterations.csv {expected[:3]}...")
            counts["histories"][f"{job_id}/{key}"] = len(history)
        for key in ["score_val", "score_val_initial", "time_seconds", "total_tokens", "steps"]:
            cell = result_rows[job_id][key]
            if cell != "" and run.data.metrics.get(key) != float(cell):
                fail(f"{job_id}: final metric {key}={run.data.metrics.get(key)}, results.csv {cell}")
        top = {a.path for a in client.list_artifacts(run.info.run_id)}
        if "job_meta.json" not in top or "artifacts" not in top:
            fail(f"{job_id}: artifacts {sorted(top)} lack job_meta.json or artifacts/")
        states = {os.path.basename(a.path) for a in client.list_artifacts(run.info.run_id, "artifacts")}
        for name in ["state_history.jsonl", "best_state.json", "final_state.yaml"]:
            if meta["status"] == "ok" and name not in states:
                fail(f"{job_id}: artifact artifacts/{name} missing ({sorted(states)})")
    ptop = {a.path for a in client.list_artifacts(parent.info.run_id)}
    if "results.csv" not in ptop or "iterations.csv" not in ptop:
        fail(f"parent artifacts {sorted(ptop)} lack results.csv / iterations.csv")
    if parent.info.status != "FINISHED":
        fail(f"parent run status {parent.info.status}")
    json.dump(counts, open(counts_path, "w"), indent=1, sort_keys=True)
    if same_as is not None:
        before = json.load(open(same_as))
        if before != counts:
            fail(f"a second export changed the server: {before['runs']} -> {counts['runs']} runs, "
                 f"histories differ: {[k for k in counts['histories'] if before['histories'].get(k) != counts['histories'][k]][:5]}")
    points = sum(counts["histories"].values())
    print(f"check_mlflow: {run_id}: {len(children)} child runs + 1 parent, {points} step points equal iterations.csv, params equal job_meta.json, artifacts listed")


if __name__ == "__main__":
    main()
