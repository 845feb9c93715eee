//! The external trainers against the real libraries (the pinned dspy and gepa of
//! `trace-bench external-env`): DSPyTrainer with each of MIPROv2, COPRO, SIMBA and GEPA,
//! and UpstreamGEPA, in stub mode on `datasets:arithmetic`. Every job ends `ok`, every
//! request of the child is in `llm_calls.jsonl` with its role, tokens and evaluator calls
//! are counted, and the same seed gives the same results at any `max_workers`.
//!
//! `#[ignore]`d: `scripts/check_external.sh` (CI) makes the venv and runs them with
//! `TRACE_BENCH_EXTERNAL_PYTHON` set; without it they fail rather than skip.

mod common;

use common::{Workspace, read_csv, read_jsonl};

fn external_python() -> String {
    std::env::var("TRACE_BENCH_EXTERNAL_PYTHON")
        .expect("TRACE_BENCH_EXTERNAL_PYTHON must name the Python of `trace-bench external-env`")
}

const CONFIG: &str = "mode: stub\nseeds: [1, 2]\ntasks: [datasets:arithmetic]\ntrainers:\n  - id: DSPyTrainer\n    params_variants:\n      - {dspy_optimizer: mipro, auto: null, num_candidates: 2, num_trials: 2, max_bootstrapped_demos: 0, max_labeled_demos: 0}\n      - {dspy_optimizer: copro, breadth: 2, depth: 1}\n      - {dspy_optimizer: simba, bsize: 2, num_candidates: 2, max_steps: 1, max_demos: 1}\n      - {dspy_optimizer: gepa, max_metric_calls: 20, reflection_minibatch_size: 2}\n  - id: UpstreamGEPA\n    params_variants: [{max_metric_calls: 30, reflection_minibatch_size: 2}]\n";

#[test]
#[ignore = "needs the external trainers' venv: scripts/check_external.sh"]
fn dspy_and_upstream_gepa_run_offline_counted_and_repeatable() {
    let python = external_python();
    let ws = Workspace::new();
    let cfg = ws.config("ext.yaml", CONFIG);
    let run = |id: &str, workers: &str| {
        ws.cmd()
            .args(["run", "--config"])
            .arg(&cfg)
            .args([
                "--run-id",
                id,
                "--max-workers",
                workers,
                "--external-python",
                &python,
            ])
            .assert()
            .success();
        read_csv(&ws.path().join("runs").join(id).join("results.csv")).1
    };
    let a = run("a", "2");
    let b = run("b", "1");
    assert_eq!(a.len(), 10);
    let stable = |rows: &[std::collections::BTreeMap<String, String>]| -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| {
                [
                    "job_id",
                    "status",
                    "score_val",
                    "score_test",
                    "evaluator_calls",
                    "llm_calls",
                    "prompt_tokens",
                    "completion_tokens",
                    "steps",
                ]
                .iter()
                .map(|k| r[*k].clone())
                .collect()
            })
            .collect()
    };
    assert_eq!(stable(&a), stable(&b), "same seed, same results");
    for row in &a {
        assert_eq!(row["status"], "ok", "{row:?}");
        let calls: u64 = row["llm_calls"].parse().unwrap();
        assert!(
            calls > 0 && row["evaluator_calls"].parse::<u64>().unwrap() > 0,
            "{row:?}"
        );
        assert!(row["prompt_tokens"].parse::<u64>().unwrap() > 0);
        let job = ws.path().join("runs/a/jobs").join(&row["job_id"]);
        let transcripts = read_jsonl(&job.join("artifacts/llm_calls.jsonl"));
        assert_eq!(transcripts.len() as u64, calls, "every request is recorded");
        let roles: std::collections::BTreeSet<String> = transcripts
            .iter()
            .map(|t| t["caller"].as_str().unwrap().to_string())
            .collect();
        let want: &[&str] = if row["trainer_id"] == "UpstreamGEPA" {
            &["reflection"]
        } else if row["raw_params"].contains("gepa") {
            &["reflection", "task"]
        } else if row["raw_params"].contains("simba") {
            // One SIMBA step with demos: no rule advice is asked for.
            &["task"]
        } else {
            &["prompt", "task"]
        };
        for role in want {
            assert!(roles.contains(*role), "{roles:?} in {row:?}");
        }
    }
}
