//! Job states as the files spell them, parsed once where a file is read: a job's final
//! status, its state in `job_meta.json` (running, then its status) and its entry in
//! `meta/manifest.json` (planned, then what became of it).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Final state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Ran to the end.
    Ok,
    /// An error stopped it (or it could not start).
    Failed,
    /// Stopped at its time limit.
    Timeout,
    /// Could not run here, by design (reason given).
    Skipped,
    /// Stopped by the user.
    Cancelled,
}

impl JobStatus {
    /// Every status, in the order summaries list them.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Ok,
        JobStatus::Failed,
        JobStatus::Timeout,
        JobStatus::Skipped,
        JobStatus::Cancelled,
    ];

    /// The spelling used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Ok => "ok",
            JobStatus::Failed => "failed",
            JobStatus::Timeout => "timeout",
            JobStatus::Skipped => "skipped",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Parse the file spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A job's state as its `job_meta.json` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Started and not finished (or interrupted before it could finish).
    Running,
    /// Finished with this status.
    Finished(JobStatus),
}

impl JobState {
    /// The spelling used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Finished(s) => s.as_str(),
        }
    }

    /// Parse the file spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(JobState::Running),
            other => JobStatus::parse(other).map(JobState::Finished),
        }
    }
}

/// A job's entry in the manifest: planned, then what this invocation did with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ManifestStatus {
    /// Planned, not yet run.
    Pending,
    /// Kept by resume: its earlier result stands.
    Reused,
    /// Never started (fail-fast, the resume filter, a run stopped early).
    NotExecuted,
    /// Ran (or was cancelled) with this status.
    Finished(JobStatus),
}

impl ManifestStatus {
    /// The spelling used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            ManifestStatus::Pending => "pending",
            ManifestStatus::Reused => "reused",
            ManifestStatus::NotExecuted => "not_executed",
            ManifestStatus::Finished(s) => s.as_str(),
        }
    }

    /// Parse the file spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(ManifestStatus::Pending),
            "reused" => Some(ManifestStatus::Reused),
            "not_executed" => Some(ManifestStatus::NotExecuted),
            other => JobStatus::parse(other).map(ManifestStatus::Finished),
        }
    }
}

/// Serialize and deserialize as the file spelling (an unknown spelling is an error that
/// lists the known ones).
macro_rules! spelled {
    ($ty:ty, $expected:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        concat!("unknown status `{}` (expected ", $expected, ")"),
                        s
                    ))
                })
            }
        }
    };
}

spelled!(
    JobState,
    "running, ok, failed, timeout, skipped or cancelled"
);
spelled!(
    ManifestStatus,
    "pending, reused, not_executed, ok, failed, timeout, skipped or cancelled"
);

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_through_json() {
        for s in JobStatus::ALL {
            let state = JobState::Finished(s);
            let text = serde_json::to_string(&state).unwrap();
            assert_eq!(text, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<JobState>(&text).unwrap(), state);
            let m = ManifestStatus::Finished(s);
            assert_eq!(ManifestStatus::parse(m.as_str()), Some(m));
        }
        for m in [
            ManifestStatus::Pending,
            ManifestStatus::Reused,
            ManifestStatus::NotExecuted,
        ] {
            let text = serde_json::to_string(&m).unwrap();
            assert_eq!(serde_json::from_str::<ManifestStatus>(&text).unwrap(), m);
        }
        assert_eq!(JobState::parse("running"), Some(JobState::Running));
        let err = serde_json::from_str::<ManifestStatus>("\"done\"").unwrap_err();
        assert!(err.to_string().contains("unknown status `done`"), "{err}");
    }
}
