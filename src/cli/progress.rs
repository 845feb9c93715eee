//! The progress bar: a sink that shows finished jobs on a terminal and stays silent
//! otherwise (indicatif hides itself when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::events::{Event, EventKind, EventSink, RunEvent, SinkError};
use crate::matrix::Job;
use crate::vocab::JobStatus;

/// Counts finished jobs on stderr (clones share one bar).
#[derive(Clone)]
pub struct ProgressSink {
    bar: ProgressBar,
}

impl ProgressSink {
    /// A bar for `total` jobs.
    pub fn new(total: usize) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} jobs {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Self { bar }
    }

    /// Remove the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl EventSink for ProgressSink {
    fn on_event(&self, job: &Job, event: &Event) -> Result<(), SinkError> {
        if let EventKind::JobFinished(outcome) = &event.kind {
            self.bar.inc(1);
            if outcome.status != JobStatus::Ok {
                self.bar.set_message(format!(
                    "(last: {} {})",
                    job.job_id,
                    outcome.status.as_str()
                ));
            }
        }
        Ok(())
    }

    /// Jobs kept or not run count towards the total; a stop is said at once.
    fn on_run_event(&self, event: &RunEvent) -> Result<(), SinkError> {
        match event {
            RunEvent::JobReused { .. } | RunEvent::JobSkipped { .. } => self.bar.inc(1),
            RunEvent::RunStopping { reason } => self
                .bar
                .suspend(|| eprintln!("trace-bench: stopping the run: {reason}")),
            _ => {}
        }
        Ok(())
    }

    fn name(&self) -> &str {
        "progress"
    }
}
