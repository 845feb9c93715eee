//! Semantic checks of a decoded config against the registry (`docs/architecture.md`,
//! `spec`): task and trainer ids, trainer knobs, optimizer/guide/logger names,
//! mode. Every problem is collected with its location; `strict` turns the
//! strict-relevant warnings into errors.

use std::collections::HashSet;

use crate::config::diag::{Diagnostic, suggestion};
use crate::config::model::{Config, TaskEntry, TrainerEntry};
use crate::config::yaml::Span;
use crate::llm::settings::LlmSettings;
use crate::optimizer::{KNOWN_OPTIMIZERS, protocol_for};
use crate::registry::{Registry, TrainerPreset};
use crate::task::Task;
use crate::trainer::Algorithm;
use crate::vocab::Mode;

/// Logger names the reference's configs use; trace-bench always writes its own logs.
pub const KNOWN_LOGGERS: &[&str] = &[
    "ConsoleLogger",
    "TensorboardLogger",
    "WandbLogger",
    "NullLogger",
    "none",
    "null",
    "off",
    "disable",
    "disabled",
];

/// What `run --logger X` does, normalised as the reference does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoggerOverride {
    /// Empty, `default` or `config`: keep each trainer's configured logger.
    Keep,
    /// Every trainer gets this logger (`none` for none/null/off/disable/disabled).
    Set(String),
    /// Not a logger the reference knows: kept as configured, with a warning.
    Unknown(String),
}

/// Normalise a `--logger` value.
pub fn logger_override(value: &str) -> LoggerOverride {
    let v = value.trim();
    match v {
        "" | "default" | "config" => LoggerOverride::Keep,
        "none" | "null" | "off" | "disable" | "disabled" => LoggerOverride::Set("none".into()),
        _ if KNOWN_LOGGERS.contains(&v) => LoggerOverride::Set(v.into()),
        _ => LoggerOverride::Unknown(v.into()),
    }
}

/// Trainers the Python reference's OpenTrace versions expose that this build does not
/// run, each with why: configs naming them run, their jobs `skipped` with the reason.
/// Aliases of trainers this build has (`NoOpTrainer`, `BasicSearchAlgorithm`,
/// `GEPAUCBSearch`) resolve through the registry and never reach this list.
pub const REFERENCE_ONLY_TRAINERS: &[(&str, &str)] = &[
    (
        "DSPyExternalTrainer",
        "not a trainer the reference ships: the name is only a fake of its test suite (`FakeDSPyExternalTrainer`); DSPyTrainer runs DSPy's optimizers",
    ),
    (
        "Minibatch",
        "an abstract base class in OpenTrace (forward/update are abstract): it cannot run upstream either",
    ),
];

/// Why a trainer of the reference that this build lacks is skipped.
pub fn reference_only_trainer(id: &str) -> Option<String> {
    REFERENCE_ONLY_TRAINERS
        .iter()
        .find(|(known, _)| *known == id)
        .map(|(_, why)| {
            format!(
                "trainer `{id}` exists in the Python reference but is not run by this build: {why}"
            )
        })
}

/// Suites whose tasks need the reference's own harnesses (VeriBench, Terminal-Bench/Harbor):
/// any id in them runs as `skipped` with the reason, as the reference skips them when its
/// harness is not installed.
pub const HARNESS_SUITES: &[&str] = &["veribench", "terminal_bench"];

/// Task ids the Python reference lists (for configs naming tasks this build lacks).
const REFERENCE_CATALOG: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tasks/reference_catalog.txt"
));

/// Whether the Python reference knows this task id (so it is a real task, just not here).
pub fn in_reference_catalog(id: &str) -> bool {
    REFERENCE_CATALOG.lines().any(|l| l.trim() == id)
}

/// Run every check against `registry` (the config's own sources already added);
/// strict-relevant problems are errors when `strict`. Real mode's `llm` settings come
/// back decoded when they decode.
pub(super) fn diagnose(
    config: &Config,
    registry: &Registry,
    strict: bool,
    out: &mut Vec<Diagnostic>,
) -> Option<LlmSettings> {
    let llm = match config.mode {
        Mode::Real => check_llm(config, out),
        Mode::Stub => None,
    };
    check_tasks(config, registry, out);
    check_trainers(config, registry, strict, out);
    check_gepa_budgets(config, registry, out);
    check_job_timeout(config, out);
    llm
}

/// A warning, or an error under `--strict`.
fn strictly(strict: bool, key: String, span: Span, msg: String) -> Diagnostic {
    if strict {
        Diagnostic::error(key, span, msg)
    } else {
        Diagnostic::warning(key, span, msg)
    }
}

/// Real mode: the `llm` settings decode (returned), the key variable is set, `base_url`
/// is usable.
fn check_llm(config: &Config, out: &mut Vec<Diagnostic>) -> Option<LlmSettings> {
    let env = |name: &str| std::env::var(name).ok();
    match LlmSettings::from_config(&config.llm, &env) {
        Err(e) => {
            out.push(Diagnostic::error("llm", Default::default(), e.to_string()));
            None
        }
        Ok(settings) => {
            if let Err(e) = settings.api_key(&env) {
                out.push(
                    Diagnostic::error("llm.api_key_env", Default::default(), e.to_string())
                        .with_hint(format!(
                            "export {}=... before running, or use `mode: stub` (offline, seeded)",
                            settings.api_key_env
                        )),
                );
            }
            if let Err(e) = crate::llm::openai::chat_completions_url(&settings.base_url) {
                out.push(Diagnostic::error(
                    "llm.base_url",
                    Default::default(),
                    e.to_string(),
                ));
            }
            Some(settings)
        }
    }
}

/// Known tasks get their `eval_kwargs` checked; unknown ones are a warning when the
/// reference has them (jobs skipped), else an error.
fn check_tasks(config: &Config, registry: &Registry, out: &mut Vec<Diagnostic>) {
    for (i, task) in config.tasks.iter().enumerate() {
        match registry.task(&task.id) {
            Some(known) => check_objective_mode(i, task, &known, out),
            None => out.push(missing_task(i, task, registry)),
        }
    }
}

/// Multi-objective tasks: a mode the job could not use is a config error.
fn check_objective_mode(i: usize, task: &TaskEntry, known: &Task, out: &mut Vec<Diagnostic>) {
    let (Some(objective), Some(mode)) = (
        &known.manifest.objective_config,
        task.eval_kwargs.get("objective_mode"),
    ) else {
        return;
    };
    if let Err(message) = objective.mode_for(mode) {
        out.push(
            Diagnostic::error(
                format!("tasks[{i}].eval_kwargs.objective_mode"),
                task.span,
                message.to_string(),
            )
            .with_hint("docs/tasks.md, Multi-objective tasks"),
        );
    }
}

/// A task this build does not have.
fn missing_task(i: usize, task: &TaskEntry, registry: &Registry) -> Diagnostic {
    let key = format!("tasks[{i}]");
    let harness = HARNESS_SUITES.contains(&crate::task::manifest_suite(&task.id));
    if in_reference_catalog(&task.id) || harness {
        Diagnostic::warning(
            key,
            task.span,
            format!(
                "{}; its jobs will be skipped",
                registry.missing_reason(&task.id)
            ),
        )
        .with_hint("`trace-bench list-tasks` shows the tasks this build runs")
    } else {
        Diagnostic::error(key, task.span, format!("unknown task `{}`", task.id)).with_optional_hint(
            suggestion(&task.id, registry.task_ids())
                .or_else(|| Some("`trace-bench list-tasks` shows the known task ids".into())),
        )
    }
}

/// Each trainer entry: a known id, then its variants, then its component names.
fn check_trainers(config: &Config, registry: &Registry, strict: bool, out: &mut Vec<Diagnostic>) {
    for (t, trainer) in config.trainers.iter().enumerate() {
        let key = format!("trainers[{t}]");
        let Some(preset) = registry.trainer(&trainer.id) else {
            out.push(match reference_only_trainer(&trainer.id) {
                Some(reason) => Diagnostic::warning(
                    key,
                    trainer.span,
                    format!("{reason}; its jobs will be skipped"),
                )
                .with_hint("`trace-bench list-trainers` shows the trainers this build runs"),
                None => unknown_trainer(key, trainer, registry),
            });
            continue;
        };
        check_variants(&key, trainer, preset, strict, out);
        check_names(&key, trainer, strict, out);
        if preset.algorithm == "external" {
            check_external_entry(&key, trainer, strict, out);
        }
    }
}

/// Proposals a GEPA budget leaves room for on a task, below which a variant is warned
/// about: a budget that fits one proposal still ends `ok` and "looks" like a run
/// (gepa-ai/gepa#375).
const GEPA_MIN_PROPOSALS: u64 = 2;

/// GEPA's `max_metric_calls` (native `GEPA`, `UpstreamGEPA`, DSPy's GEPA) against each task:
/// the seed's validation costs V metric calls and each accepted proposal up to 2m + V (its
/// parent and itself on a minibatch of m, then the validation split), so a budget under
/// V + 2(2m + V) fits fewer than two proposals. A warning per variant, naming the tasks.
fn check_gepa_budgets(config: &Config, registry: &Registry, out: &mut Vec<Diagnostic>) {
    for (t, trainer) in config.trainers.iter().enumerate() {
        let Some(preset) = registry.trainer(&trainer.id) else {
            continue;
        };
        for (v, variant) in trainer.params_variants.iter().enumerate() {
            let resolved = preset.resolve(&variant.params);
            let knob = |name: &str| preset.knob_value(&resolved, name);
            let is_gepa = preset.algorithm == "gepa"
                || preset.id == "UpstreamGEPA"
                || (preset.id == "DSPyTrainer"
                    && knob("dspy_optimizer").and_then(|o| o.as_str().map(str::to_string))
                        == Some("gepa".into()));
            let (true, Some(budget), Some(m)) = (
                is_gepa,
                knob("max_metric_calls").and_then(|b| b.as_u64()),
                knob("reflection_minibatch_size").and_then(|m| m.as_u64()),
            ) else {
                continue;
            };
            let mut short = Vec::new();
            for task in &config.tasks {
                let Some(known) = registry.task(&task.id) else {
                    continue;
                };
                let n_train = known.manifest.splits.train.len() as u64;
                let val = known.eval_split().1.len() as u64;
                if n_train == 0 || val == 0 {
                    continue;
                }
                let per = 2 * m.min(n_train) + val;
                let fits = budget.saturating_sub(val) / per;
                if fits < GEPA_MIN_PROPOSALS {
                    short.push((task.id.clone(), val, per, fits));
                }
            }
            let Some((first, val, per, fits)) = short.first().cloned() else {
                continue;
            };
            let others = match short.len() {
                1 => String::new(),
                n => format!(" (and {} more task(s))", n - 1),
            };
            let span = variant
                .key_spans
                .iter()
                .find(|(name, _)| *name == "max_metric_calls")
                .map_or(trainer.span, |(_, span)| *span);
            out.push(
                Diagnostic::warning(
                    format!("trainers[{t}].params_variants[{v}].max_metric_calls"),
                    span,
                    format!(
                        "`{}`'s max_metric_calls {budget} fits {fits} proposal(s) on `{first}`{others}: \
                         its {val} evaluation examples cost {val} calls for the seed and each proposal up to {per}; \
                         the job would end ok having measured little",
                        trainer.id
                    ),
                )
                .with_hint(format!(
                    "at least {} leave room for three proposals on `{first}` (gepa-ai/gepa#375)",
                    val + 3 * per
                )),
            );
        }
    }
}

/// An external trainer runs its library's own optimizer: the entry's `optimizer` and
/// `optimizer_kwargs` (trace-bench's prompt protocols and their settings) never reach it,
/// so setting them is a mistake worth saying — its settings are knobs in `params_variants`.
fn check_external_entry(
    key: &str,
    trainer: &TrainerEntry,
    strict: bool,
    out: &mut Vec<Diagnostic>,
) {
    let mut ignored = Vec::new();
    if trainer.optimizer.is_some() {
        ignored.push("optimizer".to_string());
    }
    ignored.extend(
        trainer
            .optimizer_kwargs
            .keys()
            .map(|k| format!("optimizer_kwargs.{k}")),
    );
    if ignored.is_empty() {
        return;
    }
    out.push(
        strictly(
            strict,
            format!("{key}.{}", ignored[0]),
            trainer.span,
            format!(
                "`{}` runs its library's own optimizer: {} {} not read",
                trainer.id,
                ignored.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
                if ignored.len() == 1 { "is" } else { "are" }
            ),
        )
        .with_hint(format!(
            "put its settings in params_variants (`trace-bench list-trainers --json` lists the knobs of `{}`)",
            trainer.id
        )),
    );
}

/// A trainer id the registry does not have.
fn unknown_trainer(key: String, trainer: &TrainerEntry, registry: &Registry) -> Diagnostic {
    Diagnostic::error(
        key,
        trainer.span,
        format!("unknown trainer `{}`", trainer.id),
    )
    .with_optional_hint(suggestion(&trainer.id, registry.trainer_ids()).or_else(|| {
        Some(format!(
            "available trainers: {}",
            registry.trainer_ids().collect::<Vec<_>>().join(", ")
        ))
    }))
}

/// Per variant: knobs the trainer lacks (each name once per entry, since variants
/// inherit entry-level knobs), then values the algorithm rejects.
fn check_variants(
    key: &str,
    trainer: &TrainerEntry,
    preset: &TrainerPreset,
    strict: bool,
    out: &mut Vec<Diagnostic>,
) {
    let mut reported = HashSet::new();
    for (v, variant) in trainer.params_variants.iter().enumerate() {
        for (name, span) in &variant.key_spans {
            if name == "eval_kwargs" || name == "optimizer_kwargs" {
                continue;
            }
            let knob = preset.canonical_knob(name);
            if preset.has_knob(knob) || !reported.insert(name.clone()) {
                continue;
            }
            let names = preset.knob_names();
            let knobs = format!("`{}` knobs: {}", preset.id, names.join(", "));
            // Aliases too: `ps_step` is a typo of the alias `ps_steps`.
            let aliases = preset.aliases.keys().map(String::as_str);
            let hint = match suggestion(name, names.iter().copied().chain(aliases)) {
                Some(s) => format!("{s}; {knobs}"),
                None => knobs,
            };
            out.push(
                strictly(
                    strict,
                    format!("{key}.params_variants[{v}].{name}"),
                    *span,
                    format!(
                        "trainer `{}` has no knob `{name}`; it is ignored",
                        trainer.id
                    ),
                )
                .with_hint(hint),
            );
        }
        if let Err(e) = Algorithm::from_preset(preset, &preset.resolve(&variant.params)) {
            out.push(Diagnostic::error(
                format!("{key}.params_variants[{v}]"),
                trainer.span,
                e.to_string(),
            ));
        }
    }
}

/// The optimizer, guide and logger names of a trainer entry.
fn check_names(key: &str, trainer: &TrainerEntry, strict: bool, out: &mut Vec<Diagnostic>) {
    if let Some(opt) = &trainer.optimizer {
        if !KNOWN_OPTIMIZERS.contains(&opt.as_str()) {
            out.push(
                strictly(
                    strict,
                    format!("{key}.optimizer"),
                    trainer.span,
                    format!("optimizer not found: `{opt}`"),
                )
                .with_optional_hint(suggestion(opt, KNOWN_OPTIMIZERS.iter().copied())),
            );
        } else if let (_, Some(note)) = protocol_for(Some(opt)) {
            out.push(Diagnostic::warning(
                format!("{key}.optimizer"),
                trainer.span,
                note,
            ));
        }
    }
    if let Some(guide) = &trainer.guide {
        out.push(
            strictly(strict, format!("{key}.guide"), trainer.span, format!("guide override `{guide}` is not supported; the task's evaluator scores the jobs"))
                .with_hint("remove `guide:`; each task defines its evaluator"),
        );
    }
    if let Some(logger) = &trainer.logger
        && !KNOWN_LOGGERS.contains(&logger.as_str())
    {
        out.push(
            strictly(
                strict,
                format!("{key}.logger"),
                trainer.span,
                format!("logger not found: `{logger}`"),
            )
            .with_optional_hint(suggestion(logger, KNOWN_LOGGERS.iter().copied())),
        );
    }
}

/// `job_timeout`: a finite number of seconds, not negative.
fn check_job_timeout(config: &Config, out: &mut Vec<Diagnostic>) {
    if let Some(t) = config.job_timeout.filter(|t| !(*t >= 0.0 && t.is_finite())) {
        out.push(
            Diagnostic::error(
                "job_timeout",
                Default::default(),
                format!("`job_timeout` must be a number of seconds >= 0, found {t}"),
            )
            .with_hint("0 means no limit; unset, real mode gets 600 s and stub mode none"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::diag::Severity;
    use crate::config::load::{Source, load};

    fn run(text: &str, strict: bool) -> Vec<Diagnostic> {
        let l = load(
            &Source {
                name: "t".into(),
                text: text.into(),
            },
            &[],
        );
        let mut out = Vec::new();
        diagnose(&l.config.unwrap(), &Registry::builtin(), strict, &mut out);
        out
    }

    #[test]
    fn unknown_ids_are_errors_with_suggestions() {
        let d = run(
            "tasks: [internal:numeric_parm]\ntrainers: [PrioritySerch]\n",
            false,
        );
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].message, "unknown task `internal:numeric_parm`");
        assert_eq!(
            d[0].hint.as_deref(),
            Some("did you mean `internal:numeric_param`?")
        );
        assert_eq!(d[1].message, "unknown trainer `PrioritySerch`");
        assert_eq!(d[1].hint.as_deref(), Some("did you mean `PrioritySearch`?"));
    }

    #[test]
    fn reference_tasks_missing_here_are_warnings() {
        let d = run("tasks: [llm4ad:online_bin_packing_local]\n", false);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].severity, Severity::Warning);
    }

    #[test]
    fn unknown_knobs_name_the_trainer_and_escalate_under_strict() {
        let text = "tasks: [internal:numeric_param]\ntrainers:\n  - id: GEPA-Base\n    params_variants: [{ps_steps: 2, gepa_iters: 1}]\n";
        let d = run(text, false);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].severity, Severity::Warning);
        assert_eq!(
            d[0].message,
            "trainer `GEPA-Base` has no knob `ps_steps`; it is ignored"
        );
        assert_eq!(d[0].span.line, 4);
        assert_eq!(run(text, true)[0].severity, Severity::Error);
    }

    #[test]
    fn mode_real_and_bad_knob_types_are_errors() {
        let d = run(
            "mode: real\ntasks: [internal:numeric_param]\ntrainers:\n  - id: PrioritySearch\n    params_variants: [{ps_steps: many}]\n",
            false,
        );
        assert_eq!(
            d.iter().filter(|d| d.severity == Severity::Error).count(),
            2
        );
    }

    #[test]
    fn a_gepa_budget_that_fits_fewer_than_two_proposals_is_a_warning() {
        // datasets:arithmetic: 12 validation examples; minibatch 3: 12 + 2·(6 + 12) = 48.
        let config = |budget: u64| {
            format!(
                "tasks: [datasets:arithmetic, internal:numeric_param]\ntrainers:\n  - id: GEPA\n    params_variants: [{{max_metric_calls: {budget}}}]\n"
            )
        };
        let d = run(&config(47), false);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].severity, Severity::Warning);
        assert_eq!(d[0].key, "trainers[0].params_variants[0].max_metric_calls");
        assert_eq!(d[0].span.line, 4);
        assert!(
            d[0].message.starts_with(
                "`GEPA`'s max_metric_calls 47 fits 1 proposal(s) on `datasets:arithmetic`: its 12 evaluation examples"
            ),
            "{}",
            d[0].message
        );
        assert_eq!(
            d[0].hint.as_deref(),
            Some(
                "at least 66 leave room for three proposals on `datasets:arithmetic` (gepa-ai/gepa#375)"
            )
        );
        assert!(run(&config(48), false).is_empty());
        // Other trainers' budgets are theirs to judge; UpstreamGEPA's is GEPA's.
        let upstream = "tasks: [datasets:arithmetic]\ntrainers:\n  - id: UpstreamGEPA\n    params_variants: [{max_metric_calls: 30}]\n";
        assert_eq!(run(upstream, false).len(), 1);
    }

    #[test]
    fn an_external_trainer_says_its_optimizer_settings_are_not_read() {
        let text = "tasks: [datasets:arithmetic]\ntrainers:\n  - id: DSPyTrainer\n    optimizer_kwargs: {auto: light, max_labeled_demos: 1}\n    params_variants: [{dspy_optimizer: mipro}]\n";
        let d = run(text, false);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].severity, Severity::Warning);
        assert_eq!(
            d[0].message,
            "`DSPyTrainer` runs its library's own optimizer: `optimizer_kwargs.auto`, `optimizer_kwargs.max_labeled_demos` are not read"
        );
        assert_eq!(d[0].key, "trainers[0].optimizer_kwargs.auto");
        assert_eq!(run(text, true)[0].severity, Severity::Error);
        // Native trainers pass them to their prompt protocol: nothing to say.
        let native = "tasks: [datasets:arithmetic]\ntrainers:\n  - id: PrioritySearch\n    optimizer_kwargs: {max_tokens: 100}\n";
        assert!(run(native, false).is_empty());
    }
}
