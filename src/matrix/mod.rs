//! The job matrix: expansion of a config into jobs (task → trainer → variant → seed), the
//! reference's kwargs resolution, and deterministic identities.
//!
//! `job_id` = first 12 hex of SHA-256 over the canonical JSON of
//! `{task_id, trainer_id, resolved_kwargs, seed}`, canonicalised exactly as the Python
//! reference does, so the same config gives the same ids in both tools.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::config::diag::Diagnostic;
use crate::config::model::Config;
use crate::registry::Registry;
use crate::task::manifest_suite;
use crate::vocab::{Budget, JobId, Kwargs, RunId, canonical};

/// The kwargs a job is identified by (the reference's `resolved_kwargs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedKwargs {
    /// Trainer knobs after defaults and aliases.
    pub trainer_kwargs: Kwargs,
    /// Optimizer (prompt protocol) name as configured.
    pub optimizer: Option<String>,
    /// Optimizer arguments as configured.
    pub optimizer_kwargs: Kwargs,
    /// Guide override as configured.
    pub guide: Option<String>,
    /// Guide arguments.
    pub guide_kwargs: Kwargs,
    /// Logger as configured.
    pub logger: Option<String>,
    /// Logger arguments.
    pub logger_kwargs: Kwargs,
    /// The task's arguments (global merged under the entry's).
    pub eval_kwargs: Kwargs,
    /// What the job may spend (the run's `budget:` under the entry's). Part of the job's
    /// identity only when set, so configs without budgets keep the reference's job ids.
    #[serde(default, skip_serializing_if = "Budget::is_empty")]
    pub budget: Budget,
}

/// One planned job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Position in matrix order (0-based); Slurm array tasks address jobs by it.
    pub index: usize,
    /// 12 hex characters.
    pub job_id: JobId,
    /// Normalised task id (shared by the task's jobs, as the names below).
    pub task_id: Arc<str>,
    /// Part of the task id before `:`.
    pub suite: Arc<str>,
    /// Trainer id.
    pub trainer_id: Arc<str>,
    /// The seed that drives all randomness of the job.
    pub seed: i64,
    /// Which params variant of the trainer entry (0-based).
    pub variant_index: usize,
    /// The merged variant as written (the reference's `raw_params`). Shared by the seeds
    /// of a variant, like `resolved`: a plan of 10,000 jobs holds each variant once.
    pub raw_params: Arc<Kwargs>,
    /// The identity-bearing kwargs (hashed into the job id).
    #[serde(rename = "resolved_kwargs")]
    pub resolved: Arc<ResolvedKwargs>,
}

/// The canonical JSON that is hashed into a job id.
pub fn job_identity_json(
    task_id: &str,
    trainer_id: &str,
    resolved: &ResolvedKwargs,
    seed: i64,
) -> String {
    let value = json!({
        "task_id": task_id,
        "trainer_id": trainer_id,
        "resolved_kwargs": resolved,
        "seed": seed,
    });
    canonical::canonical_json(&value)
}

/// The job id: 12 hex of SHA-256 over [`job_identity_json`].
pub fn job_id(task_id: &str, trainer_id: &str, resolved: &ResolvedKwargs, seed: i64) -> JobId {
    JobId::new(canonical::short_hash(
        &job_identity_json(task_id, trainer_id, resolved, seed),
        12,
    ))
}

/// A generated run id: `YYYYMMDD-HHMMSS-<8 hex>` (UTC) where the hash covers the config
/// snapshot without `run_id` and the git commit (`unknown` outside a repository).
pub fn generate_run_id(snapshot: &Json, git_commit: &str, now: SystemTime) -> RunId {
    let mut config = snapshot.clone();
    if let Json::Object(map) = &mut config {
        map.shift_remove("run_id");
    }
    let hashed = canonical::canonical_json(&json!({"config": config, "git": git_commit}));
    let stamp = humantime::format_rfc3339_seconds(now).to_string();
    // 2026-11-21T14:18:48Z -> 20261121-141848
    let digits: String = stamp.chars().filter(char::is_ascii_digit).collect();
    RunId::new(format!(
        "{}-{}-{}",
        &digits[..8],
        &digits[8..14],
        canonical::short_hash(&hashed, 8)
    ))
}

/// Expand a config into jobs in the reference's order, dropping jobs whose id repeats an
/// earlier one (two variants that resolve to the same kwargs), with a warning.
///
/// Unknown trainers are expanded with the reference's "only `threads` is aliased" rule;
/// the config check reports them as errors before anything runs.
pub fn expand(config: &Config, registry: &Registry) -> (Vec<Job>, Vec<Diagnostic>) {
    // Exactly the capacity a full matrix needs (a growing Vec holds up to twice that), and
    // ids remembered as the 48-bit numbers their 12 hex digits spell: a plan of 10,000
    // jobs is a few hundred bytes per job.
    let variants: usize = config
        .trainers
        .iter()
        .map(|t| t.params_variants.len())
        .sum();
    let mut jobs = Vec::with_capacity(config.tasks.len() * variants * config.seeds.len());
    let mut warnings = Vec::new();
    let mut seen: HashSet<u64> = HashSet::with_capacity(jobs.capacity());
    for task in &config.tasks {
        let task_id: Arc<str> = Arc::from(task.id.as_str());
        let suite: Arc<str> = Arc::from(manifest_suite(&task.id));
        for (t, trainer) in config.trainers.iter().enumerate() {
            let trainer_id: Arc<str> = Arc::from(trainer.id.as_str());
            let preset = registry.trainer(&trainer.id);
            for (v, variant) in trainer.params_variants.iter().enumerate() {
                // A secret in a variant (the reference's OpenEvolveTrainer takes `api_key`)
                // is never a knob here: redacted before it can reach a job file or a job id.
                let params = redacted(&variant.params);
                let trainer_kwargs = match preset {
                    Some(p) => p.resolve(&params),
                    None => resolve_unknown(&params),
                };
                let raw_params = Arc::new(params);
                let resolved = Arc::new(ResolvedKwargs {
                    trainer_kwargs,
                    optimizer: trainer.optimizer.clone(),
                    optimizer_kwargs: trainer.optimizer_kwargs.clone(),
                    guide: trainer.guide.clone(),
                    guide_kwargs: trainer.guide_kwargs.clone(),
                    logger: trainer.logger.clone(),
                    logger_kwargs: trainer.logger_kwargs.clone(),
                    eval_kwargs: task.eval_kwargs.clone(),
                    budget: config.budget.overridden_by(trainer.budget),
                });
                for &seed in task.seeds.as_deref().unwrap_or(&config.seeds) {
                    let id = job_id(&task.id, &trainer.id, &resolved, seed);
                    let key = u64::from_str_radix(id.as_str(), 16)
                        .unwrap_or_else(|_| unreachable!("a job id is 12 hex digits"));
                    if !seen.insert(key) {
                        warnings.push(
                            Diagnostic::warning(
                                format!("trainers[{t}].params_variants[{v}]"),
                                trainer.span,
                                format!(
                                    "job `{id}` ({} x {}, seed {seed}) appears twice; the duplicate is dropped",
                                    task.id, trainer.id
                                ),
                            )
                            .with_hint("two variants resolve to the same trainer kwargs once defaults are applied"),
                        );
                        continue;
                    }
                    jobs.push(Job {
                        index: jobs.len(),
                        job_id: id,
                        task_id: task_id.clone(),
                        suite: suite.clone(),
                        trainer_id: trainer_id.clone(),
                        seed,
                        variant_index: v,
                        raw_params: raw_params.clone(),
                        resolved: resolved.clone(),
                    });
                }
            }
        }
    }
    (jobs, warnings)
}

/// `params` with the value of every secret-named key replaced by the redaction marker.
fn redacted(params: &Kwargs) -> Kwargs {
    match crate::config::model::redact_secret_keys(&Json::Object(params.clone())) {
        Json::Object(map) => map,
        _ => unreachable!("redaction keeps an object an object"),
    }
}

fn resolve_unknown(params: &Kwargs) -> Kwargs {
    params
        .iter()
        .filter(|(k, _)| *k != "eval_kwargs" && *k != "optimizer_kwargs")
        .map(|(k, v)| (crate::vocab::universal_knob(k).to_string(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::{Source, load};

    fn config(text: &str) -> Config {
        let l = load(
            &Source {
                name: "t".into(),
                text: text.into(),
            },
            &[],
        );
        assert!(!l.diagnostics.has_errors(), "{}", l.diagnostics.render());
        l.config.unwrap()
    }

    const SMOKE: &str = "runs_dir: runs\nmode: stub\nseeds: [123]\ntasks:\n  - id: internal:numeric_param\ntrainers:\n  - id: PrioritySearch\n    params_variants:\n      - ps_steps: 1\n        ps_batches: 1\n";

    #[test]
    fn reference_smoke_job_id() {
        let (jobs, _) = expand(&config(SMOKE), &Registry::builtin());
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            job_identity_json(
                &jobs[0].task_id,
                &jobs[0].trainer_id,
                &jobs[0].resolved,
                jobs[0].seed
            ),
            r#"{"resolved_kwargs": {"eval_kwargs": {}, "guide": null, "guide_kwargs": {}, "logger": null, "logger_kwargs": {}, "optimizer": null, "optimizer_kwargs": {}, "trainer_kwargs": {"num_batches": 1, "num_candidates": 2, "num_epochs": 1, "num_proposals": 2, "num_steps": 1}}, "seed": 123, "task_id": "internal:numeric_param", "trainer_id": "PrioritySearch"}"#
        );
        assert_eq!(jobs[0].job_id, "806f391306ae");
    }

    #[test]
    fn reference_run_id_hash() {
        let mut snap = config(SMOKE).snapshot();
        snap["run_id"] = Json::Null;
        let t = humantime::parse_rfc3339("2026-03-14T07:00:59Z").unwrap();
        assert_eq!(
            generate_run_id(&snap, "6c26c4315018fc6e5f4d213d124ce8a807844f78", t),
            "20260314-070059-c14dedc8"
        );
        assert_eq!(
            generate_run_id(&snap, "unknown", t),
            "20260314-070059-423e9749"
        );
    }

    #[test]
    fn order_is_task_trainer_variant_seed_and_collisions_dedupe() {
        let c = config(
            "seeds: [1, 2]\ntasks: [internal:numeric_param, internal:multi_param]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 1}, {ps_steps: 1, ps_batches: 1}, {ps_steps: 2}]\n  - GEPA-Base\n",
        );
        let (jobs, warnings) = expand(&c, &Registry::builtin());
        let order: Vec<(String, String, usize, i64)> = jobs
            .iter()
            .map(|j| {
                (
                    j.task_id.to_string(),
                    j.trainer_id.to_string(),
                    j.variant_index,
                    j.seed,
                )
            })
            .collect();
        assert_eq!(order.len(), 2 * (2 + 1) * 2);
        assert_eq!(
            order[0],
            (
                "internal:numeric_param".into(),
                "PrioritySearch".into(),
                0,
                1
            )
        );
        assert_eq!(
            order[1],
            (
                "internal:numeric_param".into(),
                "PrioritySearch".into(),
                0,
                2
            )
        );
        assert_eq!(
            order[2],
            (
                "internal:numeric_param".into(),
                "PrioritySearch".into(),
                2,
                1
            )
        );
        assert_eq!(
            order[4],
            ("internal:numeric_param".into(), "GEPA-Base".into(), 0, 1)
        );
        assert_eq!(
            warnings.len(),
            4,
            "variant 1 collides with variant 0 for 2 tasks x 2 seeds"
        );
        assert!(jobs.iter().enumerate().all(|(i, j)| j.index == i));
    }

    #[test]
    fn ids_change_with_any_identity_field() {
        let base = expand(&config(SMOKE), &Registry::builtin()).0[0]
            .job_id
            .clone();
        for set in [
            "seeds=[124]",
            "eval_kwargs={timeout_seconds: 10}",
            "trainers.0.params_variants.0.ps_steps=2",
        ] {
            let l = load(
                &Source {
                    name: "t".into(),
                    text: SMOKE.into(),
                },
                &[set.into()],
            );
            let id = expand(&l.config.unwrap(), &Registry::builtin()).0[0]
                .job_id
                .clone();
            assert_ne!(id, base, "{set}");
        }
    }
}
