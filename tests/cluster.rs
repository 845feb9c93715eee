//! Runs beyond one process: a run driven through the library with no CLI, shards of one
//! run directory merged by `report`, `status`, and `run --executor slurm` against a
//! stand-in `sbatch` (what is submitted, what is written, what is left for a resume). The
//! real Slurm controller is exercised by scripts/check_slurm.sh in CI.

mod common;

use std::path::Path;

use common::{Workspace, files_under, read_csv, read_json, stable_rows};
use trace_bench::backend::LlmFactory;
use trace_bench::config::load::Source;
use trace_bench::events::{Event, EventSink, Fanout, RunEvent, SinkError};
use trace_bench::matrix::Job;
use trace_bench::registry::Registry;
use trace_bench::results::job_files::JobFilesSink;
use trace_bench::runner::{
    Access, CliOverrides, ExecEnv, Executor, Launched, LocalExecutor, OpenRun, Plan, prepare,
};
use trace_bench::stop::Cancel;

const MATRIX: &str = "seeds: [1, 2, 3]\ntasks: [internal:numeric_param, internal:code_param]\ntrainers: [PrioritySearch, NoOp]\n";

/// Records the run-level events it sees.
#[derive(Default)]
struct RunEvents(std::sync::Mutex<Vec<RunEvent>>);

impl EventSink for RunEvents {
    fn on_event(&self, _: &Job, _: &Event) -> Result<(), SinkError> {
        Ok(())
    }
    fn on_run_event(&self, event: &RunEvent) -> Result<(), SinkError> {
        self.0.lock().unwrap().push(event.clone());
        Ok(())
    }
}

/// A sink that always fails: fatal (the default) or optional.
struct Broken(trace_bench::events::SinkPolicy);

impl EventSink for Broken {
    fn on_event(&self, _: &Job, _: &Event) -> Result<(), SinkError> {
        Err(SinkError::io(
            "exporting",
            std::io::Error::other("server down"),
        ))
    }
    fn policy(&self) -> trace_bench::events::SinkPolicy {
        self.0
    }
    fn name(&self) -> &str {
        "broken"
    }
}

fn library_run(
    dir: &Path,
    extra: Vec<Box<dyn EventSink>>,
) -> (Result<Launched, trace_bench::runner::RunError>, Vec<String>) {
    let source = Source {
        name: "lib.yaml".into(),
        text: MATRIX.into(),
    };
    let registry = Registry::builtin();
    let cli = CliOverrides {
        runs_dir: Some(dir.join("runs").display().to_string()),
        run_id: Some("lib".into()),
        ..CliOverrides::default()
    };
    let prepared = prepare(&source, &[], &cli, false, &registry);
    assert!(prepared.is_ok(), "{}", prepared.diagnostics.render());
    let plan = Plan::new(
        prepared.spec.unwrap(),
        prepared.jobs,
        "",
        std::time::SystemTime::now(),
    );
    let run = OpenRun::open(plan, Access::Exclusive, false, dir).unwrap();
    let mut sinks: Vec<Box<dyn EventSink>> = vec![Box::new(JobFilesSink::new(
        run.plan.run_dir.clone(),
        run.plan.run_id.as_str(),
        "stub",
        registry.clone(),
        run.plan.spec.config.effective_durability(),
    ))];
    sinks.extend(extra);
    let fanout = Fanout::new(sinks);
    let llm = LlmFactory::stub();
    let cancel = Cancel::new();
    let env = ExecEnv {
        registry: &registry,
        sink: &fanout,
        llm: &llm,
        cancel: &cancel,
    };
    let launched = LocalExecutor::all().launch(&run, &env);
    (launched, fanout.warnings())
}

#[test]
fn a_run_is_a_library_value() {
    let ws = Workspace::new();
    let events = std::sync::Arc::new(RunEvents::default());
    struct Shared(std::sync::Arc<RunEvents>);
    impl EventSink for Shared {
        fn on_event(&self, j: &Job, e: &Event) -> Result<(), SinkError> {
            self.0.on_event(j, e)
        }
        fn on_run_event(&self, e: &RunEvent) -> Result<(), SinkError> {
            self.0.on_run_event(e)
        }
    }
    let (launched, warnings) = library_run(
        ws.path(),
        vec![
            Box::new(Shared(events.clone())),
            Box::new(Broken(trace_bench::events::SinkPolicy::Warn)),
        ],
    );
    let Ok(Launched::Finished(report)) = launched else {
        panic!("{launched:?}")
    };
    assert_eq!(report.executed(), 12);
    let summary = report
        .summary
        .expect("an exclusive run writes its run files");
    assert_eq!(summary.rows(), 12);
    // The optional sink's failure is one warning, not a failed run.
    assert_eq!(warnings, ["broken: exporting: server down"]);
    let seen = events.0.lock().unwrap().clone();
    assert!(
        matches!(
            &seen[0],
            RunEvent::RunStarted {
                jobs: 12,
                selected: 12,
                ..
            }
        ),
        "{seen:?}"
    );
    assert!(matches!(
        seen.last(),
        Some(RunEvent::RunFinished {
            executed: 12,
            failed: 0,
            incomplete: 0,
            ..
        })
    ));
    let (_, rows) = read_csv(&ws.path().join("runs/lib/results.csv"));
    assert_eq!(rows.len(), 12);
    // Resumed: every job is kept, and said so.
    let (launched, _) = library_run(ws.path(), vec![Box::new(Shared(events.clone()))]);
    let Ok(Launched::Finished(report)) = launched else {
        panic!()
    };
    assert_eq!(report.reused(), 12);
    let reused = events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, RunEvent::JobReused { .. }))
        .count();
    assert_eq!(reused, 12);
    // A fatal sink's failure stops the run with the error.
    let ws = Workspace::new();
    let (launched, _) = library_run(
        ws.path(),
        vec![Box::new(Broken(trace_bench::events::SinkPolicy::Fatal))],
    );
    assert!(launched.unwrap_err().to_string().contains("server down"));
}

#[test]
fn a_job_directory_without_its_meta_is_running_and_resume_reruns_it() {
    let ws = Workspace::new();
    let cfg = ws.config("m.yaml", MATRIX);
    let run = |args: &[&str]| {
        ws.cmd()
            .args(["run", "--config"])
            .arg(&cfg)
            .args(["--run-id", "r"])
            .args(args)
            .assert()
    };
    run(&[]).success();
    let run_dir = ws.path().join("runs/r");
    let before = stable_rows(&run_dir);
    // A job killed mid-run: its directory exists, its job_meta.json (written when it
    // finishes) does not.
    let mut jobs: Vec<_> = std::fs::read_dir(run_dir.join("jobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    jobs.sort();
    std::fs::remove_file(jobs[0].join("job_meta.json")).unwrap();
    ws.cmd()
        .arg("status")
        .arg(&run_dir)
        .assert()
        .code(1)
        .stdout(predicates::str::contains("  running      1"))
        .stdout(predicates::str::contains("1 job(s) left"));
    run(&["--resume", "auto"])
        .success()
        .stdout(predicates::str::contains("(1 executed, 11 reused"));
    assert_eq!(stable_rows(&run_dir), before);
}

#[test]
fn shards_of_one_run_directory_merge_into_the_local_result() {
    let ws = Workspace::new();
    let cfg = ws.config("m.yaml", MATRIX);
    let run = |args: &[&str]| {
        ws.cmd()
            .args(["run", "--config"])
            .arg(&cfg)
            .args(args)
            .assert()
    };
    run(&["--run-id", "local"]).success();
    for shard in ["2/3", "1/3"] {
        run(&["--run-id", "sharded", "--shard", shard])
            .success()
            .stdout(predicates::str::contains(format!(
                "Shard {shard}: 4 executed"
            )));
    }
    let sharded = ws.path().join("runs/sharded");
    // Two of three shards: status names what is left and fails.
    ws.cmd()
        .args(["status"])
        .arg(&sharded)
        .assert()
        .code(1)
        .stdout(predicates::str::contains("not started  4"))
        .stdout(predicates::str::contains("4 job(s) left"));
    run(&["--run-id", "sharded", "--shard", "3/3"]).success();
    ws.cmd().arg("report").arg(&sharded).assert().success();
    assert_eq!(
        stable_rows(&sharded),
        stable_rows(&ws.path().join("runs/local"))
    );
    let manifest = read_json(&sharded.join("meta/manifest.json"));
    assert!(
        manifest["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["status"] == "ok")
    );
    ws.cmd()
        .args(["status"])
        .arg(&sharded)
        .assert()
        .success()
        .stdout(predicates::str::contains("ok           12"));
    // A shard needs a run id; a shard is I/N.
    run(&["--shard", "1/2"])
        .code(2)
        .stderr(predicates::str::contains("--shard needs --run-id"));
    run(&["--run-id", "x", "--shard", "3/2"])
        .code(2)
        .stderr(predicates::str::contains("is not a shard"));
}

/// A stand-in `sbatch` on PATH: records its arguments and the script, prints a job id.
fn fake_sbatch(ws: &Workspace) -> std::path::PathBuf {
    let bin = ws.path().join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("sbatch");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(ls {log}/args-* 2>/dev/null | wc -l)\nmkdir -p {log}\nfor a; do last=$a; done\ncp \"$last\" {log}/call-$n.sh\necho \"$@\" > {log}/args-$n\necho $((100 + n))\n",
            log = ws.path().join("sbatch-log").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn slurm_submission_writes_readable_scripts_and_resume_submits_only_what_is_left() {
    let ws = Workspace::new();
    let bin = fake_sbatch(&ws);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let cfg = ws.config(
        "m.yaml",
        &format!("{MATRIX}executor:\n  kind: slurm\n  jobs_per_task: 5\n  partition: cpu\n"),
    );
    let submit = |extra: &[&str]| {
        ws.cmd()
            .env("PATH", &path)
            .env("OPENAI_API_KEY", "sk-cluster-secret-77")
            .args(["run", "--config"])
            .arg(&cfg)
            .args([
                "--run-id",
                "arr",
                "--max-concurrent",
                "2",
                "--slurm-time",
                "00:30:00",
            ])
            .args(extra)
            .assert()
    };
    submit(&[]).success().stdout(predicates::str::contains(
        "12 job(s) as Slurm array 100 (3 task(s) of up to 5 job(s)); report job 101",
    ));
    let run_dir = ws.path().join("runs/arr");
    let sub = read_json(&run_dir.join("meta/slurm/submit-1/submission.json"));
    assert_eq!(sub["tasks"], 3);
    assert_eq!(sub["chunks"][2].as_array().unwrap().len(), 2);
    let array = std::fs::read_to_string(run_dir.join("meta/slurm/submit-1/array.sh")).unwrap();
    for line in [
        "#SBATCH --array=0-2%2",
        "#SBATCH --partition=cpu",
        "#SBATCH --time=00:30:00",
        "#SBATCH --export=ALL",
        "run-job",
        "--task-index \"$SLURM_ARRAY_TASK_ID\"",
    ] {
        assert!(array.contains(line), "{line} in\n{array}");
    }
    let report = std::fs::read_to_string(run_dir.join("meta/slurm/submit-1/report.sh")).unwrap();
    assert!(
        report.contains("#SBATCH --dependency=afterany:100"),
        "{report}"
    );
    assert!(report.contains(" report "), "{report}");
    // Nothing ran yet: status says so.
    ws.cmd()
        .arg("status")
        .arg(&run_dir)
        .env("PATH", &path)
        .assert()
        .code(1)
        .stdout(predicates::str::contains("not started  12"));
    // Task 1 runs its chunk here (what Slurm would start), from the submission's cwd.
    ws.cmd()
        .arg("run-job")
        .arg(&run_dir)
        .args(["--task-index", "1"])
        .assert()
        .success()
        .stdout(predicates::str::contains("task 1: 5 executed"));
    // A requeued task skips what it finished in this submission.
    ws.cmd()
        .arg("run-job")
        .arg(&run_dir)
        .args(["--task-index", "1"])
        .assert()
        .success()
        .stdout(predicates::str::contains("task 1: 0 executed, 5 kept"));
    ws.cmd()
        .arg("run-job")
        .arg(&run_dir)
        .args(["--task-index", "7"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("task index 7 is out of range"));
    // Resume submits only the 7 jobs left.
    submit(&["--resume", "auto"])
        .success()
        .stdout(predicates::str::contains(
            "7 job(s) as Slurm array 102 (2 task(s)",
        ));
    // The key is passed by name, never written.
    for entry in files_under(ws.path()) {
        let text = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&text).contains("sk-cluster-secret-77"),
            "secret in {}",
            entry.display()
        );
    }
}

#[test]
fn a_missing_sbatch_is_a_clear_error() {
    let ws = Workspace::new();
    let cfg = ws.config("m.yaml", MATRIX);
    ws.cmd()
        .env("PATH", "/nonexistent")
        .args(["run", "--executor", "slurm", "--config"])
        .arg(&cfg)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("`sbatch` was not found on PATH"));
    // Nothing was submitted: no run directory is left (tests/refusals.rs).
    assert!(!ws.path().join("runs").exists());
}

#[test]
fn a_bad_executor_block_is_a_located_config_error() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "m.yaml",
        &format!("{MATRIX}executor:\n  kind: kubernetes\n  jobs_per_task: 0\n  partiton: gpu\n"),
    );
    ws.cmd()
        .args(["validate", "--config"])
        .arg(&cfg)
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "`executor.kind` must be `local` or `slurm`",
        ))
        .stderr(predicates::str::contains("m.yaml:5:"))
        .stderr(predicates::str::contains(
            "`executor.jobs_per_task` must be a positive integer",
        ))
        .stderr(predicates::str::contains("partition"));
}

/// One exit-code rule for a plain run, a shard and an array task: a selection whose jobs
/// were all skipped measured nothing and exits 1, wherever it ran.
#[test]
fn all_skipped_jobs_exit_1_in_a_run_a_shard_and_an_array_task() {
    let ws = Workspace::new();
    let bin = fake_sbatch(&ws);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let skipped = "seeds: [1, 2]\ntasks: [veribench:smoke_placeholder]\ntrainers: [NoOp]\n";
    let cfg = ws.config("skip.yaml", skipped);
    let run = |args: &[&str]| {
        ws.cmd()
            .env("PATH", &path)
            .args(["run", "--config"])
            .arg(&cfg)
            .args(args)
            .assert()
    };
    let nothing = "no job ran: all 2 job(s) were skipped";
    run(&["--run-id", "plain"])
        .code(1)
        .stderr(predicates::str::contains(nothing));
    run(&["--run-id", "sharded", "--shard", "1/1"])
        .code(1)
        .stderr(predicates::str::contains(nothing));
    run(&[
        "--run-id",
        "arr",
        "--executor",
        "slurm",
        "--jobs-per-task",
        "2",
    ])
    .success();
    ws.cmd()
        .arg("run-job")
        .arg(ws.path().join("runs/arr"))
        .args(["--task-index", "0"])
        .assert()
        .code(1)
        .stdout(predicates::str::contains("task 0: 2 executed"))
        .stderr(predicates::str::contains(nothing));
    // A shard given no job has nothing wrong: it exits 0.
    let one = ws.config("one.yaml", &skipped.replace("[1, 2]", "[1]"));
    ws.cmd()
        .args(["run", "--config"])
        .arg(&one)
        .args(["--run-id", "few", "--shard", "2/2"])
        .assert()
        .success()
        .stdout(predicates::str::contains("Shard 2/2: 0 executed"));
}
