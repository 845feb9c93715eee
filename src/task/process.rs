//! Running an outside program (a command evaluator) so that it can never outlive its
//! limit: it starts as the leader of its own process group, its output is drained on
//! threads (a chatty child cannot block on a full pipe), and at the timeout — or the job's
//! deadline, whichever comes first — the whole group is killed with SIGKILL. The group is
//! also killed after a normal exit, so background children an evaluator forgot are not
//! left behind. (A child that leaves the group with `setsid` escapes; evaluators don't.)

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Process groups started by [`run`] and not yet reaped, so an immediate exit (a second
/// Ctrl-C) can still kill them: they are outside the terminal's process group and would
/// not get its signal.
static LIVE_GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Evaluators' working directories not yet removed, so an immediate exit removes them
/// too (their `TempDir` guards never get to run then).
static LIVE_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// SIGKILL every evaluator process group still running and remove the evaluators' working
/// directories (before an immediate exit: a second Ctrl-C).
pub fn kill_all_groups() {
    let groups = LIVE_GROUPS.lock().unwrap_or_else(|e| e.into_inner());
    for g in groups.iter() {
        let _ = killpg(Pid::from_raw(*g), Signal::SIGKILL);
    }
    let dirs = LIVE_DIRS.lock().unwrap_or_else(|e| e.into_inner());
    for d in dirs.iter() {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// A private working directory (`trace-bench-<what>-*` in the temp dir) that is removed
/// when dropped, or by [`kill_all_groups`] on an immediate exit.
pub struct WorkDir(Option<tempfile::TempDir>);

impl WorkDir {
    /// Create one.
    pub fn new(what: &str) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("trace-bench-{what}-"))
            .tempdir()?;
        LIVE_DIRS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(dir.path().to_path_buf());
        Ok(Self(Some(dir)))
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
        self.0.as_ref().expect("present until dropped").path()
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            LIVE_DIRS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|d| d != dir.path());
        }
    }
}

fn live_groups() -> std::sync::MutexGuard<'static, Vec<i32>> {
    LIVE_GROUPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Track a process group started elsewhere (a job's evaluator server, an external
/// trainer), so a second Ctrl-C kills it too.
pub fn track_group(group: i32) {
    live_groups().push(group);
}

/// Kill a tracked group and stop tracking it.
pub fn kill_group(group: i32) {
    let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
    live_groups().retain(|g| *g != group);
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// The whole environment of the child (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// Bytes written to its stdin (then closed).
    pub stdin: Vec<u8>,
    /// Its time limit.
    pub timeout: Duration,
}

/// How it ended.
#[derive(Debug, Clone)]
pub struct ProcessOutput {
    /// Exit code; `None` when it was killed by a signal (or by us at the limit).
    pub code: Option<i32>,
    /// Everything it printed on stdout.
    pub stdout: Vec<u8>,
    /// Everything it printed on stderr.
    pub stderr: Vec<u8>,
    /// True when it was killed at the limit.
    pub timed_out: bool,
    /// Wall-clock time.
    pub elapsed: Duration,
}

impl ProcessOutput {
    /// The last `max` characters of stderr, for feedback.
    pub fn stderr_tail(&self, max: usize) -> String {
        tail_text(&self.stderr, max)
    }
}

/// The last `max` characters of some output, trailing white space dropped.
pub fn tail_text(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end();
    let skip = text.chars().count().saturating_sub(max);
    text.chars().skip(skip).collect()
}

/// Run `spec`, killing its process group at `spec.timeout` or at `deadline`.
/// Errors only when the program cannot be started.
pub fn run(spec: &ProcessSpec, deadline: Option<Instant>) -> std::io::Result<ProcessOutput> {
    use std::os::unix::process::CommandExt;

    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty command"))?;
    let started = Instant::now();
    let limit = match deadline {
        Some(d) => (started + spec.timeout).min(d),
        None => started + spec.timeout,
    };
    let mut child = Command::new(program)
        .args(args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let group = Pid::from_raw(child.id() as i32);
    live_groups().push(group.as_raw());
    let stdin = child.stdin.take().map(|mut pipe| {
        let bytes = spec.stdin.clone();
        // A child that never reads must not block us: write on a thread.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= limit {
            timed_out = true;
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // Kill whatever is left in the group: everything at the limit, stragglers otherwise.
    let _ = killpg(group, Signal::SIGKILL);
    live_groups().retain(|g| *g != group.as_raw());
    let status = match status {
        Some(s) => s,
        None => child.wait()?,
    };
    if let Some(h) = stdin {
        let _ = h.join();
    }
    let elapsed = started.elapsed();
    Ok(ProcessOutput {
        code: if timed_out { None } else { status.code() },
        stdout: join(stdout),
        stderr: join(stderr),
        timed_out,
        elapsed,
    })
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> Option<JoinHandle<Vec<u8>>> {
    pipe.map(|mut p| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = p.read_to_end(&mut buf);
            buf
        })
    })
}

fn join(handle: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    handle.and_then(|h| h.join().ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, dir: &std::path::Path, timeout_ms: u64) -> ProcessSpec {
        ProcessSpec {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            cwd: dir.to_path_buf(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            stdin: b"{\"x\": 1}".to_vec(),
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    /// Whether `pid` is still a live (non-zombie) process.
    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
    }

    #[test]
    fn output_stdin_exit_code_and_a_clean_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = run(
            &sh(
                "cat; echo; echo oops >&2; echo \"[$HOME]\"; exit 3",
                dir.path(),
                5000,
            ),
            None,
        )
        .unwrap();
        assert_eq!(out.code, Some(3));
        assert!(!out.timed_out);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"x\": 1}\n[]\n");
        assert_eq!(out.stderr_tail(100), "oops");
        assert_eq!(out.stderr_tail(2), "ps");
    }

    #[test]
    fn a_hung_program_and_its_children_are_killed_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let script = "sleep 30 & echo $! > child.pid; sleep 30";
        let out = run(&sh(script, dir.path(), 300), None).unwrap();
        assert!(out.timed_out);
        assert_eq!(out.code, None);
        assert!(out.elapsed < Duration::from_secs(3), "{:?}", out.elapsed);
        let pid = std::fs::read_to_string(dir.path().join("child.pid")).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(!alive(pid.trim()), "the background child survived");
    }

    #[test]
    fn the_job_deadline_wins_over_a_longer_timeout_and_stragglers_are_reaped() {
        let dir = tempfile::tempdir().unwrap();
        let out = run(
            &sh("sleep 30", dir.path(), 60_000),
            Some(Instant::now() + Duration::from_millis(200)),
        )
        .unwrap();
        assert!(out.timed_out && out.elapsed < Duration::from_secs(3));
        // A normal exit that leaves a background child: the child is killed too.
        let script = "sleep 30 > /dev/null 2>&1 & echo $! > child.pid; exit 0";
        let out = run(&sh(script, dir.path(), 5000), None).unwrap();
        assert_eq!(out.code, Some(0));
        let pid = std::fs::read_to_string(dir.path().join("child.pid")).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(!alive(pid.trim()), "the straggler survived");
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sh("", dir.path(), 1000);
        spec.argv = vec!["/no/such/program".into()];
        assert!(run(&spec, None).is_err());
    }
}
