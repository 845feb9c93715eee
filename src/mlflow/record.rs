//! What the run directory remembers about its MLflow mirror, so a later `export` needs
//! no arguments: `meta/mlflow.json` (server and experiment; never the token) and
//! `meta/mlflow_pending.json` (jobs the live mirror could not send, and why; removed once
//! an export has sent everything).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::artifacts::FileError;
use crate::artifacts::atomic::{read_json, write_json};
use crate::artifacts::layout::RunDir;

/// `meta/mlflow.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    /// The tracking server (checked: no credentials in it).
    pub tracking_uri: String,
    /// The experiment name.
    pub experiment: String,
}

impl Destination {
    /// The recorded destination of `run_dir`, if it has one.
    pub fn read(run_dir: &RunDir) -> Option<Self> {
        read_json(&run_dir.mlflow_json()).ok()
    }

    /// Record it.
    pub fn write(&self, run_dir: &RunDir) -> Result<(), FileError> {
        let p = run_dir.mlflow_json();
        write_json(&p, self).map_err(FileError::on("write", &p))
    }
}

/// `meta/mlflow_pending.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// Job id → why it is not on the server yet.
    pub jobs: BTreeMap<String, String>,
    /// Why the parent run (the run's own files) is not up to date, if it is not.
    pub parent: Option<String>,
}

impl Pending {
    /// The pending list of `run_dir` (empty when there is no file).
    pub fn read(run_dir: &RunDir) -> Self {
        read_json(&run_dir.mlflow_pending()).unwrap_or_default()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty() && self.parent.is_none()
    }

    /// Write it, or remove the file when nothing is pending.
    pub fn write(&self, run_dir: &RunDir) -> Result<(), FileError> {
        let p = run_dir.mlflow_pending();
        if self.is_empty() {
            return match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(FileError::on("clear", &p)(e))
                }
                _ => Ok(()),
            };
        }
        write_json(&p, self).map_err(FileError::on("write", &p))
    }
}
