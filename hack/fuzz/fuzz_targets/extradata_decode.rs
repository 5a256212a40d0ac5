//! extraData and RLP decoding never panic, and accept only canonical encodings:
//! whatever decodes re-encodes to the same bytes.
#![no_main]

use besu_operator_fuzz::chain::{BftExtraData, Consensus, rlp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(item) = rlp::decode(data) {
        let mut out = Vec::new();
        rlp::encode(&item, &mut out);
        assert_eq!(out, data);
    }
    for consensus in [Consensus::Qbft, Consensus::Ibft2] {
        if let Ok(extra) = BftExtraData::decode(consensus, data) {
            assert_eq!(extra.encode(consensus), data, "{consensus}");
        }
    }
});
