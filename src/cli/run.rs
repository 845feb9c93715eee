//! `run`: plan the matrix, create the run directory, execute, rebuild the results, print a
//! short table and the paths. A config with errors stops before anything is written.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use super::args::{ResumeArg, RunArgs};
use super::exit::{CANCELLED, CliError, FAILURES, OK};
use super::progress::ProgressSink;
use super::table::{self, Column};
use super::{git_commit, load_source, with_config_tasks};
use crate::backend::LlmFactory;
use crate::config::model::ResumeMode;
use crate::events::{EventSink, Fanout};
use crate::registry::Registry;
use crate::registry::llm4ad::Llm4adSources;
use crate::results::Summary;
use crate::results::job_files::JobFilesSink;
use crate::runner::lock::RunLock;
use crate::runner::{CliOverrides, Disposition, Plan, RunError, drift, execute, prepare};
use crate::stop::Cancel;
use crate::tb::TbSink;
use crate::vocab::JobStatus;

/// Run a config (or the embedded smoke matrix).
pub fn run(args: &RunArgs, registry: &Registry, llm4ad: &Llm4adSources) -> Result<u8, CliError> {
    let source = load_source(args.config.as_deref())?;
    let registry = &with_config_tasks(registry, &source, args.config.as_deref(), llm4ad)?;
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
        logger: args.logger.clone(),
    };
    let prepared = prepare(&source, &args.config_args.sets, &cli, args.strict, registry);
    let rendered = prepared.diagnostics.render();
    if !prepared.is_ok() {
        let n = prepared.diagnostics.error_count();
        return Err(
            CliError::usage(format!("the config has {n} error(s); nothing was run"))
                .after(rendered),
        );
    }
    eprint!("{rendered}");
    let config = prepared.config.expect("checked by is_ok");
    // Real mode: the key and endpoint settings are checked before any file is written.
    let env = |name: &str| std::env::var(name).ok();
    let llm = LlmFactory::new(config.mode, &config.llm, &env)
        .map_err(|e| CliError::usage(format!("{e}; nothing was run")))?;
    let plan = Plan::new(config, prepared.jobs, &git_commit(), SystemTime::now());
    // One process per run directory, from before the first file is written.
    let acquired = RunLock::acquire(&plan.run_dir.lock_file()).map_err(|e| {
        let hint = match e {
            RunError::NotWritable { .. } => {
                "pass --runs-dir DIR (or set `runs_dir:`) to a folder you can write"
            }
            _ => "wait for it to finish, or use another --run-id",
        };
        CliError::usage(e).with_hint(hint)
    })?;
    if let Some(holder) = &acquired.took_over {
        eprintln!("trace-bench: took over the lock of an earlier run that is gone ({holder})");
    }
    let fresh = match plan.earlier_snapshot()? {
        None => true,
        Some(_) if args.force => true,
        Some(earlier) => {
            refuse_drift(&plan, &earlier)?;
            false
        }
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    plan.write_meta(&cwd, fresh)?;
    eprintln!(
        "trace-bench: run {} — {} job(s), mode {}, {} worker(s){}",
        plan.run_id,
        plan.jobs.len(),
        plan.config.mode.as_str(),
        plan.config.max_workers,
        if fresh { "" } else { ", resuming" }
    );
    if let Some(settings) = llm.settings() {
        eprintln!(
            "trace-bench: LLM {} at {} (provider {})",
            settings.model, settings.base_url, settings.provider
        );
    }
    let cancel = Cancel::new();
    on_interrupt(&cancel, &plan);
    let progress = ProgressSink::new(plan.jobs.len());
    // The job files sink comes first: a job's directory exists before other sinks write.
    let files = JobFilesSink::new(
        plan.run_dir.clone(),
        plan.run_id.as_str(),
        plan.config.mode.as_str(),
        registry.clone(),
    );
    let tb = TbSink::new(plan.run_dir.clone());
    let sinks: Vec<Box<dyn EventSink>> =
        vec![Box::new(files), Box::new(tb), Box::new(progress.clone())];
    let fanout = Fanout::new(sinks);
    let report = execute(&plan, registry, &fanout, &llm, &cancel)?;
    progress.finish();
    print_table(&report.summary);
    print_causes(&plan);
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
        "\nRun {}: {} ({executed} executed, {reused} reused, {failed} failed)",
        if cancel.is_cancelled() {
            "cancelled"
        } else {
            "complete"
        },
        plan.run_id
    );
    println!("Run dir: {}", d.root().display());
    println!("Manifest: {}", d.manifest().display());
    println!("Results: {}", d.results_csv().display());
    println!("Iterations: {}", d.iterations_csv().display());
    println!("Summary: {}", d.summary_json().display());
    println!("Leaderboard: {}", d.leaderboard_csv().display());
    drop(acquired);
    if cancel.is_cancelled() {
        println!(
            "Resume: trace-bench run --config <same config> --run-id {} --resume auto",
            plan.run_id
        );
        return Ok(CANCELLED);
    }
    let incomplete = report
        .dispositions
        .iter()
        .filter(|d| d.is_incomplete())
        .count();
    if incomplete > 0 {
        eprintln!(
            "trace-bench: {incomplete} job(s) have no finished result (see the manifest); `--run-id {} --resume auto` runs them",
            plan.run_id
        );
    }
    // A matrix of skipped jobs measured nothing: a CI gate must not pass on it.
    let nothing_ran = report.summary.ran() == 0 && report.summary.rows() > 0;
    if nothing_ran {
        eprintln!(
            "trace-bench: no job ran: all {} job(s) were skipped (the reasons are in results.csv `feedback` and each job_meta.json)",
            report.summary.rows()
        );
    }
    Ok(
        if report.summary.failures() > 0 || incomplete > 0 || nothing_ran {
            FAILURES
        } else {
            OK
        },
    )
}

/// Why jobs failed or were skipped, grouped by cause (from the final manifest), so the
/// terminal says what the files say.
fn print_causes(plan: &Plan) {
    let Ok(manifest) = crate::artifacts::atomic::read_json::<crate::results::manifest::Manifest>(
        &plan.run_dir.manifest(),
    ) else {
        return;
    };
    let mut groups: Vec<(String, String, usize)> = Vec::new();
    for job in &manifest.jobs {
        let status = job.status.as_str();
        if !matches!(status, "failed" | "timeout" | "skipped") {
            continue;
        }
        let reason = job.reason.as_deref().unwrap_or_default();
        let line: String = reason
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        match groups
            .iter_mut()
            .find(|(s, r, _)| s == status && *r == line)
        {
            Some(g) => g.2 += 1,
            None => groups.push((status.to_string(), line, 1)),
        }
    }
    const SHOWN: usize = 8;
    for (status, reason, n) in groups.iter().take(SHOWN) {
        println!("{status} ({n} job(s)): {reason}");
    }
    if groups.len() > SHOWN {
        println!(
            "… and {} more cause(s): see meta/manifest.json",
            groups.len() - SHOWN
        );
    }
}

/// Refuse to resume a run whose config changed since it was planned.
fn refuse_drift(plan: &Plan, earlier: &serde_json::Value) -> Result<(), CliError> {
    let changes = drift::changes(earlier, &plan.written_snapshot());
    if changes.is_empty() {
        return Ok(());
    }
    let error = CliError::usage(format!(
        "run `{}` was planned with a different config; refusing to resume it",
        plan.run_id
    ))
    .with_note(format!(
        "changed since `{}` (old -> new):",
        plan.run_dir.config_snapshot().display()
    ));
    Err(changes
        .iter()
        .fold(error, |e, c| e.with_note(format!("- {c}")))
        .with_hint("restore the config, use --force to rerun every job with the new one, or pick another --run-id"))
}

/// Ctrl-C (SIGINT) or SIGTERM: the first stops scheduling and lets running jobs end their
/// step; the second exits at once (130). Job directories stay resumable either way.
fn on_interrupt(cancel: &Cancel, plan: &Plan) {
    let cancel = cancel.clone();
    let lock = plan.run_dir.lock_file();
    let run_id = plan.run_id.clone();
    let signals = AtomicUsize::new(0);
    let installed = ctrlc::set_handler(move || {
        if signals.fetch_add(1, Ordering::SeqCst) == 0 {
            cancel.cancel();
            eprintln!(
                "\ntrace-bench: cancelling — no new jobs start, running jobs stop after their current step (interrupt again to stop at once)"
            );
        } else {
            eprintln!(
                "\ntrace-bench: stopped at once; `--run-id {run_id} --resume auto` finishes the run"
            );
            // Evaluators run in their own process groups: they would outlive us.
            crate::task::process::kill_all_groups();
            let _ = std::fs::remove_file(&lock);
            std::process::exit(i32::from(CANCELLED));
        }
    });
    if let Err(e) = installed {
        eprintln!("trace-bench: warning: Ctrl-C will not stop the run cleanly: {e}");
    }
}

fn print_table(summary: &Summary) {
    let f = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
    let rows: Vec<Vec<String>> = summary
        .groups()
        .iter()
        .map(|g| {
            let v = &g.score_val;
            let ci = match (v.ci95_low, v.ci95_high) {
                (Some(lo), Some(hi)) => format!("[{lo:.4}, {hi:.4}]"),
                _ => "-".to_string(),
            };
            vec![
                g.task_id.clone(),
                g.label(summary.several_variants(&g.trainer_id)),
                g.jobs.to_string(),
                g.ok.to_string(),
                f(v.mean),
                f(v.std),
                ci,
                f(v.max),
            ]
        })
        .collect();
    let columns = [
        Column::Fit("task"),
        Column::Fit("trainer"),
        Column::Right("jobs", 4),
        Column::Right("ok", 4),
        Column::Right("mean score", 10),
        Column::Right("std", 8),
        Column::Right("95% CI", 19),
        Column::Right("best", 10),
    ];
    print!("\n{}", table::render(&columns, &rows));
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
