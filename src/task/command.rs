//! The command evaluator: any program scores a candidate (docs/tasks.md).
//!
//! Each evaluation gets a fresh working directory holding only what the candidate may see —
//! `candidate.json`, one file per code parameter, and the task's `visible_files` — never the
//! scorer's own files (reference answers stay in the task folder, which the command names by
//! `{task_dir}`). The example's `info` (its reference) reaches the scorer only on stdin. The
//! environment is rebuilt from a short allow-list, so no secret reaches the program, and the
//! whole process group is killed at the timeout ([`super::process`]). Whatever goes wrong —
//! a non-zero exit, a timeout, output that is not the expected JSON — is a scored failure
//! (`failure_score`) with the reason and the stderr tail as feedback, never a crashed job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use super::process::{ProcessSpec, WorkDir, run};
use super::server::{EvalServer, ServeError, ServerSlot};
use super::{EvalLimits, Example, ExampleResult, Param, SplitName, TaskManifest};
use crate::vocab::Kwargs;
use crate::vocab::ParamKind;

/// Default per-evaluation limit when neither the manifest nor `eval_kwargs` set one.
pub const DEFAULT_TIMEOUT_S: f64 = 10.0;

/// Environment variables passed through to evaluators (nothing else is inherited);
/// `TRACE_BENCH_LLM4AD_SPIN` tunes the LLM4AD bridge's polling wait (`docs/tasks.md`).
const PASSED_ENV: &[&str] = &[
    "PATH",
    "LANG",
    "LC_ALL",
    "TZ",
    "PYTHONPATH",
    "TRACE_BENCH_LLM4AD_SPIN",
];

/// Characters of stderr kept in feedback.
const STDERR_TAIL: usize = 800;

/// A command evaluator of one task.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandEvaluator {
    argv: Vec<String>,
    task_dir: PathBuf,
    visible_files: Vec<String>,
    timeout: Duration,
    failure_score: f64,
    code_extension: String,
    /// `serve`: the job's evaluator server (None: one process per evaluation).
    server: Option<ServerSlot>,
}

impl CommandEvaluator {
    /// Build from a manifest found in `task_dir`.
    pub(super) fn from_manifest(m: &TaskManifest, task_dir: Option<&Path>) -> Result<Self, String> {
        let e = &m.evaluator;
        let Some(task_dir) = task_dir else {
            return Err("a command evaluator needs a task folder on disk".into());
        };
        if e.command.is_empty() {
            return Err(
                "evaluator.command is missing (e.g. [python3, \"{task_dir}/score.py\"])".into(),
            );
        }
        let failure_score = e.failure_score.ok_or(
            "evaluator.failure_score is missing: the score of a candidate whose evaluation fails (set it below any real score)",
        )?;
        let timeout = e.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_S);
        if !(timeout > 0.0 && timeout.is_finite()) {
            return Err(format!(
                "evaluator.timeout_seconds must be > 0, found {timeout}"
            ));
        }
        for f in &e.visible_files {
            let path = task_dir.join(f);
            if Path::new(f).is_absolute() || f.contains("..") || !path.is_file() {
                return Err(format!(
                    "visible file `{f}` is not a file inside `{}`",
                    task_dir.display()
                ));
            }
        }
        Ok(Self {
            argv: e
                .command
                .iter()
                .map(|a| a.replace("{task_dir}", &task_dir.display().to_string()))
                .collect(),
            task_dir: task_dir.to_path_buf(),
            visible_files: e.visible_files.clone(),
            timeout: Duration::from_secs_f64(timeout),
            failure_score,
            code_extension: e.code_extension.clone().unwrap_or_else(|| "py".into()),
            server: e.serve.then(ServerSlot::default),
        })
    }

    /// This evaluator for one job: a server slot of its own (jobs never share a server).
    pub(super) fn for_job(&self) -> Self {
        let mut e = self.clone();
        e.server = self.server.as_ref().map(|_| ServerSlot::default());
        e
    }

    /// Score one example. `timeout` overrides the manifest's (`eval_kwargs.timeout_seconds`);
    /// the process never outlives `deadline`.
    pub fn evaluate(
        &self,
        params: &[Param],
        values: &Kwargs,
        ex: &Example,
        split: SplitName,
        job: &EvalLimits,
    ) -> ExampleResult {
        match self.try_evaluate(params, values, ex, split, job) {
            Ok(r) => r,
            Err(reason) => self.failure(reason),
        }
    }

    fn failure(&self, feedback: String) -> ExampleResult {
        ExampleResult {
            output: String::new(),
            score: self.failure_score,
            feedback,
            metrics: BTreeMap::new(),
            correct: None,
        }
    }

    fn try_evaluate(
        &self,
        params: &[Param],
        values: &Kwargs,
        ex: &Example,
        split: SplitName,
        job: &EvalLimits,
    ) -> Result<ExampleResult, String> {
        let work =
            WorkDir::new("eval").map_err(|e| format!("cannot create a working directory: {e}"))?;
        let dir = work.path();
        let io = |what: &str, e: std::io::Error| format!("cannot write {what}: {e}");
        let mut files = serde_json::Map::new();
        for p in params.iter().filter(|p| p.kind == ParamKind::Code) {
            let name = format!("{}.{}", p.name, self.code_extension);
            let text = match values.get(&p.name) {
                Some(Json::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            std::fs::write(dir.join(&name), text).map_err(|e| io(&name, e))?;
            files.insert(p.name.clone(), json!(name));
        }
        let candidate = json!({"parameters": values, "input": ex.input, "files": files});
        std::fs::write(dir.join("candidate.json"), candidate.to_string())
            .map_err(|e| io("candidate.json", e))?;
        for f in &self.visible_files {
            let target = dir.join(f);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io(f, e))?;
            }
            std::fs::copy(self.task_dir.join(f), &target).map_err(|e| io(f, e))?;
        }
        let stdin = json!({
            "parameters": values,
            "input": ex.input,
            "info": ex.info,
            "split": split,
            "files": files,
            "eval_kwargs": job.eval_kwargs,
        });
        let limit = job.timeout.unwrap_or(self.timeout);
        if let Some(slot) = &self.server {
            return self.ask_server(slot, stdin, dir, limit, job);
        }
        let env = evaluator_env(dir);
        let spec = ProcessSpec {
            argv: self.argv.clone(),
            cwd: dir.to_path_buf(),
            env,
            stdin: stdin.to_string().into_bytes(),
            timeout: limit,
        };
        let out = run(&spec, job.deadline)
            .map_err(|e| format!("cannot start `{}`: {e}", self.argv[0]))?;
        let tail = out.stderr_tail(STDERR_TAIL);
        let with_tail = |msg: String| with_stderr(msg, &tail);
        if out.timed_out {
            return Err(with_tail(format!(
                "evaluation timed out after {:.1}s (limit {}s); the process group was killed",
                out.elapsed.as_secs_f64(),
                limit.as_secs_f64()
            )));
        }
        match out.code {
            Some(0) => {}
            Some(code) => return Err(with_tail(format!("evaluator exited with code {code}"))),
            None => return Err(with_tail("evaluator was killed by a signal".into())),
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        parse_verdict(&stdout).map_err(with_tail)
    }
}

impl CommandEvaluator {
    /// One evaluation through the job's server (started, or restarted after a failure, on
    /// demand); the request is the usual stdin object plus `workdir`, the evaluation's own
    /// fresh directory.
    fn ask_server(
        &self,
        slot: &ServerSlot,
        mut request: Json,
        dir: &Path,
        limit: Duration,
        job: &EvalLimits,
    ) -> Result<ExampleResult, String> {
        request["workdir"] = json!(dir);
        let started = Instant::now();
        let until = job
            .deadline
            .map_or(started + limit, |d| d.min(started + limit));
        let mut running = match slot.take() {
            Some(server) => server,
            None => EvalServer::start(&self.argv, evaluator_env)
                .map_err(|e| format!("cannot start `{}`: {e}", self.argv[0]))?,
        };
        let answer = running.ask(&request.to_string(), until);
        let tail = running.stderr_tail(STDERR_TAIL);
        let with_tail = |msg: String| with_stderr(msg, &tail);
        match answer {
            Ok(line) => {
                slot.give_back(running);
                parse_verdict(&line).map_err(with_tail)
            }
            Err(failure) => {
                // Dropped (its process group killed): the next evaluation starts afresh.
                drop(running);
                Err(with_tail(match failure {
                    ServeError::TimedOut => format!(
                        "evaluation timed out after {:.1}s (limit {}s); the evaluator's process group was killed",
                        started.elapsed().as_secs_f64(),
                        limit.as_secs_f64()
                    ),
                    ServeError::Exited(Some(code)) => format!("evaluator exited with code {code}"),
                    ServeError::Exited(None) => "evaluator was killed by a signal".into(),
                    ServeError::Io(e) => format!("cannot send the request to the evaluator: {e}"),
                }))
            }
        }
    }
}

/// A failure message with the evaluator's last stderr lines, when it printed any.
fn with_stderr(message: String, tail: &str) -> String {
    if tail.is_empty() {
        message
    } else {
        format!("{message}; stderr: {tail}")
    }
}

/// The whole environment of an evaluator process working in `dir`: the allow-listed
/// variables, with `HOME` and `TMPDIR` pointing at `dir` (so no user site-packages, caches
/// or secrets leak in). `requires` checks run with the same environment.
pub fn evaluator_env(dir: &Path) -> Vec<(String, String)> {
    let dir_text = dir.display().to_string();
    let mut env: Vec<(String, String)> = PASSED_ENV
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    env.extend([
        ("HOME".into(), dir_text.clone()),
        ("TMPDIR".into(), dir_text),
        ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
    ]);
    env
}

/// The evaluator's verdict: the whole stdout, or its last line that is a JSON object, as
/// `{"score": number, "feedback"?: string, "output"?: any, "metrics"?: {name: number},
/// "correct"?: bool}`.
fn parse_verdict(stdout: &str) -> Result<ExampleResult, String> {
    let value: Json = serde_json::from_str(stdout.trim())
        .ok()
        .filter(Json::is_object)
        .or_else(|| {
            stdout.lines().rev().find_map(|l| {
                serde_json::from_str::<Json>(l.trim())
                    .ok()
                    .filter(Json::is_object)
            })
        })
        .ok_or_else(|| {
            let excerpt: String = stdout.trim().chars().take(200).collect();
            format!("evaluator output is not a JSON object with a score: `{excerpt}`")
        })?;
    let score = value
        .get("score")
        .and_then(Json::as_f64)
        .filter(|s| s.is_finite())
        .ok_or_else(|| format!("evaluator output has no finite number `score`: {value}"))?;
    let feedback = value
        .get("feedback")
        .map(|f| f.as_str().map_or_else(|| f.to_string(), str::to_string))
        .unwrap_or_default();
    let output = value
        .get("output")
        .map(|o| o.as_str().map_or_else(|| o.to_string(), str::to_string))
        .unwrap_or_default();
    let metrics = match value.get("metrics") {
        None | Some(Json::Null) => BTreeMap::new(),
        Some(Json::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                v.as_f64()
                    .map(|x| (k.clone(), x))
                    .ok_or_else(|| format!("evaluator metric `{k}` is not a number: {v}"))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("evaluator `metrics` is not an object: {other}")),
    };
    let correct = match value.get("correct") {
        None | Some(Json::Null) => None,
        Some(Json::Bool(b)) => Some(*b),
        Some(other) => return Err(format!("evaluator `correct` is not true or false: {other}")),
    };
    Ok(ExampleResult {
        output,
        score,
        feedback,
        metrics,
        correct,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::parse_manifest;

    /// A task folder with a scorer script `score.sh`, a scorer-only `answers.txt` and a
    /// visible `data.txt`.
    fn task(script: &str, timeout: f64) -> (tempfile::TempDir, CommandEvaluator, Vec<Param>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("score.sh"), script).unwrap();
        std::fs::write(dir.path().join("answers.txt"), "42\n").unwrap();
        std::fs::write(dir.path().join("data.txt"), "visible\n").unwrap();
        let manifest = parse_manifest(
            "task.yaml",
            &format!(
                "id: test:cmd\ndescription: d\nobjective: o\nparameters:\n  - {{name: program, kind: code, initial: 'print(1)'}}\n  - {{name: x, kind: number, initial: 2.0}}\nevaluator:\n  kind: command\n  command: [sh, '{{task_dir}}/score.sh']\n  timeout_seconds: {timeout}\n  failure_score: -100\n  visible_files: [data.txt]\n"
            ),
        )
        .unwrap();
        let eval = CommandEvaluator::from_manifest(&manifest, Some(dir.path())).unwrap();
        (dir, eval, manifest.parameters)
    }

    fn score(eval: &CommandEvaluator, params: &[Param]) -> ExampleResult {
        let values: Kwargs =
            serde_json::from_value(json!({"program": "print(1)", "x": 2.0})).unwrap();
        let ex = Example {
            input: json!("in"),
            info: json!(7),
        };
        eval.evaluate(
            params,
            &values,
            &ex,
            SplitName::Train,
            &EvalLimits::default(),
        )
    }

    #[test]
    fn a_well_behaved_program_gets_the_candidate_and_is_scored() {
        let script = r#"
stdin=$(cat)
test -f candidate.json || { echo "no candidate.json" >&2; exit 2; }
test "$(cat program.py)" = "print(1)" || { echo "bad program file" >&2; exit 2; }
test "$(cat data.txt)" = "visible" || { echo "no visible file" >&2; exit 2; }
case "$stdin" in *'"info":7'*) ;; *) echo "no info on stdin: $stdin" >&2; exit 2;; esac
echo "some progress output"
echo '{"score": 1.5, "feedback": "fine", "output": "out"}'
"#;
        let (_dir, eval, params) = task(script, 5.0);
        let r = score(&eval, &params);
        assert_eq!(
            (r.score, r.feedback.as_str(), r.output.as_str()),
            (1.5, "fine", "out"),
            "{r:?}"
        );
    }

    #[test]
    fn a_hung_program_is_killed_at_the_timeout_and_scored_as_a_failure() {
        let (_dir, eval, params) = task("echo started >&2; sleep 30", 0.3);
        let started = std::time::Instant::now();
        let r = score(&eval, &params);
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(r.score, -100.0);
        assert!(r.feedback.contains("timed out"), "{}", r.feedback);
        assert!(r.feedback.contains("stderr: started"), "{}", r.feedback);
    }

    #[test]
    fn garbage_output_and_a_failing_exit_are_scored_failures_with_the_stderr_tail() {
        let (_dir, eval, params) = task("echo 'hello there'", 5.0);
        let r = score(&eval, &params);
        assert_eq!(r.score, -100.0);
        assert!(r.feedback.contains("not a JSON object"), "{}", r.feedback);
        let (_dir, eval, params) = task("echo '{\"feedback\": \"no score\"}'", 5.0);
        assert!(score(&eval, &params).feedback.contains("no finite number"));
        let (_dir, eval, params) = task(
            "echo 'Traceback: boom' >&2; echo '{\"score\": 9}'; exit 1",
            5.0,
        );
        let r = score(&eval, &params);
        assert_eq!(r.score, -100.0);
        assert_eq!(
            r.feedback,
            "evaluator exited with code 1; stderr: Traceback: boom"
        );
    }

    #[test]
    fn scorer_only_files_and_the_environment_are_out_of_reach() {
        let script = r#"
cat > /dev/null
if [ -e answers.txt ]; then echo '{"score": 1, "feedback": "answers visible"}'; exit 0; fi
names=$(env | cut -d= -f1 | sort | tr '\n' ' ')
echo "{\"score\": 0, \"feedback\": \"$names\"}"
"#;
        let (_dir, eval, params) = task(script, 5.0);
        let r = score(&eval, &params);
        let allowed = [
            "PATH",
            "LANG",
            "LC_ALL",
            "TZ",
            "PYTHONPATH",
            "TRACE_BENCH_LLM4AD_SPIN",
            "HOME",
            "TMPDIR",
            "PYTHONDONTWRITEBYTECODE",
            "PWD",
            "SHLVL",
            "_",
            "OLDPWD",
        ];
        assert_eq!(r.score, 0.0, "{}", r.feedback);
        for name in r.feedback.split_whitespace() {
            assert!(
                allowed.contains(&name),
                "`{name}` leaked into the evaluator's environment"
            );
        }
    }

    #[test]
    fn manifest_mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let m = |extra: &str| {
            parse_manifest(
                "task.yaml",
                &format!(
                    "id: t:c\ndescription: d\nobjective: o\nevaluator:\n  kind: command\n{extra}"
                ),
            )
            .unwrap()
        };
        let e = CommandEvaluator::from_manifest(&m("  failure_score: 0\n"), Some(dir.path()))
            .unwrap_err();
        assert!(e.contains("evaluator.command is missing"), "{e}");
        let e =
            CommandEvaluator::from_manifest(&m("  command: [x]\n"), Some(dir.path())).unwrap_err();
        assert!(e.contains("failure_score is missing"), "{e}");
        let e = CommandEvaluator::from_manifest(
            &m("  command: [x]\n  failure_score: 0\n  visible_files: [../etc/passwd]\n"),
            Some(dir.path()),
        )
        .unwrap_err();
        assert!(e.contains("visible file"), "{e}");
    }
}
