//! The `hf:` suite through the binary, offline: a small Hugging Face hub cache written here
//! as parquet in the real column layouts (gsm8k `main`, hotpot_qa `distractor`, a BBEH
//! subtask, ai2_arc `ARC-Challenge`), runs in stub mode with the catalog's selection, scores
//! hand-checked on chosen rows, a missing dataset skipped with its download command, and
//! `validate` expanding `hf:bbeh_eight` to its 8 subtasks.
//!
//! The stub agent answers with the last word of the input (lowercased letters and digits),
//! and every QA / MCQ input ends with `Answer:`, so the rows below are chosen to make that
//! answer right or wrong on purpose.

mod common;
#[path = "../src/llm/mock_server.rs"]
#[allow(dead_code)]
mod mock_server;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{Workspace, read_csv, read_json, read_jsonl};
use mock_server::{MockServer, ScriptedResponse};
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

/// One leaf column: values and Dremel definition / repetition levels.
struct Leaf {
    values: Vec<ByteArray>,
    def: Vec<i16>,
    rep: Option<Vec<i16>>,
}

/// An optional top-level string column, every value present.
fn strings(values: &[&str]) -> Leaf {
    Leaf {
        values: values.iter().map(|s| ByteArray::from(*s)).collect(),
        def: vec![1; values.len()],
        rep: None,
    }
}

/// `optional group s { optional group f (LIST) { repeated group list { optional binary element } } }`.
fn struct_list(rows: &[Vec<&str>]) -> Leaf {
    let (mut values, mut def, mut rep) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        if row.is_empty() {
            def.push(2);
            rep.push(0);
        }
        for (i, v) in row.iter().enumerate() {
            values.push(ByteArray::from(*v));
            def.push(4);
            rep.push(if i == 0 { 0 } else { 1 });
        }
    }
    Leaf {
        values,
        def,
        rep: Some(rep),
    }
}

/// A top-level `optional group f (LIST) { repeated group list { optional binary element } }`.
fn list(rows: &[Vec<&str>]) -> Leaf {
    let mut leaf = struct_list(rows);
    for d in &mut leaf.def {
        *d -= 1;
    }
    leaf
}

/// A list of lists of strings inside a struct (HotpotQA `context.sentences`).
fn struct_list_list(rows: &[Vec<Vec<&str>>]) -> Leaf {
    let (mut values, mut def, mut rep) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        for (i, inner) in row.iter().enumerate() {
            for (j, v) in inner.iter().enumerate() {
                values.push(ByteArray::from(*v));
                def.push(6);
                rep.push(match (i, j) {
                    (0, 0) => 0,
                    (_, 0) => 1,
                    _ => 2,
                });
            }
        }
    }
    Leaf {
        values,
        def,
        rep: Some(rep),
    }
}

fn write_parquet(path: &Path, schema: &str, leaves: Vec<Leaf>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let schema = Arc::new(parse_message_type(schema).unwrap());
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let file = std::fs::File::create(path).unwrap();
    let mut writer = SerializedFileWriter::new(file, schema, props).unwrap();
    let mut group = writer.next_row_group().unwrap();
    for leaf in leaves {
        let mut col = group.next_column().unwrap().expect("a column per leaf");
        col.typed::<ByteArrayType>()
            .write_batch(&leaf.values, Some(&leaf.def), leaf.rep.as_deref())
            .unwrap();
        col.close().unwrap();
    }
    assert!(group.next_column().unwrap().is_none(), "every leaf written");
    group.close().unwrap();
    writer.close().unwrap();
}

/// A repo in the cache as `huggingface-cli download` leaves it: a snapshot named by
/// `refs/main`.
fn snapshot(cache: &Path, repo: &str) -> PathBuf {
    let dir = cache.join(format!("datasets--{}", repo.replace('/', "--")));
    let snap = dir.join("snapshots").join("0123abcd");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(dir.join("refs")).unwrap();
    std::fs::write(dir.join("refs/main"), "0123abcd").unwrap();
    snap
}

const FLAT_QA: &str =
    "message schema { optional binary question (STRING); optional binary answer (STRING); }";

fn fixture(cache: &Path) {
    // gsm8k `main`: question, answer (rationale, then `#### n`).
    let gsm = snapshot(cache, "openai/gsm8k");
    let q = |n: &str| format!("Tom has some apples and gets more. Total {n}");
    let (q0, q1, q2, q3) = (q("1"), q("2"), q("3"), q("18"));
    write_parquet(
        &gsm.join("main/train-00000-of-00001.parquet"),
        FLAT_QA,
        vec![
            strings(&[&q0, &q1, &q2, &q3, "How many apples?", "unused row"]),
            strings(&[
                "1\n#### 1",
                "2\n#### 2",
                "3\n#### 3",
                "so 18\n#### 18",
                "#### 5",
                "#### 0",
            ]),
        ],
    );
    write_parquet(
        &gsm.join("main/test-00000-of-00001.parquet"),
        FLAT_QA,
        vec![
            strings(&[
                "What is 40 + 2? It is 42",
                "What is 1.5 + 1.5? 3.0",
                "unused",
            ]),
            strings(&["#### 42", "#### 3", "#### 9"]),
        ],
    );
    let hotpot = snapshot(cache, "hotpotqa/hotpot_qa");
    let hotpot_file =
        |split: &str, ids: &[&str], answers: &[&str]| write_hotpot(&hotpot, split, ids, answers);
    hotpot_file(
        "train",
        &["t0", "t1", "t2", "t3"],
        &["Paris", "Paris", "Swer.", "Arthur's Magazine"],
    );
    hotpot_file("validation", &["v0"], &["an answer"]);
    // One BBEH subtask: input, target.
    let bbeh = snapshot(cache, "hubert233/BigBenchExtraHard");
    write_parquet(
        &bbeh.join("data/boolean_expressions-00000-of-00001.parquet"),
        "message schema { optional binary input (STRING); optional binary target (STRING); }",
        vec![
            strings(&[
                "x",
                "y",
                "Count the trues: 7",
                "not True is False",
                "Pick (A)",
            ]),
            strings(&["1", "2", "7", "False", "(A)"]),
        ],
    );
    // ai2_arc `ARC-Challenge`: id, question, choices {text, label}, answerKey.
    let arc = snapshot(cache, "allenai/ai2_arc");
    let schema = "message schema {
        optional binary id (STRING); optional binary question (STRING);
        optional group choices {
          optional group text (LIST) { repeated group list { optional binary element (STRING); } }
          optional group label (LIST) { repeated group list { optional binary element (STRING); } }
        }
        optional binary answerKey (STRING); }";
    write_parquet(
        &arc.join("ARC-Challenge/train-00000-of-00001.parquet"),
        schema,
        vec![
            strings(&["a0", "a1", "a2"]),
            strings(&[
                "Which is a gas?",
                "Which word ends the prompt?",
                "Which is a metal?",
            ]),
            struct_list(&[
                vec!["oxygen", "iron"],
                vec!["swer", "question"],
                vec!["wood", "iron"],
            ]),
            struct_list(&[vec!["A", "B"], vec!["A", "B"], vec!["A", "B"]]),
            strings(&["A", "A", "B"]),
        ],
    );
    write_parquet(
        &arc.join("ARC-Challenge/test-00000-of-00001.parquet"),
        schema,
        vec![
            strings(&["b0"]),
            strings(&["Which is liquid?"]),
            struct_list(&[vec!["water", "stone"]]),
            struct_list(&[vec!["1", "2"]]),
            strings(&["1"]),
        ],
    );
    // mbpp `sanitized`: source_file, prompt, code, test_imports, test_list (its int
    // `task_id` column is left out: the suite never reads it).
    let mbpp = snapshot(cache, "google-research-datasets/mbpp");
    let schema = "message schema {
        optional binary source_file (STRING); optional binary prompt (STRING);
        optional binary code (STRING);
        optional group test_imports (LIST) { repeated group list { optional binary element (STRING); } }
        optional group test_list (LIST) { repeated group list { optional binary element (STRING); } } }";
    let sq = vec!["assert sq(3) == 9", "assert sq(-2) == 4"];
    write_parquet(
        &mbpp.join("sanitized/train-00000-of-00001.parquet"),
        schema,
        vec![
            strings(&["a.py", "b.py", "c.py"]),
            strings(&[
                "Write a function sq to square x.",
                "Write sq.",
                "Write cube.",
            ]),
            strings(&["def sq(x): return x*x", "", ""]),
            list(&[vec![], vec![], vec!["import math"]]),
            list(&[sq.clone(), sq.clone(), vec!["assert cube(2) == 8"]]),
        ],
    );
    write_parquet(
        &mbpp.join("sanitized/test-00000-of-00001.parquet"),
        schema,
        vec![
            strings(&["d.py"]),
            strings(&["Write sq again."]),
            strings(&[""]),
            list(&[vec![]]),
            list(&[sq]),
        ],
    );
    blobify(cache);
}

/// hotpot_qa `distractor`: id, question, answer, type, level, context {title, sentences}.
fn write_hotpot(hotpot: &Path, split: &str, ids: &[&str], answers: &[&str]) {
    let schema = "message schema {
        optional binary id (STRING); optional binary question (STRING);
        optional binary answer (STRING); optional binary type (STRING);
        optional binary level (STRING);
        optional group context {
          optional group title (LIST) { repeated group list { optional binary element (STRING); } }
          optional group sentences (LIST) { repeated group list {
            optional group element (LIST) { repeated group list { optional binary element (STRING); } } } }
        } }";
    let n = ids.len();
    write_parquet(
        &hotpot.join(format!("distractor/{split}-00000-of-00001.parquet")),
        schema,
        vec![
            strings(ids),
            strings(&vec!["Which magazine was started first?"; n]),
            strings(answers),
            strings(&vec!["comparison"; n]),
            strings(&vec!["hard"; n]),
            struct_list(&vec![vec!["Arthur's Magazine", "First for Women"]; n]),
            struct_list_list(&vec![
                vec![
                    vec!["Arthur's Magazine was a magazine.", " It began in 1844."],
                    vec!["First for Women began in 1989."]
                ];
                n
            ]),
        ],
    );
}

/// Move every snapshot file into the repo's `blobs/` and leave a relative symlink, as the
/// hub cache stores them.
fn blobify(cache: &Path) {
    for repo in std::fs::read_dir(cache).unwrap() {
        let repo = repo.unwrap().path();
        let found = common::files_under(&repo.join("snapshots"));
        std::fs::create_dir_all(repo.join("blobs")).unwrap();
        for (i, f) in found.iter().enumerate() {
            let blob = repo.join("blobs").join(format!("blob{i}"));
            std::fs::rename(f, &blob).unwrap();
            let depth = f.strip_prefix(&repo).unwrap().components().count() - 1;
            let target = PathBuf::from("../".repeat(depth))
                .join("blobs")
                .join(format!("blob{i}"));
            std::os::unix::fs::symlink(target, f).unwrap();
        }
    }
}

/// Run `config` against `cache`; `code` is the expected exit code (1: some job failed).
fn run(ws: &Workspace, cache: &Path, config: &str, code: i32) -> PathBuf {
    let cfg = ws.config("run.yaml", config);
    ws.cmd()
        .env("HF_HUB_CACHE", cache)
        .env("HF_HUB_OFFLINE", "1")
        .args(["run", "--config"])
        .arg(&cfg)
        .assert()
        .code(code);
    ws.only_run()
}

fn num(row: &std::collections::BTreeMap<String, String>, key: &str) -> f64 {
    row[key]
        .parse()
        .unwrap_or_else(|_| panic!("{key} = {:?} in {row:?}", row[key]))
}

#[test]
fn stub_runs_read_the_cache_select_the_catalog_rows_and_score_them() {
    let ws = Workspace::new();
    let cache = ws.path().join("hub");
    fixture(&cache);
    let link =
        cache.join("datasets--openai--gsm8k/snapshots/0123abcd/main/train-00000-of-00001.parquet");
    assert!(
        link.symlink_metadata().unwrap().file_type().is_symlink(),
        "files are blob links"
    );
    let dir = run(
        &ws,
        &cache,
        "mode: stub\nseeds: [1]\ntasks:\n\
         - {id: hf:gsm8k, eval_kwargs: {num_train: 3, num_validate: 2, num_test: 2}}\n\
         - {id: hf:hotpot_qa, eval_kwargs: {num_train: 2, num_validate: 2, num_test: 1}}\n\
         - {id: hf:bbeh_eight/boolean_expressions, eval_kwargs: {num_train: 2, num_validate: 2, num_test: 1}}\n\
         - {id: hf:arc_challenge, eval_kwargs: {num_train: 1, num_validate: 2, num_test: 1}}\n\
         - hf:musique\n\
         trainers: [NoOp]\n",
        0,
    );
    let (_, rows) = read_csv(&dir.join("results.csv"));
    let row = |id: &str| {
        rows.iter()
            .find(|r| r["task_id"] == id)
            .unwrap_or_else(|| panic!("no row for {id}: {rows:?}"))
    };
    // gsm8k: validate = train rows 3..5 (the stub says "18": right; "apples": wrong);
    // test = test rows 0..2 ("42" right; "3.0" is read as the word "0": wrong).
    let g = row("hf:gsm8k");
    assert_eq!(g["status"], "ok", "{g:?}");
    assert_eq!(num(g, "score_val_initial"), 0.5);
    assert_eq!(num(g, "score_test"), 0.5);
    assert!(g["feedback"].contains("mean over 2 examples"), "{g:?}");
    // hotpot: validate = train rows 2..4: gold "Swer." is inside the stub's "answer",
    // "Arthur's Magazine" is not; test = validation row 0, gold "an answer".
    let h = row("hf:hotpot_qa");
    assert_eq!(num(h, "score_val_initial"), 0.5, "{h:?}");
    assert_eq!(num(h, "score_test"), 1.0);
    // BBEH: one split for all three: validate rows 2..4 ("7" exact: right; "false" vs
    // "False": case matters, wrong), test row 4 (stub "a" is not "(A)").
    let b = row("hf:bbeh_eight/boolean_expressions");
    assert_eq!(num(b, "score_val_initial"), 0.5, "{b:?}");
    assert_eq!(num(b, "score_test"), 0.0);
    // ARC: validate rows 1..3: option text "swer" of the gold label is in "answer";
    // "iron" is not; test: numeric labels, gold text "water" not in "answer".
    let a = row("hf:arc_challenge");
    assert_eq!(num(a, "score_val_initial"), 0.5, "{a:?}");
    assert_eq!(num(a, "score_test"), 0.0);
    // Agent calls: every example of the validate and test partitions is answered.
    for (r, n) in [(g, 2 + 2), (h, 2 + 1), (b, 2 + 1), (a, 2 + 1)] {
        assert!(num(r, "agent_calls") >= n as f64, "{r:?}");
    }
    // Not downloaded: skipped, with the command that downloads it.
    let m = row("hf:musique");
    assert_eq!(m["status"], "skipped", "{m:?}");
    let all: String = m.values().cloned().collect::<Vec<_>>().join(" ");
    assert!(
        all.contains("huggingface-cli download --repo-type dataset dgslibisey/MuSiQue"),
        "{m:?}"
    );
}

#[test]
fn a_short_split_starves_test_first_and_a_missing_split_is_skipped() {
    let ws = Workspace::new();
    let cache = ws.path().join("hub");
    fixture(&cache);
    // BBEH boolean_expressions has 5 rows: 3 train + 2 validate, test gets none (so it is
    // not scored); hotpot has no `validation` file for this config here → skipped.
    std::fs::remove_file(cache.join(
        "datasets--hotpotqa--hotpot_qa/snapshots/0123abcd/distractor/validation-00000-of-00001.parquet",
    ))
    .unwrap();
    let dir = run(
        &ws,
        &cache,
        "mode: stub\nseeds: [1]\ntasks:\n\
         - {id: hf:bbeh/boolean_expressions, eval_kwargs: {num_train: 3, num_validate: 2, num_test: 4}}\n\
         - {id: hf:hotpot_qa, eval_kwargs: {num_train: 1, num_validate: 1, num_test: 1}}\n\
         - {id: hf:gsm8k, eval_kwargs: {num_train: \"3\"}}\n\
         trainers: [NoOp]\n",
        1,
    );
    let (_, rows) = read_csv(&dir.join("results.csv"));
    let b = &rows[0];
    assert_eq!(b["status"], "ok", "{b:?}");
    // validate = rows 3, 4: "False" (stub "false": wrong), "(A)" (wrong).
    assert_eq!(num(b, "score_val_initial"), 0.0);
    assert_eq!(b["score_test"], "", "no test examples left: {b:?}");
    let h = &rows[1];
    assert_eq!(h["status"], "skipped", "{h:?}");
    let all: String = h.values().cloned().collect::<Vec<_>>().join(" ");
    assert!(
        all.contains("split `validation`") && all.contains("hotpotqa/hotpot_qa"),
        "{h:?}"
    );
    let g = &rows[2];
    assert_eq!(g["status"], "failed", "a string count is refused: {g:?}");
}

#[test]
fn validate_expands_bbeh_eight_and_list_tasks_shows_availability() {
    let ws = Workspace::new();
    let cache = ws.path().join("hub");
    fixture(&cache);
    let cfg = ws.config(
        "v.yaml",
        "mode: stub\ntasks:\n  - id: hf:bbeh_eight\n    eval_kwargs: {num_train: 15, num_validate: 5, num_test: 180}\ntrainers: [NoOp]\n",
    );
    let out = ws
        .cmd()
        .env("HF_HUB_CACHE", &cache)
        .args(["validate", "--config"])
        .arg(&cfg)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("[OK] matrix: 8 jobs"), "{out}");
    let order = [
        "dyck_languages",
        "geometric_shapes",
        "linguini",
        "causal_understanding",
        "disambiguation_qa",
        "boolean_expressions",
        "movie_recommendation",
        "boardgame_qa",
    ];
    let mut at = 0;
    for s in order {
        let needle = format!("[OK] hf:bbeh_eight/{s}");
        let pos = out[at..]
            .find(&needle)
            .unwrap_or_else(|| panic!("{needle} after {at}: {out}"));
        at += pos + needle.len();
    }

    let json: serde_json::Value = serde_json::from_slice(
        &ws.cmd()
            .env("HF_HUB_CACHE", &cache)
            .args(["list-tasks", "--json", "--bench", "hf"])
            .assert()
            .success()
            .get_output()
            .stdout,
    )
    .unwrap();
    let items = json.as_array().unwrap();
    assert_eq!(items.len(), 51);
    let by_id = |id: &str| items.iter().find(|t| t["id"] == id).unwrap();
    assert_eq!(by_id("hf:gsm8k")["available"], true);
    assert_eq!(
        by_id("hf:bbeh/nycc")["available"],
        true,
        "the repo is cached"
    );
    let q = by_id("hf:qasc");
    assert_eq!(q["available"], false);
    assert!(
        q["skip_reason"]
            .as_str()
            .unwrap()
            .contains("huggingface-cli download --repo-type dataset allenai/qasc")
    );
    assert_eq!(by_id("hf:humaneval")["available"], false);
}

/// A real-mode NoOp run of `tasks` (YAML list items) against the loopback mock answering
/// every call with `reply`; the workspace, the mock and the run directory.
fn real_mode_run(reply: &str, tasks: &str) -> (Workspace, MockServer, PathBuf) {
    let ws = Workspace::new();
    let cache = ws.path().join("hub");
    fixture(&cache);
    let server = MockServer::start(vec![]).unwrap();
    server.set_default(ScriptedResponse::chat(reply, Some((10, 2))));
    let dir = run(
        &ws,
        &cache,
        &format!(
            "mode: real\nseeds: [1]\nllm:\n  provider: mock\n  base_url: {}\n  model: mock-model\n  api_key_env: null\n  max_retries: 0\n  temperature: 0.3\n  max_tokens: 300\n  cache_dir: {}\ntasks:\n{tasks}trainers: [NoOp]\n",
            server.base_url(),
            ws.path().join("llm-cache").display()
        ),
        0,
    );
    (ws, server, dir)
}

#[test]
fn real_mode_sends_the_reference_messages_and_scores_the_replies() {
    let (_ws, server, dir) = real_mode_run(
        "Step by step... Answer: 18",
        "- {id: hf:gsm8k, eval_kwargs: {num_train: 3, num_validate: 2, num_test: 2}}\n\
         - {id: hf:hotpot_qa, eval_kwargs: {num_train: 2, num_validate: 2, num_test: 0}}\n",
    );
    let (_, rows) = read_csv(&dir.join("results.csv"));
    // gsm8k: "Answer: 18" is extracted to "18": right for gold 18, wrong for 5; the
    // test golds are 42 and 3.
    let g = &rows[0];
    assert_eq!(g["status"], "ok", "{g:?}");
    assert_eq!(num(g, "score_val_initial"), 0.5);
    assert_eq!(num(g, "score_test"), 0.0);
    // NoOp scores train (3), validate (2) and test (2): one agent call per example.
    assert_eq!(num(g, "agent_calls"), 7.0);
    // hotpot: the whole reply, normalised "step by step answer 18", contains "swer".
    let h = &rows[1];
    assert_eq!(num(h, "score_val_initial"), 0.5, "{h:?}");
    let bodies: Vec<serde_json::Value> = server
        .requests()
        .iter()
        .map(|r| r.json().unwrap())
        .collect();
    let question_only = bodies
        .iter()
        .filter(|b| {
            let m = b["messages"].as_array().unwrap();
            m.len() == 2
                && m[0]["role"] == "system"
                && m[0]["content"]
                    .as_str()
                    .unwrap()
                    .starts_with("Given the fields `question`, produce the fields `answer`.")
                && m[1]["content"]
                    .as_str()
                    .unwrap()
                    .starts_with("Tom has some apples")
        })
        .count();
    assert_eq!(
        question_only, 4,
        "gsm8k: system = prompt_template, user = question"
    );
    let qa: Vec<&serde_json::Value> = bodies
        .iter()
        .filter(|b| b["messages"].as_array().unwrap().len() == 1)
        .collect();
    assert_eq!(num(h, "agent_calls"), 4.0);
    assert_eq!(qa.len(), 4, "hotpot: one user message per example");
    let text = qa[0]["messages"][0]["content"].as_str().unwrap();
    assert_eq!(qa[0]["messages"][0]["role"], "user");
    assert!(
        text.starts_with(
            "Answer the question based on the context.\n\nContext:\nParagraph 1 (Arthur's Magazine):\nArthur's Magazine was a magazine.  It began in 1844.\n\nParagraph 2 (First for Women):"
        ) && text.ends_with("\n\nQuestion: Which magazine was started first?\n\nAnswer:"),
        "{text}"
    );
}

#[test]
fn mbpp_candidates_run_against_the_unit_tests() {
    let python = std::process::Command::new("python3")
        .arg("-c")
        .arg("pass")
        .status()
        .is_ok_and(|s| s.success());
    if !python {
        // Without python3 the code tasks cannot run: their jobs are skipped, saying why.
        let ws = Workspace::new();
        fixture(&cache_of(&ws));
        let dir = run(
            &ws,
            &cache_of(&ws),
            "mode: stub\nseeds: [1]\ntasks: [hf:mbpp]\ntrainers: [NoOp]\n",
            0,
        );
        let (_, rows) = read_csv(&dir.join("results.csv"));
        assert_eq!(rows[0]["status"], "skipped", "{:?}", rows[0]);
        let all: String = rows[0].values().cloned().collect::<Vec<_>>().join(" ");
        assert!(all.contains("python3"), "{all}");
        return;
    }
    let (_ws, server, dir) = real_mode_run(
        "Here it is:\n```python\ndef sq(x):\n    return x * x\n```",
        "- {id: hf:mbpp, eval_kwargs: {num_train: 1, num_validate: 2, num_test: 1}}\n",
    );
    let (_, rows) = read_csv(&dir.join("results.csv"));
    let m = &rows[0];
    assert_eq!(m["status"], "ok", "{m:?}");
    // validate rows 1, 2: the sq tests pass, `cube` is a NameError.
    assert_eq!(num(m, "score_val_initial"), 0.5);
    assert_eq!(num(m, "score_test"), 1.0);
    let mut users = Vec::new();
    for r in server.requests() {
        let body = r.json().unwrap();
        assert_eq!(body["messages"][0]["role"], "system");
        let system = body["messages"][0]["content"].as_str().unwrap().to_string();
        assert!(
            system.starts_with("You are an expert Python programmer."),
            "{system}"
        );
        users.push(body["messages"][1]["content"].as_str().unwrap().to_string());
    }
    users.sort();
    users.dedup();
    assert_eq!(
        users,
        [
            "Write a function sq to square x.",
            "Write cube.",
            "Write sq again.",
            "Write sq."
        ]
    );
    // Stub mode: the stub's one-word answer is no function.
    let ws = Workspace::new();
    fixture(&cache_of(&ws));
    let dir = run(
        &ws,
        &cache_of(&ws),
        "mode: stub\nseeds: [1]\ntasks:\n  - {id: hf:mbpp, eval_kwargs: {num_train: 1, num_validate: 2, num_test: 1}}\ntrainers: [NoOp]\n",
        0,
    );
    let (_, rows) = read_csv(&dir.join("results.csv"));
    assert_eq!(num(&rows[0], "score_val_initial"), 0.0);
}

fn cache_of(ws: &Workspace) -> PathBuf {
    ws.path().join("hub")
}

/// `internal:multiobjective_gsm8k` reads openai/gsm8k from the cache when it is there:
/// the rows RandomState(42) picks, the endpoint's tokens as metrics.
#[test]
fn multiobjective_gsm8k_draws_its_rows_from_the_cache() {
    let (_ws, server, dir) = real_mode_run(
        "Adding them up gives 18.\n#### 18",
        "- {id: internal:multiobjective_gsm8k, eval_kwargs: {objective_mode: weighted}}\n",
    );
    let (_, rows) = read_csv(&dir.join("results.csv"));
    let row = &rows[0];
    assert_eq!(row["status"], "ok", "{row:?}");
    assert_eq!(
        (
            row["examples_correct"].as_str(),
            row["examples_total"].as_str()
        ),
        ("1", "6")
    );
    let job = dir.join("jobs").join(&row["job_id"]);
    let meta = read_json(&job.join("job_meta.json"));
    assert!(
        meta["examples_source"]
            .as_str()
            .unwrap()
            .contains("datasets--openai--gsm8k")
    );
    let records = read_jsonl(&job.join("artifacts/examples.jsonl"));
    let inputs: Vec<&str> = records
        .iter()
        .map(|r| r["input"].as_str().unwrap())
        .collect();
    // RandomState(42).permutation(6) = [0, 1, 5, 2, 4, 3].
    let q = |n: &str| format!("Tom has some apples and gets more. Total {n}");
    assert_eq!(
        inputs,
        [
            q("1").as_str(),
            &q("2"),
            "unused row",
            &q("3"),
            "How many apples?",
            &q("18")
        ]
    );
    assert_eq!(records[5]["correct"], true);
    assert_eq!(
        records[5]["feedback"],
        "expected=18 predicted=18 tokens_in=10 tokens_out=2"
    );
    // System prompt + problem, one call per example; the mock's usage is the metric.
    let m: serde_json::Value = serde_json::from_str(&row["metrics"]).unwrap();
    assert_eq!(
        (m["tokens_in"].as_f64(), m["tokens_out"].as_f64()),
        (Some(10.0), Some(2.0))
    );
    let score: f64 = row["score_val"].parse().unwrap();
    assert!((score - -(5.0 / 6.0 + 0.012)).abs() < 1e-9, "{score}");
    // System prompt + problem, one call per example (sent together: any arrival order).
    let mut sent: Vec<String> = server.requests()[..6]
        .iter()
        .map(|r| {
            let body = r.json().unwrap();
            assert_eq!(body["messages"][0]["role"], "system");
            body["messages"][1]["content"].as_str().unwrap().to_string()
        })
        .collect();
    sent.sort();
    let mut want: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(sent, want);
    // The agent's exchanges are transcripts too, with what was really sent and received.
    let calls = read_jsonl(&job.join("artifacts/llm_calls.jsonl"));
    let agent: Vec<_> = calls.iter().filter(|c| c["caller"] == "agent").collect();
    // One per example of the two evaluations (the initial one, NoOp's), numbered in order.
    assert_eq!(agent.len(), 12, "{calls:?}");
    let numbers: Vec<u64> = agent.iter().map(|c| c["call"].as_u64().unwrap()).collect();
    assert_eq!(numbers, (0..12).collect::<Vec<u64>>());
    assert_eq!(agent.len() as u64, server.requests().len() as u64);
    for c in &agent {
        assert_eq!(
            (c["temperature"].as_f64(), c["max_tokens"].as_u64()),
            (Some(0.3), Some(300))
        );
        assert_eq!(c["finish_reason"], "stop");
        assert_eq!(c["usage"]["prompt_tokens"], 10);
        assert_eq!(c["messages"][0]["role"], "system");
    }
    assert_eq!(server.requests()[0].json().unwrap()["temperature"], 0.3);
}

/// The Python with the pinned dspy and gepa (`scripts/check_external.sh` makes it and runs
/// the ignored tests with it); without it those tests fail, they do not skip.
fn external_python() -> String {
    std::env::var("TRACE_BENCH_EXTERNAL_PYTHON")
        .expect("TRACE_BENCH_EXTERNAL_PYTHON must name the Python of `trace-bench external-env`")
}

/// A cache in the shape the reference's DSPy configs need: BBEH `dyck_languages` (8 rows
/// for 5/2/1) and hotpot_qa with 40 train and 10 validation rows (for 20/10/10).
fn dspy_fixture(cache: &Path) {
    let bbeh = snapshot(cache, "hubert233/BigBenchExtraHard");
    let inputs: Vec<String> = (0..8)
        .map(|i| format!("Complete the Dyck sequence {i}: [ ( < >"))
        .collect();
    let targets: Vec<String> = (0..8).map(|_| ") ]".to_string()).collect();
    write_parquet(
        &bbeh.join("data/dyck_languages-00000-of-00001.parquet"),
        "message schema { optional binary input (STRING); optional binary target (STRING); }",
        vec![
            strings(&inputs.iter().map(String::as_str).collect::<Vec<_>>()),
            strings(&targets.iter().map(String::as_str).collect::<Vec<_>>()),
        ],
    );
    let hotpot = snapshot(cache, "hotpotqa/hotpot_qa");
    for (split, n) in [("train", 40), ("validation", 10)] {
        let ids: Vec<String> = (0..n).map(|i| format!("{split}{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        write_hotpot(&hotpot, split, &ids, &vec!["Arthur's Magazine"; n]);
    }
    blobify(cache);
}

/// The reference's `smoke_hf_bbeh_dspy.yaml` and `smoke_hf_hotpotqa_dspy.yaml`, keys and
/// values unchanged (`mode: real` overridden with `--set mode=stub`), on a fixture cache:
/// every job runs DSPy for real against the stub and ends `ok`.
#[test]
#[ignore = "needs the external trainers' venv: scripts/check_external.sh"]
fn the_reference_dspy_configs_run_unchanged_in_stub_mode() {
    let python = external_python();
    let ws = Workspace::new();
    let cache = ws.path().join("hub");
    dspy_fixture(&cache);
    let bbeh = "runs_dir: runs\nmode: real\nseeds: [123]\n\ntasks:\n  - id: hf:bbeh_eight/dyck_languages\n    eval_kwargs:\n      num_train: 5        # SIMBA default bsize=32, but we override below\n      num_validate: 2\n      num_test: 1\n      framework: dspy\n\ntrainers:\n  - id: DSPyTrainer\n    params_variants:\n      - dspy_optimizer: mipro\n        auto: light\n        num_candidates: 2\n        max_bootstrapped_demos: 1\n        max_labeled_demos: 1\n";
    let hotpot = "runs_dir: runs\nmode: real\nseeds: [123]\n\ntasks:\n  - id: hf:hotpot_qa\n    eval_kwargs:\n      num_train: 20\n      num_validate: 10\n      num_test: 10\n      framework: dspy\n\ntrainers:\n  - id: DSPyCOPROTrainer\n    params_variants:\n      # COPRO with depth=1, breadth=2: 2 candidate instructions, 1 round.\n      # DummyLM is injected automatically by mode: stub — no real API calls.\n      - dspy_optimizer: copro\n        breadth: 2\n        depth: 5\n";
    for (name, text) in [
        ("smoke_hf_bbeh_dspy.yaml", bbeh),
        ("smoke_hf_hotpotqa_dspy.yaml", hotpot),
    ] {
        let cfg = ws.config(name, text);
        let run_id = name.trim_end_matches(".yaml");
        ws.cmd()
            .env("HF_HUB_CACHE", &cache)
            .env("HF_HUB_OFFLINE", "1")
            .args(["run", "--config"])
            .arg(&cfg)
            .args([
                "--set",
                "mode=stub",
                "--run-id",
                run_id,
                "--external-python",
                &python,
            ])
            .assert()
            .success();
        let (_, rows) = read_csv(&ws.path().join("runs").join(run_id).join("results.csv"));
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row["status"], "ok", "{row:?}");
        assert!(
            num(row, "llm_calls") > 0.0 && num(row, "evaluator_calls") > 0.0,
            "{row:?}"
        );
        assert!(num(row, "prompt_tokens") > 0.0);
        let job = ws
            .path()
            .join("runs")
            .join(run_id)
            .join("jobs")
            .join(&row["job_id"]);
        let calls = read_jsonl(&job.join("artifacts/llm_calls.jsonl"));
        assert_eq!(
            calls.len() as f64,
            num(row, "llm_calls"),
            "every call recorded"
        );
        assert!(calls.iter().any(|c| c["caller"] == "task"));
        assert!(calls.iter().any(|c| c["caller"] == "prompt"));
    }
}

/// The reference's `smoke_hf_hotpotqa_polca.yaml` in shape (its POLCA knobs, the `ps_*`
/// aliases mapped here) and `m3_multiobjective.yaml`'s trainers on one task: stub mode, an
/// hf fixture cache, no trainer skipped.
#[test]
fn reference_shaped_polca_and_legacy_configs_run_in_stub_mode_with_nothing_skipped() {
    let ws = Workspace::new();
    let cache = ws.path().join("hub");
    fixture(&cache);
    let dir = run(
        &ws,
        &cache,
        "mode: stub\nseeds: [1]\ntasks:\n\
         - {id: hf:hotpot_qa, eval_kwargs: {num_train: 2, num_validate: 2, num_test: 1}}\n\
         - {id: internal:multiobjective_convex, eval_kwargs: {objective_mode: weighted}}\n\
         - {id: internal:multiobjective_convex, eval_kwargs: {objective_mode: pareto}}\n\
         trainers:\n\
         - id: POLCA\n  params_variants: [{ps_steps: 5, ps_batches: 1, batch_size: 4, ps_candidates: 5}]\n\
         - id: BeamsearchAlgorithm\n  params_variants: [{beam_width: 2, max_depth: 2}]\n\
         - id: BasicSearchAlgorithm\n  params_variants: [{num_proposals: 4, num_epochs: 2, batch_size: 1}]\n",
        0,
    );
    let (_, rows) = read_csv(&dir.join("results.csv"));
    assert_eq!(rows.len(), 9);
    assert!(rows.iter().all(|r| r["status"] == "ok"), "{rows:?}");
    let polca = rows
        .iter()
        .find(|r| r["trainer_id"] == "POLCA" && r["task_id"] == "hf:hotpot_qa")
        .unwrap();
    // The aliases reached POLCA: 5 candidates explored on 4 training examples (sampled
    // from 2), so its first step alone is 20 metric calls.
    assert!(num(polca, "evaluator_calls") >= 20.0, "{polca:?}");
    assert!(num(polca, "embedding_calls") > 0.0, "{polca:?}");
    assert!(polca["resolved_trainer_kwargs"].contains("\"num_candidates\": 5"));
}
