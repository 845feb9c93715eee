//! How much a run pays for crash safety (config `durability`, docs/run-directory.md).
//!
//! Every final file is written to a temporary name and renamed into place, so a process
//! killed at any point (`kill -9`, OOM) leaves each file complete or absent: that costs no
//! sync. Only an OS crash or power loss can lose data the kernel has not written back, and
//! the guarantee kept for it is: **a job counts only once its `job_meta.json` is durable,
//! and then everything it names is complete.** The levels:
//!
//! - `job` (default): one filesystem barrier (`syncfs`) per *group* of finishing jobs. A
//!   job's files are written without syncs; its final `job_meta.json` waits under a
//!   temporary name until a barrier has made everything before it durable, then is renamed
//!   into place by the run's [`Commits`] thread (jobs finishing together share a barrier,
//!   and workers never wait for it). The rename itself becomes durable at the next barrier
//!   or when the kernel writes it back; a crash before that reruns the job on resume. The
//!   run-level files (manifest, results.csv, ...) are not synced: resume and `report`
//!   rebuild them from the jobs.
//! - `file`: every final file is fsynced before its rename and its directory after (the
//!   most syncs; for filesystems where `syncfs` is not to be trusted).
//! - `none`: no syncs at all; `kill -9` safe, not power-loss safe (scratch runs).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use super::FileError;

/// A run's durability level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// One barrier per group of finished jobs (the default).
    #[default]
    Job,
    /// Every final file fsynced.
    File,
    /// No syncs.
    None,
}

impl Durability {
    /// Every level, as written in a config.
    pub const NAMES: [&'static str; 3] = ["job", "file", "none"];

    /// The level a config names.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "job" => Some(Self::Job),
            "file" => Some(Self::File),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Job => "job",
            Self::File => "file",
            Self::None => "none",
        }
    }

    /// Write a job file that counts only through its job's commit (see
    /// [`super::atomic::write_gated`]): in place, fsynced at level `file`.
    pub fn write_gated(self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        super::atomic::write_gated(path, bytes, self == Self::File)
    }

    /// Write `path` atomically, streamed from `fill` (see [`super::atomic::write_with`]),
    /// fsynced first at level `file`.
    pub fn write_with(
        self,
        path: &Path,
        fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        super::atomic::write_with(path, self == Self::File, fill)
    }

    /// At level `file`, make the run-level files written so far durable (one barrier); at
    /// `job` and `none` nothing: what counts is ordered by the jobs' commits, and the
    /// run-level files are rebuilt from the jobs.
    pub fn settle(self, dir: &Path) -> std::io::Result<()> {
        if self == Self::File {
            self.barrier(dir)
        } else {
            Ok(())
        }
    }

    /// Make everything written so far on `dir`'s filesystem durable (levels `job` and
    /// `file`; a no-op at `none`).
    pub fn barrier(self, dir: &Path) -> std::io::Result<()> {
        if self == Self::None {
            return Ok(());
        }
        syncfs(&File::open(dir)?)
    }
}

/// One `syncfs(2)`: the filesystem holding `file`, all of it, written back.
fn syncfs(file: &File) -> std::io::Result<()> {
    nix::unistd::syncfs(file).map_err(std::io::Error::from)
}

/// A file written completely under a temporary name, to be renamed to `target` once a
/// barrier has made it (and everything before it) durable.
#[derive(Debug)]
pub struct Pending {
    /// Where it was written.
    pub temp: PathBuf,
    /// Its final name.
    pub target: PathBuf,
}

impl Pending {
    /// Write `bytes` under a temporary name next to `target`, fsynced at level `file` (at
    /// `job` the commit's barrier makes it durable).
    pub fn write(target: &Path, bytes: &[u8], durability: Durability) -> std::io::Result<Self> {
        let sync = durability == Durability::File;
        let mut file = super::atomic::AtomicFile::create(target, sync)?;
        std::io::Write::write_all(&mut file, bytes)?;
        let temp = file.finish_unnamed()?;
        Ok(Self {
            temp,
            target: target.to_path_buf(),
        })
    }

    fn rename(&self) -> Result<(), FileError> {
        std::fs::rename(&self.temp, &self.target).map_err(FileError::on("write", &self.target))
    }
}

/// The commit points of one run: [`Pending`] files renamed into place after a barrier —
/// at level `job` on a background thread that groups whatever is waiting under one
/// barrier; at `file` and `none` at once, on the caller's thread.
pub struct Commits {
    durability: Durability,
    root: PathBuf,
    queue: Mutex<Option<Sender<Pending>>>,
    thread: Mutex<Option<JoinHandle<Result<(), FileError>>>>,
}

impl Commits {
    /// The commits of the run directory `root`.
    pub fn new(root: &Path, durability: Durability) -> Self {
        let (queue, thread) = if durability == Durability::Job {
            let (tx, rx) = channel();
            let root = root.to_path_buf();
            let handle = std::thread::Builder::new()
                .name("trace-bench-commits".into())
                .spawn(move || commit_loop(&root, &rx))
                .ok();
            (handle.is_some().then_some(tx), handle)
        } else {
            (None, None)
        };
        Self {
            durability,
            root: root.to_path_buf(),
            queue: Mutex::new(queue),
            thread: Mutex::new(thread),
        }
    }

    /// Commit `pending`: now (levels `file`, `none`: fsynced file, rename, fsynced
    /// directory at `file`), or by the next group barrier (`job`). An error of a deferred
    /// commit is returned by [`Commits::finish`].
    pub fn commit(&self, pending: Pending) -> Result<(), FileError> {
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = queue.as_ref() {
            return match tx.send(pending) {
                Ok(()) => Ok(()),
                // The thread ended early (a failed barrier): commit here, the rename synced.
                Err(e) => commit_now(&e.0, Durability::File),
            };
        }
        drop(queue);
        commit_now(&pending, self.durability)
    }

    /// Wait for every deferred commit (the last group's barrier and renames).
    pub fn finish(&self) -> Result<(), FileError> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).take();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = thread {
            handle
                .join()
                .unwrap_or_else(|_| Err(barrier_error(&self.root, "the commit thread panicked")))?;
        }
        Ok(())
    }
}

fn barrier_error(root: &Path, why: &str) -> FileError {
    FileError::on("sync", root)(std::io::Error::other(why.to_string()))
}

/// Levels `file` and `none`: one commit on the caller's thread (the file was synced when
/// written, at `file`).
fn commit_now(pending: &Pending, durability: Durability) -> Result<(), FileError> {
    pending.rename()?;
    if durability == Durability::File
        && let Some(dir) = pending.target.parent()
    {
        File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(FileError::on("sync", dir))?;
    }
    Ok(())
}

/// How long a group stays open after its first pending file: a commit waits at most this
/// plus one barrier, and a run of short jobs pays one barrier per window, not per job.
const GROUP_WINDOW: std::time::Duration = std::time::Duration::from_millis(20);

/// Level `job`: wait for a pending file, gather what comes within [`GROUP_WINDOW`] (or until
/// the queue closes), one barrier, rename them all; until the queue closes. The first error ends the loop (later commits then
/// happen synced on the callers' threads).
fn commit_loop(root: &Path, queue: &Receiver<Pending>) -> Result<(), FileError> {
    while let Ok(first) = queue.recv() {
        // Jobs finishing within the window share the barrier; a closed queue (the run is
        // over) ends the window at once.
        let close = std::time::Instant::now() + GROUP_WINDOW;
        let mut group = vec![first];
        loop {
            let left = close.saturating_duration_since(std::time::Instant::now());
            match queue.recv_timeout(left) {
                Ok(pending) => group.push(pending),
                Err(_) => break,
            }
        }
        Durability::Job
            .barrier(root)
            .map_err(FileError::on("sync", root))?;
        for pending in &group {
            pending.rename()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_print() {
        for name in Durability::NAMES {
            assert_eq!(Durability::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(Durability::parse("fsync"), None);
        assert_eq!(Durability::default(), Durability::Job);
    }

    #[test]
    fn pending_files_appear_only_when_committed_at_every_level() {
        for level in [Durability::Job, Durability::File, Durability::None] {
            let dir = tempfile::tempdir().unwrap();
            let commits = Commits::new(dir.path(), level);
            let targets: Vec<PathBuf> = (0..20)
                .map(|i| dir.path().join(format!("job{i}/job_meta.json")))
                .collect();
            for (i, t) in targets.iter().enumerate() {
                std::fs::create_dir_all(t.parent().unwrap()).unwrap();
                let pending =
                    Pending::write(t, format!("{{\"i\": {i}}}").as_bytes(), level).unwrap();
                assert!(pending.temp.exists());
                commits.commit(pending).unwrap();
            }
            commits.finish().unwrap();
            for (i, t) in targets.iter().enumerate() {
                assert_eq!(
                    std::fs::read_to_string(t).unwrap(),
                    format!("{{\"i\": {i}}}")
                );
                let names: Vec<_> = std::fs::read_dir(t.parent().unwrap())
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                assert_eq!(names.len(), 1, "{level:?}: no temporary file left");
            }
        }
    }

    #[test]
    fn a_failed_deferred_commit_is_reported_by_finish() {
        let dir = tempfile::tempdir().unwrap();
        let commits = Commits::new(dir.path(), Durability::Job);
        let target = dir.path().join("gone/job_meta.json");
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let pending = Pending::write(&target, b"{}", Durability::Job).unwrap();
        std::fs::remove_dir_all(target.parent().unwrap()).unwrap();
        commits.commit(pending).unwrap();
        let e = commits.finish().unwrap_err();
        assert!(e.to_string().contains("gone/job_meta.json"), "{e}");
    }
}
