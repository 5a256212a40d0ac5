//! The network reconcile's decisions, as pure functions of what it observed and the
//! time: which bring-up stages are open and which nodes they create, and the rollout's
//! next step with its memory (the step in progress, the settle height, when the step
//! started) and the conditions that report it. `network.rs` observes, applies what is
//! decided here, and writes the status; the tests below cover each branch from fixtures.

use std::collections::{BTreeMap, BTreeSet};

use besu_operator_api::{NodeType, UpgradeStatus};
use k8s_openapi::jiff::Timestamp;

use super::Slot;
use crate::chain::key::Address;
use crate::chain::quorum::commit_quorum;
use crate::controller::day2::{
    RolloutNode, RolloutStep, ScalingStep, max_unavailable_validators, next_rollout_step,
};
use crate::controller::status::DesiredCondition;
use crate::render::network::node_name;

/// The bring-up gates: how many nodes of each role are wanted, and how many pass their
/// gate (a Ready BesuNode, or a Ready pod seen before the node's status says so).
#[derive(Clone, Copy, Debug, Default)]
pub struct Gates {
    /// Bootnodes the spec wants.
    pub bootnodes_wanted: usize,
    /// Validators the spec wants.
    pub validators_wanted: usize,
    /// Validators named in genesis (the spec's count while no genesis exists).
    pub genesis_validators: usize,
    /// Bootnodes up.
    pub bootnodes_up: usize,
    /// Validators up.
    pub validators_up: usize,
}

impl Gates {
    /// Whether new nodes of role `t` may be created: bootnodes at once, validators once
    /// every bootnode is up, members (and monitoring) once a commit quorum of the genesis
    /// validators is up (the chain can produce blocks for them to follow).
    pub fn open(&self, t: NodeType) -> bool {
        match t {
            NodeType::Bootnode => true,
            NodeType::Validator => self.bootnodes_up == self.bootnodes_wanted,
            _ => {
                self.validators_up
                    >= commit_quorum(self.validators_wanted.min(self.genesis_validators).max(1))
            }
        }
    }
}

/// The slots whose node a bring-up creates now among `roles`: not there yet, with a valid
/// key, and for a validator, named in genesis (a validator beyond it joins by a scaling
/// step, voted in). The caller passes only open roles.
pub fn bring_up_slots(
    slots: &[Slot],
    roles: &[NodeType],
    genesis_validators: usize,
    exists: impl Fn(&Slot) -> bool,
    has_key: impl Fn(&Slot) -> bool,
) -> Vec<Slot> {
    slots
        .iter()
        .filter(|s| roles.contains(&s.node_type))
        .filter(|s| {
            s.node_type != NodeType::Validator
                || usize::try_from(s.ordinal).is_ok_and(|o| o < genesis_validators)
        })
        .filter(|s| !exists(s) && has_key(s))
        .copied()
        .collect()
}

/// What the rollout does in this reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutDecision {
    /// The step chosen.
    pub step: RolloutStep,
    /// Nodes whose desired BesuNode is applied now (the step just chosen).
    pub update: Vec<String>,
    /// Nodes of the step in progress allowed to roll their pod template now: the permit
    /// is what takes a Ready validator down, so the budget is checked again at this
    /// moment.
    pub permit: Vec<String>,
    /// Nodes of the step in progress whose permit is withheld: another validator became
    /// unavailable after they were picked; they leave the step and are picked again once
    /// the budget allows.
    pub withheld: Vec<String>,
    /// The rollout's memory, carried to the next reconcile in `status.upgrade`.
    pub in_progress: Vec<String>,
    /// The next step waits until the chain reaches this height.
    pub settle_at: Option<i64>,
    /// When the step in progress started (RFC 3339).
    pub step_started_at: Option<String>,
}

impl RolloutDecision {
    /// Whether a rollout is under way: a node outdated, or a step awaited back.
    pub fn rolling(&self, nodes: &[RolloutNode]) -> bool {
        nodes.iter().any(|n| n.outdated) || !self.in_progress.is_empty()
    }
}

/// Blocks the chain must advance after a step's nodes are back before the next step.
pub const SETTLE_BLOCKS: u64 = 2;

/// The rollout's next move. `previous` is the memory the last reconcile wrote;
/// `in_service` says whether a node is back after its step (Ready, caught up with the
/// head, on the template its permit names); `head` and `advancing` are the chain's.
///
/// A step whose nodes are all back is done: the next waits until the head is
/// [`SETTLE_BLOCKS`] past the height they came back at. A new step records its nodes and
/// start time; every node of the step in progress gets its permit while the validator
/// budget allows it, and leaves the step otherwise.
pub fn decide_rollout(
    nodes: &[RolloutNode],
    previous: Option<&UpgradeStatus>,
    in_service: impl Fn(&str) -> bool,
    head: Option<u64>,
    advancing: Option<bool>,
    now: Timestamp,
) -> RolloutDecision {
    let mut in_progress: Vec<String> = previous.map(|u| u.in_progress.clone()).unwrap_or_default();
    let mut settle_at = previous.and_then(|u| u.settle_at_height);
    let mut step_started_at = previous.and_then(|u| u.step_started_at.clone());
    let as_i64 = |h: u64| i64::try_from(h).unwrap_or(i64::MAX);
    if !in_progress.is_empty() && in_progress.iter().all(|n| in_service(n)) {
        in_progress.clear();
        settle_at = head.map(|h| as_i64(h.saturating_add(SETTLE_BLOCKS)));
    }
    let settled = in_progress.is_empty()
        && match (settle_at, head) {
            (Some(target), Some(head)) => as_i64(head) >= target,
            _ => true,
        };
    let step = next_rollout_step(nodes, settled, advancing.unwrap_or(true));
    let update: Vec<String> = match &step {
        RolloutStep::Update(names) => names.clone(),
        _ => Vec::new(),
    };
    if !update.is_empty() {
        in_progress = update.clone();
        settle_at = None;
        step_started_at = Some(now.to_string());
    }
    let (permit, withheld): (Vec<String>, Vec<String>) = nodes
        .iter()
        .filter(|n| in_progress.contains(&n.name))
        .map(|n| n.name.clone())
        .partition(|n| permit_within_budget(nodes, n));
    in_progress.retain(|n| !withheld.contains(n));
    RolloutDecision {
        step,
        update,
        permit,
        withheld,
        in_progress,
        settle_at,
        step_started_at,
    }
}

/// Whether a permit for `node` keeps the validators within the budget at this moment: a
/// node that is not a validator, or a validator down for a while already, takes no
/// validator down; any other validator may go only while the other unavailable
/// validators leave room for it.
pub fn permit_within_budget(nodes: &[RolloutNode], node: &str) -> bool {
    let Some(this) = nodes.iter().find(|n| n.name == node) else {
        return true;
    };
    if this.node_type != NodeType::Validator || (!this.ready && this.down_settled) {
        return true;
    }
    let validators: Vec<&RolloutNode> = nodes
        .iter()
        .filter(|n| n.node_type == NodeType::Validator)
        .collect();
    let others_down = validators
        .iter()
        .filter(|n| n.name != node && (!n.ready || !n.in_sync))
        .count();
    others_down < max_unavailable_validators(validators.len())
}

/// How long the head may stay at one height before the chain counts as stalled: three
/// block periods, or two and one round timeout (`requestTimeoutSeconds`) when that is
/// longer, since a round change is not a stall; plus 2 s for the poll.
pub fn stall_window(
    block_period_seconds: u64,
    request_timeout_seconds: u64,
) -> std::time::Duration {
    let period = block_period_seconds.max(1);
    std::time::Duration::from_secs((3 * period).max(2 * period + request_timeout_seconds) + 2)
}

/// How long a step may wait for its nodes before the rollout reports itself stalled:
/// 15 block periods, at least a minute.
pub fn step_stall_after(block_period_seconds: u64) -> u64 {
    (15 * block_period_seconds.max(1)).max(60)
}

/// The `UpgradeStalled` and `Upgrading` conditions of a rollout decision, at `now`.
pub fn rollout_conditions(
    decision: &RolloutDecision,
    image: &str,
    block_period_seconds: u64,
    now: Timestamp,
) -> [DesiredCondition; 2] {
    let in_progress = &decision.in_progress;
    let waited = decision
        .step_started_at
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .map(|t| now.duration_since(t).as_secs());
    let stall_after = i64::try_from(step_stall_after(block_period_seconds)).unwrap_or(i64::MAX);
    let stalled = match &decision.step {
        RolloutStep::Stalled(why) => {
            DesiredCondition::new("UpgradeStalled", true, "ChainNotProducing", why.clone())
        }
        _ if !in_progress.is_empty() && waited.is_some_and(|s| s > stall_after) => {
            DesiredCondition::new(
                "UpgradeStalled",
                true,
                "NodeNotReady",
                format!(
                    "{} did not become Ready on the new spec (image {image}) within {stall_after} s; the rollout is paused. Fix or revert spec.image",
                    in_progress.join(", "),
                ),
            )
        }
        _ => DesiredCondition::new("UpgradeStalled", false, "NotStalled", "no rollout is stuck"),
    };
    // What the rollout does now, in words that change per step, never per block.
    let upgrading = match &decision.step {
        RolloutStep::Done if in_progress.is_empty() => DesiredCondition::new(
            "Upgrading",
            false,
            "UpToDate",
            "every node runs its current spec and template",
        ),
        RolloutStep::Wait(why) => DesiredCondition::new("Upgrading", true, "Waiting", why.clone()),
        RolloutStep::Stalled(why) => {
            DesiredCondition::new("Upgrading", true, "Stalled", why.clone())
        }
        _ => DesiredCondition::new(
            "Upgrading",
            true,
            "Updating",
            format!("updating {}", in_progress.join(", ")),
        ),
    };
    [stalled, upgrading]
}

/// `status.upgrade` after a rollout decision: the step and what is done and pending while
/// a rollout is under way; afterwards, the last rollout with every node done.
pub fn upgrade_status(
    decision: &RolloutDecision,
    nodes: &[RolloutNode],
    previous: Option<&UpgradeStatus>,
    image: &str,
) -> Option<UpgradeStatus> {
    if decision.rolling(nodes) {
        Some(UpgradeStatus {
            target_image: image.to_string(),
            done: nodes
                .iter()
                .filter(|n| !n.outdated && !decision.in_progress.contains(&n.name))
                .map(|n| n.name.clone())
                .collect(),
            pending: nodes
                .iter()
                .filter(|n| n.outdated && !decision.update.contains(&n.name))
                .map(|n| n.name.clone())
                .collect(),
            in_progress: decision.in_progress.clone(),
            settle_at_height: decision.settle_at,
            step_started_at: decision.step_started_at.clone(),
        })
    } else {
        previous.cloned().map(|u| UpgradeStatus {
            done: nodes.iter().map(|n| n.name.clone()).collect(),
            pending: Vec::new(),
            in_progress: Vec::new(),
            settle_at_height: None,
            step_started_at: None,
            ..u
        })
    }
}

/// The proposals each validator holds, as its JSON-RPC reported them: node -> (address
/// -> add).
pub type Proposals = BTreeMap<String, BTreeMap<Address, bool>>;

/// The votes of a scaling step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Votes {
    /// Reachable validators that hold the step's proposal already.
    pub holding: Vec<String>,
    /// The step's chosen voters that are reachable and do not hold it yet: asked now.
    pub ask: Vec<String>,
}

/// Who votes for a `ScalingStep::Vote` now: of the validators reachable (in `reachable`,
/// and whose proposals were read), those holding the proposal count, and the chosen
/// voters among the rest are asked. Any other step has no votes.
pub fn votes<E>(
    network: &str,
    step: &ScalingStep,
    pending: &Proposals,
    reachable: &BTreeMap<String, E>,
) -> Votes {
    let ScalingStep::Vote {
        address,
        add,
        voters,
        ..
    } = step
    else {
        return Votes::default();
    };
    let chosen: BTreeSet<String> = voters
        .iter()
        .map(|o| node_name(network, NodeType::Validator, *o))
        .collect();
    let mut out = Votes::default();
    for node in reachable.keys() {
        let Some(held) = pending.get(node) else {
            continue;
        };
        if held.get(address) == Some(add) {
            out.holding.push(node.clone());
        } else if chosen.contains(node) {
            out.ask.push(node.clone());
        }
    }
    out
}

/// A proposal to withdraw from a validator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discard {
    /// The validator holding it.
    pub node: String,
    /// The address it proposes to add or remove.
    pub address: Address,
    /// Add (true) or remove (false).
    pub add: bool,
    /// Whether the change it asks for is on-chain already (else: no longer wanted).
    pub done: bool,
}

/// The proposals held by reachable validators that do not serve the current step: the
/// change they ask for happened, or the spec no longer wants it.
pub fn discards<E>(
    step: Option<&ScalingStep>,
    pending: &Proposals,
    reachable: &BTreeMap<String, E>,
    onchain: &BTreeSet<Address>,
) -> Vec<Discard> {
    let current = match step {
        Some(ScalingStep::Vote { address, add, .. }) => Some((*address, *add)),
        _ => None,
    };
    pending
        .iter()
        .filter(|(node, _)| reachable.contains_key(*node))
        .flat_map(|(node, held)| {
            held.iter()
                .filter(move |(address, add)| current != Some((**address, **add)))
                .map(move |(address, add)| Discard {
                    node: node.clone(),
                    address: *address,
                    add: *add,
                    done: *add == onchain.contains(address),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests;
