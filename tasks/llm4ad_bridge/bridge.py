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


import math as _math
_INT, _FLOAT = {int}, {float}
_finite = _math.isfinite
_JSON_SCALARS = {int, float, str, bool, type(None)}


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
        if type(x) is list:
            # A list of plain numbers (a mutated assignment, a route) as it is.
            kinds = set(map(type, x))
            if not kinds or (kinds == _INT and -2 ** 53 < min(x) and max(x) < 2 ** 53) or (
                    kinds == _FLOAT and all(map(_finite, x))):
                return x
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
            if set(map(type, x)) <= _JSON_SCALARS:
                return x
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
_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), frozenset)


# How long a reader polls the pipe (yielding the CPU between tries) before it sleeps in
# select(): a forwarded call is a ping-pong between two processes, and on a virtual machine
# waking a sleeping one costs 30-40 us when its CPU is idle, while polling costs ~3 us per
# round trip. The other side usually answers within this window; when it does not (a slow
# candidate, the evaluator's own work between calls), the reader sleeps as before. The
# bridge's environment can set it (TRACE_BENCH_LLM4AD_SPIN, seconds; 0: never poll).
SPIN_SECONDS = 0.0003


# A payload above SHARED_MIN bytes that fits the sender's shared region is written there and
# only its length (with the top bit set) crosses the pipe: a pipe write costs a page
# allocation and copy per 4 KiB in the kernel (~15 us for a 40 KB array on this machine),
# a memcpy into a mapped region well under 1 us.
SHARED_MIN = 1024
SHARED_SIZE = 16 << 20
_IN_REGION = 0x80000000


class Channel:
    """Frames over a pipe pair: a 4-byte big-endian length, then the payload. Reads poll the
    non-blocking read end for up to SPIN_SECONDS, then block in select(). With regions
    (shared memory, one per direction), large payloads travel through them: the sender
    writes its own region, the receiver copies the payload out before looking at it."""

    def __init__(self, rfd, wfd, spin=SPIN_SECONDS, inbound=None, outbound=None):
        self.rfd, self.wfd, self.spin = rfd, wfd, spin
        if rfd is not None:
            os.set_blocking(rfd, False)
        self.pending = bytearray()
        self.inbound, self.outbound = inbound, outbound

    def send(self, payload):
        n = len(payload)
        out = self.outbound
        if out is not None and SHARED_MIN < n <= len(out):
            out[:n] = payload
            os.write(self.wfd, _FRAME.pack(n | _IN_REGION))
            return
        head = _FRAME.pack(n)
        total = 4 + len(payload)
        done = os.writev(self.wfd, (head, payload))
        if done < total:
            rest = memoryview(head + payload)[done:]
            while rest:
                rest = rest[os.write(self.wfd, rest):]

    def _read(self):
        try:
            data = os.read(self.rfd, 1 << 17)
        except BlockingIOError:
            data = None
            until = _clock() + self.spin
            while data is None:
                try:
                    data = os.read(self.rfd, 1 << 17)
                except BlockingIOError:
                    if _clock() > until:
                        _select([self.rfd], [], [])
                    else:
                        _yield()  # a peer queued on this CPU runs now
        if not data:
            raise EOFError("the other side closed the channel")
        return data

    def recv(self):
        buf = self.pending
        if len(buf) < 4:
            data = self._read()
            if not buf and len(data) >= 4:
                (n,) = _FRAME.unpack_from(data)
                if len(data) == 4 + n:
                    return data[4:]  # the common case: exactly one frame
                if len(data) == 4 and n & _IN_REGION:
                    n &= ~_IN_REGION
                    if self.inbound is None or n > len(self.inbound):
                        raise ValueError("malformed frame")
                    return self.inbound[:n]
            buf += data
            while len(buf) < 4:
                buf += self._read()
        (n,) = _FRAME.unpack_from(buf)
        if n & _IN_REGION:
            n &= ~_IN_REGION
            del buf[:4]
            region = self.inbound
            if region is None or n > len(region):
                raise ValueError("malformed frame")
            return region[:n]  # a copy: the other side may write its region at any time
        if n > MAX_BUFFER:
            raise ValueError("oversized message")
        while len(buf) < 4 + n:
            buf += self._read()
        payload = bytes(buf[4:4 + n])
        del buf[:4 + n]
        return payload

    def close(self):
        for fd in (self.rfd, self.wfd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.rfd = self.wfd = None
        for region in (self.inbound, self.outbound):
            if region is not None:
                try:
                    region.close()
                except Exception:
                    pass
        self.inbound = self.outbound = None


from time import perf_counter as _clock
from select import select as _select
import os
_yield = os.sched_yield


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
    if t is bool:
        return b"t" if x else b"b"
    if t is _ndarray:
        key = (x.dtype, x.shape)
        head = _HEADS.get(key)
        if head is None and x.dtype.kind in _NUMERIC and x.ndim < 256:
            d = x.dtype.str.encode()
            head = b"a" + bytes([len(d)]) + d + _dims(x.shape)
            if len(_HEADS) < 4096:
                _HEADS[key] = head
        if head is not None:
            return head + x.tobytes()  # C order, whatever the array's layout
    if _np is not None and isinstance(x, _np.generic):
        head = _HEADS.get(x.dtype)
        if head is None and x.dtype.kind in _NUMERIC:
            d = x.dtype.str.encode()
            head = _HEADS[x.dtype] = b"s" + bytes([len(d)]) + d
        if head is not None:
            return head + x.tobytes()
    if t is tuple and len(x) < 256:
        # A tuple of numbers (jssp's operation, cflp's pair): each element as above.
        parts = [encode_value(v) for v in x]
        if not any(p[:1] in (b"g", b"T") for p in parts):
            return b"T" + bytes([len(parts)]) + b"".join(_LEN.pack(len(p)) + p for p in parts)
    return b"g" + encode(x)[0]


_HEADS, _SHAPES = {}, {}
_ndarray = _np.ndarray if _np is not None else None


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
    if kind in (b"t", b"b"):
        if len(data) != 1:
            raise ValueError("malformed boolean")
        return kind == b"t"
    if kind == b"a":
        # The header (dtype and shape) is checked once per distinct header.
        n = data[1]
        end = 3 + n + 8 * data[2 + n]
        head = bytes(data[1:end])
        known = _SHAPES.get(head)
        if known is not None:
            dtype, shape, size = known
            if len(data) - end != size:
                raise ValueError("malformed array")
            return _np.frombuffer(data, dtype=dtype, offset=end).reshape(shape).copy()
    if kind in (b"a", b"s"):
        n = data[1]
        dtype = _dtype(bytes(data[2:2 + n]).decode())
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
        if len(_SHAPES) < 4096:
            _SHAPES[bytes(data[1:at])] = (dtype, shape, count * dtype.itemsize)
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
_np_ndarray = _np.ndarray if _np is not None else None
_np_generic = _np.generic if _np is not None else None

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
import __future__, ast, mmap, pickle, select, signal, socket

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


def _spare():
    # The next candidate, made ahead of its request (forking twice and making namespaces
    # costs milliseconds, which then overlap the evaluator's own work): its supervisor and
    # the candidate itself (PID 1 of its namespaces) each wait on a socket for their
    # descriptors. Nothing but this server's own code has run in it.
    sup_ours, sup_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    cand_ours, cand_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    if os.fork() == 0:
        sup_ours.close()
        cand_ours.close()
        _supervise(sup_theirs, cand_theirs)
    sup_theirs.close()
    cand_theirs.close()
    return sup_ours, cand_ours


def _supervise(sup_sock, cand_sock):
    # Runs in the fork: start the candidate as PID 1 of new namespaces, then kill it (and
    # so everything it started) when the evaluator closes `life`, or the fork server ends
    # before this spare was used.
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        _control.close()
        isolation = unconfined
        if unconfined is None and _libc.unshare(NEW_NAMESPACES) != 0:
            isolation = "no namespaces of its own (" + os.strerror(ctypes.get_errno()) + ")"
        pid = os.fork()
        if pid == 0:
            try:
                _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: dies with its supervisor
                sup_sock.close()
                message, fds, _, _ = socket.recv_fds(cand_sock, 1 << 16, 4)
                cand_sock.close()
                if message and len(fds) in (2, 4):
                    _candidate(json.loads(message), fds[0], fds[1], isolation, tuple(fds[2:]))
            finally:
                os._exit(0)
        cand_sock.close()
        pidfd = os.pidfd_open(pid)
        try:
            _, fds, _, _ = socket.recv_fds(sup_sock, 16, 1)
        except OSError:
            fds = []
        sup_sock.close()
        if fds:
            select.select([fds[0], pidfd], [], [])
    except BaseException:
        pass
    for kill in (os.kill, os.killpg):
        try:
            kill(pid, signal.SIGKILL)
        except (OSError, NameError):
            pass
    try:
        os.waitpid(pid, 0)
    except (OSError, NameError):
        pass
    os._exit(0)


def _candidate(meta, to_r, from_w, isolation, regions):
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
    # The shared regions: the evaluator's requests, mapped read-only (the descriptor is
    # read-only and the memfd sealed against new writable mappings), and this process's
    # replies, which the evaluator copies out before reading.
    inbound = outbound = None
    if len(regions) == 2:
        try:
            inbound = mmap.mmap(regions[0], 0, mmap.MAP_SHARED, mmap.PROT_READ)
            outbound = mmap.mmap(regions[1], 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except (OSError, ValueError):
            inbound = outbound = None
        for fd in regions:
            os.close(fd)
    channel = Channel(to_r, from_w, meta.get("spin", SPIN_SECONDS), inbound, outbound)

    def reply(message):
        channel.send(b"r" + encode(message)[0])

    entry = meta["entry"]
    try:
        text = pickle.loads(channel.recv())
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
    serve_calls(functions, entry, channel)
    os._exit(0)


def serve_calls(functions, entry, channel):
    # Answer calls until the evaluator closes the channel. A call (b"K") names the function
    # and carries each argument as one part: a number or numeric array in the binary codec,
    # a pickle (the evaluator is trusted), or b"=": the same value as this argument position
    # had at the last call, which this process still holds (the evaluator checked that its
    # own object did not change since). The reply is the value, plus the arguments the
    # function changed in place (found by comparing each with its snapshot: the bytes it
    # came as, or a second copy): the evaluator copies them back into its own objects, so a
    # template that mutates its argument scores as upstream. A changed argument, and after
    # an exception every argument, is dropped from the cache on both sides. b"P" is the
    # general form: a pickle of (name, args, kwargs), compared as a whole.
    loads, dumps = pickle.loads, pickle.dumps
    slots = {}
    while True:
        try:
            payload = channel.recv()
        except EOFError:
            return
        kind = payload[:1]
        checks = []
        try:
            if kind == b"K":
                n = payload[1]
                name = payload[2:2 + n].decode() or None
                args, at = [], 2 + n
                while at < len(payload):
                    (size,) = _LEN.unpack_from(payload, at)
                    part = payload[at + 4:at + 4 + size]
                    at += 4 + size
                    i, tag = len(args), part[:1]
                    if tag == b"=":
                        live, snap, how = slots[(name, i)]
                    elif tag == b"c":
                        live, snap, how = loads(part[1:]), loads(part[1:]), "eq"
                        slots[(name, i)] = (live, snap, how)
                    elif tag == b"p":
                        live, snap, how = loads(part[1:]), part[1:], "pickle"
                    elif tag == b"x":
                        live, how = loads(part[1:]), None
                    elif tag == b"a":
                        live, snap, how = decode_value(part), part, "array"
                        slots[(name, i)] = (live, snap, how)
                    else:
                        live, how = decode_value(part), None
                    args.append(live)
                    if how is not None:
                        checks.append((i, snap, how))
                kwargs = {}
            else:
                name, args, kwargs = loads(memoryview(payload)[1:])
            result = functions[name or entry](*args, **kwargs)
            mutated = {}
            if kind == b"K":
                for i, snap, how in checks:
                    live = args[i]
                    try:
                        if how == "eq":
                            same = (live == snap) is True
                        elif how == "array":
                            same = encode_value(live) == snap
                        else:
                            same = dumps(live, 5) == snap
                    except Exception:
                        same = False
                    if not same:
                        mutated[i] = live
                        slots.pop((name, i), None)
            else:
                try:
                    same = memoryview(payload)[1:] == dumps((name, args, kwargs), 5)
                except Exception:
                    same = False
                if not same:
                    mutated = {i: a for i, a in enumerate(args) if not isinstance(a, _IMMUTABLE)}
                    mutated.update({k: a for k, a in kwargs.items() if not isinstance(a, _IMMUTABLE)})
            # The value is one of the (mutable) arguments: say which, so that the
            # evaluator gets its own object back, as upstream.
            arg = None
            if not isinstance(result, _IMMUTABLE) and not (_np is not None and isinstance(result, _np.generic)):
                for i, a in enumerate(args):
                    if a is result:
                        arg = i
                        break
            if mutated:
                data = b"m" + encode({"value": None if arg is not None else result, "arg": arg,
                                      "mutated": mutated})[0]
            elif arg is not None:
                data = b"A" + _LEN.pack(arg)
            else:
                data = b"v" + encode_value(result)
        except BaseException as e:
            slots.clear()
            data = b"e" + f"{type(e).__name__}: {e}".encode("utf-8", "replace")
        channel.send(data)


_control.send(json.dumps({"ready": True, "unconfined": unconfined}).encode())
_next = _spare()
while True:
    try:
        _message, _fds, _, _ = socket.recv_fds(_control, 1 << 16, 5)
    except OSError:
        os._exit(0)
    if not _message:
        os._exit(0)  # the evaluator is gone
    if len(_fds) in (3, 5):
        _sup, _cand = _next
        try:
            socket.send_fds(_cand, [_message], [_fds[0], _fds[1]] + list(_fds[3:]))
            socket.send_fds(_sup, [b"go"], [_fds[2]])
        except OSError:
            pass  # that spare died: the evaluator sees the channel close
        _sup.close()
        _cand.close()
    for _fd in _fds:
        os.close(_fd)
    # The next spare, made only now that this process holds no evaluation's descriptors.
    _next = _spare()
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


F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_FUTURE_WRITE = 0x1, 0x2, 0x4, 0x10


def shared_regions():
    """(requests, replies, descriptors for the candidate): two memfds of SHARED_SIZE bytes
    mapped here. The candidate gets the request region read-only (a read-only descriptor;
    the memfd sealed against writes except through this process's mapping) and the reply
    region read-write (sealed against resizing, so it cannot make this process fault).
    (None, None, []) where memfds or seals are unavailable: everything then crosses the
    pipe."""
    import fcntl
    import mmap
    fds, maps = [], []
    try:
        for name in ("requests", "replies"):
            fd = os.memfd_create(f"trace-bench-{name}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
            fds.append(fd)
            os.ftruncate(fd, SHARED_SIZE)
            maps.append(mmap.mmap(fd, SHARED_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE))
        fcntl.fcntl(fds[0], fcntl.F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL)
        fcntl.fcntl(fds[1], fcntl.F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
        read_only = os.open(f"/proc/self/fd/{fds[0]}", os.O_RDONLY | os.O_CLOEXEC)
        os.close(fds[0])
        fds[0] = read_only
        return maps[0], maps[1], fds
    except (OSError, AttributeError, ValueError):
        for m in maps:
            m.close()
        for fd in fds:
            os.close(fd)
        return None, None, []


_SCALARS = {int, float, bool, str, bytes, complex, type(None)}


def copy_back(target, value):
    """Make `target` (the evaluator's object) equal to `value` (the candidate's copy after
    the call) in place, keeping the identity of nested containers where their types agree."""
    if isinstance(target, list) and isinstance(value, (list, tuple)):
        if set(map(type, target)) <= _SCALARS:
            target[:] = value  # no nested container whose identity to keep
            return target
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
        requests, replies, shared = shared_regions()
        self.channel = Channel(from_r, to_w, float(os.environ.get("TRACE_BENCH_LLM4AD_SPIN", SPIN_SECONDS)),
                               replies, requests)
        # What the candidate holds for each (function, argument position): this side's
        # object and, for an array, the bytes it was sent as, for other values a snapshot
        # copy. A position is sent as b"=" only when the evaluator passes the same object
        # again, unchanged (so the candidate's objects mirror the evaluator's identities, as
        # upstream). `misses` counts calls in a row where a position's value was new or
        # changed (after two, it is no longer snapshotted).
        self.slots, self.misses = {}, {}
        meta = {"entry": entry, "transform": transform, "workdir": workdir, "file": source_file,
                "spin": self.channel.spin}
        try:
            socket.send_fds(zygote.sock, [json.dumps(meta).encode()], [to_r, from_w, life_r] + shared)
        except OSError as e:
            self.close()
            raise CandidateError(f"the candidates' fork server is gone ({e})")
        finally:
            for fd in [to_r, from_w, life_r] + shared:
                os.close(fd)
        try:
            self.channel.send(pickle.dumps(program))
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
            data = self.channel.recv()
            kind = data[:1]
            if kind == b"r":
                message = decode_general(data, 1)
            elif kind == b"e":
                self.slots.clear()
                raise CandidateError(data[1:].decode("utf-8", "replace"))
            elif kind == b"v":
                return decode_value(data[1:])
            elif kind == b"A":
                if len(data) != 5:
                    raise ValueError("malformed reply")
                return {"value": None, "arg": _LEN.unpack_from(data, 1)[0], "mutated": {}}
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

    def _request(self, name, args):
        """The b"K" frame of a call with positional `args`, or None when it needs the
        general form (an object passed twice, which the candidate must get once)."""
        name_bytes = (name or "").encode()
        if len(name_bytes) > 255:
            return None
        parts = [b"K", bytes([len(name_bytes)]), name_bytes]
        seen = set()
        # Changes to the cache are staged and made only when this frame is the one sent.
        slots, misses = self.slots, dict(self.misses)
        staged, dropped = {}, []
        for i, a in enumerate(args):
            t = type(a)
            if t is float or t is int or t is bool or a is None:
                part = encode_value(a)
            elif t is _np_ndarray and a.dtype.kind in _NUMERIC and a.ndim < 256:
                if id(a) in seen:
                    return None
                seen.add(id(a))
                part = encode_value(a)
                key = (name, i)
                slot = slots.get(key)
                if slot is not None and slot[0] is a and slot[1] == part:
                    part = b"="
                else:
                    staged[key] = (a, part)
            elif isinstance(a, _IMMUTABLE) or (_np_generic is not None and isinstance(a, _np_generic)):
                part = encode_value(a)
                if part[:1] == b"g":
                    part = b"x" + pickle.dumps(a, 5)
            else:
                if t is tuple:
                    part = encode_value(a)
                    if part[:1] == b"T":
                        parts += [_LEN.pack(len(part)), part]
                        continue
                if id(a) in seen:
                    return None
                seen.add(id(a))
                key = (name, i)
                snap = slots.get(key)
                if snap is not None and snap[0] is a:
                    try:
                        same = (a == snap[1]) is True
                    except Exception:
                        same = False
                    if same:
                        misses[key] = 0
                        parts += [_LEN.pack(1), b"="]
                        continue
                data = pickle.dumps(a, 5)
                missed = misses.get(key, 0) + 1
                misses[key] = missed
                part = None
                if missed <= 2:
                    copy = pickle.loads(data)
                    try:
                        same = (a == copy) is True
                    except Exception:
                        same = False
                    if same:
                        staged[key] = (a, copy)
                        part = b"c" + data
                if part is None:
                    dropped.append(key)
                    part = b"p" + data
            parts += [_LEN.pack(len(part)), part]
        frame = b"".join(parts)
        for key in dropped:
            slots.pop(key, None)
        slots.update(staged)
        self.misses = misses
        return frame

    def call(self, name, *args, **kwargs):
        """Call the candidate's function `name` (None: the entry); its return value comes
        back as data, and arguments it changed in place are changed here the same way."""
        self.calls += 1
        try:
            payload = None if kwargs else self._request(name, args)
            if payload is None:
                payload = b"P" + pickle.dumps((name, args, kwargs), 5)
        except Exception as e:
            # Nothing was sent; to be sure both sides agree, nothing counts as cached.
            self.slots.clear()
            raise CandidateError(f"cannot forward the arguments ({type(e).__name__}: {e})")
        try:
            self.channel.send(payload)
        except (BrokenPipeError, OSError, TypeError):
            raise CandidateError("the candidate's process exited")
        reply = self._receive()
        if type(reply) is not dict or "mutated" not in reply:
            return reply
        mutated = reply["mutated"]
        if not isinstance(mutated, dict):
            raise CandidateError("the candidate's process sent a malformed message")
        for key, value in mutated.items():
            if isinstance(key, int) and 0 <= key < len(args):
                self.slots.pop((name, key), None)
                copy_back(args[key], value)
            elif isinstance(key, str) and key in kwargs:
                copy_back(kwargs[key], value)
        arg = reply.get("arg")
        if arg is None:
            return reply["value"]
        if type(arg) is int and 0 <= arg < len(args) and not isinstance(args[arg], _IMMUTABLE):
            return args[arg]
        raise CandidateError("the candidate's process sent a malformed message")

    def close(self):
        """End the candidate: its input closes, and its supervisor kills it and whatever
        it started."""
        self.channel.close()
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


_UNREAPED = []


def in_fork(run):
    """`run()` in a fork of this process, as upstream's SecureEvaluator(fork_proc=True)
    runs an evaluation: whatever the evaluation changes (the evaluator's instances, its
    random state, arguments the candidate mutated) is gone afterwards, so every candidate
    of a job is scored from the same evaluator. `run` returns a JSON-able dict."""
    for done in list(_UNREAPED):
        try:
            if os.waitpid(done, os.WNOHANG)[0] == 0:
                continue
        except ChildProcessError:
            pass
        _UNREAPED.remove(done)
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
    if not data:
        _, status = os.waitpid(pid, 0)
        return {"error": f"the evaluation's process died (status {status})"}
    # It has closed the pipe and is exiting: reaped later, so that the teardown of a large
    # process (a millisecond or more) is not part of this evaluation.
    _UNREAPED.append(pid)
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
