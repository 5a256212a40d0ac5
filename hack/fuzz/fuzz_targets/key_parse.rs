//! Key, public key, address and enode parsing never panic; accepted keys round-trip
//! through Besu's key-file format; errors never quote a key.
#![no_main]

use besu_operator_fuzz::chain::{Address, NodeKey, PublicKey, parse_enode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match NodeKey::parse(text) {
        Ok(key) => {
            let file = key.to_besu_key_file();
            let again = NodeKey::parse(&file).expect("a written key file parses");
            assert_eq!(again.address(), key.address());
            assert_eq!(again.public_key().address(), key.address());
            assert!(!format!("{key:?}").contains(&file[2..]));
        }
        Err(e) => {
            let msg = e.to_string();
            let trimmed = text.trim();
            if trimmed.len() >= 8 {
                assert!(!msg.contains(trimmed), "error quotes its input: {msg}");
            }
        }
    }
    if let Ok(p) = PublicKey::parse(text) {
        assert_eq!(PublicKey::parse(&p.to_string()), Ok(p));
    }
    if let Ok(a) = text.parse::<Address>() {
        assert_eq!(a.to_string().parse::<Address>(), Ok(a));
    }
    if let Ok(e) = parse_enode(text) {
        assert_eq!(parse_enode(&e.to_string()), Ok(e));
    }
});
