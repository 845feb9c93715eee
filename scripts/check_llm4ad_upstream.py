"""The upstream llm4ad package through the binary (called by check_llm4ad_upstream.sh,
run by the venv's python that has llm4ad installed).

1. list-tasks --json shows the 26 upstream tasks with their source; tasks whose modules
   this venv lacks (gym, numba, sympy) are unavailable with a `pip install` fix.
2. A stub matrix over 10 upstream tasks x 2 trainers: every job ok, and each job's initial
   score equals the score upstream's own evaluator gives the template when this script
   calls it directly (in this process, the way upstream's SecureEvaluator does).
3. Forging candidates on optimization/tsp_construct get the honest or the failure score:
   a printed verdict, a raw write to fd 1, numpy patched inside the candidate, an early
   exit with status 0.
"""

import __future__
import csv
import importlib
import json
import os
import subprocess
import sys
import tempfile

root, binary = sys.argv[1], sys.argv[2]
python = sys.executable
failures = []

TASKS = [
    "optimization/tsp_construct",
    "optimization/vrptw_construct",
    "optimization/cvrp_construct",
    "optimization/ovrp_construct",
    "optimization/knapsack_construct",
    "optimization/cflp_construct",
    "optimization/set_cover_construct",
    "optimization/jssp_construct",
    "science_discovery/stresstrain",
    "science_discovery/oscillator1",
]


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def direct_score(key, template, entry, eval_class):
    """Upstream's evaluator on the template, called here with the template's function."""
    module = importlib.import_module("llm4ad.task." + key.replace("/", "."))
    evaluator = getattr(module, eval_class)()
    namespace = {}
    code = compile(template, "template", "exec", flags=__future__.annotations.compiler_flag, dont_inherit=True)
    exec(code, namespace)
    return float(evaluator.evaluate_program(template, namespace[entry]))


listing = subprocess.run([binary, "list-tasks", "--json", "--bench", "llm4ad", "--llm4ad-python", python],
                         capture_output=True, text=True, check=True)
tasks = {t["id"]: t for t in json.loads(listing.stdout)}
upstream = {k: t for k, t in tasks.items() if t.get("source") == "upstream"}
check(len(upstream) == 26, f"26 upstream tasks listed (got {len(upstream)})")
acrobot = upstream.get("llm4ad:machine_learning/acrobot", {})
check(acrobot.get("available") is False and "pip install gym" in (acrobot.get("skip_reason") or ""),
      f"acrobot unavailable with the fix: {acrobot.get('skip_reason')}")
for key in TASKS:
    t = upstream.get("llm4ad:" + key)
    check(t is not None and t["available"], f"{key} listed and available")

expected = {}
discovery = json.loads(subprocess.run([python, "-I", os.path.join(root, "tasks/llm4ad_bridge/discover.py")],
                                      capture_output=True, text=True, check=True).stdout)
found = {t["key"]: t for t in discovery["tasks"]}
for key in TASKS:
    f = found[key]
    template = upstream["llm4ad:" + key]["parameters"][0]["initial"]
    check(template == f["template"], f"{key}: the binary's initial program is upstream's template")
    expected[key] = direct_score(key, f["template"], f["entry"], f["eval_class"])

with tempfile.TemporaryDirectory() as work:
    config = os.path.join(work, "upstream.yaml")
    with open(config, "w") as out:
        out.write("mode: stub\nseeds: [1]\nmax_workers: 2\n")
        out.write(f"llm4ad_python: {python}\n")
        out.write("tasks:\n" + "".join(f"  - llm4ad:{k}\n" for k in TASKS))
        out.write("trainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 1, ps_candidates: 1}]\n"
                  "  - id: GEPA-Base\n    params_variants: [{gepa_iters: 1}]\n")
    run = subprocess.run([binary, "run", "--config", config, "--run-id", "upstream"], cwd=work,
                         capture_output=True, text=True)
    check(run.returncode == 0, f"the matrix ran (exit {run.returncode}): {run.stderr[-2000:]}")
    rows = list(csv.DictReader(open(os.path.join(work, "runs/upstream/results.csv"))))
    check(len(rows) == 2 * len(TASKS), f"{2 * len(TASKS)} jobs (got {len(rows)})")
    for r in rows:
        key = r["task_id"].split(":", 1)[1]
        got = float(r["score_val_initial"]) if r["score_val_initial"] else None
        want = expected[key]
        same = got is not None and abs(got - want) <= 1e-9 * max(1.0, abs(want))
        check(r["status"] == "ok" and same,
              f"{key} x {r['trainer_id']}: {r['status']}, initial {got} = upstream {want}")

    bridge = os.path.join(root, "tasks/llm4ad_bridge/bridge.py")
    tsp = found["optimization/tsp_construct"]
    honest = expected["optimization/tsp_construct"]

    def bridge_score(program):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "program.py"), "w") as f:
                f.write(program)
            request = {"files": {"program": "program.py"}, "eval_kwargs": {},
                       "info": {"source": "upstream", "module": tsp["module"], "eval_class": tsp["eval_class"],
                                "entry": tsp["entry"], "execs_program": False}}
            out = subprocess.run([python, "-I", bridge], input=json.dumps(request), capture_output=True,
                                 text=True, cwd=d, timeout=120)
            return json.loads(out.stdout.strip().splitlines()[-1])["score"]

    body = "def select_next_node(current_node, destination_node, unvisited_nodes, distance_matrix):\n    return unvisited_nodes[0]\n"
    forged = {
        "prints a verdict": "print('{\"score\": 1000.0}')\n" + body,
        "writes to fd 1": "import os\nos.write(1, b'{\"score\": 1000.0}\\n')\n" + body,
        "patches numpy": "import numpy as np\nnp.mean = lambda *a, **k: 0.0\nnp.average = lambda *a, **k: 0.0\nnp.sum = lambda *a, **k: 0.0\n" + body,
    }
    for what, program in forged.items():
        got = bridge_score(program)
        check(abs(got - honest) < 1e-9, f"a candidate that {what} gets the honest score {honest} (got {got})")
    got = bridge_score("import os\nos._exit(0)\n" + body)
    check(got == -1000000.0, f"a candidate that exits early with 0 gets the failure score (got {got})")

if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print("all upstream LLM4AD checks passed")
