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
    assert!(it_header.iter().any(|c| c == "metrics"));
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

/// A stub run of `config` with an empty hub cache (so no user's download is read).
fn run_offline(ws: &Workspace, config: &str) -> std::path::PathBuf {
    let cfg = ws.config("run.yaml", config);
    ws.cmd()
        .env("HF_HUB_CACHE", ws.path().join("empty-hub"))
        .args(["run", "--config"])
        .arg(&cfg)
        .assert()
        .success();
    ws.only_run()
}

const REFERENCE_TASKS: &str = "seeds: [42]\ntasks:\n  - id: internal:multiobjective_bbeh\n    eval_kwargs: {objective_mode: weighted}\n  - id: internal:multiobjective_bbeh\n    eval_kwargs: {objective_mode: pareto, n_train: 4, seed: 0}\n  - id: internal:multiobjective_gsm8k\n    eval_kwargs: {objective_mode: weighted}\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 2}]\n";

#[test]
fn the_reference_multiobjective_tasks_draw_numpy_rows_and_score_every_metric() {
    let ws = Workspace::new();
    let run = run_offline(&ws, REFERENCE_TASKS);
    let (_, rows) = read_csv(&run.join("results.csv"));
    assert_eq!(rows.len(), 3);
    let bbeh = &rows[0];
    assert_eq!(bbeh["status"], "ok", "{bbeh:?}");
    // The initial code evaluates every expression right in 5 traced lines: 5 µs each.
    assert_eq!(
        (
            bbeh["examples_correct"].as_str(),
            bbeh["examples_total"].as_str()
        ),
        ("15", "15")
    );
    let m = metrics(&bbeh["metrics"]);
    assert_eq!(m["accuracy"].as_f64(), Some(1.0));
    assert_eq!(m["execution_time_s"].as_f64(), Some(5e-6));
    let weighted: f64 = bbeh["score_val"].parse().unwrap();
    assert!((weighted - (1.0 - 0.3 * 5e-6)).abs() < 1e-12, "{weighted}");
    let pareto = &rows[1];
    assert_eq!(pareto["examples_total"], "4");
    let pareto_score: f64 = pareto["score_val"].parse().unwrap();
    assert!((pareto_score + 0.3 * 5e-6).abs() < 1e-12, "{pareto_score}");
    // The rows RandomState(seed) picks from the 20 embedded expressions, in its order.
    let dir = |job: &str| run.join("jobs").join(job).join("artifacts/examples.jsonl");
    let inputs = |job: &str| -> Vec<String> {
        common::read_jsonl(&dir(job))
            .iter()
            .map(|r| r["input"].as_str().unwrap().to_string())
            .collect()
    };
    let task = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tasks/internal/multiobjective_bbeh/task.yaml"),
    )
    .unwrap();
    let pool: Vec<String> = task
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- {input: \""))
        .map(|l| l.split('"').next().unwrap().to_string())
        .collect();
    assert_eq!(pool.len(), 20);
    let pick = |idx: &[usize]| -> Vec<String> { idx.iter().map(|&i| pool[i].clone()).collect() };
    assert_eq!(
        inputs(&bbeh["job_id"]),
        pick(&[0, 17, 15, 1, 8, 5, 11, 3, 18, 16, 13, 2, 9, 19, 4])
    );
    // RandomState(0).permutation(20)[:4].
    assert_eq!(inputs(&pareto["job_id"]), pick(&[18, 1, 19, 8]));
    let gsm = &rows[2];
    assert_eq!(gsm["status"], "ok", "{gsm:?}");
    let m = metrics(&gsm["metrics"]);
    assert!(m["tokens_in"].as_f64().unwrap() > 0.0, "{m:?}");
    assert_eq!(gsm["examples_total"], "10");
    let meta = read_json(&run.join("jobs").join(&gsm["job_id"]).join("job_meta.json"));
    assert_eq!(meta["examples_source"], "the task's embedded examples");
    // Same config and seed: the same numbers.
    let ws2 = Workspace::new();
    let again = run_offline(&ws2, REFERENCE_TASKS);
    let (_, rows2) = read_csv(&again.join("results.csv"));
    for (a, b) in rows.iter().zip(&rows2) {
        for key in ["job_id", "score_val", "metrics", "examples_correct"] {
            assert_eq!(a[key], b[key], "{key}");
        }
    }
}

#[test]
fn a_local_bbeh_clone_is_used_when_found() {
    let ws = Workspace::new();
    let dir = ws
        .path()
        .join("bbeh/benchmark_tasks/bbeh_boolean_expressions");
    std::fs::create_dir_all(&dir).unwrap();
    let examples = serde_json::json!([
        {"input": "not True is", "target": "False"},
        {"input": "True or False is", "target": "True"},
        {"input": "not not False is", "target": "False"},
    ]);
    std::fs::write(
        dir.join("task.json"),
        serde_json::json!({"examples": examples}).to_string(),
    )
    .unwrap();
    let run = run_offline(
        &ws,
        "seeds: [42]\ntasks: [internal:multiobjective_bbeh]\ntrainers: [NoOp]\n",
    );
    let (_, rows) = read_csv(&run.join("results.csv"));
    assert_eq!(rows[0]["examples_total"], "3");
    assert_eq!(rows[0]["examples_correct"], "3");
    let meta = read_json(
        &run.join("jobs")
            .join(&rows[0]["job_id"])
            .join("job_meta.json"),
    );
    assert!(
        meta["examples_source"]
            .as_str()
            .unwrap()
            .contains("bbeh_boolean_expressions/task.json"),
        "{}",
        meta["examples_source"]
    );
}

/// The BBEH scorer run directly: the code cannot stop or reach its cost counter, forge
/// the child's report, or leave a patched interpreter to the next candidate.
#[test]
fn the_pal_scorer_cannot_be_fooled() {
    use std::io::{BufRead, BufReader, Write};
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tasks/internal/multiobjective_bbeh/pal.py");
    let mut child = std::process::Command::new("python3")
        .arg(&script)
        .arg("--serve")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let workdir = tempfile::tempdir().unwrap();
    let mut ask = |code: &str| -> serde_json::Value {
        let request = serde_json::json!({
            "parameters": {"code": code}, "input": "not ( True ) and ( True ) is",
            "info": {"answer": "False"}, "workdir": workdir.path(),
        });
        writeln!(stdin, "{request}").unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    };
    let honest =
        "e = question.strip()\nif e.endswith(' is'):\n    e = e[:-3]\nresult = str(eval(e))\n";
    let v = ask(honest);
    assert_eq!(
        (v["score"].as_f64(), v["correct"].as_bool()),
        (Some(1.0), Some(true))
    );
    assert_eq!(v["metrics"]["execution_time_s"].as_f64(), Some(5e-6));
    let loop_cost = ask("for i in range(1000):\n    pass\nresult = 'False'\n");
    assert_eq!(
        loop_cost["metrics"]["execution_time_s"].as_f64(),
        Some(0.002002)
    );
    for (attack, why) in [
        (
            "import sys\nsys.settrace(None)\nresult = 'False'",
            "sys.settrace",
        ),
        (
            "import sys\nsys.gettrace().__globals__['DENIED_EVENTS'] = ()\nimport sys\nsys.settrace(None)\nresult = 'False'",
            "sys.settrace",
        ),
        (
            "import sys\nd = sys.gettrace().__defaults__\nresult = 'False'",
            "object.__getattr__",
        ),
        (
            "try:\n    1/0\nexcept Exception as e:\n    f = e.__traceback__.tb_frame\nresult = 'False'",
            "object.__getattr__",
        ),
        ("import gc\nresult = 'False'", "import"),
        ("import threading\nresult = 'False'", "import"),
    ] {
        let v = ask(attack);
        assert_eq!(v["score"].as_f64(), Some(0.0), "{attack}: {v}");
        assert!(
            v["feedback"].as_str().unwrap().contains(why),
            "{attack}: {v}"
        );
    }
    // A report printed by the code to any descriptor is ignored: its real cost counts.
    let forged = ask(
        "import os\nfor fd in range(1, 12):\n    try:\n        os.write(fd, b'{\"result\": \"False\", \"lines\": 0}\\n')\n    except OSError:\n        pass\nresult = 'False'\n",
    );
    assert!(
        forged["metrics"]["execution_time_s"].as_f64().unwrap() > 2e-5,
        "{forged}"
    );
    let exited = ask("import os\nos._exit(0)");
    assert_eq!(exited["correct"].as_bool(), Some(false), "{exited}");
    ask("import builtins\nbuiltins.str = lambda x: 'False'\nresult = 'x'");
    let after = ask("result = str(1 == 2)");
    assert_eq!(after["output"], "False", "{after}");
    assert_eq!(after["metrics"]["execution_time_s"].as_f64(), Some(1e-6));
    drop(stdin);
    child.wait().unwrap();
}
