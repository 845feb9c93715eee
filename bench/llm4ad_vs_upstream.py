"""Milliseconds per evaluation of LLM4AD tasks: trace-bench's bridge (`bridge.py --serve`,
what a job runs: the evaluator in one process, the candidate forked from a confined fork
server, calls forwarded as data) against upstream llm4ad's own
`SecureEvaluator(evaluator, fork_proc=True)` (the candidate forked from the evaluator's
process and run there, unconfined), interleaved in one run on the same Python, on each
task's template program.

    target/llm4ad-venv/bin/python bench/llm4ad_vs_upstream.py [N] [TASK_KEY ...]

Needs the upstream `llm4ad` package in the running Python (scripts/check_llm4ad_upstream.sh
installs one in target/llm4ad-venv). Prints the table (median of N evaluations after one
warm-up each, which builds the evaluators and starts the fork server), the geometric mean
of ours / upstream, then a round trip of one forwarded call, of the bare pipe (blocking reads)
and of the pipe with the bridge's polling wait, and the load average. Exits 1
unless the geometric mean is <= 2x, no task is above 4x and every score equals upstream's.
"""

import importlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BRIDGE_DIR = os.path.join(ROOT, "tasks/llm4ad_bridge")
TASKS = [
    "optimization/cflp_construct",
    "optimization/knapsack_construct",
    "optimization/jssp_construct",
    "optimization/set_cover_construct",
    "optimization/online_bin_packing",
    "optimization/ovrp_construct",
    "optimization/qap_construct",
    "optimization/cvrp_construct",
    "optimization/tsp_construct",
    "science_discovery/ode_1d",
    "optimization/vrptw_construct",
    "science_discovery/stresstrain",
    "science_discovery/oscillator1",
    "science_discovery/bactgrow",
]
GEOMEAN_TARGET, TASK_TARGET = 2.0, 4.0

args = sys.argv[1:]
n = int(args.pop(0)) if args and args[0].isdigit() else 5
keys = args or TASKS

from llm4ad.base import SecureEvaluator  # noqa: E402

discovery = json.loads(subprocess.run([sys.executable, "-I", os.path.join(BRIDGE_DIR, "discover.py")],
                                      capture_output=True, text=True, check=True).stdout)
found = {t["key"]: t for t in discovery["tasks"]}


class Ours:
    """One bridge server, as one job has."""

    def __init__(self, task, base):
        self.info = {k: task[k] for k in ("source", "module", "eval_class", "entry", "execs_program")}
        self.template, self.base, self.count = task["template"], base, 0
        os.makedirs(base, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-I", os.path.join(BRIDGE_DIR, "bridge.py"), "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=base)

    def evaluate(self):
        self.count += 1
        d = os.path.join(self.base, f"eval-{self.count}")
        os.makedirs(d)
        with open(os.path.join(d, "program.py"), "w") as f:
            f.write(self.template)
        request = {"files": {"program": "program.py"}, "info": self.info, "eval_kwargs": {}, "workdir": d}
        start = time.perf_counter()
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        verdict = json.loads(self.proc.stdout.readline())
        return time.perf_counter() - start, verdict["score"], verdict["feedback"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


class Upstream:
    def __init__(self, task):
        module = importlib.import_module(task["module"])
        self.secure = SecureEvaluator(getattr(module, task["eval_class"])(), fork_proc=True)
        self.template = task["template"]

    def evaluate(self):
        start = time.perf_counter()
        result = self.secure.evaluate_program(self.template)
        return time.perf_counter() - start, result


def same(a, b):
    return a is not None and b is not None and abs(a - b) <= 1e-9 * max(1.0, abs(b))


rows, failures = [], []
with tempfile.TemporaryDirectory() as base:
    for key in keys:
        task = found.get(key)
        if task is None or task["missing"]:
            failures.append(f"{key}: not available here ({task and task['missing']})")
            continue
        ours = Ours(task, os.path.join(base, key.replace("/", "_")))
        upstream = Upstream(task)
        first_ours, _, _ = ours.evaluate()
        upstream.evaluate()
        t_ours, t_up = [], []
        for _ in range(n):
            t, ours_score, feedback = ours.evaluate()
            t_ours.append(t)
            t, up_score = upstream.evaluate()
            t_up.append(t)
        ours.close()
        up_score = float(up_score) if up_score is not None else None
        ms_ours, ms_up = 1000 * statistics.median(t_ours), 1000 * statistics.median(t_up)
        ratio = ms_ours / ms_up
        rows.append((key, ms_up, ms_ours, ratio, up_score, ours_score, first_ours * 1000))
        if not same(ours_score, up_score):
            failures.append(f"{key}: score {ours_score} != upstream {up_score} ({feedback})")
        if ratio > TASK_TARGET:
            failures.append(f"{key}: {ratio:.2f}x > {TASK_TARGET}x")
        print(f"  {key}: upstream {ms_up:.1f} ms, ours {ms_ours:.1f} ms ({ratio:.2f}x)", file=sys.stderr, flush=True)

print(f"| task | upstream ms/eval | ours ms/eval | ours / upstream | upstream score | our score | our first eval ms |")
print("|---|---|---|---|---|---|---|")
for key, up, us, ratio, up_score, ours_score, first in sorted(rows, key=lambda r: -r[3]):
    print(f"| {key} | {up:,.1f} | {us:,.1f} | {ratio:.2f}x | {up_score:.10g} | {ours_score:.10g} | {first:,.0f} |")
geomean = math.exp(sum(math.log(r[3]) for r in rows) / len(rows)) if rows else float("nan")
print(f"\ngeometric mean of ours / upstream over {len(rows)} task(s): {geomean:.2f}x (target <= {GEOMEAN_TARGET}x; "
      f"median of {n} evaluations each, after one warm-up)")
if geomean > GEOMEAN_TARGET:
    failures.append(f"geometric mean {geomean:.2f}x > {GEOMEAN_TARGET}x")

# The floor: one forwarded call through the bridge against the bare pipe, same machine.
sys.path.insert(0, BRIDGE_DIR)
import bridge  # noqa: E402
import numpy as np  # noqa: E402

with tempfile.TemporaryDirectory() as d:
    program = "def f(x, a):\n    return x\ndef g(x, a):\n    return a - x\n"
    zygote = bridge.Zygote(["numpy"])
    candidate = bridge.Candidate(zygote, program, "program.py", "f", "none", d)
    small, arr = 3.0, np.random.rand(200)
    m = 5000
    for label, fn, a in (("a float and a 200-float array in, a float out", None, arr),
                         ("a float and a 200-float array in, the array out", "g", arr),
                         ("a float and a 100x100 float array in, a float out", None, np.random.rand(100, 100))):
        for _ in range(100):
            candidate.call(fn, small, a)
        start = time.perf_counter()
        for _ in range(m):
            candidate.call(fn, small, a)
        print(f"one forwarded call ({label}): {(time.perf_counter() - start) / m * 1e6:.1f} us")
    candidate.close()
    zygote.close()
r1, w1 = os.pipe()
r2, w2 = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w1)  # else the child never sees the end of its input
    os.close(r2)
    while True:
        b = os.read(r1, 1)
        if not b:
            os._exit(0)
        os.write(w2, b)
os.close(r1)
os.close(w2)
m = 20000
start = time.perf_counter()
for _ in range(m):
    os.write(w1, b"x")
    os.read(r2, 1)
print(f"the pipe itself (1 byte there and back between two processes): {(time.perf_counter() - start) / m * 1e6:.1f} us")
os.close(w1)
os.close(r2)
os.waitpid(pid, 0)

# The same with the bridge's wait (poll the non-blocking read end, yielding the CPU, before
# sleeping): the floor of a forwarded call.
r1, w1 = os.pipe()
r2, w2 = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w1)
    os.close(r2)
    channel = bridge.Channel(r1, w2)
    try:
        while True:
            channel.send(channel.recv())
    except EOFError:
        os._exit(0)
os.close(r1)
os.close(w2)
channel = bridge.Channel(r2, w1)
for _ in range(1000):
    channel.send(b"x")
    channel.recv()
start = time.perf_counter()
for _ in range(m):
    channel.send(b"x")
    channel.recv()
print(f"the pipe with the bridge's polling wait (1 byte there and back): {(time.perf_counter() - start) / m * 1e6:.1f} us")
channel.close()
os.waitpid(pid, 0)
print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

for f in failures:
    print("FAIL " + f)
sys.exit(1 if failures else 0)
