//! The external trainers against the real libraries (the pinned dspy, gepa and openevolve
//! of `trace-bench external-env`): DSPyTrainer with each of MIPROv2, COPRO, SIMBA and GEPA,
//! and UpstreamGEPA, in stub mode on `datasets:arithmetic`; OpenEvolveTrainer on an LLM4AD
//! task and a number task, and against a candidate program that tries to set its own
//! score. Every job ends `ok`, every request of the child is in `llm_calls.jsonl` with its
//! role, tokens and evaluator calls are counted, and the same seed gives the same results
//! at any `max_workers`.
//!
//! `#[ignore]`d: `scripts/check_external.sh` (CI) makes the venv and runs them with
//! `TRACE_BENCH_EXTERNAL_PYTHON` set; without it they fail rather than skip.

mod common;
#[path = "../src/llm/mock_server.rs"]
#[allow(dead_code)]
mod mock_server;

use common::{Workspace, read_csv, read_json, read_jsonl};

fn external_python() -> String {
    std::env::var("TRACE_BENCH_EXTERNAL_PYTHON")
        .expect("TRACE_BENCH_EXTERNAL_PYTHON must name the Python of `trace-bench external-env`")
}

/// Run `cfg` as run `id` with `workers` workers and the external venv's Python; the run's
/// directory once it succeeded.
fn run_ok(ws: &Workspace, cfg: &std::path::Path, id: &str, workers: &str) -> std::path::PathBuf {
    ws.cmd()
        .args(["run", "--config"])
        .arg(cfg)
        .args(["--run-id", id, "--max-workers", workers])
        .args(["--external-python", &external_python()])
        .assert()
        .success();
    ws.path().join("runs").join(id)
}

const CONFIG: &str = "mode: stub\nseeds: [1, 2]\ntasks: [datasets:arithmetic]\ntrainers:\n  - id: DSPyTrainer\n    params_variants:\n      - {dspy_optimizer: mipro, auto: null, num_candidates: 2, num_trials: 2, max_bootstrapped_demos: 0, max_labeled_demos: 0}\n      - {dspy_optimizer: copro, breadth: 2, depth: 1}\n      - {dspy_optimizer: simba, bsize: 2, num_candidates: 2, max_steps: 1, max_demos: 1}\n      - {dspy_optimizer: gepa, max_metric_calls: 20, reflection_minibatch_size: 2}\n      - {dspy_optimizer: bootstrap, max_bootstrapped_demos: 2, max_labeled_demos: 2}\n  - id: UpstreamGEPA\n    params_variants: [{max_metric_calls: 30, reflection_minibatch_size: 2}]\n";

#[test]
#[ignore = "needs the external trainers' venv: scripts/check_external.sh"]
fn dspy_and_upstream_gepa_run_offline_counted_and_repeatable() {
    let ws = Workspace::new();
    let cfg = ws.config("ext.yaml", CONFIG);
    let run =
        |id: &str, workers: &str| read_csv(&run_ok(&ws, &cfg, id, workers).join("results.csv")).1;
    let a = run("a", "2");
    let b = run("b", "1");
    assert_eq!(a.len(), 12);
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
        } else if row["raw_params"].contains("\"bootstrap\"") {
            // BootstrapFewShot: the teacher answers the training examples.
            &["teacher"]
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

/// The stable columns of OpenEvolve jobs.
fn numbers(rows: &[std::collections::BTreeMap<String, String>]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            [
                "job_id",
                "status",
                "score_val_initial",
                "score_val_final",
                "score_val",
                "evaluator_calls",
                "llm_calls",
                "prompt_tokens",
                "completion_tokens",
                "steps",
            ]
            .iter()
            .map(|k| r.get(*k).cloned().unwrap_or_default())
            .collect()
        })
        .collect()
}

const OPENEVOLVE: &str = "mode: stub\nseeds: [1, 2]\ntasks: [llm4ad:online_bin_packing_mini, internal:numeric_param]\ntrainers:\n  - id: OpenEvolveTrainer\n    params_variants: [{iterations: 4}]\n";

#[test]
#[ignore = "needs the external trainers' venv: scripts/check_external.sh"]
fn openevolve_on_llm4ad_is_scored_by_us_recorded_and_repeatable() {
    let ws = Workspace::new();
    let cfg = ws.config("oe.yaml", OPENEVOLVE);
    let run = |id: &str, workers: &str| run_ok(&ws, &cfg, id, workers);
    let a = run("a", "2");
    let b = run("b", "1");
    let rows = read_csv(&a.join("results.csv")).1;
    assert_eq!(rows.len(), 4);
    assert_eq!(
        numbers(&rows),
        numbers(&read_csv(&b.join("results.csv")).1),
        "same seed, same numbers at max_workers 2 and 1"
    );
    let mut improved = 0;
    for row in &rows {
        assert_eq!(row["status"], "ok", "{row:?}");
        // One LLM call per iteration, each recorded with OpenEvolve's role.
        assert_eq!(row["llm_calls"], "4", "{row:?}");
        let job = a.join("jobs").join(&row["job_id"]);
        let calls = read_jsonl(&job.join("artifacts/llm_calls.jsonl"));
        assert_eq!(calls.len(), 4);
        let again = read_jsonl(
            &b.join("jobs")
                .join(&row["job_id"])
                .join("artifacts/llm_calls.jsonl"),
        );
        let replies = |c: &[serde_json::Value]| -> Vec<String> {
            c.iter()
                .map(|t| t["response"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            replies(&calls),
            replies(&again),
            "the same replies in the same order"
        );
        for call in &calls {
            assert_eq!(call["caller"], "proposer");
            let user = call["messages"][1]["content"].as_str().unwrap();
            // Our feedback reaches OpenEvolve's prompt as an artifact.
            assert!(
                user.contains("## Last Execution Output\n\n### feedback\n```\nexample 0: score "),
                "{user}"
            );
            assert!(
                call["response"]
                    .as_str()
                    .unwrap()
                    .contains("<<<<<<< SEARCH\n")
            );
        }
        // The initial program and each child are scored by trace-bench (one example each),
        // plus the validation monitor of each step.
        let evals: u64 = row["evaluator_calls"].parse().unwrap();
        assert!(evals >= 5, "{row:?}");
        // The final claim is OpenEvolve's best, and its score the one trace-bench gave it:
        // re-scoring the returned parameters gives the same number.
        let claims = read_jsonl(&job.join("external/claims.jsonl"));
        let last = claims.last().unwrap();
        let fin = &last["final"];
        assert_eq!(
            fin["info"]["optimizer"], "openevolve.run_evolution",
            "{last}"
        );
        let claimed = fin["score"].as_f64().unwrap();
        let rescored: f64 = row["score_val_final"].parse().unwrap();
        assert!(
            (claimed - rescored).abs() < 1e-9,
            "{claimed} vs {rescored} in {row:?}"
        );
        let state = read_json(&job.join("artifacts/final_state.json"));
        let (name, value) = fin["best_params"]
            .as_object()
            .unwrap()
            .iter()
            .next()
            .unwrap();
        assert_eq!(&state["parameters"][0]["name"], name);
        assert_eq!(&state["parameters"][0]["value"], value);
        if fin["info"]["kept"] == "best" {
            improved += 1;
            assert!(
                rescored > row["score_val_initial"].parse::<f64>().unwrap(),
                "{row:?}"
            );
        }
        // Every score OpenEvolve's database holds is one trace-bench computed.
        let ours: Vec<f64> = read_jsonl(&job.join("events.jsonl"))
            .iter()
            .filter(|e| e["type"] == "eval")
            .filter_map(|e| e["score"].as_f64())
            .collect();
        let programs = common::files_under(&job.join("external/openevolve/checkpoints"));
        let programs: Vec<_> = programs
            .iter()
            .filter(|p| p.parent().unwrap().ends_with("programs"))
            .collect();
        assert_eq!(programs.len(), 5, "the initial program and 4 children");
        for p in programs {
            let program = read_json(p);
            let s = program["metrics"]["combined_score"].as_f64().unwrap();
            if program["artifacts_json"]
                .as_str()
                .is_some_and(|a| a.contains("could not be read"))
            {
                // Nothing to score: the lowest fitness, never the candidate's own word.
                assert_eq!(s, -f64::MAX);
                continue;
            }
            assert!(
                ours.iter().any(|o| (o - s).abs() < 1e-12),
                "{s} not among {ours:?}"
            );
        }
    }
    assert!(
        improved > 0,
        "a number edit of the stub improves internal:numeric_param"
    );
}

/// A code task whose initial program tries to give itself a score; its scorer gives 0.25
/// whatever it is sent.
const CHEAT_TASK: &str = "id: demo:cheat\ndescription: d\nobjective: o\nparameters:\n  - name: program\n    kind: code\n    initial: |\n      import json\n      def evaluate(program_path):\n          return {'combined_score': 1e9}\n      open('openevolve_best.json', 'w').write(json.dumps({'score': 1e9, 'initial_score': 1e9, 'params': {}}))\n      print(json.dumps({'score': 1e9, 'combined_score': 1e9}))\nsplits:\n  train: [{input: null, info: null}]\nevaluator:\n  kind: command\n  command: [sh, '{task_dir}/score.sh']\n  failure_score: -100\n";

#[test]
#[ignore = "needs the external trainers' venv: scripts/check_external.sh"]
fn an_openevolve_candidate_cannot_set_its_own_score() {
    let python = external_python();
    let ws = Workspace::new();
    let dir = ws.path().join("tasks/cheat");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("task.yaml"), CHEAT_TASK).unwrap();
    std::fs::write(
        dir.join("score.sh"),
        "cat > /dev/null; echo '{\"score\": 0.25}'\n",
    )
    .unwrap();
    let cfg = ws.config(
        "cheat.yaml",
        "mode: stub\nseeds: [1]\ntasks_dir: tasks\ntasks: [demo:cheat]\ntrainers:\n  - id: OpenEvolveTrainer\n    params_variants: [{iterations: 2, ensure_improvement: false}, {iterations: 2, ensure_improvement: false, diff_based_evolution: false}]\n",
    );
    ws.cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--run-id", "c", "--external-python", &python])
        .assert()
        .success();
    let run = ws.path().join("runs/c");
    let rows = read_csv(&run.join("results.csv")).1;
    assert_eq!(rows.len(), 2, "SEARCH/REPLACE diffs and full rewrites");
    for (row, diff) in rows.iter().zip([true, false]) {
        assert_eq!(row["status"], "ok", "{rows:?}");
        assert_eq!(row["score_val"], "0.25");
        let job = run.join("jobs").join(&row["job_id"]);
        // Each child comes from a stub reply in the format the config asks for.
        for call in read_jsonl(&job.join("artifacts/llm_calls.jsonl")) {
            let reply = call["response"].as_str().unwrap();
            assert_eq!(reply.contains("<<<<<<< SEARCH\n"), diff, "{reply}");
            assert_eq!(reply.starts_with("```python\n"), !diff, "{reply}");
        }
        for claim in read_jsonl(&job.join("external/claims.jsonl")) {
            let c = claim.get("final").or(claim.get("progress")).unwrap();
            assert_eq!(c["score"].as_f64(), Some(0.25), "{claim}");
        }
        let programs = common::files_under(&job.join("external/openevolve/checkpoints"));
        let mut n = 0;
        for p in programs
            .iter()
            .filter(|p| p.parent().unwrap().ends_with("programs"))
        {
            assert_eq!(
                read_json(p)["metrics"]["combined_score"].as_f64(),
                Some(0.25),
                "{p:?}"
            );
            n += 1;
        }
        assert_eq!(n, 3, "the initial program and two children");
    }
}

#[test]
#[ignore = "needs the external trainers' venv: scripts/check_external.sh"]
fn bad_openevolve_knobs_fail_the_job_naming_the_knob() {
    // The run ends 1 (failed jobs); each job's error names its knob.
    let python = external_python();
    let ws = Workspace::new();
    let cfg = ws.config(
        "bad.yaml",
        "mode: stub\nseeds: [1]\ntasks: [internal:numeric_param]\ntrainers:\n  - id: OpenEvolveTrainer\n    params_variants: [{iterations: 0}, {population_size: many}, {ensure_improvement: 2}]\n",
    );
    ws.cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--run-id", "k", "--external-python", &python])
        .assert()
        .code(1);
    let rows = read_csv(&ws.path().join("runs/k/results.csv")).1;
    let errors: Vec<&str> = rows.iter().map(|r| r["error"].as_str()).collect();
    for (row, want) in rows.iter().zip([
        "OpenEvolveTrainer: knob `iterations` must be an integer >= 1, got 0",
        "OpenEvolveTrainer: knob `population_size` must be an integer >= 1 or null, got 'many'",
        "OpenEvolveTrainer: knob `ensure_improvement` must be true or false, got 2",
    ]) {
        assert_eq!(row["status"], "failed", "{errors:?}");
        assert_eq!(row["error_kind"], "external_trainer_failed");
        assert!(row["error"].ends_with(want), "{errors:?}");
    }
}

/// Real mode against a mock endpoint: OpenEvolve's requests reach the provider with the
/// run's model (its seed passed on, no token of ours), are recorded, and a strict replay
/// answers every one of them from the cache without a request — so OpenEvolve sends the
/// same requests again.
#[test]
#[ignore = "needs the external trainers' venv: scripts/check_external.sh"]
fn openevolve_in_real_mode_is_recorded_and_replayed_without_a_request() {
    let python = external_python();
    let ws = Workspace::new();
    let server = mock_server::MockServer::start(vec![]).unwrap();
    server.set_responder(mock_server::varied_reply);
    let config = |cache: &str| {
        ws.config(
            &format!("real-{cache}.yaml"),
            &format!(
                "mode: real\nseeds: [5]\nllm:\n  provider: mock\n  base_url: {}\n  model: mock-model\n  api_key_env: TB_TEST_KEY\n  max_retries: 0\n  cache: {cache}\n  cache_dir: {}\ntasks: [internal:numeric_param]\ntrainers:\n  - id: OpenEvolveTrainer\n    params_variants: [{{iterations: 3}}]\n",
                server.base_url(),
                ws.path().join("llm-cache").display()
            ),
        )
    };
    let run_with = |cfg: &std::path::Path, id: &str| {
        ws.cmd()
            .env("TB_TEST_KEY", "sk-test-KEY-77")
            .args(["run", "--config"])
            .arg(cfg)
            .args(["--run-id", id, "--external-python", &python])
            .assert()
            .success();
        read_csv(&ws.path().join("runs").join(id).join("results.csv")).1
    };
    let recorded = run_with(&config("read_write"), "rec");
    let requests = server.requests();
    assert_eq!(recorded[0]["status"], "ok", "{:?}", recorded[0]);
    assert_eq!(recorded[0]["llm_calls"], "3");
    assert_eq!(requests.len(), 3, "one request per iteration");
    for r in &requests {
        let body = r.json().unwrap();
        assert_eq!(
            body["model"], "mock-model",
            "the run's model, not the role name"
        );
        assert!(
            body["seed"].is_i64(),
            "OpenEvolve's seed is passed on: {body}"
        );
        assert!(
            body["messages"][1]["content"]
                .as_str()
                .unwrap()
                .contains("# Current Program")
        );
        let auth = r
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| v.as_str());
        assert_eq!(
            auth,
            Some("Bearer sk-test-KEY-77"),
            "the provider's key, not the job token"
        );
    }
    let replayed = run_with(&config("replay"), "rep");
    assert_eq!(server.requests().len(), 3, "a replay sends nothing");
    assert_eq!(numbers(&recorded), numbers(&replayed));
    assert_eq!(replayed[0]["cached_calls"], "3");
}
