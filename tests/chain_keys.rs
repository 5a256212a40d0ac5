//! Cross-checks the k256-based key derivation against the libsecp256k1 bindings
//! (`secp256k1` crate) on thousands of random keys.

use besu_operator::chain::{KeyError, NodeKey};
use proptest::prelude::*;
use secp256k1::{PublicKey as SecpPublic, SECP256K1, SecretKey as SecpSecret};
use sha3::{Digest, Keccak256};

/// secp256k1 group order n.
const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

fn n_plus(delta: i8) -> [u8; 32] {
    let mut v = N;
    let mut carry = i16::from(delta);
    for b in v.iter_mut().rev() {
        let sum = i16::from(*b) + carry;
        *b = sum.rem_euclid(256) as u8;
        carry = sum.div_euclid(256);
        if carry == 0 {
            break;
        }
    }
    v
}

/// Random keys, plus the edges of the valid range.
fn key_bytes() -> impl Strategy<Value = [u8; 32]> {
    prop_oneof![
        8 => any::<[u8; 32]>(),
        1 => Just([0u8; 32]),
        1 => Just({ let mut one = [0u8; 32]; one[31] = 1; one }),
        1 => Just(n_plus(-1)),
        1 => Just(N),
        1 => Just(n_plus(1)),
        1 => Just([0xff; 32]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn k256_and_libsecp256k1_agree(bytes in key_bytes()) {
        let ours = NodeKey::from_bytes(&bytes);
        let theirs = SecpSecret::from_byte_array(&bytes);
        prop_assert_eq!(ours.is_ok(), theirs.is_ok());
        let (Ok(ours), Ok(theirs)) = (ours, theirs) else {
            let err = NodeKey::from_bytes(&bytes).unwrap_err();
            prop_assert!(matches!(err, KeyError::Zero | KeyError::OutOfRange));
            return Ok(());
        };
        let public = SecpPublic::from_secret_key(SECP256K1, &theirs).serialize_uncompressed();
        prop_assert_eq!(public[0], 0x04);
        prop_assert_eq!(&ours.public_key().0[..], &public[1..]);
        let address = &Keccak256::digest(&public[1..])[12..];
        prop_assert_eq!(&ours.address().0[..], address);
        // The Besu key-file form parses back to the same key.
        let file = ours.to_besu_key_file();
        prop_assert_eq!(file.clone(), format!("0x{}", hex::encode(bytes)));
        prop_assert_eq!(NodeKey::parse(&file).unwrap().address(), ours.address());
        prop_assert_eq!(NodeKey::parse(&format!("{}\n", &file[2..].to_uppercase())).unwrap().address(), ours.address());
    }

    /// Whatever the input, parsing never panics and an error never quotes the input.
    #[test]
    fn key_parse_errors_never_quote_the_key(text in "(0x)?[0-9a-fA-F]{0,70}[g-z ]?[0-9a-f]{0,10}\n?\n?") {
        if let Err(e) = NodeKey::parse(&text) {
            let msg = e.to_string();
            let digits = text.trim().trim_start_matches("0x");
            if digits.len() >= 4 {
                prop_assert!(!msg.contains(digits), "{msg}");
            }
        }
    }
}

#[test]
fn generated_keys_agree_with_libsecp256k1() {
    for _ in 0..200 {
        let key = NodeKey::generate();
        let bytes: [u8; 32] = hex::decode(&key.to_besu_key_file()[2..])
            .unwrap()
            .try_into()
            .unwrap();
        let theirs = SecpSecret::from_byte_array(&bytes).unwrap();
        let public = SecpPublic::from_secret_key(SECP256K1, &theirs).serialize_uncompressed();
        assert_eq!(key.public_key().0.as_slice(), &public[1..]);
    }
}
