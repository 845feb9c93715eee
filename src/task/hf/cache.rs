//! The standard Hugging Face hub cache, read offline: where it is, which snapshot of a
//! dataset repo to use, which files hold a split, and their rows as JSON values (parquet
//! through the arrow-rs `parquet` crate's record API, JSON and JSON Lines through serde).

use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::{Map, Value as Json};

use super::HfError;

/// The hub cache: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn hub_cache() -> PathBuf {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("HF_HUB_CACHE") {
        return dir;
    }
    if let Some(home) = var("HF_HOME") {
        return home.join("hub");
    }
    let home = var("HOME").unwrap_or_else(|| PathBuf::from("/nonexistent"));
    home.join(".cache").join("huggingface").join("hub")
}

/// The cache folder of a dataset repo: `datasets--<org>--<name>`.
pub fn repo_dir(cache: &Path, dataset_id: &str) -> PathBuf {
    cache.join(format!("datasets--{}", dataset_id.replace('/', "--")))
}

/// The command that puts `dataset_id` in the cache.
pub fn download_command(dataset_id: &str) -> String {
    format!("huggingface-cli download --repo-type dataset {dataset_id}")
}

/// The snapshot to read: the one `refs/main` names, else the only one, else the most
/// recently modified. `None` when the repo is not in the cache.
pub fn snapshot(cache: &Path, dataset_id: &str) -> Option<PathBuf> {
    let repo = repo_dir(cache, dataset_id);
    let snapshots = repo.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(repo.join("refs").join("main")) {
        let dir = snapshots.join(rev.trim());
        if dir.is_dir() {
            return Some(dir);
        }
    }
    let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&snapshots)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| {
            let time = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (time, e.path())
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, p)| p)
}

fn is_data_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".parquet") || name.ends_with(".jsonl") || name.ends_with(".json")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden {
            continue;
        }
        if path.is_dir() {
            walk(&path, out);
        } else if is_data_file(&path) {
            out.push(path);
        }
    }
}

/// The files of `split` (of `config`, when set) in a snapshot, in path order (the order
/// `datasets` reads shards in): the `data_files` the repo's README declares for the config
/// (`configs:` front matter), else by name as `datasets` infers splits — a file whose path
/// holds the split name (or, for train / validation / test, one of its usual spellings) as a
/// word between `-._ /` or digits, under a folder named after the config when it has one.
pub fn split_files(snapshot: &Path, config: Option<&str>, split: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    walk(snapshot, &mut files);
    files.sort();
    let rel = |f: &PathBuf| {
        f.strip_prefix(snapshot)
            .unwrap_or(f)
            .to_string_lossy()
            .replace('\\', "/")
    };
    if let Some(patterns) = declared_patterns(snapshot, config, split) {
        return files
            .into_iter()
            .filter(|f| {
                let r = rel(f);
                patterns.iter().any(|p| p.is_match(&r))
            })
            .collect();
    }
    let words: Vec<&str> = match split {
        "train" => vec!["train", "training"],
        "validation" => vec!["validation", "valid", "dev", "val"],
        "test" => vec!["test", "testing", "eval", "evaluation"],
        other => vec![other],
    };
    files
        .into_iter()
        .filter(|f| {
            let r = rel(f);
            let dirs: Vec<&str> = r.split('/').collect();
            let in_config = config.is_none_or(|c| dirs[..dirs.len() - 1].contains(&c));
            in_config && words.iter().any(|w| has_word(&r, w))
        })
        .collect()
}

/// Whether `word` occurs in `path` between delimiters (`-._ /`, digits, or the ends).
fn has_word(path: &str, word: &str) -> bool {
    let delim = |c: Option<char>| c.is_none_or(|c| "-._ /".contains(c) || c.is_ascii_digit());
    path.match_indices(word).any(|(i, _)| {
        delim(path[..i].chars().next_back()) && delim(path[i + word.len()..].chars().next())
    })
}

/// The README's `configs:` `data_files` patterns of (config, split); `None` when the README
/// declares no such config (then splits are inferred from file names).
fn declared_patterns(
    snapshot: &Path,
    config: Option<&str>,
    split: &str,
) -> Option<Vec<regex::Regex>> {
    let text = std::fs::read_to_string(snapshot.join("README.md")).ok()?;
    let rest = text.strip_prefix("---")?;
    let end = rest.find("\n---")?;
    let doc: Json = crate::config::decode_yaml("README.md", &rest[..end]).ok()?;
    let configs = doc.get("configs")?.as_array()?;
    let name = config.unwrap_or("default");
    let chosen = configs
        .iter()
        .find(|c| c.get("config_name").and_then(Json::as_str) == Some(name))
        .or_else(|| (config.is_none() && configs.len() == 1).then(|| &configs[0]))?;
    let strings = |v: &Json| -> Vec<String> {
        match v {
            Json::String(s) => vec![s.clone()],
            Json::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    let patterns: Vec<String> = match chosen.get("data_files")? {
        v @ (Json::String(_) | Json::Array(_))
            if v.as_array().is_none_or(|a| a.iter().all(Json::is_string)) =>
        {
            if split == "train" {
                strings(v)
            } else {
                Vec::new()
            }
        }
        Json::Array(items) => items
            .iter()
            .filter(|i| i.get("split").and_then(Json::as_str) == Some(split))
            .flat_map(|i| i.get("path").map(strings).unwrap_or_default())
            .collect(),
        Json::Object(map) => map.get(split).map(strings).unwrap_or_default(),
        _ => Vec::new(),
    };
    Some(patterns.iter().filter_map(|p| glob_regex(p)).collect())
}

/// A `data_files` glob (`*`, `**`, `?`) as an anchored regex over `/`-separated paths.
fn glob_regex(glob: &str) -> Option<regex::Regex> {
    let mut re = String::from("^");
    let mut chars = glob.trim_start_matches("./").chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                    re.push_str("(?:.*/)?");
                } else {
                    re.push_str(".*");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).ok()
}

/// Read up to `limit` rows of `files`, in order.
pub fn read_rows(files: &[PathBuf], limit: usize) -> Result<Vec<Json>, HfError> {
    let mut rows = Vec::new();
    for file in files {
        if rows.len() >= limit {
            break;
        }
        let want = limit - rows.len();
        let name = file.to_string_lossy();
        if name.ends_with(".parquet") {
            read_parquet(file, want, &mut rows)?;
        } else {
            read_json(file, want, &mut rows)?;
        }
    }
    Ok(rows)
}

fn read_parquet(path: &Path, limit: usize, out: &mut Vec<Json>) -> Result<(), HfError> {
    let err = |e: parquet::errors::ParquetError| HfError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(|e| HfError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let reader = SerializedFileReader::new(file).map_err(err)?;
    for row in reader.get_row_iter(None).map_err(err)?.take(limit) {
        let row = row.map_err(err)?;
        out.push(row_to_json(&row));
    }
    Ok(())
}

fn row_to_json(row: &parquet::record::Row) -> Json {
    let mut map = Map::new();
    for (name, field) in row.get_column_iter() {
        map.insert(name.clone(), field_to_json(field));
    }
    Json::Object(map)
}

/// A parquet value as JSON, the way `datasets` hands rows to Python (structs are objects,
/// lists are arrays).
fn field_to_json(field: &Field) -> Json {
    match field {
        Field::Null => Json::Null,
        Field::Bool(b) => Json::Bool(*b),
        Field::Byte(v) => Json::from(*v),
        Field::Short(v) => Json::from(*v),
        Field::Int(v) => Json::from(*v),
        Field::Long(v) => Json::from(*v),
        Field::UByte(v) => Json::from(*v),
        Field::UShort(v) => Json::from(*v),
        Field::UInt(v) => Json::from(*v),
        Field::ULong(v) => Json::from(*v),
        Field::Float(v) => {
            serde_json::Number::from_f64(f64::from(*v)).map_or(Json::Null, Json::Number)
        }
        Field::Double(v) => serde_json::Number::from_f64(*v).map_or(Json::Null, Json::Number),
        Field::Str(s) => Json::String(s.clone()),
        Field::Bytes(b) => Json::String(String::from_utf8_lossy(b.data()).into_owned()),
        Field::Group(row) => row_to_json(row),
        Field::ListInternal(list) => {
            Json::Array(list.elements().iter().map(field_to_json).collect())
        }
        Field::MapInternal(map) => Json::Object(
            map.entries()
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Field::Str(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (key, field_to_json(v))
                })
                .collect(),
        ),
        other => Json::String(other.to_string()),
    }
}

/// A `.json` file holding an array of rows (or an object whose only array value is the
/// rows), or JSON Lines (`.jsonl`, and `.json` files that are not one document).
fn read_json(path: &Path, limit: usize, out: &mut Vec<Json>) -> Result<(), HfError> {
    let text = std::fs::read_to_string(path).map_err(|e| HfError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if path.extension().is_some_and(|e| e == "json")
        && let Ok(doc) = serde_json::from_str::<Json>(&text)
    {
        let rows = match doc {
            Json::Array(rows) => rows,
            Json::Object(map) => {
                let mut arrays = map.into_iter().filter_map(|(_, v)| match v {
                    Json::Array(a) => Some(a),
                    _ => None,
                });
                match (arrays.next(), arrays.next()) {
                    (Some(rows), None) => rows,
                    _ => {
                        return Err(HfError::Read {
                            path: path.to_path_buf(),
                            message: "a JSON object without one list of rows".into(),
                        });
                    }
                }
            }
            _ => {
                return Err(HfError::Read {
                    path: path.to_path_buf(),
                    message: "not a list of rows".into(),
                });
            }
        };
        out.extend(rows.into_iter().take(limit));
        return Ok(());
    }
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        if i >= limit {
            break;
        }
        let row = serde_json::from_str(line).map_err(|e| HfError::Read {
            path: path.to_path_buf(),
            message: format!("line {}: {e}", i + 1),
        })?;
        out.push(row);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_follow_refs_main_and_split_files_are_matched_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo_dir(dir.path(), "openai/gsm8k");
        assert!(repo.ends_with("datasets--openai--gsm8k"));
        assert_eq!(snapshot(dir.path(), "openai/gsm8k"), None);
        for rev in ["aaa", "bbb"] {
            let s = repo.join("snapshots").join(rev).join("main");
            std::fs::create_dir_all(&s).unwrap();
            for f in [
                "train-00000-of-00001.parquet",
                "test-00000-of-00001.parquet",
            ] {
                std::fs::write(s.join(f), "").unwrap();
            }
        }
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "aaa\n").unwrap();
        let snap = snapshot(dir.path(), "openai/gsm8k").unwrap();
        assert!(snap.ends_with("snapshots/aaa"));
        let other = snap.join("socratic");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("train-00000-of-00001.parquet"), "").unwrap();
        let train = split_files(&snap, Some("main"), "train");
        assert_eq!(train, [snap.join("main/train-00000-of-00001.parquet")]);
        assert_eq!(split_files(&snap, None, "train").len(), 2);
        assert!(split_files(&snap, Some("main"), "validation").is_empty());
        let convert = snap.join("main/validation");
        std::fs::create_dir_all(&convert).unwrap();
        std::fs::write(convert.join("0000.parquet"), "").unwrap();
        assert_eq!(split_files(&snap, Some("main"), "validation").len(), 1);
        // Names as `datasets` infers them: the split as a word, usual spellings.
        std::fs::write(snap.join("musique_ans_v1.0_dev.jsonl"), "").unwrap();
        std::fs::write(snap.join("musique_ans_v1.0_training.jsonl"), "").unwrap();
        std::fs::write(snap.join("pretrained.jsonl"), "").unwrap();
        let names = |split| {
            split_files(&snap, None, split)
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        assert!(names("validation").contains(&"musique_ans_v1.0_dev.jsonl".to_string()));
        assert!(names("train").contains(&"musique_ans_v1.0_training.jsonl".to_string()));
        assert!(!names("train").contains(&"pretrained.jsonl".to_string()));
    }

    #[test]
    fn readme_configs_declare_the_data_files() {
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path();
        for f in [
            "distractor/train-0.parquet",
            "distractor/train-1.parquet",
            "distractor/validation-0.parquet",
            "fullwiki/train-0.parquet",
            "odd/x.parquet",
        ] {
            std::fs::create_dir_all(snap.join(f).parent().unwrap()).unwrap();
            std::fs::write(snap.join(f), "").unwrap();
        }
        std::fs::write(
            snap.join("README.md"),
            "---\nconfigs:\n- config_name: distractor\n  data_files:\n  - split: train\n    path: distractor/train-*\n  - split: validation\n    path: odd/*.parquet\n- config_name: fullwiki\n  data_files: \"fullwiki/**\"\n---\n# card\n",
        )
        .unwrap();
        let rel = |v: Vec<PathBuf>| {
            v.iter()
                .map(|p| p.strip_prefix(snap).unwrap().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            rel(split_files(snap, Some("distractor"), "train")),
            ["distractor/train-0.parquet", "distractor/train-1.parquet"]
        );
        assert_eq!(
            rel(split_files(snap, Some("distractor"), "validation")),
            ["odd/x.parquet"]
        );
        assert_eq!(
            rel(split_files(snap, Some("fullwiki"), "train")),
            ["fullwiki/train-0.parquet"]
        );
        assert!(split_files(snap, Some("fullwiki"), "test").is_empty());
        // A config the README does not declare: names decide.
        assert_eq!(split_files(snap, Some("odd"), "train").len(), 0);
    }

    #[test]
    fn json_and_jsonl_files_give_rows_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("train.json");
        std::fs::write(
            &a,
            r#"{"version": 1, "data": [{"q": 1}, {"q": 2}, {"q": 3}]}"#,
        )
        .unwrap();
        let b = dir.path().join("train-2.jsonl");
        std::fs::write(&b, "{\"q\": 4}\n\n{\"q\": 5}\n").unwrap();
        let rows = read_rows(&[a.clone(), b.clone()], 4).unwrap();
        let qs: Vec<i64> = rows.iter().map(|r| r["q"].as_i64().unwrap()).collect();
        assert_eq!(qs, [1, 2, 3, 4]);
        std::fs::write(&b, "{\"q\": 4}\nnot json\n").unwrap();
        let e = read_rows(&[b], 9).unwrap_err().to_string();
        assert!(e.contains("train-2.jsonl") && e.contains("line 2"), "{e}");
    }
}
