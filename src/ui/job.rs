//! One job's files for its page: `job_meta.json`, `results.json` (with its history: the
//! learning curve), the parameters at initial / best / final, the event timeline, LLM
//! transcripts (searchable, paged), per-example results and the end of `job.log`. Large
//! files are read line by line and capped, never loaded whole into a page.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::{Value as Json, json};

use super::runs::read_json;

/// Events shown on the timeline at most (the rest are counted).
const TIMELINE_MAX: usize = 2000;
/// Bytes of `job.log` shown (its end).
const LOG_TAIL: u64 = 512 * 1024;

/// The job page's data (everything but transcripts, examples and the log).
pub fn job_page(job_dir: &Path) -> Json {
    let results = read_json(&job_dir.join("results.json"));
    let history = results
        .as_ref()
        .and_then(|r| r.get("history").cloned())
        .unwrap_or(Json::Array(Vec::new()));
    let results = results.map(|mut r| {
        if let Some(o) = r.as_object_mut() {
            o.remove("history");
        }
        r
    });
    let state =
        |kind: &str| read_json(&job_dir.join("artifacts").join(format!("{kind}_state.json")));
    let (timeline, more) = timeline(&job_dir.join("events.jsonl"));
    json!({
        "meta": read_json(&job_dir.join("job_meta.json")),
        "results": results,
        "history": history,
        "states": {"initial": state("initial"), "best": state("best"), "final": state("final")},
        "timeline": timeline,
        "timeline_more": more,
        "has_log": job_dir.join("job.log").is_file(),
        "has_transcripts": job_dir.join("artifacts").join("llm_calls.jsonl").is_file(),
        "has_examples": job_dir.join("artifacts").join("examples.jsonl").is_file(),
    })
}

/// The events of `events.jsonl` but transcripts and example records (their own tabs);
/// at most [`TIMELINE_MAX`], and how many more there were.
fn timeline(path: &Path) -> (Vec<Json>, usize) {
    let mut out = Vec::new();
    let mut more = 0;
    let Ok(file) = std::fs::File::open(path) else {
        return (out, 0);
    };
    for line in BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        let Ok(v) = serde_json::from_str::<Json>(&line) else {
            continue; // a line being written
        };
        if matches!(
            v.get("type").and_then(Json::as_str),
            Some("llm_transcript" | "example_record")
        ) {
            continue;
        }
        if out.len() < TIMELINE_MAX {
            out.push(v);
        } else {
            more += 1;
        }
    }
    (out, more)
}

/// One page of a JSONL file's records whose text contains `query` (case-insensitive;
/// empty = all), with the number of matching records.
pub fn search_jsonl(path: &Path, query: &str, page: usize, per_page: usize) -> Json {
    let needle = query.to_lowercase();
    let mut total = 0usize;
    let mut items = Vec::new();
    let first = page.saturating_mul(per_page);
    if let Ok(file) = std::fs::File::open(path) {
        for line in BufReader::new(file).lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            if !needle.is_empty() && !line.to_lowercase().contains(&needle) {
                continue;
            }
            if total >= first
                && items.len() < per_page
                && let Ok(v) = serde_json::from_str::<Json>(&line)
            {
                items.push(v);
            }
            total += 1;
        }
    }
    json!({"total": total, "page": page, "per_page": per_page, "items": items})
}

/// The end of `job.log` (at most [`LOG_TAIL`] bytes) and whether it was cut.
pub fn log_tail(path: &Path) -> Json {
    let Ok(mut file) = std::fs::File::open(path) else {
        return json!({"text": "", "truncated": false, "missing": true});
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(LOG_TAIL);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return json!({"text": "", "truncated": false, "missing": true});
    }
    let mut bytes = Vec::new();
    let _ = file.take(LOG_TAIL).read_to_end(&mut bytes);
    json!({"text": String::from_utf8_lossy(&bytes), "truncated": start > 0, "missing": false})
}
