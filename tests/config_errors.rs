//! Bad input gets a clear, located error and exit 2, and leaves no run directory; validate
//! prints every job; secrets never reach the run directory.

mod common;

use common::{Workspace, read_json};
use predicates::prelude::*;
use predicates::str::contains;

fn assert_refused(ws: &Workspace, text: &str, expected_stderr: &str) {
    ws.config("bad.yaml", text);
    let out = ws
        .cmd()
        .args(["run", "--config", "bad.yaml"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains(expected_stderr),
        "expected {expected_stderr:?} in:\n{stderr}"
    );
    assert!(stderr.contains("nothing was run"), "{stderr}");
    assert!(
        !ws.path().join("runs").exists(),
        "a bad config must leave no run directory"
    );
}

#[test]
fn wrong_type_is_located() {
    let ws = Workspace::new();
    assert_refused(
        &ws,
        "tasks: [internal:numeric_param]\nmax_workers: lots\n",
        "error: `max_workers` must be an integer, found a string `lots`\n  --> bad.yaml:2:14 (key `max_workers`)\n  |\n2 | max_workers: lots\n  |              ^\n",
    );
}

#[test]
fn unknown_trainer_suggests_the_closest() {
    let ws = Workspace::new();
    assert_refused(
        &ws,
        "tasks: [internal:numeric_param]\ntrainers:\n  - id: PrioritySerch\n",
        "error: unknown trainer `PrioritySerch`\n  --> bad.yaml:3:5 (key `trainers[0]`)\n  |\n3 |   - id: PrioritySerch\n  |     ^\n  = hint: did you mean `PrioritySearch`?\n",
    );
}

#[test]
fn malformed_yaml_points_at_the_line() {
    let ws = Workspace::new();
    assert_refused(
        &ws,
        "tasks:\n  - id: internal:numeric_param\n    eval_kwargs: {a: 1\nmode: stub\n",
        "error: invalid YAML:",
    );
    let out = ws
        .cmd()
        .args(["run", "--config", "bad.yaml"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(stderr.contains("--> bad.yaml:4:"), "{stderr}");
}

#[test]
fn unknown_mode_lists_the_choices() {
    let ws = Workspace::new();
    assert_refused(
        &ws,
        "mode: turbo\ntasks: [internal:numeric_param]\n",
        "error: unknown mode `turbo`\n  --> bad.yaml:1:7 (key `mode`)\n  |\n1 | mode: turbo\n  |       ^\n  = hint: use `stub` (offline, seeded) or `real` (an OpenAI-compatible endpoint)\n",
    );
}

#[test]
fn unknown_keys_warn_and_strict_refuses() {
    let ws = Workspace::new();
    let cfg = ws.config("w.yaml", "tasks: [internal:numeric_param]\nmax_worker: 2\ntrainers:\n  - id: GEPA-Base\n    params_variants: [{ps_steps: 2}]\n");
    ws.cmd()
        .args(["validate", "--config"])
        .arg(&cfg)
        .assert()
        .success()
        .stderr(
            contains("warning: unknown run-level key `max_worker`")
                .and(contains("did you mean `max_workers`?")),
        )
        .stderr(contains(
            "warning: trainer `GEPA-Base` has no knob `ps_steps`; it is ignored",
        ));
    ws.cmd()
        .args(["validate", "--strict", "--config"])
        .arg(&cfg)
        .assert()
        .code(1)
        .stderr(contains("error: unknown run-level key `max_worker`"))
        .stderr(contains(
            "error: trainer `GEPA-Base` has no knob `ps_steps`",
        ));
    ws.cmd()
        .args(["run", "--strict", "--config"])
        .arg(&cfg)
        .assert()
        .code(2);
    assert!(!ws.path().join("runs").exists());
}

#[test]
fn bad_set_override_is_a_usage_error() {
    let ws = Workspace::new();
    ws.cmd()
        .args(["run", "--set", "max_workers"])
        .assert()
        .code(2)
        .stderr(contains("`--set max_workers` has no `=`"));
    ws.cmd()
        .args(["run", "--set", "mode=rael"])
        .assert()
        .code(2)
        .stderr(contains("did you mean `real`?"));
    assert!(!ws.path().join("runs").exists());
}

#[test]
fn validate_prints_every_job_with_reference_ids() {
    let ws = Workspace::new();
    let smoke = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/smoke.yaml");
    ws.cmd()
        .args(["validate", "--config", smoke])
        .assert()
        .success()
        .stdout(contains("[OK] internal:numeric_param"))
        .stdout(contains(
            "job 806f391306ae: internal:numeric_param x PrioritySearch (seed=123)",
        ));
    assert!(
        !ws.path().join("runs").exists(),
        "plain validate writes nothing"
    );
    ws.cmd()
        .args([
            "validate",
            "--strict",
            "--runs-dir",
            "out",
            "--config",
            smoke,
        ])
        .assert()
        .success()
        .stdout(contains("[OK] manifest written:"));
    let runs: Vec<_> = std::fs::read_dir(ws.path().join("out")).unwrap().collect();
    assert_eq!(runs.len(), 1);
    let manifest = read_json(&runs[0].as_ref().unwrap().path().join("meta/manifest.json"));
    assert_eq!(manifest["jobs"][0]["job_id"], "806f391306ae");
    assert_eq!(manifest["jobs"][0]["status"], "pending");
}

#[test]
fn reference_validation_config_is_accepted() {
    let ws = Workspace::new();
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/m1_validation.yaml");
    ws.cmd()
        .args(["validate", "--strict", "--config", cfg])
        .assert()
        .success()
        .stdout(contains(
            "[EXPECTED] internal:non_trainable: no_trainable_parameters",
        ))
        .stdout(contains("[SKIP] veribench:smoke_placeholder"))
        // circle_packing is built in; it is skipped only where python3 or numpy is missing.
        .stdout(contains("circle_packing: not available").not())
        .stdout(contains("28 jobs expanded"));
}

#[test]
fn secrets_never_reach_the_run_directory() {
    let ws = Workspace::new();
    let env_secret = "sk-test-ENVSECRET-0123456789abcdef";
    let inline_secret = "sk-inline-SECRET-9876543210fedcba";
    // The reference's OpenEvolveTrainer takes an `api_key` knob: a variant may hold one.
    let variant_secret = "sk-variant-SECRET-5555555555aaaaaa";
    let cfg = ws.config(
        "s.yaml",
        &format!("tasks: [internal:numeric_param]\ntags: [x]\nllm:\n  provider: openai\n  api_key_env: OPENAI_API_KEY\n  api_key: {inline_secret}\n  model: gpt-4o-mini\ntrainers:\n  - id: NoOp\n    params_variants: [{{api_key: {variant_secret}}}]\n"),
    );
    ws.cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .env("OPENAI_API_KEY", env_secret)
        .env(
            "TRACE_CUSTOMLLM_URL",
            format!("https://proxy.example/v1?key={env_secret}"),
        )
        .assert()
        .success()
        .stderr(contains("an API key is written inline in the config"));
    let run = ws.only_run();
    let mut checked = 0;
    for entry in common::files_under(&run) {
        let bytes = std::fs::read(&entry).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(env_secret),
            "env secret in {}",
            entry.display()
        );
        assert!(
            !text.contains(inline_secret),
            "inline secret in {}",
            entry.display()
        );
        assert!(
            !text.contains(variant_secret),
            "a variant's secret in {}",
            entry.display()
        );
        checked += 1;
    }
    assert!(checked > 10);
    let env = read_json(&run.join("meta/env.json"));
    assert_eq!(env["env"]["OPENAI_API_KEY"], "***REDACTED***");
    assert!(
        env["env"]["TRACE_CUSTOMLLM_URL"]
            .as_str()
            .unwrap()
            .contains("***REDACTED***")
    );
    let snapshot = std::fs::read_to_string(run.join("meta/config.snapshot.yaml")).unwrap();
    assert!(
        snapshot.contains("api_key_env: OPENAI_API_KEY"),
        "the variable name is kept:\n{snapshot}"
    );
}

#[test]
fn list_commands_match_the_reference_format() {
    let ws = Workspace::new();
    let out = ws.stdout_of(&["list-trainers"]);
    assert_eq!(
        out,
        "AggregatedUpdate\tavailable\nBasicSearch\tavailable\nBeamSearch\tavailable\nBeamsearchAlgorithm\tavailable\n\
         BeamsearchHistoryAlgorithm\tavailable\nDSPyTrainer\tavailable\nGEPA\tavailable\n\
         GEPA-Base\tavailable\nGEPA-Beam\tavailable\nGEPA-UCB\tavailable\nMinibatchAlgorithm\tavailable\n\
         NoOp\tavailable\nOpenEvolveTrainer\tavailable\nPOLCA\tavailable\nParetobasedPS\tavailable\nPrioritySearch\tavailable\nPrioritySearch_with_Regressor\tavailable\nRescore\tavailable\n\
         SequentialSearch\tavailable\nSequentialUpdate\tavailable\nStreamingPrioritySearch\tavailable\n\
         TextGradTrainer\tavailable\nUCBSearchAlgorithm\tavailable\nUpstreamGEPA\tavailable\n"
    );
    let out = ws.stdout_of(&["list-tasks", "--bench", "internal"]);
    assert_eq!(
        out,
        "internal:code_param\ninternal:numeric_param\ninternal:multi_param\ninternal:non_trainable\ninternal:multiobjective_convex\n\
         internal:multiobjective_bbeh\ninternal:multiobjective_gsm8k\n"
    );
    let out = ws.stdout_of(&["list-tasks"]);
    let ids: Vec<String> = out.lines().map(str::to_string).collect();
    // Suites in the reference's order, then suites it does not have (`datasets`).
    let suites: Vec<&str> = ids.iter().map(|id| id.split(':').next().unwrap()).collect();
    let mut order = suites.clone();
    order.dedup();
    assert_eq!(
        order,
        [
            "llm4ad",
            "trace_examples",
            "internal",
            "veribench",
            "hf",
            "datasets"
        ],
        "suites in the reference's order"
    );
    assert_eq!(ids[0], "llm4ad:circle_packing");
    assert_eq!(ids[3], "trace_examples:greeting_stub");
    let json: serde_json::Value = serde_json::from_slice(
        &ws.cmd()
            .args(["list-tasks", "--json"])
            .assert()
            .success()
            .get_output()
            .stdout,
    )
    .unwrap();
    assert_eq!(json[0]["evaluator_kind"], "command");
    assert_eq!(json[3]["evaluator_kind"], "builtin");
    let last = &json[ids.len() - 1];
    assert_eq!(last["evaluator_kind"], "dataset");
    assert_eq!(last["splits"]["validation"], 12);
    let json: serde_json::Value = serde_json::from_slice(
        &ws.cmd()
            .args(["list-trainers", "--json"])
            .assert()
            .success()
            .get_output()
            .stdout,
    )
    .unwrap();
    let ps = json
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "PrioritySearch")
        .unwrap();
    assert!(
        ps["knobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == "num_steps" && k["default"] == 1)
    );
    assert_eq!(ps["algorithm"], "priority_search");
    assert_eq!(ps["default_optimizer"], "OptoPrimeV2");
    // The PS variants carry PS's knobs and their own, with defaults.
    let knob = |trainer: &str, name: &str| {
        json.as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == trainer)
            .and_then(|t| {
                t["knobs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|k| k["name"] == name)
                    .map(|k| k["default"].clone())
            })
    };
    assert_eq!(knob("POLCA", "epsilon"), Some(serde_json::json!(0.1)));
    assert_eq!(
        knob("POLCA", "use_summarizer"),
        Some(serde_json::json!(true))
    );
    assert_eq!(knob("POLCA", "num_candidates"), Some(serde_json::json!(2)));
    assert_eq!(
        knob("StreamingPrioritySearch", "exploration_ratio"),
        Some(serde_json::json!(0.5))
    );
    assert_eq!(
        knob("SequentialUpdate", "long_term_memory_size"),
        Some(serde_json::json!(1))
    );
    // Every trainer documents every knob it reads, with a default and a meaning.
    for t in json.as_array().unwrap() {
        for k in t["knobs"].as_array().unwrap() {
            assert!(k["help"].as_str().is_some_and(|h| !h.is_empty()), "{t}");
        }
    }
    ws.cmd()
        .args(["list-tasks", "--bench", "nope"])
        .assert()
        .code(2)
        .stderr(contains("unknown bench selector"));
}

#[test]
fn a_config_given_without_flag_gets_the_hint() {
    let ws = Workspace::new();
    ws.config("my.yaml", "seeds: [1]\n");
    ws.cmd()
        .args(["run", "my.yaml"])
        .assert()
        .code(2)
        .stderr(contains("unexpected argument 'my.yaml'"))
        .stderr(contains("= hint: pass the config with `--config my.yaml`"));
    ws.cmd()
        .args(["run", "--bogus"])
        .assert()
        .code(2)
        .stderr(contains("hint: pass the config").not());
}

#[test]
fn report_on_a_planned_run_says_it_never_ran_and_writes_nothing() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "c.yaml",
        "seeds: [1]\ntasks: [internal:numeric_param]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 1}]\nrun_id: planned\n",
    );
    ws.cmd()
        .args(["validate", "--strict", "--config"])
        .arg(&cfg)
        .assert()
        .success();
    let run = ws.path().join("runs/planned");
    assert!(run.join("meta/manifest.json").is_file());
    ws.cmd()
        .arg("report")
        .arg(&run)
        .assert()
        .code(2)
        .stderr(contains("was planned but never run"))
        .stderr(contains("--run-id"));
    assert!(
        !run.join("results.csv").exists(),
        "no empty results written"
    );
}

#[test]
fn run_logger_is_accepted_recorded_and_changes_job_ids_as_the_reference() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "c.yaml",
        "seeds: [1]\ntasks: [internal:numeric_param]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 1}]\n",
    );
    let ids = |extra: &[&str], run_id: &str| {
        ws.cmd()
            .args(["run", "--config"])
            .arg(&cfg)
            .args(["--run-id", run_id])
            .args(extra)
            .assert()
            .success();
        let m = read_json(&ws.path().join(format!("runs/{run_id}/meta/manifest.json")));
        (
            m["jobs"][0]["job_id"].as_str().unwrap().to_string(),
            m["jobs"][0]["resolved_kwargs"]["logger"].clone(),
        )
    };
    let (plain, logger) = ids(&[], "plain");
    assert_eq!(logger, serde_json::Value::Null);
    let (kept, _) = ids(&["--logger", "default"], "kept");
    assert_eq!(kept, plain, "`default` keeps the config's logger");
    let (none, logger) = ids(&["--logger", "off"], "none");
    assert_eq!(logger, "none", "off/none/null/disabled mean none");
    assert_ne!(none, plain, "the logger is part of the job id");
    ws.cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--run-id", "bogus", "--logger", "Bogus"])
        .assert()
        .success()
        .stderr(contains("unknown logger override `Bogus`"))
        .stderr(contains("the command line (`--logger`)"));
}

#[test]
fn reference_only_trainers_and_harness_suites_run_as_skipped_jobs() {
    let ws = Workspace::new();
    let run = ws.run_ok(
        "seeds: [1]\ntasks: [internal:numeric_param, veribench:all, veribench:some_task, terminal_bench:hello]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 1}]\n  - id: Minibatch\n    params_variants: [{num_epochs: 2}]\n  - id: DSPyTrainer\n",
    );
    let (_, rows) = common::read_csv(&run.join("results.csv"));
    assert_eq!(rows.len(), 12, "veribench:all is the placeholder");
    for r in &rows {
        let runs = r["task_id"] == "internal:numeric_param" && r["trainer_id"] == "PrioritySearch";
        assert_eq!(r["status"], if runs { "ok" } else { "skipped" }, "{r:?}");
    }
    let base = rows
        .iter()
        .find(|r| r["trainer_id"] == "Minibatch")
        .unwrap();
    assert!(
        base["feedback"].contains("exists in the Python reference")
            && base["feedback"].contains("abstract base class"),
        "{base:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r["task_id"] == "veribench:smoke_placeholder")
    );
    // A trainer no tool has stays an error with did-you-mean.
    assert_refused(
        &Workspace::new(),
        "tasks: [internal:numeric_param]\ntrainers: [BeamsearchAlgoritm]\n",
        "unknown trainer `BeamsearchAlgoritm`",
    );
}

#[test]
fn a_scalar_seeds_value_is_one_seed_with_a_warning_and_an_error_under_strict() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "s.yaml",
        "seeds: 3\ntasks: [internal:numeric_param]\ntrainers: [NoOp]\n",
    );
    ws.cmd()
        .args(["validate", "--config"])
        .arg(&cfg)
        .assert()
        .success()
        .stderr(contains("`seeds: 3` means one seed, 3"))
        .stderr(contains("seeds: [1, 2, 3]"))
        .stdout(contains("seed=3"));
    ws.cmd()
        .args(["validate", "--strict", "--config"])
        .arg(&cfg)
        .assert()
        .code(1);
}

#[test]
fn a_trainer_entrys_own_trainer_kwargs_is_its_single_variant_as_in_the_reference() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "tk.yaml",
        "runs_dir: runs\nmode: stub\nseeds: [123]\ntasks:\n  - id: internal:numeric_param\ntrainers:\n  - id: PrioritySearch\n    trainer_kwargs: {ps_steps: 1, ps_batches: 1}\n",
    );
    ws.cmd()
        .args(["validate", "--strict", "--config"])
        .arg(&cfg)
        .assert()
        .success()
        .stdout(contains("job 806f391306ae"))
        .stdout(contains("0 error(s), 0 warning(s)"));
}

#[test]
fn validate_names_each_jobs_variant_and_no_ok_matrix_after_a_fail() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "v.yaml",
        "seeds: [1]\ntasks: [internal:numeric_param]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 1}, {ps_steps: 2}]\n",
    );
    ws.cmd()
        .args(["validate", "--config"])
        .arg(&cfg)
        .assert()
        .success()
        .stdout(contains(
            "x PrioritySearch variant 0 {\"ps_steps\":1} (seed=1)",
        ))
        .stdout(contains(
            "x PrioritySearch variant 1 {\"ps_steps\":2} (seed=1)",
        ));
    let bad = ws.config(
        "b.yaml",
        "seeds: [1]\ntasks: [internal:numeric_param]\ntrainers: [PrioritySerch, PrioritySearch]\n",
    );
    ws.cmd()
        .args(["validate", "--config"])
        .arg(&bad)
        .assert()
        .code(1)
        .stdout(contains("[FAIL] trainer PrioritySerch"))
        .stdout(contains("[OK] matrix").not());
}

/// One word for one state: a trainer of the reference this build lacks is only a warning
/// (its jobs are skipped), so validate says `[SKIP]`, as for such a task, and exits 0;
/// `[FAIL]` is for errors only.
#[test]
fn validate_prints_skip_for_a_trainer_the_check_only_warns_about() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "r.yaml",
        "seeds: [1]
tasks: [internal:numeric_param]
trainers: [Minibatch, NoOp]
",
    );
    ws.cmd()
        .args(["validate", "--config"])
        .arg(&cfg)
        .assert()
        .success()
        .stdout(contains(
            "[SKIP] trainer Minibatch: not available in this build\n[OK] trainer NoOp\n",
        ))
        .stdout(contains("[FAIL]").not())
        .stdout(contains("0 error(s), 1 warning(s)"))
        .stderr(contains("warning"))
        .stderr(contains("its jobs will be skipped"));
}

#[test]
fn typos_in_set_keys_are_command_line_errors_and_alias_typos_get_suggestions() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "c.yaml",
        "seeds: [1]\ntasks: [internal:numeric_param]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_step: 1}]\n",
    );
    ws.cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--set", "max_wrokers=2"])
        .assert()
        .code(2)
        .stderr(contains("unknown run-level key `max_wrokers`"))
        .stderr(contains("the command line (`--set max_wrokers`)"))
        .stderr(contains("did you mean `max_workers`?"));
    ws.cmd()
        .args(["validate", "--config"])
        .arg(&cfg)
        .assert()
        .stderr(contains("did you mean `ps_steps`?"));
}
