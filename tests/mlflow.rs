//! MLflow export and live mirror. The real server is `scripts/check_mlflow.sh`; here an
//! in-process fake of the REST endpoints checks the logic fast: the token goes in the
//! header and nowhere in the run directory, a second export sends nothing, an interrupted
//! export is completed without sending a metric point twice, and the live mirror against a
//! dead server ends quickly with every job pending.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Workspace, read_json};
use serde_json::{Value as Json, json};
use trace_bench::artifacts::layout::RunDir;
use trace_bench::events::Event;
use trace_bench::events::EventSink;
use trace_bench::llm::openai::Secret;
use trace_bench::matrix::Job;
use trace_bench::mlflow::record::Destination;
use trace_bench::mlflow::{Client, Exporter, MlflowSink};

const MATRIX: &str = "runs_dir: runs
mode: stub
seeds: [1, 2]
tasks:
  - internal:numeric_param
  - internal:multi_param
trainers:
  - id: PrioritySearch
";
const SECRET: &str = "tb-test-secret-4711";

/// What the fake server holds.
#[derive(Default)]
struct Store {
    runs: Vec<Json>,
    /// (run, key) → points (step, value).
    metrics: BTreeMap<(String, String), Vec<(i64, f64)>>,
    artifacts: Vec<String>,
    requests: usize,
    unauthorized: usize,
}

/// A fake MLflow tracking server answering the endpoints the export uses.
fn fake_server() -> (String, Arc<Mutex<Store>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    let store = Arc::new(Mutex::new(Store::default()));
    let s = Arc::clone(&store);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            serve(conn, &s);
        }
    });
    (uri, store)
}

fn serve(mut conn: TcpStream, store: &Mutex<Store>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut len = 0;
        let mut auth = String::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((h, ""));
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap_or(0),
                "authorization" => auth = v.trim().to_string(),
                _ => {}
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        let (status, answer) = handle(store, &method, &target, &body, &auth);
        let text = answer.to_string();
        let _ = write!(
            conn,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
    }
}

fn handle(
    store: &Mutex<Store>,
    method: &str,
    target: &str,
    body: &[u8],
    auth: &str,
) -> (u16, Json) {
    let mut st = store.lock().unwrap();
    st.requests += 1;
    if auth != format!("Bearer {SECRET}") {
        st.unauthorized += 1;
        return (
            401,
            json!({"error_code": "UNAUTHENTICATED", "message": "no"}),
        );
    }
    let b: Json = serde_json::from_slice(body).unwrap_or(Json::Null);
    let path = target.split('?').next().unwrap_or("");
    if method == "PUT" {
        st.artifacts.push(path.to_string());
        return (200, json!({}));
    }
    match path {
        "/api/2.0/mlflow/experiments/get-by-name" => {
            (200, json!({"experiment": {"experiment_id": "7"}}))
        }
        "/api/2.0/mlflow/runs/search" => {
            let filter = b["filter"].as_str().unwrap_or("");
            let want = filter.rsplit('\'').nth(1).unwrap_or("");
            let runs: Vec<Json> = st
                .runs
                .iter()
                .filter(|r| r["deleted"] != true && tags(r).get("trace_bench.run_id").map(String::as_str) == Some(want))
                .map(|r| {
                    let id = r["info"]["run_id"].as_str().unwrap().to_string();
                    let latest: Vec<Json> = st
                        .metrics
                        .iter()
                        .filter(|((run, _), _)| *run == id)
                        .map(|((_, k), pts)| json!({"key": k, "step": pts.iter().map(|p| p.0).max().unwrap(), "value": 0.0}))
                        .collect();
                    let mut r = r.clone();
                    r["data"]["metrics"] = json!(latest);
                    r
                })
                .collect();
            (200, json!({"runs": runs}))
        }
        "/api/2.0/mlflow/runs/create" => {
            let id = format!("run{}", st.runs.len());
            let run = json!({
                "info": {"run_id": id, "artifact_uri": format!("mlflow-artifacts:/7/{id}/artifacts")},
                "data": {"tags": b["tags"].clone()},
            });
            st.runs.push(run.clone());
            (200, json!({"run": run}))
        }
        "/api/2.0/mlflow/runs/log-batch" | "/api/2.0/mlflow/runs/set-tag" => {
            let run_id = b["run_id"].as_str().unwrap().to_string();
            for m in b["metrics"].as_array().into_iter().flatten() {
                let key = m["key"].as_str().unwrap().to_string();
                st.metrics
                    .entry((run_id.clone(), key))
                    .or_default()
                    .push((m["step"].as_i64().unwrap(), m["value"].as_f64().unwrap()));
            }
            let mut new_tags: Vec<Json> = b["tags"].as_array().cloned().unwrap_or_default();
            if path.ends_with("set-tag") {
                new_tags.push(json!({"key": b["key"], "value": b["value"]}));
            }
            let run = st
                .runs
                .iter_mut()
                .find(|r| r["info"]["run_id"] == run_id.as_str())
                .unwrap();
            let list = run["data"]["tags"].as_array_mut().unwrap();
            for t in new_tags {
                list.retain(|x| x["key"] != t["key"]);
                list.push(t);
            }
            (200, json!({}))
        }
        "/api/2.0/mlflow/runs/update" | "/api/2.0/mlflow/runs/delete" => {
            let run_id = b["run_id"].as_str().unwrap();
            let run = st
                .runs
                .iter_mut()
                .find(|r| r["info"]["run_id"] == run_id)
                .unwrap();
            if path.ends_with("delete") {
                run["deleted"] = json!(true);
            } else {
                run["info"]["status"] = b["status"].clone();
            }
            (200, json!({}))
        }
        other => (
            404,
            json!({"error_code": "ENDPOINT_NOT_FOUND", "message": other}),
        ),
    }
}

fn tags(run: &Json) -> BTreeMap<String, String> {
    run["data"]["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["key"].as_str().unwrap().to_string(),
                t["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn client(uri: &str) -> Client {
    Client::new(uri, Some(Secret::new(SECRET)), Duration::from_secs(5)).unwrap()
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in common::files_under(dir) {
        if std::fs::read(&entry)
            .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        {
            out.push(entry.display().to_string());
        }
    }
    out
}

#[test]
fn export_sends_each_job_once_and_completes_an_interrupted_export() {
    let ws = Workspace::new();
    let run = ws.run_ok(MATRIX);
    let (uri, store) = fake_server();
    let c = client(&uri);
    let report = Exporter::connect(&c, "exp", &RunDir::at(&run))
        .unwrap()
        .export_all()
        .unwrap();
    assert_eq!((report.sent, report.unchanged), (4, 0));
    let (runs, points) = {
        let st = store.lock().unwrap();
        assert_eq!(st.unauthorized, 0, "every request carries the bearer token");
        let points: usize = st.metrics.values().map(Vec::len).sum();
        assert_eq!(points, report.metrics);
        assert!(
            st.artifacts
                .iter()
                .any(|a| a.ends_with("/artifacts/job_meta.json"))
        );
        assert!(
            st.artifacts
                .iter()
                .any(|a| a.ends_with("/artifacts/artifacts/best_state.json"))
        );
        (st.runs.len(), points)
    };
    assert_eq!(runs, 5, "one parent and one child per job");

    // Nothing changed: the second export sends nothing.
    let again = Exporter::connect(&c, "exp", &RunDir::at(&run))
        .unwrap()
        .export_all()
        .unwrap();
    assert_eq!((again.sent, again.unchanged, again.metrics), (0, 4, 0));

    // An export interrupted before its last request (the digest tag): run again, it
    // completes the jobs without a second copy of any metric point.
    for r in &mut store.lock().unwrap().runs {
        if let Some(list) = r["data"]["tags"].as_array_mut() {
            list.retain(|t| t["key"] != "trace_bench.export_digest");
        }
    }
    let resumed = Exporter::connect(&c, "exp", &RunDir::at(&run))
        .unwrap()
        .export_all()
        .unwrap();
    assert_eq!((resumed.sent, resumed.metrics), (4, 0));
    let st = store.lock().unwrap();
    assert_eq!(st.runs.len(), runs);
    assert_eq!(st.metrics.values().map(Vec::len).sum::<usize>(), points);
    for pts in st.metrics.values() {
        let mut steps: Vec<i64> = pts.iter().map(|p| p.0).collect();
        steps.dedup();
        assert_eq!(steps.len(), pts.len(), "a step logged twice: {pts:?}");
    }
    assert!(files_containing(&run, SECRET).is_empty());
}

#[test]
fn export_command_names_a_bad_run_dir_and_an_unreachable_server() {
    let ws = Workspace::new();
    let out = ws
        .cmd()
        .args(["export", "nope", "--mlflow", "http://127.0.0.1:9"])
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("`nope` is not a run directory"), "{err}");
    let run = ws.run_ok(MATRIX);
    let port = dead_port();
    let out = ws
        .cmd()
        .arg("export")
        .arg(&run)
        .args(["--mlflow", &format!("http://127.0.0.1:{port}")])
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains(&format!("at http://127.0.0.1:{port} is unreachable")),
        "{err}"
    );
    assert!(err.contains("hint: is the server running?"), "{err}");
    let out = ws
        .cmd()
        .arg("export")
        .arg(&run)
        .args(["--mlflow", "file:///tmp/mlruns"])
        .assert()
        .code(2);
    assert!(
        String::from_utf8_lossy(&out.get_output().stderr).contains("only http(s) tracking servers")
    );
}

#[test]
fn config_mlflow_block_errors_are_located() {
    let ws = Workspace::new();
    let cfg = ws.config(
        "bad.yaml",
        &format!("{MATRIX}mlflow:\n  tracking_uri: http://u:p@host:5000\n  experimnt: x\n"),
    );
    let out = ws
        .cmd()
        .args(["validate", "--config"])
        .arg(&cfg)
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("mlflow.tracking_uri"), "{err}");
    assert!(err.contains("MLFLOW_TRACKING_TOKEN"), "{err}");
    assert!(
        err.contains("bad.yaml:10"),
        "the error names the line: {err}"
    );
    assert!(err.contains("unknown `mlflow` key `experimnt`"), "{err}");
}

fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The live mirror against a server that is not there: every `job_finished` of a run is
/// replayed into the sink as the runner emits it; the sink never fails the event, finishes
/// quickly and lists every job as pending. `scripts/check_mlflow.sh` runs this against the
/// run it made and its stopped real server (`TB_MLFLOW_REPLAY_DIR`, `TB_MLFLOW_REPLAY_URI`).
#[test]
fn live_mirror_with_the_server_down_ends_quickly_and_records_what_is_pending() {
    let ws = Workspace::new();
    let (run, uri) = match (
        std::env::var("TB_MLFLOW_REPLAY_DIR"),
        std::env::var("TB_MLFLOW_REPLAY_URI"),
    ) {
        (Ok(dir), Ok(uri)) => (std::path::PathBuf::from(dir), uri),
        _ => (
            ws.run_ok(MATRIX),
            format!("http://127.0.0.1:{}", dead_port()),
        ),
    };
    let experiment = std::env::var("TB_MLFLOW_REPLAY_EXPERIMENT").unwrap_or_else(|_| "live".into());
    let run_dir = RunDir::at(&run);
    let destination = Destination {
        tracking_uri: uri.clone(),
        experiment: experiment.clone(),
    };
    let sink = MlflowSink::start(
        destination,
        Some(Secret::new(SECRET)),
        &run_dir,
        Duration::from_secs(2),
    )
    .unwrap();
    let manifest = read_json(&run_dir.manifest());
    let mut ids = Vec::new();
    for entry in manifest["jobs"].as_array().unwrap() {
        let job: Job = serde_json::from_value(entry.clone()).unwrap();
        let events = std::fs::read_to_string(run_dir.job(&job.job_id).events_jsonl()).unwrap();
        let last: Event = serde_json::from_str(events.lines().last().unwrap()).unwrap();
        sink.on_event(&job, &last)
            .expect("the mirror never fails an event");
        ids.push(job.job_id.to_string());
    }
    // `finish` returns (its wait is bounded by FINISH_WAIT); what was not sent is listed.
    let summary = sink.finish();
    assert_eq!((summary.sent, summary.pending), (0, ids.len()), "{summary}");
    assert!(
        summary.to_string().contains("trace-bench export"),
        "{summary}"
    );
    let pending = read_json(&run_dir.mlflow_pending());
    let listed: Vec<String> = pending["jobs"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    ids.sort();
    assert_eq!(listed, ids);
    assert!(
        pending["jobs"][&ids[0]]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{pending}"
    );
    assert!(pending["parent"].is_string(), "{pending}");
    let recorded = read_json(&run_dir.mlflow_json());
    assert_eq!(
        recorded,
        json!({"tracking_uri": uri, "experiment": experiment})
    );
    assert!(
        files_containing(&run, SECRET).is_empty(),
        "the token reached the run directory"
    );
}
