//! Trainer presets (`trainers/*.yaml`): id, description, the reference's resolution
//! defaults and aliases (part of every job id), and every knob with its meaning.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::vocab::Kwargs;

/// Knobs every trainer accepts (runner-level settings).
pub const UNIVERSAL_KNOBS: &[(&str, &str)] = &[
    (
        "num_threads",
        "How much of one batch a job keeps in flight: its LLM requests and candidate evaluations (examples, evaluator processes) go up to this many at once, results in their order (default: the CPU count).",
    ),
    (
        "verbose",
        "Accepted for compatibility with the reference; nothing in this build reads it (job.log has the same detail either way).",
    ),
];

/// One documented knob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnobSpec {
    /// Name after alias resolution.
    pub name: String,
    /// Effective default.
    pub default: Json,
    /// What it does.
    pub help: String,
}

/// A trainer preset as shipped in `trainers/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerPreset {
    /// Id used in configs.
    pub id: String,
    /// One line for `list-trainers --json`.
    pub description: String,
    /// Other ids that name it in configs (the reference's class names).
    #[serde(default)]
    pub id_aliases: Vec<String>,
    /// Which algorithm implementation runs it (see `trainer::Algorithm`).
    pub algorithm: String,
    /// The optimizer protocol used when a config names none.
    #[serde(default)]
    pub default_optimizer: Option<String>,
    /// What differs from the reference, in a sentence or two (details in docs/trainers.md).
    #[serde(default)]
    pub notes: String,
    /// The reference's resolution defaults (hashed into job ids), in order.
    #[serde(default)]
    pub defaults: Kwargs,
    /// Alias → knob.
    #[serde(default)]
    pub aliases: Kwargs,
    /// Every knob with default and meaning.
    pub knobs: Vec<KnobSpec>,
    /// For `algorithm: external`: how to start the trainer's program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalSpec>,
}

/// How an external trainer is started (`docs/external-trainers.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalSpec {
    /// The program and its arguments: `{python}` is the external Python, `{dir}` the
    /// preset's folder.
    pub command: Vec<String>,
    /// Python modules the program imports; a job whose Python lacks one is skipped.
    #[serde(default)]
    pub requires: Vec<String>,
    /// The install command the skip reason suggests (default: `pip install` the modules).
    #[serde(default)]
    pub install: Option<String>,
    /// The preset's folder (set when loaded, not written in the YAML).
    #[serde(skip)]
    pub dir: Option<std::path::PathBuf>,
}

impl TrainerPreset {
    /// Parse a preset's YAML text.
    pub fn parse(name: &str, text: &str) -> Result<Self, super::RegistryError> {
        crate::config::decode_yaml(name, text).map_err(super::RegistryError::Preset)
    }

    /// The knob a raw params key means for this trainer (`threads` is universal).
    pub fn canonical_knob<'a>(&'a self, key: &'a str) -> &'a str {
        let key = crate::vocab::universal_knob(key);
        self.aliases.get(key).and_then(Json::as_str).unwrap_or(key)
    }

    /// Whether the trainer has this knob (after alias resolution).
    pub fn has_knob(&self, knob: &str) -> bool {
        self.knobs.iter().any(|k| k.name == knob) || UNIVERSAL_KNOBS.iter().any(|(k, _)| *k == knob)
    }

    /// All knob names, for hints.
    pub fn knob_names(&self) -> Vec<&str> {
        self.knobs
            .iter()
            .map(|k| k.name.as_str())
            .chain(UNIVERSAL_KNOBS.iter().map(|(k, _)| *k))
            .collect()
    }

    /// The reference's resolved trainer kwargs: defaults, then each params key (except
    /// `eval_kwargs` and `optimizer_kwargs`) renamed through the aliases.
    pub fn resolve(&self, params: &Kwargs) -> Kwargs {
        let mut out = self.defaults.clone();
        for (k, v) in params {
            if k == "eval_kwargs" || k == "optimizer_kwargs" {
                continue;
            }
            out.insert(self.canonical_knob(k).to_string(), v.clone());
        }
        out
    }

    /// The effective value of a knob for resolved kwargs (resolved value, else default).
    pub fn knob_value(&self, resolved: &Kwargs, knob: &str) -> Option<Json> {
        resolved.get(knob).cloned().or_else(|| {
            self.knobs
                .iter()
                .find(|k| k.name == knob)
                .map(|k| k.default.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    #[test]
    fn resolution_matches_the_reference_table() {
        let reg = Registry::builtin();
        let ps = reg.trainer("PrioritySearch").unwrap();
        let params: Kwargs = serde_json::from_value(
            json!({"ps_steps": 1, "ps_batches": 1, "threads": 2, "eval_kwargs": {"x": 1}}),
        )
        .unwrap();
        assert_eq!(
            Json::Object(ps.resolve(&params)),
            json!({"num_epochs": 1, "num_steps": 1, "num_batches": 1, "num_candidates": 2, "num_proposals": 2, "num_threads": 2})
        );
        let ucb = reg.trainer("GEPA-UCB").unwrap();
        let params: Kwargs =
            serde_json::from_value(json!({"gepa_iters": 3, "ps_steps": 2})).unwrap();
        assert_eq!(
            Json::Object(ucb.resolve(&params)),
            json!({"num_search_iterations": 3, "train_batch_size": 2, "merge_every": 2, "pareto_subset_size": 2, "ps_steps": 2})
        );
        assert!(!ucb.has_knob("ps_steps"));
    }
}
