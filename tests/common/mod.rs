//! Helpers shared by the CLI integration tests: a temp workspace with configs, the binary,
//! and readers for the run directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// A temporary working directory for one test.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write a config file and return its path.
    pub fn config(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, text).expect("write config");
        p
    }

    /// The binary, run in this workspace with a clean environment for secrets.
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("trace-bench").expect("binary");
        c.current_dir(self.path());
        c.env_remove("OPENAI_API_KEY");
        // Real-mode tests must never read or fill the user's own LLM response cache.
        c.env("TRACE_BENCH_CACHE_DIR", self.path().join("llm-cache"));
        c
    }

    /// Run a config that must succeed and return its (only) run directory.
    pub fn run_ok(&self, text: &str) -> PathBuf {
        let cfg = self.config("run.yaml", text);
        self.cmd()
            .args(["run", "--config"])
            .arg(&cfg)
            .assert()
            .success();
        self.only_run()
    }

    /// Run a config file under a fixed run id (must succeed) and return the run directory.
    pub fn run_named(&self, cfg: &Path, run_id: &str) -> PathBuf {
        self.cmd()
            .args(["run", "--config"])
            .arg(cfg)
            .args(["--run-id", run_id])
            .assert()
            .success();
        self.path().join("runs").join(run_id)
    }

    /// Run the binary with `args`; it must succeed; return its stdout.
    pub fn stdout_of(&self, args: &[&str]) -> String {
        let out = self
            .cmd()
            .args(args)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        String::from_utf8(out).expect("utf-8 stdout")
    }

    /// The only run directory under `runs/`.
    pub fn only_run(&self) -> PathBuf {
        let runs: Vec<PathBuf> = std::fs::read_dir(self.path().join("runs"))
            .expect("runs dir")
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(
            runs.len(),
            1,
            "expected exactly one run dir, found {runs:?}"
        );
        runs.into_iter().next().expect("one")
    }
}

/// Rows of a CSV file as maps column → cell, with the header.
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<std::collections::BTreeMap<String, String>>) {
    let mut r = csv::Reader::from_path(path).expect("csv");
    let header: Vec<String> = r
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.expect("record");
            header
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_string))
                .collect()
        })
        .collect();
    (header, rows)
}

/// Parse a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Every line of a JSONL file, parsed.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl line"))
        .collect()
}

/// The 2 tasks x 2 trainers matrix used by several tests.
pub const MATRIX_2X2: &str = "runs_dir: runs
mode: stub
seeds: [7]
max_workers: 2
tasks:
  - internal:numeric_param
  - internal:multi_param
trainers:
  - id: PrioritySearch
    params_variants: [{ps_steps: 3}]
  - id: GEPA-Base
    params_variants: [{gepa_iters: 4}]
";

/// Every file below `dir`, recursively (for tests that search a run directory for a secret).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Columns of `results.csv` that legitimately differ between two runs of one config.
pub const VOLATILE_COLUMNS: &[&str] = &["run_id", "time_seconds", "spent_seconds"];

/// The rows of a run's `results.csv` without [`VOLATILE_COLUMNS`], in file order: what
/// two runs of one config must agree on.
pub fn stable_rows(run: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let (_, rows) = read_csv(&run.join("results.csv"));
    rows.into_iter()
        .map(|mut r| {
            for c in VOLATILE_COLUMNS {
                r.remove(*c);
            }
            r
        })
        .collect()
}

/// The files below `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            std::fs::read(p)
                .map(|b| String::from_utf8_lossy(&b).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// A `mode: real` config against the loopback mock at `base_url`: an `llm` block of
/// provider `mock`, model `mock-model`, no API key, no retries and no response cache — each
/// `(key, value)` of `llm` replaces a key's value, or adds the key (an empty value removes
/// it) — then `body` (seeds, tasks, trainers, …).
pub fn real_config(base_url: &str, llm: &[(&str, &str)], body: &str) -> String {
    let mut keys: Vec<(String, String)> = [
        ("provider", "mock"),
        ("base_url", base_url),
        ("model", "mock-model"),
        ("api_key_env", "null"),
        ("max_retries", "0"),
        ("cache", "off"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (key, value) in llm {
        match keys.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_string(),
            None => keys.push((key.to_string(), value.to_string())),
        }
    }
    let block: String = keys
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("  {k}: {v}\n"))
        .collect();
    format!("mode: real\nllm:\n{block}{body}")
}
