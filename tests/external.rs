//! External trainers through the binary, with python3 and the standard library only: the
//! example optimizer from a `--trainers-dir` folder (offline, repeatable, every call
//! recorded; in real mode recorded and replayed without a request), a hostile trainer that
//! finds no key, is refused the test split, has its claim replaced and is killed at the
//! deadline with nothing left running, and a missing module that skips the job with the
//! command that installs it. The DSPy and gepa adapters are checked against the real
//! libraries by `tests/external_libraries.rs` (CI installs them).

mod common;
#[path = "../src/llm/mock_server.rs"]
#[allow(dead_code)]
mod mock_server;

use std::path::{Path, PathBuf};

use common::{Workspace, read_csv, read_json, read_jsonl};

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/external_trainer")
}

/// The hostile fixture copied into the workspace (its path marks its processes).
fn hostile_dir(ws: &Workspace) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile_trainer");
    let dst = ws.path().join("hostile_trainer");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["Hostile.yaml", "hostile.py"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    dst
}

fn run(ws: &Workspace, config: &Path, run_id: &str, extra: &[&str]) -> PathBuf {
    ws.cmd()
        .args(["run", "--config"])
        .arg(config)
        .args(["--run-id", run_id, "--external-python", "python3"])
        .args(extra)
        .assert()
        .success();
    ws.path().join("runs").join(run_id)
}

/// The columns that must not depend on scheduling.
fn stable(rows: &[std::collections::BTreeMap<String, String>]) -> Vec<Vec<String>> {
    let keys = [
        "job_id",
        "status",
        "score_val_initial",
        "score_val",
        "score_test",
        "evaluator_calls",
        "llm_calls",
        "prompt_tokens",
        "completion_tokens",
        "steps",
    ];
    rows.iter()
        .map(|r| keys.iter().map(|k| r[*k].clone()).collect())
        .collect()
}

const EXAMPLE: &str = "mode: stub\nseeds: [1, 2]\ntasks: [datasets:arithmetic]\ntrainers:\n  - id: HillClimb\n    params_variants: [{iterations: 3}]\n";

#[test]
fn the_example_trainer_runs_offline_records_every_call_and_repeats() {
    let ws = Workspace::new();
    let cfg = ws.config("ext.yaml", EXAMPLE);
    let dir = example_dir();
    let dir = dir.to_str().unwrap();
    let a = run(
        &ws,
        &cfg,
        "a",
        &["--trainers-dir", dir, "--max-workers", "1"],
    );
    let b = run(
        &ws,
        &cfg,
        "b",
        &["--trainers-dir", dir, "--max-workers", "2"],
    );
    let (_, rows_a) = read_csv(&a.join("results.csv"));
    let (_, rows_b) = read_csv(&b.join("results.csv"));
    assert_eq!(rows_a.len(), 2);
    assert_eq!(stable(&rows_a), stable(&rows_b), "same seed, same results");
    for row in &rows_a {
        assert_eq!(row["status"], "ok", "{row:?}");
        let job = a.join("jobs").join(&row["job_id"]);
        let calls = read_jsonl(&job.join("artifacts/llm_calls.jsonl"));
        // Every request the child made is recorded with its role, and counted.
        assert_eq!(calls.len().to_string(), row["llm_calls"]);
        assert!(calls.iter().all(|c| c["caller"] == "proposer"), "{calls:?}");
        // Spend by caller: the trainer's proposer calls and its agent's answers.
        let by_role: serde_json::Value = serde_json::from_str(&row["spend_by_role"]).unwrap();
        assert_eq!(by_role["proposer"]["calls"].to_string(), row["llm_calls"]);
        assert!(by_role["agent"]["calls"].as_u64().unwrap() > 0, "{by_role}");
        assert!(row["evaluator_calls"].parse::<u64>().unwrap() > 12);
        assert!(row["prompt_tokens"].parse::<u64>().unwrap() > 0);
        // Steps the child reported are learning-curve points scored by trace-bench.
        assert_eq!(row["steps"], "3");
        let packet = read_json(&job.join("external/packet.json"));
        assert!(packet.get("test").is_none());
        assert_eq!(packet["seed"].to_string(), row["seed"]);
        assert_eq!(packet["validation"][0].get("info"), None);
    }
    let (_, iterations) = read_csv(&a.join("iterations.csv"));
    assert_eq!(iterations.len(), 8, "steps 0..=3 of two jobs");
}

#[test]
fn a_hostile_trainer_finds_no_key_is_refused_and_killed_at_the_deadline() {
    const SECRET: &str = "sk-hostile-SECRET-9931";
    let ws = Workspace::new();
    let dir = hostile_dir(&ws);
    let cfg = ws.config(
        "hostile.yaml",
        "mode: stub\nseeds: [3]\njob_timeout: 4\ntasks: [datasets:arithmetic]\ntrainers:\n  - id: Hostile\n    params_variants: [{linger: true}, {linger: false}]\n",
    );
    ws.cmd()
        .env("OPENAI_API_KEY", SECRET)
        .env("MY_TOKEN", SECRET)
        .args(["run", "--config"])
        .arg(&cfg)
        .args([
            "--run-id",
            "h",
            "--external-python",
            "python3",
            "--trainers-dir",
        ])
        .arg(&dir)
        .assert()
        .code(1);
    let run = ws.path().join("runs/h");
    let (_, rows) = read_csv(&run.join("results.csv"));
    let by_linger = |linger: &str| {
        rows.iter()
            .find(|r| r["raw_params"].contains(linger))
            .unwrap()
    };
    let lingering = by_linger("true");
    let exiting = by_linger("false");
    assert_eq!(lingering["status"], "timeout", "{lingering:?}");
    assert_eq!(exiting["status"], "ok", "{exiting:?}");
    for row in [lingering, exiting] {
        let job = run.join("jobs").join(&row["job_id"]);
        let seen = read_json(&job.join("external/seen.json"));
        assert_eq!(seen["secrets"], serde_json::json!([]), "{seen}");
        let env: Vec<&str> = seen["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(!env.contains(&"OPENAI_API_KEY") && !env.contains(&"MY_TOKEN"));
        assert_eq!(seen["test_split"], 403);
        assert_eq!(seen["no_token"], 401);
        assert!(!seen["packet_keys"].to_string().contains("test"));
        // The claim is recorded, never taken: the score is trace-bench's own.
        let claims = std::fs::read_to_string(job.join("external/claims.jsonl")).unwrap();
        assert!(claims.contains("1000000000"), "{claims}");
        assert_ne!(row["score_val"], "1000000000.0");
    }
    let best = std::fs::read_to_string(
        run.join("jobs")
            .join(&exiting["job_id"])
            .join("artifacts/best_state.yaml"),
    )
    .unwrap();
    assert!(
        best.contains("HACKED"),
        "its parameters are what it returned"
    );
    assert!(exiting["score_val"].parse::<f64>().unwrap() <= 1.0);
    // Nothing of it is left running: neither the child (its script is in this workspace)
    // nor its grandchild (it names its job's directory, also in this workspace).
    let marker = ws.path().display().to_string();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&marker))
        .collect();
    assert!(left.is_empty(), "still running: {left:?}");
    let leaked = common::files_containing(&run, SECRET);
    assert!(leaked.is_empty(), "the secret is in {leaked:?}");
}

#[test]
fn a_missing_module_skips_the_job_with_the_install_command() {
    let ws = Workspace::new();
    let dir = ws.path().join("needs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Needs.yaml"),
        "id: Needs\ndescription: needs a module nobody has\nalgorithm: external\nexternal:\n  command: [\"{python}\", \"{dir}/x.py\"]\n  requires: [trace_bench_no_such_module]\nknobs: []\n",
    )
    .unwrap();
    let cfg = ws.config(
        "needs.yaml",
        "tasks: [datasets:arithmetic]\ntrainers: [{id: Needs}]\n",
    );
    ws.cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .args([
            "--run-id",
            "n",
            "--external-python",
            "python3",
            "--trainers-dir",
        ])
        .arg(&dir)
        .assert()
        .code(1);
    let (_, rows) = read_csv(&ws.path().join("runs/n/results.csv"));
    assert_eq!(rows[0]["status"], "skipped");
    let feedback = &rows[0]["feedback"];
    assert!(
        feedback.contains("`trace_bench_no_such_module`")
            && feedback.contains("python3 -m pip install trace_bench_no_such_module")
            && feedback.contains("trace-bench external-env"),
        "{feedback}"
    );
}

#[test]
fn a_trainer_folder_preset_must_be_external_and_new() {
    let ws = Workspace::new();
    let dir = ws.path().join("bad");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Clash.yaml"),
        "id: PrioritySearch\ndescription: x\nalgorithm: external\nexternal: {command: [x]}\nknobs: []\n",
    )
    .unwrap();
    ws.cmd()
        .args(["list-trainers", "--trainers-dir"])
        .arg(&dir)
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "trainer id `PrioritySearch` is already defined",
        ));
    std::fs::write(
        dir.join("Clash.yaml"),
        "id: Mine\ndescription: x\nalgorithm: noop\nknobs: []\n",
    )
    .unwrap();
    ws.cmd()
        .args(["list-trainers", "--trainers-dir"])
        .arg(&dir)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("must have `algorithm: external`"));
}

#[test]
fn real_mode_calls_are_billed_recorded_and_replayed_without_a_request() {
    let ws = Workspace::new();
    let server = mock_server::MockServer::start(vec![]).unwrap();
    server.set_responder(mock_server::varied_reply);
    let config = |cache: &str| {
        ws.config(
            &format!("real-{cache}.yaml"),
            &format!(
                "mode: real\nseeds: [5]\nllm:\n  provider: mock\n  base_url: {}\n  model: mock-model\n  api_key_env: TB_TEST_KEY\n  max_retries: 0\n  cache: {cache}\n  cache_dir: {}\ntasks: [datasets:arithmetic]\ntrainers:\n  - id: HillClimb\n    params_variants: [{{iterations: 2}}]\n",
                server.base_url(),
                ws.path().join("llm-cache").display()
            ),
        )
    };
    let dir = example_dir();
    let run_with = |cfg: &Path, id: &str| {
        ws.cmd()
            .env("TB_TEST_KEY", "sk-test-KEY-77")
            .args(["run", "--config"])
            .arg(cfg)
            .args([
                "--run-id",
                id,
                "--external-python",
                "python3",
                "--trainers-dir",
            ])
            .arg(&dir)
            .assert()
            .success();
        read_csv(&ws.path().join("runs").join(id).join("results.csv")).1
    };
    let recorded = run_with(&config("read_write"), "rec");
    let sent = server.requests().len();
    let row = &recorded[0];
    assert_eq!(row["status"], "ok", "{row:?}");
    // Proposer calls plus the agent's answers, all sent, billed at the server's usage.
    let calls: u64 = row["llm_calls"].parse().unwrap();
    assert_eq!(calls, 2, "the trainer's own calls");
    assert_eq!(row["prompt_tokens"], "200", "the trainer's two calls");
    let agent: usize = row["agent_calls"].parse().unwrap();
    assert_eq!(
        agent + 2,
        sent,
        "every request is the trainer's or the agent's"
    );
    assert_eq!(
        row["billed_prompt_tokens"].parse::<usize>().unwrap(),
        100 * sent,
        "billed = the server's usage"
    );
    let replayed = run_with(&config("replay"), "rep");
    assert_eq!(server.requests().len(), sent, "a replay sends nothing");
    assert_eq!(stable(&recorded), stable(&replayed));
    assert_eq!(replayed[0]["billed_prompt_tokens"], "0");
}

#[test]
fn an_external_trainer_is_held_to_the_budget_at_its_endpoints() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "budget.yaml",
        "mode: stub\nseeds: [1]\nbudget: {max_metric_calls: 20}\ntasks: [datasets:arithmetic]\ntrainers:\n  - id: HillClimb\n    params_variants: [{iterations: 10}]\n",
    );
    let dir = example_dir();
    let run = run(&ws, &cfg, "b", &["--trainers-dir", dir.to_str().unwrap()]);
    let (_, rows) = read_csv(&run.join("results.csv"));
    let row = &rows[0];
    assert_eq!(row["status"], "ok", "{row:?}");
    assert_eq!(row["stop_reason"], "budget:max_metric_calls");
    assert!(
        row["spent_metric_calls"].parse::<u64>().unwrap() <= 20,
        "{row:?}"
    );
    // The parameters of its last reported step are scored, as for a native trainer.
    assert!(!row["score_test"].is_empty());
}

#[test]
fn real_mode_embeddings_of_an_external_trainer_are_sent_counted_and_replayed() {
    let ws = Workspace::new();
    let dir = ws.path().join("embedder");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Embedder.yaml"),
        "id: Embedder\ndescription: embeds three texts\nalgorithm: external\nexternal:\n  command: [\"{python}\", \"{dir}/embed.py\"]\nknobs: []\n",
    )
    .unwrap();
    // Identical texts get identical vectors, distinct ones do not; anything else fails the job.
    std::fs::write(
        dir.join("embed.py"),
        "import math\nfrom tb_client import Client\n\ntb = Client.from_env()\nreply = tb._request('POST', '/v1/embeddings', {'model': 'tb-embed', 'input': ['a', 'a', 'b']})\nv = [d['embedding'] for d in reply['data']]\nd = lambda x, y: math.sqrt(sum((p - q) ** 2 for p, q in zip(x, y)))\nassert d(v[0], v[1]) == 0 and d(v[0], v[2]) > 0.1, v\nbest = tb.initial_params()\nscore = tb.evaluate(best, split='train')['score']\ntb.step(best, score)\ntb.final(best, score)\n",
    )
    .unwrap();
    let server = mock_server::MockServer::start(vec![]).unwrap();
    server.set_responder(mock_server::varied_reply);
    let config = |cache: &str| {
        ws.config(
            &format!("embed-{cache}.yaml"),
            &format!(
                "mode: real\nseeds: [5]\nllm:\n  provider: mock\n  base_url: {}\n  model: mock-model\n  embedding_model: mock-embed\n  api_key_env: null\n  max_retries: 0\n  cache: {cache}\n  cache_dir: {}\ntasks: [internal:numeric_param]\ntrainers: [Embedder]\n",
                server.base_url(),
                ws.path().join("llm-cache").display()
            ),
        )
    };
    let run_with = |cfg: &Path, id: &str| {
        run(&ws, cfg, id, &["--trainers-dir", dir.to_str().unwrap()]);
        read_csv(&ws.path().join("runs").join(id).join("results.csv")).1
    };
    let recorded = run_with(&config("read_write"), "rec");
    let row = &recorded[0];
    assert_eq!(row["status"], "ok", "{row:?}");
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "one request per input");
    assert!(
        requests
            .iter()
            .all(|r| r.path == "/v1/embeddings" && r.json().unwrap()["model"] == "mock-embed")
    );
    assert_eq!(row["embedding_calls"], "3");
    assert_eq!(row["embedding_tokens"], "21");
    assert_eq!(row["cached_calls"], "0");
    let replayed = run_with(&config("replay"), "rep");
    assert_eq!(replayed[0]["status"], "ok", "{:?}", replayed[0]);
    assert_eq!(server.requests().len(), 3, "a replay sends nothing");
    assert_eq!(replayed[0]["embedding_calls"], "3");
    assert_eq!(replayed[0]["cached_calls"], "3");
}
