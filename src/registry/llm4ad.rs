//! LLM4AD tasks from outside the binary. `llm4ad:<key>` resolves, in order, to a folder of
//! the reference's converted format under `--root` / `llm4ad_root`, to the upstream
//! `llm4ad` package installed in the Python that runs the evaluators (`llm4ad_python`, else
//! `python3` on PATH), then to the tasks embedded in this binary. Discovery runs
//! `discover.py` (it reads templates with `ast` and checks imports with `find_spec`,
//! importing no task); every evaluation runs `bridge.py`, which keeps the candidate in a
//! child interpreter of its own (docs/tasks.md, "LLM4AD").

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::task::process::{ProcessSpec, run};
use crate::task::{Task, TaskManifest};

/// The reference's score of a failed evaluation.
pub const FAILURE_SCORE: f64 = -1_000_000.0;
/// Per-evaluation limit unless `eval_kwargs.timeout_seconds` sets one (bp_2d_construct's
/// template takes 30 s upstream).
const EVALUATION_TIMEOUT_S: f64 = 120.0;
/// How long discovery may take (it imports nothing heavy; 0.2–0.6 s measured).
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Where LLM4AD tasks come from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Llm4adSources {
    /// A `benchmark_tasks` folder of the reference (with its `index.json`).
    pub root: Option<PathBuf>,
    /// The interpreter that discovers and evaluates (default `python3` on PATH).
    pub python: Option<String>,
}

/// What discovery found.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    /// The interpreter, as an absolute path.
    pub python: String,
    /// Its version.
    pub version: String,
    /// The upstream package: `{version, path}` or `{problem}`.
    pub upstream: serde_json::Value,
    /// The root folder: `{path}` or `{problem}`, when one was given.
    #[serde(default)]
    pub root: Option<serde_json::Value>,
    /// Every task, folder tasks first.
    pub tasks: Vec<Found>,
    /// Why a candidate's process cannot be confined here (`None`: it is).
    #[serde(default)]
    pub confinement: Option<String>,
}

/// One discovered task.
#[derive(Debug, Clone, Deserialize)]
pub struct Found {
    /// `optimization/tsp_construct`; the id is `llm4ad:<key>`.
    pub key: String,
    /// `upstream` or `folder`.
    pub source: String,
    /// Python module (upstream) or folder name (reference).
    pub module: String,
    /// The evaluator class.
    pub eval_class: Option<String>,
    /// The function the candidate defines.
    pub entry: Option<String>,
    /// The template program.
    pub template: String,
    /// The task's description.
    pub description: String,
    /// Python modules the task imports that this interpreter lacks.
    pub missing: Vec<String>,
    /// The PyPI distributions that provide them (`sklearn` -> `scikit-learn`).
    #[serde(default)]
    pub install: Vec<String>,
    /// The evaluator executes the program text itself (it gets a forwarding stub).
    pub execs_program: bool,
    /// The root folder (folder tasks).
    #[serde(default)]
    pub root: Option<String>,
}

/// Run discovery with the bridge files in `bridge_dir`; `Err` says why nothing could be
/// discovered (no interpreter, a crash), for `list-tasks` and skip reasons.
pub fn discover(sources: &Llm4adSources, bridge_dir: &Path) -> Result<Discovery, String> {
    let python = sources.python.clone().unwrap_or_else(|| "python3".into());
    let mut argv = vec![
        python.clone(),
        "-I".into(),
        bridge_dir.join("discover.py").display().to_string(),
    ];
    if let Some(root) = &sources.root {
        let root = root
            .canonicalize()
            .map_err(|e| format!("llm4ad root `{}`: {e}", root.display()))?;
        argv.extend(["--root".into(), root.display().to_string()]);
    }
    let spec = ProcessSpec {
        argv,
        cwd: bridge_dir.to_path_buf(),
        env: crate::task::command::evaluator_env(bridge_dir),
        stdin: Vec::new(),
        timeout: DISCOVERY_TIMEOUT,
    };
    let out = run(&spec, None).map_err(|e| format!("cannot start `{python}`: {e}"))?;
    if out.code != Some(0) {
        return Err(format!(
            "LLM4AD discovery with `{python}` failed: {}",
            out.stderr_tail(400)
        ));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("LLM4AD discovery with `{python}` printed no report: {e}"))
}

/// The task for a discovered entry, evaluated through `bridge_dir/bridge.py` by the
/// discovering interpreter; a task with missing modules is listed and skipped with the fix.
pub fn task(found: &Found, discovery: &Discovery, bridge_dir: &Path) -> Result<Task, String> {
    let id = format!("llm4ad:{}", found.key);
    let entry = found.entry.clone().unwrap_or_default();
    let skip_reason = if found.missing.is_empty() {
        found
            .eval_class
            .is_none()
            .then(|| format!("task `{id}`: no evaluator class found in its folder"))
    } else {
        Some(format!(
            "task `{id}` needs the Python module(s) {} in `{}`: pip install {}",
            found
                .missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", "),
            discovery.python,
            if found.install.is_empty() {
                found.missing.join(" ")
            } else {
                found.install.join(" ")
            }
        ))
    };
    let description = if found.description.is_empty() {
        format!("LLM4AD task {}", found.key)
    } else {
        found.description.clone()
    };
    let source = match found.source.as_str() {
        "folder" => format!(
            "the reference's folder `{}`",
            found.root.as_deref().unwrap_or_default()
        ),
        _ => "the upstream llm4ad package".to_string(),
    };
    let manifest = json!({
        "id": id,
        "description": format!("{description} (from {source})"),
        "objective": format!(
            "Improve the Python program defining `{entry}` (keep the function's name and signature; \
             only standard imports, no top-level I/O): {description} Higher scores are better."
        ),
        "parameters": [{
            "name": "program",
            "kind": "code",
            "description": format!(
                "A Python program (imports plus one `def {entry}(...)`) that the task's evaluator calls."
            ),
            "initial": found.template,
        }],
        "splits": {"train": [{
            "input": description,
            "info": {
                "source": found.source,
                "module": found.module,
                "root": found.root,
                "eval_class": found.eval_class,
                "entry": entry,
                "execs_program": found.execs_program,
            },
        }]},
        "evaluator": {
            "kind": "command",
            // One bridge per job: the evaluator (imports, instances) is built once.
            "command": [discovery.python, "-I", "{task_dir}/bridge.py", "--serve"],
            "serve": true,
            "timeout_seconds": EVALUATION_TIMEOUT_S,
            "failure_score": FAILURE_SCORE,
        },
        "skip_reason": skip_reason,
        "memory_size": 10,
    });
    let manifest: TaskManifest = serde_json::from_value(manifest)
        .map_err(|e| format!("task `llm4ad:{}`: {e}", found.key))?;
    Task::from_folder(manifest, Some(bridge_dir)).map_err(|e| e.to_string())
}

/// Why `id` (an `llm4ad:` id the registry does not have) cannot run, with the fix.
pub fn missing_reason(id: &str, discovery: Option<&Result<Discovery, String>>) -> String {
    let install = "install the upstream package into the evaluators' Python (`pip install --no-deps llm4ad` plus `numpy<2 scipy pytz`; set `llm4ad_python` to use another interpreter), or pass `--root <Trace-Bench>/benchmarks/LLM4AD/benchmark_tasks`";
    match discovery {
        Some(Err(e)) => format!("task `{id}` is not available: {e}; {install}"),
        Some(Ok(d)) => format!(
            "task `{id}` is in neither the upstream package ({}) nor the --root folder ({}) of `{}`; {install}",
            d.upstream
                .get("version")
                .and_then(|v| v.as_str())
                .map_or_else(|| "not installed".to_string(), |v| format!("version {v}")),
            d.root
                .as_ref()
                .and_then(|r| r.get("path").and_then(|p| p.as_str()).map(str::to_string))
                .unwrap_or_else(|| "none given".into()),
            d.python
        ),
        None => format!("task `{id}` is not available in this build; {install}"),
    }
}
