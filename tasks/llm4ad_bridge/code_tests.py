"""Unit tests of a code candidate (hf:humaneval, hf:mbpp), with the candidate in a confined
child of its own: the dataset's tests run here, and every call they make to a function the
candidate defines is forwarded to the child as data (bridge.py's codec). `PASS` on stdout
comes only from this process, after every test passed, so a candidate that prints it,
exits early or patches `assert`, builtins or the tests gains nothing.

    python3 code_tests.py candidate.py tests.py spec.json
spec: {"entry": "<function the tests' check() gets, or empty>", "setup": "<code>"}
Outcome as the reference's harness: `PASS`, or `FAIL: <type>: <message> at: <test line>`
on stderr and exit 1.
"""

import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bridge import Candidate, CandidateError  # noqa: E402


def main():
    candidate_file, tests_file, spec_file = (os.path.abspath(a) for a in sys.argv[1:4])
    spec = json.load(open(spec_file, encoding="utf-8"))
    entry = spec.get("entry") or ""
    candidate = None
    try:
        candidate = Candidate.standalone(candidate_file, entry, "none", os.getcwd())
        namespace = {"__name__": "__main__"}
        exec(compile(spec.get("setup") or "", "setup", "exec"), namespace)
        for name in candidate.functions:
            namespace[name] = (lambda n: lambda *a, **k: candidate.call(n, *a, **k))(name)
        exec(compile(open(tests_file, encoding="utf-8").read(), tests_file, "exec"), namespace)
        if entry and "check" in namespace:
            namespace["check"](namespace[entry])
    except Exception as exc:
        frames = traceback.extract_tb(sys.exc_info()[2])
        in_tests = [f for f in frames if f.filename == tests_file]
        frame = (in_tests or frames or [None])[-1]
        loc = f" at: {frame.line}" if frame is not None and frame.line else ""
        what = str(exc) if isinstance(exc, CandidateError) else f"{type(exc).__name__}: {exc}"
        print(f"FAIL: {what}{loc}", file=sys.stderr)
        sys.exit(1)
    finally:
        if candidate is not None:
            candidate.close()
    print("PASS")


if __name__ == "__main__":
    main()
