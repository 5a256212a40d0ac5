//! Table tests of the network's decisions, from fixtures, without an API server.

use super::*;

fn slot(node_type: NodeType, ordinal: i32) -> Slot {
    Slot { node_type, ordinal }
}

fn node(name: &str, node_type: NodeType, outdated: bool) -> RolloutNode {
    RolloutNode {
        name: name.into(),
        node_type,
        outdated,
        ready: true,
        in_sync: true,
        down_settled: false,
    }
}

fn validators(outdated: bool) -> Vec<RolloutNode> {
    (0..4)
        .map(|i| node(&format!("v{i}"), NodeType::Validator, outdated))
        .collect()
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn memory(
    in_progress: &[&str],
    settle_at: Option<i64>,
    started: Option<Timestamp>,
) -> UpgradeStatus {
    UpgradeStatus {
        target_image: "besu:new".into(),
        in_progress: in_progress.iter().map(|s| s.to_string()).collect(),
        settle_at_height: settle_at,
        step_started_at: started.map(|t| t.to_string()),
        ..UpgradeStatus::default()
    }
}

#[test]
fn each_stage_opens_on_its_gate() {
    let gates = |b_up, v_up| Gates {
        bootnodes_wanted: 2,
        validators_wanted: 4,
        genesis_validators: 4,
        bootnodes_up: b_up,
        validators_up: v_up,
    };
    // (bootnodes up, validators up, bootnode open, validator open, member open)
    let cases = [
        (0, 0, true, false, false),
        (1, 0, true, false, false),
        (2, 0, true, true, false),
        (2, 2, true, true, false),
        // 3 of 4 validators are the commit quorum: members may follow the chain.
        (2, 3, true, true, true),
        (2, 4, true, true, true),
    ];
    for (b, v, boot, val, mem) in cases {
        let g = gates(b, v);
        assert_eq!(
            (
                g.open(NodeType::Bootnode),
                g.open(NodeType::Validator),
                g.open(NodeType::Member),
                g.open(NodeType::Prometheus),
            ),
            (boot, val, mem, mem),
            "bootnodes up {b}, validators up {v}"
        );
    }
}

#[test]
fn the_member_gate_counts_the_genesis_validators_when_the_spec_wants_more() {
    // Scaling 4 -> 7 before genesis had 4: quorum of 4 (3), not of 7 (5).
    let g = Gates {
        bootnodes_wanted: 1,
        validators_wanted: 7,
        genesis_validators: 4,
        bootnodes_up: 1,
        validators_up: 3,
    };
    assert!(g.open(NodeType::Member));
    // One validator wanted: the member waits for it.
    let one = Gates {
        bootnodes_wanted: 1,
        validators_wanted: 1,
        genesis_validators: 1,
        bootnodes_up: 1,
        validators_up: 0,
    };
    assert!(!one.open(NodeType::Member));
    // No bootnodes wanted: validators open at once.
    let none = Gates {
        validators_wanted: 4,
        genesis_validators: 4,
        ..Gates::default()
    };
    assert!(none.open(NodeType::Validator));
}

#[test]
fn a_bring_up_creates_only_missing_keyed_genesis_nodes_of_open_roles() {
    let slots = [
        slot(NodeType::Bootnode, 0),
        slot(NodeType::Validator, 0),
        slot(NodeType::Validator, 1),
        slot(NodeType::Validator, 4),
        slot(NodeType::Member, 0),
    ];
    let all = |_: &Slot| true;
    let none = |_: &Slot| false;
    // Only bootnodes open.
    assert_eq!(
        bring_up_slots(&slots, &[NodeType::Bootnode], 4, none, all),
        vec![slot(NodeType::Bootnode, 0)]
    );
    // Validators beyond genesis (ordinal 4 of a 4-validator genesis) wait for a scaling
    // step; validator 1 has no valid key yet; validator 0 exists already.
    let exists = |s: &Slot| *s == slot(NodeType::Validator, 0);
    let keyed = |s: &Slot| *s != slot(NodeType::Validator, 1);
    assert_eq!(
        bring_up_slots(
            &slots,
            &[NodeType::Validator, NodeType::Member],
            4,
            exists,
            keyed
        ),
        vec![slot(NodeType::Member, 0)]
    );
    // Before genesis exists its count is the spec's: every validator in it is created.
    assert_eq!(
        bring_up_slots(&slots, &[NodeType::Validator], 5, none, all),
        vec![
            slot(NodeType::Validator, 0),
            slot(NodeType::Validator, 1),
            slot(NodeType::Validator, 4)
        ]
    );
    // Nothing open, nothing created.
    assert!(bring_up_slots(&slots, &[], 4, none, all).is_empty());
}

#[test]
fn a_new_step_records_its_nodes_and_start_and_permits_them() {
    let nodes = validators(true);
    let d = decide_rollout(&nodes, None, |_| false, Some(100), Some(true), at(0));
    assert_eq!(d.step, RolloutStep::Update(vec!["v0".into()]));
    assert_eq!(d.update, vec!["v0".to_string()]);
    assert_eq!(d.permit, vec!["v0".to_string()]);
    assert!(d.withheld.is_empty());
    assert_eq!(d.in_progress, vec!["v0".to_string()]);
    assert_eq!(d.settle_at, None);
    assert_eq!(d.step_started_at, Some(at(0).to_string()));
    assert!(d.rolling(&nodes));
}

#[test]
fn a_step_in_progress_keeps_its_permit_and_start_until_its_nodes_are_back() {
    let mut nodes = validators(true);
    nodes[0].outdated = false;
    nodes[0].ready = false;
    let previous = memory(&["v0"], None, Some(at(0)));
    let d = decide_rollout(
        &nodes,
        Some(&previous),
        |_| false,
        Some(101),
        Some(true),
        at(20),
    );
    // v0 is down (not settled): the budget of 1 is used, nothing new is picked.
    assert!(matches!(d.step, RolloutStep::Wait(_)), "{:?}", d.step);
    assert!(d.update.is_empty());
    assert_eq!(d.in_progress, vec!["v0".to_string()]);
    // v0 itself is the one down: its own permit stays within the budget.
    assert_eq!(d.permit, vec!["v0".to_string()]);
    assert_eq!(d.step_started_at, Some(at(0).to_string()));
}

#[test]
fn a_step_whose_nodes_are_back_settles_two_blocks_before_the_next() {
    let mut nodes = validators(true);
    nodes[0].outdated = false;
    let previous = memory(&["v0"], None, Some(at(0)));
    let back = |n: &str| n == "v0";
    // v0 came back at height 120: the next step waits for 122.
    let d = decide_rollout(&nodes, Some(&previous), back, Some(120), Some(true), at(30));
    assert!(d.in_progress.is_empty());
    assert_eq!(d.settle_at, Some(122));
    assert!(matches!(d.step, RolloutStep::Wait(_)), "{:?}", d.step);
    assert!(d.update.is_empty() && d.permit.is_empty());
    // At 121, still waiting; at 122, v1 is next.
    let settling = memory(&[], Some(122), Some(at(0)));
    let d = decide_rollout(&nodes, Some(&settling), back, Some(121), Some(true), at(31));
    assert!(matches!(d.step, RolloutStep::Wait(_)), "{:?}", d.step);
    assert_eq!(d.settle_at, Some(122));
    let d = decide_rollout(&nodes, Some(&settling), back, Some(122), Some(true), at(33));
    assert_eq!(d.update, vec!["v1".to_string()]);
    assert_eq!(d.settle_at, None);
    assert_eq!(d.step_started_at, Some(at(33).to_string()));
    // With no head known the settle height cannot be checked: not held back by it.
    let d = decide_rollout(&nodes, Some(&settling), back, None, Some(true), at(34));
    assert_eq!(d.update, vec!["v1".to_string()]);
}

#[test]
fn a_permit_is_withheld_and_the_node_leaves_the_step_when_another_validator_went_down() {
    let mut nodes = validators(true);
    // v1 was picked by the last reconcile; v2's pod went down since.
    nodes[2].ready = false;
    let previous = memory(&["v1"], None, Some(at(0)));
    let d = decide_rollout(
        &nodes,
        Some(&previous),
        |_| false,
        Some(50),
        Some(true),
        at(5),
    );
    assert_eq!(d.withheld, vec!["v1".to_string()]);
    assert!(d.permit.is_empty());
    assert!(d.in_progress.is_empty());
    // A lagging validator counts against the budget too.
    let mut lagging = validators(true);
    lagging[3].in_sync = false;
    let d = decide_rollout(
        &lagging,
        Some(&previous),
        |_| false,
        Some(50),
        Some(true),
        at(5),
    );
    assert_eq!(d.withheld, vec!["v1".to_string()]);
}

#[test]
fn a_permit_is_within_budget_only_while_the_other_validators_leave_room() {
    let n = |name: &str, ready: bool, in_sync: bool| RolloutNode {
        name: name.into(),
        node_type: NodeType::Validator,
        outdated: true,
        ready,
        in_sync,
        down_settled: !ready,
    };
    let mut nodes = vec![
        n("v0", true, true),
        n("v1", true, true),
        n("v2", true, true),
        n("v3", true, true),
    ];
    assert!(permit_within_budget(&nodes, "v0"));
    // v2's pod was deleted after v0 was picked: v0 must wait.
    nodes[2].ready = false;
    assert!(!permit_within_budget(&nodes, "v0"));
    // A lagging or silent validator counts too.
    nodes[2] = n("v2", true, false);
    assert!(!permit_within_budget(&nodes, "v0"));
    // v2 itself, down already, may be updated.
    nodes[2] = n("v2", false, false);
    assert!(permit_within_budget(&nodes, "v2"));
    // Not if it went not Ready only just now: its pod may be back already.
    nodes[0].ready = false;
    nodes[2].down_settled = false;
    assert!(!permit_within_budget(&nodes, "v2"));
    nodes[0].ready = true;
    nodes[2] = n("v2", true, true);
    assert!(permit_within_budget(&nodes, "v0"));
    // A bootnode or member takes no validator down; an unknown node neither.
    let mut mixed = nodes.clone();
    mixed[1].ready = false;
    mixed.push(node("b0", NodeType::Bootnode, true));
    assert!(permit_within_budget(&mixed, "b0"));
    assert!(permit_within_budget(&mixed, "nobody"));
}

#[test]
fn a_stalled_chain_stops_the_rollout_but_a_node_down_already_is_still_updated() {
    let nodes = validators(true);
    let d = decide_rollout(&nodes, None, |_| false, Some(10), Some(false), at(0));
    assert!(matches!(d.step, RolloutStep::Stalled(_)), "{:?}", d.step);
    assert!(d.update.is_empty() && d.permit.is_empty() && d.in_progress.is_empty());
    let [stalled, upgrading] = rollout_conditions(&d, "besu:new", 2, at(0));
    assert_eq!(
        (stalled.status, stalled.reason.as_str()),
        (true, "ChainNotProducing")
    );
    assert_eq!(
        (upgrading.status, upgrading.reason.as_str()),
        (true, "Stalled")
    );
    // A validator down for a while is how a bad image is reverted: updated even now.
    let mut down = validators(true);
    down[3].ready = false;
    down[3].down_settled = true;
    let d = decide_rollout(&down, None, |_| false, Some(10), Some(false), at(0));
    assert_eq!(d.update, vec!["v3".to_string()]);
    assert_eq!(d.permit, vec!["v3".to_string()]);
    // An unknown chain (no node answered) does not count as stalled.
    let d = decide_rollout(&nodes, None, |_| false, None, None, at(0));
    assert_eq!(d.update, vec!["v0".to_string()]);
}

#[test]
fn a_step_that_waits_longer_than_fifteen_block_periods_reports_itself_stalled() {
    let mut nodes = validators(true);
    nodes[0].outdated = false;
    nodes[0].ready = false;
    let previous = memory(&["v0"], None, Some(at(0)));
    // (block period s, seconds since the step started, stalled)
    let cases = [
        (2, 59, false),
        (2, 60, false),
        (2, 61, true),
        (5, 75, false),
        (5, 76, true),
    ];
    for (period, waited, stalled) in cases {
        let d = decide_rollout(
            &nodes,
            Some(&previous),
            |_| false,
            Some(7),
            Some(true),
            at(waited),
        );
        let [s, upgrading] = rollout_conditions(&d, "besu:bad", period, at(waited));
        assert_eq!(s.status, stalled, "period {period}, waited {waited}");
        if stalled {
            assert_eq!(s.reason, "NodeNotReady");
            assert!(
                s.message.contains("v0") && s.message.contains("besu:bad"),
                "{}",
                s.message
            );
        }
        assert!(upgrading.status);
    }
    assert_eq!(step_stall_after(0), 60);
    assert_eq!(step_stall_after(10), 150);
}

#[test]
fn the_upgrade_status_follows_the_decision() {
    let mut nodes = validators(true);
    nodes.push(node("b0", NodeType::Bootnode, false));
    let d = decide_rollout(&nodes, None, |_| false, Some(9), Some(true), at(0));
    let u = upgrade_status(&d, &nodes, None, "besu:new").expect("rolling");
    assert_eq!(u.target_image, "besu:new");
    assert_eq!(u.in_progress, vec!["v0".to_string()]);
    assert_eq!(u.done, vec!["b0".to_string()]);
    assert_eq!(u.pending, vec!["v1", "v2", "v3"]);
    let [stalled, upgrading] = rollout_conditions(&d, "besu:new", 2, at(0));
    assert!(!stalled.status);
    assert_eq!(
        (upgrading.reason.as_str(), upgrading.message.as_str()),
        ("Updating", "updating v0")
    );
    // Once nothing is outdated and nothing in progress: done, with every node listed,
    // the last target image kept.
    let current = validators(false);
    let previous = memory(&[], Some(30), Some(at(0)));
    let d = decide_rollout(
        &current,
        Some(&previous),
        |_| true,
        Some(40),
        Some(true),
        at(90),
    );
    assert_eq!(d.step, RolloutStep::Done);
    assert!(!d.rolling(&current));
    let u = upgrade_status(&d, &current, Some(&previous), "besu:new").expect("kept");
    assert_eq!(u.done.len(), 4);
    assert!(u.in_progress.is_empty() && u.pending.is_empty());
    assert_eq!((u.settle_at_height, u.step_started_at), (None, None));
    let [_, upgrading] = rollout_conditions(&d, "besu:new", 2, at(90));
    assert_eq!(
        (upgrading.status, upgrading.reason.as_str()),
        (false, "UpToDate")
    );
    // Never rolled: no upgrade status at all.
    assert_eq!(upgrade_status(&d, &current, None, "besu:new"), None);
}

fn addr(b: u8) -> Address {
    Address([b; 20])
}

fn proposals(list: &[(&str, &[(u8, bool)])]) -> Proposals {
    list.iter()
        .map(|(node, held)| {
            (
                node.to_string(),
                held.iter().map(|(a, add)| (addr(*a), *add)).collect(),
            )
        })
        .collect()
}

fn reachable(nodes: &[&str]) -> BTreeMap<String, ()> {
    nodes.iter().map(|n| (n.to_string(), ())).collect()
}

#[test]
fn a_vote_asks_the_chosen_voters_that_do_not_hold_it_yet() {
    let step = ScalingStep::Vote {
        ordinal: 4,
        address: addr(4),
        add: true,
        voters: vec![0, 1, 2],
    };
    let pending = proposals(&[
        ("n-validator-0", &[(4, true)]),
        ("n-validator-1", &[]),
        ("n-validator-2", &[(4, false)]),
        ("n-validator-3", &[(4, true)]),
    ]);
    // validator-2 holds the opposite proposal: asked again; validator-3 was not chosen
    // but holds it: counted. validator-1 is not reachable.
    let all = reachable(&["n-validator-0", "n-validator-2", "n-validator-3"]);
    let v = votes("n", &step, &pending, &all);
    assert_eq!(v.holding, vec!["n-validator-0", "n-validator-3"]);
    assert_eq!(v.ask, vec!["n-validator-2"]);
    // A reachable validator whose proposals were not read is neither.
    let v = votes("n", &step, &proposals(&[]), &all);
    assert_eq!(v, Votes::default());
    // Any other step asks nobody.
    let none = votes("n", &ScalingStep::Converged, &pending, &all);
    assert_eq!(none, Votes::default());
}

#[test]
fn proposals_that_serve_no_step_are_discarded_and_say_whether_they_happened() {
    let onchain: BTreeSet<Address> = [addr(1), addr(2), addr(4)].into_iter().collect();
    let pending = proposals(&[
        // The current step's proposal stays; the add of 4 happened; removing 2 is no
        // longer wanted.
        ("n-validator-0", &[(5, true), (4, true), (2, false)]),
        // Unreachable: left alone.
        ("n-validator-1", &[(4, true)]),
    ]);
    let step = ScalingStep::Vote {
        ordinal: 5,
        address: addr(5),
        add: true,
        voters: vec![0],
    };
    let d = discards(
        Some(&step),
        &pending,
        &reachable(&["n-validator-0"]),
        &onchain,
    );
    assert_eq!(
        d,
        vec![
            Discard {
                node: "n-validator-0".into(),
                address: addr(2),
                add: false,
                done: false
            },
            Discard {
                node: "n-validator-0".into(),
                address: addr(4),
                add: true,
                done: true
            },
        ]
    );
    // Converged: every proposal goes, the current one too.
    let d = discards(
        Some(&ScalingStep::Converged),
        &pending,
        &reachable(&["n-validator-0"]),
        &onchain,
    );
    assert_eq!(d.len(), 3);
    // A removal that happened is done.
    let removed = proposals(&[("n-validator-0", &[(3, false)])]);
    let d = discards(None, &removed, &reachable(&["n-validator-0"]), &onchain);
    assert!(d[0].done);
}

#[test]
fn the_chain_counts_as_stalled_after_three_periods_or_a_round_change() {
    let s = std::time::Duration::from_secs;
    // (block period, request timeout, window)
    for (period, timeout, window) in [(2, 4, s(10)), (1, 1, s(5)), (5, 4, s(17)), (0, 0, s(5))] {
        assert_eq!(
            stall_window(period, timeout),
            window,
            "{period} s, {timeout} s"
        );
    }
}
