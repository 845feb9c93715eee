//! Optimizer prompt protocols: how a trainer asks the LLM for a parameter update and how
//! the reply is read back. A malformed reply is never an error: it is an empty update and
//! a list of problems the trainer reports as warnings.

mod optoprime;

use serde_json::Value as Json;

use crate::config::model::Kwargs;
use crate::llm::ChatRequest;
use crate::task::Param;

pub use optoprime::OptoPrime;

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
}

/// The protocol for a configured optimizer name, plus a note when it had to fall back.
pub fn protocol_for(name: Option<&str>) -> (Box<dyn Protocol>, Option<String>) {
    match name {
        None | Some("OptoPrime") => (Box::new(OptoPrime), None),
        Some(other) => (
            Box::new(OptoPrime),
            Some(format!(
                "optimizer `{other}` is not implemented yet; its jobs use the OptoPrime (JSON) protocol"
            )),
        ),
    }
}
