//! Besu's formats and rules, as the simulator needs them, implemented here from Besu's
//! source and tests.
//!
//! The simulator is the test world the operator is checked against, so it shares no code
//! with the operator crate: every rule below was written from Hyperledger Besu
//! (hyperledger/besu @ 3fd224e2, see `../../shared/besu-facts.md`) and is pinned by a
//! unit test holding literal values from Besu's own tests, fixtures or documentation.
//!
//! - [`types`]: [`Address`], [`Consensus`], [`Vote`].
//! - [`quorum`]: [`commit_quorum`] (`BftHelpers`) and [`vote_threshold`] (`VoteTally`).
//! - [`rlp`]: the strict RLP reader under extraData (`BytesValueRLPInput`).
//! - [`extradata`]: QBFT and IBFT 2.0 extraData (`QbftExtraDataCodec`, `IbftExtraDataCodec`).
//! - [`key`]: node keys, public keys and addresses (`KeyPairUtil`, `Address.extract`).
//! - [`fingerprint`]: the genesis fingerprint the operator publishes as `genesisChecksum`.

pub mod extradata;
pub mod fingerprint;
pub mod key;
pub mod quorum;
pub mod rlp;
pub mod types;

pub use fingerprint::genesis_sha256;
pub use key::{NodeKey, PublicKey, recover_prehash};
pub use quorum::{commit_quorum, vote_threshold};
pub use types::{Address, Consensus, Vote, VoteKind};
