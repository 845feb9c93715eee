"""Scorer of llm4ad:online_bin_packing_mini (trace-bench command evaluator protocol).

The candidate's priority(item, bins) runs in a child interpreter, which reports only the
bin it chose for each item; this scorer replays those choices itself — every item must
go into an open bin it fits in, or a new bin when none fits — so a program can neither
print a verdict of its own nor misreport the bins it used. The instances
(instances.json, next to this file) are never in the candidate's working directory.
Score = -mean excess of bins used over the L1 lower bound ceil(sum / capacity), in
percent (0 would be optimal). A heuristic that crashes, returns the wrong number of
priorities or non-numbers is invalid: score -1000.
"""

import json
import math
import os
import subprocess
import sys


class CandidateError(Exception):
    """The candidate program failed in its child interpreter (message: its own error)."""

# Runs in the child: the candidate's output goes to stderr; only the choices reach stdout.
CHILD = r"""
import json, math, sys
source_file = sys.argv[1]
data = json.load(sys.stdin)
out, sys.stdout = sys.stdout, sys.stderr
namespace = {"__name__": "candidate"}
exec(compile(open(source_file, encoding="utf-8").read(), source_file, "exec"), namespace)
priority = namespace.get("priority")
if not callable(priority):
    raise ValueError("the program does not define priority(item, bins)")
all_choices = []
for items in data["instances"]:
    bins, choices = [], []
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
            choices.append(best)
        else:
            bins.append(data["capacity"] - item)
            choices.append(-1)
    all_choices.append(choices)
out.write(json.dumps(all_choices) + "\n")
"""


# The candidate's process is confined first (../../llm4ad_bridge/confine.py: no network,
# reads only the interpreter's files, writes only its working directory).
CONFINE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "llm4ad_bridge", "confine.py")


def confined(code):
    with open(CONFINE, encoding="utf-8") as f:
        return f.read() + code


def replay(items, choices, capacity):
    """Bins used by `choices` (-1 = a new bin), checked move by move."""
    if len(choices) != len(items):
        raise ValueError("the heuristic did not place every item")
    bins = []
    for item, choice in zip(items, choices):
        if choice == -1:
            if any(free >= item for free in bins):
                raise ValueError("a new bin was opened although the item fits in an open one")
            bins.append(capacity - item)
        elif isinstance(choice, int) and 0 <= choice < len(bins) and bins[choice] >= item:
            bins[choice] -= item
        else:
            raise ValueError(f"item {item} cannot go into bin {choice!r}")
    return len(bins)


def main():
    request = json.load(sys.stdin)
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "instances.json")) as f:
        data = json.load(f)
    capacity = data["capacity"]
    source_file = request.get("files", {}).get("program", "program.py")
    try:
        child = subprocess.run([sys.executable, "-c", confined(CHILD), source_file], input=json.dumps(data),
                               capture_output=True, text=True)
        if child.returncode != 0:
            lines = child.stderr.strip().splitlines()
            raise CandidateError(lines[-1] if lines else f"the program exited with code {child.returncode}")
        lines = child.stdout.strip().splitlines()
        all_choices = json.loads(lines[-1]) if lines else None
        if not isinstance(all_choices, list) or len(all_choices) != len(data["instances"]):
            raise ValueError("the heuristic's run reported no placements")
        excess = []
        for items, choices in zip(data["instances"], all_choices):
            used = replay(items, choices, capacity)
            bound = math.ceil(sum(items) / capacity)
            excess.append(100.0 * (used - bound) / bound)
    except Exception as e:
        print(json.dumps({"score": -1000.0, "feedback": f"invalid: {e if isinstance(e, CandidateError) else f'{type(e).__name__}: {e}'}", "output": ""}))
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
