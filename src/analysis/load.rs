//! Load a run directory's job rows from `meta/manifest.json` and `jobs/<id>/results.json`
//! (the typed per-job records `results.csv` is rebuilt from).

use std::path::{Path, PathBuf};

use crate::artifacts::atomic::read_json;
use crate::artifacts::layout::RunDir;
use crate::results::JobResults;
use crate::results::manifest::Manifest;

/// Why a run directory cannot be analysed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No manifest: not a run directory.
    #[error("`{0}` is not a run directory (no meta/manifest.json)")]
    NotARunDir(PathBuf),
    /// A file exists but cannot be read or parsed.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A run's planned jobs and the results of those that finished, in matrix order.
#[derive(Debug, Clone)]
pub struct RunData {
    /// The directory.
    pub dir: RunDir,
    /// Its manifest.
    pub manifest: Manifest,
    /// Finished jobs (with `history` only when asked for).
    pub jobs: Vec<JobResults>,
    /// Planned jobs without a `results.json`.
    pub missing: usize,
}

/// Load `path`. Step histories are dropped unless `with_history` (they are most of the
/// bytes and only curves need them). A `results.json` that exists but does not parse is an
/// error: silently leaving a job out would bias every statistic.
pub fn load_run(path: &Path, with_history: bool) -> Result<RunData, LoadError> {
    let dir = RunDir::at(path);
    let manifest_path = dir.manifest();
    if !manifest_path.is_file() {
        return Err(LoadError::NotARunDir(path.to_path_buf()));
    }
    let manifest: Manifest = read_json(&manifest_path).map_err(|source| LoadError::Read {
        path: manifest_path,
        source,
    })?;
    let mut jobs = Vec::with_capacity(manifest.jobs.len());
    let mut missing = 0;
    for entry in &manifest.jobs {
        let p = dir.job(&entry.job.job_id).results_json();
        if !p.is_file() {
            missing += 1;
            continue;
        }
        let mut job = std::fs::read_to_string(&p)
            .and_then(|text| {
                JobResults::from_json(&text)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            })
            .map_err(|source| LoadError::Read { path: p, source })?;
        if !with_history {
            job.history = Vec::new();
        }
        jobs.push(job);
    }
    Ok(RunData {
        dir,
        manifest,
        jobs,
        missing,
    })
}
