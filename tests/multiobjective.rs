//! Multi-objective tasks: `internal:multiobjective_convex` in both objective modes (the
//! reference's `m3_multiobjective.yaml` pattern: the same task twice with different
//! `eval_kwargs`), every metric in results, iterations and results.json, the Pareto front,
//! and a command evaluator reporting metrics.

mod common;

use common::{Workspace, read_csv, read_json};

const CONFIG: &str = "seeds: [1, 2]\ntasks:\n  - id: internal:multiobjective_convex\n    eval_kwargs: {objective_mode: weighted}\n  - id: internal:multiobjective_convex\n    eval_kwargs: {objective_mode: pareto}\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 8}]\n";

fn metrics(cell: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(cell)
        .unwrap_or_else(|e| panic!("metrics cell `{cell}`: {e}"))
        .as_object()
        .unwrap()
        .clone()
}

#[test]
fn both_modes_score_by_their_rule_and_record_every_metric() {
    let ws = Workspace::new();
    let run = ws.run_ok(CONFIG);
    let (header, rows) = read_csv(&run.join("results.csv"));
    assert!(header.iter().any(|h| h == "metrics"));
    assert_eq!(rows.len(), 4);
    for r in &rows {
        assert_eq!(r["status"], "ok");
        let m = metrics(&r["metrics"]);
        let base = m["base_loss"].as_f64().unwrap();
        let reg = m["reg_loss"].as_f64().unwrap();
        let final_score: f64 = r["score_val_final"].parse().unwrap();
        let initial: f64 = r["score_val_initial"].parse().unwrap();
        if r["eval_kwargs"].contains("pareto") {
            // Chebyshev distance to the ideal (-1.0316, 0) with unit weights.
            assert!(
                (final_score + (base + 1.0316).max(reg)).abs() < 1e-9,
                "{r:?}"
            );
            assert!((initial + (3.2333333333333334_f64 + 1.0316).max(2.0)).abs() < 1e-9);
        } else {
            assert!((final_score + base + reg).abs() < 1e-9, "{r:?}");
            assert!((initial + 3.2333333333333334 + 2.0).abs() < 1e-9);
        }
        assert!(
            final_score > initial,
            "search improves the objective: {r:?}"
        );
        let job = run.join("jobs").join(&r["job_id"]);
        let results = read_json(&job.join("results.json"));
        let front = results["pareto_front"].as_array().unwrap();
        assert!(!front.is_empty());
        for p in front {
            assert!(p["metrics"]["base_loss"].is_number() && p["params"]["x1"].is_number());
        }
        let history = results["history"].as_array().unwrap();
        assert!(history.iter().all(|s| s["metrics"]["reg_loss"].is_number()));
    }
    // The same task with two objective modes is two groups, and a run compared with itself
    // pairs every job with itself (no score change anywhere).
    let summary = read_json(&run.join("summary.json"));
    let groups = summary["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert_ne!(groups[0]["eval_kwargs"], groups[1]["eval_kwargs"]);
    ws.cmd()
        .arg("compare")
        .arg(&run)
        .arg(&run)
        .assert()
        .success();
    let gate = read_json(&run.join("gate.json"));
    for g in gate["groups"].as_array().unwrap() {
        assert_eq!(g["score_val"]["change"], 0.0, "{g}");
    }
    let (it_header, it_rows) = read_csv(&run.join("iterations.csv"));
    assert_eq!(it_header.last().unwrap(), "metrics");
    assert!(it_rows.iter().all(|r| metrics(&r["metrics"]).len() == 2));
    // Scalar tasks leave the column empty.
    let other = Workspace::new();
    let scalar = other.run_ok("tasks: [internal:numeric_param]\ntrainers: [NoOp]\n");
    let (_, rows) = read_csv(&scalar.join("results.csv"));
    assert_eq!(rows[0]["metrics"], "");
}

#[test]
fn a_bad_objective_mode_is_a_located_config_error() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "bad.yaml",
        "tasks:\n  - id: internal:multiobjective_convex\n    eval_kwargs: {objective_mode: lexicographic}\ntrainers: [NoOp]\n",
    );
    ws.cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("bad.yaml:2:"))
        .stderr(predicates::str::contains(
            "tasks[0].eval_kwargs.objective_mode",
        ))
        .stderr(predicates::str::contains("`weighted` or `pareto`"));
    assert!(!ws.path().join("runs").exists(), "nothing was written");
}

#[test]
fn a_command_evaluator_reports_metrics_for_a_weighted_objective() {
    let ws = Workspace::new();
    let dir = ws.path().join("tasks/mo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("task.yaml"),
        "id: demo:mo\ndescription: d\nobjective: o\nparameters:\n  - {name: x, kind: number, initial: 0.0}\nsplits:\n  train: [{input: null, info: null}]\nobjective_config:\n  metrics:\n    - {name: cost, weight: 2.0, minimize: true}\n    - {name: quality, weight: 1.0}\nevaluator:\n  kind: command\n  command: [sh, '{task_dir}/score.sh']\n  failure_score: -100\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("score.sh"),
        "cat > /dev/null; echo '{\"score\": 0, \"metrics\": {\"cost\": 1.5, \"quality\": 4}}'\n",
    )
    .unwrap();
    let run = ws.run_ok("tasks_dir: tasks\ntasks: [demo:mo]\ntrainers: [NoOp]\n");
    let (_, rows) = read_csv(&run.join("results.csv"));
    // 1.0 * 4 - 2.0 * 1.5 = 1.0: the objective, not the evaluator's own score.
    assert_eq!(rows[0]["score_val_initial"], "1.0");
    assert_eq!(rows[0]["metrics"], r#"{"cost":1.5,"quality":4.0}"#);
}
