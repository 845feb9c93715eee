//! `score` and `rescore`: scoring parameters found elsewhere, or states a run already found,
//! without optimising again (docs/analysis.md, "Re-scoring"). Both generate a config — one
//! task entry per candidate (its values in `eval_kwargs.params`, its seed in the entry's
//! `seeds`), the `Rescore` trainer — and run it like any config, so the result is an
//! ordinary run directory (same layout, results.csv, summary, leaderboard, cache, replay,
//! executors). `rescore` also records where the states came from in `meta/source.json`.

use std::path::{Path, PathBuf};

use clap::Parser;
use serde_json::{Value as Json, json};

use super::args::{Cli, Command, DerivedRunArgs, RescoreArgs, ScoreArgs};
use super::exit::CliError;
use crate::artifacts::layout::{RunDir, StateKind};
use crate::registry::Registry;
use crate::registry::llm4ad::Llm4adSources;
use crate::results::manifest::Manifest;
use crate::vocab::canonical::{canonical_json, sha256_hex};
use crate::vocab::{JobStatus, Kwargs};

/// `score`: one candidate (or a JSONL of them) on a task.
pub fn score(
    args: &ScoreArgs,
    registry: &Registry,
    llm4ad: &Llm4adSources,
    cli: &Cli,
) -> Result<u8, CliError> {
    let text = std::fs::read_to_string(&args.params)
        .map_err(|e| CliError::usage(format!("cannot read `{}`: {e}", args.params.display())))?;
    let jsonl = args.params.extension().is_some_and(|x| x == "jsonl");
    let candidates: Vec<Json> = if jsonl {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| {
                    CliError::usage(format!(
                        "{}:{}: not JSON: {e}",
                        args.params.display(),
                        i + 1
                    ))
                })
            })
            .collect::<Result<_, _>>()?
    } else {
        let name = args.params.display().to_string();
        vec![crate::config::decode_yaml::<Json>(&name, &text).map_err(CliError::usage)?]
    };
    if let Some(bad) = candidates.iter().position(|c| !c.is_object()) {
        return Err(CliError::usage(format!(
            "`{}`: candidate {} is not a mapping of parameter name to value",
            args.params.display(),
            bad + 1
        ))
        .with_hint("e.g. `prompt: Answer with the number only.`"));
    }
    let tasks: Vec<Json> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut eval_kwargs = json!({"params": c});
            if candidates.len() > 1 {
                eval_kwargs["candidate"] = json!(i);
            }
            json!({"id": args.task, "eval_kwargs": eval_kwargs})
        })
        .collect();
    let config = json!({
        "mode": "stub",
        "seeds": args.seeds,
        "tasks": tasks,
        "trainers": [{"id": "Rescore"}],
    });
    run_generated(&config, "score", &args.run, registry, llm4ad, cli).map(|(code, _)| code)
}

/// `rescore`: states of a finished run, in a new run.
pub fn rescore(
    args: &RescoreArgs,
    registry: &Registry,
    llm4ad: &Llm4adSources,
    cli: &Cli,
) -> Result<u8, CliError> {
    let source = super::existing_run_dir(&args.run_dir)?;
    let states: Vec<StateKind> = args
        .states
        .iter()
        .map(|s| match s.as_str() {
            "initial" => Ok(StateKind::Initial),
            "best" => Ok(StateKind::Best),
            "final" => Ok(StateKind::Final),
            other => Err(CliError::usage(format!("unknown state `{other}`"))
                .with_hint("--states takes initial, best and final, comma-separated")),
        })
        .collect::<Result<_, _>>()?;
    let manifest: Manifest = crate::artifacts::atomic::read_json(&source.manifest())
        .map_err(|e| CliError::usage(format!("{}: {e}", source.manifest().display())))?;
    let snapshot_text = std::fs::read_to_string(source.config_snapshot())
        .map_err(|e| CliError::usage(format!("{}: {e}", source.config_snapshot().display())))?;
    let snapshot: Json = crate::config::decode_yaml(
        &source.config_snapshot().display().to_string(),
        &snapshot_text,
    )
    .map_err(CliError::usage)?;
    let mut tasks = Vec::new();
    let mut origins = Vec::new();
    let mut left_out = Vec::new();
    for entry in &manifest.jobs {
        let job = &entry.job;
        let dir = source.job(&job.job_id);
        let finished = crate::results::read_job_results(&dir.results_json())
            .is_some_and(|r| r.row.status == JobStatus::Ok);
        if !finished {
            left_out.push(job.job_id.to_string());
            continue;
        }
        for &state in &states {
            let path = dir.state_json(state);
            let Ok(text) = std::fs::read_to_string(&path) else {
                left_out.push(format!("{}/{}", job.job_id, state.as_str()));
                continue;
            };
            let values = state_values(&text).ok_or_else(|| {
                CliError::usage(format!("`{}` is not a state file", path.display()))
            })?;
            let origin = format!("{}/{}", job.job_id, state.as_str());
            let mut eval_kwargs: Kwargs = job.resolved.eval_kwargs.clone();
            eval_kwargs.insert("params".into(), Json::Object(values));
            eval_kwargs.insert("rescore_of".into(), json!(origin));
            if args.split == "validation" {
                eval_kwargs.insert("skip_test".into(), json!(true));
            }
            tasks.push(json!({
                "id": &*job.task_id,
                "eval_kwargs": eval_kwargs,
                "seeds": [job.seed],
            }));
            origins.push(json!({
                "source_job_id": job.job_id.as_str(),
                "task_id": &*job.task_id,
                "trainer_id": &*job.trainer_id,
                "variant_index": job.variant_index,
                "seed": job.seed,
                "state": state.as_str(),
                "state_sha256": sha256_hex(&text),
            }));
        }
    }
    if tasks.is_empty() {
        return Err(CliError::usage(format!(
            "`{}` has no finished job with the asked states to re-score",
            args.run_dir.display()
        )));
    }
    let mut config = json!({
        "mode": snapshot.get("mode").cloned().unwrap_or(json!("stub")),
        "seeds": [123],
        "tasks": tasks,
        "trainers": [{"id": "Rescore"}],
    });
    for key in ["llm", "job_timeout", "external_python"] {
        if let Some(v) = snapshot.get(key).filter(|v| !v.is_null()) {
            config[key] = v.clone();
        }
    }
    let mut run = DerivedRunArgs {
        run_id: args.run.run_id.clone(),
        runs_dir: args.run.runs_dir.clone(),
        sets: args.run.sets.clone(),
        max_workers: args.run.max_workers,
        executor: args.run.executor.clone(),
        shard: args.run.shard.clone(),
    };
    if run.runs_dir.is_none() {
        run.runs_dir = source
            .root()
            .parent()
            .map(|p| p.display().to_string())
            .filter(|p| !p.is_empty());
    }
    let (code, new_dir) = run_generated(&config, "rescore", &run, registry, llm4ad, cli)?;
    if let Some(new_dir) = new_dir {
        let record = json!({
            "source_run_id": manifest.run_id.as_str(),
            "source_run_dir": std::fs::canonicalize(source.root())
                .unwrap_or_else(|_| source.root().to_path_buf())
                .display()
                .to_string(),
            "states": args.states,
            "split": args.split,
            "jobs": origins,
            "left_out": left_out,
        });
        let path = new_dir.meta_dir().join("source.json");
        let mut text = serde_json::to_string_pretty(&record).unwrap_or_default();
        text.push('\n');
        crate::artifacts::atomic::write_atomic(&path, text.as_bytes())
            .map_err(|e| CliError::usage(format!("cannot write {}: {e}", path.display())))?;
        println!("Source: {}", path.display());
    }
    Ok(code)
}

/// A state file's parameter values by name.
fn state_values(text: &str) -> Option<Kwargs> {
    let v: Json = serde_json::from_str(text).ok()?;
    v.get("parameters")?
        .as_array()?
        .iter()
        .map(|p| {
            Some((
                p.get("name")?.as_str()?.to_string(),
                p.get("value")?.clone(),
            ))
        })
        .collect()
}

/// Write `config` (JSON is YAML) under `<runs_dir>/.generated/`, named by its content, and
/// run it with the command line's folders; the exit code and the new run's directory.
fn run_generated(
    config: &Json,
    what: &str,
    run: &DerivedRunArgs,
    registry: &Registry,
    llm4ad: &Llm4adSources,
    cli: &Cli,
) -> Result<(u8, Option<RunDir>), CliError> {
    let runs_dir = run.runs_dir.clone().unwrap_or_else(|| "runs".into());
    let text = canonical_json(config);
    let path = Path::new(&runs_dir)
        .join(".generated")
        .join(format!("{what}-{}.json", &sha256_hex(&text)[..12]));
    crate::artifacts::atomic::write_atomic(&path, format!("{text}\n").as_bytes())
        .map_err(|e| CliError::usage(format!("cannot write {}: {e}", path.display())))?;
    let mut argv: Vec<String> = vec![
        "trace-bench".into(),
        "run".into(),
        "--config".into(),
        path.display().to_string(),
        "--runs-dir".into(),
        runs_dir.clone(),
    ];
    if let Some(id) = &run.run_id {
        argv.extend(["--run-id".into(), id.clone()]);
    }
    if let Some(w) = run.max_workers {
        argv.extend(["--max-workers".into(), w.to_string()]);
    }
    if let Some(e) = &run.executor {
        argv.extend(["--executor".into(), e.clone()]);
    }
    if let Some(s) = &run.shard {
        argv.extend(["--shard".into(), s.clone()]);
    }
    for s in &run.sets {
        argv.extend(["--set".into(), s.clone()]);
    }
    let parsed = Cli::try_parse_from(&argv).map_err(|e| CliError::usage(e.to_string()))?;
    let Command::Run(args) = &parsed.command else {
        unreachable!("the argv names `run`")
    };
    let dirs = super::run::UserDirs {
        tasks: &cli.tasks_dir,
        trainers: &cli.trainers_dir,
    };
    let before = std::fs::read_dir(&runs_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<PathBuf>>())
        .unwrap_or_default();
    let code = super::run::run(args, registry, llm4ad, dirs)?;
    // The run directory: the named one, else the one this run created.
    let dir = match &run.run_id {
        Some(id) => Some(Path::new(&runs_dir).join(id)),
        None => std::fs::read_dir(&runs_dir).ok().and_then(|d| {
            d.flatten()
                .map(|e| e.path())
                .find(|p| p.is_dir() && !before.contains(p) && !p.ends_with(".generated"))
        }),
    };
    Ok((code, dir.filter(|d| d.is_dir()).map(RunDir::at)))
}
