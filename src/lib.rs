//! trace-bench: benchmark LLM-as-optimizer algorithms.
//!
//! A YAML config names tasks, trainers with hyper-parameter variants, and seeds. Data
//! flows one way:
//!
//! ```text
//! config ─► spec (checked Config) ─► matrix (Jobs with SHA-256 ids) ─► runner
//!        ─► typed events ─► sinks (job files, progress) ─► files ─► results (csv/json)
//! ```
//!
//! * [`config`] reads YAML exactly as the Python reference does, with located errors.
//! * [`matrix`] expands jobs and computes the reference-compatible ids.
//! * [`registry`] holds the embedded tasks and trainer presets.
//! * [`task`], [`trainer`], [`optimizer`], [`llm`] are what a job is made of.
//! * [`runner`] plans run directories and executes jobs in a worker pool; [`stop`] is how
//!   a running job is told to stop (its deadline, the user's Ctrl-C).
//! * [`events`] is the only channel from the runner to its sinks.
//! * [`artifacts`] names every path and writes files atomically; [`results`] rebuilds the
//!   run-level files from job directories; [`provenance`] records git, environment and
//!   machine; [`tb`] writes TensorBoard event files.
//! * [`stats`] computes statistics over seeds (seeded bootstrap intervals); [`analysis`]
//!   reads finished run directories back: `compare` (the regression gate) and the HTML
//!   report.
//! * [`cli`] is the command line; `main.rs` only calls it.

pub mod analysis;
pub mod artifacts;
pub mod backend;
pub mod cli;
pub mod config;
pub mod events;
pub mod llm;
pub mod loopback;
pub mod matrix;
pub mod mlflow;
pub mod optimizer;
pub mod par;
pub mod provenance;
pub mod registry;
pub mod results;
pub mod rng;
pub mod runner;
pub mod significance;
pub mod spec;
pub mod stats;
pub mod stop;
pub mod task;
pub mod tb;
pub mod trainer;
pub mod ui;
pub mod vocab;
