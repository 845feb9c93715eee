//! Documented exit codes, mapped in one place.

use std::process::ExitCode;

/// All jobs ok, or nothing wrong found.
pub const OK: u8 = 0;
/// Some job failed, or validation found errors.
pub const FAILURES: u8 = 1;
/// Usage, config or I/O error (nothing ran, or the run could not be recorded).
pub const USAGE: u8 = 2;
/// Cancelled by the user.
pub const CANCELLED: u8 = 130;

/// An error for the terminal plus its exit code.
#[derive(Debug)]
pub struct CliError {
    /// What to print (already formatted).
    pub message: String,
    /// Exit code.
    pub code: u8,
}

impl CliError {
    /// A usage/config/I-O error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: USAGE,
        }
    }
}

/// Turn a command result into the process exit code, printing any error.
pub fn finish(result: Result<u8, CliError>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprint!("{}", e.message);
            if !e.message.ends_with('\n') {
                eprintln!();
            }
            ExitCode::from(e.code)
        }
    }
}
