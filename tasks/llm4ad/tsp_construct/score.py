"""Scorer of llm4ad:tsp_construct_mini (trace-bench command evaluator protocol).

Builds one tour per shipped instance (instances.json, next to this file) from city 0 with
the candidate's select_next_node, returning to city 0. Score = -mean tour length. A choice
that is not an unvisited city, or a crash, makes the heuristic invalid: score -1000.
"""

import json
import math
import os
import sys


def tour_length(select, points):
    n = len(points)
    dist = [[math.dist(points[i], points[j]) for j in range(n)] for i in range(n)]
    current, unvisited, length = 0, set(range(1, n)), 0.0
    while unvisited:
        choice = select(current, 0, sorted(unvisited), dist)
        if hasattr(choice, "item"):
            choice = choice.item()
        if choice not in unvisited:
            raise ValueError(f"select_next_node returned {choice!r}, which is not an unvisited city")
        length += dist[current][choice]
        unvisited.remove(choice)
        current = choice
    return length + dist[current][0]


def main():
    request = json.load(sys.stdin)
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "instances.json")) as f:
        instances = json.load(f)["instances"]
    source_file = request.get("files", {}).get("program", "program.py")
    with open(source_file, encoding="utf-8") as f:
        source = f.read()
    try:
        namespace = {"__name__": "candidate"}
        exec(compile(source, source_file, "exec"), namespace)
        select = namespace.get("select_next_node")
        if not callable(select):
            raise ValueError("the program does not define select_next_node(...)")
        lengths = [tour_length(select, pts) for pts in instances]
    except Exception as e:
        print(json.dumps({"score": -1000.0, "feedback": f"invalid: {type(e).__name__}: {e}", "output": ""}))
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
