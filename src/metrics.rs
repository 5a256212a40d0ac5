//! The operator's own Prometheus metrics, served on `/metrics`.
//!
//! Per controller: reconciles, errors by [`crate::controller::Error::metric_label`] and a
//! duration histogram. Per network: validators desired / on-chain / ready, fault
//! tolerance, head height and whether the chain is producing. Per node: peers, height and
//! lag behind the network's head. Fast-changing chain figures live here, never in status.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of the per-controller metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `network` or `node`.
    pub controller: String,
}

/// Labels of the reconcile error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `network` or `node`.
    pub controller: String,
    /// A stable error label ([`crate::controller::Error::metric_label`]).
    pub error: String,
}

/// Labels of the reconcile trigger counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TriggerLabels {
    /// `network` or `node`.
    pub controller: String,
    /// What woke the reconcile ([`crate::operator::Trigger::label`]).
    pub trigger: String,
}

/// Labels of the per-network metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NetworkLabels {
    /// The network's namespace.
    pub namespace: String,
    /// The network's name.
    pub network: String,
}

/// Labels of `besu_network_validators`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ValidatorLabels {
    /// The network's namespace.
    pub namespace: String,
    /// The network's name.
    pub network: String,
    /// `desired`, `onchain` or `ready`.
    pub state: String,
}

/// Labels of the per-node metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    /// The node's namespace.
    pub namespace: String,
    /// The network's name.
    pub network: String,
    /// The BesuNode's name.
    pub node: String,
}

/// Labels of the per-replica `EthereumNode` metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EthereumLabels {
    /// The node's namespace.
    pub namespace: String,
    /// The EthereumNode's name.
    pub name: String,
    /// The replica's pod.
    pub pod: String,
}

/// Labels of `ethereum_node_peers`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EthereumPeerLabels {
    /// The node's namespace.
    pub namespace: String,
    /// The EthereumNode's name.
    pub name: String,
    /// The replica's pod.
    pub pod: String,
    /// `execution` or `consensus`.
    pub client: String,
}

/// Labels of `ethereum_node_reconcile_errors`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EthereumNodeLabels {
    /// The node's namespace.
    pub namespace: String,
    /// The EthereumNode's name.
    pub name: String,
}

/// One replica's figures as its clients reported them (None: not answered).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EthereumReplicaFigures {
    /// The pod.
    pub pod: String,
    /// The execution client's head block number.
    pub block_height: Option<u64>,
    /// The consensus client's distance to the wall-clock slot.
    pub sync_distance: Option<u64>,
    /// Execution peers.
    pub execution_peers: Option<u64>,
    /// Consensus peers.
    pub consensus_peers: Option<u64>,
}

/// What the network controller knows about a network's chain, for the gauges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkFigures {
    /// `spec.validators`.
    pub desired: usize,
    /// Size of the on-chain validator set, when it could be read.
    pub onchain: Option<usize>,
    /// Validators whose node is Ready.
    pub ready: usize,
    /// On-chain validators that are not up (node not Ready or not answering).
    pub down: usize,
    /// The highest height any node reports.
    pub head: Option<u64>,
    /// Whether the head advanced recently (None: unknown).
    pub producing: Option<bool>,
    /// Per node: (height, peers), where they could be read.
    pub nodes: BTreeMap<String, (Option<u64>, Option<u64>)>,
}

/// Validators that may still stop without halting the chain: `n − ceil(2n/3)` of the
/// on-chain set minus those already down, never below 0.
pub fn fault_tolerance(onchain: usize, down: usize) -> i64 {
    let spare = crate::chain::quorum::fault_tolerance(onchain);
    i64::try_from(spare).unwrap_or(i64::MAX) - i64::try_from(down).unwrap_or(i64::MAX)
}

/// The operator's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_triggers: Family<TriggerLabels, Counter>,
    reconcile_duration: Family<ControllerLabels, Histogram>,
    validators: Family<ValidatorLabels, Gauge>,
    fault_tolerance: Family<NetworkLabels, Gauge>,
    block_height: Family<NetworkLabels, Gauge>,
    producing: Family<NetworkLabels, Gauge>,
    node_peers: Family<NodeLabels, Gauge>,
    node_height: Family<NodeLabels, Gauge>,
    node_lag: Family<NodeLabels, Gauge>,
    /// Per network (`namespace/name`): the nodes that have series, to drop gone ones.
    nodes_seen: Mutex<BTreeMap<String, BTreeSet<String>>>,
    eth_height: Family<EthereumLabels, Gauge>,
    eth_sync_distance: Family<EthereumLabels, Gauge>,
    eth_peers: Family<EthereumPeerLabels, Gauge>,
    eth_errors: Family<EthereumNodeLabels, Counter>,
    /// Per EthereumNode (`namespace/name`): the pods that have series.
    eth_seen: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn duration_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

impl Metrics {
    /// Every metric, registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let reconciles = Family::<ControllerLabels, Counter>::default();
        registry.register(
            "besu_operator_reconciles",
            "Reconciles run, per controller",
            reconciles.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "besu_operator_reconcile_errors",
            "Reconciles that failed, per controller and error kind",
            reconcile_errors.clone(),
        );
        let reconcile_triggers = Family::<TriggerLabels, Counter>::default();
        registry.register(
            "besu_operator_reconcile_triggers",
            "Reconciles started, per controller and what woke them: object (the object changed), related (a child or watched object changed), requeue (a timer the reconcile set), resync (the periodic resync), error_retry (a retry after a failure)",
            reconcile_triggers.clone(),
        );
        let reconcile_duration = Family::<ControllerLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register(
            "besu_operator_reconcile_duration_seconds",
            "Time a reconcile took, per controller",
            reconcile_duration.clone(),
        );
        let validators = Family::<ValidatorLabels, Gauge>::default();
        registry.register(
            "besu_network_validators",
            "Validators of a network: desired (spec), onchain (the chain's set), ready (node Ready)",
            validators.clone(),
        );
        let fault_tolerance = Family::<NetworkLabels, Gauge>::default();
        registry.register(
            "besu_network_fault_tolerance",
            "Validators that may still stop without halting the chain: n - ceil(2n/3) minus those down",
            fault_tolerance.clone(),
        );
        let block_height = Family::<NetworkLabels, Gauge>::default();
        registry.register(
            "besu_network_block_height",
            "The highest block any node of the network reports",
            block_height.clone(),
        );
        let producing = Family::<NetworkLabels, Gauge>::default();
        registry.register(
            "besu_network_producing",
            "1 when the chain head advanced within the last few block periods",
            producing.clone(),
        );
        let node_peers = Family::<NodeLabels, Gauge>::default();
        registry.register(
            "besu_node_peers",
            "Peers of a node (net_peerCount)",
            node_peers.clone(),
        );
        let node_height = Family::<NodeLabels, Gauge>::default();
        registry.register(
            "besu_node_block_height",
            "A node's chain height (eth_blockNumber)",
            node_height.clone(),
        );
        let node_lag = Family::<NodeLabels, Gauge>::default();
        registry.register(
            "besu_node_lag_blocks",
            "Blocks a node is behind the network's head",
            node_lag.clone(),
        );
        let eth_height = Family::<EthereumLabels, Gauge>::default();
        registry.register(
            "ethereum_node_block_height",
            "An EthereumNode replica's execution head block number (eth_blockNumber)",
            eth_height.clone(),
        );
        let eth_sync_distance = Family::<EthereumLabels, Gauge>::default();
        registry.register(
            "ethereum_node_sync_distance",
            "Slots an EthereumNode replica's consensus client is behind the wall clock (/eth/v1/node/syncing)",
            eth_sync_distance.clone(),
        );
        let eth_peers = Family::<EthereumPeerLabels, Gauge>::default();
        registry.register(
            "ethereum_node_peers",
            "Peers of an EthereumNode replica's client (net_peerCount, /eth/v1/node/peer_count)",
            eth_peers.clone(),
        );
        let eth_errors = Family::<EthereumNodeLabels, Counter>::default();
        registry.register(
            "ethereum_node_reconcile_errors",
            "Reconciles of an EthereumNode that failed",
            eth_errors.clone(),
        );
        Metrics {
            registry,
            eth_height,
            eth_sync_distance,
            eth_peers,
            eth_errors,
            eth_seen: Mutex::new(BTreeMap::new()),
            reconciles,
            reconcile_errors,
            reconcile_triggers,
            reconcile_duration,
            validators,
            fault_tolerance,
            block_height,
            producing,
            node_peers,
            node_height,
            node_lag,
            nodes_seen: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records one reconcile of `controller` that took `seconds`, failed with `error`.
    pub fn reconciled(&self, controller: &str, seconds: f64, error: Option<&'static str>) {
        let labels = ControllerLabels {
            controller: controller.to_string(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(seconds);
        if let Some(error) = error {
            self.reconcile_errors
                .get_or_create(&ErrorLabels {
                    controller: controller.to_string(),
                    error: error.to_string(),
                })
                .inc();
        }
    }

    /// Records that a reconcile of `controller` was started by `trigger`.
    pub fn triggered(&self, controller: &str, trigger: &str) {
        self.reconcile_triggers
            .get_or_create(&TriggerLabels {
                controller: controller.to_string(),
                trigger: trigger.to_string(),
            })
            .inc();
    }

    /// Sets a network's gauges and its nodes' gauges; nodes no longer reported lose
    /// their series.
    pub fn set_network(&self, namespace: &str, network: &str, f: &NetworkFigures) {
        let net = NetworkLabels {
            namespace: namespace.to_string(),
            network: network.to_string(),
        };
        let state = |s: &str| ValidatorLabels {
            namespace: namespace.to_string(),
            network: network.to_string(),
            state: s.to_string(),
        };
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.validators
            .get_or_create(&state("desired"))
            .set(as_i64(f.desired));
        self.validators
            .get_or_create(&state("ready"))
            .set(as_i64(f.ready));
        match f.onchain {
            Some(n) => {
                self.validators
                    .get_or_create(&state("onchain"))
                    .set(as_i64(n));
                self.fault_tolerance
                    .get_or_create(&net)
                    .set(fault_tolerance(n, f.down));
            }
            None => {
                self.validators.remove(&state("onchain"));
                self.fault_tolerance.remove(&net);
            }
        }
        match f.head {
            Some(h) => {
                self.block_height
                    .get_or_create(&net)
                    .set(i64::try_from(h).unwrap_or(i64::MAX));
            }
            None => {
                self.block_height.remove(&net);
            }
        }
        // Unknown (no node reports a height yet, e.g. while the network comes up) is no
        // series at all, so that "not producing" alerts only on a chain seen to stall.
        match f.producing {
            Some(p) => {
                self.producing.get_or_create(&net).set(i64::from(p));
            }
            None => {
                self.producing.remove(&net);
            }
        }

        let key = format!("{namespace}/{network}");
        let node_labels = |node: &str| NodeLabels {
            namespace: namespace.to_string(),
            network: network.to_string(),
            node: node.to_string(),
        };
        let mut gone = BTreeSet::new();
        if let Ok(mut seen) = self.nodes_seen.lock() {
            let now: BTreeSet<String> = f.nodes.keys().cloned().collect();
            let before = seen.insert(key, now.clone()).unwrap_or_default();
            gone = before.difference(&now).cloned().collect();
        }
        for node in gone {
            let l = node_labels(&node);
            self.node_peers.remove(&l);
            self.node_height.remove(&l);
            self.node_lag.remove(&l);
        }
        for (node, (height, peers)) in &f.nodes {
            let l = node_labels(node);
            match peers {
                Some(p) => {
                    self.node_peers
                        .get_or_create(&l)
                        .set(i64::try_from(*p).unwrap_or(i64::MAX));
                }
                None => {
                    self.node_peers.remove(&l);
                }
            }
            match (height, f.head) {
                (Some(h), Some(head)) => {
                    self.node_height
                        .get_or_create(&l)
                        .set(i64::try_from(*h).unwrap_or(i64::MAX));
                    self.node_lag
                        .get_or_create(&l)
                        .set(i64::try_from(head.saturating_sub(*h)).unwrap_or(i64::MAX));
                }
                _ => {
                    self.node_height.remove(&l);
                    self.node_lag.remove(&l);
                }
            }
        }
    }

    /// Counts a failed reconcile of an EthereumNode.
    pub fn ethereum_reconcile_failed(&self, namespace: &str, name: &str) {
        self.eth_errors
            .get_or_create(&EthereumNodeLabels {
                namespace: namespace.to_string(),
                name: name.to_string(),
            })
            .inc();
    }

    /// Sets an EthereumNode's per-replica gauges; replicas no longer reported (and
    /// figures not answered) lose their series.
    pub fn set_ethereum_node(
        &self,
        namespace: &str,
        name: &str,
        replicas: &[EthereumReplicaFigures],
    ) {
        let key = format!("{namespace}/{name}");
        let mut gone = BTreeSet::new();
        if let Ok(mut seen) = self.eth_seen.lock() {
            let now: BTreeSet<String> = replicas.iter().map(|r| r.pod.clone()).collect();
            let before = if now.is_empty() {
                seen.remove(&key).unwrap_or_default()
            } else {
                seen.insert(key, now.clone()).unwrap_or_default()
            };
            gone = before.difference(&now).cloned().collect();
        }
        let labels = |pod: &str| EthereumLabels {
            namespace: namespace.to_string(),
            name: name.to_string(),
            pod: pod.to_string(),
        };
        let peer = |pod: &str, client: &str| EthereumPeerLabels {
            namespace: namespace.to_string(),
            name: name.to_string(),
            pod: pod.to_string(),
            client: client.to_string(),
        };
        for pod in gone {
            self.eth_height.remove(&labels(&pod));
            self.eth_sync_distance.remove(&labels(&pod));
            self.eth_peers.remove(&peer(&pod, "execution"));
            self.eth_peers.remove(&peer(&pod, "consensus"));
        }
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for r in replicas {
            let l = labels(&r.pod);
            match r.block_height {
                Some(h) => {
                    self.eth_height.get_or_create(&l).set(as_i64(h));
                }
                None => {
                    self.eth_height.remove(&l);
                }
            }
            match r.sync_distance {
                Some(d) => {
                    self.eth_sync_distance.get_or_create(&l).set(as_i64(d));
                }
                None => {
                    self.eth_sync_distance.remove(&l);
                }
            }
            for (client, n) in [
                ("execution", r.execution_peers),
                ("consensus", r.consensus_peers),
            ] {
                let pl = peer(&r.pod, client);
                match n {
                    Some(n) => {
                        self.eth_peers.get_or_create(&pl).set(as_i64(n));
                    }
                    None => {
                        self.eth_peers.remove(&pl);
                    }
                }
            }
        }
    }

    /// Drops every series of the networks in `namespace` (None: any) that are not in
    /// `live` (`namespace/name` keys): a deleted network must not keep alerting.
    pub fn forget_networks_except(
        &self,
        namespace: Option<&str>,
        live: &BTreeSet<String>,
    ) -> usize {
        let gone: Vec<(String, BTreeSet<String>)> = match self.nodes_seen.lock() {
            Ok(mut seen) => {
                let keys: Vec<String> = seen
                    .keys()
                    .filter(|k| !live.contains(*k))
                    .filter(|k| {
                        namespace.is_none_or(|ns| k.split_once('/').is_some_and(|(n, _)| n == ns))
                    })
                    .cloned()
                    .collect();
                keys.into_iter()
                    .filter_map(|k| seen.remove(&k).map(|nodes| (k, nodes)))
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        for (key, nodes) in &gone {
            let Some((ns, network)) = key.split_once('/') else {
                continue;
            };
            let net = NetworkLabels {
                namespace: ns.to_string(),
                network: network.to_string(),
            };
            for state in ["desired", "onchain", "ready"] {
                self.validators.remove(&ValidatorLabels {
                    namespace: ns.to_string(),
                    network: network.to_string(),
                    state: state.to_string(),
                });
            }
            self.fault_tolerance.remove(&net);
            self.block_height.remove(&net);
            self.producing.remove(&net);
            for node in nodes {
                let l = NodeLabels {
                    namespace: ns.to_string(),
                    network: network.to_string(),
                    node: node.clone(),
                };
                self.node_peers.remove(&l);
                self.node_height.remove(&l);
                self.node_lag.remove(&l);
            }
        }
        gone.len()
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    #[test]
    fn fault_tolerance_is_spare_minus_down() {
        assert_eq!(fault_tolerance(4, 0), 1);
        assert_eq!(fault_tolerance(4, 1), 0);
        assert_eq!(fault_tolerance(4, 2), -1);
        assert_eq!(fault_tolerance(5, 0), 1);
        assert_eq!(fault_tolerance(7, 1), 1);
    }

    #[test]
    fn network_figures_become_series_and_gone_nodes_drop() {
        let m = Metrics::new();
        let mut f = NetworkFigures {
            desired: 5,
            onchain: Some(4),
            ready: 4,
            down: 0,
            head: Some(100),
            producing: Some(true),
            nodes: BTreeMap::new(),
        };
        f.nodes.insert("n-validator-0".into(), (Some(100), Some(3)));
        f.nodes.insert("n-validator-1".into(), (Some(97), None));
        m.set_network("ns", "n", &f);
        m.reconciled("network", 0.02, None);
        m.reconciled("network", 0.03, Some("kube"));
        let t = m.encode();
        let net = r#"{namespace="ns",network="n""#;
        assert_eq!(
            value(
                &t,
                &format!("besu_network_validators{net},state=\"desired\"}}")
            ),
            Some(5.0)
        );
        assert_eq!(
            value(
                &t,
                &format!("besu_network_validators{net},state=\"onchain\"}}")
            ),
            Some(4.0)
        );
        assert_eq!(
            value(&t, &format!("besu_network_fault_tolerance{net}}}")),
            Some(1.0)
        );
        assert_eq!(
            value(&t, &format!("besu_network_block_height{net}}}")),
            Some(100.0)
        );
        assert_eq!(
            value(&t, &format!("besu_network_producing{net}}}")),
            Some(1.0)
        );
        assert_eq!(
            value(
                &t,
                &format!("besu_node_lag_blocks{net},node=\"n-validator-1\"}}")
            ),
            Some(3.0)
        );
        assert_eq!(
            value(
                &t,
                &format!("besu_node_peers{net},node=\"n-validator-0\"}}")
            ),
            Some(3.0)
        );
        assert!(!t.contains(r#"besu_node_peers{namespace="ns",network="n",node="n-validator-1"}"#));
        assert_eq!(
            value(
                &t,
                r#"besu_operator_reconciles_total{controller="network"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &t,
                r#"besu_operator_reconcile_errors_total{controller="network",error="kube"}"#
            ),
            Some(1.0)
        );
        assert!(t.contains("besu_operator_reconcile_duration_seconds_bucket"));

        // Another namespace's scope, or a live network: nothing goes.
        assert_eq!(m.forget_networks_except(Some("other"), &BTreeSet::new()), 0);
        let live = BTreeSet::from(["ns/n".to_string()]);
        assert_eq!(m.forget_networks_except(None, &live), 0);

        f.nodes.remove("n-validator-1");
        f.down = 1;
        m.set_network("ns", "n", &f);
        let t = m.encode();
        assert!(!t.contains("n-validator-1"));
        assert_eq!(
            value(&t, &format!("besu_network_fault_tolerance{net}}}")),
            Some(0.0)
        );

        // A deleted network loses every series.
        assert_eq!(m.forget_networks_except(Some("ns"), &BTreeSet::new()), 1);
        let t = m.encode();
        assert!(!t.contains(r#"network="n""#), "{t}");
        assert!(t.contains("besu_operator_reconciles_total"));
    }
}
