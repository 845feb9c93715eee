//! Where a run's tasks and trainers come from besides the embedded ones: the config's
//! `tasks_dir` and `trainers_dir` folders and LLM4AD's sources (`llm4ad_root`,
//! `llm4ad_python`; the command line's `--root` / `--llm4ad-python` win), resolved once
//! (paths relative to the config file) and added to the registry; and the Python external
//! trainers run with (`external_python`).

use std::path::{Path, PathBuf};

use crate::config::diag::Diagnostic;
use crate::config::model::Config;
use crate::registry::Registry;
use crate::registry::llm4ad::Llm4adSources;

/// The resolved sources of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sources {
    /// The config's `tasks_dir` folders, relative to the config file's folder.
    pub tasks_dirs: Vec<PathBuf>,
    /// The config's `trainers_dir` folders, relative to the config file's folder.
    pub trainers_dirs: Vec<PathBuf>,
    /// LLM4AD's root and Python: the command line's, else the config's.
    pub llm4ad: Llm4adSources,
    /// The Python external trainers run with (`external_python`, which
    /// `--external-python` sets), if any.
    pub external_python: Option<String>,
}

impl Sources {
    /// Resolve the config's sources: relative paths from `base` (the config file's
    /// folder), the command line's LLM4AD sources over the config's.
    pub fn resolve(config: &Config, base: &Path, cli_llm4ad: &Llm4adSources) -> Self {
        Self {
            tasks_dirs: config.tasks_dir.iter().map(|d| base.join(d)).collect(),
            trainers_dirs: config.trainers_dir.iter().map(|d| base.join(d)).collect(),
            llm4ad: Llm4adSources {
                root: cli_llm4ad
                    .root
                    .clone()
                    .or_else(|| config.llm4ad_root.as_ref().map(|r| base.join(r))),
                python: cli_llm4ad
                    .python
                    .clone()
                    .or_else(|| config.llm4ad_python.clone()),
            },
            external_python: config.external_python.clone(),
        }
    }

    /// `registry` plus these folders and, when the config names LLM4AD tasks the registry
    /// lacks or an LLM4AD root is given, the discovered LLM4AD tasks. A folder that cannot
    /// be loaded is an error located at its key (the registry is returned without it).
    pub fn registry(
        &self,
        registry: &Registry,
        config: &Config,
        out: &mut Vec<Diagnostic>,
    ) -> Registry {
        let located = |key: &str, e: crate::registry::RegistryError| {
            Diagnostic::error(
                key,
                config.spans.get(key).copied().unwrap_or_default(),
                e.to_string(),
            )
        };
        let mut registry = registry.clone();
        match registry.with_task_dirs(&self.tasks_dirs) {
            Ok(r) => registry = r,
            Err(e) => out.push(located("tasks_dir", e).with_hint(
                "a folder of task folders (each with a task.yaml), relative to the config file",
            )),
        }
        match registry.with_trainer_dirs(&self.trainers_dirs) {
            Ok(r) => registry = r,
            Err(e) => out.push(located("trainers_dir", e).with_hint(
                "a folder of trainer folders (docs/external-trainers.md), relative to the config file",
            )),
        }
        let wanted = config.tasks.iter().any(|t| {
            crate::task::manifest_suite(&t.id) == "llm4ad" && registry.task(&t.id).is_none()
        });
        if self.llm4ad.root.is_some() || wanted {
            registry = registry.with_llm4ad(&self.llm4ad);
        }
        registry
    }
}
