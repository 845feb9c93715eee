//! Decode a config file into [`Config`] with the Python reference's semantics: every key,
//! alias and default of its loader, the same task normalisation and variant merging (so
//! job ids match), plus what the reference lacks: typed errors with locations, unknown-key
//! warnings with a did-you-mean, and `--set` overrides.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as Json;

use super::diag::{Diagnostic, Diagnostics, suggestion};
use super::model::{Config, ResumeMode, TaskEntry, TrainerEntry, Variant};
use super::overrides;
use super::yaml::{self, Entry, Node, Span};
use crate::vocab::budget::{BUDGET_KEYS, Budget};
use crate::vocab::{Kwargs, Mode};

/// Top-level knobs the reference copies into every trainer's defaults.
pub const TOP_LEVEL_KNOBS: &[&str] = &[
    crate::vocab::THREADS_ALIAS,
    "num_threads",
    "optimizer_kwargs",
    "eval_kwargs",
    "ps_steps",
    "ps_batches",
    "ps_candidates",
    "ps_proposals",
    "ps_mem_update",
    "gepa_iters",
    "gepa_train_bs",
    "gepa_merge_every",
    "gepa_pareto_subset",
    "verbose",
];

/// Every run-level key (aliases included) the loader understands.
const RUN_KEYS: &[&str] = &[
    "run_id",
    "runs_dir",
    "runs_root",
    "mode",
    "seeds",
    "seed",
    "max_workers",
    "n_concurrent",
    "n-concurrent",
    "fail_fast",
    "resume",
    "job_timeout",
    "job-timeout",
    "eval_kwargs",
    "trainer_kwargs",
    "llm",
    "tags",
    "tasks",
    "trainers",
    "tasks_dir",
    "llm4ad_root",
    "llm4ad_python",
    "executor",
    "mlflow",
    "durability",
    "trainers_dir",
    "external_python",
    "budget",
];

/// Keys of the `executor` block (docs/cluster.md).
pub const EXECUTOR_KEYS: &[&str] = &[
    "kind",
    "jobs_per_task",
    "max_concurrent",
    "partition",
    "time",
    "cpus_per_task",
    "mem",
    "args",
    "bin",
];

/// Keys of the `mlflow` block.
pub const MLFLOW_KEYS: &[&str] = &["tracking_uri", "experiment"];

/// Keys of the `llm` block.
pub const LLM_KEYS: &[&str] = &[
    "provider",
    "base_url",
    "api_base",
    "model",
    "api_key_env",
    "api_key",
    "temperature",
    "max_tokens",
    "timeout_s",
    "max_retries",
    "requests_per_minute",
    "tokens_per_minute",
    "max_concurrency",
    "cache",
    "cache_dir",
    "cache_scope",
    "dspy_model",
    "price_prompt_per_million",
    "price_completion_per_million",
    "prices",
    "embedding_model",
];

const TASK_KEYS: &[&str] = &["id", "key", "task", "eval_kwargs", "seeds"];
const TRAINER_KEYS: &[&str] = &[
    "id",
    "budget",
    "name",
    "trainer",
    "key",
    "params_variants",
    "params",
    "trainer_kwargs",
    "optimizer",
    "optimizer_kwargs",
    "guide",
    "guide_kwargs",
    "logger",
    "logger_kwargs",
];

/// The seed used when a config names none (the reference's default).
pub const DEFAULT_SEED: i64 = 123;

/// A config source: a file's name and text.
#[derive(Debug, Clone)]
pub struct Source {
    /// Display name in diagnostics.
    pub name: String,
    /// Full text.
    pub text: String,
}

impl Source {
    /// Read a config file.
    pub fn from_path(path: &Path) -> Result<Self, super::ConfigError> {
        std::fs::read_to_string(path)
            .map(|text| Self {
                name: path.display().to_string(),
                text,
            })
            .map_err(|source| super::ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })
    }
}

/// The result of loading: the config (when decodable) and every problem found.
#[derive(Debug)]
pub struct Loaded {
    /// `None` when the file could not be parsed at all.
    pub config: Option<Config>,
    /// Errors and warnings with locations.
    pub diagnostics: Diagnostics,
}

/// Parse, apply `--set` overrides, and decode.
pub fn load(source: &Source, sets: &[String]) -> Loaded {
    load_with(source, sets, false)
}

/// [`load`], with unknown keys reported as errors when `strict`.
pub fn load_with(source: &Source, sets: &[String], strict: bool) -> Loaded {
    let mut diags = Diagnostics::new(&source.name, &source.text);
    let root = match parse_tree(&source.text) {
        Ok(root) => root,
        Err(e) => {
            diags.push(
                Diagnostic::error("", e.span, format!("invalid YAML: {}", e.message))
                    .with_hint("check the indentation and quoting around this line"),
            );
            return Loaded {
                config: None,
                diagnostics: diags,
            };
        }
    };
    let mut root = root.unwrap_or_else(|| Node::new(yaml::Value::Map(Vec::new()), Span::default()));
    if !matches!(root.value, yaml::Value::Map(_) | yaml::Value::Null) {
        diags.push(
            Diagnostic::error(
                "",
                root.span,
                format!("the config must be a mapping, found a {}", root.type_name()),
            )
            .with_hint("start with keys such as `tasks:` and `trainers:`"),
        );
        return Loaded {
            config: None,
            diagnostics: diags,
        };
    }
    for expr in sets {
        if let Err(d) = overrides::apply(&mut root, expr) {
            diags.push(d);
        }
    }
    let config = Decoder {
        diags: &mut diags,
        strict,
    }
    .config(&root);
    Loaded {
        config: Some(config),
        diagnostics: diags,
    }
}

/// YAML first, then JSON (the reference's order); the YAML error is the one reported.
fn parse_tree(text: &str) -> Result<Option<Node>, yaml::YamlError> {
    match yaml::parse(text) {
        Ok(node) => Ok(node),
        Err(yaml_err) => match serde_json::from_str::<Json>(text) {
            Ok(json) => Ok(Some(Node::from_json(&json, Span { line: 1, col: 1 }))),
            Err(_) => Err(yaml_err),
        },
    }
}

/// Normalise a task id the way the reference does.
pub fn normalize_task_id(id: &str) -> String {
    let id = id.trim();
    if let Some(rest) = id.strip_prefix("example:") {
        format!("trace_examples:{rest}")
    } else if id.contains(':') {
        id.to_string()
    } else {
        format!("llm4ad:{id}")
    }
}

struct Decoder<'a> {
    diags: &'a mut Diagnostics,
    strict: bool,
}

/// A default knob with where it was written.
struct Knob {
    key: String,
    value: Json,
    span: Span,
}

impl Decoder<'_> {
    fn config(&mut self, root: &Node) -> Config {
        let entries: &[Entry] = match &root.value {
            yaml::Value::Map(e) => e,
            _ => &[],
        };
        self.warn_unknown_and_duplicates(entries, "", RUN_KEYS, TOP_LEVEL_KNOBS, "run-level key");
        let get = |k: &str| root.get(k);
        let eval_kwargs = get("eval_kwargs")
            .map(|n| self.kwargs(n, "eval_kwargs"))
            .unwrap_or_default();
        let mut trainer_kwargs = get("trainer_kwargs")
            .map(|n| self.kwargs(n, "trainer_kwargs"))
            .unwrap_or_default();
        let mut defaults: Vec<Knob> = trainer_kwargs
            .iter()
            .map(|(k, v)| Knob {
                key: k.clone(),
                value: v.clone(),
                span: root
                    .get("trainer_kwargs")
                    .map(|n| n.span)
                    .unwrap_or_default(),
            })
            .collect();
        for e in entries {
            let key = e.key.replace('-', "_");
            if TOP_LEVEL_KNOBS.contains(&key.as_str())
                && let Some(value) = self.json(&e.value, &key)
                && !is_empty_mapping(&value)
            {
                trainer_kwargs.insert(key.clone(), value.clone());
                defaults.push(Knob {
                    key,
                    value,
                    span: e.key_span,
                });
            }
        }
        let tasks = self.tasks(root.get("tasks"), &eval_kwargs);
        let trainers = self.trainers(root.get("trainers"), &defaults);
        Config {
            run_id: self.run_id(root),
            runs_dir: self.runs_dir(root),
            mode: self.mode(get("mode")),
            seeds: self.seeds(root),
            max_workers: self.max_workers(root),
            fail_fast: get("fail_fast")
                .map(|n| self.bool(n, "fail_fast"))
                .unwrap_or(false),
            resume: self.resume(get("resume")),
            job_timeout: self.job_timeout(root),
            tasks,
            llm: self.llm(get("llm")),
            executor: self.executor(get("executor")),
            tags: self.tags(get("tags")),
            trainers,
            eval_kwargs,
            trainer_kwargs,
            mlflow: self.mlflow(get("mlflow")),
            durability: self.durability(get("durability")),
            trainers_dir: self.paths(get("trainers_dir"), "trainers_dir"),
            external_python: get("external_python").and_then(|n| self.string(n, "external_python")),
            budget: get("budget")
                .map(|n| self.budget(n, "budget"))
                .unwrap_or_default(),
            tasks_dir: self.paths(get("tasks_dir"), "tasks_dir"),
            llm4ad_root: get("llm4ad_root").and_then(|n| self.string(n, "llm4ad_root")),
            llm4ad_python: get("llm4ad_python").and_then(|n| self.string(n, "llm4ad_python")),
            spans: entries
                .iter()
                .map(|e| (e.key.clone(), e.value.span))
                .collect(),
        }
    }

    /// A `budget:` block: a mapping of [`BUDGET_KEYS`] to non-negative numbers (counts are
    /// whole numbers); every problem located at its key.
    fn budget(&mut self, node: &Node, key: &str) -> Budget {
        let mut budget = Budget::default();
        let entries = match &node.value {
            yaml::Value::Null => return budget,
            yaml::Value::Map(entries) => entries,
            _ => {
                self.type_error(
                    node,
                    key,
                    "a mapping of limits (`max_metric_calls`, `max_llm_calls`, `max_tokens`, `max_cost_usd`, `max_seconds`)",
                );
                return budget;
            }
        };
        self.warn_unknown_and_duplicates(entries, key, BUDGET_KEYS, &[], "budget limit");
        for e in entries {
            let path = join(key, &e.key);
            let Some(value) = self.json(&e.value, &path) else {
                continue;
            };
            if value.is_null() {
                continue;
            }
            let number = value.as_f64().filter(|x| x.is_finite() && *x >= 0.0);
            let whole = number.filter(|x| x.fract() == 0.0).map(|x| x as u64);
            let wrong = |d: &mut Self, wanted: &str| {
                d.diags.push(
                    Diagnostic::error(
                        path.clone(),
                        e.value.span,
                        format!("`{path}` must be {wanted}, found {value}"),
                    )
                    .with_hint("e.g. `budget: {max_metric_calls: 200}`"),
                );
            };
            match e.key.as_str() {
                "max_metric_calls" | "max_llm_calls" | "max_tokens" => match whole {
                    Some(n) => match e.key.as_str() {
                        "max_metric_calls" => budget.max_metric_calls = Some(n),
                        "max_llm_calls" => budget.max_llm_calls = Some(n),
                        _ => budget.max_tokens = Some(n),
                    },
                    None => wrong(self, "a whole number >= 0"),
                },
                "max_cost_usd" | "max_seconds" => match number {
                    Some(x) if e.key == "max_cost_usd" => budget.max_cost_usd = Some(x),
                    Some(x) => budget.max_seconds = Some(x),
                    None => wrong(self, "a number >= 0"),
                },
                _ => {}
            }
        }
        budget
    }

    /// A folder or a list of folders (`tasks_dir`, `trainers_dir`), as written.
    fn paths(&mut self, node: Option<&Node>, key: &str) -> Vec<String> {
        let Some(node) = node else { return Vec::new() };
        let items: &[Node] = match &node.value {
            yaml::Value::Null => return Vec::new(),
            yaml::Value::Seq(items) => items,
            _ => std::slice::from_ref(node),
        };
        let mut out = Vec::new();
        for item in items {
            match &item.value {
                yaml::Value::Str(s) => out.push(s.clone()),
                _ => {
                    self.type_error(item, key, "a path or a list of paths");
                    return Vec::new();
                }
            }
        }
        out
    }

    /// `durability: job | file | none` (docs/run-directory.md).
    fn durability(
        &mut self,
        node: Option<&Node>,
    ) -> Option<crate::artifacts::durability::Durability> {
        use crate::artifacts::durability::Durability;
        let node = node?;
        let name = self.string(node, "durability")?;
        let level = Durability::parse(&name);
        if level.is_none() {
            self.diags.push(
                Diagnostic::error(
                    "durability",
                    node.span,
                    format!("unknown durability level `{name}`"),
                )
                .with_hint(suggestion(&name, Durability::NAMES).unwrap_or_else(|| {
                    "use `job` (one sync per group of finished jobs, the default), `file` (every file synced) or `none` (no syncs)".into()
                })),
            );
        }
        level
    }

    /// The `mlflow` block: a mapping of [`MLFLOW_KEYS`]; a URI this client cannot use is
    /// an error at its value (a typo would otherwise only show when the first job ends).
    fn mlflow(&mut self, node: Option<&Node>) -> Option<super::model::MlflowConfig> {
        let node = node?;
        let entries = match &node.value {
            yaml::Value::Null => return None,
            yaml::Value::Map(entries) => entries,
            _ => {
                self.type_error(node, "mlflow", "a mapping (`tracking_uri`, `experiment`)");
                return None;
            }
        };
        self.warn_unknown_and_duplicates(entries, "mlflow", MLFLOW_KEYS, &[], "`mlflow` key");
        let mut text = |key: &str| {
            let n = node.get(key)?;
            let path = format!("mlflow.{key}");
            let v = self.string(n, &path)?;
            Some((v, n.span, path))
        };
        let uri = text("tracking_uri");
        let experiment = text("experiment");
        let tracking_uri = uri.and_then(|(v, span, path)| {
            match super::model::check_tracking_uri(&v) {
                Ok(_) => Some(v),
                Err(reason) => {
                    self.diags.push(
                        Diagnostic::error(path, span, format!("tracking URI `{v}`: {reason}"))
                            .with_hint("e.g. `tracking_uri: http://127.0.0.1:5000`, or leave it out to use MLFLOW_TRACKING_URI"),
                    );
                    None
                }
            }
        });
        let experiment = experiment.and_then(|(v, span, path)| {
            if v.trim().is_empty() || v.chars().count() > 500 {
                self.diags.push(
                    Diagnostic::error(
                        path,
                        span,
                        "`mlflow.experiment` must be a name of 1 to 500 characters",
                    )
                    .with_hint("leave it out for the experiment `trace-bench`"),
                );
                return None;
            }
            Some(v)
        });
        Some(super::model::MlflowConfig {
            tracking_uri,
            experiment,
        })
    }

    fn warn_unknown_and_duplicates(
        &mut self,
        entries: &[Entry],
        prefix: &str,
        known: &[&str],
        extra: &[&str],
        what: &str,
    ) {
        let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
        for e in entries {
            let path = join(prefix, &e.key);
            let normalized = e.key.replace('-', "_");
            let is_known = known.contains(&e.key.as_str()) || extra.contains(&normalized.as_str());
            if !is_known {
                let hint = suggestion(&e.key, known.iter().chain(extra).copied()).or_else(|| {
                    Some(format!(
                        "it is ignored; known {what}s: {}",
                        known.join(", ")
                    ))
                });
                let msg = format!("unknown {what} `{}`", e.key);
                // A key only `--set` wrote (it has no place in the file) is a typo on the
                // command line, and setting nothing is never what was meant: an error.
                let from_set = e.key_span.line == 0;
                let d = if from_set {
                    Diagnostic::error(format!("--set {path}"), e.key_span, msg)
                } else if self.strict {
                    Diagnostic::error(&path, e.key_span, msg)
                } else {
                    Diagnostic::warning(&path, e.key_span, msg)
                };
                self.diags.push(d.with_optional_hint(hint));
            }
            if let Some(first) = seen.insert(e.key.as_str(), e.key_span) {
                self.diags.push(
                    Diagnostic::warning(
                        &path,
                        e.key_span,
                        format!("duplicate key `{}`; the last one wins", e.key),
                    )
                    .with_hint(format!("the first one is at line {}", first.line)),
                );
            }
        }
    }

    fn type_error(&mut self, node: &Node, key: &str, expected: &str) {
        self.diags.push(Diagnostic::error(
            key,
            node.span,
            format!(
                "`{key}` must be {expected}, found {} `{}`",
                article_type(node),
                short_text(node)
            ),
        ));
    }

    fn json(&mut self, node: &Node, key: &str) -> Option<Json> {
        match node.to_json() {
            Ok(v) => Some(v),
            Err(e) => {
                self.diags
                    .push(Diagnostic::error(key, e.span, e.message).with_hint(
                        "JSON files cannot hold infinities or NaN; use a large finite number",
                    ));
                None
            }
        }
    }

    fn kwargs(&mut self, node: &Node, key: &str) -> Kwargs {
        match &node.value {
            yaml::Value::Null => Kwargs::new(),
            yaml::Value::Map(_) => match self.json(node, key) {
                Some(Json::Object(map)) => map,
                _ => Kwargs::new(),
            },
            _ => {
                self.type_error(node, key, "a mapping");
                Kwargs::new()
            }
        }
    }

    fn string(&mut self, node: &Node, key: &str) -> Option<String> {
        match &node.value {
            yaml::Value::Str(s) => Some(s.clone()),
            yaml::Value::Int(i) => Some(i.to_string()),
            yaml::Value::Null => None,
            _ => {
                self.type_error(node, key, "a string");
                None
            }
        }
    }

    fn bool(&mut self, node: &Node, key: &str) -> bool {
        match &node.value {
            yaml::Value::Bool(b) => *b,
            yaml::Value::Null => false,
            _ => {
                self.type_error(node, key, "true or false");
                false
            }
        }
    }

    fn number(&mut self, node: &Node, key: &str) -> Option<f64> {
        match &node.value {
            yaml::Value::Int(i) => Some(*i as f64),
            yaml::Value::Float(f) => Some(*f),
            // The reference calls float() on these, so numeric strings such as `1e3` pass.
            yaml::Value::Str(s) if s.trim().parse::<f64>().is_ok() => s.trim().parse().ok(),
            yaml::Value::Null => None,
            _ => {
                self.type_error(node, key, "a number");
                None
            }
        }
    }

    fn integer(&mut self, node: &Node, key: &str) -> Option<i64> {
        match &node.value {
            yaml::Value::Int(i) => Some(*i),
            yaml::Value::Str(s) if s.trim().parse::<i64>().is_ok() => s.trim().parse().ok(),
            _ => {
                self.type_error(node, key, "an integer");
                None
            }
        }
    }

    fn run_id(&mut self, root: &Node) -> Option<String> {
        let id = root.get("run_id").and_then(|n| self.string(n, "run_id"))?;
        let bad = id.is_empty()
            || id.starts_with('.')
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if bad {
            let span = root.get("run_id").map(|n| n.span).unwrap_or_default();
            self.diags.push(
                Diagnostic::error(
                    "run_id",
                    span,
                    format!("`run_id` `{id}` is not a safe directory name"),
                )
                .with_hint("use letters, digits, `-`, `_` and `.` only"),
            );
        }
        Some(id)
    }

    fn runs_dir(&mut self, root: &Node) -> String {
        let primary = root.get("runs_dir");
        if primary.is_some() && root.get("runs_root").is_some() {
            let span = root.get("runs_root").map(|n| n.span).unwrap_or_default();
            self.diags.push(Diagnostic::warning(
                "runs_root",
                span,
                "both `runs_dir` and its alias `runs_root` are set; `runs_dir` wins",
            ));
        }
        let key = if primary.is_some() {
            "runs_dir"
        } else {
            "runs_root"
        };
        primary
            .or_else(|| root.get("runs_root"))
            .and_then(|n| self.string(n, key))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "runs".to_string())
    }

    fn mode(&mut self, node: Option<&Node>) -> Mode {
        let Some(node) = node else { return Mode::Stub };
        match self.string(node, "mode").as_deref() {
            None | Some("stub") => Mode::Stub,
            Some("real") => Mode::Real,
            Some(other) => {
                self.diags.push(
                    Diagnostic::error("mode", node.span, format!("unknown mode `{other}`"))
                        .with_hint(suggestion(other, ["stub", "real"]).unwrap_or_else(|| {
                            "use `stub` (offline, seeded) or `real` (an OpenAI-compatible endpoint)"
                                .into()
                        })),
                );
                Mode::Stub
            }
        }
    }

    fn seeds(&mut self, root: &Node) -> Vec<i64> {
        if let Some(node) = root.get("seeds") {
            let seeds = match &node.value {
                yaml::Value::Seq(items) => items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| self.integer(n, &format!("seeds[{i}]")))
                    .collect(),
                yaml::Value::Int(i) => {
                    // The reference reads `seeds: 3` as the one seed 3: easy to mistake for
                    // "three seeds".
                    let msg = format!("`seeds: {i}` means one seed, {i} (not {i} seeds)");
                    let d = if self.strict {
                        Diagnostic::error("seeds", node.span, msg)
                    } else {
                        Diagnostic::warning("seeds", node.span, msg)
                    };
                    let list: Vec<String> = (1..=(*i).clamp(1, 5)).map(|s| s.to_string()).collect();
                    self.diags.push(d.with_hint(format!(
                        "write a list: `seeds: [{i}]` for this one seed, `seeds: [{}]` for several",
                        list.join(", ")
                    )));
                    vec![*i]
                }
                yaml::Value::Null => Vec::new(),
                _ => {
                    self.type_error(node, "seeds", "a list of integers");
                    Vec::new()
                }
            };
            if seeds.is_empty() {
                vec![DEFAULT_SEED]
            } else {
                seeds
            }
        } else if let Some(node) = root.get("seed") {
            vec![self.integer(node, "seed").unwrap_or(DEFAULT_SEED)]
        } else {
            vec![DEFAULT_SEED]
        }
    }

    fn max_workers(&mut self, root: &Node) -> usize {
        let found = ["max_workers", "n_concurrent", "n-concurrent"]
            .into_iter()
            .find_map(|k| root.get(k).map(|n| (k, n)));
        let Some((key, node)) = found else { return 1 };
        match self.integer(node, key) {
            Some(v) if v < 0 => {
                self.diags.push(
                    Diagnostic::error(
                        key,
                        node.span,
                        format!("`{key}` must not be negative, found `{v}`"),
                    )
                    .with_hint("use 1 to run jobs one after another"),
                );
                1
            }
            Some(v) => (v as usize).max(1),
            None => 1,
        }
    }

    fn resume(&mut self, node: Option<&Node>) -> ResumeMode {
        let Some(node) = node else {
            return ResumeMode::Auto;
        };
        let Some(s) = self.string(node, "resume") else {
            return ResumeMode::Auto;
        };
        ResumeMode::parse(&s).unwrap_or_else(|| {
            self.diags.push(
                Diagnostic::error("resume", node.span, format!("unknown resume mode `{s}`"))
                    .with_hint("use `auto`, `failed` or `none`"),
            );
            ResumeMode::Auto
        })
    }

    fn job_timeout(&mut self, root: &Node) -> Option<f64> {
        let (key, node) = ["job_timeout", "job-timeout"]
            .into_iter()
            .find_map(|k| root.get(k).map(|n| (k, n)))?;
        let v = self.number(node, key)?;
        if v < 0.0 || !v.is_finite() {
            self.diags.push(
                Diagnostic::error(
                    key,
                    node.span,
                    format!("`{key}` must be a positive number of seconds"),
                )
                .with_hint("use `null` (or leave it out) for no limit"),
            );
            return None;
        }
        Some(v)
    }

    fn llm(&mut self, node: Option<&Node>) -> Kwargs {
        let Some(node) = node else {
            return Kwargs::new();
        };
        if let yaml::Value::Map(entries) = &node.value {
            self.warn_unknown_and_duplicates(entries, "llm", LLM_KEYS, &[], "`llm` key");
            if let Some(e) = entries.iter().find(|e| e.key == "api_key") {
                self.diags.push(
                    Diagnostic::warning("llm.api_key", e.key_span, "an API key is written inline in the config")
                        .with_hint("it is used but redacted in every file; prefer `api_key_env: OPENAI_API_KEY`"),
                );
            }
        }
        self.kwargs(node, "llm")
    }

    /// The `executor` block: known keys, `kind` local or slurm, positive counts, strings.
    fn executor(&mut self, node: Option<&Node>) -> Kwargs {
        let Some(node) = node else {
            return Kwargs::new();
        };
        if let yaml::Value::Map(entries) = &node.value {
            self.warn_unknown_and_duplicates(
                entries,
                "executor",
                EXECUTOR_KEYS,
                &[],
                "`executor` key",
            );
            for e in entries {
                let key = format!("executor.{}", e.key);
                let bad = |expected: &str| {
                    Diagnostic::error(&key, e.value.span, format!("`{key}` must be {expected}"))
                };
                let diag = match (e.key.as_str(), &e.value.value) {
                    ("kind", yaml::Value::Str(s)) if s == "local" || s == "slurm" => None,
                    ("kind", _) => Some(
                        bad("`local` or `slurm`")
                            .with_hint("`local` runs the jobs here; `slurm` submits a job array"),
                    ),
                    ("jobs_per_task" | "max_concurrent" | "cpus_per_task", yaml::Value::Int(i))
                        if *i > 0 =>
                    {
                        None
                    }
                    ("jobs_per_task" | "max_concurrent" | "cpus_per_task", _) => {
                        Some(bad("a positive integer"))
                    }
                    ("partition" | "time" | "mem" | "bin", yaml::Value::Str(_)) => None,
                    ("mem", yaml::Value::Int(_)) => None,
                    ("partition" | "time" | "mem" | "bin", _) => {
                        Some(bad("a string").with_hint("quote it, e.g. time: \"02:00:00\""))
                    }
                    ("args", yaml::Value::Seq(items))
                        if items.iter().all(|i| matches!(i.value, yaml::Value::Str(_))) =>
                    {
                        None
                    }
                    ("args", _) => Some(
                        bad("a list of sbatch arguments")
                            .with_hint("e.g. args: [\"--account=lab\", \"--qos=normal\"]"),
                    ),
                    _ => None,
                };
                if let Some(d) = diag {
                    self.diags.push(d);
                }
            }
        }
        self.kwargs(node, "executor")
    }

    fn tags(&mut self, node: Option<&Node>) -> Vec<String> {
        let Some(node) = node else { return Vec::new() };
        match &node.value {
            yaml::Value::Seq(items) => items.iter().map(scalar_text).collect(),
            yaml::Value::Null => Vec::new(),
            _ => vec![scalar_text(node)],
        }
    }

    fn tasks(&mut self, node: Option<&Node>, global_eval: &Kwargs) -> Vec<TaskEntry> {
        let Some(node) = node else {
            self.diags.push(
                Diagnostic::error("tasks", Span::default(), "missing required key `tasks`")
                    .with_hint("add e.g. `tasks: [internal:numeric_param]`; `trace-bench list-tasks` shows the ids"),
            );
            return Vec::new();
        };
        let items = match &node.value {
            yaml::Value::Seq(items) => items.as_slice(),
            yaml::Value::Null => &[],
            _ => {
                self.type_error(
                    node,
                    "tasks",
                    "a list of task ids or `{id, eval_kwargs}` entries",
                );
                return Vec::new();
            }
        };
        let mut out: Vec<TaskEntry> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let key = format!("tasks[{i}]");
            let Some(entry) = self.task_entry(item, &key, global_eval) else {
                continue;
            };
            let identity = (
                entry.id.clone(),
                crate::vocab::canonical::canonical_json(&Json::Object(entry.eval_kwargs.clone())),
            );
            if seen.insert(identity) {
                out.push(entry);
            } else {
                self.diags.push(Diagnostic::warning(
                    &key,
                    item.span,
                    format!("task `{}` is listed twice with the same eval_kwargs; the duplicate is dropped", entry.id),
                ));
            }
        }
        out
    }

    fn task_entry(&mut self, item: &Node, key: &str, global_eval: &Kwargs) -> Option<TaskEntry> {
        let mut eval_kwargs = global_eval.clone();
        let mut seeds = None;
        let id = match &item.value {
            yaml::Value::Str(s) => s.clone(),
            yaml::Value::Map(entries) => {
                self.warn_unknown_and_duplicates(entries, key, TASK_KEYS, &[], "task key");
                if let Some(n) = item.get("eval_kwargs") {
                    eval_kwargs.extend(self.kwargs(n, &format!("{key}.eval_kwargs")));
                }
                // The entry's own seeds (a rescore keeps each source job's seed).
                if let Some(n) = item.get("seeds") {
                    seeds = match &n.value {
                        yaml::Value::Seq(items) if !items.is_empty() => Some(
                            items
                                .iter()
                                .enumerate()
                                .filter_map(|(i, v)| self.integer(v, &format!("{key}.seeds[{i}]")))
                                .collect(),
                        ),
                        _ => {
                            self.type_error(
                                n,
                                &format!("{key}.seeds"),
                                "a non-empty list of integers",
                            );
                            None
                        }
                    };
                }
                let id_node = ["id", "key", "task"].into_iter().find_map(|k| item.get(k));
                match id_node.map(|n| self.string(n, &format!("{key}.id"))) {
                    Some(Some(id)) => id,
                    Some(None) => return None,
                    None => {
                        self.diags.push(
                            Diagnostic::error(key, item.span, "task entry is missing its `id`")
                                .with_hint("write `- id: internal:numeric_param`"),
                        );
                        return None;
                    }
                }
            }
            _ => {
                self.type_error(item, key, "a task id or an `{id, eval_kwargs}` mapping");
                return None;
            }
        };
        Some(TaskEntry {
            id: normalize_task_id(&id),
            eval_kwargs,
            seeds,
            span: item.span,
        })
    }

    fn trainers(&mut self, node: Option<&Node>, defaults: &[Knob]) -> Vec<TrainerEntry> {
        let items = match node.map(|n| &n.value) {
            Some(yaml::Value::Seq(items)) if !items.is_empty() => items.as_slice(),
            Some(yaml::Value::Seq(_) | yaml::Value::Null) | None => {
                return vec![self.trainer_from_parts(
                    "PrioritySearch",
                    Span::default(),
                    defaults,
                    &[],
                    None,
                )];
            }
            Some(_) => {
                let node = node.expect("matched Some");
                self.type_error(node, "trainers", "a list of trainer ids or entries");
                return Vec::new();
            }
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.trainer_entry(item, &format!("trainers[{i}]"), defaults))
            .collect()
    }

    fn trainer_entry(&mut self, item: &Node, key: &str, defaults: &[Knob]) -> Option<TrainerEntry> {
        let entries = match &item.value {
            yaml::Value::Str(id) => {
                return Some(self.trainer_from_parts(id, item.span, defaults, &[], None));
            }
            yaml::Value::Map(entries) => entries,
            _ => {
                self.type_error(item, key, "a trainer id or a mapping with `id`");
                return None;
            }
        };
        for e in entries {
            let normalized = e.key.replace('-', "_");
            if TRAINER_KEYS.contains(&e.key.as_str())
                || TOP_LEVEL_KNOBS.contains(&normalized.as_str())
            {
                continue;
            }
            let msg = format!("unknown trainer-entry key `{}` is ignored", e.key);
            let d = if self.strict {
                Diagnostic::error(join(key, &e.key), e.key_span, msg)
            } else {
                Diagnostic::warning(join(key, &e.key), e.key_span, msg)
            };
            self.diags.push(
                d
                .with_optional_hint(suggestion(&e.key, TRAINER_KEYS.iter().copied()).or_else(|| {
                    Some("trainer knobs go under `params_variants:` (or use a `ps_*`/`gepa_*` alias at entry level)".into())
                })),
            );
        }
        let id_node = ["id", "name", "trainer", "key"]
            .into_iter()
            .find_map(|k| item.get(k));
        let id = match id_node.map(|n| self.string(n, &format!("{key}.id"))) {
            Some(Some(id)) => id,
            Some(None) => return None,
            None => {
                self.diags.push(
                    Diagnostic::error(key, item.span, "trainer entry is missing its `id`")
                        .with_hint("write `- id: PrioritySearch`; `trace-bench list-trainers` shows the ids"),
                );
                return None;
            }
        };
        let entry_knobs: Vec<&Entry> = entries
            .iter()
            .filter(|e| TOP_LEVEL_KNOBS.contains(&e.key.replace('-', "_").as_str()))
            .collect();
        Some(self.trainer_from_parts(&id, item.span, defaults, &entry_knobs, Some((item, key))))
    }

    fn trainer_from_parts(
        &mut self,
        id: &str,
        span: Span,
        defaults: &[Knob],
        entry_knobs: &[&Entry],
        entry: Option<(&Node, &str)>,
    ) -> TrainerEntry {
        let mut base = Variant {
            params: Kwargs::new(),
            key_spans: BTreeMap::new(),
        };
        for k in defaults {
            base.params.insert(k.key.clone(), k.value.clone());
            base.key_spans.insert(k.key.clone(), k.span);
        }
        for e in entry_knobs {
            let key = e.key.replace('-', "_");
            if let Some(v) = self.json(&e.value, &key)
                && !is_empty_mapping(&v)
            {
                base.params.insert(key.clone(), v);
                base.key_spans.insert(key, e.key_span);
            }
        }
        let mut trainer = TrainerEntry {
            budget: entry
                .and_then(|(node, key)| node.get("budget").map(|b| (b, join(key, "budget"))))
                .map(|(b, path)| self.budget(b, &path))
                .unwrap_or_default(),
            id: id.trim().to_string(),
            params_variants: Vec::new(),
            optimizer: None,
            optimizer_kwargs: Kwargs::new(),
            guide: None,
            guide_kwargs: Kwargs::new(),
            logger: None,
            logger_kwargs: Kwargs::new(),
            span,
        };
        let Some((node, key)) = entry else {
            trainer.params_variants.push(base);
            return trainer;
        };
        let opt_str = |d: &mut Self, k: &str| node.get(k).and_then(|n| d.string(n, &join(key, k)));
        let opt_map = |d: &mut Self, k: &str| {
            node.get(k)
                .map(|n| d.kwargs(n, &join(key, k)))
                .unwrap_or_default()
        };
        trainer.optimizer = opt_str(self, "optimizer");
        trainer.optimizer_kwargs = opt_map(self, "optimizer_kwargs");
        trainer.guide = opt_str(self, "guide");
        trainer.guide_kwargs = opt_map(self, "guide_kwargs");
        trainer.logger = opt_str(self, "logger");
        trainer.logger_kwargs = opt_map(self, "logger_kwargs");
        // The reference: without `params_variants`, `params` (when non-empty) or else the
        // entry's `trainer_kwargs` is the single variant.
        let params = node
            .get("params")
            .filter(|p| !matches!(&p.value, yaml::Value::Map(m) if m.is_empty()))
            .or_else(|| node.get("trainer_kwargs"))
            .or_else(|| node.get("params"));
        let variants: Vec<&Node> = match (node.get("params_variants"), params) {
            (Some(n), _) => match &n.value {
                yaml::Value::Seq(items) => items.iter().collect(),
                yaml::Value::Null => Vec::new(),
                _ => {
                    self.type_error(n, &join(key, "params_variants"), "a list of mappings");
                    Vec::new()
                }
            },
            (None, Some(p)) => vec![p],
            (None, None) => Vec::new(),
        };
        if variants.is_empty() {
            trainer.params_variants.push(base);
            return trainer;
        }
        for (i, v) in variants.into_iter().enumerate() {
            let vkey = format!("{key}.params_variants[{i}]");
            let mut variant = base.clone();
            match &v.value {
                yaml::Value::Map(entries) => {
                    for e in entries {
                        if let Some(value) = self.json(&e.value, &join(&vkey, &e.key)) {
                            variant.params.insert(e.key.clone(), value);
                            variant.key_spans.insert(e.key.clone(), e.key_span);
                        }
                    }
                }
                yaml::Value::Null => {}
                _ => self.type_error(v, &vkey, "a mapping of trainer knobs"),
            }
            trainer.params_variants.push(variant);
        }
        trainer
    }
}

/// An empty `eval_kwargs: {}` / `optimizer_kwargs: {}` copies nothing into the variants:
/// the run's own `meta/config.snapshot.yaml` writes them empty, and re-running it must give
/// the same jobs.
fn is_empty_mapping(value: &Json) -> bool {
    value.as_object().is_some_and(|m| m.is_empty())
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn article_type(node: &Node) -> String {
    let t = node.type_name();
    let article = if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {t}")
}

fn short_text(node: &Node) -> String {
    let text = match &node.value {
        yaml::Value::Seq(_) => "[...]".to_string(),
        yaml::Value::Map(_) => "{...}".to_string(),
        _ => scalar_text(node),
    };
    if text.chars().count() > 40 {
        format!("{}...", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

/// The text of a scalar as Python's `str()` would give it (tags are stringified so).
fn scalar_text(node: &Node) -> String {
    match &node.value {
        yaml::Value::Null => "None".to_string(),
        yaml::Value::Bool(true) => "True".to_string(),
        yaml::Value::Bool(false) => "False".to_string(),
        yaml::Value::Int(i) => i.to_string(),
        yaml::Value::Float(f) => crate::vocab::canonical::python_float_repr(*f),
        yaml::Value::Str(s) => s.clone(),
        _ => node.to_json().map(|v| v.to_string()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::diag::Severity;

    fn load_text(text: &str) -> Loaded {
        load(
            &Source {
                name: "test.yaml".into(),
                text: text.into(),
            },
            &[],
        )
    }

    #[test]
    fn smoke_config_decodes_with_reference_defaults() {
        let l = load_text(
            "runs_dir: runs\nmode: stub\nseeds: [123]\ntasks:\n  - id: internal:numeric_param\ntrainers:\n  - id: PrioritySearch\n    params_variants:\n      - ps_steps: 1\n        ps_batches: 1\n",
        );
        assert!(l.diagnostics.items.is_empty(), "{}", l.diagnostics.render());
        let c = l.config.unwrap();
        assert_eq!(c.seeds, vec![123]);
        assert_eq!(c.max_workers, 1);
        assert_eq!(c.resume, ResumeMode::Auto);
        assert_eq!(c.tasks[0].id, "internal:numeric_param");
        assert_eq!(c.trainers[0].params_variants[0].params.len(), 2);
    }

    #[test]
    fn aliases_and_knob_merging_follow_the_reference() {
        let l = load_text(
            "runs_root: out\nn_concurrent: 3\nseed: 7\nps_steps: 4\ntrainer_kwargs: {verbose: false}\ntasks: [numeric_param, 'example:greeting_stub']\ntrainers:\n  - id: PrioritySearch\n    ps_batches: 2\n    params_variants:\n      - {ps_steps: 9}\n      - {}\n",
        );
        let c = l.config.unwrap();
        assert_eq!(c.runs_dir, "out");
        assert_eq!(c.max_workers, 3);
        assert_eq!(c.seeds, vec![7]);
        assert_eq!(c.tasks[0].id, "llm4ad:numeric_param");
        assert_eq!(c.tasks[1].id, "trace_examples:greeting_stub");
        let v0 = &c.trainers[0].params_variants[0].params;
        let v1 = &c.trainers[0].params_variants[1].params;
        assert_eq!(
            Json::Object(v0.clone()),
            serde_json::json!({"verbose": false, "ps_steps": 9, "ps_batches": 2})
        );
        assert_eq!(
            Json::Object(v1.clone()),
            serde_json::json!({"verbose": false, "ps_steps": 4, "ps_batches": 2})
        );
        assert_eq!(
            Json::Object(c.trainer_kwargs),
            serde_json::json!({"verbose": false, "ps_steps": 4})
        );
    }

    #[test]
    fn no_trainers_means_default_priority_search() {
        let c = load_text("tasks: [internal:numeric_param]\n")
            .config
            .unwrap();
        assert_eq!(c.trainers.len(), 1);
        assert_eq!(c.trainers[0].id, "PrioritySearch");
    }

    #[test]
    fn duplicate_tasks_are_dropped_with_a_warning() {
        let l = load_text(
            "tasks: [internal:numeric_param, internal:numeric_param, {id: internal:numeric_param, eval_kwargs: {x: 1}}]\n",
        );
        assert_eq!(l.config.unwrap().tasks.len(), 2);
        assert_eq!(l.diagnostics.items.len(), 1);
    }

    #[test]
    fn unknown_keys_warn_with_location_and_suggestion() {
        let l = load_text("tasks: [internal:numeric_param]\nmax_worker: 2\n");
        let d = &l.diagnostics.items[0];
        assert_eq!(d.severity, Severity::Warning);
        assert_eq!(d.span, Span { line: 2, col: 1 });
        assert_eq!(d.hint.as_deref(), Some("did you mean `max_workers`?"));
    }

    #[test]
    fn wrong_types_and_modes_are_errors() {
        let l = load_text(
            "tasks: [internal:numeric_param]\nmax_workers: many\nmode: rael\nfail_fast: 3\n",
        );
        let msgs: Vec<String> = l
            .diagnostics
            .items
            .iter()
            .map(|d| d.message.clone())
            .collect();
        assert_eq!(l.diagnostics.error_count(), 3, "{msgs:?}");
        assert!(
            msgs.iter()
                .any(|m| m == "`max_workers` must be an integer, found a string `many`")
        );
        assert!(msgs.iter().any(|m| m == "unknown mode `rael`"));
        let mode = l
            .diagnostics
            .items
            .iter()
            .find(|d| d.key == "mode")
            .unwrap();
        assert_eq!(mode.hint.as_deref(), Some("did you mean `real`?"));
        assert_eq!(mode.span, Span { line: 3, col: 7 });
    }

    #[test]
    fn sets_override_file_values() {
        let l = load(
            &Source {
                name: "t".into(),
                text: "tasks: [internal:numeric_param]\nmax_workers: 1\n".into(),
            },
            &["max_workers=2".into(), "seeds=[1,2,3]".into()],
        );
        let c = l.config.unwrap();
        assert_eq!(c.max_workers, 2);
        assert_eq!(c.seeds, vec![1, 2, 3]);
    }

    #[test]
    fn malformed_yaml_is_located() {
        let l = load_text("tasks:\n  - id: a\n    x: [1, 2\n");
        assert!(l.config.is_none());
        let d = &l.diagnostics.items[0];
        assert!(d.message.starts_with("invalid YAML"), "{}", d.message);
        assert!(d.span.line >= 3);
    }
}
