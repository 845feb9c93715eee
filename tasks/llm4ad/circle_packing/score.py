"""Scorer of llm4ad:circle_packing (trace-bench command evaluator protocol).

Reads the evaluation request on stdin ({"parameters", "input", "info", "files", ...}),
runs the candidate program (program.py in the working directory), verifies the packing
and prints {"score", "feedback", "output"} as one JSON line.

Verification cannot be fooled: exactly n rows of three finite numbers, positive radii,
every circle inside the unit square and no two circles overlapping, each up to a
tolerance of 1e-9 so that exactly touching circles (as in the template's grid, where
rounding puts some touching pairs 1e-17 apart) are accepted. Score = sum of radii; an
invalid packing scores 0 with the reason.
"""

import json
import math
import sys

TOLERANCE = 1e-9


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
    with open(source_file, encoding="utf-8") as f:
        source = f.read()
    namespace = {"__name__": "candidate"}
    try:
        exec(compile(source, source_file, "exec"), namespace)
        pack = namespace.get("pack_circles")
        if not callable(pack):
            raise ValueError("the program does not define pack_circles(n)")
        total = verify(pack(n), n)
    except Exception as e:  # the candidate's error is feedback, not a crash
        print(json.dumps({"score": 0.0, "feedback": f"invalid: {type(e).__name__}: {e}", "output": ""}))
        return
    print(json.dumps({
        "score": total,
        "feedback": f"valid packing of {n} circles; sum of radii {total:.6f}",
        "output": f"sum of radii {total:.6f}",
    }))


if __name__ == "__main__":
    main()
