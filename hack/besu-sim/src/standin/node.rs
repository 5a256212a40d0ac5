//! One stand-in node: its chain, its consensus state, its peers and how they meet.
//!
//! Peers (besu-facts §5; hyperledger/besu @ 3fd224e2 `DefaultP2PNetwork`,
//! `PeerDiscoveryAgent`, `RlpxAgent`):
//! - Bootnodes and peers learned from peers are dialled at once and, when not connected,
//!   again every `--Xp2p-initiate-connections-frequency` (Besu default 30 s); static nodes
//!   at start and every `--Xp2p-check-maintained-connections-frequency` (default 60 s),
//!   their host names resolved again on each attempt (`EnodeURLImpl.getIp`). Bootnodes
//!   keep the address they resolved to at start (discv4 endpoints).
//! - Discovery (stand-in for discv4): a node asks its peers for theirs ([`Wire::GetPeers`])
//!   on connecting and every initiate-connections period, and dials the ones it learns.
//!   With `--discovery-enabled=false` it learns nothing and ignores bootnodes ("Discovery
//!   disabled: bootnodes will be ignored.").
//! - `--max-peers` bounds the connections to non-static peers; static nodes are always
//!   kept (Besu's maintained connections).
//! - Two connections to one peer (both dialled at once): the one dialled by the smaller
//!   node id is kept, on both sides.
//!
//! Blocks: a validator imports what its consensus decides; every node imports a
//! announced block that extends its head ([`Wire::NewBlock`]) and, when a peer reports a
//! higher head, downloads the missing range from the best peer ([`Wire::GetBlocks`]).
//! While that download runs with the node two or more blocks behind, `eth_syncing`
//! reports `{startingBlock, currentBlock, highestBlock}`; `besu_synchronizer_in_sync` is
//! 1 within `Synchronizer.DEFAULT_IN_SYNC_TOLERANCE` = 5 blocks of the best peer.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info, warn};

use super::block::{Block, H256, keccak};
use super::chain::Chain;
use super::consensus::{Action, Bft, Payload};
use super::enode::{DnsConfig, Enode, resolver};
use super::p2p::{PeerHello, Wire, short_id};
use crate::besu::{Address, NodeKey, PublicKey, recover_prehash};
use crate::chain::VoteProposer;
use crate::node::SyncStatus;

/// `Synchronizer.DEFAULT_IN_SYNC_TOLERANCE`.
pub const IN_SYNC_TOLERANCE: u64 = 5;
/// Blocks per download request.
const BLOCKS_PER_REQUEST: u64 = 128;
/// A download request not answered within this is sent again.
const REQUEST_TIMEOUT_MS: u64 = 5_000;
/// `gossipedhistorylimit` (`JsonBftConfigOptions`): consensus messages remembered, so
/// each is handled and relayed once.
const GOSSIP_HISTORY: usize = 1000;

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The node settings the runtime needs.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    pub discovery_enabled: bool,
    pub max_peers: usize,
    pub initiate_connections_frequency: Duration,
    pub check_maintained_connections_frequency: Duration,
    pub network_id: u64,
    pub client_version: String,
    pub p2p_host: IpAddr,
    pub p2p_port: u16,
    pub p2p_enabled: bool,
    pub rpc_http_apis: Vec<String>,
    /// `--Xdns-enabled` / `--Xdns-update-enabled`, for enode URLs given at run time
    /// (`admin_addPeer`).
    pub dns: DnsConfig,
}

/// A connected peer.
#[derive(Debug)]
pub struct Peer {
    pub conn: u64,
    pub tx: UnboundedSender<Wire>,
    pub hello: PeerHello,
    pub head: u64,
    pub is_static: bool,
}

impl Peer {
    /// The peer's enode URL from what it advertises.
    pub fn enode(&self) -> String {
        let host = match self.hello.listen_host.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => self.hello.listen_host.clone(),
        };
        format!(
            "enode://{}@{}:{}",
            self.hello.id.to_hex(),
            host,
            self.hello.listen_port
        )
    }

    fn dialler_id(&self, me: &PublicKey) -> [u8; 64] {
        if self.hello.inbound {
            self.hello.id.0
        } else {
            me.0
        }
    }
}

/// A peer the node may dial (bootnode or learned), not a static node.
#[derive(Clone, Debug)]
struct Known {
    id: PublicKey,
    addr: SocketAddr,
    bootnode: bool,
    last_attempt_ms: Option<u64>,
}

#[derive(Clone, Debug)]
struct StaticNode {
    enode: Enode,
    last_attempt_ms: Option<u64>,
}

/// A dial the runtime should start.
#[derive(Clone, Debug)]
pub enum Dial {
    /// To a fixed address.
    Addr(SocketAddr, PublicKey),
    /// To a static node: resolve its host name again first.
    Static(Enode),
}

#[derive(Clone, Copy, Debug, Default)]
struct SyncProgress {
    /// The head when the download began (while two or more behind).
    starting: Option<u64>,
    requested_at_ms: Option<u64>,
}

/// The node's state. One lock guards it ([`Shared::node`]).
pub struct Node {
    pub settings: NodeSettings,
    key: NodeKey,
    pub id: PublicKey,
    pub me: Address,
    pub chain: Chain,
    bft: Bft,
    pub votes: VoteProposer,
    peers: BTreeMap<String, Peer>,
    known: BTreeMap<String, Known>,
    statics: Vec<StaticNode>,
    dialing: BTreeSet<String>,
    pub dial_queue: Vec<Dial>,
    seen: HashSet<H256>,
    seen_order: VecDeque<H256>,
    sync: SyncProgress,
    next_conn: u64,
    last_exchange_ms: u64,
    pub connected_total: u64,
    pub disconnected_total: u64,
    /// Set by the test-only `standin_isolate`: no address to dial and every peer that
    /// dials in turned away, until `admin_addPeer` ([`Node::add_maintained_peer`]).
    isolated: bool,
}

impl Node {
    pub fn new(
        settings: NodeSettings,
        key: NodeKey,
        chain: Chain,
        bootnodes: Vec<Enode>,
        statics: Vec<Enode>,
        request_timeout_secs: u64,
        now: u64,
    ) -> Node {
        let genesis = chain.block(0).expect("a chain has block 0").clone();
        let mut bft = Bft::new(
            key.clone(),
            chain.consensus(),
            chain.genesis.block_period_seconds,
            request_timeout_secs,
            &genesis,
            chain.genesis.hash,
        );
        bft.new_height(
            chain.head().clone(),
            chain.head_hash(),
            chain.next_validators(),
            now,
            &mut |_| None,
        );
        let id = key.public_key();
        let mut known = BTreeMap::new();
        if settings.discovery_enabled {
            for b in bootnodes {
                if b.id == id {
                    continue;
                }
                known.insert(
                    b.id.to_hex(),
                    Known {
                        id: b.id.clone(),
                        addr: SocketAddr::new(b.ip, b.port),
                        bootnode: true,
                        last_attempt_ms: None,
                    },
                );
            }
        }
        // `DefaultP2PNetwork.addMaintainedConnectionPeer`: never this node itself.
        let statics = statics
            .into_iter()
            .filter(|enode| enode.id != id)
            .map(|enode| StaticNode {
                enode,
                last_attempt_ms: None,
            })
            .collect();
        Node {
            me: key.address(),
            id,
            key,
            settings,
            chain,
            bft,
            votes: VoteProposer::default(),
            peers: BTreeMap::new(),
            known,
            statics,
            dialing: BTreeSet::new(),
            dial_queue: Vec::new(),
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            sync: SyncProgress::default(),
            next_conn: 0,
            last_exchange_ms: now,
            connected_total: 0,
            disconnected_total: 0,
            isolated: false,
        }
    }

    /// `admin_addPeer` (`AdminAddPeer` → `DefaultP2PNetwork.addMaintainedConnectionPeer`):
    /// the enode becomes a maintained peer, dialled now and kept like a static node;
    /// false if it is this node or the same one already. Besu's maintained peers are a
    /// set of `DefaultPeer`, equal by node id *and* enode URL: the same node at another
    /// address (a static node frozen to 127.0.0.1 at start, now resolvable) is added.
    /// Ends a `standin_isolate`.
    pub fn add_maintained_peer(&mut self, enode: Enode) -> bool {
        self.isolated = false;
        let same = |s: &StaticNode| {
            s.enode.id == enode.id
                && s.enode.ip == enode.ip
                && s.enode.port == enode.port
                && s.enode.discport == enode.discport
        };
        if enode.id == self.id || self.statics.iter().any(same) {
            return false;
        }
        self.statics.push(StaticNode {
            enode,
            last_attempt_ms: None,
        });
        true
    }

    /// The test-only `standin_isolate`: the state review W1 leaves a node in when every
    /// address it had resolved to 127.0.0.1 and no peer can reach it: every peer is
    /// disconnected, every address it would dial forgotten, and peers that dial in are
    /// turned away, until `admin_addPeer`.
    pub fn isolate(&mut self) {
        self.isolated = true;
        self.known.clear();
        self.statics.clear();
        for p in self.peers.values() {
            let _ = p.tx.send(Wire::Disconnect {
                reason: "standin_isolate".into(),
            });
        }
    }

    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    pub fn is_validator(&self) -> bool {
        self.chain.next_validators().contains(&self.me)
    }

    /// The highest head a peer reported, or ours.
    pub fn best_known(&self) -> u64 {
        self.peers
            .values()
            .map(|p| p.head)
            .max()
            .unwrap_or(0)
            .max(self.chain.head_number())
    }

    /// `eth_syncing`'s status while a download runs two or more blocks behind.
    pub fn sync_status(&self) -> Option<SyncStatus> {
        let head = self.chain.head_number();
        let best = self.best_known();
        let starting = self.sync.starting?;
        (best > head).then_some(SyncStatus {
            starting,
            current: head,
            highest: best,
        })
    }

    pub fn in_sync(&self) -> bool {
        self.best_known() <= self.chain.head_number() + IN_SYNC_TOLERANCE
    }

    pub fn enode(&self) -> String {
        let host = match self.settings.p2p_host {
            IpAddr::V6(v6) => format!("[{v6}]"),
            ip => ip.to_string(),
        };
        format!(
            "enode://{}@{}:{}",
            self.id.to_hex(),
            host,
            self.settings.p2p_port
        )
    }

    fn is_static(&self, id: &PublicKey) -> bool {
        self.statics.iter().any(|s| s.enode.id == *id)
    }

    fn non_static_peers(&self) -> usize {
        self.peers.values().filter(|p| !p.is_static).count()
    }

    /// A handshake completed: keep the connection or say why not.
    pub fn on_connected(
        &mut self,
        hello: PeerHello,
        tx: UnboundedSender<Wire>,
    ) -> Result<u64, String> {
        let key = hello.id.to_hex();
        if hello.id == self.id {
            return Err("connected to self".into());
        }
        let is_static = self.is_static(&hello.id);
        if self.isolated {
            return Err("isolated (standin_isolate)".into());
        }
        self.next_conn += 1;
        let peer = Peer {
            conn: self.next_conn,
            tx,
            head: hello.head,
            hello,
            is_static,
        };
        if let Some(existing) = self.peers.get(&key) {
            if peer.dialler_id(&self.id) < existing.dialler_id(&self.id) {
                let _ = existing.tx.send(Wire::Disconnect {
                    reason: "duplicate connection".into(),
                });
            } else {
                return Err("already connected".into());
            }
        } else if !is_static && self.non_static_peers() >= self.settings.max_peers {
            return Err("too many peers".into());
        }
        let conn = peer.conn;
        let _ = peer.tx.send(Wire::Status {
            head: self.chain.head_number(),
            head_hash: self.chain.head_hash(),
        });
        if self.settings.discovery_enabled {
            let _ = peer.tx.send(Wire::GetPeers);
            if let Ok(ip) = peer.hello.listen_host.parse::<IpAddr>() {
                let addr = SocketAddr::new(ip, peer.hello.listen_port);
                let entry = self.known.entry(key.clone()).or_insert(Known {
                    id: peer.hello.id.clone(),
                    addr,
                    bootnode: false,
                    last_attempt_ms: None,
                });
                if !entry.bootnode {
                    entry.addr = addr;
                }
            }
        }
        debug!(
            peer = %short_id(&peer.hello.id),
            remote = %peer.hello.remote,
            inbound = peer.hello.inbound,
            "peer connected"
        );
        self.peers.insert(key, peer);
        self.connected_total += 1;
        Ok(conn)
    }

    pub fn on_disconnected(&mut self, id: &PublicKey, conn: u64) {
        let key = id.to_hex();
        if self.peers.get(&key).is_some_and(|p| p.conn == conn) {
            self.peers.remove(&key);
            self.disconnected_total += 1;
            debug!(peer = %short_id(id), "peer disconnected");
        }
    }

    pub fn dial_finished(&mut self, id: &PublicKey) {
        self.dialing.remove(&id.to_hex());
    }

    /// Updates a static node's address after a fresh lookup.
    pub fn static_resolved(&mut self, enode: &Enode) {
        if let Some(s) = self
            .statics
            .iter_mut()
            .find(|s| s.enode.id == enode.id && s.enode.hostname == enode.hostname)
        {
            s.enode.ip = enode.ip;
        }
    }

    fn send(&self, key: &str, msg: Wire) {
        if let Some(p) = self.peers.get(key) {
            let _ = p.tx.send(msg);
        }
    }

    fn remember(&mut self, h: H256) -> bool {
        if !self.seen.insert(h) {
            return false;
        }
        self.seen_order.push_back(h);
        while self.seen_order.len() > GOSSIP_HISTORY {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    /// A message from a connected peer.
    pub fn on_message(&mut self, id: &PublicKey, conn: u64, msg: Wire, now: u64) {
        let key = id.to_hex();
        if self.peers.get(&key).is_none_or(|p| p.conn != conn) {
            return;
        }
        match msg {
            Wire::Status { head, .. } => {
                if let Some(p) = self.peers.get_mut(&key) {
                    p.head = head;
                }
                self.maybe_sync(now);
            }
            Wire::GetPeers => {
                let enodes = self
                    .peers
                    .iter()
                    .filter(|(k, _)| **k != key)
                    .map(|(_, p)| p.enode())
                    .collect();
                self.send(&key, Wire::Peers { enodes });
            }
            Wire::Peers { enodes } => {
                if !self.settings.discovery_enabled {
                    return;
                }
                let plain = DnsConfig {
                    enabled: false,
                    update_enabled: false,
                };
                for e in enodes {
                    let Ok(enode) = Enode::parse(&e, plain, resolver()) else {
                        continue;
                    };
                    let k = enode.id.to_hex();
                    if enode.id == self.id || self.known.contains_key(&k) {
                        continue;
                    }
                    debug!(peer = %short_id(&enode.id), "learned a peer");
                    self.known.insert(
                        k,
                        Known {
                            id: enode.id.clone(),
                            addr: SocketAddr::new(enode.ip, enode.port),
                            bootnode: false,
                            last_attempt_ms: None,
                        },
                    );
                }
            }
            Wire::GetBlocks { from, count } => {
                let count = u64::from(count).min(BLOCKS_PER_REQUEST);
                let blocks: Vec<Block> = (from..from.saturating_add(count))
                    .map_while(|n| self.chain.block(n).cloned())
                    .collect();
                self.send(&key, Wire::Blocks { blocks });
            }
            Wire::Blocks { blocks } => {
                self.sync.requested_at_ms = None;
                for b in blocks {
                    if b.number == self.chain.head_number() + 1
                        && !self.import(b, false, now, Some(&key))
                    {
                        break;
                    }
                }
                self.maybe_sync(now);
            }
            Wire::NewBlock { block } => {
                if let Some(p) = self.peers.get_mut(&key) {
                    p.head = p.head.max(block.number);
                }
                if block.number == self.chain.head_number() + 1 {
                    self.import(block, false, now, Some(&key));
                } else {
                    self.maybe_sync(now);
                }
            }
            Wire::Consensus { data, sig } => self.on_consensus(&key, data, sig, now),
            Wire::Hello { .. } | Wire::Auth { .. } | Wire::Disconnect { .. } => {}
        }
    }

    fn on_consensus(&mut self, from: &str, data: String, sig: String, now: u64) {
        let h = keccak(data.as_bytes());
        // Two validators may send the same content (a round change): a message is its
        // content and its signature.
        if !self.remember(keccak(format!("{data}{sig}").as_bytes())) {
            return;
        }
        let Some(author) = hex::decode(&sig)
            .ok()
            .and_then(|s| recover_prehash(&h.0, &s))
            .map(|pk| pk.address())
        else {
            return;
        };
        let payload = match serde_json::from_str::<Payload>(&data) {
            Ok(p) => p,
            Err(e) => {
                debug!(error = %e, "undecodable consensus message");
                return;
            }
        };
        tracing::trace!(
            author = %author,
            kind = payload.kind(),
            height = payload.height(),
            round = payload.round(),
            "consensus message"
        );
        // Gossip: once, to every other peer (`BftGossip`).
        for (k, p) in &self.peers {
            if k != from {
                let _ = p.tx.send(Wire::Consensus {
                    data: data.clone(),
                    sig: sig.clone(),
                });
            }
        }
        let Node {
            bft, votes, chain, ..
        } = self;
        let actions = bft.handle(author, payload, now, &mut |me| {
            votes.get_vote(me, &chain.tally)
        });
        self.apply(actions, now);
    }

    fn apply(&mut self, actions: Vec<Action>, now: u64) {
        for a in actions {
            match a {
                Action::Broadcast(payload) => {
                    let data = serde_json::to_string(&payload).expect("payloads serialize");
                    let h = keccak(data.as_bytes());
                    let sig = hex::encode(self.key.sign_prehash(&h.0));
                    self.remember(keccak(format!("{data}{sig}").as_bytes()));
                    for p in self.peers.values() {
                        let _ = p.tx.send(Wire::Consensus {
                            data: data.clone(),
                            sig: sig.clone(),
                        });
                    }
                }
                Action::Import(block) => {
                    if block.number == self.chain.head_number() + 1 {
                        self.import(block, true, now, None);
                    }
                }
                Action::Log(line) => {
                    if line.starts_with("Proposing") || line.starts_with("Ignoring") {
                        debug!("{line}");
                    } else {
                        info!("{line}");
                    }
                }
            }
        }
    }

    /// Imports a block that extends the head; false if it is refused.
    fn import(&mut self, block: Block, decided: bool, now: u64, from: Option<&str>) -> bool {
        let number = block.number;
        let consensus = self.chain.consensus();
        let hash = block.hash(consensus);
        let round = block.round;
        let seals = block.seals.len();
        let produced = decided && block.proposer == self.me;
        let announce = block.clone();
        match self.chain.import(block) {
            Ok(change) => {
                info!(
                    "{} #{number} / 0 tx / round {round} / {seals} seals / ({}) / peers {}",
                    if produced { "Produced" } else { "Imported" },
                    hash.short(),
                    self.peers.len()
                );
                if let Some(c) = change {
                    info!(
                        "Validator {} {} by vote in block #{number}; the set has {} validators from block #{}",
                        c.address,
                        if c.added { "added" } else { "removed" },
                        self.chain.next_validators().len(),
                        number + 1
                    );
                }
                for p in self.peers.values_mut() {
                    if p.head < number {
                        let _ = p.tx.send(Wire::NewBlock {
                            block: announce.clone(),
                        });
                        p.head = number;
                    }
                }
                let head = self.chain.head().clone();
                let head_hash = self.chain.head_hash();
                let validators = self.chain.next_validators();
                let Node {
                    bft, votes, chain, ..
                } = self;
                let actions = bft.new_height(head, head_hash, validators, now, &mut |me| {
                    votes.get_vote(me, &chain.tally)
                });
                self.apply(actions, now);
                if self.best_known() <= self.chain.head_number() {
                    self.sync.starting = None;
                }
                true
            }
            Err(why) => {
                match from {
                    Some(k) => {
                        warn!(peer = %k.get(..16).unwrap_or(k), "Invalid block #{number}: {why}")
                    }
                    None => warn!("Could not import decided block #{number}: {why}"),
                }
                false
            }
        }
    }

    /// Starts or continues a download from the best peer when it is ahead.
    fn maybe_sync(&mut self, now: u64) {
        let head = self.chain.head_number();
        let Some((key, best)) = self
            .peers
            .iter()
            .max_by_key(|(_, p)| p.head)
            .map(|(k, p)| (k.clone(), p.head))
        else {
            return;
        };
        if best <= head {
            self.sync = SyncProgress::default();
            return;
        }
        if best >= head + 2 && self.sync.starting.is_none() {
            self.sync.starting = Some(head);
        }
        let stale = self
            .sync
            .requested_at_ms
            .is_none_or(|t| now.saturating_sub(t) >= REQUEST_TIMEOUT_MS);
        if stale {
            self.sync.requested_at_ms = Some(now);
            self.send(
                &key,
                Wire::GetBlocks {
                    from: head + 1,
                    count: BLOCKS_PER_REQUEST as u32,
                },
            );
        }
    }

    /// Timers: consensus, downloads, dials and peer exchange.
    pub fn tick(&mut self, now: u64) {
        let Node {
            bft, votes, chain, ..
        } = self;
        let actions = bft.tick(now, &mut |me| votes.get_vote(me, &chain.tally));
        self.apply(actions, now);
        self.maybe_sync(now);
        if !self.settings.p2p_enabled {
            return;
        }
        let initiate = self.settings.initiate_connections_frequency.as_millis() as u64;
        let maintain = self
            .settings
            .check_maintained_connections_frequency
            .as_millis() as u64;
        for i in 0..self.statics.len() {
            let key = self.statics[i].enode.id.to_hex();
            if self.peers.contains_key(&key) || self.dialing.contains(&key) {
                continue;
            }
            let due = self.statics[i]
                .last_attempt_ms
                .is_none_or(|t| now.saturating_sub(t) >= maintain);
            if due {
                self.statics[i].last_attempt_ms = Some(now);
                self.dialing.insert(key);
                self.dial_queue
                    .push(Dial::Static(self.statics[i].enode.clone()));
            }
        }
        if self.settings.discovery_enabled {
            let keys: Vec<String> = self.known.keys().cloned().collect();
            for key in keys {
                if self.non_static_peers() + self.dialing.len() >= self.settings.max_peers {
                    break;
                }
                if self.peers.contains_key(&key) || self.dialing.contains(&key) {
                    continue;
                }
                let k = self.known.get_mut(&key).expect("listed above");
                let due = k
                    .last_attempt_ms
                    .is_none_or(|t| now.saturating_sub(t) >= initiate);
                if due {
                    k.last_attempt_ms = Some(now);
                    let dial = Dial::Addr(k.addr, k.id.clone());
                    self.dialing.insert(key);
                    self.dial_queue.push(dial);
                }
            }
            if now.saturating_sub(self.last_exchange_ms) >= initiate {
                self.last_exchange_ms = now;
                for p in self.peers.values() {
                    let _ = p.tx.send(Wire::GetPeers);
                }
            }
        }
    }
}

/// The node and what its tasks share.
pub struct Shared {
    node: Mutex<Node>,
    pub key: NodeKey,
    /// `BESU_STANDIN_LOOPBACK_ONLY`: never bind or dial outside 127.0.0.0/8 (tests).
    pub loopback_only: bool,
    wedged: AtomicBool,
    network_id: u64,
    genesis: H256,
    listen_host: String,
    listen_port: u16,
    client: String,
}

impl Shared {
    pub fn new(node: Node, key: NodeKey, loopback_only: bool) -> Shared {
        Shared {
            network_id: node.settings.network_id,
            genesis: node.chain.genesis.hash,
            listen_host: node.settings.p2p_host.to_string(),
            listen_port: node.settings.p2p_port,
            client: node.settings.client_version.clone(),
            node: Mutex::new(node),
            key,
            loopback_only,
            wedged: AtomicBool::new(false),
        }
    }

    pub fn node(&self) -> MutexGuard<'_, Node> {
        self.node.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_wedged(&self) -> bool {
        self.wedged.load(Ordering::Relaxed)
    }

    pub fn wedge(&self) {
        self.wedged.store(true, Ordering::Relaxed);
    }

    /// This node's Hello, with a fresh nonce.
    pub fn hello(&self) -> Wire {
        let mut nonce = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        Wire::Hello {
            protocol: super::p2p::PROTOCOL,
            network_id: self.network_id,
            genesis: self.genesis,
            id: self.key.public_key().to_hex(),
            listen_host: self.listen_host.clone(),
            listen_port: self.listen_port,
            nonce: hex::encode(nonce),
            client: self.client.clone(),
            head: self.node().chain.head_number(),
        }
    }

    pub fn on_message(&self, id: &PublicKey, conn: u64, msg: Wire) {
        self.node().on_message(id, conn, msg, now_ms());
    }
}

/// Ticks the node every 50 ms and starts the dials it asks for.
pub async fn run_ticker(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(Duration::from_millis(50));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if shared.is_wedged() {
            continue;
        }
        let dials = {
            let mut node = shared.node();
            node.tick(now_ms());
            std::mem::take(&mut node.dial_queue)
        };
        for d in dials {
            let shared = shared.clone();
            match d {
                Dial::Addr(addr, id) => {
                    tokio::spawn(super::p2p::dial(shared, addr, id));
                }
                Dial::Static(enode) => {
                    tokio::spawn(async move {
                        let looked_up = tokio::task::spawn_blocking(move || {
                            let mut e = enode;
                            e.refresh(resolver());
                            e
                        })
                        .await;
                        let Ok(enode) = looked_up else { return };
                        shared.node().static_resolved(&enode);
                        let addr = SocketAddr::new(enode.ip, enode.port);
                        super::p2p::dial(shared, addr, enode.id).await;
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::besu::Consensus;
    use crate::standin::chain::test_support::genesis_for;
    use tokio::sync::mpsc;

    fn key(n: u8) -> NodeKey {
        let mut b = [0u8; 32];
        b[31] = n;
        NodeKey::from_bytes(&b).unwrap()
    }

    fn node(max_peers: usize, statics: Vec<Enode>) -> Node {
        let k = key(1);
        let chain = Chain::in_memory(genesis_for(std::slice::from_ref(&k), Consensus::Qbft, 1));
        let settings = NodeSettings {
            discovery_enabled: true,
            max_peers,
            initiate_connections_frequency: Duration::from_secs(30),
            check_maintained_connections_frequency: Duration::from_secs(60),
            network_id: 1337,
            client_version: "test".into(),
            p2p_host: "127.0.0.1".parse().unwrap(),
            p2p_port: 30303,
            p2p_enabled: true,
            rpc_http_apis: vec![],
            dns: DnsConfig {
                enabled: true,
                update_enabled: true,
            },
        };
        Node::new(settings, k, chain, vec![], statics, 1, 0)
    }

    fn hello(k: &NodeKey, inbound: bool, port: u16) -> PeerHello {
        PeerHello {
            id: k.public_key(),
            listen_host: "127.0.0.9".into(),
            listen_port: port,
            client: "peer".into(),
            head: 0,
            remote: "127.0.0.9:1".parse().unwrap(),
            inbound,
        }
    }

    fn chan() -> (UnboundedSender<Wire>, mpsc::UnboundedReceiver<Wire>) {
        mpsc::unbounded_channel()
    }

    fn ip_enode(k: &NodeKey) -> Enode {
        Enode::parse(
            &format!("enode://{}@127.0.0.9:30303", k.public_key().to_hex()),
            DnsConfig {
                enabled: false,
                update_enabled: false,
            },
            &crate::standin::enode::SystemResolver,
        )
        .unwrap()
    }

    /// `admin_addPeer` adds a maintained peer once (never this node itself), dialled at
    /// the next tick; `standin_isolate` drops every peer and address and turns away
    /// dialling peers until an `admin_addPeer`. Static nodes naming this node are skipped
    /// (`addMaintainedConnectionPeer`).
    #[test]
    fn add_peer_and_isolation() {
        let mut n = node(25, vec![ip_enode(&key(1)), ip_enode(&key(2))]);
        assert!(!n.add_maintained_peer(ip_enode(&key(1))), "itself");
        assert!(
            !n.add_maintained_peer(ip_enode(&key(2))),
            "already a static node"
        );
        let mut elsewhere = ip_enode(&key(2));
        elsewhere.ip = "127.0.0.1".parse().unwrap();
        assert!(
            n.add_maintained_peer(elsewhere),
            "the same node at another address (DefaultPeer equality)"
        );
        assert!(n.add_maintained_peer(ip_enode(&key(3))));
        assert!(!n.add_maintained_peer(ip_enode(&key(3))));
        n.tick(1);
        assert_eq!(
            n.dial_queue.len(),
            2,
            "statics 2 (once: one dial per node at a time) and 3, not itself"
        );

        let (tx, mut rx) = chan();
        n.on_connected(hello(&key(4), true, 1), tx).unwrap();
        n.isolate();
        assert!(
            std::iter::from_fn(|| rx.try_recv().ok()).any(|w| matches!(w, Wire::Disconnect { .. })),
            "the peer is told to go"
        );
        let (tx, _rx) = chan();
        assert!(n.on_connected(hello(&key(5), true, 2), tx).is_err());
        n.dial_queue.clear();
        n.tick(100_000);
        assert!(n.dial_queue.is_empty(), "nothing left to dial");
        assert!(n.add_maintained_peer(ip_enode(&key(2))));
        let (tx, _rx) = chan();
        assert!(n.on_connected(hello(&key(5), true, 3), tx).is_ok());
    }

    /// `--max-peers` bounds non-static peers; a static node is kept beyond it.
    #[test]
    fn max_peers_exempts_static_nodes() {
        let static_key = key(9);
        let enode = Enode::parse(
            &format!(
                "enode://{}@127.0.0.9:30303",
                static_key.public_key().to_hex()
            ),
            DnsConfig {
                enabled: false,
                update_enabled: false,
            },
            &crate::standin::enode::SystemResolver,
        )
        .unwrap();
        let mut n = node(1, vec![enode]);
        let (tx, _rx1) = chan();
        n.on_connected(hello(&key(2), true, 1), tx).unwrap();
        let (tx, _rx2) = chan();
        assert_eq!(
            n.on_connected(hello(&key(3), true, 2), tx),
            Err("too many peers".to_string())
        );
        let (tx, _rx3) = chan();
        n.on_connected(hello(&static_key, true, 3), tx).unwrap();
        assert_eq!(n.peer_count(), 2);
        // And never to itself.
        let (tx, _rx4) = chan();
        assert!(n.on_connected(hello(&key(1), true, 4), tx).is_err());
    }

    /// Both sides dialled: the connection dialled by the smaller node id is kept.
    #[test]
    fn duplicate_connections_keep_the_smaller_dialler() {
        let mut n = node(25, vec![]);
        let other = key(2);
        let mine_smaller = n.id.0 < other.public_key().0;
        let (tx_out, mut rx_out) = chan();
        let first = n.on_connected(hello(&other, false, 1), tx_out).unwrap();
        let (tx_in, _rx_in) = chan();
        let second = n.on_connected(hello(&other, true, 1), tx_in);
        if mine_smaller {
            // Our outbound connection stays; the inbound one is refused.
            assert_eq!(second, Err("already connected".to_string()));
            assert_eq!(n.peers().next().unwrap().conn, first);
        } else {
            // The peer dialled with the smaller id: ours is told to go.
            let kept = second.unwrap();
            assert_eq!(n.peers().next().unwrap().conn, kept);
            let mut got_disconnect = false;
            while let Ok(m) = rx_out.try_recv() {
                got_disconnect |= matches!(m, Wire::Disconnect { .. });
            }
            assert!(got_disconnect);
            // The replaced connection's close does not remove the new one.
            n.on_disconnected(&other.public_key(), first);
            assert_eq!(n.peer_count(), 1);
        }
    }

    /// Peer exchange: peers learned from a peer are dialled on the next tick; a node
    /// with discovery off learns nothing.
    #[test]
    fn learned_peers_are_dialled() {
        let mut n = node(25, vec![]);
        let (tx, mut rx) = chan();
        let conn = n.on_connected(hello(&key(2), true, 30304), tx).unwrap();
        // On connecting: status, then a request for its peers.
        assert!(matches!(rx.try_recv(), Ok(Wire::Status { .. })));
        assert!(matches!(rx.try_recv(), Ok(Wire::GetPeers)));
        let learned = format!("enode://{}@127.0.0.10:30310", key(3).public_key().to_hex());
        n.on_message(
            &key(2).public_key(),
            conn,
            Wire::Peers {
                enodes: vec![learned, n.enode()],
            },
            1,
        );
        n.tick(2);
        let dials: Vec<String> = n
            .dial_queue
            .iter()
            .map(|d| match d {
                Dial::Addr(a, _) => a.to_string(),
                Dial::Static(e) => e.to_uri(),
            })
            .collect();
        assert_eq!(dials, ["127.0.0.10:30310"]);
        // Asked for its peers, a node lists the others it is connected to.
        let (tx, mut rx3) = chan();
        let c3 = n.on_connected(hello(&key(3), true, 30310), tx).unwrap();
        while rx3.try_recv().is_ok() {}
        n.on_message(&key(3).public_key(), c3, Wire::GetPeers, 3);
        match rx3.try_recv() {
            Ok(Wire::Peers { enodes }) => assert_eq!(enodes.len(), 1),
            other => panic!("{other:?}"),
        }

        let mut quiet = node(25, vec![]);
        quiet.settings.discovery_enabled = false;
        let (tx, _rx) = chan();
        let conn = quiet.on_connected(hello(&key(2), true, 30304), tx).unwrap();
        let learned = format!("enode://{}@127.0.0.10:30310", key(3).public_key().to_hex());
        quiet.on_message(
            &key(2).public_key(),
            conn,
            Wire::Peers {
                enodes: vec![learned],
            },
            1,
        );
        quiet.tick(2);
        assert!(quiet.dial_queue.is_empty());
    }

    /// A node behind its best peer downloads the range and reports Besu's sync object
    /// (two or more behind) until it has caught up.
    #[test]
    fn downloads_and_reports_sync_status() {
        use crate::standin::chain::test_support::next_block;
        let mut n = node(25, vec![]);
        // The blocks the peer has (sealed by the only validator, key 1).
        let mut source = Chain::in_memory(n.chain.genesis.clone());
        for _ in 0..4 {
            let b = next_block(&source, &key(1), &[&key(1)], None);
            source.import(b).unwrap();
        }
        let (tx, mut rx) = chan();
        let conn = n.on_connected(hello(&key(2), true, 1), tx).unwrap();
        while rx.try_recv().is_ok() {}
        assert_eq!(n.sync_status(), None);
        n.on_message(
            &key(2).public_key(),
            conn,
            Wire::Status {
                head: 4,
                head_hash: source.head_hash(),
            },
            10,
        );
        assert_eq!(
            n.sync_status(),
            Some(SyncStatus {
                starting: 0,
                current: 0,
                highest: 4
            })
        );
        assert!(n.in_sync(), "within Besu's tolerance of 5");
        match rx.try_recv() {
            Ok(Wire::GetBlocks { from, .. }) => assert_eq!(from, 1),
            other => panic!("{other:?}"),
        }
        let blocks = (1..=4).map(|i| source.block(i).unwrap().clone()).collect();
        n.on_message(&key(2).public_key(), conn, Wire::Blocks { blocks }, 20);
        assert_eq!(n.chain.head_number(), 4);
        assert_eq!(n.sync_status(), None);
    }
}
