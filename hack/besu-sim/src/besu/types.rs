//! Addresses, the two BFT protocols and validator votes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 20-byte account address (`org.hyperledger.besu.datatypes.Address`).
///
/// Shown as Besu prints it: `0x` + 40 lower-case hex digits. Ordered byte by byte,
/// unsigned, as Besu's `TreeSet<Address>` in `VoteTally` orders validators.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address(pub [u8; 20]);

/// Why a text is not an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressError {
    /// Not exactly 40 hex digits (after an optional `0x`).
    Length(usize),
    /// A character that is not a hex digit.
    NotHex,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressError::Length(n) => write!(f, "an address has 40 hex digits, not {n}"),
            AddressError::NotHex => write!(f, "an address must be hex digits"),
        }
    }
}

impl std::error::Error for AddressError {}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Address {
    type Err = AddressError;

    /// `Address.fromHexStringStrict`: an optional `0x` (lower-case `x`, as tuweni's
    /// `BytesValues.fromRawHexString` strips it), then exactly 40 hex digits of either case.
    fn from_str(s: &str) -> Result<Address, AddressError> {
        let digits = s.strip_prefix("0x").unwrap_or(s);
        if digits.len() != 40 {
            return Err(AddressError::Length(digits.len()));
        }
        let mut out = [0u8; 20];
        hex::decode_to_slice(digits, &mut out).map_err(|_| AddressError::NotHex)?;
        Ok(Address(out))
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The BFT protocols Besu 26.x runs, named by their genesis `config` key
/// (`JsonGenesisConfigOptions`: `QBFT_CONFIG_KEY = "qbft"`, `IBFT2_CONFIG_KEY = "ibft2"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consensus {
    Qbft,
    Ibft2,
}

impl Consensus {
    /// The key under genesis `config` that selects this protocol.
    pub fn genesis_key(self) -> &'static str {
        match self {
            Consensus::Qbft => "qbft",
            Consensus::Ibft2 => "ibft2",
        }
    }
}

impl fmt::Display for Consensus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.genesis_key())
    }
}

/// Add or drop (`VoteType.ADD` / `VoteType.DROP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VoteKind {
    Add,
    Drop,
}

/// A validator vote as a block header carries it (`org.hyperledger.besu.consensus.common.bft.Vote`):
/// the subject (`recipient`) and add or drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vote {
    pub recipient: Address,
    pub kind: VoteKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_print_and_parse_like_besu() {
        // hyperledger/besu acceptance-tests/.../resources/qbft/qbft.json lists this alloc
        // address in mixed case; Besu prints addresses in lower case.
        let a: Address = "0x627306090abaB3A6e1400e9345bC60c78a8BEf57"
            .parse()
            .unwrap();
        assert_eq!(a.to_string(), "0x627306090abab3a6e1400e9345bc60c78a8bef57");
        let bare: Address = "627306090abab3a6e1400e9345bc60c78a8bef57".parse().unwrap();
        assert_eq!(a, bare);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            "\"0x627306090abab3a6e1400e9345bc60c78a8bef57\""
        );
        assert_eq!(
            serde_json::from_str::<Address>("\"0x627306090abab3a6e1400e9345bc60c78a8bef57\"")
                .unwrap(),
            a
        );
        assert_eq!("0x12".parse::<Address>(), Err(AddressError::Length(2)));
        assert_eq!(
            "0xzz7306090abab3a6e1400e9345bc60c78a8bef57".parse::<Address>(),
            Err(AddressError::NotHex)
        );
        assert!(
            "0X627306090abab3a6e1400e9345bc60c78a8bef57"
                .parse::<Address>()
                .is_err()
        );
    }

    /// Byte order, as `TreeSet<Address>`: the VoteTallyTest validators sort as numbered.
    #[test]
    fn addresses_order_by_bytes() {
        let mut v: Vec<Address> = [
            "0x00497e92cdc0e0b963d752b2296acb87da828b24",
            "0x000d836201318ec6899a67540690382780743280",
            "0xff00000000000000000000000000000000000000",
            "0x0032403587947b9f15622a68d104d54d33dbd1cd",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        v.sort();
        let shown: Vec<String> = v.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            shown,
            [
                "0x000d836201318ec6899a67540690382780743280",
                "0x0032403587947b9f15622a68d104d54d33dbd1cd",
                "0x00497e92cdc0e0b963d752b2296acb87da828b24",
                "0xff00000000000000000000000000000000000000",
            ]
        );
    }

    #[test]
    fn consensus_names() {
        assert_eq!(serde_json::to_string(&Consensus::Qbft).unwrap(), "\"qbft\"");
        assert_eq!(
            serde_json::to_string(&Consensus::Ibft2).unwrap(),
            "\"ibft2\""
        );
        assert_eq!(Consensus::Ibft2.to_string(), "ibft2");
    }
}
