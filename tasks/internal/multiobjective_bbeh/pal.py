"""Scorer of internal:multiobjective_bbeh (trace-bench command evaluator, `serve: true`).

The trained parameter is Python code (program-aided reasoning): it reads `question` (a
boolean expression ending in " is") and sets `result`. Each request runs the code in a
fresh, confined child interpreter (../../llm4ad_bridge/confine.py: no network, reads only
the interpreter's files) that never sees the expected answer; the comparison happens here.

Metrics: `accuracy` (1/0, strip, lowercase, no punctuation, no spaces — the reference's
rule) and `execution_time_s`. The reference measures the latter with process_time(),
which differs from run to run; here it is a deterministic proxy — one microsecond per
Python line the code executes, counted by a tracer in the child — so the same config and
seed give the same numbers. The child guards the counter: an irremovable audit hook
refuses what could reach or stop it (tracing and frame APIs, ctypes, gc, threads, new
processes), the counter can only go up, and the child's report carries a nonce the code
cannot read, so a report printed by the code is ignored.
"""

import json
import os
import secrets
import string
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CONFINE = os.path.join(HERE, "..", "..", "llm4ad_bridge", "confine.py")
SECONDS_PER_LINE = 1e-6
CHILD_TIMEOUT = 10.0

# The fork server: one confined interpreter per job (confine.py ran first) that never runs
# a candidate itself. For each request line (nonce, code, question) it forks; the child
# measures the code and writes its report to a pipe of its own; the server forwards the
# report that carries the nonce, or says why there is none. Everything a child needs
# lives in measure()'s locals, which the code cannot reach once frames are off limits.
SERVER = r"""
import itertools, json, os, select, signal, sys

DENIED_IMPORTS = frozenset({"gc", "ctypes", "_ctypes", "_thread", "threading", "multiprocessing",
                            "_posixsubprocess", "subprocess", "inspect", "_testcapi"})
DENIED_EVENTS = ("sys.settrace", "sys.setprofile", "sys._getframe", "sys.monitoring",
                 "ctypes.", "os.fork", "os.exec", "os.posix_spawn", "os.spawn", "os.system",
                 "subprocess.", "_thread.", "os.kill", "signal.", "object.__getattr__",
                 "object.__setattr__", "object.__delattr__", "sys.addaudithook", "cpython.")


def measure(nonce, code, question, report_fd):
    os.dup2(2, 1)
    os.close(0)
    sys.stdout = sys.stderr
    for name in ("gc", "ctypes", "_ctypes", "inspect", "threading", "_thread"):
        sys.modules.pop(name, None)
    armed = [False]

    # The lists are bound now: the code can rebind the module's globals, not these.
    def audit(event, args, _events=DENIED_EVENTS, _imports=DENIED_IMPORTS, _armed=armed):
        if _armed[0] and (event.startswith(_events) or (
                event == "import" and args[0].split(".")[0] in _imports)):
            raise RuntimeError("not allowed while the code is measured: " + event)

    steps = itertools.count()

    def tracer(frame, event, arg, _tick=steps.__next__, _get=sys.gettrace):
        if event == "line":
            _tick()
        return _get()

    outcome = {}
    try:
        compiled = compile(code, "<candidate>", "exec")
    except SyntaxError as e:
        compiled, outcome["error"] = None, "SyntaxError: " + str(e)
    namespace = {"question": question}
    report = os.fdopen(report_fd, "w")
    if compiled is not None:
        sys.addaudithook(audit)
        sys.settrace(tracer)
        armed[0] = True
        try:
            exec(compiled, namespace)
            armed[0] = False
            sys.settrace(None)
            if "result" in namespace:
                outcome["result"] = str(namespace["result"])
            else:
                outcome["error"] = "the code did not set `result`"
        except BaseException as e:
            armed[0] = False
            sys.settrace(None)
            outcome["error"] = type(e).__name__ + ": " + str(e)
    outcome["lines"] = int(repr(steps)[6:-1])
    report.write(nonce + json.dumps(outcome) + "\n")
    report.flush()


def serve(timeout):
    for line in sys.stdin:
        request = json.loads(line)
        nonce = request["nonce"]
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            try:
                measure(nonce, request["code"], request["question"], write_fd)
            finally:
                os._exit(0)
        os.close(write_fd)
        data, reply = b"", None
        while True:
            ready, _, _ = select.select([read_fd], [], [], timeout)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                reply = {"error": "the code ran longer than %g s" % timeout, "lines": None}
                break
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            data += chunk
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
        if reply is None:
            for text in data.decode("utf-8", "replace").splitlines():
                if text.startswith(nonce):
                    reply = json.loads(text[len(nonce):])
            if reply is None:
                reply = {"error": "the code ended the process (wait status %d)" % status, "lines": None}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


serve(float(sys.argv[1]))
"""


def confined(code):
    with open(CONFINE, encoding="utf-8") as f:
        return f.read() + code


class Server:
    """The job's fork server, started at the first request and kept."""

    def __init__(self):
        self.process = None

    def run(self, code, question, workdir):
        """The child's report: {"result"} or {"error"}, plus "lines" executed."""
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                [sys.executable, "-c", confined(SERVER), str(CHILD_TIMEOUT)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=workdir,
            )
        nonce = secrets.token_hex(16)
        self.process.stdin.write(json.dumps({"nonce": nonce, "code": code, "question": question}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            self.process = None
            return {"error": "the measuring process ended", "lines": None}
        return json.loads(line)


SERVER_PROCESS = Server()


def strip_fence(code):
    """The code without a surrounding markdown fence (the reference's rule)."""
    lines = code.strip().splitlines()
    if lines and lines[0].startswith("```"):
        lines = lines[1:]
    if lines and lines[-1].strip().startswith("```"):
        lines = lines[:-1]
    return "\n".join(lines)


def normalise(text):
    text = text.strip().lower()
    text = "".join(c for c in text if c not in string.punctuation)
    return "".join(text.split())


def evaluate(request):
    code = strip_fence(str(request["parameters"].get("code", "")))
    question = str(request["input"])
    expected = str(request["info"]["answer"])
    report = SERVER_PROCESS.run(code, question, request.get("workdir") or os.getcwd())
    lines = report.get("lines")
    seconds = lines * SECONDS_PER_LINE if lines is not None else CHILD_TIMEOUT
    if "error" in report:
        feedback = f"EXEC_ERROR: {report['error']}"
        accuracy, output = 0.0, None
    else:
        output = report["result"]
        accuracy = 1.0 if normalise(output) == normalise(expected) else 0.0
        if accuracy:
            feedback = f"CORRECT: result={output!r}"
        else:
            feedback = f"WRONG: got {output!r}, expected {expected!r}"
    return {
        "score": accuracy,
        "correct": accuracy == 1.0,
        "feedback": feedback,
        "output": output,
        "metrics": {"accuracy": accuracy, "execution_time_s": round(seconds, 9)},
    }


def main():
    if "--serve" in sys.argv:
        for line in sys.stdin:
            if line.strip():
                print(json.dumps(evaluate(json.loads(line))), flush=True)
    else:
        print(json.dumps(evaluate(json.load(sys.stdin))))


if __name__ == "__main__":
    main()
