//! The crate's shared vocabulary: the small types every layer speaks (kwargs, the LLM
//! mode, parameter kinds, job statuses, ids) and the canonical JSON they are hashed
//! through. It imports nothing from the crate, so any module may use it without creating
//! an import cycle (see docs/architecture.md, "The module stack").

pub mod budget;
pub mod canonical;
mod ids;
mod status;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

pub use budget::Budget;
pub use ids::{JobId, RunId};
pub use status::{JobState, JobStatus, ManifestStatus};

/// A JSON object with insertion order kept (kwargs are reported in the order written).
pub type Kwargs = Map<String, Json>;

/// The reference's alias of the `num_threads` knob, accepted for every trainer and at the
/// top level of a config.
pub const THREADS_ALIAS: &str = "threads";

/// The knob a params key names when it is a universal alias (`threads` → `num_threads`),
/// else the key itself.
pub fn universal_knob(key: &str) -> &str {
    if key == THREADS_ALIAS {
        "num_threads"
    } else {
        key
    }
}

/// Where the LLM answers come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// The seeded, offline stub proposer (default).
    #[default]
    Stub,
    /// An OpenAI-compatible endpoint.
    Real,
}

impl Mode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Stub => "stub",
            Mode::Real => "real",
        }
    }
}

/// What kind of value a parameter holds (it shapes prompts and stub mutations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamKind {
    /// A real or integer number.
    Number,
    /// Free text (a prompt, a word).
    Text,
    /// Program source.
    Code,
}

impl ParamKind {
    /// The type label used in optimizer prompts.
    pub fn label(self, value: &Json) -> &'static str {
        match self {
            ParamKind::Number if value.is_i64() || value.is_u64() => "int",
            ParamKind::Number => "float",
            ParamKind::Text => "str",
            ParamKind::Code => "code",
        }
    }
}
