//! HumanEval / MBPP: the candidate function is run against the dataset's unit tests with
//! the reference's outcomes (`PASS`, or the failing test line), in a fresh temporary
//! directory with an allow-listed environment (no API keys reach the candidate) and the
//! whole process group killed at the timeout. Unlike the reference, the tests and the
//! candidate run in two processes (`code_tests.py`): the candidate's is confined, and it
//! can neither print `PASS` nor patch the tests.

use std::time::Duration;

use crate::task::EvalLimits;
use crate::task::process::{ProcessSpec, run};

/// Seconds per candidate (the catalog's `timeout`).
pub const TIMEOUT_SECONDS: u64 = 10;

/// The code of a reply: the first fenced block (its `python` / `py` / empty tag line
/// dropped), else the whole reply.
pub fn extract_code(reply: &str) -> String {
    let parts: Vec<&str> = reply.split("```").collect();
    if parts.len() >= 2 {
        let block = parts[1];
        if let Some((first, rest)) = block.split_once('\n')
            && matches!(first.trim().to_lowercase().as_str(), "python" | "py" | "")
        {
            return rest.to_string();
        }
        return block.to_string();
    }
    reply.to_string()
}

/// The test runner and the sandbox it shares with the LLM4AD bridge: the candidate runs in
/// a confined child (no network, reads only the interpreter's files), the tests here, and
/// every call between them is forwarded as data.
const RUNNER_FILES: &[(&str, &str)] = &[
    (
        "code_tests.py",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tasks/llm4ad_bridge/code_tests.py"
        )),
    ),
    (
        "bridge.py",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tasks/llm4ad_bridge/bridge.py"
        )),
    ),
    (
        "confine.py",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tasks/llm4ad_bridge/confine.py"
        )),
    ),
];

/// Run the tests: `(passed, detail)`.
pub fn run_tests(
    candidate: &str,
    test: &str,
    entry: &str,
    setup: &str,
    limits: &EvalLimits,
) -> (bool, String) {
    let timeout = limits
        .timeout
        .unwrap_or(Duration::from_secs(TIMEOUT_SECONDS));
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return (false, format!("cannot create a working directory: {e}")),
    };
    // The dataset's setup (imports) precedes the candidate in its own process too.
    let spec = serde_json::json!({"entry": entry, "setup": setup});
    let files = [
        ("candidate.py", format!("{setup}\n{candidate}")),
        ("tests.py", test.to_string()),
        ("spec.json", spec.to_string()),
    ];
    let written = files
        .iter()
        .map(|(name, text)| (*name, text.as_str()))
        .chain(RUNNER_FILES.iter().copied())
        .try_for_each(|(name, text)| std::fs::write(dir.path().join(name), text));
    if let Err(e) = written {
        return (false, format!("cannot write the test files: {e}"));
    }
    let mut env: Vec<(String, String)> = ["PATH", "LANG", "LC_ALL", "TZ"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    let home = dir.path().to_string_lossy().into_owned();
    env.push(("HOME".into(), home.clone()));
    env.push(("TMPDIR".into(), home));
    let spec = ProcessSpec {
        argv: [
            "python3",
            "code_tests.py",
            "candidate.py",
            "tests.py",
            "spec.json",
        ]
        .map(String::from)
        .to_vec(),
        cwd: dir.path().to_path_buf(),
        env,
        stdin: Vec::new(),
        timeout,
    };
    let out = match run(&spec, limits.deadline) {
        Ok(out) => out,
        Err(e) => return (false, format!("cannot run python3: {e}")),
    };
    if out.timed_out {
        return (
            false,
            format!(
                "timed out after {}s — the function likely has an infinite loop or is far too slow; ensure it terminates",
                timeout.as_secs_f64()
            ),
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.code == Some(0) && stdout.contains("PASS") {
        return (true, "all unit tests passed".into());
    }
    if let Some(line) = stderr.lines().find(|l| l.starts_with("FAIL:")) {
        return (false, line["FAIL:".len()..].trim().to_string());
    }
    let tail = if !stderr.is_empty() {
        stderr
    } else if !stdout.is_empty() {
        stdout
    } else {
        "no output".into()
    };
    let detail = tail
        .trim()
        .lines()
        .last()
        .map(|l| l.chars().take(200).collect())
        .unwrap_or_else(|| "unit tests failed".into());
    (false, detail)
}

/// Score a reply: 1 when every test passes, with the reference's feedback.
pub fn score(
    reply: &str,
    test: &str,
    entry: &str,
    setup: &str,
    limits: &EvalLimits,
) -> (f64, String) {
    let candidate = extract_code(reply);
    if candidate.trim().is_empty() {
        return (
            0.0,
            "Empty code response; produce a complete function definition.".into(),
        );
    }
    let (passed, detail) = run_tests(&candidate, test, entry, setup, limits);
    if passed {
        (1.0, "The implementation passes all unit tests.".into())
    } else {
        (
            0.0,
            format!(
                "The implementation fails: {detail}. Revise the function so this specific failure is resolved while keeping all other cases correct."
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_and_tags_as_the_reference() {
        assert_eq!(
            extract_code("```python\ndef f(): pass\n```"),
            "def f(): pass\n"
        );
        assert_eq!(extract_code("```\nx = 1\n```"), "x = 1\n");
        assert_eq!(extract_code("```Python3\nx = 1\n```"), "Python3\nx = 1\n");
        assert_eq!(extract_code("def f(): pass"), "def f(): pass");
    }

    #[test]
    fn candidates_pass_or_fail_with_the_reason() {
        let none = EvalLimits::default();
        let test = "def check(candidate):\n    assert candidate(1, 2) == 3\n";
        let good = "```python\ndef add(a, b):\n    return a + b\n```";
        if crate::task::requires::missing(&["python3".into()]).is_some() {
            // No python3 here (its tasks are skipped): a candidate cannot pass.
            let (s, fb) = score(good, test, "add", "", &none);
            assert!(s == 0.0 && fb.contains("python3"), "{fb}");
            return;
        }
        assert_eq!(score(good, test, "add", "", &none).0, 1.0);
        let (s, fb) = score("def add(a, b):\n    return a - b\n", test, "add", "", &none);
        assert_eq!(s, 0.0);
        assert!(
            fb.starts_with(
                "The implementation fails: AssertionError:  at: assert candidate(1, 2) == 3."
            ),
            "{fb}"
        );
        let (_, fb) = score("add", test, "add", "", &none);
        assert!(fb.contains("NameError"), "{fb}");
        // MBPP: bare asserts, no entry point.
        let (s, _) = score(
            "def sq(x):\n    return x * x\n",
            "assert sq(3) == 9",
            "",
            "",
            &none,
        );
        assert_eq!(s, 1.0);
        assert_eq!(score("   ", test, "add", "", &none).0, 0.0);
        // The candidate cannot read secrets from the environment.
        let leak = "import os\nassert 'OPENAI_API_KEY' not in os.environ\n";
        assert_eq!(score(leak, "", "", "", &none).0, 1.0);
        // A candidate that never ends is killed at the job's timeout.
        let quick = EvalLimits {
            timeout: Some(Duration::from_millis(500)),
            ..EvalLimits::default()
        };
        let (s, fb) = score("while True:\n    pass\n", "", "", "", &quick);
        assert_eq!(s, 0.0);
        assert!(fb.contains("timed out after 0.5s"), "{fb}");
    }

    #[test]
    fn a_wrong_candidate_cannot_print_exit_or_patch_its_way_to_a_pass() {
        if crate::task::requires::missing(&["python3".into()]).is_some() {
            return; // its tasks are skipped without python3 (tested above)
        }
        let none = EvalLimits::default();
        let test = "def check(candidate):\n    assert candidate(1, 2) == 3\n";
        let wrong = "def add(a, b):\n    return 0\n";
        let forgers = [
            format!("print('PASS')\nimport os\nos.write(1, b'PASS\\n')\n{wrong}"),
            format!("import os\nprint('PASS', flush=True)\nos._exit(0)\n{wrong}"),
            format!(
                "import builtins\nbuiltins.AssertionError = type('Nope', (BaseException,), {{}})\n{wrong}"
            ),
            format!("import sys\nsys.modules['__main__'].check = lambda c: None\n{wrong}"),
            "def add(a, b):\n    import os\n    os._exit(0)\n".to_string(),
        ];
        for program in &forgers {
            let (s, fb) = score(program, test, "add", "", &none);
            assert_eq!(s, 0.0, "a wrong candidate passed: {program}\n{fb}");
        }
        // Values travel as data whatever they hold (a key named like the codec's own).
        let dicts = "def f():\n    return {'buffer': [1, (2, 3)], 's': {4}}\n";
        let check = "assert f() == {'buffer': [1, (2, 3)], 's': {4}}";
        assert_eq!(score(dicts, check, "", "", &none).0, 1.0);
        // Files outside its own directory are out of reach.
        let secret = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(secret.path(), "3").unwrap();
        let reader = format!(
            "def add(a, b):\n    return int(open({:?}).read())\n",
            secret.path().display().to_string()
        );
        assert_eq!(score(&reader, test, "add", "", &none).0, 0.0);
    }
}
