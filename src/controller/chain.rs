//! The chain as a network's nodes report it, read off the reconcile path.
//!
//! [`observe`] reads a network's nodes over JSON-RPC once: heights, peers, sync state, the
//! on-chain validator set and the proposals each validator holds ([`ChainView`]).
//!
//! [`ChainObservers`] runs one task per network that does so every
//! `--chain-poll-seconds`: it keeps the latest view, keeps the network's chain metrics
//! current, and wakes the network's reconcile only when a figure a decision rests on
//! differs from the one the last reconcile decided on ([`Decisive`]): the on-chain
//! validator set, the proposals held, which nodes follow the head, whether the head
//! advances, whether the chain could be read at all. A Ready network at rest is then
//! reconciled at the resync only, and a reconcile at rest reads the observer's view
//! instead of the nodes. While anything changes (a bring-up, a vote, a rollout) the
//! reconcile still reads the chain itself, every time: day-2 steps act on fresh figures.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use besu_operator_api::BesuNetwork;
use futures::channel::mpsc;
use kube::runtime::reflector::ObjectRef;

use crate::chain::extradata::Consensus;
use crate::chain::key::Address;
use crate::metrics::{Metrics, NetworkFigures};
use crate::rpc::{Endpoint, RpcClient};

use crate::chain::IN_SYNC_BLOCKS;

/// What the chain looks like from the network's nodes.
#[derive(Clone, Debug, Default)]
pub struct ChainView {
    /// Height per node.
    pub heights: BTreeMap<String, u64>,
    /// Peers per node.
    pub peers: BTreeMap<String, u64>,
    /// The highest height any node reports.
    pub head: Option<u64>,
    /// The validator set at the latest block.
    pub onchain: Option<BTreeSet<Address>>,
    /// Proposals each validator holds.
    pub pending: BTreeMap<String, BTreeMap<Address, bool>>,
    /// Why the chain could not be read, if it could not.
    pub error: Option<String>,
    /// Nodes whose `eth_syncing` says they are still syncing (or did not answer it): not
    /// available to consensus, whatever their height.
    pub syncing: BTreeSet<String>,
}

impl ChainView {
    /// Whether `node` is not syncing and within `blocks` of the head. With no height known
    /// at all, nobody is.
    pub fn follows_head(&self, node: &str, blocks: u64) -> bool {
        match self.head {
            Some(head) => {
                !self.syncing.contains(node)
                    && self
                        .heights
                        .get(node)
                        .is_some_and(|h| h.saturating_add(blocks) >= head)
            }
            None => false,
        }
    }
}

/// What to read of a network's chain, and the figures around it that its metrics need.
#[derive(Clone, Debug)]
pub struct Targets {
    /// QBFT or IBFT 2.0 (their JSON-RPC methods differ).
    pub consensus: Consensus,
    /// The JSON-RPC endpoints of the network's Ready nodes.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Which of those nodes are validators (asked for the validator set and proposals).
    pub validators: BTreeSet<String>,
    /// A head that has not moved for this long is not advancing.
    pub stall_window: Duration,
    /// `spec.validators`.
    pub desired: usize,
    /// Validators whose node is Ready.
    pub ready: usize,
    /// Addresses of the validators whose node is up.
    pub up: BTreeSet<Address>,
    /// The network's Besu nodes (a series each).
    pub nodes: Vec<String>,
}

/// The network's metrics from a view of its chain.
pub fn figures(t: &Targets, view: &ChainView, advancing: Option<bool>) -> NetworkFigures {
    NetworkFigures {
        desired: t.desired,
        onchain: view.onchain.as_ref().map(BTreeSet::len),
        ready: t.ready,
        down: view
            .onchain
            .as_ref()
            .map_or(0, |set| set.difference(&t.up).count()),
        head: view.head,
        producing: advancing,
        nodes: t
            .nodes
            .iter()
            .map(|n| {
                let figures = (view.heights.get(n).copied(), view.peers.get(n).copied());
                (n.clone(), figures)
            })
            .collect(),
    }
}

/// Reads the chain from `endpoints` once. Validators (of `validators`) that answered are
/// asked for the validator set, highest first, and for the proposals they hold.
pub async fn observe(
    rpc: &RpcClient,
    consensus: Consensus,
    endpoints: &BTreeMap<String, Endpoint>,
    validators: &BTreeSet<String>,
) -> ChainView {
    let mut view = ChainView::default();
    let heights = futures::future::join_all(endpoints.iter().map(|(node, ep)| async move {
        let (h, p, sy) = futures::join!(rpc.block_number(ep), rpc.peer_count(ep), rpc.syncing(ep));
        (node.clone(), h, p, sy)
    }))
    .await;
    for (node, h, p, sy) in heights {
        if !matches!(sy, Ok(None)) {
            view.syncing.insert(node.clone());
        }
        if let Ok(p) = p {
            view.peers.insert(node.clone(), p);
        }
        match h {
            Ok(h) => {
                view.heights.insert(node, h);
            }
            Err(e) => view.error = Some(e.to_string()),
        }
    }
    view.head = view.heights.values().max().copied();
    // Only validators that answered just now are asked again in this round (a silent one
    // would cost its whole timeout and retries once more), highest first: the validator
    // set is read from a node at the head, not from a lagging one (review C5, C10).
    let mut asked: Vec<(&String, &Endpoint)> = endpoints
        .iter()
        .filter(|(n, _)| view.heights.contains_key(*n) && validators.contains(*n))
        .collect();
    asked.sort_by_key(|(n, _)| std::cmp::Reverse(view.heights.get(*n).copied()));
    for (_, ep) in &asked {
        match rpc.validators(ep, consensus, "latest").await {
            Ok(set) => {
                view.onchain = Some(set.into_iter().collect());
                break;
            }
            Err(e) => view.error = Some(e.to_string()),
        }
    }
    let pending = futures::future::join_all(asked.iter().map(|(node, ep)| async move {
        ((*node).clone(), rpc.pending_votes(ep, consensus).await)
    }))
    .await;
    for (node, p) in pending {
        if let Ok(p) = p {
            view.pending.insert(node, p);
        }
    }
    if view.onchain.is_some() && view.head.is_some() {
        view.error = None;
    }
    view
}

/// The figures of a view that the network's decisions and status rest on. Two views with
/// the same `Decisive` lead a reconcile to the same actions and the same status; heights
/// and peers alone (which move with every block) are metrics, not decisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decisive {
    onchain: Option<BTreeSet<Address>>,
    pending: BTreeMap<String, BTreeMap<Address, bool>>,
    readable: bool,
    advancing: Option<bool>,
    answered: BTreeSet<String>,
    in_sync: BTreeSet<String>,
}

impl Decisive {
    /// The decisive figures of `view`.
    pub fn of(view: &ChainView, advancing: Option<bool>) -> Decisive {
        Decisive {
            onchain: view.onchain.clone(),
            pending: view.pending.clone(),
            readable: view.error.is_none(),
            advancing,
            answered: view.heights.keys().cloned().collect(),
            in_sync: view
                .heights
                .keys()
                .filter(|n| view.follows_head(n, IN_SYNC_BLOCKS))
                .cloned()
                .collect(),
        }
    }
}

/// Stall detection: the head's progress (the height last seen, and when it last
/// changed) after a read at `now` that found `head`, and whether the chain advances: a
/// head unchanged for `stall_window` does not. No height read: nothing known, the
/// progress kept as it was.
pub fn head_progress(
    progress: Option<(u64, Instant)>,
    head: Option<u64>,
    now: Instant,
    stall_window: Duration,
) -> (Option<(u64, Instant)>, Option<bool>) {
    let Some(h) = head else {
        return (progress, None);
    };
    let changed = match progress {
        Some((seen, at)) if seen == h => at,
        _ => now,
    };
    (
        Some((h, changed)),
        Some(now.saturating_duration_since(changed) < stall_window),
    )
}

/// A network's chain as last read.
#[derive(Clone, Debug)]
struct Latest {
    at: Instant,
    /// The endpoints it was read from: a view of other nodes is not this network's now.
    endpoints: BTreeMap<String, Endpoint>,
    view: ChainView,
    advancing: Option<bool>,
}

/// Per network (`namespace/name`).
#[derive(Default)]
struct PerNetwork {
    latest: Option<Latest>,
    /// The last height seen, and when it changed.
    progress: Option<(u64, Instant)>,
    /// What the last reconcile decided on.
    decided: Option<Decisive>,
    /// What the observer last woke the reconcile for (one wake per change).
    woken_for: Option<Decisive>,
    /// The generation of the latest targets a reconcile handed over, and of the ones the
    /// published metrics were computed with (see [`Shared::publish`]).
    targets_generation: u64,
    published_generation: u64,
}

/// A network controller's wake channel, and the namespace it watches (`None`: all).
type Subscriber = (
    Option<String>,
    mpsc::UnboundedSender<ObjectRef<BesuNetwork>>,
);

struct Shared {
    rpc: RpcClient,
    metrics: Arc<Metrics>,
    poll: Duration,
    networks: Mutex<HashMap<String, PerNetwork>>,
    /// One per network controller (one per watched namespace).
    subscribers: Mutex<Vec<Subscriber>>,
}

impl Shared {
    fn with<T>(&self, key: &str, f: impl FnOnce(&mut PerNetwork) -> T) -> Option<T> {
        let mut map = self.networks.lock().ok()?;
        Some(f(map.entry(key.to_string()).or_default()))
    }

    /// Reads the chain now, records the view and the height's progress.
    async fn read(&self, key: &str, t: &Targets) -> (ChainView, Option<bool>) {
        let view = observe(&self.rpc, t.consensus, &t.endpoints, &t.validators).await;
        let now = Instant::now();
        let advancing = self
            .with(key, |n| {
                let (progress, advancing) =
                    head_progress(n.progress, view.head, now, t.stall_window);
                n.progress = progress;
                n.latest = Some(Latest {
                    at: now,
                    endpoints: t.endpoints.clone(),
                    view: view.clone(),
                    advancing,
                });
                advancing
            })
            .flatten();
        (view, advancing)
    }

    /// Publishes `figures` for `network`, computed with the targets of `generation`,
    /// unless metrics from later targets are already out. An observer's read can outlast
    /// a reconcile (slow or silent nodes): its figures then rest on the Ready nodes and
    /// validators of before, and once showed a fault tolerance of -2 just after a
    /// reconcile had published the right one.
    fn publish(
        &self,
        key: &str,
        network: &ObjectRef<BesuNetwork>,
        generation: u64,
        figures: &NetworkFigures,
    ) {
        self.with(key, |n| {
            if generation >= n.published_generation {
                n.published_generation = generation;
                self.metrics.set_network(
                    network.namespace.as_deref().unwrap_or_default(),
                    &network.name,
                    figures,
                );
            }
        });
    }

    /// Wakes `network` in the controller that watches its namespace.
    fn wake(&self, network: &ObjectRef<BesuNetwork>) {
        let Ok(subscribers) = self.subscribers.lock() else {
            return;
        };
        for (scope, tx) in subscribers.iter() {
            if scope.is_none() || scope.as_deref() == network.namespace.as_deref() {
                let _ = tx.unbounded_send(network.clone());
            }
        }
    }
}

struct Observer {
    /// The latest targets, with their generation.
    targets: tokio::sync::watch::Sender<(u64, Targets)>,
    task: tokio::task::JoinHandle<()>,
}

/// The chain observers of every network this operator reconciles.
pub struct ChainObservers {
    shared: Arc<Shared>,
    tasks: Mutex<HashMap<String, Observer>>,
}

impl ChainObservers {
    /// Observers that read with `rpc` every `poll` and keep `metrics`.
    pub fn new(rpc: RpcClient, metrics: Arc<Metrics>, poll: Duration) -> ChainObservers {
        ChainObservers {
            shared: Arc::new(Shared {
                rpc,
                metrics,
                poll,
                networks: Mutex::new(HashMap::new()),
                subscribers: Mutex::new(Vec::new()),
            }),
            tasks: Mutex::new(HashMap::new()),
        }
    }

    /// The networks of `scope` (a namespace; `None`: all) to reconcile because their
    /// chain changed, for the network controller that watches it
    /// (`Controller::reconcile_on`).
    pub fn wakes(&self, scope: Option<&str>) -> mpsc::UnboundedReceiver<ObjectRef<BesuNetwork>> {
        let (tx, rx) = mpsc::unbounded();
        if let Ok(mut subscribers) = self.shared.subscribers.lock() {
            subscribers.push((scope.map(str::to_string), tx));
        }
        rx
    }

    /// The chain of `key` read at most two polls ago from exactly `endpoints` (the
    /// observer's view), or `None`.
    pub fn recent(
        &self,
        key: &str,
        endpoints: &BTreeMap<String, Endpoint>,
    ) -> Option<(ChainView, Option<bool>)> {
        let max_age = self.shared.poll.saturating_mul(2);
        self.shared
            .with(key, |n| {
                n.latest
                    .as_ref()
                    .filter(|l| l.at.elapsed() < max_age && l.endpoints == *endpoints)
                    .map(|l| (l.view.clone(), l.advancing))
            })
            .flatten()
    }

    /// Reads the chain of `key` now (a reconcile that acts on it).
    pub async fn read(&self, key: &str, targets: &Targets) -> (ChainView, Option<bool>) {
        self.shared.read(key, targets).await
    }

    /// Records what a reconcile of `key` decided on: the observer wakes the next one
    /// only when the chain's decisive figures differ from these.
    pub fn decided(&self, key: &str, view: &ChainView, advancing: Option<bool>) {
        let d = Decisive::of(view, advancing);
        self.shared.with(key, |n| {
            n.decided = Some(d);
            n.woken_for = None;
        });
    }

    /// Keeps observing `network` with `targets` (starts its observer on the first call),
    /// and publishes `figures`, the network's metrics as the reconcile that hands over
    /// these targets computed them; no observer's read begun with older targets
    /// publishes over them.
    pub fn keep_observing(
        &self,
        network: ObjectRef<BesuNetwork>,
        targets: Targets,
        figures: &NetworkFigures,
    ) {
        let key = key_of(&network);
        let generation = self
            .shared
            .with(&key, |n| {
                n.targets_generation += 1;
                n.targets_generation
            })
            .unwrap_or_default();
        self.shared.publish(&key, &network, generation, figures);
        let Ok(mut tasks) = self.tasks.lock() else {
            return;
        };
        if let Some(o) = tasks.get(&key)
            && !o.task.is_finished()
        {
            o.targets.send_replace((generation, targets));
            return;
        }
        let (tx, rx) = tokio::sync::watch::channel((generation, targets));
        let task = tokio::spawn(run(self.shared.clone(), network, key.clone(), rx));
        tasks.insert(key, Observer { targets: tx, task });
    }

    /// Stops observing the networks not in `live` (`namespace/name`), and forgets them.
    pub fn retain(&self, live: &BTreeSet<String>) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.retain(|k, o| {
                let keep = live.contains(k);
                if !keep {
                    o.task.abort();
                }
                keep
            });
        }
        if let Ok(mut map) = self.shared.networks.lock() {
            map.retain(|k, _| live.contains(k));
        }
    }

    /// Stops observing `key` (`namespace/name`) and forgets it.
    pub fn forget(&self, key: &str) {
        if let Ok(mut tasks) = self.tasks.lock()
            && let Some(o) = tasks.remove(key)
        {
            o.task.abort();
        }
        if let Ok(mut map) = self.shared.networks.lock() {
            map.remove(key);
        }
    }
}

impl Drop for ChainObservers {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.get_mut() {
            for o in tasks.values() {
                o.task.abort();
            }
        }
    }
}

/// `namespace/name` of a network.
pub fn key_of(network: &ObjectRef<BesuNetwork>) -> String {
    format!(
        "{}/{}",
        network.namespace.as_deref().unwrap_or_default(),
        network.name
    )
}

/// Whether the observer should wake the reconcile for `now`: it differs from what the
/// last reconcile decided on, and the observer has not woken it for exactly this yet.
fn should_wake(decided: Option<&Decisive>, woken_for: Option<&Decisive>, now: &Decisive) -> bool {
    decided.is_some_and(|d| d != now) && woken_for != Some(now)
}

/// One network's observer: every poll, unless a reconcile read the chain within it.
async fn run(
    shared: Arc<Shared>,
    network: ObjectRef<BesuNetwork>,
    key: String,
    targets: tokio::sync::watch::Receiver<(u64, Targets)>,
) {
    let mut tick = tokio::time::interval(shared.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (generation, t) = targets.borrow().clone();
        if t.endpoints.is_empty() {
            continue;
        }
        let read_lately = shared
            .with(&key, |n| {
                n.latest
                    .as_ref()
                    .is_some_and(|l| l.at.elapsed() < shared.poll / 2)
            })
            .unwrap_or(false);
        if read_lately {
            continue;
        }
        let (view, advancing) = shared.read(&key, &t).await;
        shared.publish(&key, &network, generation, &figures(&t, &view, advancing));
        let now = Decisive::of(&view, advancing);
        let wake = shared
            .with(&key, |n| {
                let wake = should_wake(n.decided.as_ref(), n.woken_for.as_ref(), &now);
                if wake {
                    n.woken_for = Some(now.clone());
                }
                wake
            })
            .unwrap_or(false);
        if wake {
            tracing::debug!(network = %key, "the chain changed: reconciling");
            shared.wake(&network);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(b: u8) -> Address {
        Address([b; 20])
    }

    fn view(heights: &[(&str, u64)], onchain: &[u8]) -> ChainView {
        let heights: BTreeMap<String, u64> =
            heights.iter().map(|(n, h)| (n.to_string(), *h)).collect();
        ChainView {
            head: heights.values().max().copied(),
            heights,
            onchain: Some(onchain.iter().map(|b| address(*b)).collect()),
            ..ChainView::default()
        }
    }

    /// Figures computed with older targets (an observer's read that outlasted a
    /// reconcile) never replace those of later ones; the same or later ones do.
    #[tokio::test]
    async fn an_observer_read_begun_before_a_reconcile_publishes_nothing_over_it() {
        let metrics = Arc::new(Metrics::new());
        let observers = ChainObservers::new(
            RpcClient::default(),
            metrics.clone(),
            Duration::from_secs(3600),
        );
        let network = ObjectRef::<BesuNetwork>::new("n").within("ns");
        let key = key_of(&network);
        let figures = |ready: usize, down: usize| NetworkFigures {
            desired: 4,
            onchain: Some(4),
            ready,
            down,
            head: Some(10),
            producing: Some(true),
            nodes: BTreeMap::new(),
        };
        let fault_tolerance = || {
            let text = metrics.encode();
            text.lines()
                .find(|l| l.starts_with("besu_network_fault_tolerance{"))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
        };
        // An observer starts a read with the targets of generation 1 (3 of 4 down)...
        observers.shared.with(&key, |n| n.targets_generation = 1);
        // ...a reconcile hands over generation 2 and publishes its figures (none down)...
        observers.keep_observing(network.clone(), targets(), &figures(4, 0));
        assert_eq!(fault_tolerance(), Some(1.0));
        // ...then the observer's read ends: its figures are not published.
        observers.shared.publish(&key, &network, 1, &figures(1, 3));
        assert_eq!(fault_tolerance(), Some(1.0));
        // A read with the current targets publishes.
        observers.shared.publish(&key, &network, 2, &figures(3, 1));
        assert_eq!(fault_tolerance(), Some(0.0));
    }

    fn targets() -> Targets {
        Targets {
            consensus: Consensus::Qbft,
            endpoints: BTreeMap::new(),
            validators: BTreeSet::new(),
            stall_window: Duration::from_secs(10),
            desired: 4,
            ready: 4,
            up: BTreeSet::new(),
            nodes: Vec::new(),
        }
    }

    #[test]
    fn new_blocks_alone_change_nothing_decisive() {
        let a = Decisive::of(&view(&[("v0", 10), ("v1", 9)], &[1, 2]), Some(true));
        let b = Decisive::of(&view(&[("v0", 14), ("v1", 14)], &[1, 2]), Some(true));
        assert_eq!(a, b);
    }

    #[test]
    fn what_a_decision_rests_on_is_decisive() {
        let base = view(&[("v0", 10), ("v1", 10)], &[1, 2]);
        let d = Decisive::of(&base, Some(true));
        let cases: Vec<(&str, ChainView, Option<bool>)> = vec![
            (
                "a validator joined on-chain",
                view(&[("v0", 10), ("v1", 10)], &[1, 2, 3]),
                Some(true),
            ),
            ("the head stalled", base.clone(), Some(false)),
            (
                "a node fell behind",
                view(&[("v0", 10), ("v1", 7)], &[1, 2]),
                Some(true),
            ),
            (
                "a node stopped answering",
                view(&[("v0", 10)], &[1, 2]),
                Some(true),
            ),
            (
                "a node is syncing",
                ChainView {
                    syncing: BTreeSet::from(["v1".to_string()]),
                    ..base.clone()
                },
                Some(true),
            ),
            (
                "a validator holds a proposal",
                ChainView {
                    pending: BTreeMap::from([(
                        "v0".to_string(),
                        BTreeMap::from([(address(9), true)]),
                    )]),
                    ..base.clone()
                },
                Some(true),
            ),
            (
                "the chain could not be read",
                ChainView {
                    error: Some("timeout".into()),
                    ..base.clone()
                },
                Some(true),
            ),
        ];
        for (what, v, advancing) in cases {
            assert_ne!(Decisive::of(&v, advancing), d, "{what}");
        }
    }

    #[test]
    fn the_observer_wakes_once_per_change_and_never_before_a_first_decision() {
        let a = Decisive::of(&view(&[("v0", 1)], &[1]), Some(true));
        let b = Decisive::of(&view(&[("v0", 1)], &[1, 2]), Some(true));
        // No reconcile yet: its first run reads the chain itself.
        assert!(!should_wake(None, None, &b));
        // The same as decided: nothing to do.
        assert!(!should_wake(Some(&a), None, &a));
        // Changed: once.
        assert!(should_wake(Some(&a), None, &b));
        assert!(!should_wake(Some(&a), Some(&b), &b));
        // Changed again before the reconcile ran: once more.
        let c = Decisive::of(&view(&[("v0", 1)], &[2]), Some(true));
        assert!(should_wake(Some(&a), Some(&b), &c));
    }

    #[test]
    fn a_wake_reaches_the_controller_of_the_networks_namespace_only() {
        let observers = ChainObservers::new(
            RpcClient::default(),
            Arc::new(Metrics::new()),
            Duration::from_secs(60),
        );
        let mut a = observers.wakes(Some("a"));
        let mut b = observers.wakes(Some("b"));
        let mut all = observers.wakes(None);
        observers
            .shared
            .wake(&ObjectRef::<BesuNetwork>::new("net").within("b"));
        assert!(a.try_recv().is_err(), "namespace a's controller was woken");
        assert_eq!(b.try_recv().ok().map(|r| r.name), Some("net".into()));
        assert_eq!(all.try_recv().ok().map(|r| r.name), Some("net".into()));
    }

    #[tokio::test]
    async fn a_recent_view_is_served_only_for_the_same_endpoints_and_forgotten_with_its_network() {
        let observers = ChainObservers::new(
            RpcClient::default(),
            Arc::new(Metrics::new()),
            Duration::from_secs(60),
        );
        let ep = |n: &str| Endpoint::new(n, "127.0.0.1", 9);
        let endpoints = BTreeMap::from([("v0".to_string(), ep("v0"))]);
        observers.shared.with("ns/net", |n| {
            n.latest = Some(Latest {
                at: Instant::now(),
                endpoints: endpoints.clone(),
                view: view(&[("v0", 5)], &[1]),
                advancing: Some(true),
            });
        });
        assert!(observers.recent("ns/net", &endpoints).is_some());
        let more = BTreeMap::from([("v0".to_string(), ep("v0")), ("v1".to_string(), ep("v1"))]);
        assert!(observers.recent("ns/net", &more).is_none());
        assert!(observers.recent("ns/other", &endpoints).is_none());
        observers.retain(&BTreeSet::new());
        assert!(observers.recent("ns/net", &endpoints).is_none());
    }

    #[test]
    fn a_head_unchanged_for_the_stall_window_is_stalled() {
        let t0 = Instant::now();
        let w = Duration::from_secs(8);
        let s = Duration::from_secs;
        // (progress before, head read, seconds after t0, advancing, height kept, since)
        let cases = [
            (None, Some(10), 0, Some(true), Some(10), 0),
            (Some((10, t0)), Some(10), 7, Some(true), Some(10), 0),
            (Some((10, t0)), Some(10), 8, Some(false), Some(10), 0),
            (Some((10, t0)), Some(11), 30, Some(true), Some(11), 30),
            // A lower head (another node answered) is a change too.
            (Some((10, t0)), Some(9), 30, Some(true), Some(9), 30),
            // Nothing read: nothing known, the progress kept.
            (Some((10, t0)), None, 30, None, Some(10), 0),
            (None, None, 30, None, None, 0),
        ];
        for (before, head, after, advancing, kept, since) in cases {
            let (progress, got) = head_progress(before, head, t0 + s(after), w);
            assert_eq!(got, advancing, "{before:?} {head:?} +{after}s");
            assert_eq!(progress.map(|p| p.0), kept);
            if let Some((_, at)) = progress {
                assert_eq!(at, t0 + s(since), "{before:?} {head:?} +{after}s");
            }
        }
    }
}
