//! `trace-bench ui`: the API answers with a stub run's counts, a job's transcript, and
//! refuses path traversal and tokenless requests on a non-loopback bind.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value as Json;

const BIN: &str = env!("CARGO_BIN_EXE_trace-bench");

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `trace-bench ui --port 0 ...` and read the URL it prints.
fn serve(runs: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .args(["ui", "--port", "0", "--runs-dir"])
        .arg(runs)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut url = String::new();
    for line in BufReader::new(out).lines() {
        let line = line.unwrap();
        if let Some(u) = line.strip_prefix("open ") {
            url = u.trim().to_string();
            break;
        }
    }
    assert!(!url.is_empty(), "the URL was printed");
    Server { child, url }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn get(url: &str) -> (u16, String) {
    let mut r = agent().get(url).call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

fn get_json(url: &str) -> Json {
    let (status, body) = get(url);
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The embedded smoke matrix (stub mode) into `<dir>/runs/r1`.
fn stub_run(dir: &Path) -> std::path::PathBuf {
    let runs = dir.join("runs");
    let status = Command::new(BIN)
        .args(["run", "--run-id", "r1", "--runs-dir"])
        .arg(&runs)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    runs
}

#[test]
fn runs_list_run_page_and_a_jobs_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let runs = stub_run(dir.path());
    // A second run still going: one job finished, one running, the rest not started.
    let r2 = runs.join("r2");
    std::fs::create_dir_all(r2.join("meta")).unwrap();
    let manifest = std::fs::read_to_string(runs.join("r1/meta/manifest.json")).unwrap();
    let mut m: Json = serde_json::from_str(&manifest).unwrap();
    m["run_id"] = "r2".into();
    m["finished_at"] = Json::Null;
    m["created_at"] = "2099-01-01T00:00:00Z".into();
    std::fs::write(r2.join("meta/manifest.json"), m.to_string()).unwrap();
    let jobs: Vec<String> = m["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap().to_string())
        .collect();
    std::fs::create_dir_all(r2.join("jobs").join(&jobs[0])).unwrap();
    std::fs::copy(
        runs.join("r1/jobs").join(&jobs[0]).join("job_meta.json"),
        r2.join("jobs").join(&jobs[0]).join("job_meta.json"),
    )
    .unwrap();
    std::fs::create_dir_all(r2.join("jobs").join(&jobs[1])).unwrap();

    let s = serve(&runs, &[]);
    let list = get_json(&format!("{}api/runs", s.url));
    assert_eq!(list["total"], 2);
    assert_eq!(list["runs"][0]["run_id"], "r2", "newest first");
    let r2c = &list["runs"][0]["counts"];
    assert_eq!(
        (&r2c["ok"], &r2c["running"], &r2c["not started"]),
        (&1.into(), &1.into(), &(jobs.len() - 2).into())
    );
    assert_eq!(list["runs"][1]["counts"]["ok"], jobs.len());
    let search = get_json(&format!("{}api/runs?q=r2", s.url));
    assert_eq!(search["total"], 1);

    let run = get_json(&format!("{}api/runs/r1", s.url));
    assert_eq!(run["summary"]["planned"], jobs.len());
    assert!(run["leaderboard"].as_array().is_some_and(|l| !l.is_empty()));
    let page = get_json(&format!("{}api/runs/r2/jobs?status=running", s.url));
    assert_eq!(page["total"], 1);
    assert_eq!(page["jobs"][0]["job_id"], jobs[1].as_str());
    let paged = get_json(&format!("{}api/runs/r1/jobs?per_page=5&page=1", s.url));
    assert_eq!(paged["jobs"].as_array().unwrap().len(), 5);
    assert_eq!(paged["jobs"][0]["index"], 5);

    // A job page and its transcripts (searchable).
    let job = &jobs[0];
    let page = get_json(&format!("{}api/runs/r1/jobs/{job}", s.url));
    assert_eq!(page["meta"]["status"], "ok");
    assert!(page["history"].as_array().is_some_and(|h| !h.is_empty()));
    let t = get_json(&format!("{}api/runs/r1/jobs/{job}/transcripts", s.url));
    assert!(t["total"].as_u64().unwrap() > 0);
    assert_eq!(t["items"][0]["type"], "llm_transcript");
    let none = get_json(&format!(
        "{}api/runs/r1/jobs/{job}/transcripts?q=zzzz-never-said",
        s.url
    ));
    assert_eq!(none["total"], 0);

    // Live counts.
    let mut r = agent()
        .get(&format!("{}api/runs/r2/events", s.url))
        .call()
        .unwrap();
    let mut reader = BufReader::new(r.body_mut().as_reader());
    let mut first = String::new();
    while !first.starts_with("data:") {
        first.clear();
        reader.read_line(&mut first).unwrap();
    }
    let counts: Json = serde_json::from_str(first.trim_start_matches("data:").trim()).unwrap();
    assert_eq!(counts["counts"]["running"], 1);
}

#[test]
fn path_traversal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir_all(runs.join("r/meta")).unwrap();
    std::fs::write(
        runs.join("r/meta/manifest.json"),
        r#"{"mode":"stub","jobs":[]}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), runs.join("r/link")).unwrap();
    std::os::unix::fs::symlink(dir.path(), runs.join("out")).unwrap();
    let s = serve(&runs, &[]);
    let ok = get(&format!("{}files/r/meta/manifest.json", s.url));
    assert_eq!(ok.0, 200);
    for bad in [
        "files/r/../../secret.txt",
        "files/r/%2e%2e/%2e%2e/secret.txt",
        "files/r/%2E%2E/%2E%2E/secret.txt",
        "files/%2fetc%2fpasswd",
        "files//etc/passwd",
        "files/r/link",
        "files/out/secret.txt",
        "api/runs/%2e%2e",
        "api/runs/out",
    ] {
        // Sent as written: the client must not normalize the path.
        let url = format!("{}{bad}", s.url);
        let (status, body) = get(&url);
        assert!(status == 403 || status == 404, "{bad}: {status} {body}");
        assert!(
            !body.contains("secret\n") && body != "secret",
            "{bad} leaked"
        );
    }
    let list = get_json(&format!("{}api/runs", s.url));
    assert_eq!(list["total"], 1, "the symlink out is not listed");
}

#[test]
fn a_non_loopback_bind_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let s = serve(&runs, &["--host", "0.0.0.0"]);
    let token = s
        .url
        .split("token=")
        .nth(1)
        .expect("a token in the URL")
        .to_string();
    assert!(token.len() >= 32);
    let port = s.url.rsplit(':').next().unwrap().split('/').next().unwrap();
    let base = format!("http://127.0.0.1:{port}/");
    assert_eq!(get(&format!("{base}api/runs")).0, 401);
    assert_eq!(get(&base).0, 401);
    assert_eq!(get(&format!("{base}api/runs?token=wrong")).0, 401);
    assert_eq!(get(&format!("{base}api/runs?token={token}")).0, 200);
    let r = agent()
        .get(&format!("{base}api/runs"))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[test]
fn requests_for_another_host_name_are_refused_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let s = serve(&runs, &[]);
    let r = agent()
        .get(&format!("{}api/runs", s.url))
        .header("Host", "evil.example")
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let (status, body) = get(&s.url);
    assert_eq!(status, 200);
    assert!(body.contains("/assets/app.js"));
}
