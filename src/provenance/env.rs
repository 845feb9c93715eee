//! Environment capture for `meta/env.json`.
//!
//! A benchmark result is only interpretable if we know which backend, model, endpoint and
//! devices produced it, and much of that lives in environment variables. The same variables
//! also hold API keys, so this module records an allow-listed subset of the environment and
//! guarantees that no secret value reaches disk:
//!
//! * variables whose *name* looks secret ([`is_secret_name`]) are written as [`REDACTED`];
//! * any captured value that *contains* a secret value (e.g. a base URL carrying
//!   `?key=<the API key>`) has that substring replaced by [`REDACTED`].
//!
//! [`secret_values`] and [`redact_secrets_in_text`] are exposed so that other writers (LLM
//! call logs, config snapshots, job logs) can apply the same value-based redaction.
//!
//! The allow-list and the secret-name markers follow the Python reference (Trace-Bench), with
//! a few additions (`OPENROUTER_`, `GEMINI_`, Slurm ids, `RAYON_NUM_THREADS`; `PASSWD`,
//! `CREDENTIAL`, `AUTH`, `*_PAT`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// Marker written in place of every secret.
pub const REDACTED: &str = "***REDACTED***";

/// Secret values shorter than this (in bytes, after trimming) are never searched for inside
/// other values: short strings like `1` or `true` would redact unrelated text.
const MIN_SECRET_LEN: usize = 8;

/// Upper-cased substrings that make a variable name secret.
const SECRET_NAME_MARKERS: [&str; 7] = [
    "KEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "AUTH",
];

/// Variables captured by exact name.
const CAPTURED_NAMES: [&str; 10] = [
    "TRACE_DEFAULT_LLM_BACKEND",
    "TRACE_LITELLM_MODEL",
    "TRACE_CUSTOMLLM_MODEL",
    "TRACE_CUSTOMLLM_URL",
    "CUDA_VISIBLE_DEVICES",
    "PYTHONPATH",
    "SLURM_JOB_ID",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "RAYON_NUM_THREADS",
];

/// Variables captured by (case-sensitive) prefix.
const CAPTURED_PREFIXES: [&str; 8] = [
    "TRACE_",
    "OPENAI_",
    "ANTHROPIC_",
    "AZURE_",
    "HF_",
    "HUGGINGFACE_",
    "OPENROUTER_",
    "GEMINI_",
];

/// True when the variable's value must never be written: the upper-cased name contains
/// `KEY`, `TOKEN`, `SECRET`, `PASSWORD`, `PASSWD`, `CREDENTIAL` or `AUTH`, or ends with `_PAT`.
///
/// Deliberately broad: over-redacting (`MONKEY_MODE`) is harmless, leaking is not.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_uppercase();
    SECRET_NAME_MARKERS.iter().any(|m| upper.contains(m)) || upper.ends_with("_PAT")
}

/// True when the variable belongs in `env.json` (exact allow-list or allowed prefix).
/// Names are matched case-sensitively, as the OS does on Unix.
pub fn is_captured_name(name: &str) -> bool {
    CAPTURED_NAMES.contains(&name) || CAPTURED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The current process environment as `String` pairs.
///
/// Unlike [`std::env::vars`] this never panics: names or values that are not valid Unicode
/// are converted lossily. Feed the result to [`capture_env`] or [`secret_values`].
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

/// Values of all secret-named variables in `vars` (trimmed, at least 8 bytes long),
/// deduplicated and ordered longest first (ties alphabetically), ready for
/// [`redact_secrets_in_text`].
pub fn secret_values(vars: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    let mut out: Vec<String> = vars
        .into_iter()
        .filter(|(name, _)| is_secret_name(name))
        .filter_map(|(_, value)| {
            let trimmed = value.trim();
            (trimmed.len() >= MIN_SECRET_LEN).then(|| trimmed.to_owned())
        })
        .collect();
    out.sort_unstable_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    out.dedup();
    out
}

/// Replaces every occurrence of every secret (of at least 8 bytes) in `text` by [`REDACTED`].
///
/// All occurrences of all secrets are located in the original text first, and overlapping or
/// adjacent occurrences are merged into one redacted span, so the result does not depend on
/// the order of `secrets` and no fragment of an overlapping secret survives.
pub fn redact_secrets_in_text(text: &str, secrets: &[String]) -> String {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for secret in secrets.iter().filter(|s| s.len() >= MIN_SECRET_LEN) {
        let mut from = 0;
        while let Some(pos) = text[from..].find(secret.as_str()) {
            let start = from + pos;
            spans.push((start, start + secret.len()));
            // Step one character so that overlapping occurrences are found too.
            let step = text[start..].chars().next().map_or(1, char::len_utf8);
            from = start + step;
        }
    }
    if spans.is_empty() {
        return text.to_owned();
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut cursor = 0;
    let mut iter = spans.into_iter().peekable();
    while let Some((start, mut end)) = iter.next() {
        while let Some(&(next_start, next_end)) = iter.peek() {
            if next_start > end {
                break;
            }
            end = end.max(next_end);
            iter.next();
        }
        out.push_str(&text[cursor..start]);
        out.push_str(REDACTED);
        cursor = end;
    }
    out.push_str(&text[cursor..]);
    out
}

/// Builds the `env.json` document from `vars` (normally [`process_env`]).
///
/// Shape: `{"captured_at": "<RFC 3339, µs, UTC>Z", "env": {<sorted name>: <value or
/// REDACTED>}, "runtime": {"tool", "tool_version", "os", "arch", "family"}}`.
/// Secret-named captured variables become [`REDACTED`]; other captured values have any
/// embedded secret value (from *any* secret-named variable in `vars`) replaced by
/// [`REDACTED`]. When a name occurs twice in `vars`, the last value wins.
pub fn capture_env(
    vars: impl IntoIterator<Item = (String, String)>,
    captured_at: SystemTime,
) -> Value {
    let vars: Vec<(String, String)> = vars.into_iter().collect();
    let secrets = secret_values(vars.iter().cloned());

    let mut captured: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in vars {
        if !is_captured_name(&name) {
            continue;
        }
        let value = if is_secret_name(&name) {
            REDACTED.to_owned()
        } else {
            redact_secrets_in_text(&value, &secrets)
        };
        captured.insert(name, value);
    }
    let env: Map<String, Value> = captured
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();

    let mut runtime = Map::new();
    runtime.insert("tool".into(), "trace-bench".into());
    runtime.insert("tool_version".into(), env!("CARGO_PKG_VERSION").into());
    runtime.insert("os".into(), std::env::consts::OS.into());
    runtime.insert("arch".into(), std::env::consts::ARCH.into());
    runtime.insert("family".into(), std::env::consts::FAMILY.into());

    let mut doc = Map::new();
    doc.insert("captured_at".into(), rfc3339_micros(captured_at).into());
    doc.insert("env".into(), Value::Object(env));
    doc.insert("runtime".into(), Value::Object(runtime));
    Value::Object(doc)
}

/// `humantime::format_rfc3339_micros`, clamped to 1970..=9999 so it can never panic
/// (humantime panics before the epoch and fails after year 9999).
fn rfc3339_micros(t: SystemTime) -> String {
    // 9999-12-31T23:59:59.999999Z
    let max = UNIX_EPOCH + Duration::new(253_402_300_799, 999_999_000);
    let t = t.clamp(UNIX_EPOCH, max);
    let mut s = String::new();
    match write!(s, "{}", humantime::format_rfc3339_micros(t)) {
        Ok(()) => s,
        Err(_) => "1970-01-01T00:00:00.000000Z".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn secret_names() {
        for n in [
            "OPENAI_API_KEY",
            "openai_api_key",
            "HF_TOKEN",
            "AZURE_CLIENT_SECRET",
            "DB_PASSWORD",
            "MY_PASSWD",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "TRACE_AUTH_HEADER",
            "GITHUB_PAT",
            "gh_pat",
        ] {
            assert!(is_secret_name(n), "{n} should be secret");
        }
        for n in [
            "OPENAI_BASE_URL",
            "PATH",
            "TRACE_LITELLM_MODEL",
            "PATCH_LEVEL",
            "HF_HOME",
        ] {
            assert!(!is_secret_name(n), "{n} should not be secret");
        }
    }

    #[test]
    fn captured_names() {
        for n in [
            "TRACE_DEFAULT_LLM_BACKEND",
            "CUDA_VISIBLE_DEVICES",
            "PYTHONPATH",
            "SLURM_JOB_ID",
            "SLURM_ARRAY_TASK_ID",
            "RAYON_NUM_THREADS",
            "TRACE_ANYTHING",
            "OPENAI_BASE_URL",
            "ANTHROPIC_API_KEY",
            "AZURE_OPENAI_ENDPOINT",
            "HF_HOME",
            "HUGGINGFACE_HUB_CACHE",
            "OPENROUTER_API_KEY",
            "GEMINI_MODEL",
        ] {
            assert!(is_captured_name(n), "{n} should be captured");
        }
        for n in [
            "PATH",
            "HOME",
            "SLURM_NODELIST",
            "DAYTONA_API_KEY",
            "trace_lower",
            "XTRACE_",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            assert!(!is_captured_name(n), "{n} should not be captured");
        }
    }

    #[test]
    fn secret_values_filter_sort_dedup() {
        let v = secret_values(pairs(&[
            ("OPENAI_API_KEY", "sk-aaaaaaaaaaaa"),
            ("HF_TOKEN", "short"),
            ("OTHER_TOKEN", "  bbbbbbbbbbbbbbbbbbbb\n"),
            ("DUP_SECRET", "sk-aaaaaaaaaaaa"),
            ("NOT_SENSITIVE", "cccccccccccccccccccccccccccc"),
            ("Z_KEY", "12345678"),
        ]));
        assert_eq!(
            v,
            vec![
                "bbbbbbbbbbbbbbbbbbbb".to_string(),
                "sk-aaaaaaaaaaaa".to_string(),
                "12345678".to_string()
            ]
        );
    }

    #[test]
    fn redact_text_basic_and_short_secrets_ignored() {
        let secrets = vec!["supersecret123".to_string(), "abc".to_string()];
        assert_eq!(
            redact_secrets_in_text("a supersecret123 b supersecret123 abc", &secrets),
            format!("a {REDACTED} b {REDACTED} abc")
        );
        assert_eq!(
            redact_secrets_in_text("nothing here", &secrets),
            "nothing here"
        );
        assert_eq!(redact_secrets_in_text("", &secrets), "");
        assert_eq!(redact_secrets_in_text("x", &[]), "x");
    }

    #[test]
    fn redact_text_overlaps_and_order_independence() {
        // Shorter secret contained in a longer one, given shortest first.
        let s = vec!["abcdefgh".to_string(), "abcdefgh-long-tail".to_string()];
        assert_eq!(
            redact_secrets_in_text("x abcdefgh-long-tail y abcdefgh z", &s),
            format!("x {REDACTED} y {REDACTED} z")
        );
        // Two secrets overlapping partially: no fragment of either survives.
        let s = vec!["12345678abcd".to_string(), "abcdEFGH1234".to_string()];
        assert_eq!(
            redact_secrets_in_text("<12345678abcdEFGH1234>", &s),
            format!("<{REDACTED}>")
        );
        // Overlapping occurrences of the same secret.
        let s = vec!["aaaaaaaa".to_string()];
        assert_eq!(
            redact_secrets_in_text("aaaaaaaaaa!", &s),
            format!("{REDACTED}!")
        );
        // Non-ASCII text around and inside secrets.
        let s = vec!["ключ-секрет".to_string()];
        assert_eq!(
            redact_secrets_in_text("é ключ-секрет ü", &s),
            format!("é {REDACTED} ü")
        );
    }

    #[test]
    fn capture_env_shape_sorting_and_redaction() {
        let key = "sk-proj-0123456789abcdef";
        let vars = pairs(&[
            ("PATH", "/usr/bin"),
            (
                "OPENAI_BASE_URL",
                &format!("https://x.example/v1?key={key}"),
            ),
            ("OPENAI_API_KEY", key),
            ("TRACE_LITELLM_MODEL", "gpt-4o-mini"),
            ("CUDA_VISIBLE_DEVICES", "0,1"),
            // Secret-named but not captured: its value must still be scrubbed elsewhere.
            ("GITHUB_TOKEN", "ghp_zzzzzzzzzzzzzzzz"),
            ("PYTHONPATH", "/opt/ghp_zzzzzzzzzzzzzzzz/lib"),
            ("HF_TOKEN", "hf_short"),
        ]);
        let t = UNIX_EPOCH + Duration::new(1_795_270_728, 119_247_000);
        let doc = capture_env(vars, t);

        assert_eq!(doc["captured_at"], "2026-11-21T14:18:48.119247Z");
        let env = doc["env"].as_object().unwrap();
        let names: Vec<&str> = env.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "CUDA_VISIBLE_DEVICES",
                "HF_TOKEN",
                "OPENAI_API_KEY",
                "OPENAI_BASE_URL",
                "PYTHONPATH",
                "TRACE_LITELLM_MODEL"
            ]
        );
        assert_eq!(env["OPENAI_API_KEY"], REDACTED);
        assert_eq!(env["HF_TOKEN"], REDACTED);
        assert_eq!(
            env["OPENAI_BASE_URL"],
            format!("https://x.example/v1?key={REDACTED}")
        );
        assert_eq!(env["PYTHONPATH"], format!("/opt/{REDACTED}/lib"));
        assert_eq!(env["CUDA_VISIBLE_DEVICES"], "0,1");
        assert_eq!(env["TRACE_LITELLM_MODEL"], "gpt-4o-mini");

        let text = serde_json::to_string(&doc).unwrap();
        assert!(!text.contains(key));
        assert!(!text.contains("ghp_zzzz"));

        let rt = doc["runtime"].as_object().unwrap();
        let rt_keys: Vec<&str> = rt.keys().map(String::as_str).collect();
        assert_eq!(rt_keys, ["tool", "tool_version", "os", "arch", "family"]);
        assert_eq!(rt["tool"], "trace-bench");
        assert_eq!(rt["tool_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(rt["os"], std::env::consts::OS);
        let top: Vec<&str> = doc
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(top, ["captured_at", "env", "runtime"]);
    }

    #[test]
    fn capture_env_empty_and_duplicates() {
        let doc = capture_env(Vec::new(), UNIX_EPOCH);
        assert_eq!(doc["captured_at"], "1970-01-01T00:00:00.000000Z");
        assert_eq!(doc["env"], serde_json::json!({}));
        let doc = capture_env(pairs(&[("TRACE_X", "1"), ("TRACE_X", "2")]), UNIX_EPOCH);
        assert_eq!(doc["env"]["TRACE_X"], "2");
    }

    #[test]
    fn timestamp_never_panics_out_of_range() {
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(rfc3339_micros(before), "1970-01-01T00:00:00.000000Z");
        if let Some(far) = UNIX_EPOCH.checked_add(Duration::from_secs(400_000_000_000)) {
            assert_eq!(rfc3339_micros(far), "9999-12-31T23:59:59.999999Z");
        }
    }

    #[test]
    fn process_env_reads_real_environment() {
        // No count comparison: other tests in the crate may touch the environment concurrently.
        let ours = process_env();
        if std::env::var_os("CARGO_PKG_NAME").is_some() {
            assert!(
                ours.iter()
                    .any(|(k, v)| k == "CARGO_PKG_NAME" && v == env!("CARGO_PKG_NAME"))
            );
        }
        // Round trip through capture_env with the real environment must not panic.
        let _ = capture_env(ours, SystemTime::now());
    }
}
