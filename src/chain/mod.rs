//! Node keys, enode URLs, BFT extraData and genesis: pure functions, no Kubernetes.
//!
//! - [`key`]: [`NodeKey`] (private, redacted in `Debug`), [`PublicKey`] (node id), [`Address`].
//! - [`enode`]: [`enode_url`] and [`parse_enode`].
//! - [`extradata`]: [`Consensus`], [`BftExtraData`], [`encode_genesis_extra_data`].
//! - [`genesis`]: [`GenesisSpec`], [`genesis_json`], [`genesis_sha256`], [`decode_genesis_validators`].
//! - [`quorum`]: [`commit_quorum`], [`fault_tolerance`], [`vote_threshold`].
//! - [`rlp`]: the strict RLP codec underneath extraData.

/// Blocks a node may trail the head and still count as in sync: the figure the node's
/// readiness probe gives Besu's `/readiness?maxBlocksBehind=` (render::node), and the
/// one the rollout counts a node in sync by (controller::network).
pub const IN_SYNC_BLOCKS: u64 = 2;

pub mod enode;
pub mod extradata;
pub mod genesis;
mod hexfmt;
pub mod key;
pub mod quorum;
pub mod rlp;

pub use enode::{Enode, EnodeError, EnodeHost, enode_url, parse_enode};
pub use extradata::{
    BftExtraData, Consensus, ConsensusError, ExtraDataError, Vote, VoteKind,
    encode_genesis_extra_data,
};
pub use genesis::{
    GenesisAccount, GenesisError, GenesisSpec, decode_genesis_validators, genesis_json,
    genesis_sha256,
};
pub use key::{Address, AddressError, KeyError, NodeKey, PublicKey, PublicKeyError};
pub use quorum::{commit_quorum, fault_tolerance, vote_threshold};
