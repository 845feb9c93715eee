//! Reading append-only JSONL files (`events.jsonl`, `state_history.jsonl`,
//! `llm_calls.jsonl`) the way a crash may have left them.
//!
//! Lines are appended and flushed one at a time, so a process killed mid-write can leave
//! at most its last line incomplete (no newline). That torn line is dropped and reported;
//! a bad line anywhere else is corruption, and an error.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// The complete records of a JSONL file.
#[derive(Debug, Clone, PartialEq)]
pub struct Records<T> {
    /// Every complete line, parsed, in order.
    pub records: Vec<T>,
    /// Whether an incomplete last line was dropped.
    pub torn_tail: bool,
}

/// Why a JSONL file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum JsonlError {
    /// The file cannot be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line other than a torn last one is not a record.
    #[error("`{}` line {line}: {source}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The parser's error.
        source: serde_json::Error,
    },
}

/// Read `path`, tolerating a torn last line.
pub fn read_records<T: DeserializeOwned>(path: &Path) -> Result<Records<T>, JsonlError> {
    let text = std::fs::read_to_string(path).map_err(|source| JsonlError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let complete = text.ends_with('\n') || text.is_empty();
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::with_capacity(lines.len());
    let mut torn_tail = false;
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(r) => records.push(r),
            Err(_) if i + 1 == lines.len() && !complete => torn_tail = true,
            Err(source) => {
                return Err(JsonlError::Line {
                    path: path.to_path_buf(),
                    line: i + 1,
                    source,
                });
            }
        }
    }
    Ok(Records { records, torn_tail })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn read(text: &str) -> Result<Records<Value>, JsonlError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, text).unwrap();
        read_records(&path)
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_reported() {
        let r = read("{\"seq\":0}\n{\"seq\":1}\n{\"seq\":2,\"ty").unwrap();
        assert_eq!(r.records.len(), 2);
        assert!(r.torn_tail);
        let r = read("{\"seq\":0}\n").unwrap();
        assert_eq!((r.records.len(), r.torn_tail), (1, false));
        let r = read("").unwrap();
        assert!(r.records.is_empty() && !r.torn_tail);
        // A complete last line without its newline is kept.
        let r = read("{\"seq\":0}\n{\"seq\":1}").unwrap();
        assert_eq!((r.records.len(), r.torn_tail), (2, false));
    }

    #[test]
    fn a_bad_line_before_the_end_is_an_error_naming_it() {
        let e = read("{\"seq\":0}\nnot json\n{\"seq\":2}\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = read("{\"seq\":0}\n{\"seq\"\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }
}
