//! `list-tasks` and `list-trainers`: the reference's plain output, `--json` for detail.

use serde_json::json;

use super::args::{ListTasksArgs, ListTrainersArgs};
use super::exit::{CliError, OK};
use crate::optimizer::DEFAULT_OPTIMIZER;
use crate::registry::{Registry, UNIVERSAL_KNOBS};
use crate::task::EvaluatorKind;

/// Print the task ids (or JSON details).
pub fn list_tasks(args: &ListTasksArgs, registry: &Registry) -> Result<u8, CliError> {
    let suites = match &args.bench {
        Some(sel) => Some(registry.bench_selector(sel).map_err(CliError::usage)?),
        None => None,
    };
    let tasks: Vec<_> = registry
        .tasks()
        .iter()
        .filter(|t| {
            suites
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| x == t.manifest.suite()))
        })
        .collect();
    if args.json {
        let items: Vec<_> = tasks
            .iter()
            .map(|t| {
                let m = &t.manifest;
                let unavailable = t.unavailable_reason();
                json!({
                    "id": m.id,
                    "suite": m.suite(),
                    "description": m.description,
                    "objective": m.objective,
                    "evaluator_kind": t.evaluator_kind(),
                    "evaluator": match m.evaluator.kind {
                        EvaluatorKind::Command => json!(m.evaluator.command),
                        EvaluatorKind::Dataset | EvaluatorKind::Hf => json!(m.evaluator.metric),
                        EvaluatorKind::Builtin => json!(m.evaluator.name),
                    },
                    // LLM4AD tasks: `folder` (--root), `upstream` (the llm4ad package).
                    "source": m.splits.train.first().and_then(|e| e.info.get("source")),
                    "task_dir": t.dir,
                    "parameters": m.parameters,
                    "splits": {"train": m.splits.train.len(), "validation": m.splits.validation.len(), "test": m.splits.test.len()},
                    "trainable": t.has_trainable_params(),
                    "available": unavailable.is_none(),
                    "skip_reason": unavailable,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&items).unwrap_or_default()
        );
    } else {
        for t in tasks {
            println!("{}", t.id());
        }
    }
    Ok(OK)
}

/// Print the trainers (or JSON details with every knob).
pub fn list_trainers(args: &ListTrainersArgs, registry: &Registry) -> Result<u8, CliError> {
    if args.json {
        let universal: Vec<_> = UNIVERSAL_KNOBS
            .iter()
            .map(|(n, h)| json!({"name": n, "default": null, "help": h}))
            .collect();
        let items: Vec<_> = registry
            .trainers()
            .iter()
            .map(|t| {
                let mut knobs = serde_json::to_value(&t.knobs).unwrap_or_default();
                if let Some(list) = knobs.as_array_mut() {
                    list.extend(universal.iter().cloned());
                }
                json!({
                    "id": t.id,
                    "available": true,
                    "description": t.description,
                    "id_aliases": t.id_aliases,
                    "algorithm": t.algorithm,
                    "default_optimizer": t.default_optimizer.as_deref().unwrap_or(DEFAULT_OPTIMIZER),
                    "notes": t.notes,
                    "defaults": t.defaults,
                    "aliases": t.aliases,
                    "knobs": knobs,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&items).unwrap_or_default()
        );
    } else {
        for t in registry.trainers() {
            println!("{}\tavailable", t.id);
        }
    }
    Ok(OK)
}
