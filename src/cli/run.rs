//! `run`: plan the matrix, open the run directory, launch the jobs through an executor
//! (here, one shard of them, or a Slurm job array), print a short table and the paths.
//! A config with errors stops before anything is written.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use super::args::{ExecutorArg, ResumeArg, RunArgs};
use super::exit::{CANCELLED, CliError, OK, outcome_code};
use super::progress::ProgressSink;
use super::table::{self, Column};
use super::{git_commit, load_source};
use crate::backend::LlmFactory;
use crate::config::model::ResumeMode;
use crate::events::{EventSink, Fanout};
use crate::mlflow::sink::REQUEST_TIMEOUT;
use crate::mlflow::{Mirror, MlflowSink, URI_ENV, token_from};
use crate::registry::Registry;
use crate::registry::llm4ad::Llm4adSources;
use crate::results::Summary;
use crate::results::job_files::JobFilesSink;
use crate::runner::slurm::{Invocation, SlurmExecutor, SlurmOptions, Submission};
use crate::runner::{
    Access, CliOverrides, ExecEnv, Executor, FinalOutcome, Launched, LocalExecutor, OpenRun, Plan,
    RunError, RunStats, Selection, prepare,
};
use crate::stop::Cancel;
use crate::tb::TbSink;

/// What `run` and `run-job` share: the config planned into a run, with its registry
/// and LLM factory.
pub(super) struct Planned {
    pub plan: Plan,
    pub registry: Registry,
    pub llm: LlmFactory,
}

/// How a run is planned from a config (the same for the submitter and every array task).
pub(super) struct PlanInputs<'a> {
    pub config: Option<&'a std::path::Path>,
    pub sets: &'a [String],
    pub cli: CliOverrides,
    pub strict: bool,
}

/// Load, check and plan a config; a config with errors stops here, before any file.
pub(super) fn plan_run(inputs: &PlanInputs<'_>, registry: &Registry) -> Result<Planned, CliError> {
    let source = load_source(inputs.config)?;
    let cli = CliOverrides {
        config_dir: inputs
            .config
            .and_then(std::path::Path::parent)
            .map(std::path::Path::to_path_buf),
        ..inputs.cli.clone()
    };
    let prepared = prepare(&source, inputs.sets, &cli, inputs.strict, registry);
    let rendered = prepared.diagnostics.render();
    if !prepared.is_ok() {
        let n = prepared.diagnostics.error_count();
        return Err(
            CliError::usage(format!("the config has {n} error(s); nothing was run"))
                .after(rendered),
        );
    }
    eprint!("{rendered}");
    let spec = prepared.spec.expect("checked by is_ok");
    // Real mode: the key and the cache directory, before any file is written.
    let env = |name: &str| std::env::var(name).ok();
    let llm = LlmFactory::new(spec.llm.as_ref(), &env)
        .map_err(|e| CliError::usage(format!("{e}; nothing was run")))?;
    let plan = Plan::new(spec, prepared.jobs, &git_commit(), SystemTime::now());
    Ok(Planned {
        plan,
        registry: prepared.registry,
        llm,
    })
}

/// Open the run directory, turning the library's refusals into located messages.
pub(super) fn open_run(plan: Plan, access: Access, force: bool) -> Result<OpenRun, CliError> {
    let cwd = std::env::current_dir().unwrap_or_default();
    OpenRun::open(plan, access, force, &cwd).map_err(|e| match e {
        RunError::NotWritable { .. } => CliError::usage(e)
            .with_hint("pass --runs-dir DIR (or set `runs_dir:`) to a folder you can write"),
        RunError::Locked { .. } => {
            CliError::usage(e).with_hint("wait for it to finish, or use another --run-id")
        }
        RunError::Drift {
            ref snapshot,
            ref changes,
            ..
        } => {
            let note = format!("changed since `{}` (old -> new):", snapshot.display());
            let changes = changes.clone();
            changes
                .iter()
                .fold(CliError::usage(e).with_note(note), |err, c| {
                    err.with_note(format!("- {c}"))
                })
                .with_hint("restore the config, use --force to rerun every job with the new one, or pick another --run-id")
        }
        other => other.into(),
    })
}

/// The sinks of a run: the job files first (a job's directory exists before other sinks
/// write), TensorBoard, the terminal.
pub(super) fn sinks(
    plan: &Plan,
    registry: &Registry,
    progress: &ProgressSink,
    mlflow: Option<&MlflowSink>,
) -> Fanout {
    let files = JobFilesSink::new(
        plan.run_dir.clone(),
        plan.run_id.as_str(),
        plan.spec.config.mode.as_str(),
        registry.clone(),
        plan.spec.config.effective_durability(),
    );
    let tb = TbSink::new(
        plan.run_dir.clone(),
        plan.spec.config.effective_durability(),
    );
    let mut sinks: Vec<Box<dyn EventSink>> =
        vec![Box::new(files), Box::new(tb), Box::new(progress.clone())];
    // Last: it reads a job's files when the job has finished.
    if let Some(m) = mlflow {
        sinks.push(Box::new(m.clone()));
    }
    Fanout::new(sinks)
}

/// The command line's folders of user tasks and trainers (an array task loads them again).
#[derive(Clone, Copy)]
pub struct UserDirs<'a> {
    /// `--tasks-dir`
    pub tasks: &'a [std::path::PathBuf],
    /// `--trainers-dir`
    pub trainers: &'a [std::path::PathBuf],
}

/// Run a config (or the embedded smoke matrix): here, as one shard, or on Slurm.
pub fn run(
    args: &RunArgs,
    registry: &Registry,
    llm4ad: &Llm4adSources,
    dirs: UserDirs<'_>,
) -> Result<u8, CliError> {
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
        llm4ad: llm4ad.clone(),
        config_dir: None,
    };
    let shard = args
        .shard
        .as_deref()
        .map(Selection::parse_shard)
        .transpose()
        .map_err(|e| {
            CliError::usage(e).with_hint("e.g. --shard 1/3 in the first of three processes")
        })?;
    if shard.is_some() && args.run_id.is_none() {
        return Err(CliError::usage(
            "--shard needs --run-id: every shard must work in the same run directory",
        )
        .with_hint("e.g. --run-id sweep-1 --shard 2/3"));
    }
    let sets = args.config_args.all_sets();
    let inputs = PlanInputs {
        config: args.config.as_deref(),
        sets: &sets,
        cli,
        strict: args.strict,
    };
    let Planned {
        plan,
        registry,
        llm,
    } = plan_run(&inputs, registry)?;
    let registry = &registry;
    let slurm = match args.executor {
        Some(ExecutorArg::Slurm) => true,
        Some(ExecutorArg::Local) => false,
        None => plan.spec.executor.slurm().is_some(),
    };
    if slurm && shard.is_some() {
        return Err(CliError::usage("--shard and --executor slurm do not go together: a Slurm submission is already split into array tasks")
            .with_hint("drop --shard, and use --jobs-per-task to size the tasks"));
    }
    if slurm {
        return submit(args, inputs, dirs, plan, registry, &llm);
    }
    let access = if shard.is_some() {
        Access::Shared
    } else {
        Access::Exclusive
    };
    // Live MLflow mirroring for a whole local run (shards and array tasks: `export` later),
    // decided before the run directory is opened.
    let env = |name: &str| std::env::var(name).ok();
    let mirror = match access {
        Access::Exclusive => Mirror::choose(plan.spec.mlflow.as_ref(), &env)?,
        Access::Shared => Mirror::Off,
    };
    if let Mirror::Inherited { uri, reason } = &mirror {
        eprintln!(
            "trace-bench: warning: {URI_ENV}=`{uri}` is not mirrored live ({reason}); the run goes on, and `trace-bench export {} --mlflow http://host:port` sends it to a server later",
            plan.run_dir.root().display()
        );
    }
    let run = open_run(plan, access, args.force)?;
    let plan = &run.plan;
    if let Some(holder) = &run.took_over {
        eprintln!("trace-bench: took over the lock of an earlier run that is gone ({holder})");
    }
    eprintln!(
        "trace-bench: run {} — {} job(s), mode {}, {} worker(s){}{}",
        plan.run_id,
        plan.jobs.len(),
        plan.spec.config.mode.as_str(),
        plan.spec.config.max_workers,
        if run.fresh { "" } else { ", resuming" },
        args.shard
            .as_deref()
            .map(|s| format!(", shard {s}"))
            .unwrap_or_default()
    );
    if let Some(settings) = llm.settings() {
        eprintln!(
            "trace-bench: LLM {} at {} (provider {})",
            settings.model, settings.base_url, settings.provider
        );
    }
    let cancel = Cancel::new();
    on_interrupt(&cancel, plan);
    let selection = shard.unwrap_or(Selection::All);
    let selected = plan.jobs.iter().filter(|j| selection.contains(j)).count();
    let progress = ProgressSink::new(selected);
    let mlflow = match mirror {
        Mirror::To(destination) => {
            match MlflowSink::start(
                destination,
                token_from(&env),
                &plan.run_dir,
                REQUEST_TIMEOUT,
            ) {
                Ok(sink) => Some(sink),
                Err(e) => {
                    run.abandon();
                    return Err(e.into());
                }
            }
        }
        Mirror::Off | Mirror::Inherited { .. } => None,
    };
    let fanout = sinks(plan, registry, &progress, mlflow.as_ref());
    let env = ExecEnv {
        registry,
        sink: &fanout,
        llm: &llm,
        cancel: &cancel,
    };
    let executor = LocalExecutor {
        selection,
        workers: None,
    };
    let report = match executor.launch(&run, &env) {
        Ok(Launched::Finished(report)) => report,
        Ok(Launched::Submitted(_)) => unreachable!("the local executor runs the jobs"),
        Err(e) => {
            if e.before_first_job() {
                drop(fanout);
                drop(mlflow);
                run.abandon();
            }
            return Err(e.into());
        }
    };
    progress.finish();
    if let Some(m) = &mlflow {
        eprintln!("trace-bench: {}", m.finish());
    }
    for w in fanout.warnings() {
        eprintln!("trace-bench: warning: {w}");
    }
    let d = &plan.run_dir;
    let Some(summary) = &report.summary else {
        println!(
            "\nShard {}: {} executed, {} reused, {} failed, {} left",
            args.shard.as_deref().unwrap_or_default(),
            report.executed(),
            report.reused(),
            report.failed(),
            report.incomplete()
        );
        println!("Run dir: {}", d.root().display());
        println!(
            "When every shard is done: trace-bench report {}",
            d.root().display()
        );
        return Ok(conclude(&report.stats(), plan.run_id.as_str()));
    };
    print_table(summary);
    print_causes(&report.causes);
    println!(
        "\nRun {}: {} ({} executed, {} reused, {} failed)",
        if cancel.is_cancelled() {
            "cancelled"
        } else {
            "complete"
        },
        plan.run_id,
        report.executed(),
        report.reused(),
        report.failed()
    );
    println!("Run dir: {}", d.root().display());
    println!("Manifest: {}", d.manifest().display());
    println!("Results: {}", d.results_csv().display());
    println!("Iterations: {}", d.iterations_csv().display());
    println!("Summary: {}", d.summary_json().display());
    println!("Leaderboard: {}", d.leaderboard_csv().display());

    let stats = report.stats();
    if stats.cancelled {
        println!(
            "Resume: trace-bench run --config <same config> --run-id {} --resume auto",
            plan.run_id
        );
    }
    Ok(conclude(&stats, plan.run_id.as_str()))
}

/// The end of a run, a shard or an array task: say why it did not pass (jobs without a
/// result, nothing measured) and return the exit code of its one verdict.
pub(super) fn conclude(stats: &RunStats, run_id: &str) -> u8 {
    let outcome = stats.summarize_final();
    match outcome {
        FinalOutcome::Failed if stats.incomplete > 0 => eprintln!(
            "trace-bench: {} job(s) have no finished result (see the manifest); `--run-id {run_id} --resume auto` runs them",
            stats.incomplete
        ),
        // A matrix of skipped jobs measured nothing: a CI gate must not pass on it.
        FinalOutcome::NothingRan => eprintln!(
            "trace-bench: no job ran: all {} job(s) were skipped (the reasons are in results.csv `feedback` and each job_meta.json)",
            stats.selected
        ),
        _ => {}
    }
    outcome_code(outcome)
}

/// `run --executor slurm`: plan (or reopen) the run directory, submit what is left as one
/// job array plus its report job, print how to follow it, return.
fn submit(
    args: &RunArgs,
    inputs: PlanInputs<'_>,
    dirs: UserDirs<'_>,
    plan: Plan,
    registry: &Registry,
    llm: &LlmFactory,
) -> Result<u8, CliError> {
    let absolute =
        |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let cwd = std::env::current_dir().unwrap_or_default();
    let flags = &args.slurm;
    let config_options = plan.spec.executor.slurm().cloned().unwrap_or_default();
    let options = config_options.overridden_by(SlurmOptions {
        jobs_per_task: flags.jobs_per_task,
        max_concurrent: flags.max_concurrent,
        partition: flags.slurm_partition.clone(),
        time: flags.slurm_time.clone(),
        cpus_per_task: flags.slurm_cpus_per_task,
        mem: flags.slurm_mem.clone(),
        args: flags.slurm_arg.clone(),
        bin: flags.slurm_bin.clone(),
    });
    let invocation = Invocation {
        config: inputs.config.map(absolute),
        sets: inputs.sets.to_vec(),
        tasks_dirs: dirs.tasks.iter().map(|p| absolute(p)).collect(),
        trainers_dirs: dirs.trainers.iter().map(|p| absolute(p)).collect(),
        llm4ad_root: inputs.cli.llm4ad.root.as_deref().map(absolute),
        llm4ad_python: inputs.cli.llm4ad.python.clone(),
        runs_dir: inputs.cli.runs_dir.clone(),
        run_id: plan.run_id.to_string(),
        job_timeout: inputs.cli.job_timeout,
        logger: inputs.cli.logger.clone(),
    };
    let executor = SlurmExecutor {
        options,
        cwd,
        invocation,
    };
    executor.preflight().map_err(RunError::from)?;
    let run = open_run(plan, Access::Exclusive, args.force)?;
    // Nothing runs here: the tasks write their own events.
    let fanout = Fanout::new(Vec::new());
    let cancel = Cancel::new();
    let env = ExecEnv {
        registry,
        sink: &fanout,
        llm,
        cancel: &cancel,
    };
    let sub = match executor.launch(&run, &env) {
        Ok(Launched::Submitted(sub)) => sub,
        Ok(Launched::Finished(_)) => unreachable!("the Slurm executor submits"),
        Err(e) => {
            // Nothing submitted (no submission left behind): a new run directory goes.
            if Submission::latest(&run.plan.run_dir).is_none() {
                run.abandon();
            }
            return Err(e.into());
        }
    };
    let d = run.plan.run_dir.root();
    if sub.tasks == 0 {
        println!(
            "Nothing left to run in {} (resume `{}` keeps every job's result); `trace-bench report {}` rebuilds the run files",
            d.display(),
            run.plan.spec.config.resume.as_str(),
            d.display()
        );
        return Ok(OK);
    }
    let jobs: usize = sub.chunks.iter().map(Vec::len).sum();
    println!(
        "Submitted run {}: {jobs} job(s) as Slurm array {} ({} task(s) of up to {} job(s)); report job {} (afterany)",
        run.plan.run_id, sub.array_job_id, sub.tasks, sub.jobs_per_task, sub.report_job_id
    );
    println!("Run dir: {}", d.display());
    println!(
        "Batch scripts: {}, {}",
        sub.array_script.display(),
        sub.report_script.display()
    );
    println!(
        "Watch: trace-bench status {}   (squeue -j {})",
        d.display(),
        sub.array_job_id
    );
    println!(
        "Resume what is left: trace-bench run --executor slurm --config <same config> --run-id {} --resume auto",
        run.plan.run_id
    );
    Ok(OK)
}

/// Why jobs failed or were skipped, grouped by cause (from the final manifest), so the
/// terminal says what the files say.
fn print_causes(causes: &crate::runner::Causes) {
    let groups = &causes.0;
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
