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

/// Every branch of the network's requeue: only the chain, a heal or the safety net
/// wakes a network that a watch event would not.
#[test]
fn a_network_sleeps_on_timers_only_where_no_watch_event_can_wake_it() {
    use NetworkPhase::*;
    let rest = Duration::from_secs(15);
    let s = Duration::from_secs;
    let cases = [
        // (phase, only nodes awaited, heal due in, expected)
        (Ready, true, None, rest),
        (Ready, false, Some(s(3)), rest),
        (Degraded, true, None, s(60)),
        (Creating, true, None, NODE_WAIT_SAFETY_NET),
        (Pending, true, None, NODE_WAIT_SAFETY_NET),
        (Creating, true, Some(s(20)), s(20)),
        (Creating, true, Some(s(0)), s(1)),
        (Creating, true, Some(s(90)), NODE_WAIT_SAFETY_NET),
        (Creating, false, None, CHAIN_WAIT),
        (Pending, false, Some(s(5)), CHAIN_WAIT),
    ];
    for (phase, only_nodes, heal, want) in cases {
        assert_eq!(
            requeue_after(phase, only_nodes, heal, rest),
            want,
            "{phase:?} only_nodes={only_nodes} heal={heal:?}"
        );
    }
}

// The plan, from an `Observed` built here: the sample network (2 bootnodes, 4
// validators, 1 member, Prometheus and Grafana) with every key valid and its genesis
// written, unless a test says otherwise.

pub(in crate::controller::network) mod plan {
    use std::sync::Arc;

    use besu_operator_api::{BesuNetwork, BesuNodeStatus, NodePhase};
    use kube::ResourceExt;

    use super::super::*;
    use super::at;
    use crate::chain::key::NodeKey;
    use crate::controller::chain::ChainView;
    use crate::controller::key_identity::KeyIdentity;
    use crate::controller::network::keys::key_slots;
    use crate::controller::network::observe::{Observed, PodsSeen};
    use crate::render::network::slots;
    use crate::rpc::Endpoint;

    pub(in crate::controller::network) fn network(validators: i32, members: i32) -> BesuNetwork {
        let root = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
        let text =
            std::fs::read_to_string(format!("{root}/samples/qbft-network.yaml")).expect("sample");
        let mut net: BesuNetwork = serde_yaml::from_str(&text).expect("yaml");
        net.metadata.namespace = Some("ns".into());
        net.metadata.uid = Some("uid-1".into());
        net.metadata.generation = Some(1);
        net.spec.validators = validators;
        net.spec.members = members;
        net
    }

    /// A fixed key per slot: bootnodes 1.., validators 11.., members 21...
    pub(in crate::controller::network) fn key_of(slot: &Slot) -> NodeKey {
        let base = match slot.node_type {
            NodeType::Bootnode => 1,
            NodeType::Validator => 11,
            _ => 21,
        };
        let byte = u8::try_from(base + slot.ordinal).expect("small");
        NodeKey::from_bytes(&[byte; 32]).expect("key")
    }

    pub(in crate::controller::network) fn address(ordinal: i32) -> Address {
        key_of(&Slot {
            node_type: NodeType::Validator,
            ordinal,
        })
        .address()
    }

    /// The network with keys and genesis (of `genesis` validators), no node yet.
    pub(in crate::controller::network) fn observed(net: BesuNetwork, genesis: i32) -> Observed {
        let nodes = BTreeMap::new();
        let key_slots = key_slots(&net, &nodes);
        let keys = key_slots
            .iter()
            .map(|s| {
                let k = key_of(s);
                (*s, KeyIdentity::Valid(k.public_key(), k.address()))
            })
            .collect();
        Observed {
            slots: slots(&net),
            network: Arc::new(net),
            key_slots,
            keys,
            genesis_validators: Some((0..genesis).map(address).collect()),
            genesis_checksum: Some("abc".into()),
            nodes,
            pods: PodsSeen::default(),
            chain: ChainView::default(),
            advancing: Some(true),
            fresh_chain: true,
            snapshots: None,
            restore: None,
        }
    }

    /// Adds the node of `slot`, as desired now, Ready and reachable at `height`.
    pub(in crate::controller::network) fn with_node(
        o: &mut Observed,
        node_type: NodeType,
        ordinal: i32,
        height: u64,
    ) {
        let enodes = o.bootnode_enodes();
        let mut node = match node_type {
            NodeType::Prometheus | NodeType::Grafana => {
                crate::render::monitoring::desired_monitoring_node(&o.network, node_type)
                    .expect("render")
            }
            _ => desired_besu_node(&o.network, node_type, ordinal, &enodes).expect("render"),
        };
        let hash = crate::controller::applied_hash(&node).expect("hash");
        node.annotations_mut()
            .insert(crate::controller::APPLIED_HASH_ANNOTATION.into(), hash);
        node.status = Some(BesuNodeStatus {
            phase: NodePhase::Ready,
            ..BesuNodeStatus::default()
        });
        let name = node.name_any();
        o.pods
            .endpoints
            .insert(name.clone(), Endpoint::new(&name, "198.18.0.9", 8545));
        o.chain.heights.insert(name.clone(), height);
        o.chain.head = o.chain.head.max(Some(height));
        o.nodes.insert(name, node);
        // A node beyond the spec is a key slot too.
        o.key_slots = key_slots(&o.network, &o.nodes);
        for s in &o.key_slots {
            let k = key_of(s);
            o.keys
                .entry(*s)
                .or_insert_with(|| KeyIdentity::Valid(k.public_key(), k.address()));
        }
    }

    pub(in crate::controller::network) fn all_nodes(
        o: &mut Observed,
        validators: i32,
        height: u64,
    ) {
        for b in 0..2 {
            with_node(o, NodeType::Bootnode, b, height);
        }
        for v in 0..validators {
            with_node(o, NodeType::Validator, v, height);
        }
    }

    pub(in crate::controller::network) fn names(
        nodes: &[besu_operator_api::BesuNode],
    ) -> Vec<String> {
        nodes.iter().map(ResourceExt::name_any).collect()
    }

    #[test]
    fn the_stages_create_nothing_before_genesis_and_then_only_open_missing_nodes() {
        let mut o = observed(network(4, 1), 4);
        o.genesis_checksum = None;
        assert!(
            stage_nodes(&o, &[NodeType::Bootnode])
                .expect("plan")
                .is_empty()
        );
        o.genesis_checksum = Some("abc".into());
        assert_eq!(
            names(&stage_nodes(&o, &[NodeType::Bootnode]).expect("plan")),
            ["qbft-bootnode-0", "qbft-bootnode-1"]
        );
        with_node(&mut o, NodeType::Bootnode, 0, 0);
        assert_eq!(
            names(&stage_nodes(&o, &[NodeType::Bootnode, NodeType::Member]).expect("plan")),
            ["qbft-bootnode-1", "qbft-member-0"]
        );
        // A bootnode key missing: nothing is created (every node needs its enode).
        o.keys.insert(
            Slot {
                node_type: NodeType::Bootnode,
                ordinal: 1,
            },
            KeyIdentity::Invalid("gone".into()),
        );
        assert!(
            stage_nodes(&o, &[NodeType::Member])
                .expect("plan")
                .is_empty()
        );
    }

    #[test]
    fn a_new_validator_is_created_then_voted_in_by_the_chosen_voters() {
        // Genesis had 4; the spec wants 5.
        let mut o = observed(network(5, 0), 4);
        all_nodes(&mut o, 4, 100);
        o.chain.onchain = Some((0..4).map(address).collect());
        let p = plan(&o, at(0)).expect("plan");
        assert_eq!(p.scaling, Some(ScalingStep::CreateNode { ordinal: 4 }));
        assert_eq!(names(&p.scale_up), ["qbft-validator-4"]);
        assert!(p.votes.is_none());

        // Once it runs and follows the head: 3 of the 4 vote (validators 0-2); 0 holds
        // the proposal already, and holds another one no step wants.
        with_node(&mut o, NodeType::Validator, 4, 100);
        let v0 = "qbft-validator-0".to_string();
        o.chain.pending.insert(
            v0.clone(),
            [(address(4), true), (address(9), false)]
                .into_iter()
                .collect(),
        );
        for v in 1..4 {
            o.chain
                .pending
                .insert(format!("qbft-validator-{v}"), BTreeMap::new());
        }
        let p = plan(&o, at(0)).expect("plan");
        let votes = p.votes.expect("votes");
        assert_eq!(
            (votes.address, votes.add, votes.needed),
            (address(4), true, 3)
        );
        assert_eq!(votes.holding, 1);
        assert_eq!(votes.ask, ["qbft-validator-1", "qbft-validator-2"]);
        assert!(p.scale_up.is_empty());
        assert_eq!(p.discards.len(), 1);
        assert_eq!(
            (p.discards[0].node.as_str(), p.discards[0].done),
            (v0.as_str(), true)
        );

        // The observer's view at rest: nothing is discarded on it.
        o.fresh_chain = false;
        assert!(plan(&o, at(0)).expect("plan").discards.is_empty());
    }

    #[test]
    fn a_voted_out_validator_goes_and_its_key_only_under_delete() {
        let mut o = observed(network(4, 0), 5);
        all_nodes(&mut o, 5, 100);
        o.chain.onchain = Some((0..4).map(address).collect());
        let removal = |o: &Observed| plan(o, at(0)).expect("plan").removal;
        let mut net = (*o.network).clone();
        net.spec.deletion_policy = besu_operator_api::DeletionPolicy::Retain;
        o.network = Arc::new(net.clone());
        assert_eq!(
            removal(&o),
            Some(Removal {
                ordinal: 4,
                node: "qbft-validator-4".into(),
                key_secret: None,
            })
        );
        net.spec.deletion_policy = besu_operator_api::DeletionPolicy::Delete;
        o.network = Arc::new(net);
        assert_eq!(
            removal(&o).and_then(|r| r.key_secret),
            Some(crate::render::network::key_secret_name(
                "qbft",
                NodeType::Validator,
                4
            ))
        );
        // Still on-chain: voted out first (validators 0-2 vote), the node stays.
        o.chain.onchain = Some((0..5).map(address).collect());
        let p = plan(&o, at(0)).expect("plan");
        assert!(p.removal.is_none());
        assert_eq!(p.votes.map(|v| (v.ordinal, v.add)), Some((4, false)));
        assert!(p.remove.is_empty());
    }

    #[test]
    fn members_and_monitoring_no_longer_wanted_go_at_once() {
        let mut o = observed(network(4, 1), 4);
        all_nodes(&mut o, 4, 100);
        with_node(&mut o, NodeType::Member, 0, 100);
        with_node(&mut o, NodeType::Prometheus, 0, 100);
        o.chain.onchain = Some((0..4).map(address).collect());
        let mut net = (*o.network).clone();
        net.spec.members = 0;
        net.spec.monitoring.prometheus.enabled = false;
        net.spec.monitoring.grafana.enabled = true;
        o.network = Arc::new(net);
        o.slots = slots(&o.network);
        o.key_slots = key_slots(&o.network, &o.nodes);
        let p = plan(&o, at(0)).expect("plan");
        assert_eq!(p.remove, ["qbft-member-0"]);
        assert_eq!(p.monitoring_off, ["qbft-prometheus"]);
        assert_eq!(names(&p.monitoring), ["qbft-grafana"]);
        assert_eq!(p.scaling, Some(ScalingStep::Converged));
        assert!(p.update.is_empty() && p.permit.is_empty());
        assert!(p.budget.is_some());
    }

    #[test]
    fn a_changed_spec_is_rolled_out_one_step_at_a_time() {
        let mut o = observed(network(4, 1), 4);
        all_nodes(&mut o, 4, 100);
        with_node(&mut o, NodeType::Member, 0, 100);
        o.chain.onchain = Some((0..4).map(address).collect());
        let p = plan(&o, at(0)).expect("plan");
        assert!(
            p.update.is_empty(),
            "nothing outdated: {:?}",
            names(&p.update)
        );
        assert!(!p.rollout.rolling(&p.rollout_nodes));
        let mut net = (*o.network).clone();
        net.spec.image = "hyperledger/besu:26.4.0".into();
        o.network = Arc::new(net);
        let p = plan(&o, at(0)).expect("plan");
        assert!(p.rollout.rolling(&p.rollout_nodes));
        assert_eq!(names(&p.update), p.rollout.update);
        let validators = p
            .update
            .iter()
            .filter(|n| n.spec.node_type == NodeType::Validator)
            .count();
        assert!(!p.update.is_empty() && p.update.len() < 7);
        assert!(validators <= max_unavailable_validators(4));
        // A requeue while a rollout runs reads the chain again; at rest the resync does.
        let rest = Duration::from_secs(300);
        assert_eq!(requeue(&o, &p, NetworkPhase::Creating, rest), CHAIN_WAIT);
    }

    #[test]
    fn the_status_reports_what_was_observed_planned_and_applied() {
        use crate::controller::network::apply::Applied;
        use crate::controller::network::conditions::network_status;
        let condition = |s: &besu_operator_api::BesuNetworkStatus, t: &str| {
            s.conditions
                .iter()
                .find(|c| c.type_ == t)
                .map(|c| (c.status.clone(), c.reason.clone()))
        };
        // A vote under way: 1 voter held the proposal, the plan asked 2, 1 answered.
        let mut o = observed(network(5, 0), 4);
        all_nodes(&mut o, 4, 100);
        with_node(&mut o, NodeType::Validator, 4, 100);
        o.chain.onchain = Some((0..4).map(address).collect());
        o.chain.pending.insert(
            "qbft-validator-0".into(),
            [(address(4), true)].into_iter().collect(),
        );
        for v in 1..4 {
            o.chain
                .pending
                .insert(format!("qbft-validator-{v}"), BTreeMap::new());
        }
        let p = plan(&o, at(0)).expect("plan");
        let applied = Applied {
            holding: 2,
            ..Applied::default()
        };
        let s = network_status(&o, &p, &applied, &[], at(0));
        let pending = &s.validators.pending;
        assert_eq!(pending.len(), 1);
        assert_eq!(
            (
                pending[0].ordinal,
                pending[0].action.as_str(),
                pending[0].votes,
                pending[0].needed
            ),
            (4, "add", 2, 3)
        );
        assert_eq!(
            condition(&s, "ValidatorSetConverged"),
            Some(("False".into(), "Changing".into()))
        );
        assert_eq!((s.validators.desired, s.validators.ready), (5, 5));
        assert_eq!(s.validators.on_chain.len(), 4);
        assert_eq!(s.bootnode_enodes.len(), 2);
        assert_eq!(s.genesis_checksum.as_deref(), Some("abc"));
        assert_eq!(s.phase, NetworkPhase::Ready);

        // A missing key: KeysReady False, and the problem makes the network Degraded.
        o.keys.insert(
            Slot {
                node_type: NodeType::Validator,
                ordinal: 3,
            },
            KeyIdentity::Invalid("key Secret qbft-validator-3-key is missing".into()),
        );
        let problems = [(
            "KeyMissing",
            "key Secret qbft-validator-3-key is missing".to_string(),
        )];
        let s = network_status(&o, &p, &Applied::default(), &problems, at(0));
        assert_eq!(
            condition(&s, "KeysReady"),
            Some(("False".into(), "KeyMissing".into()))
        );
        assert_eq!(
            condition(&s, "Degraded"),
            Some(("True".into(), "KeyMissing".into()))
        );
        assert_eq!(s.phase, NetworkPhase::Degraded);
        assert!(s.validators.pending.iter().all(|c| c.votes == 0));

        // No genesis yet: Pending, and GenesisReady says what it waits for.
        o.genesis_checksum = None;
        let s = network_status(&o, &p, &Applied::default(), &[], at(0));
        assert_eq!(
            condition(&s, "GenesisReady"),
            Some(("False".into(), "WaitingForKeys".into()))
        );
        assert_eq!(s.phase, NetworkPhase::Pending);
    }
}
