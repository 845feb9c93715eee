//! Command-line definitions (clap derive). Flag names and aliases follow the Python
//! reference so its invocations keep working.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "Exit codes: 0 every job has a result and none failed (or nothing wrong found, or the compare gate passed), 1 some job failed or has no finished result, no job ran (all skipped), validation found errors or the compare gate failed, 2 usage, config or I/O error, 130 cancelled by the user. `run`, `run --shard` and `run-job` apply the same rule to the jobs they were given.";

/// Benchmark LLM-as-optimizer algorithms: a YAML config names tasks, trainers with
/// hyper-parameter variants, and seeds; trace-bench runs the matrix and writes a
/// canonical run directory.
#[derive(Debug, Parser)]
#[command(name = "trace-bench", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
    /// A folder of user tasks (every `task.yaml` below it; see docs/tasks.md). Repeatable;
    /// a config's `tasks_dir` adds more.
    #[arg(long, global = true, value_name = "DIR")]
    pub tasks_dir: Vec<PathBuf>,
    /// The reference's LLM4AD task folders (`<Trace-Bench>/benchmarks/LLM4AD/benchmark_tasks`,
    /// with its index.json); they come before the upstream `llm4ad` package. Config key
    /// `llm4ad_root`.
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// The Python that discovers and runs LLM4AD evaluators (default `python3` on PATH).
    /// Config key `llm4ad_python`.
    #[arg(long, global = true, value_name = "PYTHON")]
    pub llm4ad_python: Option<String>,
    /// A folder of external trainers (every `*.yaml` in it is a preset with `algorithm:
    /// external`; see docs/external-trainers.md). Repeatable; a config's `trainers_dir`
    /// adds more.
    #[arg(long, global = true, value_name = "DIR")]
    pub trainers_dir: Vec<PathBuf>,
}

/// Sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List task ids, one per line, grouped by suite.
    ListTasks(ListTasksArgs),
    /// List trainers as `id<TAB>available`, sorted by id.
    ListTrainers(ListTrainersArgs),
    /// Load, expand and check a config without running it.
    Validate(ValidateArgs),
    /// Run a matrix (with no --config: the embedded smoke matrix, stub mode).
    Run(RunArgs),
    /// Rebuild results.csv, iterations.csv, summary.json and leaderboard.csv of a run directory (--html: also report.html).
    Report(ReportArgs),
    /// Compare two runs job by job (same task, trainer, variant, seed) and gate on regressions; writes gate.json.
    #[command(after_help = COMPARE_HELP)]
    Compare(CompareArgs),
    /// Where a run stands: jobs per status from the job directories, the Slurm array's state, what is left (exit 0 only when every job has a final status).
    Status(StatusArgs),
    /// Run one Slurm array task's jobs of a planned run directory (what the batch script calls).
    RunJob(RunJobArgs),
    /// Send a run directory to an MLflow tracking server: a parent run, one child run per finished job (params, per-step and final metrics, state files). Again later updates, never duplicates.
    #[command(after_help = EXPORT_HELP)]
    Export(ExportArgs),
    /// Score one candidate (or a JSONL of candidates) on a task like any job's final parameters, as a run directory that sits in the same leaderboards as optimised results.
    Score(ScoreArgs),
    /// Re-evaluate the states a run found (initial, best, final) — on validation and test, with another model (`--set llm.model=…`) or a fixed evaluator — as a new run directory; the source is never written to.
    Rescore(RescoreArgs),
    /// A local web app over a runs dir: runs with live status counts, a run's leaderboard, learning and anytime curves, causes of failure and jobs, a job's curve, parameters (with a diff), transcripts and log, the compare gate of two runs; validate, launch, stop and resume runs (unless --read-only). Prints the URL to open (docs/ui.md).
    Ui(UiArgs),
    /// Create the Python environment of the external trainers (a venv with dspy[optuna]==3.4.1, gepa==0.1.4, openevolve==0.4.0 and their pinned dependencies) and print its Python.
    ExternalEnv(ExternalEnvArgs),
}

/// What `score` and `rescore` pass on to the run they make.
#[derive(Debug, Args)]
pub struct DerivedRunArgs {
    /// Fixed run directory name.
    #[arg(long)]
    pub run_id: Option<String>,
    /// Directory for run directories (default `runs`; `rescore`: the source run's).
    #[arg(long, value_name = "DIR")]
    pub runs_dir: Option<String>,
    /// Override a value of the generated config: `key.path=value` (e.g. `llm.model=gpt-4o`, `mode=real`, `eval_kwargs.timeout_seconds=30`; repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Jobs in flight.
    #[arg(long)]
    pub max_workers: Option<usize>,
    /// Where the jobs execute (as `run --executor`): `local` or `slurm`.
    #[arg(long, value_name = "KIND")]
    pub executor: Option<String>,
    /// Run only shard `K/N` of the jobs here (as `run --shard`; needs --run-id).
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
}

/// `score`
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// The task id (`trace-bench list-tasks`).
    #[arg(long)]
    pub task: String,
    /// The candidate: a YAML or JSON mapping of parameter name to value, or a `.jsonl` file of such mappings (one job per line and seed).
    #[arg(long, value_name = "FILE")]
    pub params: PathBuf,
    /// Seeds, comma-separated (the agent's sampling and any per-seed example draw follow them).
    #[arg(long, value_delimiter = ',', default_value = "123")]
    pub seeds: Vec<i64>,
    #[command(flatten)]
    pub run: DerivedRunArgs,
}

/// `rescore`
#[derive(Debug, Args)]
pub struct RescoreArgs {
    /// The run directory whose states are re-evaluated (made here or copied from elsewhere; finished jobs only, the rest are listed).
    pub run_dir: PathBuf,
    /// Which states of each finished job, comma-separated: initial, best, final.
    #[arg(long, value_delimiter = ',', default_value = "best")]
    pub states: Vec<String>,
    /// Which splits are scored: `validation` (the row's score_val; the test split is not
    /// scored), or `test` / `all` (validation and test: score_val and score_test).
    #[arg(long, default_value = "all", value_parser = ["validation", "test", "all"])]
    pub split: String,
    #[command(flatten)]
    pub run: DerivedRunArgs,
}

/// `ui`
#[derive(Debug, Args)]
pub struct UiArgs {
    /// The folder of run directories shown (and where launched runs go).
    #[arg(long, value_name = "DIR", default_value = "runs")]
    pub runs_dir: PathBuf,
    /// The folder of configs offered on the Launch page.
    #[arg(long, value_name = "DIR", default_value = "configs")]
    pub configs: PathBuf,
    /// The address to listen on. Any address other than loopback needs the token printed at start (`?token=`).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The port (0: a free one).
    #[arg(long, default_value_t = 8765)]
    pub port: u16,
    /// Browse only: no validating, launching, stopping or resuming (the app writes nothing).
    #[arg(long)]
    pub read_only: bool,
}

/// `external-env`
#[derive(Debug, Args)]
pub struct ExternalEnvArgs {
    /// Where the venv goes (default: `~/.cache/trace-bench/external-env-<digest of the pins>`, which external trainers use when no --external-python is given).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The Python the venv is made from.
    #[arg(long, value_name = "PYTHON", default_value = "python3")]
    pub python: String,
    /// Only print where the venv's Python is (or would be); install nothing.
    #[arg(long)]
    pub print_path: bool,
}

/// `status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run directory (`<runs_dir>/<run_id>`).
    pub run_dir: PathBuf,
}

/// `run-job`
#[derive(Debug, Args)]
pub struct RunJobArgs {
    /// The run directory (`<runs_dir>/<run_id>`), planned by `run --executor slurm`.
    pub run_dir: PathBuf,
    /// The array task (`$SLURM_ARRAY_TASK_ID`): which chunk of jobs.
    #[arg(long)]
    pub task_index: usize,
    /// The submission the task belongs to (meta/slurm/submit-N); default: the newest.
    #[arg(long)]
    pub submission: Option<u32>,
}

/// Where `run` executes jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecutorArg {
    /// This machine's worker pool.
    Local,
    /// A Slurm job array (submits and returns).
    Slurm,
}

const EXPORT_HELP: &str = "The server is --mlflow, else MLFLOW_TRACKING_URI, else the one recorded in RUN_DIR/meta/mlflow.json by a live-mirrored run. The experiment is --experiment, else the recorded one (the config's `mlflow.experiment`), else `trace-bench`. A bearer token is read from MLFLOW_TRACKING_TOKEN and never written. Sending clears RUN_DIR/meta/mlflow_pending.json. Exit codes: 0 everything finished is on the server, 1 some job could not be sent, 2 the run directory or the server could not be used. See docs/mlflow.md.";

const COMPARE_HELP: &str = "A score drop fails when the mean paired difference is below -max-score-drop and its paired bootstrap 95% interval lies below zero. Limits come from the defaults, then --thresholds FILE (YAML with the same names, snake_case), then the flags; `off` turns a check off. Exit codes: 0 the gate passed, 1 it failed, 2 a run directory or the thresholds file could not be read.";

/// `list-tasks`
#[derive(Debug, Args)]
pub struct ListTasksArgs {
    /// Only these suites, comma- or `+`-separated (llm4ad, trace_examples, internal, veribench, hf, terminal_bench, datasets, and the suites of your tasks).
    #[arg(long, visible_alias = "dataset-name")]
    pub bench: Option<String>,
    /// Print JSON with description, parameters and evaluator kind.
    #[arg(long)]
    pub json: bool,
}

/// `list-trainers`
#[derive(Debug, Args)]
pub struct ListTrainersArgs {
    /// Print JSON with every knob, its default and meaning.
    #[arg(long)]
    pub json: bool,
    /// Include unavailable trainers (all built-in trainers are available).
    #[arg(long)]
    pub all: bool,
}

/// Options shared by commands that read a config.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Override a config value: `key.path=value` (value read as YAML; repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Directory for run directories (overrides `runs_dir`).
    #[arg(long, visible_alias = "output-dir", value_name = "DIR")]
    pub runs_dir: Option<String>,
    /// The Python external trainers (DSPyTrainer, UpstreamGEPA, OpenEvolveTrainer, your own) run with
    /// (overrides `external_python`; default: the venv `trace-bench external-env` made,
    /// else `python3`).
    #[arg(long, value_name = "PYTHON")]
    pub external_python: Option<String>,
}

impl ConfigArgs {
    /// The `--set` overrides, with `--external-python` as one more.
    pub fn all_sets(&self) -> Vec<String> {
        let mut sets = self.sets.clone();
        if let Some(p) = &self.external_python {
            let quoted = serde_json::Value::from(p.as_str()).to_string();
            sets.push(format!("external_python={quoted}"));
        }
        sets
    }
}

/// `validate`
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The config file (YAML or JSON).
    #[arg(long)]
    pub config: PathBuf,
    /// Unknown keys and knobs become errors; check task parameters; write the would-be meta/manifest.json.
    #[arg(long)]
    pub strict: bool,
    /// List only the tasks of these suites in the per-task lines (every task of the config
    /// is still checked, and its problems still count).
    #[arg(long, visible_alias = "dataset-name")]
    pub bench: Option<String>,
    #[command(flatten)]
    pub config_args: ConfigArgs,
}

/// Resume policies.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ResumeArg {
    /// Skip jobs already ok or skipped.
    Auto,
    /// Rerun only failed and timed-out jobs.
    Failed,
    /// Rerun everything.
    None,
}

/// `run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The config file (YAML or JSON); without it the embedded smoke matrix runs.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub config_args: ConfigArgs,
    /// Fixed run directory name (needed to resume a run).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Jobs in flight.
    #[arg(long, visible_alias = "n-concurrent")]
    pub max_workers: Option<usize>,
    /// Which jobs of an existing run directory run again.
    #[arg(long, value_enum)]
    pub resume: Option<ResumeArg>,
    /// Rerun every job, even if the config changed since the run was planned.
    #[arg(long)]
    pub force: bool,
    /// Hard per-job time limit in seconds; 0 = none (default: 600 in real mode, none in stub).
    #[arg(long)]
    pub job_timeout: Option<f64>,
    /// Logger of every trainer, as the reference's flag (none, ConsoleLogger,
    /// TensorboardLogger, …; default/config keep the config's). Recorded, and part of
    /// the job ids as in the reference; trace-bench writes its own logs either way.
    #[arg(long, value_name = "LOGGER")]
    pub logger: Option<String>,
    /// Stop starting jobs after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Unknown keys and knobs are errors.
    #[arg(long)]
    pub strict: bool,
    /// Run only shard I of N (1-based, round robin over the matrix) of the run directory
    /// named by --run-id, alongside the other shards; `report` merges (docs/cluster.md).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Where jobs run (default: the config's `executor.kind`, else local).
    #[arg(long, value_enum)]
    pub executor: Option<ExecutorArg>,
    #[command(flatten)]
    pub slurm: SlurmArgs,
}

/// Slurm options of `run --executor slurm` (over the config's `executor` block).
#[derive(Debug, Args)]
#[command(next_help_heading = "Slurm (--executor slurm)")]
pub struct SlurmArgs {
    /// Jobs per array task [default: 1].
    #[arg(long, value_name = "K")]
    pub jobs_per_task: Option<usize>,
    /// At most N array tasks at once (`--array=...%N`).
    #[arg(long, value_name = "N")]
    pub max_concurrent: Option<usize>,
    /// `sbatch --partition`.
    #[arg(long, value_name = "P")]
    pub slurm_partition: Option<String>,
    /// `sbatch --time` of each array task (e.g. 02:00:00).
    #[arg(long, value_name = "T")]
    pub slurm_time: Option<String>,
    /// `sbatch --cpus-per-task`; also the worker threads of each task [default: 1].
    #[arg(long, value_name = "C")]
    pub slurm_cpus_per_task: Option<usize>,
    /// `sbatch --mem` (e.g. 8G).
    #[arg(long, value_name = "M")]
    pub slurm_mem: Option<String>,
    /// Another sbatch argument, as written (repeatable), e.g. --slurm-arg=--account=lab.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub slurm_arg: Vec<String>,
    /// The trace-bench binary the array tasks run [default: this one, by absolute path].
    #[arg(long, value_name = "PATH")]
    pub slurm_bin: Option<PathBuf>,
}

/// `report`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run directory (`<runs_dir>/<run_id>`).
    pub run_dir: PathBuf,
    /// Also write RUN_DIR/report.html: one self-contained page (tables and SVG learning curves).
    #[arg(long)]
    pub html: bool,
}

/// `compare`
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The reference run directory.
    pub base_run: PathBuf,
    /// The run directory under test.
    pub new_run: PathBuf,
    /// Where to write gate.json (default: NEW_RUN/gate.json).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// YAML file of limits (max_score_drop, max_pass_rate_drop, max_token_increase, max_time_increase, time_grace_seconds, allow_missing).
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,
    /// Largest tolerated drop of the mean paired score_val difference [default: 0].
    #[arg(long, value_name = "X|off", value_parser = parse_limit)]
    pub max_score_drop: Option<Limit>,
    /// Largest tolerated drop of the pass rate (ok / executed jobs, 0..1) [default: 0].
    #[arg(long, value_name = "X|off", value_parser = parse_limit)]
    pub max_pass_rate_drop: Option<Limit>,
    /// Largest tolerated relative growth of mean tokens per job (0.1 = +10%) [default: 0.1].
    #[arg(long, value_name = "X|off", value_parser = parse_limit)]
    pub max_token_increase: Option<Limit>,
    /// Largest tolerated relative growth of mean seconds per job [default: 0.5].
    #[arg(long, value_name = "X|off", value_parser = parse_limit)]
    pub max_time_increase: Option<Limit>,
    /// Time growth below this many seconds per job never fails [default: 1].
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub time_grace_seconds: Option<f64>,
    /// Base jobs missing from the new run are a warning, not a failure.
    #[arg(long)]
    pub allow_missing: bool,
}

/// `export`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The run directory (`<runs_dir>/<run_id>`).
    pub run_dir: PathBuf,
    /// The MLflow tracking server, `http(s)://host:port` [default: MLFLOW_TRACKING_URI].
    #[arg(long, value_name = "URI")]
    pub mlflow: Option<String>,
    /// The MLflow experiment (created when missing) [default: the config's `mlflow.experiment`, else trace-bench].
    #[arg(long, value_name = "NAME")]
    pub experiment: Option<String>,
}

/// A gate limit from the command line: a number, or `off`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit(pub Option<f64>);

fn parse_limit(s: &str) -> Result<Limit, String> {
    if s == "off" {
        return Ok(Limit(None));
    }
    parse_seconds(s).map(|x| Limit(Some(x)))
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("`{s}` is not a number >= 0")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
