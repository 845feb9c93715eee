//! The ten most common config mistakes, each run on the binary with the WHOLE rendered
//! stderr pinned (just's `tests/error_messages.rs` is the model): what the user reads —
//! file, line, key, caret, hint — is part of the interface, and a change to it shows here.
//! Every case exits 2 and leaves no run directory.

mod common;

use common::Workspace;

/// Write `config` as `c.yaml`, run `run --config c.yaml <args>` in a fresh workspace, and
/// check the exit code 2, the whole stderr, and that nothing was written.
fn case(config: &str, args: &[&str], stderr: &str) {
    let ws = Workspace::new();
    ws.config("c.yaml", config);
    let out = ws
        .cmd()
        .env_remove("OPENAI_API_KEY")
        .env_remove("MLFLOW_TRACKING_URI")
        .args(["run", "--config", "c.yaml"])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        stderr,
        "stderr of `run --config c.yaml {}`",
        args.join(" ")
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!ws.path().join("runs").exists());
}

const NOTHING_RUN: &str = "error: the config has 1 error(s); nothing was run\n";

#[test]
fn unknown_task_id_with_did_you_mean() {
    case(
        "seeds: [1]\ntasks: [internal:numeric_parm]\ntrainers: [NoOp]\n",
        &[],
        &format!(
            "error: unknown task `internal:numeric_parm`
  --> c.yaml:2:9 (key `tasks[0]`)
  |
2 | tasks: [internal:numeric_parm]
  |         ^
  = hint: did you mean `internal:numeric_param`?
{NOTHING_RUN}"
        ),
    );
}

#[test]
fn unknown_trainer() {
    case(
        "seeds: [1]\ntasks: [internal:numeric_param]\ntrainers: [PrioritySerch]\n",
        &[],
        &format!(
            "error: unknown trainer `PrioritySerch`
  --> c.yaml:3:12 (key `trainers[0]`)
  |
3 | trainers: [PrioritySerch]
  |            ^
  = hint: did you mean `PrioritySearch`?
{NOTHING_RUN}"
        ),
    );
}

#[test]
fn bad_knob_type() {
    case(
        "seeds: [1]\ntasks: [internal:numeric_param]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: many}]\n",
        &[],
        &format!(
            "error: trainer `PrioritySearch`: knob `num_steps` must be a non-negative integer, found \"many\"
  --> c.yaml:4:5 (key `trainers[0].params_variants[0]`)
  |
4 |   - id: PrioritySearch
  |     ^
{NOTHING_RUN}"
        ),
    );
}

#[test]
fn yaml_syntax_error() {
    case(
        "seeds: [1\ntasks: [internal:numeric_param]\n",
        &[],
        &format!(
            "error: invalid YAML: illegal placement of ':' indicator
  --> c.yaml:2:6
  |
2 | tasks: [internal:numeric_param]
  |      ^
  = hint: check the indentation and quoting around this line
{NOTHING_RUN}"
        ),
    );
}

#[test]
fn missing_config_file() {
    let ws = Workspace::new();
    let out = ws
        .cmd()
        .args(["run", "--config", "missing.yaml"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: cannot read config `missing.yaml`: No such file or directory (os error 2)\n"
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(!ws.path().join("runs").exists());
}

#[test]
fn bad_set_override() {
    let config = "seeds: [1]\ntasks: [internal:numeric_param]\ntrainers: [NoOp]\n";
    case(
        config,
        &["--set", "seeds"],
        &format!(
            "error: `--set seeds` has no `=`
  --> the command line (`--set seeds`)
  = hint: write `--set key.path=value`, e.g. `--set max_workers=4`
{NOTHING_RUN}"
        ),
    );
    case(
        config,
        &["--set", "max_wrokers=4"],
        &format!(
            "error: unknown run-level key `max_wrokers`
  --> the command line (`--set max_wrokers`)
  = hint: did you mean `max_workers`?
{NOTHING_RUN}"
        ),
    );
}

#[test]
fn bad_seeds() {
    case(
        "seeds: [one, 2]\ntasks: [internal:numeric_param]\ntrainers: [NoOp]\n",
        &[],
        &format!(
            "error: `seeds[0]` must be an integer, found a string `one`
  --> c.yaml:1:9 (key `seeds[0]`)
  |
1 | seeds: [one, 2]
  |         ^
{NOTHING_RUN}"
        ),
    );
}

#[test]
fn bad_mode() {
    case(
        "mode: fast\nseeds: [1]\ntasks: [internal:numeric_param]\ntrainers: [NoOp]\n",
        &[],
        &format!(
            "error: unknown mode `fast`
  --> c.yaml:1:7 (key `mode`)
  |
1 | mode: fast
  |       ^
  = hint: use `stub` (offline, seeded) or `real` (an OpenAI-compatible endpoint)
{NOTHING_RUN}"
        ),
    );
}

#[test]
fn unknown_top_level_key_under_strict() {
    case(
        "sedes: [1]\ntasks: [internal:numeric_param]\ntrainers: [NoOp]\n",
        &["--strict"],
        &format!(
            "error: unknown run-level key `sedes`
  --> c.yaml:1:1 (key `sedes`)
  |
1 | sedes: [1]
  | ^
  = hint: did you mean `seeds`?
{NOTHING_RUN}"
        ),
    );
}

#[test]
fn real_mode_without_the_api_key_variable() {
    case(
        "mode: real\nseeds: [1]\ntasks: [internal:numeric_param]\ntrainers: [NoOp]\n",
        &[],
        &format!(
            "error: mode `real` needs an API key: set the environment variable `OPENAI_API_KEY` (named by llm.api_key_env)
  --> c.yaml (key `llm.api_key_env`)
  = hint: export OPENAI_API_KEY=... before running, or use `mode: stub` (offline, seeded)
{NOTHING_RUN}"
        ),
    );
}
