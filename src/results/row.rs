//! One job's result row: the reference's 33 `results.csv` columns in their order, then
//! ours. The column list is defined once, here: the struct, the column names and the
//! cells are derived from one list (`result_row!`).

use serde::{Deserialize, Serialize};

use crate::artifacts::layout::{JobDir, StateKind};
use crate::events::JobOutcome;
use crate::llm::LlmInfo;
use crate::matrix::Job;
use crate::vocab::Kwargs;
use crate::vocab::canonical::{canonical_json, python_float_repr};
use crate::vocab::{JobId, JobStatus};

/// `token_scope` for rows whose tokens were spent by an LLM optimizer.
pub const TOKEN_SCOPE_REAL: &str = "trace_optimization_only";
/// `token_scope` for stub rows: the counts are estimates of stub exchanges, not model usage.
pub const TOKEN_SCOPE_STUB: &str = "stub_estimate";

/// The row's one column list: each field with its type and how its `results.csv` cell is
/// written, in column order. The struct, [`COLUMNS`] and [`ResultRow::cells`] are derived
/// from it, so they cannot disagree.
macro_rules! result_row {
    (
        $(#[$meta:meta])*
        pub struct ResultRow {
            $( $(#[$field_meta:meta])* $field:ident : $ty:ty => $cell:expr, )*
        }
    ) => {
        $(#[$meta])*
        pub struct ResultRow {
            $( $(#[$field_meta])* pub $field: $ty, )*
        }

        /// Column names in `results.csv` order.
        pub const COLUMNS: &[&str] = &[$(stringify!($field)),*];

        impl ResultRow {
            /// The CSV cells, in [`COLUMNS`] order.
            pub fn cells(&self) -> Vec<String> {
                vec![$(($cell)(&self.$field)),*]
            }
        }
    };
}

/// A cell as the value prints.
fn plain(v: &impl ToString) -> String {
    v.to_string()
}

fn string(v: &str) -> String {
    v.to_string()
}

/// `repr(float)`, empty when missing.
fn float(v: &Option<f64>) -> String {
    v.map(python_float_repr).unwrap_or_default()
}

fn text(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

fn count(v: &Option<u64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_default()
}

/// Canonical JSON (Python `json.dumps(sort_keys=True)`).
fn kwargs(m: &Kwargs) -> String {
    canonical_json(&serde_json::Value::Object(m.clone()))
}

result_row! {
    /// A job's results, as `results.json` stores them and `results.csv` flattens them.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ResultRow {
        run_id: String => string,
        job_id: JobId => plain,
        task_id: String => string,
        suite: String => string,
        trainer_id: String => string,
        seed: i64 => plain,
        status: JobStatus => |v: &JobStatus| v.as_str().to_string(),
        score_val_initial: Option<f64> => float,
        score_val_final: Option<f64> => float,
        score_val: Option<f64> => float,
        score_test: Option<f64> => float,
        time_seconds: f64 => |v: &f64| python_float_repr(*v),
        resolved_optimizer: Option<String> => text,
        resolved_guide: Option<String> => text,
        resolved_logger: Option<String> => text,
        resolved_trainer_kwargs: Kwargs => kwargs,
        resolved_optimizer_kwargs: Kwargs => kwargs,
        resolved_guide_kwargs: Kwargs => kwargs,
        resolved_logger_kwargs: Kwargs => kwargs,
        eval_kwargs: Kwargs => kwargs,
        feedback: String => string,
        llm_provider: String => string,
        llm_model: String => string,
        llm_base_url: String => string,
        token_scope: String => string,
        prompt_tokens: u64 => plain,
        completion_tokens: u64 => plain,
        total_tokens: u64 => plain,
        initial_state_path: String => string,
        best_state_path: String => string,
        final_state_path: String => string,
        state_history_path: String => string,
        tb_logdir: String => string,
        // --- trace-bench additions (after the reference's columns) ---
        job_index: usize => plain,
        variant_index: usize => plain,
        mode: String => string,
        llm_stub: bool => plain,
        steps: u64 => plain,
        best_step: Option<u64> => count,
        evaluator_calls: u64 => plain,
        llm_calls: u64 => plain,
        cost_usd: Option<f64> => float,
        error_kind: Option<String> => text,
        error: Option<String> => text,
        attempts: u32 => plain,
        raw_params: Kwargs => kwargs,
        /// Multi-objective tasks: every metric of the best parameters (validation split).
        #[serde(default)]
        metrics: std::collections::BTreeMap<String, f64> => super::metrics_cell,
        /// Dataset tasks: evaluation-split examples the final parameters got right, and the
        /// split's size (empty elsewhere); each example is in `artifacts/examples.jsonl`.
        #[serde(default)]
        examples_correct: Option<u64> => count,
        #[serde(default)]
        examples_total: Option<u64> => count,
        // Dataset tasks: what the agent answering the examples spent (0 elsewhere), apart
        // from the optimizer's calls and tokens above.
        #[serde(default)]
        agent_calls: u64 => plain,
        #[serde(default)]
        agent_prompt_tokens: u64 => plain,
        #[serde(default)]
        agent_completion_tokens: u64 => plain,
        // Real mode: what the endpoint billed (optimizer and agent; cache hits and the stub
        // bill nothing), calls the cache answered, retried attempts, calls that failed.
        #[serde(default)]
        billed_prompt_tokens: u64 => plain,
        #[serde(default)]
        billed_completion_tokens: u64 => plain,
        #[serde(default)]
        cached_calls: u64 => plain,
        #[serde(default)]
        llm_retries: u64 => plain,
        #[serde(default)]
        failed_llm_calls: u64 => plain,
        /// Why an ok job stopped: `completed`, or `budget:<limit>` when its budget ran out.
        #[serde(default)]
        stop_reason: Option<String> => text,
        // What the trainer spent on the budget's axes (`budget:`): its own evaluator calls
        // (not the monitor's or the final scoring), LLM calls and tokens with its agent's,
        // their cost at the configured prices, its seconds. Empty when it did not end.
        #[serde(default)]
        spent_metric_calls: Option<u64> => count,
        #[serde(default)]
        spent_llm_calls: Option<u64> => count,
        #[serde(default)]
        spent_tokens: Option<u64> => count,
        #[serde(default)]
        spent_cost_usd: Option<f64> => float,
        #[serde(default)]
        spent_seconds: Option<f64> => float,
        /// The trainer's answered LLM calls and tokens by caller, as one JSON cell:
        /// `{"optimizer": {"calls", "prompt_tokens", "completion_tokens"}, "agent": …}`.
        #[serde(default)]
        spend_by_role: std::collections::BTreeMap<String, crate::vocab::budget::RoleSpend> => super::json_cell,
        // Embeddings requests (POLCA's epsilon-net, an external trainer's /v1/embeddings)
        // and their input tokens, apart from llm_calls and the chat tokens.
        #[serde(default)]
        embedding_calls: u64 => plain,
        #[serde(default)]
        embedding_tokens: u64 => plain,
    }
}

/// Number of leading columns shared with the Python reference.
pub const REFERENCE_COLUMNS: usize = 33;

/// The reference's `resolved_*` fields and `eval_kwargs` of a job, decided in one place for
/// results.csv, `job_meta.json` and the manifest (which also keep our nested
/// `resolved_kwargs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resolved {
    /// The prompt protocol used (known once the job ran; as configured before).
    pub resolved_optimizer: Option<String>,
    /// The evaluator that scores the job (`command:…`, `dataset:…`, `builtin:…`).
    pub resolved_guide: Option<String>,
    /// The configured logger (`EventLog`: our own event files).
    pub resolved_logger: Option<String>,
    /// Trainer knobs after defaults and aliases.
    pub resolved_trainer_kwargs: Kwargs,
    /// The task's optimizer kwargs merged with the trainer entry's.
    pub resolved_optimizer_kwargs: Kwargs,
    /// Guide arguments.
    pub resolved_guide_kwargs: Kwargs,
    /// Logger arguments.
    pub resolved_logger_kwargs: Kwargs,
    /// The task's arguments.
    pub eval_kwargs: Kwargs,
}

impl Resolved {
    /// As the job runs its task: `optimizer` once known, the task's guide and optimizer
    /// kwargs from `ctx`.
    pub fn of(job: &Job, optimizer: Option<String>, ctx: &RowContext<'_>) -> Self {
        Self {
            resolved_optimizer: optimizer,
            resolved_guide: Some(ctx.guide.clone()),
            resolved_optimizer_kwargs: ctx.optimizer_kwargs.clone(),
            ..Self::planned(job)
        }
    }

    /// As a finished job's row recorded them (the same fields its `job_meta.json` has).
    pub fn recorded(row: &ResultRow) -> Self {
        Self {
            resolved_optimizer: row.resolved_optimizer.clone(),
            resolved_guide: row.resolved_guide.clone(),
            resolved_logger: row.resolved_logger.clone(),
            resolved_trainer_kwargs: row.resolved_trainer_kwargs.clone(),
            resolved_optimizer_kwargs: row.resolved_optimizer_kwargs.clone(),
            resolved_guide_kwargs: row.resolved_guide_kwargs.clone(),
            resolved_logger_kwargs: row.resolved_logger_kwargs.clone(),
            eval_kwargs: row.eval_kwargs.clone(),
        }
    }

    /// As planned, before a task is bound: what the config names.
    pub fn planned(job: &Job) -> Self {
        let r = &job.resolved;
        Self {
            resolved_optimizer: r.optimizer.clone(),
            resolved_guide: r.guide.clone(),
            resolved_logger: Some(r.logger.clone().unwrap_or_else(|| "EventLog".to_string())),
            resolved_trainer_kwargs: r.trainer_kwargs.clone(),
            resolved_optimizer_kwargs: r.optimizer_kwargs.clone(),
            resolved_guide_kwargs: r.guide_kwargs.clone(),
            resolved_logger_kwargs: r.logger_kwargs.clone(),
            eval_kwargs: r.eval_kwargs.clone(),
        }
    }
}

/// What the row needs besides the job and its outcome.
pub struct RowContext<'a> {
    /// Run id.
    pub run_id: &'a str,
    /// `stub` or `real`.
    pub mode: &'a str,
    /// Who answered the prompts.
    pub llm: &'a LlmInfo,
    /// The job's directory (for relative paths).
    pub job_dir: &'a JobDir,
    /// The task's optimizer kwargs (objective, memory size) merged with the trainer's.
    pub optimizer_kwargs: Kwargs,
    /// The evaluator that scored the job.
    pub guide: String,
}

impl ResultRow {
    /// Build the row of a finished job.
    pub fn new(job: &Job, outcome: &JobOutcome, ctx: &RowContext<'_>) -> Self {
        let resolved = Resolved::of(job, outcome.resolved_optimizer.clone(), ctx);
        let has_states = outcome.initial_params.is_some();
        let state = |kind| {
            if has_states {
                ctx.job_dir.rel_state_yaml(kind)
            } else {
                String::new()
            }
        };
        Self {
            run_id: ctx.run_id.to_string(),
            job_id: job.job_id.clone(),
            task_id: job.task_id.to_string(),
            suite: job.suite.to_string(),
            trainer_id: job.trainer_id.to_string(),
            seed: job.seed,
            status: outcome.status,
            score_val_initial: outcome.score_val_initial,
            score_val_final: outcome.score_val_final,
            score_val: outcome.score_val,
            score_test: outcome.score_test,
            time_seconds: (outcome.time_seconds * 1e6).round() / 1e6,
            resolved_optimizer: resolved.resolved_optimizer,
            resolved_guide: resolved.resolved_guide,
            resolved_logger: resolved.resolved_logger,
            resolved_trainer_kwargs: resolved.resolved_trainer_kwargs,
            resolved_optimizer_kwargs: resolved.resolved_optimizer_kwargs,
            resolved_guide_kwargs: resolved.resolved_guide_kwargs,
            resolved_logger_kwargs: resolved.resolved_logger_kwargs,
            eval_kwargs: resolved.eval_kwargs,
            feedback: outcome.feedback.clone(),
            llm_provider: ctx.llm.provider.clone(),
            llm_model: ctx.llm.model.clone(),
            llm_base_url: ctx.llm.base_url.clone(),
            token_scope: if ctx.llm.stub {
                TOKEN_SCOPE_STUB
            } else {
                TOKEN_SCOPE_REAL
            }
            .to_string(),
            prompt_tokens: outcome.prompt_tokens,
            completion_tokens: outcome.completion_tokens,
            total_tokens: outcome.prompt_tokens + outcome.completion_tokens,
            initial_state_path: state(StateKind::Initial),
            best_state_path: state(StateKind::Best),
            final_state_path: state(StateKind::Final),
            state_history_path: if has_states {
                ctx.job_dir.rel_state_history()
            } else {
                String::new()
            },
            tb_logdir: ctx.job_dir.rel_tb(),
            job_index: job.index,
            variant_index: job.variant_index,
            mode: ctx.mode.to_string(),
            llm_stub: ctx.llm.stub,
            steps: outcome.steps,
            best_step: outcome.best_step,
            evaluator_calls: outcome.evaluator_calls,
            llm_calls: outcome.llm_calls,
            cost_usd: outcome.cost_usd,
            error_kind: outcome.error_kind.as_ref().map(ToString::to_string),
            error: outcome.error.clone(),
            attempts: 1,
            raw_params: (*job.raw_params).clone(),
            metrics: outcome.metrics.clone(),
            examples_correct: outcome.examples_correct,
            examples_total: outcome.examples_total,
            agent_calls: outcome.agent_calls,
            agent_prompt_tokens: outcome.agent_prompt_tokens,
            agent_completion_tokens: outcome.agent_completion_tokens,
            billed_prompt_tokens: outcome.billed_prompt_tokens,
            billed_completion_tokens: outcome.billed_completion_tokens,
            cached_calls: outcome.cached_calls,
            llm_retries: outcome.llm_retries,
            failed_llm_calls: outcome.failed_llm_calls,
            stop_reason: outcome.stop_reason.clone(),
            spent_metric_calls: outcome.spent.map(|s| s.metric_calls),
            spent_llm_calls: outcome.spent.map(|s| s.llm_calls),
            spent_tokens: outcome.spent.map(|s| s.tokens),
            spent_cost_usd: outcome.spent.map(|s| s.cost_usd),
            spent_seconds: outcome.spent.map(|s| s.seconds),
            spend_by_role: outcome.spend_by_role.clone(),
            embedding_calls: outcome.embedding_calls,
            embedding_tokens: outcome.embedding_tokens,
        }
    }
}

/// An ok row for unit tests of code that reads rows (statistics, compare, curves).
#[cfg(test)]
pub(crate) fn sample_row(
    task: &str,
    trainer: &str,
    variant: usize,
    seed: i64,
    score: Option<f64>,
) -> ResultRow {
    // Two halves: one `json!` of every column exceeds the macro recursion limit.
    let mut row = serde_json::json!({
        "run_id": "r", "job_id": format!("{task}-{trainer}-{variant}-{seed}"),
        "task_id": task, "suite": "internal", "trainer_id": trainer, "seed": seed,
        "status": "ok", "score_val_initial": null, "score_val_final": null,
        "score_val": score, "score_test": null, "time_seconds": 2.0,
        "resolved_optimizer": "OptoPrimeV2", "resolved_guide": null, "resolved_logger": null,
        "resolved_trainer_kwargs": {}, "resolved_optimizer_kwargs": {},
        "resolved_guide_kwargs": {}, "resolved_logger_kwargs": {}, "eval_kwargs": {},
        "feedback": "", "llm_provider": "stub", "llm_model": "m", "llm_base_url": "",
    });
    let rest = serde_json::json!({
        "token_scope": "stub_estimate", "prompt_tokens": 10, "completion_tokens": 5,
        "total_tokens": 15, "initial_state_path": "", "best_state_path": "",
        "final_state_path": "", "state_history_path": "", "tb_logdir": "",
        "job_index": 0, "variant_index": variant, "mode": "stub", "llm_stub": true,
        "steps": 1, "best_step": null, "evaluator_calls": 1, "llm_calls": 1,
        "cost_usd": null, "error_kind": null, "error": null, "attempts": 1,
        "raw_params": {}
    });
    if let (Some(a), serde_json::Value::Object(b)) = (row.as_object_mut(), rest) {
        a.extend(b);
    }
    serde_json::from_value(row).expect("a valid row")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_columns_come_first_in_order() {
        let reference = "run_id,job_id,task_id,suite,trainer_id,seed,status,score_val_initial,score_val_final,score_val,score_test,time_seconds,resolved_optimizer,resolved_guide,resolved_logger,resolved_trainer_kwargs,resolved_optimizer_kwargs,resolved_guide_kwargs,resolved_logger_kwargs,eval_kwargs,feedback,llm_provider,llm_model,llm_base_url,token_scope,prompt_tokens,completion_tokens,total_tokens,initial_state_path,best_state_path,final_state_path,state_history_path,tb_logdir";
        assert_eq!(COLUMNS[..REFERENCE_COLUMNS].join(","), reference);
        let names: std::collections::HashSet<_> = COLUMNS.iter().collect();
        assert_eq!(names.len(), COLUMNS.len());
    }

    #[test]
    fn struct_fields_cells_and_columns_agree() {
        use crate::config::load::{Source, load};
        use crate::registry::Registry;
        let text = "tasks: [internal:numeric_param]\n";
        let config = load(
            &Source {
                name: "t".into(),
                text: text.into(),
            },
            &[],
        )
        .config
        .unwrap();
        let job = crate::matrix::expand(&config, &Registry::builtin())
            .0
            .remove(0);
        let outcome = JobOutcome {
            score_val_initial: Some(-3.0),
            score_val_final: Some(-0.5),
            score_val: Some(-0.5),
            time_seconds: 1.23456789,
            steps: 2,
            best_step: Some(2),
            evaluator_calls: 5,
            llm_calls: 4,
            prompt_tokens: 100,
            completion_tokens: 20,
            resolved_optimizer: Some("OptoPrime".into()),
            initial_params: Some(Kwargs::new()),
            best_params: Some(Kwargs::new()),
            final_params: Some(Kwargs::new()),
            ..JobOutcome::ended(JobStatus::Ok, None, "f".into())
        };
        let llm = LlmInfo {
            provider: "stub".into(),
            model: "m".into(),
            base_url: String::new(),
            stub: true,
        };
        let dir = crate::artifacts::layout::RunDir::new("runs", "r").job(&job.job_id);
        let ctx = RowContext {
            run_id: "r",
            mode: "stub",
            llm: &llm,
            job_dir: &dir,
            optimizer_kwargs: Kwargs::new(),
            guide: "g".into(),
        };
        let row = ResultRow::new(&job, &outcome, &ctx);
        let json = serde_json::to_value(&row).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys, COLUMNS,
            "serialised field order is the CSV column order"
        );
        let cells = row.cells();
        assert_eq!(cells.len(), COLUMNS.len());
        assert_eq!(cells[11], "1.234568", "time_seconds rounded to 6 decimals");
        assert_eq!(cells[27], "120");
        assert_eq!(
            cells[28],
            format!("jobs/{}/artifacts/initial_state.yaml", job.job_id)
        );
    }
}
