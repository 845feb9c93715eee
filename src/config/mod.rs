//! Config: YAML with locations → `--set` overrides → typed decode with the reference's
//! aliases and defaults. The semantic checks against the registry are `spec`, a layer up.

use std::path::PathBuf;

pub mod diag;
pub mod load;
pub mod model;
pub mod overrides;
pub mod yaml;

pub use diag::{Diagnostic, Diagnostics, Severity};
pub use load::{Loaded, Source, load};
pub use model::{Config, ResumeMode};

/// Why a config file, or a YAML document of the registry, could not be read. Problems
/// *inside* a readable config are [`Diagnostic`]s instead (all of them, located).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not YAML.
    #[error("{name}:{line}:{col}: {message}")]
    Syntax {
        /// The document's display name.
        name: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// The parser's message.
        message: String,
    },
    /// Nothing in it.
    #[error("{name}: empty document")]
    Empty {
        /// The document's display name.
        name: String,
    },
    /// YAML, but not the shape `T` has.
    #[error("{name}: {message}")]
    Shape {
        /// The document's display name.
        name: String,
        /// What does not fit.
        message: String,
    },
}

/// Decode a YAML document (a task manifest, a trainer preset) into `T`; the error names
/// `name` and, for syntax errors, the line and column.
pub fn decode_yaml<T: serde::de::DeserializeOwned>(
    name: &str,
    text: &str,
) -> Result<T, ConfigError> {
    let shape = |message: String| ConfigError::Shape {
        name: name.to_string(),
        message,
    };
    let node = yaml::parse(text)
        .map_err(|e| ConfigError::Syntax {
            name: name.to_string(),
            line: e.span.line,
            col: e.span.col,
            message: e.message,
        })?
        .ok_or_else(|| ConfigError::Empty {
            name: name.to_string(),
        })?;
    let json = node.to_json().map_err(|e| shape(e.message))?;
    serde_json::from_value(json).map_err(|e| shape(e.to_string()))
}
