//! The Slurm executor: the jobs left in a planned run directory go to the cluster as
//! **one** job array (task `i` runs chunk `i`: `jobs_per_task` jobs, so 10,000 jobs are a
//! few hundred tasks), followed by a dependent job (`afterany`) that rebuilds the
//! run-level files. Submission writes readable batch scripts under
//! `meta/slurm/submit-<n>/` and returns; nothing here waits for the cluster.
//!
//! Array tasks never collide: each runs disjoint jobs of a shared run directory
//! ([`super::Access::Shared`]: a per-job lock, no manifest rewrite), and a requeued task
//! skips the jobs it finished in this submission. API keys reach the tasks by variable
//! name through the environment (`--export=ALL`), never through a file.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::run::{ExecEnv, Executor, Launched, OpenRun};
use super::submission::last_number;
use super::{RunError, recorded_status, resume_decision};
use crate::artifacts::FileError;
use crate::artifacts::atomic::{write_atomic, write_json};
use crate::matrix::Job;
use crate::vocab::JobId;

pub use super::submission::{Invocation, SlurmError, Submission};
pub use crate::spec::SlurmOptions;

/// Submit a run's remaining jobs as a job array.
#[derive(Debug, Clone)]
pub struct SlurmExecutor {
    /// Flags and config merged.
    pub options: SlurmOptions,
    /// Where the tasks start (relative paths of the config resolve from here).
    pub cwd: PathBuf,
    /// How the run was planned, for the tasks to plan it again.
    pub invocation: Invocation,
}

/// `text` quoted for a POSIX shell.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

impl SlurmExecutor {
    fn binary(&self) -> Result<PathBuf, SlurmError> {
        let path = match &self.options.bin {
            Some(p) => p.clone(),
            None => std::env::current_exe()
                .map_err(|e| FileError::on("locate", Path::new("the running binary"))(e))?,
        };
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        if !path.is_file() {
            return Err(SlurmError::NoBinary { path });
        }
        Ok(path)
    }

    /// What a submission needs before the run directory is opened: the binary the tasks
    /// run, and `sbatch` on PATH (a run refused for want of them leaves nothing behind).
    pub fn preflight(&self) -> Result<(), SlurmError> {
        self.binary()?;
        let on_path = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("sbatch").is_file()));
        if on_path {
            Ok(())
        } else {
            Err(SlurmError::NotInstalled)
        }
    }

    fn sbatch(&self, script: &Path, extra: &[String]) -> Result<String, SlurmError> {
        let mut cmd = Command::new("sbatch");
        cmd.arg("--parsable").args(extra).arg(script);
        let shown = format!(
            "sbatch --parsable {}{}",
            extra.iter().map(|a| format!("{a} ")).collect::<String>(),
            script.display()
        );
        let out = cmd.output().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SlurmError::NotInstalled,
            _ => SlurmError::Sbatch {
                command: shown.clone(),
                stderr: e.to_string(),
            },
        })?;
        if !out.status.success() {
            return Err(SlurmError::Sbatch {
                command: shown,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        // `--parsable` prints `<id>` or `<id>;<cluster>`.
        let id = String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        Ok(id)
    }

    fn header(&self, name: &str, log: &Path) -> String {
        let o = &self.options;
        let mut lines = vec![
            "#!/bin/bash".to_string(),
            format!("#SBATCH --job-name={name}"),
            format!("#SBATCH --output={}", log.display()),
            format!("#SBATCH --chdir={}", self.cwd.display()),
            // The submitting shell's environment, API keys included, by reference: Slurm
            // passes it on; no value is written in this file.
            "#SBATCH --export=ALL".to_string(),
        ];
        if let Some(p) = &o.partition {
            lines.push(format!("#SBATCH --partition={p}"));
        }
        if let Some(m) = &o.mem {
            lines.push(format!("#SBATCH --mem={m}"));
        }
        for a in &o.args {
            lines.push(format!("#SBATCH {a}"));
        }
        lines.join("\n") + "\n"
    }
}

impl Executor for SlurmExecutor {
    fn launch(&self, run: &OpenRun, _env: &ExecEnv<'_>) -> Result<Launched, RunError> {
        let plan = &run.plan;
        let left: Vec<&Job> = plan
            .jobs
            .iter()
            .filter(|j| {
                resume_decision(plan.spec.config.resume, recorded_status(plan, j)).is_none()
            })
            .collect();
        let per_task = self.options.jobs_per_task.unwrap_or(1).max(1);
        let chunks: Vec<Vec<JobId>> = left
            .chunks(per_task)
            .map(|c| c.iter().map(|j| j.job_id.clone()).collect())
            .collect();
        let number = last_number(&plan.run_dir).unwrap_or(0) + 1;
        let dir = Submission::dir(&plan.run_dir, number);
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(FileError::on("create", &logs))?;
        let bin = self.binary()?;
        let root = std::fs::canonicalize(plan.run_dir.root())
            .unwrap_or_else(|_| plan.run_dir.root().to_path_buf());
        // The variable the key is read from (real mode; empty: no auth).
        let env_names: Vec<String> = plan
            .spec
            .llm
            .as_ref()
            .map(|s| s.api_key_env.clone())
            .filter(|n| !n.is_empty())
            .into_iter()
            .collect();
        let created_at = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
        let tasks = chunks.len();
        let workers = self.options.cpus_per_task.unwrap_or(1).max(1);
        let mut submission = Submission {
            invocation: self.invocation.clone(),
            number,
            created_at,
            array_job_id: String::new(),
            report_job_id: String::new(),
            tasks,
            jobs_per_task: per_task,
            workers_per_task: workers,
            chunks,
            array_script: dir.join("array.sh"),
            report_script: dir.join("report.sh"),
            env_names,
        };
        let record = dir.join("submission.json");
        write_json(&record, &submission).map_err(FileError::on("write", &record))?;
        if tasks == 0 {
            return Ok(Launched::Submitted(submission));
        }
        let name = format!("tb-{}", plan.run_id);
        let mut array = self.header(&name, &logs.join("task-%a.log"));
        let throttle = self
            .options
            .max_concurrent
            .map(|n| format!("%{n}"))
            .unwrap_or_default();
        array.push_str(&format!("#SBATCH --array=0-{}{throttle}\n", tasks - 1));
        if let Some(t) = &self.options.time {
            array.push_str(&format!("#SBATCH --time={t}\n"));
        }
        array.push_str(&format!("#SBATCH --cpus-per-task={workers}\n"));
        if !submission.env_names.is_empty() {
            array.push_str(&format!(
                "# Needs in the environment (passed by name, never written here): {}\n",
                submission.env_names.join(" ")
            ));
        }
        array.push_str(&format!(
            "# Task i runs chunk i of {} ({} job(s) each).\nexec {} run-job {} --submission {number} --task-index \"$SLURM_ARRAY_TASK_ID\"\n",
            record.display(),
            per_task,
            quote(&bin.to_string_lossy()),
            quote(&root.to_string_lossy()),
        ));
        write_atomic(&submission.array_script, array.as_bytes())
            .map_err(FileError::on("write", &submission.array_script))?;
        submission.array_job_id = match self.sbatch(&submission.array_script, &[]) {
            Ok(id) => id,
            Err(e) => {
                // Nothing was submitted: leave no submission behind for status or resume.
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e.into());
            }
        };
        let mut report = self.header(&format!("{name}-report"), &logs.join("report.log"));
        report.push_str(&format!(
            "#SBATCH --dependency=afterany:{}\n# Rebuilds the run-level files once every array task has ended, however it ended.\nexec {} report {}\n",
            submission.array_job_id,
            quote(&bin.to_string_lossy()),
            quote(&root.to_string_lossy()),
        ));
        write_atomic(&submission.report_script, report.as_bytes())
            .map_err(FileError::on("write", &submission.report_script))?;
        submission.report_job_id = self.sbatch(&submission.report_script, &[])?;
        write_json(&record, &submission).map_err(FileError::on("write", &record))?;
        Ok(Launched::Submitted(submission))
    }
}

/// The Slurm state of a submission's array tasks, when `squeue` answers: counts per state
/// (`PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`, `TIMEOUT`, …).
pub fn array_states(submission: &Submission) -> Option<std::collections::BTreeMap<String, usize>> {
    if submission.array_job_id.is_empty() {
        return None;
    }
    // `-r`: one line per array task, pending ones included; `-t all`: finished ones too.
    let out = Command::new("squeue")
        .args([
            "-h",
            "-r",
            "-t",
            "all",
            "-j",
            &submission.array_job_id,
            "-o",
            "%K %T",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut states = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((_, state)) = line.trim().split_once(' ') {
            *states.entry(state.trim().to_string()).or_insert(0) += 1;
        }
    }
    Some(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_for_the_shell() {
        assert_eq!(quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
