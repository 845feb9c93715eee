"""Scorer of llm4ad:circle_packing (trace-bench command evaluator protocol).

Reads the evaluation request on stdin ({"parameters", "input", "info", "files", ...}),
runs the candidate program (program.py in the working directory) in a child interpreter
— so it can neither print a verdict of its own nor touch this scorer — takes the packing
it returns as data, verifies it here and prints {"score", "feedback", "output"}.

Verification cannot be fooled: exactly n rows of three finite numbers, positive radii,
every circle inside the unit square and no two circles overlapping, each up to a
tolerance of 1e-9 so that exactly touching circles (as in the template's grid, where
rounding puts some touching pairs 1e-17 apart) are accepted. Score = sum of radii; an
invalid packing scores 0 with the reason.
"""

import json
import os
import math
import subprocess
import sys


class CandidateError(Exception):
    """The candidate program failed in its child interpreter (message: its own error)."""

TOLERANCE = 1e-9

# Runs in the child: the candidate's output goes to stderr; only the result reaches stdout.
CHILD = r"""
import json, sys
source_file, n = sys.argv[1], int(sys.argv[2])
out, sys.stdout = sys.stdout, sys.stderr
namespace = {"__name__": "candidate"}
exec(compile(open(source_file, encoding="utf-8").read(), source_file, "exec"), namespace)
pack = namespace.get("pack_circles")
if not callable(pack):
    raise ValueError("the program does not define pack_circles(n)")
rows = pack(n)
rows = rows.tolist() if hasattr(rows, "tolist") else [list(r.tolist() if hasattr(r, "tolist") else r) for r in rows]
out.write(json.dumps(rows) + "\n")
"""


# The candidate's process is confined first (../../llm4ad_bridge/confine.py: no network,
# reads only the interpreter's files, writes only its working directory).
CONFINE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "llm4ad_bridge", "confine.py")


def confined(code):
    with open(CONFINE, encoding="utf-8") as f:
        return f.read() + code


def run_candidate(source_file, n):
    """The candidate's packing, computed in a child interpreter (raises with its error)."""
    child = subprocess.run([sys.executable, "-c", confined(CHILD), source_file, str(n)], capture_output=True, text=True)
    if child.returncode != 0:
        lines = child.stderr.strip().splitlines()
        raise CandidateError(lines[-1] if lines else f"the program exited with code {child.returncode}")
    lines = child.stdout.strip().splitlines()
    if not lines:
        raise ValueError("the program returned nothing")
    return json.loads(lines[-1])


def verify(rows, n):
    """The sum of radii, or raise ValueError saying what is wrong."""
    if hasattr(rows, "tolist"):
        rows = rows.tolist()
    try:
        rows = [list(r) for r in rows]
    except TypeError:
        raise ValueError("pack_circles must return a sequence of (x, y, radius) rows")
    if len(rows) != n:
        raise ValueError(f"expected {n} circles, got {len(rows)}")
    circles = []
    for i, row in enumerate(rows):
        if len(row) != 3:
            raise ValueError(f"circle {i} has {len(row)} values, expected 3 (x, y, radius)")
        try:
            x, y, r = (float(v) for v in row)
        except (TypeError, ValueError):
            raise ValueError(f"circle {i} is not numeric: {row!r}")
        if not all(math.isfinite(v) for v in (x, y, r)):
            raise ValueError(f"circle {i} has a non-finite value: {row!r}")
        if r <= 0:
            raise ValueError(f"circle {i} has a non-positive radius {r}")
        if x - r < -TOLERANCE or x + r > 1 + TOLERANCE or y - r < -TOLERANCE or y + r > 1 + TOLERANCE:
            raise ValueError(f"circle {i} at ({x:.6g}, {y:.6g}) with radius {r:.6g} leaves the unit square")
        circles.append((x, y, r))
    for i in range(n):
        xi, yi, ri = circles[i]
        for j in range(i + 1, n):
            xj, yj, rj = circles[j]
            gap = math.hypot(xi - xj, yi - yj) - (ri + rj)
            if gap < -TOLERANCE:
                raise ValueError(f"circles {i} and {j} overlap by {-gap:.3g}")
    return sum(r for _, _, r in circles)


def main():
    request = json.load(sys.stdin)
    n = int((request.get("info") or {}).get("n", 26))
    source_file = request.get("files", {}).get("program", "program.py")
    try:
        total = verify(run_candidate(source_file, n), n)
    except Exception as e:  # the candidate's error is feedback, not a crash
        print(json.dumps({"score": 0.0, "feedback": f"invalid: {e if isinstance(e, CandidateError) else f'{type(e).__name__}: {e}'}", "output": ""}))
        return
    print(json.dumps({
        "score": total,
        "feedback": f"valid packing of {n} circles; sum of radii {total:.6f}",
        "output": f"sum of radii {total:.6f}",
    }))


if __name__ == "__main__":
    main()
