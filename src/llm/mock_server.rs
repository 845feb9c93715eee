//! A scripted OpenAI-compatible HTTP server on loopback, for tests.
//!
//! Real-mode behaviour (retries, timeouts, error mapping, headers) can only be trusted if
//! it is exercised over real sockets, but tests must not need a network or a model. This
//! server answers each incoming request with the next [`ScriptedResponse`] of its queue
//! (status, headers, body, delay) and records what it received ([`RecordedRequest`]), so
//! tests can check the bearer header and the JSON body. Only `std` is used.
//!
//! Built for unit tests; `tests/real_mode.rs` compiles this file by path to test whole runs.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value as Json, json};

/// One scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedResponse {
    /// HTTP status.
    pub status: u16,
    /// Extra headers (`Content-Length` and `Connection` are added).
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: String,
    /// How long to wait before answering (to provoke client timeouts).
    pub delay: Duration,
}

impl ScriptedResponse {
    /// A JSON answer with the given status.
    pub fn json(status: u16, body: &Json) -> Self {
        Self::raw(status, &body.to_string()).with_header("Content-Type", "application/json")
    }

    /// A raw (possibly non-JSON) answer.
    pub fn raw(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    /// A well-formed chat completion with `content` and, if given, reported usage.
    pub fn chat(content: &str, usage: Option<(u64, u64)>) -> Self {
        let mut body = json!({
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "model": "mock-model",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop"
            }]
        });
        if let Some((prompt, completion)) = usage {
            body["usage"] = json!({
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion
            });
        }
        Self::json(200, &body)
    }

    /// A well-formed embeddings reply: one vector, `tokens` input tokens.
    pub fn embedding(vector: &[f64], tokens: u64) -> Self {
        Self::json(
            200,
            &json!({
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": vector}],
                "model": "mock-embed",
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
            }),
        )
    }

    /// An OpenAI-style error body: `{"error": {"message": ..., "type": ...}}`.
    pub fn error(status: u16, message: &str) -> Self {
        Self::json(
            status,
            &json!({"error": {"message": message, "type": "mock_error", "code": null}}),
        )
    }

    /// Add a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Answer only after `delay`.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `POST`, ...
    pub method: String,
    /// Path and query, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Headers in arrival order (names as sent).
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: String,
}

impl RecordedRequest {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Json> {
        serde_json::from_str(&self.body).ok()
    }
}

#[derive(Debug, Default)]
struct State {
    script: VecDeque<ScriptedResponse>,
    /// Answer once the script is exhausted (benchmarks: the same reply forever).
    fallback: Option<ScriptedResponse>,
    /// Answer computed from the request once the script is exhausted (before `fallback`):
    /// replies that depend on what was asked, not on arrival order.
    responder: Option<fn(&RecordedRequest) -> ScriptedResponse>,
    requests: Vec<RecordedRequest>,
}

/// A running mock server; stops when dropped.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MockServer {
    /// Start on an ephemeral loopback port with a queue of answers. When the queue is
    /// empty the server answers the [default](Self::set_default), or 500 "script
    /// exhausted" when there is none.
    pub fn start(script: Vec<ScriptedResponse>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            fallback: None,
            responder: None,
            requests: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let state = state.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = state.clone();
                    std::thread::spawn(move || {
                        let _ = serve(stream, &state);
                    });
                }
            })
        };
        Ok(Self {
            addr,
            state,
            stop,
            accept: Some(accept),
        })
    }

    /// The server address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API root to use as `base_url`: `http://127.0.0.1:<port>/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Append answers to the queue.
    pub fn push(&self, response: ScriptedResponse) {
        lock(&self.state).script.push_back(response);
    }

    /// Answer `response` whenever the queue is empty.
    pub fn set_default(&self, response: ScriptedResponse) {
        lock(&self.state).fallback = Some(response);
    }

    /// Answer every request the queue does not with `responder(request)`.
    pub fn set_responder(&self, responder: fn(&RecordedRequest) -> ScriptedResponse) {
        lock(&self.state).responder = Some(responder);
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
    }
}

/// A reply that depends only on what was asked (FNV-1a of the request body), for
/// checks that arrival order changes nothing: a proposal for the parameters `prompt`,
/// `a`, `b` and `x` (the built-in tasks') and, last, a number an agent's answer is scored
/// on; usage (100, 20).
///
/// An embeddings request (`…/embeddings`) gets a unit vector of 16 numbers derived from
/// its `input` alone (identical inputs, identical vectors), usage 7.
pub fn varied_reply(request: &RecordedRequest) -> ScriptedResponse {
    let fnv = |bytes: &[u8]| {
        bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
        })
    };
    if request.path.ends_with("/embeddings") {
        let input = request
            .json()
            .and_then(|v| v.get("input").map(|i| i.to_string()))
            .unwrap_or_default();
        let mut state = fnv(input.as_bytes()) | 1;
        let raw: Vec<f64> = (0..16)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect();
        let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
        let unit: Vec<f64> = raw.iter().map(|x| x / norm).collect();
        return ScriptedResponse::embedding(&unit, 7);
    }
    let h = fnv(request.body.as_bytes());
    let variable = |name: &str, value: String| {
        format!("<variable><name>{name}</name><value>{value}</value></variable>\n")
    };
    let content = format!(
        "<reasoning>r{}</reasoning>\n{}{}{}{}The answer is {}.",
        h % 1000,
        variable("prompt", format!("Answer carefully, style {}.", h % 7)),
        variable("a", (h % 5).to_string()),
        variable("b", (h % 3).to_string()),
        variable("x", (h % 9).to_string()),
        h % 20
    );
    ScriptedResponse::chat(&content, Some((100, 20)))
}

/// Serve one request on one connection (`Connection: close`).
fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    if method.is_empty() {
        return Ok(()); // a bare connect (e.g. the shutdown wake-up)
    }
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _): &&(String, String)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(&mut reader)?
    } else {
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut buf = vec![0; len];
        reader.read_exact(&mut buf)?;
        buf
    };
    let response = {
        let mut st = lock(state);
        let request = RecordedRequest {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        let computed = st.responder.map(|f| f(&request));
        st.requests.push(request);
        match st.script.pop_front().or(computed) {
            Some(r) => r,
            None => st
                .fallback
                .clone()
                .unwrap_or_else(|| ScriptedResponse::error(500, "mock server: script exhausted")),
        }
    };
    if !response.delay.is_zero() {
        std::thread::sleep(response.delay);
    }
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (n, v) in &response.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        response.body.len()
    ));
    out.push_str(&response.body);
    let mut stream = stream;
    stream.write_all(out.as_bytes())?;
    stream.flush()
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size_hex = size_line.trim().split(';').next().unwrap_or("0");
        let size = usize::from_str_radix(size_hex, 16).unwrap_or(0);
        let mut chunk = vec![0; size + 2]; // data + CRLF
        reader.read_exact(&mut chunk)?;
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
