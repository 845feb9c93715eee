//! Benchmark (not a test): does `num_threads` overlap the LLM calls inside one job?
//!
//! One real-mode PrioritySearch job asking 4 proposals per step (5 steps) of the loopback
//! OpenAI-compatible mock, which answers every call after 100 ms; cache off. Run with
//! `num_threads: 1` (the baseline, measured in the same run) and `num_threads: 4`. The
//! issue's target: the 4-thread wall time at most 0.35× the 1-thread one, and identical
//! results (scores, calls, tokens). Exits 1 when either is missed.
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

fn config(dir: &Path, base_url: &str, threads: usize) -> std::path::PathBuf {
    let text = format!(
        "mode: real\nseeds: [7]\nllm:\n  provider: mock\n  base_url: {base_url}\n  model: mock-model\n  api_key_env: TB_BENCH_KEY\n  cache: off\n  max_retries: 0\ntasks: [internal:numeric_param]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{{ps_steps: 5, ps_candidates: 1, ps_proposals: 4, num_threads: {threads}}}]\n"
    );
    let path = dir.join(format!("threads-{threads}.yaml"));
    std::fs::write(&path, text).expect("write the bench config");
    path
}

/// One run; returns (wall seconds, the results row without run id and times).
fn run(dir: &Path, cfg: &Path, threads: usize) -> (f64, Vec<String>) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_trace-bench"))
        .current_dir(dir)
        .env("TB_BENCH_KEY", "sk-bench")
        .args(["run", "--config"])
        .arg(cfg)
        .args(["--run-id", &format!("t{threads}")])
        .output()
        .expect("start trace-bench");
    let wall = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "the run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join(format!("runs/t{threads}/results.csv"));
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
    server.set_default(
        ScriptedResponse::chat(
            "<variable>\n<name>x</name>\n<value>\n1.5\n</value>\n</variable>",
            Some((50, 10)),
        )
        .with_delay(DELAY),
    );
    let (one, r1) = run(dir.path(), &config(dir.path(), &server.base_url(), 1), 1);
    let (four, r4) = run(dir.path(), &config(dir.path(), &server.base_url(), 4), 4);
    let ratio = four / one;
    println!(
        "one job, 4 proposals per step, 100 ms per call: num_threads 1 {one:.2} s, num_threads 4 {four:.2} s, ratio {ratio:.3} (target <= {TARGET})"
    );
    let same = r1 == r4;
    println!("results identical: {same}");
    if !same {
        for (a, b) in r1.iter().zip(&r4) {
            if a != b {
                println!("  {a}  vs  {b}");
            }
        }
    }
    if ratio > TARGET || !same {
        std::process::exit(1);
    }
}
