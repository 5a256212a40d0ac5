//! The safety monitor (`tests/safety`) on hand-made witness records: it must fail on
//! what it exists to catch (two validators down by the operator, an operator fault on top
//! of an injected one, a new key, a new genesis, a stall), or it proves nothing.

mod safety;
mod support;

use safety::*;

fn block(number: u64, time_ms: u64, validators: &[&str]) -> WitnessBlock {
    WitnessBlock {
        number,
        time_ms,
        validators: validators.iter().map(|v| v.to_string()).collect(),
    }
}

fn validator(pod: &str, address: &str, down: &[(u64, Option<u64>)]) -> WitnessNode {
    WitnessNode {
        pod: pod.into(),
        node: None,
        node_type: Some("validator".into()),
        keys: vec![KeySeen {
            address: address.into(),
            first_seen_ms: 0,
        }],
        starts: Vec::new(),
        down: down
            .iter()
            .map(|(f, t)| Down {
                from_ms: *f,
                to_ms: *t,
                cause: "deleted".into(),
                uid: None,
            })
            .collect(),
    }
}

fn four(down: [&[(u64, Option<u64>)]; 4]) -> Witness {
    let vs = ["0xa", "0xb", "0xc", "0xd"];
    Witness {
        now_ms: 20_000,
        block_period_ms: 1_000,
        genesis: vec![GenesisSeen {
            sha256: "g".into(),
            first_seen_ms: 0,
        }],
        blocks: (1..=20).map(|i| block(i, i * 1_000, &vs)).collect(),
        nodes: (0..4)
            .map(|i| validator(&format!("v{i}"), vs[i], down[i]))
            .collect(),
    }
}

#[test]
fn the_budget_follows_besu_quorum_table() {
    // BftHelpersTest: quorum 1→1, 2→2, 3→2, 4→3, 5→4, 6→4, 7→5, 10→7.
    let quorum = [
        (1, 1),
        (2, 2),
        (3, 2),
        (4, 3),
        (5, 4),
        (6, 4),
        (7, 5),
        (10, 7),
    ];
    for (n, q) in quorum {
        assert_eq!(fault_budget(n), n - q, "n={n}");
    }
}

#[test]
fn one_validator_down_at_a_time_is_clean() {
    let w = four([&[(5_000, Some(6_000))], &[(7_000, Some(8_000))], &[], &[]]);
    let r = check(&w, &[], 3_000);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(r.max_down_with_operator, 1);
}

#[test]
fn two_of_four_down_by_the_operator_is_a_violation() {
    let w = four([&[(5_000, Some(8_000))], &[(6_000, Some(9_000))], &[], &[]]);
    let r = check(&w, &[], 60_000);
    assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
    assert!(r.violations[0].contains("v1"), "{:?}", r.violations);
}

#[test]
fn an_injected_fault_does_not_count_but_the_operator_may_not_add_to_it() {
    let w = four([&[(5_100, Some(8_000))], &[], &[], &[]]);
    let inj = [Injected {
        pod: "v0".into(),
        at_ms: 5_000,
        what: "test deleted the pod".into(),
    }];
    assert!(check(&w, &inj, 60_000).violations.is_empty());
    // The operator takes v1 down while the injected v0 is still down.
    let w = four([&[(5_100, Some(8_000))], &[(6_000, Some(7_000))], &[], &[]]);
    let r = check(&w, &inj, 60_000);
    assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
    assert!(r.violations[0].contains("injected"), "{:?}", r.violations);
}

#[test]
fn a_new_key_a_new_genesis_and_a_long_stall_are_violations() {
    let mut w = four([&[], &[], &[], &[]]);
    w.nodes[2].keys.push(KeySeen {
        address: "0xe".into(),
        first_seen_ms: 10_000,
    });
    w.genesis.push(GenesisSeen {
        sha256: "h".into(),
        first_seen_ms: 10_000,
    });
    w.now_ms = 30_000;
    let r = check(&w, &[], 5_000);
    assert_eq!(r.violations.len(), 3, "{:?}", r.violations);
}

#[test]
fn an_injected_fault_covers_the_whole_outage_it_caused() {
    // The test deletes v0 at 5.0 s; the witness records deleted, not-started, syncing.
    let mut w = four([&[], &[(6_000, Some(7_000))], &[], &[]]);
    w.nodes[0].down = [
        (5_100, 5_400, "deleted"),
        (5_400, 6_200, "not-started"),
        (6_200, 8_000, "syncing"),
    ]
    .iter()
    .map(|(f, t, c)| Down {
        from_ms: *f,
        to_ms: Some(*t),
        cause: c.to_string(),
        uid: None,
    })
    .collect();
    let inj = [Injected {
        pod: "v0".into(),
        at_ms: 5_000,
        what: "test deleted the pod".into(),
    }];
    // v0's later intervals are the same outage: only v1 (at 6 s) is the operator's, and
    // it starts while the injected outage lasts: a violation, blamed on v1 alone.
    let r = check(&w, &inj, 60_000);
    assert_eq!(r.injected_intervals, 1, "{r:?}");
    assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
    assert!(
        r.violations[0].contains("had v1 down"),
        "{:?}",
        r.violations
    );
}

#[test]
fn a_validator_voted_out_may_come_back_with_a_new_key_but_not_before() {
    // v3 (0xd) leaves the set at block 10; its pod serves a new key from 15 s on.
    let mut w = four([&[], &[], &[], &[]]);
    for b in w.blocks.iter_mut().filter(|b| b.number >= 10) {
        b.validators.retain(|v| v != "0xd");
    }
    w.nodes[3].keys.push(KeySeen {
        address: "0xe".into(),
        first_seen_ms: 15_000,
    });
    assert!(check(&w, &[], 5_000).violations.is_empty());
    // The same change while 0xd is still a validator is an identity change.
    w.nodes[3].keys[1].first_seen_ms = 5_000;
    let r = check(&w, &[], 5_000);
    assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
}
