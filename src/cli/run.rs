//! `run`: plan the matrix, create the run directory, execute, rebuild the results, print a
//! short table and the paths. A config with errors stops before anything is written.

use std::time::SystemTime;

use super::args::{ResumeArg, RunArgs};
use super::exit::{CliError, FAILURES, OK};
use super::progress::ProgressSink;
use super::{git_commit, load_source};
use crate::artifacts::job_files::JobFilesSink;
use crate::config::model::ResumeMode;
use crate::events::{EventSink, Fanout, JobStatus};
use crate::llm::settings::LlmFactory;
use crate::registry::Registry;
use crate::results::Summary;
use crate::runner::{CliOverrides, Disposition, Plan, execute, prepare};
use crate::tb::TbSink;

/// Run a config (or the embedded smoke matrix).
pub fn run(args: &RunArgs, registry: &Registry) -> Result<u8, CliError> {
    let source = load_source(args.config.as_deref())?;
    let resume = if args.force {
        Some(ResumeMode::None)
    } else {
        args.resume.map(|r| match r {
            ResumeArg::Auto => ResumeMode::Auto,
            ResumeArg::Failed => ResumeMode::Failed,
            ResumeArg::None => ResumeMode::None,
        })
    };
    let cli = CliOverrides {
        runs_dir: args.config_args.runs_dir.clone(),
        run_id: args.run_id.clone(),
        max_workers: args.max_workers,
        resume,
        fail_fast: args.fail_fast,
        job_timeout: args.job_timeout,
    };
    let prepared = prepare(&source, &args.config_args.sets, &cli, args.strict, registry);
    let rendered = prepared.diagnostics.render();
    if !prepared.is_ok() {
        let n = prepared.diagnostics.error_count();
        return Err(CliError::usage(format!(
            "{rendered}error: the config has {n} error(s); nothing was run\n"
        )));
    }
    eprint!("{rendered}");
    let config = prepared.config.expect("checked by is_ok");
    // Real mode: the key and endpoint settings are checked before any file is written.
    let env = |name: &str| std::env::var(name).ok();
    let llm = LlmFactory::new(config.mode, &config.llm, &env)
        .map_err(|e| CliError::usage(format!("error: {e}; nothing was run\n")))?;
    let plan = Plan::new(config, prepared.jobs, &git_commit(), SystemTime::now());
    let cwd = std::env::current_dir().unwrap_or_default();
    plan.write_meta(&cwd)
        .map_err(|e| CliError::usage(format!("error: {e}")))?;
    eprintln!(
        "trace-bench: run {} — {} job(s), mode {}, {} worker(s)",
        plan.run_id,
        plan.jobs.len(),
        plan.config.mode.as_str(),
        plan.config.max_workers
    );
    let progress = ProgressSink::new(plan.jobs.len());
    let files = JobFilesSink::new(
        plan.run_dir.clone(),
        &plan.run_id,
        plan.config.mode.as_str(),
        registry.clone(),
    );
    let tb = TbSink::new(plan.run_dir.clone());
    let sinks: Vec<Box<dyn EventSink>> =
        vec![Box::new(files), Box::new(tb), Box::new(progress.clone())];
    let fanout = Fanout::new(sinks);
    let report = execute(&plan, registry, &fanout, &llm)
        .map_err(|e| CliError::usage(format!("error: {e}")))?;
    progress.finish();
    print_table(&report.summary);
    let executed = report
        .dispositions
        .iter()
        .filter(|d| matches!(d, Disposition::Executed(_)))
        .count();
    let reused = report
        .dispositions
        .iter()
        .filter(|d| matches!(d, Disposition::Reused(_)))
        .count();
    let failed = report
        .dispositions
        .iter()
        .filter(|d| {
            matches!(
                d,
                Disposition::Executed(JobStatus::Failed | JobStatus::Timeout)
            )
        })
        .count();
    let d = &plan.run_dir;
    println!(
        "\nRun complete: {} ({executed} executed, {reused} reused, {failed} failed)",
        plan.run_id
    );
    println!("Run dir: {}", d.root().display());
    println!("Manifest: {}", d.manifest().display());
    println!("Results: {}", d.results_csv().display());
    println!("Iterations: {}", d.iterations_csv().display());
    println!("Summary: {}", d.summary_json().display());
    println!("Leaderboard: {}", d.leaderboard_csv().display());
    Ok(if report.summary.failures() > 0 {
        FAILURES
    } else {
        OK
    })
}

fn print_table(summary: &Summary) {
    let groups = summary.groups();
    let w_task = groups
        .iter()
        .map(|g| g.task_id.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let w_trainer = groups
        .iter()
        .map(|g| g.trainer_id.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let f = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
    println!(
        "\n{:<w_task$}  {:<w_trainer$}  {:>4}  {:>4}  {:>10}  {:>8}  {:>10}",
        "task", "trainer", "jobs", "ok", "mean score", "std", "best"
    );
    for g in &groups {
        println!(
            "{:<w_task$}  {:<w_trainer$}  {:>4}  {:>4}  {:>10}  {:>8}  {:>10}",
            g.task_id,
            g.trainer_id,
            g.jobs,
            g.ok,
            f(g.mean),
            f(g.std),
            f(g.max)
        );
    }
    let counts: Vec<String> = summary
        .counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    println!(
        "jobs: {}",
        if counts.is_empty() {
            "none".to_string()
        } else {
            counts.join(", ")
        }
    );
}
