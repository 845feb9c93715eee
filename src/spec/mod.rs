//! The spec: a decoded config checked against the registry — task and trainer ids,
//! knobs, optimizer names, the `llm` block, objective modes. A stage above `registry`,
//! `trainer` and `llm` (it asks each whether a value is valid), below the runner.

mod check;

pub use check::*;
