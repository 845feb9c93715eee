//! The task manifest format (one YAML file per task, documented in `docs/tasks.md`).

use serde::{Deserialize, Serialize};

use super::{Param, Splits};

/// How a task is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvaluatorKind {
    /// Evaluated in Rust (`evaluator.name` picks which).
    Builtin,
    /// Any program, run per evaluation in a fresh working directory.
    Command,
    /// An agent answers JSONL examples with the prompt (docs/tasks.md).
    Dataset,
    /// A Hugging Face QA dataset from the hub cache, scored as the reference does.
    Hf,
}

impl EvaluatorKind {
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EvaluatorKind::Builtin => "builtin",
            EvaluatorKind::Command => "command",
            EvaluatorKind::Dataset => "dataset",
            EvaluatorKind::Hf => "hf",
        }
    }
}

/// How a task scores a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluatorSpec {
    /// Which kind of evaluator (decided once, when the manifest is read).
    pub kind: EvaluatorKind,
    /// Which built-in evaluator (`builtin`).
    #[serde(default)]
    pub name: String,
    /// Program and arguments; `{task_dir}` is replaced by the task folder (`command`).
    #[serde(default)]
    pub command: Vec<String>,
    /// Per-evaluation limit in seconds (`command`; default 10, `eval_kwargs.timeout_seconds`
    /// overrides it).
    #[serde(default)]
    pub timeout_seconds: Option<f64>,
    /// Keep one evaluator process per job (`command`): it reads one request per line on
    /// stdin and answers one verdict per line on stdout (docs/tasks.md).
    #[serde(default)]
    pub serve: bool,
    /// Score of a candidate whose evaluation fails (`command`; required).
    #[serde(default)]
    pub failure_score: Option<f64>,
    /// Task-folder files copied into each evaluation's working directory (`command`).
    #[serde(default)]
    pub visible_files: Vec<String>,
    /// File extension of code parameters written for the program (`command`; default `py`).
    #[serde(default)]
    pub code_extension: Option<String>,
    /// How answers are scored (`dataset`: `exact_match`, `contains`, `numeric`, `regex`).
    #[serde(default)]
    pub metric: Option<String>,
    /// Absolute tolerance of the `numeric` metric (`dataset`; default 1e-6).
    #[serde(default)]
    pub tolerance: Option<f64>,
    /// JSONL files of the splits, relative to the task folder (`dataset`; `train` required).
    #[serde(default)]
    pub data: Option<super::dataset::DataFiles>,
}

/// A task as described on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskManifest {
    /// `suite:name`.
    pub id: String,
    /// One line for `list-tasks --json`.
    pub description: String,
    /// The sentence the optimizer is given as its instruction.
    pub objective: String,
    /// Parameters in declaration order.
    #[serde(default)]
    pub parameters: Vec<Param>,
    /// Examples.
    #[serde(default)]
    pub splits: Splits,
    /// The scorer.
    pub evaluator: EvaluatorSpec,
    /// How many past rounds the optimizer prompt may include.
    #[serde(default = "default_memory")]
    pub memory_size: u32,
    /// Set for tasks that cannot run here; jobs are reported `skipped` with this reason.
    #[serde(default)]
    pub skip_reason: Option<String>,
    /// How a multi-objective task's metrics become its score (docs/tasks.md).
    #[serde(default)]
    pub objective_config: Option<super::ObjectiveConfig>,
    /// Programs (`python3`) and modules (`python3:numpy`) the evaluator needs; without
    /// them the task's jobs are `skipped` with the reason.
    #[serde(default)]
    pub requires: Vec<String>,
    /// Examples drawn per job from a pool (the multi-objective tasks; docs/tasks.md).
    #[serde(default)]
    pub sample: Option<super::sample::SampleSpec>,
}

fn default_memory() -> u32 {
    5
}

impl TaskManifest {
    /// The suite: the part of the id before the first `:`.
    pub fn suite(&self) -> &str {
        suite_of(&self.id)
    }
}

/// The suite of a task id (`llm4ad` when there is no colon, as in the reference).
pub fn suite_of(id: &str) -> &str {
    id.split_once(':').map_or("llm4ad", |(s, _)| s)
}

/// Parse a manifest's YAML text.
pub fn parse_manifest(name: &str, text: &str) -> Result<TaskManifest, super::TaskError> {
    crate::config::decode_yaml(name, text).map_err(super::TaskError::Manifest)
}
