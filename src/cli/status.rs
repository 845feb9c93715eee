//! `status RUN_DIR`: jobs per status from the job directories, the Slurm array's state
//! when `squeue` answers, and what is left.

use super::args::StatusArgs;
use super::exit::{CliError, FAILURES, OK};
use crate::runner::status::status as run_status;

/// Print the status; exit 0 only when every planned job has a final status.
pub fn status(args: &StatusArgs) -> Result<u8, CliError> {
    let run_dir = super::existing_run_dir(&args.run_dir)?;
    let st = run_status(&run_dir)?;
    println!(
        "run {}: {} job(s) planned",
        args.run_dir.display(),
        st.planned
    );
    for (status, n) in &st.counts {
        println!("  {status:<12} {n}");
    }
    if let Some((sub, states)) = &st.slurm {
        match states {
            Some(states) if !states.is_empty() => {
                let shown: Vec<String> = states.iter().map(|(s, n)| format!("{n} {s}")).collect();
                println!(
                    "slurm submission {}: array {} ({} task(s)): {}",
                    sub.number,
                    sub.array_job_id,
                    sub.tasks,
                    shown.join(", ")
                );
            }
            Some(_) => println!(
                "slurm submission {}: array {} ({} task(s)): not in the queue any more",
                sub.number, sub.array_job_id, sub.tasks
            ),
            None => println!(
                "slurm submission {}: array {} ({} task(s)): squeue did not answer",
                sub.number, sub.array_job_id, sub.tasks
            ),
        }
    }
    if st.complete() {
        println!("every job has a final status");
        Ok(OK)
    } else {
        println!(
            "{} job(s) left; `trace-bench run ... --run-id <id> --resume auto` (with --executor slurm on a cluster) runs them",
            st.left.len()
        );
        Ok(FAILURES)
    }
}
