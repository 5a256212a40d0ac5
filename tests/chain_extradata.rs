//! extraData round trips for 0..=30 validators in both protocols, and strict,
//! panic-free decoding of arbitrary and mutated input.

use besu_operator::chain::{
    Address, BftExtraData, Consensus, ExtraDataError, GenesisSpec, Vote, VoteKind,
    decode_genesis_validators, encode_genesis_extra_data, genesis_json, rlp,
};
use proptest::prelude::*;

const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

fn consensus() -> impl Strategy<Value = Consensus> {
    prop_oneof![Just(Consensus::Qbft), Just(Consensus::Ibft2)]
}

fn address() -> impl Strategy<Value = Address> {
    any::<[u8; 20]>().prop_map(Address)
}

/// A scalar in [1, n-1].
fn scalar() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>().prop_map(|mut s| {
        if s.iter().all(|&b| b == 0) || s >= N {
            s = [0; 32];
            s[31] = 1;
        }
        s
    })
}

fn seal() -> impl Strategy<Value = [u8; 65]> {
    (scalar(), scalar(), 0u8..=1).prop_map(|(r, s, v)| {
        let mut out = [0u8; 65];
        out[..32].copy_from_slice(&r);
        out[32..64].copy_from_slice(&s);
        out[64] = v;
        out
    })
}

fn vote() -> impl Strategy<Value = Option<Vote>> {
    proptest::option::of(
        (address(), any::<bool>()).prop_map(|(recipient, add)| Vote {
            recipient,
            kind: if add { VoteKind::Add } else { VoteKind::Drop },
        }),
    )
}

fn extra_data(max_validators: usize) -> impl Strategy<Value = BftExtraData> {
    (
        any::<[u8; 32]>(),
        proptest::collection::vec(address(), 0..=max_validators),
        vote(),
        prop_oneof![Just(0u32), any::<u32>(), 0u32..256],
        proptest::collection::vec(seal(), 0..=4),
    )
        .prop_map(|(vanity, validators, vote, round, seals)| BftExtraData {
            vanity,
            validators,
            vote,
            round,
            seals,
        })
}

#[test]
fn genesis_round_trips_for_0_to_30_validators() {
    for consensus in [Consensus::Qbft, Consensus::Ibft2] {
        for n in 0..=30u8 {
            let validators: Vec<Address> = (0..n)
                .map(|i| Address([i.wrapping_mul(97) ^ 0x5a; 20]))
                .collect();
            let bytes = encode_genesis_extra_data(consensus, &validators);
            let decoded = BftExtraData::decode(consensus, &bytes).unwrap();
            assert_eq!(
                decoded,
                BftExtraData::genesis(validators.clone()),
                "{consensus} n={n}"
            );
            assert_eq!(decoded.encode(consensus), bytes);
            if n > 0 {
                let json =
                    genesis_json(&GenesisSpec::new(consensus, 1337, validators.clone())).unwrap();
                let mut sorted = validators;
                sorted.sort();
                assert_eq!(
                    decode_genesis_validators(&json).unwrap(),
                    (consensus, sorted)
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Full extraData (vanity, 0..=30 validators, any vote, any round, seals) round-trips.
    #[test]
    fn encode_decode_round_trip(consensus in consensus(), data in extra_data(30)) {
        let bytes = data.encode(consensus);
        prop_assert_eq!(BftExtraData::decode(consensus, &bytes), Ok(data));
    }

    /// Random bytes never panic; anything accepted is canonical (re-encodes identically).
    #[test]
    fn random_bytes_never_panic(consensus in consensus(), bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(d) = BftExtraData::decode(consensus, &bytes) {
            prop_assert_eq!(d.encode(consensus), bytes.clone());
        }
        if let Ok(item) = rlp::decode(&bytes) {
            let mut out = Vec::new();
            rlp::encode(&item, &mut out);
            prop_assert_eq!(out, bytes);
        }
    }

    /// Valid encodings with one byte changed, inserted or removed, or cut short, or with
    /// bytes appended: never a panic, and never a different accepted byte string.
    #[test]
    fn mutated_encodings_are_refused_or_canonical(
        consensus in consensus(),
        data in extra_data(12),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        op in 0u8..5,
        tail in proptest::collection::vec(any::<u8>(), 1..8),
    ) {
        let good = data.encode(consensus);
        let i = at.index(good.len());
        let mut bad = good.clone();
        match op {
            0 => bad[i] = byte,
            1 => bad.insert(i, byte),
            2 => { bad.remove(i); }
            3 => bad.truncate(i),
            _ => bad.extend_from_slice(&tail),
        }
        if let Ok(d) = BftExtraData::decode(consensus, &bad) {
            prop_assert_eq!(&d.encode(consensus), &bad);
        }
        // Truncation and trailing bytes are always refused.
        if op >= 3 {
            prop_assert!(BftExtraData::decode(consensus, &bad).is_err());
        }
    }

    /// The other protocol's encoding never decodes to the same data, unless the two
    /// encodings are identical (an ADD vote and a round of 2^24 or more encode alike).
    #[test]
    fn protocols_do_not_confuse(data in extra_data(8)) {
        let q = data.encode(Consensus::Qbft);
        let i = data.encode(Consensus::Ibft2);
        let same = q == i;
        prop_assert_eq!(
            same,
            data.round >= 1 << 24 && data.vote.is_some_and(|v| v.kind == VoteKind::Add)
        );
        if !same {
            if let Ok(d) = BftExtraData::decode(Consensus::Ibft2, &q) {
                prop_assert_ne!(&d, &data);
            }
            if let Ok(d) = BftExtraData::decode(Consensus::Qbft, &i) {
                prop_assert_ne!(&d, &data);
            }
        }
    }
}

/// Specific malformed shapes named in the task: wrong round width, bad vote byte,
/// non-canonical lengths, truncation and trailing bytes.
#[test]
fn malformed_shapes_are_refused() {
    let mut data = BftExtraData::genesis(vec![Address([1; 20]), Address([2; 20])]);
    data.vote = Some(Vote {
        recipient: Address([1; 20]),
        kind: VoteKind::Add,
    });
    data.round = 7;
    for consensus in [Consensus::Qbft, Consensus::Ibft2] {
        let good = data.encode(consensus);
        assert!(BftExtraData::decode(consensus, &good).is_ok());
        // Vote byte 0xff → 0xaa (the byte after the 0x81 prefix; 0xaa ≥ 0x80 stays prefixed).
        let pos = good.windows(2).position(|w| w == [0x81, 0xff]).unwrap();
        let mut bad_vote = good.clone();
        bad_vote[pos + 1] = 0xaa;
        assert!(
            BftExtraData::decode(consensus, &bad_vote).is_err(),
            "{consensus}"
        );
        // Truncated / trailing.
        assert!(BftExtraData::decode(consensus, &good[..good.len() - 1]).is_err());
        let mut trailing = good.clone();
        trailing.push(0xc0);
        assert!(BftExtraData::decode(consensus, &trailing).is_err());
    }
    // Wrong round width: QBFT 07 vs IBFT 84 00 00 00 07, swapped between protocols.
    let q = data.encode(Consensus::Qbft);
    let i = data.encode(Consensus::Ibft2);
    assert!(hex::encode(&q).contains("07c0"));
    assert!(hex::encode(&i).contains("8400000007c0"));
    // Give each protocol the other's round width, keeping its own vote encoding, and
    // fix the outer list length (a single length byte after 0xf8).
    let swap_round = |bytes: &[u8], from: &str, to: &str| {
        let mut out = hex::decode(hex::encode(bytes).replace(from, to)).unwrap();
        assert_eq!(out[0], 0xf8);
        out[1] = u8::try_from(out.len() - 2).unwrap();
        out
    };
    let q_wide = swap_round(&q, "07c0", "8400000007c0");
    assert!(matches!(
        BftExtraData::decode(Consensus::Qbft, &q_wide),
        Err(ExtraDataError::Round(_))
    ));
    let i_narrow = swap_round(&i, "8400000007c0", "07c0");
    assert!(matches!(
        BftExtraData::decode(Consensus::Ibft2, &i_narrow),
        Err(ExtraDataError::Round(_))
    ));
    // Swapping back restores valid encodings, so only the round was wrong.
    assert_eq!(swap_round(&q_wide, "8400000007c0", "07c0"), q);
    assert_eq!(swap_round(&i_narrow, "07c0", "8400000007c0"), i);
}
