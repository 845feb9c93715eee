//! External trainers: an optimizer that runs as a child process (DSPy, the `gepa` package,
//! a user's own program) while every LLM call and every score stays trace-bench's
//! (`docs/external-trainers.md`).
//!
//! Per job: a loopback server ([`crate::loopback`]) with a fresh bearer token; a job
//! packet (`packet.json`: objective, parameters, train examples with their reference,
//! validation inputs, knobs, seed) — never the test split, an API key or a provider
//! variable; the child in its own process group with a clean environment, its working
//! directory `<job>/external/`, its output in `external/trainer.log`. This thread serves
//! the child's requests one at a time through the job's [`Ctx`] — so chat calls go
//! through the job's LLM (stub or real, cache, replay, tally, rate limit, deadline,
//! `llm_calls.jsonl` with the caller's role), evaluations through the job's agent and
//! scorer, steps into the same events as native trainers — until the child exits, the
//! deadline passes or the run is cancelled (then the group is killed). The parameters the
//! child returns are re-scored by the runner; its claimed scores are recorded only.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json, json};

use super::core::{Ctx, Finish, PoolEntry};
use super::knobs::{KnobError, Knobs};
use crate::llm::{ChatRequest, Message};
use crate::loopback::{Call, Route};
use crate::registry::TrainerPreset;
use crate::stop::Stopped;
use crate::task::agent::StubAgent;
use crate::task::{Param, SplitName};
use crate::vocab::{Kwargs, Mode, ParamKind};

/// Version of the protocol (`packet.json`'s `protocol`).
pub const PROTOCOL_VERSION: u32 = 1;

/// How long a child gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// An external trainer as its preset and the job's knobs describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The trainer id of the preset.
    pub trainer: String,
    /// The program and its arguments; `{python}` and `{dir}` are replaced.
    pub command: Vec<String>,
    /// The preset's folder (`{dir}`).
    pub dir: PathBuf,
    /// Python modules the program imports (checked before the job starts).
    pub requires: Vec<String>,
    /// The install command a missing module's skip reason gives.
    pub install: Option<String>,
    /// Every knob with its value for this job (configured, else the preset's default).
    pub knobs: Kwargs,
}

impl Settings {
    /// Read the preset's `external` block and the job's knobs.
    pub fn read(preset: &TrainerPreset, k: &Knobs<'_>) -> Result<Self, KnobError> {
        let spec = preset
            .external
            .as_ref()
            .ok_or_else(|| KnobError::UnknownAlgorithm {
                trainer: preset.id.clone(),
                algorithm: "external (the preset has no `external:` block)".into(),
            })?;
        let mut knobs = Kwargs::new();
        for knob in &preset.knobs {
            if let Some(v) = k.raw(&knob.name) {
                knobs.insert(knob.name.clone(), v);
            }
        }
        for (name, _) in crate::registry::UNIVERSAL_KNOBS {
            if let Some(v) = k.raw(name) {
                knobs.insert((*name).to_string(), v);
            }
        }
        Ok(Self {
            trainer: preset.id.clone(),
            command: spec.command.clone(),
            dir: spec.dir.clone().unwrap_or_default(),
            requires: spec.requires.clone(),
            install: spec.install.clone(),
            knobs,
        })
    }

    /// The Python external trainers run with: `--external-python` / `external_python:`,
    /// else the environment `trace-bench external-env` made (when it exists), else
    /// `python3` on PATH.
    pub fn python(configured: Option<&str>) -> String {
        if let Some(p) = configured.filter(|p| !p.is_empty()) {
            // A relative path means the one from here, not from the child's directory.
            let path = Path::new(p);
            if p.contains('/')
                && path.is_relative()
                && let Ok(cwd) = std::env::current_dir()
            {
                return cwd.join(path).display().to_string();
            }
            return p.to_string();
        }
        match default_env_python() {
            Some(p) if p.is_file() => p.display().to_string(),
            _ => "python3".into(),
        }
    }

    /// Why the job cannot run here (a module its program needs is missing), with the
    /// exact command that installs it.
    pub fn missing_requirement(&self, python: &str) -> Option<String> {
        let missing: Vec<&str> = self
            .requires
            .iter()
            .filter(|m| crate::task::requires::missing(&[format!("{python}:{m}")]).is_some())
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            return None;
        }
        let install = self
            .install
            .clone()
            .unwrap_or_else(|| format!("{python} -m pip install {}", missing.join(" ")));
        Some(format!(
            "trainer `{}` needs the Python module(s) {} in `{python}`; run `trace-bench external-env` (a venv with the pinned versions) and pass the Python it prints with --external-python, or `{install}`",
            self.trainer,
            missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", "),
        ))
    }
}

/// The environment `trace-bench external-env` creates: `<cache>/trace-bench/external-env-
/// <digest of the pinned constraints>`.
pub fn default_env_dir() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let cache = var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache")))?;
    let digest = crate::vocab::canonical::sha256_hex(CONSTRAINTS);
    Some(
        cache
            .join("trace-bench")
            .join(format!("external-env-{}", &digest[..12])),
    )
}

fn default_env_python() -> Option<PathBuf> {
    default_env_dir().map(|d| d.join("bin").join("python"))
}

/// The pinned versions of the external optimizers' environment.
pub const CONSTRAINTS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/trainers/external/constraints.txt"
));

/// The packages `external-env` installs (with [`CONSTRAINTS`]).
pub const PACKAGES: &[&str] = &["dspy[optuna]==3.4.1", "gepa==0.1.4", "openevolve==0.4.0"];

/// What the child handed back.
#[derive(Debug, Default)]
struct Outcome {
    /// Parameters of the last step or the final answer.
    best: Option<Kwargs>,
    best_step: u64,
    /// The child's own final claim, recorded in `external/claims.jsonl`.
    finished: bool,
    /// What the child says optimised (`info.optimizer` of its final).
    optimizer: Option<String>,
    candidates: Vec<PoolEntry>,
}

/// Run the external trainer to its end.
pub fn run(s: &Settings, ctx: &mut Ctx<'_, '_>) -> Result<Finish, Stopped> {
    let initial = ctx.task.initial_values();
    let fail = |message: String| Finish {
        best: initial.clone(),
        failure: Some(message),
        ..Default::default()
    };
    let job = ctx.job().clone();
    let Some(job_dir) = job.dir.clone() else {
        return Ok(fail(
            "an external trainer needs a job directory to run in".into(),
        ));
    };
    let work = job_dir.join("external");
    if let Err(e) = std::fs::create_dir_all(work.join("tmp")) {
        return Ok(fail(format!("cannot create {}: {e}", work.display())));
    }
    let token = match crate::loopback::fresh_token() {
        Ok(t) => t,
        Err(e) => return Ok(fail(format!("cannot draw a job token: {e}"))),
    };
    let (server, calls) = match crate::loopback::start(&token) {
        Ok(pair) => pair,
        Err(e) => return Ok(fail(format!("cannot listen on loopback: {e}"))),
    };
    let packet = packet(s, ctx, &server.base_url());
    let packet_path = work.join("packet.json");
    if let Err(e) =
        crate::artifacts::atomic::write_atomic(&packet_path, format!("{:#}\n", packet).as_bytes())
    {
        return Ok(fail(format!("cannot write {}: {e}", packet_path.display())));
    }
    let python = Settings::python(job.external_python.as_deref());
    let mut child = match spawn(s, &python, &work, &server.base_url(), &token) {
        Ok(c) => c,
        Err(e) => {
            return Ok(fail(format!("cannot start `{}`: {e}", s.command.join(" "))));
        }
    };
    let group = child.id() as i32;
    crate::task::process::track_group(group);
    let mut outcome = Outcome::default();
    let mut claims = Vec::new();
    let served = serve(ctx, &calls, &mut child, &packet, &mut outcome, &mut claims);
    // Whatever happened, nothing of the child outlives the job.
    let status = stop_child(&mut child, group);
    drop(server);
    while let Ok(call) = calls.try_recv() {
        call.reply.error(503, "trace_bench", "the job has ended");
    }
    write_claims(&work, &claims);
    served?;
    let best = outcome.best.clone().unwrap_or_else(|| initial.clone());
    let failure = match status {
        Some(st) if st.success() => None,
        _ if outcome.finished => None,
        other => Some(format!(
            "external trainer `{}` exited {}{}",
            s.trainer,
            other.map_or("by a signal".to_string(), |s| match s.code() {
                Some(c) => format!("with code {c}"),
                None => "by a signal".into(),
            }),
            log_tail(&work.join("trainer.log"))
        )),
    };
    Ok(Finish {
        best,
        best_step: outcome.best_step,
        pool: outcome.candidates,
        failure,
        resolved_optimizer: Some(outcome.optimizer.unwrap_or_else(|| s.trainer.clone())),
    })
}

/// The job packet: everything the child may know.
fn packet(s: &Settings, ctx: &Ctx<'_, '_>, base: &str) -> Json {
    let task = ctx.task;
    let params: Vec<Json> = task
        .params()
        .iter()
        .map(|p: &Param| {
            json!({
                "name": p.name,
                "kind": p.kind,
                "initial": p.initial,
                "trainable": p.trainable,
                "description": p.description,
            })
        })
        .collect();
    let examples = |split: SplitName, with_info: bool| -> Vec<Json> {
        ctx.split(split)
            .iter()
            .enumerate()
            .map(|(i, ex)| {
                let mut e = json!({"id": i, "input": ex.input});
                if with_info {
                    e["info"] = ex.info.clone();
                }
                e
            })
            .collect()
    };
    let job = ctx.job();
    json!({
        "protocol": PROTOCOL_VERSION,
        "job_id": job.job_id,
        "trainer_id": job.trainer_id,
        "task_id": task.id(),
        "seed": ctx.seed(),
        "mode": job.mode.as_str(),
        "objective": task.manifest.objective,
        "prompt_param": task.prompt_param(),
        "scores_replies": task.prompt_param().is_some(),
        "parameters": params,
        "train": examples(SplitName::Train, true),
        "validation": examples(SplitName::Validation, false),
        "knobs": s.knobs,
        "endpoints": {
            "base_url": base,
            "llm_base_url": format!("{base}/v1"),
            "roles": ["task", "prompt", "reflection", "proposer", "teacher"],
        },
    })
}

/// Start the child: its own process group, a clean environment, output to a log file.
fn spawn(
    s: &Settings,
    python: &str,
    work: &Path,
    base: &str,
    token: &str,
) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let dir = s.dir.display().to_string();
    let argv: Vec<String> = s
        .command
        .iter()
        .map(|a| a.replace("{python}", python).replace("{dir}", &dir))
        .collect();
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("the preset's command is empty"))?;
    let log = std::fs::File::create(work.join("trainer.log"))?;
    let path = "/usr/local/bin:/usr/bin:/bin";
    let w = |p: &str| work.join(p).display().to_string();
    Command::new(program)
        .args(args)
        .current_dir(work)
        .env_clear()
        .env("PATH", path)
        .env("HOME", work)
        .env("TMPDIR", w("tmp"))
        .env("LANG", "C.UTF-8")
        .env("PYTHONHASHSEED", "0")
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONNOUSERSITE", "1")
        // `tb_client` is importable by every external trainer.
        .env("PYTHONPATH", crate::registry::external_client_dir())
        // Libraries must not fetch anything or keep their own caches: calls reach us.
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("DSPY_CACHEDIR", w(".dspy_cache"))
        .env("XDG_CACHE_HOME", w(".cache"))
        .env("HF_HUB_OFFLINE", "1")
        .env("TQDM_DISABLE", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("TB_PACKET", w("packet.json"))
        .env("TB_URL", base)
        .env("TB_TOKEN", token)
        .env("TB_LLM_BASE_URL", format!("{base}/v1"))
        .env("TB_LLM_API_KEY", token)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
}

/// Serve the child's calls until it exits; `Err` when the job must stop.
fn serve(
    ctx: &mut Ctx<'_, '_>,
    calls: &std::sync::mpsc::Receiver<Call>,
    child: &mut Child,
    packet: &Json,
    outcome: &mut Outcome,
    claims: &mut Vec<Json>,
) -> Result<(), Stopped> {
    loop {
        ctx.poll_stop(true)?;
        match calls.recv_timeout(Duration::from_millis(20)) {
            Ok(call) => handle(ctx, call, packet, outcome, claims)?,
            Err(RecvTimeoutError::Timeout) => {
                if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                    // Answer what arrived in the meantime, then stop serving.
                    while let Ok(call) = calls.try_recv() {
                        handle(ctx, call, packet, outcome, claims)?;
                    }
                    return Ok(());
                }
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}

/// One call of the child.
fn handle(
    ctx: &mut Ctx<'_, '_>,
    call: Call,
    packet: &Json,
    outcome: &mut Outcome,
    claims: &mut Vec<Json>,
) -> Result<(), Stopped> {
    let Call { route, body, reply } = call;
    match route {
        Route::Packet => reply.send(200, packet.clone()),
        Route::Models => {
            let data: Vec<Json> = ["tb-task", "tb-prompt", "tb-reflection"]
                .iter()
                .map(|m| json!({"id": m, "object": "model", "owned_by": "trace-bench"}))
                .collect();
            reply.send(200, json!({"object": "list", "data": data}));
        }
        Route::ChatCompletions => match chat(ctx, &body) {
            Ok(Ok(answer)) => reply.send(200, answer),
            Ok(Err((status, message))) => reply.error(status, "invalid_request_error", message),
            Err(stopped) => {
                reply.error(503, "trace_bench", "the job is stopping");
                return Err(stopped);
            }
        },
        Route::Embeddings => match embeddings(ctx, &body) {
            Ok(answer) => reply.send(200, answer),
            Err((status, message)) => reply.error(status, "invalid_request_error", message),
        },
        Route::Evaluate => match evaluate(ctx, &body) {
            Ok(Ok(answer)) => reply.send(200, answer),
            Ok(Err((status, message))) => reply.error(status, "trace_bench", message),
            Err(stopped) => {
                reply.error(503, "trace_bench", "the job is stopping");
                return Err(stopped);
            }
        },
        Route::Score => match score(ctx, &body) {
            Ok(Ok(answer)) => reply.send(200, answer),
            Ok(Err((status, message))) => reply.error(status, "trace_bench", message),
            Err(stopped) => {
                reply.error(503, "trace_bench", "the job is stopping");
                return Err(stopped);
            }
        },
        Route::Progress => {
            claims.push(json!({"progress": body}));
            match progress(ctx, &body, outcome) {
                Ok(Ok(())) => reply.send(200, json!({"ok": true})),
                Ok(Err((status, message))) => reply.error(status, "trace_bench", message),
                Err(stopped) => {
                    reply.error(503, "trace_bench", "the job is stopping");
                    return Err(stopped);
                }
            }
        }
        Route::Final => {
            claims.push(json!({"final": body}));
            match params_of(ctx, body.get("best_params").or(body.get("params"))) {
                Ok(params) => {
                    outcome.best = Some(params);
                    outcome.best_step = ctx.step();
                    outcome.finished = true;
                    outcome.optimizer = body
                        .pointer("/info/optimizer")
                        .and_then(Json::as_str)
                        .map(str::to_string);
                    reply.send(200, json!({"ok": true}));
                }
                Err(message) => reply.error(400, "trace_bench", message),
            }
        }
    }
    Ok(())
}

type Refusal = (u16, String);

/// `/v1/chat/completions`: `n` answers through the job's LLM (each its own occurrence).
fn chat(ctx: &mut Ctx<'_, '_>, body: &Json) -> Result<Result<Json, Refusal>, Stopped> {
    if body.get("stream").and_then(Json::as_bool) == Some(true) {
        return Ok(Err((
            400,
            "streaming is not supported; send `stream: false`".into(),
        )));
    }
    let model = body
        .get("model")
        .and_then(Json::as_str)
        .unwrap_or("tb-task");
    let role = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .trim_start_matches("tb-")
        .to_string();
    let request = match chat_request(body) {
        Ok(r) => r,
        Err(message) => return Ok(Err((400, message))),
    };
    let n = body
        .get("n")
        .and_then(Json::as_u64)
        .unwrap_or(1)
        .clamp(1, 16);
    let mut choices = Vec::new();
    let (mut prompt_tokens, mut completion_tokens) = (0, 0);
    for index in 0..n {
        let canned = stub_task_answer(ctx, &role, &request);
        match ctx.relay(&role, &request, canned)? {
            Ok(r) => {
                prompt_tokens += r.usage.prompt_tokens;
                completion_tokens += r.usage.completion_tokens;
                choices.push(json!({
                    "index": index,
                    "message": {"role": "assistant", "content": r.content},
                    "finish_reason": r.finish_reason.unwrap_or_else(|| "stop".into()),
                }));
            }
            Err(e) => return Ok(Err((502, format!("{}: {e}", e.kind())))),
        }
    }
    Ok(Ok(json!({
        "id": format!("chatcmpl-tb-{}", ctx.step()),
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    })))
}

/// The OpenAI body as our request: text of every message, sampling settings, and the
/// fields the provider must see.
fn chat_request(body: &Json) -> Result<ChatRequest, String> {
    let messages = body
        .get("messages")
        .and_then(Json::as_array)
        .filter(|m| !m.is_empty())
        .ok_or("`messages` must be a non-empty list")?;
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        let role = m.get("role").and_then(Json::as_str).unwrap_or("user");
        let content = match m.get("content") {
            Some(Json::String(s)) => s.clone(),
            Some(Json::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Json::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            Some(Json::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        out.push(Message::new(role, content));
    }
    const OURS: &[&str] = &[
        "model",
        "messages",
        "n",
        "stream",
        "temperature",
        "max_tokens",
        "max_completion_tokens",
        "user",
    ];
    let extra: Map<String, Json> = body
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, v)| !OURS.contains(&k.as_str()) && !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    Ok(ChatRequest {
        messages: out,
        temperature: body.get("temperature").and_then(Json::as_f64),
        max_tokens: body
            .get("max_tokens")
            .or(body.get("max_completion_tokens"))
            .and_then(Json::as_u64)
            .map(|m| m.min(u32::MAX as u64) as u32),
        variables: Vec::new(),
        feedback: String::new(),
        extra,
    })
}

/// Stub mode's task program: a `task` call about an example of the train or validation
/// split is answered by the stub agent's rule ([`StubAgent`]) under the instructions the
/// request carries, in the format the request asks for — as a native trainer's job would
/// answer it. `None` otherwise (the library stub answers).
fn stub_task_answer(ctx: &Ctx<'_, '_>, role: &str, request: &ChatRequest) -> Option<String> {
    if ctx.job().mode != Mode::Stub || role != "task" {
        return None;
    }
    let last_user = request.messages.iter().rev().find(|m| m.role == "user")?;
    let instructions: String = request
        .messages
        .iter()
        .filter(|m| m.role == "system")
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let example = [SplitName::Train, SplitName::Validation]
        .iter()
        .flat_map(|s| ctx.split(*s))
        .filter(|ex| {
            let text = crate::task::dataset::input_text(&ex.input);
            !text.trim().is_empty() && last_user.content.contains(text.trim())
        })
        .max_by_key(|ex| crate::task::dataset::input_text(&ex.input).len())?;
    let answer = StubAgent::answer(&instructions, example);
    Some(crate::backend::library_stub::format_answer(
        request, &answer,
    ))
}

/// `/v1/embeddings`: stub mode answers deterministic unit vectors of the text (identical
/// texts at distance 0, distinct ones about sqrt(2) apart); real mode sends each input
/// through the job's LLM (`Ctx::embed`: the same client, cache, replay, tally and rate
/// limit as chat calls; the model is `llm.embedding_model`, else the chat model, as for
/// the native trainers — the child's role-tagged model name is not forwarded).
fn embeddings(ctx: &mut Ctx<'_, '_>, body: &Json) -> Result<Json, Refusal> {
    let inputs: Vec<String> = match body.get("input") {
        Some(Json::String(s)) => vec![s.clone()],
        Some(Json::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect(),
        _ => return Err((400, "`input` must be a string or a list of strings".into())),
    };
    let mut tokens = 0;
    let vectors: Vec<Vec<f64>> = if ctx.job().mode == Mode::Stub {
        inputs
            .iter()
            .map(|text| crate::llm::hash_embedding(text))
            .collect()
    } else {
        let answers = ctx
            .embed(&inputs, None)
            .map_err(|_| (503, "the job is stopping".to_string()))?;
        let mut out = Vec::new();
        for answer in answers {
            match answer {
                Some(v) => out.push(v),
                None => {
                    return Err((
                        502,
                        "the embeddings endpoint failed (see the job's warnings)".into(),
                    ));
                }
            }
        }
        out
    };
    let data: Vec<Json> = inputs
        .iter()
        .zip(vectors)
        .enumerate()
        .map(|(i, (text, vector))| {
            tokens += crate::llm::estimate_tokens(text);
            json!({"object": "embedding", "index": i, "embedding": vector})
        })
        .collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": body.get("model").cloned().unwrap_or(json!("tb-embed")),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}

fn split_of(body: &Json) -> Result<SplitName, Refusal> {
    match body.get("split").and_then(Json::as_str).unwrap_or("train") {
        "train" => Ok(SplitName::Train),
        "validation" | "val" => Ok(SplitName::Validation),
        "test" => Err((
            403,
            "the test split is held out: trace-bench scores the returned parameters on it".into(),
        )),
        other => Err((
            400,
            format!("unknown split `{other}` (train or validation)"),
        )),
    }
}

/// Complete parameters from the child's: the job's initial values, then its changes of
/// trainable parameters (numbers may come as text, as GEPA sends every component).
fn params_of(ctx: &Ctx<'_, '_>, given: Option<&Json>) -> Result<Kwargs, String> {
    let mut params = ctx.task.initial_values();
    let Some(given) = given else {
        return Ok(params);
    };
    let given = given
        .as_object()
        .ok_or("parameters must be an object of name: value")?;
    for (name, value) in given {
        let param = ctx
            .task
            .params()
            .iter()
            .find(|p| &p.name == name)
            .ok_or_else(|| format!("the task has no parameter `{name}`"))?;
        let value = match (param.kind, value) {
            (ParamKind::Number, Json::String(s)) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(|x| {
                    if param.initial.is_i64() && x.fract() == 0.0 {
                        Some(json!(x as i64))
                    } else {
                        serde_json::Number::from_f64(x).map(Json::Number)
                    }
                })
                .ok_or_else(|| format!("parameter `{name}` must be a number, got {s:?}"))?,
            (ParamKind::Number, Json::Number(_)) => value.clone(),
            (ParamKind::Number, other) => {
                return Err(format!("parameter `{name}` must be a number, got {other}"));
            }
            (_, Json::String(_)) => value.clone(),
            (_, other) => {
                return Err(format!("parameter `{name}` must be text, got {other}"));
            }
        };
        if !param.trainable && params.get(name) != Some(&value) {
            return Err(format!("parameter `{name}` is not trainable"));
        }
        params.insert(name.clone(), value);
    }
    Ok(params)
}

fn ids_of(ctx: &Ctx<'_, '_>, body: &Json, split: SplitName) -> Result<Vec<usize>, Refusal> {
    let len = ctx.split(split).len();
    match body.get("ids") {
        None | Some(Json::Null) => Ok((0..len).collect()),
        Some(Json::Array(ids)) => ids
            .iter()
            .map(|i| {
                i.as_u64()
                    .map(|i| i as usize)
                    .filter(|i| *i < len)
                    .ok_or_else(|| {
                        (
                            400,
                            format!("example id {i} is not in 0..{len} of the split"),
                        )
                    })
            })
            .collect(),
        Some(other) => Err((
            400,
            format!("`ids` must be a list of integers, got {other}"),
        )),
    }
}

/// `/tb/evaluate`: trace-bench runs its agent and scorer on the examples.
fn evaluate(ctx: &mut Ctx<'_, '_>, body: &Json) -> Result<Result<Json, Refusal>, Stopped> {
    let split = match split_of(body) {
        Ok(s) => s,
        Err(r) => return Ok(Err(r)),
    };
    let ids = match ids_of(ctx, body, split) {
        Ok(ids) => ids,
        Err(r) => return Ok(Err(r)),
    };
    let params = match params_of(ctx, body.get("params")) {
        Ok(p) => p,
        Err(m) => return Ok(Err((400, m))),
    };
    let id = ctx.new_id();
    let eval = ctx.evaluate(id, &params, split, &ids)?;
    let examples = ctx.split(split);
    let results: Vec<Json> = ids
        .iter()
        .zip(&eval.examples)
        .map(|(&i, r)| {
            json!({
                "id": i,
                "score": r.score,
                "feedback": r.feedback,
                "output": r.output,
                "input": examples[i].input,
            })
        })
        .collect();
    Ok(Ok(json!({
        "candidate_id": id,
        "score": eval.score,
        "results": results,
    })))
}

/// `/tb/score`: one reply to one example, scored by the task's scorer.
fn score(ctx: &mut Ctx<'_, '_>, body: &Json) -> Result<Result<Json, Refusal>, Stopped> {
    let split = match split_of(body) {
        Ok(s) => s,
        Err(r) => return Ok(Err(r)),
    };
    let Some(id) = body.get("id").and_then(Json::as_u64).map(|i| i as usize) else {
        return Ok(Err((400, "`id` must be an example id".into())));
    };
    if id >= ctx.split(split).len() {
        return Ok(Err((400, format!("example id {id} is not in the split"))));
    }
    let reply = match body.get("response") {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    match ctx.score_reply(split, id, &reply)? {
        Some(r) => Ok(Ok(json!({"score": r.score, "feedback": r.feedback}))),
        None => Ok(Err((
            400,
            "this task scores parameters, not replies: use /tb/evaluate".into(),
        ))),
    }
}

/// `/tb/progress`: `step` closes a step with the trainer's current best parameters (its
/// own score recorded as its estimate); `candidate` reports a candidate it evaluated.
fn progress(
    ctx: &mut Ctx<'_, '_>,
    body: &Json,
    outcome: &mut Outcome,
) -> Result<Result<(), Refusal>, Stopped> {
    let claimed = body.get("score").and_then(Json::as_f64);
    match body.get("event").and_then(Json::as_str) {
        Some("step") => {
            let params = match params_of(ctx, body.get("best_params").or(body.get("params"))) {
                Ok(p) => p,
                Err(m) => return Ok(Err((400, m))),
            };
            outcome.best = Some(params.clone());
            outcome.best_step = ctx.step();
            ctx.end_step(&params, claimed, None)?;
            Ok(Ok(()))
        }
        Some("candidate") => {
            let id = body.get("candidate_id").and_then(Json::as_u64);
            let Some(id) = id else {
                return Ok(Err((
                    400,
                    "`candidate_id` (from /tb/evaluate) is required".into(),
                )));
            };
            let parent = body.get("parent_id").and_then(Json::as_u64);
            ctx.candidate(id, parent, None, claimed, false);
            outcome.candidates.push(PoolEntry { id, score: claimed });
            Ok(Ok(()))
        }
        Some("log") => Ok(Ok(())),
        _ => Ok(Err((
            400,
            "`event` must be `step`, `candidate` or `log`".into(),
        ))),
    }
}

/// Everything the child claimed (progress and final), for the record: never a score.
fn write_claims(work: &Path, claims: &[Json]) {
    let mut text = String::new();
    for c in claims {
        text.push_str(&c.to_string());
        text.push('\n');
    }
    let _ = crate::artifacts::atomic::write_atomic(&work.join("claims.jsonl"), text.as_bytes());
}

/// SIGTERM the group, SIGKILL it after the grace period; the child's exit status if it
/// exited by itself.
fn stop_child(child: &mut Child, group: i32) -> Option<std::process::ExitStatus> {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    let exited = child.try_wait().ok().flatten();
    if exited.is_none() {
        let _ = killpg(Pid::from_raw(group), Signal::SIGTERM);
        let until = Instant::now() + TERM_GRACE;
        while Instant::now() < until {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Leftover grandchildren of an exited child, or a child that ignored SIGTERM.
    crate::task::process::kill_group(group);
    let _ = child.wait();
    exited
}

/// The last lines the child printed, for the failure message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let tail = crate::task::process::tail_text(&text, 600);
    if tail.is_empty() {
        String::new()
    } else {
        format!("; its output ends: {tail}")
    }
}
