//! The Python environment of the external optimizers: a venv with the pinned versions
//! (`trainers/external/constraints.txt`: dspy 3.4.1, gepa 0.1.4, openevolve 0.4.0 and
//! everything they pull, all verified together), made once per machine by
//! `trace-bench external-env`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::external::{CONSTRAINTS, PACKAGES};

/// Why the environment could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A step failed: which command, and how.
    #[error("`{command}` failed: {problem}")]
    Step {
        /// The command line.
        command: String,
        /// Exit status or the error starting it.
        problem: String,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The venv's Python.
pub fn python_of(dir: &Path) -> PathBuf {
    dir.join("bin").join("python")
}

/// Whether `python` imports every module the external trainers need.
pub fn is_complete(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import dspy, gepa, optuna, openevolve"])
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn step(cmd: &mut Command) -> Result<(), EnvError> {
    let line = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(EnvError::Step {
            command: line,
            problem: s.to_string(),
        }),
        Err(e) => Err(EnvError::Step {
            command: line,
            problem: e.to_string(),
        }),
    }
}

/// pip's progress on our stderr: stdout is for the path the command prints.
fn stderr_as_stdio() -> std::process::Stdio {
    use std::os::fd::AsFd;
    match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => std::process::Stdio::from(fd),
        Err(_) => std::process::Stdio::null(),
    }
}

/// Make (or complete) the venv at `dir` with `base_python`, installing the pinned
/// packages; its Python. pip's own output goes to the terminal (stderr).
pub fn ensure(dir: &Path, base_python: &str) -> Result<PathBuf, EnvError> {
    let python = python_of(dir);
    if is_complete(&python) {
        return Ok(python);
    }
    if !python.is_file() {
        step(Command::new(base_python).args(["-m", "venv"]).arg(dir))?;
    }
    let constraints = dir.join("constraints.txt");
    crate::artifacts::atomic::write_atomic(&constraints, CONSTRAINTS.as_bytes()).map_err(
        |source| EnvError::Write {
            path: constraints.clone(),
            source,
        },
    )?;
    step(
        Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "-c"])
            .arg(&constraints)
            .args(PACKAGES)
            .stdout(stderr_as_stdio()),
    )?;
    if !is_complete(&python) {
        return Err(EnvError::Step {
            command: format!(
                "{} -c 'import dspy, gepa, optuna, openevolve'",
                python.display()
            ),
            problem: "the modules do not import after installing".into(),
        });
    }
    Ok(python)
}
