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

import ast
import importlib
import importlib.util
import json
import math
import os
import pickle
import socket
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


# Frames: a 4-byte big-endian length, then the payload. From the evaluator to the candidate
# the payload is a pickle (the evaluator is trusted; the candidate unpickles). From the
# candidate to the evaluator it is one kind byte and a value in the data-only codec:
# scalars and numeric arrays in a compact binary form, anything else as a message above.
#   b"v" value | b"m" value + the arguments it mutated | b"e" error text | b"r" ready message
_FRAME = struct.Struct(">I")
_F64 = struct.Struct("<d")
_I64 = struct.Struct("<q")
_NUMERIC = frozenset("biufc")
_LEN = struct.Struct("<I")


def write_frame(stream, payload):
    stream.write(_FRAME.pack(len(payload)) + payload)
    stream.flush()


def read_frame(stream):
    (n,) = _FRAME.unpack(read_exactly(stream, 4))
    if n > MAX_BUFFER:
        raise ValueError("oversized message")
    return read_exactly(stream, n)


def _dims(shape):
    return struct.pack(f"<B{len(shape)}Q", len(shape), *shape)


def encode_value(x):
    """One value, compactly: the common return values (a float, an int, a numpy scalar or
    numeric array) without JSON; anything else through the general codec."""
    t = type(x)
    if t is float:
        return b"f" + _F64.pack(x)
    if t is int and -(1 << 63) <= x < (1 << 63):
        return b"i" + _I64.pack(x)
    if x is None:
        return b"n"
    if _np is not None and t is _np.ndarray and x.dtype.kind in _NUMERIC and x.ndim < 256:
        d = x.dtype.str.encode()
        return b"a" + bytes([len(d)]) + d + _dims(x.shape) + _np.ascontiguousarray(x).tobytes()
    if _np is not None and isinstance(x, _np.generic) and x.dtype.kind in _NUMERIC:
        d = x.dtype.str.encode()
        return b"s" + bytes([len(d)]) + d + x.tobytes()
    if t is tuple and len(x) < 256:
        # A tuple of numbers (jssp's operation, cflp's pair): each element as above.
        parts = [encode_value(v) for v in x]
        if not any(p[:1] in (b"g", b"T") for p in parts):
            return b"T" + bytes([len(parts)]) + b"".join(_LEN.pack(len(p)) + p for p in parts)
    return b"g" + encode(x)[0]


def _dtype(text):
    # Only plain numeric dtypes ("<f8", "|b1", ...): never objects or structures.
    if len(text) > 4 or text[:1] not in ("<", ">", "|", "=") or text[1:2] not in _NUMERIC or not text[2:].isdigit():
        raise ValueError("unexpected dtype")
    return _np.dtype(text)


def decode_value(data):
    kind = data[:1]
    if kind == b"f":
        return _F64.unpack_from(data, 1)[0]
    if kind == b"i":
        return _I64.unpack_from(data, 1)[0]
    if kind == b"n":
        return None
    if kind in (b"a", b"s"):
        n = data[1]
        dtype = _dtype(data[2:2 + n].decode())
        at = 2 + n
        if kind == b"s":
            if len(data) != at + dtype.itemsize:
                raise ValueError("malformed scalar")
            return _np.frombuffer(data, dtype=dtype, count=1, offset=at)[0]
        ndim = data[at]
        shape = struct.unpack_from(f"<{ndim}Q", data, at + 1)
        at += 1 + 8 * ndim
        count = 1
        for d in shape:
            count *= d
        if len(data) - at != count * dtype.itemsize:
            raise ValueError("malformed array")
        return _np.frombuffer(data, dtype=dtype, count=count, offset=at).reshape(shape).copy()
    if kind == b"T":
        out, at = [], 2
        for _ in range(data[1]):
            (n,) = _LEN.unpack_from(data, at)
            part = data[at + 4:at + 4 + n]
            if len(part) != n or part[:1] in (b"T", b"g"):
                raise ValueError("malformed tuple")
            out.append(decode_value(part))
            at += 4 + n
        if at != len(data):
            raise ValueError("malformed tuple")
        return tuple(out)
    if kind == b"g":
        return decode_general(data, 1)
    raise ValueError("unknown value kind")


def encode_args(args):
    """The arguments of a call to the entry function when each is a number or a numeric
    numpy array or scalar (the common case): b"F", then each as a length and a value.
    None when some argument needs the pickle path."""
    parts = [b"F"]
    for a in args:
        t = type(a)
        if not (t is float or t is int or (_np is not None and (t is _np.ndarray or isinstance(a, _np.generic)))):
            return None
        v = encode_value(a)
        if v[:1] == b"g":
            return None
        parts += [_LEN.pack(len(v)), v]
    return b"".join(parts)


def split_args(data):
    parts, at = [], 1
    while at < len(data):
        (n,) = _LEN.unpack_from(data, at)
        parts.append(data[at + 4:at + 4 + n])
        at += 4 + n
    return parts


def decode_general(data, at=0):
    """A message of the general codec from memory."""
    header_len, count = struct.unpack_from(">II", data, at)
    if header_len > MAX_HEADER or count > MAX_BUFFERS:
        raise ValueError("oversized message")
    at += 8
    header = bytes(data[at:at + header_len])
    at += header_len
    buffers = []
    for _ in range(count):
        (n,) = struct.unpack_from(">Q", data, at)
        at += 8
        if n > MAX_BUFFER or at + n > len(data):
            raise ValueError("malformed buffer")
        buffers.append(bytes(data[at:at + n]))
        at += n
    return decode(header, buffers)
'''
exec(CODEC)

# ---------------------------------------------------------------- the candidate's side
# The candidates' fork server (one per job): it confines itself first (confine.py beside
# this file; the namespaces need a process without threads, and numpy starts some), with no
# writable directory and root mapped in its user namespace, then imports the modules the
# task's programs use, then forks one process per candidate. No candidate code ever runs
# in the server itself, so each candidate starts from the same clean state.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "confine.py"), encoding="utf-8") as f:
    CONFINE = f.read()

ZYGOTE = "CONFINE_DEFERRED = True\n" + CONFINE + """
unconfined = confine(write_dir=None, proc_self=False, map_ids=True)
""" + CODEC + r"""
import __future__, ast, pickle, select, signal, socket

_libc = ctypes.CDLL(None, use_errno=True)
_control = socket.socket(fileno=int(sys.argv[1]))
# Whatever a candidate prints goes to stderr, and it reads nothing from stdin.
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0)
os.close(_null)
os.dup2(2, 1)
sys.stdin = open(os.devnull)
sys.stdout = sys.stderr
for _name in json.loads(sys.argv[2]):
    try:
        __import__(_name)
    except BaseException:
        pass
# Each candidate's supervisor is reaped by the kernel.
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
# A user, PID, IPC and network namespace of its own for each candidate: when it ends, every
# process it started ends with it (PID 1 of its namespace), and no key, SysV/POSIX IPC
# object, socket or interface it made is visible to the next one.
NEW_NAMESPACES = 0x10000000 | 0x20000000 | 0x08000000 | 0x40000000
KEYCTL = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine)


def _supervise(meta, to_r, from_w, life_r):
    # Runs in the fork: start the candidate as PID 1 of new namespaces, then kill it (and
    # so everything it started) when the evaluator closes `life` or dies.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    _control.close()
    isolation = unconfined
    if unconfined is None and _libc.unshare(NEW_NAMESPACES) != 0:
        isolation = "no namespaces of its own (" + os.strerror(ctypes.get_errno()) + ")"
    pid = os.fork()
    if pid == 0:
        os.close(life_r)
        try:
            _candidate(meta, to_r, from_w, isolation)
        finally:
            os._exit(0)
    os.close(to_r)
    os.close(from_w)
    try:
        select.select([life_r, os.pidfd_open(pid)], [], [])
    except BaseException:
        pass
    for kill in (os.kill, os.killpg):
        try:
            kill(pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        os.waitpid(pid, 0)
    except OSError:
        pass
    os._exit(0)


def _candidate(meta, to_r, from_w, isolation):
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: dies with its supervisor
    if isolation is not None:
        os.setsid()  # no PID namespace: its own process group, killed as one
    if KEYCTL is not None:
        _libc.syscall(KEYCTL, 1, None)  # KEYCTL_JOIN_SESSION_KEYRING: a new, empty one
    try:
        os.chdir(meta["workdir"])
    except (OSError, KeyError, TypeError):
        pass
    channel_in = os.fdopen(to_r, "rb")
    channel_out = os.fdopen(from_w, "wb")

    def reply(message):
        write_frame(channel_out, b"r" + encode(message)[0])

    entry = meta["entry"]
    try:
        text = pickle.loads(read_frame(channel_in))
        if meta.get("transform") == "ode_t":
            import re
            text = re.sub(r"def equation\(", "def equation(t: float, ", text)
        # Annotations are never evaluated, as in upstream's SecureEvaluator.
        code = compile(text, meta.get("file") or "program.py", "exec",
                       flags=__future__.annotations.compiler_flag, dont_inherit=True)
        namespace = {"__name__": "candidate"}
        exec(code, namespace)
        functions = {n: v for n, v in namespace.items()
                     if callable(v) and getattr(v, "__module__", None) == "candidate"}
        if entry and entry not in functions:
            raise NameError(f"the program does not define {entry}(...) (it defines: {', '.join(functions) or 'nothing'})")
        reply({"ready": True, "unconfined": isolation, "functions": sorted(functions)})
    except BaseException as e:
        reply({"error": f"{type(e).__name__}: {e}"})
        os._exit(0)
    serve_calls(functions, entry, channel_in, channel_out)
    os._exit(0)


_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), frozenset)


def serve_calls(functions, entry, channel_in, channel_out):
    # Answer calls until the evaluator closes the channel. A call is a pickle of
    # (name, args, kwargs); the reply is its value, plus the arguments when the function
    # changed any of them in place (found by pickling them again: the evaluator copies them
    # back into its own objects, so a template that mutates its argument scores as upstream).
    loads, dumps = pickle.loads, pickle.dumps
    while True:
        try:
            payload = read_frame(channel_in)
        except EOFError:
            return
        if payload[:1] == b"F":
            parts = split_args(payload)
            name, args, kwargs = None, [decode_value(p) for p in parts], {}
        else:
            parts = None
            name, args, kwargs = loads(memoryview(payload)[1:])
        try:
            result = functions[name or entry](*args, **kwargs)
            try:
                if parts is not None:
                    same = all(encode_value(a) == p for a, p in zip(args, parts) if p[:1] == b"a")
                else:
                    same = memoryview(payload)[1:] == dumps((name, args, kwargs), 5)
            except Exception:
                same = False
            if same:
                data = b"v" + encode_value(result)
            else:
                mutable = {i: a for i, a in enumerate(args) if not isinstance(a, _IMMUTABLE)}
                mutable.update({k: a for k, a in kwargs.items() if not isinstance(a, _IMMUTABLE)})
                data = b"m" + encode({"value": result, "mutated": mutable})[0]
        except BaseException as e:
            data = b"e" + f"{type(e).__name__}: {e}".encode("utf-8", "replace")
        write_frame(channel_out, data)


_control.send(json.dumps({"ready": True, "unconfined": unconfined}).encode())
while True:
    try:
        _message, _fds, _, _ = socket.recv_fds(_control, 1 << 16, 3)
    except OSError:
        os._exit(0)
    if not _message:
        os._exit(0)  # the evaluator is gone
    if len(_fds) != 3:
        for _fd in _fds:
            os.close(_fd)
        continue
    if os.fork() == 0:
        _supervise(json.loads(_message), *_fds)
    for _fd in _fds:
        os.close(_fd)
"""


class CandidateError(Exception):
    """The candidate failed (its own error, as text)."""


def imported_modules(program):
    """Top-level modules a program imports (absolute imports), for the fork server."""
    try:
        tree = ast.parse(program)
    except SyntaxError:
        return []
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return sorted(names)


class Zygote:
    """The candidates' fork server of one job: confined, with `preload` imported."""

    def __init__(self, preload=()):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", ZYGOTE, str(theirs.fileno()), json.dumps(sorted(set(preload)))],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=2, stderr=2,
        )
        theirs.close()
        self.sock = ours
        try:
            ready = json.loads(ours.recv(1 << 16) or b"null")
        except ValueError:
            ready = None
        if not isinstance(ready, dict):
            self.close()
            raise CandidateError(f"the candidates' fork server did not start (exit code {self.proc.poll()})")
        # Where the kernel offers no confinement the candidate still runs, visibly.
        self.unconfined = ready.get("unconfined")

    def alive(self):
        return self.proc.poll() is None

    def close(self):
        try:
            self.sock.close()
        except Exception:
            pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def copy_back(target, value):
    """Make `target` (the evaluator's object) equal to `value` (the candidate's copy after
    the call) in place, keeping the identity of nested containers where their types agree."""
    if isinstance(target, list) and isinstance(value, (list, tuple)):
        merged = [copy_back(t, v) if i < len(target) else v
                  for i, (t, v) in enumerate(zip(target + [None] * (len(value) - len(target)), value))]
        target[:] = merged
        return target
    if isinstance(target, dict) and isinstance(value, dict):
        merged = {k: copy_back(target[k], v) if k in target else v for k, v in value.items()}
        target.clear()
        target.update(merged)
        return target
    if isinstance(target, set) and isinstance(value, (set, frozenset)):
        target.clear()
        target.update(value)
        return target
    if isinstance(target, tuple) and isinstance(value, tuple) and len(target) == len(value):
        for t, v in zip(target, value):
            copy_back(t, v)
        return target
    if type(target).__name__ == "ndarray" and hasattr(value, "shape"):
        if target.shape != value.shape:
            raise CandidateError(f"the candidate changed an array argument's shape {target.shape} -> {value.shape}")
        if target.dtype != value.dtype or target.tobytes() != value.tobytes():
            target[...] = value
        return target
    if type(target).__name__ == "ndarray" and isinstance(value, list):
        target[...] = value
        return target
    return value


class Candidate:
    """One candidate, forked from the job's fork server, called like the entry function."""

    def __init__(self, zygote, program, source_file, entry, transform, workdir, owns_zygote=False):
        self.calls = 0
        self.zygote = zygote if owns_zygote else None
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        life_r, life_w = os.pipe()
        self.life = life_w
        self.out = os.fdopen(to_w, "wb")
        self.inp = os.fdopen(from_r, "rb")
        meta = {"entry": entry, "transform": transform, "workdir": workdir, "file": source_file}
        try:
            socket.send_fds(zygote.sock, [json.dumps(meta).encode()], [to_r, from_w, life_r])
        except OSError as e:
            self.close()
            raise CandidateError(f"the candidates' fork server is gone ({e})")
        finally:
            for fd in (to_r, from_w, life_r):
                os.close(fd)
        try:
            write_frame(self.out, pickle.dumps(program))
        except BrokenPipeError:
            pass  # it died at once: _receive says so
        ready = self._receive()
        if "error" in ready:
            raise CandidateError(ready["error"])
        self.unconfined = ready.get("unconfined")
        self.functions = ready.get("functions") or []

    @classmethod
    def standalone(cls, source_file, entry, transform, workdir):
        """A candidate with a fork server of its own (one evaluation per process)."""
        program = open(source_file, encoding="utf-8").read()
        zygote = Zygote(imported_modules(program))
        try:
            return cls(zygote, program, source_file, entry, transform, workdir, owns_zygote=True)
        except BaseException:
            zygote.close()
            raise

    def _receive(self):
        try:
            data = read_frame(self.inp)
            kind = data[:1]
            if kind == b"r":
                message = decode_general(data, 1)
            elif kind == b"e":
                raise CandidateError(data[1:].decode("utf-8", "replace"))
            elif kind == b"v":
                return decode_value(data[1:])
            elif kind == b"m":
                message = decode_general(data, 1)
                if isinstance(message, dict) and "value" in message:
                    return message
                raise ValueError("malformed reply")
            else:
                raise ValueError("unknown message kind")
        except CandidateError:
            raise
        except Exception as e:
            raise CandidateError(f"the candidate's process stopped answering ({type(e).__name__}: {e})")
        if not isinstance(message, dict):
            raise CandidateError("the candidate's process sent a malformed message")
        return message

    def __call__(self, *args, **kwargs):
        return self.call(None, *args, **kwargs)

    def call(self, name, *args, **kwargs):
        """Call the candidate's function `name` (None: the entry); its return value comes
        back as data, and arguments it changed in place are changed here the same way."""
        self.calls += 1
        payload = encode_args(args) if name is None and not kwargs else None
        if payload is None:
            try:
                payload = b"P" + pickle.dumps((name, args, kwargs), 5)
            except Exception as e:
                raise CandidateError(f"cannot forward the arguments ({type(e).__name__}: {e})")
        try:
            write_frame(self.out, payload)
        except (BrokenPipeError, ValueError):
            raise CandidateError("the candidate's process exited")
        reply = self._receive()
        if type(reply) is not dict or "mutated" not in reply:
            return reply
        mutated = reply["mutated"]
        if not isinstance(mutated, dict):
            raise CandidateError("the candidate's process sent a malformed message")
        for key, value in mutated.items():
            if isinstance(key, int) and 0 <= key < len(args):
                copy_back(args[key], value)
            elif isinstance(key, str) and key in kwargs:
                copy_back(kwargs[key], value)
        return reply["value"]

    def close(self):
        """End the candidate: its input closes, and its supervisor kills it and whatever
        it started."""
        for f in (self.out, self.inp):
            try:
                f.close()
            except Exception:
                pass
        if self.life is not None:
            os.close(self.life)
            self.life = None
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None


# ---------------------------------------------------------------- the evaluator's side
def provide_opto():
    """The few `opto` (OpenTrace) names the reference's `llm4ad_loader.py` imports at its
    top, when OpenTrace is not installed: the evaluator never needs the Trace graph, only
    the loader's `Evaluation` base class. (`trace.node` returns a minimal parameter node;
    `Guide` is an empty base class.) With OpenTrace installed, nothing is replaced."""
    if "opto" in sys.modules or importlib.util.find_spec("opto") is not None:
        return
    import types

    class ParameterNode:
        def __init__(self, value, name=None, description=None, trainable=False, **kwargs):
            self.data, self._data = value, value
            self.name, self.description, self.trainable = name, description, trainable

    def node(value, name=None, description=None, trainable=False, **kwargs):
        return ParameterNode(value, name=name, description=description, trainable=trainable, **kwargs)

    class Guide:
        def __init__(self, *args, **kwargs):
            pass

    def module(name, **names):
        m = types.ModuleType(name)
        m.__path__ = []
        m.__dict__.update(names)
        sys.modules[name] = m
        return m

    nodes = module("opto.trace.nodes", ParameterNode=ParameterNode, Node=ParameterNode)
    trace = module("opto.trace", node=node, nodes=nodes)
    guide = module("opto.trainer.guide", Guide=Guide)
    trainer = module("opto.trainer", guide=guide)
    module("opto", trace=trace, trainer=trainer, __trace_bench_stub__=True)


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
    provide_opto()
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


class Job:
    """What a serving process keeps between evaluations: the evaluator objects (one per
    task and eval_kwargs, built once) and the candidates' fork server."""

    def __init__(self):
        self.evaluators = {}
        self.zygote = None

    def fork_server(self, program):
        if self.zygote is None or not self.zygote.alive():
            if self.zygote is not None:
                self.zygote.close()
            # numpy (when this Python has it) and whatever the first program imports.
            preload = imported_modules(program)
            if importlib.util.find_spec("numpy") is not None:
                preload.append("numpy")
            self.zygote = Zygote(preload)
        return self.zygote

    def close(self):
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None


def in_fork(run):
    """`run()` in a fork of this process, as upstream's SecureEvaluator(fork_proc=True)
    runs an evaluation: whatever the evaluation changes (the evaluator's instances, its
    random state, arguments the candidate mutated) is gone afterwards, so every candidate
    of a job is scored from the same evaluator. `run` returns a JSON-able dict."""
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            try:
                out = run()
            except BaseException as e:
                out = {"error": f"{type(e).__name__}: {e}"}
            data = json.dumps(out).encode()
            with os.fdopen(w, "wb") as f:
                f.write(data)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        return {"error": f"the evaluation's process died (status {status})"}
    return json.loads(data)


def evaluate(request, job):
    """The verdict of one request, with the job's evaluators and fork server."""
    info = request.get("info") or {}
    entry = info["entry"]
    workdir = request.get("workdir") or os.getcwd()
    source_file = os.path.join(workdir, request.get("files", {}).get("program", "program.py"))
    started = time.monotonic()
    candidate = None
    try:
        program = open(source_file, encoding="utf-8").read()
        transform = "ode_t" if info.get("execs_program") else "none"
        candidate = Candidate(job.fork_server(program), program, source_file, entry, transform, workdir)
        key = json.dumps([info, request.get("eval_kwargs")], sort_keys=True)
        if key not in job.evaluators:
            job.evaluators[key] = load_evaluator(info, request.get("eval_kwargs"))[0]
        evaluator = job.evaluators[key]

        def run():
            text = program
            if info.get("execs_program"):
                # This evaluator executes the program text itself: it gets a stub that
                # forwards to the candidate, never the candidate's code.
                # (ode_1d inserts a leading `t` into the `def` line and runs the text in its
                # own module's globals: the stub forwards `t` too, the child got the same edit.)
                owner = sys.modules[type(evaluator).__module__]
                owner.__dict__["__trace_bench_forward__"] = candidate
                text = f"def {entry}(*args, **kwargs):\n    return __trace_bench_forward__(t, *args, **kwargs)\n"
            try:
                result = evaluator.evaluate_program(text, candidate)
            except CandidateError as e:
                return {"invalid": str(e)}
            score, metrics = normalise(result)
            out = {"score": score, "metrics": metrics, "calls": candidate.calls}
            if score is None:
                out["result"] = repr(result)[:2000]
            return out

        out = in_fork(run)
    except CandidateError as e:
        return verdict(FAILURE_SCORE, f"invalid: {e}")
    except Exception as e:
        return verdict(FAILURE_SCORE, f"evaluation error: {type(e).__name__}: {e}")
    finally:
        if candidate is not None:
            candidate.close()
    if "invalid" in out:
        return verdict(FAILURE_SCORE, f"invalid: {out['invalid']}")
    if "error" in out:
        return verdict(FAILURE_SCORE, f"evaluation error: {out['error']}")
    score, metrics = out["score"], out["metrics"]
    seconds = time.monotonic() - started
    if score is None:
        return verdict(FAILURE_SCORE, f"invalid: the evaluator returned {out['result']} (no finite score)")
    calls = out["calls"]
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
    job = Job()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            out = evaluate(json.loads(line), job)
        except Exception as e:
            out = verdict(FAILURE_SCORE, f"evaluation error: {type(e).__name__}: {e}")
        channel.write(json.dumps(out) + "\n")
        channel.flush()
    job.close()


def main():
    if "--serve" in sys.argv[1:]:
        serve()
    else:
        job = Job()
        try:
            out = evaluate(json.load(sys.stdin), job)
        finally:
            job.close()
        print(json.dumps(out))


if __name__ == "__main__":
    main()
