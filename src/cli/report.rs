//! `report RUN_DIR [--html]`: rebuild the run-level files from the job directories, write
//! the comparisons of the run's optimizers (`stats.json`, `anytime.csv`) and say which
//! differences are significant, and optionally the self-contained HTML report.

use super::args::ReportArgs;
use super::exit::{CliError, OK};
use crate::analysis::html;
use crate::artifacts::layout::RunDir;
use crate::results::manifest::Manifest;
use crate::results::write_run_files;
use crate::vocab::ManifestStatus;

/// Rebuild and print where the files are.
pub fn report(args: &ReportArgs) -> Result<u8, CliError> {
    let run_dir = super::existing_run_dir(&args.run_dir)?;
    if never_ran(&run_dir) {
        return Err(CliError::usage(format!(
            "`{}` was planned but never run: every job is still pending, so there is nothing to report",
            args.run_dir.display()
        ))
        .with_hint(format!(
            "run it with `trace-bench run --config {} --run-id <its run id>`",
            run_dir.config_snapshot().display()
        )));
    }
    // Shards and array tasks leave the manifest's entries pending: settle them first.
    crate::runner::status::settle_manifest(&run_dir)?;
    let summary = write_run_files(&run_dir)?;
    println!("Rebuilt from {} job result(s):", summary.rows());
    for p in [
        run_dir.results_csv(),
        run_dir.iterations_csv(),
        run_dir.summary_json(),
        run_dir.leaderboard_csv(),
    ] {
        println!("  {}", p.display());
    }
    let fair = crate::analysis::fair::write(run_dir.root())?;
    println!("  {}", run_dir.stats_json().display());
    println!("  {}", run_dir.anytime_csv().display());
    if args.html {
        let page = html::write_report(&run_dir, &summary)?;
        println!("  {}", page.display());
    }
    let verdicts = fair.verdicts();
    if !verdicts.is_empty() {
        println!("\nWhich optimizer is better (alpha = {}):", fair.alpha);
        for v in verdicts {
            println!("  {v}");
        }
    }
    Ok(OK)
}

/// Whether the run was only planned (what `validate --strict` leaves): every job of the
/// manifest `pending` and none with a result (a running run has some).
fn never_ran(run_dir: &RunDir) -> bool {
    crate::artifacts::atomic::read_json::<Manifest>(&run_dir.manifest()).is_ok_and(|m| {
        !m.jobs.is_empty()
            && m.jobs.iter().all(|j| {
                j.status == ManifestStatus::Pending
                    && !run_dir.job(&j.job.job_id).results_json().exists()
            })
    })
}
