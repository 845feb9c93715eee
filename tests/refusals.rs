//! A run refused before its first job leaves no run directory behind (nor a runs directory
//! it created), and never deletes or alters an existing one: every refusal between reading
//! the config and the first job (MLflow, LLM settings, the run lock, a changed config, an
//! unreadable snapshot, Slurm, an unwritable runs directory). An `MLFLOW_TRACKING_URI`
//! inherited from the environment never stops a run.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{Workspace, files_under};
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

const ONE_JOB: &str = "seeds: [1]\ntasks: [internal:numeric_param]\ntrainers: [NoOp]\n";

/// Every file below `dir` and its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Run `run --config cfg args…` in `ws` with `env`; it must exit 2 with `message`.
fn refused(ws: &Workspace, cfg: &Path, args: &[&str], env: &[(&str, &str)], message: &str) {
    let mut cmd = ws.cmd();
    cmd.env_remove("MLFLOW_TRACKING_URI");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(["run", "--config"])
        .arg(cfg)
        .args(args)
        .assert()
        .code(2)
        .stderr(contains(message));
}

/// A refused new run leaves no `runs/` at all.
fn assert_nothing_left(ws: &Workspace) {
    let runs = ws.path().join("runs");
    assert!(
        !runs.exists(),
        "a refused run left {:?}",
        files_under(ws.path())
    );
}

/// An existing run directory (`runs/old`, one finished job), its files as they are.
fn existing_run(ws: &Workspace) -> (PathBuf, BTreeMap<PathBuf, Vec<u8>>) {
    let cfg = ws.config("old.yaml", ONE_JOB);
    let dir = ws.run_named(&cfg, "old");
    let before = tree(&dir);
    (dir, before)
}

#[test]
fn an_inherited_mlflow_uri_of_a_local_store_warns_once_and_the_run_goes_on() {
    let ws = Workspace::new();
    let cfg = ws.config("c.yaml", ONE_JOB);
    let with_block = ws.config("b.yaml", &format!("{ONE_JOB}mlflow:\n  experiment: mine\n"));
    for (uri, cfg) in [
        ("file:./mlruns", &cfg),
        ("sqlite:///mlflow.db", &cfg),
        ("file:./mlruns", &with_block),
    ] {
        let out = ws
            .cmd()
            .env("MLFLOW_TRACKING_URI", uri)
            .args(["run", "--config"])
            .arg(cfg)
            .assert()
            .success()
            .get_output()
            .stderr
            .clone();
        let stderr = String::from_utf8(out).unwrap();
        let warning = format!("warning: MLFLOW_TRACKING_URI=`{uri}` is not mirrored live");
        assert_eq!(stderr.matches(&warning).count(), 1, "{stderr}");
        assert!(
            stderr.contains("only http(s) tracking servers are supported"),
            "{stderr}"
        );
        assert!(
            stderr.contains("--mlflow http://host:port` sends it to a server later"),
            "{stderr}"
        );
    }
    // Nothing was mirrored: no record of a destination.
    for run in std::fs::read_dir(ws.path().join("runs")).unwrap() {
        assert!(!run.unwrap().path().join("meta/mlflow.json").exists());
    }
}

#[test]
fn an_explicit_unsupported_mlflow_uri_is_a_located_error_at_validation() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "c.yaml",
        &format!("{ONE_JOB}mlflow:\n  tracking_uri: file:./mlruns\n"),
    );
    ws.cmd()
        .args(["validate", "--config"])
        .arg(&cfg)
        .assert()
        .code(1)
        .stderr(contains("mlflow.tracking_uri"))
        .stderr(contains("c.yaml:5:"))
        .stderr(contains("only http(s) tracking servers are supported"));
    refused(&ws, &cfg, &[], &[], "the config has 1 error(s)");
    let plain = ws.config("p.yaml", ONE_JOB);
    refused(
        &ws,
        &plain,
        &["--set", "mlflow.tracking_uri=sqlite:///mlflow.db"],
        &[],
        "mlflow.tracking_uri",
    );
    assert_nothing_left(&ws);
}

#[test]
fn an_mlflow_block_without_a_server_is_refused_before_the_run_directory() {
    let ws = Workspace::new();
    let cfg = ws.config("c.yaml", &format!("{ONE_JOB}mlflow:\n  experiment: x\n"));
    refused(
        &ws,
        &cfg,
        &[],
        &[],
        "the config's `mlflow` block names no tracking server",
    );
    assert_nothing_left(&ws);
    // An existing run directory is left as it was.
    let (dir, before) = existing_run(&ws);
    refused(
        &ws,
        &cfg,
        &["--run-id", "old"],
        &[],
        "names no tracking server",
    );
    assert_eq!(tree(&dir), before);
}

#[test]
fn real_mode_without_its_key_is_refused_before_the_run_directory() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "c.yaml",
        &format!("mode: real\nllm:\n  api_key_env: TB_NOT_SET_ANYWHERE\n{ONE_JOB}"),
    );
    refused(&ws, &cfg, &[], &[], "TB_NOT_SET_ANYWHERE");
    assert_nothing_left(&ws);
    let (dir, before) = existing_run(&ws);
    refused(&ws, &cfg, &["--run-id", "old"], &[], "TB_NOT_SET_ANYWHERE");
    assert_eq!(tree(&dir), before);
}

#[test]
fn a_locked_run_directory_is_left_as_it_was() {
    let ws = Workspace::new();
    let (dir, _) = existing_run(&ws);
    let lock = trace_bench::runner::lock::RunLock::acquire(&dir.join("meta/run.lock")).unwrap();
    let before = tree(&dir);
    let cfg = ws.config("again.yaml", ONE_JOB);
    refused(
        &ws,
        &cfg,
        &["--run-id", "old"],
        &[],
        "is in use by another trace-bench run",
    );
    assert_eq!(tree(&dir), before);
    drop(lock);
}

#[test]
fn a_changed_config_or_an_unreadable_snapshot_leaves_the_run_directory_as_it_was() {
    let ws = Workspace::new();
    let (dir, before) = existing_run(&ws);
    let changed = ws.config("changed.yaml", &ONE_JOB.replace("[1]", "[2]"));
    refused(
        &ws,
        &changed,
        &["--run-id", "old"],
        &[],
        "was planned with a different config",
    );
    assert_eq!(tree(&dir), before);

    let snapshot = dir.join("meta/config.snapshot.yaml");
    std::fs::write(&snapshot, "seeds: [1\n").unwrap();
    let before = tree(&dir);
    let same = ws.config("same.yaml", ONE_JOB);
    refused(
        &ws,
        &same,
        &["--run-id", "old"],
        &[],
        "is not a readable snapshot",
    );
    assert_eq!(tree(&dir), before);
}

#[test]
fn a_slurm_submission_without_sbatch_leaves_no_run_directory() {
    let ws = Workspace::new();
    let cfg = ws.config("c.yaml", ONE_JOB);
    refused(
        &ws,
        &cfg,
        &["--executor", "slurm"],
        &[("PATH", "/nonexistent")],
        "`sbatch` was not found on PATH",
    );
    assert_nothing_left(&ws);
    let (dir, before) = existing_run(&ws);
    refused(
        &ws,
        &cfg,
        &["--executor", "slurm", "--run-id", "old"],
        &[("PATH", "/nonexistent")],
        "`sbatch` was not found on PATH",
    );
    assert_eq!(tree(&dir), before);
}

/// Nobody, not even root, may create folders in /sys: the error names the runs directory
/// the user chose and says it is not writable, never a file inside it.
#[test]
fn an_unwritable_working_directory_names_the_runs_directory() {
    let ws = Workspace::new();
    let cfg = ws.config("c.yaml", ONE_JOB);
    let out = ws
        .cmd()
        .current_dir("/sys")
        .args(["run", "--config"])
        .arg(&cfg)
        .assert()
        .code(2)
        .stderr(contains("run.lock").not())
        .get_output()
        .stderr
        .clone();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "error: the runs directory `runs` cannot be created: the current directory is not writable (Operation not permitted (os error 1)); nothing was run\n  = hint: pass --runs-dir DIR (or set `runs_dir:`) to a folder you can write\n"
    );
    ws.cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--runs-dir", "/sys/trace-bench-runs"])
        .assert()
        .code(2)
        .stderr(contains(
            "error: the runs directory `/sys/trace-bench-runs` cannot be created: `/sys` is not writable",
        ));
}

/// A refusal after the run directory was made (here `sbatch` refusing the array): the
/// folders this run created go, a runs directory that holds other runs stays, and an
/// existing run directory is left as it was.
#[test]
fn a_refused_run_removes_only_the_folders_it_created() {
    let ws = Workspace::new();
    let bin = ws.path().join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let sbatch = bin.join("sbatch");
    std::fs::write(
        &sbatch,
        "#!/bin/sh
echo 'sbatch: error: invalid partition' >&2
exit 1
",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sbatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let env = [("PATH", path.as_str())];
    let (dir, before) = existing_run(&ws);
    let cfg = ws.config("c.yaml", ONE_JOB);
    let slurm = ["--executor", "slurm", "--runs-dir", "deep/er/runs"];
    refused(&ws, &cfg, &slurm, &env, "invalid partition");
    assert!(!ws.path().join("deep").exists());
    refused(
        &ws,
        &cfg,
        &["--executor", "slurm"],
        &env,
        "invalid partition",
    );
    assert_eq!(
        std::fs::read_dir(ws.path().join("runs")).unwrap().count(),
        1,
        "only the earlier run is left"
    );
    assert_eq!(tree(&dir), before);
}
