//! What a task needs from the machine (`requires:` in its manifest): programs on `PATH`
//! (`python3`) and modules of them (`python3:numpy`). A job whose task needs something
//! missing is `skipped` with the reason instead of failing every evaluation. Checks are
//! made once per process.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::process::{ProcessSpec, run};

/// The first requirement that is not met, as a reason for `skipped`.
pub fn missing(requires: &[String]) -> Option<String> {
    static CHECKED: OnceLock<Mutex<HashMap<String, Option<String>>>> = OnceLock::new();
    let cache = CHECKED.get_or_init(Default::default);
    requires.iter().find_map(|req| {
        if let Some(hit) = cache.lock().ok().and_then(|c| c.get(req).cloned()) {
            return hit;
        }
        let result = check(req);
        if let Ok(mut c) = cache.lock() {
            c.insert(req.clone(), result.clone());
        }
        result
    })
}

fn check(req: &str) -> Option<String> {
    let (program, module) = match req.split_once(':') {
        Some((p, m)) => (p, Some(m)),
        None => (req, None),
    };
    if find_on_path(program).is_none() {
        return Some(format!("needs `{program}` on PATH, which is missing"));
    }
    let module = module?;
    let spec = ProcessSpec {
        argv: vec![program.into(), "-c".into(), format!("import {module}")],
        cwd: std::env::temp_dir(),
        env: std::env::vars()
            .filter(|(k, _)| k == "PATH" || k.starts_with("PYTHON"))
            .collect(),
        stdin: Vec::new(),
        timeout: Duration::from_secs(30),
    };
    match run(&spec, None) {
        Ok(out) if out.code == Some(0) => None,
        _ => Some(format!(
            "needs the module `{module}` for `{program}` (`{program} -c 'import {module}'` failed); install it, e.g. `pip install {module}`"
        )),
    }
}

/// The path of `program`: itself when it contains a `/`, else the first match on `PATH`.
fn find_on_path(program: &str) -> Option<std::path::PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| program.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_and_missing_programs_and_modules() {
        assert_eq!(missing(&["sh".into()]), None);
        let r = missing(&["sh".into(), "no-such-program-xyz".into()]).unwrap();
        assert_eq!(r, "needs `no-such-program-xyz` on PATH, which is missing");
        // `sh -c 'import x'` fails like a missing Python module would.
        let r = missing(&["sh:no_such_module".into()]).unwrap();
        assert!(r.contains("needs the module `no_such_module`"), "{r}");
        assert_eq!(missing(&[]), None);
    }
}
