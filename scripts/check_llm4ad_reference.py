"""The reference's folder layout without OpenTrace (called by check_llm4ad_reference.sh with
a venv's python that has numpy and no `opto`).

1. `opto` is not importable here (else the check would prove nothing).
2. list-tasks --root lists the fixture's tasks: the two whose modules are here available,
   the one importing sklearn and Box2D unavailable with `pip install box2d-py scikit-learn`.
3. A stub run of both available tasks: each template scores what the evaluator gives it
   (toy_route -33; toy_fit -30, which needs the list the candidate fills in place).
"""

import csv
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

root, binary = sys.argv[1], sys.argv[2]
python = sys.executable
fixture = os.path.join(root, "tests/fixtures/llm4ad_reference/benchmark_tasks")
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


check(importlib.util.find_spec("opto") is None, "OpenTrace (opto) is not installed in this venv")
listing = subprocess.run([binary, "list-tasks", "--json", "--bench", "llm4ad", "--root", fixture,
                          "--llm4ad-python", python], capture_output=True, text=True)
check(listing.returncode == 0, f"list-tasks ran: {listing.stderr[-500:]}")
tasks = {t["id"]: t for t in json.loads(listing.stdout or "[]")}
for key in ("optimization/toy_route", "science_discovery/toy_fit"):
    t = tasks.get("llm4ad:" + key, {})
    check(t.get("source") == "folder" and t.get("available") is True, f"{key}: listed from the folder and available ({t.get('skip_reason')})")
needs = tasks.get("llm4ad:machine_learning/toy_needs", {})
reason = needs.get("skip_reason") or ""
check(needs.get("available") is False and "pip install box2d-py scikit-learn" in reason,
      f"toy_needs: unavailable with the distributions' names: {reason}")

with tempfile.TemporaryDirectory() as work:
    config = os.path.join(work, "reference.yaml")
    with open(config, "w") as out:
        out.write(f"mode: stub\nseeds: [1]\nllm4ad_python: {python}\nllm4ad_root: {fixture}\n")
        out.write("tasks:\n  - llm4ad:optimization/toy_route\n  - llm4ad:science_discovery/toy_fit\n")
        out.write("trainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 1, ps_candidates: 1}]\n")
    run = subprocess.run([binary, "run", "--config", config, "--run-id", "reference"], cwd=work,
                         capture_output=True, text=True)
    check(run.returncode == 0, f"the run passed (exit {run.returncode}): {run.stderr[-1500:]}")
    rows = {r["task_id"]: r for r in csv.DictReader(open(os.path.join(work, "runs/reference/results.csv")))}
    for key, want in (("optimization/toy_route", -33.0), ("science_discovery/toy_fit", -30.0)):
        r = rows.get("llm4ad:" + key, {})
        got = float(r["score_val_initial"]) if r.get("score_val_initial") else None
        check(r.get("status") == "ok" and got == want, f"{key}: ok, initial {got} = {want} ({r.get('feedback', '')[:300]})")

if failures:
    print(f"check_llm4ad_reference: {len(failures)} check(s) failed", file=sys.stderr)
    sys.exit(1)
print("check_llm4ad_reference: OK")
