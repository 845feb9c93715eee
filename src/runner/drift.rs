//! Config drift: resuming a run with a config that is not the one it was planned with
//! would mix results of two experiments in one directory. The resolved config is compared
//! with the run's snapshot, key path by key path.
//!
//! Settings of the invocation, not of the experiment — `run_id`, `runs_dir`, `max_workers`,
//! `resume`, `fail_fast`, `job_timeout`, `executor`, `durability` — may change between
//! invocations.

use std::fmt;

use serde_json::Value as Json;

/// Top-level snapshot keys that may differ between invocations of one run.
pub const INVOCATION_KEYS: &[&str] = &[
    "run_id",
    "runs_dir",
    "max_workers",
    "resume",
    "fail_fast",
    "job_timeout",
    "executor",
    "durability",
];

/// One difference: where, and the value before and now (`None`: absent).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Key path, e.g. `trainers[0].params_variants[0].ps_steps`.
    pub path: String,
    /// Value in the snapshot.
    pub old: Option<Json>,
    /// Value in the resolved config.
    pub new: Option<Json>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<Json>| {
            v.as_ref()
                .map_or_else(|| "(absent)".into(), Json::to_string)
        };
        write!(
            f,
            "{}: {} -> {}",
            self.path,
            show(&self.old),
            show(&self.new)
        )
    }
}

/// What differs between the `old` snapshot and the `new` one, ignoring invocation keys.
pub fn changes(old: &Json, new: &Json) -> Vec<Change> {
    let mut out = Vec::new();
    let strip = |v: &Json| {
        let mut v = v.clone();
        if let Json::Object(m) = &mut v {
            for k in INVOCATION_KEYS {
                m.shift_remove(*k);
            }
        }
        v
    };
    walk("", Some(&strip(old)), Some(&strip(new)), &mut out);
    out
}

fn walk(path: &str, old: Option<&Json>, new: Option<&Json>, out: &mut Vec<Change>) {
    let child = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match (old, new) {
        (Some(Json::Object(a)), Some(Json::Object(b))) => {
            for (k, v) in a {
                walk(&child(k), Some(v), b.get(k), out);
            }
            for (k, v) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                walk(&child(k), None, Some(v), out);
            }
        }
        (Some(Json::Array(a)), Some(Json::Array(b))) => {
            for i in 0..a.len().max(b.len()) {
                walk(&format!("{path}[{i}]"), a.get(i), b.get(i), out);
            }
        }
        (a, b) if !same(a, b) => out.push(Change {
            path: path.to_string(),
            old: a.cloned(),
            new: b.cloned(),
        }),
        _ => {}
    }
}

/// `null` for what means "no setting": absent, `null`, an empty mapping.
fn nothing(v: Option<&Json>) -> &Json {
    match v {
        Some(Json::Object(m)) if m.is_empty() => &Json::Null,
        Some(v) => v,
        None => &Json::Null,
    }
}

/// Equal values; numbers compare by value (`3` and `3.0` are the same setting), and an
/// absent key equals `null` and an empty mapping (snapshots of older versions wrote empty
/// `eval_kwargs` / `optimizer_kwargs` that newer ones leave out).
fn same(a: Option<&Json>, b: Option<&Json>) -> bool {
    match (nothing(a), nothing(b)) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        (x, y) => x == y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_changed_added_and_removed_keys_by_path() {
        let old = json!({
            "run_id": "a", "max_workers": 1, "seeds": [1, 2],
            "trainers": [{"id": "PrioritySearch", "params_variants": [{"ps_steps": 3}]}],
            "llm": {"model": "m"}
        });
        let new = json!({
            "run_id": "b", "max_workers": 8, "seeds": [1, 2, 3],
            "trainers": [{"id": "PrioritySearch", "params_variants": [{"ps_steps": 4.0, "ps_batches": 2}]}],
            "llm": {"model": "m"}
        });
        let got: Vec<String> = changes(&old, &new)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "seeds[2]: (absent) -> 3",
                "trainers[0].params_variants[0].ps_steps: 3 -> 4.0",
                "trainers[0].params_variants[0].ps_batches: (absent) -> 2",
            ]
        );
    }

    #[test]
    fn invocation_settings_and_number_spelling_are_not_drift() {
        let old =
            json!({"run_id": "a", "resume": "auto", "job_timeout": null, "seeds": [1], "x": null});
        let new = json!({"run_id": "a", "resume": "failed", "job_timeout": 5.0, "seeds": [1.0]});
        assert!(changes(&old, &new).is_empty());
    }
}
