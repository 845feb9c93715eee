//! Where a run's jobs execute, decoded once from the config's `executor` block
//! (docs/cluster.md): here, or on Slurm with its submission options.

use std::path::PathBuf;

use crate::vocab::Kwargs;

/// Where the jobs run (`executor.kind`; `run --executor` picks another).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Executor {
    /// This machine (`kind: local`, or no `executor` block).
    #[default]
    Local,
    /// A Slurm job array (`kind: slurm`), with the block's options.
    Slurm(SlurmOptions),
}

impl Executor {
    /// The `executor` block, whose values the loader checked (a located error each).
    pub fn from_block(block: &Kwargs) -> Self {
        match block.get("kind").and_then(|k| k.as_str()) {
            Some("slurm") => Executor::Slurm(SlurmOptions::from_block(block)),
            _ => Executor::Local,
        }
    }

    /// The Slurm options, when the jobs go to Slurm.
    pub fn slurm(&self) -> Option<&SlurmOptions> {
        match self {
            Executor::Local => None,
            Executor::Slurm(options) => Some(options),
        }
    }
}

/// How to submit: `run --executor slurm` flags over the config's `executor` block.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlurmOptions {
    /// Jobs per array task (default 1).
    pub jobs_per_task: Option<usize>,
    /// At most this many array tasks at once (`%N`).
    pub max_concurrent: Option<usize>,
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time` (per array task).
    pub time: Option<String>,
    /// `--cpus-per-task`; also the worker threads of a task.
    pub cpus_per_task: Option<usize>,
    /// `--mem`.
    pub mem: Option<String>,
    /// More `sbatch` arguments, as given.
    pub args: Vec<String>,
    /// The binary the tasks run (default: this one).
    pub bin: Option<PathBuf>,
}

impl SlurmOptions {
    /// The config's `executor` block (values were checked when it was loaded).
    fn from_block(block: &Kwargs) -> Self {
        let text = |k: &str| {
            block.get(k).and_then(|v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        let count = |k: &str| block.get(k).and_then(|v| v.as_u64()).map(|n| n as usize);
        Self {
            jobs_per_task: count("jobs_per_task"),
            max_concurrent: count("max_concurrent"),
            partition: text("partition"),
            time: text("time"),
            cpus_per_task: count("cpus_per_task"),
            mem: text("mem"),
            args: block
                .get("args")
                .and_then(|a| a.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            bin: text("bin").map(PathBuf::from),
        }
    }

    /// `self` with every option `over` sets replacing ours (flags over the config).
    pub fn overridden_by(self, over: SlurmOptions) -> Self {
        Self {
            jobs_per_task: over.jobs_per_task.or(self.jobs_per_task),
            max_concurrent: over.max_concurrent.or(self.max_concurrent),
            partition: over.partition.or(self.partition),
            time: over.time.or(self.time),
            cpus_per_task: over.cpus_per_task.or(self.cpus_per_task),
            mem: over.mem.or(self.mem),
            args: if over.args.is_empty() {
                self.args
            } else {
                over.args
            },
            bin: over.bin.or(self.bin),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_config_block() {
        let block: Kwargs = serde_json::json!({
            "kind": "slurm", "jobs_per_task": 5, "partition": "gpu", "time": "01:00:00",
            "mem": 4096, "args": ["--qos=low"]
        })
        .as_object()
        .cloned()
        .unwrap();
        let config = SlurmOptions::from_block(&block);
        assert_eq!(config.mem.as_deref(), Some("4096"));
        let merged = config.overridden_by(SlurmOptions {
            partition: Some("cpu".into()),
            ..SlurmOptions::default()
        });
        assert_eq!(merged.partition.as_deref(), Some("cpu"));
        assert_eq!(merged.jobs_per_task, Some(5));
        assert_eq!(merged.args, ["--qos=low"]);
    }

    #[test]
    fn only_kind_slurm_submits() {
        let block = |v: serde_json::Value| v.as_object().cloned().unwrap();
        assert_eq!(Executor::from_block(&Kwargs::new()), Executor::Local);
        assert_eq!(
            Executor::from_block(&block(serde_json::json!({"kind": "local"}))),
            Executor::Local
        );
        let slurm = Executor::from_block(&block(
            serde_json::json!({"kind": "slurm", "jobs_per_task": 3}),
        ));
        assert_eq!(slurm.slurm().and_then(|o| o.jobs_per_task), Some(3));
    }
}
