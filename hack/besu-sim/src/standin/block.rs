//! Blocks of the stand-in's chain: a BFT header with Besu's extraData, a stand-in hash
//! and commit seals.
//!
//! The extraData is encoded exactly as Besu's codecs write it (besu-facts §1;
//! `QbftExtraDataCodec.encode`, `IbftExtraDataCodec.encode`) and is read back by
//! [`crate::besu::extradata::decode`] in the tests. The header is not Besu's (there is no
//! state, no transactions): the block hash is keccak256 of
//! `RLP([parentHash, coinbase, number, timestamp, extraData without seals])`, which, like
//! Besu's `BftBlockHashing.calculateHashOfBftBlockOnchain`, covers the round but not the
//! commit seals. A commit seal is the validator's recoverable signature of that hash.

use serde::{Deserialize, Serialize};
use sha3::{Digest, Keccak256};

use crate::besu::{Address, Consensus, NodeKey, recover_prehash};

/// 32 bytes, shown as `0x` + 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct H256(pub [u8; 32]);

impl std::fmt::Display for H256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl std::fmt::Debug for H256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl H256 {
    /// `0x1234…cdef`, as Besu abbreviates hashes in its block logs.
    pub fn short(&self) -> String {
        let h = hex::encode(self.0);
        format!("0x{}…{}", &h[..4], &h[60..])
    }
}

impl std::str::FromStr for H256 {
    type Err = String;
    fn from_str(s: &str) -> Result<H256, String> {
        let digits = s.strip_prefix("0x").unwrap_or(s);
        let mut out = [0u8; 32];
        hex::decode_to_slice(digits, &mut out).map_err(|_| format!("not a 32-byte hash: {s}"))?;
        Ok(H256(out))
    }
}

impl Serialize for H256 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for H256 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<H256, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

pub fn keccak(data: &[u8]) -> H256 {
    H256(Keccak256::digest(data).into())
}

/// A validator vote in a header: subject and add (true) or drop (false).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderVote {
    pub subject: Address,
    pub add: bool,
}

/// A block. Block 0 is the genesis block: its `validators` are the genesis extraData's,
/// in extraData order, and its hash is [`genesis_hash`]'s.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub number: u64,
    pub parent_hash: H256,
    /// Header timestamp, seconds.
    pub timestamp: u64,
    /// The coinbase: the validator that first proposed this block (Besu's
    /// `BftBlockInterface.getProposerOfBlock`); zero for genesis.
    pub proposer: Address,
    pub round: u32,
    /// The validators in the header's extraData: sorted ascending after genesis
    /// (`BftValidatorsValidationRule`), the set that must seal this block.
    pub validators: Vec<Address>,
    pub vote: Option<HeaderVote>,
    /// Commit seals, 65 bytes each, hex.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seals: Vec<String>,
    /// Only block 0: the genesis hash (not computed from the fields above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genesis_hash: Option<H256>,
}

/// A minimal RLP writer (Yellow Paper appendix B), enough for extraData and the header.
pub mod rlp {
    fn length_prefix(out: &mut Vec<u8>, short_base: u8, long_base: u8, len: usize) {
        if len <= 55 {
            out.push(short_base + len as u8);
        } else {
            let be = (len as u64).to_be_bytes();
            let digits: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
            out.push(long_base + digits.len() as u8);
            out.extend(digits);
        }
    }

    pub fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        if b.len() == 1 && b[0] < 0x80 {
            out.push(b[0]);
        } else {
            length_prefix(out, 0x80, 0xb7, b.len());
            out.extend_from_slice(b);
        }
    }

    /// A scalar without leading zero bytes (0 is the empty string).
    pub fn uint(out: &mut Vec<u8>, n: u64) {
        let be = n.to_be_bytes();
        let digits: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
        bytes(out, &digits);
    }

    pub fn list(out: &mut Vec<u8>, payload: &[u8]) {
        length_prefix(out, 0xc0, 0xf7, payload.len());
        out.extend_from_slice(payload);
    }
}

impl Block {
    /// Besu's extraData for this header. `seals: false` is `encodeWithoutCommitSeals`:
    /// QBFT keeps an empty seal list, IBFT 2.0 drops the item.
    pub fn extra_data(&self, consensus: Consensus, seals: bool) -> Vec<u8> {
        let mut payload = Vec::new();
        rlp::bytes(&mut payload, &[0u8; 32]);
        let mut addrs = Vec::new();
        for v in &self.validators {
            rlp::bytes(&mut addrs, &v.0);
        }
        rlp::list(&mut payload, &addrs);
        match (&self.vote, consensus) {
            // QBFT: no vote = empty list; IBFT: empty string (`writeNull`).
            (None, Consensus::Qbft) => rlp::list(&mut payload, &[]),
            (None, Consensus::Ibft2) => rlp::bytes(&mut payload, &[]),
            (Some(v), _) => {
                let mut vote = Vec::new();
                rlp::bytes(&mut vote, &v.subject.0);
                match (v.add, consensus) {
                    (true, _) => rlp::bytes(&mut vote, &[0xff]),
                    // QBFT writes a drop as `writeNull`, IBFT as the byte 0x00.
                    (false, Consensus::Qbft) => rlp::bytes(&mut vote, &[]),
                    (false, Consensus::Ibft2) => rlp::bytes(&mut vote, &[0x00]),
                }
                rlp::list(&mut payload, &vote);
            }
        }
        match consensus {
            Consensus::Qbft => rlp::uint(&mut payload, u64::from(self.round)),
            Consensus::Ibft2 => rlp::bytes(&mut payload, &self.round.to_be_bytes()),
        }
        let seal_bytes: Vec<Vec<u8>> = self
            .seals
            .iter()
            .filter_map(|s| hex::decode(s.strip_prefix("0x").unwrap_or(s)).ok())
            .collect();
        if seals {
            let mut list = Vec::new();
            for s in &seal_bytes {
                rlp::bytes(&mut list, s);
            }
            rlp::list(&mut payload, &list);
        } else if consensus == Consensus::Qbft {
            rlp::list(&mut payload, &[]);
        }
        let mut out = Vec::new();
        rlp::list(&mut out, &payload);
        out
    }

    /// The block hash (see the module docs); for block 0 the genesis hash.
    pub fn hash(&self, consensus: Consensus) -> H256 {
        if let Some(h) = self.genesis_hash {
            return h;
        }
        let mut payload = Vec::new();
        rlp::bytes(&mut payload, &self.parent_hash.0);
        rlp::bytes(&mut payload, &self.proposer.0);
        rlp::uint(&mut payload, self.number);
        rlp::uint(&mut payload, self.timestamp);
        rlp::bytes(&mut payload, &self.extra_data(consensus, false));
        let mut out = Vec::new();
        rlp::list(&mut out, &payload);
        keccak(&out)
    }

    /// The same block content in another round (Besu's `replaceRoundInBlock`, used when
    /// a prepared block is proposed again after a round change).
    pub fn with_round(&self, round: u32) -> Block {
        Block {
            round,
            seals: Vec::new(),
            ..self.clone()
        }
    }

    /// The validators whose seals are on this block (distinct, recovered from the seals).
    pub fn seal_signers(&self, consensus: Consensus) -> Vec<Address> {
        let hash = self.hash(consensus);
        let mut out: Vec<Address> = self
            .seals
            .iter()
            .filter_map(|s| hex::decode(s.strip_prefix("0x").unwrap_or(s)).ok())
            .filter_map(|b| recover_prehash(&hash.0, &b))
            .map(|pk| pk.address())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// A commit seal: `key`'s signature of the block hash, hex.
pub fn commit_seal(key: &NodeKey, hash: &H256) -> String {
    format!("0x{}", hex::encode(key.sign_prehash(&hash.0)))
}

/// The signer of a commit seal over `hash`.
pub fn seal_signer(hash: &H256, seal: &str) -> Option<Address> {
    let bytes = hex::decode(seal.strip_prefix("0x").unwrap_or(seal)).ok()?;
    recover_prehash(&hash.0, &bytes).map(|pk| pk.address())
}

/// The genesis block's hash: keccak256 of the genesis document in a canonical form (keys
/// lower-cased, as Besu reads them case-insensitively, and sorted; no whitespace). Two
/// nodes share a chain exactly when their genesis documents say the same. Not Besu's
/// genesis header hash (the stand-in has no state root).
pub fn genesis_hash(genesis: &serde_json::Value) -> H256 {
    fn canon(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(m) => {
                let mut entries: Vec<(String, &serde_json::Value)> =
                    m.iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(k.clone()).to_string());
                    out.push(':');
                    canon(v, out);
                }
                out.push('}');
            }
            serde_json::Value::Array(a) => {
                out.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canon(v, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::new();
    canon(genesis, &mut text);
    keccak(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::besu::extradata::{self, test_support::encode_genesis};
    use crate::besu::{Vote, VoteKind};

    fn addr(n: u8) -> Address {
        let mut a = [0u8; 20];
        a[19] = n;
        Address(a)
    }

    fn block(vote: Option<HeaderVote>, round: u32) -> Block {
        Block {
            number: 5,
            parent_hash: H256([1; 32]),
            timestamp: 1_700_000_000,
            proposer: addr(1),
            round,
            validators: vec![addr(1), addr(2), addr(3), addr(4)],
            vote,
            seals: vec![],
            genesis_hash: None,
        }
    }

    /// With no vote, round 0 and no seals the encoding is Besu's genesis encoding
    /// (`encodeFromAddresses`), pinned against Besu's vectors in `besu::extradata`.
    #[test]
    fn extra_data_matches_besu_genesis_encoding() {
        for consensus in [Consensus::Qbft, Consensus::Ibft2] {
            let b = block(None, 0);
            assert_eq!(
                b.extra_data(consensus, true),
                encode_genesis(consensus, &b.validators)
            );
        }
    }

    /// Votes, rounds and seals read back through the strict decoder, per protocol.
    #[test]
    fn extra_data_round_trips_through_the_decoder() {
        let key = NodeKey::parse_key_file(
            "8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63",
        )
        .unwrap();
        for consensus in [Consensus::Qbft, Consensus::Ibft2] {
            for (add, round) in [(true, 0u32), (false, 0xfedcba)] {
                let mut b = block(
                    Some(HeaderVote {
                        subject: addr(9),
                        add,
                    }),
                    round,
                );
                let h = b.hash(consensus);
                b.seals.push(commit_seal(&key, &h));
                let d = extradata::decode(consensus, &b.extra_data(consensus, true)).unwrap();
                assert_eq!(d.validators, b.validators);
                assert_eq!(d.round, round);
                assert_eq!(d.seals, 1);
                assert_eq!(
                    d.vote,
                    Some(Vote {
                        recipient: addr(9),
                        kind: if add { VoteKind::Add } else { VoteKind::Drop }
                    })
                );
                // Seals are not part of the hash; the signer is recovered.
                assert_eq!(b.hash(consensus), h);
                assert_eq!(b.seal_signers(consensus), vec![key.address()]);
                assert_eq!(seal_signer(&h, &b.seals[0]), Some(key.address()));
            }
        }
        // IBFT without seals omits the seal list; QBFT keeps an empty one.
        let b = block(None, 0);
        let q = b.extra_data(Consensus::Qbft, false);
        assert!(q.ends_with(&[0xc0, 0x80, 0xc0]));
        let i = b.extra_data(Consensus::Ibft2, false);
        assert!(i.ends_with(&[0x80, 0x84, 0, 0, 0, 0]));
    }

    #[test]
    fn the_round_changes_the_hash() {
        let b = block(None, 0);
        assert_ne!(
            b.hash(Consensus::Qbft),
            b.with_round(1).hash(Consensus::Qbft)
        );
    }

    #[test]
    fn genesis_hash_ignores_key_case_order_and_whitespace() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"config":{"chainId":1},"extraData":"0x00"}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str("{ \"EXTRADATA\": \"0x00\",\n \"Config\": {\"chainid\": 1} }")
                .unwrap();
        let c: serde_json::Value =
            serde_json::from_str(r#"{"config":{"chainId":2},"extraData":"0x00"}"#).unwrap();
        assert_eq!(genesis_hash(&a), genesis_hash(&b));
        assert_ne!(genesis_hash(&a), genesis_hash(&c));
    }
}
