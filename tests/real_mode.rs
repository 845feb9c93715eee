//! `mode: real` against an OpenAI-compatible server on loopback (the scripted mock the
//! client's unit tests use): token accounting, the response cache, an auth error that
//! stops the run, and a missing key refused before anything is written. The key never
//! appears in any file of the run directory.

mod common;
#[path = "../src/llm/mock_server.rs"]
#[allow(dead_code)]
mod mock_server;

use std::path::Path;

use common::{Workspace, read_csv, read_jsonl};
use mock_server::{MockServer, ScriptedResponse};
use predicates::str::contains;

const KEY: &str = "sk-test-SECRET-4242";

fn reply(value: f64, reasoning: &str) -> ScriptedResponse {
    let content = format!(
        "<reasoning>{reasoning}</reasoning>\n<variable><name>value</name><value>{value}</value></variable>"
    );
    ScriptedResponse::chat(&content, Some((120, 30)))
}

fn config(ws: &Workspace, server: &MockServer, seeds: &str) -> std::path::PathBuf {
    let cache = ws.path().join("llm-cache");
    ws.config(
        "real.yaml",
        &common::real_config(
            &server.base_url(),
            &[
                ("api_key_env", "TB_TEST_KEY"),
                ("cache", ""),
                ("cache_dir", &cache.display().to_string()),
                ("price_prompt_per_million", "1.0"),
                ("price_completion_per_million", "2.0"),
            ],
            &format!(
                "seeds: [{seeds}]\ntasks: [internal:numeric_param]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{{ps_steps: 3, ps_candidates: 1, ps_proposals: 1}}]\n"
            ),
        ),
    )
}

#[test]
fn real_calls_are_counted_cached_and_never_leak_the_key() {
    let ws = Workspace::new();
    // The second answer echoes the key, as a confused model might.
    let server = MockServer::start(vec![
        reply(1.5, "Move the value toward the target."),
        reply(2.75, &format!("The key {KEY} is irrelevant.")),
    ])
    .unwrap();
    let cfg = config(&ws, &server, "1");
    ws.cmd()
        .env("TB_TEST_KEY", KEY)
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--run-id", "first"])
        .assert()
        .success();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let run = ws.path().join("runs/first");
    let (_, rows) = read_csv(&run.join("results.csv"));
    let row = &rows[0];
    assert_eq!(row["status"], "ok");
    assert_eq!(row["llm_provider"], "mock");
    assert_eq!(row["llm_stub"], "false");
    assert_eq!(row["token_scope"], "trace_optimization_only");
    assert_eq!(row["prompt_tokens"], "240");
    assert_eq!(row["completion_tokens"], "60");
    assert_eq!(row["llm_calls"], "2");
    assert_eq!(row["cost_usd"].parse::<f64>().unwrap(), 240e-6 + 120e-6);
    // Cold cache: billed = the endpoint's usage over the requests it answered.
    let served = server.requests().len() as u64;
    assert_eq!(row["billed_prompt_tokens"], (served * 120).to_string());
    assert_eq!(row["billed_completion_tokens"], (served * 30).to_string());
    assert_eq!(
        (row["cached_calls"].as_str(), row["llm_retries"].as_str()),
        ("0", "0")
    );
    let summary = common::read_json(&run.join("summary.json"));
    assert_eq!(
        summary["llm_accounting"]["billed_prompt_tokens"],
        served * 120
    );
    assert_eq!(row["score_val_final"], "-0.25");
    assert!(
        common::files_containing(&run, KEY).is_empty(),
        "{:?}",
        common::files_containing(&run, KEY)
    );
    assert!(common::files_containing(&ws.path().join("llm-cache"), KEY).is_empty());
    // The transcripts hold both exchanges, the echoed key redacted.
    let calls = read_jsonl(
        &run.join("jobs")
            .join(&row["job_id"])
            .join("artifacts/llm_calls.jsonl"),
    );
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["model"], "mock-model");
    assert_eq!(calls[0]["usage"]["prompt_tokens"], 120);
    assert!(calls[0]["messages"][0]["content"].as_str().unwrap().len() > 20);
    let echoed = calls[1]["response"].as_str().unwrap();
    assert!(
        echoed.contains("The key ***REDACTED*** is irrelevant."),
        "{echoed}"
    );

    // The same job again: every answer comes from the cache, same numbers.
    ws.cmd()
        .env("TB_TEST_KEY", KEY)
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--run-id", "second"])
        .assert()
        .success();
    assert_eq!(server.requests().len(), 2, "a cached rerun must not call");
    let second = ws.path().join("runs/second");
    let (_, again) = read_csv(&second.join("results.csv"));
    assert_eq!(again[0]["score_val_final"], row["score_val_final"]);
    assert_eq!(again[0]["prompt_tokens"], row["prompt_tokens"]);
    // Warm cache: the same tokens consumed, nothing billed, nothing paid.
    assert_eq!(again[0]["billed_prompt_tokens"], "0");
    assert_eq!(again[0]["billed_completion_tokens"], "0");
    assert_eq!(again[0]["cached_calls"], "2");
    assert_eq!(again[0]["cost_usd"].parse::<f64>().unwrap(), 0.0);
    let job_dir = second.join("jobs").join(&row["job_id"]);
    let cached: Vec<bool> = read_jsonl(&job_dir.join("events.jsonl"))
        .iter()
        .filter(|e| e["type"] == "llm_call")
        .map(|e| e["cached"].as_bool().unwrap())
        .collect();
    assert_eq!(cached, vec![true, true]);
}

#[test]
fn an_auth_error_stops_the_run_early() {
    let ws = Workspace::new();
    let server =
        MockServer::start(vec![ScriptedResponse::error(401, "Incorrect API key")]).unwrap();
    let cfg = config(&ws, &server, "1, 2, 3");
    ws.cmd()
        .env("TB_TEST_KEY", KEY)
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--run-id", "auth", "--max-workers", "1"])
        .assert()
        .code(1)
        .stderr(contains("stopping the run"))
        // The endpoint at the start, the cause at the end, not only in the files.
        .stderr(contains(format!("LLM mock-model at {}", server.base_url())))
        .stdout(contains("failed (1 job(s)): "))
        .stdout(contains("Incorrect API key"));
    assert_eq!(server.requests().len(), 1, "no call after the 401");
    let (_, rows) = read_csv(&ws.path().join("runs/auth/results.csv"));
    assert_eq!(rows[0]["status"], "failed");
    assert_eq!(rows[0]["error_kind"], "llm_auth");
    let manifest = common::read_json(&ws.path().join("runs/auth/meta/manifest.json"));
    let statuses: Vec<&str> = manifest["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["failed", "not_executed", "not_executed"]);
}

#[test]
fn a_missing_key_is_refused_before_anything_is_written() {
    let ws = Workspace::new();
    let server = MockServer::start(vec![]).unwrap();
    let cfg = config(&ws, &server, "1");
    ws.cmd()
        .args(["validate", "--config"])
        .arg(&cfg)
        .assert()
        .code(1)
        .stderr(contains("set the environment variable `TB_TEST_KEY`"));
    ws.cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .assert()
        .code(2)
        .stderr(contains("TB_TEST_KEY"));
    assert!(!ws.path().join("runs").exists());
    assert!(server.requests().is_empty());
}

#[test]
fn a_local_server_without_auth_needs_no_key() {
    let ws = Workspace::new();
    let server = MockServer::start(vec![]).unwrap();
    server.set_default(reply(2.0, "Closer."));
    let cfg = ws.config(
        "local.yaml",
        &format!(
            "mode: real\nseeds: [1]\nllm:\n  provider: ollama\n  base_url: {}\n  model: llama3.1\n  api_key_env: null\n  cache: off\ntasks: [internal:numeric_param]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{{ps_steps: 2, ps_candidates: 1, ps_proposals: 1}}]\n",
            server.base_url()
        ),
    );
    ws.cmd()
        .args(["validate", "--config"])
        .arg(&cfg)
        .assert()
        .success();
    ws.cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--run-id", "local"])
        .assert()
        .success();
    let requests = server.requests();
    assert!(!requests.is_empty());
    assert!(requests.iter().all(|r| r.header("authorization").is_none()));
    // `cache: off` (a YAML boolean) really turns the cache off: nothing was written.
    assert!(!ws.path().join("llm-cache").exists());
    let (_, rows) = read_csv(&ws.path().join("runs/local/results.csv"));
    assert_eq!(rows[0]["status"], "ok");
    assert_eq!(rows[0]["llm_provider"], "ollama");
}

/// Content-dependent replies with a little jitter, so arrival order varies.
fn content_reply(request: &mock_server::RecordedRequest) -> ScriptedResponse {
    let jitter = request.body.len() as u64 % 4;
    mock_server::varied_reply(request).with_delay(std::time::Duration::from_millis(jitter))
}

#[test]
fn num_threads_changes_no_call_and_no_number_of_any_batching_trainer() {
    let ws = Workspace::new();
    let server = MockServer::start(Vec::new()).unwrap();
    server.set_responder(content_reply);
    let run = |threads: u32| {
        let before = server.requests().len();
        let cfg = ws.config(
            &format!("t{threads}.yaml"),
            &format!(
                "mode: real\nseeds: [3]\nmax_workers: 1\nllm:\n  provider: mock\n  base_url: {}\n  model: mock-model\n  api_key_env: TB_TEST_KEY\n  max_retries: 0\n  cache: off\ntasks: [datasets:arithmetic, internal:multi_param]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{{ps_steps: 2, ps_candidates: 2, ps_proposals: 3, num_threads: {threads}}}]\n  - id: BasicSearch\n    params_variants: [{{num_proposals: 3, batch_size: 12, num_threads: {threads}}}]\n  - id: GEPA-Beam\n    params_variants: [{{gepa_iters: 2, beam_width: 3, num_threads: {threads}}}]\n  - id: GEPA\n    params_variants: [{{max_metric_calls: 40, module_selector: all, num_threads: {threads}}}]\n",
                server.base_url()
            ),
        );
        ws.cmd()
            .env("TB_TEST_KEY", KEY)
            .args(["run", "--config"])
            .arg(&cfg)
            .args(["--run-id", &format!("t{threads}")])
            .assert()
            .success();
        let dir = ws.path().join(format!("runs/t{threads}"));
        let mut bodies: Vec<String> = server.requests()[before..]
            .iter()
            .map(|r| r.body.clone())
            .collect();
        bodies.sort();
        (dir, bodies)
    };
    let (one, one_calls) = run(1);
    let (four, four_calls) = run(4);
    assert!(one_calls.len() > 100, "{} calls", one_calls.len());
    assert_eq!(
        one_calls, four_calls,
        "the same requests, whatever the order"
    );
    let stable = |dir: &Path| {
        let (_, rows) = read_csv(&dir.join("results.csv"));
        rows.into_iter()
            .map(|r| {
                let id = r["job_id"].clone();
                r.into_iter()
                    .filter(|(k, v)| {
                        !v.contains("num_threads")
                            && !v.contains(&id)
                            && !k.contains("time")
                            && !k.contains("seconds")
                            && !["run_id", "job_id", "params_hash"].contains(&k.as_str())
                    })
                    .collect::<std::collections::BTreeMap<_, _>>()
            })
            .collect::<Vec<_>>()
    };
    let (a, b) = (stable(&one), stable(&four));
    assert_eq!(a.len(), 8);
    assert!(a.iter().all(|r| r["status"] == "ok"), "{a:?}");
    assert_eq!(a, b);
    // The search moved: some job ends above where it started.
    assert!(
        a.iter()
            .any(|r| r["score_val_final"].parse::<f64>().unwrap()
                > r["score_val_initial"].parse::<f64>().unwrap()),
        "{a:?}"
    );
}

/// POLCA's endpoint: embeddings from the mock's text-derived vectors, a summary for the
/// summarizer, and every proposal the initial value back (a duplicate of memory).
fn polca_reply(request: &mock_server::RecordedRequest) -> ScriptedResponse {
    if request.path.ends_with("/embeddings") {
        return mock_server::varied_reply(request);
    }
    if request.body.contains("<summary></summary>") {
        return ScriptedResponse::chat("<summary>Aim higher.</summary>", Some((50, 5)));
    }
    reply(0.0, "Keep it.")
}

#[test]
fn polca_embeds_through_the_endpoint_counts_caches_and_filters_a_duplicate() {
    let ws = Workspace::new();
    let server = MockServer::start(Vec::new()).unwrap();
    server.set_responder(polca_reply);
    let cache = ws.path().join("llm-cache");
    let cfg = ws.config(
        "polca.yaml",
        &common::real_config(
            &server.base_url(),
            &[
                ("cache", "read_write"),
                ("cache_dir", &cache.display().to_string()),
                ("embedding_model", "mock-embed"),
            ],
            "seeds: [1]\ntasks: [internal:numeric_param]\ntrainers:\n  - id: POLCA\n    params_variants: [{ps_steps: 3, ps_candidates: 1, ps_proposals: 1, epsilon: 0.1}]\n",
        ),
    );
    let run = |id: &str| {
        ws.cmd()
            .args(["run", "--config"])
            .arg(&cfg)
            .args(["--run-id", id])
            .assert()
            .success();
        let (_, rows) = read_csv(&ws.path().join(format!("runs/{id}/results.csv")));
        rows.into_iter().next().unwrap()
    };
    let first = run("first");
    let requests = server.requests();
    let embeds: Vec<_> = requests
        .iter()
        .filter(|r| r.path.ends_with("/embeddings"))
        .collect();
    // Iteration 1 embeds the explored initial candidate and the proposal, iteration 2 only
    // the new proposal (embeddings are kept); both proposals equal the initial value.
    assert_eq!(embeds.len(), 3, "{requests:?}");
    assert!(
        embeds
            .iter()
            .all(|r| r.json().unwrap()["model"] == "mock-embed")
    );
    assert_eq!(embeds[0].json().unwrap()["input"], "{'value': 0.0}");
    assert_eq!(embeds[1].json().unwrap()["input"], "{'value': 0.0}");
    // One summarizer call (iteration 2 has no unseen trajectory) and two proposals.
    assert_eq!(requests.len() - embeds.len(), 3);
    assert_eq!(first["status"], "ok");
    assert_eq!(first["embedding_calls"], "3");
    assert_eq!(
        first["embedding_tokens"], "21",
        "the mock reports 7 per call"
    );
    assert_eq!(first["llm_calls"], "3");
    assert_eq!(first["cached_calls"], "0");
    // The duplicates were dropped before validation: no candidate but the initial one.
    let job = ws
        .path()
        .join("runs/first/jobs")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let events = read_jsonl(&job.join("events.jsonl"));
    let candidates = events.iter().filter(|e| e["type"] == "candidate").count();
    assert_eq!(candidates, 1, "only the initial candidate");
    let embedding_events: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "embedding_call")
        .collect();
    assert_eq!(embedding_events.len(), 3);
    assert!(
        embedding_events
            .iter()
            .all(|e| e["model"] == "mock-embed" && e["stub"] == false)
    );
    assert!(events.iter().any(|e| {
        e["type"] == "warning"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("within epsilon"))
    }));
    assert_eq!(first["score_val_final"], first["score_val_initial"]);
    // A second run is answered by the cache: nothing is sent, the same numbers come back.
    let second = run("second");
    assert_eq!(
        server.requests().len(),
        requests.len(),
        "all from the cache"
    );
    assert_eq!(second["embedding_calls"], "3");
    assert_eq!(second["cached_calls"], "6");
    assert_eq!(second["score_val_final"], first["score_val_final"]);
}
