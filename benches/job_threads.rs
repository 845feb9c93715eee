//! Benchmark (not a test): does `num_threads` overlap the LLM calls inside one job?
//!
//! Two real-mode jobs against the loopback OpenAI-compatible mock, which answers every
//! call after 100 ms with a reply computed from the request; cache off:
//! - `proposals`: PrioritySearch asking 4 proposals per step (5 steps) on
//!   `internal:numeric_param` — the case;
//! - `beam`: GEPA-Beam (beam 4) on `datasets:arithmetic` — the beam's parents evaluated
//!   together (agent calls), their children asked together and scored together.
//!
//! Each runs with `num_threads: 1` (the baseline, measured in the same run) and
//! `num_threads: 4`. The target: the 4-thread wall time at most 0.35× the 1-thread one,
//! and identical results (scores, calls, tokens). Exits 1 when either is missed.
//!
//! Run: `cargo bench --bench job_threads`

#[path = "../src/llm/mock_server.rs"]
#[allow(dead_code)]
mod mock_server;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mock_server::{MockServer, ScriptedResponse};

const DELAY: Duration = Duration::from_millis(100);
const TARGET: f64 = 0.35;

/// The scenarios: name, task, trainer and its knobs.
const SCENARIOS: &[(&str, &str, &str, &str)] = &[
    (
        "proposals",
        "internal:numeric_param",
        "PrioritySearch",
        "ps_steps: 5, ps_candidates: 1, ps_proposals: 4",
    ),
    (
        "beam",
        "datasets:arithmetic",
        "GEPA-Beam",
        "gepa_iters: 4, beam_width: 4, gepa_train_bs: 4, gepa_merge_every: 0",
    ),
];

fn slow_reply(request: &mock_server::RecordedRequest) -> ScriptedResponse {
    mock_server::varied_reply(request).with_delay(DELAY)
}

fn config(
    dir: &Path,
    base_url: &str,
    (name, task, trainer, knobs): (&str, &str, &str, &str),
    threads: usize,
) -> std::path::PathBuf {
    let text = format!(
        "mode: real\nseeds: [7]\nllm:\n  provider: mock\n  base_url: {base_url}\n  model: mock-model\n  api_key_env: TB_BENCH_KEY\n  cache: off\n  max_retries: 0\ntasks: [{task}]\ntrainers:\n  - id: {trainer}\n    params_variants: [{{{knobs}, num_threads: {threads}}}]\n"
    );
    let path = dir.join(format!("{name}-{threads}.yaml"));
    std::fs::write(&path, text).expect("write the bench config");
    path
}

/// One run; returns (wall seconds, the results row without run id and times).
fn run(dir: &Path, cfg: &Path, run_id: &str) -> (f64, Vec<String>) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_trace-bench"))
        .current_dir(dir)
        .env("TB_BENCH_KEY", "sk-bench")
        .args(["run", "--config"])
        .arg(cfg)
        .args(["--run-id", run_id])
        .output()
        .expect("start trace-bench");
    let wall = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "the run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join(format!("runs/{run_id}/results.csv"));
    let mut reader = csv::Reader::from_path(&path).expect("results.csv");
    let header = reader.headers().expect("a header").clone();
    let row = reader
        .records()
        .next()
        .expect("one row")
        .expect("a readable row");
    // What the job measured (the job id and its variant carry num_threads itself).
    let kept = [
        "status",
        "score_val_initial",
        "score_val_final",
        "score_val",
        "steps",
        "best_step",
        "evaluator_calls",
        "llm_calls",
        "agent_calls",
        "prompt_tokens",
        "completion_tokens",
    ]
    .iter()
    .map(|name| {
        let at = header
            .iter()
            .position(|h| h == *name)
            .expect("a results column");
        format!("{name}={}", &row[at])
    })
    .collect();
    (wall, kept)
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = MockServer::start(vec![]).expect("start the mock");
    server.set_responder(slow_reply);
    let mut missed = false;
    for &scenario in SCENARIOS {
        let name = scenario.0;
        let timed = |threads| {
            let cfg = config(dir.path(), &server.base_url(), scenario, threads);
            run(dir.path(), &cfg, &format!("{name}-{threads}"))
        };
        let (one, r1) = timed(1);
        let (four, r4) = timed(4);
        let ratio = four / one;
        let same = r1 == r4;
        println!(
            "{name}: num_threads 1 {one:.2} s, num_threads 4 {four:.2} s, ratio {ratio:.3} (target <= {TARGET}); results identical: {same}"
        );
        for (a, b) in r1.iter().zip(&r4).filter(|(a, b)| a != b) {
            println!("  {a}  vs  {b}");
        }
        missed |= ratio > TARGET || !same;
    }
    if missed {
        std::process::exit(1);
    }
}
