//! Config: YAML with locations → `--set` overrides → typed decode with the reference's
//! aliases and defaults → semantic checks against the registry.

pub mod diag;
pub mod load;
pub mod model;
pub mod overrides;
pub mod yaml;

pub use diag::{Diagnostic, Diagnostics, Severity};
pub use load::{Loaded, Source, load};
pub use model::{Config, ResumeMode};

/// Decode a YAML document (a task manifest, a trainer preset) into `T`; the error names
/// `name` and, for syntax errors, the line and column.
pub fn decode_yaml<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> Result<T, String> {
    let node = yaml::parse(text)
        .map_err(|e| format!("{name}:{}:{}: {}", e.span.line, e.span.col, e.message))?
        .ok_or_else(|| format!("{name}: empty document"))?;
    let json = node
        .to_json()
        .map_err(|e| format!("{name}: {}", e.message))?;
    serde_json::from_value(json).map_err(|e| format!("{name}: {e}"))
}
