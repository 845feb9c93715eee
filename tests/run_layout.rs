//! `run` end to end: the embedded default and a 2x2 matrix produce every file of the
//! canonical layout with the right contents; `report` rebuilds them byte for byte.

mod common;

use common::{MATRIX_2X2, Workspace, read_csv, read_json, read_jsonl};
use predicates::str::contains;

const REFERENCE_COLUMNS: &str = "run_id,job_id,task_id,suite,trainer_id,seed,status,score_val_initial,score_val_final,score_val,score_test,time_seconds,resolved_optimizer,resolved_guide,resolved_logger,resolved_trainer_kwargs,resolved_optimizer_kwargs,resolved_guide_kwargs,resolved_logger_kwargs,eval_kwargs,feedback,llm_provider,llm_model,llm_base_url,token_scope,prompt_tokens,completion_tokens,total_tokens,initial_state_path,best_state_path,final_state_path,state_history_path,tb_logdir";

#[test]
fn embedded_default_run_writes_the_whole_layout() {
    let ws = Workspace::new();
    ws.cmd()
        .arg("run")
        .assert()
        .success()
        .stdout(contains("Run complete:"));
    let run = ws.only_run();
    let name = run.file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        name.len() == 24 && name.as_bytes()[8] == b'-' && name.as_bytes()[15] == b'-',
        "run id {name} is not YYYYMMDD-HHMMSS-xxxxxxxx"
    );
    for f in [
        "meta/config.snapshot.yaml",
        "meta/manifest.json",
        "meta/env.json",
        "meta/git.json",
        "meta/system.json",
        "results.csv",
        "iterations.csv",
        "summary.json",
        "leaderboard.csv",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    let (_, rows) = read_csv(&run.join("results.csv"));
    assert_eq!(rows.len(), 24);
    assert!(rows.iter().all(|r| r["status"] == "ok"));
    let summary = read_json(&run.join("summary.json"));
    assert_eq!(summary["total_jobs"], 24);
    assert_eq!(summary["counts"]["ok"], 24);
    // The snapshot loads again as a config and plans the same jobs.
    ws.cmd()
        .args(["validate", "--config"])
        .arg(run.join("meta/config.snapshot.yaml"))
        .assert()
        .success()
        .stdout(contains("24 jobs expanded"));
}

#[test]
fn matrix_2x2_every_file_and_column() {
    let ws = Workspace::new();
    let run = ws.run_ok(MATRIX_2X2);
    let run_id = run.file_name().unwrap().to_str().unwrap().to_string();

    let (header, rows) = read_csv(&run.join("results.csv"));
    assert_eq!(header[..33].join(","), REFERENCE_COLUMNS);
    for extra in [
        "steps",
        "best_step",
        "evaluator_calls",
        "llm_calls",
        "cost_usd",
        "error_kind",
        "attempts",
    ] {
        assert!(header.iter().any(|h| h == extra), "missing column {extra}");
    }
    assert_eq!(rows.len(), 4);
    let manifest = read_json(&run.join("meta/manifest.json"));
    let planned: Vec<&str> = manifest["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    let in_csv: Vec<&str> = rows.iter().map(|r| r["job_id"].as_str()).collect();
    assert_eq!(planned, in_csv, "results.csv is in matrix order");
    let order: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["task_id"].as_str(), r["trainer_id"].as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("internal:numeric_param", "PrioritySearch"),
            ("internal:numeric_param", "GEPA-Base"),
            ("internal:multi_param", "PrioritySearch"),
            ("internal:multi_param", "GEPA-Base")
        ]
    );
    for r in &rows {
        let id = &r["job_id"];
        assert_eq!(r["run_id"], run_id);
        assert_eq!(id.len(), 12);
        assert_eq!(r["suite"], "internal");
        assert_eq!(r["seed"], "7");
        assert_eq!(r["status"], "ok");
        let initial: f64 = r["score_val_initial"].parse().unwrap();
        let fin: f64 = r["score_val_final"].parse().unwrap();
        let best: f64 = r["score_val"].parse().unwrap();
        assert_eq!(best, initial.max(fin));
        assert_eq!(r["score_test"], "", "no test split");
        assert!(r["time_seconds"].parse::<f64>().unwrap() >= 0.0);
        assert_eq!(r["resolved_optimizer"], "OptoPrimeV2");
        assert_eq!(r["resolved_guide"], "builtin:numeric_distance");
        for k in [
            "resolved_trainer_kwargs",
            "resolved_optimizer_kwargs",
            "resolved_guide_kwargs",
            "resolved_logger_kwargs",
            "eval_kwargs",
            "raw_params",
        ] {
            assert!(
                serde_json::from_str::<serde_json::Value>(&r[k])
                    .unwrap()
                    .is_object(),
                "{k} is a JSON object"
            );
        }
        assert!(r["feedback"].starts_with("train_dataset: mean over 1 examples."));
        assert_eq!(r["llm_provider"], "stub");
        assert_eq!(r["llm_model"], "stub-seeded-mutation");
        assert_eq!(r["token_scope"], "stub_estimate");
        let p: u64 = r["prompt_tokens"]
            .parse()
            .expect("token counts are numbers");
        let c: u64 = r["completion_tokens"].parse().unwrap();
        assert_eq!(r["total_tokens"].parse::<u64>().unwrap(), p + c);
        assert!(p > 0);
        for (col, file) in [
            ("initial_state_path", "initial_state.yaml"),
            ("best_state_path", "best_state.yaml"),
            ("final_state_path", "final_state.yaml"),
            ("state_history_path", "state_history.jsonl"),
        ] {
            assert_eq!(r[col], format!("jobs/{id}/artifacts/{file}"));
            assert!(run.join(&r[col]).is_file(), "{col}");
        }
        assert_eq!(r["tb_logdir"], format!("jobs/{id}/tb"));
        assert_eq!(r["mode"], "stub");
        assert_eq!(r["llm_stub"], "true");
        assert!(r["llm_calls"].parse::<u64>().unwrap() > 0);

        let job = run.join("jobs").join(id);
        let meta = read_json(&job.join("job_meta.json"));
        assert_eq!(meta["status"], "ok");
        assert_eq!(meta["job_id"], id.as_str());
        let results = read_json(&job.join("results.json"));
        assert_eq!(results["job_id"], id.as_str());
        let steps = r["steps"].parse::<usize>().unwrap();
        assert_eq!(
            results["history"].as_array().unwrap().len(),
            steps + 1,
            "step 0 plus one per step"
        );
        let events = read_jsonl(&job.join("events.jsonl"));
        assert_eq!(events.first().unwrap()["type"], "job_started");
        assert_eq!(events.last().unwrap()["type"], "job_finished");
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["v"], 1);
            assert_eq!(e["seq"], i);
            assert!(e["ts"].as_str().unwrap().ends_with('Z'));
        }
        assert_eq!(
            events.iter().filter(|e| e["type"] == "step").count(),
            steps + 1
        );
        assert!(
            std::fs::read_to_string(job.join("job.log"))
                .unwrap()
                .contains("job finished: ok")
        );
        let history = read_jsonl(&job.join("artifacts/state_history.jsonl"));
        assert_eq!(history.len(), steps + 1);
        // One transcript per LLM call, joined to its `llm_call` (or failure warning) by seq.
        let calls = read_jsonl(&job.join("artifacts/llm_calls.jsonl"));
        assert_eq!(calls.len(), r["llm_calls"].parse::<usize>().unwrap());
        for (i, c) in calls.iter().enumerate() {
            assert_eq!(c["type"], "llm_transcript");
            assert_eq!(c["call"], i);
            let reporter = &events[c["seq"].as_u64().unwrap() as usize];
            assert!(
                reporter["type"] == "llm_call" || reporter["type"] == "warning",
                "{reporter}"
            );
            assert!(!c["messages"].as_array().unwrap().is_empty());
            assert!(c["response"].is_string() || c["error"].is_string());
        }
        for kind in ["initial", "best", "final"] {
            let state = read_json(&job.join(format!("artifacts/{kind}_state.json")));
            assert!(
                state["parameters"]
                    .as_array()
                    .is_some_and(|p| !p.is_empty())
            );
            assert!(job.join(format!("artifacts/{kind}_state.yaml")).is_file());
        }
        let tb: Vec<_> = std::fs::read_dir(job.join("tb")).unwrap().collect();
        assert_eq!(tb.len(), 1, "one event file per job");
    }
    let (it_header, it_rows) = read_csv(&run.join("iterations.csv"));
    assert_eq!(
        it_header[..14].join(","),
        "run_id,job_id,task_id,trainer_id,seed,step,score_train,score_val,best_score,step_seconds,elapsed_seconds,evaluator_calls,llm_calls,tokens"
    );
    let total_steps: usize = rows
        .iter()
        .map(|r| r["steps"].parse::<usize>().unwrap() + 1)
        .sum();
    assert_eq!(it_rows.len(), total_steps);
    let (_, board) = read_csv(&run.join("leaderboard.csv"));
    assert_eq!(board.len(), 4);
    assert_eq!(board[0]["rank"], "1");
    let env = read_json(&run.join("meta/env.json"));
    assert!(env["env"].is_object() && env["captured_at"].is_string());
    let git = read_json(&run.join("meta/git.json"));
    assert!(git.as_object().unwrap().contains_key("commit"));
    let system = read_json(&run.join("meta/system.json"));
    assert!(system["cpu"]["logical_cores"].as_u64().unwrap() >= 1);
}

#[test]
fn report_rebuilds_run_files_byte_for_byte() {
    let ws = Workspace::new();
    let run = ws.run_ok(MATRIX_2X2);
    let files = [
        "results.csv",
        "iterations.csv",
        "summary.json",
        "leaderboard.csv",
    ];
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(run.join(f)).unwrap())
        .collect();
    for f in files {
        std::fs::remove_file(run.join(f)).unwrap();
    }
    ws.cmd()
        .arg("report")
        .arg(&run)
        .assert()
        .success()
        .stdout(contains("Rebuilt from 4 job result(s)"));
    for (f, old) in files.iter().zip(before) {
        assert_eq!(
            std::fs::read(run.join(f)).unwrap(),
            old,
            "{f} differs after report"
        );
    }
    ws.cmd()
        .arg("report")
        .arg(ws.path())
        .assert()
        .code(2)
        .stderr(contains("is not a run directory"));
}

#[test]
fn job_meta_and_manifest_carry_the_references_resolved_fields() {
    let ws = Workspace::new();
    let run = ws.run_ok(
        "seeds: [1]\ntasks: [{id: internal:numeric_param, eval_kwargs: {note: 1}}]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 1}]\n",
    );
    let (_, rows) = common::read_csv(&run.join("results.csv"));
    let manifest = common::read_json(&run.join("meta/manifest.json"));
    let entry = &manifest["jobs"][0];
    let meta = common::read_json(&run.join(format!("jobs/{}/job_meta.json", rows[0]["job_id"])));
    for key in [
        "resolved_optimizer",
        "resolved_guide",
        "resolved_logger",
        "resolved_optimizer_kwargs",
        "resolved_guide_kwargs",
        "resolved_logger_kwargs",
        "resolved_trainer_kwargs",
        "eval_kwargs",
    ] {
        assert_eq!(meta[key], entry[key], "{key}: job_meta and manifest agree");
        let cell = &rows[0][key];
        let from_csv: serde_json::Value =
            serde_json::from_str(cell).unwrap_or_else(|_| serde_json::Value::String(cell.clone()));
        assert_eq!(meta[key], from_csv, "{key}: as results.csv has it");
    }
    assert_eq!(meta["resolved_optimizer"], "OptoPrimeV2");
    assert_eq!(entry["eval_kwargs"], serde_json::json!({"note": 1}));
    assert_eq!(
        entry["resolved_kwargs"]["eval_kwargs"], entry["eval_kwargs"],
        "both kept"
    );
}

#[test]
fn a_runs_own_snapshot_reruns_as_the_same_run_and_reuses_every_job() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "c.yaml",
        "seeds: [1, 2]\ntasks: [internal:numeric_param]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 1}]\n  - id: GEPA-Base\n    optimizer_kwargs: {memory_size: 3}\n    params_variants: [{gepa_iters: 1}]\n",
    );
    let run = ws.run_named(&cfg, "snap");
    let snapshot = run.join("meta/config.snapshot.yaml");
    ws.cmd()
        .args(["run", "--config"])
        .arg(&snapshot)
        .args(["--run-id", "snap"])
        .assert()
        .success()
        .stdout(contains("(0 executed, 4 reused"));
}
