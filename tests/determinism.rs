//! Same config + seed ⇒ same numbers; `max_workers` never changes results; the full
//! 9-task x 4-trainer x 3-seed matrix runs; search improves `numeric_param` for most seeds.

mod common;

use std::path::Path;

use common::{MATRIX_2X2, Workspace, read_csv, stable_rows};

fn stable_iterations(run: &Path) -> Vec<Vec<String>> {
    let (_, rows) = read_csv(&run.join("iterations.csv"));
    rows.into_iter()
        .map(|r| {
            [
                "job_id",
                "step",
                "score_train",
                "score_val",
                "best_score",
                "evaluator_calls",
                "llm_calls",
                "tokens",
            ]
            .iter()
            .map(|c| r[*c].clone())
            .collect()
        })
        .collect()
}

fn run_with(ws: &Workspace, cfg: &Path, run_id: &str, workers: &str) -> std::path::PathBuf {
    ws.cmd()
        .args(["run", "--config"])
        .arg(cfg)
        .args(["--run-id", run_id, "--max-workers", workers])
        .assert()
        .success();
    ws.path().join("runs").join(run_id)
}

#[test]
fn two_runs_and_any_worker_count_give_identical_results() {
    let ws = Workspace::new();
    let cfg = ws.config("m.yaml", MATRIX_2X2);
    let a = run_with(&ws, &cfg, "a", "1");
    let b = run_with(&ws, &cfg, "b", "1");
    let c = run_with(&ws, &cfg, "c", "2");
    assert_eq!(stable_rows(&a), stable_rows(&b));
    assert_eq!(stable_rows(&a), stable_rows(&c));
    assert_eq!(stable_iterations(&a), stable_iterations(&c));
    let events = |run: &Path| -> Vec<String> {
        let (_, rows) = read_csv(&run.join("results.csv"));
        rows.iter().map(|r| r["job_id"].clone()).collect()
    };
    assert_eq!(events(&a), events(&c));
}

#[test]
fn matrix_9_tasks_4_trainers_3_seeds() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "big.yaml",
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/configs/matrix_9x4x3.yaml"
        ))
        .unwrap(),
    );
    // internal:non_trainable fails by design, so the run exits 1.
    ws.cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--run-id", "big"])
        .assert()
        .code(1);
    let (_, rows) = read_csv(&ws.path().join("runs/big/results.csv"));
    assert_eq!(rows.len(), 9 * 4 * 3);
    for r in &rows {
        let expected = match r["task_id"].as_str() {
            "internal:non_trainable" => "failed",
            "veribench:smoke_placeholder" => "skipped",
            _ => "ok",
        };
        assert_eq!(
            r["status"], expected,
            "{} {}",
            r["task_id"], r["trainer_id"]
        );
    }
    let non_trainable = rows
        .iter()
        .find(|r| r["task_id"] == "internal:non_trainable")
        .unwrap();
    assert_eq!(non_trainable["error_kind"], "no_trainable_parameters");
    let skipped = rows.iter().find(|r| r["status"] == "skipped").unwrap();
    assert!(skipped["feedback"].contains("VeriBench is not available"));
}

#[test]
fn search_improves_numeric_param_for_most_seeds() {
    let ws = Workspace::new();
    let seeds: Vec<String> = (1..=20).map(|s| s.to_string()).collect();
    let cfg = ws.config(
        "s.yaml",
        &format!(
            "seeds: [{}]\ntasks: [internal:numeric_param]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{{ps_steps: 5}}]\n",
            seeds.join(", ")
        ),
    );
    ws.cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--run-id", "s"])
        .assert()
        .success();
    let (_, rows) = read_csv(&ws.path().join("runs/s/results.csv"));
    assert_eq!(rows.len(), 20);
    let improved = rows
        .iter()
        .filter(|r| {
            r["score_val_final"].parse::<f64>().unwrap()
                > r["score_val_initial"].parse::<f64>().unwrap()
        })
        .count();
    assert!(improved >= 16, "only {improved}/20 seeds improved");
    let (_, it) = read_csv(&ws.path().join("runs/s/iterations.csv"));
    for job in rows.iter().map(|r| &r["job_id"]) {
        let best: Vec<f64> = it
            .iter()
            .filter(|r| &r["job_id"] == job)
            .map(|r| r["best_score"].parse().unwrap())
            .collect();
        assert!(
            best.windows(2).all(|w| w[1] >= w[0]),
            "best-so-far never decreases: {best:?}"
        );
    }
}

#[test]
fn every_durability_level_writes_the_same_run_and_none_leaves_temporary_files() {
    let ws = Workspace::new();
    let mut rows = Vec::new();
    let mut iterations = Vec::new();
    for level in ["job", "file", "none"] {
        let cfg = ws.config(
            &format!("{level}.yaml"),
            &format!("{MATRIX_2X2}durability: {level}\n"),
        );
        let run = run_with(&ws, &cfg, level, "2");
        rows.push(stable_rows(&run));
        iterations.push(stable_iterations(&run));
        let temporary: Vec<_> = common::files_under(&run)
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(temporary.is_empty(), "{level}: {temporary:?}");
        let (_, csv) = read_csv(&run.join("results.csv"));
        assert_eq!(csv.len(), 4, "{level}");
        for r in &csv {
            let meta =
                common::read_json(&run.join("jobs").join(&r["job_id"]).join("job_meta.json"));
            assert_eq!(meta["status"], "ok", "{level}: every job committed");
        }
    }
    assert_eq!(rows[0], rows[1]);
    assert_eq!(rows[0], rows[2]);
    assert_eq!(iterations[0], iterations[1]);
    assert_eq!(iterations[0], iterations[2]);
    // The level is how a run writes, not what it measures: resuming under another is no
    // drift, and every job is reused.
    let cfg = ws.config("job-again.yaml", &format!("{MATRIX_2X2}durability: none\n"));
    let out = ws
        .cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--run-id", "job"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = common::read_json(&ws.path().join("runs/job/meta/manifest.json"));
    assert!(
        manifest["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["status"] == "reused"),
        "{manifest}"
    );
}

#[test]
fn an_unknown_durability_level_is_a_located_error_with_the_levels() {
    let ws = Workspace::new();
    let cfg = ws.config("bad.yaml", &format!("{MATRIX_2X2}durability: fsync\n"));
    let out = ws
        .cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown durability level `fsync`"), "{err}");
    assert!(err.contains("bad.yaml:13:13 (key `durability`)"), "{err}");
    assert!(err.contains("`job`") && err.contains("`none`"), "{err}");
    assert!(!ws.path().join("runs").exists(), "nothing written");
}

#[test]
fn ps_variants_legacy_searches_textgrad_and_aggregated_update_give_the_same_numbers_at_any_num_threads()
 {
    let ws = Workspace::new();
    let config = |threads: u32| {
        let trainers = [
            "POLCA",
            "StreamingPrioritySearch",
            "ParetobasedPS",
            "SequentialUpdate",
            "SequentialSearch",
            "BeamSearch",
            "PrioritySearch_with_Regressor",
        ]
        .iter()
        .map(|t| {
            format!(
                "  - id: {t}\n    params_variants: [{{ps_steps: 4, ps_candidates: 3, ps_proposals: 2, num_threads: {threads}}}]\n"
            )
        })
        .collect::<String>()
            + &format!(
                "  - id: BeamsearchAlgorithm\n    params_variants: [{{max_depth: 2, beam_width: 2, num_proposals: 2, num_threads: {threads}}}]\n  - id: BeamsearchHistoryAlgorithm\n    params_variants: [{{max_depth: 2, beam_width: 2, num_proposals: 2, num_threads: {threads}}}]\n  - id: UCBSearchAlgorithm\n    params_variants: [{{num_search_iterations: 4, evaluation_batch_size: 2, num_threads: {threads}}}]\n  - id: TextGradTrainer\n    params_variants: [{{num_epochs: 2, batch_size: 2, num_threads: {threads}}}]\n  - id: AggregatedUpdate\n    params_variants: [{{num_epochs: 2, batch_size: 2, num_threads: {threads}}}]\n"
            );
        ws.config(
            &format!("v{threads}.yaml"),
            &format!(
                "seeds: [1, 2]\ntasks: [internal:multi_param, trace_examples:greeting_stub]\ntrainers:\n{trainers}"
            ),
        )
    };
    let (one, four) = (config(1), config(4));
    let a = run_with(&ws, &one, "a", "1");
    let b = run_with(&ws, &one, "b", "2");
    let c = run_with(&ws, &four, "c", "2");
    assert_eq!(stable_rows(&a), stable_rows(&b));
    assert_eq!(stable_iterations(&a), stable_iterations(&b));
    // num_threads is a knob (in the job id and the resolved kwargs): compare the numbers.
    let numbers = |run: &Path| -> Vec<Vec<String>> {
        let (_, rows) = read_csv(&run.join("results.csv"));
        rows.iter()
            .map(|r| {
                [
                    "trainer_id",
                    "status",
                    "score_val",
                    "score_test",
                    "evaluator_calls",
                    "llm_calls",
                    "embedding_calls",
                    "total_tokens",
                    "best_step",
                ]
                .iter()
                .map(|k| r[*k].clone())
                .collect()
            })
            .collect()
    };
    assert_eq!(numbers(&a), numbers(&c));
    let rows = numbers(&a);
    assert_eq!(rows.len(), 48);
    assert!(rows.iter().all(|r| r[1] == "ok"), "{rows:?}");
    assert!(
        rows.iter().any(|r| r[0] == "POLCA" && r[6] != "0"),
        "POLCA embeds its candidates: {rows:?}"
    );
}
