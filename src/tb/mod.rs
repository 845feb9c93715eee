//! TensorBoard event-file output, with no dependencies.
//!
//! An event file is a sequence of TFRecords (`u64le length`,
//! `u32le masked CRC-32C of the length`, data, `u32le masked CRC-32C of the
//! data`), each holding one serialized `tensorboard.Event` protobuf. The first
//! record carries `file_version = "brain.Event:2"`.
//!
//! * Scalars are written as legacy `Summary.Value.simple_value` (f32). The
//!   fast Rust loader (`--load_fast=true`, the default) drops `DT_DOUBLE`
//!   tensor scalars, so `simple_value` is the format every loader reads.
//! * Text is written as TF2 `tf.summary.text` writes it: a scalar `DT_STRING`
//!   tensor with `plugin_name: "text"` metadata.
//!
//! Use one [`EventFileWriter`] per run directory; TensorBoard names a run by
//! the directory relative to `--logdir`.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use trace_bench::tb::EventFileWriter;
//! let mut w = EventFileWriter::create(std::path::Path::new("runs/job-0"), 1.7e9)?;
//! w.add_scalar("train/loss", 1, 0.5, 1.7e9 + 1.0)?;
//! w.add_text("config", 0, "lr = 0.1", 1.7e9 + 1.0)?;
//! w.close(true)?; // flushed and fsynced
//! # Ok(())
//! # }
//! ```

pub mod crc32c;
pub mod proto;
pub mod sink;
mod writer;

pub use sink::TbSink;
pub use writer::{EventFileWriter, write_record};
