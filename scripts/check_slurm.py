"""Compare the results.csv of runs made on Slurm and in shards with a local run's: the
same jobs with the same statuses and numbers (run ids and times aside)."""

import csv
import json
import sys

IGNORED = {"run_id", "time_seconds", "spent_seconds", "started_at", "finished_at"}


def rows(run_dir):
    with open(f"{run_dir}/results.csv", newline="") as f:
        return {r["job_id"]: {k: v for k, v in r.items() if k not in IGNORED} for r in csv.DictReader(f)}


def main():
    local, *others = sys.argv[1:]
    want = rows(local)
    assert len(want) == 48, f"local run has {len(want)} jobs"
    statuses = sorted(r["status"] for r in want.values())
    assert statuses.count("failed") == 12 and statuses.count("ok") == 36, statuses
    for run in others:
        got = rows(run)
        assert got.keys() == want.keys(), f"{run}: other job ids"
        for job, r in want.items():
            diff = {k: (v, got[job].get(k)) for k, v in r.items() if got[job].get(k) != v}
            assert not diff, f"{run} job {job}: {diff}"
        manifest = json.load(open(f"{run}/meta/manifest.json"))
        pending = [j["job"]["job_id"] for j in manifest["jobs"] if j["status"] == "pending"]
        assert not pending, f"{run}: manifest still pending for {pending}"
        print(f"{run}: 48 jobs equal the local run")


main()
