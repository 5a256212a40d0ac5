//! The library behind the two binaries of this crate:
//! - `besu-sim`: one process simulating every Besu pod of a fake (kwok) cluster
//!   (`src/main.rs`);
//! - `besu-standin`: one process per Besu pod, started exactly as the operator starts
//!   Besu (`src/bin/besu-standin.rs`, code in [`standin`]).
//!
//! Both share Besu's formats and rules ([`besu`], [`chain`], [`genesis`]) and the node
//! surface ([`node`], [`rpc`]); none of it comes from the operator crates.

pub mod besu;
pub mod chain;
pub mod genesis;
pub mod node;
pub mod rpc;
pub mod standin;
