//! Config diagnostics: every problem found while loading a config, with the file, line,
//! column and key it concerns, and a hint for the fix.
//!
//! Problems are collected, not thrown: a researcher fixing a config wants every mistake
//! in one pass, not one per run.

use std::fmt::Write as _;

use super::yaml::Span;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Stops `run` and makes `validate` exit 1.
    Error,
    /// Printed, never blocking (an error under `--strict` when it is strict-relevant).
    Warning,
}

/// One problem, located in the config source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Lowercase fragment naming the object in backticks.
    pub message: String,
    /// Dotted key path (`trainers[0].params_variants[1].ps_steps`), empty for the file itself.
    pub key: String,
    /// Where in the file; `Span::default()` when the value came from `--set` or a default.
    pub span: Span,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A new error.
    pub fn error(key: impl Into<String>, span: Span, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            message: message.into(),
            key: key.into(),
            span,
            hint: None,
        }
    }

    /// A new warning.
    pub fn warning(key: impl Into<String>, span: Span, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(key, span, message)
        }
    }

    /// Attach a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Attach a hint only when there is one.
    pub fn with_optional_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
}

/// All problems of one config source, with the text needed to render snippets.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    /// Display name of the source (a path, or `<embedded smoke config>`).
    pub source_name: String,
    /// The source text, for code snippets.
    pub source_text: String,
    /// The problems, in discovery order.
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// An empty set for the given source.
    pub fn new(source_name: impl Into<String>, source_text: impl Into<String>) -> Self {
        Self {
            source_name: source_name.into(),
            source_text: source_text.into(),
            items: Vec::new(),
        }
    }

    /// Record a problem.
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    /// Whether any error was recorded.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// The number of errors.
    pub fn error_count(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// Render every problem, rustc-style, one blank line between them.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for d in &self.items {
            out.push_str(&self.render_one(d));
        }
        out
    }

    /// Render one problem: headline, location, source line with a caret, hint.
    pub fn render_one(&self, d: &Diagnostic) -> String {
        let level = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = format!("{level}: {}\n", d.message);
        let key = if d.key.is_empty() {
            String::new()
        } else {
            format!(" (key `{}`)", d.key)
        };
        if d.key.starts_with("--") {
            // A command-line flag: the file is not to blame.
            let _ = writeln!(out, "  --> the command line (`{}`)", d.key);
        } else if d.span.line == 0 {
            let _ = writeln!(out, "  --> {}{key}", self.source_name);
        } else {
            let _ = writeln!(
                out,
                "  --> {}:{}:{}{key}",
                self.source_name, d.span.line, d.span.col
            );
            if let Some(line) = self.source_text.lines().nth(d.span.line - 1) {
                let num = d.span.line.to_string();
                let pad = " ".repeat(num.len());
                let caret_pad = " ".repeat(d.span.col.saturating_sub(1));
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{num} | {line}");
                let _ = writeln!(out, "{pad} | {caret_pad}^");
            }
        }
        if let Some(h) = &d.hint {
            let _ = writeln!(out, "  = hint: {h}");
        }
        out
    }
}

/// The closest candidate to `word`, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            let c_lower = c.to_ascii_lowercase();
            let jw = strsim::jaro_winkler(&lower, &c_lower);
            let edits = strsim::normalized_damerau_levenshtein(&lower, &c_lower);
            (
                if jw >= 0.85 || edits >= 0.6 {
                    jw.max(edits)
                } else {
                    0.0
                },
                c,
            )
        })
        .filter(|(score, _)| *score > 0.0)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

/// `Some("did you mean `x`?")` when a close candidate exists.
pub fn suggestion<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    did_you_mean(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_snippet_and_hint() {
        let mut d = Diagnostics::new("cfg.yaml", "mode: stub\nmax_worker: 2\n");
        d.push(
            Diagnostic::warning(
                "max_worker",
                Span { line: 2, col: 1 },
                "unknown key `max_worker`",
            )
            .with_hint("did you mean `max_workers`?"),
        );
        assert_eq!(
            d.render(),
            "warning: unknown key `max_worker`\n  --> cfg.yaml:2:1 (key `max_worker`)\n  |\n2 | max_worker: 2\n  | ^\n  = hint: did you mean `max_workers`?\n"
        );
    }

    #[test]
    fn suggests_close_names_only() {
        let keys = ["max_workers", "mode", "seeds"];
        assert_eq!(
            did_you_mean("max_worker", keys).as_deref(),
            Some("max_workers")
        );
        assert_eq!(did_you_mean("sedes", keys).as_deref(), Some("seeds"));
        assert_eq!(did_you_mean("completely_else", keys), None);
    }
}
