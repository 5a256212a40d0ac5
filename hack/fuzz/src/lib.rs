//! The operator's `src/chain` module, compiled on its own for fuzzing.
#[path = "../../../src/chain/mod.rs"]
pub mod chain;
