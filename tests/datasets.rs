//! Dataset tasks through the binary: the shipped datasets learn in stub mode, bad data
//! files are refused with their file and line, and in real mode the agent's calls go to
//! the endpoint, are counted apart from the optimizer's and are replayed from the cache.

mod common;
#[path = "../src/llm/mock_server.rs"]
#[allow(dead_code)]
mod mock_server;

use common::{Workspace, read_csv};
use mock_server::{MockServer, ScriptedResponse};
use predicates::str::contains;

#[test]
fn stub_runs_of_the_shipped_datasets_improve_for_most_seeds() {
    let ws = Workspace::new();
    let run = ws.run_ok(
        "mode: stub\nseeds: [1, 2, 3, 4, 5]\ntasks: [datasets:arithmetic, datasets:factual_qa]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 5}]\n",
    );
    let (header, rows) = read_csv(&run.join("results.csv"));
    // The agent's columns, then what the endpoint billed (nothing in stub mode).
    let agent = header.iter().position(|c| c == "agent_calls").unwrap();
    assert_eq!(
        &header[agent..agent + 3],
        [
            "agent_calls",
            "agent_prompt_tokens",
            "agent_completion_tokens"
        ]
    );
    assert!(
        rows.iter()
            .all(|r| r["billed_prompt_tokens"] == "0" && r["cached_calls"] == "0")
    );
    for task in ["datasets:arithmetic", "datasets:factual_qa"] {
        let rows: Vec<_> = rows.iter().filter(|r| r["task_id"] == task).collect();
        assert_eq!(rows.len(), 5);
        let mut improved = 0;
        for r in &rows {
            assert_eq!(r["status"], "ok", "{r:?}");
            let initial: f64 = r["score_val_initial"].parse().unwrap();
            let fin: f64 = r["score_val_final"].parse().unwrap();
            assert_eq!(initial, 0.0, "no hint in the initial prompt: {task}");
            improved += usize::from(fin > initial);
            assert!(r["score_test"].parse::<f64>().is_ok(), "a test split");
            assert!(r["agent_calls"].parse::<u64>().unwrap() > 0);
            assert!(r["agent_prompt_tokens"].parse::<u64>().unwrap() > 0);
            assert!(r["resolved_guide"].starts_with("dataset:"));
        }
        assert!(improved >= 4, "{task}: {improved} of 5 seeds improved");
    }
}

#[test]
fn stub_dataset_runs_are_reproducible() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "d.yaml",
        "mode: stub\nseeds: [3]\ntasks: [datasets:factual_qa]\ntrainers:\n  - id: GEPA-Base\n    params_variants: [{gepa_iters: 3}]\n",
    );
    let a = ws.run_named(&cfg, "a");
    let b = ws.run_named(&cfg, "b");
    let pick = |run: &std::path::Path| {
        let (_, rows) = read_csv(&run.join("results.csv"));
        let r = &rows[0];
        [
            "score_val_final",
            "score_test",
            "agent_calls",
            "agent_prompt_tokens",
            "feedback",
        ]
        .map(|k| r[k].clone())
    };
    assert_eq!(pick(&a), pick(&b));
}

fn dataset_task(ws: &Workspace, train: &str) -> std::path::PathBuf {
    let dir = ws.path().join("mytasks/tiny");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("task.yaml"),
        "id: mine:tiny\ndescription: two sums\nobjective: Answer right.\nparameters:\n  - {name: prompt, kind: text, initial: Answer the question.}\nevaluator:\n  kind: dataset\n  metric: numeric\n  data: {train: train.jsonl}\n",
    )
    .unwrap();
    std::fs::write(dir.join("train.jsonl"), train).unwrap();
    ws.path().join("mytasks")
}

#[test]
fn a_bad_data_file_is_an_error_naming_file_and_line() {
    let ws = Workspace::new();
    let dir = dataset_task(
        &ws,
        "{\"input\": \"What is 6 times 7?\", \"answer\": 42}\n{\"input\": \"x\", \"answer\": \"lots\"}\n",
    );
    ws.cmd()
        .arg("--tasks-dir")
        .arg(&dir)
        .args(["list-tasks", "--json"])
        .assert()
        .failure()
        .stderr(contains("train.jsonl` line 2"))
        .stderr(contains("must be a number"));
}

#[test]
fn real_agent_calls_go_to_the_endpoint_and_are_counted_apart() {
    let ws = Workspace::new();
    let dir = dataset_task(
        &ws,
        "{\"input\": \"What is 6 times 7?\", \"answer\": 42}\n{\"input\": \"What is 2 plus 2?\", \"answer\": 4}\n",
    );
    let server = MockServer::start(vec![]).unwrap();
    // Every call gets this answer: right for the first example, and no usable update for
    // the optimizer (so the prompt stays the initial one).
    server.set_default(ScriptedResponse::chat("The answer is 42.", Some((10, 2))));
    let cfg = ws.config(
        "real.yaml",
        &format!(
            "mode: real\nseeds: [1]\ntasks_dir: {}\nllm:\n  provider: mock\n  base_url: {}\n  model: mock-model\n  api_key_env: null\n  max_retries: 0\n  cache_dir: {}\ntasks: [mine:tiny]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{{ps_steps: 2, ps_candidates: 1, ps_proposals: 1}}]\n",
            dir.display(),
            server.base_url(),
            ws.path().join("llm-cache").display()
        ),
    );
    let run = ws.run_named(&cfg, "first");
    let requests = server.requests();
    let is_agent = |body: &serde_json::Value| {
        let m = body["messages"].as_array().unwrap();
        m.len() == 2
            && m[0]["role"] == "system"
            && m[0]["content"] == "Answer the question."
            && m[1]["role"] == "user"
    };
    let agent = requests
        .iter()
        .filter(|r| is_agent(&r.json().unwrap()))
        .count() as u64;
    let optimizer = requests.len() as u64 - agent;
    assert!(
        agent >= 2 && optimizer >= 1,
        "{agent} agent, {optimizer} optimizer"
    );
    let (_, rows) = read_csv(&run.join("results.csv"));
    let r = &rows[0];
    assert_eq!(r["status"], "ok", "{r:?}");
    assert_eq!(r["agent_calls"], agent.to_string());
    assert_eq!(r["agent_prompt_tokens"], (10 * agent).to_string());
    assert_eq!(r["agent_completion_tokens"], (2 * agent).to_string());
    assert_eq!(r["llm_calls"], optimizer.to_string());
    assert_eq!(r["prompt_tokens"], (10 * optimizer).to_string());
    assert_eq!(r["score_val_initial"], "0.5", "42 is right for one of two");

    // Rerun: every agent and optimizer answer comes from the cache (own namespaces).
    let again = ws.run_named(&cfg, "second");
    assert_eq!(server.requests().len(), requests.len(), "no new calls");
    let (_, rows2) = read_csv(&again.join("results.csv"));
    for k in [
        "agent_calls",
        "agent_prompt_tokens",
        "llm_calls",
        "score_val_final",
    ] {
        assert_eq!(rows2[0][k], r[k], "{k}");
    }
}

#[test]
fn an_agent_auth_error_fails_the_job_and_stops_the_run() {
    let ws = Workspace::new();
    let dir = dataset_task(&ws, "{\"input\": \"What is 2 plus 2?\", \"answer\": 4}\n");
    let server = MockServer::start(vec![ScriptedResponse::error(401, "bad key")]).unwrap();
    let cfg = ws.config(
        "real.yaml",
        &common::real_config(
            &server.base_url(),
            &[("model", "m")],
            &format!(
                "seeds: [1, 2]\ntasks_dir: {}\ntasks: [mine:tiny]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{{ps_steps: 2}}]\n",
                dir.display()
            ),
        ),
    );
    ws.cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--run-id", "auth", "--max-workers", "1"])
        .assert()
        .code(1)
        .stderr(contains("stopping the run"));
    assert_eq!(server.requests().len(), 1, "no call after the 401");
    let (_, rows) = read_csv(&ws.path().join("runs/auth/results.csv"));
    assert_eq!(rows[0]["status"], "failed");
    assert_eq!(rows[0]["error_kind"], "llm_auth");
    assert!(
        rows[0]["error"].starts_with("agent: "),
        "{:?}",
        rows[0]["error"]
    );
    assert_eq!(rows[0]["agent_calls"], "1");
}

#[test]
fn a_slow_agent_is_cut_at_the_job_deadline() {
    let ws = Workspace::new();
    let dir = dataset_task(&ws, "{\"input\": \"What is 2 plus 2?\", \"answer\": 4}\n");
    let server = MockServer::start(vec![]).unwrap();
    server.set_default(
        ScriptedResponse::chat("4", Some((10, 2))).with_delay(std::time::Duration::from_secs(30)),
    );
    let cfg = ws.config(
        "slow.yaml",
        &common::real_config(
            &server.base_url(),
            &[("model", "m")],
            &format!(
                "seeds: [1]\njob_timeout: 1\ntasks_dir: {}\ntasks: [mine:tiny]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{{ps_steps: 2}}]\n",
                dir.display()
            ),
        ),
    );
    ws.cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--run-id", "slow"])
        .assert()
        .code(1);
    let (_, rows) = read_csv(&ws.path().join("runs/slow/results.csv"));
    assert_eq!(rows[0]["status"], "timeout", "{:?}", rows[0]);
    // The agent's request was cut at the deadline, not answered: its reply comes after 30 s.
    let secs: f64 = rows[0]["time_seconds"].parse().unwrap();
    assert!(
        secs < 30.0,
        "the agent's request outlived the job deadline ({secs}s)"
    );
}

#[test]
fn an_agent_failing_mid_run_stops_the_job_at_once() {
    let ws = Workspace::new();
    let dir = dataset_task(&ws, "{\"input\": \"What is 2 plus 2?\", \"answer\": 4}\n");
    // The initial evaluation's agent call and the first proposal succeed; then the
    // endpoint breaks for good.
    let proposal = "<reasoning>r</reasoning>\n<variable><name>prompt</name><value>Add the numbers.</value></variable>";
    let server = MockServer::start(vec![
        ScriptedResponse::chat("4", Some((10, 2))),
        ScriptedResponse::chat(proposal, Some((10, 2))),
    ])
    .unwrap();
    server.set_default(ScriptedResponse::error(500, "down"));
    let cfg = ws.config(
        "mid.yaml",
        &common::real_config(
            &server.base_url(),
            &[("model", "m")],
            &format!(
                "seeds: [1]\ntasks_dir: {}\ntasks: [mine:tiny]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{{ps_steps: 20, ps_candidates: 1, ps_proposals: 1}}]\n",
                dir.display()
            ),
        ),
    );
    ws.cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--run-id", "mid"])
        .assert()
        .code(1);
    let (_, rows) = read_csv(&ws.path().join("runs/mid/results.csv"));
    assert_eq!(rows[0]["status"], "failed");
    assert_eq!(rows[0]["error_kind"], "llm_server");
    assert!(
        rows[0]["error"].starts_with("agent: "),
        "{}",
        rows[0]["error"]
    );
    // Without stopping, 20 steps would go on calling the optimizer.
    assert!(
        server.requests().len() <= 4,
        "{} requests",
        server.requests().len()
    );
}

#[test]
fn each_example_of_the_final_evaluation_is_recorded_and_counted() {
    let ws = Workspace::new();
    let run = ws.run_ok(
        "mode: stub\nseeds: [1]\ntasks: [datasets:arithmetic]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 3}]\n",
    );
    let (_, rows) = read_csv(&run.join("results.csv"));
    let r = &rows[0];
    let records =
        common::read_jsonl(&run.join(format!("jobs/{}/artifacts/examples.jsonl", r["job_id"])));
    let split = |s: &str| {
        records
            .iter()
            .filter(|e| e["split"] == s)
            .collect::<Vec<_>>()
    };
    let (validation, test) = (split("validation"), split("test"));
    assert!(!validation.is_empty() && !test.is_empty(), "{records:?}");
    for e in &records {
        assert!(
            e["input"].is_string() && e["expected"]["answer"].is_number(),
            "{e}"
        );
        assert!(e["reply"].is_string() && e["score"].is_number(), "{e}");
    }
    let correct = validation.iter().filter(|e| e["score"] == 1.0).count();
    assert_eq!(r["examples_correct"], correct.to_string());
    assert_eq!(r["examples_total"], validation.len().to_string());
    // The counts agree with the score (mean over the validation examples).
    let mean: f64 = r["score_val_final"].parse().unwrap();
    assert!((mean - correct as f64 / validation.len() as f64).abs() < 1e-9);
}
