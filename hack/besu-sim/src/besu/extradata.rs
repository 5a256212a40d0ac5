//! QBFT and IBFT 2.0 block header extraData, as Besu decodes it.
//!
//! Both are `RLP([vanity, [validator...], vote, round, [seal...]])`; they differ in the
//! encoding of "no vote", of the round and in whether more items may follow
//! (besu-facts §1):
//!
//! | | QBFT (`QbftExtraDataCodec.decodeRaw`) | IBFT 2.0 (`IbftExtraDataCodec.decodeRaw`) |
//! |---|---|---|
//! | no vote | empty list `0xc0` | empty string `0x80` (`nextIsNull`) |
//! | vote | `[address, 0xff]` add, `[address, ""]` or `[address, 0x00]` drop | `[address, 0xff]` add, `[address, 0x00]` drop |
//! | round | scalar, at most 4 bytes, no leading zero (`readIntScalar`) | exactly 4 bytes (`readInt`) |
//! | after the seals | ignored (`leaveListLenient`) | refused (`leaveList`) |
//!
//! Validators are 20-byte strings (`Address.readFrom`), seals 65-byte strings
//! (`SECPSignature.decode`).

use std::fmt;

use super::rlp::{self, Item, RlpError};
use super::types::{Address, Consensus, Vote, VoteKind};

/// Decoded extraData (`BftExtraData`); seals are only counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BftExtraData {
    pub vanity: Vec<u8>,
    /// In the order the header lists them.
    pub validators: Vec<Address>,
    pub vote: Option<Vote>,
    pub round: u32,
    pub seals: usize,
}

/// Why extraData cannot be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtraDataError {
    /// "Invalid Bytes supplied - Bft Extra Data required."
    Empty,
    Rlp(RlpError),
    /// Well-formed RLP of the wrong shape.
    Shape(&'static str),
}

impl fmt::Display for ExtraDataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtraDataError::Empty => write!(f, "extraData is empty (BFT extraData required)"),
            ExtraDataError::Rlp(e) => write!(f, "extraData: {e}"),
            ExtraDataError::Shape(s) => write!(f, "extraData: {s}"),
        }
    }
}

impl std::error::Error for ExtraDataError {}

impl From<RlpError> for ExtraDataError {
    fn from(e: RlpError) -> ExtraDataError {
        ExtraDataError::Rlp(e)
    }
}

use ExtraDataError::Shape;

/// `Vote.ADD_BYTE_VALUE` and `Vote.DROP_BYTE_VALUE`.
const ADD_BYTE: u8 = 0xff;
const DROP_BYTE: u8 = 0x00;

/// `Address.readFrom`: exactly 20 bytes.
fn address(item: &Item) -> Result<Address, ExtraDataError> {
    let bytes = item.as_bytes().ok_or(Shape("an address is a list"))?;
    let array: [u8; 20] = bytes
        .try_into()
        .map_err(|_| Shape("an address must be 20 bytes"))?;
    Ok(Address(array))
}

/// `QbftExtraDataCodec.decodeVote` / `IbftExtraDataCodec.decodeVote`.
fn vote(consensus: Consensus, item: &Item) -> Result<Vote, ExtraDataError> {
    let fields = item.as_list().ok_or(Shape("the vote is not a list"))?;
    let [recipient, kind] = fields else {
        return Err(Shape("a vote has an address and a vote type"));
    };
    let recipient = address(recipient)?;
    let kind = match (consensus, kind) {
        // QBFT: `nextSize() == 0` (an empty string or list) is a drop.
        (Consensus::Qbft, Item::Bytes([])) => VoteKind::Drop,
        (Consensus::Qbft, Item::List(l)) if l.is_empty() => VoteKind::Drop,
        // `readByte`, then the byte must be ADD or DROP.
        (_, Item::Bytes([ADD_BYTE])) => VoteKind::Add,
        (_, Item::Bytes([DROP_BYTE])) => VoteKind::Drop,
        (_, Item::Bytes([_])) => {
            return Err(Shape("vote field was of an incorrect binary value"));
        }
        _ => return Err(Shape("the vote type must be one byte")),
    };
    Ok(Vote { recipient, kind })
}

/// QBFT's `readIntScalar`: at most 4 bytes, no leading zero byte (0 is the empty string).
fn int_scalar(item: &Item) -> Result<u32, ExtraDataError> {
    let bytes = item.as_bytes().ok_or(Shape("the round is a list"))?;
    if bytes.len() > 4 {
        return Err(Shape("the round has more than 4 bytes"));
    }
    if bytes.first() == Some(&0) {
        return Err(Shape("the round has leading zero bytes"));
    }
    Ok(bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

/// IBFT's `readInt`: exactly 4 bytes.
fn int4(item: &Item) -> Result<u32, ExtraDataError> {
    let bytes = item.as_bytes().ok_or(Shape("the round is a list"))?;
    let array: [u8; 4] = bytes
        .try_into()
        .map_err(|_| Shape("the round must be exactly 4 bytes"))?;
    Ok(u32::from_be_bytes(array))
}

/// Decodes extraData as `consensus`'s codec does (`decodeRaw`).
pub fn decode(consensus: Consensus, input: &[u8]) -> Result<BftExtraData, ExtraDataError> {
    if input.is_empty() {
        return Err(ExtraDataError::Empty);
    }
    let (root, _) = rlp::read(input)?;
    let items = root
        .as_list()
        .ok_or(Shape("extraData is not an RLP list"))?;
    let mut items = items.iter();
    let mut next = |what: &'static str| items.next().ok_or(Shape(what));

    let vanity = next("the vanity is missing")?
        .as_bytes()
        .ok_or(Shape("the vanity is a list"))?
        .to_vec();
    let validators = next("the validator list is missing")?
        .as_list()
        .ok_or(Shape("the validators are not a list"))?
        .iter()
        .map(address)
        .collect::<Result<Vec<_>, _>>()?;
    let vote_item = next("the vote is missing")?;
    let no_vote = match consensus {
        Consensus::Qbft => matches!(vote_item, Item::List(l) if l.is_empty()),
        Consensus::Ibft2 => matches!(vote_item, Item::Bytes([])),
    };
    let vote = if no_vote {
        None
    } else {
        Some(vote(consensus, vote_item)?)
    };
    let round_item = next("the round is missing")?;
    let round = match consensus {
        Consensus::Qbft => int_scalar(round_item)?,
        Consensus::Ibft2 => int4(round_item)?,
    };
    let seals = next("the seal list is missing")?
        .as_list()
        .ok_or(Shape("the seals are not a list"))?;
    if seals
        .iter()
        .any(|s| s.as_bytes().is_none_or(|b| b.len() != 65))
    {
        return Err(Shape("a seal must be 65 bytes"));
    }
    let seals = seals.len();
    if consensus == Consensus::Ibft2 && items.next().is_some() {
        return Err(Shape("items after the seal list"));
    }
    Ok(BftExtraData {
        vanity,
        validators,
        vote,
        round,
        seals,
    })
}

#[doc(hidden)]
pub mod test_support {
    //! A genesis extraData encoder for test fixtures (`encodeFromAddresses`: 32 zero
    //! bytes of vanity, no vote, round 0, no seals), checked against Besu's vectors below.

    use super::*;

    fn length_prefix(base_short: u8, base_long: u8, len: usize) -> Vec<u8> {
        if len <= 55 {
            return vec![base_short + len as u8];
        }
        let be = (len as u32).to_be_bytes();
        let digits: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
        let mut out = vec![base_long + digits.len() as u8];
        out.extend(digits);
        out
    }

    fn list(payload: Vec<u8>) -> Vec<u8> {
        let mut out = length_prefix(0xc0, 0xf7, payload.len());
        out.extend(payload);
        out
    }

    pub fn encode_genesis(consensus: Consensus, validators: &[Address]) -> Vec<u8> {
        let mut payload = vec![0xa0];
        payload.extend([0u8; 32]);
        let mut addrs = Vec::new();
        for v in validators {
            addrs.push(0x94);
            addrs.extend(v.0);
        }
        payload.extend(list(addrs));
        match consensus {
            Consensus::Qbft => payload.extend([0xc0, 0x80, 0xc0]),
            Consensus::Ibft2 => payload.extend([0x80, 0x84, 0, 0, 0, 0, 0xc0]),
        }
        list(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::encode_genesis;
    use super::*;

    fn bytes(hex_str: &str) -> Vec<u8> {
        hex::decode(hex_str.strip_prefix("0x").unwrap_or(hex_str)).unwrap()
    }

    fn addr(s: &str) -> Address {
        s.parse().unwrap()
    }

    /// hyperledger/besu `app/src/test/java/org/hyperledger/besu/cli/subcommands/rlp/RLPSubCommandTest.java`:
    /// `canEncodeToQbftExtraData` (QBFT) and `encodeWithoutPathMustWriteToStandardOutput`
    /// (IBFT 2.0), both for these two validators in this order.
    const RLP_SUBCOMMAND_VALIDATORS: [&str; 2] = [
        "0xbe068f726a13c8d46c44be6ce9d275600e1735a4",
        "0x5ff6f4b66a46a2b2310a6f3a93aaddc0d9a1c193",
    ];
    const RLP_SUBCOMMAND_QBFT: &str = "0xf84fa00000000000000000000000000000000000000000000000000000000000000000ea94be068f726a13c8d46c44be6ce9d275600e1735a4945ff6f4b66a46a2b2310a6f3a93aaddc0d9a1c193c080c0";
    const RLP_SUBCOMMAND_IBFT2: &str = "0xf853a00000000000000000000000000000000000000000000000000000000000000000ea94be068f726a13c8d46c44be6ce9d275600e1735a4945ff6f4b66a46a2b2310a6f3a93aaddc0d9a1c193808400000000c0";

    /// hyperledger/besu `app/src/test/java/org/hyperledger/besu/cli/subcommands/operator/OperatorSubCommandTest.java`
    /// `shouldCreateQbftExtraData` / `shouldCreateIbft2ExtraData` (public keys from
    /// `app/src/test/resources/operator/config_import_keys{,_qbft}.json`).
    const OPERATOR_VALIDATORS: [&str; 2] = [
        "0xd5feb0fc5a54a89f97aeb34c3df15397c19f6dd2",
        "0xd6a9a4c886eb008ac307abdc1f38745c1dd13a88",
    ];
    const OPERATOR_QBFT: &str = "0xf84fa00000000000000000000000000000000000000000000000000000000000000000ea94d5feb0fc5a54a89f97aeb34c3df15397c19f6dd294d6a9a4c886eb008ac307abdc1f38745c1dd13a88c080c0";
    const OPERATOR_IBFT2: &str = "0xf853a00000000000000000000000000000000000000000000000000000000000000000ea94d5feb0fc5a54a89f97aeb34c3df15397c19f6dd294d6a9a4c886eb008ac307abdc1f38745c1dd13a88808400000000c0";

    /// hyperledger/besu `consensus/qbft/src/test/java/org/hyperledger/besu/consensus/qbft/QbftExtraDataCodecTest.java`
    /// `RAW_HEX_ENCODING_STRING`: vanity 0x0102…20, validators 0x…01 and 0x…02, vote ADD
    /// 0x…01, round 0xFEDCBA, two seals.
    const QBFT_RAW: &str = "0xf8f0a00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20ea940000000000000000000000000000000000000001940000000000000000000000000000000000000002d794000000000000000000000000000000000000000181ff83fedcbaf886b8410000000000000000000000000000000000000000000000000000000000000001000000000000000000000000000000000000000000000000000000000000000a00b841000000000000000000000000000000000000000000000000000000000000000a000000000000000000000000000000000000000000000000000000000000000100";

    /// hyperledger/besu `consensus/ibft/src/test/java/org/hyperledger/besu/consensus/ibft/IbftExtraDataRLPEncoderTest.java`
    /// `RAW_HEX_ENCODING_STRING`: the same content, IBFT 2.0 encoding.
    const IBFT_RAW: &str = "f8f1a00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20ea940000000000000000000000000000000000000001940000000000000000000000000000000000000002d794000000000000000000000000000000000000000181ff8400fedcbaf886b8410000000000000000000000000000000000000000000000000000000000000001000000000000000000000000000000000000000000000000000000000000000a00b841000000000000000000000000000000000000000000000000000000000000000a000000000000000000000000000000000000000000000000000000000000000100";

    /// hyperledger/besu `acceptance-tests/tests/src/acceptanceTest/resources/qbft/qbft-emptyextradata.json`
    /// (validator contract mode: no header validators).
    const QBFT_EMPTY: &str =
        "0xe5a00000000000000000000000000000000000000000000000000000000000000000c0c080c0";

    #[test]
    fn genesis_vectors_from_besu_cli_tests() {
        for (consensus, hex_str, validators) in [
            (
                Consensus::Qbft,
                RLP_SUBCOMMAND_QBFT,
                RLP_SUBCOMMAND_VALIDATORS,
            ),
            (
                Consensus::Ibft2,
                RLP_SUBCOMMAND_IBFT2,
                RLP_SUBCOMMAND_VALIDATORS,
            ),
            (Consensus::Qbft, OPERATOR_QBFT, OPERATOR_VALIDATORS),
            (Consensus::Ibft2, OPERATOR_IBFT2, OPERATOR_VALIDATORS),
        ] {
            let expected: Vec<Address> = validators.iter().map(|a| addr(a)).collect();
            let d = decode(consensus, &bytes(hex_str)).unwrap();
            assert_eq!(d.validators, expected, "{hex_str}");
            assert_eq!(d.vanity, vec![0u8; 32]);
            assert_eq!((d.vote, d.round, d.seals), (None, 0, 0));
            // The test fixture encoder writes exactly Besu's bytes.
            assert_eq!(encode_genesis(consensus, &expected), bytes(hex_str));
        }
        let empty = decode(Consensus::Qbft, &bytes(QBFT_EMPTY)).unwrap();
        assert!(empty.validators.is_empty());
        assert_eq!(encode_genesis(Consensus::Qbft, &[]), bytes(QBFT_EMPTY));
    }

    #[test]
    fn full_vectors_from_the_codec_tests() {
        let one = addr("0x0000000000000000000000000000000000000001");
        let two = addr("0x0000000000000000000000000000000000000002");
        let vanity: Vec<u8> = (1..=32).collect();
        for (consensus, hex_str) in [(Consensus::Qbft, QBFT_RAW), (Consensus::Ibft2, IBFT_RAW)] {
            let d = decode(consensus, &bytes(hex_str)).unwrap();
            assert_eq!(
                d,
                BftExtraData {
                    vanity: vanity.clone(),
                    validators: vec![one, two],
                    vote: Some(Vote {
                        recipient: one,
                        kind: VoteKind::Add
                    }),
                    round: 0x00fe_dcba,
                    seals: 2,
                }
            );
        }
    }

    /// The protocols do not read each other's encodings (no-vote and round differ).
    #[test]
    fn protocols_do_not_confuse() {
        for (consensus, hex_str) in [
            (Consensus::Ibft2, RLP_SUBCOMMAND_QBFT),
            (Consensus::Qbft, RLP_SUBCOMMAND_IBFT2),
            (Consensus::Ibft2, QBFT_RAW),
            (Consensus::Qbft, IBFT_RAW),
        ] {
            assert!(decode(consensus, &bytes(hex_str)).is_err(), "{hex_str}");
        }
    }

    /// `QbftExtraDataCodecTest.correctlyCodedRoundConstitutesValidContent` (round 0xDCBA
    /// in 2 bytes, vote ADD 0x…01, no validators, no seals) and the leading-zero refusal
    /// of `incorrectlyEncodedRoundThrowsRlpException`; IBFT's `readInt` wants 4 bytes
    /// (`IbftExtraDataRLPEncoderTest.incorrectlyEncodedRoundThrowsRlpException`).
    #[test]
    fn round_encodings() {
        let good = "f83ea00000000000000000000000000000000000000000000000000000000000000000c0d794000000000000000000000000000000000000000181ff82dcbac0";
        let d = decode(Consensus::Qbft, &bytes(good)).unwrap();
        assert_eq!(d.round, 0xdcba);
        assert!(d.validators.is_empty());
        let leading_zero = good
            .replace("82dcbac0", "8300dcbac0")
            .replace("f83e", "f83f");
        assert_eq!(
            decode(Consensus::Qbft, &bytes(&leading_zero)),
            Err(Shape("the round has leading zero bytes"))
        );
        let ibft_3_bytes = IBFT_RAW
            .replace("8400fedcba", "83fedcba")
            .replace("f8f1", "f8f0");
        assert_eq!(
            decode(Consensus::Ibft2, &bytes(&ibft_3_bytes)),
            Err(Shape("the round must be exactly 4 bytes"))
        );
    }

    /// `incorrectVoteTypeThrowsException` (both codec tests): vote byte 0xAA.
    #[test]
    fn unknown_vote_byte_is_refused() {
        for (consensus, hex_str) in [(Consensus::Qbft, QBFT_RAW), (Consensus::Ibft2, IBFT_RAW)] {
            let bad = hex_str.replacen("0181ff", "0181aa", 1);
            assert_eq!(
                decode(consensus, &bytes(&bad)),
                Err(Shape("vote field was of an incorrect binary value"))
            );
        }
        // QBFT writes a drop as an empty string (`writeNull`); IBFT as 0x00.
        let qbft_drop = QBFT_RAW
            .replacen("0181ff", "0180", 1)
            .replace("f8f0", "f8ef");
        let qbft_drop = qbft_drop.replacen("d794", "d694", 1);
        assert_eq!(
            decode(Consensus::Qbft, &bytes(&qbft_drop)).unwrap().vote,
            Some(Vote {
                recipient: addr("0x0000000000000000000000000000000000000001"),
                kind: VoteKind::Drop
            })
        );
        let ibft_drop = IBFT_RAW
            .replacen("0181ff", "0100", 1)
            .replace("f8f1", "f8f0");
        let ibft_drop = ibft_drop.replacen("d794", "d694", 1);
        assert_eq!(
            decode(Consensus::Ibft2, &bytes(&ibft_drop)).unwrap().vote,
            Some(Vote {
                recipient: addr("0x0000000000000000000000000000000000000001"),
                kind: VoteKind::Drop
            })
        );
    }

    /// QBFT ignores items after the seals (`leaveListLenient`); IBFT refuses them.
    #[test]
    fn trailing_items() {
        let qbft = bytes(&RLP_SUBCOMMAND_QBFT.replace("0xf84f", "f850"));
        let mut qbft = qbft;
        qbft.push(0x80);
        assert_eq!(decode(Consensus::Qbft, &qbft).unwrap().validators.len(), 2);
        let mut ibft = bytes(&RLP_SUBCOMMAND_IBFT2.replace("0xf853", "f854"));
        ibft.push(0x80);
        assert_eq!(
            decode(Consensus::Ibft2, &ibft),
            Err(Shape("items after the seal list"))
        );
        assert_eq!(decode(Consensus::Qbft, &[]), Err(ExtraDataError::Empty));
    }
}
