//! `export RUN_DIR [--mlflow URI] [--experiment NAME]`: send a run directory to an MLflow
//! tracking server, or bring it up to date there (runs are found by tag; nothing is sent
//! twice), and clear what the live mirror left pending.

use super::args::ExportArgs;
use super::exit::{CliError, FAILURES, OK};
use crate::artifacts::layout::RunDir;
use crate::mlflow::record::{Destination, Pending};
use crate::mlflow::sink::REQUEST_TIMEOUT;
use crate::mlflow::{Client, DEFAULT_EXPERIMENT, Exporter, MlflowError, URI_ENV, token_from};

/// Per-request limit of an export: longer than the live mirror's, since a person waits
/// for it and large artifacts may be sent.
const EXPORT_TIMEOUT: std::time::Duration = REQUEST_TIMEOUT.saturating_mul(6);

/// Export and print what was sent.
pub fn export(args: &ExportArgs) -> Result<u8, CliError> {
    let run_dir = RunDir::at(&args.run_dir);
    if !run_dir.manifest().is_file() {
        return Err(MlflowError::NotARunDir(args.run_dir.clone()).into());
    }
    let env = |name: &str| std::env::var(name).ok();
    let recorded = Destination::read(&run_dir);
    let uri = args
        .mlflow
        .clone()
        .or_else(|| env(URI_ENV).filter(|u| !u.is_empty()))
        .or_else(|| recorded.as_ref().map(|d| d.tracking_uri.clone()))
        .ok_or_else(|| {
            CliError::usage("no MLflow tracking server given")
                .with_hint(format!("pass --mlflow http://host:port or set {URI_ENV}"))
        })?;
    let experiment = args
        .experiment
        .clone()
        .or_else(|| recorded.map(|d| d.experiment))
        .unwrap_or_else(|| DEFAULT_EXPERIMENT.to_string());
    let client = Client::new(&uri, token_from(&env), EXPORT_TIMEOUT)?;
    let mut exporter = Exporter::connect(&client, &experiment, &run_dir)?;
    let report = exporter.export_all()?;
    let mut pending = Pending::default();
    for (job, why) in &report.failed {
        pending.jobs.insert(job.to_string(), why.clone());
    }
    pending.write(&run_dir)?;
    println!(
        "Exported to {} (experiment `{experiment}`, id {}), parent run {}",
        client.uri(),
        report.experiment_id,
        report.parent_run_id
    );
    println!(
        "  {} job(s) sent ({} metric point(s)), {} already up to date, {} without a final result",
        report.sent, report.metrics, report.unchanged, report.not_finished
    );
    if report.artifacts_not_stored {
        eprintln!(
            "trace-bench: the server does not store artifacts (start it with --serve-artifacts / --artifacts-destination); params and metrics were sent, files were not"
        );
    }
    if report.failed.is_empty() {
        return Ok(OK);
    }
    for (job, why) in &report.failed {
        eprintln!("trace-bench: job {job} not sent: {why}");
    }
    eprintln!(
        "trace-bench: {} job(s) not sent (listed in {}); run export again to retry",
        report.failed.len(),
        run_dir.mlflow_pending().display()
    );
    Ok(FAILURES)
}
