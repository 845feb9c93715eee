//! `report` says which optimizer is better: a trainer built to be better is reported
//! significantly better over 8 seeds, two identical trainers are not, and `stats.json` and
//! `anytime.csv` hold the numbers (paired tests per task, ranks across tasks, anytime
//! aggregates on the metric-call axis).

mod common;

use common::{Workspace, read_csv, read_json};

const MATRIX: &str = "mode: stub\nseeds: [1, 2, 3, 4, 5, 6, 7, 8]\nbudget: {max_metric_calls: 30}\ntasks: [internal:numeric_param, internal:multi_param]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 5}, {ps_steps: 5, verbose: false}]\n  - id: NoOp\n";

#[test]
fn a_better_trainer_is_significant_and_identical_ones_are_not() {
    let ws = Workspace::new();
    let run = ws.run_ok(MATRIX);
    let out = ws.stdout_of(&["report", run.to_str().unwrap()]);
    // PrioritySearch improves on the initial value every seed; NoOp never moves.
    assert!(
        out.contains("internal:numeric_param: PrioritySearch [v0] beats NoOp by"),
        "{out}"
    );
    assert!(out.contains("internal:numeric_param: PrioritySearch [v1] beats NoOp by"));
    let stats = read_json(&run.join("stats.json"));
    for task in stats["tasks"].as_array().unwrap() {
        for pair in task["pairs"].as_array().unwrap() {
            let (a, b) = (pair["a"].as_str().unwrap(), pair["b"].as_str().unwrap());
            if a.starts_with("PrioritySearch") && b.starts_with("PrioritySearch") {
                // The two variants are the same algorithm: every difference is 0.
                assert_eq!(pair["mean_diff"], 0.0, "{pair}");
                assert_eq!(pair["better"], "none");
                assert_eq!(pair["wilcoxon"]["p_value"], 1.0);
            }
            if b == "NoOp" && task["task_id"] == "internal:numeric_param" {
                assert_eq!(pair["better"], "a", "{pair}");
                // 8 positive, untied differences: exact p = 2/256, times Holm's factor.
                let p = pair["wilcoxon"]["p_value"].as_f64().unwrap();
                assert!((p - 2.0 / 256.0).abs() < 1e-12, "{pair}");
            }
        }
    }
    let across = &stats["across_tasks"];
    assert_eq!(across["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(across["methods"].as_array().unwrap().len(), 3);
    // anytime.csv: one row per task and method, on the common budget of 30 metric calls.
    let (header, rows) = read_csv(&run.join("anytime.csv"));
    assert_eq!(header[0], "task_id");
    assert_eq!(rows.len(), 6);
    for r in &rows {
        assert_eq!(r["budget_metric_calls"], "30", "{r:?}");
        assert_eq!(r["jobs"], "8");
        let auc: f64 = r["auc_norm"].parse().unwrap();
        assert!((0.0..=1.0).contains(&auc), "{r:?}");
        let at = |k: &str| r[k].parse::<f64>().unwrap();
        assert!(at("best_at_25") <= at("best_at_50") && at("best_at_50") <= at("best_at_100"));
    }
    let noop = rows
        .iter()
        .find(|r| r["method"] == "NoOp" && r["task_id"] == "internal:numeric_param")
        .unwrap();
    assert_eq!(
        noop["successes"], "0",
        "NoOp never reaches the median score"
    );
    assert_eq!(noop["ert_metric_calls"], "");
}
