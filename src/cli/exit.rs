//! Documented exit codes and the one place errors are rendered for the terminal.

use std::fmt::Display;
use std::process::ExitCode;

use crate::runner::FinalOutcome;

/// All jobs ok, or nothing wrong found.
pub const OK: u8 = 0;
/// Some job failed or has no result, no job ran (all skipped), or validation found errors.
pub const FAILURES: u8 = 1;
/// Usage, config or I/O error (nothing ran, or the run could not be recorded).
pub const USAGE: u8 = 2;
/// Cancelled by the user.
pub const CANCELLED: u8 = 130;

/// An error for the terminal: `error: <message>`, indented notes, a hint, an exit code.
#[derive(Debug)]
pub struct CliError {
    /// Already rendered diagnostics printed before the error line (config problems).
    pub preamble: String,
    /// The error line, without `error: `.
    pub message: String,
    /// Lines printed indented under it (a list of changes).
    pub notes: Vec<String>,
    /// What to do about it.
    pub hint: Option<String>,
    /// Exit code.
    pub code: u8,
}

impl CliError {
    /// A usage/config/I-O error (exit 2).
    pub fn usage(message: impl Display) -> Self {
        Self {
            preamble: String::new(),
            message: message.to_string(),
            notes: Vec::new(),
            hint: None,
            code: USAGE,
        }
    }

    /// Add what to do about it.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Add an indented line under the error line.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Print `rendered` (diagnostics) before the error line.
    pub fn after(mut self, rendered: String) -> Self {
        self.preamble = rendered;
        self
    }

    /// The text printed on stderr.
    pub fn render(&self) -> String {
        let mut out = format!("{}error: {}\n", self.preamble, self.message);
        for note in &self.notes {
            out.push_str(&format!("  {note}\n"));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("  = hint: {hint}\n"));
        }
        out
    }
}

/// Library errors reach the terminal as usage errors (exit 2) with their own message.
macro_rules! usage_from {
    ($($ty:ty),* $(,)?) => {
        $(impl From<$ty> for CliError {
            fn from(e: $ty) -> Self {
                Self::usage(e)
            }
        })*
    };
}

usage_from!(
    crate::config::ConfigError,
    crate::registry::RegistryError,
    crate::runner::RunError,
    crate::results::ResultsError,
    crate::analysis::html::ReportError,
    crate::analysis::load::LoadError,
    crate::artifacts::FileError,
);

/// MLflow errors carry what to do about them: start the server, fix the URI or token.
impl From<crate::mlflow::MlflowError> for CliError {
    fn from(e: crate::mlflow::MlflowError) -> Self {
        use crate::mlflow::MlflowError as E;
        let hint = match &e {
            E::Unreachable { .. } => Some(
                "is the server running? (`mlflow server --host 127.0.0.1 --port 5000`); pass another with --mlflow URI",
            ),
            E::Auth { .. } => Some("set MLFLOW_TRACKING_TOKEN to a token this server accepts"),
            E::BadUri { .. } => Some(
                "pass --mlflow http://host:port, or set MLFLOW_TRACKING_URI (or `mlflow.tracking_uri` in the config)",
            ),
            E::NoServer => Some(
                "set `mlflow.tracking_uri: http://host:port` (or MLFLOW_TRACKING_URI), or remove the `mlflow` block",
            ),
            E::NotARunDir(_) => Some("pass `<runs_dir>/<run_id>`"),
            E::Server { .. } | E::File(_) => None,
        };
        let err = Self::usage(e);
        match hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    }
}

/// The exit code of a run's verdict: the one rule for `run`, `run --shard` and `run-job`.
pub fn outcome_code(outcome: FinalOutcome) -> u8 {
    match outcome {
        FinalOutcome::Passed => OK,
        FinalOutcome::Failed | FinalOutcome::NothingRan => FAILURES,
        FinalOutcome::Cancelled => CANCELLED,
    }
}

/// Turn a command result into the process exit code, printing any error.
pub fn finish(result: Result<u8, CliError>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprint!("{}", e.render());
            ExitCode::from(e.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_render_with_notes_and_hint() {
        let e = CliError::usage("run `x` changed")
            .with_note("- seeds: [1] -> [2]")
            .with_hint("use --force")
            .after("warning: w\n".into());
        assert_eq!(
            e.render(),
            "warning: w\nerror: run `x` changed\n  - seeds: [1] -> [2]\n  = hint: use --force\n"
        );
        assert_eq!(CliError::usage("plain").render(), "error: plain\n");
    }

    #[test]
    fn one_exit_code_per_outcome() {
        use crate::runner::{Disposition, RunStats};
        use crate::vocab::{JobState, JobStatus};
        let code = |d: &[Disposition], cancelled: bool| {
            outcome_code(RunStats::from_dispositions(d, cancelled).summarize_final())
        };
        let ran = |s| Disposition::Executed(s);
        let kept = |s| Disposition::Reused(JobState::Finished(s));
        let (ok, skipped) = (JobStatus::Ok, JobStatus::Skipped);
        assert_eq!(code(&[ran(ok), ran(skipped)], false), OK);
        assert_eq!(code(&[kept(ok), ran(skipped)], false), OK);
        // Every job skipped, now or kept: nothing was measured.
        assert_eq!(code(&[ran(skipped), kept(skipped)], false), FAILURES);
        assert_eq!(code(&[ran(ok), ran(JobStatus::Timeout)], false), FAILURES);
        assert_eq!(code(&[ran(ok), kept(JobStatus::Failed)], false), FAILURES);
        assert_eq!(
            code(&[ran(ok), Disposition::NotExecuted("x".into())], false),
            FAILURES
        );
        assert_eq!(
            code(&[ran(ok), Disposition::Reused(JobState::Running)], false),
            FAILURES
        );
        assert_eq!(code(&[ran(ok), Disposition::Cancelled], true), CANCELLED);
        // A shard that was given no job has nothing wrong.
        assert_eq!(code(&[], false), OK);
    }
}
