//! HumanEval / MBPP: the candidate function is run against the dataset's unit tests in a
//! child `python3`, as the reference's `code_exec` guide does (same harness, same
//! outcomes), but in a fresh temporary directory with an allow-listed environment (no API
//! keys reach the candidate) and its whole process group killed at the timeout.

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

/// The reference's test script: candidate, tests and `check(entry)` inside one `try`,
/// a `FAIL: <type>: <message> at: <line>` line on stderr when something raises.
pub fn harness(candidate: &str, test: &str, entry: &str, setup: &str) -> String {
    let call = if entry.is_empty() {
        String::new()
    } else {
        format!("\nif 'check' in dir():\n    check({entry})\n")
    };
    let body = [
        "import traceback",
        setup,
        candidate,
        test,
        &call,
        "print('PASS')",
    ]
    .join("\n");
    let indented: Vec<String> = body.lines().map(|l| format!("    {l}")).collect();
    format!(
        "import traceback, sys\ntry:\n{}\nexcept Exception as exc:\n    tb = traceback.extract_tb(sys.exc_info()[2])\n    frame = tb[-1] if tb else None\n    loc = f' at: {{frame.line}}' if frame and frame.line else ''\n    print(f'FAIL: {{type(exc).__name__}}: {{exc}}{{loc}}', file=sys.stderr)\n    sys.exit(1)\n",
        indented.join("\n")
    )
}

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
    let script = dir.path().join("candidate_test.py");
    if let Err(e) = std::fs::write(&script, harness(candidate, test, entry, setup)) {
        return (false, format!("cannot write the test script: {e}"));
    }
    let mut env: Vec<(String, String)> = ["PATH", "LANG", "LC_ALL", "TZ"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    let home = dir.path().to_string_lossy().into_owned();
    env.push(("HOME".into(), home.clone()));
    env.push(("TMPDIR".into(), home));
    let spec = ProcessSpec {
        argv: vec!["python3".into(), script.to_string_lossy().into_owned()],
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
}
