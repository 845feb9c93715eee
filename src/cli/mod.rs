//! The command line: argument parsing, one file per command, terminal output and exit
//! codes. Everything below this module reports through return values and events.

pub mod args;
mod compare;
pub mod exit;
mod export;
mod external_env;
mod list;
mod progress;
mod report;
mod rescore;
mod run;
mod run_job;
mod status;
mod table;
mod ui;
mod validate;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use crate::config::load::Source;
use crate::registry::Registry;
use crate::registry::llm4ad::Llm4adSources;
use args::{Cli, Command};
use exit::CliError;

/// The smoke matrix `run` uses when no `--config` is given.
pub const DEFAULT_CONFIG: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/default.yaml"));

/// Parse arguments, run the command, map the result to an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let registry = match Registry::builtin()
        .with_task_dirs(&cli.tasks_dir)
        .and_then(|r| r.with_trainer_dirs(&cli.trainers_dir))
    {
        Ok(r) => r,
        Err(e) => return exit::finish(Err(e.into())),
    };
    let llm4ad = Llm4adSources {
        root: cli.root.clone(),
        python: cli.llm4ad_python.clone(),
    };
    let result = match &cli.command {
        Command::ListTasks(a) => list::list_tasks(a, &registry.with_llm4ad(&llm4ad)),
        Command::ListTrainers(a) => list::list_trainers(a, &registry),
        Command::Validate(a) => validate::validate(a, &registry, &llm4ad),
        Command::Run(a) => {
            let dirs = run::UserDirs {
                tasks: &cli.tasks_dir,
                trainers: &cli.trainers_dir,
            };
            run::run(a, &registry, &llm4ad, dirs)
        }
        Command::ExternalEnv(a) => external_env::external_env(a),
        Command::Score(a) => rescore::score(a, &registry, &llm4ad, &cli),
        Command::Rescore(a) => rescore::rescore(a, &registry, &llm4ad, &cli),
        Command::Report(a) => report::report(a),
        Command::Compare(a) => compare::compare(a),
        Command::Status(a) => status::status(a),
        Command::RunJob(a) => run_job::run_job(a, &registry, &llm4ad),
        Command::Export(a) => export::export(a),
        Command::Ui(a) => ui::ui(a, &registry, &llm4ad, &cli),
    };
    exit::finish(result)
}

/// clap's message, plus a hint where the mistake is a common one: a config file given
/// without `--config` (`trace-bench run my.yaml`).
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let stray = match (e.kind(), e.get(ContextKind::InvalidArg)) {
        (ErrorKind::UnknownArgument, Some(ContextValue::String(arg))) => Some(arg.clone()),
        _ => None,
    };
    let looks_like_config = stray.as_deref().is_some_and(|a| {
        !a.starts_with('-')
            && ([".yaml", ".yml", ".json"]
                .iter()
                .any(|ext| a.ends_with(ext))
                || Path::new(a).is_file())
    });
    if !looks_like_config {
        e.exit();
    }
    let _ = e.print();
    eprintln!(
        "  = hint: pass the config with `--config {}`",
        stray.unwrap_or_default()
    );
    ExitCode::from(exit::USAGE)
}

/// `path` as a run directory, or a usage error saying it is not one.
fn existing_run_dir(path: &Path) -> Result<crate::artifacts::layout::RunDir, CliError> {
    let run_dir = crate::artifacts::layout::RunDir::at(path);
    if !run_dir.manifest().is_file() {
        return Err(CliError::usage(format!(
            "`{}` is not a run directory (no meta/manifest.json)",
            path.display()
        ))
        .with_hint("pass `<runs_dir>/<run_id>`"));
    }
    Ok(run_dir)
}

/// The config source: a file, or the embedded smoke matrix.
fn load_source(path: Option<&Path>) -> Result<Source, CliError> {
    match path {
        Some(p) => Ok(Source::from_path(p)?),
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
