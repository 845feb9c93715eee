//! The command line: argument parsing, one file per command, terminal output and exit
//! codes. Everything below this module reports through return values and events.

pub mod args;
mod compare;
pub mod exit;
mod list;
mod progress;
mod report;
mod run;
mod table;
mod validate;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use crate::config::load::Source;
use crate::registry::Registry;
use args::{Cli, Command};
use exit::CliError;

/// The smoke matrix `run` uses when no `--config` is given.
pub const DEFAULT_CONFIG: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/default.yaml"));

/// Parse arguments, run the command, map the result to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let registry = match Registry::builtin().with_task_dirs(&cli.tasks_dir) {
        Ok(r) => r,
        Err(e) => return exit::finish(Err(CliError::usage(format!("error: {e}")))),
    };
    let result = match &cli.command {
        Command::ListTasks(a) => list::list_tasks(a, &registry),
        Command::ListTrainers(a) => list::list_trainers(a, &registry),
        Command::Validate(a) => validate::validate(a, &registry),
        Command::Run(a) => run::run(a, &registry),
        Command::Report(a) => report::report(a),
        Command::Compare(a) => compare::compare(a),
    };
    exit::finish(result)
}

/// The config source: a file, or the embedded smoke matrix.
fn load_source(path: Option<&Path>) -> Result<Source, CliError> {
    match path {
        Some(p) => Source::from_path(p).map_err(|e| CliError::usage(format!("error: {e}"))),
        None => Ok(Source {
            name: "<embedded smoke config>".into(),
            text: DEFAULT_CONFIG.into(),
        }),
    }
}

/// `registry` plus the config's `tasks_dir` folders (a path or a list, relative to the
/// config file). A config that does not parse is left to the loader to report.
fn with_config_tasks_dirs(
    registry: &Registry,
    source: &Source,
    config_path: Option<&Path>,
) -> Result<Registry, CliError> {
    let Ok(Some(root)) = crate::config::yaml::parse(&source.text) else {
        return Ok(registry.clone());
    };
    let Some(value) = root.get("tasks_dir").and_then(|n| n.to_json().ok()) else {
        return Ok(registry.clone());
    };
    let entries: Vec<String> = match value {
        serde_json::Value::String(s) => vec![s],
        serde_json::Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                CliError::usage("error: `tasks_dir` must be a path or a list of paths")
            })?,
        other => {
            return Err(CliError::usage(format!(
                "error: `tasks_dir` must be a path or a list of paths, found {other}"
            )));
        }
    };
    let base = config_path
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let dirs: Vec<std::path::PathBuf> = entries.iter().map(|d| base.join(d)).collect();
    registry
        .with_task_dirs(&dirs)
        .map_err(|e| CliError::usage(format!("error: {} (`tasks_dir`): {e}", source.name)))
}

/// The commit of the repository the command runs in (`unknown` outside one).
fn git_commit() -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    crate::provenance::git::capture_git(&cwd).commit_or_unknown()
}
