//! Run-level results, always rebuilt from the job directories: `results.csv` (one row per
//! job, matrix order, never duplicated), `iterations.csv` (one row per job per step),
//! `summary.json` and `leaderboard.csv`. The same code serves the end of `run` and
//! `report`, so rebuilding an intact run gives byte-identical files.
//!
//! Jobs are streamed one at a time: memory stays flat in the number of jobs except for
//! one score per job kept for the per-group statistics.

pub mod job_files;
pub mod manifest;
pub mod row;
mod summary;

use crate::artifacts::FileError;
use std::io::Write;
use std::path::Path;

use serde::Deserialize;

use crate::artifacts::atomic::{AtomicFile, pretty_json};
use crate::artifacts::layout::RunDir;
use crate::events::StepRecord;
use crate::results::manifest::ManifestHead;
use crate::vocab::canonical::{canonical_json, python_float_repr};

pub use row::ResultRow;
pub use summary::{BestJob, GroupStats, LeaderboardEntry, Summary};

/// `iterations.csv` columns.
pub const ITERATION_COLUMNS: &[&str] = &[
    "run_id",
    "job_id",
    "task_id",
    "trainer_id",
    "seed",
    "step",
    "score_train",
    "score_val",
    "best_score",
    "step_seconds",
    "elapsed_seconds",
    "evaluator_calls",
    "llm_calls",
    "tokens",
    "candidates",
    "metrics",
    "cum_metric_calls",
    "cum_llm_calls",
    "cum_tokens",
    "cum_cost_usd",
    "cum_seconds",
];

/// `leaderboard.csv` columns: the reference's nine (`job_id`, `score_val`, `score_test`,
/// `time_seconds` are the group's best job; `rank` is per task, by mean), then the
/// statistics over seeds that the ranking uses.
pub const LEADERBOARD_COLUMNS: &[&str] = &[
    "rank",
    "task_id",
    "suite",
    "job_id",
    "trainer_id",
    "resolved_optimizer",
    "score_val",
    "score_test",
    "time_seconds",
    "variant_index",
    "params",
    "jobs",
    "ok",
    "failed",
    "mean_score_val",
    "std_score_val",
    "ci95_low",
    "ci95_high",
    "median_score_val",
    "mean_score_test",
    "mean_time_seconds",
    "mean_tokens",
    "mean_cost_usd",
    "eval_kwargs",
];

/// A job's `results.json`: its row plus its learning curve.
#[derive(Debug, Clone)]
pub struct JobResults {
    /// The row.
    pub row: ResultRow,
    /// One record per step.
    pub history: Vec<StepRecord>,
}

impl JobResults {
    /// Parse the text of a `results.json`: the row and the history are each read straight
    /// from it, in two passes that skip each other's keys (a struct flattening the row
    /// into the file would first buffer every value of the file).
    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        #[derive(Deserialize)]
        struct History {
            #[serde(default)]
            history: Vec<StepRecord>,
        }
        let row = serde_json::from_str(text)?;
        let History { history } = serde_json::from_str(text)?;
        Ok(Self { row, history })
    }
}

/// Read a job's results, if the job has finished. Without an access-time update: the first
/// read of a file written since its last access would otherwise rewrite its inode, and on
/// a filesystem that a `syncfs` barrier is writing back, wait for that inode's block.
pub fn read_job_results(path: &Path) -> Option<JobResults> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let open = |flags: i32| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(path)
    };
    // O_NOATIME is refused (EPERM) on files of other users: then a plain open.
    let mut file = open(nix::fcntl::OFlag::O_NOATIME.bits())
        .or_else(|_| open(0))
        .ok()?;
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    JobResults::from_json(&text).ok()
}

/// Why the run-level files cannot be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// A file cannot be read or written.
    #[error(transparent)]
    File(#[from] FileError),
    /// A CSV row cannot be encoded.
    #[error("cannot encode a CSV row: {0}")]
    Csv(#[from] csv::Error),
}

/// Rebuild every run-level results file from the manifest and the job directories (the
/// manifest streams past; each job's `results.json` is read once).
pub fn write_run_files(run_dir: &RunDir) -> Result<Summary, ResultsError> {
    let mut files = RunFiles::create(run_dir)?;
    let (head, planned) = manifest::for_each_job(&run_dir.manifest(), |head, entry| {
        let job = read_job_results(&run_dir.job(&entry.job_id).results_json());
        files.add(head, job.as_ref()).map_err(std::io::Error::other)
    })
    .map_err(FileError::on("read", &run_dir.manifest()))?;
    files.stage(&head, planned)?.commit()
}

/// The run-level files while they are rebuilt: `results.csv` and `iterations.csv` stream
/// under temporary names as jobs are added in matrix order; [`RunFiles::stage`] writes the
/// leaderboard and `summary.json` (still under temporary names), and [`Staged::commit`]
/// puts everything in place. Dropped before that, it leaves the earlier files as they were.
pub struct RunFiles<'a> {
    run_dir: &'a RunDir,
    results: csv::Writer<AtomicFile>,
    iterations: csv::Writer<AtomicFile>,
    /// Started at the first job (it needs the manifest's head).
    summary: Option<Summary>,
}

impl<'a> RunFiles<'a> {
    /// Start the files of `run_dir`.
    pub fn create(run_dir: &'a RunDir) -> Result<Self, ResultsError> {
        Ok(Self {
            run_dir,
            results: csv_file(&run_dir.results_csv(), row::COLUMNS)?,
            iterations: csv_file(&run_dir.iterations_csv(), ITERATION_COLUMNS)?,
            summary: None,
        })
    }

    /// The next job in matrix order: its results, or `None` when it has none (it never
    /// finished).
    pub fn add(
        &mut self,
        head: &ManifestHead,
        job: Option<&JobResults>,
    ) -> Result<(), ResultsError> {
        let summary = self.summary.get_or_insert_with(|| Summary::from_head(head));
        let Some(job) = job else {
            summary.add_missing();
            return Ok(());
        };
        self.results.write_record(job.row.cells())?;
        for s in &job.history {
            self.iterations.write_record(iteration_cells(&job.row, s))?;
        }
        summary.add(&job.row);
        Ok(())
    }

    /// Write the leaderboard and `summary.json` of the `planned` jobs under temporary names
    /// too: everything is written, nothing is in place yet.
    pub fn stage(self, head: &ManifestHead, planned: usize) -> Result<Staged, ResultsError> {
        let run_dir = self.run_dir;
        let mut summary = self.summary.unwrap_or_else(|| Summary::from_head(head));
        summary.set_planned(planned);
        let mut leaderboard = csv_file(&run_dir.leaderboard_csv(), LEADERBOARD_COLUMNS)?;
        for entry in summary.leaderboard() {
            leaderboard.write_record(leaderboard_cells(&entry))?;
        }
        let path = run_dir.summary_json();
        let mut summary_json =
            AtomicFile::create(&path, false).map_err(FileError::on("write", &path))?;
        pretty_json(&summary.to_json())
            .and_then(|bytes| summary_json.write_all(&bytes))
            .map_err(FileError::on("write", &path))?;
        let files = [
            (
                into_file(self.results, &run_dir.results_csv())?,
                run_dir.results_csv(),
            ),
            (
                into_file(self.iterations, &run_dir.iterations_csv())?,
                run_dir.iterations_csv(),
            ),
            (
                into_file(leaderboard, &run_dir.leaderboard_csv())?,
                run_dir.leaderboard_csv(),
            ),
            (summary_json, path),
        ];
        Ok(Staged { files, summary })
    }
}

/// The run-level files, written under temporary names; [`Staged::commit`] puts them in
/// place (dropped, it leaves the earlier files as they were).
pub struct Staged {
    files: [(AtomicFile, std::path::PathBuf); 4],
    summary: Summary,
}

impl Staged {
    /// Rename every file into place; the summary they hold.
    pub fn commit(self) -> Result<Summary, ResultsError> {
        for (file, path) in self.files {
            file.commit().map_err(FileError::on("write", &path))?;
        }
        Ok(self.summary)
    }
}

/// A CSV file under a temporary name, its header written.
fn csv_file(path: &Path, header: &[&str]) -> Result<csv::Writer<AtomicFile>, ResultsError> {
    let file = AtomicFile::create(path, false).map_err(FileError::on("write", path))?;
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(file);
    w.write_record(header)?;
    Ok(w)
}

fn into_file(w: csv::Writer<AtomicFile>, path: &Path) -> Result<AtomicFile, ResultsError> {
    w.into_inner()
        .map_err(|e| FileError::on("write", path)(e.into_error()).into())
}

fn leaderboard_cells(entry: &LeaderboardEntry) -> Vec<String> {
    let f = |x: Option<f64>| x.map(python_float_repr).unwrap_or_default();
    let g = &entry.group;
    let best = g.best_job();
    let v = &g.score_val;
    vec![
        entry.rank.to_string(),
        g.task_id.clone(),
        g.suite.clone(),
        best.map(|b| b.job_id.to_string()).unwrap_or_default(),
        g.trainer_id.clone(),
        g.resolved_optimizer.clone().unwrap_or_default(),
        f(best.map(|b| b.score_val)),
        f(best.and_then(|b| b.score_test)),
        f(best.map(|b| b.time_seconds)),
        g.variant_index.to_string(),
        canonical_json(&serde_json::Value::Object(g.params.clone())),
        g.jobs.to_string(),
        g.ok.to_string(),
        g.failed.to_string(),
        f(v.mean),
        f(v.std),
        f(v.ci95_low),
        f(v.ci95_high),
        f(v.median),
        f(g.score_test.mean),
        f(g.mean_time_seconds),
        f(g.mean_tokens),
        f(g.mean_cost_usd),
        if g.eval_kwargs.is_empty() {
            String::new()
        } else {
            canonical_json(&serde_json::Value::Object(g.eval_kwargs.clone()))
        },
    ]
}

fn iteration_cells(row: &ResultRow, s: &StepRecord) -> Vec<String> {
    let f = |x: Option<f64>| x.map(python_float_repr).unwrap_or_default();
    vec![
        row.run_id.clone(),
        row.job_id.to_string(),
        row.task_id.clone(),
        row.trainer_id.clone(),
        row.seed.to_string(),
        s.step.to_string(),
        f(s.score_train),
        f(s.score_val),
        f(s.best_score),
        python_float_repr(s.step_seconds),
        python_float_repr(s.elapsed_seconds),
        s.evaluator_calls.to_string(),
        s.llm_calls.to_string(),
        s.tokens.to_string(),
        s.candidates.to_string(),
        metrics_cell(&s.metrics),
        s.spent.metric_calls.to_string(),
        s.spent.llm_calls.to_string(),
        s.spent.tokens.to_string(),
        python_float_repr(s.spent.cost_usd),
        python_float_repr(s.spent.seconds),
    ]
}

/// A map as one CSV cell: a JSON object, or empty when it has no entry.
pub fn json_cell<V: serde::Serialize>(map: &std::collections::BTreeMap<String, V>) -> String {
    if map.is_empty() {
        String::new()
    } else {
        serde_json::to_string(map).unwrap_or_default()
    }
}

/// A metrics map as one CSV cell: a JSON object, or empty for scalar tasks.
pub fn metrics_cell(metrics: &std::collections::BTreeMap<String, f64>) -> String {
    json_cell(metrics)
}
