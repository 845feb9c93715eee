//! The live mirror: an [`EventSink`] that hands each finished job to one background
//! thread, which exports it from the job's files (the job files sink, earlier in the
//! fan-out, has written them when `job_finished` arrives).
//!
//! Best-effort by construction: the job's thread only sends the job id down a channel;
//! requests have short timeouts; after the server is found unreachable nothing more is
//! tried; [`MlflowSink::finish`] waits a bounded time. Whatever was not sent is listed in
//! `meta/mlflow_pending.json` and in the summary, and `trace-bench export` sends it later.

use std::fmt;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::record::{Destination, Pending};
use super::{Client, DEFAULT_EXPERIMENT, Exporter, MlflowError, URI_ENV, export::JobExport};
use crate::artifacts::FileError;
use crate::artifacts::layout::RunDir;
use crate::config::model::{MlflowConfig, TrackingUriError, check_tracking_uri};
use crate::events::{Event, EventKind, EventSink, SinkError};
use crate::llm::openai::Secret;
use crate::matrix::Job;
use crate::vocab::JobId;

/// How long the mirror waits for a finished job's `job_meta.json` to be committed.
const COMMIT_WAIT: Duration = Duration::from_secs(10);
/// How often it looks.
const COMMIT_POLL: Duration = Duration::from_millis(10);

/// Per-request limit of the live mirror (connecting included): a slow server costs the
/// background thread at most this per request, never a job.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`MlflowSink::finish`] waits for jobs still being sent.
pub const FINISH_WAIT: Duration = Duration::from_secs(10);

/// What the mirror did, for the end of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorSummary {
    /// The server.
    pub tracking_uri: String,
    /// The experiment.
    pub experiment: String,
    /// Jobs sent (or already there).
    pub sent: usize,
    /// Jobs not sent (listed in `meta/mlflow_pending.json`).
    pub pending: usize,
    /// The first reason something was not sent.
    pub first_error: Option<String>,
}

impl fmt::Display for MirrorSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MLflow: {} job(s) mirrored to {} (experiment `{}`)",
            self.sent, self.tracking_uri, self.experiment
        )?;
        if let Some(e) = &self.first_error {
            write!(
                f,
                "; {} job(s) not sent ({e}); they are listed in meta/mlflow_pending.json and `trace-bench export <run dir>` sends them",
                self.pending
            )?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct State {
    pending: Pending,
    sent: usize,
    first_error: Option<String>,
    /// `finish` stopped waiting: the worker must not touch the files any more.
    abandoned: bool,
}

struct Shared {
    destination: Destination,
    run_dir: RunDir,
    state: Mutex<State>,
    tx: Mutex<Option<Sender<JobId>>>,
    done: Mutex<Option<Receiver<()>>>,
}

/// Mirrors jobs to MLflow as they finish. Cheap to clone (one shared worker).
#[derive(Clone)]
pub struct MlflowSink {
    shared: Arc<Shared>,
}

/// What the config and the environment ask of the live mirror, decided before the run
/// directory is opened (a run refused here leaves nothing behind).
#[derive(Debug, Clone, PartialEq)]
pub enum Mirror {
    /// Nothing asks for one.
    Off,
    /// Mirror to this server (the `mlflow` block's `tracking_uri`, else `MLFLOW_TRACKING_URI`).
    To(Destination),
    /// `MLFLOW_TRACKING_URI`, inherited from the environment, names a store this client
    /// does not mirror (MLflow's own defaults `file:./mlruns`, `sqlite:///mlflow.db`): the
    /// run goes on without a mirror; say so once.
    Inherited {
        /// The variable's value.
        uri: String,
        /// Why it is not used.
        reason: TrackingUriError,
    },
}

impl Mirror {
    /// The mirror for the spec's `mlflow` block and the environment `env`. The block's
    /// own `tracking_uri` was checked when the config was read (a located error); an
    /// inherited `MLFLOW_TRACKING_URI` never stops a run. An `mlflow` block with no server
    /// at all is an error.
    pub fn choose(
        block: Option<&MlflowConfig>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, MlflowError> {
        let env_uri = env(URI_ENV).filter(|u| !u.is_empty());
        let experiment = || {
            block
                .and_then(|b| b.experiment.clone())
                .unwrap_or_else(|| DEFAULT_EXPERIMENT.to_string())
        };
        let to = |uri: String| {
            Self::To(Destination {
                tracking_uri: uri,
                experiment: experiment(),
            })
        };
        match (block.and_then(|b| b.tracking_uri.clone()), env_uri, block) {
            (Some(uri), _, _) => Ok(to(uri)),
            (None, Some(uri), _) => Ok(match check_tracking_uri(&uri) {
                Ok(_) => to(uri),
                Err(reason) => Self::Inherited { uri, reason },
            }),
            (None, None, None) => Ok(Self::Off),
            (None, None, Some(_)) => Err(MlflowError::NoServer),
        }
    }
}

impl MlflowSink {
    /// Start the mirror's worker thread.
    pub fn start(
        destination: Destination,
        token: Option<Secret>,
        run_dir: &RunDir,
        timeout: Duration,
    ) -> Result<Self, MlflowError> {
        let client = Client::new(&destination.tracking_uri, token, timeout)?;
        let destination = Destination {
            tracking_uri: client.uri().to_string(),
            ..destination
        };
        destination.write(run_dir)?;
        let (tx, rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let state = State {
            pending: Pending::read(run_dir),
            ..Default::default()
        };
        let shared = Arc::new(Shared {
            destination,
            run_dir: run_dir.clone(),
            state: Mutex::new(state),
            tx: Mutex::new(Some(tx)),
            done: Mutex::new(Some(done_rx)),
        });
        let worker = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("mlflow-mirror".into())
            .spawn(move || {
                worker.run(&client, &rx);
                let _ = done_tx.send(());
            })
            .map_err(|e| MlflowError::Unreachable {
                uri: shared.destination.tracking_uri.clone(),
                message: format!("cannot start the mirror thread: {e}"),
            })?;
        Ok(Self { shared })
    }

    /// Stop taking jobs, wait (at most [`FINISH_WAIT`]) for the ones being sent, and say
    /// what was mirrored. Call it after the run's files are rebuilt: the parent run gets
    /// them. Jobs still unsent are in `meta/mlflow_pending.json`.
    pub fn finish(&self) -> MirrorSummary {
        self.finish_within(FINISH_WAIT)
    }

    /// [`finish`](Self::finish) with another wait.
    pub fn finish_within(&self, wait: Duration) -> MirrorSummary {
        lock(&self.shared.tx).take();
        let done = lock(&self.shared.done).take();
        let finished = done.is_some_and(|rx| {
            matches!(
                rx.recv_timeout(wait),
                Ok(()) | Err(RecvTimeoutError::Disconnected)
            )
        });
        let mut state = lock(&self.shared.state);
        if !finished && !state.abandoned {
            state.abandoned = true;
            state.first_error.get_or_insert_with(|| {
                format!("the server was still busy after {} s", wait.as_secs())
            });
            let _ = state.pending.write(&self.shared.run_dir);
        }
        MirrorSummary {
            tracking_uri: self.shared.destination.tracking_uri.clone(),
            experiment: self.shared.destination.experiment.clone(),
            sent: state.sent,
            pending: state.pending.jobs.len(),
            first_error: state.first_error.clone(),
        }
    }
}

impl Shared {
    /// The worker: export each job as it comes, then the parent run when the channel closes.
    fn run(&self, client: &Client, rx: &Receiver<JobId>) {
        let mut exporter: Option<Exporter<'_>> = None;
        let mut down: Option<String> = None;
        let deadline_reached = || lock(&self.state).abandoned;
        for job_id in rx {
            if deadline_reached() {
                return;
            }
            let result = match &down {
                Some(reason) => Err(reason.clone()),
                None => self.export(client, &mut exporter, &job_id).map_err(|e| {
                    if e.is_unreachable() {
                        down = Some(e.to_string());
                    }
                    e.to_string()
                }),
            };
            let mut state = lock(&self.state);
            if state.abandoned {
                return;
            }
            match result {
                Ok(()) => {
                    state.sent += 1;
                    state.pending.jobs.remove(job_id.as_str());
                }
                Err(reason) => {
                    state.first_error.get_or_insert(reason.clone());
                    state.pending.jobs.insert(job_id.to_string(), reason);
                }
            }
            let _ = state.pending.write(&self.run_dir);
        }
        let parent = match (&down, exporter.as_mut()) {
            (Some(reason), _) => Err(reason.clone()),
            (None, Some(e)) => e.export_parent().map(drop).map_err(|e| e.to_string()),
            (None, None) => Ok(()), // no job finished in this invocation
        };
        let mut state = lock(&self.state);
        if state.abandoned {
            return;
        }
        match parent {
            Ok(()) => state.pending.parent = None,
            Err(reason) => {
                state.first_error.get_or_insert(reason.clone());
                state.pending.parent = Some(reason);
            }
        }
        let _ = state.pending.write(&self.run_dir);
    }

    fn export<'c>(
        &self,
        client: &'c Client,
        exporter: &mut Option<Exporter<'c>>,
        job_id: &JobId,
    ) -> Result<(), MlflowError> {
        if exporter.is_none() {
            let e = Exporter::connect(client, &self.destination.experiment, &self.run_dir)?;
            *exporter = Some(e);
        }
        let e = exporter.as_mut().expect("connected above");
        // The job's final `job_meta.json` is renamed into place by the run's commit
        // thread right after a filesystem barrier (artifacts::durability): wait for it.
        let mut waited = Duration::ZERO;
        loop {
            match e.export_job(job_id)? {
                JobExport::NotFinished if waited < COMMIT_WAIT => {
                    std::thread::sleep(COMMIT_POLL);
                    waited += COMMIT_POLL;
                }
                JobExport::NotFinished => {
                    let path = self.run_dir.job(job_id).job_meta();
                    return Err(FileError::on("read", &path)(std::io::Error::other(format!(
                        "no final job_meta.json {} s after the job finished",
                        COMMIT_WAIT.as_secs()
                    )))
                    .into());
                }
                JobExport::Sent { .. } | JobExport::Unchanged => return Ok(()),
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl EventSink for MlflowSink {
    /// Queue the job on `job_finished`; never fails and never waits on the network.
    fn on_event(&self, job: &Job, event: &Event) -> Result<(), SinkError> {
        if let EventKind::JobFinished(_) = &event.kind {
            let queued = lock(&self.shared.tx)
                .as_ref()
                .is_some_and(|tx| tx.send(job.job_id.clone()).is_ok());
            let mut state = lock(&self.shared.state);
            let why = if queued {
                "queued, not sent yet"
            } else {
                "finished after the mirror stopped"
            };
            state
                .pending
                .jobs
                .insert(job.job_id.to_string(), why.to_string());
            if !queued {
                state.first_error.get_or_insert_with(|| why.to_string());
            }
        }
        Ok(())
    }

    /// An optional exporter: its problems are warnings, never a failed run.
    fn policy(&self) -> crate::events::SinkPolicy {
        crate::events::SinkPolicy::Warn
    }

    fn name(&self) -> &str {
        "mlflow"
    }
}
