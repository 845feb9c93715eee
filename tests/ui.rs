//! `trace-bench ui`: the API answers with a stub run's counts, a job's transcript, and
//! refuses path traversal and tokenless requests on a non-loopback bind.

mod common;

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
    // Open to other hosts, pasted YAML cannot point the server's API key anywhere.
    let validate = |yaml: &str| -> Json {
        let mut r = agent()
            .post(&format!("{base}api/validate"))
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(serde_json::json!({ "yaml": yaml }).to_string())
            .unwrap();
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    };
    let v = validate(
        "mode: real\nllm: {provider: openai, model: m, base_url: 'http://attacker.example/v1', api_key_env: OPENAI_API_KEY}\ntasks: [internal:numeric_param]\ntrainers: [NoOp]\n",
    );
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(
        (&v["problems"][0]["key"], &v["problems"][0]["line"]),
        (&"llm.base_url".into(), &2.into()),
        "{v}"
    );
    let v = validate("mode: stub\ntasks: [internal:numeric_param]\ntrainers: [NoOp]\n");
    assert_eq!(v["ok"], true, "{v}");
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

fn post(url: &str, body: &Json) -> (u16, Json) {
    let mut r = agent()
        .post(url)
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Json::String(text)),
    )
}

/// A user task whose evaluator is a shell script that takes 0.15 s a call, so a run of a
/// few seeds lasts long enough to be stopped mid-way.
const SLOW_TASK: &str = "id: demo:slow\ndescription: A number scored by a slow shell script.\nobjective: Make x equal 3.\nparameters:\n  - {name: x, kind: number, initial: 0.0}\nsplits:\n  train: [{input: null, info: 3}]\nevaluator:\n  kind: command\n  command: [sh, '{task_dir}/score.sh']\n  timeout_seconds: 60\n  failure_score: -1000\n";
const SLOW_SCORER: &str = "sleep 0.15\nx=$(sed -n 's/.*\"x\":\\([-0-9.e+]*\\).*/\\1/p' | head -n 1)\nawk -v x=\"$x\" 'BEGIN { d = x - 3; if (d < 0) d = -d; printf \"{\\\"score\\\": %s, \\\"feedback\\\": \\\"x=%s\\\"}\\n\", -d, x }'\n";

/// A configs dir: `quick.yaml` (one stub job), `slow.yaml` (six slow jobs, one at a
/// time), `bad.yaml` (a wrong type on line 5).
fn configs_dir(dir: &Path) -> std::path::PathBuf {
    let cfg = dir.join("configs");
    std::fs::create_dir_all(cfg.join("tasks/slow")).unwrap();
    std::fs::write(cfg.join("tasks/slow/task.yaml"), SLOW_TASK).unwrap();
    std::fs::write(cfg.join("tasks/slow/score.sh"), SLOW_SCORER).unwrap();
    std::fs::write(
        cfg.join("quick.yaml"),
        "mode: stub\nseeds: [1, 2]\ntasks: [internal:numeric_param]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 1, ps_batches: 1}]\n",
    )
    .unwrap();
    std::fs::write(
        cfg.join("slow.yaml"),
        "tasks_dir: tasks\nmode: stub\nseeds: [1, 2, 3, 4, 5, 6]\nmax_workers: 1\ntasks: [demo:slow]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: 2}]\n",
    )
    .unwrap();
    std::fs::write(
        cfg.join("bad.yaml"),
        "mode: stub\nseeds: [1]\ntasks: [internal:numeric_param]\ntrainers: [PrioritySearch]\nmax_workers: two\n",
    )
    .unwrap();
    cfg
}

/// Poll `f` every 100 ms until it answers `Some`, for at most `secs`.
fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The launch `id` of the app, once it is no longer running: its `exit`.
fn wait_exit(s: &Server, id: u64, secs: u64) -> String {
    wait_for("the launched run to end", secs, || {
        let l = get_json(&format!("{}api/launches", s.url));
        let item = l["launches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .cloned()
            .unwrap();
        (item["running"] == false).then(|| item["exit"].as_str().unwrap_or("").to_string())
    })
}

fn manifest_statuses(run: &Path) -> Vec<String> {
    let m: Json =
        serde_json::from_str(&std::fs::read_to_string(run.join("meta/manifest.json")).unwrap())
            .unwrap();
    m["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["status"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn validate_launch_stop_and_resume_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = configs_dir(dir.path());
    let runs = dir.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    std::fs::write(dir.path().join("outside.yaml"), "mode: stub\n").unwrap();
    let s = serve(&runs, &["--configs", cfg.to_str().unwrap()]);
    let api = |p: &str| format!("{}api/{p}", s.url);

    let list = get_json(&api("configs"));
    assert_eq!(
        list["configs"],
        serde_json::json!(["bad.yaml", "quick.yaml", "slow.yaml"])
    );

    // A bad config: the located error, by line and key, as `validate` prints it.
    let (status, v) = post(&api("validate"), &serde_json::json!({"config": "bad.yaml"}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ok"], false);
    let p = &v["problems"][0];
    assert_eq!(
        (&p["line"], &p["key"]),
        (&5.into(), &"max_workers".into()),
        "{v}"
    );
    assert!(
        p["rendered"].as_str().unwrap().contains("bad.yaml:5:14"),
        "{v}"
    );
    // Pasted YAML is checked alike.
    let (_, v) = post(
        &api("validate"),
        &serde_json::json!({"yaml": "mode: stub\nseeds: [x]\ntasks: [internal:numeric_param]\ntrainers: [PrioritySearch]\n"}),
    );
    assert_eq!(v["ok"], false);
    assert_eq!(v["problems"][0]["line"], 2, "{v}");
    // Pasted YAML cannot name programs: two pastes (a trainer preset with a command, then
    // a config whose trainers_dir is where pastes are saved) would run any command line.
    let preset = "id: Evil\nalgorithm: external\nexternal:\n  command: [sh, -c, 'touch pwned']\n";
    let (_, v) = post(&api("validate"), &serde_json::json!({"yaml": preset}));
    assert_eq!(v["ok"], false, "{v}");
    for (key, yaml) in [
        (
            "trainers_dir",
            "mode: stub\ntrainers_dir: .\ntasks: [internal:numeric_param]\ntrainers: [Evil]\n",
        ),
        (
            "tasks_dir",
            "mode: stub\ntasks_dir: [/tmp]\ntasks: [internal:numeric_param]\ntrainers: [PrioritySearch]\n",
        ),
        (
            "external_python",
            "mode: stub\nexternal_python: /bin/sh\ntasks: [internal:numeric_param]\ntrainers: [PrioritySearch]\n",
        ),
        (
            "executor",
            "mode: stub\nexecutor: {kind: slurm, bin: /bin/sh}\ntasks: [internal:numeric_param]\ntrainers: [PrioritySearch]\n",
        ),
        (
            "llm4ad_python",
            "mode: stub\nllm4ad_python: /bin/sh\ntasks: [internal:numeric_param]\ntrainers: [PrioritySearch]\n",
        ),
    ] {
        let (_, v) = post(&api("validate"), &serde_json::json!({"yaml": yaml}));
        assert_eq!(v["ok"], false, "{key}: {v}");
        assert_eq!(
            (&v["problems"][0]["key"], &v["problems"][0]["line"]),
            (&key.into(), &2.into()),
            "{v}"
        );
        let (status, v) = post(
            &api("launch"),
            &serde_json::json!({"yaml": yaml, "run_id": "evil"}),
        );
        assert_eq!(status, 422, "{key}: {v}");
    }
    assert!(!runs.join("evil").exists() && !dir.path().join("pwned").exists());
    // The same keys in a config of the configs dir are the author's: slow.yaml has tasks_dir.
    let (_, v) = post(
        &api("validate"),
        &serde_json::json!({"config": "slow.yaml"}),
    );
    assert_eq!(v["ok"], true, "{v}");
    // A bad config is not launched.
    let (status, v) = post(&api("launch"), &serde_json::json!({"config": "bad.yaml"}));
    assert_eq!(status, 422, "{v}");

    // Never a command line: no path out of the configs dir, no run id that is not a plain
    // name, no field the app does not know, no form post, no other origin.
    for (body, want) in [
        (serde_json::json!({"config": "../outside.yaml"}), 403),
        (serde_json::json!({"config": "/etc/passwd"}), 403),
        (
            serde_json::json!({"config": "quick.yaml", "run_id": "../x"}),
            403,
        ),
        (
            serde_json::json!({"config": "quick.yaml", "run_id": "--help"}),
            403,
        ),
        (
            serde_json::json!({"config": "quick.yaml", "run_id": "a b"}),
            403,
        ),
        (
            serde_json::json!({"config": "quick.yaml", "args": ["--executor", "slurm"]}),
            400,
        ),
        (
            serde_json::json!({"config": "quick.yaml", "command": "sh -c id"}),
            400,
        ),
    ] {
        let (status, v) = post(&api("launch"), &body);
        assert_eq!(status, want, "{body}: {v}");
    }
    let r = agent()
        .post(&api("launch"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send("config=quick.yaml")
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = agent()
        .post(&api("launch"))
        .header("Content-Type", "application/json")
        .header("Origin", "http://evil.example")
        .send(r#"{"config": "quick.yaml"}"#)
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(
        std::fs::read_dir(&runs)
            .unwrap()
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .count(),
        0,
        "nothing was launched"
    );

    // Launch a stub run and watch it finish on the live stream.
    let (status, v) = post(
        &api("launch"),
        &serde_json::json!({"config": "quick.yaml", "run_id": "quick"}),
    );
    assert_eq!(status, 200, "{v}");
    let quick = v["id"].as_u64().unwrap();
    wait_for("the run's manifest", 60, || {
        runs.join("quick/meta/manifest.json")
            .is_file()
            .then_some(())
    });
    let mut r = agent().get(&api("runs/quick/events")).call().unwrap();
    let mut reader = BufReader::new(r.body_mut().as_reader());
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended");
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let st: Json = serde_json::from_str(data.trim()).unwrap();
        seen.push(st.clone());
        if st["complete"] == true && st["finished_at"].is_string() {
            assert_eq!(st["counts"]["ok"], 2, "{st}");
            break;
        }
    }
    assert_eq!(wait_exit(&s, quick, 60), "exited 0");
    let run = get_json(&api("runs/quick"));
    assert_eq!(run["summary"]["counts"]["ok"], 2);
    assert!(runs.join("quick/results.csv").is_file());
    assert!(runs.join(".ui/logs/quick.log").is_file());
    // A second launch under the same id is refused (resume it instead).
    let (status, _) = post(
        &api("launch"),
        &serde_json::json!({"config": "quick.yaml", "run_id": "quick"}),
    );
    assert_eq!(status, 409);

    // Stop a run mid-way (SIGINT, as Ctrl-C): the finished jobs are kept.
    let (status, v) = post(
        &api("launch"),
        &serde_json::json!({"config": "slow.yaml", "run_id": "slow"}),
    );
    assert_eq!(status, 200, "{v}");
    let slow = v["id"].as_u64().unwrap();
    wait_for("a first job of the slow run", 60, || {
        let r = get(&api("runs/slow"));
        (r.0 == 200)
            .then(|| serde_json::from_str::<Json>(&r.1).unwrap())
            .filter(|v| v["summary"]["counts"]["ok"].as_u64().unwrap_or(0) >= 1)
    });
    let (status, v) = post(
        &api(&format!("launches/{slow}/stop")),
        &serde_json::json!({}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(wait_exit(&s, slow, 60), "exited 130");
    let run_dir = runs.join("slow");
    let statuses = manifest_statuses(&run_dir);
    assert!(statuses.iter().any(|s| s == "ok"), "{statuses:?}");
    assert!(
        statuses.iter().any(|s| s == "cancelled" || s == "pending"),
        "stopped mid-way: {statuses:?}"
    );
    let kept = common::stable_rows(&run_dir);
    assert!(
        kept.iter().any(|r| r["status"] == "ok"),
        "partial results kept"
    );
    let (status, _) = post(
        &api(&format!("launches/{slow}/stop")),
        &serde_json::json!({}),
    );
    assert_eq!(status, 409, "not running");

    // Resume to completion: equal to an uninterrupted run of the same config.
    let (status, v) = post(
        &api(&format!("launches/{slow}/resume")),
        &serde_json::json!({}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(wait_exit(&s, slow, 120), "exited 0");
    let page = get_json(&api("runs/slow"));
    assert_eq!(page["summary"]["counts"]["ok"], 6, "{page}");
    assert_eq!(page["summary"]["complete"], true);
    let whole = dir.path().join("whole");
    let status = Command::new(BIN)
        .args(["run", "--run-id", "whole", "--config"])
        .arg(cfg.join("slow.yaml"))
        .arg("--runs-dir")
        .arg(&whole)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        common::stable_rows(&run_dir),
        common::stable_rows(&whole.join("whole"))
    );
}

#[test]
fn read_only_refuses_launching() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = configs_dir(dir.path());
    let runs = dir.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let s = serve(&runs, &["--configs", cfg.to_str().unwrap(), "--read-only"]);
    let api = |p: &str| format!("{}api/{p}", s.url);
    assert_eq!(get_json(&api("launches"))["read_only"], true);
    let (status, v) = post(&api("launch"), &serde_json::json!({"config": "quick.yaml"}));
    assert_eq!(status, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("--read-only"));
    let (status, _) = post(&api("launches/0/stop"), &serde_json::json!({}));
    assert_eq!(status, 403);
    let (status, _) = post(&api("launches/0/resume"), &serde_json::json!({}));
    assert_eq!(status, 403);
    // Pasted YAML is not even saved under the runs dir.
    let (status, _) = post(
        &api("validate"),
        &serde_json::json!({"yaml": "mode: stub\n"}),
    );
    assert_eq!(status, 403);
    assert_eq!(
        std::fs::read_dir(&runs).unwrap().count(),
        0,
        "nothing written"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Set a finished job's status and error in its `results.json` and `job_meta.json`.
fn fail_job(job: &Path, kind: &str, error: &str) {
    for f in ["results.json", "job_meta.json"] {
        let p = job.join(f);
        let mut v: Json = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        v["status"] = "failed".into();
        v["error_kind"] = kind.into();
        v["error"] = error.into();
        if f == "results.json" {
            v["score_val"] = Json::Null;
        }
        std::fs::write(&p, v.to_string()).unwrap();
    }
}

#[test]
fn curves_causes_of_failure_and_the_compare_gate() {
    let dir = tempfile::tempdir().unwrap();
    let runs = stub_run(dir.path());
    // r2: r1 with three failed jobs, two of one cause.
    copy_dir(&runs.join("r1"), &runs.join("r2"));
    let jobs: Vec<std::path::PathBuf> = {
        let mut j: Vec<_> = std::fs::read_dir(runs.join("r2/jobs"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        j.sort();
        j
    };
    fail_job(
        &jobs[0],
        "evaluator",
        "boom: the scorer crashed\n  at line 3",
    );
    fail_job(
        &jobs[1],
        "evaluator",
        "boom: the scorer crashed\n  at line 9",
    );
    fail_job(&jobs[2], "llm", "rate limited");
    // ... and its manifest says so, as the runner's final manifest does.
    let mpath = runs.join("r2/meta/manifest.json");
    let mut m: Json = serde_json::from_str(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
    for j in m["jobs"].as_array_mut().unwrap() {
        if jobs[..3]
            .iter()
            .any(|p| p.ends_with(j["job_id"].as_str().unwrap()))
        {
            j["status"] = "failed".into();
        }
    }
    std::fs::write(&mpath, m.to_string()).unwrap();
    let s = serve(&runs, &[]);
    let api = |p: &str| format!("{}api/{p}", s.url);

    // Learning and anytime curves: one SVG image per axis.
    for axis in ["step", "metric_calls", "tokens", "cost", "millis"] {
        let mut r = agent()
            .get(&api(&format!("runs/r1/curves.svg?axis={axis}")))
            .call()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{axis}");
        assert_eq!(
            r.headers().get("content-type").unwrap().to_str().unwrap(),
            "image/svg+xml"
        );
        let svg = r.body_mut().read_to_string().unwrap();
        assert!(svg.starts_with("<svg xmlns"), "{axis}: {svg}");
        assert!(svg.contains("<polyline"), "{axis}: a curve is drawn");
        assert!(
            svg.contains("internal:numeric_param"),
            "{axis}: titled by task"
        );
        assert!(!svg.contains("<script"), "{axis}");
    }
    assert_eq!(get(&api("runs/r1/curves.svg?axis=nonsense")).0, 400);

    // Causes of failure, grouped by status, kind and the error's first line.
    let f = get_json(&api("runs/r1/failures"));
    assert_eq!(
        (&f["total"], f["groups"].as_array().unwrap().len()),
        (&0.into(), 0)
    );
    let f = get_json(&api("runs/r2/failures"));
    assert_eq!(f["total"], 3, "{f}");
    let g = &f["groups"][0];
    assert_eq!(
        (&g["count"], &g["status"], &g["error_kind"], &g["message"]),
        (
            &2.into(),
            &"failed".into(),
            &"evaluator".into(),
            &"boom: the scorer crashed".into()
        ),
        "{f}"
    );
    assert_eq!(f["groups"][1]["count"], 1);
    assert_eq!(f["groups"][1]["message"], "rate limited");

    // Compare: the gate's table and verdict, as `trace-bench compare` computes them.
    let same = get_json(&api("compare?base=r1&new=r1"));
    assert_eq!(same["verdict"], "pass", "{same}");
    let worse = get_json(&api("compare?base=r1&new=r2"));
    assert_eq!(worse["verdict"], "fail", "{worse}");
    assert!(worse["groups"].as_array().is_some_and(|g| !g.is_empty()));
    assert!(
        worse["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["check"] == "pass_rate")
    );
    let out = Command::new(BIN)
        .args(["compare", "--out"])
        .arg(dir.path().join("gate.json"))
        .arg(runs.join("r1"))
        .arg(runs.join("r2"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let cli: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("gate.json")).unwrap())
            .unwrap();
    assert_eq!(
        cli["groups"], worse["groups"],
        "the same table as the CLI's"
    );
    assert_eq!(cli["verdict"], worse["verdict"]);
    assert!(
        !runs.join("r2/gate.json").exists(),
        "the app writes nothing"
    );
    assert_eq!(get(&api("compare?base=r1&new=%2e%2e")).0, 403);
    assert_eq!(get(&api("compare?base=r1")).0, 400);
}
