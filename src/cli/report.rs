//! `report RUN_DIR [--html]`: rebuild the run-level files from the job directories, and
//! optionally the self-contained HTML report.

use super::args::ReportArgs;
use super::exit::{CliError, OK};
use crate::analysis::html;
use crate::artifacts::layout::RunDir;
use crate::results::write_run_files;

/// Rebuild and print where the files are.
pub fn report(args: &ReportArgs) -> Result<u8, CliError> {
    let run_dir = RunDir::at(&args.run_dir);
    if !run_dir.manifest().is_file() {
        return Err(CliError::usage(format!(
            "`{}` is not a run directory (no meta/manifest.json)",
            args.run_dir.display()
        ))
        .with_hint("pass `<runs_dir>/<run_id>`"));
    }
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
    if args.html {
        let page = html::write_report(&run_dir, &summary)?;
        println!("  {}", page.display());
    }
    Ok(OK)
}
