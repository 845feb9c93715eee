"""trace-bench's bridge to LLM4AD evaluators (command evaluator protocol).

One evaluation: read the request on stdin, start the candidate program in a child
interpreter, build the task's evaluator here (the upstream `llm4ad` package, or a folder of
the reference's converted format), and let the evaluator score a *proxy* of the entry
function: every call it makes is forwarded to the child as data (arguments in, return
value out) through a binary-framed codec that carries only plain values, tuples, lists,
dicts and numeric numpy arrays/scalars. Nothing the child sends is ever executed or
unpickled here, the child's own output goes to stderr, and the verdict is printed by this
process alone, so a candidate can neither print, forge nor patch its way to a score: numpy
and the evaluator it could monkeypatch live in another process.

Verdict (last stdout line): {"score", "feedback", "output", "metrics"?}. With `--serve`
one process serves a whole job: one request per stdin line (with `workdir`, the
evaluation's directory), one verdict per stdout line, the evaluator built once. Any failure
(exception, invalid output, None or NaN, a dead child) scores the reference's -1000000.0
with the reason in the feedback. The task's `info` names what to load:
  {"source": "upstream", "module": "llm4ad.task.optimization.tsp_construct",
   "eval_class": "TSPEvaluation", "entry": "select_next_node", "eval_kwargs": {...}}
  {"source": "folder", "root": "<benchmark_tasks>", "module": "<folder>", ...}
"""

import importlib
import importlib.util
import json
import math
import os
import struct
import subprocess
import sys
import time

FAILURE_SCORE = -1000000.0

# ---------------------------------------------------------------- codec (both sides)
# A message is: 4-byte big-endian header length, the JSON header, then for each buffer the
# header names, 8-byte length + raw bytes. Arrays travel as raw bytes, never as pickles.
CODEC = r'''
import json, struct

try:
    import numpy as _np
except ImportError:
    _np = None


def encode(value):
    buffers = []

    def enc(x):
        if x is None or isinstance(x, (bool, str)):
            return x
        if isinstance(x, int):
            return x if abs(x) < 2 ** 53 else {"__int": str(x)}
        if isinstance(x, float):
            return x if x == x and x not in (float("inf"), float("-inf")) else {"__float": repr(x)}
        if isinstance(x, tuple):
            return {"__tuple": [enc(v) for v in x]}
        if isinstance(x, (set, frozenset)):
            return {"__set": [enc(v) for v in x], "frozen": isinstance(x, frozenset)}
        if isinstance(x, list):
            return [enc(v) for v in x]
        if isinstance(x, dict):
            return {"__dict": [[enc(k), enc(v)] for k, v in x.items()]}
        if _np is not None and isinstance(x, _np.ndarray):
            if x.dtype.hasobject:
                return {"__list_array": [enc(v) for v in x.tolist()]}
            buffers.append(_np.ascontiguousarray(x).tobytes())
            return {"__array": x.dtype.str, "shape": list(x.shape), "buffer": len(buffers) - 1}
        if _np is not None and isinstance(x, _np.generic) and not x.dtype.hasobject:
            buffers.append(x.tobytes())
            return {"__scalar": x.dtype.str, "buffer": len(buffers) - 1}
        raise TypeError(f"cannot forward a value of type {type(x).__name__}")

    header = json.dumps(enc(value)).encode()
    parts = [struct.pack(">II", len(header), len(buffers)), header]
    for b in buffers:
        parts += [struct.pack(">Q", len(b)), b]
    return b"".join(parts), len(buffers)


def decode(header, buffers):
    def dec(x):
        if isinstance(x, list):
            return [dec(v) for v in x]
        if not isinstance(x, dict):
            return x
        if "__int" in x:
            return int(x["__int"])
        if "__float" in x:
            return float(x["__float"])
        if "__tuple" in x:
            return tuple(dec(v) for v in x["__tuple"])
        if "__set" in x:
            items = [dec(v) for v in x["__set"]]
            return frozenset(items) if x.get("frozen") else set(items)
        if "__dict" in x:
            return {dec(k): dec(v) for k, v in x["__dict"]}
        if "__list_array" in x:
            return _np.array([dec(v) for v in x["__list_array"]], dtype=object)
        if "__array" in x or "__scalar" in x:
            dtype = _np.dtype(x.get("__array") or x.get("__scalar"))
            if dtype.hasobject:
                raise ValueError("object arrays are not accepted")
            data = buffers[x["buffer"]]
            if "__scalar" in x:
                return _np.frombuffer(data, dtype=dtype, count=1)[0]
            return _np.frombuffer(data, dtype=dtype).reshape(x["shape"]).copy()
        raise ValueError("unknown value tag")

    return dec(json.loads(header))


# Limits on what the other side may announce (a candidate must not make the evaluator
# allocate without bound); far above any task's payload (bp_2d: ~2 MB per call).
MAX_HEADER = 64 << 20
MAX_BUFFER = 512 << 20
MAX_BUFFERS = 1 << 16


def read_exactly(stream, n):
    data = stream.read(n)
    if len(data) < n:
        raise EOFError("the other side closed the channel")
    return data


def read_message(stream):
    """One frame: header length and buffer count (4 bytes each), the JSON header, then
    each buffer as an 8-byte length and its bytes."""
    header_len, count = struct.unpack(">II", read_exactly(stream, 8))
    if header_len > MAX_HEADER or count > MAX_BUFFERS:
        raise ValueError("oversized message")
    header = read_exactly(stream, header_len)
    buffers = []
    for _ in range(count):
        n = struct.unpack(">Q", read_exactly(stream, 8))[0]
        if n > MAX_BUFFER:
            raise ValueError("oversized buffer")
        buffers.append(read_exactly(stream, n))
    return header, buffers
'''
exec(CODEC)

# ---------------------------------------------------------------- the candidate's side
# The confinement (confine.py beside this file) runs first in the child.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "confine.py"), encoding="utf-8") as f:
    CONFINE = f.read()

# Confinement comes first: the namespace needs a process without threads (numpy starts some).
CHILD = CONFINE + CODEC + r'''
import os, sys, ast, __future__

source_file, entry, transform = sys.argv[1], sys.argv[2], sys.argv[3]
# The protocol keeps private copies of stdin/stdout; fd 1 becomes stderr and fd 0
# /dev/null, so whatever the candidate prints or reads never reaches the scorer.
channel_in = os.fdopen(os.dup(0), "rb")
channel_out = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
devnull = os.open(os.devnull, os.O_RDONLY)
os.dup2(devnull, 0)
sys.stdin = open(os.devnull)
sys.stdout = sys.stderr

def reply(message):
    data, _ = encode(message)
    channel_out.write(data)
    channel_out.flush()

try:
    text = open(source_file, encoding="utf-8").read()
    if transform == "ode_t":
        import re
        text = re.sub(r"def equation\(", "def equation(t: float, ", text)
    # Annotations are never evaluated, as in upstream's SecureEvaluator.
    code = compile(text, source_file, "exec", flags=__future__.annotations.compiler_flag, dont_inherit=True)
    namespace = {"__name__": "candidate"}
    exec(code, namespace)
    functions = {n: v for n, v in namespace.items()
                 if callable(v) and getattr(v, "__module__", None) == "candidate"}
    if entry and entry not in functions:
        raise NameError(f"the program does not define {entry}(...) (it defines: {', '.join(functions) or 'nothing'})")
    reply({"ready": True, "unconfined": unconfined, "functions": sorted(functions)})
except BaseException as e:
    reply({"error": f"{type(e).__name__}: {e}"})
    sys.exit(0)

while True:
    try:
        header, buffers = read_message(channel_in)
    except EOFError:
        break
    name, args, kwargs = decode(header, buffers)
    try:
        result = functions[name or entry](*args, **kwargs)
        data, _ = encode({"value": result})
    except BaseException as e:
        data, _ = encode({"error": f"{type(e).__name__}: {e}"})
    channel_out.write(data)
    channel_out.flush()
'''


class CandidateError(Exception):
    """The candidate failed (its own error, as text)."""


class Candidate:
    """The child interpreter running the candidate, called like the entry function."""

    def __init__(self, source_file, entry, transform, workdir):
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", CHILD, source_file, entry, transform],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=sys.stderr, cwd=workdir,
        )
        self.calls = 0
        ready = self._receive()
        if "error" in ready:
            raise CandidateError(ready["error"])
        # Where the kernel offers no confinement the candidate still runs, visibly.
        self.unconfined = ready.get("unconfined")
        self.functions = ready.get("functions") or []

    def _receive(self):
        try:
            header, buffers = read_message(self.proc.stdout)
            message = decode(header, buffers)
        except Exception as e:
            code = self.proc.poll()
            raise CandidateError(f"the candidate's process stopped answering ({type(e).__name__}: {e}; exit code {code})")
        if not isinstance(message, dict):
            raise CandidateError("the candidate's process sent a malformed message")
        return message

    def __call__(self, *args, **kwargs):
        return self.call(None, *args, **kwargs)

    def call(self, name, *args, **kwargs):
        """Call the candidate's function `name` (None: the entry) with copies of the
        arguments; its return value comes back as data."""
        self.calls += 1
        data, _ = encode((name, list(args), kwargs))
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise CandidateError(f"the candidate's process exited (code {self.proc.poll()})")
        message = self._receive()
        if "error" in message:
            raise CandidateError(message["error"])
        return message.get("value")

    def close(self):
        try:
            self.proc.stdin.close()
        except Exception:
            pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ---------------------------------------------------------------- the evaluator's side
def load_evaluator(info, overrides):
    """The task's evaluator object, built with its kwargs (the job's override them)."""
    kwargs = dict(info.get("eval_kwargs") or {})
    kwargs.update(overrides or {})
    if info["source"] == "upstream":
        module = importlib.import_module(info["module"])
        return getattr(module, info["eval_class"])(**kwargs), module
    # The reference's converted folder: its __init__ imports `llm4ad_loader` from the
    # benchmark root's parent (benchmarks/LLM4AD) and helpers from the folder itself.
    root = os.path.abspath(info["root"])
    folder = os.path.join(root, info["module"])
    for p in (os.path.dirname(root), root, folder):
        if p not in sys.path:
            sys.path.insert(0, p)
    name = "trace_bench_llm4ad_" + info["module"]
    spec = importlib.util.spec_from_file_location(name, os.path.join(folder, "__init__.py"),
                                                  submodule_search_locations=[folder])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    merged = dict(getattr(module, "EVAL_KWARGS", {}) or {})
    merged.update(kwargs)
    merged.pop("name", None)
    return getattr(module, info["eval_class"])(**merged), module


def scalar(value):
    """A finite float, or None."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def normalise(result):
    """(score, metrics) of an evaluator's return value: a number; a tuple, list or numpy
    array (the `*_2O` tasks) whose first element is the score and whose elements are the
    metrics; a dict with `score`."""
    if isinstance(result, dict) and "score" in result:
        return scalar(result["score"]), {}
    if hasattr(result, "tolist") and not isinstance(result, (int, float)):
        result = result.tolist()
    if isinstance(result, (list, tuple)):
        values = [scalar(v) for v in result]
        metrics = {f"objective_{i}": v for i, v in enumerate(values) if v is not None}
        return (values[0] if values else None), metrics
    return scalar(result), {}


def verdict(score, feedback, output="", metrics=None):
    out = {"score": score, "feedback": feedback, "output": output}
    if metrics:
        out["metrics"] = metrics
    return out


def evaluate(request, evaluators):
    """The verdict of one request. `evaluators` caches the evaluator objects of a serving
    process (one per task and eval_kwargs): built once, reused for every candidate."""
    info = request.get("info") or {}
    entry = info["entry"]
    workdir = request.get("workdir") or os.getcwd()
    source_file = os.path.join(workdir, request.get("files", {}).get("program", "program.py"))
    started = time.monotonic()
    candidate = None
    try:
        program = open(source_file, encoding="utf-8").read()
        transform = "ode_t" if info.get("execs_program") else "none"
        candidate = Candidate(source_file, entry, transform, workdir)
        key = json.dumps([info, request.get("eval_kwargs")], sort_keys=True)
        if key not in evaluators:
            evaluators[key] = load_evaluator(info, request.get("eval_kwargs"))[0]
        evaluator = evaluators[key]
        if info.get("execs_program"):
            # This evaluator executes the program text itself: it gets a stub that
            # forwards to the candidate, never the candidate's code.
            # (ode_1d inserts a leading `t` into the `def` line and runs the text in its
            # own module's globals: the stub forwards `t` too, the child got the same edit.)
            owner = sys.modules[type(evaluator).__module__]
            owner.__dict__["__trace_bench_forward__"] = candidate
            program = f"def {entry}(*args, **kwargs):\n    return __trace_bench_forward__(t, *args, **kwargs)\n"
        result = evaluator.evaluate_program(program, candidate)
    except CandidateError as e:
        return verdict(FAILURE_SCORE, f"invalid: {e}")
    except Exception as e:
        return verdict(FAILURE_SCORE, f"evaluation error: {type(e).__name__}: {e}")
    finally:
        if candidate is not None:
            candidate.close()
    score, metrics = normalise(result)
    seconds = time.monotonic() - started
    if score is None:
        return verdict(FAILURE_SCORE, f"invalid: the evaluator returned {result!r} (no finite score)")
    calls = candidate.calls
    warning = f"; warning: the candidate ran unconfined ({candidate.unconfined})" if candidate.unconfined else ""
    return verdict(score, f"score {score:.6g} ({calls} call(s) of {entry}, {seconds:.2f}s); higher is better{warning}",
                   f"score {score:.6g}", metrics)


def serve():
    """One request per stdin line, one verdict per stdout line, for a whole job. The
    protocol keeps a private copy of stdout; fd 1 becomes stderr, so an evaluator that
    prints cannot corrupt it."""
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    evaluators = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            out = evaluate(json.loads(line), evaluators)
        except Exception as e:
            out = verdict(FAILURE_SCORE, f"evaluation error: {type(e).__name__}: {e}")
        channel.write(json.dumps(out) + "\n")
        channel.flush()


def main():
    if "--serve" in sys.argv[1:]:
        serve()
    else:
        print(json.dumps(evaluate(json.load(sys.stdin), {})))


if __name__ == "__main__":
    main()
