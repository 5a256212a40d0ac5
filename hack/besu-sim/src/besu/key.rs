//! Node keys: the `key` file Besu reads, the node's public key (its enode id) and its
//! address.
//!
//! Besu: `crypto/algorithms/.../KeyPairUtil.java` (`loadPrivateKey`, `loadKeyPair`),
//! tuweni `Bytes32.fromHexString`, `SECPPublicKey` (64 bytes, X‖Y without the 0x04 tag)
//! and `Address.extract(SECPPublicKey)` (the last 20 bytes of keccak256 of the public
//! key). besu-facts §3 and §4.

use std::fmt;

use k256::elliptic_curve::sec1::ToEncodedPoint as _;
use sha3::{Digest, Keccak256};

use super::types::Address;

/// A node's secp256k1 private key. `Debug` never shows it.
#[derive(Clone)]
pub struct NodeKey {
    secret: k256::SecretKey,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey({})", self.address())
    }
}

/// Why a key file is refused. Never carries the file's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// `readAllLines` did not give exactly one line ("Supplied file does not contain
    /// valid keyPair pair.").
    Lines(usize),
    /// Not hex, odd length or longer than 32 bytes (`Bytes32.fromHexString`).
    Hex,
    /// Zero, or not below the curve order: no key pair.
    OutOfRange,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Lines(n) => write!(f, "a key file has exactly 1 line, this one has {n}"),
            KeyError::Hex => write!(
                f,
                "the key is not an even number of at most 64 hex digits (optional 0x)"
            ),
            KeyError::OutOfRange => write!(f, "the key is not a valid secp256k1 private key"),
        }
    }
}

impl std::error::Error for KeyError {}

/// Java's `Files.readAllLines`: lines end at `\n`, `\r` or `\r\n`; a final line break
/// does not start another line.
fn java_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['\n', '\r']) {
            None => {
                lines.push(rest);
                break;
            }
            Some(i) => {
                lines.push(&rest[..i]);
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
        }
    }
    lines
}

impl NodeKey {
    /// Reads a `key` file as `KeyPairUtil.loadPrivateKey` does: exactly one line, parsed by
    /// tuweni `Bytes32.fromHexString` (an optional lower-case `0x`, an even number of hex
    /// digits of either case, at most 64, left-padded with zeros).
    pub fn parse_key_file(text: &str) -> Result<NodeKey, KeyError> {
        let lines = java_lines(text);
        let [line] = lines.as_slice() else {
            return Err(KeyError::Lines(lines.len()));
        };
        let digits = line.strip_prefix("0x").unwrap_or(line);
        if digits.len() % 2 != 0 || digits.len() > 64 {
            return Err(KeyError::Hex);
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(digits, &mut bytes[32 - digits.len() / 2..])
            .map_err(|_| KeyError::Hex)?;
        NodeKey::from_bytes(&bytes)
    }

    /// A key from its 32 big-endian bytes; zero and values not below the curve order are
    /// refused.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<NodeKey, KeyError> {
        let secret = k256::SecretKey::from_bytes(bytes.into()).map_err(|_| KeyError::OutOfRange)?;
        Ok(NodeKey { secret })
    }

    /// A new random key, as `KeyPairUtil.loadKeyPair` generates (and stores) when the
    /// key file is missing.
    pub fn generate() -> NodeKey {
        NodeKey {
            secret: k256::SecretKey::random(&mut rand_core::OsRng),
        }
    }

    /// The uncompressed public key without its `0x04` tag (`SECPPublicKey`).
    pub fn public_key(&self) -> PublicKey {
        let point = self.secret.public_key().to_encoded_point(false);
        let mut out = [0u8; 64];
        // SEC1 uncompressed: 0x04 ‖ X ‖ Y.
        out.copy_from_slice(&point.as_bytes()[1..]);
        PublicKey(out)
    }

    pub fn address(&self) -> Address {
        self.public_key().address()
    }

    /// The key file text Besu writes (`KeyPairUtil.storeKeyPair`): `0x` + 64 lower-case
    /// hex digits, no line break. Key material: never log it.
    pub fn to_key_file_text(&self) -> String {
        format!("0x{}", hex::encode(self.secret.to_bytes()))
    }

    /// A recoverable secp256k1 signature of a 32-byte hash, as Besu's 65-byte
    /// `SECPSignature` (`r ‖ s ‖ recId`, low `s`).
    pub fn sign_prehash(&self, hash: &[u8; 32]) -> [u8; 65] {
        let signing = k256::ecdsa::SigningKey::from(&self.secret);
        // A 32-byte prehash is always accepted by the secp256k1 signer.
        let (sig, recid) = signing
            .sign_prehash_recoverable(hash)
            .expect("a 32-byte prehash can be signed");
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&sig.to_bytes());
        out[64] = recid.to_byte();
        out
    }
}

/// The public key that made `sig` (65 bytes, `r ‖ s ‖ recId`) over `hash`, if any.
pub fn recover_prehash(hash: &[u8; 32], sig: &[u8]) -> Option<PublicKey> {
    let [rs @ .., v] = sig else { return None };
    if rs.len() != 64 {
        return None;
    }
    let sig = k256::ecdsa::Signature::from_slice(rs).ok()?;
    let recid = k256::ecdsa::RecoveryId::from_byte(*v)?;
    let key = k256::ecdsa::VerifyingKey::recover_from_prehash(hash, &sig, recid).ok()?;
    let point = key.to_encoded_point(false);
    let mut out = [0u8; 64];
    out.copy_from_slice(&point.as_bytes()[1..]);
    Some(PublicKey(out))
}

/// A node's 64-byte public key: its node id in enode URLs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 64]);

impl PublicKey {
    /// 128 lower-case hex digits, no prefix (the enode form, `EnodeURLImpl.toURI`).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// `Address.extract(SECPPublicKey)`: the last 20 bytes of `keccak256(X‖Y)`.
    pub fn address(&self) -> Address {
        let hash = Keccak256::digest(self.0);
        let mut out = [0u8; 20];
        out.copy_from_slice(&hash[12..]);
        Address(out)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(0x{})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Private key → node id → address, all three asserted by Besu fixtures:
    /// - the key files `acceptance-tests/tests/src/acceptanceTest/resources/{key,key1,key2}`
    ///   (64 hex digits, no `0x`, no line break);
    /// - node ids `aliceNode`, `bobNode`, `charlieNode` in
    ///   `acceptance-tests/detached-test-plugins/.../TestPermissioningPlugin.java`;
    /// - addresses: the `alloc` entries of `resources/qbft/qbft.json` that carry the same
    ///   `privateKey`.
    const BESU_KEYS: [(&str, &str, &str); 3] = [
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
    fn besu_fixture_keys() {
        for (private, node_id, address) in BESU_KEYS {
            let key = NodeKey::parse_key_file(private).unwrap();
            assert_eq!(key.public_key().to_hex(), node_id);
            assert_eq!(key.address().to_string(), address);
            // As Besu writes it: 0x, lower case, no line break; and with a final newline.
            let with_prefix = NodeKey::parse_key_file(&format!("0x{private}\n")).unwrap();
            assert_eq!(with_prefix.address(), key.address());
            let upper = NodeKey::parse_key_file(&private.to_ascii_uppercase()).unwrap();
            assert_eq!(upper.address(), key.address());
        }
    }

    /// `crypto/algorithms/src/test/resources/validPrivateKey.txt` holds `000…00A` (upper
    /// case, no prefix; `KeyPairUtilTest.shouldLoadValidKeyPair`); its public key is
    /// asserted in `KeyPairTest` / `SECPPublicKeyTest`. `Bytes32.fromHexString`
    /// left-pads, so `0x0a` is the same key.
    #[test]
    fn valid_private_key_txt() {
        let node_id = "a0434d9e47f3c86235477c7b1ae6ae5d3442d49b1943c2b752a68e2a47e247c7893aba425419bc27a3b6c7e693a24c696f794c2ed877a1593cbee53b037368d7";
        let file = "000000000000000000000000000000000000000000000000000000000000000A";
        assert_eq!(
            NodeKey::parse_key_file(file).unwrap().public_key().to_hex(),
            node_id
        );
        assert_eq!(
            NodeKey::parse_key_file("0x0a")
                .unwrap()
                .public_key()
                .to_hex(),
            node_id
        );
    }

    /// `KeyPairUtilTest.shouldNotLoadInvalidKeyPair` (`invalidPrivateKey.txt`) and the
    /// `readAllLines` / `Bytes32.fromHexString` refusals.
    #[test]
    fn refused_key_files() {
        assert_eq!(
            NodeKey::parse_key_file("this is not a valid private key").unwrap_err(),
            KeyError::Hex
        );
        let key = BESU_KEYS[0].0;
        assert_eq!(
            NodeKey::parse_key_file(&format!("{key}\n\n")).unwrap_err(),
            KeyError::Lines(2)
        );
        assert_eq!(NodeKey::parse_key_file("").unwrap_err(), KeyError::Lines(0));
        assert!(NodeKey::parse_key_file(&format!("{key}\r\n")).is_ok());
        // Odd length, too long, upper-case prefix (tuweni only strips "0x").
        assert_eq!(NodeKey::parse_key_file("0xa").unwrap_err(), KeyError::Hex);
        assert_eq!(
            NodeKey::parse_key_file(&format!("{key}00")).unwrap_err(),
            KeyError::Hex
        );
        assert_eq!(
            NodeKey::parse_key_file(&format!("0X{key}")).unwrap_err(),
            KeyError::Hex
        );
        assert_eq!(
            NodeKey::parse_key_file(&format!(" {key}")).unwrap_err(),
            KeyError::Hex
        );
        // No key pair for zero or the curve order.
        assert_eq!(
            NodeKey::parse_key_file("0x00").unwrap_err(),
            KeyError::OutOfRange
        );
        let order = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";
        assert_eq!(
            NodeKey::parse_key_file(order).unwrap_err(),
            KeyError::OutOfRange
        );
    }

    #[test]
    fn signatures_recover_the_signer() {
        let key = NodeKey::parse_key_file(BESU_KEYS[0].0).unwrap();
        let hash = [7u8; 32];
        let sig = key.sign_prehash(&hash);
        assert_eq!(recover_prehash(&hash, &sig), Some(key.public_key()));
        let other = [8u8; 32];
        assert_ne!(recover_prehash(&other, &sig), Some(key.public_key()));
        assert_eq!(recover_prehash(&hash, &sig[..64]), None);
        // The key file text reads back as the same key.
        let again = NodeKey::parse_key_file(&key.to_key_file_text()).unwrap();
        assert_eq!(again.address(), key.address());
        assert_eq!(key.to_key_file_text(), format!("0x{}", BESU_KEYS[0].0));
    }

    #[test]
    fn generated_keys_differ_and_never_print() {
        let a = NodeKey::generate();
        let b = NodeKey::generate();
        assert_ne!(a.address(), b.address());
        let shown = format!("{a:?}");
        assert_eq!(shown, format!("NodeKey({})", a.address()));
    }
}
