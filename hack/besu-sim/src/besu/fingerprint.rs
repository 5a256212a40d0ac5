//! The genesis fingerprint.
//!
//! Not a Besu rule but a definition shared with the operator's status: the operator
//! publishes `status.genesisChecksum` as the SHA-256 of the genesis document's exact
//! bytes (the UTF-8 text it writes to the genesis ConfigMap), as 64 lower-case hex digits
//! without a prefix. The simulator hashes the same bytes (the ConfigMap value a node
//! reads as `genesis.json`), so the two can be compared.

use sha2::{Digest, Sha256};

/// SHA-256 of `genesis_json`'s UTF-8 bytes: 64 lower-case hex digits, no prefix.
pub fn genesis_sha256(genesis_json: &str) -> String {
    hex::encode(Sha256::digest(genesis_json.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS 180-2 test vectors ("abc" and the empty message), and exact bytes: a trailing
    /// newline or other whitespace is a different genesis.
    #[test]
    fn sha256_of_the_exact_bytes() {
        assert_eq!(
            genesis_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            genesis_sha256(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(genesis_sha256("{}"), genesis_sha256("{}\n"));
        assert_eq!(genesis_sha256("{}").len(), 64);
    }
}
