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
mod run;
mod run_job;
mod status;
mod table;
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
        Command::Report(a) => report::report(a),
        Command::Compare(a) => compare::compare(a),
        Command::Status(a) => status::status(a),
        Command::RunJob(a) => run_job::run_job(a, &registry, &llm4ad),
        Command::Export(a) => export::export(a),
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

/// `registry` plus what the config adds: its `tasks_dir` folders (a path or a list,
/// relative to the config file) and, when it names LLM4AD tasks the registry lacks or an
/// LLM4AD root is given, the discovered LLM4AD tasks (`llm4ad_root`, `llm4ad_python`; the
/// command line's `--root` / `--llm4ad-python` win). A config that does not parse is left
/// to the loader to report.
fn with_config_tasks(
    registry: &Registry,
    source: &Source,
    config_path: Option<&Path>,
    cli_llm4ad: &Llm4adSources,
) -> Result<Registry, CliError> {
    let Ok(Some(root)) = crate::config::yaml::parse(&source.text) else {
        return Ok(registry.clone());
    };
    let base = config_path
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let text = |key: &str| {
        root.get(key)
            .and_then(|n| n.to_json().ok())
            .and_then(|v| v.as_str().map(str::to_string))
    };
    let llm4ad = Llm4adSources {
        root: cli_llm4ad
            .root
            .clone()
            .or_else(|| text("llm4ad_root").map(|r| base.join(r))),
        python: cli_llm4ad.python.clone().or_else(|| text("llm4ad_python")),
    };
    let registry = &with_tasks_dirs(registry, source, &root, &base)?;
    let registry = &with_trainers_dirs(registry, source, &root, &base)?;
    let named = root
        .get("tasks")
        .and_then(|n| n.to_json().ok())
        .map(|v| task_ids(&v))
        .unwrap_or_default();
    let wanted = named
        .iter()
        .any(|id| crate::task::manifest_suite(id) == "llm4ad" && registry.task(id).is_none());
    Ok(if llm4ad.root.is_some() || wanted {
        registry.with_llm4ad(&llm4ad)
    } else {
        registry.clone()
    })
}

/// Task ids a raw `tasks:` value names (strings, or `id` / `key` / `task` of mappings),
/// with the reference's rule that an id without a suite is an LLM4AD key.
fn task_ids(tasks: &serde_json::Value) -> Vec<String> {
    let items = match tasks {
        serde_json::Value::Array(items) => items.as_slice(),
        _ => &[],
    };
    items
        .iter()
        .filter_map(|t| match t {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(m) => ["id", "key", "task"]
                .iter()
                .find_map(|k| m.get(*k).and_then(|v| v.as_str()).map(str::to_string)),
            _ => None,
        })
        .map(|id| {
            if id.contains(':') {
                id
            } else {
                format!("llm4ad:{id}")
            }
        })
        .collect()
}

/// `registry` plus the config's `tasks_dir` folders.
fn with_tasks_dirs(
    registry: &Registry,
    source: &Source,
    root: &crate::config::yaml::Node,
    base: &Path,
) -> Result<Registry, CliError> {
    let Some(value) = root.get("tasks_dir").and_then(|n| n.to_json().ok()) else {
        return Ok(registry.clone());
    };
    let entries: Vec<String> = match value {
        serde_json::Value::String(s) => vec![s],
        serde_json::Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| CliError::usage("`tasks_dir` must be a path or a list of paths"))?,
        other => {
            return Err(CliError::usage(format!(
                "`tasks_dir` must be a path or a list of paths, found {other}"
            )));
        }
    };
    let dirs: Vec<std::path::PathBuf> = entries.iter().map(|d| base.join(d)).collect();
    registry
        .with_task_dirs(&dirs)
        .map_err(|e| CliError::usage(format!("{} (`tasks_dir`): {e}", source.name)))
}

/// `registry` plus the config's `trainers_dir` folders (relative to the config file).
fn with_trainers_dirs(
    registry: &Registry,
    source: &Source,
    root: &crate::config::yaml::Node,
    base: &Path,
) -> Result<Registry, CliError> {
    let entries: Vec<String> = match root.get("trainers_dir").and_then(|n| n.to_json().ok()) {
        None | Some(serde_json::Value::Null) => return Ok(registry.clone()),
        Some(serde_json::Value::String(s)) => vec![s],
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| CliError::usage("`trainers_dir` must be a path or a list of paths"))?,
        Some(other) => {
            return Err(CliError::usage(format!(
                "`trainers_dir` must be a path or a list of paths, found {other}"
            )));
        }
    };
    let dirs: Vec<std::path::PathBuf> = entries.iter().map(|d| base.join(d)).collect();
    registry
        .with_trainer_dirs(&dirs)
        .map_err(|e| CliError::usage(format!("{} (`trainers_dir`): {e}", source.name)))
}

/// The commit of the repository the command runs in (`unknown` outside one).
fn git_commit() -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    crate::provenance::git::capture_git(&cwd).commit_or_unknown()
}
