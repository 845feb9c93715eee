"""How fast `trace-bench ui` answers at scale (issue 32): a runs dir of 1,000 runs and one
run of 10,000 jobs, the pages timed over loopback. A benchmark, not a timed test.

    python3 bench/ui_scale.py [--bin PATH] [--runs 1000] [--jobs 10000] [--repeat 7]
                              [--json PATH] [--keep DIR]

The runs are made from one real stub run (the embedded smoke matrix, 24 jobs) as
`bench/throughput.py` would take too long to make 10,000 jobs: its job files are copied
under new job ids and seeds, and the manifest lists them, so every file the app reads has
the shape `run` writes. The 1,000 runs are finished runs of 24 jobs each (their job files
hard links, since only the manifest and `job_meta.json` are read for the list); the big
run's `results.json` files are real copies with their own ids and seeds, and `trace-bench
report` rebuilds its results.csv, leaderboard.csv and stats.json from them.

Each page is asked once right after the server starts (cold: nothing cached) and then
`--repeat` times (warm: the median). Exits 0 when the runs list and the big run's page
(summary + first jobs page) answer in under a second, cold and warm; 1 otherwise; 2 on a
harness error.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_S = 1.0


def default_bin():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    for profile in ("release", "debug"):
        p = os.path.join(target, profile, "trace-bench")
        if os.path.exists(p):
            return p
    return os.path.join(target, "release", "trace-bench")


def job_id(i):
    return f"{(i * 2654435761 + 0x5bd1e995) & 0xFFFFFFFFFFFF:012x}"


def make_runs(bin_path, work, n_runs, n_jobs):
    seed_dir = os.path.join(work, "seed")
    subprocess.run([bin_path, "run", "--runs-dir", seed_dir, "--run-id", "seed"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
    seed = os.path.join(seed_dir, "seed")
    manifest = json.load(open(os.path.join(seed, "meta", "manifest.json")))
    templates = manifest["jobs"]
    runs = os.path.join(work, "runs")
    os.makedirs(runs)

    t0 = time.perf_counter()
    for r in range(n_runs):
        rid = f"run-{r:04d}"
        d = os.path.join(runs, rid)
        os.makedirs(os.path.join(d, "meta"))
        m = dict(manifest)
        m["run_id"] = rid
        m["created_at"] = f"2026-01-01T00:{r // 60 % 60:02d}:{r % 60:02d}Z"
        with open(os.path.join(d, "meta", "manifest.json"), "w") as f:
            json.dump(m, f)
        for j in templates:
            jd = os.path.join(d, "jobs", j["job_id"])
            os.makedirs(jd)
            for name in ("job_meta.json", "results.json"):
                os.link(os.path.join(seed, "jobs", j["job_id"], name), os.path.join(jd, name))
    made_runs = time.perf_counter() - t0

    t0 = time.perf_counter()
    big = os.path.join(runs, "big")
    os.makedirs(os.path.join(big, "meta"))
    for f in os.listdir(os.path.join(seed, "meta")):
        if f != "manifest.json":
            shutil.copy(os.path.join(seed, "meta", f), os.path.join(big, "meta", f))
    cache = {}
    jobs = []
    for i in range(n_jobs):
        t = templates[i % len(templates)]
        rep = i // len(templates)
        jid = job_id(i)
        entry = dict(t, index=i, job_id=jid, seed=t["seed"] + 10 * rep)
        jobs.append(entry)
        if t["job_id"] not in cache:
            src = os.path.join(seed, "jobs", t["job_id"])
            cache[t["job_id"]] = (json.load(open(os.path.join(src, "job_meta.json"))),
                                  json.load(open(os.path.join(src, "results.json"))))
        meta, res = cache[t["job_id"]]
        jd = os.path.join(big, "jobs", jid)
        os.makedirs(jd)
        with open(os.path.join(jd, "job_meta.json"), "w") as f:
            json.dump(dict(meta, job_id=jid, job_index=i, seed=entry["seed"]), f)
        with open(os.path.join(jd, "results.json"), "w") as f:
            json.dump(dict(res, job_id=jid, job_index=i, seed=entry["seed"], run_id="big"), f)
    m = dict(manifest, run_id="big", created_at="2026-02-01T00:00:00Z", jobs=jobs)
    with open(os.path.join(big, "meta", "manifest.json"), "w") as f:
        json.dump(m, f)
    # The same run still going (no finished_at, every job pending in the manifest): the
    # app then reads each job's directory. Its jobs are the big run's (a symlink inside the
    # runs dir).
    live = os.path.join(runs, "live")
    os.makedirs(os.path.join(live, "meta"))
    pending = [dict(j, status="pending") for j in jobs]
    with open(os.path.join(live, "meta", "manifest.json"), "w") as f:
        json.dump(dict(m, run_id="live", finished_at=None, jobs=pending), f)
    os.symlink(os.path.join(big, "jobs"), os.path.join(live, "jobs"))
    t_report = time.perf_counter()
    subprocess.run([bin_path, "report", big], check=True, stdout=subprocess.DEVNULL)
    return runs, made_runs, t_report - t0, time.perf_counter() - t_report


def fetch(url):
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"{url}: {r.status}")
    return time.perf_counter() - start, body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=default_bin())
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json")
    ap.add_argument("--keep")
    a = ap.parse_args()
    if not os.path.exists(a.bin):
        print(f"ui_scale: no binary at {a.bin} (cargo build --release)", file=sys.stderr)
        return 2
    work = a.keep or tempfile.mkdtemp(prefix="ui-scale-")
    os.makedirs(work, exist_ok=True)
    server = None
    try:
        runs, t_runs, t_big, t_report = make_runs(a.bin, work, a.runs, a.jobs)
        print(f"made {a.runs} runs in {t_runs:.1f} s, the {a.jobs}-job run in {t_big:.1f} s "
              f"(+ `report` {t_report:.1f} s); binary {a.bin}")

        def start():
            p = subprocess.Popen([a.bin, "ui", "--port", "0", "--runs-dir", runs, "--read-only"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            for line in p.stdout:
                if line.startswith("open "):
                    return p, line[5:].strip()
            p.kill()
            raise RuntimeError("the server printed no URL")

        pages = [
            (f"runs list ({a.runs} runs, page 1)", "api/runs", True),
            ("runs list, searched", "api/runs?q=run-09", False),
            ("runs list, last page", "api/runs?page=19", False),
            (f"{a.jobs}-job run: summary, facets, leaderboard", "api/runs/big", True),
            (f"{a.jobs}-job run: jobs page 1 (50 rows)", "api/runs/big/jobs", True),
            (f"{a.jobs}-job run going: summary", "api/runs/live", True),
            (f"{a.jobs}-job run going: jobs page 1", "api/runs/live/jobs", True),
            (f"{a.jobs}-job run: jobs filtered, page 40", "api/runs/big/jobs?trainer=GEPA&page=40", False),
            (f"{a.jobs}-job run: causes of failure", "api/runs/big/failures", False),
            (f"{a.jobs}-job run: learning curves (SVG)", "api/runs/big/curves.svg?axis=step", False),
            (f"{a.jobs}-job run: anytime curves (SVG)", "api/runs/big/curves.svg?axis=metric_calls", False),
        ]
        rows, missed = [], []
        for name, path, gated in pages:
            # Cold: the first request of a fresh server (nothing cached, files in the page
            # cache as on any machine that just wrote them). A going run is read again at every request
            # (its job directories are stat'ed): the warm numbers say what a refresh costs.
            server, url = start()
            cold, body = fetch(url + path)
            warm = [fetch(url + path)[0] for _ in range(a.repeat)]
            med = statistics.median(warm)
            rows.append({"page": name, "path": path, "cold_s": cold, "warm_median_s": med,
                         "warm_max_s": max(warm), "bytes": len(body), "gated": gated})
            if gated and (cold >= TARGET_S or med >= TARGET_S):
                missed.append(name)
            server.terminate()
            server.wait()
            server = None
        w = max(len(r["page"]) for r in rows)
        print(f"{'page':<{w}}  {'cold':>8}  {'warm med':>8}  {'warm max':>8}  {'bytes':>9}")
        for r in rows:
            mark = "" if r["gated"] else "  (not gated)"
            print(f"{r['page']:<{w}}  {r['cold_s']:8.3f}  {r['warm_median_s']:8.3f}  "
                  f"{r['warm_max_s']:8.3f}  {r['bytes']:9d}{mark}")
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"runs": a.runs, "jobs": a.jobs, "target_s": TARGET_S, "pages": rows}, f,
                          indent=2)
        if missed:
            print(f"ui_scale: over {TARGET_S} s: {', '.join(missed)}")
            return 1
        print(f"ui_scale: every gated page under {TARGET_S} s, cold and warm")
        return 0
    except (subprocess.CalledProcessError, RuntimeError, OSError) as e:
        print(f"ui_scale: harness error: {e}", file=sys.stderr)
        return 2
    finally:
        if server:
            server.terminate()
            server.wait()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
