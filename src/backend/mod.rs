//! What answers a job's LLM calls: the seeded stub proposer (offline runs) or the real
//! client, built per job by [`LlmFactory`]. A layer above `llm`, `optimizer` and `task`,
//! which it joins, so that none of those needs the others' types.

mod factory;
pub mod library_stub;
pub mod stub;

pub use factory::{LlmFactory, StubFlavor};
