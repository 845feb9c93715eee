//! The spec: a decoded config checked against the registry — task and trainer ids,
//! knobs, optimizer names, the `llm` block, objective modes — and resolved into the typed
//! parts a run consumes: the LLM settings, the executor, the MLflow block, the task and
//! trainer sources (ripgrep's `HiArgs::from_low_args` is the model: nothing above this
//! stage decodes a config value again). A stage above `registry`, `trainer` and `llm` (it
//! asks each whether a value is valid), below the runner.

mod check;
mod executor;
mod sources;

use std::path::Path;

pub use check::*;
pub use executor::{Executor, SlurmOptions};
pub use sources::Sources;

use crate::config::diag::Diagnostic;
use crate::config::model::{Config, MlflowConfig};
use crate::llm::settings::LlmSettings;
use crate::registry::Registry;
use crate::registry::llm4ad::Llm4adSources;

/// A checked config with its runtime parts decoded once.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The decoded document: what `meta/config.snapshot.yaml` records and the matrix is
    /// expanded from.
    pub config: Config,
    /// Real mode's `llm` settings; `None` in stub mode (or when they do not decode: an
    /// error of the check).
    pub llm: Option<LlmSettings>,
    /// Where the jobs run.
    pub executor: Executor,
    /// The live MLflow mirror the config asks for (`mlflow:`), its URI checked.
    pub mlflow: Option<MlflowConfig>,
    /// Where tasks and trainers come from, resolved.
    pub sources: Sources,
}

/// What [`check`] needs besides the config and the registry.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// Whether strict-relevant warnings are errors (`--strict`).
    pub strict: bool,
    /// The config file's folder: its relative paths resolve from here.
    pub base_dir: &'a Path,
    /// The command line's LLM4AD sources (`--root`, `--llm4ad-python`), which win.
    pub llm4ad: &'a Llm4adSources,
}

/// The result of [`check`]: the spec (built even when there are errors, for `validate` to
/// show), the registry with the config's sources added, and every problem found.
#[derive(Debug)]
pub struct Checked {
    /// The spec.
    pub spec: Spec,
    /// `registry` plus the config's task and trainer folders and LLM4AD tasks.
    pub registry: Registry,
    /// Every problem, located.
    pub diagnostics: Vec<Diagnostic>,
}

/// Resolve the config's sources into the registry, check the config against it, and
/// decode its runtime parts once.
pub fn check(config: Config, registry: &Registry, inputs: Inputs<'_>) -> Checked {
    let mut diagnostics = Vec::new();
    let sources = Sources::resolve(&config, inputs.base_dir, inputs.llm4ad);
    let registry = sources.registry(registry, &config, &mut diagnostics);
    let llm = check::diagnose(&config, &registry, inputs.strict, &mut diagnostics);
    let spec = Spec {
        llm,
        executor: Executor::from_block(&config.executor),
        mlflow: config.mlflow.clone(),
        sources,
        config,
    };
    Checked {
        spec,
        registry,
        diagnostics,
    }
}
