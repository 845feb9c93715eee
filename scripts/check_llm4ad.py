"""LLM4AD checks with the real python3 + numpy (called by check_llm4ad.sh).

1. The circle-packing scorer on hand-made packings: the template (valid, 26 * 0.5/6),
   exactly touching circles (accepted within 1e-9), overlapping, out of the square, wrong
   count, a crashing program.
2. The reference's configs/m1_validation.yaml, run unchanged by the binary: circle_packing
   jobs ok with initial score 2.1667, veribench skipped, non_trainable failed with
   no_trainable_parameters, everything else ok.
"""

import csv
import json
import os
import subprocess
import sys
import tempfile

root, binary = sys.argv[1], sys.argv[2]
scorer = os.path.join(root, "tasks/llm4ad/circle_packing/score.py")
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def score(program, scorer=scorer):
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "program.py"), "w") as f:
            f.write(program)
        req = {"parameters": {}, "input": {"n": 26}, "info": {"n": 26}, "files": {"program": "program.py"}}
        out = subprocess.run([sys.executable, scorer], input=json.dumps(req), capture_output=True, text=True, cwd=d, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])


def fixed(rows):
    return f"nan = float('nan')\ndef pack_circles(n):\n    return {rows!r}\n"


grid = [[(c + 0.5) / 6, (r + 0.5) / 6, 0.5 / 6] for r in range(6) for c in range(6)][:26]
# The initial program exactly as the binary loads it from the embedded manifest.
tasks = json.loads(subprocess.run([binary, "list-tasks", "--json"], capture_output=True, text=True, check=True).stdout)
template = next(t for t in tasks if t["id"] == "llm4ad:circle_packing")["parameters"][0]["initial"]

r = score(template)
check(abs(r["score"] - 26 * 0.5 / 6) < 1e-9, f"template scores 26*0.5/6 = 2.1667 (got {r['score']})")
r = score(fixed(grid))
check(abs(r["score"] - 26 / 12) < 1e-9, "a touching grid is valid within the tolerance")
overlap = [row[:] for row in grid]
overlap[1][0] = overlap[0][0] + 0.1
r = score(fixed(overlap))
check(r["score"] == 0.0 and "overlap" in r["feedback"], f"overlapping circles are invalid: {r['feedback']}")
outside = [row[:] for row in grid]
outside[5][0] = 0.99
r = score(fixed(outside))
check(r["score"] == 0.0 and "leaves the unit square" in r["feedback"], f"a circle outside is invalid: {r['feedback']}")
r = score(fixed(grid[:25]))
check(r["score"] == 0.0 and "expected 26 circles, got 25" in r["feedback"], f"wrong count is invalid: {r['feedback']}")
r = score(fixed([[0.5, 0.5, float("nan")]] + grid[1:]))
check(r["score"] == 0.0 and "non-finite" in r["feedback"], f"NaN is invalid: {r['feedback']}")
r = score("def pack_circles(n):\n    raise RuntimeError('boom')\n")
check(r["score"] == 0.0 and "RuntimeError: boom" in r["feedback"], f"a crash is feedback: {r['feedback']}")
# A program that prints a verdict of its own and exits gains nothing: the scorer decides.
forge = 'import json, os\nprint(json.dumps({"score": 99.0, "feedback": "forged"}))\nos._exit(0)\n'
r = score(forge)
check(r["score"] == 0.0 and r["feedback"].startswith("invalid"), f"a forged verdict is ignored (circle packing): {r}")

# The two smaller LLM4AD-style tasks: better heuristics score higher, broken ones are invalid.
bp = os.path.join(root, "tasks/llm4ad/online_bin_packing/score.py")
first_fit = next(t for t in tasks if t["id"] == "llm4ad:online_bin_packing_mini")["parameters"][0]["initial"]
best_fit = "def priority(item, bins):\n    return [-(b - item) for b in bins]\n"
ff, bf = score(first_fit, bp)["score"], score(best_fit, bp)["score"]
check(-1000 < ff < bf <= 0, f"bin packing: best fit ({bf:.3f}) beats first fit ({ff:.3f})")
r = score("def priority(item, bins):\n    return [1]\n", bp)
check(r["score"] == -1000.0 and "values for" in r["feedback"], f"bin packing: wrong length is invalid: {r['feedback']}")
tsp = os.path.join(root, "tasks/llm4ad/tsp_construct/score.py")
nearest = next(t for t in tasks if t["id"] == "llm4ad:tsp_construct_mini")["parameters"][0]["initial"]
farthest = "def select_next_node(c, d, unvisited, dist):\n    return max(unvisited, key=lambda n: dist[c][n])\n"
nn, far = score(nearest, tsp)["score"], score(farthest, tsp)["score"]
check(-1000 < far < nn < 0, f"tsp: nearest neighbour ({nn:.3f}) beats farthest ({far:.3f})")
for name, path in (("bin packing", bp), ("tsp", tsp)):
    r = score(forge, path)
    check(r["score"] == -1000.0, f"a forged verdict is ignored ({name}): {r}")
r = score("def select_next_node(c, d, unvisited, dist):\n    return c\n", tsp)
check(r["score"] == -1000.0 and "not an unvisited city" in r["feedback"], f"tsp: a visited city is invalid: {r['feedback']}")

with tempfile.TemporaryDirectory() as work:
    cfg = os.path.join(root, "configs/m1_validation.yaml")
    out = subprocess.run([binary, "run", "--config", cfg, "--runs-dir", os.path.join(work, "runs"), "--run-id", "m1"],
                         capture_output=True, text=True, timeout=600)
    check(out.returncode == 1, f"m1_validation exits 1 (non_trainable fails by design), got {out.returncode}: {out.stderr[-800:]}")
    with open(os.path.join(work, "runs/m1/results.csv")) as f:
        rows = list(csv.DictReader(f))
    check(len(rows) == 28, f"28 jobs (got {len(rows)})")
    for row in rows:
        task, status = row["task_id"], row["status"]
        if task == "llm4ad:circle_packing":
            check(status == "ok" and abs(float(row["score_val_initial"]) - 2.1667) < 1e-4,
                  f"{task} {row['trainer_id']}: ok, initial {row['score_val_initial']} ({row['feedback'][:200]})")
        elif task == "veribench:smoke_placeholder":
            check(status == "skipped", f"{task} {row['trainer_id']}: skipped")
        elif task == "internal:non_trainable":
            check(status == "failed" and row["error_kind"] == "no_trainable_parameters", f"{task} {row['trainer_id']}: failed, no_trainable_parameters")
        else:
            check(status == "ok", f"{task} {row['trainer_id']}: ok ({status})")

if failures:
    print(f"check_llm4ad: {len(failures)} check(s) failed", file=sys.stderr)
    sys.exit(1)
print("check_llm4ad: OK")
