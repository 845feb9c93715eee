//! Stamps a job's events (sequence number, timestamp, elapsed time) and hands them to the
//! sink, remembering the first sink failure so the runner can stop cleanly.

use std::time::{Instant, SystemTime};

use super::{Event, EventKind, EventSink, SCHEMA_VERSION, SinkError};
use crate::matrix::Job;

/// The event source of one job.
pub struct Emitter<'a> {
    job: &'a Job,
    sink: &'a dyn EventSink,
    started: Instant,
    seq: u64,
    error: Option<SinkError>,
    /// Embedding calls and tokens seen so far, stamped on the job's outcome.
    embeddings: (u64, u64),
}

impl<'a> Emitter<'a> {
    /// Start the job's clock.
    pub fn new(job: &'a Job, sink: &'a dyn EventSink) -> Self {
        Self {
            job,
            sink,
            started: Instant::now(),
            seq: 0,
            error: None,
            embeddings: (0, 0),
        }
    }

    /// Seconds since the job started.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Emit one event. After a sink failure, further events are dropped.
    pub fn emit(&mut self, kind: EventKind) {
        self.send(kind);
        self.seq += 1;
    }

    /// Emit an event that belongs to the next one emitted (an LLM transcript, written to
    /// its own file): it carries the next event's `seq`, so `events.jsonl` stays gapless
    /// and the two records join on `seq`.
    pub fn emit_attached(&mut self, kind: EventKind) {
        self.send(kind);
    }

    fn send(&mut self, mut kind: EventKind) {
        match &mut kind {
            EventKind::EmbeddingCall { tokens, .. } => {
                self.embeddings.0 += 1;
                self.embeddings.1 += *tokens;
            }
            EventKind::JobFinished(outcome) => {
                outcome.embedding_calls = self.embeddings.0;
                outcome.embedding_tokens = self.embeddings.1;
            }
            _ => {}
        }
        if self.error.is_some() {
            return;
        }
        let event = Event {
            v: SCHEMA_VERSION,
            seq: self.seq,
            ts: humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            elapsed_s: self.elapsed(),
            kind,
        };
        if let Err(e) = self.sink.on_event(self.job, &event) {
            self.error = Some(e);
        }
    }

    /// The first sink failure, if any.
    pub fn take_error(&mut self) -> Option<SinkError> {
        self.error.take()
    }
}
