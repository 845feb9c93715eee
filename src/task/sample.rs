//! Per-job example selection of the reference's multi-objective tasks
//! (`internal:multiobjective_gsm8k`, `internal:multiobjective_bbeh`): a pool of examples —
//! a dataset from the Hugging Face cache or a local JSON file when there is one, else the
//! task's embedded examples — shuffled by NumPy's `RandomState(seed)` and cut to the first
//! `n_train`, so a job trains on the rows the reference would pick.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::hf::cache;
use super::{Example, Splits};
use crate::rng::numpy::RandomState;
use crate::vocab::Kwargs;

/// The manifest's `sample` block: defaults a job's `eval_kwargs` may override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleSpec {
    /// Training examples (`eval_kwargs.n_train`).
    pub n_train: u64,
    /// Validation examples the reference draws and then drops (`eval_kwargs.n_val`):
    /// checked, not used, so the training rows stay the reference's.
    #[serde(default)]
    pub n_val: u64,
    /// The `RandomState` seed (`eval_kwargs.seed`), at most 2³²−1 as in NumPy.
    pub seed: u64,
    /// Rows of a dataset in the hub cache (used when it is there).
    #[serde(default)]
    pub from_hf: Option<HfSource>,
    /// A JSON file found from the working directory up (used when it is there).
    #[serde(default)]
    pub from_file: Option<FileSource>,
}

/// A split of a cached Hugging Face dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HfSource {
    /// `org/name`.
    pub dataset: String,
    /// The HF config (`main`).
    #[serde(default)]
    pub config: Option<String>,
    /// The split (`train`).
    pub split: String,
    /// The column that becomes the input.
    pub input: String,
    /// The column that becomes `info.answer`.
    pub answer: String,
}

/// A JSON file holding a list of examples under `key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    /// Relative path, looked up in the working directory and its three parents.
    pub path: String,
    /// The key of the list.
    pub key: String,
    /// The field that becomes the input.
    pub input: String,
    /// The field that becomes `info.answer`.
    pub answer: String,
}

/// Why a job's examples cannot be drawn.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SampleError {
    /// A count or seed in `eval_kwargs` is not a non-negative integer in range.
    #[error("eval_kwargs.{key} must be an integer from 0 to {max}, found {value}")]
    BadValue {
        /// `n_train`, `n_val` or `seed`.
        key: &'static str,
        /// Largest accepted value.
        max: u64,
        /// The value given.
        value: String,
    },
    /// A source that is there could not be read.
    #[error("cannot read examples from `{}`: {message}", path.display())]
    Read {
        /// The file or snapshot.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Where a job's examples came from (recorded with the job).
#[derive(Debug, Clone, PartialEq)]
pub enum PoolSource {
    /// The cached dataset's snapshot.
    Hf(PathBuf),
    /// The local file.
    File(PathBuf),
    /// The task's embedded examples (no source found).
    Embedded,
}

impl std::fmt::Display for PoolSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PoolSource::Hf(p) => write!(f, "hub cache `{}`", p.display()),
            PoolSource::File(p) => write!(f, "file `{}`", p.display()),
            PoolSource::Embedded => f.write_str("the task's embedded examples"),
        }
    }
}

fn value(kwargs: &Kwargs, key: &'static str, default: u64, max: u64) -> Result<u64, SampleError> {
    match kwargs.get(key) {
        None => Ok(default),
        Some(Json::Number(n)) if n.as_u64().is_some_and(|v| v <= max) => {
            Ok(n.as_u64().unwrap_or(default))
        }
        Some(other) => Err(SampleError::BadValue {
            key,
            max,
            value: other.to_string(),
        }),
    }
}

impl SampleSpec {
    /// The job's splits: `n_train` examples of the pool in `RandomState(seed)` order
    /// (the pool's own examples when no source is there), and where they came from.
    pub fn draw(
        &self,
        embedded: &[Example],
        eval_kwargs: &Kwargs,
        cwd: &Path,
    ) -> Result<(Splits, PoolSource), SampleError> {
        let n_train = value(eval_kwargs, "n_train", self.n_train, u32::MAX.into())? as usize;
        value(eval_kwargs, "n_val", self.n_val, u32::MAX.into())?;
        let seed = value(eval_kwargs, "seed", self.seed, u32::MAX.into())? as u32;
        let (pool, source) = self.pool(embedded, cwd)?;
        let order = RandomState::new(seed).permutation(pool.len());
        let train = order
            .into_iter()
            .take(n_train)
            .map(|i| pool[i].clone())
            .collect();
        Ok((
            Splits {
                train,
                ..Splits::default()
            },
            source,
        ))
    }

    fn pool(
        &self,
        embedded: &[Example],
        cwd: &Path,
    ) -> Result<(Vec<Example>, PoolSource), SampleError> {
        if let Some(src) = &self.from_hf
            && let Some(found) = hf_pool(src)?
        {
            return Ok(found);
        }
        if let Some(src) = &self.from_file
            && let Some(found) = file_pool(src, cwd)?
        {
            return Ok(found);
        }
        Ok((embedded.to_vec(), PoolSource::Embedded))
    }
}

fn example(row: &Json, input: &str, answer: &str) -> Option<Example> {
    let text = |v: &Json| match v {
        Json::String(s) => Some(s.clone()),
        Json::Null => None,
        other => Some(other.to_string()),
    };
    Some(Example {
        input: json!(text(row.get(input)?)?),
        info: json!({"answer": text(row.get(answer)?)?, "hint": null}),
    })
}

fn hf_pool(src: &HfSource) -> Result<Option<(Vec<Example>, PoolSource)>, SampleError> {
    let root = cache::hub_cache();
    let Some(snapshot) = cache::snapshot(&root, &src.dataset) else {
        return Ok(None);
    };
    let files = cache::split_files(&snapshot, src.config.as_deref(), &src.split);
    if files.is_empty() {
        return Ok(None);
    }
    let rows = cache::read_rows(&files, usize::MAX).map_err(|e| SampleError::Read {
        path: snapshot.clone(),
        message: e.to_string(),
    })?;
    let pool = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            example(row, &src.input, &src.answer).ok_or_else(|| SampleError::Read {
                path: snapshot.clone(),
                message: format!(
                    "row {i} of split `{}` has no text `{}` and `{}`",
                    src.split, src.input, src.answer
                ),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some((pool, PoolSource::Hf(snapshot))))
}

fn file_pool(
    src: &FileSource,
    cwd: &Path,
) -> Result<Option<(Vec<Example>, PoolSource)>, SampleError> {
    let Some(path) = cwd
        .ancestors()
        .take(4)
        .map(|dir| dir.join(&src.path))
        .find(|p| p.is_file())
    else {
        return Ok(None);
    };
    let read = |message: String| SampleError::Read {
        path: path.clone(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| read(e.to_string()))?;
    let doc: Json = serde_json::from_str(&text).map_err(|e| read(e.to_string()))?;
    let rows = doc
        .get(&src.key)
        .and_then(Json::as_array)
        .ok_or_else(|| read(format!("no list under `{}`", src.key)))?;
    let pool = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            example(row, &src.input, &src.answer).ok_or_else(|| {
                read(format!(
                    "{}[{i}] has no `{}` and `{}`",
                    src.key, src.input, src.answer
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some((pool, PoolSource::File(path))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize) -> Vec<Example> {
        (0..n)
            .map(|i| Example {
                input: json!(format!("q{i}")),
                info: json!({"answer": i.to_string()}),
            })
            .collect()
    }

    fn spec() -> SampleSpec {
        SampleSpec {
            n_train: 15,
            n_val: 5,
            seed: 42,
            from_hf: None,
            from_file: Some(FileSource {
                path: "bbeh/task.json".into(),
                key: "examples".into(),
                input: "input".into(),
                answer: "target".into(),
            }),
        }
    }

    fn inputs(s: &Splits) -> Vec<String> {
        s.train
            .iter()
            .map(|e| e.input.as_str().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn the_embedded_pool_is_drawn_in_numpy_order() {
        let dir = tempfile::tempdir().unwrap();
        let (splits, source) = spec().draw(&pool(20), &Kwargs::new(), dir.path()).unwrap();
        assert_eq!(source, PoolSource::Embedded);
        assert_eq!(inputs(&splits)[..4], ["q0", "q17", "q15", "q1"]);
        assert_eq!(splits.train.len(), 15);
        assert!(splits.validation.is_empty());
        let kw = json!({"n_train": 3, "seed": 0})
            .as_object()
            .cloned()
            .unwrap();
        let (splits, _) = spec().draw(&pool(10), &kw, dir.path()).unwrap();
        assert_eq!(inputs(&splits), ["q2", "q8", "q4"]);
    }

    #[test]
    fn a_local_file_is_found_from_a_subdirectory_and_used() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bbeh")).unwrap();
        let rows: Vec<Json> = (0..3)
            .map(|i| json!({"input": format!("f{i}"), "target": "True"}))
            .collect();
        std::fs::write(
            dir.path().join("bbeh/task.json"),
            json!({"examples": rows}).to_string(),
        )
        .unwrap();
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        let (splits, source) = spec().draw(&pool(20), &Kwargs::new(), &sub).unwrap();
        assert_eq!(source, PoolSource::File(dir.path().join("bbeh/task.json")));
        assert_eq!(splits.train.len(), 3);
        std::fs::write(dir.path().join("bbeh/task.json"), "{\"examples\": 3}").unwrap();
        let e = spec().draw(&pool(20), &Kwargs::new(), &sub).unwrap_err();
        assert!(e.to_string().contains("no list under `examples`"), "{e}");
    }

    #[test]
    fn bad_counts_and_seeds_are_named() {
        let dir = tempfile::tempdir().unwrap();
        for (key, bad) in [
            ("n_train", json!(-1)),
            ("n_val", json!("5")),
            ("seed", json!(4_294_967_296u64)),
        ] {
            let kw = json!({key: bad}).as_object().cloned().unwrap();
            let e = spec().draw(&pool(20), &kw, dir.path()).unwrap_err();
            assert!(e.to_string().contains(&format!("eval_kwargs.{key}")), "{e}");
        }
    }
}
