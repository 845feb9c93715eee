//! The run directory on disk: the layout (every path named once), atomic writes and the
//! durability levels,
//! crash-tolerant JSONL reading, YAML output, and the one shape of a failed file operation.
//! (The manifest and the sink writing each job's files are `results`, a layer up.)

pub mod atomic;
pub mod durability;
pub mod jsonl;
pub mod layout;
pub mod yaml_out;

use std::path::{Path, PathBuf};

/// A file operation that failed, naming the path: "cannot write `runs/x/meta/env.json`:
/// No space left on device".
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} `{}`: {source}", path.display())]
pub struct FileError {
    /// What was tried: `read`, `write`, `lock`, `clear`, `create`.
    pub action: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// Why it failed.
    pub source: std::io::Error,
}

impl FileError {
    /// A `map_err` adapter: `.map_err(FileError::on("write", &path))`.
    pub fn on(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self + use<> {
        let path = path.to_path_buf();
        move |source| Self {
            action,
            path,
            source,
        }
    }
}
