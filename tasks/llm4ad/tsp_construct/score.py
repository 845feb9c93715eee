"""Scorer of llm4ad:tsp_construct_mini (trace-bench command evaluator protocol).

The candidate's select_next_node runs in a child interpreter, which reports only the
tour it built from city 0; this scorer checks that the tour visits every city exactly
once and measures its length itself (back to city 0), so a program can neither print a
verdict of its own nor misreport a length. The instances (instances.json, next to this
file) are never in the candidate's working directory. Score = -mean tour length. A
choice that is not an unvisited city, or a crash, makes the heuristic invalid: -1000.
"""

import json
import math
import os
import subprocess
import sys


class CandidateError(Exception):
    """The candidate program failed in its child interpreter (message: its own error)."""

# Runs in the child: the candidate's output goes to stderr; only the tours reach stdout.
CHILD = r"""
import json, math, sys
source_file = sys.argv[1]
instances = json.load(sys.stdin)
out, sys.stdout = sys.stdout, sys.stderr
namespace = {"__name__": "candidate"}
exec(compile(open(source_file, encoding="utf-8").read(), source_file, "exec"), namespace)
select = namespace.get("select_next_node")
if not callable(select):
    raise ValueError("the program does not define select_next_node(...)")
tours = []
for points in instances:
    n = len(points)
    dist = [[math.dist(points[i], points[j]) for j in range(n)] for i in range(n)]
    current, unvisited, tour = 0, set(range(1, n)), [0]
    while unvisited:
        choice = select(current, 0, sorted(unvisited), dist)
        if hasattr(choice, "item"):
            choice = choice.item()
        if choice not in unvisited:
            raise ValueError(f"select_next_node returned {choice!r}, which is not an unvisited city")
        unvisited.remove(choice)
        tour.append(choice)
        current = choice
    tours.append(tour)
out.write(json.dumps(tours) + "\n")
"""


# The candidate's process is confined first (../../llm4ad_bridge/confine.py: no network,
# reads only the interpreter's files, writes only its working directory).
CONFINE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "llm4ad_bridge", "confine.py")


def confined(code):
    with open(CONFINE, encoding="utf-8") as f:
        return f.read() + code


def tour_length(points, tour):
    """Length of `tour` (checked to be a permutation starting at city 0), back to 0."""
    if sorted(tour) != list(range(len(points))) or tour[0] != 0:
        raise ValueError("the tour does not visit every city exactly once from city 0")
    return sum(math.dist(points[a], points[b]) for a, b in zip(tour, tour[1:] + tour[:1]))


def main():
    request = json.load(sys.stdin)
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "instances.json")) as f:
        instances = json.load(f)["instances"]
    source_file = request.get("files", {}).get("program", "program.py")
    try:
        child = subprocess.run([sys.executable, "-c", confined(CHILD), source_file], input=json.dumps(instances),
                               capture_output=True, text=True)
        if child.returncode != 0:
            lines = child.stderr.strip().splitlines()
            raise CandidateError(lines[-1] if lines else f"the program exited with code {child.returncode}")
        lines = child.stdout.strip().splitlines()
        tours = json.loads(lines[-1]) if lines else None
        if not isinstance(tours, list) or len(tours) != len(instances):
            raise ValueError("the heuristic's run reported no tours")
        lengths = [tour_length(pts, tour) for pts, tour in zip(instances, tours)]
    except Exception as e:
        print(json.dumps({"score": -1000.0, "feedback": f"invalid: {e if isinstance(e, CandidateError) else f'{type(e).__name__}: {e}'}", "output": ""}))
        return
    mean = sum(lengths) / len(lengths)
    detail = ", ".join(f"{x:.3f}" for x in lengths)
    print(json.dumps({
        "score": -mean,
        "feedback": f"mean tour length {mean:.4f} over {len(lengths)} instances ({detail}); shorter is better",
        "output": f"mean tour length {mean:.4f}",
    }))


if __name__ == "__main__":
    main()
