//! One process per run directory: `meta/run.lock`, held with an advisory OS lock (`flock`)
//! for the whole invocation.
//!
//! The kernel releases the lock when its process dies, however it dies, so a lock file left
//! by a killed run never blocks the next one: it is taken over, and the takeover is
//! reported. The file names its holder (pid, host, start time) for the refusal message.
//! (Advisory locks are reliable on local file systems; on NFS they depend on the server.)

use super::RunError;
use crate::artifacts::FileError;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Value as Json, json};

/// The held lock; released (and its file removed) when dropped.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

/// How the lock was acquired.
#[derive(Debug)]
pub struct Acquired {
    /// The lock.
    pub lock: RunLock,
    /// Set when a lock file of a process that is gone was taken over: who it was.
    pub took_over: Option<String>,
}

impl RunLock {
    /// Take the lock at `path` (creating its directory), or say who holds it.
    pub fn acquire(path: &Path) -> Result<Acquired, RunError> {
        let io = |e: std::io::Error| {
            if matches!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ) {
                // The run directory is created here first: say which folder refused.
                let dir = path
                    .ancestors()
                    .skip(1)
                    .find(|d| d.exists())
                    .unwrap_or(path);
                RunError::NotWritable {
                    what: format!("`{}` is not writable", dir.display()),
                    source: e,
                }
            } else {
                RunError::File(FileError::on("lock", path)(e))
            }
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut previous = String::new();
        // A lock on a file that a finishing run has just removed would lock nothing:
        // after locking, check that the path still names the locked file, else retry.
        let mut attempts = 0;
        let mut file = loop {
            attempts += 1;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(io)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let mut file = file;
                    let _ = file.read_to_string(&mut previous);
                    return Err(RunError::Locked {
                        dir: path
                            .parent()
                            .and_then(Path::parent)
                            .unwrap_or(path)
                            .to_path_buf(),
                        holder: describe(&previous),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
            if same_file(&file, path) || attempts >= 5 {
                break file;
            }
        };
        file.read_to_string(&mut previous).map_err(io)?;
        let took_over = (!previous.trim().is_empty()).then(|| describe(&previous));
        let holder = json!({
            "pid": std::process::id(),
            "host": sysinfo::System::host_name().ok(),
            "started_at": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        });
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        // One write; no sync: the note only says who holds the lock, which dies with us.
        file.write_all(format!("{holder}\n").as_bytes())
            .map_err(io)?;
        Ok(Acquired {
            lock: RunLock {
                file,
                path: path.to_path_buf(),
            },
            took_over,
        })
    }
}

/// Whether `path` still names the open `file` (same device and inode).
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Remove first, then unlock (on close): a waiting run never sees our stale note.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// "pid 123 on host, started 2026-11-21T15:00:00Z" from a lock file's text.
fn describe(text: &str) -> String {
    let v: Json = serde_json::from_str(text.trim()).unwrap_or(Json::Null);
    let field = |k: &str| {
        v.get(k)
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
    };
    match (field("pid"), field("host"), field("started_at")) {
        (Some(pid), host, started) => format!(
            "pid {pid}{}{}",
            host.map(|h| format!(" on {h}")).unwrap_or_default(),
            started
                .map(|s| format!(", started {s}"))
                .unwrap_or_default()
        ),
        _ => "holder unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_a_stale_file_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/meta/run.lock");
        let first = RunLock::acquire(&path).unwrap();
        assert!(first.took_over.is_none());
        let err = RunLock::acquire(&path).unwrap_err().to_string();
        assert!(
            err.contains("is in use by another trace-bench run"),
            "{err}"
        );
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        assert!(!path.exists(), "a released lock leaves no file");

        // A file left by a killed run (no OS lock held) is taken over.
        std::fs::write(
            &path,
            r#"{"pid": 4242, "host": "node7", "started_at": "2026-11-21T10:00:00Z"}"#,
        )
        .unwrap();
        let second = RunLock::acquire(&path).unwrap();
        assert_eq!(
            second.took_over.as_deref(),
            Some("pid 4242 on node7, started 2026-11-21T10:00:00Z")
        );
    }
}
