//! Analysis of finished runs: statistics in summary.json and leaderboard.csv agree with
//! results.csv; `compare` passes a run against itself and fails on known regressions
//! (exit 1) with every reason in gate.json; bad input exits 2; `report --html` writes one
//! self-contained, reproducible page.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{Workspace, read_csv, read_json};
use predicates::str::contains;

/// 2 tasks x 2 trainers x 3 seeds.
const MATRIX: &str = "runs_dir: runs
mode: stub
seeds: [1, 2, 3]
max_workers: 2
tasks:
  - internal:numeric_param
  - trace_examples:opentrace_greeting
trainers:
  - id: PrioritySearch
    params_variants: [{ps_steps: 3}]
  - id: GEPA-Base
    params_variants: [{gepa_iters: 3}]
";

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

#[test]
fn summary_and_leaderboard_statistics_match_results_csv() {
    let ws = Workspace::new();
    let run = ws.run_ok(MATRIX);
    let (_, rows) = read_csv(&run.join("results.csv"));
    let mut scores: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for r in &rows {
        scores
            .entry((r["task_id"].clone(), r["trainer_id"].clone()))
            .or_default()
            .push(r["score_val"].parse().unwrap());
    }
    let summary = read_json(&run.join("summary.json"));
    let groups = summary["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 4);
    for g in groups {
        let key = (
            g["task_id"].as_str().unwrap().to_string(),
            g["trainer_id"].as_str().unwrap().to_string(),
        );
        let xs = &scores[&key];
        let m = mean(xs);
        let sd = (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 2.0).sqrt();
        let mut sorted = xs.clone();
        sorted.sort_by(f64::total_cmp);
        let s = &g["score_val"];
        assert_eq!(s["n"], 3);
        assert!((s["mean"].as_f64().unwrap() - m).abs() < 1e-12, "{key:?}");
        assert!((s["std"].as_f64().unwrap() - sd).abs() < 1e-12, "{key:?}");
        assert_eq!(s["median"].as_f64().unwrap(), sorted[1]);
        assert_eq!(s["min"].as_f64().unwrap(), sorted[0]);
        assert_eq!(s["max"].as_f64().unwrap(), sorted[2]);
        let (lo, hi) = (
            s["ci95_low"].as_f64().unwrap(),
            s["ci95_high"].as_f64().unwrap(),
        );
        assert!(
            sorted[0] <= lo && lo <= m && m <= hi && hi <= sorted[2],
            "{key:?}"
        );
        assert_eq!((g["jobs"].as_u64(), g["ok"].as_u64()), (Some(3), Some(3)));
    }
    assert_eq!(
        summary["cost_usd"],
        serde_json::Value::Null,
        "stub jobs cost nothing"
    );
    assert!(summary["wall_seconds"].as_f64().unwrap() > 0.0);

    let (header, board) = read_csv(&run.join("leaderboard.csv"));
    assert_eq!(
        header[..9].join(","),
        "rank,task_id,suite,job_id,trainer_id,resolved_optimizer,score_val,score_test,time_seconds"
    );
    assert_eq!(board.len(), 4);
    for task in [
        "internal:numeric_param",
        "trace_examples:opentrace_greeting",
    ] {
        let entries: Vec<_> = board.iter().filter(|e| e["task_id"] == task).collect();
        let means: Vec<f64> = entries
            .iter()
            .map(|e| e["mean_score_val"].parse().unwrap())
            .collect();
        assert!(means[0] >= means[1], "ranked by mean: {means:?}");
        assert_eq!(entries[0]["rank"], "1");
        let want = if means[0] == means[1] { "1" } else { "2" };
        assert_eq!(entries[1]["rank"], want);
        for e in entries {
            let best = scores[&(task.to_string(), e["trainer_id"].clone())]
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(
                e["score_val"].parse::<f64>().unwrap(),
                best,
                "best job's score"
            );
        }
    }
}

/// Lower `score_val` of every job of one group in a run by `by`.
fn lower_scores(run: &Path, task: &str, trainer: &str, by: f64) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(run.join("jobs")).unwrap() {
        let path = entry.unwrap().path().join("results.json");
        let mut job = read_json(&path);
        if job["task_id"] == task && job["trainer_id"] == trainer {
            job["score_val"] = (job["score_val"].as_f64().unwrap() - by).into();
            std::fs::write(&path, serde_json::to_string(&job).unwrap()).unwrap();
            n += 1;
        }
    }
    n
}

#[test]
fn compare_passes_a_run_against_itself_and_fails_a_known_score_drop() {
    let ws = Workspace::new();
    let cfg = ws.config("m.yaml", MATRIX);
    let base = ws.run_named(&cfg, "base");
    ws.cmd()
        .arg("compare")
        .arg(&base)
        .arg(&base)
        .assert()
        .code(0)
        .stdout(contains("verdict: pass"));
    let gate = read_json(&base.join("gate.json"));
    assert_eq!(gate["verdict"], "pass");
    assert_eq!(gate["paired_jobs"], 12);
    assert_eq!(gate["reasons"].as_array().unwrap().len(), 0);
    for g in gate["groups"].as_array().unwrap() {
        assert_eq!(g["score_val"]["change"], 0.0);
        assert_eq!(g["changed_config_pairs"], 0);
        assert_eq!(g["verdict"], "pass");
    }

    // Same config again: same job ids, same scores; then a known drop in one group.
    let new = ws.run_named(&cfg, "new");
    assert_eq!(
        lower_scores(&new, "internal:numeric_param", "GEPA-Base", 0.5),
        3
    );
    let out = ws.path().join("out/gate.json");
    ws.cmd()
        .arg("compare")
        .arg(&base)
        .arg(&new)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1)
        .stdout(contains("[FAIL] score: internal:numeric_param / GEPA-Base"))
        .stdout(contains("verdict: FAIL"));
    assert!(
        !new.join("gate.json").exists(),
        "--out replaces the default place"
    );
    let gate = read_json(&out);
    assert_eq!(gate["verdict"], "fail");
    assert_eq!(gate["base"]["run_id"], "base");
    assert_eq!(gate["new"]["run_id"], "new");
    let reasons = gate["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert_eq!(reasons[0]["severity"], "fail");
    assert_eq!(reasons[0]["check"], "score");
    assert!((reasons[0]["value"].as_f64().unwrap() + 0.5).abs() < 1e-9);
    for g in gate["groups"].as_array().unwrap() {
        let hit = g["task_id"] == "internal:numeric_param" && g["trainer_id"] == "GEPA-Base";
        assert_eq!(g["verdict"], if hit { "fail" } else { "pass" });
        if hit {
            let hi = g["score_delta_ci95_high"].as_f64().unwrap();
            assert!((hi + 0.5).abs() < 1e-9, "every paired difference is -0.5");
        }
    }
    // A tolerance larger than the drop lets it through.
    ws.cmd()
        .arg("compare")
        .arg(&base)
        .arg(&new)
        .args(["--max-score-drop", "0.6"])
        .assert()
        .code(0);
}

#[test]
fn compare_gates_on_tokens_with_limits_from_a_thresholds_file() {
    let ws = Workspace::new();
    let base = ws.run_named(&ws.config("a.yaml", MATRIX), "base");
    // Three times the GEPA-Base iterations: more tokens per job; job ids change.
    let more = MATRIX.replace("{gepa_iters: 3}", "{gepa_iters: 9}");
    let new = ws.run_named(&ws.config("b.yaml", &more), "new");
    let th = ws.config(
        "th.yaml",
        "max_score_drop: off\nmax_token_increase: 0.10\nmax_time_increase: null\n",
    );
    ws.cmd()
        .arg("compare")
        .arg(&base)
        .arg(&new)
        .arg("--thresholds")
        .arg(&th)
        .assert()
        .code(1)
        .stdout(contains("[FAIL] tokens:"));
    let gate = read_json(&new.join("gate.json"));
    assert_eq!(
        gate["thresholds"]["max_score_drop"],
        serde_json::Value::Null
    );
    let failing: Vec<(&str, &str)> = gate["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["severity"] == "fail")
        .map(|r| {
            (
                r["check"].as_str().unwrap(),
                r["trainer_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(!failing.is_empty());
    assert!(
        failing.iter().all(|f| *f == ("tokens", "GEPA-Base")),
        "{failing:?}"
    );
    let g = gate["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["trainer_id"] == "GEPA-Base")
        .unwrap();
    assert_eq!(
        g["changed_config_pairs"], 3,
        "paired by seed although job ids differ"
    );
    assert!(g["tokens"]["change"].as_f64().unwrap() > 0.1);
    // The flag overrides the file.
    ws.cmd()
        .arg("compare")
        .arg(&base)
        .arg(&new)
        .arg("--thresholds")
        .arg(&th)
        .args(["--max-token-increase", "off"])
        .assert()
        .code(0);
}

#[test]
fn compare_rejects_bad_input_with_exit_2() {
    let ws = Workspace::new();
    let run = ws.run_ok(MATRIX);
    ws.cmd()
        .arg("compare")
        .arg(&run)
        .arg(ws.path())
        .assert()
        .code(2)
        .stderr(contains("is not a run directory"));
    let th = ws.config("th.yaml", "max_score_drop: 0\nmax_tokens: 1\n");
    ws.cmd()
        .arg("compare")
        .arg(&run)
        .arg(&run)
        .arg("--thresholds")
        .arg(&th)
        .assert()
        .code(2)
        .stderr(contains("th.yaml:2:1: unknown threshold `max_tokens`"));
    ws.cmd()
        .args(["compare", "a", "b", "--max-score-drop", "-1"])
        .assert()
        .code(2);
    let (_, rows) = read_csv(&run.join("results.csv"));
    let broken = run
        .join("jobs")
        .join(&rows[0]["job_id"])
        .join("results.json");
    std::fs::write(&broken, "{not json").unwrap();
    ws.cmd()
        .arg("compare")
        .arg(&run)
        .arg(&run)
        .assert()
        .code(2)
        .stderr(contains("cannot read"))
        .stderr(contains("results.json"));
    assert!(
        !run.join("gate.json").exists(),
        "nothing written on bad input"
    );
}

#[test]
fn report_html_is_one_self_contained_reproducible_page() {
    let ws = Workspace::new();
    let run = ws.run_ok(MATRIX);
    ws.cmd()
        .arg("report")
        .arg(&run)
        .arg("--html")
        .assert()
        .success()
        .stdout(contains("report.html"));
    let page = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.ends_with("</html>\n"));
    for forbidden in ["<script", "src=", "href=", "@import", "url("] {
        assert!(
            !page.contains(forbidden),
            "page must not load anything: {forbidden}"
        );
    }
    // Summary, leaderboard, charts per task (steps; anytime on each budget axis) with a
    // mean line and band per trainer, the critical-difference diagram, the profiles.
    assert!(page.contains("Statistics over seeds") && page.contains("Leaderboard"));
    assert!(page.contains("Anytime: best score at equal budget"));
    assert!(page.contains("Which optimizer is better"));
    // Steps (2 tasks), anytime on 4 axes (2 tasks each), the CD diagram and the profiles.
    assert_eq!(page.matches("<svg").count(), 2 + 4 * 2 + 2);
    assert_eq!(page.matches("type=\"radio\" name=\"axis\"").count(), 4);
    for chart in ["critical difference diagram", "performance profiles"] {
        assert_eq!(page.matches(&format!("aria-label=\"{chart}\"")).count(), 1);
    }
    // Two charts per task with a line per trainer, and a profile line per method.
    let methods = 2;
    assert_eq!(page.matches("<polyline").count(), 4 + 4 * 4 + methods);
    assert_eq!(page.matches("<polygon").count(), 4 + 4 * 4);
    for name in [
        "internal:numeric_param",
        "trace_examples:opentrace_greeting",
        "GEPA-Base",
    ] {
        assert!(page.contains(name), "{name}");
    }
    let first = std::fs::read(run.join("report.html")).unwrap();
    ws.cmd()
        .arg("report")
        .arg(&run)
        .arg("--html")
        .assert()
        .success();
    assert_eq!(
        std::fs::read(run.join("report.html")).unwrap(),
        first,
        "reproducible"
    );
    // Without --html no page is written.
    std::fs::remove_file(run.join("report.html")).unwrap();
    ws.cmd().arg("report").arg(&run).assert().success();
    assert!(!run.join("report.html").exists());
}
