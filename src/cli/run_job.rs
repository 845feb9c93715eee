//! `run-job RUN_DIR --task-index I`: what a Slurm array task runs. It plans the run exactly
//! as the submission did (its recorded invocation, from the submission's working
//! directory), checks the plan against the run's snapshot, and runs chunk `I` in the
//! shared run directory — each job claimed by its own lock, jobs this submission already
//! finished skipped (a requeued task), the manifest left to the report job.

use super::args::RunJobArgs;
use super::exit::CliError;
use super::progress::ProgressSink;
use super::run::{PlanInputs, Planned, conclude, open_run, plan_run, sinks};
use crate::artifacts::layout::RunDir;
use crate::registry::Registry;
use crate::registry::llm4ad::Llm4adSources;
use crate::runner::slurm::Submission;
use crate::runner::{Access, CliOverrides, ExecEnv, Executor, Launched, LocalExecutor, Selection};
use crate::stop::Cancel;

/// Run one array task's chunk.
pub fn run_job(
    args: &RunJobArgs,
    registry: &Registry,
    _llm4ad: &Llm4adSources,
) -> Result<u8, CliError> {
    let run_dir = RunDir::at(&args.run_dir);
    let submission = match args.submission {
        Some(n) => Submission::load(&run_dir, n).map_err(crate::runner::RunError::from)?,
        None => Submission::latest(&run_dir).ok_or_else(|| {
            CliError::usage(format!(
                "`{}` has no Slurm submission (meta/slurm/submit-*/submission.json)",
                args.run_dir.display()
            ))
            .with_hint("plan and submit it with `trace-bench run --executor slurm ...`")
        })?,
    };
    let ids = submission
        .chunk(args.task_index)
        .map_err(crate::runner::RunError::from)?
        .to_vec();
    let inv = &submission.invocation;
    let registry = registry
        .with_task_dirs(&inv.tasks_dirs)
        .and_then(|r| r.with_trainer_dirs(&inv.trainers_dirs))
        .map_err(CliError::from)?;
    let llm4ad = Llm4adSources {
        root: inv.llm4ad_root.clone(),
        python: inv.llm4ad_python.clone(),
    };
    let inputs = PlanInputs {
        config: inv.config.as_deref(),
        sets: &inv.sets,
        cli: CliOverrides {
            runs_dir: inv.runs_dir.clone(),
            run_id: Some(inv.run_id.clone()),
            max_workers: None,
            resume: None,
            fail_fast: false,
            job_timeout: inv.job_timeout,
            logger: inv.logger.clone(),
            llm4ad,
            config_dir: None,
        },
        strict: false,
    };
    let Planned {
        plan,
        registry,
        llm,
    } = plan_run(&inputs, &registry)?;
    let run = open_run(plan, Access::Shared, false)?;
    let plan = &run.plan;
    eprintln!(
        "trace-bench: run {} — submission {}, task {} of {}: {} job(s)",
        plan.run_id,
        submission.number,
        args.task_index,
        submission.tasks,
        ids.len()
    );
    let cancel = Cancel::new();
    let progress = ProgressSink::new(ids.len());
    let fanout = sinks(plan, &registry, &progress, None);
    let env = ExecEnv {
        registry: &registry,
        sink: &fanout,
        llm: &llm,
        cancel: &cancel,
    };
    let executor = LocalExecutor {
        selection: Selection::Jobs {
            ids,
            since: Some(submission.created_at.clone()),
        },
        workers: Some(submission.workers_per_task),
    };
    let Launched::Finished(report) = executor.launch(&run, &env)? else {
        unreachable!("the local executor runs the jobs")
    };
    progress.finish();
    println!(
        "task {}: {} executed, {} kept, {} failed, {} left",
        args.task_index,
        report.executed(),
        report.reused(),
        report.failed(),
        report.incomplete()
    );
    Ok(conclude(&report.stats(), plan.run_id.as_str()))
}
