//! `validate`: load, expand and check a config without running it (`docs/architecture.md`,
//! `config::check`).

use std::time::SystemTime;

use super::args::ValidateArgs;
use super::exit::{CliError, FAILURES, OK};
use super::{git_commit, load_source};
use crate::artifacts::FileError;
use crate::artifacts::atomic::write_json;
use crate::config::Severity;
use crate::registry::Registry;
use crate::registry::llm4ad::Llm4adSources;
use crate::runner::{CliOverrides, Plan, prepare};
use crate::vocab::ManifestStatus;

/// Check a config; print every problem and every job; exit 1 on any error.
pub fn validate(
    args: &ValidateArgs,
    registry: &Registry,
    llm4ad: &Llm4adSources,
) -> Result<u8, CliError> {
    let source = load_source(Some(&args.config))?;
    let cli = CliOverrides {
        runs_dir: args.config_args.runs_dir.clone(),
        llm4ad: llm4ad.clone(),
        config_dir: args.config.parent().map(std::path::Path::to_path_buf),
        ..CliOverrides::default()
    };
    let sets = args.config_args.all_sets();
    let prepared = prepare(&source, &sets, &cli, args.strict, registry);
    let registry = &prepared.registry;
    let suites = match &args.bench {
        Some(sel) => Some(registry.bench_selector(sel).map_err(CliError::usage)?),
        None => None,
    };
    eprint!("{}", prepared.diagnostics.render());
    let mut errors = prepared.diagnostics.error_count();
    let Some(spec) = &prepared.spec else {
        println!("[FAIL] config: {}", source.name);
        return Ok(FAILURES);
    };
    let config = &spec.config;
    // Real mode's settings, as the check decoded them.
    if let Some(s) = &spec.llm {
        println!(
            "[OK] llm: {} at {} (provider {}, key from {})",
            s.model,
            s.base_url,
            s.provider,
            if s.api_key_env.is_empty() {
                "nowhere: no auth"
            } else {
                s.api_key_env.as_str()
            }
        );
    }
    for task in &config.tasks {
        if suites
            .as_ref()
            .is_some_and(|s| !s.iter().any(|x| x == crate::task::manifest_suite(&task.id)))
        {
            continue;
        }
        let Some(t) = registry.task(&task.id) else {
            if crate::spec::in_reference_catalog(&task.id) {
                println!("[SKIP] {}: not available in this build", task.id);
            }
            continue;
        };
        if let Some(reason) = t.unavailable_reason() {
            println!("[SKIP] {}: {reason}", task.id);
        } else if let Some(why) = unconfined(registry, t.id()) {
            println!(
                "[WARN] {}: its candidates will run unconfined ({why})",
                task.id
            );
        } else if args.strict && !t.has_trainable_params() {
            if task.id == "internal:non_trainable" {
                println!("[EXPECTED] {}: no_trainable_parameters", task.id);
            } else {
                println!("[FAIL] {}: no_trainable_parameters", task.id);
                errors += 1;
            }
        } else {
            println!("[OK] {}", task.id);
        }
    }
    // One word per state: a trainer the check only warns about (the reference has it, this
    // build does not: its jobs are skipped) is `[SKIP]`, as such a task is; `[FAIL]` only
    // for an error.
    for trainer in &config.trainers {
        if registry.trainer(&trainer.id).is_some() {
            println!("[OK] trainer {}", trainer.id);
        } else if crate::spec::reference_only_trainer(&trainer.id).is_some() {
            println!("[SKIP] trainer {}: not available in this build", trainer.id);
        } else {
            println!("[FAIL] trainer {}", trainer.id);
        }
    }
    let jobs = &prepared.jobs;
    if jobs.is_empty() {
        println!("[FAIL] matrix: no jobs expanded");
    } else {
        // After a [FAIL] the matrix is what would run once the errors are fixed, not OK.
        let state = if errors == 0 { "OK" } else { "CHECK" };
        println!(
            "\n[{state}] matrix: {} jobs expanded deterministically",
            jobs.len()
        );
        for j in jobs {
            // Two variants of one trainer would otherwise print identical-looking lines.
            let variants = config
                .trainers
                .iter()
                .filter(|t| *t.id == *j.trainer_id)
                .map(|t| t.params_variants.len())
                .sum::<usize>();
            let variant = if variants > 1 {
                format!(
                    " variant {} {}",
                    j.variant_index,
                    serde_json::Value::Object((*j.raw_params).clone())
                )
            } else {
                String::new()
            };
            println!(
                "  job {}: {} x {}{variant} (seed={})",
                j.job_id, j.task_id, j.trainer_id, j.seed
            );
        }
        let mut tasks: Vec<&str> = config.tasks.iter().map(|t| t.id.as_str()).collect();
        tasks.sort_unstable();
        tasks.dedup();
        let mut trainers: Vec<&str> = config.trainers.iter().map(|t| t.id.as_str()).collect();
        trainers.sort_unstable();
        trainers.dedup();
        println!("  tasks:    {tasks:?}");
        println!("  trainers: {trainers:?}");
    }
    let warnings = prepared
        .diagnostics
        .items
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    if args.strict && errors == 0 {
        let plan = Plan::new(spec.clone(), jobs.clone(), &git_commit(), SystemTime::now());
        let manifest = plan.manifest(|_| (ManifestStatus::Pending, None), None);
        let path = plan.run_dir.manifest();
        write_json(&path, &manifest).map_err(FileError::on("write", &path))?;
        println!("[OK] manifest written: {}", path.display());
    }
    println!("\n{errors} error(s), {warnings} warning(s)");
    Ok(if errors > 0 { FAILURES } else { OK })
}

/// Why the candidates of a discovered LLM4AD task cannot be confined on this machine.
fn unconfined(registry: &Registry, id: &str) -> Option<String> {
    let discovery = registry.llm4ad_discovery()?.as_ref().ok()?;
    let discovered = discovery
        .tasks
        .iter()
        .any(|f| format!("llm4ad:{}", f.key) == id);
    discovered.then(|| discovery.confinement.clone()).flatten()
}
