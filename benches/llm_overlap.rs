//! Benchmark (not a test): do jobs waiting on the network overlap?
//!
//! Starts the loopback OpenAI-compatible mock and runs a real-mode matrix (64 jobs of
//! PrioritySearch, 19 calls each, cache off) with the release binary: once with the mock
//! answering at once (the stack's own cost: process start, files, HTTP), once with a fixed
//! 50 ms per call at 8 workers; and, as the baseline, its first 8 jobs at 1 worker. Each
//! wall time is reported against its ideal — calls × 50 ms / workers — and the throughput
//! (calls per second) of 8 workers against 1.
//! The target: at 8 workers, within 10% of the ideal. Exits 1 when it is missed.
//!
//! Run: `cargo bench --bench llm_overlap`

#[path = "../src/llm/mock_server.rs"]
#[allow(dead_code)]
mod mock_server;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mock_server::{MockServer, ScriptedResponse};

const DELAY: Duration = Duration::from_millis(50);
/// Jobs of the 8-worker runs; the 1-worker baseline runs the first [`BASELINE_SEEDS`].
const SEEDS: usize = 64;
const BASELINE_SEEDS: usize = 8;
const STEPS: usize = 20;

fn config(dir: &Path, base_url: &str, jobs: usize) -> std::path::PathBuf {
    let seeds: Vec<String> = (1..=jobs).map(|s| s.to_string()).collect();
    let text = format!(
        "mode: real\nseeds: [{}]\nllm:\n  provider: mock\n  base_url: {base_url}\n  model: mock-model\n  api_key_env: TB_BENCH_KEY\n  cache: off\n  max_retries: 0\ntasks: [internal:numeric_param]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{{ps_steps: {STEPS}, ps_candidates: 1, ps_proposals: 1}}]\n",
        seeds.join(", ")
    );
    let path = dir.join(format!("bench-{jobs}.yaml"));
    std::fs::write(&path, text).expect("write the bench config");
    path
}

/// One run of the matrix; returns (wall seconds, LLM calls served).
fn run(
    server: &MockServer,
    dir: &Path,
    cfg: &Path,
    delay: Duration,
    workers: usize,
) -> (f64, usize) {
    let before = server.requests().len();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_trace-bench"))
        .current_dir(dir)
        .env("TB_BENCH_KEY", "sk-bench")
        .args(["run", "--config"])
        .arg(cfg)
        .args(["--run-id", &format!("d{}-w{workers}", delay.as_millis())])
        .args(["--max-workers", &workers.to_string()])
        .output()
        .expect("start trace-bench");
    let wall = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "trace-bench failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (wall, server.requests().len() - before)
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = MockServer::start(vec![]).expect("start the mock server");
    let reply = "<reasoning>Move toward the target.</reasoning>\n<variable><name>value</name><value>2.5</value></variable>";
    let answer = |delay| ScriptedResponse::chat(reply, Some((100, 20))).with_delay(delay);
    let full = config(dir.path(), &server.base_url(), SEEDS);
    let baseline = config(dir.path(), &server.base_url(), BASELINE_SEEDS);

    println!(
        "llm_overlap: {SEEDS} jobs, mock delay {} ms per call",
        DELAY.as_millis()
    );
    println!(
        "{:>12}  {:>8}  {:>6}  {:>9}  {:>9}  {:>10}",
        "mock delay", "workers", "calls", "wall (s)", "ideal (s)", "wall/ideal"
    );
    let mut walls = Vec::new();
    let runs = [
        (&full, Duration::ZERO, 8),
        (&baseline, DELAY, 1),
        (&full, DELAY, 8),
    ];
    for (cfg, delay, workers) in runs {
        server.set_default(answer(delay));
        let (wall, calls) = run(&server, dir.path(), cfg, delay, workers);
        let ideal = calls as f64 * delay.as_secs_f64() / workers as f64;
        let ratio = if ideal > 0.0 {
            format!("{:.3}", wall / ideal)
        } else {
            "-".into()
        };
        println!(
            "{:>10}ms  {workers:>8}  {calls:>6}  {wall:>9.3}  {ideal:>9.3}  {ratio:>10}",
            delay.as_millis()
        );
        walls.push((wall, ideal, calls as f64 / wall));
    }
    let (overhead, _, _) = walls[0];
    let (_, _, rate1) = walls[1];
    let (wall8, ideal8, rate8) = walls[2];
    println!("stack overhead at 8 workers (no delay): {overhead:.3} s");
    println!(
        "throughput: {rate1:.1} calls/s at 1 worker, {rate8:.1} at 8 workers: {:.2}x (ideal 8x)",
        rate8 / rate1
    );
    let ratio = wall8 / ideal8;
    if ratio <= 1.10 {
        println!("target met: 8 workers at {ratio:.3} of the ideal (target <= 1.10)");
    } else {
        println!("target MISSED: 8 workers at {ratio:.3} of the ideal (target <= 1.10)");
        std::process::exit(1);
    }
}
