//! Planning: config → checked spec → job matrix → run directory with its `meta/` files.
//!
//! Planning is separate from executing: a planned run directory (its manifest) is enough to
//! execute any single job by index, which is what cluster array tasks and resume need.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value as Json;

use super::RunError;
use crate::artifacts::FileError;
use crate::artifacts::atomic::{write_atomic, write_json};
use crate::artifacts::layout::RunDir;
use crate::artifacts::yaml_out::to_yaml;
use crate::config::load::{Source, load_with};
use crate::config::model::{Config, ResumeMode, redact_secret_keys};
use crate::config::{Diagnostic, Diagnostics};
use crate::matrix::{self, Job};
use crate::provenance;
use crate::registry::Registry;
use crate::registry::llm4ad::Llm4adSources;
use crate::results::manifest::{self, Manifest, ManifestJob};
use crate::results::row::Resolved;
use crate::spec::{Checked, Inputs, KNOWN_LOGGERS, LoggerOverride, Spec, check, logger_override};
use crate::vocab::{ManifestStatus, RunId, canonical};

/// Command-line settings that override the config (they are recorded in the snapshot).
#[derive(Debug, Clone, Default)]
pub struct CliOverrides {
    /// `--runs-dir`
    pub runs_dir: Option<String>,
    /// `--run-id`
    pub run_id: Option<String>,
    /// `--max-workers`
    pub max_workers: Option<usize>,
    /// `--resume` (`--force` means `none`)
    pub resume: Option<ResumeMode>,
    /// `--fail-fast`
    pub fail_fast: bool,
    /// `--job-timeout`
    pub job_timeout: Option<f64>,
    /// `--logger` (every trainer's logger; part of the job ids, as in the reference)
    pub logger: Option<String>,
    /// `--root` and `--llm4ad-python` (over the config's `llm4ad_root`, `llm4ad_python`)
    pub llm4ad: Llm4adSources,
    /// The config file's folder: the config's relative paths (`tasks_dir`, `trainers_dir`,
    /// `llm4ad_root`) resolve from it (unset: the working directory)
    pub config_dir: Option<PathBuf>,
}

/// A checked config and its jobs.
#[derive(Debug)]
pub struct Prepared {
    /// The spec of the config with CLI overrides applied (`None` if it could not be
    /// decoded; built even when the check found errors).
    pub spec: Option<Spec>,
    /// The registry with the config's task and trainer sources added.
    pub registry: Registry,
    /// Jobs in matrix order.
    pub jobs: Vec<Job>,
    /// Every problem found.
    pub diagnostics: Diagnostics,
}

impl Prepared {
    /// Whether planning may go on.
    pub fn is_ok(&self) -> bool {
        self.spec.is_some() && !self.diagnostics.has_errors()
    }
}

/// Load, override, check and expand a config. Nothing is written.
pub fn prepare(
    source: &Source,
    sets: &[String],
    cli: &CliOverrides,
    strict: bool,
    registry: &Registry,
) -> Prepared {
    let loaded = load_with(source, sets, strict);
    let mut diagnostics = loaded.diagnostics;
    let Some(mut config) = loaded.config else {
        return Prepared {
            spec: None,
            registry: registry.clone(),
            jobs: Vec::new(),
            diagnostics,
        };
    };
    apply_cli(&mut config, cli);
    // `veribench:all` is every discovered VeriBench task, the placeholder when there is
    // none (always, here: the harness is the reference's).
    for task in &mut config.tasks {
        if task.id == "veribench:all" {
            task.id = "veribench:smoke_placeholder".into();
        }
    }
    config.tasks = crate::task::hf::expand_entries(std::mem::take(&mut config.tasks));
    if let Some(value) = &cli.logger {
        match logger_override(value) {
            LoggerOverride::Keep => {}
            LoggerOverride::Set(name) => {
                for trainer in &mut config.trainers {
                    trainer.logger = Some(name.clone());
                }
            }
            LoggerOverride::Unknown(name) => diagnostics.push(
                Diagnostic::warning(
                    "--logger",
                    Default::default(),
                    format!("unknown logger override `{name}`; keeping the config's loggers"),
                )
                .with_hint(format!("known loggers: {}", KNOWN_LOGGERS.join(", "))),
            ),
        }
    }
    let inputs = Inputs {
        strict,
        base_dir: cli.config_dir.as_deref().unwrap_or(Path::new("")),
        llm4ad: &cli.llm4ad,
    };
    let Checked {
        spec,
        registry,
        diagnostics: found,
    } = check(config, registry, inputs);
    for d in found {
        diagnostics.push(d);
    }
    let config = &spec.config;
    let (jobs, warnings) = matrix::expand(config, &registry);
    for d in warnings {
        diagnostics.push(d);
    }
    if jobs.is_empty() && !config.tasks.is_empty() {
        diagnostics.push(Diagnostic::error(
            "",
            Default::default(),
            "the matrix is empty: no jobs expanded",
        ));
    }
    Prepared {
        spec: Some(spec),
        registry,
        jobs,
        diagnostics,
    }
}

fn apply_cli(config: &mut Config, cli: &CliOverrides) {
    if let Some(d) = &cli.runs_dir {
        config.runs_dir = d.clone();
    }
    if let Some(id) = &cli.run_id {
        config.run_id = Some(id.clone());
    }
    if let Some(w) = cli.max_workers {
        config.max_workers = w.max(1);
    }
    if let Some(r) = cli.resume {
        config.resume = r;
    }
    if cli.fail_fast {
        config.fail_fast = true;
    }
    if cli.job_timeout.is_some() {
        config.job_timeout = cli.job_timeout;
    }
}

/// A planned run: where it goes and what it runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Run id.
    pub run_id: RunId,
    /// Its directory.
    pub run_dir: RunDir,
    /// The checked config and its runtime parts.
    pub spec: Spec,
    /// The snapshot as written (secrets redacted, `run_id` set).
    pub snapshot: Json,
    /// SHA-256 of the canonical snapshot without `run_id`.
    pub config_hash: String,
    /// Jobs in matrix order.
    pub jobs: Vec<Job>,
    /// When the plan was made.
    pub created_at: String,
}

impl Plan {
    /// Fix the run id (configured, or generated from the snapshot and git commit).
    pub fn new(spec: Spec, jobs: Vec<Job>, git_commit: &str, now: SystemTime) -> Self {
        let config = &spec.config;
        let mut snapshot = redact_secret_keys(&config.snapshot());
        let run_id = config
            .run_id
            .clone()
            .map(RunId::new)
            .unwrap_or_else(|| matrix::generate_run_id(&snapshot, git_commit, now));
        let mut hashed = snapshot.clone();
        if let Json::Object(m) = &mut hashed {
            m.shift_remove("run_id");
        }
        let config_hash = canonical::sha256_hex(&canonical::canonical_json(&hashed));
        snapshot["run_id"] = Json::String(run_id.to_string());
        let run_dir = RunDir::new(&config.runs_dir, run_id.as_str());
        Self {
            run_dir,
            run_id,
            spec,
            snapshot,
            config_hash,
            jobs,
            created_at: humantime::format_rfc3339_micros(now).to_string(),
        }
    }

    /// The manifest with every job in the given state.
    pub fn manifest(
        &self,
        statuses: impl Fn(&Job) -> (ManifestStatus, Option<String>),
        finished_at: Option<String>,
    ) -> Manifest {
        let mut manifest = self.manifest_head(finished_at);
        manifest.jobs = self
            .jobs
            .iter()
            .map(|job| {
                let (status, reason) = statuses(job);
                manifest_job(job, status, reason)
            })
            .collect();
        manifest
    }

    /// The manifest without its jobs (written with [`manifest::write_streamed`]).
    pub fn manifest_head(&self, finished_at: Option<String>) -> Manifest {
        Manifest {
            run_id: self.run_id.clone(),
            tool: "trace-bench".into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            config_hash: self.config_hash.clone(),
            mode: self.spec.config.mode.as_str().into(),
            tags: self.spec.config.tags.clone(),
            created_at: self.created_at.clone(),
            generated_at: humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            finished_at,
            jobs: Vec::new(),
        }
    }

    /// `meta/manifest.json` with every job pending, streamed.
    fn write_pending_manifest(&self) -> Result<(), FileError> {
        let path = self.run_dir.manifest();
        let jobs = self
            .jobs
            .iter()
            .map(|job| manifest_job(job, ManifestStatus::Pending, None));
        manifest::write_streamed(
            &path,
            self.spec.config.effective_durability(),
            &self.manifest_head(None),
            jobs,
        )
        .map_err(FileError::on("write", &path))
    }

    /// The snapshot as `meta/config.snapshot.yaml` holds it: secret values from the
    /// environment replaced inside string values (before YAML is written, so the
    /// replacement is quoted and the file still loads as a config). Drift compares this.
    pub fn written_snapshot(&self) -> Json {
        let secrets = provenance::env::secret_values(std::env::vars());
        scrub_strings(&self.snapshot, &secrets)
    }

    /// The snapshot an earlier invocation of this run wrote, if there was one.
    pub fn earlier_snapshot(&self) -> Result<Option<Json>, RunError> {
        let path = self.run_dir.config_snapshot();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(FileError::on("read", &path)(e).into()),
        };
        let bad = |message: String| RunError::Snapshot {
            path: path.clone(),
            message,
        };
        let node = crate::config::yaml::parse(&text).map_err(|e| bad(e.to_string()))?;
        node.map(|n| n.to_json().map_err(|e| bad(e.to_string())))
            .transpose()
    }

    /// Create the run directory with `meta/` (snapshot, env, git, system, pending
    /// manifest) and `jobs/`. Secrets from the environment are scrubbed from every file.
    /// Resuming (`fresh` false) keeps the provenance of the first invocation and only
    /// rewrites the manifest.
    pub fn write_meta(&self, cwd: &Path, fresh: bool) -> Result<(), FileError> {
        let io = |p: PathBuf| move |e: std::io::Error| FileError::on("write", &p)(e);
        let root = self.run_dir.root();
        std::fs::create_dir_all(self.run_dir.jobs_dir()).map_err(io(self.run_dir.jobs_dir()))?;
        if !fresh {
            return self.write_pending_manifest();
        }
        let vars: Vec<(String, String)> = std::env::vars().collect();
        let snapshot = to_yaml(&self.written_snapshot());
        write_atomic(&self.run_dir.config_snapshot(), snapshot.as_bytes())
            .map_err(io(self.run_dir.config_snapshot()))?;
        let env = provenance::env::capture_env(vars, SystemTime::now());
        write_json(&self.run_dir.env_json(), &env).map_err(io(self.run_dir.env_json()))?;
        let git = provenance::git::capture_git(cwd);
        write_json(&self.run_dir.git_json(), &git).map_err(io(self.run_dir.git_json()))?;
        let system = provenance::system::capture_system();
        write_json(&self.run_dir.system_json(), &system).map_err(io(self.run_dir.system_json()))?;
        self.write_pending_manifest()?;
        debug_assert!(root.exists());
        // At `file`, everything above durable before the first job runs (at `job` the first
        // commit's barrier covers it).
        self.spec
            .config
            .effective_durability()
            .settle(root)
            .map_err(FileError::on("sync", root))
    }
}

/// A job's manifest entry.
pub fn manifest_job(job: &Job, status: ManifestStatus, reason: Option<String>) -> ManifestJob {
    ManifestJob {
        job: job.clone(),
        status,
        reason,
        resolved: Resolved::planned(job),
    }
}

/// `value` with every secret replaced inside its strings (keys and values).
fn scrub_strings(value: &Json, secrets: &[String]) -> Json {
    let scrub = |t: &str| provenance::env::redact_secrets_in_text(t, secrets);
    match value {
        Json::String(t) => Json::String(scrub(t)),
        Json::Array(items) => {
            Json::Array(items.iter().map(|v| scrub_strings(v, secrets)).collect())
        }
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (scrub(k), scrub_strings(v, secrets)))
                .collect(),
        ),
        other => other.clone(),
    }
}
