//! QBFT and IBFT 2.0 block-header `extraData`.
//!
//! Both protocols encode `RLP([vanity (32 bytes), [validator, ...], vote, round, [seal, ...]])`
//! (hyperledger/besu `consensus/qbft/.../QbftExtraDataCodec.java`,
//! `consensus/ibft/.../IbftExtraDataCodec.java`). They differ only in:
//!
//! | field      | QBFT                                  | IBFT 2.0                         |
//! |------------|---------------------------------------|----------------------------------|
//! | no vote    | empty list `0xc0`                     | empty string `0x80`              |
//! | vote       | `[addr, 0xff]` ADD, `[addr, ""]` DROP | `[addr, 0xff]` ADD, `[addr, 0x00]` DROP |
//! | round      | minimal scalar (`writeIntScalar`)     | exactly 4 bytes (`writeInt`)     |
//! | seals      | list of 65-byte `r‖s‖recId`           | same                             |
//!
//! The decoder accepts exactly the canonical encoding: for every input it
//! accepts, encoding the result gives the input back byte for byte. Besu's
//! decoders reject everything this decoder rejects except two leniencies we
//! deliberately do not copy, because Besu's encoders never produce them:
//! QBFT's `decodeRaw` ignores extra items after the seal list
//! (`leaveListLenient`) and reads a DROP vote written as `0x00`. The vanity
//! must be 32 bytes, which Besu checks in `BftVanityDataValidationRule` rather
//! than in the codec. Seals are checked as Besu's `SECPSignature.decode` does:
//! 65 bytes, `1 <= r, s < n`, `recId` 0 or 1.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use super::key::Address;
use super::rlp::{self, Item, RlpError};

/// The BFT consensus protocols Besu 26.x can run. Serialized as `"qbft"` /
/// `"ibft2"`, which are also the genesis `config` keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consensus {
    Qbft,
    Ibft2,
}

impl Consensus {
    /// The key of this protocol's options object under genesis `config`.
    pub fn genesis_key(self) -> &'static str {
        match self {
            Consensus::Qbft => "qbft",
            Consensus::Ibft2 => "ibft2",
        }
    }
}

impl From<besu_operator_api::ConsensusProtocol> for Consensus {
    fn from(protocol: besu_operator_api::ConsensusProtocol) -> Self {
        match protocol {
            besu_operator_api::ConsensusProtocol::Qbft => Consensus::Qbft,
            besu_operator_api::ConsensusProtocol::Ibft2 => Consensus::Ibft2,
        }
    }
}

impl fmt::Display for Consensus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.genesis_key())
    }
}

/// Why a consensus name was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConsensusError {
    #[error(
        "consensus \"clique\" is not supported: Besu 26.3.0 removed Clique block production \
         (it can no longer start or mine a Clique network); use qbft"
    )]
    Clique,
    #[error(
        "consensus \"ibft\" (IBFT 1.0) is not supported: Besu only reads IBFT 1.0 chains to migrate \
         them to QBFT; use qbft (or ibft2 for an existing IBFT 2.0 network)"
    )]
    Ibft1,
    #[error("unknown consensus {0:?}: expected qbft or ibft2")]
    Unknown(String),
}

impl FromStr for Consensus {
    type Err = ConsensusError;
    /// Accepts `qbft` and `ibft2` in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "qbft" => Ok(Consensus::Qbft),
            "ibft2" => Ok(Consensus::Ibft2),
            "clique" => Err(ConsensusError::Clique),
            "ibft" => Err(ConsensusError::Ibft1),
            _ => Err(ConsensusError::Unknown(s.to_owned())),
        }
    }
}

/// Whether a vote adds or removes its recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VoteKind {
    Add,
    Drop,
}

/// A validator vote carried in a block header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Vote {
    pub recipient: Address,
    pub kind: VoteKind,
}

/// Decoded BFT extraData.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BftExtraData {
    pub vanity: [u8; 32],
    pub validators: Vec<Address>,
    pub vote: Option<Vote>,
    pub round: u32,
    /// Commit seals, each `r (32) ‖ s (32) ‖ recId (1)`.
    pub seals: Vec<[u8; 65]>,
}

/// Why extraData was refused. Decoding reports the first problem found.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ExtraDataError {
    #[error("extraData is empty")]
    Empty,
    #[error("extraData is not valid RLP: {0}")]
    Rlp(#[from] RlpError),
    #[error("extraData is not an RLP list")]
    NotAList,
    #[error("extraData has {found} items, expected 5 (vanity, validators, vote, round, seals)")]
    ItemCount { found: usize },
    #[error("extraData {field}: {reason}")]
    Field { field: &'static str, reason: String },
    #[error("extraData vote type byte 0x{byte:02x} is neither ADD (0xff) nor DROP")]
    VoteType { byte: u8 },
    #[error("extraData round: {0}")]
    Round(String),
    #[error("extraData seal {index}: {reason}")]
    Seal { index: usize, reason: String },
}

fn field(field: &'static str, reason: impl Into<String>) -> ExtraDataError {
    ExtraDataError::Field {
        field,
        reason: reason.into(),
    }
}

/// The secp256k1 group order n, big-endian.
const CURVE_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

const ADD_BYTE: u8 = 0xff;
const IBFT_DROP_BYTE: u8 = 0x00;

/// The genesis extraData for `validators`, in the order given (as `besu rlp
/// encode` and `generate-blockchain-config` do): zero vanity, no vote, round
/// 0, no seals. QBFT ends `…c080c0`, IBFT 2.0 ends `…808400000000c0`.
pub fn encode_genesis_extra_data(consensus: Consensus, validators: &[Address]) -> Vec<u8> {
    BftExtraData::genesis(validators.to_vec()).encode(consensus)
}

impl BftExtraData {
    /// Genesis extraData: zero vanity, no vote, round 0, no seals.
    pub fn genesis(validators: Vec<Address>) -> BftExtraData {
        BftExtraData {
            vanity: [0; 32],
            validators,
            vote: None,
            round: 0,
            seals: Vec::new(),
        }
    }

    /// Encodes as Besu's codec for `consensus` does (`encode`, with seals).
    pub fn encode(&self, consensus: Consensus) -> Vec<u8> {
        let mut s = ::rlp::RlpStream::new_list(5);
        s.append(&&self.vanity[..]);

        s.begin_list(self.validators.len());
        for v in &self.validators {
            s.append(&&v.as_bytes()[..]);
        }

        match (self.vote, consensus) {
            (None, Consensus::Qbft) => {
                s.begin_list(0);
            }
            (None, Consensus::Ibft2) => {
                s.append_empty_data();
            }
            (Some(vote), _) => {
                s.begin_list(2);
                s.append(&&vote.recipient.as_bytes()[..]);
                match (vote.kind, consensus) {
                    (VoteKind::Add, _) => s.append(&&[ADD_BYTE][..]),
                    (VoteKind::Drop, Consensus::Qbft) => s.append_empty_data(),
                    (VoteKind::Drop, Consensus::Ibft2) => s.append(&&[IBFT_DROP_BYTE][..]),
                };
            }
        }

        let round = self.round.to_be_bytes();
        match consensus {
            // QBFT writes the round as a scalar (no leading zeros), IBFT 2.0 as 4 bytes.
            Consensus::Qbft => {
                let skip = round.iter().take_while(|&&b| b == 0).count();
                s.append(&&round[skip..]);
            }
            Consensus::Ibft2 => {
                s.append(&&round[..]);
            }
        }

        s.begin_list(self.seals.len());
        for seal in &self.seals {
            s.append(&&seal[..]);
        }
        s.out().to_vec()
    }

    /// Decodes strictly (see the module docs). Never panics.
    pub fn decode(consensus: Consensus, input: &[u8]) -> Result<BftExtraData, ExtraDataError> {
        if input.is_empty() {
            return Err(ExtraDataError::Empty);
        }
        let Item::List(items) = rlp::decode(input)? else {
            return Err(ExtraDataError::NotAList);
        };
        let [vanity, validators, vote, round, seals] = items.as_slice() else {
            return Err(ExtraDataError::ItemCount { found: items.len() });
        };

        let vanity = match vanity {
            Item::Bytes(b) => <[u8; 32]>::try_from(*b)
                .map_err(|_| field("vanity", format!("must be 32 bytes, found {}", b.len())))?,
            Item::List(_) => return Err(field("vanity", "must be a byte string, found a list")),
        };

        let Item::List(validator_items) = validators else {
            return Err(field("validators", "must be a list"));
        };
        let validators = validator_items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                decode_address(item).map_err(|r| field("validators", format!("entry {i} {r}")))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let vote = decode_vote(consensus, vote)?;
        let round = decode_round(consensus, round)?;

        let Item::List(seal_items) = seals else {
            return Err(field("seals", "must be a list"));
        };
        let seals = seal_items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                decode_seal(item).map_err(|reason| ExtraDataError::Seal { index, reason })
            })
            .collect::<Result<Vec<_>, _>>()?;

        Ok(BftExtraData {
            vanity,
            validators,
            vote,
            round,
            seals,
        })
    }
}

fn decode_address(item: &Item<'_>) -> Result<Address, String> {
    match item {
        Item::Bytes(b) => <[u8; 20]>::try_from(*b)
            .map(Address)
            .map_err(|_| format!("must be a 20-byte address, found {} bytes", b.len())),
        Item::List(_) => Err("must be a 20-byte address, found a list".into()),
    }
}

fn decode_vote(consensus: Consensus, item: &Item<'_>) -> Result<Option<Vote>, ExtraDataError> {
    match (consensus, item) {
        (Consensus::Qbft, Item::List(v)) if v.is_empty() => return Ok(None),
        (Consensus::Ibft2, Item::Bytes([])) => return Ok(None),
        _ => {}
    }
    let no_vote = match consensus {
        Consensus::Qbft => "an empty list (0xc0)",
        Consensus::Ibft2 => "an empty string (0x80)",
    };
    let Item::List(parts) = item else {
        return Err(field(
            "vote",
            format!("must be {no_vote} or a [recipient, type] list"),
        ));
    };
    let [recipient, kind] = parts.as_slice() else {
        return Err(field(
            "vote",
            format!(
                "must be a [recipient, type] list, found {} items",
                parts.len()
            ),
        ));
    };
    let recipient =
        decode_address(recipient).map_err(|r| field("vote", format!("recipient {r}")))?;
    let Item::Bytes(kind) = kind else {
        return Err(field("vote", "type must be a byte, found a list"));
    };
    let kind = match (consensus, *kind) {
        (_, [ADD_BYTE]) => VoteKind::Add,
        (Consensus::Qbft, []) => VoteKind::Drop,
        (Consensus::Ibft2, [IBFT_DROP_BYTE]) => VoteKind::Drop,
        (Consensus::Qbft, [IBFT_DROP_BYTE]) => {
            return Err(field(
                "vote",
                "QBFT writes DROP as an empty string (0x80), not 0x00",
            ));
        }
        (_, [byte]) => return Err(ExtraDataError::VoteType { byte: *byte }),
        (_, other) => {
            return Err(field(
                "vote",
                format!("type must be one byte, found {} bytes", other.len()),
            ));
        }
    };
    Ok(Some(Vote { recipient, kind }))
}

fn decode_round(consensus: Consensus, item: &Item<'_>) -> Result<u32, ExtraDataError> {
    let Item::Bytes(b) = item else {
        return Err(ExtraDataError::Round(
            "must be a byte string, found a list".into(),
        ));
    };
    match consensus {
        Consensus::Qbft => {
            if b.len() > 4 {
                return Err(ExtraDataError::Round(format!(
                    "QBFT round is a scalar of at most 4 bytes, found {}",
                    b.len()
                )));
            }
            if b.first() == Some(&0) {
                return Err(ExtraDataError::Round(
                    "QBFT round is a minimal scalar and must not have a leading zero byte".into(),
                ));
            }
            Ok(b.iter().fold(0u32, |acc, &x| (acc << 8) | u32::from(x)))
        }
        Consensus::Ibft2 => {
            let fixed = <[u8; 4]>::try_from(*b).map_err(|_| {
                ExtraDataError::Round(format!(
                    "IBFT 2.0 round must be exactly 4 bytes, found {}",
                    b.len()
                ))
            })?;
            Ok(u32::from_be_bytes(fixed))
        }
    }
}

fn decode_seal(item: &Item<'_>) -> Result<[u8; 65], String> {
    let Item::Bytes(b) = item else {
        return Err("must be a 65-byte signature, found a list".into());
    };
    let seal = <[u8; 65]>::try_from(*b)
        .map_err(|_| format!("must be a 65-byte signature, found {} bytes", b.len()))?;
    for (name, part) in [("r", &seal[..32]), ("s", &seal[32..64])] {
        if part.iter().all(|&x| x == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        if part >= &CURVE_ORDER[..] {
            return Err(format!("{name} must be below the secp256k1 group order"));
        }
    }
    if seal[64] > 1 {
        return Err(format!("recId must be 0 or 1, found {}", seal[64]));
    }
    Ok(seal)
}

#[cfg(test)]
mod tests;
