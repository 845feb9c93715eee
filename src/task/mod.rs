//! Tasks: trainable parameters, data splits and an evaluator returning a score and the
//! feedback text an optimizer reads.
//!
//! A task is immutable once loaded; a job's parameter values live in the trainer's
//! candidates, so no job can leak trained state into another (a defect of the reference,
//! which cached and mutated one task object across jobs).

pub mod agent;
mod builtin;
pub mod command;
pub mod dataset;
pub mod hf;
pub mod manifest;
pub mod objective;
pub mod process;
pub mod requires;
pub mod sample;
pub mod server;
pub mod text;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::vocab::{Kwargs, ParamKind};

pub use manifest::{
    EvaluatorKind, EvaluatorSpec, TaskManifest, parse_manifest, suite_of as manifest_suite,
};
pub use objective::{ObjectiveConfig, ObjectiveError, ObjectiveMode};

/// Why a task cannot be bound to a job's `eval_kwargs`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BindError {
    /// An `hf:` task's data.
    #[error(transparent)]
    Hf(#[from] hf::HfError),
    /// A sampled task's pool or counts.
    #[error(transparent)]
    Sample(#[from] sample::SampleError),
    /// `eval_kwargs.params` does not fit the task's parameters.
    #[error("eval_kwargs.params: {0}")]
    Params(String),
}

impl BindError {
    /// Whether the data is simply not downloaded (the job is `skipped`, not `failed`).
    pub fn is_missing_data(&self) -> bool {
        matches!(self, BindError::Hf(e) if e.is_missing_data())
    }
}

/// One parameter of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// Name used in prompts, replies and state files.
    pub name: String,
    /// Number, text or code.
    pub kind: ParamKind,
    /// Starting value.
    pub initial: Json,
    /// Whether optimizers may change it.
    #[serde(default = "yes")]
    pub trainable: bool,
    /// What the value means (shown to the optimizer as a constraint).
    #[serde(default)]
    pub description: String,
}

fn yes() -> bool {
    true
}

/// One example: an input and the reference information the evaluator compares against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// What the agent receives.
    #[serde(default)]
    pub input: Json,
    /// The evaluator's reference (target, expected answer, ...).
    #[serde(default)]
    pub info: Json,
}

/// Train / validation / test examples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Splits {
    /// Examples the optimizer learns from.
    #[serde(default)]
    pub train: Vec<Example>,
    /// Examples for the reported score (`score_val_*`); the train split when empty.
    #[serde(default)]
    pub validation: Vec<Example>,
    /// Held-out examples, scored once with the best parameters.
    #[serde(default)]
    pub test: Vec<Example>,
}

/// Which split an evaluation ran on; the names are the reference's feedback prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitName {
    /// `train_dataset`
    Train,
    /// `validate_dataset`
    Validation,
    /// `test_dataset`
    Test,
}

impl SplitName {
    /// The reference's name for the split, used in feedback strings.
    pub fn dataset_name(self) -> &'static str {
        match self {
            SplitName::Train => "train_dataset",
            SplitName::Validation => "validate_dataset",
            SplitName::Test => "test_dataset",
        }
    }
}

/// The outcome of one example.
#[derive(Debug, Clone, PartialEq)]
pub struct ExampleResult {
    /// What the agent produced, rendered as text for prompts.
    pub output: String,
    /// The score (higher is better).
    pub score: f64,
    /// What the evaluator says about it.
    pub feedback: String,
    /// Named metrics, for multi-objective tasks (empty otherwise).
    pub metrics: BTreeMap<String, f64>,
    /// Whether a right-or-wrong example was answered right (dataset and `hf:` tasks, and
    /// command verdicts that say so); `None` when the score is a grade, not a verdict.
    pub correct: Option<bool>,
}

/// The outcome of evaluating one parameter set on a list of examples.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean score; `None` for an empty split.
    pub score: Option<f64>,
    /// The reference's summary: `<split>: mean over N examples. <first feedbacks>`.
    pub summary: String,
    /// Per-example results, in example order.
    pub examples: Vec<ExampleResult>,
    /// Mean of each metric over the examples that report it (empty for scalar tasks).
    pub metrics: BTreeMap<String, f64>,
}

/// How a task scores.
#[derive(Debug, Clone)]
enum Scorer {
    Builtin(builtin::Evaluator),
    Command(command::CommandEvaluator),
    Dataset(dataset::DatasetEvaluator),
}

/// The job's side of its evaluations: limits, and the `eval_kwargs` a command evaluator
/// receives (LLM4AD evaluators are built with them, as in the reference).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalLimits {
    /// Per-evaluation timeout overriding the manifest's (`eval_kwargs.timeout_seconds`).
    pub timeout: Option<std::time::Duration>,
    /// The job's hard deadline: no evaluator process outlives it.
    pub deadline: Option<std::time::Instant>,
    /// The job's `eval_kwargs`.
    pub eval_kwargs: Kwargs,
    /// Agent requests of one evaluation in flight at once (`num_threads`; 0 or 1: one
    /// after another). Results do not depend on it.
    pub threads: usize,
}

/// One evaluation of a batch: parameter values scored on examples of a split.
#[derive(Debug, Clone, Copy)]
pub struct EvalRequest<'r> {
    /// The parameter values.
    pub values: &'r Kwargs,
    /// The split the examples come from.
    pub split: SplitName,
    /// The examples.
    pub examples: &'r [&'r Example],
}

/// Why a task cannot be built from its manifest.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The manifest's YAML does not decode.
    #[error("invalid task manifest {0}")]
    Manifest(#[source] crate::config::ConfigError),
    /// It decodes, but describes a task that cannot be built (unknown builtin, missing
    /// command, unreadable data file, bad objective).
    #[error("task `{task}`: {problem}")]
    Invalid {
        /// The task id.
        task: String,
        /// What is wrong, with the key to fix.
        problem: String,
    },
}

/// A loaded task.
#[derive(Debug, Clone)]
pub struct Task {
    /// The manifest it was built from.
    pub manifest: TaskManifest,
    /// The folder it was loaded from (`None` for embedded tasks).
    pub dir: Option<std::path::PathBuf>,
    scorer: Scorer,
    limits: EvalLimits,
    objective_mode: ObjectiveMode,
    /// The job's agent (dataset tasks); `None`: the stub agent, uncounted.
    agent: Option<agent::AgentHandle>,
    /// Where a job's examples were read from, when that depends on the machine.
    examples_source: Option<String>,
}

impl Task {
    /// Build an embedded task from its manifest; fails when the evaluator is unknown.
    pub fn from_manifest(manifest: TaskManifest) -> Result<Self, TaskError> {
        Self::from_folder(manifest, None)
    }

    /// Build a task whose files live in `dir` (command evaluators need a folder).
    /// Dataset tasks read their data files from `dir` into the splits here.
    pub fn from_folder(
        mut manifest: TaskManifest,
        dir: Option<&std::path::Path>,
    ) -> Result<Self, TaskError> {
        let invalid = |id: &str, problem: String| TaskError::Invalid {
            task: id.to_string(),
            problem,
        };
        let scorer = match manifest.evaluator.kind {
            EvaluatorKind::Builtin => builtin::Evaluator::from_manifest(&manifest)
                .map(Scorer::Builtin)
                .map_err(|e| invalid(&manifest.id, e))?,
            EvaluatorKind::Command => command::CommandEvaluator::from_manifest(&manifest, dir)
                .map(Scorer::Command)
                .map_err(|e| invalid(&manifest.id, e))?,
            EvaluatorKind::Dataset => dataset::DatasetEvaluator::load(&mut manifest, dir)
                .map(Scorer::Dataset)
                .map_err(|e| invalid(&manifest.id, e))?,
            EvaluatorKind::Hf => {
                let kind = manifest
                    .evaluator
                    .metric
                    .as_deref()
                    .and_then(hf::task_type_named)
                    .ok_or_else(|| invalid(&manifest.id, "unknown hf task type".into()))?;
                let prompt = manifest
                    .parameters
                    .first()
                    .map(|p| p.name.clone())
                    .unwrap_or_default();
                Scorer::Dataset(dataset::DatasetEvaluator::hf(kind, &prompt))
            }
        };
        if let Some(config) = &manifest.objective_config {
            config
                .validate()
                .map_err(|e| invalid(&manifest.id, e.to_string()))?;
        }
        let objective_mode = manifest
            .objective_config
            .as_ref()
            .map(|c| c.mode)
            .unwrap_or_default();
        Ok(Self {
            manifest,
            dir: dir.map(std::path::Path::to_path_buf),
            scorer,
            limits: EvalLimits::default(),
            objective_mode,
            agent: None,
            examples_source: None,
        })
    }

    /// This task scoring its metrics in `mode` (a job's `eval_kwargs.objective_mode`).
    pub fn with_objective_mode(&self, mode: ObjectiveMode) -> Self {
        let mut task = self.clone();
        task.objective_mode = mode;
        task
    }

    /// The mode metrics are combined in.
    pub fn objective_mode(&self) -> ObjectiveMode {
        self.objective_mode
    }

    /// This task for a job with `eval_kwargs`: an `hf:` task reads its examples from the
    /// hub cache here (counts from `eval_kwargs`), a task with a `sample` block draws
    /// them from its pool; other tasks are unchanged.
    pub fn for_eval_kwargs(&self, eval_kwargs: &Kwargs) -> Result<Self, BindError> {
        let mut task = self.bound(eval_kwargs)?;
        // `rescore --split validation`: the test split is not scored.
        if eval_kwargs.get("skip_test") == Some(&Json::Bool(true)) {
            task.manifest.splits.test.clear();
        }
        match eval_kwargs.get("params") {
            None | Some(Json::Null) => Ok(task),
            Some(values) => task.starting_from(values),
        }
    }

    /// This task with other starting values (`eval_kwargs.params`: a candidate found
    /// elsewhere, or a state of another run being re-scored). Every name must be a
    /// parameter of the task and every value of its kind.
    pub fn starting_from(mut self, values: &Json) -> Result<Self, BindError> {
        let values = values
            .as_object()
            .ok_or_else(|| BindError::Params("must be a mapping of parameter: value".into()))?;
        for (name, value) in values {
            let param = self
                .manifest
                .parameters
                .iter_mut()
                .find(|p| &p.name == name)
                .ok_or_else(|| BindError::Params(format!("the task has no parameter `{name}`")))?;
            let fits = match param.kind {
                ParamKind::Number => value.is_number(),
                ParamKind::Text | ParamKind::Code => value.is_string(),
            };
            if !fits {
                return Err(BindError::Params(format!(
                    "`{name}` must be {}, found {value}",
                    match param.kind {
                        ParamKind::Number => "a number",
                        _ => "a string",
                    }
                )));
            }
            param.initial = value.clone();
        }
        Ok(self)
    }

    fn bound(&self, eval_kwargs: &Kwargs) -> Result<Self, BindError> {
        if self.manifest.evaluator.kind == EvaluatorKind::Hf {
            let mut task = hf::bind(self, eval_kwargs)?;
            task.examples_source = hf::parse_id(self.id())
                .and_then(|(entry, _)| {
                    hf::cache::snapshot(&hf::cache::hub_cache(), entry.dataset_id)
                })
                .map(|s| format!("hub cache `{}`", s.display()));
            return Ok(task);
        }
        let Some(spec) = &self.manifest.sample else {
            return Ok(self.clone());
        };
        let cwd = std::env::current_dir().unwrap_or_default();
        let (splits, source) = spec.draw(&self.manifest.splits.train, eval_kwargs, &cwd)?;
        let mut task = self.clone();
        task.manifest.splits = splits;
        task.examples_source = Some(source.to_string());
        Ok(task)
    }

    /// Where this job's examples were read from (`hf:` and sampled tasks).
    pub fn examples_source(&self) -> Option<&str> {
        self.examples_source.as_deref()
    }

    /// This task for one job: evaluations respect `limits`.
    pub fn with_limits(&self, limits: EvalLimits) -> Self {
        let mut bound = self.bind_to_job();
        bound.limits = limits;
        bound
    }

    /// A copy with this job's own running state (a fresh evaluator-server slot).
    fn bind_to_job(&self) -> Self {
        let mut task = self.clone();
        if let Scorer::Command(c) = &mut task.scorer {
            *c = c.for_job();
        }
        task
    }

    /// This task for one job: dataset examples are answered by `agent`, which counts.
    pub fn with_agent(&self, agent: agent::AgentHandle) -> Self {
        let mut task = self.clone();
        task.agent = Some(agent);
        task
    }

    /// The bound agent's exchanges since the last call (real mode), to be written.
    pub fn take_agent_exchanges(&self) -> Vec<agent::AgentExchange> {
        self.agent
            .as_ref()
            .map(agent::AgentHandle::take_exchanges)
            .unwrap_or_default()
    }

    /// The error that ended the bound agent's use, if it failed for good.
    pub fn agent_failure(&self) -> Option<crate::llm::LlmError> {
        self.agent.as_ref()?.failure()
    }

    /// Whether the task's examples are answered by an agent LLM (dataset tasks).
    pub fn uses_agent(&self) -> bool {
        matches!(self.scorer, Scorer::Dataset(_))
    }

    /// Why jobs of this task cannot run here (`skip_reason`, or a missing requirement).
    pub fn unavailable_reason(&self) -> Option<String> {
        self.manifest
            .skip_reason
            .clone()
            .or_else(|| requires::missing(&self.manifest.requires))
    }

    /// How the task is scored.
    pub fn evaluator_kind(&self) -> EvaluatorKind {
        self.manifest.evaluator.kind
    }

    /// Task id (`suite:name`).
    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    /// The parameters.
    pub fn params(&self) -> &[Param] {
        &self.manifest.parameters
    }

    /// Whether any parameter may be optimised.
    pub fn has_trainable_params(&self) -> bool {
        self.manifest.parameters.iter().any(|p| p.trainable)
    }

    /// The starting parameter values, in declaration order.
    pub fn initial_values(&self) -> Kwargs {
        self.manifest
            .parameters
            .iter()
            .map(|p| (p.name.clone(), p.initial.clone()))
            .collect()
    }

    /// The split the reported `score_val_*` columns use: validation, else train.
    pub fn eval_split(&self) -> (SplitName, &[Example]) {
        let s = &self.manifest.splits;
        if s.validation.is_empty() {
            (SplitName::Train, &s.train)
        } else {
            (SplitName::Validation, &s.validation)
        }
    }

    /// Score a reply to one example without running the task's agent (an external
    /// trainer's library ran the task program itself); `None` when the task's scorer runs
    /// its own program (builtin and command evaluators score parameters, not replies).
    pub fn score_reply(&self, reply: &str, example: &Example) -> Option<ExampleResult> {
        match &self.scorer {
            Scorer::Dataset(d) => {
                Some(self.apply_objective(d.score_answer(reply, example, &self.limits)))
            }
            Scorer::Builtin(_) | Scorer::Command(_) => None,
        }
    }

    /// What the job's agent has spent so far (zero without one).
    pub fn agent_usage(&self) -> agent::AgentUsage {
        self.agent.as_ref().map(|a| a.usage()).unwrap_or_default()
    }

    /// The parameter a dataset task sends as its agent's system message (its prompt).
    pub fn prompt_param(&self) -> Option<&str> {
        match &self.scorer {
            Scorer::Dataset(d) => Some(d.prompt_param()),
            Scorer::Builtin(_) | Scorer::Command(_) => None,
        }
    }

    /// Evaluate `values` on `examples`, summarised like the reference does.
    pub fn evaluate(&self, values: &Kwargs, split: SplitName, examples: &[&Example]) -> Evaluation {
        let request = EvalRequest {
            values,
            split,
            examples,
        };
        self.evaluate_batch(&[request])
            .pop()
            .unwrap_or_else(|| unreachable!("one request, one evaluation"))
    }

    /// Independent evaluations at once: every example of every request, up to
    /// `num_threads` at a time (agent calls numbered in request order; command
    /// evaluations on as many processes); each the same [`Evaluation`] as alone.
    pub fn evaluate_batch(&self, batch: &[EvalRequest<'_>]) -> Vec<Evaluation> {
        let params = &self.manifest.parameters;
        let results: Vec<Vec<ExampleResult>> = match &self.scorer {
            Scorer::Dataset(d) => {
                let asks: Vec<(&Kwargs, &[&Example])> =
                    batch.iter().map(|r| (r.values, r.examples)).collect();
                d.evaluate_batch(&asks, self.agent.as_ref(), &self.limits)
            }
            Scorer::Builtin(e) => batch
                .iter()
                .map(|r| {
                    r.examples
                        .iter()
                        .map(|ex| e.evaluate(params, r.values, ex))
                        .collect()
                })
                .collect(),
            Scorer::Command(c) => {
                let pairs: Vec<(&EvalRequest<'_>, &Example)> = batch
                    .iter()
                    .flat_map(|r| r.examples.iter().map(move |ex| (r, *ex)))
                    .collect();
                let mut flat = crate::par::map_ordered(
                    &pairs,
                    self.limits.threads,
                    |_| (),
                    |_, (r, ex)| c.evaluate(params, r.values, ex, r.split, &self.limits),
                )
                .into_iter();
                batch
                    .iter()
                    .map(|r| flat.by_ref().take(r.examples.len()).collect())
                    .collect()
            }
        };
        batch
            .iter()
            .zip(results)
            .map(|(r, results)| self.summarise(r.split, results))
            .collect()
    }

    /// One evaluation's results as the reference summarises them (after the objective).
    fn summarise(&self, split: SplitName, results: Vec<ExampleResult>) -> Evaluation {
        let results: Vec<ExampleResult> = results
            .into_iter()
            .map(|r| self.apply_objective(r))
            .collect();
        let name = split.dataset_name();
        if results.is_empty() {
            return Evaluation {
                score: None,
                summary: format!("{name}: empty_dataset"),
                examples: results,
                metrics: BTreeMap::new(),
            };
        }
        let metrics = mean_metrics(&results);
        let mean = results.iter().map(|r| r.score).sum::<f64>() / results.len() as f64;
        let mut summary = format!("{name}: mean over {} examples. ", results.len());
        let firsts: Vec<&str> = results
            .iter()
            .take(3)
            .map(|r| r.feedback.as_str())
            .collect();
        let _ = write!(summary, "{}", firsts.join(" | "));
        Evaluation {
            score: Some(mean),
            summary,
            examples: results,
            metrics,
        }
    }

    /// The search score of a multi-objective task is its objective over the metrics; an
    /// example whose metrics are incomplete keeps the evaluator's own score.
    fn apply_objective(&self, mut r: ExampleResult) -> ExampleResult {
        if let Some(config) = &self.manifest.objective_config
            && let Some(score) = config.score(self.objective_mode, &r.metrics)
        {
            r.score = score;
        }
        r
    }
}

/// Mean of each metric over the results reporting it.
fn mean_metrics(results: &[ExampleResult]) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for r in results {
        for (k, v) in &r.metrics {
            let e = sums.entry(k.clone()).or_insert((0.0, 0));
            e.0 += v;
            e.1 += 1;
        }
    }
    sums.into_iter()
        .map(|(k, (sum, n))| (k, sum / n as f64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn eval_initial(id: &str) -> Evaluation {
        let reg = Registry::builtin();
        let task = reg.task(id).unwrap();
        let (split, examples) = task.eval_split();
        let refs: Vec<&Example> = examples.iter().collect();
        task.evaluate(&task.initial_values(), split, &refs)
    }

    #[test]
    fn builtin_tasks_score_their_initial_values_as_the_reference_does() {
        let cases = [
            ("internal:numeric_param", -3.0),
            ("internal:code_param", 1.0),
            ("internal:multi_param", -1.0),
            ("trace_examples:greeting_stub", 1.0),
            ("trace_examples:train_single_node_stub", -3.0),
            ("trace_examples:opentrace_train_single_node", -3.0),
        ];
        for (id, expected) in cases {
            assert_eq!(eval_initial(id).score, Some(expected), "{id}");
        }
        // opentrace_greeting reports on its validation split: 1 of 3 greetings is right.
        let g = eval_initial("trace_examples:opentrace_greeting");
        assert!((g.score.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert!(
            g.summary
                .starts_with("validate_dataset: mean over 3 examples. ")
        );
        let e = eval_initial("internal:numeric_param");
        assert_eq!(
            e.summary,
            "train_dataset: mean over 1 examples. output=0.0, target=3.0"
        );
    }

    #[test]
    fn evaluations_follow_the_parameter_values() {
        let reg = Registry::builtin();
        let task = reg.task("internal:multi_param").unwrap();
        let mut values = task.initial_values();
        values.insert("b".into(), serde_json::json!(2.0));
        let ex: Vec<&Example> = task.manifest.splits.train.iter().collect();
        assert_eq!(
            task.evaluate(&values, SplitName::Train, &ex).score,
            Some(0.0)
        );
        values.insert("a".into(), serde_json::json!("not a number"));
        assert_eq!(
            task.evaluate(&values, SplitName::Train, &ex).score,
            Some(-1.0)
        );
    }
}
