//! The `hf:` QA suite: the reference's Hugging Face datasets (`benchmarks/hf_qa`), read
//! offline from the standard hub cache and turned into dataset tasks — the job's agent
//! answers each example with the trained instructions and the reference's scorer of the
//! entry's task type scores the reply (docs/tasks.md, "The hf: suite").
//!
//! The registry lists the 51 ids with availability (is the dataset in the cache?); the
//! examples are read when a job binds its task, with the counts of its `eval_kwargs`.

pub mod cache;
pub mod catalog;
pub mod code;
pub mod score;
pub mod shape;

use std::collections::HashSet;
use std::path::PathBuf;

use serde_json::{Value as Json, json};

use self::catalog::{AgentClass, Entry, TaskType};
use super::{EvaluatorKind, EvaluatorSpec, Param, Splits, Task, TaskManifest};
use crate::config::model::TaskEntry;
use crate::vocab::{Kwargs, ParamKind};

/// Why an `hf:` task cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HfError {
    /// The dataset repo is not in the hub cache.
    #[error(
        "dataset `{dataset_id}` is not in the Hugging Face cache (`{}`); download it where there is internet: `{}`",
        cache.display(),
        cache::download_command(dataset_id)
    )]
    NotCached {
        /// `org/name`.
        dataset_id: String,
        /// The cache that was searched.
        cache: PathBuf,
    },
    /// The snapshot has no file of the split.
    #[error(
        "dataset `{dataset_id}`{} has no files of split `{split}` in `{}`; download it again: `{}`",
        config.as_ref().map(|c| format!(" (config `{c}`)")).unwrap_or_default(),
        snapshot.display(),
        cache::download_command(dataset_id)
    )]
    SplitMissing {
        /// `org/name`.
        dataset_id: String,
        /// The HF config.
        config: Option<String>,
        /// The split.
        split: String,
        /// The snapshot searched.
        snapshot: PathBuf,
    },
    /// A data file could not be read.
    #[error("cannot read `{}`: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A row could not be turned into a task.
    #[error("row {index}: {message}")]
    Row {
        /// 0-based row index in the split.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// A count in `eval_kwargs` is not a non-negative integer.
    #[error("eval_kwargs.{key} must be a non-negative integer, found {value}")]
    BadCount {
        /// `num_train`, `num_validate` or `num_test`.
        key: &'static str,
        /// The value given.
        value: String,
    },
    /// The id names no catalog entry.
    #[error("`{id}` is not in the hf catalog")]
    UnknownEntry {
        /// The id.
        id: String,
    },
}

impl HfError {
    /// Whether the data is simply not downloaded (the job is `skipped`, not `failed`).
    pub fn is_missing_data(&self) -> bool {
        matches!(
            self,
            HfError::NotCached { .. } | HfError::SplitMissing { .. }
        )
    }
}

/// The QA agent's built-in initial instructions (the reference's `_DEFAULT_INSTRUCTIONS`).
pub const DEFAULT_QA_INSTRUCTIONS: &str = "Answer the question based on the context.";

/// The question-only agent's initial prompt template (the reference's `_PROMPT_TEMPLATE`).
pub const DEFAULT_PROMPT_TEMPLATE: &str = "Given the fields `question`, produce the fields `answer`.\n\n---\n\nFollow the following format.\n\nQuestion:\nAnswer:\n\n---\nQuestion:\n";

/// The description of `prompt_template` (the reference's `_PROMPT_DESCRIPTION`).
pub const PROMPT_DESCRIPTION: &str = "[ParameterNode] This is the Prompt Template to the LLM. Need to include information about what the format of answers LLM should output. They can be (A)/(B), a number like 8, or a string, or Yes/No/Ambiguous.";

/// The code agent's initial prompt (the reference's `_CODE_PROMPT`).
pub const DEFAULT_CODE_PROMPT: &str = "You are an expert Python programmer. Implement the requested function.\nReturn ONLY the complete function definition (you may use a ```python block).\nDo not include explanations, examples, or test code.\n\n";

/// The description of the code agent's `prompt_template` (`_CODE_PROMPT_DESCRIPTION`).
pub const CODE_PROMPT_DESCRIPTION: &str = "[ParameterNode] Code-generation instructions prepended to each problem spec. Should steer the model to emit a single complete, correct Python function definition (no prose, no tests) that satisfies the spec and its hidden unit tests.";

/// Split an `hf:` id into its catalog entry and subtask.
pub fn parse_id(id: &str) -> Option<(&'static Entry, Option<&str>)> {
    let rest = id.strip_prefix("hf:")?;
    let (name, sub) = match rest.split_once('/') {
        Some((n, s)) => (n, Some(s)),
        None => (rest, None),
    };
    Some((catalog::entry(name)?, sub))
}

fn prompt_param(entry: &Entry) -> Param {
    let (name, initial, description) = match entry.agent {
        AgentClass::Qa => (
            "meta_instructions",
            DEFAULT_QA_INSTRUCTIONS,
            entry.description().to_string(),
        ),
        AgentClass::Bbeh => (
            "prompt_template",
            DEFAULT_PROMPT_TEMPLATE,
            PROMPT_DESCRIPTION.to_string(),
        ),
        AgentClass::Code => (
            "prompt_template",
            DEFAULT_CODE_PROMPT,
            CODE_PROMPT_DESCRIPTION.to_string(),
        ),
    };
    Param {
        name: name.into(),
        kind: ParamKind::Text,
        initial: Json::String(initial.into()),
        trainable: true,
        description,
    }
}

/// The manifest of one listed id (no examples yet: a job reads them).
fn manifest(entry: &Entry, id: String, cache_root: &std::path::Path) -> TaskManifest {
    let skip_reason = if cache::snapshot(cache_root, entry.dataset_id).is_none() {
        Some(
            HfError::NotCached {
                dataset_id: entry.dataset_id.into(),
                cache: cache_root.to_path_buf(),
            }
            .to_string(),
        )
    } else {
        None
    };
    TaskManifest {
        id,
        description: format!("{} ({})", entry.description(), entry.dataset_id),
        objective: entry.objective().into(),
        parameters: vec![prompt_param(entry)],
        splits: Splits::default(),
        evaluator: EvaluatorSpec {
            kind: EvaluatorKind::Hf,
            serve: false,
            name: String::new(),
            command: Vec::new(),
            timeout_seconds: None,
            failure_score: None,
            visible_files: Vec::new(),
            code_extension: None,
            metric: Some(entry.task_type.name().into()),
            tolerance: None,
            data: None,
        },
        memory_size: 10,
        skip_reason,
        objective_config: None,
        // Candidates run in a child python3 (code_exec); without it the jobs are skipped.
        requires: if entry.task_type == TaskType::CodeExec {
            vec!["python3".into()]
        } else {
            Vec::new()
        },
        sample: None,
    }
}

/// The 51 `hf:` tasks in the reference's order, each marked skipped when its dataset is
/// not in the hub cache.
pub fn tasks() -> Vec<Task> {
    let root = cache::hub_cache();
    catalog::listed_ids()
        .into_iter()
        .map(|id| {
            let (entry, _) = parse_id(&id).unwrap_or_else(|| unreachable!("listed id {id}"));
            Task::from_manifest(manifest(entry, id, &root))
                .unwrap_or_else(|e| unreachable!("hf manifest: {e}"))
        })
        .collect()
}

/// The task type a manifest's `evaluator.metric` names.
pub fn task_type_named(name: &str) -> Option<TaskType> {
    catalog::CATALOG
        .iter()
        .map(|e| e.task_type)
        .find(|t| t.name() == name)
}

/// Replace each bare `hf:<entry>` with subtasks by its subtask ids (each with the entry's
/// `eval_kwargs`), then drop repeats of (id, eval_kwargs), first occurrence kept: the
/// reference's `expand_special_tasks`.
pub fn expand_entries(entries: Vec<TaskEntry>) -> Vec<TaskEntry> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for entry in entries {
        let expanded = match catalog::expand_id(&entry.id) {
            Some(ids) => ids
                .into_iter()
                .map(|id| TaskEntry {
                    id,
                    ..entry.clone()
                })
                .collect(),
            None => vec![entry],
        };
        for e in expanded {
            if !e.id.starts_with("hf:") {
                out.push(e);
                continue;
            }
            let key = (
                e.id.clone(),
                crate::vocab::canonical::canonical_json(&Json::Object(e.eval_kwargs.clone())),
            );
            if seen.insert(key) {
                out.push(e);
            }
        }
    }
    out
}

fn count(kwargs: &Kwargs, key: &'static str, default: u64) -> Result<usize, HfError> {
    let Some(v) = kwargs.get(key) else {
        return Ok(default as usize);
    };
    match v {
        Json::Number(n) if n.is_u64() => Ok(n.as_u64().unwrap_or(0) as usize),
        other => Err(HfError::BadCount {
            key,
            value: other.to_string(),
        }),
    }
}

/// The examples of `id` for a job with `eval_kwargs`: the first rows of each split in
/// stored order, contiguous disjoint slices for partitions sharing a split (train, then
/// validate, then test; a short split starves test first).
pub fn load_splits(id: &str, eval_kwargs: &Kwargs) -> Result<Splits, HfError> {
    let (entry, subtask) = parse_id(id).ok_or_else(|| HfError::UnknownEntry { id: id.into() })?;
    let [dt, dv, ds] = entry.counts;
    let counts = [
        count(eval_kwargs, "num_train", dt)?,
        count(eval_kwargs, "num_validate", dv)?,
        count(eval_kwargs, "num_test", ds)?,
    ];
    let splits = match subtask {
        Some(s) => [s, s, s],
        None => [entry.train_split, entry.train_split, entry.test_split],
    };
    let root = cache::hub_cache();
    let mut parts: [Vec<super::Example>; 3] = Default::default();
    let mut done = [false; 3];
    for i in 0..3 {
        if done[i] {
            continue;
        }
        let members: Vec<usize> = (i..3).filter(|&j| splits[j] == splits[i]).collect();
        let total: usize = members.iter().map(|&j| counts[j]).sum();
        for &j in &members {
            done[j] = true;
        }
        if total == 0 {
            continue;
        }
        let snapshot =
            cache::snapshot(&root, entry.dataset_id).ok_or_else(|| HfError::NotCached {
                dataset_id: entry.dataset_id.into(),
                cache: root.clone(),
            })?;
        let files = cache::split_files(&snapshot, entry.config, splits[i]);
        if files.is_empty() {
            return Err(HfError::SplitMissing {
                dataset_id: entry.dataset_id.into(),
                config: entry.config.map(str::to_string),
                split: splits[i].into(),
                snapshot,
            });
        }
        let rows = cache::read_rows(&files, total)?;
        let mut examples = rows
            .iter()
            .enumerate()
            .map(|(n, row)| shape::row_to_example(entry, row, n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| match e {
                HfError::Row { index, message } => HfError::Row {
                    index,
                    message: format!(
                        "{message} (dataset `{}`, split `{}`)",
                        entry.dataset_id, splits[i]
                    ),
                },
                other => other,
            })?
            .into_iter();
        for &j in &members {
            parts[j] = examples.by_ref().take(counts[j]).collect();
        }
    }
    let [train, validation, test] = parts;
    Ok(Splits {
        train,
        validation,
        test,
    })
}

/// The job's copy of an `hf:` task: its examples read, and `eval_kwargs.initial_instructions`
/// as the QA agent's starting instructions.
pub fn bind(task: &Task, eval_kwargs: &Kwargs) -> Result<Task, HfError> {
    let mut task = task.clone();
    task.manifest.splits = load_splits(&task.manifest.id, eval_kwargs)?;
    if let Some(Json::String(text)) = eval_kwargs.get("initial_instructions")
        && let Some((entry, _)) = parse_id(&task.manifest.id)
        && entry.agent == AgentClass::Qa
        && let Some(p) = task.manifest.parameters.first_mut()
    {
        p.initial = json!(text);
    }
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, kw: Json) -> TaskEntry {
        TaskEntry {
            id: id.into(),
            eval_kwargs: kw.as_object().cloned().unwrap_or_default(),
            seeds: None,
            span: Default::default(),
        }
    }

    #[test]
    fn bare_ids_with_subtasks_expand_and_repeats_are_dropped() {
        let out = expand_entries(vec![
            entry("hf:bbeh_eight/dyck_languages", json!({})),
            entry("hf:bbeh_eight", json!({})),
            entry("hf:bbeh_eight", json!({"num_train": 3})),
            entry("hf:gsm8k", json!({})),
            entry("internal:numeric_param", json!({})),
            entry("internal:numeric_param", json!({})),
        ]);
        let ids: Vec<&str> = out.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), 1 + 7 + 8 + 1 + 2);
        assert_eq!(ids[0], "hf:bbeh_eight/dyck_languages");
        assert_eq!(ids[1], "hf:bbeh_eight/geometric_shapes");
        assert_eq!(ids[7], "hf:bbeh_eight/boardgame_qa");
        assert_eq!(ids[8], "hf:bbeh_eight/dyck_languages");
        assert_eq!(out[8].eval_kwargs["num_train"], 3);
        assert_eq!(ids[16], "hf:gsm8k");
    }

    #[test]
    fn counts_must_be_non_negative_integers() {
        let kw = |v: Json| json!({"num_train": v}).as_object().cloned().unwrap();
        for bad in [json!("5"), json!(true), json!(2.0), json!(-1)] {
            let e = load_splits("hf:gsm8k", &kw(bad)).unwrap_err();
            assert!(
                matches!(
                    e,
                    HfError::BadCount {
                        key: "num_train",
                        ..
                    }
                ),
                "{e}"
            );
        }
        assert!(matches!(
            load_splits("hf:nope", &Kwargs::new()),
            Err(HfError::UnknownEntry { .. })
        ));
        // Nothing requested: nothing is read, so no cache is needed.
        let zero = json!({"num_train": 0, "num_validate": 0, "num_test": 0});
        assert_eq!(
            load_splits("hf:gsm8k", zero.as_object().unwrap()).unwrap(),
            Splits::default()
        );
    }
}
