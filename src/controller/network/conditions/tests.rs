//! Table tests of the network's conditions and phase, from fixtures.

use super::*;
use crate::chain::key::Address;

fn gates(bootnodes_up: usize, validators_up: usize) -> Gates {
    Gates {
        bootnodes_wanted: 1,
        validators_wanted: 4,
        genesis_validators: 4,
        bootnodes_up,
        validators_up,
    }
}

fn find<'a>(list: &'a [DesiredCondition], t: &str) -> &'a DesiredCondition {
    list.iter()
        .find(|c| c.type_ == t)
        .unwrap_or_else(|| panic!("no {t} condition"))
}

#[test]
fn the_phase_sums_up_genesis_readiness_and_problems() {
    let roles = |b, v, m| Roles {
        bootnodes: (b, 1),
        validators: (v, 4),
        members: (m, 1),
    };
    let problem = [("KeyMissing", "key Secret x is missing".to_string())];
    type Problems<'a> = &'a [(&'static str, String)];
    // (genesis written, roles, problems, phase, Ready reason)
    let cases: [(bool, Roles, Problems, NetworkPhase, &str); 6] = [
        (
            false,
            roles(0, 0, 0),
            &[],
            NetworkPhase::Pending,
            "Creating",
        ),
        (
            true,
            roles(1, 2, 0),
            &[],
            NetworkPhase::Creating,
            "Creating",
        ),
        (
            true,
            roles(1, 4, 1),
            &[],
            NetworkPhase::Ready,
            "AllNodesReady",
        ),
        // Every pod Ready is not enough without a genesis of the spec.
        (
            false,
            roles(1, 4, 1),
            &[],
            NetworkPhase::Pending,
            "Creating",
        ),
        (
            true,
            roles(1, 4, 1),
            &problem,
            NetworkPhase::Degraded,
            "Degraded",
        ),
        (
            false,
            roles(0, 0, 0),
            &problem,
            NetworkPhase::Degraded,
            "Degraded",
        ),
    ];
    for (genesis, r, problems, phase, reason) in cases {
        let (list, got) = readiness(&r, &gates(1, 3), genesis, problems);
        assert_eq!(got, phase, "{r:?} genesis={genesis} problems={problems:?}");
        let ready = find(&list, "Ready");
        assert_eq!(ready.reason, reason);
        assert_eq!(ready.status, phase == NetworkPhase::Ready);
        let degraded = find(&list, "Degraded");
        assert_eq!(degraded.status, !problems.is_empty());
        if let Some((why, message)) = problems.first() {
            assert_eq!(degraded.reason, *why);
            assert_eq!(degraded.message, *message);
        }
    }
}

#[test]
fn each_role_says_what_it_waits_for() {
    let r = Roles {
        bootnodes: (0, 1),
        validators: (0, 4),
        members: (0, 2),
    };
    // Nothing up: validators wait for the bootnodes, members for 3 validators.
    let (list, _) = readiness(&r, &gates(0, 0), true, &[]);
    assert_eq!(
        find(&list, "BootnodesReady").message,
        "0/1 ready; waiting for bootnode pods"
    );
    assert_eq!(
        find(&list, "ValidatorsReady").message,
        "0/4 ready; validators start once every bootnode is Ready"
    );
    assert_eq!(
        find(&list, "MembersReady").message,
        "0/2 ready; members start once 3 validators are Ready"
    );
    // Bootnode up: validators are coming; 3 validators up: members are coming.
    let (list, _) = readiness(&r, &gates(1, 3), true, &[]);
    assert_eq!(
        find(&list, "ValidatorsReady").message,
        "0/4 ready; waiting for validator pods (members start at 3 ready)"
    );
    assert_eq!(
        find(&list, "MembersReady").message,
        "0/2 ready; waiting for member pods"
    );
    let done = Roles {
        bootnodes: (1, 1),
        validators: (4, 4),
        members: (2, 2),
    };
    let (list, _) = readiness(&done, &gates(1, 4), true, &[]);
    for t in ["BootnodesReady", "ValidatorsReady", "MembersReady"] {
        assert!(find(&list, t).status, "{t}");
        assert_eq!(find(&list, t).reason, "AllReady");
    }
}

#[test]
fn the_validator_set_condition_follows_the_scaling_step() {
    let a = Address([0x11; 20]);
    // (step, chain error, status, reason)
    let cases: [(Option<ScalingStep>, Option<&str>, bool, &str); 6] = [
        (Some(ScalingStep::Converged), None, true, "Converged"),
        (
            Some(ScalingStep::Foreign(vec![a])),
            None,
            false,
            "UnknownValidator",
        ),
        (
            Some(ScalingStep::CreateNode { ordinal: 4 }),
            None,
            false,
            "Changing",
        ),
        (
            Some(ScalingStep::RemoveNode { ordinal: 4 }),
            None,
            false,
            "Changing",
        ),
        (None, Some("timeout"), false, "ChainUnreachable"),
        (None, None, false, "ChainUnreachable"),
    ];
    for (step, error, status, reason) in cases {
        let c = validator_set(step.as_ref(), error, 4, "net");
        assert_eq!((c.status, c.reason.as_str()), (status, reason), "{step:?}");
    }
    let c = validator_set(
        Some(&ScalingStep::CreateNode { ordinal: 4 }),
        None,
        5,
        "net",
    );
    assert_eq!(
        c.message,
        "starting net-validator-4 as a non-validating node"
    );
    let c = validator_set(None, Some("timeout"), 4, "net");
    assert!(c.message.ends_with(": timeout"), "{}", c.message);
    let c = validator_set(Some(&ScalingStep::Foreign(vec![a])), None, 4, "net");
    assert!(c.message.contains(&a.to_string()), "{}", c.message);
}

#[test]
fn fault_tolerance_and_production_are_reported_in_figures() {
    let cases = [
        (1, false, "TooFewValidators"),
        (3, false, "TooFewValidators"),
        (4, true, "Tolerates"),
        (7, true, "Tolerates"),
    ];
    for (n, status, reason) in cases {
        let c = fault_tolerant(n);
        assert_eq!(
            (c.status, c.reason.as_str()),
            (status, reason),
            "{n} validators"
        );
    }
    assert_eq!(
        fault_tolerant(7).message,
        "7 validators keep producing blocks with up to 2 stopped"
    );
    let window = Duration::from_secs(8);
    assert_eq!(producing(Some(true), window).reason, "HeadAdvancing");
    let stalled = producing(Some(false), window);
    assert_eq!(
        (stalled.status, stalled.reason.as_str()),
        (false, "HeadStalled")
    );
    assert!(stalled.message.contains("for 8 s"), "{}", stalled.message);
    assert_eq!(producing(None, window).reason, "Unknown");
}

fn condition(t: &str, status: bool, reason: &str, message: &str) -> Condition {
    Condition {
        type_: t.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: Some(1),
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ),
    }
}

#[test]
fn a_condition_turning_true_is_announced_once() {
    let before = [
        condition("Ready", false, "Creating", "bringing nodes up"),
        condition("Degraded", false, "AsExpected", "no problem found"),
        condition("ValidatorSetConverged", true, "Converged", "the 4"),
    ];
    let after = [
        condition("Ready", true, "AllNodesReady", "every node is Ready"),
        condition("Degraded", true, "KeyMissing", "key Secret x is missing"),
        condition("ValidatorSetConverged", true, "Converged", "the 4"),
    ];
    let got = events(&before, &after);
    assert_eq!(
        got,
        vec![
            (
                EventType::Normal,
                "Ready".to_string(),
                "every node is Ready".to_string()
            ),
            (
                EventType::Warning,
                "KeyMissing".to_string(),
                "key Secret x is missing".to_string()
            ),
        ]
    );
    // Nothing changed: nothing announced. A condition turning False is not announced.
    assert!(events(&after, &after).is_empty());
    assert!(events(&after, &before).is_empty());
}

#[test]
fn an_out_of_band_validator_is_warned_about_once_per_message() {
    let converged = [condition(
        "ValidatorSetConverged",
        true,
        "Converged",
        "the 4",
    )];
    let foreign = |m: &str| {
        [condition(
            "ValidatorSetConverged",
            false,
            "UnknownValidator",
            m,
        )]
    };
    let first = events(&converged, &foreign("0xaa is on-chain"));
    assert_eq!(
        first,
        vec![(
            EventType::Warning,
            "UnknownValidator".to_string(),
            "0xaa is on-chain".to_string()
        )]
    );
    // Still the same validator: no second Warning, although the condition stays False.
    assert!(events(&foreign("0xaa is on-chain"), &foreign("0xaa is on-chain")).is_empty());
    // Another one appears: a Warning again, the status unchanged.
    assert_eq!(
        events(
            &foreign("0xaa is on-chain"),
            &foreign("0xaa, 0xbb are on-chain")
        )
        .len(),
        1
    );
}

#[test]
fn a_node_stopped_for_a_backup_is_why_the_network_is_not_ready() {
    let r = Roles {
        bootnodes: (1, 1),
        validators: (4, 4),
        members: (0, 1),
    };
    let (mut list, _) = readiness(&r, &gates(1, 4), true, &[]);
    during_backup(&mut list, None);
    assert_eq!(find(&list, "Ready").reason, "Creating");
    let run = besu_operator_api::BackupAttempt {
        node: "qbft-member-0".to_string(),
        snapshot: "qbft-20261129-100000".to_string(),
        phase: "Snapshotting".to_string(),
        ..Default::default()
    };
    during_backup(&mut list, Some(&run));
    let ready = find(&list, "Ready");
    assert_eq!(ready.reason, "BackupInProgress");
    assert!(
        ready
            .message
            .contains("qbft-member-0 is stopped for snapshot qbft-20261129-100000"),
        "{}",
        ready.message
    );
    // Degraded stays Degraded.
    let (mut list, _) = readiness(&r, &gates(1, 4), true, &[("X", "y".to_string())]);
    during_backup(&mut list, Some(&run));
    assert_eq!(find(&list, "Ready").reason, "Degraded");
}
