//! Trainer tests on the built-in tasks with the seeded stub: golden trajectories,
//! budgets, determinism and improvement.

use std::sync::{Arc, Mutex};

use serde_json::Value as Json;

use super::{Algorithm, Ctx, Monitor, TrainResult};
use crate::backend::stub::StubLlm;
use crate::config::load::{Source, load};
use crate::events::{Emitter, Event, EventKind, EventSink, SinkError};
use crate::matrix::{Job, expand};
use crate::optimizer::protocol_for;
use crate::registry::Registry;

#[derive(Default)]
struct Collect(Mutex<Vec<EventKind>>);

impl EventSink for Collect {
    fn on_event(&self, _job: &Job, event: &Event) -> Result<(), SinkError> {
        self.0.lock().unwrap().push(event.kind.clone());
        Ok(())
    }
}

/// One trainer run: its result, events, and the monitor scores of initial and final.
struct Run {
    result: TrainResult,
    events: Vec<EventKind>,
    initial: f64,
    last: f64,
}

fn run(task: &str, trainer: &str, params: &str, seed: i64) -> Run {
    run_with(task, trainer, params, seed, None)
}

fn run_with(task: &str, trainer: &str, params: &str, seed: i64, optimizer: Option<&str>) -> Run {
    let optimizer = optimizer.map_or(String::new(), |o| format!("    optimizer: {o}\n"));
    let text = format!(
        "tasks: [\"{task}\"]\ntrainers:\n  - id: {trainer}\n{optimizer}    params_variants: [{params}]\nseeds: [{seed}]\n"
    );
    let loaded = load(
        &Source {
            name: "test.yaml".into(),
            text,
        },
        &[],
    );
    let config = loaded.config.expect("test config loads");
    let registry = Registry::builtin();
    let job = expand(&config, &registry).0.remove(0);
    let task = registry.task(task).unwrap();
    let preset = registry.trainer(trainer).unwrap();
    let algorithm = Algorithm::from_preset(preset, &job.resolved.trainer_kwargs).unwrap();
    let (protocol, _) = protocol_for(
        job.resolved
            .optimizer
            .as_deref()
            .or(preset.default_optimizer.as_deref()),
    );
    let protocol: Arc<dyn crate::optimizer::Protocol> = Arc::from(protocol);
    let mut llm = StubLlm::new(seed, protocol.clone());
    let sink = Collect::default();
    let mut monitor = Monitor::default();
    let initial = monitor.score(&task, &task.initial_values()).0.unwrap();
    let mut emitter = Emitter::new(&job, &sink);
    let ctx = Ctx::new(
        &task,
        &mut llm,
        protocol.as_ref(),
        &mut emitter,
        &mut monitor,
        seed,
    );
    let result = algorithm
        .run(ctx)
        .expect("no deadline and no cancellation: the trainer runs to its end");
    let last = monitor.score(&task, &result.best_params).0.unwrap();
    drop(emitter);
    let events = sink.0.into_inner().unwrap();
    Run {
        result,
        events,
        initial,
        last,
    }
}

fn steps(events: &[EventKind]) -> Vec<&crate::events::StepRecord> {
    events
        .iter()
        .filter_map(|e| match e {
            EventKind::Step(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// A compact, stable description of a run: selected parents, final pool (id:score),
/// metric and LLM calls.
fn digest(r: &TrainResult) -> String {
    let pool: Vec<String> = r
        .pool
        .iter()
        .map(|p| match p.score {
            Some(s) => format!("{}:{s:.4}", p.id),
            None => format!("{}:-", p.id),
        })
        .collect();
    format!(
        "parents={:?} pool=[{}] metric_calls={} llm_calls={}",
        r.selections,
        pool.join(" "),
        r.counters.metric_calls,
        r.counters.llm_calls
    )
}

/// Knobs that give every trainer a handful of iterations.
const SETUPS: &[(&str, &str)] = &[
    ("PrioritySearch", "{ps_steps: 5}"),
    ("GEPA", "{max_metric_calls: 40}"),
    ("GEPA-Base", "{gepa_iters: 6}"),
    ("GEPA-UCB", "{gepa_iters: 6}"),
    ("GEPA-Beam", "{gepa_iters: 6}"),
    ("MinibatchAlgorithm", "{num_epochs: 6}"),
    ("BasicSearch", "{num_epochs: 4}"),
    ("NoOp", "{}"),
];

/// The PS variants and presets, with a handful of iterations.
const VARIANT_SETUPS: &[(&str, &str)] = &[
    ("POLCA", "{ps_steps: 5}"),
    ("StreamingPrioritySearch", "{ps_steps: 8}"),
    ("ParetobasedPS", "{ps_steps: 5}"),
    ("SequentialUpdate", "{ps_steps: 8}"),
    ("SequentialSearch", "{ps_steps: 8}"),
    ("BeamSearch", "{ps_steps: 5}"),
    ("BeamsearchAlgorithm", "{max_depth: 3}"),
    (
        "BeamsearchHistoryAlgorithm",
        "{max_depth: 3, num_proposals: 2}",
    ),
    (
        "UCBSearchAlgorithm",
        "{num_search_iterations: 6, evaluation_batch_size: 2}",
    ),
    ("TextGradTrainer", "{num_epochs: 6}"),
    (
        "AggregatedUpdate",
        "{num_epochs: 4, batch_size: 2, ensure_improvement: true}",
    ),
    ("PrioritySearch_with_Regressor", "{ps_steps: 5}"),
];

/// Every setup: the first trainers', then the PS variants'.
fn all_setups() -> impl Iterator<Item = &'static (&'static str, &'static str)> {
    SETUPS.iter().chain(VARIANT_SETUPS)
}

#[test]
fn golden_variant_trajectories_are_pinned() {
    let mut actual = Vec::new();
    for (trainer, params) in VARIANT_SETUPS {
        let r = run("internal:multi_param", trainer, params, 7);
        actual.push(format!("{trainer}: {}", digest(&r.result)));
    }
    let actual = actual.join("\n");
    assert_eq!(
        actual,
        GOLDEN_VARIANTS.trim(),
        "\n--- actual ---\n{actual}\n"
    );
}

/// Pinned like [`GOLDEN`] (seed 7, `internal:multi_param`).
const GOLDEN_VARIANTS: &str = "
POLCA: parents=[0, 0, 0, 0, 1, 1, 3, 3, 1, 1, 3, 3, 8, 8, 1, 1] pool=[8:-0.0867 1:-0.1477 12:-0.2496 3:-0.4592 11:-0.4935 4:-0.7703 0:-1.0000 5:-1.3219 10:-1.4893 13:-1.7124 9:-2.4710 7:-2.5544 2:-3.3189 6:-3.3343 14:-3.3659] metric_calls=24 llm_calls=20
StreamingPrioritySearch: parents=[0, 1, 1, 1, 1, 1, 1] pool=[1:-0.1477 3:-0.6885 0:-1.0000 2:-1.9180 5:-2.5544 4:-2.6760 6:-3.3343 7:-] metric_calls=16 llm_calls=7
ParetobasedPS: parents=[0, 0, 0, 0, 1, 1, 1, 1, 1, 1] pool=[8:-0.0867 1:-0.1477 3:-0.4592 7:-0.6308 2:-0.7703 0:-1.0000 9:-1.4893 5:-2.5544 4:-3.3189 6:-3.3343] metric_calls=15 llm_calls=10
SequentialUpdate: parents=[0, 1, 1, 1, 1, 1, 1] pool=[1:-0.1477] metric_calls=15 llm_calls=7
SequentialSearch: parents=[0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 8, 8, 8, 8] pool=[8:-0.0867] metric_calls=20 llm_calls=14
BeamSearch: parents=[0, 0, 0, 0, 1, 1, 3, 3, 1, 1, 3, 3, 8, 8, 1, 1] pool=[8:-0.0867 1:-0.1477] metric_calls=24 llm_calls=16
BeamsearchAlgorithm: parents=[0, 1, 3, 2, 1, 13, 3] pool=[22:-0.1345 1:-0.1477 13:-0.4472] metric_calls=42 llm_calls=28
BeamsearchHistoryAlgorithm: parents=[0, 1, 2, 0, 1, 3, 2] pool=[8:-0.0867 1:-0.1477 3:-0.6885] metric_calls=29 llm_calls=14
UCBSearchAlgorithm: parents=[0, 1, 1, 3, 1, 1] pool=[1:-0.1477 3:-0.6885 0:-1.0000 2:-1.9180 4:-2.1481 5:-2.5544 6:-3.3343] metric_calls=13 llm_calls=6
TextGradTrainer: parents=[0, 1, 1, 1, 1, 1] pool=[1:-0.1407] metric_calls=18 llm_calls=24
AggregatedUpdate: parents=[0, 1, 1, 1] pool=[1:-0.7703] metric_calls=16 llm_calls=12
PrioritySearch_with_Regressor: parents=[0, 0, 0, 0, 1, 1, 4, 4, 6, 6, 5, 5, 9, 9, 8, 8] pool=[1:-0.1477 0:-1.0000 9:-1.1882 5:-2.5544 8:-3.2494 4:-3.3189 6:-3.3343 2:- 3:- 7:- 10:- 11:- 12:- 13:- 14:-] metric_calls=10 llm_calls=16
";

#[test]
fn golden_trajectories_are_pinned() {
    let mut actual = Vec::new();
    for (trainer, params) in SETUPS {
        let r = run("internal:multi_param", trainer, params, 7);
        actual.push(format!("{trainer}: {}", digest(&r.result)));
    }
    let actual = actual.join("\n");
    assert_eq!(actual, GOLDEN.trim(), "\n--- actual ---\n{actual}\n");
}

/// Pinned with seed 7 on `internal:multi_param`. Metric-call totals agree with the cost
/// formulas of `docs/trainers.md` (checked independently above and below). A change
/// here changes published stub results: update it only on purpose, and say so.
const GOLDEN: &str = "
PrioritySearch: parents=[0, 0, 0, 0, 1, 1, 3, 3, 1, 1, 3, 3, 8, 8, 1, 1] pool=[8:-0.0867 1:-0.1477 13:-0.2496 3:-0.4592 11:-0.4935 2:-0.7703 0:-1.0000 7:-1.3219 9:-1.4893 14:-1.7124 10:-2.4710 5:-2.5544 4:-3.3189 6:-3.3343 12:-3.3659] metric_calls=24 llm_calls=16
GEPA: parents=[0, 1, 2, 2, 2, 2, 2, 2, 8, 8, 8, 8, 8, 8, 8, 8, 8] pool=[0:-1.0000 1:-0.1477 2:-0.1407 8:-0.0744] metric_calls=38 llm_calls=17
GEPA-Base: parents=[0, 1, 2, 2, 0, 2] pool=[0:-1.0000 1:-0.1477 2:-1.9180 3:-2.6502 4:-0.9480 5:-3.2285 6:-5.7982] metric_calls=13 llm_calls=6
GEPA-UCB: parents=[0, 1, 1, 1, 1, 3] pool=[0:-1.0000 1:-0.1477 2:-1.9180 3:-0.6885 4:-2.6760 5:-2.5544 6:-4.0870] metric_calls=14 llm_calls=6
GEPA-Beam: parents=[0, 1, 0, 1, 3, 0, 1, 3, 0, 1, 3, 7, 1, 3, 7] pool=[0:-1.0000 1:-0.1477 2:-1.9180 3:-0.4592 4:-2.6760 5:-2.7055 6:-1.9575 7:-0.6308 8:-1.0610 11:-1.4893 12:-2.3681 13:-0.5473 14:-3.5016 15:-1.0281 16:-0.7703] metric_calls=32 llm_calls=15
MinibatchAlgorithm: parents=[0, 1, 1, 1, 1, 1] pool=[1:-0.1477] metric_calls=12 llm_calls=6
BasicSearch: parents=[0, 1, 1, 8] pool=[8:-0.0867] metric_calls=19 llm_calls=16
NoOp: parents=[] pool=[0:-1.0000] metric_calls=1 llm_calls=0
";

#[test]
fn same_seed_same_run_and_num_threads_changes_nothing() {
    for (trainer, params) in all_setups() {
        let untimed = |mut r: TrainResult| {
            r.spent.seconds = 0.0;
            r
        };
        let a = run("internal:multi_param", trainer, params, 3);
        let b = run("internal:multi_param", trainer, params, 3);
        assert_eq!(
            untimed(a.result.clone()),
            untimed(b.result.clone()),
            "{trainer}"
        );
        let threaded = params
            .replacen('{', "{num_threads: 4, ", 1)
            .replace(", }", "}");
        let c = run("internal:multi_param", trainer, &threaded, 3);
        assert_eq!(digest(&a.result), digest(&c.result), "{trainer}");
        assert_eq!(a.result.best_params, c.result.best_params, "{trainer}");
    }
}

#[test]
fn gepa_never_exceeds_its_metric_call_budget() {
    for budget in [1u64, 5, 9, 17, 33, 64] {
        for seed in 0..4 {
            for task in ["internal:multi_param", "trace_examples:opentrace_greeting"] {
                let params = format!(
                    "{{max_metric_calls: {budget}, use_merge: true, merge_val_overlap_floor: 1}}"
                );
                let r = run(task, "GEPA", &params, seed);
                assert!(
                    r.result.counters.metric_calls <= budget.max(seed_cost(task)),
                    "{task} seed {seed}: {} > {budget}",
                    r.result.counters.metric_calls
                );
            }
        }
    }
}

/// The seed program's validation always runs (upstream does the same).
fn seed_cost(task: &str) -> u64 {
    let reg = Registry::builtin();
    reg.task(task).unwrap().eval_split().1.len() as u64
}

#[test]
fn best_score_never_decreases_where_scores_are_fixed() {
    // GEPA's programs and the GEPA family's candidates are scored once on a fixed set,
    // BasicSearch keeps the best on the full validation split: their best only rises.
    for trainer in ["GEPA", "GEPA-Base", "GEPA-UCB", "GEPA-Beam", "BasicSearch"] {
        let params = SETUPS.iter().find(|(t, _)| *t == trainer).unwrap().1;
        for seed in 0..5 {
            for task in ["internal:multi_param", "trace_examples:opentrace_greeting"] {
                let r = run(task, trainer, params, seed);
                let best: Vec<f64> = steps(&r.events)
                    .iter()
                    .filter_map(|s| s.best_score)
                    .collect();
                assert!(
                    best.windows(2).all(|w| w[1] >= w[0]),
                    "{trainer} {task} seed {seed}: {best:?}"
                );
            }
        }
    }
}

#[test]
fn step_records_add_up_to_the_totals() {
    for (trainer, params) in all_setups() {
        let r = run("trace_examples:opentrace_greeting", trainer, params, 11);
        let s = steps(&r.events);
        assert_eq!(s[0].step, 0, "{trainer}");
        assert_eq!(s.len() as u64, r.result.steps + 1, "{trainer}");
        let calls: u64 = s.iter().map(|x| x.evaluator_calls).sum();
        let llm: u64 = s.iter().map(|x| x.llm_calls).sum();
        assert_eq!(calls, r.result.counters.metric_calls, "{trainer}");
        assert_eq!(llm, r.result.counters.llm_calls, "{trainer}");
    }
}

#[test]
fn priority_search_spends_what_the_formula_says() {
    // No validation split: every iteration samples B*K examples for each of the C
    // explored candidates and re-scores each proposal on the same B*K examples.
    let r = run(
        "trace_examples:greeting_stub",
        "PrioritySearch",
        "{ps_steps: 4, ps_batches: 2, batch_size: 1, ps_candidates: 2, ps_proposals: 2}",
        5,
    );
    let proposals = r
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                EventKind::Candidate {
                    parent_id: Some(_),
                    ..
                }
            )
        })
        .count() as u64;
    let iterations = r.result.steps + 1;
    let (b, k, c, p) = (1, 2, 2, 2);
    assert_eq!(
        r.result.counters.metric_calls,
        b * k * (c * iterations + proposals)
    );
    assert_eq!(r.result.counters.llm_calls, c * k * p * (iterations - 1));
}

#[test]
fn gepa_variants_follow_different_trajectories() {
    let base = run("internal:multi_param", "GEPA-Base", "{gepa_iters: 6}", 1);
    let ucb = run("internal:multi_param", "GEPA-UCB", "{gepa_iters: 6}", 1);
    let beam = run("internal:multi_param", "GEPA-Beam", "{gepa_iters: 6}", 1);
    assert_ne!(digest(&base.result), digest(&ucb.result));
    assert_ne!(digest(&base.result), digest(&beam.result));
    assert_ne!(digest(&ucb.result), digest(&beam.result));
    // The beam expands up to beam_width parents per iteration.
    assert!(beam.result.selections.len() > base.result.selections.len());
}

#[test]
fn trainers_improve_on_the_initial_score_in_stub_mode() {
    let mut table = String::from("trainer, task: mean initial -> mean best over seeds 1..=5\n");
    for (trainer, params) in all_setups() {
        for task in ["internal:numeric_param", "internal:multi_param"] {
            let runs: Vec<Run> = (1..=5)
                .map(|seed| run(task, trainer, params, seed))
                .collect();
            let improved = runs.iter().filter(|r| r.last > r.initial).count();
            let mean = |f: fn(&Run) -> f64| runs.iter().map(f).sum::<f64>() / runs.len() as f64;
            table += &format!(
                "{trainer:<20} {task:<24} {:>8.4} -> {:>8.4}  ({improved}/5 improved)\n",
                mean(|r| r.initial),
                mean(|r| r.last)
            );
            if *trainer == "PrioritySearch_with_Regressor" {
                // Its regressor reads scores as success rates: these tasks' negative
                // scores are all failures to it (see the binary-task test below).
                continue;
            }
            if *trainer == "NoOp" {
                assert_eq!(improved, 0);
                assert_eq!(runs[0].result.counters.llm_calls, 0);
            } else {
                assert!(improved >= 4, "{trainer} on {task}: {improved}/5\n{table}");
            }
        }
    }
    println!("{table}");
}

#[test]
fn every_protocol_drives_the_search() {
    for optimizer in ["OptoPrime", "OptoPrimeV2", "OPROv2", "GEPAReflection"] {
        for (trainer, params) in [
            ("PrioritySearch", "{ps_steps: 5}"),
            ("GEPA", "{max_metric_calls: 30}"),
        ] {
            let improved = (1..=5)
                .filter(|&seed| {
                    let r = run_with(
                        "internal:numeric_param",
                        trainer,
                        params,
                        seed,
                        Some(optimizer),
                    );
                    assert!(r.result.counters.llm_calls > 0);
                    r.last > r.initial
                })
                .count();
            assert!(improved >= 4, "{trainer} with {optimizer}: {improved}/5");
        }
    }
}

#[test]
fn bad_knobs_name_the_trainer_and_knob() {
    let reg = Registry::builtin();
    for (trainer, knob, value) in [
        ("PrioritySearch", "score_function", "\"median\""),
        ("GEPA", "max_metric_calls", "0"),
        ("GEPA-UCB", "ucb_exploration_factor", "\"big\""),
        ("MinibatchAlgorithm", "ensure_improvement", "\"yes\""),
        ("PrioritySearch", "score_range", "[1, 0]"),
    ] {
        let preset = reg.trainer(trainer).unwrap();
        let mut kwargs = preset.resolve(&Default::default());
        kwargs.insert(knob.into(), serde_json::from_str::<Json>(value).unwrap());
        let err = Algorithm::from_preset(preset, &kwargs)
            .unwrap_err()
            .to_string();
        assert!(err.contains(trainer) && err.contains(knob), "{err}");
    }
}

#[test]
fn polca_without_filter_or_summary_is_priority_search_and_filters_nothing_distinct() {
    // epsilon 0 and no summarizer: PrioritySearch exactly.
    let ps = run("internal:multi_param", "PrioritySearch", "{ps_steps: 5}", 7);
    let plain = run(
        "internal:multi_param",
        "POLCA",
        "{ps_steps: 5, epsilon: 0, use_summarizer: false}",
        7,
    );
    assert_eq!(digest(&ps.result), digest(&plain.result));
    assert!(
        !plain
            .events
            .iter()
            .any(|e| matches!(e, EventKind::EmbeddingCall { .. }))
    );
    // The stub's embeddings of distinct parameters are far apart: nothing is filtered, the
    // same proposals are scored (ids in pick order), and every candidate is embedded once.
    let polca = run("internal:multi_param", "POLCA", "{ps_steps: 5}", 7);
    let scores = |r: &Run| {
        let mut s: Vec<String> = r
            .result
            .pool
            .iter()
            .map(|p| format!("{:.6}", p.score.unwrap()))
            .collect();
        s.sort();
        s
    };
    assert_eq!(scores(&ps), scores(&polca));
    assert_eq!(
        ps.result.counters.metric_calls,
        polca.result.counters.metric_calls
    );
    let embeddings = polca
        .events
        .iter()
        .filter(|e| matches!(e, EventKind::EmbeddingCall { .. }))
        .count();
    assert_eq!(embeddings, polca.result.pool.len());
    // One summarizer call per iteration after the first.
    assert_eq!(
        polca.result.counters.llm_calls,
        ps.result.counters.llm_calls + polca.result.steps
    );
}

#[test]
fn streaming_validates_nothing_and_proposes_k_times_p_per_iteration() {
    // C=4, ratio 0.5, P=2 (not capped: 2 <= 2): K = max(int(2/2), 1) = 1 while memory and
    // exploration can fill C, so 2 proposals per iteration; metric calls are the C
    // explored candidates' B*K training examples only.
    let r = run(
        "trace_examples:greeting_stub",
        "StreamingPrioritySearch",
        "{ps_steps: 4, ps_candidates: 4, ps_proposals: 2, ps_batches: 1, batch_size: 1}",
        5,
    );
    let iterations = r.result.steps + 1;
    assert_eq!(r.result.counters.llm_calls, 2 * (iterations - 1));
    let explored: u64 = steps(&r.events).iter().map(|s| s.evaluator_calls).sum();
    assert_eq!(r.result.counters.metric_calls, explored);
    // Proposals are reported unscored.
    assert!(r.events.iter().any(|e| matches!(
        e,
        EventKind::Candidate {
            parent_id: Some(_),
            score: None,
            ..
        }
    )));
}

#[test]
fn sequential_presets_keep_a_memory_of_one() {
    let r = run(
        "internal:multi_param",
        "SequentialUpdate",
        "{ps_steps: 5}",
        3,
    );
    assert_eq!(r.result.pool.len(), 1);
    assert_eq!(r.result.counters.llm_calls, r.result.steps);
    let beam = run(
        "internal:multi_param",
        "BeamSearch",
        "{ps_steps: 5, ps_candidates: 3}",
        3,
    );
    assert!(
        beam.result.pool.len() <= 3 + 3,
        "memory of 3 plus the explored"
    );
}

#[test]
fn beamsearch_and_ucb_search_spend_what_the_formulas_say() {
    // greeting_stub has no validation split: validation is the training split (|V| = n).
    let reg = Registry::builtin();
    let n = reg
        .task("trace_examples:greeting_stub")
        .unwrap()
        .manifest
        .splits
        .train
        .len() as u64;
    let r = run(
        "trace_examples:greeting_stub",
        "BeamsearchAlgorithm",
        "{max_depth: 3, beam_width: 2, num_proposals: 3, batch_size: 1, validation_dataset_size: 2}",
        4,
    );
    // Rounds with 1, then 2, then 2 beam members: 3 LLM calls each.
    assert_eq!(r.result.counters.llm_calls, 3 * (1 + 2 + 2));
    let proposals = r
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                EventKind::Candidate {
                    parent_id: Some(_),
                    ..
                }
            )
        })
        .count() as u64;
    let vs = 2.min(n);
    // Training rollouts (1 per member) + every candidate (proposals and members) on the
    // shared batch + the final beams on the whole split.
    assert_eq!(
        r.result.counters.metric_calls,
        (1 + 2 + 2) + (proposals + 1 + 2 + 2) * vs + 2 * n
    );
    assert_eq!(r.result.steps, 3);
    let u = run(
        "trace_examples:greeting_stub",
        "UCBSearchAlgorithm",
        "{num_search_iterations: 5, train_batch_size: 1, evaluation_batch_size: 2}",
        4,
    );
    let children = u
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                EventKind::Candidate {
                    parent_id: Some(_),
                    ..
                }
            )
        })
        .count() as u64;
    assert_eq!(u.result.counters.llm_calls, 5);
    assert_eq!(
        u.result.counters.metric_calls,
        2.min(n) + 5 + children * 2.min(n)
    );
    assert!(u.result.pool.len() <= 10);
}

#[test]
fn textgrad_makes_the_calls_of_its_protocol() {
    // greeting_stub: per batch of B examples, every trainable parameter gets B backward
    // calls, one reduce call when B > 1 and one update call.
    let reg = Registry::builtin();
    let task = reg.task("trace_examples:greeting_stub").unwrap();
    let n = task.manifest.splits.train.len();
    let params = task.params().iter().filter(|p| p.trainable).count() as u64;
    let r = run(
        "trace_examples:greeting_stub",
        "TextGradTrainer",
        "{num_epochs: 1, batch_size: 2, ensure_improvement: false}",
        2,
    );
    let batches = n.div_ceil(2) as u64;
    let full = (n / 2) as u64;
    let short = batches - full;
    assert_eq!(
        r.result.counters.llm_calls,
        params * (full * (2 + 1 + 1) + short * (1 + 1))
    );
    // Without ensure_improvement, only the batches are evaluated.
    assert_eq!(r.result.counters.metric_calls, n as u64);
    assert_eq!(r.result.steps, batches);
    assert_eq!(r.result.resolved_optimizer.as_deref(), Some("TextGrad"));
}

#[test]
fn aggregated_update_merges_one_suggestion_per_example() {
    // Per minibatch of B examples: B single-example evaluations, B proposals (role
    // `optimizer`), one aggregator call whose prompt lists the current values and the B
    // suggestions; the merged result is the next candidate (no check by default).
    let reg = Registry::builtin();
    let task = reg.task("internal:multi_param").unwrap();
    let n = task.manifest.splits.train.len() as u64;
    let r = run(
        "internal:multi_param",
        "AggregatedUpdate",
        "{num_epochs: 3, batch_size: 2}",
        5,
    );
    let batches = 3 * n.div_ceil(2);
    assert_eq!(r.result.steps, batches);
    assert_eq!(r.result.counters.llm_calls, batches * 3);
    assert_eq!(r.result.counters.metric_calls, batches * 2);
    let roles: Vec<(String, String)> = r
        .events
        .iter()
        .filter_map(|e| match e {
            EventKind::LlmTranscript(t) => Some((
                t.caller.clone(),
                t.messages
                    .last()
                    .map(|m| m.content.clone())
                    .unwrap_or_default(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(roles.len() as u64, batches * 3);
    for step in roles.chunks(3) {
        assert_eq!(step[0].0, "optimizer");
        assert_eq!(step[1].0, "optimizer");
        assert_eq!(step[2].0, "aggregator");
        let prompt = &step[2].1;
        assert!(
            prompt.starts_with("#SuggestedValue_0 (confidence 0.5):\n{"),
            "{prompt}"
        );
        assert!(
            prompt.contains("#SuggestedValue_2 (confidence 0.5):"),
            "{prompt}"
        );
        assert!(!prompt.contains("#SuggestedValue_3"), "{prompt}");
    }
    // Every step's merge changed something in stub mode, and each change was applied.
    let accepted = r
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                EventKind::Candidate {
                    parent_id: Some(_),
                    best: true,
                    ..
                }
            )
        })
        .count() as u64;
    assert!(accepted >= batches - 1, "{accepted} of {batches}");
    assert_ne!(r.result.best_params, task.initial_values());
}

#[test]
fn the_regressor_variant_learns_from_binary_scores() {
    // datasets:arithmetic scores 0 or 1 per example: the labels the regressor assumes.
    // Proposals are never validated (metric calls = the explored candidates' training
    // batches only), every candidate is embedded once, and the search improves.
    let mut improved = 0;
    for seed in 1..=5 {
        let r = run(
            "datasets:arithmetic",
            "PrioritySearch_with_Regressor",
            "{ps_steps: 6}",
            seed,
        );
        let embedded = r
            .events
            .iter()
            .filter(|e| matches!(e, EventKind::EmbeddingCall { .. }))
            .count();
        let candidates = r
            .events
            .iter()
            .filter(|e| matches!(e, EventKind::Candidate { .. }))
            .count();
        assert_eq!(
            embedded, candidates,
            "seed {seed}: one embedding per candidate"
        );
        let steps = r.result.steps;
        // C = 2 explored candidates, batch 1: 2 metric calls per iteration, step 0's
        // sampling included.
        assert_eq!(
            r.result.counters.metric_calls,
            2 * (steps + 1),
            "seed {seed}"
        );
        if r.last > r.initial {
            improved += 1;
        }
    }
    assert!(improved >= 4, "{improved}/5");
}
