//! A run made by `trace-bench rescore` read as its source run's jobs, so `compare SOURCE
//! RESCORED` pairs each job with the re-scoring of its state: the rescored run's
//! `meta/source.json` names the source run, and each rescored job's
//! `eval_kwargs.rescore_of` names the job and state it scored.

use std::collections::HashMap;

use super::load::RunData;

/// The states a pairing prefers when a job was re-scored in several: the best state is what
/// the source's `score_val`/`score_test` describe.
const PREFERRED: [&str; 3] = ["best", "final", "initial"];

/// When `rescored` was made from `source` (its `meta/source.json` names `source`'s run id):
/// its jobs with the identity of the source jobs they re-scored (task, trainer, variant,
/// `eval_kwargs`, seed), one state per job (best, else final, else initial). Otherwise
/// `None`, and the runs compare as they are.
pub fn as_source(rescored: &RunData, source: &RunData) -> Option<RunData> {
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(rescored.dir.meta_dir().join("source.json")).ok()?,
    )
    .ok()?;
    if record.get("source_run_id")?.as_str()? != source.manifest.run_id.as_str() {
        return None;
    }
    let by_id: HashMap<&str, _> = source
        .jobs
        .iter()
        .map(|j| (j.row.job_id.as_str(), &j.row))
        .collect();
    let mut chosen: HashMap<String, (usize, crate::results::JobResults)> = HashMap::new();
    for job in &rescored.jobs {
        let Some(origin) = job
            .row
            .eval_kwargs
            .get("rescore_of")
            .and_then(|v| v.as_str())
        else {
            continue;
        };
        let Some((id, state)) = origin.split_once('/') else {
            continue;
        };
        let (Some(src), Some(rank)) = (by_id.get(id), PREFERRED.iter().position(|s| *s == state))
        else {
            continue;
        };
        if chosen.get(id).is_some_and(|(r, _)| *r <= rank) {
            continue;
        }
        let mut as_src = job.clone();
        as_src.row.task_id = src.task_id.clone();
        as_src.row.trainer_id = src.trainer_id.clone();
        as_src.row.variant_index = src.variant_index;
        as_src.row.eval_kwargs = src.eval_kwargs.clone();
        // Compared as the source's job: its score_test is there only when it was scored.
        as_src.row.seed = src.seed;
        chosen.insert(id.to_string(), (rank, as_src));
    }
    // In the source's job order, so groups come out as they do for the source.
    let jobs = source
        .jobs
        .iter()
        .filter_map(|j| chosen.remove(j.row.job_id.as_str()).map(|(_, r)| r))
        .collect();
    Some(RunData {
        dir: rescored.dir.clone(),
        manifest: rescored.manifest.clone(),
        jobs,
        missing: rescored.missing,
    })
}
