//! TFRecord-framed TensorBoard event file writer.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::crc32c::masked_crc32c;
use super::proto;

/// Per-process counter for the `{unique}` part of event file names.
static NEXT_UNIQUE: AtomicU64 = AtomicU64::new(0);

/// How many file names `create` tries before giving up on `AlreadyExists`.
const MAX_NAME_ATTEMPTS: u32 = 1000;

/// Longest host name component kept in a file name.
const MAX_HOST_LEN: usize = 64;

/// Appends one TFRecord to `w`:
/// `u64le len | u32le masked_crc32c(len) | data | u32le masked_crc32c(data)`.
///
/// The record is assembled in memory and handed to `w` in one `write_all`,
/// so a `BufWriter` never holds half a record after an error (unless the
/// record is larger than its buffer).
pub fn write_record<W: Write>(w: &mut W, data: &[u8]) -> io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    let mut rec = Vec::with_capacity(data.len() + 16);
    rec.extend_from_slice(&len);
    rec.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    rec.extend_from_slice(data);
    rec.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    w.write_all(&rec)
}

/// Writes one TensorBoard event file (`events.out.tfevents.*`).
///
/// Use one writer per run directory: TensorBoard reads the event files of a
/// directory in name order and may not go back to an older file.
///
/// Data is buffered; call [`flush`](Self::flush) to make it visible to a
/// running TensorBoard and [`close`](Self::close) at the end (dropping the
/// writer flushes too, but ignores errors and does not fsync).
#[derive(Debug)]
pub struct EventFileWriter {
    path: PathBuf,
    out: BufWriter<File>,
    /// Set when a record write failed part-way; further records would
    /// follow a possibly truncated one, which readers stop at.
    broken: bool,
}

impl EventFileWriter {
    /// Creates `dir` (and parents) and a new event file in it, then writes
    /// the `file_version` record (`brain.Event:2`) and flushes it.
    ///
    /// The name is `events.out.tfevents.{secs:010}.{host}.{pid}.{unique}`
    /// with `secs` taken from `wall_time`. The file is opened with
    /// `create_new`, so an existing file is never overwritten: on a name
    /// clash the next `unique` number is tried.
    pub fn create(dir: &Path, wall_time: f64) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let secs = if wall_time.is_finite() && wall_time > 0.0 {
            wall_time as u64
        } else {
            0
        };
        let host = hostname();
        let pid = std::process::id();
        let mut last_err = None;
        for _ in 0..MAX_NAME_ATTEMPTS {
            let unique = NEXT_UNIQUE.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(
                "events.out.tfevents.{secs:010}.{host}.{pid}.{unique}"
            ));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    let mut w = Self {
                        path,
                        out: BufWriter::new(file),
                        broken: false,
                    };
                    w.write_event(&proto::file_version_event(wall_time, proto::FILE_VERSION))?;
                    w.flush()?;
                    return Ok(w);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("no event file name available")))
    }

    /// Path of the event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a scalar as a legacy `simple_value` (f32), which every
    /// TensorBoard loader (including the fast Rust one) reads.
    pub fn add_scalar(
        &mut self,
        tag: &str,
        step: i64,
        value: f32,
        wall_time: f64,
    ) -> io::Result<()> {
        self.write_event(&proto::scalar_event(wall_time, step, tag, value))
    }

    /// Appends a text summary (shown by the Text dashboard; Markdown).
    pub fn add_text(&mut self, tag: &str, step: i64, text: &str, wall_time: f64) -> io::Result<()> {
        self.write_event(&proto::text_event(wall_time, step, tag, text))
    }

    /// Flushes buffered records to the file, so TensorBoard sees them.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes the file, and `fsync`s it when `sync` (the run's `file` durability; at
    /// `job` the job's commit barrier covers it).
    pub fn close(mut self, sync: bool) -> io::Result<()> {
        self.out.flush()?;
        if sync {
            self.out.get_ref().sync_all()?;
        }
        Ok(())
    }

    fn write_event(&mut self, event: &[u8]) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other(format!(
                "event file {} is unusable after an earlier write error",
                self.path.display()
            )));
        }
        write_record(&mut self.out, event).inspect_err(|_| self.broken = true)
    }
}

/// Host name for file names: `/etc/hostname`, else `$HOSTNAME`, else
/// `localhost`; sanitized to `[A-Za-z0-9._-]`. Read once per process (one file per job).
fn hostname() -> String {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(read_hostname).clone()
}

fn read_hostname() -> String {
    let from_file = fs::read_to_string("/etc/hostname").ok();
    let from_env = std::env::var("HOSTNAME").ok();
    [from_file, from_env]
        .into_iter()
        .flatten()
        .map(|h| sanitize_host(&h))
        .find(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// First line of `raw`, trimmed, with every character outside
/// `[A-Za-z0-9._-]` replaced by `_`, cut to [`MAX_HOST_LEN`].
fn sanitize_host(raw: &str) -> String {
    raw.lines()
        .next()
        .unwrap_or("")
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_HOST_LEN)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::crc32c::{crc32c, unmask};
    use super::super::proto::decode::{Field, fields, only_len};
    use super::*;

    /// Parses TFRecord framing, checking both CRCs of every record.
    fn read_records(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let len_bytes = &bytes[pos..pos + 8];
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
            let len_crc = u32::from_le_bytes(bytes[pos + 8..pos + 12].try_into().unwrap());
            assert_eq!(unmask(len_crc), crc32c(len_bytes), "length CRC at {pos}");
            assert_eq!(len_crc, masked_crc32c(len_bytes));
            let data = &bytes[pos + 12..pos + 12 + len];
            let data_crc =
                u32::from_le_bytes(bytes[pos + 12 + len..pos + 16 + len].try_into().unwrap());
            assert_eq!(unmask(data_crc), crc32c(data), "data CRC at {pos}");
            out.push(data.to_vec());
            pos += 16 + len;
        }
        assert_eq!(pos, bytes.len(), "no trailing bytes");
        out
    }

    #[test]
    fn record_framing_layout() {
        let mut buf = Vec::new();
        write_record(&mut buf, b"abc").unwrap();
        assert_eq!(buf.len(), 8 + 4 + 3 + 4);
        assert_eq!(&buf[..8], 3u64.to_le_bytes());
        assert_eq!(
            &buf[8..12],
            masked_crc32c(&3u64.to_le_bytes()).to_le_bytes()
        );
        assert_eq!(&buf[12..15], b"abc");
        assert_eq!(&buf[15..], masked_crc32c(b"abc").to_le_bytes());
        // Empty record is valid too.
        let mut buf = Vec::new();
        write_record(&mut buf, b"").unwrap();
        assert_eq!(read_records(&buf), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn record_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a").join("b");
        let mut w = EventFileWriter::create(&dir, 1_700_000_000.5).unwrap();
        let path = w.path().to_path_buf();
        assert!(path.starts_with(&dir));
        w.add_scalar("train/loss", 1, 0.25, 1_700_000_001.0)
            .unwrap();
        w.add_scalar("train/loss", 2, -1.5e-3, 1_700_000_002.0)
            .unwrap();
        w.add_text("notes", 2, "**bold** ü", 1_700_000_003.0)
            .unwrap();
        w.close(true).unwrap();

        let records = read_records(&fs::read(&path).unwrap());
        assert_eq!(records.len(), 4);
        assert_eq!(
            records[0],
            proto::file_version_event(1_700_000_000.5, "brain.Event:2")
        );
        assert_eq!(
            only_len(&records[0], proto::event::FILE_VERSION),
            b"brain.Event:2"
        );

        let ev = fields(&records[2]).unwrap();
        assert_eq!(ev[0], (1, Field::Fixed64(1_700_000_002.0f64.to_bits())));
        assert_eq!(ev[1], (2, Field::Varint(2)));
        let value = only_len(&only_len(&records[2], 5), 1);
        assert_eq!(
            fields(&value).unwrap(),
            [
                (1, Field::Len(b"train/loss".to_vec())),
                (2, Field::Fixed32((-1.5e-3f32).to_bits())),
            ]
        );
        assert_eq!(
            records[3],
            proto::text_event(1_700_000_003.0, 2, "notes", "**bold** ü")
        );
    }

    #[test]
    fn flush_makes_records_visible() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = EventFileWriter::create(tmp.path(), 100.0).unwrap();
        // The file_version record is flushed by `create`.
        assert_eq!(read_records(&fs::read(w.path()).unwrap()).len(), 1);
        w.add_scalar("x", 0, 1.0, 101.0).unwrap();
        w.flush().unwrap();
        assert_eq!(read_records(&fs::read(w.path()).unwrap()).len(), 2);
    }

    #[test]
    fn file_name_format() {
        let tmp = tempfile::tempdir().unwrap();
        let w = EventFileWriter::create(tmp.path(), 1_234.9).unwrap();
        let name = w.path().file_name().unwrap().to_str().unwrap().to_owned();
        let rest = name
            .strip_prefix("events.out.tfevents.0000001234.")
            .unwrap();
        let parts: Vec<&str> = rest.rsplitn(3, '.').collect();
        assert_eq!(parts.len(), 3, "{name}");
        assert!(parts[0].parse::<u64>().is_ok(), "{name}");
        assert_eq!(parts[1], std::process::id().to_string());
        assert!(!parts[2].is_empty());
        assert!(
            parts[2]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        );
        // Non-finite or negative times give zero seconds instead of panicking.
        let w = EventFileWriter::create(tmp.path(), f64::NAN).unwrap();
        let name = w.path().file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            name.starts_with("events.out.tfevents.0000000000."),
            "{name}"
        );
    }

    #[test]
    fn two_writers_same_dir_same_second() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = EventFileWriter::create(tmp.path(), 1_700_000_000.0).unwrap();
        let mut b = EventFileWriter::create(tmp.path(), 1_700_000_000.0).unwrap();
        assert_ne!(a.path(), b.path());
        a.add_scalar("a", 1, 1.0, 1_700_000_000.1).unwrap();
        b.add_scalar("b", 1, 2.0, 1_700_000_000.2).unwrap();
        let (pa, pb) = (a.path().to_path_buf(), b.path().to_path_buf());
        a.close(false).unwrap();
        b.close(true).unwrap();
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(names.len(), 2);
        assert_eq!(read_records(&fs::read(&pa).unwrap()).len(), 2);
        assert_eq!(read_records(&fs::read(&pb).unwrap()).len(), 2);
    }

    #[test]
    fn existing_file_is_never_clobbered() {
        let tmp = tempfile::tempdir().unwrap();
        let w = EventFileWriter::create(tmp.path(), 5.0).unwrap();
        let first = w.path().to_path_buf();
        drop(w);
        // Pre-create the names the next few `unique` values would take in
        // this process; `create` must skip them, not truncate them.
        let next = NEXT_UNIQUE.load(Ordering::Relaxed);
        let stem = first.file_name().unwrap().to_str().unwrap();
        let stem = &stem[..stem.rfind('.').unwrap()];
        for u in next..next + 50 {
            fs::write(tmp.path().join(format!("{stem}.{u}")), b"keep").unwrap();
        }
        let w = EventFileWriter::create(tmp.path(), 5.0).unwrap();
        assert_ne!(w.path(), first);
        for entry in fs::read_dir(tmp.path()).unwrap() {
            let p = entry.unwrap().path();
            if p != first && p != w.path() {
                assert_eq!(fs::read(&p).unwrap(), b"keep");
            }
        }
    }

    #[test]
    fn io_errors_are_returned() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("not-a-dir");
        fs::write(&file, b"x").unwrap();
        assert!(EventFileWriter::create(&file, 1.0).is_err());
        assert!(EventFileWriter::create(&file.join("sub"), 1.0).is_err());
    }

    #[test]
    fn write_errors_are_returned() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let err = write_record(&mut Full, b"data").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        // Through a BufWriter the error surfaces on flush, not as a panic.
        let mut w = BufWriter::new(Full);
        write_record(&mut w, b"data").unwrap();
        assert_eq!(w.flush().unwrap_err().kind(), io::ErrorKind::StorageFull);
    }

    #[test]
    fn host_sanitizing() {
        assert_eq!(sanitize_host("node-1.example.com\n"), "node-1.example.com");
        assert_eq!(sanitize_host("  my host/ä:1 \nsecond"), "my_host___1");
        assert_eq!(sanitize_host("\n"), "");
        assert_eq!(sanitize_host(&"x".repeat(300)).len(), MAX_HOST_LEN);
        let h = hostname();
        assert!(!h.is_empty());
        assert!(
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        );
    }
}
