//! secp256k1 node keys, public keys (node ids) and account addresses, in the
//! formats Besu reads and writes.
//!
//! Derivation (Besu docs `public-networks/concepts/node-keys.md`,
//! `Util.publicKeyToAddress`): a 32-byte private key gives a 64-byte public key
//! `X‖Y` (uncompressed, without the `0x04` tag); the address is the last 20
//! bytes of `keccak256(X‖Y)`.
//!
//! Key material never appears in an error, a `Debug` string or a log line:
//! [`KeyError`] says what is wrong (length, position of a bad character, zero,
//! out of range) without quoting the input.

use std::fmt;
use std::str::FromStr;

use k256::elliptic_curve::sec1::ToEncodedPoint;
use rand_core::OsRng;
use sha3::{Digest, Keccak256};
use thiserror::Error;

use super::hexfmt::{self, HexProblem};

/// Why a private key was refused. Never contains the key or any part of it.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("key is empty")]
    Empty,
    #[error("key file has {lines} lines, expected exactly 1")]
    Lines { lines: usize },
    #[error("key has a non-hex character at position {position}")]
    NonHex { position: usize },
    #[error("key has {digits} hex digits, expected 64")]
    Length { digits: usize },
    #[error("key is zero, which is not a valid secp256k1 private key")]
    Zero,
    #[error("key is not below the secp256k1 group order, so it is not a valid private key")]
    OutOfRange,
}

/// Why a public key (node id) was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PublicKeyError {
    #[error("public key has a non-hex character at position {position}")]
    NonHex { position: usize },
    #[error("public key has {digits} hex digits, expected 128")]
    Length { digits: usize },
    #[error("public key is not a point on the secp256k1 curve")]
    NotOnCurve,
}

/// Why an address was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AddressError {
    #[error("address {input:?} must start with 0x")]
    MissingPrefix { input: String },
    #[error("address {input:?} has a non-hex character at position {position}")]
    NonHex { input: String, position: usize },
    #[error("address {input:?} has {digits} hex digits, expected 40")]
    Length { input: String, digits: usize },
}

/// A node's secp256k1 private key. `Debug` shows only the address; there is no
/// `Display`. The only way to get the secret out is
/// [`NodeKey::to_besu_key_file`]. The inner `k256::SecretKey` is zeroed on drop.
#[derive(Clone)]
pub struct NodeKey {
    secret: k256::SecretKey,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey")
            .field("address", &self.address())
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl NodeKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> NodeKey {
        NodeKey {
            secret: k256::SecretKey::random(&mut OsRng),
        }
    }

    /// Parses a key as Besu's `KeyPairUtil` reads a `key` file: exactly one
    /// line, optionally ended by one line break (`\n`, `\r\n` or `\r`),
    /// optional `0x`/`0X`, hex digits of any case. Stricter than Besu in one
    /// way: exactly 64 digits are required (Besu left-pads shorter input).
    /// Zero and values at or above the group order are refused.
    pub fn parse(text: &str) -> Result<NodeKey, KeyError> {
        let line = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .or_else(|| text.strip_suffix('\r'))
            .unwrap_or(text);
        if line.contains(['\n', '\r']) {
            // Count lines as Java's readAllLines does (the final break ends
            // the last line rather than starting a new one).
            let lines = line
                .split("\r\n")
                .flat_map(|l| l.split(['\n', '\r']))
                .count();
            return Err(KeyError::Lines { lines });
        }
        if line.is_empty() {
            return Err(KeyError::Empty);
        }
        let (digits, prefix) = hexfmt::strip_0x(line);
        let bytes = hexfmt::parse_exact::<32>(digits, prefix).map_err(|p| match p {
            HexProblem::NonHex { position } => KeyError::NonHex { position },
            HexProblem::Length { digits } => KeyError::Length { digits },
        })?;
        NodeKey::from_bytes(&bytes)
    }

    /// A key from its 32 big-endian bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<NodeKey, KeyError> {
        if bytes.iter().all(|&b| b == 0) {
            return Err(KeyError::Zero);
        }
        let secret = k256::SecretKey::from_bytes(bytes.into()).map_err(|_| KeyError::OutOfRange)?;
        Ok(NodeKey { secret })
    }

    /// The contents of a Besu `key` file, as Besu itself writes it:
    /// `0x` + 64 lower-case hex digits, no trailing newline.
    pub fn to_besu_key_file(&self) -> String {
        format!("0x{}", hex::encode(self.secret.to_bytes()))
    }

    pub fn public_key(&self) -> PublicKey {
        let point = self.secret.public_key().to_encoded_point(false);
        let mut out = [0u8; 64];
        // An uncompressed SEC1 point is 0x04 ‖ X ‖ Y (65 bytes).
        out.copy_from_slice(&point.as_bytes()[1..65]);
        PublicKey(out)
    }

    pub fn address(&self) -> Address {
        self.public_key().address()
    }
}

/// A 64-byte uncompressed secp256k1 public key without the `0x04` tag: Besu's
/// node id. `Display` is `0x` + 128 lower-case hex digits (Besu's `key.pub`);
/// [`PublicKey::to_hex`] has no prefix (the enode form).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 64]);

impl PublicKey {
    /// 128 lower-case hex digits, no `0x`.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 128 hex digits (any case) with an optional `0x`, and checks that
    /// the point is on the curve.
    pub fn parse(text: &str) -> Result<PublicKey, PublicKeyError> {
        let (digits, prefix) = hexfmt::strip_0x(text);
        let bytes = hexfmt::parse_exact::<64>(digits, prefix).map_err(|p| match p {
            HexProblem::NonHex { position } => PublicKeyError::NonHex { position },
            HexProblem::Length { digits } => PublicKeyError::Length { digits },
        })?;
        PublicKey::from_bytes(bytes)
    }

    /// Checks that `X‖Y` is a point on the curve.
    pub fn from_bytes(bytes: [u8; 64]) -> Result<PublicKey, PublicKeyError> {
        let mut sec1 = [0u8; 65];
        sec1[0] = 0x04;
        sec1[1..].copy_from_slice(&bytes);
        k256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| PublicKeyError::NotOnCurve)?;
        Ok(PublicKey(bytes))
    }

    /// `keccak256(X‖Y)[12..]`.
    pub fn address(&self) -> Address {
        let hash = Keccak256::digest(self.0);
        let mut out = [0u8; 20];
        out.copy_from_slice(&hash[12..]);
        Address(out)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = PublicKeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PublicKey::parse(s)
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PublicKey::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A 20-byte account address. Ordered by bytes, which is the order Besu
/// requires for validators in block headers (and the order of lower-case
/// hex). Parses `0x` + 40 hex digits of any case; displays lower-case `0x…`;
/// serializes as that string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 20]);

impl Address {
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (digits, prefix) = hexfmt::strip_0x(s);
        if prefix == 0 {
            return Err(AddressError::MissingPrefix {
                input: s.to_owned(),
            });
        }
        hexfmt::parse_exact::<20>(digits, prefix)
            .map(Address)
            .map_err(|p| match p {
                HexProblem::NonHex { position } => AddressError::NonHex {
                    input: s.to_owned(),
                    position,
                },
                HexProblem::Length { digits } => AddressError::Length {
                    input: s.to_owned(),
                    digits,
                },
            })
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (private key file contents, node id, address).
    /// Key files: hyperledger/besu `acceptance-tests/tests/src/acceptanceTest/resources/key`,
    /// `key1`, `key2` (bare hex, no newline). Node ids: alice/bob/charlie in
    /// `acceptance-tests/detached-test-plugins/.../TestPermissioningPlugin.java`.
    /// Addresses: the `alloc` of `acceptance-tests/.../resources/qbft/qbft.json`,
    /// which lists the same private keys.
    const ACCEPTANCE_KEYS: [(&str, &str, &str); 3] = [
        (
            "8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63",
            "09b02f8a5fddd222ade4ea4528faefc399623af3f736be3c44f03e2df22fb792f3931a4d9573d333ca74343305762a753388c3422a86d98b713fc91c1ea04842",
            "0xfe3b557e8fb62b89f4916b721be55ceb828dbd73",
        ),
        (
            "c87509a1c067bbde78beb793e6fa76530b6382a4c0241e5e4a9ec0a0f44dc0d3",
            "af80b90d25145da28c583359beb47b21796b2fe1a23c1511e443e7a64dfdb27d7434c380f0aa4c500e220aa1a9d068514b1ff4d5019e624e7ba1efe82b340a59",
            "0x627306090abab3a6e1400e9345bc60c78a8bef57",
        ),
        (
            "ae6ae8e5ccbfb04590405997ee2d52d2b330726137b875053c36d94e974d162f",
            "ce7edc292d7b747fab2f23584bbafaffde5c8ff17cf689969614441e0527b90015ea9fee96aed6d9c0fc2fbe0bd1883dee223b3200246ff1e21976bdbc9a0fc8",
            "0xf17f52151ebef6c7334fad080c5704d77216b732",
        ),
    ];

    #[test]
    fn acceptance_test_keys_derive_besu_node_ids_and_addresses() {
        for (key, node_id, address) in ACCEPTANCE_KEYS {
            let k = NodeKey::parse(key).unwrap();
            assert_eq!(k.public_key().to_hex(), node_id);
            assert_eq!(k.address().to_string(), address);
            assert_eq!(k.to_besu_key_file(), format!("0x{key}"));
            // The same key in the other forms Besu accepts.
            for variant in [
                format!("0x{key}"),
                format!("{key}\n"),
                format!("0x{key}\r\n"),
                key.to_uppercase(),
            ] {
                assert_eq!(
                    NodeKey::parse(&variant).unwrap().address().to_string(),
                    address
                );
            }
        }
    }

    /// hyperledger/besu `crypto/algorithms/src/test/resources/validPrivateKey.txt`
    /// (upper-case, no prefix, value 10), paired with this public key in
    /// `crypto/algorithms/src/test/java/org/hyperledger/besu/crypto/KeyPairTest.java`
    /// (`keyPairEquals`) and `SECPPublicKeyTest.java`.
    #[test]
    fn private_key_ten_matches_besu_key_pair_test() {
        let k = NodeKey::parse("000000000000000000000000000000000000000000000000000000000000000A")
            .unwrap();
        assert_eq!(
            k.public_key().to_hex(),
            "a0434d9e47f3c86235477c7b1ae6ae5d3442d49b1943c2b752a68e2a47e247c7893aba425419bc27a3b6c7e693a24c696f794c2ed877a1593cbee53b037368d7"
        );
        assert_eq!(
            k.to_besu_key_file(),
            "0x000000000000000000000000000000000000000000000000000000000000000a"
        );
    }

    /// hyperledger/besu `acceptance-tests/tests/src/acceptanceTest/resources/qbft/migration-ibft1/miner{1..5}key`
    /// and `miner{1..5}key.pub`; the addresses are the five validators in the IBFT 1.0
    /// `extraData` of `qbft-migration.json` in the same directory (…f86994a18182ee…).
    #[test]
    fn migration_miner_keys_match_their_pub_files() {
        let pairs = [
            (
                "0a46b91fe0c770a4355d1fec9ccd72d39264f46a74ed67a69a12ed4c265aa768",
                "8093fb3200c783555ed487b8b5210ef3369b062a1f3ce5762d83d7a62205693d1e4f253e840ca48ec98d8f20c5b41bbbd43f34f87a1f68324ab51afe73732b96",
            ),
            (
                "17c2aacfdf1f6defde20e6ae7132c6d3991e758af3799a307a75b38135678a48",
                "d81f65976ccc44c5e7e6ca859c5ede06b0f484f72c52d35dd8f7bd7581a8b7020d9ef45878696b4593daf5575b48dda5259f78f192a3445d5cc97c032660642f",
            ),
            (
                "917fb1b03034e5d7156b89bc2a3bc2aae1d146d2640d75e095f07110b0871bc1",
                "67785a2ac328648d94245abb25bdcfab853d06e68c70026d90f2fd5c8338b65c19235398eac205e4bbdb3fc1de9669ad6309e43ab203c8e7430664cea6451f56",
            ),
            (
                "3b3cbae8c034c4ba2d5f4df44faa013888216a6eabb7fffa0b224003ea770ba7",
                "ec403552908986b5d9e4def3be9ddcb26d5b03def3b44ef2d5d728bb9a3028603405e7379c3e185cb2bc3e784548fcdd0e7616162029c3f407155b2fb25ba0ca",
            ),
            (
                "4ddfb30d4fcd6f5a9f959961f734e4c1469af223bc16b217eef0d3796e64973d",
                "28c02b375d62b0adef8213b76882dfec264d5dcbb0a8ba73f167bc718a6d02f1833af80ab9f51a5f007e5f3b8320e8fc5ab287d4bd59ad497f8949bf4abb9e80",
            ),
        ];
        let validators = [
            "0xa18182ee8ca476f2f0fb8170a1d4620edb39c5e1",
            "0x065541903bf3bb8c088a18046b441f5d286288c9",
            "0xd1e106d68cac92668b100f6f43791ddcb2c75880",
            "0xd156777a1e1539fe654fc82266f41fd5d4aa5484",
            "0xefbbd8900222d7b2f75d081c3e7446a1f4fe10ce",
        ];
        let mut derived = Vec::new();
        for (key, public) in pairs {
            let k = NodeKey::parse(key).unwrap();
            assert_eq!(k.public_key().to_hex(), public);
            assert_eq!(PublicKey::parse(public).unwrap(), k.public_key());
            derived.push(k.address().to_string());
        }
        derived.sort();
        let mut validators = validators.map(str::to_owned).to_vec();
        validators.sort();
        assert_eq!(derived, validators);
    }

    /// Public keys imported by `besu operator generate-blockchain-config`:
    /// hyperledger/besu `app/src/test/resources/operator/config_import_keys.json`;
    /// the addresses appear in the extraData that
    /// `app/src/test/java/org/hyperledger/besu/cli/subcommands/operator/OperatorSubCommandTest.java`
    /// (`shouldCreateIbft2ExtraData`, `shouldCreateQbftExtraData`) expects.
    #[test]
    fn operator_import_keys_derive_expected_addresses() {
        let cases = [
            (
                "0x9481ee2b34196827e8c4807ae29c2675c15d3641e482ab81cc0bc3ef535755b426b9f5c474213df28a563fab0bf0830b455ee8955b3faac93075422a6abf160d",
                "0xd5feb0fc5a54a89f97aeb34c3df15397c19f6dd2",
            ),
            (
                "0xf9dff57fc0bae7cba6577d82caf40cf6d266afc2a212775eb45c2188ab30aeed01e724daf4203649d4aa7e30717bfeeaf0b4c30b5d651bad39bcae8429759889",
                "0xd6a9a4c886eb008ac307abdc1f38745c1dd13a88",
            ),
        ];
        for (public, address) in cases {
            let p = PublicKey::parse(public).unwrap();
            assert_eq!(p.to_string(), public);
            assert_eq!(p.address().to_string(), address);
        }
    }

    #[test]
    fn key_errors_say_what_is_wrong_without_the_key() {
        let short = "8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be6";
        let err = NodeKey::parse(short).unwrap_err();
        assert_eq!(err, KeyError::Length { digits: 63 });
        assert_eq!(err.to_string(), "key has 63 hex digits, expected 64");
        assert_eq!(
            NodeKey::parse(&format!("0x{short}")).unwrap_err(),
            KeyError::Length { digits: 63 }
        );
        let bad = "0x8f2a5594903Xa9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63";
        let err = NodeKey::parse(bad).unwrap_err();
        assert_eq!(err, KeyError::NonHex { position: 14 });
        assert!(!err.to_string().contains("8f2a"));
        // Besu's own invalid fixture: `crypto/algorithms/src/test/resources/invalidPrivateKey.txt`.
        assert_eq!(
            NodeKey::parse("this is not a valid private key").unwrap_err(),
            KeyError::NonHex { position: 1 }
        );
        assert_eq!(NodeKey::parse("").unwrap_err(), KeyError::Empty);
        assert_eq!(NodeKey::parse("\n").unwrap_err(), KeyError::Empty);
        assert_eq!(
            NodeKey::parse("0x").unwrap_err(),
            KeyError::Length { digits: 0 }
        );
        // A blank second line fails in Besu too ("Supplied file does not contain valid keyPair pair.").
        let two_lines = format!("{}\n\n", ACCEPTANCE_KEYS[0].0);
        assert_eq!(
            NodeKey::parse(&two_lines).unwrap_err(),
            KeyError::Lines { lines: 2 }
        );
        assert_eq!(
            NodeKey::parse(&format!(" {}", ACCEPTANCE_KEYS[0].0)).unwrap_err(),
            KeyError::NonHex { position: 1 }
        );
        assert_eq!(NodeKey::parse(&"0".repeat(64)).unwrap_err(), KeyError::Zero);
        // The group order n itself, and n+1, are out of range; n-1 is the largest key.
        let n = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141";
        assert_eq!(NodeKey::parse(n).unwrap_err(), KeyError::OutOfRange);
        assert_eq!(
            NodeKey::parse("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364142")
                .unwrap_err(),
            KeyError::OutOfRange
        );
        assert_eq!(
            NodeKey::parse(&"f".repeat(64)).unwrap_err(),
            KeyError::OutOfRange
        );
        assert!(
            NodeKey::parse("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364140")
                .is_ok()
        );
    }

    #[test]
    fn debug_redacts_the_secret() {
        let k = NodeKey::parse(ACCEPTANCE_KEYS[0].0).unwrap();
        let dbg = format!("{k:?}");
        assert!(!dbg.contains("8f2a5594"), "{dbg}");
        assert!(dbg.contains("redacted"));
        assert!(dbg.contains("0xfe3b557e8fb62b89f4916b721be55ceb828dbd73"));
    }

    #[test]
    fn generated_keys_round_trip_through_the_besu_file_format() {
        let k = NodeKey::generate();
        let file = k.to_besu_key_file();
        assert_eq!(file.len(), 66);
        assert!(file.starts_with("0x"));
        assert_eq!(file[2..].to_lowercase(), file[2..]);
        assert_eq!(NodeKey::parse(&file).unwrap().address(), k.address());
        assert_ne!(NodeKey::generate().address(), k.address());
    }

    #[test]
    fn public_key_parsing_checks_format_and_curve() {
        let id = ACCEPTANCE_KEYS[0].1;
        assert_eq!(PublicKey::parse(&id.to_uppercase()).unwrap().to_hex(), id);
        assert_eq!(
            PublicKey::parse(&id[1..]).unwrap_err(),
            PublicKeyError::Length { digits: 127 }
        );
        assert_eq!(
            PublicKey::parse(&format!("0x{}g", &id[1..])).unwrap_err(),
            PublicKeyError::NonHex { position: 130 }
        );
        assert_eq!(
            PublicKey::parse(&"00".repeat(64)).unwrap_err(),
            PublicKeyError::NotOnCurve
        );
        let p: PublicKey = serde_json::from_str(&format!("\"0x{id}\"")).unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"0x{id}\""));
    }

    #[test]
    fn addresses_parse_any_case_and_display_lower_case() {
        let a: Address = "0x627306090abaB3A6e1400e9345bC60c78a8BEf57"
            .parse()
            .unwrap();
        assert_eq!(a.to_string(), "0x627306090abab3a6e1400e9345bc60c78a8bef57");
        assert_eq!(
            format!("{a:?}"),
            "Address(0x627306090abab3a6e1400e9345bc60c78a8bef57)"
        );
        assert!(
            "0X627306090abab3a6e1400e9345bc60c78a8bef57"
                .parse::<Address>()
                .is_ok()
        );
        assert!(matches!(
            "627306090abab3a6e1400e9345bc60c78a8bef57".parse::<Address>(),
            Err(AddressError::MissingPrefix { .. })
        ));
        assert!(matches!(
            "0x627306090abab3a6e1400e9345bc60c78a8bef5".parse::<Address>(),
            Err(AddressError::Length { digits: 39, .. })
        ));
        assert!(matches!(
            "0x627306090abab3a6e1400e9345bc60c78a8bef5z".parse::<Address>(),
            Err(AddressError::NonHex { position: 42, .. })
        ));
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"0x627306090abab3a6e1400e9345bc60c78a8bef57\"");
        assert_eq!(serde_json::from_str::<Address>(&json).unwrap(), a);
        assert!(serde_json::from_str::<Address>("\"0x12\"").is_err());
        let low: Address = "0x0000000000000000000000000000000000000001"
            .parse()
            .unwrap();
        let high: Address = "0xff00000000000000000000000000000000000000"
            .parse()
            .unwrap();
        assert!(low < high);
    }
}
