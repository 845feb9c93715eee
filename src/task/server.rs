//! One evaluator process for a whole job (`evaluator.serve: true`): started at the job's
//! first evaluation, it reads one request per line on stdin and answers one verdict per
//! line on stdout, so imports and instance generation happen once per job instead of once
//! per candidate. It is the leader of its own process group; a timeout, the job's
//! deadline or a crash kills the group, and the next evaluation starts a fresh process
//! (a failure costs one process, not the job). Dropping the server (the job ended) kills it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::process::{WorkDir, kill_group, tail_text, track_group};

/// Bytes of the server's stderr kept for feedback.
const STDERR_KEPT: usize = 8192;

/// Why a request got no verdict.
#[derive(Debug)]
pub enum ServeError {
    /// No answer before the limit (the server was killed).
    TimedOut,
    /// The server exited (its exit code, when it has one).
    Exited(Option<i32>),
    /// The request could not be written.
    Io(std::io::Error),
}

/// A running evaluator server.
pub struct EvalServer {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    group: i32,
    /// Its private working directory (HOME and TMPDIR point here).
    _dir: WorkDir,
}

impl EvalServer {
    /// Start `argv` in a fresh private directory with `env` (HOME/TMPDIR set by `env_for`).
    pub fn start(
        argv: &[String],
        env_for: impl Fn(&Path) -> Vec<(String, String)>,
    ) -> std::io::Result<Self> {
        use std::os::unix::process::CommandExt;
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| std::io::Error::other("empty command"))?;
        let dir = WorkDir::new("evaluator")?;
        let mut child = Command::new(program)
            .args(args)
            .current_dir(dir.path())
            .env_clear()
            .envs(env_for(dir.path()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()?;
        let group = child.id() as i32;
        track_group(group);
        let stdin = child.stdin.take().expect("piped stdin");
        let (send, lines) = channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let mut pipe = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut kept = sink.lock().unwrap_or_else(|e| e.into_inner());
                kept.extend_from_slice(&buf[..n]);
                let excess = kept.len().saturating_sub(STDERR_KEPT);
                kept.drain(..excess);
            }
        });
        Ok(Self {
            child,
            stdin,
            lines,
            stderr,
            group,
            _dir: dir,
        })
    }

    /// Send one request (a JSON object on one line) and wait for one line until `limit`.
    pub fn ask(&mut self, request: &str, limit: Instant) -> Result<String, ServeError> {
        self.stdin
            .write_all(request.as_bytes())
            .and_then(|()| self.stdin.write_all(b"\n"))
            .and_then(|()| self.stdin.flush())
            .map_err(ServeError::Io)?;
        let wait = limit.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(wait) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => Err(ServeError::TimedOut),
            Err(RecvTimeoutError::Disconnected) => {
                let code = self.child.wait().ok().and_then(|s| s.code());
                Err(ServeError::Exited(code))
            }
        }
    }

    /// The last `max` characters of its stderr.
    pub fn stderr_tail(&self, max: usize) -> String {
        tail_text(&self.stderr.lock().unwrap_or_else(|e| e.into_inner()), max)
    }
}

impl Drop for EvalServer {
    fn drop(&mut self) {
        kill_group(self.group);
        let _ = self.child.wait();
    }
}

/// A job's evaluator servers, started on first use: one per evaluation in flight (one,
/// unless the job evaluates a batch with `num_threads` > 1). Cloning shares them; each job
/// gets a fresh slot when the task is bound to it, so jobs never share a server.
#[derive(Clone, Default)]
pub struct ServerSlot(Arc<Mutex<Vec<EvalServer>>>);

impl ServerSlot {
    /// An idle server, if one is running (the caller starts one otherwise).
    pub fn take(&self) -> Option<EvalServer> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Hand a healthy server back for the next evaluation.
    pub fn give_back(&self, server: EvalServer) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(server);
    }
}

impl std::fmt::Debug for ServerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSlot")
    }
}

/// The slot is a job's running state, not part of what the evaluator is.
impl PartialEq for ServerSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn env(dir: &Path) -> Vec<(String, String)> {
        vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("HOME".into(), dir.display().to_string()),
        ]
    }

    #[test]
    fn one_process_answers_many_requests_and_a_hang_is_killed() {
        let script = "n=0; while read line; do n=$((n+1)); if [ \"$line\" = hang ]; then sleep 30; fi; echo \"$n:$line\"; done";
        let argv = vec!["sh".to_string(), "-c".into(), script.into()];
        let mut server = EvalServer::start(&argv, env).unwrap();
        let soon = || Instant::now() + Duration::from_secs(5);
        assert_eq!(server.ask("a", soon()).unwrap(), "1:a");
        assert_eq!(server.ask("b", soon()).unwrap(), "2:b", "the same process");
        let hung = server.ask("hang", Instant::now() + Duration::from_millis(300));
        assert!(matches!(hung, Err(ServeError::TimedOut)), "{hung:?}");
        let group = nix::unistd::Pid::from_raw(server.group);
        drop(server);
        // Killed at once; its orphaned `sleep` is reaped by init soon after.
        let gone = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(25));
            nix::sys::signal::killpg(group, None).is_err()
        });
        assert!(gone, "the group is gone");
        let exits = vec!["sh".to_string(), "-c".into(), "read line; exit 7".into()];
        let mut server = EvalServer::start(&exits, env).unwrap();
        assert!(matches!(
            server.ask("x", soon()),
            Err(ServeError::Exited(Some(7)))
        ));
    }
}
