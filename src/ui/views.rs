//! The run page's analysis views, computed by `analysis` (never again here): learning and
//! anytime curves as one SVG image per axis (`analysis::curves` drawn by
//! `analysis::html::curves_svg`, as `report.html` draws them), the causes of failure
//! grouped, and the `compare` gate of two runs (`analysis::compare`, default limits;
//! nothing is written).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Value as Json, json};

use super::runs::read_json;
use crate::analysis::compare::{Thresholds, compare as gate};
use crate::analysis::curves::{self, Axis};
use crate::analysis::{html, load_run, rescored};
use crate::results::Summary;

/// The x-axes offered, by their URL name: the step, then the anytime axes.
pub const AXES: [(&str, Axis, &str); 5] = [
    ("step", Axis::Step, "step"),
    ("metric_calls", Axis::MetricCalls, "metric calls"),
    ("tokens", Axis::Tokens, "tokens"),
    ("cost", Axis::MicroUsd, "cost (micro-USD)"),
    ("millis", Axis::Millis, "milliseconds"),
];

/// Drawn curves by run directory and axis, with the counts they were drawn at: a run
/// whose counts did not change is not read again.
#[derive(Debug, Default)]
pub struct CurveCache {
    drawn: Mutex<HashMap<(PathBuf, &'static str), Drawn>>,
}

/// The stamp a drawing was made at, and the drawing.
type Drawn = (String, Option<String>);

impl CurveCache {
    /// The SVG of a run's curves on `axis` (`None`: no ok job has a history yet). `stamp`
    /// says what the run looks like now (its counts); a cached drawing of the same stamp
    /// is reused.
    pub fn svg(&self, dir: &Path, axis: &str, stamp: &str) -> Result<Option<String>, String> {
        let Some(&(name, axis, label)) = AXES.iter().find(|a| a.0 == axis) else {
            return Err(format!(
                "no axis `{axis}`: one of {}",
                AXES.map(|a| a.0).join(", ")
            ));
        };
        let key = (dir.to_path_buf(), name);
        if let Some((s, svg)) = self
            .drawn
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && s == stamp
        {
            return Ok(svg.clone());
        }
        let run = load_run(dir, true).map_err(|e| e.to_string())?;
        let mut summary = Summary::new(&run.manifest);
        for j in &run.jobs {
            summary.add(&j.row);
        }
        let svg = html::curves_svg(&summary, &curves::build_on(&run.jobs, axis), label);
        self.drawn
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (stamp.to_string(), svg.clone()));
        Ok(svg)
    }
}

/// The first line of an error, cut to 300 characters: what groups failures.
fn headline(error: &str) -> String {
    let line = error.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut s: String = line.trim().chars().take(300).collect();
    if line.trim().chars().count() > 300 {
        s.push('…');
    }
    s
}

/// The causes of failure of a run's jobs that did not end ok: `(job id, status label)`
/// pairs grouped by status, error kind and the error's first line, most frequent first,
/// each with a few of its jobs.
pub fn failures(run_dir: &Path, jobs: &[(String, &'static str)]) -> Json {
    let mut groups: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    for (job_id, label) in jobs {
        let dir = run_dir.join("jobs").join(job_id);
        let r =
            read_json(&dir.join("results.json")).or_else(|| read_json(&dir.join("job_meta.json")));
        let field = |k: &str| {
            r.as_ref()
                .and_then(|r| r.get(k))
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string()
        };
        let key = (
            label.to_string(),
            field("error_kind"),
            headline(&field("error")),
        );
        groups.entry(key).or_default().push(job_id.clone());
    }
    let mut out: Vec<Json> = groups
        .into_iter()
        .map(|((status, kind, message), ids)| {
            json!({"status": status, "error_kind": kind, "message": message,
                   "count": ids.len(), "jobs": ids.iter().take(5).collect::<Vec<_>>()})
        })
        .collect();
    out.sort_by(|a, b| b["count"].as_u64().cmp(&a["count"].as_u64()));
    json!({"total": jobs.len(), "groups": out})
}

/// The `compare` gate of two run directories with the default limits (a re-scoring of
/// the base pairs with the jobs it re-scored, as `compare` does): `gate.json`'s document.
pub fn compare(base: (&str, &Path), new: (&str, &Path)) -> Result<Json, String> {
    let b = load_run(base.1, false).map_err(|e| format!("{}: {e}", base.0))?;
    let mut n = load_run(new.1, false).map_err(|e| format!("{}: {e}", new.0))?;
    if let Some(paired) = rescored::as_source(&n, &b) {
        n = paired;
    }
    let g = gate(
        &b,
        &n,
        (base.0.to_string(), new.0.to_string()),
        &Thresholds::default(),
    );
    Ok(g.to_json())
}
