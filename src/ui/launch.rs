//! Launching from the web app (not with `--read-only`): a config from the configs dir
//! or pasted YAML is checked with the library's own loading and spec check (the located
//! problems `validate` prints), then run as a child process of this same binary:
//! `<current exe> [global flags] run --config <file> --runs-dir <runs dir> --run-id <id>
//! [--resume auto]`. Never an arbitrary command line: the only inputs are a config file
//! name under the configs dir (or YAML text, saved under `<runs dir>/.ui/configs/`) and a
//! run id checked as a plain name. Stop sends SIGINT, as Ctrl-C does (partial results are
//! kept); resume runs the same config again with `--resume auto`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::paths::{check_segment, confine};
use super::{Shared, blocking, error, ok_json, refusal};
use crate::config::Severity;
use crate::config::load::Source;
use crate::registry::Registry;
use crate::registry::llm4ad::Llm4adSources;
use crate::runner::{CliOverrides, prepare};

/// How launched configs are checked and run.
#[derive(Debug, Clone)]
pub struct LaunchSettings {
    /// The registry the check uses (built-ins plus the command line's folders).
    pub registry: Registry,
    /// The LLM4AD sources of the command line.
    pub llm4ad: Llm4adSources,
    /// Global flags passed on to each child (`--tasks-dir`, `--trainers-dir`, ...).
    pub child_args: Vec<OsString>,
}

struct Launched {
    id: usize,
    run_id: String,
    config: PathBuf,
    log: PathBuf,
    child: Child,
    exit: Option<String>,
    resumed: usize,
}

/// The runs this app started.
pub struct Launches {
    settings: LaunchSettings,
    items: Mutex<Vec<Launched>>,
}

impl Launches {
    pub(super) fn new(settings: LaunchSettings) -> Self {
        Self {
            settings,
            items: Mutex::new(Vec::new()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LaunchBody {
    /// A file name in the configs dir.
    config: Option<String>,
    /// YAML text.
    yaml: Option<String>,
    /// The run id (default: `ui-<time>`).
    run_id: Option<String>,
}

/// `GET /api/launches`
pub(super) fn list(shared: &Arc<Shared>) -> Response {
    let mut items = shared
        .launches
        .items
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let out: Vec<Json> = items
        .iter_mut()
        .map(|l| {
            if l.exit.is_none()
                && let Ok(Some(status)) = l.child.try_wait()
            {
                l.exit = Some(match status.code() {
                    Some(c) => format!("exited {c}"),
                    None => "killed by a signal".into(),
                });
            }
            json!({"id": l.id, "run_id": l.run_id, "config": l.config.display().to_string(),
                   "running": l.exit.is_none(), "exit": l.exit, "resumed": l.resumed,
                   "log": l.log.display().to_string()})
        })
        .collect();
    ok_json(json!({"read_only": shared.read_only, "launches": out}))
}

/// `GET /api/configs` (the list) and `GET /api/configs/<name>` (its text).
pub(super) async fn get_configs(shared: &Arc<Shared>, rest: &str) -> Response {
    let shared = Arc::clone(shared);
    let rest = rest.to_string();
    blocking(move || {
        if rest.is_empty() || rest == "/" {
            let mut names: Vec<String> = std::fs::read_dir(&shared.configs_dir)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().to_string())
                        .filter(|n| {
                            !n.starts_with('.')
                                && [".yaml", ".yml", ".json"].iter().any(|x| n.ends_with(x))
                        })
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            return ok_json(json!({"configs": names}));
        }
        let Some(name) = rest.strip_prefix('/') else {
            return error(StatusCode::NOT_FOUND, "no such page");
        };
        match config_path(&shared, name).map(|p| std::fs::read_to_string(&p)) {
            Ok(Ok(text)) => ok_json(json!({"name": name, "text": text})),
            Ok(Err(e)) => error(StatusCode::NOT_FOUND, format!("cannot read it: {e}")),
            Err(r) => r,
        }
    })
    .await
}

// The error is the answer itself, built once on the cold path.
#[allow(clippy::result_large_err)]
fn config_path(shared: &Shared, raw: &str) -> Result<PathBuf, Response> {
    let name = super::paths::percent_decode(raw)
        .ok_or_else(|| error(StatusCode::FORBIDDEN, "bad escape"))?;
    confine(&shared.configs_dir, &[name]).map_err(refusal)
}

/// Refuse cross-site requests: a JSON body (a form cannot send one without a CORS
/// preflight, which this server never grants) and, when the browser names an origin,
/// the origin of this server.
fn same_origin(headers: &HeaderMap) -> bool {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_ok = match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(o) => host.is_some_and(|h| {
            o.strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                == Some(h)
        }),
    };
    json && origin_ok
}

/// Every POST: `/api/validate`, `/api/launch`, `/api/launches/<n>/stop|resume`.
pub(super) async fn post(
    shared: &Arc<Shared>,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    if !same_origin(headers) {
        return error(
            StatusCode::FORBIDDEN,
            "a JSON request from this app's own pages is expected",
        );
    }
    if shared.read_only {
        return error(
            StatusCode::FORBIDDEN,
            "the app was started with --read-only",
        );
    }
    let shared = Arc::clone(shared);
    let path = path.to_string();
    blocking(move || {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match parts[..] {
            ["api", "validate"] => with_body(&body, |b| validate(&shared, b)),
            ["api", "launch"] => with_body(&body, |b| launch(&shared, b)),
            ["api", "launches", n, action @ ("stop" | "resume")] => match n.parse::<usize>() {
                Ok(n) => control(&shared, n, action),
                Err(_) => error(StatusCode::NOT_FOUND, "no such launch"),
            },
            _ => error(StatusCode::NOT_FOUND, "no such page"),
        }
    })
    .await
}

fn with_body(body: &[u8], f: impl FnOnce(LaunchBody) -> Response) -> Response {
    match serde_json::from_slice::<LaunchBody>(body) {
        Ok(b) => f(b),
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            format!("the body is not valid: {e}"),
        ),
    }
}

/// The config a request names: a file of the configs dir, or YAML saved under
/// `<runs dir>/.ui/configs/<digest>.yaml` (relative paths in it resolve from there).
// The error is the answer itself, built once on the cold path.
#[allow(clippy::result_large_err)]
fn source_of(shared: &Shared, b: &LaunchBody) -> Result<PathBuf, Response> {
    match (&b.config, &b.yaml) {
        (Some(name), None) => {
            let name = check_segment(name).map_err(refusal)?;
            confine(&shared.configs_dir, &[name.to_string()]).map_err(refusal)
        }
        (None, Some(text)) => {
            use sha2::{Digest, Sha256};
            let digest: String = Sha256::digest(text.as_bytes())[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let dir = shared.runs_dir.join(".ui").join("configs");
            let path = dir.join(format!("pasted-{digest}.yaml"));
            std::fs::create_dir_all(&dir)
                .and_then(|_| std::fs::write(&path, text))
                .map_err(|e| {
                    error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("cannot save the pasted config: {e}"),
                    )
                })?;
            Ok(path)
        }
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "give either `config` (a file of the configs dir) or `yaml`",
        )),
    }
}

/// Keys of a config that name programs to run or folders of them (task and trainer
/// folders, interpreters, the Slurm executor's `bin` and `args`). A config of the configs
/// dir may use them (its author put it there); YAML that arrives over HTTP may not, or two
/// pastes — a trainer preset with a `command`, then a config whose `trainers_dir` is the
/// folder pasted YAML is saved in — would run any command line.
const PROGRAM_KEYS: [&str; 6] = [
    "tasks_dir",
    "trainers_dir",
    "external_python",
    "llm4ad_root",
    "llm4ad_python",
    "executor",
];

/// The pasted config's uses of [`PROGRAM_KEYS`], located; on a server reachable from other
/// hosts (`remote`: bound off loopback, behind its token) also `llm.base_url`, the address
/// the server's own API key would be sent to.
fn refused_keys(source: &Source, remote: bool) -> Vec<crate::config::Diagnostic> {
    let Some(config) = crate::config::load(source, &[]).config else {
        return Vec::new(); // the check reports why it does not load
    };
    let mut refused: Vec<crate::config::Diagnostic> = config
        .spans
        .iter()
        .filter(|(k, _)| PROGRAM_KEYS.contains(&k.replace('-', "_").as_str()))
        .map(|(k, span)| {
            crate::config::Diagnostic::error(
                k.clone(),
                *span,
                format!("`{k}` names programs to run: pasted YAML cannot use it"),
            )
            .with_hint("put the config in the configs dir and pick it there")
        })
        .collect();
    if remote
        && config.llm.contains_key("base_url")
        && let Some(span) = config.spans.get("llm")
    {
        refused.push(
            crate::config::Diagnostic::error(
                "llm.base_url",
                *span,
                "`llm.base_url` on a server open to other hosts: the server's API key would go wherever it points, so pasted YAML cannot set it",
            )
            .with_hint("put the config in the configs dir and pick it there"),
        );
    }
    refused
}

/// Check a config as `validate` does; the problems with their lines. Pasted YAML may not
/// name programs ([`PROGRAM_KEYS`]) nor, on a server open to other hosts, `llm.base_url`.
fn check(shared: &Shared, path: &Path, pasted: bool) -> Json {
    let source = match Source::from_path(path) {
        Ok(s) => s,
        Err(e) => {
            return json!({"ok": false, "problems": [{"severity": "error", "message": e.to_string()}]});
        }
    };
    if pasted {
        let refused = refused_keys(&source, shared.token.is_some());
        if !refused.is_empty() {
            let mut diags = crate::config::Diagnostics::new(&source.name, &source.text);
            let problems: Vec<Json> = refused
                .iter()
                .map(|d| {
                    json!({"severity": "error", "message": d.message, "key": d.key,
                           "line": d.span.line, "column": d.span.col, "hint": d.hint,
                           "rendered": diags.render_one(d)})
                })
                .collect();
            for d in refused {
                diags.push(d);
            }
            return json!({"ok": false, "jobs": 0, "problems": problems});
        }
    }
    let settings = &shared.launches.settings;
    let cli = CliOverrides {
        runs_dir: Some(shared.runs_dir.display().to_string()),
        llm4ad: settings.llm4ad.clone(),
        config_dir: path.parent().map(Path::to_path_buf),
        ..CliOverrides::default()
    };
    let prepared = prepare(&source, &[], &cli, false, &settings.registry);
    let problems: Vec<Json> = prepared
        .diagnostics
        .items
        .iter()
        .map(|d| {
            json!({
                "severity": if d.severity == Severity::Error { "error" } else { "warning" },
                "message": d.message, "key": d.key,
                "line": (d.span.line > 0).then_some(d.span.line),
                "column": (d.span.line > 0).then_some(d.span.col),
                "hint": d.hint, "rendered": prepared.diagnostics.render_one(d),
            })
        })
        .collect();
    json!({"ok": prepared.is_ok(), "jobs": prepared.jobs.len(), "problems": problems})
}

fn validate(shared: &Shared, b: LaunchBody) -> Response {
    match source_of(shared, &b) {
        Ok(path) => ok_json(check(shared, &path, b.yaml.is_some())),
        Err(r) => r,
    }
}

fn spawn(
    shared: &Shared,
    config: &Path,
    run_id: &str,
    resume: bool,
) -> Result<(Child, PathBuf), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let logs = shared.runs_dir.join(".ui").join("logs");
    std::fs::create_dir_all(&logs)
        .map_err(|e| format!("cannot create `{}`: {e}", logs.display()))?;
    let log = logs.join(format!("{run_id}.log"));
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| format!("cannot open `{}`: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.args(&shared.launches.settings.child_args)
        .arg("run")
        .arg("--config")
        .arg(config)
        .arg("--runs-dir")
        .arg(&shared.runs_dir)
        .arg("--run-id")
        .arg(run_id);
    if resume {
        cmd.args(["--resume", "auto"]);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start the run: {e}"))?;
    Ok((child, log))
}

/// A run id the app passes on: one plain name that no argument parser reads as a flag.
fn plain_run_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with(['.', '-'])
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn launch(shared: &Shared, b: LaunchBody) -> Response {
    let path = match source_of(shared, &b) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let verdict = check(shared, &path, b.yaml.is_some());
    if verdict["ok"] != Json::Bool(true) {
        let mut r = ok_json(verdict);
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return r;
    }
    let run_id = b.run_id.filter(|r| !r.is_empty()).unwrap_or_else(|| {
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        format!("ui-{}", now.replace([':', '-'], "").trim_end_matches('Z'))
    });
    if !plain_run_id(&run_id) {
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "`{run_id}` is not a run name (letters, digits, `.`, `_`, `-`; not first `.` or `-`)"
            ),
        );
    }
    if shared.runs_dir.join(&run_id).exists() {
        return error(
            StatusCode::CONFLICT,
            format!("`{run_id}` exists already; resume it instead"),
        );
    }
    match spawn(shared, &path, &run_id, false) {
        Ok((mut child, log)) => {
            // Answer once the run directory can be shown (its manifest is written first),
            // so the page the answer links to exists; a child that ends early answers too.
            let manifest = shared
                .runs_dir
                .join(&run_id)
                .join("meta")
                .join("manifest.json");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !manifest.is_file()
                && std::time::Instant::now() < deadline
                && matches!(child.try_wait(), Ok(None))
            {
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            let mut items = shared
                .launches
                .items
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let id = items.len();
            items.push(Launched {
                id,
                run_id: run_id.clone(),
                config: path,
                log,
                child,
                exit: None,
                resumed: 0,
            });
            ok_json(json!({"id": id, "run_id": run_id}))
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

fn control(shared: &Shared, n: usize, action: &str) -> Response {
    let mut items = shared
        .launches
        .items
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let Some(l) = items.iter_mut().find(|l| l.id == n) else {
        return error(StatusCode::NOT_FOUND, "no such launch");
    };
    let running = l.exit.is_none() && matches!(l.child.try_wait(), Ok(None));
    match action {
        "stop" => {
            if !running {
                return error(StatusCode::CONFLICT, "it is not running");
            }
            let pid = nix::unistd::Pid::from_raw(l.child.id() as i32);
            match nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT) {
                Ok(()) => ok_json(json!({"stopping": l.id})),
                Err(e) => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot stop it: {e}"),
                ),
            }
        }
        _ => {
            if running {
                return error(StatusCode::CONFLICT, "it is still running");
            }
            let (config, run_id) = (l.config.clone(), l.run_id.clone());
            match spawn(shared, &config, &run_id, true) {
                Ok((child, _)) => {
                    l.child = child;
                    l.exit = None;
                    l.resumed += 1;
                    ok_json(json!({"resumed": l.id, "run_id": run_id}))
                }
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            }
        }
    }
}
