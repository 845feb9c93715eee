"""Throughput and scale of `trace-bench run` on stub matrices (issue 18), all measured in one
invocation so the ratios compare numbers taken under the same machine load:

1. the 108-job matrix (configs/matrix_9x4x3.yaml): wall, user, sys and max RSS, best and median;
2. the filesystem floor: `cp -r` of the run directory just written, on the same filesystem;
3. the Python reference on the same config, when TRACE_BENCH_REFERENCE names its `trace-bench`;
4. scale: the same matrix with 28 and 278 seeds (1,008 and 10,008 jobs): time per job, max RSS.

    python3 bench/throughput.py [--bin PATH] [--repeat N] [--quick] [--json PATH] [--keep]

Exits 0 when every target is met, 1 when one is missed, 2 on a harness error (binary missing,
a run exiting with an unexpected code, a results.csv without one row per job).

Run it on a quiet machine, and not within 5 minutes of deleting many files on the same
filesystem (this script's own clean-up included): ext4 skips inodes freed in the last 60-300 s
when it allocates (`recently_deleted`), which makes creating files several times slower for
us and the floor alike — the floor row shows it (~0.05 s on an idle 2-core VM; the script
warns above 0.15 s).
"""

import argparse
import csv
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs/matrix_9x4x3.yaml")
BASE_SEEDS, BASE_JOBS = 3, 108  # 9 tasks x 4 trainers x 3 seeds
SCALE_SEEDS = {"1k": 28, "10k": 278}  # 1,008 and 10,008 jobs

# Targets of issue 18, each a ratio measured in this one run.
REFERENCE_SPEEDUP_MIN = 100.0  # reference wall / ours wall, 108 jobs: at least 100x faster
FLOOR_RATIO_MAX = 2.0  # ours wall / `cp -r` of the same run directory: within 2x of the filesystem
PER_JOB_RATIO_MAX = 1.2  # time per job at 10,008 jobs / at 108: no super-linear cost per job
RSS_RATIO_MAX = 1.3  # max RSS at 10,008 jobs / at 1,008: memory flat in the number of jobs
SLOW_FLOOR_S = 0.15  # a `cp -r` of 1,377 small files slower than this: the filesystem is not quiet

# `run` exits 1 when some job failed (README, exit codes): the internal:non_trainable jobs of
# this matrix fail by design (no_trainable_parameters), so 1 is the expected code and the
# results.csv check below is what tells a good run from a broken one.
EXPECTED_EXIT = 1
EXPECTED_FAILING_TASK = "internal:non_trainable"
# The reference swaps sys.stdout per job with redirect_stdout from worker threads: with 2
# workers a job's log file, closed, ends up as sys.stdout, ~24 jobs fail and it exits 1. One
# worker is its only correct mode (and costs it nothing: its jobs are GIL-bound, 9.5 s vs 9.8).
REFERENCE_ARGS = ["--max-workers", "1"]


class HarnessError(Exception):
    """The measurement itself is broken (not a missed target): exit 2."""


def timed(cmd, cwd, log_prefix):
    """Run cmd to completion; wall seconds plus the child's own rusage (os.wait4, not the
    cumulative RUSAGE_CHILDREN, so each run's numbers are its own)."""
    with open(log_prefix + ".out", "wb") as out, open(log_prefix + ".err", "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        done, hwm = threading.Event(), [0]
        poller = threading.Thread(target=poll_hwm, args=(proc.pid, done, hwm), daemon=True)
        poller.start()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    done.set()
    poller.join()
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    # exec records the spawning (vforked) process's peak into the child's ru_maxrss, so a child
    # smaller than this harness reads as the harness's size; then take its polled VmHWM.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_kb, source = (ru.ru_maxrss, "wait4") if ru.ru_maxrss > own else (hwm[0], "VmHWM poll")
    return {"wall_s": wall, "user_s": ru.ru_utime, "sys_s": ru.ru_stime,
            "maxrss_mb": rss_kb / 1024, "rss_source": source, "exit": code}  # KiB on Linux


def poll_hwm(pid, done, hwm):
    """Peak RSS (VmHWM, KiB) of a running process, sampled every 10 ms until it exits."""
    while not done.is_set():
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm[0] = max(hwm[0], int(line.split()[1]))
        except (OSError, ValueError):
            return
        done.wait(0.01)


def tail(path, lines=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no output)"


def only_run_dir(runs_dir):
    """The one run directory a fresh --runs-dir holds after a run."""
    entries = [e for e in os.listdir(runs_dir) if os.path.isdir(os.path.join(runs_dir, e))]
    if len(entries) != 1:
        raise HarnessError(f"{runs_dir}: expected one run directory, found {entries}")
    return os.path.join(runs_dir, entries[0])


def check_results(run_dir, jobs):
    """One results.csv row per job, so a run that silently did nothing cannot look fast, and
    no failures but the ones this matrix has by design."""
    path = os.path.join(run_dir, "results.csv")
    if not os.path.exists(path):
        raise HarnessError(f"{path} is missing")
    rows, unexpected = 0, []  # streamed: this harness's own RSS bounds what it can measure
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows += 1
            if r["status"] == "failed" and r["task_id"] != EXPECTED_FAILING_TASK:
                why = r.get("error") or r.get("feedback") or ""  # the reference has no `error`
                unexpected.append(f"{r['task_id']} {r['trainer_id']}: {why[:200]}")
    if rows != jobs:
        raise HarnessError(f"{path}: {rows} rows, expected {jobs}")
    if unexpected:
        raise HarnessError(f"{path}: {len(unexpected)} unexpected failed job(s), e.g. {unexpected[0]}")


def run_ours(binary, config, jobs, work, label):
    """One measured run of ours into a fresh runs dir; returns the timing and the run dir."""
    runs = tempfile.mkdtemp(prefix=f"{label}-", dir=work)
    os.sync()  # write back the previous run's dirty pages so they do not land on this one
    m = timed([binary, "run", "--config", config, "--runs-dir", runs], ROOT, runs)
    if m["exit"] != EXPECTED_EXIT:
        raise HarnessError(f"{label}: exit {m['exit']} (expected {EXPECTED_EXIT})\n" + tail(runs + ".err"))
    run_dir = only_run_dir(runs)
    check_results(run_dir, jobs)
    m["jobs"], m["per_job_ms"] = jobs, 1000 * m["wall_s"] / jobs
    return m, run_dir


def summarize(samples):
    """Best (min) and median of each metric over the repetitions."""
    keys = ("wall_s", "user_s", "sys_s", "maxrss_mb")
    return {"n": len(samples),
            "best": {k: min(s[k] for s in samples) for k in keys},
            "median": {k: statistics.median(s[k] for s in samples) for k in keys},
            "rss_source": sorted({s["rss_source"] for s in samples}),
            "samples": samples}


def scaled_config(seeds, work):
    """configs/matrix_9x4x3.yaml with seeds 1..N and every other key as it is."""
    with open(CONFIG) as f:
        text = f.read()
    new, n = re.subn(r"^seeds: \[[^\]]*\]$", f"seeds: [{', '.join(map(str, range(1, seeds + 1)))}]",
                     text, flags=re.M)
    if n != 1:
        raise HarnessError(f"{CONFIG}: expected one `seeds: [...]` line, found {n}")
    path = os.path.join(work, f"matrix_9x4x{seeds}.yaml")
    with open(path, "w") as f:
        f.write(new)
    return path


# Run directories are deleted only after the last measurement: ext4 skips inodes freed in
# the last minutes when it allocates new ones (`recently_deleted`), so deleting 1,377 files
# between runs makes every later run pay a kernel scan that grows with what was deleted.
DELETE_AT_END = []


def remove(path, keep):
    if not keep:
        DELETE_AT_END.append(path)


def remove_now():
    for path in DELETE_AT_END:
        shutil.rmtree(path, ignore_errors=True)
    DELETE_AT_END.clear()


def git_revision(path):
    """HEAD of the repository holding path (read-only: no `git status`, which may write)."""
    out = subprocess.run(["git", "-C", path, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def measure(args, work):
    res = {}
    with open(CONFIG) as f:
        seeds_line = re.search(r"^seeds: \[([^\]]*)\]$", f.read(), re.M)
    if not seeds_line or len(seeds_line.group(1).split(",")) != BASE_SEEDS:
        raise HarnessError(f"{CONFIG}: expected {BASE_SEEDS} seeds ({BASE_JOBS} jobs)")

    # 1 and 2. The 108-job matrix and the filesystem floor: a copy of the same tree (same
    # files, sizes, filesystem; no fsync), interleaved so both see the same machine load.
    ours, floor = [], []
    for i in range(args.repeat):
        m, run_dir = run_ours(args.bin, CONFIG, BASE_JOBS, work, f"m108-{i}")
        ours.append(m)
        dst = os.path.join(work, f"floor-{i}")
        os.sync()
        f = timed(["cp", "-r", run_dir, dst], ROOT, dst)
        if f["exit"] != 0:
            raise HarnessError(f"cp -r exited {f['exit']}\n" + tail(dst + ".err"))
        floor.append(f)
        files = sum(len(fs) for _, _, fs in os.walk(run_dir))
        remove(dst, args.keep)
        remove(os.path.dirname(run_dir), args.keep)
    res["m108"], res["floor"] = summarize(ours), summarize(floor)
    res["floor"]["files"] = files

    # 3. The Python reference, same config (it exits 0 even when jobs fail).
    ref = os.environ.get("TRACE_BENCH_REFERENCE")
    if ref:
        ref_samples = []
        for i in range(args.reference_repeat):
            runs = tempfile.mkdtemp(prefix=f"ref-{i}-", dir=work)
            cwd = tempfile.mkdtemp(prefix=f"ref-cwd-{i}-", dir=work)
            os.sync()
            # cwd = an empty dir, so its relative defaults (--root, .env lookup) pick up nothing
            m = timed([ref, "run", "--config", CONFIG, "--runs-dir", runs] + REFERENCE_ARGS, cwd, runs)
            if m["exit"] != 0:
                raise HarnessError(f"reference: exit {m['exit']}\n" + tail(runs + ".err"))
            check_results(only_run_dir(runs), BASE_JOBS)
            ref_samples.append(m)
            remove(runs, args.keep)
            remove(cwd, args.keep)
        res["reference"] = summarize(ref_samples)
        res["reference"]["command"] = " ".join([ref, "run", "--config", CONFIG, "--runs-dir", "<tmp>"] + REFERENCE_ARGS)

    # 4. Scale: one run each (a 10,008-job run takes minutes; the 108 one is best of N).
    for label, seeds in SCALE_SEEDS.items():
        if args.quick and label == "10k":
            continue
        jobs = BASE_JOBS // BASE_SEEDS * seeds
        m, run_dir = run_ours(args.bin, scaled_config(seeds, work), jobs, work, f"m{label}")
        remove(os.path.dirname(run_dir), args.keep)
        res[f"m{label}"] = m
    return res


def targets(res, quick):
    """(name, value, comparison, target, met) for each target that was measured."""
    best108 = res["m108"]["best"]
    out = []
    if "reference" in res:
        v = res["reference"]["best"]["wall_s"] / best108["wall_s"]
        out.append(("reference/ours wall, 108 jobs", v, ">=", REFERENCE_SPEEDUP_MIN, v >= REFERENCE_SPEEDUP_MIN))
    v = best108["wall_s"] / res["floor"]["best"]["wall_s"]
    out.append(("ours/floor wall, 108 jobs", v, "<=", FLOOR_RATIO_MAX, v <= FLOOR_RATIO_MAX))
    big = "m1k" if quick else "m10k"
    v = res[big]["per_job_ms"] / (1000 * best108["wall_s"] / BASE_JOBS)
    out.append((f"per-job({res[big]['jobs']:,})/per-job(108)" + (" [--quick]" if quick else ""),
                v, "<=", PER_JOB_RATIO_MAX, v <= PER_JOB_RATIO_MAX))
    if not quick:
        v = res["m10k"]["maxrss_mb"] / res["m1k"]["maxrss_mb"]
        out.append(("RSS(10,008)/RSS(1,008)", v, "<=", RSS_RATIO_MAX, v <= RSS_RATIO_MAX))
    return out


def report(res, info, tgts, quick):
    print("trace-bench throughput  (bench/throughput.py)")
    for k, v in info.items():
        print(f"  {k:<18} {v}")
    print()
    print(f"{'measurement':<34}{'wall s':>9}{'user s':>9}{'sys s':>9}{'RSS MB':>9}{'ms/job':>9}")

    def row(name, m, jobs=None, src=None):
        per = f"{1000 * m['wall_s'] / jobs:9.3f}" if jobs else f"{'':>9}"
        mark = "*" if "VmHWM poll" in (src or [m.get("rss_source")]) else " "
        print(f"{name:<34}{m['wall_s']:9.3f}{m['user_s']:9.3f}{m['sys_s']:9.3f}{m['maxrss_mb']:8.1f}{mark}{per}")

    n = res["m108"]["n"]
    src = res["m108"]["rss_source"]
    row(f"ours 108 jobs, best of {n}", res["m108"]["best"], BASE_JOBS, src)
    row(f"ours 108 jobs, median of {n}", res["m108"]["median"], BASE_JOBS, src)
    row(f"cp -r floor ({res['floor']['files']:,} files), best", res["floor"]["best"], None,
        res["floor"]["rss_source"])
    if "reference" in res:
        r = res["reference"]
        row(f"reference 108 jobs, best of {r['n']}", r["best"], BASE_JOBS, r["rss_source"])
        print(f"  ({r['command']})")
    else:
        print("reference: not run (set TRACE_BENCH_REFERENCE to its trace-bench executable)")
    for label in SCALE_SEEDS:
        if f"m{label}" in res:
            m = res[f"m{label}"]
            row(f"ours {m['jobs']:,} jobs", m, m["jobs"])
    if quick:
        print("ours 10,008 jobs: skipped (--quick)")
    print("RSS* = sampled VmHWM (10 ms): the child was smaller than this harness, whose own peak "
          "an exec'd child's ru_maxrss inherits")
    print("\ntargets")
    for name, v, op, t, ok in tgts:
        print(f"  {name:<40}{v:9.2f}  {op} {t:<6} {'PASS' if ok else 'MISS'}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=os.path.join(ROOT, "target/release/trace-bench"))
    p.add_argument("--repeat", type=int, default=5, help="repetitions of the 108-job run and the floor")
    p.add_argument("--reference-repeat", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="skip the 10,008-job run")
    p.add_argument("--json", metavar="PATH", help="write every number as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temporary run directories")
    args = p.parse_args()
    args.bin = os.path.abspath(args.bin)
    ref = os.environ.get("TRACE_BENCH_REFERENCE")
    for path, what in ((args.bin, "trace-bench (build it, or pass --bin)"), (ref, "TRACE_BENCH_REFERENCE")):
        if path is not None and not os.access(path, os.X_OK):
            print(f"error: {path} is not an executable: {what}", file=sys.stderr)
            return 2

    info = {"load avg (start)": "%.2f %.2f %.2f" % os.getloadavg(), "cpus": os.cpu_count(),
            "binary": args.bin, "binary size": f"{os.path.getsize(args.bin) / 1e6:.1f} MB",
            "binary built": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(args.bin))),
            "git (binary repo)": git_revision(os.path.dirname(args.bin)), "git (bench)": git_revision(ROOT)}
    # Same filesystem as the repo, so the floor copies where ours writes.
    base = os.path.join(ROOT, "target/bench-throughput")
    os.makedirs(base, exist_ok=True)
    work = tempfile.mkdtemp(dir=base)
    start = time.monotonic()
    try:
        # A private copy: a rebuild during the bench must not mix two binaries in one report.
        shutil.copy2(args.bin, os.path.join(work, "trace-bench"))
        args.bin = os.path.join(work, "trace-bench")
        res = measure(args, work)
    except (HarnessError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        remove(work, args.keep)
        remove_now()
        if not os.listdir(base):
            os.rmdir(base)
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
    info["load avg (end)"] = "%.2f %.2f %.2f" % os.getloadavg()
    info["harness peak RSS"] = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB"
    info["bench duration"] = f"{time.monotonic() - start:.1f} s"
    tgts = targets(res, args.quick)
    report(res, info, tgts, args.quick)
    floor_s = res["floor"]["best"]["wall_s"]
    if floor_s > SLOW_FLOOR_S:
        print(f"\nwarning: the filesystem floor took {floor_s:.3f} s (> {SLOW_FLOOR_S} s): "
              "files were probably deleted here in the last minutes (ext4 recently_deleted) or the "
              "disk is busy; absolute times and the reference ratio are not representative")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "results": res, "quick": args.quick,
                       "targets": [dict(zip(("name", "value", "op", "target", "pass"), t)) for t in tgts]},
                      f, indent=2)
    return 0 if all(t[4] for t in tgts) else 1


if __name__ == "__main__":
    sys.exit(main())
