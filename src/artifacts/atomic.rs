//! Atomic writes: a final file is either complete or absent, never half-written, even if
//! the process is killed mid-write (a temporary file in the same directory, renamed into
//! place). Whether it is also synced is the run's [`Durability`](super::durability) level.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Write `bytes` to `path` atomically (no sync: survives `kill -9`, not a power loss;
/// see [`Durability`](super::durability::Durability)). Creates the parent directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, false, |w| w.write_all(bytes))
}

/// Write a value as pretty JSON (2-space indent, trailing newline), atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    write_atomic(path, &pretty_json(value)?)
}

/// A value as the pretty JSON of our files (2-space indent, trailing newline).
pub fn pretty_json(value: &impl Serialize) -> std::io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Write a file atomically from `fill`, which streams into a buffered writer (large files
/// are never held in memory), fsynced before the rename when `sync`.
pub fn write_with(
    path: &Path,
    sync: bool,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut file = AtomicFile::create(path, sync)?;
    fill(&mut file)?;
    file.commit()
}

/// A file being written under a temporary name next to its final one: written through a
/// buffer, then [committed](AtomicFile::commit) (flushed, fsynced when asked, renamed) or,
/// if dropped first, removed. One open; the directory is created only when missing; mode
/// 0666 under the umask, as `File::create` (teammates on a cluster must read a run).
pub struct AtomicFile {
    out: std::io::BufWriter<std::fs::File>,
    temp: PathBuf,
    target: PathBuf,
    sync: bool,
    done: bool,
}

impl AtomicFile {
    /// Start writing `path`.
    pub fn create(path: &Path, sync: bool) -> std::io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        // std::process::id() is a system call each time; the pid never changes.
        static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
        let pid = *PID.get_or_init(std::process::id);
        let name = path
            .file_name()
            .map_or_else(Default::default, |n| n.to_string_lossy());
        let mut made_dir = false;
        loop {
            let temp = path.with_file_name(format!(
                ".{name}.{pid}.{}.tmp",
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)
            {
                Ok(file) => {
                    return Ok(Self {
                        out: std::io::BufWriter::with_capacity(64 * 1024, file),
                        temp,
                        target: path.to_path_buf(),
                        sync,
                        done: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !made_dir => {
                    std::fs::create_dir_all(path.parent().unwrap_or_else(|| Path::new(".")))?;
                    made_dir = true;
                }
                // A temporary file an earlier process of the same pid left: the next name.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Everything written, fsynced when asked, but not renamed: the temporary name, for a
    /// later commit (`durability::Pending`).
    pub(super) fn finish_unnamed(mut self) -> std::io::Result<PathBuf> {
        self.out.flush()?;
        if self.sync {
            self.out.get_ref().sync_all()?;
        }
        self.done = true;
        Ok(std::mem::take(&mut self.temp))
    }

    /// Flush, fsync when asked, and rename into place.
    pub fn commit(self) -> std::io::Result<()> {
        let target = self.target.clone();
        let temp = self.finish_unnamed()?;
        std::fs::rename(&temp, &target).inspect_err(|_| {
            let _ = std::fs::remove_file(&temp);
        })
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.out.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Write `bytes` to `path` in place (one create, one write, no rename), fsynced when
/// `sync`: for files that count only through a later commit — a job's files, named by a
/// `job_meta.json` renamed into place after them — where a torn file is never read.
pub fn write_gated(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    if sync {
        file.sync_all()?;
    }
    Ok(())
}

/// Read a JSON file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> std::io::Result<T> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_files_honour_the_umask_like_plain_creates() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let atomic = dir.path().join("atomic.json");
        write_json(&atomic, &serde_json::json!({"a": 1})).unwrap();
        let plain = dir.path().join("plain.txt");
        std::fs::File::create(&plain).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode(&atomic),
            mode(&plain),
            "same as File::create under this umask"
        );
    }

    #[test]
    fn writes_replace_whole_files_and_leave_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.json");
        write_json(&path, &serde_json::json!({"a": 1})).unwrap();
        write_json(&path, &serde_json::json!({"a": 2})).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\n  \"a\": 2\n}\n"
        );
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }
}
