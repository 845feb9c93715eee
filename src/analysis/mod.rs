//! Reading finished run directories back for analysis: [`load`] the job rows (and step
//! histories), [`compare`] two runs into a regression gate, draw [`curves`] and render the
//! self-contained [`html`] report. Nothing here reruns a job or prints.

pub mod compare;
pub mod curves;
pub mod fair;
pub mod html;
pub mod load;
pub mod rescored;

pub use load::{LoadError, RunData, load_run};
