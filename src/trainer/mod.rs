//! Trainers: optimisation loops that propose parameter updates through the LLM, evaluate
//! them on the task and keep the best. They report progress only through events.

mod search;

use serde_json::Value as Json;

use crate::config::model::Kwargs;
use crate::registry::TrainerPreset;

pub use search::{SearchLoop, TrainResult};

/// The shape of the shared search loop, read from a preset and a job's resolved kwargs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopSettings {
    /// Iterations after the initial evaluation.
    pub steps: u64,
    /// Candidates explored per iteration.
    pub candidates: usize,
    /// Proposals requested per explored candidate.
    pub proposals: usize,
    /// Training examples per iteration (0 = the whole training split).
    pub batch_size: usize,
}

impl LoopSettings {
    /// Read the settings; a knob that is not a non-negative integer is an error naming it.
    pub fn from_preset(preset: &TrainerPreset, resolved: &Kwargs) -> Result<Self, String> {
        let knob = |name: &str| -> Result<u64, String> {
            match preset.knob_value(resolved, name) {
                None => Ok(1),
                Some(v) => as_count(&v).ok_or_else(|| {
                    format!(
                        "trainer `{}`: knob `{name}` must be a non-negative integer, found {v}",
                        preset.id
                    )
                }),
            }
        };
        let optional = |name: &Option<String>, fixed: Option<u64>| -> Result<u64, String> {
            match (name, fixed) {
                (Some(n), _) => knob(n),
                (None, Some(f)) => Ok(f),
                (None, None) => Ok(1),
            }
        };
        let batches = if preset.has_knob("num_batches") {
            knob("num_batches")?.max(1)
        } else {
            1
        };
        let batch = match &preset.batch_knob {
            Some(n) => knob(n)? * batches,
            None => 0,
        };
        Ok(Self {
            steps: knob(&preset.steps_knob)?,
            candidates: optional(&preset.candidates_knob, preset.fixed_candidates)?.max(1) as usize,
            proposals: optional(&preset.proposals_knob, preset.fixed_proposals)?.max(1) as usize,
            batch_size: batch as usize,
        })
    }
}

/// A JSON value as a count (integers, or integral floats as YAML may give them).
fn as_count(v: &Json) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0)
            .map(|f| f as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    #[test]
    fn settings_come_from_knobs_or_fixed_values() {
        let reg = Registry::builtin();
        let ps = reg.trainer("PrioritySearch").unwrap();
        let resolved =
            ps.resolve(&serde_json::from_value(json!({"ps_steps": 3, "ps_batches": 2})).unwrap());
        assert_eq!(
            LoopSettings::from_preset(ps, &resolved).unwrap(),
            LoopSettings {
                steps: 3,
                candidates: 2,
                proposals: 2,
                batch_size: 2
            }
        );
        let gepa = reg.trainer("GEPA-Base").unwrap();
        let resolved = gepa.resolve(&serde_json::from_value(json!({"gepa_iters": 4})).unwrap());
        assert_eq!(
            LoopSettings::from_preset(gepa, &resolved).unwrap(),
            LoopSettings {
                steps: 4,
                candidates: 1,
                proposals: 1,
                batch_size: 2
            }
        );
        let bad = ps.resolve(&serde_json::from_value(json!({"ps_steps": "many"})).unwrap());
        assert!(
            LoopSettings::from_preset(ps, &bad)
                .unwrap_err()
                .contains("`num_steps`")
        );
    }
}
