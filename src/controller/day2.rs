//! Day-2 decisions, pure and unit-tested: validator set changes by on-chain vote, and
//! quorum-safe rolling updates. The network controller observes, calls these, and acts.
//!
//! Rules (besu-facts §6):
//! - a validator is added or removed when more than half of the current validators
//!   (`floor(n/2)+1`, `VoteTally.validatorLimit`) have voted, effective from the next block;
//! - proposals live in each node's memory (`VoteProposer`), so a voter that restarted
//!   must be asked again;
//! - the chain produces blocks while `ceil(2n/3)` validators are up (`BftHelpers`), so at
//!   most `n - ceil(2n/3)` validators may be down at once (at least 1 is allowed, so a
//!   network of fewer than 4 can still be upgraded, with a pause in block production).

use std::collections::BTreeSet;

use besu_operator_api::NodeType;

use crate::chain::key::Address;
use crate::chain::quorum::{commit_quorum, vote_threshold};

/// What the network controller knows about one validator slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorView {
    /// Ordinal within the validators.
    pub ordinal: i32,
    /// The slot's address (from its key).
    pub address: Address,
    /// Whether its `BesuNode` exists.
    pub exists: bool,
    /// Whether its pod is Ready (and reachable over JSON-RPC).
    pub up: bool,
    /// Its chain height, if known.
    pub height: Option<u64>,
}

/// The next step towards the desired validator set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScalingStep {
    /// The on-chain set is exactly the desired validators.
    Converged,
    /// Create the next validator's node; it runs as a non-validator until voted in.
    CreateNode {
        /// Ordinal of the new validator.
        ordinal: i32,
    },
    /// Wait for the new validator's node to be Ready and synced.
    WaitForSync {
        /// Ordinal of the new validator.
        ordinal: i32,
        /// What is awaited.
        reason: String,
    },
    /// Make sure these voters hold the proposal; the change happens on-chain.
    Vote {
        /// Ordinal of the validator being added or removed.
        ordinal: i32,
        /// Its address.
        address: Address,
        /// Add (true) or remove (false).
        add: bool,
        /// Ordinals of the voters, `floor(n/2)+1` of the current on-chain validators.
        voters: Vec<i32>,
    },
    /// The validator has left the on-chain set: delete its node.
    RemoveNode {
        /// Ordinal of the removed validator.
        ordinal: i32,
    },
    /// A change is needed but cannot proceed now.
    Blocked(String),
    /// The desired validators are on-chain, and so are addresses that are none of this
    /// network's validators (voted in outside the operator). Reported, never "fixed": the
    /// operator does not vote out what it did not vote in.
    Foreign(Vec<Address>),
}

/// Decides the next validator-set step. `views` covers every validator slot with a key:
/// ordinals below `desired` and existing nodes above it. `head` is the network's height.
/// Adds come before removals, one validator at a time, lowest ordinal first for adds and
/// highest first for removals.
pub fn next_scaling_step(
    desired: i32,
    onchain: &BTreeSet<Address>,
    views: &[ValidatorView],
    head: u64,
) -> ScalingStep {
    let n = onchain.len();
    let voters_for = |exclude: Option<&Address>| -> Result<Vec<i32>, String> {
        let needed = vote_threshold(n);
        let mut voters: Vec<&ValidatorView> = views
            .iter()
            .filter(|v| onchain.contains(&v.address) && v.up && Some(&v.address) != exclude)
            .collect();
        voters.sort_by_key(|v| v.ordinal);
        if voters.len() < needed {
            return Err(format!(
                "{} of {n} on-chain validators are up; {needed} must vote",
                voters.len()
            ));
        }
        Ok(voters.iter().take(needed).map(|v| v.ordinal).collect())
    };

    // Add the lowest desired validator that is not on-chain.
    let mut missing: Vec<&ValidatorView> = views
        .iter()
        .filter(|v| v.ordinal < desired && !onchain.contains(&v.address))
        .collect();
    missing.sort_by_key(|v| v.ordinal);
    if let Some(v) = missing.first() {
        if !v.exists {
            return ScalingStep::CreateNode { ordinal: v.ordinal };
        }
        let synced = v.height.is_some_and(|h| h.saturating_add(2) >= head);
        if !v.up || !synced {
            // No live figures here: this text lands in a status condition, and a height
            // in it would rewrite status every block for the whole sync (heights and lag
            // are metrics: besu_node_block_height, besu_node_lag_blocks).
            let state = match (v.up, v.height) {
                (false, _) => "it is not Ready yet",
                (true, None) => "its JSON-RPC does not answer yet",
                (true, Some(_)) => "it is still syncing",
            };
            return ScalingStep::WaitForSync {
                ordinal: v.ordinal,
                reason: format!(
                    "validator {} must be Ready and within 2 blocks of the head before it is voted in; {state}",
                    v.ordinal
                ),
            };
        }
        return match voters_for(None) {
            Ok(voters) => ScalingStep::Vote {
                ordinal: v.ordinal,
                address: v.address,
                add: true,
                voters,
            },
            Err(why) => ScalingStep::Blocked(why),
        };
    }

    // Voted out: its node goes before the next vote starts, highest first.
    let mut gone: Vec<&ValidatorView> = views
        .iter()
        .filter(|v| v.ordinal >= desired && v.exists && !onchain.contains(&v.address))
        .collect();
    gone.sort_by_key(|v| std::cmp::Reverse(v.ordinal));
    if let Some(v) = gone.first() {
        return ScalingStep::RemoveNode { ordinal: v.ordinal };
    }
    // Remove the highest validator beyond the desired count that is still on-chain.
    let mut extra: Vec<&ValidatorView> = views
        .iter()
        .filter(|v| v.ordinal >= desired && onchain.contains(&v.address))
        .collect();
    extra.sort_by_key(|v| std::cmp::Reverse(v.ordinal));
    if let Some(v) = extra.first() {
        return match voters_for(Some(&v.address)) {
            Ok(voters) => ScalingStep::Vote {
                ordinal: v.ordinal,
                address: v.address,
                add: false,
                voters,
            },
            Err(why) => ScalingStep::Blocked(why),
        };
    }

    // Review C9: converged means the on-chain set is exactly ours.
    let known: BTreeSet<&Address> = views.iter().map(|v| &v.address).collect();
    let foreign: Vec<Address> = onchain
        .iter()
        .filter(|a| !known.contains(a))
        .copied()
        .collect();
    if !foreign.is_empty() {
        return ScalingStep::Foreign(foreign);
    }
    ScalingStep::Converged
}

/// Validators that may be unavailable at once: `n - ceil(2n/3)`, at least 1.
pub fn max_unavailable_validators(n: usize) -> usize {
    (n - commit_quorum(n)).max(1)
}

/// One node as the rollout sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutNode {
    /// The `BesuNode` name.
    pub name: String,
    /// Its role.
    pub node_type: NodeType,
    /// Whether its spec differs from what the network wants now, or its node controller
    /// holds back a pod template the rollout has not permitted yet.
    pub outdated: bool,
    /// Whether Kubernetes reports its pod Ready on its current spec. Only a node that is
    /// not may be updated outside the rollout's order: it is down already.
    pub ready: bool,
    /// Whether its JSON-RPC confirms it follows the head (within 2 blocks). A Ready node
    /// whose RPC times out or lags is not known to be up: it counts against the
    /// validator budget, but is never restarted on that account.
    pub in_sync: bool,
    /// Whether its pod, listed just now, has been not Ready for at least
    /// [`DOWN_SETTLED`]: it is down, not coming back from a restart. Only such a node is
    /// "down already" and may be updated outside the budget. A pod that was just
    /// recreated (after an eviction, a node failure, a `kubectl delete`) is often Ready
    /// again a moment later, before the node's status says so: restarting it then would
    /// take down a validator that had come back.
    pub down_settled: bool,
}

/// How long a pod must have been not Ready before the rollout treats its node as down
/// already (see [`RolloutNode::down_settled`]).
pub const DOWN_SETTLED: std::time::Duration = std::time::Duration::from_secs(30);

/// What the rollout does now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutStep {
    /// Nothing is outdated.
    Done,
    /// Update these nodes now.
    Update(Vec<String>),
    /// Wait: a previous step has not settled.
    Wait(String),
    /// Stop touching nodes until the chain advances again.
    Stalled(String),
}

fn rollout_rank(t: NodeType) -> u8 {
    match t {
        NodeType::Bootnode => 0,
        NodeType::Member => 1,
        NodeType::Validator => 2,
        NodeType::Prometheus | NodeType::Grafana => 3,
    }
}

/// Decides which outdated nodes to update now: bootnodes, then members, then
/// validators, with at most [`max_unavailable_validators`] validators unavailable at once
/// and one other node at a time. A node whose pod has been not Ready for
/// [`DOWN_SETTLED`] may always be updated (it is down already, so that cannot lower
/// availability, and it is how a bad image is reverted); one that went not Ready only
/// just now counts against the budget like any unavailable node. A node that is Ready but whose RPC does not confirm it is in sync
/// is unavailable for the budget and is never updated for that reason.
/// `settled` says whether the chain advanced enough since the last step;
/// `chain_advancing` whether it advances at all.
pub fn next_rollout_step(
    nodes: &[RolloutNode],
    settled: bool,
    chain_advancing: bool,
) -> RolloutStep {
    let outdated: Vec<&RolloutNode> = nodes.iter().filter(|n| n.outdated).collect();
    if outdated.is_empty() {
        return RolloutStep::Done;
    }
    // Down at the Kubernetes level, for a while, only: an RPC miss, a lag or a pod that
    // is only now coming back is not "down".
    let down_outdated: Vec<String> = outdated
        .iter()
        .filter(|n| !n.ready && n.down_settled)
        .map(|n| n.name.clone())
        .collect();
    if !down_outdated.is_empty() {
        return RolloutStep::Update(down_outdated);
    }
    if !chain_advancing {
        return RolloutStep::Stalled(
            "the chain is not producing blocks; no more nodes are restarted until it does"
                .to_string(),
        );
    }
    let unavailable: Vec<&RolloutNode> = nodes.iter().filter(|n| !n.ready || !n.in_sync).collect();
    if !settled {
        return RolloutStep::Wait(
            "waiting for the chain to advance 2 blocks since the last node came back".to_string(),
        );
    }
    let rank = outdated
        .iter()
        .map(|n| rollout_rank(n.node_type))
        .min()
        .unwrap_or(0);
    let mut group: Vec<&RolloutNode> = outdated
        .into_iter()
        .filter(|n| rollout_rank(n.node_type) == rank)
        .collect();
    group.sort_by(|a, b| a.name.cmp(&b.name));
    if rank == rollout_rank(NodeType::Validator) {
        let validators = nodes
            .iter()
            .filter(|n| n.node_type == NodeType::Validator)
            .count();
        let down = unavailable
            .iter()
            .filter(|n| n.node_type == NodeType::Validator)
            .count();
        let budget = max_unavailable_validators(validators).saturating_sub(down);
        if budget == 0 {
            let names: Vec<String> = unavailable
                .iter()
                .filter(|n| n.node_type == NodeType::Validator)
                .map(|n| {
                    let why = if n.ready {
                        "does not answer JSON-RPC in sync with the head"
                    } else {
                        "not Ready"
                    };
                    format!("{} ({why})", n.name)
                })
                .collect();
            return RolloutStep::Wait(format!(
                "no validator may be restarted while {down} of {validators} are unavailable: {}",
                names.join(", ")
            ));
        }
        return RolloutStep::Update(group.iter().take(budget).map(|n| n.name.clone()).collect());
    }
    if let Some(busy) = unavailable.first() {
        let why = if busy.ready {
            "does not answer JSON-RPC in sync with the head"
        } else {
            "is not Ready yet"
        };
        return RolloutStep::Wait(format!("{} {why}", busy.name));
    }
    RolloutStep::Update(group.iter().take(1).map(|n| n.name.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8) -> Address {
        Address([i; 20])
    }

    fn view(ordinal: i32, exists: bool, up: bool, height: Option<u64>) -> ValidatorView {
        ValidatorView {
            ordinal,
            address: addr(u8::try_from(ordinal).unwrap_or(0) + 1),
            exists,
            up,
            height,
        }
    }

    fn onchain(ordinals: &[i32]) -> BTreeSet<Address> {
        ordinals
            .iter()
            .map(|o| addr(u8::try_from(*o).unwrap_or(0) + 1))
            .collect()
    }

    #[test]
    fn an_unknown_onchain_validator_is_reported_not_converged_and_never_voted_out() {
        let views: Vec<_> = (0..4).map(|o| view(o, true, true, Some(10))).collect();
        let mut chain = onchain(&[0, 1, 2, 3]);
        chain.insert(addr(200));
        assert_eq!(
            next_scaling_step(4, &chain, &views, 10),
            ScalingStep::Foreign(vec![addr(200)])
        );
    }

    #[test]
    fn converged_when_the_chain_has_exactly_the_desired_validators() {
        let views: Vec<_> = (0..4).map(|o| view(o, true, true, Some(10))).collect();
        assert_eq!(
            next_scaling_step(4, &onchain(&[0, 1, 2, 3]), &views, 10),
            ScalingStep::Converged
        );
    }

    /// Review C6: the wait message goes into a status condition, so it must not change
    /// while the node syncs block by block.
    #[test]
    fn the_sync_wait_reason_carries_no_live_heights() {
        let chain = onchain(&[0, 1, 2, 3]);
        let reason_at = |height: u64, head: u64| {
            let mut views: Vec<_> = (0..4).map(|o| view(o, true, true, Some(head))).collect();
            views.push(view(4, true, true, Some(height)));
            match next_scaling_step(5, &chain, &views, head) {
                ScalingStep::WaitForSync { reason, .. } => reason,
                other => panic!("expected WaitForSync, got {other:?}"),
            }
        };
        let first = reason_at(10, 1000);
        assert_eq!(first, reason_at(11, 1001));
        assert_eq!(first, reason_at(500, 1200));
        assert!(!first.contains("1000") && !first.contains("10,"), "{first}");
    }

    #[test]
    fn scale_up_creates_syncs_then_asks_a_majority_of_current_validators() {
        let mut views: Vec<_> = (0..4).map(|o| view(o, true, true, Some(100))).collect();
        views.push(view(4, false, false, None));
        let chain = onchain(&[0, 1, 2, 3]);
        assert_eq!(
            next_scaling_step(5, &chain, &views, 100),
            ScalingStep::CreateNode { ordinal: 4 }
        );
        views[4] = view(4, true, true, Some(50));
        assert!(matches!(
            next_scaling_step(5, &chain, &views, 100),
            ScalingStep::WaitForSync { ordinal: 4, .. }
        ));
        views[4] = view(4, true, true, Some(98));
        // floor(4/2)+1 = 3 voters (VoteTallyTest: with 4 validators, 3 votes add).
        assert_eq!(
            next_scaling_step(5, &chain, &views, 100),
            ScalingStep::Vote {
                ordinal: 4,
                address: addr(5),
                add: true,
                voters: vec![0, 1, 2]
            }
        );
        // A voter down: another up validator takes its place.
        views[1].up = false;
        assert_eq!(
            next_scaling_step(5, &chain, &views, 100),
            ScalingStep::Vote {
                ordinal: 4,
                address: addr(5),
                add: true,
                voters: vec![0, 2, 3]
            }
        );
        views[2].up = false;
        assert!(matches!(
            next_scaling_step(5, &chain, &views, 100),
            ScalingStep::Blocked(_)
        ));
    }

    #[test]
    fn scale_up_goes_one_validator_at_a_time() {
        let mut views: Vec<_> = (0..4).map(|o| view(o, true, true, Some(9))).collect();
        views.push(view(4, false, false, None));
        views.push(view(5, false, false, None));
        let step = next_scaling_step(6, &onchain(&[0, 1, 2, 3]), &views, 9);
        assert_eq!(step, ScalingStep::CreateNode { ordinal: 4 });
    }

    #[test]
    fn scale_down_votes_out_the_highest_ordinal_before_deleting_it() {
        let views: Vec<_> = (0..7).map(|o| view(o, true, true, Some(5))).collect();
        let chain = onchain(&[0, 1, 2, 3, 4, 5, 6]);
        // 7 on-chain: 4 votes; the leaving validator does not vote for itself.
        assert_eq!(
            next_scaling_step(4, &chain, &views, 5),
            ScalingStep::Vote {
                ordinal: 6,
                address: addr(7),
                add: false,
                voters: vec![0, 1, 2, 3]
            }
        );
        // 6 left the set: its node goes before 5 is voted out.
        let chain = onchain(&[0, 1, 2, 3, 4, 5]);
        assert_eq!(
            next_scaling_step(4, &chain, &views, 5),
            ScalingStep::RemoveNode { ordinal: 6 }
        );
        let views: Vec<_> = (0..6).map(|o| view(o, true, true, Some(5))).collect();
        assert!(matches!(
            next_scaling_step(4, &chain, &views, 5),
            ScalingStep::Vote {
                ordinal: 5,
                add: false,
                ..
            }
        ));
        let chain = onchain(&[0, 1, 2, 3]);
        assert_eq!(
            next_scaling_step(4, &chain, &views, 5),
            ScalingStep::RemoveNode { ordinal: 5 }
        );
    }

    #[test]
    fn unavailable_validator_budget_follows_bft_quorum() {
        // BftHelpersTest quorum values for n = 1, 2, 3, 4, 5, 7, 10 → tolerance n - quorum.
        let expected = [
            (1, 1),
            (2, 1),
            (3, 1),
            (4, 1),
            (5, 1),
            (6, 2),
            (7, 2),
            (10, 3),
        ];
        for (n, budget) in expected {
            assert_eq!(max_unavailable_validators(n), budget, "n={n}");
        }
    }

    fn node(name: &str, t: NodeType, outdated: bool, ready: bool) -> RolloutNode {
        RolloutNode {
            name: name.to_string(),
            node_type: t,
            outdated,
            ready,
            in_sync: ready,
            down_settled: !ready,
        }
    }

    /// Review C2: v0 is being updated (down), v1 is outdated, Ready by Kubernetes, but its
    /// RPC timed out (height unknown) or it lags. v1 must not be restarted: with 2 of 4
    /// validators down the chain stops.
    #[test]
    fn an_rpc_timeout_never_lets_the_rollout_take_a_second_validator() {
        let v = NodeType::Validator;
        let mut v1 = node("v1", v, true, true);
        v1.in_sync = false;
        let nodes = vec![
            node("v0", v, false, false),
            v1,
            node("v2", v, true, true),
            node("v3", v, true, true),
        ];
        for settled in [false, true] {
            let step = next_rollout_step(&nodes, settled, true);
            assert!(
                matches!(step, RolloutStep::Wait(_)),
                "settled={settled}: {step:?}"
            );
        }
        // v0 back: v1 still unknown uses the whole budget of 4 validators.
        let mut nodes = nodes;
        nodes[0] = node("v0", v, false, true);
        assert!(matches!(
            next_rollout_step(&nodes, true, true),
            RolloutStep::Wait(_)
        ));
        // v1 answers again: the rollout goes on, one validator at a time.
        nodes[1].in_sync = true;
        assert_eq!(
            next_rollout_step(&nodes, true, true),
            RolloutStep::Update(vec!["v1".into()])
        );
    }

    /// CI run of 7b98455: v0 was being updated when a test deleted v2's pod; the
    /// StatefulSet recreated it and it was Ready again within a second, but its node's
    /// status still said not Ready, so the rollout updated it as "down already" and took
    /// it down a second time while v0 was down. A validator that only just went not Ready
    /// counts against the budget; one down for [`DOWN_SETTLED`] may be updated.
    #[test]
    fn a_validator_only_just_not_ready_is_not_down_already() {
        let v = NodeType::Validator;
        let mut v2 = node("v2", v, true, false);
        v2.down_settled = false;
        let mut nodes = vec![
            node("v0", v, false, false),
            node("v1", v, true, true),
            v2,
            node("v3", v, true, true),
        ];
        for settled in [false, true] {
            let step = next_rollout_step(&nodes, settled, true);
            assert!(
                matches!(step, RolloutStep::Wait(_)),
                "settled={settled}: {step:?}"
            );
        }
        nodes[2].down_settled = true;
        assert_eq!(
            next_rollout_step(&nodes, false, true),
            RolloutStep::Update(vec!["v2".into()])
        );
    }

    #[test]
    fn rollout_goes_bootnodes_members_validators_within_the_budget() {
        let v = NodeType::Validator;
        let mut nodes = vec![
            node("b0", NodeType::Bootnode, true, true),
            node("m0", NodeType::Member, true, true),
            node("v0", v, true, true),
            node("v1", v, true, true),
            node("v2", v, true, true),
            node("v3", v, true, true),
        ];
        assert_eq!(
            next_rollout_step(&nodes, true, true),
            RolloutStep::Update(vec!["b0".into()])
        );
        nodes[0] = node("b0", NodeType::Bootnode, false, false);
        assert!(matches!(
            next_rollout_step(&nodes, true, true),
            RolloutStep::Wait(_)
        ));
        nodes[0].ready = true;
        nodes[0].in_sync = true;
        assert!(matches!(
            next_rollout_step(&nodes, false, true),
            RolloutStep::Wait(_)
        ));
        assert_eq!(
            next_rollout_step(&nodes, true, true),
            RolloutStep::Update(vec!["m0".into()])
        );
        nodes[1] = node("m0", NodeType::Member, false, true);
        // 4 validators: one at a time.
        assert_eq!(
            next_rollout_step(&nodes, true, true),
            RolloutStep::Update(vec!["v0".into()])
        );
        nodes[2] = node("v0", v, false, false);
        assert!(matches!(
            next_rollout_step(&nodes, true, true),
            RolloutStep::Wait(_)
        ));
        nodes[2].ready = true;
        nodes[2].in_sync = true;
        assert_eq!(
            next_rollout_step(&nodes, true, true),
            RolloutStep::Update(vec!["v1".into()])
        );
        // A validator down for another reason uses up the budget.
        nodes[4].ready = false;
        nodes[4].down_settled = true;
        assert_eq!(
            next_rollout_step(&nodes, true, true),
            RolloutStep::Update(vec!["v2".into()])
        );
    }

    #[test]
    fn rollout_stops_when_the_chain_stalls_but_a_down_node_can_be_reverted() {
        let v = NodeType::Validator;
        let nodes = vec![node("v0", v, true, true), node("v1", v, true, true)];
        assert!(matches!(
            next_rollout_step(&nodes, true, false),
            RolloutStep::Stalled(_)
        ));
        let nodes = vec![node("v0", v, true, false), node("v1", v, true, true)];
        assert_eq!(
            next_rollout_step(&nodes, true, false),
            RolloutStep::Update(vec!["v0".into()])
        );
        let nodes = vec![node("v0", v, false, true)];
        assert_eq!(next_rollout_step(&nodes, true, true), RolloutStep::Done);
    }
}
