//! The network reconcile's decisions, as pure functions of what it observed
//! (`observe::Observed`) and the time: the bring-up stages' new nodes (`stage_nodes`,
//! with the gates), and everything else in one `Plan` (`plan`): the validator set's next
//! step with its votes and discards, the removal of a voted-out validator, the rollout's
//! step and memory, the scale-up, the network-level children, monitoring, the nodes no
//! longer wanted; and when to look again (`requeue`). `apply` executes them; the tests
//! cover each branch from fixtures, without an API server.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use besu_operator_api::{BesuNode, DeletionPolicy, NetworkPhase, NodeType, UpgradeStatus};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::backup::{self, BackupPlan};
use super::observe::{Observed, on_permitted_template, template_held};
use crate::chain::IN_SYNC_BLOCKS;
use crate::chain::key::Address;
use crate::chain::quorum::commit_quorum;
use crate::controller::day2::{
    RolloutNode, RolloutStep, ScalingStep, max_unavailable_validators, next_rollout_step,
    next_scaling_step,
};
use crate::controller::status::DesiredCondition;
use crate::controller::{Error, is_applied};
use crate::render::monitoring::desired_monitoring_node;
use crate::render::network::{
    Slot, desired_besu_node, desired_network_policy, desired_validator_pdb, is_imported_key,
    key_secret_name, node_name,
};

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

/// The votes a scaling step asks for now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VotePlan {
    /// Ordinal of the validator being added or removed.
    pub ordinal: i32,
    /// Its address.
    pub address: Address,
    /// Add (true) or remove (false).
    pub add: bool,
    /// How many voters the step needs.
    pub needed: usize,
    /// Reachable validators holding the proposal already.
    pub holding: usize,
    /// Validators asked to propose it now.
    pub ask: Vec<String>,
}

/// A validator voted out: its node goes, and with `deletionPolicy: Delete` its generated
/// key too (recorded first, so that a later scale-up may give the ordinal a new key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removal {
    /// Ordinal of the validator.
    pub ordinal: i32,
    /// Its BesuNode.
    pub node: String,
    /// Its key Secret, when the operator deletes it.
    pub key_secret: Option<String>,
}

/// Everything a network reconcile does after its keys and genesis are in place, decided
/// from what it observed: `apply` executes it in order and `conditions::network_status`
/// reports it.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The validator set's next step (None: the chain could not be read).
    pub scaling: Option<ScalingStep>,
    /// Votes to ask for.
    pub votes: Option<VotePlan>,
    /// Proposals to withdraw (only on a fresh read of the chain: the observer's view may
    /// still list proposals discarded since).
    pub discards: Vec<Discard>,
    /// A validator voted out, whose node goes.
    pub removal: Option<Removal>,
    /// The rollout's view of each existing Besu node the spec wants.
    pub rollout_nodes: Vec<RolloutNode>,
    /// The rollout's step and memory.
    pub rollout: RolloutDecision,
    /// BesuNodes applied now: the rollout step's.
    pub update: Vec<BesuNode>,
    /// Nodes permitted to roll out the pod template they hold back.
    pub permit: Vec<String>,
    /// The validator a scale-up step creates.
    pub scale_up: Vec<BesuNode>,
    /// The validators' PodDisruptionBudget (None: no validator wanted).
    pub budget: Option<PodDisruptionBudget>,
    /// The network's NetworkPolicy.
    pub policy: NetworkPolicy,
    /// Monitoring nodes switched on: applied.
    pub monitoring: Vec<BesuNode>,
    /// Monitoring nodes switched off: deleted.
    pub monitoring_off: Vec<String>,
    /// Bootnodes and members the spec no longer asks for: deleted (validators go only
    /// once voted out, `removal`).
    pub remove: Vec<String>,
    /// Scheduled snapshots (`spec.backup`).
    pub backup: BackupPlan,
}

/// The new nodes of the bring-up stages among `roles` (the caller passes open ones):
/// not there yet, with a valid key, and for a validator named in genesis (one beyond it
/// joins by a scaling step). They depend on the keys, the genesis and the gates alone,
/// never on the chain, so they are created before the chain is read.
pub fn stage_nodes(observed: &Observed, roles: &[NodeType]) -> Result<Vec<BesuNode>, Error> {
    if !observed.bring_up()
        || (observed.network.spec.restore.is_some() && observed.restore.is_none())
    {
        return Ok(Vec::new());
    }
    let enodes = observed.bootnode_enodes();
    // A restore starts validators on restored data no more than the fault budget at a
    // time (at least one): the next once those before are Ready.
    let mut validator_budget = if observed.restore.is_some() {
        let n = observed.wanted(NodeType::Validator);
        let coming_up = observed
            .slots
            .iter()
            .filter(|s| s.node_type == NodeType::Validator)
            .map(|s| observed.node_of(s))
            .filter(|n| {
                observed.nodes.contains_key(n)
                    && !observed.is_ready(n)
                    && !observed.pods.endpoints.contains_key(n)
            })
            .count();
        max_unavailable_validators(n)
            .max(1)
            .saturating_sub(coming_up)
    } else {
        usize::MAX
    };
    bring_up_slots(
        &observed.slots,
        roles,
        observed.genesis_count(),
        |s| observed.nodes.contains_key(&observed.node_of(s)),
        |s| observed.has_key(s),
    )
    .into_iter()
    .filter(|s| {
        if s.node_type != NodeType::Validator {
            return true;
        }
        let within = validator_budget > 0;
        validator_budget = validator_budget.saturating_sub(1);
        within
    })
    .map(|s| {
        let mut node = desired_besu_node(&observed.network, s.node_type, s.ordinal, &enodes)?;
        seed_node(observed, &mut node);
        Ok(node)
    })
    .collect()
}

/// A new node of a restored network starts from the restore's snapshot; one of a network
/// that snapshots its chain from the newest snapshot (`spec.backup.seedNewNodes`),
/// syncing only the blocks since, bootnodes from scratch as they always did.
fn seed_node(observed: &Observed, node: &mut BesuNode) {
    if let Some(restore) = &observed.restore {
        node.spec.from_snapshot = Some(restore.clone());
    } else if matches!(node.spec.node_type, NodeType::Validator | NodeType::Member) {
        node.spec.from_snapshot = backup::seed(observed, observed.snapshots.as_ref());
    }
}

/// The plan of a reconcile, from what it observed (with the chain) at `now`.
pub fn plan(o: &Observed, now: Timestamp) -> Result<Plan, Error> {
    let network = &o.network;
    let name = o.name();
    let endpoints = &o.pods.endpoints;
    let chain = &o.chain;
    let views = o.validator_views();
    let scaling = match (&chain.onchain, chain.head) {
        (Some(onchain), Some(head)) => Some(next_scaling_step(
            network.spec.validators,
            onchain,
            &views,
            head,
        )),
        _ => None,
    };
    let votes = match (&scaling, &chain.onchain) {
        (
            Some(
                step @ ScalingStep::Vote {
                    ordinal,
                    address,
                    add,
                    voters,
                },
            ),
            Some(_),
        ) => {
            let v = votes(&name, step, &chain.pending, endpoints);
            Some(VotePlan {
                ordinal: *ordinal,
                address: *address,
                add: *add,
                needed: voters.len(),
                holding: v.holding.len(),
                ask: v.ask,
            })
        }
        _ => None,
    };
    let discards = match &chain.onchain {
        Some(onchain) if o.fresh_chain => {
            discards(scaling.as_ref(), &chain.pending, endpoints, onchain)
        }
        _ => Vec::new(),
    };
    let removal = match &scaling {
        Some(ScalingStep::RemoveNode { ordinal }) => Some(Removal {
            ordinal: *ordinal,
            node: node_name(&name, NodeType::Validator, *ordinal),
            // The operator's own key only: an imported one is the user's.
            key_secret: (network.spec.deletion_policy == DeletionPolicy::Delete
                && !is_imported_key(network, NodeType::Validator, *ordinal))
            .then(|| key_secret_name(&name, NodeType::Validator, *ordinal)),
        }),
        _ => None,
    };

    // Desired nodes, and the rollout of changes to existing ones.
    let mut desired_nodes: Vec<(Slot, BesuNode)> = Vec::new();
    if o.bring_up() {
        let enodes = o.bootnode_enodes();
        for slot in o.key_slots.iter().filter(|s| o.has_key(s)) {
            let mut node = desired_besu_node(network, slot.node_type, slot.ordinal, &enodes)?;
            // Where a node's data came from stays as it was created (an apply without it
            // would take it away, and count the node as outdated for the rollout).
            match o.nodes.get(&node.name_any()) {
                Some(live) => node.spec.from_snapshot.clone_from(&live.spec.from_snapshot),
                None => seed_node(o, &mut node),
            }
            desired_nodes.push((*slot, node));
        }
    }
    // In sync, for the rollout: when the chain's height is known, the node's JSON-RPC
    // says it is within IN_SYNC_BLOCKS of the head (what Besu's /readiness checks). With
    // no height known at all (no node answered), nobody is known to be in sync: the
    // rollout then takes no Ready validator down.
    let in_sync = |node: &str| chain.follows_head(node, IN_SYNC_BLOCKS);
    // Back in service after a rollout step: Ready, caught up with the head (a node still
    // syncing takes no part in consensus yet), and running the pod template the rollout
    // permitted, with none held back.
    let in_service = |node: &str| {
        o.is_ready(node)
            && chain.follows_head(node, 1)
            && o.nodes.get(node).is_some_and(on_permitted_template)
    };
    let mut rollout_nodes = Vec::new();
    for (_, desired) in &desired_nodes {
        let node = desired.name_any();
        if let Some(live) = o.nodes.get(&node) {
            rollout_nodes.push(RolloutNode {
                outdated: !is_applied(live, desired)? || template_held(live),
                ready: o.is_ready(&node),
                in_sync: in_sync(&node),
                down_settled: o.pods.down_settled.contains(&node),
                node_type: desired.spec.node_type,
                name: node,
            });
        }
    }
    let previous_upgrade = network.status.as_ref().and_then(|s| s.upgrade.as_ref());
    let rollout = decide_rollout(
        &rollout_nodes,
        previous_upgrade,
        in_service,
        chain.head,
        o.advancing,
        now,
    );
    let gates = o.gates();
    let genesis_count = o.genesis_count();
    let mut update = Vec::new();
    let mut permit = Vec::new();
    let mut scale_up = Vec::new();
    for (slot, desired) in desired_nodes {
        let node = desired.name_any();
        if o.nodes.contains_key(&node) {
            if rollout.permit.contains(&node) {
                permit.push(node.clone());
            }
            if rollout.update.contains(&node) {
                update.push(desired);
            }
            continue;
        }
        // A new node of a bring-up stage is created before the chain is read
        // (`stage_nodes`); the one new node left is the validator a scale-up step adds.
        let adds = slot.node_type == NodeType::Validator
            && gates.open(NodeType::Validator)
            && slot.ordinal < network.spec.validators
            && usize::try_from(slot.ordinal).is_ok_and(|o| o >= genesis_count)
            && scaling
                == Some(ScalingStep::CreateNode {
                    ordinal: slot.ordinal,
                });
        if adds {
            scale_up.push(desired);
        }
    }
    let v_want = o.wanted(NodeType::Validator);
    let budget = if v_want > 0 {
        let max = max_unavailable_validators(v_want);
        Some(desired_validator_pdb(
            network,
            i32::try_from(max).unwrap_or(1),
        )?)
    } else {
        None
    };
    let policy = desired_network_policy(network)?;
    let m = &network.spec.monitoring;
    let mut monitoring = Vec::new();
    let mut monitoring_off = Vec::new();
    for (node_type, enabled) in [
        (NodeType::Prometheus, m.prometheus.enabled),
        (NodeType::Grafana, m.grafana.enabled),
    ] {
        let node = node_name(&name, node_type, 0);
        if enabled {
            monitoring.push(desired_monitoring_node(network, node_type)?);
        } else if o.nodes.contains_key(&node) {
            monitoring_off.push(node);
        }
    }
    let wanted: BTreeSet<String> = o.key_slots.iter().map(|s| o.node_of(s)).collect();
    let remove = o
        .nodes
        .iter()
        .filter(|(node, n)| {
            !wanted.contains(*node)
                && n.spec.node_type.is_besu()
                && n.spec.node_type != NodeType::Validator
        })
        .map(|(node, _)| node.clone())
        .collect();
    let mut plan = Plan {
        scaling,
        votes,
        discards,
        removal,
        rollout_nodes,
        rollout,
        update,
        permit,
        scale_up,
        budget,
        policy,
        monitoring,
        monitoring_off,
        remove,
        backup: BackupPlan::default(),
    };
    plan.backup = backup::plan_backup(o, &plan, o.snapshots.as_ref(), now);
    Ok(plan)
}

/// While only node readiness is outstanding, the longest a network waits without a
/// watch event: a safety net, never the way a stage opens.
pub const NODE_WAIT_SAFETY_NET: Duration = Duration::from_secs(60);

/// While the chain itself is awaited (a vote, a rollout step's settling, a new
/// validator catching up), how often it is read.
pub const CHAIN_WAIT: Duration = Duration::from_secs(15);

/// How long a node's container must have run with no peer before the operator asks it
/// to dial the network's nodes: longer than a start-up's own discovery and static-node
/// dialling takes.
pub const HEAL_AFTER: Duration = Duration::from_secs(45);

/// When the network is looked at again without a watch event, once `plan` is applied
/// and the network is in `phase` (see [`requeue_after`]).
pub fn requeue(o: &Observed, plan: &Plan, phase: NetworkPhase, at_rest: Duration) -> Duration {
    // Only node readiness outstanding (a bring-up, or nodes coming back): every change
    // it waits for arrives as a watch event (a pod's readiness, a BesuNode's status).
    let waits_on_nodes_only = matches!(plan.scaling, None | Some(ScalingStep::Converged))
        && !plan.rollout.rolling(&plan.rollout_nodes)
        && plan.votes.is_none();
    let heal_due_in = o
        .pods
        .running
        .iter()
        .filter(|(node, _)| !o.pods.endpoints.contains_key(*node))
        .map(|(_, (_, ran))| HEAL_AFTER.saturating_sub(*ran))
        .min();
    let after = requeue_after(phase, waits_on_nodes_only, heal_due_in, at_rest);
    plan.backup.requeue.map_or(after, |b| b.min(after))
}

/// When a network is looked at again without a watch event. Ready: at the chain poll
/// (metrics follow the chain) or the resync, whichever is sooner (`at_rest`). Degraded:
/// every minute. Coming up with only node readiness outstanding
/// (`waits_on_nodes_only`): the safety net, or sooner when a running node becomes due
/// for a peering heal (`heal_due_in`). Otherwise the chain is awaited: [`CHAIN_WAIT`].
pub fn requeue_after(
    phase: NetworkPhase,
    waits_on_nodes_only: bool,
    heal_due_in: Option<Duration>,
    at_rest: Duration,
) -> Duration {
    match phase {
        NetworkPhase::Ready => at_rest,
        NetworkPhase::Degraded => Duration::from_secs(60),
        NetworkPhase::Pending | NetworkPhase::Creating if waits_on_nodes_only => heal_due_in
            .map_or(NODE_WAIT_SAFETY_NET, |d| {
                d.max(Duration::from_secs(1)).min(NODE_WAIT_SAFETY_NET)
            }),
        NetworkPhase::Pending | NetworkPhase::Creating => CHAIN_WAIT,
    }
}

#[cfg(test)]
pub(super) mod tests;
