//! Key, public key, address and enode parsing never panic; accepted keys round-trip
//! through Besu's key-file format; errors never contain key material.
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
            // Key errors are fixed sentences with small decimal counts: no run of 8
            // hex digits, so no fragment of a key, can appear in one.
            let msg = e.to_string();
            let longest_hex_run = msg
                .split(|c: char| !c.is_ascii_hexdigit())
                .map(str::len)
                .max()
                .unwrap_or(0);
            assert!(longest_hex_run < 8, "error may quote key material: {msg}");
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
