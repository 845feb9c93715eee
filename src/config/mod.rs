//! Config: YAML with locations → `--set` overrides → typed decode with the reference's
//! aliases and defaults → semantic checks against the registry.

pub mod check;
pub mod diag;
pub mod load;
pub mod model;
pub mod overrides;
pub mod yaml;

pub use diag::{Diagnostic, Diagnostics, Severity};
pub use load::{Loaded, Source, load};
pub use model::{Config, Kwargs, Mode, ResumeMode};
