//! What a network reconcile decides from: the network, its BesuNodes, its genesis and
//! pods, read from the caches once they show the reconciles' own writes
//! (controller::freshness), else from the API; and the chain, from the observer's
//! latest view at rest or read now while anything changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use besu_operator_api::{
    BesuNetwork, BesuNode, LABEL_NETWORK, LABEL_NODE, NetworkPhase, NodePhase, NodeType,
};
use futures::FutureExt as _;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};

use super::decide::{Gates, stall_window};
use crate::chain::extradata::Consensus;
use crate::chain::key::Address;
use crate::controller::chain::{ChainView, Targets};
use crate::controller::day2::{DOWN_SETTLED, ValidatorView};
use crate::controller::key_identity::KeyIdentity;
use crate::controller::{Context, Error, NetworkStores};
use crate::render::network::{Slot, bootnode_enode, node_enode, node_name};
use crate::render::node::ROLLOUT_PERMIT_ANNOTATION;
use crate::render::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::rpc::Endpoint;

/// The network's pods as listed just now, by node name.
#[derive(Clone, Debug, Default)]
pub struct PodsSeen {
    /// JSON-RPC endpoints of the Ready pods.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Nodes whose pod has been not Ready for at least [`DOWN_SETTLED`].
    pub down_settled: BTreeSet<String>,
    /// Every pod whose Besu container runs (Ready or not): its endpoint and how long ago
    /// the container started.
    pub running: BTreeMap<String, (Endpoint, Duration)>,
    /// Nodes with a pod at all (running, starting or on its way out).
    pub present: BTreeSet<String>,
}

/// The network's pods, from the cache whose changes wake the network (or one list while
/// it is not filled): where to reach the Ready ones, and which have been down for a while. Pods
/// are written by others only, so a cache a moment behind shows what a list made a
/// moment earlier would have (controller::freshness).
pub(super) async fn observe_pods(
    store: Option<&Store<Pod>>,
    pods: &Api<Pod>,
    ns: &str,
    network: &str,
    nodes: &BTreeMap<String, BesuNode>,
) -> Result<PodsSeen, Error> {
    let listed: Vec<Pod> = match store.filter(|s| synced(s)) {
        Some(store) => of_network_in(store, ns, network)
            .map(|p| Pod::clone(&p))
            .collect(),
        None => pods.list(&of_network(network)).await?.items,
    };
    Ok(pods_seen(listed, nodes, Timestamp::now()))
}

/// What [`observe_pods`] makes of the pods it found, at `now`.
pub(super) fn pods_seen(
    listed: Vec<Pod>,
    nodes: &BTreeMap<String, BesuNode>,
    now: Timestamp,
) -> PodsSeen {
    let mut out = PodsSeen::default();
    for pod in listed {
        let Some(node) = pod.labels().get(LABEL_NODE).and_then(|n| nodes.get(n)) else {
            continue;
        };
        out.present.insert(node.name_any());
        let status = pod.status.as_ref();
        let ready_condition = crate::controller::pod_ready_condition(&pod);
        let ready = ready_condition.is_some_and(|c| c.status == "True");
        let ip = status.and_then(|s| s.pod_ip.clone());
        let deleting = pod.metadata.deletion_timestamp.is_some();
        if let (true, Some(ip), false) = (ready, ip, deleting) {
            out.endpoints.insert(
                node.name_any(),
                Endpoint::new(&node.name_any(), &ip, node.spec.ports.rpc_http),
            );
        }
        // Not Ready since the later of its creation and its Ready condition's last
        // change; a pod being deleted is on its way out, not settled.
        let since = [
            pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
            ready_condition
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0),
        ]
        .into_iter()
        .flatten()
        .max();
        let settled = since.is_some_and(|t| {
            let d = now.duration_since(t);
            d.is_positive() && d.unsigned_abs() >= DOWN_SETTLED
        });
        if !ready && !deleting && settled {
            out.down_settled.insert(node.name_any());
        }
        let started = status
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == "besu"))
            .and_then(|c| c.state.as_ref())
            .and_then(|st| st.running.as_ref())
            .and_then(|r| r.started_at.as_ref());
        if let (Some(started), Some(ip), false) =
            (started, status.and_then(|s| s.pod_ip.as_ref()), deleting)
        {
            let ago = now.duration_since(started.0);
            out.running.insert(
                node.name_any(),
                (
                    Endpoint::new(&node.name_any(), ip, node.spec.ports.rpc_http),
                    Duration::from_secs(u64::try_from(ago.as_secs()).unwrap_or(0)),
                ),
            );
        }
    }
    out
}

/// Whether a store has been filled by its first list (a store's contents are swapped in
/// whole on each re-list, so a filled store never shows part of a list).
pub(super) fn synced<K: kube::Resource<DynamicType = ()> + Clone>(store: &Store<K>) -> bool {
    store
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|r| r.is_ok())
}

/// The operator's objects of `store` in `ns` labelled as `network`'s (a BesuNode made by
/// hand with the network's label is none of its nodes, review C11).
pub(super) fn of_network_in<'a, K>(
    store: &'a Store<K>,
    ns: &'a str,
    network: &'a str,
) -> impl Iterator<Item = Arc<K>> + 'a
where
    K: kube::Resource<DynamicType = ()> + Clone + 'a,
{
    store.state().into_iter().filter(move |o| {
        let labels = o.labels();
        o.meta().namespace.as_deref() == Some(ns)
            && labels.get(LABEL_NETWORK).map(String::as_str) == Some(network)
            && labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
    })
}

/// The selector of [`of_network_in`], for a list.
pub(super) fn of_network(network: &str) -> ListParams {
    ListParams::default().labels(&format!(
        "{LABEL_NETWORK}={network},{MANAGED_BY_LABEL}={MANAGED_BY}"
    ))
}

/// The network from the controller's cache once it shows this network's own writes (a
/// status with the rollout's memory, above all), else read live. None: it was deleted.
pub(super) async fn observe_network(
    ctx: &Context,
    stores: Option<&NetworkStores>,
    api: &Api<BesuNetwork>,
    scope: &str,
    ns: &str,
    name: &str,
) -> Result<Option<BesuNetwork>, Error> {
    if let Some(stores) = stores {
        let cached = stores.networks.get(&ObjectRef::new(name).within(ns));
        if ctx
            .writes
            .shown::<BesuNetwork, _>(scope, |_| cached.clone())
        {
            return Ok(cached.map(|n| BesuNetwork::clone(&n)));
        }
    }
    let live = api.get_opt(name).await?;
    ctx.writes.read_live::<BesuNetwork>(scope);
    Ok(live)
}

/// The network's BesuNodes from the cache once it is filled and shows every write of
/// this network's reconciles (a node created, a rollout permit, a deletion), else listed.
pub(super) async fn observe_nodes(
    ctx: &Context,
    stores: Option<&NetworkStores>,
    api: &Api<BesuNode>,
    scope: &str,
    ns: &str,
    name: &str,
) -> Result<BTreeMap<String, BesuNode>, Error> {
    if let Some(store) = stores.map(|s| &s.nodes).filter(|s| synced(s))
        && ctx
            .writes
            .shown::<BesuNode, _>(scope, |n| store.get(&ObjectRef::new(n).within(ns)))
    {
        return Ok(of_network_in(store, ns, name)
            .map(|n| (n.name_any(), BesuNode::clone(&n)))
            .collect());
    }
    let listed = api.list(&of_network(name)).await?;
    ctx.writes.read_live::<BesuNode>(scope);
    Ok(listed.into_iter().map(|n| (n.name_any(), n)).collect())
}

/// Whether nothing is changing: the network is Ready on its current spec, its validator
/// set converged, no rollout under way and every node Ready. Then the chain is read at
/// the poll rate only.
pub(super) fn at_rest(network: &BesuNetwork, nodes: &BTreeMap<String, BesuNode>) -> bool {
    let Some(s) = &network.status else {
        return false;
    };
    let holds = |t: &str| {
        s.conditions
            .iter()
            .any(|c| c.type_ == t && c.status == "True")
    };
    s.phase == NetworkPhase::Ready
        && s.observed_generation == network.metadata.generation
        && holds("ValidatorSetConverged")
        && holds("Producing")
        && s.validators.pending.is_empty()
        && s.upgrade
            .as_ref()
            .is_none_or(|u| u.in_progress.is_empty() && u.pending.is_empty())
        && nodes.values().all(node_ready)
        && s.backup.as_ref().is_none_or(|b| b.in_progress.is_none())
}

/// Whether the node controller holds back a pod template until the rollout permits it.
pub(super) fn template_held(node: &BesuNode) -> bool {
    node.status
        .as_ref()
        .is_some_and(|s| s.pending_template_revision.is_some())
}

/// Whether the node runs the pod template its rollout permit names (or has no permit)
/// and holds none back.
pub(super) fn on_permitted_template(node: &BesuNode) -> bool {
    let status = node.status.as_ref();
    !template_held(node)
        && match node.annotations().get(ROLLOUT_PERMIT_ANNOTATION) {
            Some(permit) => status.and_then(|s| s.template_revision.as_ref()) == Some(permit),
            None => true,
        }
}

/// A node counts as Ready when its controller has seen its latest spec and its pod is
/// Ready on it.
pub(super) fn node_ready(node: &BesuNode) -> bool {
    node.status.as_ref().is_some_and(|s| {
        s.phase == NodePhase::Ready && s.observed_generation >= node.metadata.generation
    })
}

/// What a network reconcile decides from (`decide::plan`), filled in as the reconcile
/// goes: the network, its nodes and its keys and genesis (after the writes that make
/// them, `keys` and `genesis`) first, then its pods and its chain. The bring-up stages
/// open on the first part alone (`decide::stage_nodes`), before the chain is read.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The network, as cached once it shows this operator's writes, else read live.
    pub network: Arc<BesuNetwork>,
    /// The slots the spec asks for, in bring-up order.
    pub slots: Vec<Slot>,
    /// Those, and validators beyond `spec.validators` that still have a node.
    pub key_slots: Vec<Slot>,
    /// The identity of each key slot.
    pub keys: BTreeMap<Slot, KeyIdentity>,
    /// The validators the stored genesis names (None: no genesis yet, or unreadable).
    pub genesis_validators: Option<Vec<Address>>,
    /// The genesis checksum, once the genesis is in place and matches the spec.
    pub genesis_checksum: Option<String>,
    /// The network's BesuNodes, by name.
    pub nodes: BTreeMap<String, BesuNode>,
    /// The network's pods.
    pub pods: PodsSeen,
    /// The chain as its nodes report it.
    pub chain: ChainView,
    /// Whether the head advances (None: unknown yet).
    pub advancing: Option<bool>,
    /// Whether `chain` was read in this reconcile (else it is the observer's view at
    /// rest, up to two polls old).
    pub fresh_chain: bool,
    /// The network's VolumeSnapshots, listed when it has `spec.backup` (None otherwise).
    pub snapshots: Option<crate::controller::snapshots::Listed>,
    /// The snapshot a restored network's nodes start from, once resolved
    /// (backup::restore_source).
    pub restore: Option<String>,
}

impl Observed {
    /// The network's name.
    pub fn name(&self) -> String {
        self.network.name_any()
    }

    /// The node of a slot.
    pub fn node_of(&self, slot: &Slot) -> String {
        node_name(&self.name(), slot.node_type, slot.ordinal)
    }

    /// Whether the slot's key is valid.
    pub fn has_key(&self, slot: &Slot) -> bool {
        matches!(self.keys.get(slot), Some(KeyIdentity::Valid(..)))
    }

    /// The bootnodes' enode URLs, of those with a valid key.
    pub fn bootnode_enodes(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter(|s| s.node_type == NodeType::Bootnode)
            .filter_map(|s| match self.keys.get(s) {
                Some(KeyIdentity::Valid(pk, _)) => {
                    Some(bootnode_enode(&self.network, s.ordinal, pk))
                }
                _ => None,
            })
            .collect()
    }

    /// Every bootnode and validator with a valid key, as (node, enode URL): the static
    /// nodes of every node (render::node).
    pub fn static_nodes(&self) -> Vec<(String, String)> {
        self.key_slots
            .iter()
            .filter(|s| matches!(s.node_type, NodeType::Bootnode | NodeType::Validator))
            .filter_map(|s| match self.keys.get(s) {
                Some(KeyIdentity::Valid(pk, _)) => Some((
                    self.node_of(s),
                    node_enode(&self.network, s.node_type, s.ordinal, pk),
                )),
                _ => None,
            })
            .collect()
    }

    /// The genesis validators' addresses: the stored genesis's, else those of the
    /// validator keys once every one is valid (what a new genesis names).
    pub fn validator_addresses(&self) -> Option<Vec<Address>> {
        if let Some(v) = &self.genesis_validators {
            return Some(v.clone());
        }
        let wanted: Vec<&Slot> = self
            .slots
            .iter()
            .filter(|s| s.node_type == NodeType::Validator)
            .collect();
        let addresses: Vec<Address> = wanted
            .iter()
            .filter_map(|s| match self.keys.get(*s) {
                Some(KeyIdentity::Valid(_, a)) => Some(*a),
                _ => None,
            })
            .collect();
        (addresses.len() == wanted.len()).then_some(addresses)
    }

    /// Whether a node's BesuNode says it is Ready.
    pub fn is_ready(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(node_ready)
    }

    /// How many slots of role `t` have a node that passes `up`.
    pub fn count(&self, t: NodeType, up: impl Fn(&str) -> bool) -> usize {
        self.slots
            .iter()
            .filter(|s| s.node_type == t && up(&self.node_of(s)))
            .count()
    }

    /// Ready nodes of role `t`.
    pub fn ready(&self, t: NodeType) -> usize {
        self.count(t, |n| self.is_ready(n))
    }

    /// Nodes of role `t` the spec wants.
    pub fn wanted(&self, t: NodeType) -> usize {
        self.slots.iter().filter(|s| s.node_type == t).count()
    }

    /// The validators named in genesis (the spec's count while there is none).
    pub fn genesis_count(&self) -> usize {
        self.genesis_validators
            .as_ref()
            .map_or_else(|| self.wanted(NodeType::Validator), Vec::len)
    }

    /// Whether nodes may be created at all: the genesis is in place and every bootnode
    /// has its enode.
    pub fn bring_up(&self) -> bool {
        self.genesis_checksum.is_some()
            && self
                .slots
                .iter()
                .filter(|s| s.node_type == NodeType::Bootnode)
                .all(|s| self.has_key(s))
    }

    /// The bring-up gates. A stage opens on the pods of the one before being Ready, as
    /// listed (their readiness changes wake the network controller directly,
    /// operator::network_controller), without waiting for the node controller to carry
    /// the news into the BesuNode's status: that relay costs 0.1-0.4 s per stage.
    pub fn gates(&self) -> Gates {
        let up = |node: &str| self.is_ready(node) || self.pods.endpoints.contains_key(node);
        Gates {
            bootnodes_wanted: self.wanted(NodeType::Bootnode),
            validators_wanted: self.wanted(NodeType::Validator),
            genesis_validators: self.genesis_count(),
            bootnodes_up: self.count(NodeType::Bootnode, up),
            validators_up: self.count(NodeType::Validator, up),
        }
    }

    /// Every validator slot with a valid key, as the scaling rules see it.
    pub fn validator_views(&self) -> Vec<ValidatorView> {
        self.key_slots
            .iter()
            .filter(|s| s.node_type == NodeType::Validator)
            .filter_map(|s| match self.keys.get(s) {
                Some(KeyIdentity::Valid(_, address)) => {
                    let node = self.node_of(s);
                    Some(ValidatorView {
                        ordinal: s.ordinal,
                        address: *address,
                        exists: self.nodes.contains_key(&node),
                        up: self.is_ready(&node) && self.pods.endpoints.contains_key(&node),
                        height: self.chain.heights.get(&node).copied(),
                    })
                }
                _ => None,
            })
            .collect()
    }

    /// The chain's stall window: how long the head may stay put before the chain counts
    /// as stalled.
    pub fn stall_window(&self) -> Duration {
        let g = &self.network.spec.genesis;
        stall_window(
            self.block_period(),
            u64::try_from(g.request_timeout_seconds).unwrap_or(1),
        )
    }

    /// The block period in seconds (at least 1).
    pub fn block_period(&self) -> u64 {
        u64::try_from(self.network.spec.genesis.block_period_seconds)
            .unwrap_or(1)
            .max(1)
    }

    /// What the chain observer reads of this network, with the validators up once the
    /// chain is known (`validator_views`).
    pub fn targets(&self) -> Targets {
        Targets {
            consensus: Consensus::from(self.network.spec.consensus),
            endpoints: self.pods.endpoints.clone(),
            validators: self
                .nodes
                .values()
                .filter(|n| n.spec.node_type == NodeType::Validator)
                .map(ResourceExt::name_any)
                .collect(),
            stall_window: self.stall_window(),
            desired: self.wanted(NodeType::Validator),
            ready: self.ready(NodeType::Validator),
            up: self
                .validator_views()
                .iter()
                .filter(|v| v.up)
                .map(|v| v.address)
                .collect(),
            nodes: self
                .nodes
                .values()
                .filter(|n| n.spec.node_type.is_besu())
                .map(ResourceExt::name_any)
                .collect(),
        }
    }
}

/// The chain: at rest, the observer's view (read at most two polls ago from the same
/// nodes, and without proposals held: those are discarded only on a fresh read); while
/// anything changes, or when `read_now` (a backup run is due), read now, for day-2
/// decisions need fresh figures. Fills
/// `observed.chain`, `advancing` and `fresh_chain`.
pub(super) async fn observe_chain(
    ctx: &Context,
    scope: &str,
    observed: &mut Observed,
    read_now: bool,
) {
    let recent = if !read_now && at_rest(&observed.network, &observed.nodes) {
        ctx.chains
            .recent(scope, &observed.pods.endpoints)
            .filter(|(view, _)| view.pending.values().all(BTreeMap::is_empty))
    } else {
        None
    };
    observed.fresh_chain = recent.is_none();
    let (chain, advancing) = match recent {
        Some(c) => c,
        None => ctx.chains.read(scope, &observed.targets()).await,
    };
    ctx.chains.decided(scope, &chain, advancing);
    observed.chain = chain;
    observed.advancing = advancing;
}

#[cfg(test)]
mod tests {
    use besu_operator_api::{BesuNetworkStatus, ValidatorChange};

    use super::*;

    #[test]
    fn the_chain_is_read_at_the_poll_rate_only_when_nothing_changes() {
        // The checkout under test, set at run time (the compiled-in path can name another
        // checkout sharing the build directory).
        let root = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
        let text =
            std::fs::read_to_string(format!("{root}/samples/qbft-network.yaml")).expect("sample");
        let mut net: BesuNetwork = serde_yaml::from_str(&text).expect("yaml");
        net.metadata.generation = Some(1);
        let condition = |t: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: t.to_string(),
            status: "True".to_string(),
            reason: "R".to_string(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::UNIX_EPOCH,
            ),
        };
        let settled = BesuNetworkStatus {
            phase: NetworkPhase::Ready,
            observed_generation: Some(1),
            conditions: vec![condition("ValidatorSetConverged"), condition("Producing")],
            ..BesuNetworkStatus::default()
        };
        net.status = Some(settled.clone());
        let nodes = BTreeMap::new();
        assert!(at_rest(&net, &nodes));
        // A spec change not yet seen, a vote or a rollout in progress, a stalled chain:
        // read on every reconcile.
        net.metadata.generation = Some(2);
        assert!(!at_rest(&net, &nodes));
        net.metadata.generation = Some(1);
        let mut s = settled.clone();
        s.validators.pending.push(ValidatorChange::default());
        net.status = Some(s);
        assert!(!at_rest(&net, &nodes));
        let mut s = settled.clone();
        s.upgrade = Some(besu_operator_api::UpgradeStatus {
            in_progress: vec!["n-validator-0".into()],
            ..besu_operator_api::UpgradeStatus::default()
        });
        net.status = Some(s);
        assert!(!at_rest(&net, &nodes));
        let mut s = settled.clone();
        s.conditions.pop();
        net.status = Some(s);
        assert!(!at_rest(&net, &nodes));
        net.status = None;
        assert!(!at_rest(&net, &nodes));
    }
}
