//! Everything the simulator knows: one chain per network, one node per running Besu
//! pod (process), and what the pods' kubelet reports (Ready).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use crate::besu::{Address, Consensus, NodeKey, PublicKey, commit_quorum, genesis_sha256};
use serde::Serialize;
use serde_json::Value;
use tracing::{debug, info};

use crate::chain::{Block, Chain, Step, Tally, VoteProposer};
use crate::genesis::chain_params;
use crate::node::SyncStatus;
use crate::node::{MAX_PEERS, Metrics, SyncModel, metrics_text, readiness};
use crate::rpc::{self, NodeCtx};
use crate::witness::{
    DownCause, MAX_BLOCKS, PodHistory, PodObservation, RpcFault, StartRecord, Status, Witness,
    WitnessBlock, WitnessNode, WitnessView,
};

/// A chain: the network's namespace and name, and its genesis (a network re-created
/// with a new genesis is a new chain).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ChainKey {
    pub namespace: String,
    pub name: String,
    /// First 16 hex digits of the genesis file's SHA-256.
    pub genesis: String,
}

/// A node started or stopped, or its pod's Ready condition changed.
#[derive(Clone, Debug, Serialize)]
pub struct NodeEvent {
    pub at_ms: u64,
    pub pod: String,
    pub uid: String,
    pub address: Address,
    pub event: &'static str,
    /// Chain head when it happened.
    pub head: u64,
}

/// Since when (and why) a chain produces no blocks.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Stall {
    pub since_ms: u64,
    pub up: usize,
    pub needed: usize,
}

/// The validators that were up from `at_ms` on (recorded at every change, so the
/// record also covers stalls, when there are no blocks).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UpChange {
    pub at_ms: u64,
    pub head: u64,
    /// The current validators (for the next block).
    pub validators: Vec<Address>,
    /// Those of them up: pod Ready and node in sync.
    pub up: Vec<Address>,
}

pub struct ChainEntry {
    pub key: ChainKey,
    pub chain: Chain,
    pub created_ms: u64,
    pub events: Vec<NodeEvent>,
    pub up_history: Vec<UpChange>,
    pub stalled: Option<Stall>,
}

/// What a starting node brings: its pod and what Besu reads at start (genesis file,
/// key file, `rpc-http-api`).
pub struct NodeStart {
    pub uid: String,
    pub namespace: String,
    pub pod: String,
    pub node: Option<String>,
    pub node_type: Option<String>,
    pub image: String,
    /// The pod's `controller-revision-hash` label.
    pub revision: Option<String>,
    pub ip: IpAddr,
    pub rpc_port: u16,
    pub metrics_port: u16,
    pub p2p_port: u16,
    /// The key file; `None`: Besu generates one on the data volume.
    pub key: Option<NodeKey>,
    pub apis: BTreeSet<String>,
    pub chain_name: String,
    pub genesis_json: String,
}

pub struct Node {
    pub uid: String,
    pub namespace: String,
    pub pod: String,
    pub node: Option<String>,
    pub node_type: Option<String>,
    pub image: String,
    pub ip: IpAddr,
    pub rpc_port: u16,
    pub metrics_port: u16,
    pub p2p_port: u16,
    pub public_key: PublicKey,
    pub address: Address,
    pub apis: BTreeSet<String>,
    pub chain: ChainKey,
    pub proposer: VoteProposer,
    pub sync: SyncModel,
    pub started_ms: u64,
    pub client_version: String,
}

#[derive(Default)]
pub struct World {
    /// How long a node that starts behind takes to reach the head.
    pub sync_ms: u64,
    pub chains: BTreeMap<ChainKey, ChainEntry>,
    /// By pod UID: a new pod (restart) is a new process.
    pub nodes: BTreeMap<String, Node>,
    pod_ready: HashMap<String, bool>,
    /// Local chain height kept on a pod's data volume, by (chain, pod name).
    retained: HashMap<(ChainKey, String), u64>,
    /// Keys Besu generated on a data volume (pods without a key Secret), by
    /// (namespace, pod name).
    generated_keys: HashMap<(String, String), NodeKey>,
    /// What happened to every pod name, for `GET /chains/<ns>/<name>/witness`.
    pub witness: Witness,
}

/// The answer to a JSON-RPC request ([`World::rpc`]).
#[derive(Clone, Debug, PartialEq)]
pub enum RpcOutcome {
    /// No node runs for that pod.
    NoNode,
    /// The node's RPC has a `timeout` fault: hold the request, never answer.
    Hang,
    /// The response body, `None` for notifications only.
    Reply(Option<Value>),
}

/// Whether the pod name of `hist` can take part in consensus now: its current pod is not
/// being deleted, is Running, runs Besu, is Ready and its node is in sync.
fn pod_status(
    hist: &PodHistory,
    nodes: &BTreeMap<String, Node>,
    pod_ready: &HashMap<String, bool>,
    chains: &BTreeMap<ChainKey, ChainEntry>,
    now_ms: u64,
) -> Status {
    let Some(inc) = &hist.current else {
        return Status::Down(DownCause::NotStarted, None);
    };
    let uid = Some(inc.uid.clone());
    if inc.gone || inc.deleting {
        return Status::Down(DownCause::Deleted, uid);
    }
    let not_running = if inc.started {
        DownCause::Stopped
    } else {
        DownCause::NotStarted
    };
    if !inc.running {
        return Status::Down(not_running, uid);
    }
    let Some(node) = nodes.get(&inc.uid) else {
        return Status::Down(not_running, uid);
    };
    if !pod_ready.get(&inc.uid).copied().unwrap_or(false) {
        return Status::Down(DownCause::NotReady, uid);
    }
    let head = chains.get(&node.chain).map(|e| e.chain.head()).unwrap_or(0);
    if !node.sync.in_sync(now_ms, head) {
        return Status::Down(DownCause::Syncing, uid);
    }
    Status::Up
}

/// Summary of a chain for `GET /chains`.
#[derive(Serialize)]
pub struct ChainSummary {
    pub namespace: String,
    pub name: String,
    pub genesis: String,
    pub consensus: Consensus,
    pub head: u64,
    pub validators: Vec<Address>,
    pub producing: bool,
    pub nodes: usize,
    pub created_ms: u64,
}

#[derive(Serialize)]
pub struct NodeView {
    pub pod: String,
    pub uid: String,
    pub node: Option<String>,
    pub node_type: Option<String>,
    pub image: String,
    pub ip: String,
    pub rpc_port: u16,
    pub metrics_port: u16,
    pub address: Address,
    pub ready: bool,
    pub in_sync: bool,
    pub height: u64,
    pub peers: usize,
    pub pending_votes: BTreeMap<Address, bool>,
    pub started_ms: u64,
}

/// A chain in full for `GET /chains/<namespace>/<name>`.
#[derive(Serialize)]
pub struct ChainView {
    pub namespace: String,
    pub name: String,
    pub genesis: String,
    pub consensus: Consensus,
    pub chain_id: u64,
    pub block_period_seconds: u64,
    pub epoch_length: u64,
    pub created_ms: u64,
    pub head: u64,
    pub head_timestamp: u64,
    /// The validators for the next block (`getValidatorsAfterBlock(head)`).
    pub validators: Vec<Address>,
    /// Of those, the ones up now (pod Running and Ready, node in sync).
    pub validators_up: Vec<Address>,
    pub quorum: usize,
    pub stalled: Option<Stall>,
    /// Outstanding votes in the tally.
    pub tallies: Vec<Tally>,
    pub nodes: Vec<NodeView>,
    pub events: Vec<NodeEvent>,
    /// Every change of the validator set or of which validators are up.
    pub up_history: Vec<UpChange>,
    /// Blocks from `from` (default 0) on.
    pub blocks: Vec<Block>,
}

impl World {
    pub fn new(sync_ms: u64) -> World {
        World {
            sync_ms,
            ..World::default()
        }
    }

    /// A node process starts: joins (or founds) its chain and starts syncing from what
    /// its data volume held.
    pub fn start_node(&mut self, start: NodeStart, now_ms: u64) -> anyhow::Result<ChainKey> {
        let params = chain_params(&start.genesis_json)?;
        let sha256 = genesis_sha256(&start.genesis_json);
        let key = ChainKey {
            namespace: start.namespace.clone(),
            name: start.chain_name.clone(),
            genesis: sha256[..16].to_string(),
        };
        let node_key = match start.key {
            Some(k) => k,
            None => self
                .generated_keys
                .entry((start.namespace.clone(), start.pod.clone()))
                .or_insert_with(NodeKey::generate)
                .clone(),
        };
        let entry = self.chains.entry(key.clone()).or_insert_with(|| {
            info!(chain = %format!("{}/{}", key.namespace, key.name), consensus = %params.consensus,
                validators = params.genesis_validators.len(), period_s = params.block_period_seconds,
                epoch = params.epoch_length, "new chain");
            ChainEntry {
                key: key.clone(),
                chain: Chain::new(params, now_ms),
                created_ms: now_ms,
                events: Vec::new(),
                up_history: Vec::new(),
                stalled: None,
            }
        });
        let head = entry.chain.head();
        let start_height = self
            .retained
            .get(&(key.clone(), start.pod.clone()))
            .copied()
            .unwrap_or(0)
            .min(head);
        let address = node_key.address();
        entry.events.push(NodeEvent {
            at_ms: now_ms,
            pod: start.pod.clone(),
            uid: start.uid.clone(),
            address,
            event: "started",
            head,
        });
        info!(pod = %format!("{}/{}", start.namespace, start.pod), %address, ip = %start.ip,
            from = start_height, head, "node started");
        let client_version = format!("besu-sim/v{}/{}", env!("CARGO_PKG_VERSION"), start.image);
        self.witness
            .genesis_seen(&start.namespace, &start.chain_name, &sha256, now_ms);
        let hist = self.witness.pod_mut(&start.namespace, &start.pod);
        hist.chain = Some(start.chain_name.clone());
        hist.set_labels(start.node.as_deref(), start.node_type.as_deref());
        let observed = hist.current.as_ref().is_some_and(|c| c.uid == start.uid);
        let inc = hist.incarnation(&start.uid);
        if !observed {
            // Started without a pod observation (tests): it runs. Otherwise the pod
            // watcher's view of the phase stands.
            inc.running = true;
        }
        inc.started = true;
        hist.add_key(address, now_ms);
        hist.add_start(StartRecord {
            uid: start.uid.clone(),
            at_ms: now_ms,
            image: start.image.clone(),
            revision: start.revision.clone(),
        });
        self.nodes.insert(
            start.uid.clone(),
            Node {
                uid: start.uid,
                namespace: start.namespace,
                pod: start.pod,
                node: start.node,
                node_type: start.node_type,
                image: start.image,
                ip: start.ip,
                rpc_port: start.rpc_port,
                metrics_port: start.metrics_port,
                p2p_port: start.p2p_port,
                public_key: node_key.public_key(),
                address,
                apis: start.apis,
                chain: key.clone(),
                proposer: VoteProposer::default(),
                sync: SyncModel::new(start_height, head, now_ms, self.sync_ms),
                started_ms: now_ms,
                client_version,
            },
        );
        self.refresh_witness(now_ms);
        Ok(key)
    }

    /// The node process of pod `uid` ends; its proposals are gone, its local chain
    /// stays on the data volume.
    pub fn stop_node(&mut self, uid: &str, now_ms: u64) {
        let Some(node) = self.nodes.remove(uid) else {
            return;
        };
        if let Some(entry) = self.chains.get_mut(&node.chain) {
            let head = entry.chain.head();
            let height = node.sync.height(now_ms, head);
            self.retained
                .insert((node.chain.clone(), node.pod.clone()), height);
            entry.events.push(NodeEvent {
                at_ms: now_ms,
                pod: node.pod.clone(),
                uid: node.uid.clone(),
                address: node.address,
                event: "stopped",
                head,
            });
        }
        info!(pod = %format!("{}/{}", node.namespace, node.pod), address = %node.address, "node stopped");
        self.refresh_witness(now_ms);
    }

    /// The pod's Ready condition as its kubelet (kwok) reports it.
    pub fn set_pod_ready(&mut self, uid: &str, ready: bool, now_ms: u64) {
        let before = self.pod_ready.insert(uid.to_string(), ready);
        if before == Some(ready) {
            return;
        }
        if let Some(node) = self.nodes.get(uid)
            && let Some(entry) = self.chains.get_mut(&node.chain)
        {
            entry.events.push(NodeEvent {
                at_ms: now_ms,
                pod: node.pod.clone(),
                uid: uid.to_string(),
                address: node.address,
                event: if ready { "ready" } else { "not-ready" },
                head: entry.chain.head(),
            });
        }
    }

    pub fn forget_pod(&mut self, uid: &str) {
        self.pod_ready.remove(uid);
    }

    /// The pod watcher saw a pod (added or changed): its Ready condition, and the witness
    /// record of its pod name.
    pub fn observe_pod(&mut self, obs: &PodObservation, now_ms: u64) {
        self.set_pod_ready(&obs.uid, obs.ready, now_ms);
        let hist = self.witness.pod_mut(&obs.namespace, &obs.pod);
        if let Some(network) = &obs.network {
            hist.chain = Some(network.clone());
        }
        hist.set_labels(obs.node.as_deref(), obs.node_type.as_deref());
        let inc = hist.incarnation(&obs.uid);
        inc.running = obs.running;
        inc.deleting = obs.deleting;
        self.refresh_witness(now_ms);
    }

    /// The pod `namespace/pod` with `uid` was deleted.
    pub fn pod_deleted(&mut self, namespace: &str, pod: &str, uid: &str, now_ms: u64) {
        self.forget_pod(uid);
        if let Some(inc) = self
            .witness
            .pods
            .get_mut(&(namespace.to_string(), pod.to_string()))
            .and_then(|h| h.current.as_mut())
            .filter(|inc| inc.uid == uid)
        {
            inc.gone = true;
        }
        self.refresh_witness(now_ms);
    }

    /// After the pod watcher re-listed: pods it did not see again are gone.
    pub fn pods_relisted(&mut self, seen: &HashSet<String>, now_ms: u64) {
        for inc in self
            .witness
            .pods
            .values_mut()
            .filter_map(|h| h.current.as_mut())
        {
            if !seen.contains(&inc.uid) {
                inc.gone = true;
            }
        }
        self.refresh_witness(now_ms);
    }

    /// Re-evaluates every pod name's status and records its down intervals.
    pub fn refresh_witness(&mut self, now_ms: u64) {
        let World {
            witness,
            nodes,
            pod_ready,
            chains,
            ..
        } = self;
        for hist in witness.pods.values_mut() {
            let status = pod_status(hist, nodes, pod_ready, chains, now_ms);
            hist.record(status, now_ms);
        }
    }

    /// The RPC fault in force for the node of pod `uid`.
    fn fault_of(&self, uid: &str) -> Option<RpcFault> {
        let node = self.nodes.get(uid)?;
        self.witness
            .pods
            .get(&(node.namespace.clone(), node.pod.clone()))?
            .fault
    }

    /// Sets (`None`: clears) the RPC fault of pod name `pod` of chain `namespace/name`;
    /// `false` if no such pod was ever seen.
    pub fn set_rpc_fault(
        &mut self,
        namespace: &str,
        name: &str,
        pod: &str,
        fault: Option<RpcFault>,
        now_ms: u64,
    ) -> bool {
        match self
            .witness
            .pods
            .get_mut(&(namespace.to_string(), pod.to_string()))
            .filter(|h| h.chain.as_deref() == Some(name))
        {
            None => false,
            Some(h) => {
                if h.fault != fault {
                    info!(pod = %format!("{namespace}/{pod}"), fault = ?fault, "rpc fault set");
                }
                h.set_fault(fault, now_ms);
                true
            }
        }
    }

    /// The newest chain named `name` in `namespace`.
    fn newest_chain(&self, namespace: &str, name: &str) -> Option<&ChainEntry> {
        self.chains
            .values()
            .filter(|e| e.key.namespace == namespace && e.key.name == name)
            .max_by_key(|e| e.created_ms)
    }

    /// Every validator of chain `namespace/name` that is up now proposes `subject` (add or
    /// drop) in its own `VoteProposer`, as `qbft_proposeValidatorVote` on each would.
    /// Returns how many nodes now propose it; `None` if there is no such chain.
    pub fn out_of_band_vote(
        &mut self,
        namespace: &str,
        name: &str,
        subject: Address,
        add: bool,
        now_ms: u64,
    ) -> Option<usize> {
        let entry = self.newest_chain(namespace, name)?;
        let key = entry.key.clone();
        let head = entry.chain.head();
        let validators = entry.chain.tally.validators().clone();
        let up = self.up_addresses(&key, now_ms, head);
        let mut count = 0;
        for n in self.nodes.values_mut().filter(|n| {
            n.chain == key && validators.contains(&n.address) && up.contains(&n.address)
        }) {
            n.proposer.propose(subject, add);
            count += 1;
        }
        info!(chain = %format!("{namespace}/{name}"), %subject, add, proposers = count,
            "out-of-band vote");
        Some(count)
    }

    /// `GET /chains/<namespace>/<name>/witness`; `None` if nothing is known of that chain.
    pub fn witness(&mut self, namespace: &str, name: &str, now_ms: u64) -> Option<WitnessView> {
        self.refresh_witness(now_ms);
        let entry = self.newest_chain(namespace, name);
        let nodes: Vec<WitnessNode> = self
            .witness
            .chain_pods(namespace, name)
            .map(WitnessNode::from)
            .collect();
        let genesis = self
            .witness
            .geneses
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
            .unwrap_or_default();
        if entry.is_none() && nodes.is_empty() && genesis.is_empty() {
            return None;
        }
        let blocks = entry
            .map(|e| {
                let skip = e.chain.blocks.len().saturating_sub(MAX_BLOCKS);
                e.chain.blocks[skip..]
                    .iter()
                    .map(|b| WitnessBlock {
                        number: b.number,
                        time_ms: if b.number == 0 {
                            e.created_ms
                        } else {
                            b.produced_at_ms
                        },
                        validators: b.validators.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(WitnessView {
            now_ms,
            block_period_ms: entry.map(|e| e.chain.period_ms()).unwrap_or(0),
            genesis,
            blocks,
            nodes,
        })
    }

    pub fn is_ready(&self, uid: &str) -> bool {
        self.pod_ready.get(uid).copied().unwrap_or(false)
    }

    /// Other running nodes of the same chain, up to Besu's `--max-peers` default.
    pub fn peers(&self, uid: &str) -> usize {
        let Some(node) = self.nodes.get(uid) else {
            return 0;
        };
        self.nodes
            .values()
            .filter(|n| n.uid != uid && n.chain == node.chain)
            .count()
            .min(MAX_PEERS)
    }

    /// Validators of `key`'s chain that are up: a node in sync whose pod is Ready.
    fn up_addresses(&self, key: &ChainKey, now_ms: u64, head: u64) -> BTreeSet<Address> {
        self.nodes
            .values()
            .filter(|n| &n.chain == key && self.is_ready(&n.uid) && n.sync.in_sync(now_ms, head))
            .map(|n| n.address)
            .collect()
    }

    /// Advances every chain to `now_ms`: sync progress, then a block where one is due.
    pub fn tick(&mut self, now_ms: u64) {
        let keys: Vec<ChainKey> = self.chains.keys().cloned().collect();
        for key in keys {
            let head = self.chains[&key].chain.head();
            for n in self.nodes.values_mut().filter(|n| n.chain == key) {
                n.sync.update(now_ms, head);
            }
            let up = self.up_addresses(&key, now_ms, head);
            let World {
                chains,
                nodes,
                pod_ready,
                ..
            } = self;
            let Some(entry) = chains.get_mut(&key) else {
                continue;
            };
            let validators: Vec<Address> = entry.chain.tally.validators().iter().copied().collect();
            let up_validators: Vec<Address> = validators
                .iter()
                .filter(|v| up.contains(v))
                .copied()
                .collect();
            if entry
                .up_history
                .last()
                .is_none_or(|l| l.validators != validators || l.up != up_validators)
            {
                entry.up_history.push(UpChange {
                    at_ms: now_ms,
                    head,
                    validators,
                    up: up_validators,
                });
            }
            let step = entry.chain.step(now_ms, &up, |proposer, tally| {
                nodes
                    .values_mut()
                    .find(|n| {
                        n.chain == key
                            && &n.address == proposer
                            && pod_ready.get(&n.uid).copied().unwrap_or(false)
                    })
                    .and_then(|n| n.proposer.get_vote(proposer, tally))
            });
            let name = format!("{}/{}", key.namespace, key.name);
            match step {
                Step::NotDue => {}
                Step::Produced(number) => {
                    if let Some(s) = entry.stalled.take() {
                        info!(chain = %name, number, stalled_ms = now_ms - s.since_ms, "chain resumed");
                    }
                    let b = entry.chain.head_block();
                    debug!(chain = %name, number, proposer = ?b.proposer, round = b.round,
                        up = b.validators_up.len(), vote = ?b.vote, "block");
                    if let Some(v) = b.vote {
                        info!(chain = %name, number, proposer = ?b.proposer, subject = %v.subject,
                            add = v.add, counted = v.counted, "vote in block");
                    }
                    if let Some(c) = b.change {
                        info!(chain = %name, number, address = %c.address, added = c.added,
                            validators = entry.chain.tally.validators().len(),
                            "validator set changes from the next block");
                    }
                }
                Step::Stalled {
                    up,
                    needed,
                    validators,
                } => {
                    if entry.stalled.is_none() {
                        info!(chain = %name, head, up, needed, validators, "chain stalled: too few validators up");
                        entry.stalled = Some(Stall {
                            since_ms: now_ms,
                            up,
                            needed,
                        });
                    } else if let Some(s) = entry.stalled.as_mut() {
                        s.up = up;
                        s.needed = needed;
                    }
                }
            }
        }
        self.refresh_witness(now_ms);
    }

    /// A JSON-RPC request to pod `uid`. An RPC fault of its pod name applies: `timeout`
    /// → [`RpcOutcome::Hang`]; `lag` → it reports a head `N` blocks behind (block number,
    /// `eth_syncing`, `latest`), while it still takes part in consensus.
    pub fn rpc(&mut self, uid: &str, body: &[u8], now_ms: u64) -> RpcOutcome {
        if !self.nodes.contains_key(uid) {
            return RpcOutcome::NoNode;
        }
        let fault = self.fault_of(uid);
        if fault == Some(RpcFault::Timeout) {
            return RpcOutcome::Hang;
        }
        self.refresh_witness(now_ms);
        let peers = self.peers(uid);
        let Some(node) = self.nodes.get_mut(uid) else {
            return RpcOutcome::NoNode;
        };
        let Some(chain) = self.chains.get(&node.chain).map(|e| &e.chain) else {
            return RpcOutcome::NoNode;
        };
        let head = chain.head();
        let mut local_height = node.sync.height(now_ms, head);
        let mut sync = node.sync.status(now_ms, head);
        if let Some(RpcFault::Lag(behind)) = fault {
            local_height = local_height.min(head.saturating_sub(behind));
            sync = (local_height < head).then(|| SyncStatus {
                starting: sync.map_or(local_height, |s| s.starting.min(local_height)),
                current: local_height,
                highest: head,
            });
        }
        let mut ctx = NodeCtx {
            chain,
            apis: &node.apis,
            proposer: &mut node.proposer,
            local_height,
            sync,
            peers,
            node_id: node.public_key.to_hex(),
            ip: node.ip.to_string(),
            p2p_port: node.p2p_port,
            client_version: &node.client_version,
        };
        RpcOutcome::Reply(rpc::handle_body(body, |m, p| rpc::call(&mut ctx, m, p)))
    }

    /// `GET /readiness` of pod `uid` (not affected by RPC faults).
    pub fn readiness(
        &mut self,
        uid: &str,
        now_ms: u64,
        min_peers: Option<&str>,
        max_blocks_behind: Option<&str>,
    ) -> Option<bool> {
        self.refresh_witness(now_ms);
        let node = self.nodes.get(uid)?;
        let head = self.chains.get(&node.chain)?.chain.head();
        Some(readiness(
            self.peers(uid),
            node.sync.status(now_ms, head),
            min_peers,
            max_blocks_behind,
        ))
    }

    /// `GET /metrics` of pod `uid` (not affected by RPC faults).
    pub fn metrics(&mut self, uid: &str, now_ms: u64) -> Option<String> {
        self.refresh_witness(now_ms);
        let node = self.nodes.get(uid)?;
        let chain = &self.chains.get(&node.chain)?.chain;
        let head = chain.head();
        let height = node.sync.height(now_ms, head);
        Some(metrics_text(&Metrics {
            height,
            best_known: head,
            peers: self.peers(uid),
            peer_limit: MAX_PEERS,
            in_sync: node.sync.in_sync(now_ms, head),
            head_timestamp: chain.block(height).map(|b| b.timestamp).unwrap_or(0),
        }))
    }

    pub fn summaries(&self) -> Vec<ChainSummary> {
        self.chains
            .values()
            .map(|e| ChainSummary {
                namespace: e.key.namespace.clone(),
                name: e.key.name.clone(),
                genesis: e.key.genesis.clone(),
                consensus: e.chain.params.consensus,
                head: e.chain.head(),
                validators: e.chain.tally.validators().iter().copied().collect(),
                producing: e.stalled.is_none(),
                nodes: self.nodes.values().filter(|n| n.chain == e.key).count(),
                created_ms: e.created_ms,
            })
            .collect()
    }

    /// The newest chain named `name` in `namespace`, blocks from `from` on.
    pub fn view(&self, namespace: &str, name: &str, from: u64, now_ms: u64) -> Option<ChainView> {
        let e = self.newest_chain(namespace, name)?;
        let head = e.chain.head();
        let validators: Vec<Address> = e.chain.tally.validators().iter().copied().collect();
        let up = self.up_addresses(&e.key, now_ms, head);
        let nodes = self
            .nodes
            .values()
            .filter(|n| n.chain == e.key)
            .map(|n| NodeView {
                pod: n.pod.clone(),
                uid: n.uid.clone(),
                node: n.node.clone(),
                node_type: n.node_type.clone(),
                image: n.image.clone(),
                ip: n.ip.to_string(),
                rpc_port: n.rpc_port,
                metrics_port: n.metrics_port,
                address: n.address,
                ready: self.is_ready(&n.uid),
                in_sync: n.sync.in_sync(now_ms, head),
                height: n.sync.height(now_ms, head),
                peers: self.peers(&n.uid),
                pending_votes: n.proposer.proposals(),
                started_ms: n.started_ms,
            })
            .collect();
        let from = usize::try_from(from).unwrap_or(usize::MAX);
        Some(ChainView {
            namespace: e.key.namespace.clone(),
            name: e.key.name.clone(),
            genesis: e.key.genesis.clone(),
            consensus: e.chain.params.consensus,
            chain_id: e.chain.params.chain_id,
            block_period_seconds: e.chain.params.block_period_seconds,
            epoch_length: e.chain.params.epoch_length,
            created_ms: e.created_ms,
            head,
            head_timestamp: e.chain.head_block().timestamp,
            validators_up: validators
                .iter()
                .filter(|v| up.contains(v))
                .copied()
                .collect(),
            quorum: commit_quorum(validators.len()),
            validators,
            stalled: e.stalled,
            tallies: e.chain.tally.outstanding(),
            nodes,
            events: e.events.clone(),
            up_history: e.up_history.clone(),
            blocks: e.chain.blocks.iter().skip(from).cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::witness::DownInterval;
    use serde_json::json;

    use crate::genesis::test_support::keys;

    fn genesis(keys: &[NodeKey]) -> String {
        let validators: Vec<Address> = keys.iter().map(|k| k.address()).collect();
        crate::genesis::test_support::genesis(Consensus::Qbft, 1337, 1, &validators)
    }

    fn start(w: &mut World, i: usize, key: Option<NodeKey>, genesis: &str, now: u64) -> String {
        let uid = format!("uid-{i}-{now}");
        start_uid(w, i, &uid, key, genesis, now);
        w.set_pod_ready(&uid, true, now);
        uid
    }

    fn pod_name(i: usize) -> String {
        format!("net-validator-{i}-0")
    }

    /// Starts Besu in pod `i` with `uid` (its pod's Ready condition untouched).
    fn start_uid(
        w: &mut World,
        i: usize,
        uid: &str,
        key: Option<NodeKey>,
        genesis: &str,
        now: u64,
    ) {
        w.start_node(
            NodeStart {
                uid: uid.to_string(),
                namespace: "ns".into(),
                pod: pod_name(i),
                node: Some(format!("net-validator-{i}")),
                node_type: Some("validator".into()),
                image: "hyperledger/besu:26.3.0".into(),
                revision: Some("net-validator-5d8f7c9b4".into()),
                ip: format!("127.64.0.{}", i + 1).parse().unwrap(),
                rpc_port: 8545,
                metrics_port: 9545,
                p2p_port: 30303,
                key,
                apis: ["ETH", "NET", "QBFT"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                chain_name: "net".into(),
                genesis_json: genesis.into(),
            },
            now,
        )
        .unwrap();
    }

    /// What the pod watcher reports of pod `i`.
    fn observe(w: &mut World, i: usize, uid: &str, phase: (bool, bool, bool), now: u64) {
        let (running, ready, deleting) = phase;
        w.observe_pod(
            &PodObservation {
                uid: uid.to_string(),
                namespace: "ns".into(),
                pod: pod_name(i),
                network: Some("net".into()),
                node: Some(format!("net-validator-{i}")),
                node_type: Some("validator".into()),
                running,
                deleting,
                ready,
            },
            now,
        );
    }

    const PENDING: (bool, bool, bool) = (false, false, false);
    const RUNNING: (bool, bool, bool) = (true, false, false);
    const READY: (bool, bool, bool) = (true, true, false);
    const DELETING: (bool, bool, bool) = (true, true, true);

    fn call(w: &mut World, uid: &str, method: &str, params: Value, now: u64) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let RpcOutcome::Reply(Some(out)) = w.rpc(uid, body.to_string().as_bytes(), now) else {
            panic!("no reply from {uid}");
        };
        out.get("result")
            .cloned()
            .unwrap_or_else(|| out["error"].clone())
    }

    /// The whole loop through JSON-RPC: three proposals to three validators add a
    /// fifth; a restarted validator has lost its proposal (`VoteProposer` is memory).
    #[test]
    fn votes_through_rpc_and_restart_loses_proposals() {
        let ks = keys(4);
        let g = genesis(&ks);
        let mut w = World::new(2_000);
        let uids: Vec<String> = (0..4)
            .map(|i| start(&mut w, i, Some(ks[i].clone()), &g, 0))
            .collect();
        let new = keys(5)[4].address();
        for uid in &uids[..3] {
            assert_eq!(
                call(
                    &mut w,
                    uid,
                    "qbft_proposeValidatorVote",
                    json!([new.to_string(), true]),
                    0
                ),
                json!(true)
            );
        }
        // Validator 2 restarts: a new pod UID, a new process without proposals.
        w.stop_node(&uids[2], 10);
        let restarted = start(&mut w, 2, Some(ks[2].clone()), &g, 10);
        assert_eq!(
            call(&mut w, &restarted, "qbft_getPendingVotes", json!([]), 10),
            json!({})
        );
        let mut now = 0;
        for _ in 0..10 {
            now += 1_000;
            w.tick(now);
        }
        let latest = call(
            &mut w,
            &uids[0],
            "qbft_getValidatorsByBlockNumber",
            json!(["latest"]),
            now,
        );
        assert_eq!(latest.as_array().unwrap().len(), 4);
        call(
            &mut w,
            &restarted,
            "qbft_proposeValidatorVote",
            json!([new.to_string(), true]),
            now,
        );
        for _ in 0..5 {
            now += 1_000;
            w.tick(now);
        }
        let latest = call(
            &mut w,
            &uids[0],
            "qbft_getValidatorsByBlockNumber",
            json!(["latest"]),
            now,
        );
        assert!(
            latest.as_array().unwrap().contains(&json!(new.to_string())),
            "{latest}"
        );
        let view = w.view("ns", "net", 0, now).unwrap();
        assert_eq!(view.validators.len(), 5);
        assert_eq!(
            view.events.iter().filter(|e| e.event == "started").count(),
            5
        );
    }

    /// A node that starts behind syncs (eth_syncing, readiness), and does not count
    /// toward the quorum until it is in sync.
    #[test]
    fn late_node_syncs_and_counts_once_in_sync() {
        let ks = keys(4);
        let g = genesis(&ks);
        let mut w = World::new(2_000);
        let uids: Vec<String> = (0..3)
            .map(|i| start(&mut w, i, Some(ks[i].clone()), &g, 0))
            .collect();
        let mut now = 0;
        for _ in 0..10 {
            now += 1_000;
            w.tick(now);
        }
        assert_eq!(w.chains.values().next().unwrap().chain.head(), 10);
        let late = start(&mut w, 3, Some(ks[3].clone()), &g, now);
        let syncing = call(&mut w, &late, "eth_syncing", json!([]), now + 500);
        assert_eq!(syncing["startingBlock"], json!("0x0"));
        assert_eq!(syncing["highestBlock"], json!("0xa"));
        assert_eq!(
            w.readiness(&late, now + 500, Some("0"), Some("2")),
            Some(false)
        );
        assert_eq!(w.peers(&late), 3);
        // Stop two of the others: only 1 + the syncing one; no block while it syncs.
        w.stop_node(&uids[0], now);
        w.stop_node(&uids[1], now);
        w.tick(now + 1_000);
        assert_eq!(w.chains.values().next().unwrap().chain.head(), 10);
        assert!(w.chains.values().next().unwrap().stalled.is_some());
        // In sync after 2 s, but 2 of 4 up is still below ceil(8/3) = 3.
        w.tick(now + 2_100);
        assert_eq!(
            call(&mut w, &late, "eth_syncing", json!([]), now + 2_100),
            json!(false)
        );
        assert_eq!(w.readiness(&late, now + 2_100, None, None), Some(true));
        assert_eq!(w.chains.values().next().unwrap().chain.head(), 10);
        // A restarted validator resumes from its retained height and the chain resumes.
        let back = start(&mut w, 0, Some(ks[0].clone()), &g, now + 2_100);
        assert!(w.nodes[&back].sync.done, "retained height 10 = head");
        w.tick(now + 3_200);
        assert_eq!(w.chains.values().next().unwrap().chain.head(), 11);
        assert!(w.chains.values().next().unwrap().stalled.is_none());
    }

    /// A pod that is not Ready does not count toward the quorum.
    #[test]
    fn not_ready_pods_do_not_count() {
        let ks = keys(4);
        let g = genesis(&ks);
        let mut w = World::new(2_000);
        let uids: Vec<String> = (0..4)
            .map(|i| start(&mut w, i, Some(ks[i].clone()), &g, 0))
            .collect();
        w.set_pod_ready(&uids[0], false, 0);
        w.set_pod_ready(&uids[1], false, 0);
        w.tick(1_000);
        assert_eq!(w.chains.values().next().unwrap().chain.head(), 0);
        w.set_pod_ready(&uids[1], true, 1_000);
        w.tick(2_000);
        assert_eq!(w.chains.values().next().unwrap().chain.head(), 1);
        // The up record covers the stall: 2 up, then 3.
        let ups: Vec<usize> = w
            .chains
            .values()
            .next()
            .unwrap()
            .up_history
            .iter()
            .map(|u| u.up.len())
            .collect();
        assert_eq!(ups, vec![2, 3]);
    }

    #[test]
    fn metrics_and_nodes_without_a_key() {
        let ks = keys(1);
        let g = genesis(&ks);
        let mut w = World::new(2_000);
        let v = start(&mut w, 0, Some(ks[0].clone()), &g, 0);
        let m = start(&mut w, 1, None, &g, 0);
        let member_address = w.nodes[&m].address;
        w.tick(1_000);
        let text = w.metrics(&m, 1_000).unwrap();
        assert!(
            text.contains("\nethereum_blockchain_height 1.0\n"),
            "{text}"
        );
        assert!(text.contains("\nethereum_peer_count 1.0\n"), "{text}");
        // The generated key lives on the data volume: the same address after a restart.
        w.stop_node(&m, 1_000);
        let m2 = start(&mut w, 1, None, &g, 1_000);
        assert_eq!(w.nodes[&m2].address, member_address);
        assert_ne!(w.nodes[&v].address, member_address);
    }

    fn down(from: u64, to: Option<u64>, cause: DownCause, uid: &str) -> DownInterval {
        DownInterval {
            from_ms: from,
            to_ms: to,
            cause,
            uid: Some(uid.to_string()),
        }
    }

    fn witness_node(view: &WitnessView, i: usize) -> &WitnessNode {
        view.nodes
            .iter()
            .find(|n| n.pod == pod_name(i))
            .expect("pod in witness")
    }

    /// Four validators come up; validator 0 is deleted and its replacement pod starts,
    /// becomes Ready and syncs; validator 1 restarts with a different key. The witness
    /// holds every down interval, start, key and block.
    #[test]
    fn witness_records_bring_up_delete_and_restart() {
        let ks = keys(6);
        let g = genesis(&ks[..4]);
        let mut w = World::new(2_000);
        for i in 0..4 {
            observe(&mut w, i, &format!("u{i}"), PENDING, 1_000);
        }
        for i in 0..4 {
            observe(&mut w, i, &format!("u{i}"), RUNNING, 1_200);
        }
        for (i, k) in ks[..4].iter().enumerate() {
            start_uid(&mut w, i, &format!("u{i}"), Some(k.clone()), &g, 1_300);
        }
        for i in 0..4 {
            observe(&mut w, i, &format!("u{i}"), READY, 1_500);
        }
        let mut now = 1_500;
        while now < 11_000 {
            now += 500;
            w.tick(now);
        }
        assert_eq!(w.chains.values().next().unwrap().chain.head(), 9);
        // Validator 0: deletion timestamp, process stopped, pod gone, replacement.
        observe(&mut w, 0, "u0", DELETING, 11_500);
        w.stop_node("u0", 11_600);
        w.pod_deleted("ns", &pod_name(0), "u0", 11_700);
        w.tick(12_000);
        observe(&mut w, 0, "u0b", PENDING, 12_050);
        observe(&mut w, 0, "u0b", RUNNING, 12_100);
        start_uid(&mut w, 0, "u0b", Some(ks[0].clone()), &g, 12_200);
        observe(&mut w, 0, "u0b", READY, 12_500);
        w.tick(13_000);
        // Synced 2 s after its start (retained height 9, head 10 then).
        w.tick(14_200);
        // Validator 1 restarts with another key (a new Secret).
        observe(&mut w, 1, "u1", DELETING, 15_000);
        w.stop_node("u1", 15_000);
        w.pod_deleted("ns", &pod_name(1), "u1", 15_100);
        observe(&mut w, 1, "u1b", RUNNING, 15_300);
        start_uid(&mut w, 1, "u1b", Some(ks[5].clone()), &g, 15_400);
        observe(&mut w, 1, "u1b", READY, 15_600);

        let view = w.witness("ns", "net", 16_000).unwrap();
        let v0 = witness_node(&view, 0);
        assert_eq!(
            v0.down,
            vec![
                down(1_000, Some(1_300), DownCause::NotStarted, "u0"),
                down(1_300, Some(1_500), DownCause::NotReady, "u0"),
                down(11_500, Some(12_050), DownCause::Deleted, "u0"),
                down(12_050, Some(12_200), DownCause::NotStarted, "u0b"),
                down(12_200, Some(12_500), DownCause::NotReady, "u0b"),
                down(12_500, Some(14_200), DownCause::Syncing, "u0b"),
            ]
        );
        assert_eq!(v0.keys.len(), 1);
        assert_eq!(v0.keys[0].address, ks[0].address());
        assert_eq!(v0.keys[0].first_seen_ms, 1_300);
        let starts: Vec<(&str, u64)> = v0
            .starts
            .iter()
            .map(|s| (s.uid.as_str(), s.at_ms))
            .collect();
        assert_eq!(starts, vec![("u0", 1_300), ("u0b", 12_200)]);
        assert_eq!(v0.starts[1].image, "hyperledger/besu:26.3.0");
        assert_eq!(
            v0.starts[1].revision.as_deref(),
            Some("net-validator-5d8f7c9b4")
        );
        assert_eq!(v0.node.as_deref(), Some("net-validator-0"));
        assert_eq!(v0.node_type.as_deref(), Some("validator"));

        let v1 = witness_node(&view, 1);
        let keys1: Vec<(Address, u64)> = v1
            .keys
            .iter()
            .map(|k| (k.address, k.first_seen_ms))
            .collect();
        assert_eq!(
            keys1,
            vec![(ks[1].address(), 1_300), (ks[5].address(), 15_400)]
        );
        assert_eq!(
            v1.down[2..],
            [
                down(15_000, Some(15_300), DownCause::Deleted, "u1"),
                down(15_300, Some(15_400), DownCause::NotStarted, "u1b"),
                // Retained height = head at its stop: in sync at once.
                down(15_400, Some(15_600), DownCause::NotReady, "u1b"),
            ]
        );
        // Validators 2 and 3 were only down during bring-up.
        assert_eq!(witness_node(&view, 3).down.len(), 2);

        assert_eq!(view.now_ms, 16_000);
        assert_eq!(view.block_period_ms, 1_000);
        assert_eq!(view.genesis.len(), 1);
        assert_eq!(view.genesis[0].sha256, genesis_sha256(&g));
        assert_eq!(view.genesis[0].first_seen_ms, 1_300);
        assert_eq!(view.blocks[0].number, 0);
        assert_eq!(view.blocks[0].time_ms, 1_300);
        let genesis_set: Vec<Address> = ks[..4].iter().map(|k| k.address()).collect();
        assert_eq!(view.blocks[0].validators, genesis_set);
        assert_eq!(view.blocks[1].time_ms, 2_500);
        // Blocks while validator 0 was down were produced by the other three.
        let numbers: Vec<u64> = view.blocks.iter().map(|b| b.number).collect();
        assert_eq!(numbers, (0..=numbers.len() as u64 - 1).collect::<Vec<_>>());

        // The served JSON: field names as the tests read them.
        let j = serde_json::to_value(&view).unwrap();
        let mut top: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
        top.sort();
        assert_eq!(
            top,
            ["block_period_ms", "blocks", "genesis", "nodes", "now_ms"]
        );
        let n0 = j["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["pod"] == json!(pod_name(0)))
            .unwrap();
        assert_eq!(
            n0["down"][2],
            json!({"from_ms": 11_500, "to_ms": 12_050, "cause": "deleted", "uid": "u0"})
        );
        assert_eq!(n0["down"][5]["cause"], json!("syncing"));
        assert_eq!(n0["keys"][0]["address"], json!(ks[0].address().to_string()));
        assert_eq!(
            n0["starts"][0],
            json!({"uid": "u0", "at_ms": 1_300, "image": "hyperledger/besu:26.3.0", "revision": "net-validator-5d8f7c9b4"})
        );
        assert_eq!(
            j["blocks"][0]["validators"][0],
            json!(ks[0].address().to_string())
        );
        assert_eq!(j["genesis"][0]["sha256"].as_str().unwrap().len(), 64);
        if std::env::var_os("BESU_SIM_PRINT_WITNESS").is_some() {
            let mut small = j.clone();
            small["blocks"] = json!(j["blocks"].as_array().unwrap()[..2]);
            small["nodes"] = json!([n0]);
            println!("{}", serde_json::to_string_pretty(&small).unwrap());
        }
    }

    /// A pod that stops Running without being deleted is "stopped"; a running one that
    /// goes not-Ready is "not-ready"; pods missing from a re-list are "deleted"; an
    /// open interval has `to_ms: null`.
    #[test]
    fn witness_stopped_not_ready_and_relist() {
        let ks = keys(4);
        let g = genesis(&ks);
        let mut w = World::new(2_000);
        for (i, k) in ks.iter().enumerate() {
            observe(&mut w, i, &format!("u{i}"), RUNNING, 0);
            start_uid(&mut w, i, &format!("u{i}"), Some(k.clone()), &g, 0);
            observe(&mut w, i, &format!("u{i}"), READY, 0);
        }
        w.tick(1_000);
        // Pod 0's container exits: phase Failed (before its process is stopped).
        observe(&mut w, 0, "u0", PENDING, 2_000);
        w.stop_node("u0", 2_100);
        // Pod 1 goes not Ready.
        observe(&mut w, 1, "u1", RUNNING, 2_000);
        observe(&mut w, 1, "u1", READY, 2_300);
        // Pod 2 vanished while the watch was down.
        let seen: HashSet<String> = ["u0", "u1", "u3"].iter().map(|s| s.to_string()).collect();
        w.pods_relisted(&seen, 2_500);
        let view = w.witness("ns", "net", 3_000).unwrap();
        assert_eq!(
            witness_node(&view, 0).down,
            vec![down(2_000, None, DownCause::Stopped, "u0")]
        );
        assert_eq!(
            witness_node(&view, 1).down,
            vec![down(2_000, Some(2_300), DownCause::NotReady, "u1")]
        );
        assert_eq!(
            witness_node(&view, 2).down,
            vec![down(2_500, None, DownCause::Deleted, "u2")]
        );
        assert!(witness_node(&view, 3).down.is_empty());
        let j = serde_json::to_value(&view).unwrap();
        assert_eq!(j["nodes"][0]["down"][0]["to_ms"], Value::Null);
    }

    /// Pods seen before any node started: listed (by their network label), with an
    /// open "not-started" interval; no blocks yet. A second genesis under the same name
    /// is recorded. An unknown chain has no witness.
    #[test]
    fn witness_before_start_and_genesis_change() {
        let ks = keys(4);
        let mut w = World::new(2_000);
        observe(&mut w, 0, "u0", PENDING, 100);
        let view = w.witness("ns", "net", 200).unwrap();
        assert_eq!(view.block_period_ms, 0);
        assert!(view.blocks.is_empty() && view.genesis.is_empty());
        assert_eq!(
            witness_node(&view, 0).down,
            vec![down(100, None, DownCause::NotStarted, "u0")]
        );
        assert!(w.witness("ns", "other", 200).is_none());
        assert!(w.witness("other-ns", "net", 200).is_none());

        let g1 = genesis(&ks);
        let g2 = genesis(&ks[..3]);
        start(&mut w, 0, Some(ks[0].clone()), &g1, 300);
        start(&mut w, 1, Some(ks[1].clone()), &g2, 400);
        let view = w.witness("ns", "net", 500).unwrap();
        let shas: Vec<(&str, u64)> = view
            .genesis
            .iter()
            .map(|g| (g.sha256.as_str(), g.first_seen_ms))
            .collect();
        let (s1, s2) = (genesis_sha256(&g1), genesis_sha256(&g2));
        assert_eq!(shas, vec![(s1.as_str(), 300), (s2.as_str(), 400)]);
        // The blocks are the newest genesis's chain.
        assert_eq!(view.blocks[0].validators.len(), 3);
    }

    /// `timeout`: RPC hangs, readiness and metrics answer as before, the node still
    /// counts for consensus. `lag`: RPC reports a head N behind. Both only in
    /// `rpc_faults`, never as down intervals.
    #[test]
    fn rpc_fault_knobs() {
        let ks = keys(4);
        let g = genesis(&ks);
        let mut w = World::new(2_000);
        let uids: Vec<String> = (0..4)
            .map(|i| {
                let uid = format!("u{i}");
                observe(&mut w, i, &uid, RUNNING, 0);
                start_uid(&mut w, i, &uid, Some(ks[i].clone()), &g, 0);
                observe(&mut w, i, &uid, READY, 0);
                uid
            })
            .collect();
        for t in 1..=5 {
            w.tick(t * 1_000);
        }
        assert!(w.set_rpc_fault("ns", "net", &pod_name(0), Some(RpcFault::Timeout), 5_000));
        assert!(w.set_rpc_fault("ns", "net", &pod_name(1), Some(RpcFault::Lag(3)), 5_000));
        assert!(!w.set_rpc_fault("ns", "net", "no-such-pod", None, 5_000));
        assert!(!w.set_rpc_fault("ns", "other", &pod_name(0), None, 5_000));
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#;
        assert_eq!(w.rpc(&uids[0], body, 5_100), RpcOutcome::Hang);
        assert_eq!(w.readiness(&uids[0], 5_100, Some("0"), None), Some(true));
        assert!(w.metrics(&uids[0], 5_100).is_some());
        assert_eq!(w.rpc("no-such-uid", body, 5_100), RpcOutcome::NoNode);
        assert_eq!(
            call(&mut w, &uids[1], "eth_blockNumber", json!([]), 5_100),
            json!("0x2")
        );
        assert_eq!(
            call(&mut w, &uids[1], "eth_syncing", json!([]), 5_100),
            json!({"startingBlock": "0x2", "currentBlock": "0x2", "highestBlock": "0x5"})
        );
        assert_eq!(
            call(&mut w, &uids[2], "eth_blockNumber", json!([]), 5_100),
            json!("0x5")
        );
        // With 0 and 1 faulty and 2 stopped, 3 of 4 still count: blocks go on.
        w.stop_node(&uids[2], 5_200);
        w.tick(6_000);
        assert_eq!(w.chains.values().next().unwrap().chain.head(), 6);
        assert!(w.set_rpc_fault("ns", "net", &pod_name(0), None, 7_000));
        assert!(w.set_rpc_fault("ns", "net", &pod_name(1), Some(RpcFault::Lag(1)), 7_000));
        assert!(matches!(
            w.rpc(&uids[0], body, 7_000),
            RpcOutcome::Reply(Some(_))
        ));
        let view = w.witness("ns", "net", 8_000).unwrap();
        let n0 = witness_node(&view, 0);
        assert!(n0.down.is_empty());
        let j = serde_json::to_value(&view.nodes).unwrap();
        assert_eq!(
            j[0]["rpc_faults"],
            json!([{"from_ms": 5_000, "to_ms": 7_000, "mode": "timeout", "blocks": null}])
        );
        assert_eq!(
            j[1]["rpc_faults"],
            json!([
                {"from_ms": 5_000, "to_ms": 7_000, "mode": "lag", "blocks": 3},
                {"from_ms": 7_000, "to_ms": null, "mode": "lag", "blocks": 1}
            ])
        );
        assert!(witness_node(&view, 1).down.is_empty());
        // The fault belongs to the pod name: a restarted pod keeps it.
        w.stop_node(&uids[1], 8_000);
        start(&mut w, 1, Some(ks[1].clone()), &g, 8_100);
        let restarted = "uid-1-8100";
        assert_eq!(
            call(&mut w, restarted, "eth_blockNumber", json!([]), 8_100),
            json!("0x5")
        );
    }

    /// `POST …/out-of-band-vote`: every up validator proposes the vote in its own
    /// `VoteProposer`; the change lands by the normal rules.
    #[test]
    fn out_of_band_vote_reaches_every_up_validator() {
        let ks = keys(5);
        let g = genesis(&ks[..4]);
        let mut w = World::new(2_000);
        let uids: Vec<String> = (0..4)
            .map(|i| start(&mut w, i, Some(ks[i].clone()), &g, 0))
            .collect();
        // A member node (not a validator) does not vote; a not-Ready validator is not up.
        start(&mut w, 4, None, &g, 0);
        w.set_pod_ready(&uids[3], false, 0);
        let new = ks[4].address();
        assert_eq!(w.out_of_band_vote("ns", "net", new, true, 0), Some(3));
        assert_eq!(w.out_of_band_vote("ns", "nope", new, true, 0), None);
        assert_eq!(
            call(&mut w, &uids[0], "qbft_getPendingVotes", json!([]), 0),
            json!({ new.to_string(): true })
        );
        assert_eq!(
            call(&mut w, &uids[3], "qbft_getPendingVotes", json!([]), 0),
            json!({})
        );
        let mut now = 0;
        for _ in 0..6 {
            now += 1_000;
            w.tick(now);
        }
        let view = w.view("ns", "net", 0, now).unwrap();
        assert!(view.validators.contains(&new), "{:?}", view.validators);
    }
}
