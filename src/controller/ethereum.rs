//! The `EthereumNode` controller: observe (prerequisites, children, pods, the clients'
//! own APIs) → decide the status ([`decide`], pure and table-tested) → apply the
//! children → write the status only when it changed.
//!
//! - The JWT: a node without `jwtSecretRef` gets `<name>-jwt`, 32 bytes from the OS
//!   CSPRNG, created once (`create` never overwrites), immutable, owned by the node. The
//!   operator never reads a JWT back: Secrets are read as metadata only. The pods roll
//!   when the JWT Secret's version changes, so both clients always start with the same
//!   JWT.
//! - Drift: a child is applied when its applied-hash differs from the desired one, or when
//!   the live object no longer holds every field the operator sets (someone edited or
//!   deleted it); with nothing changed there are no writes.
//! - Status from the clients: execution `eth_blockNumber`, `eth_syncing`,
//!   `net_peerCount`; consensus `/eth/v1/node/syncing` (with `el_offline`),
//!   `/eth/v1/node/peer_count`, finality checkpoints. A consensus client that reports its
//!   execution client offline while that client serves JSON-RPC is an Engine API the
//!   JWT does not open: phase `Error`, naming the Secret.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use besu_operator_api::{
    CUSTOM_BOOTNODES_KEY, CUSTOM_BOOTSTRAP_NODES_KEY, CUSTOM_CONFIG_KEY, CUSTOM_GENESIS_KEY,
    CUSTOM_GENESIS_STATE_KEY, EthereumNetwork, EthereumNode, EthereumNodePhase, EthereumNodeStatus,
    LABEL_ETHEREUM_NODE, P2pServiceType,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PartialObjectMeta};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, instrument};

use super::ethereum_backup as eb;
use super::snapshots;
use super::status::{DesiredCondition, merge_conditions, write_status_if_changed};
use super::{APPLIED_HASH_ANNOTATION, Context, Error, applied_hash};
use crate::render::ethereum::{
    self as r, BEACON_HTTP_PORT, EXECUTION_HTTP_PORT, Facts, desired_jwt_secret, jwt_secret,
};

/// The label every child of an EthereumNode carries (`app.kubernetes.io/name`), which
/// the controller's watches select on.
pub const CHILD_SELECTOR: &str = "app.kubernetes.io/name=ethereum-node";

/// How often the heads and peers in a node's status are refreshed while nothing else in
/// it changes (the metrics follow every poll).
pub const STATUS_FIGURES_PERIOD: Duration = Duration::from_secs(60);

/// The EthereumNode controller's caches (reflector stores fed by its watches): a reconcile
/// reads its children from them and makes no API request at rest.
#[derive(Clone)]
pub struct Caches {
    /// StatefulSets of EthereumNodes.
    pub sets: Store<StatefulSet>,
    /// Their Services.
    pub services: Store<Service>,
    /// Their Ingresses.
    pub ingresses: Store<Ingress>,
    /// Their pods.
    pub pods: Store<Pod>,
    /// Their generated JWT Secrets, as metadata.
    pub secrets: Store<PartialObjectMeta<Secret>>,
}

impl Caches {
    /// Waits until every store has its first listing.
    pub async fn ready(&self) {
        let _ = tokio::join!(
            self.sets.wait_until_ready(),
            self.services.wait_until_ready(),
            self.ingresses.wait_until_ready(),
            self.pods.wait_until_ready(),
            self.secrets.wait_until_ready(),
        );
    }
}

/// What the EthereumNode controller shares across reconciles.
pub struct EthContext {
    /// The operator's context (client, metrics, JSON-RPC clients, timings).
    pub ctx: Arc<Context>,
    /// The watches' caches.
    pub caches: Caches,
    /// Inputs the user owns and the operator does not watch (a referenced JWT Secret's
    /// metadata, a custom network's ConfigMap), by `kind/namespace/name`: when read, and
    /// what. Read again when older than the resync, or at once while missing.
    inputs: std::sync::Mutex<HashMap<String, (Instant, CachedInput)>>,
    /// Per node (`namespace/name`): when its status figures were last written.
    figures_written: std::sync::Mutex<HashMap<String, Instant>>,
}

#[derive(Clone)]
enum CachedInput {
    Secret(Option<Arc<PartialObjectMeta<Secret>>>),
    ConfigMap(Option<Arc<ConfigMap>>),
}

impl EthContext {
    /// A context over `ctx` with the given caches.
    pub fn new(ctx: Arc<Context>, caches: Caches) -> Arc<EthContext> {
        Arc::new(EthContext {
            ctx,
            caches,
            inputs: std::sync::Mutex::new(HashMap::new()),
            figures_written: std::sync::Mutex::new(HashMap::new()),
        })
    }

    fn cached_input(&self, key: &str) -> Option<CachedInput> {
        let map = self.inputs.lock().ok()?;
        let (at, value) = map.get(key)?;
        let present = match value {
            CachedInput::Secret(s) => s.is_some(),
            CachedInput::ConfigMap(c) => c.is_some(),
        };
        (present && at.elapsed() < self.ctx.resync).then(|| value.clone())
    }

    fn store_input(&self, key: String, value: CachedInput) {
        if let Ok(mut map) = self.inputs.lock() {
            if map.len() > 4096 {
                map.clear();
            }
            map.insert(key, (Instant::now(), value));
        }
    }

    /// A Secret's metadata, from the cache while fresh and present.
    async fn secret_meta(
        &self,
        api: &Api<Secret>,
        ns: &str,
        name: &str,
    ) -> Result<Option<PartialObjectMeta<Secret>>, Error> {
        let key = format!("Secret/{ns}/{name}");
        if let Some(CachedInput::Secret(s)) = self.cached_input(&key) {
            return Ok(s.map(|s| s.as_ref().clone()));
        }
        let live = api.get_metadata_opt(name).await?;
        self.store_input(key, CachedInput::Secret(live.clone().map(Arc::new)));
        Ok(live)
    }

    /// A ConfigMap, from the cache while fresh and present.
    async fn config_map(
        &self,
        api: &Api<ConfigMap>,
        ns: &str,
        name: &str,
    ) -> Result<Option<Arc<ConfigMap>>, Error> {
        let key = format!("ConfigMap/{ns}/{name}");
        if let Some(CachedInput::ConfigMap(c)) = self.cached_input(&key) {
            return Ok(c);
        }
        let live = api.get_opt(name).await?.map(Arc::new);
        self.store_input(key, CachedInput::ConfigMap(live.clone()));
        Ok(live)
    }

    /// Whether the status figures of `node` may be written now, recording it if so.
    fn figures_due(&self, node: &str) -> bool {
        let Ok(mut map) = self.figures_written.lock() else {
            return true;
        };
        match map.get(node) {
            Some(at) if at.elapsed() < STATUS_FIGURES_PERIOD => false,
            _ => {
                map.insert(node.to_string(), Instant::now());
                true
            }
        }
    }
}

fn cached<K>(store: &Store<K>, ns: &str, name: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&ObjectRef::new(name).within(ns))
}

/// The pod-template annotation carrying the JWT Secret's resourceVersion: a changed JWT
/// restarts both clients together.
pub const JWT_VERSION_ANNOTATION: &str = "ethereum.nodeops.dev/jwt-version";

/// What one replica's clients said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaView {
    /// The pod.
    pub pod: String,
    /// The pod's Ready condition.
    pub ready: bool,
    /// A container waiting for a reason a person must look at (`CrashLoopBackOff`,
    /// `ImagePullBackOff`, `CreateContainerConfigError`, ...): (container, reason, message).
    pub stuck: Option<(String, String, String)>,
    /// Seconds the consensus container has been running (None: not running).
    pub consensus_running_secs: Option<i64>,
    /// `eth_blockNumber`, when the execution client answered.
    pub execution_head: Option<u64>,
    /// `eth_syncing` said syncing.
    pub execution_syncing: Option<bool>,
    /// `net_peerCount`.
    pub execution_peers: Option<u64>,
    /// `/eth/v1/node/syncing`.
    pub consensus: Option<crate::rpc::beacon::BeaconSync>,
    /// `/eth/v1/node/peer_count`.
    pub consensus_peers: Option<u64>,
    /// The finalized epoch.
    pub finalized_epoch: Option<u64>,
}

/// Slots the beacon head may lag, with its execution client reported offline, before the
/// Engine API counts as refused.
pub const ENGINE_REFUSED_DISTANCE: u64 = 2;

/// Seconds a consensus client may report its execution client offline after it started
/// (both clients restart together: Geth opens its database and its Engine API, Prysm
/// dials it before) before that counts as a refused Engine API.
pub const ENGINE_START_GRACE_SECS: i64 = 45;

/// What blocks the node before its pods can run: (reason, message).
pub type Blocker = (&'static str, String);

/// A replica whose execution and consensus clients both report synced.
pub fn replica_synced(p: &ReplicaView) -> bool {
    p.execution_syncing == Some(false) && p.consensus.is_some_and(|c| !c.is_syncing)
}

/// Everything [`decide`] looks at.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Desired replicas.
    pub replicas: i32,
    /// A missing prerequisite.
    pub blocker: Option<Blocker>,
    /// Waiting for something that comes on its own (a load balancer's address).
    pub waiting: Option<String>,
    /// Pods that exist.
    pub pods: Vec<ReplicaView>,
    /// The JWT Secret and key, for messages.
    pub jwt: (String, String),
    /// Whether the network is Holesky (deprecated upstream).
    pub deprecated_network: bool,
    /// A backup run in progress (what it does now): its stopped replica is expected.
    pub backing_up: Option<String>,
}

/// The phase and conditions a node's status shows.
pub fn decide(o: &Observed) -> (EthereumNodePhase, Vec<DesiredCondition>) {
    use EthereumNodePhase::*;
    let ready = o.pods.iter().filter(|p| p.ready).count();
    let all_ready = o.replicas > 0 && ready == usize::try_from(o.replicas).unwrap_or(0);
    let synced = replica_synced;
    let serving = |p: &ReplicaView| p.execution_head.is_some() || p.consensus.is_some();
    let all_synced = !o.pods.is_empty() && o.pods.iter().all(synced);
    let (jwt_name, jwt_key) = &o.jwt;
    // `el_offline` alone is not enough: Prysm also reports it while its deposit-log
    // reader fails (a devnet without a deposit contract) and blocks still flow over the
    // Engine API. A refused Engine API also stops the beacon head (or leaves it
    // unverified), so it counts only with the head behind or optimistic.
    let engine_refused = o.pods.iter().find(|p| {
        p.execution_head.is_some()
            // An execution client that syncs is fed by its consensus client: the Engine
            // API works (a restored or seeded replica catching up, on a devnet whose Prysm
            // reports el_offline throughout).
            && p.execution_syncing != Some(true)
            && p.consensus_running_secs
                .is_none_or(|s| s >= ENGINE_START_GRACE_SECS)
            && p.consensus.is_some_and(|c| {
                c.el_offline == Some(true)
                    && (c.is_optimistic == Some(true)
                        || c.is_syncing
                        || c.sync_distance > ENGINE_REFUSED_DISTANCE)
            })
    });

    let error: Option<(String, String)> = if let Some((reason, message)) = &o.blocker {
        Some((reason.to_string(), message.clone()))
    } else if let Some(p) = engine_refused {
        Some((
            "EngineApiRefused".to_string(),
            format!(
                "{}: the consensus client reports its execution client offline while that client serves JSON-RPC: the Engine API refuses the JWT. Both containers must read the same JWT from Secret {jwt_name} (key {jwt_key}); if the Secret was changed, the pods restart with it, otherwise check the clients' logs (kubectl logs {} -c execution)",
                p.pod, p.pod
            ),
        ))
    } else if o.replicas > 0 {
        o.pods.iter().find_map(|p| {
            p.stuck.as_ref().map(|(c, reason, message)| {
                (
                    "ContainerFailing".to_string(),
                    format!("{}: container {c} is {reason}: {message}", p.pod),
                )
            })
        })
    } else {
        None
    };

    let phase = if error.is_some() {
        Error
    } else if o.replicas == 0 {
        Stopped
    } else if o.backing_up.is_some() {
        BackingUp
    } else if o.pods.is_empty() || o.waiting.is_some() && !o.pods.iter().any(serving) {
        if o.pods.is_empty() && o.waiting.is_none() {
            Pending
        } else {
            Configuring
        }
    } else if all_ready && all_synced {
        Running
    } else if o.pods.iter().any(serving) {
        Syncing
    } else {
        Configuring
    };

    let mut conditions = vec![
        DesiredCondition::new(
            "Ready",
            all_ready,
            if all_ready {
                "AllReplicasReady"
            } else if o.backing_up.is_some() {
                "BackupInProgress"
            } else {
                "ReplicasNotReady"
            },
            match &o.backing_up {
                Some(run) if !all_ready => {
                    format!("{ready} of {} replicas Ready; {run}", o.replicas)
                }
                _ => format!("{ready} of {} replicas Ready", o.replicas),
            },
        ),
        DesiredCondition::new(
            "Synced",
            all_synced && o.replicas > 0,
            if all_synced { "Synced" } else { "NotSynced" },
            if all_synced {
                "every replica's execution and consensus clients are synced".to_string()
            } else if let Some(w) = &o.waiting {
                w.clone()
            } else {
                "not every replica's clients report synced yet".to_string()
            },
        ),
    ];
    match &error {
        Some((reason, message)) => conditions.push(DesiredCondition::new(
            "Error",
            true,
            reason.clone(),
            message.clone(),
        )),
        None => conditions.push(DesiredCondition::new("Error", false, "NoError", "")),
    }
    if o.deprecated_network {
        conditions.push(DesiredCondition::new(
            "Deprecated",
            true,
            "HoleskyDeprecated",
            "Holesky is deprecated upstream and being shut down; run new nodes on hoodi",
        ));
    }
    (phase, conditions)
}

/// Whether every field set in `desired` has the same value in `live` (arrays
/// element-wise, same length): the live object still holds what the operator applied.
pub fn holds(desired: &serde_json::Value, live: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d
            .iter()
            .all(|(k, dv)| dv.is_null() || l.get(k).is_some_and(|lv| holds(dv, lv))),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| holds(a, b))
        }
        (d, l) => d == l,
    }
}

/// Applies `desired` when its applied-hash differs from the live one's (`live`, from the
/// cache), or the live object no longer holds it (an edit by someone else), or it is gone.
/// Returns whether a write was made.
async fn apply_repairing<K>(api: &Api<K>, desired: K, live: Option<Arc<K>>) -> Result<bool, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let hash = applied_hash(&desired)?;
    if let Some(l) = &live {
        let same_hash = l.annotations().get(APPLIED_HASH_ANNOTATION) == Some(&hash);
        let mut want = serde_json::to_value(&desired)?;
        if let Some(m) = want.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            m.remove("annotations");
        }
        if same_hash && holds(&want, &serde_json::to_value(l.as_ref())?) {
            return Ok(false);
        }
        if same_hash {
            info!(kind = K::kind(&()).as_ref(), name = %desired.name_any(), "repairing drift");
        }
    }
    super::apply_over(api, desired, hash, None).await
}

/// Deletes the named child if the node owns it (a P2P Service or Ingress no longer
/// wanted).
async fn delete_owned<K>(api: &Api<K>, live: Option<Arc<K>>, owner_uid: &str) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    if let Some(live) = live
        && live.owner_references().iter().any(|o| o.uid == owner_uid)
    {
        match api.delete(&live.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn lines(text: Option<&String>) -> Vec<String> {
    text.map(|t| {
        t.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

/// What a custom network's ConfigMap gives the renderer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkFacts {
    /// Execution bootnodes.
    pub bootnodes: Vec<String>,
    /// Consensus bootstrap nodes.
    pub bootstrap_nodes: Vec<String>,
    /// A checksum of the chain's files.
    pub checksum: String,
    /// Whether any file is gzip-compressed.
    pub compressed: bool,
}

/// A custom network's ConfigMap, checked: (bootnodes, bootstrap nodes, checksum of the
/// files the clients read, whether any is gzip-compressed), or what is wrong with it.
/// Each of the three files may be given as `<name>.gz` (gzip) instead.
pub fn custom_network_facts(name: &str, cm: Option<&ConfigMap>) -> Result<NetworkFacts, String> {
    let Some(cm) = cm else {
        return Err(format!(
            "ConfigMap {name} (customNetwork.configMapName) does not exist: create it with {CUSTOM_GENESIS_KEY}, {CUSTOM_CONFIG_KEY} and {CUSTOM_GENESIS_STATE_KEY} (binaryData), for example kubectl create configmap {name} --from-file=genesis.json --from-file=config.yaml --from-file=genesis.ssz"
        ));
    };
    let data = cm.data.clone().unwrap_or_default();
    let binary = cm.binary_data.clone().unwrap_or_default();
    let has = |k: &str| data.contains_key(k) || binary.contains_key(k);
    let missing: Vec<&str> = [
        CUSTOM_GENESIS_KEY,
        CUSTOM_CONFIG_KEY,
        CUSTOM_GENESIS_STATE_KEY,
    ]
    .into_iter()
    .filter(|k| !has(k) && !has(&format!("{k}.gz")))
    .collect();
    let compressed = binary.keys().chain(data.keys()).any(|k| k.ends_with(".gz"));
    if !missing.is_empty() {
        return Err(format!(
            "ConfigMap {name} lacks {}: a custom network needs the execution genesis ({CUSTOM_GENESIS_KEY}), the consensus config ({CUSTOM_CONFIG_KEY}) and the genesis state ({CUSTOM_GENESIS_STATE_KEY})",
            missing.join(", ")
        ));
    }
    let mut files = String::new();
    for base in [
        CUSTOM_GENESIS_KEY,
        CUSTOM_CONFIG_KEY,
        CUSTOM_GENESIS_STATE_KEY,
    ] {
        for k in [base.to_string(), format!("{base}.gz")] {
            files.push_str(&k);
            match (data.get(&k), binary.get(&k)) {
                (Some(t), _) => files.push_str(t),
                (None, Some(b)) => files.push_str(&hex::encode(&b.0)),
                (None, None) => {}
            }
        }
    }
    Ok(NetworkFacts {
        bootnodes: lines(data.get(CUSTOM_BOOTNODES_KEY)),
        bootstrap_nodes: lines(data.get(CUSTOM_BOOTSTRAP_NODES_KEY)),
        checksum: crate::render::sha256_hex(&files),
        compressed,
    })
}

fn pod_view(pod: &Pod) -> ReplicaView {
    let status = pod.status.clone().unwrap_or_default();
    let stuck = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .find_map(|c| {
            let w = c.state.as_ref()?.waiting.as_ref()?;
            let reason = w.reason.clone()?;
            matches!(
                reason.as_str(),
                "CrashLoopBackOff"
                    | "ImagePullBackOff"
                    | "ErrImagePull"
                    | "CreateContainerConfigError"
                    | "CreateContainerError"
                    | "InvalidImageName"
            )
            .then(|| {
                (
                    c.name.clone(),
                    reason,
                    w.message.clone().unwrap_or_default(),
                )
            })
        });
    let consensus_running_secs = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == "consensus")
        .and_then(|c| c.state.as_ref()?.running.as_ref()?.started_at.as_ref())
        .map(|t| Timestamp::now().duration_since(t.0).as_secs());
    ReplicaView {
        pod: pod.name_any(),
        ready: super::pod_ready_condition(pod).is_some_and(|c| c.status == "True"),
        stuck,
        consensus_running_secs,
        ..ReplicaView::default()
    }
}

/// Reads one replica's clients (each call on its own; a silent client is `None`).
async fn read_clients(ctx: &Context, mut view: ReplicaView, ip: Option<String>) -> ReplicaView {
    let Some(ip) = ip else {
        return view;
    };
    let ep = crate::rpc::Endpoint::new(&view.pod, &ip, EXECUTION_HTTP_PORT);
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.clone()
    };
    let base = format!("http://{host}:{BEACON_HTTP_PORT}");
    let rpc = &ctx.eth_rpc;
    let beacon = &ctx.beacon;
    let (head, syncing, peers, cons, cpeers, fin) = tokio::join!(
        rpc.block_number(&ep),
        rpc.call(&ep, "eth_syncing", serde_json::json!([])),
        rpc.peer_count(&ep),
        beacon.syncing(&base),
        beacon.peer_count(&base),
        beacon.finalized_epoch(&base),
    );
    view.execution_head = head.ok();
    view.execution_syncing = syncing.ok().map(|v| v != serde_json::Value::Bool(false));
    view.execution_peers = peers.ok();
    view.consensus = cons.ok();
    view.consensus_peers = cpeers.ok();
    view.finalized_epoch = fin.ok();
    view
}

/// Reports a reconcile that failed in a way only a person can fix (the API server
/// refused an object made from the spec, a permission is missing): phase `Error` with the
/// reason, and a Warning Event the first time.
pub async fn report_blocked(
    node: &EthereumNode,
    ctx: &Context,
    reason: &str,
    message: &str,
) -> Result<(), Error> {
    let api: Api<EthereumNode> =
        Api::namespaced(ctx.client.clone(), &node.namespace().unwrap_or_default());
    // The object as the watch delivered it: its status is what the operator last wrote.
    let live = node;
    let previous = live.status.clone().unwrap_or_default();
    let news = !previous
        .conditions
        .iter()
        .any(|c| c.type_ == "Error" && c.status == "True" && c.message == message);
    let mut conditions = merge_conditions(
        &previous.conditions,
        &[DesiredCondition::new("Error", true, reason, message)],
        live.metadata.generation,
        Timestamp::now(),
    );
    conditions.extend(
        previous
            .conditions
            .iter()
            .filter(|c| c.type_ != "Error")
            .cloned(),
    );
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    let status = EthereumNodeStatus {
        phase: EthereumNodePhase::Error,
        conditions,
        ..previous
    };
    write_status_if_changed(&api, live, live.status.as_ref(), &status).await?;
    if news {
        ctx.event(live, EventType::Warning, reason, message.to_string())
            .await;
    }
    Ok(())
}

/// Generates one of the node's Secrets (its JWT, or a validator's wallet password) into
/// an immutable Secret created once (a create never overwrites; 409 means it exists).
/// The value leaves memory when this returns.
async fn generate_secret(
    ctx: &Context,
    node: &EthereumNode,
    secrets: &Api<Secret>,
    secret: Secret,
    what: &str,
) -> Result<(), Error> {
    let pp = kube::api::PostParams {
        field_manager: Some(crate::render::FIELD_MANAGER.to_string()),
        ..kube::api::PostParams::default()
    };
    match secrets.create(&pp, &secret).await {
        Ok(_) => {
            ctx.event(
                node,
                EventType::Normal,
                "SecretGenerated",
                format!(
                    "generated {what} into Secret {} (immutable, never regenerated)",
                    secret.name_any()
                ),
            )
            .await;
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Reconciles one `EthereumNode`.
#[instrument(skip_all, fields(ethereum_node = %node.name_any(), namespace = node.namespace().unwrap_or_default()))]
pub async fn reconcile(node: Arc<EthereumNode>, ectx: Arc<EthContext>) -> Result<Action, Error> {
    let ctx = &ectx.ctx;
    let caches = &ectx.caches;
    caches.ready().await;
    let ns = node.namespace().unwrap_or_default();
    let name = node.name_any();
    let uid = node.uid().unwrap_or_default();
    let client = ctx.client.clone();
    let nodes: Api<EthereumNode> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &ns);
    let spec = &node.spec;

    // --- prerequisites ---
    let (jwt_name, jwt_key) = jwt_secret(&node);
    let mut blocker: Option<Blocker> = None;
    let jwt_meta = match spec.jwt_secret_ref {
        Some(_) => ectx.secret_meta(&secrets, &ns, &jwt_name).await?,
        None => match cached(&caches.secrets, &ns, &jwt_name) {
            Some(m) => Some(m.as_ref().clone()),
            // Absent from the cache: a live read decides, never a stale cache.
            None => match secrets.get_metadata_opt(&jwt_name).await? {
                Some(m) => Some(m),
                None => {
                    let secret = desired_jwt_secret(&node, crate::render::random_hex(32))?;
                    generate_secret(ctx, &node, &secrets, secret, "the Engine API JWT").await?;
                    secrets.get_metadata_opt(&jwt_name).await?
                }
            },
        },
    };
    if jwt_meta.is_none() {
        blocker = Some((
            "JwtSecretMissing",
            format!(
                "Secret {jwt_name} (jwtSecretRef) does not exist: create it with the key {jwt_key} holding 64 hex digits, for example kubectl create secret generic {jwt_name} --from-literal={jwt_key}=$(openssl rand -hex 32)"
            ),
        ));
    }

    let mut facts = Facts {
        operator_image: Some(ctx.operator_image.clone()),
        ..Facts::default()
    };
    if let (EthereumNetwork::Custom, Some(c)) = (spec.network, &spec.custom_network) {
        let cm = ectx
            .config_map(&config_maps, &ns, &c.config_map_name)
            .await?;
        match custom_network_facts(&c.config_map_name, cm.as_deref()) {
            Ok(n) => {
                facts.bootnodes = n.bootnodes;
                facts.bootstrap_nodes = n.bootstrap_nodes;
                facts.network_version = Some(n.checksum);
                facts.compressed_network = n.compressed;
            }
            Err(message) => {
                blocker.get_or_insert(("NetworkConfigInvalid", message));
            }
        }
    }
    if spec.validator.is_some() {
        let wallet = r::wallet_secret_name(&name);
        if cached(&caches.secrets, &ns, &wallet).is_none()
            && secrets.get_metadata_opt(&wallet).await?.is_none()
        {
            // Prysm's rule for wallet passwords: a letter, a digit and a symbol.
            let secret =
                r::desired_wallet_secret(&node, format!("{}Aa1!", crate::render::random_hex(32)))?;
            generate_secret(
                ctx,
                &node,
                &secrets,
                secret,
                "the validator wallet's password",
            )
            .await?;
        }
    }
    if let Some(v) = &spec.validator
        && ectx
            .secret_meta(&secrets, &ns, &v.keystore_secret_name)
            .await?
            .is_none()
    {
        blocker.get_or_insert((
            "KeystoreSecretMissing",
            format!(
                "Secret {} (validator.keystoreSecretName) does not exist: create it with the EIP-2335 keystores (keys keystore-*.json) and their password (key password)",
                v.keystore_secret_name
            ),
        ));
    }

    // --- children (each compared with its cached live version) ---
    let svc = |n: &str| cached(&caches.services, &ns, n);
    let mut waiting = None;
    let headless = r::desired_headless_service(&node)?;
    let live = svc(&headless.name_any());
    apply_repairing(&services, headless, live).await?;
    let rpc = r::desired_rpc_service(&node)?;
    let live = svc(&rpc.name_any());
    apply_repairing(&services, rpc, live).await?;
    let p2p_name = r::p2p_service_name(&name);
    match r::desired_p2p_service(&node)? {
        Some(desired) => {
            let lb = desired.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
            apply_repairing(&services, desired, svc(&p2p_name)).await?;
            if lb {
                facts.advertised_ip = svc(&p2p_name)
                    .and_then(|s| s.status.clone())
                    .and_then(|s| s.load_balancer)
                    .and_then(|lb| lb.ingress)
                    .and_then(|i| i.into_iter().find_map(|i| i.ip.or(i.hostname)));
                if facts.advertised_ip.is_none() {
                    waiting = Some(format!(
                        "waiting for Service {p2p_name}'s load balancer address, which the clients advertise to peers"
                    ));
                }
            }
        }
        None => delete_owned(&services, svc(&p2p_name), &uid).await?,
    }
    let live_ingress = cached(&caches.ingresses, &ns, &name);
    match r::desired_ingress(&node)? {
        Some(i) => {
            apply_repairing(&ingresses, i, live_ingress).await?;
        }
        None => delete_owned(&ingresses, live_ingress, &uid).await?,
    }
    // --- observe the pods and their clients ---
    let listed: Vec<Arc<Pod>> = caches.pods.state_filter(|p| {
        p.namespace().as_deref() == Some(ns.as_str())
            && p.labels().get(LABEL_ETHEREUM_NODE) == Some(&name)
    });
    let present: Vec<String> = listed.iter().map(|p| p.name_any()).collect();
    let views = futures::future::join_all(listed.iter().map(|p| {
        let view = pod_view(p);
        let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let ip = p
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .filter(|_| running);
        read_clients(ctx, view, ip)
    }))
    .await;

    // --- backups, restore, seeding ---
    let now = Timestamp::now();
    let live_sts = cached(&caches.sets, &ns, &name);
    let live_replicas = live_sts.as_ref().and_then(|s| s.spec.replicas).unwrap_or(0);
    let scaling_up = live_sts.is_none() || live_replicas < spec.replicas;
    // The StatefulSet as it should be (the replicas a backup run stops are set below).
    let mut desired_sts = r::desired_statefulset(&node, &facts);
    let jwt_version = jwt_meta
        .as_ref()
        .and_then(|m| m.metadata.resource_version.clone());
    if let (Ok(sts), Some(rv)) = (desired_sts.as_mut(), jwt_version)
        && let Some(meta) = sts.spec.template.metadata.as_mut()
    {
        meta.annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(JWT_VERSION_ANNOTATION.to_string(), rv);
    }
    // At rest: every pod on the current template, and no new one to apply (turning
    // backups on adds the data-identity step: no run copies the volumes of pods without
    // it, whose copies would not say whose P2P identity they hold).
    let desired_hash = match &desired_sts {
        Ok(sts) => Some(applied_hash(sts)?),
        Err(_) => None,
    };
    let at_rest = live_sts.as_ref().is_some_and(|s| {
        let st = s.status.clone().unwrap_or_default();
        desired_hash.is_some()
            && s.annotations().get(APPLIED_HASH_ANNOTATION) == desired_hash.as_ref()
            && st.observed_generation >= s.metadata.generation
            && st.current_revision == st.update_revision
            && st.updated_replicas.unwrap_or(0) == st.replicas
    });
    let backups = if (spec.backup.is_some() || spec.restore.is_some())
        && eb::must_list(&node, scaling_up, now)
    {
        Some(
            snapshots::list_selected(&client, &ns, &eb::selector())
                .await?
                .map(|o| eb::group(&o)),
        )
    } else {
        None
    };
    let view = eb::BackupView {
        node: &node,
        identity: eb::identity(&node, facts.network_version.as_deref()),
        backups,
        pods: &views,
        present: &present,
        at_rest,
        now,
    };
    let restore = eb::restore_source(&view);
    if let Err(why) = &restore {
        blocker.get_or_insert(("RestoreRefused", why.clone()));
    }
    let restored_from = restore.clone().ok().flatten();
    let bplan = eb::plan_backup(&view);
    let seed = eb::seed_source(&view);
    drop(view);
    if spec.restore.is_some() && restored_from.is_none() && blocker.is_none() {
        waiting.get_or_insert_with(|| "choosing the backup to restore from".to_string());
    }

    let lb_pending = waiting.is_some()
        && spec.p2p_service.as_ref().map(|p| p.service_type) == Some(P2pServiceType::LoadBalancer);
    let restore_pending = spec.restore.is_some() && restored_from.is_none();
    if blocker.is_none() && !lb_pending && !restore_pending {
        // A new replica's volumes start from a backup: its claims are made before the
        // StatefulSet that would make them empty.
        let source = match &live_sts {
            None => restored_from.clone().or(seed.clone()),
            Some(_) => seed.clone(),
        };
        if let Some(source) = source.filter(|_| scaling_up) {
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
            let mut made = Vec::new();
            for ordinal in live_replicas..spec.replicas {
                for which in eb::BACKED_UP {
                    let claim =
                        r::seeded_claim(&node, which, ordinal, &eb::copy_name(&source, which));
                    let claim_name = claim.name_any();
                    if claims.get_metadata_opt(&claim_name).await?.is_none() {
                        super::create_once(&claims, &claim).await?;
                        info!(claim = %claim_name, backup = %source, "volume from a backup");
                        made.push(claim_name);
                    }
                }
            }
            // One Event for the claims made together (Events of one reason and object
            // are aggregated: separate notes would be lost).
            if !made.is_empty() {
                ctx.event(
                    node.as_ref(),
                    EventType::Normal,
                    "VolumeFromBackup",
                    format!("claims {} start from backup {source}", made.join(", ")),
                )
                .await;
            }
        }
        let mut sts = desired_sts?;
        if bplan.stop_last {
            sts.spec.replicas = Some((spec.replicas - 1).max(0));
        }
        if apply_repairing(&sets, sts, live_sts.clone()).await? {
            info!("applied the StatefulSet");
        }
    }
    for object in &bplan.create {
        snapshots::create_value(&client, &ns, object.clone()).await?;
    }
    for gone in &bplan.prune {
        snapshots::delete(&client, &ns, gone).await?;
        ctx.event(
            node.as_ref(),
            EventType::Normal,
            "SnapshotPruned",
            format!("deleted VolumeSnapshot {gone}: beyond spec.backup.keep"),
        )
        .await;
    }
    for (kind, reason, message) in &bplan.events {
        ctx.event(node.as_ref(), *kind, reason, message.clone())
            .await;
    }

    let backing_up = bplan
        .status
        .as_ref()
        .and_then(|b| b.in_progress.as_ref())
        .map(|run| {
            format!(
                "backup {} has {} stopped ({})",
                run.snapshot, run.node, run.phase
            )
        });
    let observed = Observed {
        replicas: spec.replicas,
        blocker,
        waiting,
        pods: views,
        jwt: (jwt_name.clone(), jwt_key),
        deprecated_network: spec.network == EthereumNetwork::Holesky,
        backing_up,
    };
    let (phase, mut desired) = decide(&observed);
    desired.extend(bplan.condition.clone());
    ctx.metrics.set_ethereum_node(
        &ns,
        &name,
        &observed
            .pods
            .iter()
            .map(|p| crate::metrics::EthereumReplicaFigures {
                pod: p.pod.clone(),
                block_height: p.execution_head,
                sync_distance: p.consensus.map(|c| c.sync_distance),
                execution_peers: p.execution_peers,
                consensus_peers: p.consensus_peers,
            })
            .collect::<Vec<_>>(),
    );

    // --- status ---
    let previous = node.status.clone().unwrap_or_default();
    let conditions = merge_conditions(
        &previous.conditions,
        &desired,
        node.metadata.generation,
        Timestamp::now(),
    );
    let first = observed.pods.iter().min_by(|a, b| a.pod.cmp(&b.pod));
    let images = [
        Some(r::execution_image(&node)),
        Some(r::consensus_image(&node)),
        r::validator_image(&node),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(",");
    let mut status = EthereumNodeStatus {
        phase,
        observed_generation: node.metadata.generation,
        conditions,
        ready_replicas: i32::try_from(observed.pods.iter().filter(|p| p.ready).count())
            .unwrap_or(i32::MAX),
        execution_head: observed.pods.iter().filter_map(|p| p.execution_head).max(),
        consensus_head_slot: observed
            .pods
            .iter()
            .filter_map(|p| p.consensus.map(|c| c.head_slot))
            .max(),
        finalized_epoch: observed.pods.iter().filter_map(|p| p.finalized_epoch).max(),
        peers: first.and_then(|p| match (p.execution_peers, p.consensus_peers) {
            (None, None) => None,
            (e, c) => Some(format!(
                "{}/{}",
                e.map_or("-".to_string(), |n| n.to_string()),
                c.map_or("-".to_string(), |n| n.to_string())
            )),
        }),
        jwt_secret: Some(format!("{jwt_name}/{}", observed.jwt.1)),
        images: Some(images),
        backup: bplan.status.clone(),
        restored_from: restored_from.clone().or(previous.restored_from.clone()),
    };
    // Heads and peers move every slot: refreshed in the status at most every
    // STATUS_FIGURES_PERIOD unless something else in it changed (metrics follow every poll).
    let without_figures = |s: &EthereumNodeStatus| EthereumNodeStatus {
        execution_head: None,
        consensus_head_slot: None,
        finalized_epoch: None,
        peers: None,
        ..s.clone()
    };
    if without_figures(&status) == without_figures(&previous)
        && status != previous
        && !ectx.figures_due(&format!("{ns}/{name}"))
    {
        status.execution_head = previous.execution_head;
        status.consensus_head_slot = previous.consensus_head_slot;
        status.finalized_epoch = previous.finalized_epoch;
        status.peers = previous.peers.clone();
    }
    let news: Vec<_> = super::status::transitions(&previous.conditions, &status.conditions)
        .into_iter()
        .filter(|c| (c.type_ == "Error" || c.type_ == "BackupFailing") && c.status == "True")
        .cloned()
        .collect();
    write_status_if_changed(&nodes, &node, node.status.as_ref(), &status).await?;
    for c in news {
        ctx.event(node.as_ref(), EventType::Warning, &c.reason, c.message)
            .await;
    }
    if previous.phase != status.phase {
        info!(from = ?previous.phase, to = ?status.phase, "phase");
    }

    // Fast-changing figures (heads, peers) live in the status and metrics: read them
    // again at the chain poll while the node runs.
    let every = if spec.replicas == 0 {
        ctx.resync
    } else {
        ctx.chain_poll.max(Duration::from_secs(5))
    };
    Ok(Action::requeue(
        bplan.requeue.map_or(every, |r| r.min(every)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::beacon::BeaconSync;
    use EthereumNodePhase::*;

    fn synced(pod: &str) -> ReplicaView {
        ReplicaView {
            pod: pod.to_string(),
            ready: true,
            execution_head: Some(100),
            execution_syncing: Some(false),
            execution_peers: Some(3),
            consensus: Some(BeaconSync {
                head_slot: 200,
                sync_distance: 0,
                is_syncing: false,
                el_offline: Some(false),
                is_optimistic: Some(false),
            }),
            consensus_peers: Some(5),
            finalized_epoch: Some(4),
            stuck: None,
            consensus_running_secs: Some(600),
        }
    }

    fn observed(replicas: i32, pods: Vec<ReplicaView>) -> Observed {
        Observed {
            replicas,
            pods,
            jwt: ("eth-jwt".to_string(), "jwt.hex".to_string()),
            ..Observed::default()
        }
    }

    fn condition<'a>(c: &'a [DesiredCondition], t: &str) -> &'a DesiredCondition {
        c.iter().find(|c| c.type_ == t).expect("condition")
    }

    #[test]
    fn phases_follow_the_pods_and_the_clients() {
        let mut syncing = synced("eth-0");
        syncing.ready = false;
        syncing.execution_syncing = Some(true);
        let mut silent = synced("eth-0");
        silent.ready = false;
        silent.execution_head = None;
        silent.execution_syncing = None;
        silent.consensus = None;
        let mut lb = observed(1, vec![]);
        lb.waiting = Some("waiting for the load balancer".to_string());
        let cases: Vec<(&str, Observed, EthereumNodePhase)> = vec![
            ("no pods yet", observed(1, vec![]), Pending),
            ("load balancer pending", lb, Configuring),
            (
                "pod up, clients silent",
                observed(1, vec![silent]),
                Configuring,
            ),
            (
                "clients syncing",
                observed(1, vec![syncing.clone()]),
                Syncing,
            ),
            (
                "one of two syncing",
                observed(2, vec![synced("eth-0"), syncing]),
                Syncing,
            ),
            (
                "synced and ready",
                observed(1, vec![synced("eth-0")]),
                Running,
            ),
            ("replicas 0", observed(0, vec![]), Stopped),
            (
                "replicas 0, pod terminating",
                observed(0, vec![synced("eth-0")]),
                Stopped,
            ),
        ];
        for (what, o, want) in cases {
            assert_eq!(decide(&o).0, want, "{what}");
        }
    }

    #[test]
    fn an_engine_api_that_refuses_the_jwt_is_an_error_naming_the_secret() {
        let mut p = synced("eth-0");
        // Offline but the head follows the clock (Prysm's deposit-log reader on a devnet
        // without a deposit contract): not an error.
        p.consensus = Some(BeaconSync {
            el_offline: Some(true),
            is_optimistic: Some(false),
            head_slot: 40,
            ..BeaconSync::default()
        });
        assert_eq!(decide(&observed(1, vec![p.clone()])).0, Running);
        // Offline with the head falling behind: the Engine API refuses.
        p.consensus = Some(BeaconSync {
            el_offline: Some(true),
            sync_distance: 5,
            is_syncing: true,
            ..BeaconSync::default()
        });
        let (phase, c) = decide(&observed(1, vec![p.clone()]));
        assert_eq!(phase, Error);
        let e = condition(&c, "Error");
        assert!(e.status && e.reason == "EngineApiRefused", "{e:?}");
        assert!(
            e.message.contains("Secret eth-jwt (key jwt.hex)"),
            "{}",
            e.message
        );
        // The execution client syncing: fed over the Engine API, so not refused.
        p.execution_syncing = Some(true);
        assert_ne!(decide(&observed(1, vec![p.clone()])).0, Error);
        p.execution_syncing = Some(false);
        // Just started (both clients restart together): not yet an error.
        p.consensus_running_secs = Some(10);
        assert_ne!(decide(&observed(1, vec![p.clone()])).0, Error);
        p.consensus_running_secs = Some(ENGINE_START_GRACE_SECS);
        assert_eq!(decide(&observed(1, vec![p.clone()])).0, Error);
        // The execution client silent too: not the JWT, just not up yet.
        p.execution_head = None;
        assert_eq!(decide(&observed(1, vec![p])).0, Syncing);
    }

    #[test]
    fn missing_prerequisites_and_stuck_containers_are_errors_with_what_to_do() {
        let mut o = observed(1, vec![]);
        o.blocker = Some((
            "JwtSecretMissing",
            "Secret x does not exist: create it".to_string(),
        ));
        let (phase, c) = decide(&o);
        assert_eq!(phase, Error);
        assert_eq!(condition(&c, "Error").reason, "JwtSecretMissing");
        let mut p = synced("eth-0");
        p.ready = false;
        p.stuck = Some((
            "consensus".into(),
            "CrashLoopBackOff".into(),
            "back-off".into(),
        ));
        let (phase, c) = decide(&observed(1, vec![p]));
        assert_eq!(phase, Error);
        assert!(
            condition(&c, "Error")
                .message
                .contains("container consensus is CrashLoopBackOff")
        );
        let (phase, c) = decide(&observed(1, vec![synced("eth-0")]));
        assert_eq!(phase, Running);
        assert!(!condition(&c, "Error").status);
        assert!(condition(&c, "Ready").status && condition(&c, "Synced").status);
    }

    #[test]
    fn holesky_says_it_is_deprecated() {
        let mut o = observed(1, vec![synced("eth-0")]);
        o.deprecated_network = true;
        let (_, c) = decide(&o);
        assert!(condition(&c, "Deprecated").message.contains("hoodi"));
    }

    #[test]
    fn holds_ignores_what_the_server_adds_and_sees_what_was_changed() {
        let desired = serde_json::json!({"spec": {"args": ["--a", "--b"], "x": null, "ports": [{"port": 1}]}});
        let live = serde_json::json!({"spec": {"args": ["--a", "--b"], "extra": 1, "ports": [{"port": 1, "protocol": "TCP"}]}});
        assert!(holds(&desired, &live));
        let edited = serde_json::json!({"spec": {"args": ["--a"], "ports": [{"port": 1}]}});
        assert!(!holds(&desired, &edited));
        let changed = serde_json::json!({"spec": {"args": ["--a", "--c"], "ports": [{"port": 1}]}});
        assert!(!holds(&desired, &changed));
    }

    #[test]
    fn a_custom_network_config_map_is_checked_and_its_peers_read() {
        let err = custom_network_facts("dev", None).unwrap_err();
        assert!(err.contains("kubectl create configmap dev"), "{err}");
        let mut cm = ConfigMap {
            data: Some(BTreeMap::from([
                (CUSTOM_GENESIS_KEY.to_string(), "{}".to_string()),
                (CUSTOM_CONFIG_KEY.to_string(), "x: 1".to_string()),
            ])),
            ..ConfigMap::default()
        };
        assert!(
            custom_network_facts("dev", Some(&cm))
                .unwrap_err()
                .contains("genesis.ssz")
        );
        cm.binary_data = Some(BTreeMap::from([(
            CUSTOM_GENESIS_STATE_KEY.to_string(),
            k8s_openapi::ByteString(vec![1, 2, 3]),
        )]));
        if let Some(d) = cm.data.as_mut() {
            d.insert(
                CUSTOM_BOOTNODES_KEY.to_string(),
                "# el\nenode://a@b:1\n\n".to_string(),
            );
        }
        let n = custom_network_facts("dev", Some(&cm)).expect("ok");
        assert_eq!(n.bootnodes, ["enode://a@b:1"]);
        assert!(n.bootstrap_nodes.is_empty());
        assert_eq!(n.checksum.len(), 64);
        assert!(!n.compressed);
        // The state may come gzip-compressed instead (over a ConfigMap's 1 MiB raw).
        if let Some(b) = cm.binary_data.as_mut() {
            let state = b.remove(CUSTOM_GENESIS_STATE_KEY).expect("state");
            b.insert(format!("{CUSTOM_GENESIS_STATE_KEY}.gz"), state);
        }
        assert!(
            custom_network_facts("dev", Some(&cm))
                .expect("ok")
                .compressed
        );
    }
}
