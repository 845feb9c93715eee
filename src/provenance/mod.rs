//! Where results came from: git state, a redacted environment, and the machine.

pub mod env;
pub mod git;
pub mod system;
