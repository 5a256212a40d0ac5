//! The witness record: what happened to each chain's nodes, kept for an independent
//! safety monitor in the end-to-end tests (`GET /chains/<namespace>/<name>/witness`).
//!
//! Per pod name (a node keeps its pod name across restarts), it records the keys the node
//! served with, every start of its process, every interval in which it could not take part
//! in consensus ([`DownInterval`]) and the JSON-RPC faults tests injected. Per chain, it
//! records the fingerprint of every genesis its nodes started with.
//!
//! Intervals are half-open, `[from_ms, to_ms)`, on the wall clock of `crate::now_ms`;
//! `to_ms` is `None` while open. Consecutive down intervals with different causes (or
//! pod UIDs) are kept apart, and every instant a node is down is covered: the state is
//! re-evaluated on every pod event, every tick and every request a node answers, so a
//! transition to "up" is recorded no later than anyone could observe it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::besu::Address;

/// At most this many blocks are served (the newest).
pub const MAX_BLOCKS: usize = 100_000;
/// At most this many entries are kept per list (`starts`, `down`, `rpc_faults`) per pod.
pub const MAX_INTERVALS: usize = 10_000;
/// At most this many distinct keys are kept per pod.
pub const MAX_KEYS: usize = 1_000;

/// Why a node could not take part in consensus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DownCause {
    /// Its pod exists but Besu is not running in it (yet): not Running, or its volumes
    /// (genesis, key) not readable yet, or its image never starts.
    NotStarted,
    /// Its pod has a deletion timestamp or is gone.
    Deleted,
    /// Its pod stopped Running (or its process ended) without being deleted.
    Stopped,
    /// Besu runs but the pod is not Ready.
    NotReady,
    /// Besu runs and the pod is Ready, but the node is still syncing to the head.
    Syncing,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DownInterval {
    pub from_ms: u64,
    pub to_ms: Option<u64>,
    pub cause: DownCause,
    /// The pod UID this interval is about.
    pub uid: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeySeen {
    pub address: Address,
    pub first_seen_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StartRecord {
    pub uid: String,
    pub at_ms: u64,
    pub image: String,
    /// The pod's `controller-revision-hash` label.
    pub revision: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GenesisSeen {
    pub sha256: String,
    pub first_seen_ms: u64,
}

/// A JSON-RPC fault injected by a test (`POST …/nodes/<pod>/rpc-fault`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RpcFault {
    /// Requests hang: held, then dropped without an answer.
    Timeout,
    /// The node reports a height this many blocks behind the head.
    Lag(u64),
}

impl RpcFault {
    pub fn mode(self) -> &'static str {
        match self {
            RpcFault::Timeout => "timeout",
            RpcFault::Lag(_) => "lag",
        }
    }

    pub fn blocks(self) -> Option<u64> {
        match self {
            RpcFault::Timeout => None,
            RpcFault::Lag(n) => Some(n),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RpcFaultInterval {
    pub from_ms: u64,
    pub to_ms: Option<u64>,
    /// `timeout` or `lag`.
    pub mode: &'static str,
    /// For `lag`: how many blocks behind.
    pub blocks: Option<u64>,
}

/// The latest incarnation (pod UID) of a pod name, as last seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incarnation {
    pub uid: String,
    /// Phase Running.
    pub running: bool,
    /// Has a deletion timestamp.
    pub deleting: bool,
    /// Deleted (or missing from a re-list).
    pub gone: bool,
    /// Besu started in it at some point.
    pub started: bool,
}

/// What the pod watcher saw of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodObservation {
    pub uid: String,
    pub namespace: String,
    pub pod: String,
    /// The `besu.nodeops.dev/network` label.
    pub network: Option<String>,
    pub node: Option<String>,
    pub node_type: Option<String>,
    pub running: bool,
    pub deleting: bool,
    pub ready: bool,
}

/// Whether a node can take part in consensus now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Up,
    Down(DownCause, Option<String>),
}

/// Everything recorded for one pod name.
#[derive(Clone, Debug, Default)]
pub struct PodHistory {
    pub namespace: String,
    pub pod: String,
    /// The chain (network) name; known from the network label or once Besu started.
    pub chain: Option<String>,
    pub node: Option<String>,
    pub node_type: Option<String>,
    pub current: Option<Incarnation>,
    pub keys: Vec<KeySeen>,
    pub starts: Vec<StartRecord>,
    pub down: Vec<DownInterval>,
    pub rpc_faults: Vec<RpcFaultInterval>,
    /// The fault in force (kept across restarts of the pod name until cleared).
    pub fault: Option<RpcFault>,
}

fn push_bounded<T>(list: &mut Vec<T>, item: T, max: usize) {
    list.push(item);
    if list.len() > max {
        let excess = list.len() - max;
        list.drain(..excess);
    }
}

impl PodHistory {
    pub fn new(namespace: &str, pod: &str) -> PodHistory {
        PodHistory {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            ..PodHistory::default()
        }
    }

    /// Labels as last seen (a label that disappears keeps its last value).
    pub fn set_labels(&mut self, node: Option<&str>, node_type: Option<&str>) {
        if let Some(n) = node {
            self.node = Some(n.to_string());
        }
        if let Some(t) = node_type {
            self.node_type = Some(t.to_string());
        }
    }

    /// The incarnation with `uid`, a new one if the pod name now has a new UID.
    pub fn incarnation(&mut self, uid: &str) -> &mut Incarnation {
        if self.current.as_ref().is_none_or(|c| c.uid != uid) {
            self.current = None;
        }
        self.current.get_or_insert_with(|| Incarnation {
            uid: uid.to_string(),
            running: false,
            deleting: false,
            gone: false,
            started: false,
        })
    }

    pub fn add_key(&mut self, address: Address, now_ms: u64) {
        if !self.keys.iter().any(|k| k.address == address) {
            push_bounded(
                &mut self.keys,
                KeySeen {
                    address,
                    first_seen_ms: now_ms,
                },
                MAX_KEYS,
            );
        }
    }

    pub fn add_start(&mut self, start: StartRecord) {
        push_bounded(&mut self.starts, start, MAX_INTERVALS);
    }

    /// Closes the open down interval at `now_ms`; one that would be empty is dropped.
    fn close_down(&mut self, now_ms: u64) {
        if let Some(open) = self.down.last_mut().filter(|d| d.to_ms.is_none()) {
            if now_ms <= open.from_ms {
                self.down.pop();
            } else {
                open.to_ms = Some(now_ms);
            }
        }
    }

    /// Records the node's status at `now_ms`: closes, keeps or opens a down interval.
    pub fn record(&mut self, status: Status, now_ms: u64) {
        let open = self.down.last().filter(|d| d.to_ms.is_none());
        match status {
            Status::Up => self.close_down(now_ms),
            Status::Down(cause, uid) => {
                if open.is_some_and(|d| d.cause == cause && d.uid == uid) {
                    return;
                }
                self.close_down(now_ms);
                push_bounded(
                    &mut self.down,
                    DownInterval {
                        from_ms: now_ms,
                        to_ms: None,
                        cause,
                        uid,
                    },
                    MAX_INTERVALS,
                );
            }
        }
    }

    /// Sets (or with `None` clears) the RPC fault; records the intervals.
    pub fn set_fault(&mut self, fault: Option<RpcFault>, now_ms: u64) {
        if self.fault == fault {
            return;
        }
        if let Some(open) = self.rpc_faults.last_mut().filter(|f| f.to_ms.is_none()) {
            if now_ms <= open.from_ms {
                self.rpc_faults.pop();
            } else {
                open.to_ms = Some(now_ms);
            }
        }
        if let Some(f) = fault {
            push_bounded(
                &mut self.rpc_faults,
                RpcFaultInterval {
                    from_ms: now_ms,
                    to_ms: None,
                    mode: f.mode(),
                    blocks: f.blocks(),
                },
                MAX_INTERVALS,
            );
        }
        self.fault = fault;
    }
}

/// The witness records of every chain.
#[derive(Clone, Debug, Default)]
pub struct Witness {
    /// By (namespace, pod name).
    pub pods: BTreeMap<(String, String), PodHistory>,
    /// By (namespace, chain name), in the order first seen.
    pub geneses: BTreeMap<(String, String), Vec<GenesisSeen>>,
}

impl Witness {
    pub fn pod_mut(&mut self, namespace: &str, pod: &str) -> &mut PodHistory {
        self.pods
            .entry((namespace.to_string(), pod.to_string()))
            .or_insert_with(|| PodHistory::new(namespace, pod))
    }

    /// Records that a node of chain `namespace/chain` started with genesis `sha256`.
    pub fn genesis_seen(&mut self, namespace: &str, chain: &str, sha256: &str, now_ms: u64) {
        let list = self
            .geneses
            .entry((namespace.to_string(), chain.to_string()))
            .or_default();
        if !list.iter().any(|g| g.sha256 == sha256) {
            push_bounded(
                list,
                GenesisSeen {
                    sha256: sha256.to_string(),
                    first_seen_ms: now_ms,
                },
                MAX_KEYS,
            );
        }
    }

    /// The pods recorded for chain `namespace/chain`, by pod name.
    pub fn chain_pods<'a>(
        &'a self,
        namespace: &'a str,
        chain: &'a str,
    ) -> impl Iterator<Item = &'a PodHistory> + 'a {
        self.pods
            .values()
            .filter(move |h| h.namespace == namespace && h.chain.as_deref() == Some(chain))
    }
}

/// One block for the witness: when it was produced and the validators that produced it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WitnessBlock {
    pub number: u64,
    /// When the simulator produced it; for the genesis block, when the chain started.
    pub time_ms: u64,
    /// The validator set in force for this block, in header order.
    pub validators: Vec<Address>,
}

/// One pod name in `GET /chains/<namespace>/<name>/witness`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WitnessNode {
    pub pod: String,
    pub node: Option<String>,
    pub node_type: Option<String>,
    pub keys: Vec<KeySeen>,
    pub starts: Vec<StartRecord>,
    pub down: Vec<DownInterval>,
    pub rpc_faults: Vec<RpcFaultInterval>,
}

impl From<&PodHistory> for WitnessNode {
    fn from(h: &PodHistory) -> WitnessNode {
        WitnessNode {
            pod: h.pod.clone(),
            node: h.node.clone(),
            node_type: h.node_type.clone(),
            keys: h.keys.clone(),
            starts: h.starts.clone(),
            down: h.down.clone(),
            rpc_faults: h.rpc_faults.clone(),
        }
    }
}

/// `GET /chains/<namespace>/<name>/witness`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WitnessView {
    pub now_ms: u64,
    /// 0 while no node of the chain has started (no genesis read yet).
    pub block_period_ms: u64,
    pub genesis: Vec<GenesisSeen>,
    pub blocks: Vec<WitnessBlock>,
    pub nodes: Vec<WitnessNode>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down(from: u64, to: Option<u64>, cause: DownCause, uid: &str) -> DownInterval {
        DownInterval {
            from_ms: from,
            to_ms: to,
            cause,
            uid: Some(uid.to_string()),
        }
    }

    #[test]
    fn intervals_open_change_and_close() {
        let mut h = PodHistory::new("ns", "p-0");
        let u = || Some("u1".to_string());
        h.record(Status::Down(DownCause::NotStarted, u()), 100);
        h.record(Status::Down(DownCause::NotStarted, u()), 150);
        h.record(Status::Down(DownCause::NotReady, u()), 200);
        h.record(Status::Up, 300);
        h.record(Status::Up, 400);
        h.record(Status::Down(DownCause::Deleted, u()), 500);
        assert_eq!(
            h.down,
            vec![
                down(100, Some(200), DownCause::NotStarted, "u1"),
                down(200, Some(300), DownCause::NotReady, "u1"),
                down(500, None, DownCause::Deleted, "u1"),
            ]
        );
        // A cause that lasts no time at all leaves no interval.
        h.record(Status::Down(DownCause::NotStarted, Some("u2".into())), 600);
        h.record(Status::Down(DownCause::Syncing, Some("u2".into())), 600);
        h.record(Status::Up, 700);
        assert_eq!(h.down.len(), 4);
        assert_eq!(h.down[2], down(500, Some(600), DownCause::Deleted, "u1"));
        assert_eq!(h.down[3], down(600, Some(700), DownCause::Syncing, "u2"));
    }

    #[test]
    fn faults_keys_and_bounds() {
        let mut h = PodHistory::new("ns", "p-0");
        h.set_fault(Some(RpcFault::Lag(5)), 10);
        h.set_fault(Some(RpcFault::Lag(5)), 20);
        h.set_fault(Some(RpcFault::Timeout), 30);
        h.set_fault(None, 40);
        h.set_fault(None, 50);
        assert_eq!(
            h.rpc_faults,
            vec![
                RpcFaultInterval {
                    from_ms: 10,
                    to_ms: Some(30),
                    mode: "lag",
                    blocks: Some(5)
                },
                RpcFaultInterval {
                    from_ms: 30,
                    to_ms: Some(40),
                    mode: "timeout",
                    blocks: None
                },
            ]
        );
        let a = Address([1; 20]);
        h.add_key(a, 1);
        h.add_key(Address([2; 20]), 2);
        h.add_key(a, 3);
        assert_eq!(h.keys.len(), 2);
        assert_eq!(h.keys[0].first_seen_ms, 1);
        let mut list: Vec<u32> = Vec::new();
        for i in 0..10 {
            push_bounded(&mut list, i, 4);
        }
        assert_eq!(list, vec![6, 7, 8, 9]);
    }
}
