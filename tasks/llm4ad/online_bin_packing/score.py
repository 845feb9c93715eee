"""Scorer of llm4ad:online_bin_packing_mini (trace-bench command evaluator protocol).

Runs the candidate's priority(item, bins) over the shipped instances (instances.json, next
to this file and out of the candidate's reach): each item goes into the feasible open bin
with the highest priority, or a new bin. Score = -mean excess of bins used over the L1 lower
bound ceil(sum / capacity), in percent (0 would be optimal). A heuristic that crashes,
returns the wrong number of priorities or non-numbers is invalid: score -1000.
"""

import json
import math
import os
import sys


def pack(priority, items, capacity):
    bins = []
    for item in items:
        fits = [i for i, free in enumerate(bins) if free >= item]
        if fits:
            scores = priority(item, list(bins))
            scores = list(scores.tolist() if hasattr(scores, "tolist") else scores)
            if len(scores) != len(bins):
                raise ValueError(f"priority returned {len(scores)} values for {len(bins)} bins")
            values = [float(scores[i]) for i in fits]
            if not all(math.isfinite(v) for v in values):
                raise ValueError("priority returned a non-finite value")
            best = fits[max(range(len(fits)), key=lambda k: values[k])]
            bins[best] -= item
        else:
            bins.append(capacity - item)
    return len(bins)


def main():
    request = json.load(sys.stdin)
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "instances.json")) as f:
        data = json.load(f)
    capacity = data["capacity"]
    source_file = request.get("files", {}).get("program", "program.py")
    with open(source_file, encoding="utf-8") as f:
        source = f.read()
    try:
        namespace = {"__name__": "candidate"}
        exec(compile(source, source_file, "exec"), namespace)
        priority = namespace.get("priority")
        if not callable(priority):
            raise ValueError("the program does not define priority(item, bins)")
        excess = []
        for items in data["instances"]:
            used = pack(priority, items, capacity)
            bound = math.ceil(sum(items) / capacity)
            excess.append(100.0 * (used - bound) / bound)
    except Exception as e:
        print(json.dumps({"score": -1000.0, "feedback": f"invalid: {type(e).__name__}: {e}", "output": ""}))
        return
    mean = sum(excess) / len(excess)
    detail = ", ".join(f"{x:.2f}%" for x in excess)
    print(json.dumps({
        "score": -mean,
        "feedback": f"bins used exceed the lower bound by {mean:.2f}% on average ({detail}); fewer bins is better",
        "output": f"excess {mean:.2f}%",
    }))


if __name__ == "__main__":
    main()
