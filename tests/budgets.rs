//! Budgets (`budget:`): the same limits for every trainer, never passed, and a job that
//! stops on its budget is `ok` with its spend and stop reason recorded; the cumulative
//! spend of every step is in iterations.csv (the x-axes of anytime curves).

mod common;
#[path = "../src/llm/mock_server.rs"]
#[allow(dead_code)]
mod mock_server;

use common::{Workspace, read_csv};

const MATRIX: &str = "mode: stub\nseeds: [1, 2, 3, 4, 5]\nmax_workers: 2\nbudget: {max_metric_calls: 40}\ntasks: [internal:numeric_param, datasets:arithmetic, trace_examples:opentrace_greeting]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 30, ps_candidates: 2, ps_proposals: 2}]\n  - id: GEPA-Base\n    params_variants: [{gepa_iters: 40}]\n  - id: GEPA\n    params_variants: [{max_metric_calls: 400}]\n  - id: BasicSearch\n    budget: {max_metric_calls: 25}\n    params_variants: [{num_epochs: 5}]\n";

fn num(row: &std::collections::BTreeMap<String, String>, key: &str) -> f64 {
    row[key]
        .parse()
        .unwrap_or_else(|_| panic!("{key} = {:?}", row[key]))
}

#[test]
fn no_job_passes_its_metric_call_budget_and_each_records_why_it_stopped() {
    let ws = Workspace::new();
    let run = ws.run_ok(MATRIX);
    let (_, rows) = read_csv(&run.join("results.csv"));
    assert_eq!(rows.len(), 60);
    let mut stopped_by_budget = 0;
    for row in &rows {
        assert_eq!(row["status"], "ok", "{row:?}");
        let limit = if row["trainer_id"] == "BasicSearch" {
            25.0
        } else {
            40.0
        };
        assert!(num(row, "spent_metric_calls") <= limit, "{row:?}");
        assert!(num(row, "spent_metric_calls") > 0.0);
        match row["stop_reason"].as_str() {
            "budget:max_metric_calls" => stopped_by_budget += 1,
            "completed" => {}
            other => panic!("stop reason {other:?}"),
        }
        // The scores are trace-bench's own, on the parameters the trainer had.
        assert!(!row["score_val"].is_empty(), "{row:?}");
    }
    assert!(
        stopped_by_budget > 40,
        "most jobs want more: {stopped_by_budget}"
    );
    // Every step carries what had been spent by then; it only grows, within the budget.
    let (_, steps) = read_csv(&run.join("iterations.csv"));
    let mut last: std::collections::HashMap<String, f64> = Default::default();
    for s in &steps {
        let spent = num(s, "cum_metric_calls");
        let before = last.insert(s["job_id"].clone(), spent).unwrap_or(0.0);
        assert!(spent >= before && spent <= 40.0, "{s:?}");
        assert!(num(s, "cum_seconds") >= 0.0);
    }
    // The budget is part of the job's identity and of the snapshot.
    let snapshot = std::fs::read_to_string(run.join("meta/config.snapshot.yaml")).unwrap();
    assert!(snapshot.contains("max_metric_calls: 40"), "{snapshot}");
    let unbudgeted = ws.config(
        "plain.yaml",
        &MATRIX.replace("budget: {max_metric_calls: 40}\n", ""),
    );
    let out = ws.stdout_of(&["validate", "--config", unbudgeted.to_str().unwrap()]);
    let first = &rows[0]["job_id"];
    assert!(!out.contains(first.as_str()), "a budget changes the job id");
}

#[test]
fn a_token_budget_holds_against_a_real_endpoint_to_within_one_call() {
    let ws = Workspace::new();
    let server = mock_server::MockServer::start(vec![]).unwrap();
    server.set_responder(mock_server::varied_reply);
    let cfg = ws.config(
        "tokens.yaml",
        &format!(
            "mode: real\nseeds: [1, 2]\nbudget: {{max_tokens: 1000}}\nllm:\n  provider: mock\n  base_url: {}\n  model: mock-model\n  api_key_env: TB_TEST_KEY\n  max_retries: 0\n  cache: off\ntasks: [internal:numeric_param]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{{ps_steps: 50, ps_candidates: 1, ps_proposals: 1}}]\n",
            server.base_url()
        ),
    );
    ws.cmd()
        .env("TB_TEST_KEY", "sk-test-1")
        .args(["run", "--config"])
        .arg(&cfg)
        .assert()
        .success();
    let (_, rows) = read_csv(&ws.only_run().join("results.csv"));
    for row in &rows {
        assert_eq!(row["stop_reason"], "budget:max_tokens", "{row:?}");
        // Each call is 120 tokens (the mock's usage): at most one call past the limit.
        let billed = num(row, "billed_prompt_tokens") + num(row, "billed_completion_tokens");
        assert!(billed <= 1000.0 + 120.0, "{row:?}");
        assert_eq!(num(row, "spent_tokens"), billed);
        assert!(num(row, "spent_tokens") >= 1000.0);
    }
}
