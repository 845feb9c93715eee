//! An on-disk, content-addressed cache of LLM responses.
//!
//! Real-model runs cost money and are not repeatable: the same prompt gives another
//! answer tomorrow. Recording every answer lets a run be resumed or re-run without
//! paying twice, and `replay` mode re-runs a recorded benchmark fully offline, answer
//! for answer, so results can be reproduced and debugged.
//!
//! **Key.** SHA-256 hex of the canonical JSON ([`canonical_json`]) of
//! `{"format", "request", "seed", "occurrence", "job"}`, where `request` is
//! [`Llm::request_fingerprint`]: the endpoint URL (normalised, so `.../v1` and `.../v1/`
//! agree) and the body that is sent (model, messages, temperature, max_tokens, and the
//! fields an external trainer set), never the API key. `occurrence` counts identical
//! requests within the job (0 for the first, 1 for the second, …) so that a job — or a
//! library that resends a prompt expecting another sample — asking the same question twice
//! gets two independently sampled answers, as it would from the live model, and a replay
//! gets them back in order. `job` makes answers private to the job: two jobs that send the
//! same prompt (other trainers, same seed) are independent samples, with the cache on as
//! with it off. `llm.cache_scope: seed` drops it, so jobs with the same seed share answers
//! (common random numbers), on purpose.
//!
//! **Layout.** `<dir>/<first two hex chars>/<key>.json`, written atomically (temp file +
//! rename), holding the response (model, content, usage) as JSON. A file that cannot be
//! read or parsed, or belongs to another key, is a miss (and is overwritten in
//! `read_write` mode), never a crash.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::{
    ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, Llm, LlmError, LlmInfo, Usage,
};
use crate::artifacts::atomic::write_atomic;
use crate::vocab::canonical::{canonical_json, sha256_hex};

/// Version of the key derivation and file format; bump to invalidate old entries.
pub const CACHE_FORMAT: u32 = 2;

/// Which jobs may share a cached answer (`llm.cache_scope`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheScope {
    /// Answers are private to the job (independent samples; default).
    #[default]
    Job,
    /// Jobs with the same seed share answers to identical requests (common random numbers).
    Seed,
}

/// How the response cache is used (`llm.cache`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheMode {
    /// Never read or write.
    Off,
    /// Answer hits from disk, record misses (the default: re-runs are free).
    #[default]
    ReadWrite,
    /// Answer only from disk; a miss is [`LlmError::Replay`] (offline reproduction).
    Replay,
}

impl CacheMode {
    /// The config spelling: `off`, `read_write` or `replay`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::ReadWrite => "read_write",
            Self::Replay => "replay",
        }
    }
}

impl std::fmt::Display for CacheMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CacheMode {
    type Err = String;

    /// Parses `off`, `read_write` (also `read-write`, `readwrite`) and `replay`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(Self::Off),
            "read_write" | "read-write" | "readwrite" => Ok(Self::ReadWrite),
            "replay" => Ok(Self::Replay),
            other => Err(format!(
                "unknown cache mode `{other}`: expected `off`, `read_write` or `replay`"
            )),
        }
    }
}

/// The default cache directory: `$TRACE_BENCH_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/trace-bench/llm`, else `$HOME/.cache/trace-bench/llm`; `None` when
/// none is set. User-level, so recorded answers are shared by all runs of the user.
pub fn default_cache_dir() -> Option<PathBuf> {
    default_cache_dir_from(|name| std::env::var_os(name))
}

/// [`default_cache_dir`] with an injected environment lookup (tests).
pub fn default_cache_dir_from(get: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let set = |name: &str| get(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set("TRACE_BENCH_CACHE_DIR") {
        return Some(dir);
    }
    // The XDG spec says relative values are invalid and must be ignored.
    if let Some(xdg) = set("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Some(xdg.join("trace-bench").join("llm"));
    }
    set("HOME").map(|home| home.join(".cache").join("trace-bench").join("llm"))
}

/// One recorded answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedResponse {
    /// Model that answered (as configured).
    pub model: String,
    /// The assistant's text.
    pub content: String,
    /// Token counts as recorded.
    pub usage: Usage,
    /// Whether the endpoint reported the usage (false: estimated).
    pub usage_reported: bool,
    /// Why the model stopped, when the endpoint said (absent in older cache files).
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// The on-disk file: the response plus what it is for, to detect misplaced files.
#[derive(Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    key: String,
    #[serde(flatten)]
    response: CachedResponse,
}

/// A cache directory and how to use it; share one per run (`Arc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseCache {
    dir: PathBuf,
    mode: CacheMode,
}

impl ResponseCache {
    /// A cache rooted at `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>, mode: CacheMode) -> Self {
        Self {
            dir: dir.into(),
            mode,
        }
    }

    /// The root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The mode.
    pub fn mode(&self) -> CacheMode {
        self.mode
    }

    /// The key of the `occurrence`-th identical request (0-based) of `owner`, for a
    /// request fingerprint.
    pub fn key(owner: &KeyOwner, fingerprint: &Json, occurrence: u64) -> String {
        let mut body = json!({
            "format": CACHE_FORMAT,
            "request": fingerprint,
            "seed": owner.seed,
            "occurrence": occurrence,
        });
        if let Some(job) = &owner.job {
            body["job"] = json!(job);
        }
        if let Some(ns) = &owner.namespace {
            body["namespace"] = json!(ns);
        }
        sha256_hex(&canonical_json(&body))
    }

    /// Where the entry for `key` lives: `<dir>/<key[..2]>/<key>.json`.
    pub fn path(&self, key: &str) -> PathBuf {
        let shard = key.get(..2).unwrap_or("xx");
        self.dir.join(shard).join(format!("{key}.json"))
    }

    /// The recorded answer for `key`; `None` when absent, unreadable, corrupt or
    /// recorded for another key.
    pub fn get(&self, key: &str) -> Option<CachedResponse> {
        let text = std::fs::read_to_string(self.path(key)).ok()?;
        let file: CacheFile = serde_json::from_str(&text).ok()?;
        (file.format == CACHE_FORMAT && file.key == key).then_some(file.response)
    }

    /// Record an answer (atomically; a concurrent writer of the same key just wins).
    pub fn put(&self, key: &str, response: &CachedResponse) -> std::io::Result<()> {
        write_atomic(&self.path(key), Self::file_text(key, response)?.as_bytes())
    }

    /// Record an answer unless one is recorded already — then return that one. The first
    /// writer wins (a hard link cannot replace a file), so jobs that send the same call at
    /// once all end up with the answer a replay will give them.
    pub fn put_first(
        &self,
        key: &str,
        response: &CachedResponse,
    ) -> std::io::Result<Option<CachedResponse>> {
        let path = self.path(key);
        let dir = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, Self::file_text(key, response)?.as_bytes())?;
        tmp.as_file().sync_all()?;
        match std::fs::hard_link(tmp.path(), &path) {
            Ok(()) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match self.get(key) {
                Some(first) => Ok(Some(first)),
                // A corrupt or foreign file under the key: replace it.
                None => tmp.persist(&path).map(|_| None).map_err(|e| e.error),
            },
            Err(e) => Err(e),
        }
    }

    fn file_text(key: &str, response: &CachedResponse) -> std::io::Result<String> {
        let file = CacheFile {
            format: CACHE_FORMAT,
            key: key.to_string(),
            response: response.clone(),
        };
        let mut text = serde_json::to_string_pretty(&file).map_err(std::io::Error::other)?;
        text.push('\n');
        Ok(text)
    }
}

/// Whose answers a key belongs to: the job (unless answers are shared by seed), its seed,
/// and the caller within the job (`None`: the optimizer; `agent`: a dataset task's agent;
/// an external trainer's role), each numbered on its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyOwner {
    /// The job id; `None` under `llm.cache_scope: seed`.
    pub job: Option<String>,
    /// The job seed.
    pub seed: i64,
    /// The caller within the job.
    pub namespace: Option<String>,
}

/// Any [`Llm`] with the response cache in front: numbers the calls of one job, answers
/// hits from disk (`cached = true`, latency about zero, usage as recorded) and records
/// misses. Build one per job, with the job seed.
pub struct CachedLlm<L: Llm> {
    inner: L,
    cache: Arc<ResponseCache>,
    owner: KeyOwner,
    next_call: u64,
    /// How often each request (by key of its first occurrence) was made so far.
    occurrences: std::collections::HashMap<String, u64>,
    warnings: Vec<String>,
}

impl<L: Llm> CachedLlm<L> {
    /// Wrap `inner` for the caller `owner`; occurrences start at 0.
    pub fn new(inner: L, cache: Arc<ResponseCache>, owner: KeyOwner) -> Self {
        Self {
            inner,
            cache,
            owner,
            next_call: 0,
            occurrences: Default::default(),
            warnings: Vec::new(),
        }
    }

    /// Calls made so far (hits, misses and errors alike).
    pub fn calls(&self) -> u64 {
        self.next_call
    }

    /// The wrapped client.
    pub fn inner(&self) -> &L {
        &self.inner
    }
}

impl<L: Llm> Llm for CachedLlm<L> {
    fn info(&self) -> LlmInfo {
        self.inner.info()
    }

    /// One request is a batch of one: the same numbering, lookup and storing.
    fn complete(&mut self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.complete_batch(std::slice::from_ref(request), 1)
            .pop()
            .unwrap_or_else(|| Err(LlmError::Failed("no answer".into())))
    }

    fn request_fingerprint(&self, request: &ChatRequest) -> Json {
        self.inner.request_fingerprint(request)
    }

    fn sent(&self, request: &ChatRequest) -> super::Sent {
        self.inner.sent(request)
    }

    fn redact(&self, text: &str) -> String {
        self.inner.redact(text)
    }

    fn take_warnings(&mut self) -> Vec<String> {
        let mut out = std::mem::take(&mut self.warnings);
        out.extend(self.inner.take_warnings());
        out
    }

    fn set_deadline(&mut self, deadline: Option<std::time::Instant>) {
        self.inner.set_deadline(deadline)
    }

    /// Embeddings are numbered, looked up, replayed and recorded like chat calls (the same
    /// owner and occurrence counting; the fingerprint says `embeddings`): the vector is
    /// stored as JSON text in the entry's `content`, its input tokens as prompt tokens.
    fn embed(&mut self, request: &EmbedRequest) -> Result<EmbedResponse, LlmError> {
        let mode = self.cache.mode();
        self.next_call += 1;
        if mode == CacheMode::Off {
            return self.inner.embed(request);
        }
        let started = Instant::now();
        let fingerprint = self.inner.embed_fingerprint(request);
        let first = ResponseCache::key(&self.owner, &fingerprint, 0);
        let seen = self.occurrences.entry(first.clone()).or_insert(0);
        let occurrence = *seen;
        *seen += 1;
        let key = if occurrence == 0 {
            first
        } else {
            ResponseCache::key(&self.owner, &fingerprint, occurrence)
        };
        let vector_of = |content: &str| serde_json::from_str::<Vec<f64>>(content).ok();
        if let Some(hit) = self.cache.get(&key)
            && let Some(vector) = vector_of(&hit.content)
        {
            return Ok(EmbedResponse {
                vector,
                model: Some(hit.model),
                tokens: hit.usage.prompt_tokens,
                latency_s: started.elapsed().as_secs_f64(),
                cached: true,
                retries: 0,
                billed: None,
            });
        }
        if mode == CacheMode::Replay {
            return Err(LlmError::Replay {
                key,
                seed: self.owner.seed,
                occurrence,
            });
        }
        let mut answer = self.inner.embed(request)?;
        let record = CachedResponse {
            model: answer.model.clone().unwrap_or_else(|| {
                fingerprint
                    .pointer("/body/model")
                    .or_else(|| fingerprint.get("model"))
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string()
            }),
            content: serde_json::to_string(&answer.vector).unwrap_or_default(),
            usage: Usage {
                prompt_tokens: answer.tokens,
                completion_tokens: 0,
            },
            usage_reported: answer.billed.is_some(),
            finish_reason: None,
        };
        match self.cache.put_first(&key, &record) {
            Ok(None) => {}
            Ok(Some(first)) => {
                if let Some(vector) = vector_of(&first.content) {
                    answer.vector = vector;
                }
            }
            Err(e) => self.warnings.push(format!(
                "cannot write the LLM response cache at {}: {e}",
                self.cache.path(&key).display()
            )),
        }
        Ok(answer)
    }

    fn embed_fingerprint(&self, request: &EmbedRequest) -> Json {
        self.inner.embed_fingerprint(request)
    }

    /// Call indices are given in request order first, hits are answered from the cache,
    /// and only the misses go to the inner client — together.
    fn complete_batch(
        &mut self,
        requests: &[ChatRequest],
        threads: usize,
    ) -> Vec<Result<ChatResponse, LlmError>> {
        let mode = self.cache.mode();
        if mode == CacheMode::Off {
            self.next_call += requests.len() as u64;
            return self.inner.complete_batch(requests, threads);
        }
        let started = Instant::now();
        let mut out: Vec<Option<Result<ChatResponse, LlmError>>> = Vec::new();
        let mut misses = Vec::new();
        for request in requests {
            self.next_call += 1;
            let fingerprint = self.inner.request_fingerprint(request);
            let first = ResponseCache::key(&self.owner, &fingerprint, 0);
            let seen = self.occurrences.entry(first.clone()).or_insert(0);
            let occurrence = *seen;
            *seen += 1;
            let key = if occurrence == 0 {
                first
            } else {
                ResponseCache::key(&self.owner, &fingerprint, occurrence)
            };
            if let Some(hit) = self.cache.get(&key) {
                out.push(Some(Ok(ChatResponse {
                    content: hit.content,
                    usage: hit.usage,
                    latency_s: started.elapsed().as_secs_f64(),
                    cached: true,
                    retries: 0,
                    usage_reported: hit.usage_reported,
                    finish_reason: hit.finish_reason,
                    billed: None,
                })));
            } else if mode == CacheMode::Replay {
                out.push(Some(Err(LlmError::Replay {
                    key,
                    seed: self.owner.seed,
                    occurrence,
                })));
            } else {
                misses.push((out.len(), key));
                out.push(None);
            }
        }
        let to_send: Vec<ChatRequest> = misses.iter().map(|(i, _)| requests[*i].clone()).collect();
        let answers = self.inner.complete_batch(&to_send, threads);
        for ((slot, key), mut answer) in misses.into_iter().zip(answers) {
            if let Ok(response) = &mut answer {
                let record = CachedResponse {
                    model: self.inner.info().model,
                    content: response.content.clone(),
                    usage: response.usage,
                    usage_reported: response.usage_reported,
                    finish_reason: response.finish_reason.clone(),
                };
                match self.cache.put_first(&key, &record) {
                    Ok(None) => {}
                    // Another job sharing answers (`cache_scope: seed`) sent the same call
                    // at the same time and recorded its answer first: use that one, so a
                    // replay gives what this job saw. This call was still sent and billed,
                    // so it is not counted as cached.
                    Ok(Some(first)) => {
                        response.content = first.content;
                        response.usage = first.usage;
                        response.usage_reported = first.usage_reported;
                        response.finish_reason = first.finish_reason;
                    }
                    Err(e) => self.warnings.push(format!(
                        "cannot write the LLM response cache at {}: {e}",
                        self.cache.path(&key).display()
                    )),
                }
            }
            out[slot] = Some(answer);
        }
        out.into_iter()
            .map(|a| a.unwrap_or_else(|| Err(LlmError::Failed("no answer".into()))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Message;
    use crate::llm::mock_server::{MockServer, ScriptedResponse as R};
    use crate::llm::openai::{ClientConfig, OpenAiClient, Secret};

    /// A fake model that numbers its answers.
    struct Counting {
        calls: u64,
    }

    impl Llm for Counting {
        fn info(&self) -> LlmInfo {
            LlmInfo {
                provider: "fake".into(),
                model: "counting".into(),
                base_url: "http://fake/v1".into(),
                stub: false,
            }
        }

        fn complete(&mut self, _: &ChatRequest) -> Result<ChatResponse, LlmError> {
            self.calls += 1;
            Ok(ChatResponse {
                content: format!("answer {}", self.calls),
                usage: Usage {
                    prompt_tokens: 10,
                    completion_tokens: self.calls,
                },
                latency_s: 1.5,
                cached: false,
                retries: 2,
                usage_reported: true,
                finish_reason: Some("stop".into()),
                billed: None,
            })
        }
    }

    fn request(text: &str) -> ChatRequest {
        ChatRequest {
            messages: vec![Message::new("user", text)],
            temperature: Some(0.7),
            max_tokens: None,
            variables: vec![],
            feedback: String::new(),
            extra: Default::default(),
        }
    }

    fn owner(seed: i64) -> KeyOwner {
        KeyOwner {
            job: Some("job-a".into()),
            seed,
            namespace: None,
        }
    }

    fn cached(dir: &Path, mode: CacheMode, seed: i64) -> CachedLlm<Counting> {
        CachedLlm::new(
            Counting { calls: 0 },
            Arc::new(ResponseCache::new(dir, mode)),
            owner(seed),
        )
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return out;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn namespaces_jobs_and_scopes_change_the_key() {
        let fp = json!({"model": "m", "messages": []});
        let base = ResponseCache::key(&owner(1), &fp, 0);
        let agent = KeyOwner {
            namespace: Some("agent".into()),
            ..owner(1)
        };
        assert_ne!(base, ResponseCache::key(&agent, &fp, 0));
        let other_job = KeyOwner {
            job: Some("job-b".into()),
            ..owner(1)
        };
        assert_ne!(base, ResponseCache::key(&other_job, &fp, 0));
        // Shared by seed: two jobs with the same seed meet, other seeds do not.
        let shared = |seed| KeyOwner {
            job: None,
            ..owner(seed)
        };
        assert_eq!(
            ResponseCache::key(&shared(1), &fp, 0),
            ResponseCache::key(&shared(1), &fp, 0)
        );
        assert_ne!(ResponseCache::key(&shared(1), &fp, 0), base);
        assert_ne!(
            ResponseCache::key(&shared(1), &fp, 0),
            ResponseCache::key(&shared(2), &fp, 0)
        );
    }

    #[test]
    fn embeddings_are_cached_numbered_and_replayed_like_chat_calls() {
        let dir = tempfile::tempdir().unwrap();
        let server = MockServer::start(vec![]).unwrap();
        server.set_responder(crate::llm::mock_server::varied_reply);
        let client = || {
            OpenAiClient::new(ClientConfig::new("openai", &server.base_url(), "m"), None).unwrap()
        };
        let embed = |text: &str| EmbedRequest {
            input: text.into(),
            model: None,
        };
        let mut first = CachedLlm::new(
            client(),
            Arc::new(ResponseCache::new(dir.path(), CacheMode::ReadWrite)),
            owner(1),
        );
        let a = first.embed(&embed("a")).unwrap();
        let a2 = first.embed(&embed("a")).unwrap();
        assert!(!a.cached && !a2.cached && a.billed == Some(7));
        assert_eq!(a.vector, a2.vector, "the mock embeds the text alone");
        assert_eq!(server.requests().len(), 2, "two occurrences, two requests");
        // A chat call with the same owner is numbered apart (another fingerprint).
        let mut replay = CachedLlm::new(
            client(),
            Arc::new(ResponseCache::new(dir.path(), CacheMode::Replay)),
            owner(1),
        );
        let hit = replay.embed(&embed("a")).unwrap();
        assert!(hit.cached && hit.billed.is_none());
        assert_eq!(hit.vector, a.vector);
        assert!(replay.embed(&embed("a")).unwrap().cached);
        assert_eq!(replay.embed(&embed("a")).unwrap_err().kind(), "replay");
        assert_eq!(server.requests().len(), 2, "replay sent nothing");
    }

    #[test]
    fn identical_requests_are_numbered_by_occurrence_not_by_position() {
        let dir = tempfile::tempdir().unwrap();
        // Record q, q, r; a replay that asks r first and then q twice gets the same answers
        // for the same occurrences (a library whose threads interleave differently).
        let mut first = cached(dir.path(), CacheMode::ReadWrite, 1);
        let q1 = first.complete(&request("q")).unwrap().content;
        let q2 = first.complete(&request("q")).unwrap().content;
        let r1 = first.complete(&request("r")).unwrap().content;
        assert_ne!(q1, q2, "a repeated request is a new sample");
        let mut replay = cached(dir.path(), CacheMode::Replay, 1);
        assert_eq!(replay.complete(&request("r")).unwrap().content, r1);
        assert_eq!(replay.complete(&request("q")).unwrap().content, q1);
        assert_eq!(replay.complete(&request("q")).unwrap().content, q2);
        assert_eq!(replay.inner().calls, 0);
    }

    #[test]
    fn jobs_do_not_share_answers_unless_the_scope_is_seed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(ResponseCache::new(dir.path(), CacheMode::ReadWrite));
        let make = |job: Option<&str>| {
            CachedLlm::new(
                Counting { calls: 0 },
                cache.clone(),
                KeyOwner {
                    job: job.map(str::to_string),
                    seed: 7,
                    namespace: None,
                },
            )
        };
        make(Some("a")).complete(&request("q")).unwrap();
        assert!(!make(Some("b")).complete(&request("q")).unwrap().cached);
        make(None).complete(&request("q")).unwrap();
        assert!(make(None).complete(&request("q")).unwrap().cached);
    }

    #[test]
    fn mode_parsing_and_default() {
        assert_eq!(CacheMode::default(), CacheMode::ReadWrite);
        for m in [CacheMode::Off, CacheMode::ReadWrite, CacheMode::Replay] {
            assert_eq!(m.as_str().parse::<CacheMode>(), Ok(m));
            assert_eq!(serde_json::to_value(m).unwrap(), json!(m.as_str()));
        }
        assert_eq!("Read-Write".parse::<CacheMode>(), Ok(CacheMode::ReadWrite));
        assert!(
            "sometimes"
                .parse::<CacheMode>()
                .unwrap_err()
                .contains("read_write")
        );
    }

    #[test]
    fn default_dir_resolution_order() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| OsString::from(*v))
            }
        };
        let all = env(&[
            ("TRACE_BENCH_CACHE_DIR", "/c"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(default_cache_dir_from(all), Some(PathBuf::from("/c")));
        let xdg = env(&[
            ("TRACE_BENCH_CACHE_DIR", ""),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(
            default_cache_dir_from(xdg),
            Some(PathBuf::from("/x/trace-bench/llm"))
        );
        let home = env(&[("XDG_CACHE_HOME", "relative"), ("HOME", "/h")]);
        assert_eq!(
            default_cache_dir_from(home),
            Some(PathBuf::from("/h/.cache/trace-bench/llm"))
        );
        assert_eq!(default_cache_dir_from(env(&[])), None);
    }

    #[test]
    fn hits_are_served_from_disk_with_recorded_usage() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = cached(dir.path(), CacheMode::ReadWrite, 1);
        let a = first.complete(&request("q")).unwrap();
        let b = first.complete(&request("q")).unwrap();
        assert_eq!(
            (a.content.as_str(), b.content.as_str()),
            ("answer 1", "answer 2")
        );
        assert!(!a.cached && a.retries == 2);
        assert_eq!(files(dir.path()).len(), 2);

        // A re-run of the same job: both answers come back in order, nothing is asked.
        let mut again = cached(dir.path(), CacheMode::ReadWrite, 1);
        let a2 = again.complete(&request("q")).unwrap();
        let b2 = again.complete(&request("q")).unwrap();
        assert_eq!(again.inner().calls, 0);
        assert_eq!((a2.content, b2.content), (a.content, b.content));
        assert!(a2.cached && a2.retries == 0 && a2.usage_reported);
        assert_eq!(a2.usage, a.usage);
        assert!(a2.latency_s < 1.0);
        assert_eq!(again.calls(), 2);
        // The third call of the job is new: it goes to the model.
        again.complete(&request("q")).unwrap();
        assert_eq!(again.inner().calls, 1);
    }

    #[test]
    fn seed_occurrence_and_request_change_the_key() {
        let fp = json!({"body": {"model": "m"}});
        let k = ResponseCache::key(&owner(1), &fp, 0);
        assert_eq!(k, ResponseCache::key(&owner(1), &fp, 0));
        assert_eq!(k.len(), 64);
        assert_ne!(k, ResponseCache::key(&owner(2), &fp, 0));
        assert_ne!(k, ResponseCache::key(&owner(1), &fp, 1));
        assert_ne!(
            k,
            ResponseCache::key(&owner(1), &json!({"body": {"model": "n"}}), 0)
        );
        let cache = ResponseCache::new("/c", CacheMode::ReadWrite);
        assert_eq!(
            cache.path(&k),
            PathBuf::from(format!("/c/{}/{k}.json", &k[..2]))
        );

        // Through the wrapper: another seed misses.
        let dir = tempfile::tempdir().unwrap();
        cached(dir.path(), CacheMode::ReadWrite, 1)
            .complete(&request("q"))
            .unwrap();
        let mut other = cached(dir.path(), CacheMode::ReadWrite, 2);
        assert!(!other.complete(&request("q")).unwrap().cached);
    }

    #[test]
    fn key_ignores_api_key_and_trailing_slash_but_not_sampling() {
        let client = |base: &str, key: &str, temperature: Option<f64>| {
            let mut c = ClientConfig::new("openai", base, "gpt");
            c.api_key = Some(Secret::new(key));
            c.temperature = temperature;
            OpenAiClient::new(c, None).unwrap()
        };
        let fp = |c: &OpenAiClient| {
            ResponseCache::key(&owner(0), &c.request_fingerprint(&request("q")), 0)
        };
        let base = fp(&client("https://api.example.com/v1", "sk-aaaaaaaaaa", None));
        assert_eq!(
            base,
            fp(&client(
                "https://api.example.com/v1/",
                "sk-bbbbbbbbbb",
                None
            ))
        );
        assert_ne!(
            base,
            fp(&client(
                "https://api.example.com/v1",
                "sk-aaaaaaaaaa",
                Some(0.0)
            ))
        );
        assert_ne!(
            base,
            fp(&client(
                "https://other.example.com/v1",
                "sk-aaaaaaaaaa",
                None
            ))
        );
    }

    #[test]
    fn replay_answers_hits_and_fails_on_misses() {
        let dir = tempfile::tempdir().unwrap();
        cached(dir.path(), CacheMode::ReadWrite, 5)
            .complete(&request("q"))
            .unwrap();
        let mut replay = cached(dir.path(), CacheMode::Replay, 5);
        assert_eq!(replay.complete(&request("q")).unwrap().content, "answer 1");
        let e = replay.complete(&request("q")).unwrap_err();
        assert!(
            matches!(
                e,
                LlmError::Replay {
                    seed: 5,
                    occurrence: 1,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("replay"));
        assert!(e.hint().unwrap().contains("read_write"));
        assert_eq!(replay.inner().calls, 0);
        // Nothing is written in replay mode.
        assert_eq!(files(dir.path()).len(), 1);
    }

    #[test]
    fn off_mode_neither_reads_nor_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut off = cached(dir.path(), CacheMode::Off, 1);
        off.complete(&request("q")).unwrap();
        off.complete(&request("q")).unwrap();
        assert_eq!(off.inner().calls, 2);
        assert!(files(dir.path()).is_empty());
    }

    #[test]
    fn corrupt_or_misplaced_files_are_misses_and_get_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResponseCache::new(dir.path(), CacheMode::ReadWrite);
        let key = ResponseCache::key(
            &owner(3),
            &Counting { calls: 0 }.request_fingerprint(&request("q")),
            0,
        );
        let path = cache.path(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        for garbage in ["{not json", "", "{\"format\": 1}", "\u{0}\u{1}binary"] {
            std::fs::write(&path, garbage).unwrap();
            assert_eq!(cache.get(&key), None);
        }
        // A valid file recorded under another key is a miss too.
        let other = CachedResponse {
            model: "m".into(),
            content: "wrong".into(),
            usage: Usage::default(),
            usage_reported: true,
            finish_reason: None,
        };
        cache.put("ab".repeat(32).as_str(), &other).unwrap();
        std::fs::copy(cache.path(&"ab".repeat(32)), &path).unwrap();
        assert_eq!(cache.get(&key), None);

        let mut llm = cached(dir.path(), CacheMode::ReadWrite, 3);
        let r = llm.complete(&request("q")).unwrap();
        assert!(!r.cached && r.content == "answer 1");
        assert_eq!(cache.get(&key).map(|c| c.content), Some("answer 1".into()));
        // Corrupt file in replay mode: a replay miss, not a crash.
        std::fs::write(&path, "{").unwrap();
        let e = cached(dir.path(), CacheMode::Replay, 3)
            .complete(&request("q"))
            .unwrap_err();
        assert!(matches!(e, LlmError::Replay { .. }));
    }

    #[test]
    fn unwritable_cache_is_a_warning_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "not a directory").unwrap();
        let mut llm = cached(&blocker, CacheMode::ReadWrite, 1);
        let r = llm.complete(&request("q")).unwrap();
        assert_eq!(r.content, "answer 1");
        let w = llm.take_warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("cannot write"));
        assert!(llm.take_warnings().is_empty());
    }

    #[test]
    fn end_to_end_hit_skips_the_server_and_the_key_never_reaches_disk() {
        const KEY: &str = "sk-test-SECRET-123";
        let server = MockServer::start(vec![R::chat("x = 42", Some((20, 4)))]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(ResponseCache::new(dir.path(), CacheMode::ReadWrite));
        let make = || {
            let mut c = ClientConfig::new("openai", &server.base_url(), "gpt-test");
            c.api_key = Some(Secret::new(KEY));
            c.max_retries = 0;
            CachedLlm::new(OpenAiClient::new(c, None).unwrap(), cache.clone(), owner(9))
        };
        let first = make().complete(&request("q")).unwrap();
        assert!(!first.cached);
        let again = make().complete(&request("q")).unwrap();
        assert!(again.cached);
        assert_eq!(again.content, "x = 42");
        assert_eq!(
            again.usage,
            Usage {
                prompt_tokens: 20,
                completion_tokens: 4
            }
        );
        assert_eq!(server.requests().len(), 1);
        let all = files(dir.path());
        assert_eq!(all.len(), 1);
        for f in all {
            let bytes = std::fs::read(&f).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("SECRET"), "key in {}", f.display());
            let v: Json = serde_json::from_str(&text).unwrap();
            assert_eq!(v["model"], json!("gpt-test"));
            assert_eq!(v["content"], json!("x = 42"));
            assert_eq!(
                v["usage"],
                json!({"prompt_tokens": 20, "completion_tokens": 4})
            );
        }
    }

    #[test]
    fn the_first_answer_recorded_for_a_key_wins() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResponseCache::new(dir.path(), CacheMode::ReadWrite);
        let answer = |text: &str| CachedResponse {
            model: "m".into(),
            content: text.into(),
            usage: Usage::default(),
            usage_reported: true,
            finish_reason: None,
        };
        let key = "cd".repeat(32);
        assert_eq!(cache.put_first(&key, &answer("first")).unwrap(), None);
        let kept = cache.put_first(&key, &answer("second")).unwrap();
        assert_eq!(kept.map(|r| r.content).as_deref(), Some("first"));
        assert_eq!(cache.get(&key).unwrap().content, "first");
        // A corrupt file under the key is replaced.
        std::fs::write(cache.path(&key), "{broken").unwrap();
        assert_eq!(cache.put_first(&key, &answer("third")).unwrap(), None);
        assert_eq!(cache.get(&key).unwrap().content, "third");
        // No temporary files are left next to the entries.
        let shard = cache.path(&key).parent().unwrap().to_path_buf();
        assert_eq!(std::fs::read_dir(shard).unwrap().count(), 1);
    }
}
