//! The command line: argument parsing, one file per command, terminal output and exit
//! codes. Everything below this module reports through return values and events.

pub mod args;
pub mod exit;
mod list;
mod progress;
mod report;
mod run;
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
    let registry = Registry::builtin();
    let result = match &cli.command {
        Command::ListTasks(a) => list::list_tasks(a, &registry),
        Command::ListTrainers(a) => list::list_trainers(a, &registry),
        Command::Validate(a) => validate::validate(a, &registry),
        Command::Run(a) => run::run(a, &registry),
        Command::Report(a) => report::report(a),
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

/// The commit of the repository the command runs in (`unknown` outside one).
fn git_commit() -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    crate::provenance::git::capture_git(&cwd).commit_or_unknown()
}
