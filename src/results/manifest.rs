//! `meta/manifest.json`: the plan of a run (every job with its identity) and, once the
//! run ends, each job's status. Single jobs of a planned run directory can be executed
//! from it alone.

use serde::{Deserialize, Serialize};

use crate::matrix::Job;
use crate::results::row::Resolved;
use crate::vocab::{ManifestStatus, RunId};

/// One job entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestJob {
    /// Identity and kwargs.
    #[serde(flatten)]
    pub job: Job,
    /// `pending`, a job status (`ok`, `failed`, ...), `reused` or `not_executed`.
    pub status: ManifestStatus,
    /// Why, for anything but `ok`/`pending`.
    pub reason: Option<String>,
    /// The reference's top-level `resolved_*` and `eval_kwargs` (also nested in the job's
    /// `resolved_kwargs`): as configured until the job ran, then as it ran.
    #[serde(flatten)]
    pub resolved: Resolved,
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Run id (the directory name).
    pub run_id: RunId,
    /// `trace-bench`.
    pub tool: String,
    /// Version of the tool that planned the run.
    pub tool_version: String,
    /// SHA-256 of the canonical config snapshot (resume compares it).
    pub config_hash: String,
    /// `stub` or `real`.
    pub mode: String,
    /// Config tags.
    pub tags: Vec<String>,
    /// When the run was planned.
    pub created_at: String,
    /// When this file was written.
    pub generated_at: String,
    /// When the last invocation finished executing (absent while running).
    pub finished_at: Option<String>,
    /// Every planned job in matrix order.
    pub jobs: Vec<ManifestJob>,
}

impl Manifest {
    /// Its head (everything but the jobs).
    pub fn head(&self) -> ManifestHead {
        ManifestHead {
            run_id: self.run_id.clone(),
            mode: self.mode.clone(),
            tags: self.tags.clone(),
            created_at: self.created_at.clone(),
            finished_at: self.finished_at.clone(),
        }
    }
}

/// What rebuilding the run-level files reads of a manifest besides its jobs.
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestHead {
    /// Run id.
    pub run_id: RunId,
    /// `stub` or `real`.
    pub mode: String,
    /// Config tags.
    pub tags: Vec<String>,
    /// When the run was planned.
    pub created_at: String,
    /// When the last invocation finished executing.
    pub finished_at: Option<String>,
}

impl Default for ManifestHead {
    fn default() -> Self {
        Self {
            run_id: RunId::new(String::new()),
            mode: String::new(),
            tags: Vec::new(),
            created_at: String::new(),
            finished_at: None,
        }
    }
}

/// A job as [`for_each_job`] hands it over.
#[derive(Debug, Clone, Deserialize)]
pub struct JobRef {
    /// The job id.
    pub job_id: crate::vocab::JobId,
    /// Its status in the manifest.
    pub status: ManifestStatus,
    /// Why, for anything but `ok`/`pending`.
    pub reason: Option<String>,
}

/// Read a manifest from its file, handing each job to `each` in matrix order while
/// parsing: neither the file's text nor a list of its jobs is held (memory flat in the
/// number of jobs). `each` sees the head as read so far: every field before `jobs`, which
/// is where our manifests put them. Returns the head and the number of jobs.
pub fn for_each_job(
    path: &std::path::Path,
    mut each: impl FnMut(&ManifestHead, JobRef) -> std::io::Result<()>,
) -> std::io::Result<(ManifestHead, usize)> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    type Each<'e> = dyn FnMut(&ManifestHead, JobRef) -> std::io::Result<()> + 'e;

    struct Jobs<'a, 'e> {
        head: &'a ManifestHead,
        each: &'a mut Each<'e>,
        error: &'a mut Option<std::io::Error>,
    }
    impl<'de> DeserializeSeed<'de> for Jobs<'_, '_> {
        type Value = usize;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de> Visitor<'de> for Jobs<'_, '_> {
        type Value = usize;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of jobs")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
            let mut n = 0;
            while let Some(job) = seq.next_element::<JobRef>()? {
                n += 1;
                if self.error.is_none()
                    && let Err(e) = (self.each)(self.head, job)
                {
                    *self.error = Some(e);
                }
            }
            Ok(n)
        }
    }
    struct Whole<'a, 'e> {
        each: &'a mut Each<'e>,
        error: &'a mut Option<std::io::Error>,
    }
    impl<'de> Visitor<'de> for Whole<'_, '_> {
        type Value = (ManifestHead, usize);
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a trace-bench manifest")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut head = ManifestHead::default();
            let mut jobs = 0;
            while let Some(key) = map.next_key::<String>()? {
                match key.as_str() {
                    "run_id" => head.run_id = map.next_value()?,
                    "mode" => head.mode = map.next_value()?,
                    "tags" => head.tags = map.next_value()?,
                    "created_at" => head.created_at = map.next_value()?,
                    "finished_at" => head.finished_at = map.next_value()?,
                    "jobs" => {
                        jobs = map.next_value_seed(Jobs {
                            head: &head,
                            each: &mut *self.each,
                            error: &mut *self.error,
                        })?;
                    }
                    _ => {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
            }
            Ok((head, jobs))
        }
    }
    let file = std::fs::File::open(path)?;
    let mut error = None;
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(file));
    let read = de
        .deserialize_map(Whole {
            each: &mut each,
            error: &mut error,
        })
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    match error {
        Some(e) => Err(e),
        None => Ok(read),
    }
}

/// Write a manifest without holding it whole: `head` (whose `jobs` are ignored), then
/// `jobs` as they come, in that order. The same bytes as pretty-printing the whole
/// [`Manifest`]: memory stays flat in the number of jobs.
pub fn write_streamed(
    path: &std::path::Path,
    durability: crate::artifacts::durability::Durability,
    head: &Manifest,
    jobs: impl Iterator<Item = ManifestJob>,
) -> std::io::Result<()> {
    /// The job list, serialized from the iterator on the fly (taken once).
    struct Lazy<I>(std::cell::RefCell<Option<I>>);
    impl<I: Iterator<Item = ManifestJob>> Serialize for Lazy<I> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let jobs = self.0.borrow_mut().take();
            s.collect_seq(jobs.into_iter().flatten())
        }
    }
    /// [`Manifest`]'s fields in its order, with the lazy list.
    #[derive(Serialize)]
    struct Out<'a, J> {
        run_id: &'a RunId,
        tool: &'a str,
        tool_version: &'a str,
        config_hash: &'a str,
        mode: &'a str,
        tags: &'a [String],
        created_at: &'a str,
        generated_at: &'a str,
        finished_at: &'a Option<String>,
        jobs: J,
    }
    let out = Out {
        run_id: &head.run_id,
        tool: &head.tool,
        tool_version: &head.tool_version,
        config_hash: &head.config_hash,
        mode: &head.mode,
        tags: &head.tags,
        created_at: &head.created_at,
        generated_at: &head.generated_at,
        finished_at: &head.finished_at,
        jobs: Lazy(std::cell::RefCell::new(Some(jobs))),
    };
    durability.write_with(path, |w| {
        serde_json::to_writer_pretty(&mut *w, &out).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    })
}
