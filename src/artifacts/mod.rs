//! The run directory on disk: the layout (every path named once), atomic writes,
//! crash-tolerant JSONL reading, the manifest, YAML output, and the sink that writes each
//! job's files from its events.

pub mod atomic;
pub mod jsonl;
pub mod layout;
pub mod yaml_out;
