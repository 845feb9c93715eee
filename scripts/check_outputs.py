#!/usr/bin/env python3
"""Check a trace-bench run directory with the software researchers read it with.

Usage: check_outputs.py RUN_DIR

* pandas reads results.csv and iterations.csv with the right dtypes (scores float, token
  counts integer), one results row per manifest job, one iteration row per job step;
* the real TensorBoard (EventAccumulator, via check_tensorboard.py) lists, for every job,
  the tags score/train, score/best, time/step_seconds, llm/calls, llm/tokens and param/<name>
  with one point per step and values equal (to float32) to iterations.csv / results.json,
  and text parameters as text summaries;
* `tensorboard --logdir RUN_DIR/jobs` serves them: its HTTP data API on loopback lists one
  run per job and returns score/best with the same values.

Exits non-zero with a message on the first kind of mismatch.
"""

import json
import math
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import pandas as pd


def fail(msg):
    print(f"check_outputs: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    run = sys.argv[1]
    manifest = json.load(open(os.path.join(run, "meta", "manifest.json")))
    planned = [j["job_id"] for j in manifest["jobs"]]

    res = pd.read_csv(os.path.join(run, "results.csv"))
    if list(res["job_id"]) != planned:
        fail("results.csv rows are not the manifest's jobs in matrix order")
    if res["job_id"].duplicated().any():
        fail("results.csv has duplicate job ids")
    for col in ["score_val_initial", "score_val_final", "score_val", "time_seconds"]:
        if res[col].dtype.kind != "f":
            fail(f"results.csv column {col} is {res[col].dtype}, expected float")
    for col in ["prompt_tokens", "completion_tokens", "total_tokens", "seed", "steps", "llm_calls"]:
        if res[col].dtype.kind not in "iu":
            fail(f"results.csv column {col} is {res[col].dtype}, expected integer")
    if not (res["total_tokens"] == res["prompt_tokens"] + res["completion_tokens"]).all():
        fail("total_tokens != prompt_tokens + completion_tokens")

    it = pd.read_csv(os.path.join(run, "iterations.csv"))
    for col in ["score_train", "best_score", "step_seconds"]:
        if it[col].dtype.kind != "f":
            fail(f"iterations.csv column {col} is {it[col].dtype}, expected float")
    curves = it.pivot_table(index="step", columns="job_id", values="best_score")
    if curves.shape[1] != (res["status"] == "ok").sum():
        fail("iterations.csv does not have a curve for every ok job")

    expect = {"runs": []}
    for _, row in res.iterrows():
        job = row["job_id"]
        steps = it[it["job_id"] == job].sort_values("step")
        if row["status"] == "ok" and len(steps) != row["steps"] + 1:
            fail(f"job {job}: {len(steps)} iteration rows for {row['steps']} steps (+ step 0)")
        history = json.load(open(os.path.join(run, "jobs", job, "results.json")))["history"]
        scalars, texts = {}, {}
        for tag, col in [("score/train", "score_train"), ("score/best", "best_score"),
                         ("time/step_seconds", "step_seconds"), ("llm/calls", "llm_calls"),
                         ("llm/tokens", "tokens")]:
            pts = [[int(s), float(v)] for s, v in zip(steps["step"], steps[col]) if not math.isnan(float(v))]
            if pts:
                scalars[tag] = pts
        if steps["score_val"].notna().any():
            scalars["score/val"] = [[int(s), float(v)] for s, v in zip(steps["step"], steps["score_val"])]
        for rec in history:
            for name, value in rec["best_params"].items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    scalars.setdefault(f"param/{name}", []).append([rec["step"], float(value)])
                else:
                    texts.setdefault(f"param/{name}", []).append([rec["step"], value if isinstance(value, str) else json.dumps(value)])
        expect["runs"].append({"logdir": os.path.abspath(os.path.join(run, row["tb_logdir"])),
                               "scalars": scalars, "texts": texts})

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(expect, f)
        path = f.name
    checker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_tensorboard.py")
    proc = subprocess.run([sys.executable, checker, path], capture_output=True, text=True)
    os.unlink(path)
    if proc.returncode != 0:
        fail("TensorBoard check failed:\n" + proc.stdout + proc.stderr)
    served = check_served(run, expect)
    n_points = sum(len(v) for r in expect["runs"] for v in r["scalars"].values())
    print(f"check_outputs: OK: {len(res)} jobs, {len(it)} iteration rows; TensorBoard read "
          f"{len(expect['runs'])} event files with {n_points} scalar points as expected; "
          f"tensorboard served {served} runs over HTTP")


def f32(v):
    return struct.unpack("<f", struct.pack("<f", float(v)))[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read().decode())


def check_served(run, expect):
    """Start the real tensorboard on RUN/jobs and compare score/best over its HTTP API."""
    jobs_dir = os.path.abspath(os.path.join(run, "jobs"))
    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    proc = subprocess.Popen([exe, "--logdir", jobs_dir, "--host", "127.0.0.1", "--port", str(port),
                             "--reload_interval", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    wanted = {os.path.relpath(r["logdir"], jobs_dir): r for r in expect["runs"] if r["scalars"]}
    try:
        deadline = time.time() + 90
        runs = []
        while time.time() < deadline:
            if proc.poll() is not None:
                fail("tensorboard exited: " + proc.stderr.read().decode()[-2000:])
            try:
                runs = get_json(base + "/data/runs")
                tags = get_json(base + "/data/plugin/scalars/tags")
                if set(wanted) <= set(runs) and all("score/best" in tags.get(r, {}) for r in wanted):
                    break
            except OSError:
                pass
            time.sleep(1)
        else:
            fail(f"tensorboard did not serve every job within 90 s (serving {len(runs)} of {len(wanted)})")
        for name, r in wanted.items():
            q = urllib.parse.urlencode({"run": name, "tag": "score/best"})
            points = get_json(f"{base}/data/plugin/scalars/scalars?{q}")
            got = [(p[1], p[2]) for p in points]
            exp = [(s, f32(v)) for s, v in r["scalars"]["score/best"]]
            if got != exp:
                fail(f"tensorboard serves {name} score/best as {got}, expected {exp}")
        return len(wanted)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
