//! `trace-bench ui`: a local web app over the runs dir (see `docs/ui.md`).
//!
//! One axum server on its own small tokio runtime (as `loopback` starts its own): the
//! pages are embedded HTML/CSS/JS that fetch JSON from `/api/...`; files are read on the
//! blocking pool. Safe by default: it binds loopback, and any other address needs the
//! token printed at start (`?token=`, then a cookie; or an `Authorization: Bearer`
//! header); without a token only requests naming a loopback `Host` are answered (no DNS
//! rebinding). Only files under the runs dir and the configs dir are served
//! (`paths.rs`), and launching runs only this binary's `run` on a config file
//! (`launch.rs`).

mod job;
mod launch;
pub mod paths;
mod runs;
mod views;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};
use tokio::sync::oneshot;

use paths::{PathRefusal, check_segment, confine, percent_decode, split_raw};
use runs::{JobFilter, RunCache};

pub use launch::LaunchSettings;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The cookie that carries the token after the first `?token=` visit.
const COOKIE: &str = "trace_bench_ui_token";
/// Largest page size of any paged list.
const MAX_PER_PAGE: usize = 500;

/// How the app is started.
#[derive(Debug, Clone)]
pub struct Options {
    /// The folder of run directories.
    pub runs_dir: PathBuf,
    /// The folder of configs offered for launching.
    pub configs_dir: PathBuf,
    /// The address to bind (`127.0.0.1` by default).
    pub host: String,
    /// The port (0: a free one).
    pub port: u16,
    /// No launching, stopping or resuming.
    pub read_only: bool,
    /// How launched runs are checked and started.
    pub launch: LaunchSettings,
}

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The runs dir is missing or not a folder.
    #[error("the runs dir `{0}` is not a folder")]
    RunsDir(PathBuf),
    /// The host does not resolve.
    #[error("cannot use `{host}` as the address to listen on: {reason}")]
    Host {
        /// As given.
        host: String,
        /// Why.
        reason: String,
    },
    /// Binding or starting the runtime failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
}

/// A running app; dropping it stops the server.
pub struct Running {
    addr: SocketAddr,
    token: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token requests must carry (`None` on loopback).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The URL to open (with `?token=` when one is needed).
    pub fn url(&self) -> String {
        let host = match self.addr.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        match &self.token {
            Some(t) => format!("http://{host}:{}/?token={t}", self.addr.port()),
            None => format!("http://{host}:{}/", self.addr.port()),
        }
    }

    /// Serve until the process ends.
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

struct Shared {
    runs_dir: PathBuf,
    configs_dir: PathBuf,
    token: Option<String>,
    read_only: bool,
    cache: RunCache,
    curves: views::CurveCache,
    launches: launch::Launches,
}

/// Bind, start the server on its own thread and return at once.
pub fn start(options: Options) -> Result<Running, UiError> {
    if !options.runs_dir.is_dir() {
        return Err(UiError::RunsDir(options.runs_dir));
    }
    let addr = resolve(&options.host, options.port)?;
    let bind_err = |source| UiError::Bind {
        addr: addr.to_string(),
        source,
    };
    // Any other address needs a token nobody can guess: no random source, no server.
    let token = if addr.ip().is_loopback() {
        None
    } else {
        Some(crate::loopback::fresh_token().map_err(bind_err)?)
    };
    let std_listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
    std_listener.set_nonblocking(true).map_err(bind_err)?;
    let addr = std_listener.local_addr().map_err(bind_err)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .thread_name("trace-bench-ui")
        .enable_io()
        .enable_time()
        .build()
        .map_err(bind_err)?;
    let listener = {
        let _guard = rt.enter();
        tokio::net::TcpListener::from_std(std_listener).map_err(bind_err)?
    };
    let shared = Arc::new(Shared {
        runs_dir: options.runs_dir.clone(),
        configs_dir: options.configs_dir.clone(),
        token: token.clone(),
        read_only: options.read_only,
        cache: RunCache::default(),
        curves: views::CurveCache::default(),
        launches: launch::Launches::new(options.launch.clone()),
    });
    let app = Router::new().fallback(dispatch).with_state(shared);
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("trace-bench-ui".into())
        .spawn(move || {
            rt.block_on(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = shutdown_rx.await;
                    })
                    .await;
            });
        })
        .map_err(bind_err)?;
    Ok(Running {
        addr,
        token,
        shutdown: Some(shutdown_tx),
        thread: Some(thread),
    })
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, UiError> {
    let err = |reason: String| UiError::Host {
        host: host.to_string(),
        reason,
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| err(e.to_string()))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| err("it resolves to no address".into()))
}

fn query_map(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            Some((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

fn header_token(headers: &HeaderMap) -> Option<String> {
    if let Some(t) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(t.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_string)
        })
}

/// Whether the `Host` header names a loopback address (`localhost`, `127.x`, `[::1]`).
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let mut r = (status, axum::Json(json!({"error": message.into()}))).into_response();
    harden(r.headers_mut());
    r
}

fn refusal(r: PathRefusal) -> Response {
    match r {
        PathRefusal::Forbidden(why) => error(StatusCode::FORBIDDEN, why),
        PathRefusal::NotFound => error(StatusCode::NOT_FOUND, "no such file"),
    }
}

fn harden(h: &mut HeaderMap) {
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
}

fn ok_json(v: Json) -> Response {
    let mut r = (StatusCode::OK, axum::Json(v)).into_response();
    harden(r.headers_mut());
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r.headers_mut().insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ),
    );
    harden(r.headers_mut());
    r
}

fn page_args(q: &HashMap<String, String>, default_per_page: usize) -> (usize, usize) {
    let page = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let per_page = q
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(default_per_page)
        .clamp(1, MAX_PER_PAGE);
    (page, per_page)
}

/// Run `f` on the blocking pool (file reading), turning a panic into a 500.
async fn blocking(f: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"))
}

/// Every request: authorize, then route on the raw path (so escapes are checked here).
async fn dispatch(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let q = query_map(&uri);
    let mut set_cookie = false;
    match &shared.token {
        Some(want) => {
            let from_query = q
                .get("token")
                .is_some_and(|t| crate::loopback::same_token(t, want));
            let from_header =
                header_token(&headers).is_some_and(|t| crate::loopback::same_token(&t, want));
            if !(from_query || from_header) {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "this server needs its token: open the URL printed at start (…/?token=…)",
                );
            }
            set_cookie = from_query;
        }
        None => {
            if !loopback_host(&headers) {
                return error(
                    StatusCode::FORBIDDEN,
                    "this server answers only requests addressed to localhost",
                );
            }
        }
    }
    let mut response = route(&shared, &method, &uri, &q, &headers, body).await;
    if let (true, Some(t)) = (set_cookie, &shared.token)
        && let Ok(v) =
            HeaderValue::from_str(&format!("{COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict"))
    {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// A run directory named by one URL segment, confined to the runs dir.
// The error is the answer itself, built once on the cold path.
#[allow(clippy::result_large_err)]
fn run_dir(shared: &Shared, raw: &str) -> Result<(String, PathBuf), Response> {
    let id = percent_decode(raw).ok_or_else(|| error(StatusCode::FORBIDDEN, "bad escape"))?;
    check_segment(&id).map_err(refusal)?;
    let dir = confine(&shared.runs_dir, std::slice::from_ref(&id)).map_err(refusal)?;
    if !dir.join("meta").join("manifest.json").is_file() {
        return Err(error(StatusCode::NOT_FOUND, format!("no run `{id}`")));
    }
    Ok((id, dir))
}

async fn route(
    shared: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    if method == Method::POST {
        return launch::post(shared, path, headers, body).await;
    }
    if method != Method::GET && method != Method::HEAD {
        return error(StatusCode::METHOD_NOT_ALLOWED, "GET or POST only");
    }
    match path {
        "/" | "/index.html" => return asset(INDEX_HTML, "text/html; charset=utf-8"),
        "/assets/app.js" => return asset(APP_JS, "text/javascript; charset=utf-8"),
        "/assets/app.css" => return asset(APP_CSS, "text/css; charset=utf-8"),
        "/api/info" => {
            return ok_json(json!({
                "version": env!("CARGO_PKG_VERSION"),
                "runs_dir": shared.runs_dir.display().to_string(),
                "configs_dir": shared.configs_dir.display().to_string(),
                "read_only": shared.read_only,
            }));
        }
        "/api/runs" => {
            let shared = Arc::clone(shared);
            let q = q.clone();
            return blocking(move || runs_list(&shared, &q)).await;
        }
        "/api/compare" => {
            let shared = Arc::clone(shared);
            let q = q.clone();
            return blocking(move || compare_page(&shared, &q)).await;
        }
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/files/") {
        let shared = Arc::clone(shared);
        let rest = rest.to_string();
        return blocking(move || serve_file(&shared.runs_dir, &rest)).await;
    }
    if let Some(rest) = path.strip_prefix("/api/configs") {
        return launch::get_configs(shared, rest).await;
    }
    if path == "/api/launches" {
        return launch::list(shared);
    }
    let Some(rest) = path.strip_prefix("/api/runs/") else {
        return error(StatusCode::NOT_FOUND, "no such page");
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let (run_id, dir) = match run_dir(shared, parts[0]) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let shared2 = Arc::clone(shared);
    let q = q.clone();
    match parts[1..] {
        [] => blocking(move || run_page(&shared2, &run_id, &dir)).await,
        ["jobs"] => blocking(move || jobs_page(&shared2, &dir, &q)).await,
        ["events"] => live_events(shared2, dir),
        ["curves.svg"] => blocking(move || curves_image(&shared2, &dir, &q)).await,
        ["failures"] => {
            blocking(move || match shared2.cache.not_ok(&dir) {
                Ok(jobs) => ok_json(views::failures(&dir, &jobs)),
                Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            })
            .await
        }
        ["jobs", job, ref tail @ ..] => {
            let job = match percent_decode(job).map(|j| check_segment(&j).map(|_| j.clone())) {
                Some(Ok(j)) => j,
                Some(Err(r)) => return refusal(r),
                None => return error(StatusCode::FORBIDDEN, "bad escape"),
            };
            let tail: Vec<String> = tail.iter().map(|s| s.to_string()).collect();
            blocking(move || job_route(&shared2, &dir, &job, &tail, &q)).await
        }
        _ => error(StatusCode::NOT_FOUND, "no such page"),
    }
}

fn runs_list(shared: &Shared, q: &HashMap<String, String>) -> Response {
    let (page, per_page) = page_args(q, 50);
    let needle = q.get("q").map(|s| s.to_lowercase()).unwrap_or_default();
    let Ok(entries) = std::fs::read_dir(&shared.runs_dir) else {
        return error(StatusCode::NOT_FOUND, "the runs dir cannot be read");
    };
    let mut runs: Vec<Json> = Vec::new();
    let mut unreadable = 0usize;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        let Ok(dir) = confine(&shared.runs_dir, std::slice::from_ref(&name)) else {
            continue; // a symlink out of the runs dir
        };
        if !dir.join("meta").join("manifest.json").is_file() {
            continue;
        }
        match shared.cache.summary(&name, &dir) {
            Ok(s) => {
                if needle.is_empty() || s.to_string().to_lowercase().contains(&needle) {
                    runs.push(s);
                }
            }
            Err(_) => unreadable += 1,
        }
    }
    let key = |v: &Json| v["created_at"].as_str().unwrap_or("").to_string();
    runs.sort_by(|a, b| {
        key(b)
            .cmp(&key(a))
            .then_with(|| b["run_id"].as_str().cmp(&a["run_id"].as_str()))
    });
    if q.get("order").is_some_and(|o| o == "asc") {
        runs.reverse();
    }
    let total = runs.len();
    let runs: Vec<Json> = runs
        .into_iter()
        .skip(page.saturating_mul(per_page))
        .take(per_page)
        .collect();
    ok_json(
        json!({"total": total, "page": page, "per_page": per_page, "runs": runs,
                   "unreadable": unreadable}),
    )
}

fn csv_rows(path: &Path) -> Option<Vec<Json>> {
    let mut reader = csv::Reader::from_path(path).ok()?;
    let headers = reader.headers().ok()?.clone();
    let rows = reader
        .records()
        .flatten()
        .map(|r| {
            let obj: serde_json::Map<String, Json> = headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), Json::String(v.to_string())))
                .collect();
            Json::Object(obj)
        })
        .collect();
    Some(rows)
}

fn run_page(shared: &Shared, run_id: &str, dir: &Path) -> Response {
    let summary = match shared.cache.summary(run_id, dir) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    };
    let facets = shared.cache.facets(dir).unwrap_or(Json::Null);
    ok_json(json!({
        "summary": summary,
        "facets": facets,
        "leaderboard": csv_rows(&dir.join("leaderboard.csv")),
        "stats": runs::read_json(&dir.join("stats.json")),
        "summary_json": runs::read_json(&dir.join("summary.json")),
        "report_html": dir.join("report.html").is_file(),
        "gate": runs::read_json(&dir.join("gate.json")),
        "tensorboard": format!("tensorboard --logdir {}", dir.join("jobs").display()),
    }))
}

/// `GET /api/runs/<id>/curves.svg?axis=`: the learning (`step`) or anytime curves of
/// the run's ok jobs, one figure per task, as an image (no script can run in it).
fn curves_image(shared: &Shared, dir: &Path, q: &HashMap<String, String>) -> Response {
    let axis = q.get("axis").map_or("step", String::as_str);
    let stamp = match shared.cache.counts(dir) {
        Ok(c) => c.to_string(),
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    };
    let svg = match shared.curves.svg(dir, axis, &stamp) {
        Ok(Some(svg)) => svg,
        Ok(None) => {
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"420\" height=\"30\"><text x=\"4\" y=\"20\" font-family=\"sans-serif\" font-size=\"13\" fill=\"#777\">No ok job has a step history yet.</text></svg>".to_string()
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let mut r = (StatusCode::OK, svg).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("sandbox; default-src 'none'; style-src 'unsafe-inline'"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    harden(h);
    r
}

/// `GET /api/compare?base=<run>&new=<run>`: the `compare` gate's table and verdict.
fn compare_page(shared: &Shared, q: &HashMap<String, String>) -> Response {
    let (Some(base), Some(new)) = (q.get("base"), q.get("new")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "give `base` and `new`: two run ids",
        );
    };
    let (base, bdir) = match run_dir(shared, base) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (new, ndir) = match run_dir(shared, new) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match views::compare((&base, &bdir), (&new, &ndir)) {
        Ok(g) => ok_json(g),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

fn jobs_page(shared: &Shared, dir: &Path, q: &HashMap<String, String>) -> Response {
    let (page, per_page) = page_args(q, 50);
    let get = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let filter = JobFilter {
        task: get("task"),
        trainer: get("trainer"),
        status: get("status"),
        seed: get("seed"),
        suite: get("suite"),
    };
    match shared.cache.jobs(dir, &filter, page, per_page) {
        Ok(v) => ok_json(v),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

fn job_route(
    shared: &Shared,
    run: &Path,
    job_id: &str,
    tail: &[String],
    q: &HashMap<String, String>,
) -> Response {
    match shared.cache.has_job(run, job_id) {
        Ok(true) => {}
        Ok(false) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no job `{job_id}` in this run"),
            );
        }
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
    let dir = match confine(run, &["jobs".into(), job_id.to_string()]) {
        Ok(d) => d,
        Err(PathRefusal::NotFound) => {
            return ok_json(json!({"not_started": true, "job_id": job_id}));
        }
        Err(r) => return refusal(r),
    };
    let query = q.get("q").cloned().unwrap_or_default();
    let file = |segments: &[&str]| {
        let segs: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
        confine(&dir, &segs)
    };
    match tail.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => ok_json(job::job_page(&dir)),
        ["transcripts"] => match file(&["artifacts", "llm_calls.jsonl"]) {
            Ok(p) => {
                let (page, per_page) = page_args(q, 20);
                ok_json(job::search_jsonl(&p, &query, page, per_page))
            }
            Err(PathRefusal::NotFound) => ok_json(json!({"total": 0, "items": []})),
            Err(r) => refusal(r),
        },
        ["examples"] => match file(&["artifacts", "examples.jsonl"]) {
            Ok(p) => {
                let (page, per_page) = page_args(q, 50);
                ok_json(job::search_jsonl(&p, &query, page, per_page))
            }
            Err(PathRefusal::NotFound) => ok_json(json!({"total": 0, "items": []})),
            Err(r) => refusal(r),
        },
        ["log"] => match file(&["job.log"]) {
            Ok(p) => ok_json(job::log_tail(&p)),
            Err(PathRefusal::NotFound) => ok_json(json!({"text": "", "missing": true})),
            Err(r) => refusal(r),
        },
        _ => error(StatusCode::NOT_FOUND, "no such page"),
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "json" => "application/json",
        "csv" => "text/csv; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jsonl" | "log" | "txt" | "yaml" | "yml" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A file under the runs dir, by its raw URL path below `/files/`. HTML is served in a
/// sandbox (no scripts, an origin of its own), so a page in a run directory can never
/// act as the app.
fn serve_file(root: &Path, rest: &str) -> Response {
    let segments = match split_raw(rest) {
        Ok(s) => s,
        Err(r) => return refusal(r),
    };
    let path = match confine(root, &segments) {
        Ok(p) => p,
        Err(r) => return refusal(r),
    };
    if !path.is_file() {
        return error(StatusCode::NOT_FOUND, "not a file");
    }
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::NOT_FOUND, format!("cannot read it: {e}")),
    };
    let mut r = (StatusCode::OK, Body::from(bytes)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&path)),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'",
        ),
    );
    harden(h);
    r
}

/// The receiving end of a live stream, as the `Stream` axum's SSE response reads.
struct Live(tokio::sync::mpsc::Receiver<Result<Event, Infallible>>);

impl futures_core::Stream for Live {
    type Item = Result<Event, Infallible>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// `GET /api/runs/<id>/events`: a `status` event with the counts now, then again
/// whenever they change (the job directories are polled every second, so runs started
/// from the command line or on Slurm are watched alike). The poller ends when the
/// browser goes away.
fn live_events(shared: Arc<Shared>, dir: PathBuf) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut last = Json::Null;
        loop {
            let (s, d) = (Arc::clone(&shared), dir.clone());
            let now = tokio::task::spawn_blocking(move || s.cache.counts(&d))
                .await
                .ok()
                .and_then(Result::ok);
            if let Some(now) = now
                && now != last
            {
                let event = Event::default().event("status").data(now.to_string());
                if tx.send(Ok(event)).await.is_err() {
                    break;
                }
                last = now;
            }
            if tx.is_closed() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut r = Sse::new(Live(rx))
        .keep_alive(KeepAlive::default())
        .into_response();
    harden(r.headers_mut());
    r
}
