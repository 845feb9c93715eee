//! `rescore` and `score`: states a run found, and candidates from elsewhere, scored again
//! without optimising, as ordinary run directories. Rescoring a stub run's best states
//! reproduces its own scores exactly, the source is never written to, another model is
//! really asked, and scoring a task's initial parameters gives its jobs' initial score.

mod common;
#[path = "../src/llm/mock_server.rs"]
#[allow(dead_code)]
mod mock_server;

use std::collections::BTreeMap;
use std::path::Path;

use common::{Workspace, read_csv, read_json};

const SOURCE: &str = "mode: stub\nseeds: [1, 2]\ntasks: [datasets:arithmetic, internal:numeric_param]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 3}]\n  - id: GEPA-Base\n    params_variants: [{gepa_iters: 3}]\n";

fn tree_digest(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    common::files_under(dir)
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn rescoring_best_states_reproduces_the_run_and_leaves_it_untouched() {
    let ws = Workspace::new();
    let cfg = ws.config("source.yaml", SOURCE);
    let source = ws.run_named(&cfg, "src");
    let before = tree_digest(&source);
    ws.cmd()
        .args(["rescore"])
        .arg(&source)
        .args(["--states", "best,initial", "--run-id", "again"])
        .assert()
        .success();
    assert_eq!(
        before,
        tree_digest(&source),
        "the source run is byte-identical"
    );
    let (_, src_rows) = read_csv(&source.join("results.csv"));
    let again = ws.path().join("runs/again");
    let (_, rows) = read_csv(&again.join("results.csv"));
    assert_eq!(rows.len(), 2 * src_rows.len());
    let record = read_json(&again.join("meta/source.json"));
    assert_eq!(record["source_run_id"], "src");
    assert_eq!(record["jobs"].as_array().unwrap().len(), rows.len());
    for row in &rows {
        assert_eq!(row["status"], "ok", "{row:?}");
        assert_eq!(row["trainer_id"], "Rescore");
        assert_eq!(row["llm_calls"], "0", "rescoring optimises nothing");
        let eval: serde_json::Value = serde_json::from_str(&row["eval_kwargs"]).unwrap();
        let origin = eval["rescore_of"].as_str().unwrap();
        let (job, state) = origin.split_once('/').unwrap();
        let src = src_rows.iter().find(|r| r["job_id"] == job).unwrap();
        assert_eq!(row["seed"], src["seed"], "each state keeps its job's seed");
        match state {
            "best" => {
                assert_eq!(row["score_test"], src["score_test"], "{origin}");
                assert_eq!(row["score_val"], src["score_val"], "{origin}");
            }
            _ => assert_eq!(row["score_val"], src["score_val_initial"], "{origin}"),
        }
    }
}

#[test]
fn scoring_a_tasks_initial_parameters_gives_its_initial_score() {
    let ws = Workspace::new();
    let cfg = ws.config("source.yaml", SOURCE);
    let source = ws.run_named(&cfg, "src");
    let (_, src_rows) = read_csv(&source.join("results.csv"));
    let initial = src_rows
        .iter()
        .find(|r| r["task_id"] == "datasets:arithmetic" && r["seed"] == "1")
        .unwrap();
    std::fs::write(
        ws.path().join("cand.yaml"),
        "prompt: Answer the question.\n",
    )
    .unwrap();
    ws.cmd()
        .args([
            "score",
            "--task",
            "datasets:arithmetic",
            "--params",
            "cand.yaml",
        ])
        .args(["--seeds", "1", "--run-id", "one"])
        .assert()
        .success();
    let (_, rows) = read_csv(&ws.path().join("runs/one/results.csv"));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["score_val"], initial["score_val_initial"]);
    // A JSONL of candidates: one job per candidate and seed.
    std::fs::write(
        ws.path().join("cands.jsonl"),
        "{\"prompt\": \"Answer the question.\"}\n{\"prompt\": \"add multiply subtract divide\"}\n",
    )
    .unwrap();
    ws.cmd()
        .args([
            "score",
            "--task",
            "datasets:arithmetic",
            "--params",
            "cands.jsonl",
        ])
        .args(["--seeds", "1,2", "--run-id", "many"])
        .assert()
        .success();
    let (_, rows) = read_csv(&ws.path().join("runs/many/results.csv"));
    assert_eq!(rows.len(), 4);
    // Shards of one scoring run, as with `run --shard`, then `report` settles it.
    for shard in ["1/2", "2/2"] {
        ws.cmd()
            .args([
                "score",
                "--task",
                "datasets:arithmetic",
                "--params",
                "cands.jsonl",
            ])
            .args(["--seeds", "1,2", "--run-id", "sharded", "--shard", shard])
            .assert()
            .success();
    }
    ws.cmd().args(["report", "runs/sharded"]).assert().success();
    let (_, sharded) = read_csv(&ws.path().join("runs/sharded/results.csv"));
    let scores = |rows: &[BTreeMap<String, String>]| -> Vec<String> {
        rows.iter().map(|r| r["score_val"].clone()).collect()
    };
    assert_eq!(scores(&sharded), scores(&rows));
    // The stub agent answers right when the prompt names an example's hint.
    let hinted: f64 = rows
        .iter()
        .filter(|r| r["eval_kwargs"].contains("divide"))
        .map(|r| r["score_val"].parse::<f64>().unwrap())
        .sum();
    assert!(hinted > 0.0);
    // A parameter the task does not have is the job's error, named.
    std::fs::write(ws.path().join("bad.yaml"), "nope: 1\n").unwrap();
    ws.cmd()
        .args([
            "score",
            "--task",
            "datasets:arithmetic",
            "--params",
            "bad.yaml",
        ])
        .args(["--run-id", "bad"])
        .assert()
        .code(1);
    let (_, rows) = read_csv(&ws.path().join("runs/bad/results.csv"));
    assert!(
        rows[0]["error"].contains("no parameter `nope`"),
        "{:?}",
        rows[0]
    );
}

#[test]
fn rescoring_with_another_model_asks_that_model() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "source.yaml",
        "mode: stub\nseeds: [1]\ntasks: [datasets:arithmetic]\ntrainers: [NoOp]\n",
    );
    let source = ws.run_named(&cfg, "src");
    let server = mock_server::MockServer::start(vec![]).unwrap();
    server.set_responder(mock_server::varied_reply);
    let base = format!("llm.base_url={}", server.base_url());
    ws.cmd()
        .env("TB_TEST_KEY", "sk-test-9")
        .arg("rescore")
        .arg(&source)
        .args(["--run-id", "transfer", "--set", "mode=real", "--set", &base])
        .args([
            "--set",
            "llm.model=model-b",
            "--set",
            "llm.api_key_env=TB_TEST_KEY",
        ])
        .args([
            "--set",
            "llm.provider=mock",
            "--set",
            "llm.cache=off",
            "--set",
            "llm.max_retries=0",
        ])
        .assert()
        .success();
    let requests = server.requests();
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|r| r.json().unwrap()["model"] == "model-b")
    );
    let (_, rows) = read_csv(&ws.path().join("runs/transfer/results.csv"));
    assert_eq!(rows[0]["llm_model"], "model-b");
    assert_eq!(rows[0]["mode"], "real");
}
