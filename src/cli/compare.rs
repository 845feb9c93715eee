//! `compare BASE_RUN NEW_RUN`: the regression gate. Loads both runs, applies the limits
//! (defaults, then `--thresholds FILE`, then flags), writes gate.json, prints the per-group
//! deltas and every reason; exit 0 pass, 1 fail, 2 unreadable input.

use super::args::CompareArgs;
use super::exit::{CliError, FAILURES, OK};
use super::table::{self, Column};
use crate::analysis::compare::{Gate, Severity, Thresholds, compare as run_gate};
use crate::analysis::load_run;
use crate::artifacts::FileError;
use crate::artifacts::atomic::write_json;

/// Compare, write gate.json, report.
pub fn compare(args: &CompareArgs) -> Result<u8, CliError> {
    let thresholds = thresholds(args)?;
    let load = |p: &std::path::Path| {
        load_run(p, false).map_err(|e| {
            CliError::usage(e).with_hint("pass two run directories `<runs_dir>/<run_id>`")
        })
    };
    let base = load(&args.base_run)?;
    let mut new = load(&args.new_run)?;
    // A re-scoring of BASE (`rescore`) pairs with the jobs it re-scored.
    if let Some(paired) = crate::analysis::rescored::as_source(&new, &base) {
        eprintln!(
            "trace-bench: `{}` re-scored `{}`: each job is paired with its re-scored state (best, else final, else initial)",
            args.new_run.display(),
            args.base_run.display()
        );
        new = paired;
    }
    let names = (
        args.base_run.display().to_string(),
        args.new_run.display().to_string(),
    );
    let gate = run_gate(&base, &new, names, &thresholds);
    let out = args.out.clone().unwrap_or_else(|| new.dir.gate_json());
    write_json(&out, &gate.to_json()).map_err(FileError::on("write", &out))?;
    print_gate(&gate);
    println!("Gate: {}", out.display());
    Ok(if gate.passed() { OK } else { FAILURES })
}

fn thresholds(args: &CompareArgs) -> Result<Thresholds, CliError> {
    let mut t = Thresholds::default();
    if let Some(path) = &args.thresholds {
        let text = std::fs::read_to_string(path).map_err(FileError::on("read", path))?;
        t.apply_yaml(&path.display().to_string(), &text)
            .map_err(CliError::usage)?;
    }
    let set = |slot: &mut Option<f64>, flag: Option<super::args::Limit>| {
        if let Some(l) = flag {
            *slot = l.0;
        }
    };
    set(&mut t.max_score_drop, args.max_score_drop);
    set(&mut t.max_pass_rate_drop, args.max_pass_rate_drop);
    set(&mut t.max_token_increase, args.max_token_increase);
    set(&mut t.max_time_increase, args.max_time_increase);
    if let Some(g) = args.time_grace_seconds {
        t.time_grace_seconds = g;
    }
    t.allow_missing |= args.allow_missing;
    Ok(t)
}

fn print_gate(gate: &Gate) {
    let f = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |v| format!("{v:+.4}"));
    let pct = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |v| format!("{:+.1}%", v * 100.0));
    // Name the variant only for trainers compared with several.
    let label = |g: &crate::analysis::compare::GroupDelta| {
        let several = gate
            .groups
            .iter()
            .any(|o| o.trainer_id == g.trainer_id && o.variant_index != g.variant_index);
        if several {
            format!("{} [v{}]", g.trainer_id, g.variant_index)
        } else {
            g.trainer_id.clone()
        }
    };
    println!(
        "{} (base) -> {} (new): {} paired job(s)\n",
        gate.base.run_id, gate.new.run_id, gate.paired_jobs
    );
    let rows: Vec<Vec<String>> = gate
        .groups
        .iter()
        .map(|g| {
            let ci = match (g.score_delta_ci95_low, g.score_delta_ci95_high) {
                (Some(lo), Some(hi)) => format!("[{lo:+.4}, {hi:+.4}]"),
                _ => "-".to_string(),
            };
            vec![
                g.task_id.clone(),
                label(g),
                g.pairs.to_string(),
                f(g.score_val.change),
                ci,
                pct(g.pass_rate.change),
                pct(g.tokens.change),
                pct(g.time_seconds.change),
                g.verdict.to_string(),
            ]
        })
        .collect();
    let columns = [
        Column::Fit("task"),
        Column::Fit("trainer"),
        Column::Right("pairs", 5),
        Column::Right("score d", 10),
        Column::Right("95% CI", 21),
        Column::Right("pass d", 9),
        Column::Right("tokens", 8),
        Column::Right("time", 8),
        Column::Last("verdict"),
    ];
    print!("{}", table::render(&columns, &rows));
    println!();
    for r in &gate.reasons {
        let tag = match r.severity {
            Severity::Fail => "FAIL",
            Severity::Warn => "warn",
        };
        println!("[{tag}] {}: {}", r.check, r.message);
    }
    println!("verdict: {}", if gate.passed() { "pass" } else { "FAIL" });
}
