//! The loopback HTTP endpoints of one job: what an external trainer's child process
//! talks to (`docs/external-trainers.md`).
//!
//! This module only moves requests: it listens on `127.0.0.1` on a free port, refuses any
//! request without the job's bearer token, parses the JSON body and hands each request to
//! the job's thread as a [`Call`] over a channel; the job thread answers through the
//! call's [`Reply`] (the LLM, the evaluator and every counter stay in the job, so an
//! external trainer is measured exactly as a native one). The HTTP side runs on one small
//! tokio runtime shared by all jobs of the process (axum: the same server crate the `ui`
//! uses); handlers never block, they wait on the job's answer.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::mpsc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value as Json, json};
use tokio::sync::oneshot;

/// Largest request body accepted (a candidate program with its evaluation can be big).
const BODY_LIMIT: usize = 64 << 20;

/// What the child asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `GET /v1/models`
    Models,
    /// `GET /tb/packet`: the job packet.
    Packet,
    /// `POST /tb/evaluate`: score parameters on examples (trace-bench runs the agent).
    Evaluate,
    /// `POST /tb/score`: score one reply to one example.
    Score,
    /// `POST /tb/progress`: a step, a candidate or a log line of the trainer.
    Progress,
    /// `POST /tb/final`: the trainer's result.
    Final,
}

/// The answer channel of one call: an HTTP status and a JSON body.
#[derive(Debug)]
pub struct Reply(oneshot::Sender<(u16, Json)>);

impl Reply {
    /// Answer the call (a child that hung up meanwhile is ignored).
    pub fn send(self, status: u16, body: Json) {
        let _ = self.0.send((status, body));
    }

    /// Answer with an OpenAI-style error object.
    pub fn error(self, status: u16, kind: &str, message: impl Into<String>) {
        self.send(
            status,
            json!({"error": {"message": message.into(), "type": kind}}),
        );
    }
}

/// One request of the child, for the job's thread.
#[derive(Debug)]
pub struct Call {
    /// Which endpoint.
    pub route: Route,
    /// The JSON body (`null` for GET).
    pub body: Json,
    /// Where the answer goes.
    pub reply: Reply,
}

/// A running server; dropping it stops listening.
pub struct Server {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Server {
    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[derive(Clone)]
struct Shared {
    token: String,
    calls: mpsc::Sender<Call>,
}

fn runtime() -> std::io::Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("trace-bench-loopback")
        .enable_io()
        .enable_time()
        .build()?;
    Ok(RUNTIME.get_or_init(|| rt))
}

/// Start listening on a free loopback port; requests must carry `Authorization: Bearer
/// <token>`. Calls arrive on the returned receiver until the server is dropped.
pub fn start(token: &str) -> std::io::Result<(Server, mpsc::Receiver<Call>)> {
    let rt = runtime()?;
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let (calls_tx, calls_rx) = mpsc::channel();
    let shared = Shared {
        token: token.to_string(),
        calls: calls_tx,
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(handle))
        .route("/chat/completions", post(handle))
        .route("/v1/embeddings", post(handle))
        .route("/embeddings", post(handle))
        .route("/v1/models", get(handle))
        .route("/tb/packet", get(handle))
        .route("/tb/evaluate", post(handle))
        .route("/tb/score", post(handle))
        .route("/tb/progress", post(handle))
        .route("/tb/final", post(handle))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared);
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let listener = {
        let _guard = rt.enter();
        tokio::net::TcpListener::from_std(std_listener)?
    };
    rt.spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = shutdown_rx.await;
            })
            .await;
    });
    Ok((
        Server {
            addr,
            shutdown: Some(shutdown_tx),
        },
        calls_rx,
    ))
}

fn route_of(path: &str) -> Option<Route> {
    Some(match path.trim_start_matches("/v1") {
        "/chat/completions" => Route::ChatCompletions,
        "/embeddings" => Route::Embeddings,
        "/models" => Route::Models,
        "/tb/packet" => Route::Packet,
        "/tb/evaluate" => Route::Evaluate,
        "/tb/score" => Route::Score,
        "/tb/progress" => Route::Progress,
        "/tb/final" => Route::Final,
        _ => return None,
    })
}

/// A token only its holder knows: 16 bytes from the OS's random source, as 32 hex digits.
pub fn fresh_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Constant-time comparison, so a token cannot be guessed byte by byte.
pub fn same_token(given: &str, want: &str) -> bool {
    given.len() == want.len()
        && given
            .bytes()
            .zip(want.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn json_response(status: u16, body: Json) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

async fn handle(
    State(shared): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let error = |status: u16, message: &str| {
        json_response(
            status,
            json!({"error": {"message": message, "type": "trace_bench"}}),
        )
    };
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same_token(token.trim(), &shared.token) {
        return error(
            401,
            "missing or wrong bearer token (use the job's TB_TOKEN)",
        );
    }
    let Some(route) = route_of(uri.path()) else {
        return error(404, "no such endpoint");
    };
    let body = if body.is_empty() {
        Json::Null
    } else {
        match serde_json::from_slice::<Json>(&body) {
            Ok(v) => v,
            Err(e) => return error(400, &format!("the body is not JSON: {e}")),
        }
    };
    let (tx, rx) = oneshot::channel();
    let call = Call {
        route,
        body,
        reply: Reply(tx),
    };
    if shared.calls.send(call).is_err() {
        return error(503, "the job has ended");
    }
    match rx.await {
        Ok((status, body)) => json_response(status, body),
        Err(_) => error(503, "the job ended before answering"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(url: &str, token: &str, body: &str) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent
            .post(url)
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(body)
            .unwrap();
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_string().unwrap())
    }

    #[test]
    fn calls_reach_the_job_thread_and_answers_come_back() {
        let (server, calls) = start("secret-token").unwrap();
        let url = format!("{}/v1/chat/completions", server.base_url());
        let job = std::thread::spawn(move || {
            let call = calls.recv().unwrap();
            assert_eq!(call.route, Route::ChatCompletions);
            assert_eq!(call.body["model"], "tb-task");
            call.reply.send(200, json!({"ok": true}));
        });
        let (status, body) = post(&url, "secret-token", r#"{"model": "tb-task"}"#);
        assert_eq!((status, body.as_str()), (200, r#"{"ok":true}"#));
        job.join().unwrap();
    }

    #[test]
    fn wrong_tokens_bad_json_and_unknown_paths_are_refused() {
        let (server, calls) = start("secret-token").unwrap();
        let base = server.base_url();
        let (status, _) = post(&format!("{base}/tb/evaluate"), "guess", "{}");
        assert_eq!(status, 401);
        let (status, _) = post(&format!("{base}/tb/evaluate"), "secret-token", "{not json");
        assert_eq!(status, 400);
        let (status, _) = post(&format!("{base}/tb/other"), "secret-token", "{}");
        assert_eq!(status, 404);
        assert!(calls.try_recv().is_err(), "nothing reached the job");
        drop(calls);
        let (status, _) = post(&format!("{base}/tb/evaluate"), "secret-token", "{}");
        assert_eq!(status, 503);
    }
}
