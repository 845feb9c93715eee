//! Trainers: the optimisation algorithms being benchmarked. Each is a native
//! implementation of the algorithm its preset names (`docs/trainers.md`), driven by
//! the job seed only, spending evaluator and LLM calls through a shared [`Ctx`] that
//! counts them and reports progress as events.

mod aggregated_update;
mod beamsearch;
mod core;
mod data;
pub mod external;
pub mod external_env;
mod gepa;
mod gepa_family;
mod knobs;
mod minibatch;
mod noop;
mod priority_search;
mod textgrad;
mod ucb_search;

pub use core::{
    Counters, Ctx, EvalSpec, JobInfo, Monitor, PoolEntry, ProposalSpec, TrainResult,
    agent_transcripts,
};
pub use knobs::{KnobError, Knobs};

use crate::registry::TrainerPreset;
use crate::stop::Stopped;
use crate::vocab::Kwargs;

/// A trainer with its knobs read and checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Algorithm {
    /// OpenTrace PrioritySearch, its variants (POLCA, StreamingPrioritySearch,
    /// ParetobasedPS) and its classical presets.
    PrioritySearch(priority_search::Settings),
    /// Upstream gepa-ai GEPA.
    Gepa(gepa::Settings),
    /// OpenTrace GEPA-Base, GEPA-UCB or GEPA-Beam.
    GepaFamily(gepa_family::Settings),
    /// BeamsearchAlgorithm or BeamsearchHistoryAlgorithm.
    Beamsearch(beamsearch::Settings),
    /// TextGradTrainer.
    TextGrad(textgrad::Settings),
    /// UCBSearchAlgorithm.
    UcbSearch(ucb_search::Settings),
    /// MinibatchAlgorithm or BasicSearch.
    Minibatch(minibatch::Settings),
    /// AggregatedUpdate: per-example updates merged by an aggregator call.
    AggregatedUpdate(aggregated_update::Settings),
    /// The NoOp baseline.
    NoOp,
    /// Rescore: the starting parameters, kept (`score`, `rescore`).
    Fixed,
    /// An optimizer run as a child process (DSPy, the `gepa` package, a user's own).
    External(external::Settings),
}

impl Algorithm {
    /// The algorithm a preset names, with the job's knobs; a bad knob is an error that
    /// names the trainer and the knob.
    pub fn from_preset(preset: &TrainerPreset, resolved: &Kwargs) -> Result<Self, KnobError> {
        let k = Knobs::new(preset, resolved);
        Ok(match preset.algorithm.as_str() {
            "priority_search" => Self::PrioritySearch(priority_search::Settings::read(&k)?),
            algorithm @ ("polca"
            | "streaming_priority_search"
            | "pareto_priority_search"
            | "ps_regressor"
            | "ps_beam") => {
                Self::PrioritySearch(priority_search::Settings::read_variant(algorithm, &k)?)
            }
            "gepa" => Self::Gepa(gepa::Settings::read(&k)?),
            "gepa_base" => {
                Self::GepaFamily(gepa_family::Settings::read(gepa_family::Variant::Base, &k)?)
            }
            "gepa_ucb" => {
                Self::GepaFamily(gepa_family::Settings::read(gepa_family::Variant::Ucb, &k)?)
            }
            "gepa_beam" => {
                Self::GepaFamily(gepa_family::Settings::read(gepa_family::Variant::Beam, &k)?)
            }
            "beamsearch" => Self::Beamsearch(beamsearch::Settings::read(false, &k)?),
            "beamsearch_history" => Self::Beamsearch(beamsearch::Settings::read(true, &k)?),
            "ucb_search" => Self::UcbSearch(ucb_search::Settings::read(&k)?),
            "textgrad" => Self::TextGrad(textgrad::Settings::read(&k)?),
            "minibatch" => Self::Minibatch(minibatch::Settings::read(false, &k)?),
            "basic_search" => Self::Minibatch(minibatch::Settings::read(true, &k)?),
            "aggregated_update" => Self::AggregatedUpdate(aggregated_update::Settings::read(&k)?),
            "noop" => Self::NoOp,
            "fixed" => Self::Fixed,
            "external" => Self::External(external::Settings::read(preset, &k)?),
            other => {
                return Err(KnobError::UnknownAlgorithm {
                    trainer: preset.id.clone(),
                    algorithm: other.to_string(),
                });
            }
        })
    }

    /// Run to the end, or until the job must stop (`Err`: why, and what was spent).
    pub fn run(&self, mut ctx: Ctx<'_, '_>) -> Result<TrainResult, Stopped> {
        let finish = match self {
            Self::PrioritySearch(s) => priority_search::run(s, &mut ctx),
            Self::Gepa(s) => gepa::run(s, &mut ctx),
            Self::GepaFamily(s) => gepa_family::run(s, &mut ctx),
            Self::Beamsearch(s) => beamsearch::run(s, &mut ctx),
            Self::UcbSearch(s) => ucb_search::run(s, &mut ctx),
            Self::TextGrad(s) => textgrad::run(s, &mut ctx),
            Self::Minibatch(s) => minibatch::run(s, &mut ctx),
            Self::AggregatedUpdate(s) => aggregated_update::run(s, &mut ctx),
            Self::NoOp => noop::run(&mut ctx),
            Self::Fixed => noop::keep(&mut ctx),
            Self::External(s) => external::run(s, &mut ctx),
        }?;
        Ok(ctx.finish(finish))
    }
}

#[cfg(test)]
mod tests;
