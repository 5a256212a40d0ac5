//! Everything the simulator knows: one chain per network, one node per running Besu
//! pod (process), and what the pods' kubelet reports (Ready).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use besu_operator::chain::{Address, Consensus, NodeKey, PublicKey, commit_quorum, genesis_sha256};
use serde::Serialize;
use serde_json::Value;
use tracing::{debug, info};

use crate::chain::{Block, Chain, Step, Tally, VoteProposer};
use crate::genesis::chain_params;
use crate::node::{MAX_PEERS, Metrics, SyncModel, metrics_text, readiness};
use crate::rpc::{self, NodeCtx};

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
        let key = ChainKey {
            namespace: start.namespace.clone(),
            name: start.chain_name.clone(),
            genesis: genesis_sha256(&start.genesis_json)[..16].to_string(),
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
            let entry = chains.get_mut(&key).expect("listed above");
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
    }

    /// A JSON-RPC request to pod `uid`: `None` when no node runs there, `Some(None)`
    /// for notifications only.
    pub fn rpc(&mut self, uid: &str, body: &[u8], now_ms: u64) -> Option<Option<Value>> {
        let peers = self.peers(uid);
        let node = self.nodes.get_mut(uid)?;
        let chain = &self.chains.get(&node.chain)?.chain;
        let head = chain.head();
        let mut ctx = NodeCtx {
            chain,
            apis: &node.apis,
            proposer: &mut node.proposer,
            local_height: node.sync.height(now_ms, head),
            sync: node.sync.status(now_ms, head),
            peers,
            node_id: node.public_key.to_hex(),
            ip: node.ip.to_string(),
            p2p_port: node.p2p_port,
            client_version: &node.client_version,
        };
        Some(rpc::handle_body(body, |m, p| rpc::call(&mut ctx, m, p)))
    }

    /// `GET /readiness` of pod `uid`.
    pub fn readiness(
        &self,
        uid: &str,
        now_ms: u64,
        min_peers: Option<&str>,
        max_blocks_behind: Option<&str>,
    ) -> Option<bool> {
        let node = self.nodes.get(uid)?;
        let head = self.chains.get(&node.chain)?.chain.head();
        Some(readiness(
            self.peers(uid),
            node.sync.status(now_ms, head),
            min_peers,
            max_blocks_behind,
        ))
    }

    /// `GET /metrics` of pod `uid`.
    pub fn metrics(&self, uid: &str, now_ms: u64) -> Option<String> {
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
        let e = self
            .chains
            .values()
            .filter(|e| e.key.namespace == namespace && e.key.name == name)
            .max_by_key(|e| e.created_ms)?;
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
    use besu_operator::chain::{GenesisSpec, genesis_json};
    use serde_json::json;

    fn keys(n: usize) -> Vec<NodeKey> {
        (1..=n)
            .map(|i| {
                let mut b = [0u8; 32];
                b[31] = i as u8;
                NodeKey::from_bytes(&b).unwrap()
            })
            .collect()
    }

    fn genesis(keys: &[NodeKey]) -> String {
        let mut spec = GenesisSpec::new(
            Consensus::Qbft,
            1337,
            keys.iter().map(|k| k.address()).collect(),
        );
        spec.block_period_seconds = Some(1);
        genesis_json(&spec).unwrap()
    }

    fn start(w: &mut World, i: usize, key: Option<NodeKey>, genesis: &str, now: u64) -> String {
        let uid = format!("uid-{i}-{now}");
        w.start_node(
            NodeStart {
                uid: uid.clone(),
                namespace: "ns".into(),
                pod: format!("net-validator-{i}-0"),
                node: None,
                node_type: Some("validator".into()),
                image: "hyperledger/besu:26.3.0".into(),
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
        w.set_pod_ready(&uid, true, now);
        uid
    }

    fn call(w: &mut World, uid: &str, method: &str, params: Value, now: u64) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let out = w
            .rpc(uid, body.to_string().as_bytes(), now)
            .unwrap()
            .unwrap();
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
}
