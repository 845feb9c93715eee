"""Evaluations per second of an LLM4AD task through trace-bench's bridge: one evaluator
process per job (`bridge.py --serve`, what jobs use) against one process per evaluation
(`bridge.py`, the baseline), measured in the same run on the same candidate.

    target/llm4ad-venv/bin/python bench/llm4ad_evaluators.py [TASK_KEY] [N]

Needs the upstream `llm4ad` package in the running Python (scripts/check_llm4ad_upstream.sh
installs one in target/llm4ad-venv). Exits 1 when serving is not at least 1.5x faster.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BRIDGE = os.path.join(ROOT, "tasks/llm4ad_bridge/bridge.py")
key = sys.argv[1] if len(sys.argv) > 1 else "optimization/tsp_construct"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 10
TARGET = 1.5

discovery = json.loads(subprocess.run([sys.executable, "-I", os.path.join(ROOT, "tasks/llm4ad_bridge/discover.py")],
                                      capture_output=True, text=True, check=True).stdout)
task = next(t for t in discovery["tasks"] if t["key"] == key)
info = {k: task[k] for k in ("source", "module", "eval_class", "entry", "execs_program")}


def workdirs(base):
    for i in range(n):
        d = os.path.join(base, f"eval-{i}")
        os.makedirs(d)
        with open(os.path.join(d, "program.py"), "w") as f:
            f.write(task["template"])
        yield d


with tempfile.TemporaryDirectory() as base:
    dirs = list(workdirs(base))
    start = time.monotonic()
    fresh = []
    for d in dirs:
        request = {"files": {"program": "program.py"}, "info": info, "eval_kwargs": {}}
        out = subprocess.run([sys.executable, "-I", BRIDGE], input=json.dumps(request), capture_output=True,
                             text=True, cwd=d, check=True)
        fresh.append(json.loads(out.stdout.strip().splitlines()[-1])["score"])
    per_process = time.monotonic() - start

    start = time.monotonic()
    server = subprocess.Popen([sys.executable, "-I", BRIDGE, "--serve"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=base)
    served = []
    for d in dirs:
        request = {"files": {"program": "program.py"}, "info": info, "eval_kwargs": {}, "workdir": d}
        server.stdin.write(json.dumps(request) + "\n")
        server.stdin.flush()
        served.append(json.loads(server.stdout.readline())["score"])
    server.stdin.close()
    server.wait()
    per_job = time.monotonic() - start

assert fresh == served, f"same scores either way: {fresh} vs {served}"
ratio = per_process / per_job
print(f"{key}: {n} evaluations of the template (score {served[0]:.6g})")
print(f"  one process per evaluation: {per_process:.2f} s = {n / per_process:.2f} evaluations/s (baseline)")
print(f"  one evaluator per job:      {per_job:.2f} s = {n / per_job:.2f} evaluations/s")
print(f"  speed-up {ratio:.2f}x (target >= {TARGET}x)")
sys.exit(0 if ratio >= TARGET else 1)
