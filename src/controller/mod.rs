//! Thin orchestration: observe → decide (pure, tested) → apply → write status.
//!
//! Two controllers run in one process: the network controller turns a `BesuNetwork` into
//! keys, genesis and `BesuNode`s; the node controller turns a `BesuNode` into its
//! StatefulSet and Services. A third turns an `EthereumNode` into its clients.
//!
//! Where a behaviour lives:
//! - `network`: the network reconcile as a pipeline, one module per step:
//!   `network::observe` (caches, read-your-writes through `freshness`, the chain: an
//!   `Observed`), `network::keys` and `network::genesis` (the only writes before
//!   decisions), `network::decide` (pure: the bring-up stages' new nodes, then a `Plan`
//!   of votes, discards, removals, the rollout, the network-level children and the
//!   requeue; table-tested), `network::apply` (executes them, with Events) and
//!   `network::conditions` (the status, its conditions and the Events they announce).
//! - `day2`: the scaling and rollout rules themselves (quorum budget, vote order).
//! - `chain`: reading the chain over JSON-RPC, the per-network observer, stall detection.
//! - `node`, `monitoring`, `ethereum`: the node, monitoring-node and EthereumNode
//!   reconciles; `key_identity`: a key's identity without holding the key; `status`:
//!   condition bookkeeping shared by all.

pub mod chain;
pub mod day2;
pub mod ethereum;
pub mod ethereum_backup;
pub mod freshness;
pub mod key_identity;
pub mod monitoring;
pub mod network;
pub mod node;
pub mod snapshots;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams, PostParams};

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::render::{FIELD_MANAGER, sha256_hex};

/// Annotation holding the hash of what the operator last applied to a child. A child
/// whose annotation matches the desired hash is not applied again, so that a network at
/// rest causes no write requests at all.
pub const APPLIED_HASH_ANNOTATION: &str = "besu.nodeops.dev/applied-hash";

/// Errors of a reconcile. None carries key material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// A desired object could not be rendered.
    #[error("cannot render children: {0}")]
    Render(#[from] crate::render::node::RenderError),
    /// The genesis could not be built.
    #[error("cannot build genesis: {0}")]
    Genesis(String),
    /// A desired object could not be serialised.
    #[error("cannot serialise: {0}")]
    Serialize(#[from] serde_json::Error),
    /// A monitoring object could not be rendered.
    #[error("cannot render monitoring: {0}")]
    Monitoring(#[from] crate::render::monitoring::MonitoringError),
    /// The reconcile did not finish within its deadline and was stopped (every write is
    /// idempotent, so the next attempt picks up where it stopped).
    #[error("the reconcile took longer than {0:?} and was stopped")]
    Deadline(Duration),
}

/// What a failed reconcile needs before it can pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remedy {
    /// Likely to pass on its own (a conflict, a timeout, the API server away): retried
    /// with a per-object exponential backoff.
    Retry,
    /// Needs a person: a spec the API server or the renderer rejects, a permission the
    /// operator lacks, an object too large. Reported in the `Degraded` condition and an
    /// Event, and retried only slowly until then.
    UserChange {
        /// PascalCase reason for the condition and the Event.
        reason: &'static str,
        /// What happened, in the API server's words, and what to do.
        message: String,
    },
}

impl Error {
    /// Whether retrying can help, or what the user must change.
    pub fn remedy(&self) -> Remedy {
        let user = |reason, message| Remedy::UserChange { reason, message };
        match self {
            Error::Kube(kube::Error::Api(s)) => match s.code {
                403 => user(
                    "Forbidden",
                    format!(
                        "the API server refused the operator: {}. Grant the operator's ServiceAccount this permission (manifests/rbac lists every rule it needs); the operator retries within 5 minutes, or at once when this object is edited or annotated",
                        s.message
                    ),
                ),
                400 | 422 => user(
                    "Invalid",
                    format!(
                        "the API server rejected an object the operator made from this spec: {}. Change the spec so that the object is valid",
                        s.message
                    ),
                ),
                413 => user(
                    "TooLarge",
                    format!(
                        "an object the operator made is too large for the API server: {}. Make the spec smaller (a genesis alloc must fit in a ConfigMap, under 1 MiB)",
                        s.message
                    ),
                ),
                _ => Remedy::Retry,
            },
            Error::Kube(_) | Error::Serialize(_) | Error::Deadline(_) => Remedy::Retry,
            Error::Render(e) => user("InvalidSpec", format!("{e}: change the spec")),
            Error::Genesis(e) => user("InvalidGenesis", format!("{e}: change spec.genesis")),
            Error::Monitoring(e) => {
                user("InvalidMonitoring", format!("{e}: change spec.monitoring"))
            }
        }
    }

    /// A stable, low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Render(_) => "render",
            Error::Genesis(_) => "genesis",
            Error::Serialize(_) => "serialize",
            Error::Monitoring(_) => "monitoring",
            Error::Deadline(_) => "deadline",
        }
    }
}

/// The node controller's caches: reflector stores fed by its watches of the operator's
/// own objects (label `app.kubernetes.io/managed-by=besu-operator`).
///
/// A node reconcile reads a child from them ([`cached_or_get`]), and from the API when a
/// store lacks it: a store's miss is never trusted, so a cache that lags can never be why
/// a pod is stopped for a missing key or a volume is created. After it writes, a reconcile
/// reads what it wrote from the API.
#[derive(Clone)]
pub struct NodeStores {
    /// StatefulSets.
    pub sets: Store<k8s_openapi::api::apps::v1::StatefulSet>,
    /// Services.
    pub services: Store<k8s_openapi::api::core::v1::Service>,
    /// ConfigMaps (the nodes' configs and the networks' genesis).
    pub config_maps: Store<k8s_openapi::api::core::v1::ConfigMap>,
    /// The nodes' data volume claims.
    pub claims: Store<k8s_openapi::api::core::v1::PersistentVolumeClaim>,
    /// Pods (one store per scope, fed by the network controller's pod watch).
    pub pods: Store<k8s_openapi::api::core::v1::Pod>,
    /// Key Secrets, as metadata (no key material is held).
    pub secrets: Store<kube::api::PartialObjectMeta<k8s_openapi::api::core::v1::Secret>>,
}

/// The network controller's caches of the network-level children it owns: what
/// `apply_if_changed` compares with, so that a network at rest reads neither.
#[derive(Clone)]
pub struct NetworkStores {
    /// The networks (the controller's own store).
    pub networks: Store<besu_operator_api::BesuNetwork>,
    /// The operator's BesuNodes.
    pub nodes: Store<besu_operator_api::BesuNode>,
    /// The operator's pods (the node controller reads the same store).
    pub pods: Store<k8s_openapi::api::core::v1::Pod>,
    /// The validators' PodDisruptionBudgets.
    pub budgets: Store<k8s_openapi::api::policy::v1::PodDisruptionBudget>,
    /// The networks' NetworkPolicies.
    pub policies: Store<k8s_openapi::api::networking::v1::NetworkPolicy>,
}

/// Caches registered per watched scope (`None`: every namespace), found by namespace.
pub struct ScopedStores<T>(std::sync::RwLock<Vec<(Option<String>, T)>>);

impl<T: Clone> ScopedStores<T> {
    fn new() -> Self {
        ScopedStores(std::sync::RwLock::new(Vec::new()))
    }

    /// Adds the caches of the controller that watches `scope` (`None`: all).
    pub fn add(&self, scope: Option<&str>, stores: T) {
        if let Ok(mut all) = self.0.write() {
            all.push((scope.map(str::to_string), stores));
        }
    }

    /// The caches that hold namespace `ns`.
    pub fn get(&self, ns: &str) -> Option<T> {
        let all = self.0.read().ok()?;
        all.iter()
            .find(|(scope, _)| scope.is_none() || scope.as_deref() == Some(ns))
            .map(|(_, s)| s.clone())
    }
}

/// `name` in `ns` from `store` when it holds it, else from the API (`None`: absent).
pub async fn cached_or_get<K>(
    store: Option<&Store<K>>,
    api: &Api<K>,
    ns: &str,
    name: &str,
) -> Result<Option<K>, Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    cached_or(store, ns, name, || api.get_opt(name)).await
}

/// `name` in `ns` from `store` when it holds it, else what `fetch` reads from the API.
pub async fn cached_or<K, F, Fut>(
    store: Option<&Store<K>>,
    ns: &str,
    name: &str,
    fetch: F,
) -> Result<Option<K>, Error>
where
    K: Resource<DynamicType = ()> + Clone,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Option<K>, kube::Error>>,
{
    let key = kube::runtime::reflector::ObjectRef::<K>::new(name).within(ns);
    if let Some(hit) = store.and_then(|s| s.get(&key)) {
        return Ok(Some(K::clone(&hit)));
    }
    Ok(fetch().await?)
}

/// State shared by every reconcile.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Publishes Events.
    pub events: Events,
    /// How often a settled object is reconciled again.
    pub resync: Duration,
    /// Talks to the nodes' JSON-RPC.
    pub rpc: crate::rpc::RpcClient,
    /// The operator's metrics (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// How often a network's chain observer reads its chain over JSON-RPC (while a
    /// change is in progress the reconcile reads it itself, every time).
    pub chain_poll: Duration,
    /// One chain observer per network (chain::ChainObservers).
    pub chains: chain::ChainObservers,
    /// The node controllers' caches, each with the namespace it watches (`None`: all),
    /// once their watches run (operator::node_controller); without them a node reconcile
    /// reads every child from the API.
    pub node_stores: ScopedStores<NodeStores>,
    /// The network controllers' caches, likewise (operator::network_controller).
    pub network_stores: ScopedStores<NetworkStores>,
    /// The network reconciles' writes a cache must show before it is decided from.
    pub writes: freshness::Writes,
    /// `host:port` where a network's Prometheus scrapes the operator's `/metrics`.
    pub metrics_target: Option<String>,
    /// Per object (`kind/namespace/name`): failed reconciles in a row.
    pub failures: std::sync::Mutex<std::collections::HashMap<String, u32>>,
    /// Per node (`namespace/name`): when the operator last asked it to dial its peers
    /// because it had none (network::heal_isolated).
    pub heals: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// The public identities of key Secrets the operator did not annotate itself, so that
    /// each is read in full once per version (key_identity).
    pub key_identities: key_identity::IdentityCache,
    /// Talks to EthereumNodes' execution clients: one attempt, short timeout (a status
    /// read, never an action).
    pub eth_rpc: crate::rpc::RpcClient,
    /// Talks to EthereumNodes' beacon APIs.
    pub beacon: crate::rpc::beacon::BeaconClient,
    /// The operator's own image (`BESU_OPERATOR_IMAGE`, else this release's), which an
    /// EthereumNode's init container runs to unpack a compressed network ConfigMap.
    pub operator_image: String,
}

impl Context {
    /// A context for the given client.
    pub fn new(client: Client, resync: Duration) -> Arc<Context> {
        Context::with_metrics(
            client,
            resync,
            Duration::from_secs(15),
            Arc::new(crate::metrics::Metrics::new()),
            None,
        )
    }

    /// A context that records into `metrics` and reads a settled chain every
    /// `chain_poll`.
    pub fn with_metrics(
        client: Client,
        resync: Duration,
        chain_poll: Duration,
        metrics: Arc<crate::metrics::Metrics>,
        metrics_target: Option<String>,
    ) -> Arc<Context> {
        let reporter = Reporter {
            controller: "besu-operator".to_string(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let rpc = crate::rpc::RpcClient::default();
        Arc::new(Context {
            events: Events::new(client.clone(), reporter),
            client,
            resync,
            chains: chain::ChainObservers::new(rpc.clone(), metrics.clone(), chain_poll),
            rpc,
            node_stores: ScopedStores::new(),
            network_stores: ScopedStores::new(),
            writes: freshness::Writes::default(),
            metrics,
            chain_poll,
            metrics_target,
            failures: std::sync::Mutex::new(std::collections::HashMap::new()),
            heals: std::sync::Mutex::new(std::collections::HashMap::new()),
            key_identities: key_identity::IdentityCache::default(),
            eth_rpc: crate::rpc::RpcClient::new(Duration::from_secs(2), 1),
            beacon: crate::rpc::beacon::BeaconClient::new(Duration::from_secs(2)),
            operator_image: std::env::var("BESU_OPERATOR_IMAGE")
                .ok()
                .filter(|i| !i.is_empty())
                .unwrap_or_else(crate::generate::install::default_image),
        })
    }

    /// Records one more failed reconcile of `key`; returns how long to wait before the
    /// next attempt.
    pub fn failed(&self, key: &str, remedy: &Remedy) -> Duration {
        let n = match self.failures.lock() {
            Ok(mut map) => {
                let n = map.entry(key.to_string()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            }
            Err(_) => 1,
        };
        let jitter = {
            use rand_core::RngCore;
            f64::from(rand_core::OsRng.next_u32()) / (f64::from(u32::MAX) + 1.0)
        };
        backoff_delay(n, first_retry(remedy), jitter)
    }

    /// Forgets the failures of `key` after a reconcile that passed.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(key);
        }
    }

    /// Publishes an Event about `obj`. A failure to publish is logged, not fatal.
    pub async fn event<K>(&self, obj: &K, type_: EventType, reason: &str, note: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let ev = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: reason.to_string(),
            secondary: None,
        };
        if let Err(e) = self.events.publish(&ev, &obj.object_ref(&())).await {
            warn!(error = %e, reason, "cannot publish event");
        }
    }
}

/// Publishes Events through kube's `Recorder`, which counts a repeated Event into a
/// series for 6 minutes (kube-runtime's `CACHE_TTL`) and keeps every Event it published
/// to do so. It drops expired ones only when it publishes the next, so after a bring-up
/// of 100 networks an operator at rest held 5.6 MiB of old Events (heaptrack, issue
/// 15). Once no Event was published for [`EVENT_QUIET`], the recorder is replaced by an
/// empty one: an Event repeated after such a pause starts a series of its own (a new
/// Event object) instead of counting into the old one.
pub struct Events {
    client: Client,
    reporter: Reporter,
    recorder: std::sync::RwLock<Arc<Recorder>>,
    /// When the last Event was published, if one was since the recorder was new.
    last: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long without an Event before the recorder's memory of past Events is dropped.
pub const EVENT_QUIET: Duration = Duration::from_secs(60);

impl Events {
    /// A publisher reporting as `reporter`.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Events {
            recorder: std::sync::RwLock::new(Arc::new(Recorder::new(
                client.clone(),
                reporter.clone(),
            ))),
            client,
            reporter,
            last: std::sync::Mutex::new(None),
        }
    }

    /// Publishes `ev` about `reference`.
    pub async fn publish(
        &self,
        ev: &Event,
        reference: &k8s_openapi::api::core::v1::ObjectReference,
    ) -> Result<(), kube::Error> {
        if let Ok(mut last) = self.last.lock() {
            *last = Some(std::time::Instant::now());
        }
        let recorder = match self.recorder.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        recorder.publish(ev, reference).await
    }

    /// Replaces the recorder by an empty one once nothing was published for
    /// [`EVENT_QUIET`]. Returns whether it did.
    pub fn renew_when_quiet(&self) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        if !last.is_some_and(|l| l.elapsed() >= EVENT_QUIET) {
            return false;
        }
        let Ok(mut recorder) = self.recorder.write() else {
            return false;
        };
        *recorder = Arc::new(Recorder::new(self.client.clone(), self.reporter.clone()));
        *last = None;
        true
    }
}

/// The applied-hash of a desired object (computed before the annotation is added).
pub fn applied_hash<K: Serialize>(desired: &K) -> Result<String, Error> {
    Ok(sha256_hex(&serde_json::to_string(desired)?))
}

/// Whether a live object carries the applied-hash of `desired`, i.e. is up to date.
pub fn is_applied<K: Resource, D: Serialize>(live: &K, desired: &D) -> Result<bool, Error> {
    Ok(live.annotations().get(APPLIED_HASH_ANNOTATION) == Some(&applied_hash(desired)?))
}

/// Server-side applies `desired` unless the live object already carries the same
/// applied-hash annotation. Returns whether a write was made.
pub async fn apply_if_changed<K>(api: &Api<K>, desired: K) -> Result<bool, Error>
where
    K: Resource<Scope = NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let live = api.get_opt(&desired.name_any()).await?;
    apply_if_changed_over(api, desired, live).await
}

/// [`apply_if_changed`] comparing with the copy in `store` when it holds one (a read of
/// the API otherwise): at rest, no request at all. Only for objects nothing is decided
/// on, where a stale copy costs an idempotent apply.
pub async fn apply_if_changed_cached<K>(
    store: Option<&Store<K>>,
    api: &Api<K>,
    ns: &str,
    desired: K,
) -> Result<bool, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let live = cached_or_get(store, api, ns, &desired.name_any()).await?;
    apply_if_changed_over(api, desired, live).await
}

/// [`apply_if_changed`] over a live object the caller read just before (`None`: it does
/// not exist), saving the read.
pub async fn apply_if_changed_over<K>(
    api: &Api<K>,
    desired: K,
    live: Option<K>,
) -> Result<bool, Error>
where
    K: Resource<Scope = NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let hash = applied_hash(&desired)?;
    apply_over(api, desired, hash, live.as_ref()).await
}

/// [`apply_if_changed_over`] with the applied-hash given: for a desired object whose
/// hash must be taken before some field is replaced by the live one (see node::reconcile).
pub async fn apply_over<K>(
    api: &Api<K>,
    desired: K,
    hash: String,
    live: Option<&K>,
) -> Result<bool, Error>
where
    K: Resource<Scope = NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    Ok(applied(api, desired, hash, live).await?.is_some())
}

/// [`apply_over`], returning the object as the API server wrote it (None: the live one
/// carries the hash already, and nothing was written).
pub async fn applied<K>(
    api: &Api<K>,
    mut desired: K,
    hash: String,
    live: Option<&K>,
) -> Result<Option<K>, Error>
where
    K: Resource<Scope = NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let name = desired.name_any();
    if live.is_some_and(|l| l.annotations().get(APPLIED_HASH_ANNOTATION) == Some(&hash)) {
        return Ok(None);
    }
    desired
        .annotations_mut()
        .insert(APPLIED_HASH_ANNOTATION.to_string(), hash);
    Ok(Some(
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await?,
    ))
}

/// Parameters of the operator's merge and strategic-merge patches (annotations, replicas,
/// owner references): its field manager, no force.
pub fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    }
}

/// A pod's Ready condition, if it has one yet.
pub fn pod_ready_condition(
    pod: &k8s_openapi::api::core::v1::Pod,
) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
}

/// Whether a StatefulSet's one replica is Ready on its current spec and revision.
pub fn statefulset_ready(sts: &k8s_openapi::api::apps::v1::StatefulSet) -> bool {
    let Some(status) = &sts.status else {
        return false;
    };
    let generation_seen = status.observed_generation >= sts.metadata.generation;
    let on_current_revision =
        status.current_revision.is_some() && status.current_revision == status.update_revision;
    generation_seen && on_current_revision && status.ready_replicas.unwrap_or(0) >= 1
}

/// Trims a cached pod to what a reconcile reads of it: its metadata and status, each
/// container status without its image and ids. The spec (Besu's command line, probes,
/// volumes: most of a pod's size, and each container a 2.3 KB struct) is dropped; the
/// one thing read of it, a container's limits (node::oom_fact reports an OOM-killed
/// container's memory limit), is kept where the kubelet itself reports the limits it
/// applied: the container status's `resources`.
pub fn trim_pod(pod: &mut k8s_openapi::api::core::v1::Pod) {
    let spec = pod.spec.take();
    let limits = |name: &str| {
        spec.as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == name))
            .and_then(|c| c.resources.as_ref())
            .and_then(|r| r.limits.clone())
    };
    let Some(status) = pod.status.as_mut() else {
        return;
    };
    let trim = |c: &mut k8s_openapi::api::core::v1::ContainerStatus| {
        c.image = String::new();
        c.image_id = String::new();
        c.container_id = None;
        c.volume_mounts = None;
        c.allocated_resources = None;
        c.allocated_resources_status = None;
        c.user = None;
        if c.resources.as_ref().is_none_or(|r| r.limits.is_none())
            && let Some(limits) = limits(&c.name)
        {
            c.resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
                limits: Some(limits),
                ..Default::default()
            });
        }
    };
    status
        .container_statuses
        .iter_mut()
        .flatten()
        .for_each(trim);
    status
        .init_container_statuses
        .iter_mut()
        .flatten()
        .for_each(trim);
    status.host_ips = None;
    status.pod_ips = None;
}

/// Trims a cached StatefulSet to what the node controller reads of it: metadata (the
/// applied hash, the template revision), status, replicas, selector, claim templates,
/// and its pod template's metadata and each container's name and image (the image the
/// node runs). The rest of the pod template, most of its size, is dropped; nothing is
/// applied from a cached copy but its claim templates (node::reconcile).
pub fn trim_statefulset(sts: &mut k8s_openapi::api::apps::v1::StatefulSet) {
    let template = &mut sts.spec.template;
    template.spec = template.spec.take().map(|spec| {
        containers_only(spec, |c| k8s_openapi::api::core::v1::Container {
            name: c.name,
            image: c.image,
            ..Default::default()
        })
    });
}

/// A pod spec of `spec`'s containers alone, each reduced by `keep`.
fn containers_only(
    spec: k8s_openapi::api::core::v1::PodSpec,
    keep: impl Fn(k8s_openapi::api::core::v1::Container) -> k8s_openapi::api::core::v1::Container,
) -> k8s_openapi::api::core::v1::PodSpec {
    k8s_openapi::api::core::v1::PodSpec {
        containers: spec.containers.into_iter().map(keep).collect(),
        ..Default::default()
    }
}

/// Trims a cached Service of the node controller to its metadata and status: a
/// reconcile compares only the applied hash (an annotation) with the desired Service.
pub fn trim_service(service: &mut k8s_openapi::api::core::v1::Service) {
    service.spec = None;
}

/// Trims a cached data volume claim to its metadata: a node reconcile reads only whether
/// the claim exists and its owner references (node::ensure_data_claim).
pub fn trim_claim(claim: &mut k8s_openapi::api::core::v1::PersistentVolumeClaim) {
    claim.spec = None;
    claim.status = None;
}

/// Trims a cached ConfigMap of the operator's to the data a reconcile reads: a genesis
/// (network::reconcile reads its validators). Of the others (a node's config, static
/// nodes) only the applied hash, an annotation, is compared.
pub fn trim_config_map(config_map: &mut k8s_openapi::api::core::v1::ConfigMap) {
    if let Some(data) = config_map.data.as_mut() {
        data.retain(|key, _| key == besu_operator_api::GENESIS_FIELD);
    }
    config_map.binary_data = None;
}

/// Creates `obj` unless an object of that name exists; never overwrites. Returns the
/// live object and whether this call created it.
pub async fn create_once<K>(api: &Api<K>, obj: &K) -> Result<(K, bool), Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    };
    match api.create(&pp, obj).await {
        Ok(created) => Ok((created, true)),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            Ok((api.get(&obj.name_any()).await?, false))
        }
        Err(e) => Err(e.into()),
    }
}

/// The longest a failing object waits before its next attempt.
pub const RETRY_MAX: Duration = Duration::from_secs(300);

/// The wait before attempt `failures + 1` of an object that failed `failures` times in a
/// row: `first`, doubling, at most [`RETRY_MAX`], shortened by up to a fifth by `jitter`
/// (in [0, 1)) so that objects failing together do not retry together.
pub fn backoff_delay(failures: u32, first: Duration, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let nominal = first.saturating_mul(1 << doublings).min(RETRY_MAX);
    nominal.mul_f64(1.0 - 0.2 * jitter.clamp(0.0, 1.0))
}

/// The first wait: transient errors retry within a second; errors that need a person
/// wait 30 s (an edit of the object itself triggers a reconcile at once anyway).
pub fn first_retry(remedy: &Remedy) -> Duration {
    match remedy {
        Remedy::Retry => Duration::from_secs(1),
        Remedy::UserChange { .. } => Duration::from_secs(30),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;

    use super::{Client, Duration, EVENT_QUIET, Events, Reporter};
    use std::sync::Arc;

    #[tokio::test]
    async fn the_event_recorder_is_renewed_only_after_a_quiet_minute() {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = Client::try_from(config).expect("client");
        let reporter = Reporter {
            controller: "test".into(),
            instance: None,
        };
        let events = Events::new(client, reporter);
        // Nothing published yet: nothing to forget.
        assert!(!events.renew_when_quiet());
        let set_last = |ago: Duration| {
            let at = std::time::Instant::now().checked_sub(ago).expect("instant");
            *events.last.lock().expect("lock") = Some(at);
        };
        let recorder = || {
            events
                .recorder
                .read()
                .map(|r| Arc::as_ptr(&r))
                .expect("lock")
        };
        let before = recorder();
        set_last(EVENT_QUIET - Duration::from_secs(5));
        assert!(!events.renew_when_quiet());
        assert_eq!(recorder(), before);
        set_last(EVENT_QUIET);
        assert!(events.renew_when_quiet());
        assert_ne!(recorder(), before);
        // Once renewed, not again until an Event is published and a quiet minute passes.
        assert!(!events.renew_when_quiet());
    }

    /// A Besu pod as the API server returns it: spec, status, an OOM-killed container.
    fn besu_pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n-validator-0-0", "namespace": "ns", "uid": "u1",
                         "labels": {"besu.nodeops.dev/network": "n"},
                         "creationTimestamp": "2026-11-29T00:00:00Z"},
            "spec": {
                "containers": [{
                    "name": "besu", "image": "hyperledger/besu:25.10.0",
                    "args": ["--data-path=/data", "--genesis-file=/etc/genesis/genesis.json"],
                    "env": [{"name": "JAVA_OPTS", "value": "-Xmx1g"}],
                    "resources": {"limits": {"memory": "2Gi"}, "requests": {"cpu": "100m"}},
                    "readinessProbe": {"httpGet": {"path": "/readiness", "port": 8545}},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]
                }],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                "nodeName": "node-1"
            },
            "status": {
                "podIP": "198.18.0.7",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{
                    "name": "besu", "ready": true, "restartCount": 2,
                    "image": "hyperledger/besu:25.10.0", "imageID": "",
                    "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
                    "state": {"running": {}}
                }]
            }
        }))
        .unwrap_or_default()
    }

    /// What the node controller reads of a StatefulSet survives the trim: readiness, the
    /// running image, replicas, claim templates, annotations.
    #[test]
    fn a_trimmed_statefulset_keeps_what_the_node_controller_reads() {
        let node = crate::render::node::test_validator();
        let mut sts = crate::render::node::desired_statefulset(&node, 1)
            .unwrap_or_else(|e| panic!("render: {e}"));
        sts.metadata.generation = Some(2);
        sts.status = Some(k8s_openapi::api::apps::v1::StatefulSetStatus {
            observed_generation: Some(2),
            current_revision: Some("r1".into()),
            update_revision: Some("r1".into()),
            ready_replicas: Some(1),
            replicas: 1,
            ..Default::default()
        });
        let mut trimmed = sts.clone();
        super::trim_statefulset(&mut trimmed);
        assert!(super::statefulset_ready(&trimmed));
        assert_eq!(trimmed.metadata, sts.metadata);
        let (spec, full) = (trimmed.spec.clone(), sts.spec.clone());
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.selector, full.selector);
        assert_eq!(spec.volume_claim_templates, full.volume_claim_templates);
        assert_eq!(spec.template.metadata, full.template.metadata);
        let images =
            |s: &k8s_openapi::api::apps::v1::StatefulSetSpec| -> Vec<(String, Option<String>)> {
                s.template
                    .spec
                    .iter()
                    .flat_map(|p| &p.containers)
                    .map(|c| (c.name.clone(), c.image.clone()))
                    .collect()
            };
        assert_eq!(images(&spec), images(&full));
        assert!(
            images(&spec)
                .iter()
                .any(|(n, i)| n == "besu" && i.as_deref() == Some("hyperledger/besu:26.3.0"))
        );
        let pod = spec.template.spec.unwrap_or_default();
        assert!(pod.volumes.is_none() && pod.init_containers.is_none());
        assert!(
            pod.containers
                .iter()
                .all(|c| c.args.is_none() && c.readiness_probe.is_none())
        );
    }

    /// A genesis keeps its data through the trim; a node's config and static nodes keep
    /// their metadata only; a Service its metadata.
    #[test]
    fn trimmed_config_maps_keep_a_genesis_and_services_their_metadata() {
        use k8s_openapi::api::core::v1::{ConfigMap, Service};
        let genesis_field = besu_operator_api::GENESIS_FIELD;
        let cm = |key: &str| -> ConfigMap {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "c", "annotations": {"besu.nodeops.dev/applied-hash": "h"}},
                "data": {key: "{}"},
            }))
            .unwrap_or_else(|e| panic!("test ConfigMap: {e}"))
        };
        let mut genesis = cm(genesis_field);
        super::trim_config_map(&mut genesis);
        assert_eq!(genesis, cm(genesis_field));
        let mut config = cm("config.toml");
        super::trim_config_map(&mut config);
        assert_eq!(config.metadata, cm("config.toml").metadata);
        assert!(config.data.unwrap_or_default().is_empty());
        let mut service: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s", "annotations": {"besu.nodeops.dev/applied-hash": "h"}},
            "spec": {"clusterIP": "None", "ports": [{"port": 30303}]},
        }))
        .unwrap_or_else(|e| panic!("test Service: {e}"));
        let metadata = service.metadata.clone();
        super::trim_service(&mut service);
        assert_eq!(service.metadata, metadata);
        assert!(service.spec.is_none());
        let mut claim: k8s_openapi::api::core::v1::PersistentVolumeClaim =
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "data-n-0", "ownerReferences": [
                    {"apiVersion": "besu.nodeops.dev/v1alpha1", "kind": "BesuNode", "name": "n", "uid": "u"}
                ]},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                "status": {"phase": "Bound"},
            }))
            .unwrap_or_else(|e| panic!("test claim: {e}"));
        let metadata = claim.metadata.clone();
        super::trim_claim(&mut claim);
        assert_eq!(claim.metadata, metadata);
        assert!(claim.spec.is_none() && claim.status.is_none());
    }

    /// What the controllers read of a pod survives the trim; the rest of the spec goes.
    #[test]
    fn a_trimmed_pod_keeps_what_reconciles_read() {
        let pod = besu_pod();
        let mut trimmed = pod.clone();
        super::trim_pod(&mut trimmed);
        assert_eq!(trimmed.metadata, pod.metadata);
        let oom = crate::controller::node::oom_fact(&trimmed);
        assert_eq!(oom, crate::controller::node::oom_fact(&pod));
        assert_eq!(oom.and_then(|f| f.limit).as_deref(), Some("2Gi"));
        assert!(super::pod_ready_condition(&trimmed).is_some());
        assert!(trimmed.spec.is_none());
        let status = trimmed.status.clone().unwrap_or_default();
        assert_eq!(status.pod_ip.as_deref(), Some("198.18.0.7"));
        let besu = &status.container_statuses.unwrap_or_default()[0];
        assert_eq!((besu.restart_count, besu.image.as_str()), (2, ""));
        assert!(besu.last_state.is_some() && besu.state.is_some());
        let (before, after) = (
            serde_json::to_string(&pod).map_or(0, |s| s.len()),
            serde_json::to_string(&trimmed).map_or(0, |s| s.len()),
        );
        assert!(after < before, "trimmed {after} bytes, untrimmed {before}");
    }
}
