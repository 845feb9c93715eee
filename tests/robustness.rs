//! Runner robustness, done for real on the binary: kill -9 mid-run then resume, Ctrl-C
//! (once: graceful, twice: at once) then resume, a concurrent second run, a hung LLM call
//! past `job_timeout`, config drift on resume, `--resume failed`, fail_fast, and an
//! unwritable runs directory.
//!
//! Slow jobs come from `mode: real` against the loopback mock answering every call after
//! a fixed delay (cache off), so an interruption lands while jobs are in flight; the mock
//! always gives the same answer, so runs are deterministic and comparable.

mod common;
#[path = "../src/llm/mock_server.rs"]
#[allow(dead_code)]
mod mock_server;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Workspace, read_csv, read_json};
use mock_server::{MockServer, ScriptedResponse};
use predicates::str::contains;
use trace_bench::artifacts::jsonl::read_records;

const REPLY: &str =
    "<reasoning>Closer.</reasoning>\n<variable><name>value</name><value>2.5</value></variable>";

/// A mock answering every call after `delay`.
fn slow_server(delay: Duration) -> MockServer {
    let server = MockServer::start(vec![]).unwrap();
    server.set_default(ScriptedResponse::chat(REPLY, Some((50, 10))).with_delay(delay));
    server
}

/// `seeds` jobs of PrioritySearch (4 LLM calls each) in real mode against `server`.
fn real_config(ws: &Workspace, server: &MockServer, seeds: usize, extra: &str) -> PathBuf {
    let seeds: Vec<String> = (1..=seeds).map(|s| s.to_string()).collect();
    ws.config(
        "real.yaml",
        &common::real_config(
            &server.base_url(),
            &[],
            &format!(
                "seeds: [{}]\nmax_workers: 2\n{extra}tasks: [internal:numeric_param]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{{ps_steps: 4, ps_candidates: 1, ps_proposals: 1}}]\n",
                seeds.join(", ")
            ),
        ),
    )
}

/// Start `run` in the background (for signals).
fn spawn_run(ws: &Workspace, cfg: &Path, run_id: &str) -> Child {
    // A temp dir of its own, so a test can see what the run leaves there.
    let tmp = ws.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    Command::new(assert_cmd::cargo::cargo_bin("trace-bench"))
        .current_dir(ws.path())
        .env("TRACE_BENCH_CACHE_DIR", ws.path().join("llm-cache"))
        .env("TMPDIR", &tmp)
        .args(["run", "--config"])
        .arg(cfg)
        .args(["--run-id", run_id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start trace-bench")
}

/// Wait until at least `n` jobs of the run have finished (their meta says so).
fn wait_for_finished_jobs(run: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = std::fs::read_dir(run.join("jobs"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| {
                        std::fs::read_to_string(e.path().join("job_meta.json"))
                            .is_ok_and(|t| !t.contains("\"running\""))
                    })
                    .count()
            })
            .unwrap_or(0);
        if done >= n {
            return;
        }
        assert!(Instant::now() < deadline, "no job finished in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} failed");
}

/// results.csv without what legitimately differs between runs, keyed by job id.
fn stable_results(run: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let rows = common::stable_rows(run);
    let n = rows.len();
    let keyed: BTreeMap<_, _> = rows.into_iter().map(|r| (r["job_id"].clone(), r)).collect();
    assert_eq!(keyed.len(), n, "a job id appears twice in results.csv");
    keyed
}

fn manifest_statuses(run: &Path) -> Vec<String> {
    read_json(&run.join("meta/manifest.json"))["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["status"].as_str().unwrap().to_string())
        .collect()
}

/// `run --config cfg --run-id run_id extra...`, for assertions.
fn run_as(ws: &Workspace, cfg: &Path, run_id: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
    ws.cmd()
        .args(["run", "--config"])
        .arg(cfg)
        .args(["--run-id", run_id])
        .args(extra)
        .assert()
}

fn resume(ws: &Workspace, cfg: &Path, run_id: &str, mode: &str) -> std::process::Output {
    ws.cmd()
        .args(["run", "--config"])
        .arg(cfg)
        .args(["--run-id", run_id, "--resume", mode])
        .output()
        .unwrap()
}

#[test]
fn kill_9_mid_run_then_resume_equals_an_uninterrupted_run() {
    let ws = Workspace::new();
    let server = slow_server(Duration::from_millis(60));
    let cfg = real_config(&ws, &server, 6, "");
    run_as(&ws, &cfg, "whole", &[]).success();

    let run = ws.path().join("runs/killed");
    let mut child = spawn_run(&ws, &cfg, "killed");
    wait_for_finished_jobs(&run, 1);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let statuses = manifest_statuses(&run);
    assert!(
        statuses.iter().any(|s| s == "pending"),
        "the kill must land mid-run: {statuses:?}"
    );
    // Killed again while resuming, at other moments (some during start-up writes).
    for delay_ms in [5, 40, 150, 300] {
        let mut child = spawn_run(&ws, &cfg, "killed");
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // Whatever was interrupted is readable: at most a torn last event line.
    for entry in std::fs::read_dir(run.join("jobs")).unwrap() {
        let events = entry.unwrap().path().join("events.jsonl");
        if events.exists() {
            read_records::<trace_bench::events::Event>(&events).unwrap();
        }
    }
    // The lock file of the killed process is left behind and taken over.
    assert!(run.join("meta/run.lock").exists());

    let out = resume(&ws, &cfg, "killed", "auto");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("took over the lock"));
    assert_eq!(
        stable_results(&run),
        stable_results(&ws.path().join("runs/whole"))
    );
    let statuses = manifest_statuses(&run);
    assert!(
        statuses.iter().all(|s| s == "ok" || s == "reused"),
        "{statuses:?}"
    );
    assert!(statuses.iter().any(|s| s == "reused"), "{statuses:?}");
    // Every job directory holds exactly one attempt: one TensorBoard file, one start.
    for entry in std::fs::read_dir(run.join("jobs")).unwrap() {
        let dir = entry.unwrap().path();
        assert_eq!(std::fs::read_dir(dir.join("tb")).unwrap().count(), 1);
        let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
        assert_eq!(events.matches("\"job_started\"").count(), 1);
    }
}

#[test]
fn ctrl_c_cancels_with_exit_130_and_the_run_resumes() {
    let ws = Workspace::new();
    let server = slow_server(Duration::from_millis(60));
    let cfg = real_config(&ws, &server, 6, "");
    run_as(&ws, &cfg, "whole", &[]).success();

    let child = spawn_run(&ws, &cfg, "interrupted");
    let run = ws.path().join("runs/interrupted");
    wait_for_finished_jobs(&run, 1);
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("cancelling"), "{stderr}");
    let statuses = manifest_statuses(&run);
    assert!(statuses.iter().any(|s| s == "ok"), "{statuses:?}");
    assert!(statuses.iter().any(|s| s == "cancelled"), "{statuses:?}");
    let manifest = read_json(&run.join("meta/manifest.json"));
    assert!(manifest["finished_at"].is_string(), "manifest written");
    assert!(run.join("summary.json").is_file());
    assert!(!run.join("meta/run.lock").exists(), "lock released");

    // `failed` reruns only failed/timed-out jobs: the cancelled ones stay unfinished, and
    // the exit code says so.
    let out = resume(&ws, &cfg, "interrupted", "failed");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("have no finished result"));

    let out = resume(&ws, &cfg, "interrupted", "auto");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stable_results(&run),
        stable_results(&ws.path().join("runs/whole"))
    );
}

#[test]
fn a_second_ctrl_c_stops_at_once_and_leaves_a_resumable_run() {
    let ws = Workspace::new();
    // Calls take 2 s: after the first Ctrl-C the running jobs would need that long to
    // end their step, so a prompt exit can only come from the second one.
    let server = slow_server(Duration::from_secs(2));
    let cfg = real_config(&ws, &server, 4, "");
    let child = spawn_run(&ws, &cfg, "twice");
    let run = ws.path().join("runs/twice");
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.requests().len() < 2 {
        assert!(Instant::now() < deadline, "the jobs never called the LLM");
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&child, "-INT");
    std::thread::sleep(Duration::from_millis(100));
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stopped at once"), "{stderr}");
    // It did not wait for the running jobs to end their step: a run that ends the
    // ordinary way writes its run-level files, and these are not there.
    assert!(!run.join("results.csv").exists());

    server.set_default(ScriptedResponse::chat(REPLY, Some((50, 10))));
    let out = resume(&ws, &cfg, "twice", "auto");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results = stable_results(&run);
    assert_eq!(results.len(), 4);
    assert!(results.values().all(|r| r["status"] == "ok"));
}

#[test]
fn a_second_concurrent_run_is_refused() {
    let ws = Workspace::new();
    let server = slow_server(Duration::from_millis(100));
    let cfg = real_config(&ws, &server, 4, "");
    let mut first = spawn_run(&ws, &cfg, "busy");
    let lock = ws.path().join("runs/busy/meta/run.lock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lock.exists() {
        assert!(
            Instant::now() < deadline,
            "the first run never took its lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    run_as(&ws, &cfg, "busy", &[])
        .code(2)
        .stderr(contains("is in use by another trace-bench run"))
        .stderr(contains(format!("pid {}", first.id())));
    let status = first.wait().unwrap();
    assert!(status.success(), "the first run is not disturbed");
    assert_eq!(stable_results(&ws.path().join("runs/busy")).len(), 4);
}

#[test]
fn a_hung_llm_call_is_cut_at_job_timeout_and_other_jobs_go_on() {
    let ws = Workspace::new();
    let server = MockServer::start(vec![
        ScriptedResponse::chat(REPLY, Some((50, 10))).with_delay(Duration::from_secs(30)),
    ])
    .unwrap();
    server.set_default(ScriptedResponse::chat(REPLY, Some((50, 10))));
    let cfg = real_config(&ws, &server, 3, "job_timeout: 1.5\n");
    let out = ws
        .cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--run-id", "hung"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a timeout is a failure");
    let (_, rows) = read_csv(&ws.path().join("runs/hung/results.csv"));
    let timed_out: Vec<_> = rows.iter().filter(|r| r["status"] == "timeout").collect();
    assert_eq!(timed_out.len(), 1, "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r["status"] == "ok").count(), 2);
    let t = &timed_out[0];
    let secs: f64 = t["time_seconds"].parse().unwrap();
    assert!(
        (1.5..3.5).contains(&secs),
        "stopped {secs}s into a 1.5s limit"
    );
    assert_eq!(t["error_kind"], "timeout");
    assert!(t["error"].contains("job_timeout of 1.5s"), "{}", t["error"]);
    let manifest = read_json(&ws.path().join("runs/hung/meta/manifest.json"));
    assert!(
        manifest["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["status"] == "timeout" && j["reason"].as_str().unwrap().contains("1.5s"))
    );
}

const STUB_MIXED: &str = "mode: stub\nseeds: [1, 2]\nmax_workers: 2\ntasks: [internal:numeric_param, internal:non_trainable]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 2}]\n";

#[test]
fn resume_with_a_changed_knob_is_refused_naming_it() {
    let ws = Workspace::new();
    let cfg = ws.config("a.yaml", STUB_MIXED);
    run_as(&ws, &cfg, "r", &[]).code(1);
    let changed = ws.config("b.yaml", &STUB_MIXED.replace("ps_steps: 2", "ps_steps: 3"));
    run_as(&ws, &changed, "r", &[])
        .code(2)
        .stderr(contains("refusing to resume"))
        .stderr(contains("trainers[0].params_variants[0].ps_steps: 2 -> 3"));
    // Invocation settings may change; --force reruns everything with the new config.
    run_as(&ws, &cfg, "r", &["--max-workers", "1"]).code(1);
    run_as(&ws, &changed, "r", &["--force"])
        .code(1)
        .stdout(contains("(4 executed, 0 reused, 2 failed)"));
}

#[test]
fn resume_failed_reruns_exactly_the_failed_jobs() {
    let ws = Workspace::new();
    let cfg = ws.config("a.yaml", STUB_MIXED);
    run_as(&ws, &cfg, "r", &[]).code(1);
    let run = ws.path().join("runs/r");
    let before = stable_results(&run);
    let out = resume(&ws, &cfg, "r", "failed");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("(2 executed, 2 reused, 2 failed)"),
        "{stdout}"
    );
    let manifest = read_json(&run.join("meta/manifest.json"));
    for j in manifest["jobs"].as_array().unwrap() {
        let expected = if j["task_id"] == "internal:non_trainable" {
            "failed"
        } else {
            "reused"
        };
        assert_eq!(j["status"], expected, "{j}");
    }
    assert_eq!(stable_results(&run), before, "same rows, none duplicated");
    // auto keeps ok jobs and reruns the failed ones again.
    let out = resume(&ws, &cfg, "r", "auto");
    assert!(String::from_utf8_lossy(&out.stdout).contains("(2 executed, 2 reused, 2 failed)"));
}

#[test]
fn fail_fast_stops_scheduling_after_the_first_failure() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "ff.yaml",
        "mode: stub\nseeds: [1, 2, 3]\nmax_workers: 1\nfail_fast: true\ntasks: [internal:non_trainable, internal:numeric_param]\ntrainers: [PrioritySearch]\n",
    );
    run_as(&ws, &cfg, "ff", &[]).code(1);
    let statuses = manifest_statuses(&ws.path().join("runs/ff"));
    assert_eq!(statuses[0], "failed");
    assert!(
        statuses[1..].iter().all(|s| s == "not_executed"),
        "{statuses:?}"
    );
    let manifest = read_json(&ws.path().join("runs/ff/meta/manifest.json"));
    assert_eq!(manifest["jobs"][1]["reason"], "fail_fast_stopped");
}

#[test]
fn an_unwritable_runs_dir_is_a_clear_error_with_exit_2() {
    let ws = Workspace::new();
    std::fs::write(ws.path().join("blocker"), "a file, not a directory").unwrap();
    let cfg = ws.config(
        "io.yaml",
        "mode: stub\nruns_dir: blocker/runs\ntasks: [internal:numeric_param]\ntrainers: [NoOp]\n",
    );
    ws.cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .assert()
        .code(2)
        .stderr(contains("blocker/runs"))
        .stderr(contains("cannot"));
}

/// A user task folder whose evaluator is `score.sh` (it records its pids next to itself).
fn command_task(ws: &Workspace, score_sh: &str) -> PathBuf {
    let dir = ws.path().join("mytasks/demo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("task.yaml"),
        "id: demo:hang\ndescription: A number scored by a shell script.\nobjective: Make x equal 3.\nparameters:\n  - {name: x, kind: number, initial: 0.0}\nsplits:\n  train: [{input: null, info: 3}]\nevaluator:\n  kind: command\n  command: [sh, '{task_dir}/score.sh']\n  timeout_seconds: 60\n  failure_score: -1000\n",
    )
    .unwrap();
    std::fs::write(dir.join("score.sh"), score_sh).unwrap();
    dir
}

/// A scorer that records its pid and a background child's in `pids`, then hangs.
const HANGING_SCORER: &str =
    "d=$(dirname \"$0\"); echo $$ >> \"$d/pids\"; sleep 30 & echo $! >> \"$d/pids\"; wait\n";

fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn a_hung_evaluator_is_killed_at_job_timeout_with_no_process_left() {
    let ws = Workspace::new();
    let dir = command_task(&ws, HANGING_SCORER);
    let cfg = ws.config(
        "hang.yaml",
        "tasks_dir: mytasks\nmode: stub\njob_timeout: 1.5\ntasks: [demo:hang]\ntrainers: [PrioritySearch]\n",
    );
    run_as(&ws, &cfg, "hang", &[]).code(1);
    let (_, rows) = read_csv(&ws.path().join("runs/hang/results.csv"));
    assert_eq!(rows[0]["status"], "timeout");
    let secs: f64 = rows[0]["time_seconds"].parse().unwrap();
    assert!(
        (1.5..3.5).contains(&secs),
        "stopped {secs}s into a 1.5s limit"
    );
    std::thread::sleep(Duration::from_millis(200));
    let pids = std::fs::read_to_string(dir.join("pids")).unwrap();
    assert!(pids.lines().count() >= 2, "{pids}");
    for pid in pids.lines() {
        assert!(!alive(pid), "evaluator process {pid} survived the job");
    }
}

#[test]
fn a_command_task_from_tasks_dir_runs_end_to_end() {
    let ws = Workspace::new();
    command_task(
        &ws,
        r#"x=$(sed -n 's/.*"x":\([-0-9.e+]*\).*/\1/p' | head -n 1)
awk -v x="$x" 'BEGIN { d = x - 3; if (d < 0) d = -d; printf "{\"score\": %s, \"feedback\": \"x=%s\"}\n", -d, x }'
"#,
    );
    ws.stdout_of(&["--tasks-dir", "mytasks", "list-tasks"])
        .contains("demo:hang")
        .then_some(())
        .expect("list-tasks shows the user task");
    let cfg = ws.config(
        "cmd.yaml",
        "mode: stub\nseeds: [1]\ntasks: [demo:hang]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 2}]\n",
    );
    ws.cmd()
        .args(["--tasks-dir", "mytasks", "run", "--config"])
        .arg(&cfg)
        .args(["--run-id", "cmd"])
        .assert()
        .success();
    let (_, rows) = read_csv(&ws.path().join("runs/cmd/results.csv"));
    assert_eq!(rows[0]["status"], "ok");
    assert_eq!(rows[0]["score_val_initial"], "-3.0");
    assert!(
        rows[0]["feedback"].contains("x=0"),
        "{}",
        rows[0]["feedback"]
    );
    assert!(rows[0]["resolved_guide"].starts_with("command:sh "));
}

#[test]
fn a_second_ctrl_c_kills_running_evaluators_too() {
    let ws = Workspace::new();
    let dir = command_task(&ws, HANGING_SCORER);
    let cfg = ws.config(
        "hang.yaml",
        "tasks_dir: mytasks\nmode: stub\ntasks: [demo:hang]\ntrainers: [PrioritySearch]\n",
    );
    let child = spawn_run(&ws, &cfg, "hang");
    let pids = dir.join("pids");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&pids).map_or(0, |p| p.lines().count()) < 2 {
        assert!(Instant::now() < deadline, "the evaluator never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&child, "-INT");
    std::thread::sleep(Duration::from_millis(100));
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    // A process sent SIGKILL can take a moment to die on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(3);
    for pid in std::fs::read_to_string(&pids).unwrap().lines() {
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(pid), "evaluator process {pid} outlived trace-bench");
    }
    let left: Vec<_> = std::fs::read_dir(ws.path().join("tmp"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("trace-bench-"))
        .collect();
    assert!(left.is_empty(), "working directories left behind: {left:?}");
}

#[test]
fn a_config_value_equal_to_an_env_secret_is_redacted_and_the_run_still_resumes() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "sec.yaml",
        "seeds: [1]\ntags: [team-alpha-experiments]\ntasks: [internal:numeric_param]\ntrainers: [NoOp]\n",
    );
    for expected in ["(1 executed, 0 reused", "(0 executed, 1 reused"] {
        ws.cmd()
            .env("MY_TOKEN", "team-alpha-experiments")
            .args(["run", "--config"])
            .arg(&cfg)
            .args(["--run-id", "sec"])
            .assert()
            .success()
            .stdout(contains(expected));
    }
    let snapshot =
        std::fs::read_to_string(ws.path().join("runs/sec/meta/config.snapshot.yaml")).unwrap();
    assert!(snapshot.contains("- \"***REDACTED***\""), "{snapshot}");
    assert!(!snapshot.contains("team-alpha-experiments"));
}

#[test]
fn an_unwritable_runs_directory_says_so_and_suggests_runs_dir() {
    let ws = Workspace::new();
    // Nobody, not even root, may create folders in /sys.
    ws.cmd()
        .args(["run", "--runs-dir", "/sys/trace-bench-no-runs-here"])
        .assert()
        .code(2)
        .stderr(contains("is not writable"))
        .stderr(contains("--runs-dir"))
        .stderr(predicates::prelude::PredicateBooleanExt::not(contains(
            "wait for it",
        )));
}

/// A job stopped at its deadline keeps what it reached: the best parameters scored before
/// the stop, their score and state files, while its status and reason stay `timeout`.
#[test]
fn a_job_stopped_at_its_deadline_keeps_its_best_result() {
    let ws = Workspace::new();
    let server = slow_server(Duration::from_millis(150));
    let cfg = ws.config(
        "partial.yaml",
        &common::real_config(
            &server.base_url(),
            &[],
            "seeds: [1]\njob_timeout: 2.0\ntasks: [internal:numeric_param]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 500, ps_candidates: 1, ps_proposals: 1}]\n",
        ),
    );
    run_as(&ws, &cfg, "partial", &[]).code(1);
    let run = ws.path().join("runs/partial");
    let (_, rows) = read_csv(&run.join("results.csv"));
    let r = &rows[0];
    assert_eq!(r["status"], "timeout", "{r:?}");
    assert!(r["error"].contains("job_timeout of 2s"), "{r:?}");
    let steps: u64 = r["steps"].parse().unwrap();
    assert!(steps >= 1, "some steps ran before the deadline: {r:?}");
    let initial: f64 = r["score_val_initial"].parse().unwrap();
    let best: f64 = r["score_val"].parse().unwrap();
    assert!(best >= initial, "{r:?}");
    let job = run.join("jobs").join(&r["job_id"]);
    for state in ["initial_state.yaml", "best_state.yaml", "final_state.yaml"] {
        assert!(job.join("artifacts").join(state).is_file(), "{state}");
    }
    // The best state is a parameter set the job really scored: the step records hold it.
    let best_state = std::fs::read_to_string(job.join("artifacts/best_state.yaml")).unwrap();
    assert!(best_state.contains("x"), "{best_state}");
}
