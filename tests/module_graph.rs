//! The module stack of docs/architecture.md is the law: every `crate::` path in a
//! module's non-test code must point at a module listed *below* it there. Layering
//! strictly downward is what keeps the graph free of import cycles; this test fails on
//! any upward or sideways import, naming the file, and on a module the stack does not
//! list.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The stack, top first: one line per layer, module names separated by spaces, read from
/// the fenced block after the `<!-- module-stack -->` marker (text after `#` is a note).
fn stack() -> Vec<Vec<String>> {
    let doc = fs::read_to_string(Path::new(ROOT).join("docs/architecture.md")).unwrap();
    let after = doc
        .split("<!-- module-stack -->")
        .nth(1)
        .expect("docs/architecture.md has a <!-- module-stack --> marker");
    let block = after
        .split("```")
        .nth(1)
        .expect("a fenced block follows the marker");
    block
        .lines()
        .skip(1) // the fence's info string
        .map(|l| l.split('#').next().unwrap_or(""))
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| !l.is_empty())
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Source without comments (so doc links do not count) and without `#[cfg(test)]`
/// items; test modules declared as `mod x;` are returned so their files are skipped.
fn production_code(text: &str) -> (String, Vec<String>) {
    let mut code = String::new();
    for line in text.lines() {
        let line = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        code.push_str(line);
        code.push('\n');
    }
    let mut out = String::new();
    let mut skipped_files = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "#[cfg(test)]".len()..];
        let brace = after.find('{');
        let semi = after.find(';');
        match (brace, semi) {
            (Some(b), Some(s)) if s < b => {
                let item = after[..s].trim();
                if let Some(name) = item.split_whitespace().last()
                    && item.contains("mod ")
                {
                    skipped_files.push(name.to_string());
                }
                rest = &after[s + 1..];
            }
            (None, Some(s)) => rest = &after[s + 1..],
            (Some(b), _) => {
                let mut depth = 0usize;
                let mut end = after.len();
                for (j, c) in after[b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + j + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &after[end..];
            }
            (None, None) => rest = "",
        }
    }
    out.push_str(rest);
    (out, skipped_files)
}

/// Top-level module of a file under src/ (`None` for lib.rs and main.rs).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.strip_suffix(".rs") {
        Some("lib" | "main") => None,
        Some(name) => Some(name.to_string()),
        None => Some(first),
    }
}

/// The first name of every path after `prefix` in `text`: `prefix` `a::X` gives `a`, and
/// a group `prefix{a::X, b::{..}}` gives `a` and `b` (leading spaces kept; callers trim).
fn paths_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut targets = BTreeSet::new();
    for (i, _) in text.match_indices(prefix) {
        let after = &text[i + prefix.len()..];
        if let Some(group) = after.strip_prefix('{') {
            // `use crate::{a::X, b::{..}}`: the first name of each top-level item.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        targets.insert(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            targets.insert(item);
        } else {
            targets.insert(after.to_string());
        }
    }
    targets
        .into_iter()
        .map(|t| {
            t.trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .filter(|n: &String| !n.is_empty())
        .collect()
}

/// Non-test source files under src/ with their production code.
fn production_files() -> BTreeMap<PathBuf, String> {
    let src = Path::new(ROOT).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut test_files = BTreeSet::new();
    let mut code = BTreeMap::new();
    for file in &files {
        let (text, tests) = production_code(&fs::read_to_string(file).unwrap());
        let dir = file.parent().unwrap();
        for name in tests {
            test_files.insert(dir.join(format!("{name}.rs")));
        }
        code.insert(file.clone(), text);
    }
    code.retain(|f, _| !test_files.contains(f));
    code
}

/// Within each folder, file → sibling files it imports (`super::x`, or `crate::m::x` from
/// inside `m`). A folder's `mod.rs` is its facade (it re-exports its files, and they use
/// the folder's shared items), so edges to and from it do not count.
fn file_edges() -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let src = Path::new(ROOT).join("src");
    let files = production_files();
    let sibling = |dir: &Path, name: &str| -> Option<PathBuf> {
        [
            dir.join(format!("{name}.rs")),
            dir.join(name).join("mod.rs"),
        ]
        .into_iter()
        .find(|p| files.contains_key(p))
    };
    let mut out: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (file, text) in &files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if matches!(name, "mod.rs" | "lib.rs" | "main.rs") {
            continue;
        }
        let dir = file.parent().unwrap();
        let mut targets: BTreeSet<PathBuf> = paths_after(text, "super::")
            .iter()
            .filter_map(|n| sibling(dir, n))
            .collect();
        // `crate::m::x` from a file of `src/m/`.
        if let Ok(rel) = dir.strip_prefix(&src)
            && let Some(module) = rel.to_str().filter(|m| !m.is_empty() && !m.contains('/'))
        {
            let prefix = format!("crate::{module}::");
            targets.extend(
                paths_after(text, &prefix)
                    .iter()
                    .filter_map(|n| sibling(dir, n)),
            );
        }
        targets.retain(|t| t != file && !t.ends_with("mod.rs"));
        out.insert(file.clone(), targets);
    }
    out
}

/// Module → module it imports → files that do.
fn edges() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let src = Path::new(ROOT).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut test_files = BTreeSet::new();
    let mut code = BTreeMap::new();
    for file in &files {
        let (text, tests) = production_code(&fs::read_to_string(file).unwrap());
        let dir = file.parent().unwrap();
        for name in tests {
            test_files.insert(dir.join(format!("{name}.rs")));
        }
        code.insert(file.clone(), text);
    }
    let mut out: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (file, text) in &code {
        let Some(from) = module_of(&src, file) else {
            continue;
        };
        out.entry(from.clone()).or_default();
        if test_files.contains(file) {
            continue;
        }
        let rel = file.strip_prefix(ROOT).unwrap().display().to_string();
        let targets = paths_after(text, "crate::");
        for name in targets {
            if name != from && name != "self" {
                out.entry(from.clone())
                    .or_default()
                    .entry(name)
                    .or_default()
                    .insert(rel.clone());
            }
        }
    }
    out
}

#[test]
fn every_import_points_down_the_module_stack() {
    let stack = stack();
    let layer: BTreeMap<&str, usize> = stack
        .iter()
        .enumerate()
        .flat_map(|(i, names)| names.iter().map(move |n| (n.as_str(), i)))
        .collect();
    let graph = edges();
    let mut problems = Vec::new();
    for module in graph.keys() {
        if !layer.contains_key(module.as_str()) {
            problems.push(format!(
                "module `{module}` is not in the stack of docs/architecture.md"
            ));
        }
    }
    for name in layer.keys() {
        if !graph.contains_key(*name) {
            problems.push(format!(
                "the stack lists `{name}`, which is not a module under src/"
            ));
        }
    }
    for (from, targets) in &graph {
        for (to, files) in targets {
            let (Some(&a), Some(&b)) = (layer.get(from.as_str()), layer.get(to.as_str())) else {
                continue;
            };
            if b <= a {
                let files: Vec<&str> = files.iter().map(String::as_str).collect();
                problems.push(format!(
                    "`{from}` imports `{to}`, which is {} it in the stack ({})",
                    if a == b { "beside" } else { "above" },
                    files.join(", ")
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "module stack broken (docs/architecture.md, \"The module stack\"):\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn no_file_imports_a_sibling_that_imports_it_back() {
    let graph = file_edges();
    let rel = |p: &Path| p.strip_prefix(ROOT).unwrap().display().to_string();
    let mut cycles = BTreeSet::new();
    // A path back to the start from each file (the graphs are small: plain DFS).
    for start in graph.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for next in graph.get(&at).into_iter().flatten() {
                if next == start {
                    let mut cycle: Vec<String> = path.iter().map(|p| rel(p)).collect();
                    // One spelling per cycle: rotated to start at its smallest file.
                    let min = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap();
                    cycle.rotate_left(min);
                    let first = cycle[0].clone();
                    cycle.push(first);
                    cycles.insert(cycle.join(" -> "));
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "files of one module import each other (move the shared piece to its own file):\n  {}",
        cycles.into_iter().collect::<Vec<_>>().join("\n  ")
    );
}

#[test]
fn the_reader_sees_through_comments_and_test_modules() {
    let (code, files) = production_code(
        "use crate::a::X; // crate::b\n/// see [`crate::c`]\n#[cfg(test)]\nmod tests {\n use crate::d;\n fn f() { {} }\n}\n#[cfg(test)]\nmod more;\nfn g() { crate::e::f(); }\n",
    );
    assert!(
        code.contains("crate::a") && code.contains("crate::e"),
        "{code}"
    );
    for hidden in ["crate::b", "crate::c", "crate::d"] {
        assert!(!code.contains(hidden), "{hidden} leaked: {code}");
    }
    assert_eq!(files, vec!["more".to_string()]);
}
