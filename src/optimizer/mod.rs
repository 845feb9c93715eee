//! Optimizer prompt protocols: how a trainer asks the LLM for a parameter update and how
//! the reply is read back. A malformed reply is never an error: it is an empty update and
//! a list of problems the trainer reports as warnings.

pub mod aggregator;
mod common;
mod opro_v2;
mod optoprime;
mod optoprime_v2;
mod reflection;
pub mod textgrad;

use serde_json::Value as Json;

use crate::llm::ChatRequest;
use crate::task::Param;
use crate::vocab::Kwargs;

pub use opro_v2::OPROv2;
pub use optoprime::OptoPrime;
pub use optoprime_v2::OptoPrimeV2;
pub use reflection::GepaReflection;
pub use textgrad::TextGrad;

/// The protocol a trainer uses when neither the config nor its preset names one: the
/// reference's default for module-like tasks.
pub const DEFAULT_OPTIMIZER: &str = "OptoPrimeV2";

/// Optimizer names of the reference ecosystem that configs may name.
pub const KNOWN_OPTIMIZERS: &[&str] = &[
    "OptoPrime",
    "OptoPrimeV2",
    "OptoPrimeMulti",
    "OPRO",
    "OPROv2",
    "TextGrad",
    "GEPAReflection",
];

/// One example of the batch the optimizer sees.
#[derive(Debug, Clone, PartialEq)]
pub struct ExampleTrace {
    /// The input, as text.
    pub input: String,
    /// What the agent produced.
    pub output: String,
    /// What the evaluator said.
    pub feedback: String,
}

/// Everything a prompt is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct ProblemInstance<'a> {
    /// The task's objective sentence.
    pub objective: &'a str,
    /// Trainable parameters with their current values.
    pub variables: Vec<(&'a Param, Json)>,
    /// The examples of the batch.
    pub examples: Vec<ExampleTrace>,
    /// Earlier candidates with their scores, oldest first (OPROv2's value/score history,
    /// OptoPrime's optional memory). Empty when the trainer keeps none.
    pub history: Vec<HistoryEntry>,
}

/// One earlier candidate shown to the optimizer.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// The values of the trainable parameters.
    pub values: Kwargs,
    /// Its mean score, when it was evaluated.
    pub score: Option<f64>,
    /// The feedback it received (batched), possibly empty.
    pub feedback: String,
}

impl ProblemInstance<'_> {
    /// The batched feedback, one `ID [i]: ...` line per example (as OpenTrace batches it).
    pub fn batched_feedback(&self) -> String {
        self.examples
            .iter()
            .enumerate()
            .map(|(i, e)| format!("ID [{i}]: {}", e.feedback))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The result of reading a reply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedUpdate {
    /// Parameter → new value; empty when the reply proposes nothing usable.
    pub update: Kwargs,
    /// What was wrong with the reply (unknown variables, junk, ...).
    pub problems: Vec<String>,
    /// The reply said `TERMINATE`.
    pub terminated: bool,
}

/// A prompt protocol.
pub trait Protocol: Send + Sync {
    /// Its name as recorded in results (`resolved_optimizer`).
    fn name(&self) -> &'static str;
    /// Build the request for a problem instance.
    fn request(&self, instance: &ProblemInstance<'_>) -> ChatRequest;
    /// Read a reply into a (possibly partial, possibly empty) update of `params`.
    fn parse(&self, reply: &str, params: &[Param]) -> ParsedUpdate;
    /// Render an update as a well-formed reply (used by the stub proposer).
    fn render(&self, reasoning: &str, update: &Kwargs) -> String;
    /// Malformed replies typical of this protocol (`TERMINATE`, empty, prose, truncated,
    /// an unknown variable, ...), about `first_variable`; the stub sends them so every
    /// fallback of `parse` runs. Each must parse to an empty update.
    fn junk_replies(&self, first_variable: &str) -> Vec<String>;
    /// Whether prompts show earlier candidates with their scores. Only OPRO-style
    /// protocols do by default (OptoPrime's memory is off in the reference), so trainers
    /// do not pay for history in prompts that would not use it.
    fn uses_history(&self) -> bool {
        false
    }
}

/// The protocol for a configured optimizer name, plus a note when it had to fall back.
/// No name means OptoPrimeV2, the reference's default for module-like tasks.
pub fn protocol_for(name: Option<&str>) -> (Box<dyn Protocol>, Option<String>) {
    match name {
        None | Some("OptoPrimeV2") => (Box::new(OptoPrimeV2), None),
        Some("OptoPrime") => (Box::new(OptoPrime), None),
        Some("OPROv2") => (Box::new(OPROv2), None),
        Some("GEPAReflection") => (Box::new(GepaReflection), None),
        Some("TextGrad") => (Box::new(TextGrad), None),
        Some("OPRO") => (
            Box::new(OPROv2),
            Some("optimizer `OPRO` (v1) is served by OPROv2".to_string()),
        ),
        Some(other) => (
            Box::new(OptoPrimeV2),
            Some(format!(
                "optimizer `{other}` is not implemented; its jobs use OptoPrimeV2"
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_to_protocols_with_notes_for_fallbacks() {
        for (name, protocol, note) in [
            (None, "OptoPrimeV2", None),
            (Some("OptoPrime"), "OptoPrime", None),
            (Some("OptoPrimeV2"), "OptoPrimeV2", None),
            (Some("OPROv2"), "OPROv2", None),
            (Some("GEPAReflection"), "GEPAReflection", None),
            (
                Some("OPRO"),
                "OPROv2",
                Some("optimizer `OPRO` (v1) is served by OPROv2"),
            ),
            (Some("TextGrad"), "TextGrad", None),
            (
                Some("OptoPrimeMulti"),
                "OptoPrimeV2",
                Some("optimizer `OptoPrimeMulti` is not implemented; its jobs use OptoPrimeV2"),
            ),
        ] {
            let (p, n) = protocol_for(name);
            assert_eq!(p.name(), protocol, "{name:?}");
            assert_eq!(n.as_deref(), note, "{name:?}");
        }
        for name in KNOWN_OPTIMIZERS {
            let (p, note) = protocol_for(Some(name));
            assert!(note.is_some() || p.name() == *name, "{name}");
        }
    }
}
