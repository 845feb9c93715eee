//! The built-in tasks and trainer presets, embedded in the binary so that `cargo install`
//! gives a working tool anywhere (the reference crashed when started outside its repo).

pub mod llm4ad;
mod trainers;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::task::{Task, TaskError, parse_manifest};

pub use trainers::{ExternalSpec, KnobSpec, TrainerPreset, UNIVERSAL_KNOBS};

/// Suites in the order `list-tasks` prints them (the reference's fixed order).
pub const SUITE_ORDER: &[&str] = &[
    "llm4ad",
    "trace_examples",
    "internal",
    "veribench",
    "hf",
    "terminal_bench",
];

macro_rules! embedded {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $path)))),*]
    };
}

/// Task manifests shipped with the binary.
const TASK_FILES: &[(&str, &str)] = embedded!(
    "tasks/trace_examples/greeting_stub.yaml",
    "tasks/trace_examples/train_single_node_stub.yaml",
    "tasks/trace_examples/opentrace_greeting.yaml",
    "tasks/trace_examples/opentrace_train_single_node.yaml",
    "tasks/internal/code_param.yaml",
    "tasks/internal/numeric_param.yaml",
    "tasks/internal/multi_param.yaml",
    "tasks/internal/non_trainable.yaml",
    "tasks/internal/multiobjective_convex.yaml",
    "tasks/veribench/smoke_placeholder.yaml",
);

/// Task folders shipped with the binary (a `task.yaml` plus the evaluator's files); they
/// are unpacked to a content-addressed directory in the user's cache on first use.
const TASK_FOLDER_FILES: &[(&str, &str)] = embedded!(
    "tasks/llm4ad/circle_packing/task.yaml",
    "tasks/llm4ad/circle_packing/score.py",
    "tasks/llm4ad/online_bin_packing/task.yaml",
    "tasks/llm4ad/online_bin_packing/score.py",
    "tasks/llm4ad/online_bin_packing/instances.json",
    "tasks/llm4ad/tsp_construct/task.yaml",
    "tasks/llm4ad/tsp_construct/score.py",
    "tasks/llm4ad/tsp_construct/instances.json",
    "tasks/internal/multiobjective_bbeh/task.yaml",
    "tasks/internal/multiobjective_bbeh/pal.py",
    "tasks/internal/multiobjective_gsm8k/task.yaml",
    "tasks/internal/multiobjective_gsm8k/embedded.jsonl",
    "tasks/datasets/arithmetic/task.yaml",
    "tasks/datasets/arithmetic/train.jsonl",
    "tasks/datasets/arithmetic/validation.jsonl",
    "tasks/datasets/arithmetic/test.jsonl",
    "tasks/datasets/factual_qa/task.yaml",
    "tasks/datasets/factual_qa/train.jsonl",
    "tasks/datasets/factual_qa/validation.jsonl",
    "tasks/datasets/factual_qa/test.jsonl",
    "tasks/llm4ad_bridge/bridge.py",
    "tasks/llm4ad_bridge/discover.py",
    "tasks/llm4ad_bridge/confine.py",
    "trainers/external/tb_client.py",
    "trainers/external/dspy_trainer.py",
    "trainers/external/gepa_trainer.py",
    "trainers/external/openevolve_trainer.py",
);

/// Where the external trainers' programs and `tb_client.py` are unpacked.
const EXTERNAL_TRAINERS_DIR: &str = "trainers/external";

/// Where the LLM4AD bridge's files are unpacked (inside the embedded folders' root).
const LLM4AD_BRIDGE_DIR: &str = "tasks/llm4ad_bridge";

/// Trainer presets shipped with the binary.
const TRAINER_FILES: &[(&str, &str)] = embedded!(
    "trainers/PrioritySearch.yaml",
    "trainers/GEPA-Base.yaml",
    "trainers/GEPA-UCB.yaml",
    "trainers/GEPA-Beam.yaml",
    "trainers/GEPA.yaml",
    "trainers/MinibatchAlgorithm.yaml",
    "trainers/BasicSearch.yaml",
    "trainers/AggregatedUpdate.yaml",
    "trainers/NoOp.yaml",
    "trainers/Rescore.yaml",
    "trainers/DSPyTrainer.yaml",
    "trainers/UpstreamGEPA.yaml",
    "trainers/POLCA.yaml",
    "trainers/StreamingPrioritySearch.yaml",
    "trainers/ParetobasedPS.yaml",
    "trainers/PrioritySearch_with_Regressor.yaml",
    "trainers/SequentialUpdate.yaml",
    "trainers/SequentialSearch.yaml",
    "trainers/BeamSearch.yaml",
    "trainers/BeamsearchAlgorithm.yaml",
    "trainers/BeamsearchHistoryAlgorithm.yaml",
    "trainers/UCBSearchAlgorithm.yaml",
    "trainers/TextGradTrainer.yaml",
    "trainers/OpenEvolveTrainer.yaml",
);

/// The embedded task folders, unpacked: evaluators are programs that need real files.
/// The directory name is a hash of the contents, so versions never mix and concurrent
/// processes write identical files (atomically). If unpacking fails the tasks stay listed
/// but their jobs are skipped with the reason.
fn embedded_folder_tasks() -> Vec<Arc<Task>> {
    let (root, unpack_error) = unpacked();
    TASK_FOLDER_FILES
        .iter()
        .filter(|(path, _)| path.ends_with("/task.yaml"))
        .map(|(path, text)| {
            let mut manifest =
                parse_manifest(path, text).unwrap_or_else(|e| panic!("embedded task: {e}"));
            if manifest.skip_reason.is_none() {
                manifest.skip_reason = unpack_error.clone();
            }
            let dir = root.join(path);
            let dir = dir.parent().unwrap_or(root);
            Arc::new(
                Task::from_folder(manifest, Some(dir))
                    .unwrap_or_else(|e| panic!("embedded task: {e}")),
            )
        })
        .collect()
}

/// The embedded task folders, unpacked once per process: their root, and why they could
/// not be unpacked (then nothing was written, and their tasks are skipped with it).
fn unpacked() -> &'static (PathBuf, Option<String>) {
    static UNPACKED: std::sync::OnceLock<(PathBuf, Option<String>)> = std::sync::OnceLock::new();
    UNPACKED.get_or_init(unpack_embedded)
}

fn unpack_embedded() -> (PathBuf, Option<String>) {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (path, text) in TASK_FOLDER_FILES {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
    }
    let digest: String = hasher.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // Without a safe place the tasks stay listed, skipped with the reason; nothing is
    // written (or read) anywhere else.
    let (root, mut unpack_error) = match unpack_root(&digest) {
        Ok(root) => (root, None),
        Err(e) => (PathBuf::from("/nonexistent/trace-bench-tasks"), Some(e)),
    };
    let to_write: &[(&str, &str)] = if unpack_error.is_none() {
        TASK_FOLDER_FILES
    } else {
        &[]
    };
    for (path, text) in to_write {
        let target = root.join(path);
        let same = std::fs::read_to_string(&target).is_ok_and(|t| t == *text);
        if !same && let Err(e) = crate::artifacts::atomic::write_atomic(&target, text.as_bytes()) {
            unpack_error.get_or_insert(format!(
                "cannot unpack the task's files to `{}`: {e}",
                root.display()
            ));
        }
    }
    (root, unpack_error)
}

/// Where the embedded external-trainer programs and `tb_client.py` are (unpacked with the
/// task folders; every external trainer's child has it on `PYTHONPATH`).
pub fn external_client_dir() -> PathBuf {
    unpacked().0.join(EXTERNAL_TRAINERS_DIR)
}

/// Why the embedded files could not be unpacked, if they could not.
pub fn unpack_problem() -> Option<String> {
    unpacked().1.clone()
}

/// Where embedded task folders are unpacked: the user's cache (`$XDG_CACHE_HOME` or
/// `~/.cache`) `/trace-bench/tasks-<digest>`, else a private (0700, owned by us) directory
/// under the system temp dir. Never a shared path another user could have prepared:
/// evaluators run the files found there.
fn unpack_root(digest: &str) -> Result<PathBuf, String> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(cache) = var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache"))) {
        return Ok(cache.join("trace-bench").join(format!("tasks-{digest}")));
    }
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let probe = tempfile::tempfile().map_err(|e| format!("cannot use the temp dir: {e}"))?;
    let uid = probe.metadata().map_err(|e| e.to_string())?.uid();
    let dir = std::env::temp_dir().join(format!("trace-bench-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| e.to_string())?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(format!(
            "`{}` is not a private directory of this user; set HOME or XDG_CACHE_HOME",
            dir.display()
        ));
    }
    Ok(dir.join(format!("tasks-{digest}")))
}

/// `dir` made absolute (programs run in their own working directories); an error unless it
/// is a directory.
fn existing_dir(dir: &Path) -> Result<PathBuf, RegistryError> {
    dir.canonicalize()
        .ok()
        .filter(|d| d.is_dir())
        .ok_or_else(|| RegistryError::NotADirectory(dir.to_path_buf()))
}

/// Every `task.yaml` under `dir`.
fn find_manifests(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            find_manifests(&path, out)?;
        } else if path.file_name().is_some_and(|n| n == "task.yaml") {
            out.push(path);
        }
    }
    Ok(())
}

/// Why user task folders cannot be added.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A `--tasks-dir` / `tasks_dir` that is not a directory.
    #[error("tasks dir `{}` is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// A folder that cannot be listed.
    #[error("cannot read tasks dir `{}`: {source}", dir.display())]
    ReadDir {
        /// The folder.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A manifest that cannot be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// The `task.yaml`.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A manifest that does not decode (the message names the file and line).
    #[error(transparent)]
    Manifest(#[from] TaskError),
    /// A trainer preset that does not decode.
    #[error("invalid trainer preset {0}")]
    Preset(#[source] crate::config::ConfigError),
    /// A trainer folder's preset that names an id already known.
    #[error("`{}`: trainer id `{id}` is already defined (ids and aliases must be unique)", path.display())]
    DuplicateTrainer {
        /// The preset file.
        path: PathBuf,
        /// The id or alias.
        id: String,
    },
    /// A trainer folder's preset that is not an external trainer.
    #[error("`{}`: a trainer folder's preset must have `algorithm: external` and an `external:` block with its `command` (docs/external-trainers.md)", path.display())]
    NotExternal {
        /// The preset file.
        path: PathBuf,
    },
    /// Two tasks with one id.
    #[error("`{}`: task id `{id}` is already defined (ids must be unique)", path.display())]
    DuplicateId {
        /// The second `task.yaml`.
        path: PathBuf,
        /// The id.
        id: String,
    },
    /// A manifest that decodes but does not make a task.
    #[error("`{}`: {source}", path.display())]
    Task {
        /// The `task.yaml`.
        path: PathBuf,
        /// What is wrong.
        source: TaskError,
    },
}

/// Known tasks and trainers.
#[derive(Debug, Clone)]
pub struct Registry {
    tasks: Vec<Arc<Task>>,
    trainers: Vec<TrainerPreset>,
    /// What LLM4AD discovery found, once it ran ([`Registry::with_llm4ad`]).
    llm4ad: Option<Arc<Result<llm4ad::Discovery, String>>>,
}

impl Registry {
    /// The embedded tasks and presets. They are tested to load, so a failure is a bug.
    pub fn builtin() -> Self {
        let mut tasks: Vec<Arc<Task>> = TASK_FILES
            .iter()
            .map(|(name, text)| {
                let manifest =
                    parse_manifest(name, text).unwrap_or_else(|e| panic!("embedded task: {e}"));
                Arc::new(
                    Task::from_manifest(manifest).unwrap_or_else(|e| panic!("embedded task: {e}")),
                )
            })
            .collect();
        tasks.extend(embedded_folder_tasks());
        tasks.extend(crate::task::hf::tasks().into_iter().map(Arc::new));
        tasks.sort_by_key(|t| suite_rank(t.manifest.suite()));
        let client_dir = external_client_dir();
        let mut trainers: Vec<TrainerPreset> = TRAINER_FILES
            .iter()
            .map(|(name, text)| {
                let mut preset = TrainerPreset::parse(name, text)
                    .unwrap_or_else(|e| panic!("embedded trainer: {e}"));
                if let Some(external) = &mut preset.external {
                    external.dir = Some(client_dir.clone());
                }
                preset
            })
            .collect();
        trainers.sort_by(|a, b| a.id.cmp(&b.id));
        Self {
            tasks,
            trainers,
            llm4ad: None,
        }
    }

    /// This registry plus the LLM4AD tasks of `sources` (docs/tasks.md, "LLM4AD"): a
    /// discovered task replaces an embedded one of the same id (folder, then upstream,
    /// then embedded). When discovery fails, the registry is unchanged and the reason is
    /// kept for the skip messages of `llm4ad:` ids.
    pub fn with_llm4ad(&self, sources: &llm4ad::Llm4adSources) -> Self {
        let mut out = self.clone();
        let (root, unpack_error) = unpacked();
        let bridge_dir = root.join(LLM4AD_BRIDGE_DIR);
        let discovery = match unpack_error {
            Some(e) => Err(e.clone()),
            None => llm4ad::discover(sources, &bridge_dir),
        };
        if let Ok(d) = &discovery {
            for found in &d.tasks {
                let Ok(task) = llm4ad::task(found, d, &bridge_dir) else {
                    continue;
                };
                out.tasks.retain(|t| t.id() != task.id());
                out.tasks.push(Arc::new(task));
            }
            out.tasks.sort_by_key(|t| suite_rank(t.manifest.suite()));
        }
        out.llm4ad = Some(Arc::new(discovery));
        out
    }

    /// What LLM4AD discovery found, if it ran.
    pub fn llm4ad_discovery(&self) -> Option<&Result<llm4ad::Discovery, String>> {
        self.llm4ad.as_deref()
    }

    /// Why a task id this registry does not have cannot run, with the fix where one is
    /// known (LLM4AD ids name the package to install or the folder to pass).
    pub fn missing_reason(&self, id: &str) -> String {
        match crate::task::manifest_suite(id) {
            "llm4ad" => llm4ad::missing_reason(id, self.llm4ad.as_deref()),
            "veribench" => format!(
                "task `{id}` needs the reference's VeriBench harness, which this build does not include"
            ),
            "terminal_bench" => format!(
                "task `{id}` needs the reference's Terminal-Bench (Harbor) harness, which this build does not include"
            ),
            _ => format!("task `{id}` is not available in this build"),
        }
    }

    /// This registry plus the task folders under `dirs`: every `task.yaml` found (at any
    /// depth) is a task whose folder holds its files (docs/tasks.md). An id that is
    /// already known, or a manifest that does not load, is an error naming the file.
    pub fn with_task_dirs(&self, dirs: &[PathBuf]) -> Result<Self, RegistryError> {
        let mut out = self.clone();
        for dir in dirs {
            // Absolute, because evaluators run in their own working directories.
            let dir = &existing_dir(dir)?;
            let mut manifests = Vec::new();
            find_manifests(dir, &mut manifests).map_err(|source| RegistryError::ReadDir {
                dir: dir.clone(),
                source,
            })?;
            manifests.sort();
            for path in manifests {
                let text =
                    std::fs::read_to_string(&path).map_err(|source| RegistryError::Read {
                        path: path.clone(),
                        source,
                    })?;
                let manifest = parse_manifest(&path.display().to_string(), &text)?;
                if out.tasks.iter().any(|t| t.id() == manifest.id) {
                    return Err(RegistryError::DuplicateId {
                        path,
                        id: manifest.id,
                    });
                }
                let task = Task::from_folder(manifest, path.parent()).map_err(|source| {
                    RegistryError::Task {
                        path: path.clone(),
                        source,
                    }
                })?;
                out.tasks.push(Arc::new(task));
            }
        }
        out.tasks.sort_by_key(|t| suite_rank(t.manifest.suite()));
        Ok(out)
    }

    /// This registry plus the external trainers under `dirs` (`--trainers-dir`): every
    /// `*.yaml` directly in a folder is a preset with `algorithm: external` whose
    /// program lives in that folder (`{dir}`). An id or alias already known, or a preset
    /// that does not load, is an error naming the file.
    pub fn with_trainer_dirs(&self, dirs: &[PathBuf]) -> Result<Self, RegistryError> {
        let mut out = self.clone();
        for dir in dirs {
            let dir = &existing_dir(dir)?;
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|source| RegistryError::ReadDir {
                    dir: dir.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            files.sort();
            for path in files {
                let text =
                    std::fs::read_to_string(&path).map_err(|source| RegistryError::Read {
                        path: path.clone(),
                        source,
                    })?;
                let mut preset = TrainerPreset::parse(&path.display().to_string(), &text)?;
                let Some(external) = &mut preset.external else {
                    return Err(RegistryError::NotExternal { path });
                };
                if preset.algorithm != "external" {
                    return Err(RegistryError::NotExternal { path });
                }
                external.dir = Some(dir.clone());
                let names = std::iter::once(&preset.id).chain(&preset.id_aliases);
                for name in names {
                    if out.trainer(name).is_some() {
                        return Err(RegistryError::DuplicateTrainer {
                            path: path.clone(),
                            id: name.clone(),
                        });
                    }
                }
                out.trainers.push(preset);
            }
        }
        out.trainers.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Tasks grouped by suite in [`SUITE_ORDER`], declaration order within a suite.
    pub fn tasks(&self) -> &[Arc<Task>] {
        &self.tasks
    }

    /// A task by id.
    pub fn task(&self, id: &str) -> Option<Arc<Task>> {
        self.tasks.iter().find(|t| t.id() == id).cloned()
    }

    /// Trainer presets sorted by id.
    pub fn trainers(&self) -> &[TrainerPreset] {
        &self.trainers
    }

    /// A trainer preset by id.
    pub fn trainer(&self, id: &str) -> Option<&TrainerPreset> {
        self.trainers
            .iter()
            .find(|t| t.id == id || t.id_aliases.iter().any(|a| a == id))
    }

    /// All task ids.
    pub fn task_ids(&self) -> impl Iterator<Item = &str> {
        self.tasks.iter().map(|t| t.id())
    }

    /// All trainer ids.
    pub fn trainer_ids(&self) -> impl Iterator<Item = &str> {
        self.trainers.iter().map(|t| t.id.as_str())
    }
}

fn suite_rank(suite: &str) -> usize {
    SUITE_ORDER
        .iter()
        .position(|s| *s == suite)
        .unwrap_or(SUITE_ORDER.len())
}

/// A `--bench` selector names suites that do not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown bench selector(s): {}; allowed: {}",
    unknown.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "),
    allowed.join(", ")
)]
pub struct UnknownSuites {
    /// The names that are not suites.
    pub unknown: Vec<String>,
    /// The suites there are.
    pub allowed: Vec<String>,
}

/// Parse a `--bench` selector (`internal,trace_examples` or `internal+veribench`).
pub fn parse_bench_selector(selector: &str) -> Result<Vec<String>, UnknownSuites> {
    parse_selector(selector, SUITE_ORDER)
}

fn parse_selector(selector: &str, allowed: &[&str]) -> Result<Vec<String>, UnknownSuites> {
    let parts: Vec<String> = selector
        .split([',', '+'])
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let unknown: Vec<String> = parts
        .iter()
        .filter(|p| !allowed.contains(&p.as_str()))
        .cloned()
        .collect();
    if unknown.is_empty() {
        Ok(parts)
    } else {
        Err(UnknownSuites {
            unknown,
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
        })
    }
}

impl Registry {
    /// [`parse_bench_selector`] that also accepts the suites of user tasks.
    pub fn bench_selector(&self, selector: &str) -> Result<Vec<String>, UnknownSuites> {
        let mut allowed: Vec<&str> = SUITE_ORDER.to_vec();
        for t in &self.tasks {
            let suite = t.manifest.suite();
            if !allowed.contains(&suite) {
                allowed.push(suite);
            }
        }
        parse_selector(selector, &allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_file_loads_and_ids_are_unique() {
        let reg = Registry::builtin();
        let folders = TASK_FOLDER_FILES
            .iter()
            .filter(|(p, _)| p.ends_with("/task.yaml"))
            .count();
        let hf = crate::task::hf::catalog::listed_ids().len();
        assert_eq!(reg.tasks().len(), TASK_FILES.len() + folders + hf);
        let mut ids: Vec<&str> = reg.task_ids().collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), TASK_FILES.len() + folders + hf);
        let cp = reg.task("llm4ad:circle_packing").unwrap();
        assert_eq!(cp.evaluator_kind().as_str(), "command");
        assert!(
            cp.dir.as_ref().unwrap().join("score.py").is_file(),
            "unpacked"
        );
        assert_eq!(
            reg.trainer_ids().collect::<Vec<_>>(),
            [
                "AggregatedUpdate",
                "BasicSearch",
                "BeamSearch",
                "BeamsearchAlgorithm",
                "BeamsearchHistoryAlgorithm",
                "DSPyTrainer",
                "GEPA",
                "GEPA-Base",
                "GEPA-Beam",
                "GEPA-UCB",
                "MinibatchAlgorithm",
                "NoOp",
                "OpenEvolveTrainer",
                "POLCA",
                "ParetobasedPS",
                "PrioritySearch",
                "PrioritySearch_with_Regressor",
                "Rescore",
                "SequentialSearch",
                "SequentialUpdate",
                "StreamingPrioritySearch",
                "TextGradTrainer",
                "UCBSearchAlgorithm",
                "UpstreamGEPA"
            ]
        );
        for t in reg.trainers() {
            for (k, v) in &t.defaults {
                assert!(
                    t.has_knob(k),
                    "{}: default `{k}` is not a documented knob",
                    t.id
                );
                assert_eq!(
                    t.knobs.iter().find(|s| &s.name == k).map(|s| &s.default),
                    Some(v),
                    "{}: {k}",
                    t.id
                );
            }
            // Every preset names a real algorithm and its documented defaults are valid.
            crate::trainer::Algorithm::from_preset(t, &t.resolve(&crate::vocab::Kwargs::new()))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(reg.trainer(&t.id).map(|p| &p.id), Some(&t.id));
            for alias in &t.id_aliases {
                assert_eq!(reg.trainer(alias).map(|p| &p.id), Some(&t.id));
            }
        }
    }

    #[test]
    fn the_shipped_datasets_load_from_their_jsonl_files() {
        let reg = Registry::builtin();
        for id in ["datasets:arithmetic", "datasets:factual_qa"] {
            let task = reg.task(id).unwrap();
            assert_eq!(task.evaluator_kind().as_str(), "dataset");
            let s = &task.manifest.splits;
            assert_eq!(
                (s.train.len(), s.validation.len(), s.test.len()),
                (16, 12, 8)
            );
            // The stub agent gets nothing right without a hint in the prompt, and every
            // example of a category right with its hint.
            let all: Vec<&crate::task::Example> =
                s.train.iter().chain(&s.validation).chain(&s.test).collect();
            let split = crate::task::SplitName::Train;
            let initial = task.evaluate(&task.initial_values(), split, &all);
            assert_eq!(initial.score, Some(0.0), "{id}: {}", initial.summary);
            for ex in &all {
                let hint = ex.info["hint"].as_str().unwrap();
                let mut values = task.initial_values();
                values.insert("prompt".into(), serde_json::json!(hint));
                let e = task.evaluate(&values, split, &[ex]);
                assert_eq!(e.score, Some(1.0), "{id}: {}", e.summary);
            }
        }
    }

    #[test]
    fn bench_selectors_are_checked() {
        assert_eq!(
            parse_bench_selector("internal+veribench").unwrap(),
            ["internal", "veribench"]
        );
        assert!(
            parse_bench_selector("internal,nope")
                .unwrap_err()
                .to_string()
                .contains("`nope`")
        );
    }
}
