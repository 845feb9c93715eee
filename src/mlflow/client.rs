//! The MLflow tracking server's REST API (`/api/2.0/mlflow/...`) and its artifact proxy
//! (`/api/2.0/mlflow-artifacts/artifacts/...`), only the calls the export needs.
//!
//! The bearer token is held as a [`Secret`]: it goes into the `Authorization` header and
//! nowhere else (no error message, no `Debug` output, no file).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value as Json, json};

use super::MlflowError;
use crate::config::model::check_tracking_uri;
use crate::llm::openai::Secret;

/// MLflow's batch limits (`mlflow/utils/validation.py`): a `log-batch` request holds at
/// most 1000 metrics, 100 params and 100 tags, 1000 entities in all.
const MAX_METRICS_PER_BATCH: usize = 1000;
const MAX_PARAMS_TAGS_PER_BATCH: usize = 100;
/// Runs per `runs/search` page (the server's maximum is 50000; 1000 keeps pages small).
const SEARCH_PAGE: usize = 1000;

/// A run as the server describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteRun {
    /// MLflow's run id.
    pub run_id: String,
    /// Where its artifacts go (`mlflow-artifacts:/<experiment>/<run>/artifacts` when the
    /// server proxies them).
    pub artifact_uri: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// For each metric key, the highest step logged (the server's "latest" metric).
    pub latest_steps: BTreeMap<String, i64>,
}

/// One metric point.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Metric key.
    pub key: String,
    /// Value (finite).
    pub value: f64,
    /// Milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// Step number.
    pub step: i64,
}

/// A client of one tracking server.
pub struct Client {
    base: String,
    agent: ureq::Agent,
    token: Option<Secret>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of `uri`; every request gives up after `timeout` (connecting included).
    pub fn new(uri: &str, token: Option<Secret>, timeout: Duration) -> Result<Self, MlflowError> {
        let base = check_tracking_uri(uri).map_err(|reason| MlflowError::BadUri {
            uri: uri.to_string(),
            reason,
        })?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(Duration::from_secs(3))))
            .http_status_as_error(false)
            .user_agent(concat!("trace-bench/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Self { base, agent, token })
    }

    /// The server's URI, as used.
    pub fn uri(&self) -> &str {
        &self.base
    }

    fn unreachable(&self, e: ureq::Error) -> MlflowError {
        MlflowError::Unreachable {
            uri: self.base.clone(),
            message: e.to_string(),
        }
    }

    /// One exchange; `body` is sent as JSON (POST/PUT), `query` as the query string (GET).
    fn call(
        &self,
        method: &str,
        endpoint: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Json, MlflowError> {
        let url = format!("{}/api/2.0/{endpoint}", self.base);
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Bearer {}", t.expose()));
        let sent = match method {
            "GET" => {
                let mut req = self.agent.get(&url);
                for (k, v) in query {
                    req = req.query(*k, *v);
                }
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.call()
            }
            _ => {
                let mut req = if method == "PUT" {
                    self.agent.put(&url)
                } else {
                    self.agent.post(&url)
                };
                req = req.header("Content-Type", "application/json");
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.send(body.unwrap_or_default())
            }
        };
        let mut resp = sent.map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| self.unreachable(e))?;
        let text = String::from_utf8_lossy(&bytes);
        let parsed: Json = if text.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| json!({"message": excerpt(&text)}))
        };
        match status {
            200..=299 => Ok(parsed),
            401 | 403 => Err(MlflowError::Auth {
                uri: self.base.clone(),
                status,
            }),
            _ => Err(MlflowError::Server {
                endpoint: endpoint.to_string(),
                status,
                code: parsed["error_code"].as_str().unwrap_or("").to_string(),
                message: parsed["message"]
                    .as_str()
                    .map_or_else(|| excerpt(&text), str::to_string),
            }),
        }
    }

    fn post(&self, endpoint: &str, body: &Json) -> Result<Json, MlflowError> {
        self.call("POST", endpoint, &[], Some(body.to_string().into_bytes()))
    }

    /// The id of experiment `name`, created when it does not exist.
    pub fn experiment_id(&self, name: &str) -> Result<String, MlflowError> {
        let found = self.call(
            "GET",
            "mlflow/experiments/get-by-name",
            &[("experiment_name", name)],
            None,
        );
        let v = match found {
            Ok(v) => v["experiment"]["experiment_id"].clone(),
            Err(MlflowError::Server { code, .. }) if code == "RESOURCE_DOES_NOT_EXIST" => self
                .post("mlflow/experiments/create", &json!({"name": name}))?["experiment_id"]
                .clone(),
            Err(e) => return Err(e),
        };
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| malformed("mlflow/experiments", "no experiment_id"))
    }

    /// Every active run of `experiment_id` whose tag `key` equals `value`.
    pub fn runs_tagged(
        &self,
        experiment_id: &str,
        key: &str,
        value: &str,
    ) -> Result<Vec<RemoteRun>, MlflowError> {
        let filter = format!("tags.`{key}` = '{}'", value.replace('\'', "\\'"));
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({
                "experiment_ids": [experiment_id],
                "filter": filter,
                "max_results": SEARCH_PAGE,
                "run_view_type": "ACTIVE_ONLY",
            });
            if let Some(t) = &token {
                body["page_token"] = json!(t);
            }
            let page = self.post("mlflow/runs/search", &body)?;
            for run in page["runs"].as_array().into_iter().flatten() {
                out.push(remote_run(run)?);
            }
            match page["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// A new run with `tags` (a name is the `mlflow.runName` tag).
    pub fn create_run(
        &self,
        experiment_id: &str,
        start_ms: i64,
        tags: &[(String, String)],
    ) -> Result<RemoteRun, MlflowError> {
        let body = json!({
            "experiment_id": experiment_id,
            "start_time": start_ms,
            "tags": kv(tags),
        });
        let v = self.post("mlflow/runs/create", &body)?;
        remote_run(&v["run"])
    }

    /// Set the run's status (`RUNNING`, `FINISHED`, `FAILED`, `KILLED`) and end time.
    pub fn update_run(
        &self,
        run_id: &str,
        status: &str,
        end_ms: Option<i64>,
    ) -> Result<(), MlflowError> {
        let mut body = json!({"run_id": run_id, "status": status});
        if let Some(t) = end_ms {
            body["end_time"] = json!(t);
        }
        self.post("mlflow/runs/update", &body).map(drop)
    }

    /// Move a run to the deleted stage (a superseded attempt of a job).
    pub fn delete_run(&self, run_id: &str) -> Result<(), MlflowError> {
        self.post("mlflow/runs/delete", &json!({"run_id": run_id}))
            .map(drop)
    }

    /// Set one tag.
    pub fn set_tag(&self, run_id: &str, key: &str, value: &str) -> Result<(), MlflowError> {
        self.post(
            "mlflow/runs/set-tag",
            &json!({"run_id": run_id, "key": key, "value": value}),
        )
        .map(drop)
    }

    /// Log metrics, params and tags in as many `log-batch` requests as the limits need.
    pub fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> Result<(), MlflowError> {
        for chunk in params.chunks(MAX_PARAMS_TAGS_PER_BATCH) {
            let body = json!({"run_id": run_id, "params": kv(chunk)});
            self.post("mlflow/runs/log-batch", &body)?;
        }
        for chunk in tags.chunks(MAX_PARAMS_TAGS_PER_BATCH) {
            let body = json!({"run_id": run_id, "tags": kv(chunk)});
            self.post("mlflow/runs/log-batch", &body)?;
        }
        for chunk in metrics.chunks(MAX_METRICS_PER_BATCH) {
            let metrics: Vec<Json> = chunk
                .iter()
                .map(|m| {
                    json!({"key": m.key, "value": m.value, "timestamp": m.timestamp_ms, "step": m.step})
                })
                .collect();
            let body = json!({"run_id": run_id, "metrics": metrics});
            self.post("mlflow/runs/log-batch", &body)?;
        }
        Ok(())
    }

    /// Upload one artifact through the server's proxy. `Ok(false)` when the run's artifacts
    /// are not proxied by the server (a local or cloud artifact root the server does not
    /// serve): the caller reports that instead of writing somewhere else.
    pub fn put_artifact(
        &self,
        artifact_uri: &str,
        rel_path: &str,
        bytes: Vec<u8>,
    ) -> Result<bool, MlflowError> {
        let Some(root) = proxied_root(artifact_uri) else {
            return Ok(false);
        };
        let path: String = format!("{root}/{rel_path}")
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_encode)
            .collect::<Vec<_>>()
            .join("/");
        self.call(
            "PUT",
            &format!("mlflow-artifacts/artifacts/{path}"),
            &[],
            Some(bytes),
        )
        .map(|_| true)
    }
}

/// The path under `/api/2.0/mlflow-artifacts/artifacts/` of a proxied run artifact root,
/// by the server's own rule (`_get_proxied_run_artifact_destination_path`): the path of an
/// `mlflow-artifacts:` URI, or what follows the route in an http(s) URI.
fn proxied_root(artifact_uri: &str) -> Option<String> {
    const ROUTE: &str = "/api/2.0/mlflow-artifacts/artifacts/";
    if let Some(rest) = artifact_uri.strip_prefix("mlflow-artifacts:") {
        let path = match rest.strip_prefix("//") {
            Some(with_host) => with_host.find('/').map_or("", |i| &with_host[i..]),
            None => rest,
        };
        return Some(path.trim_matches('/').to_string());
    }
    if artifact_uri.starts_with("http://") || artifact_uri.starts_with("https://") {
        return artifact_uri
            .split_once(ROUTE)
            .map(|(_, p)| p.trim_matches('/').to_string());
    }
    None
}

fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn kv(pairs: &[(String, String)]) -> Vec<Json> {
    pairs
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect()
}

fn malformed(endpoint: &str, what: &str) -> MlflowError {
    MlflowError::Server {
        endpoint: endpoint.to_string(),
        status: 200,
        code: "MALFORMED_RESPONSE".into(),
        message: what.to_string(),
    }
}

fn excerpt(text: &str) -> String {
    text.chars().take(200).collect()
}

fn remote_run(run: &Json) -> Result<RemoteRun, MlflowError> {
    let info = &run["info"];
    let run_id = info["run_id"]
        .as_str()
        .or_else(|| info["run_uuid"].as_str())
        .ok_or_else(|| malformed("mlflow/runs", "a run without run_id"))?;
    let pairs = |key: &str| {
        run["data"][key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p["key"].as_str()?.to_string(), p.clone())))
            .collect::<Vec<_>>()
    };
    Ok(RemoteRun {
        run_id: run_id.to_string(),
        artifact_uri: info["artifact_uri"].as_str().unwrap_or("").to_string(),
        tags: pairs("tags")
            .into_iter()
            .map(|(k, v)| (k, v["value"].as_str().unwrap_or("").to_string()))
            .collect(),
        latest_steps: pairs("metrics")
            .into_iter()
            .map(|(k, v)| (k, v["step"].as_i64().unwrap_or(0)))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_roots_resolve_as_the_server_resolves_them() {
        assert_eq!(
            proxied_root("mlflow-artifacts:/1/abc/artifacts").as_deref(),
            Some("1/abc/artifacts")
        );
        assert_eq!(
            proxied_root("mlflow-artifacts://host:5000/1/abc/artifacts").as_deref(),
            Some("1/abc/artifacts")
        );
        assert_eq!(
            proxied_root("http://h:5/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts")
                .as_deref(),
            Some("1/abc/artifacts")
        );
        assert_eq!(proxied_root("/srv/mlruns/1/abc/artifacts"), None);
        assert_eq!(proxied_root("s3://bucket/1/abc/artifacts"), None);
        assert_eq!(percent_encode("a b.json"), "a%20b.json");
    }
}
