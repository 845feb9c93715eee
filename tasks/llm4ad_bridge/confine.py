"""Confinement of a candidate's process, run first thing in the child interpreter (before
numpy starts threads): a new user and network namespace, so there is no network at all,
then Linux Landlock, so the process reads only the interpreter and its libraries (not the
`llm4ad` package with the evaluators, nor any other file of the user) and writes only its
working directory. `unconfined` is None when both took effect, else why not: the caller
runs the candidate anyway and says so in the verdict. Shared by bridge.py and the embedded
LLM4AD scorers; plain ctypes, no dependency.

Run as text in front of a script, it confines at once (`unconfined`); a script that defines
`CONFINE_DEFERRED = True` first calls `confine(...)` itself: bridge.py's fork server does,
with no writable directory, no /proc/self and root mapped in its user namespace (so each
candidate forked from it can get namespaces of its own).
"""

import ctypes, os, sys


def confine(write_dir="", proc_self=True, map_ids=False):
    """None when confined, else why not. `write_dir`: the one directory the process may
    write ("": the working directory, None: none); `map_ids`: map the caller's ids in the
    new user namespace (needed to create nested user namespaces later)."""
    libc = ctypes.CDLL(None, use_errno=True)
    problems = []
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(0x10000000 | 0x40000000) != 0:  # CLONE_NEWUSER | CLONE_NEWNET
        problems.append("no network namespace (" + os.strerror(ctypes.get_errno()) + ")")
    elif map_ids:
        try:
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
        except OSError as e:
            problems.append(f"cannot map ids in the user namespace ({e})")
    abi = libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        problems.append("no Landlock in this kernel")
        return "; ".join(problems)
    fs = (1 << 13) - 1
    if abi >= 2:
        fs |= 1 << 13
    if abi >= 3:
        fs |= 1 << 14
    if abi >= 5:
        fs |= 1 << 15
    net = 3 if abi >= 4 else 0

    class Ruleset(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]

    scoped = 3 if abi >= 6 else 0  # abstract unix sockets, signals
    attr = Ruleset(fs, net, scoped)
    size = ctypes.sizeof(Ruleset) if abi >= 6 else (16 if abi >= 4 else 8)
    ruleset = libc.syscall(444, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        problems.append("Landlock ruleset refused (" + os.strerror(ctypes.get_errno()) + ")")
        return "; ".join(problems)
    read = (1 << 0) | (1 << 2) | (1 << 3)
    everything = fs

    def allow(path, access):
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return
        try:
            if not os.path.isdir(path):
                access &= (1 << 0) | (1 << 1) | (1 << 2) | (1 << 14) | (1 << 15)
            rule = PathBeneath(access & fs, fd)
            libc.syscall(445, ruleset, 1, ctypes.byref(rule), ctypes.c_uint32(0))
        finally:
            os.close(fd)

    # The interpreter and its libraries, but no package that holds an evaluator.
    roots = set()
    for p in sys.path:
        if not p or not os.path.isdir(p):
            continue
        if os.path.basename(p) in ("site-packages", "dist-packages"):
            for name in os.listdir(p):
                if not name.lower().startswith("llm4ad"):
                    roots.add(os.path.join(p, name))
        else:
            roots.add(p)
    for p in sorted(roots):
        allow(p, read)
    for p in ("/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/local/lib", "/etc/ld.so.cache",
              "/etc/localtime", "/usr/share/zoneinfo", "/sys/devices/system/cpu",
              "/dev/urandom", os.path.dirname(os.path.realpath(sys.executable))):
        allow(p, read)
    if proc_self:
        allow("/proc/self", read)
    allow("/dev/null", (1 << 1) | (1 << 2))
    if write_dir is not None:
        allow(write_dir or os.getcwd(), everything)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        problems.append("cannot set no_new_privs")
        return "; ".join(problems)
    if libc.syscall(446, ruleset, ctypes.c_uint32(0)) != 0:
        problems.append("Landlock restriction refused (" + os.strerror(ctypes.get_errno()) + ")")
    os.close(ruleset)
    return "; ".join(problems) or None


if not globals().get("CONFINE_DEFERRED"):
    unconfined = confine()
