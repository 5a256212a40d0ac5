//! Runs the controllers: the network controller and the node controller, plus the HTTP
//! server for health probes and `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use besu_operator_api::{
    BesuNetwork, BesuNode, EthereumNode, LABEL_ETHEREUM_NODE, LABEL_NETWORK, LABEL_NODE,
};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use crate::controller::{self, Context};

/// Errors that stop the operator.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The HTTP server could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The CRDs are not installed.
    #[error(
        "the BesuNetwork and BesuNode CRDs are not installed (or not readable): {0}. Install them with `besu-operator crd | kubectl apply --server-side -f -`"
    )]
    CrdsMissing(kube::Error),
    /// `--install-crds` could not apply a CRD.
    #[error(
        "cannot apply the operator's CRDs (--install-crds): {0}. Bind the ClusterRole in manifests/rbac/crd-installer.yaml to the operator's ServiceAccount, or install the CRDs yourself and drop --install-crds"
    )]
    CrdInstall(kube::Error),
    /// An applied CRD did not become Established.
    #[error("CRD {0} was applied but is not Established: {1}")]
    CrdNotEstablished(String, String),
    /// Leader election failed or leadership was lost.
    #[error(transparent)]
    Leader(#[from] crate::leader::LeaderError),
}

/// The User-Agent of every API request, so that audit logs attribute the operator's
/// writes: `besu-operator/<version>`.
pub const USER_AGENT: &str = concat!("besu-operator/", env!("CARGO_PKG_VERSION"));

/// A client from KUBECONFIG or the in-cluster config, identifying itself as
/// [`USER_AGENT`].
pub async fn client() -> Result<Client, kube::Error> {
    client_for(None).await
}

/// Like [`client`], with `instance` (a pod name, say) in the User-Agent,
/// `besu-operator/<version> (<instance>)`, so that audit logs tell replicas apart.
pub async fn client_for(instance: Option<&str>) -> Result<Client, kube::Error> {
    let mut config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    let agent = match instance {
        Some(i) => format!(
            "{USER_AGENT} ({})",
            i.replace(|c: char| !c.is_ascii_graphic(), "_")
        ),
        None => USER_AGENT.to_string(),
    };
    let agent = axum::http::HeaderValue::from_str(&agent)
        .unwrap_or_else(|_| axum::http::HeaderValue::from_static(USER_AGENT));
    config.headers.push((axum::http::header::USER_AGENT, agent));
    Client::try_from(config)
}

/// What woke a reconcile: kube-runtime's `ReconcileReason`, as it records it in the
/// `object.reason` field of its `reconciling object` span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The reconciled object itself changed (or was first seen).
    Object,
    /// A child or a watched object changed (`owns`, `watches`).
    Related,
    /// A timer set by the reconcile's own `Action::requeue`.
    Requeue,
    /// The periodic resync (`reconcile_all_on`).
    Resync,
    /// A retry after a failed reconcile (the error policy's timer).
    ErrorRetry,
    /// Anything else.
    Other,
}

impl Trigger {
    /// The trigger of a `ReconcileReason` as kube-runtime displays it.
    pub fn from_reason(reason: &str) -> Trigger {
        match reason {
            "object updated" => Trigger::Object,
            "reconciler requested retry" => Trigger::Requeue,
            "bulk reconcile requested" => Trigger::Resync,
            "error policy requested retry" => Trigger::ErrorRetry,
            r if r.starts_with("related object updated") => Trigger::Related,
            _ => Trigger::Other,
        }
    }

    /// The label in `besu_operator_reconcile_triggers`.
    pub fn label(self) -> &'static str {
        match self {
            Trigger::Object => "object",
            Trigger::Related => "related",
            Trigger::Requeue => "requeue",
            Trigger::Resync => "resync",
            Trigger::ErrorRetry => "error_retry",
            Trigger::Other => "other",
        }
    }

    /// Whether a timer, not a watch event, started the reconcile.
    pub fn is_timer(self) -> bool {
        matches!(
            self,
            Trigger::Requeue | Trigger::Resync | Trigger::ErrorRetry
        )
    }
}

/// The name of the span kube-runtime opens for each reconcile.
const RECONCILE_SPAN: &str = "reconciling object";

/// Counts every reconcile by controller and [`Trigger`] in the metrics, and logs its
/// trigger at debug level (target `besu_operator::reconcile`: which object, and which
/// change woke it). A tracing layer because kube-runtime hands the reason to the span
/// only, not to the reconciler; [`TriggerLayer::filter`] keeps everything else away
/// from it.
pub struct TriggerLayer {
    metrics: Arc<crate::metrics::Metrics>,
}

impl TriggerLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: Arc<crate::metrics::Metrics>) -> TriggerLayer {
        TriggerLayer { metrics }
    }

    /// Whether `metadata` is what the layer wants: kube-runtime's reconcile span,
    /// whatever the log level.
    pub fn filter(metadata: &tracing::Metadata<'_>) -> bool {
        metadata.is_span()
            && metadata.name() == RECONCILE_SPAN
            && metadata.target().starts_with("kube_runtime")
    }
}

#[derive(Default)]
struct ReconcileSpanFields {
    object: String,
    reason: String,
}

impl tracing::field::Visit for ReconcileSpanFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "object.ref" => self.object = format!("{value:?}"),
            "object.reason" => self.reason = format!("{value:?}"),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for TriggerLayer {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() != RECONCILE_SPAN {
            return;
        }
        let mut fields = ReconcileSpanFields::default();
        attrs.record(&mut fields);
        // `Kind.version.group/name.namespace`
        let controller = match fields.object.split('.').next() {
            Some("BesuNetwork") => "network",
            Some("BesuNode") => "node",
            _ => return,
        };
        let trigger = Trigger::from_reason(&fields.reason);
        self.metrics.triggered(controller, trigger.label());
        tracing::debug!(
            target: "besu_operator::reconcile",
            object = %fields.object,
            trigger = trigger.label(),
            cause = %fields.reason,
            "reconcile triggered"
        );
    }
}

/// Options of `besu-operator run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Where `/healthz` and `/readyz` are served.
    pub http_addr: SocketAddr,
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// How often a settled object is reconciled again (drift check, no writes unless
    /// something changed).
    pub resync: std::time::Duration,
    /// Reconcile only while holding this Lease (None: always).
    pub leader_election: Option<crate::leader::LeaderElectionConfig>,
    /// At a steady state, how often each network's chain is read over JSON-RPC.
    pub chain_poll: std::time::Duration,
    /// `host:port` where the networks' Prometheus scrapes the operator (None: not
    /// scraped).
    pub metrics_target: Option<String>,
    /// The metrics served on `/metrics` (shared with [`TriggerLayer`]).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Apply the CRDs at start ([`install_crds`]).
    pub install_crds: bool,
    /// Reconciles each controller runs at once, per watched scope
    /// ([`DEFAULT_CONCURRENT_RECONCILES`]).
    pub concurrent_reconciles: u16,
}

/// Reconciles each controller runs at once by default. Unbounded, a bring-up of 100
/// networks ran hundreds of node reconciles at once: their futures (about 50 KiB each, 48
/// MiB in all) and the API connections they opened made most of the operator's 196 MiB
/// heap peak (heaptrack), which the allocator then kept. Reconciles wait on the API
/// server, not on these 2 cores, so a bounded number keeps it as busy.
pub const DEFAULT_CONCURRENT_RECONCILES: u16 = 16;

/// The settings every controller runs with.
fn controller_config(concurrent_reconciles: u16) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(concurrent_reconciles.max(1))
}

/// The longest one reconcile may take; then it is stopped and retried. A reconcile
/// normally takes well under a second; a silent node's JSON-RPC costs up to 9.6 s per
/// call (3 attempts of 3 s).
pub const RECONCILE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// How long reconciles still running get after SIGTERM before the operator stops anyway:
/// with the Lease release after it, well within the Deployment's 10 s grace period.
pub const SHUTDOWN_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the Lease release may take on the way out.
const RELEASE_BUDGET: std::time::Duration = std::time::Duration::from_secs(3);

/// Resolves [`SHUTDOWN_BUDGET`] after SIGTERM or SIGINT.
async fn shutdown_overdue() {
    crate::leader::shutdown_signal().await;
    tokio::time::sleep(SHUTDOWN_BUDGET).await;
    warn!(
        budget_ms = SHUTDOWN_BUDGET.as_millis() as u64,
        "reconciles still running after the shutdown budget: stopping without them"
    );
}

/// Runs both controllers until SIGTERM/SIGINT.
pub async fn run(client: Client, opts: RunOptions) -> Result<(), RunError> {
    if opts.install_crds {
        install_crds(&client).await?;
    }
    // Fail fast, with a message saying what to do, when the CRDs are missing.
    let first_ns = opts.namespaces.first().map(String::as_str);
    let probe: Api<BesuNetwork> = scoped(&client, first_ns);
    probe
        .list(&kube::api::ListParams::default().limit(1))
        .await
        .map_err(RunError::CrdsMissing)?;
    // The EthereumNode CRD came later: a cluster that has only the Besu CRDs still runs
    // its networks, and is told how to add the new kind.
    let ethereum = scoped::<EthereumNode>(&client, first_ns)
        .list(&kube::api::ListParams::default().limit(1))
        .await;
    let run_ethereum = match ethereum {
        Ok(_) => true,
        Err(e) => {
            warn!(error = %e, "the EthereumNode CRD is not installed (or not readable): EthereumNodes are not reconciled. Install it with `besu-operator crd | kubectl apply --server-side -f -` and restart the operator");
            false
        }
    };

    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(opts.http_addr)
        .await
        .map_err(|source| RunError::Bind {
            addr: opts.http_addr,
            source,
        })?;
    let local = listener.local_addr().unwrap_or(opts.http_addr);
    info!(addr = %local, "serving /healthz, /readyz and /metrics");
    let server_ready = ready.clone();
    let metrics = opts.metrics.clone();
    let served = metrics.clone();
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = served.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                }
            }),
        )
        .route(
            "/readyz",
            axum::routing::get(move || {
                let ready = server_ready.clone();
                async move {
                    if ready.load(Ordering::Relaxed) {
                        (axum::http::StatusCode::OK, "ok")
                    } else {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "starting")
                    }
                }
            }),
        );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!(error = %e, "HTTP server stopped");
        }
    });

    // A standby replica is ready (to take over); it reconciles once it leads.
    let mut elector = match opts.leader_election.clone() {
        Some(config) => {
            let mut elector = crate::leader::LeaderElector::new(client.clone(), config)?;
            ready.store(true, Ordering::Relaxed);
            tokio::select! {
                () = elector.acquire() => {}
                () = crate::leader::shutdown_signal() => return Ok(()),
            }
            Some(elector)
        }
        None => None,
    };

    let ctx = Context::with_metrics(
        client.clone(),
        opts.resync,
        opts.chain_poll,
        metrics,
        opts.metrics_target.clone(),
    );
    let scopes: Vec<Option<String>> = if opts.namespaces.is_empty() {
        vec![None]
    } else {
        opts.namespaces.iter().cloned().map(Some).collect()
    };
    let mut controllers = Vec::new();
    for scope in &scopes {
        // One watch of the operator's pods per scope: its store serves both controllers,
        // and its readiness changes wake the networks only once the store holds them.
        let (pods, pods_stream) =
            stored_trimmed::<Pod>(&client, scope.as_deref(), managed(), controller::trim_pod);
        // One watch and one store of BesuNodes for both controllers: the node controller
        // reconciles each, and a network is woken by its own (a deletion too).
        let (nodes, node_events) = reflected::<BesuNode>(
            &client,
            scope.as_deref(),
            watcher::Config::default(),
            |_| {},
        );
        let [network_node_events, node_node_events] = fan_out("BesuNode", node_events);
        controllers.push(
            network_controller(
                opts.concurrent_reconciles,
                &client,
                scope.as_deref(),
                ctx.clone(),
                pods.clone(),
                pod_readiness(pods_stream),
                (nodes.clone(), network_node_events),
            )
            .boxed(),
        );
        controllers.push(
            node_controller(
                opts.concurrent_reconciles,
                &client,
                scope.as_deref(),
                ctx.clone(),
                pods,
                (nodes, node_node_events),
            )
            .boxed(),
        );
        if run_ethereum {
            controllers.push(
                ethereum_controller(
                    opts.concurrent_reconciles,
                    &client,
                    scope.as_deref(),
                    ctx.clone(),
                )
                .boxed(),
            );
        }
    }
    ready.store(true, Ordering::Relaxed);
    info!("controllers started");
    info!(namespaces = ?opts.namespaces, "watching {}", if scopes == [None] { "all namespaces" } else { "the given namespaces" });
    let Some(elector) = elector.as_mut() else {
        tokio::select! {
            _ = futures::future::join_all(controllers) => info!("controllers stopped"),
            () = shutdown_overdue() => {}
        }
        return Ok(());
    };
    let lost = tokio::select! {
        _ = futures::future::join_all(controllers) => {
            info!("controllers stopped");
            None
        }
        () = shutdown_overdue() => None,
        lost = elector.hold() => Some(lost),
    };
    match lost {
        // Stop at once: another replica may lead as soon as the Lease expires.
        Some(lost) => Err(lost.into()),
        None => {
            if tokio::time::timeout(RELEASE_BUDGET, elector.release())
                .await
                .is_err()
            {
                warn!(
                    "the Lease release did not finish in time; a successor waits for it to expire"
                );
            }
            Ok(())
        }
    }
}

/// An Api over all namespaces, or one.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A tick every `period` (the first after one period): every object in a controller's
/// store is reconciled on it. Requeues alone are lost when a reconcile finds its object
/// missing from a store being re-listed (after an API server outage, for example), and
/// then nothing would wake the object again until it changes.
fn resync_ticks(period: std::time::Duration) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::unfold((), move |()| async move {
        tokio::time::sleep(period).await;
        Some(((), ()))
    })
}

/// `stream` (a watch's), not polled again for `wait` after an item that is a refusal
/// (403): the watch it carries asks again only then. For the network controller's caches
/// of its own children (wait [`FORBIDDEN_RETRY`]): a missing permission is fixed by a
/// person, not by a retry, and without the cache a reconcile reads the object itself.
/// The other watches keep [`WatchBackoff`]'s quick retry: an API server that has just
/// restarted can refuse requests until its authorizer has caught up, and a pod or key
/// cache that waited minutes then would hold stale readiness. Each error still passes on
/// (the controller logs it).
fn waiting_after_refusal<T, S>(
    stream: S,
    wait: std::time::Duration,
) -> impl futures::Stream<Item = Result<T, watcher::Error>> + Send + 'static
where
    T: Send + 'static,
    S: futures::Stream<Item = Result<T, watcher::Error>> + Send + 'static,
{
    futures::stream::unfold(
        (Box::pin(stream), false),
        move |(mut inner, refused)| async move {
            if refused {
                tokio::time::sleep(wait).await;
            }
            let item = inner.next().await?;
            let refused = matches!(&item, Err(e) if is_forbidden(e));
            Some((item, (inner, refused)))
        },
    )
}

/// How long a watch of a cache the operator can do without waits after a 403 (see
/// [`waiting_after_refusal`]): the 5 minutes the Degraded condition promises for a retry.
pub const FORBIDDEN_RETRY: std::time::Duration = std::time::Duration::from_secs(300);

/// Whether the API server refused the watch's request (403 Forbidden).
fn is_forbidden(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 403 || s.is_forbidden(),
        watcher::Error::WatchError(s) => s.code == 403 || s.is_forbidden(),
        _ => false,
    }
}

/// How long the watches wait before trying again after an error: from 250 ms, doubling,
/// at most [`WATCH_RETRY_MAX`], each delay shortened by up to a fifth at random so that
/// many operators do not retry in step. kube-rs' default (client-go's) grows to 30 s, so
/// after an API server outage of 30 s the operator could sit idle for up to 30 s more
/// while a rollout waits; capped at 4 s it resumes within about 4 s of the API server's
/// return, at the cost of one request per watch every 4 s while the API server is away.
pub struct WatchBackoff {
    next: std::time::Duration,
    seed: u64,
}

/// The longest wait between two attempts of a failing watch.
pub const WATCH_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(4);
const WATCH_RETRY_MIN: std::time::Duration = std::time::Duration::from_millis(250);

impl Default for WatchBackoff {
    fn default() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        WatchBackoff {
            next: WATCH_RETRY_MIN,
            seed,
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = std::time::Duration;

    fn next(&mut self) -> Option<Self::Item> {
        // xorshift64: jitter only, not a secret.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let delay = self.next;
        self.next = (self.next * 2).min(WATCH_RETRY_MAX);
        let cut = delay.mul_f64((self.seed % 1000) as f64 / 5000.0);
        Some(delay.saturating_sub(cut))
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = WATCH_RETRY_MIN;
    }
}

fn managed() -> watcher::Config {
    watcher::Config::default().labels("app.kubernetes.io/managed-by=besu-operator")
}

async fn network_controller(
    concurrency: u16,
    client: &Client,
    ns: Option<&str>,
    ctx: Arc<Context>,
    pods: kube::runtime::reflector::Store<Pod>,
    pod_wakes: impl futures::Stream<Item = Result<Pod, watcher::Error>> + Send + 'static,
    (nodes, node_events): (
        kube::runtime::reflector::Store<BesuNode>,
        impl futures::Stream<Item = Result<watcher::Event<BesuNode>, watcher::Error>> + Send + 'static,
    ),
) {
    use kube::runtime::WatchStreamExt as _;
    // The network-level children it owns, cached: a network at rest reads neither
    // (network::reconcile compares with the cached copy), and a change to one (an edit
    // by hand, a deletion) wakes its network, which applies it again. Caches it can do
    // without (a reconcile reads what they lack): a refused watch waits FORBIDDEN_RETRY.
    let (budgets, budgets_stream) = stored::<PodDisruptionBudget>(client, ns, managed());
    let (policies, policies_stream) = stored::<NetworkPolicy>(client, ns, managed());
    // Its BesuNodes and the networks themselves are decided from their caches once these
    // show the reconciles' own writes (controller::freshness).
    let (store, network_events) =
        reflected::<BesuNetwork>(client, ns, watcher::Config::default(), |_| {});
    let controller = Controller::for_stream(network_events.applied_objects(), store.clone());
    ctx.network_stores.add(
        ns,
        controller::NetworkStores {
            networks: store.clone(),
            nodes,
            pods,
            budgets,
            policies,
        },
    );
    // A deleted network is never reconciled again: drop its gauges here.
    let chain_wakes = ctx.chains.wakes(ns);
    let (pruned, scope, every) = (ctx.clone(), ns.map(str::to_string), ctx.chain_poll);
    // Gauges and chain observers exist only for networks reconciled, i.e. once in this
    // store, so an object missing from it is a deleted one (re-lists swap the store
    // atomically).
    let pruner = tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let live = store
                .state()
                .iter()
                .map(|n| controller::network::scope_of(n))
                .collect();
            pruned.chains.retain(&live);
            if pruned.events.renew_when_quiet() {
                tracing::debug!("renewed the Event recorder after a quiet spell");
            }
            let dropped = pruned
                .metrics
                .forget_networks_except(scope.as_deref(), &live);
            if dropped > 0 {
                info!(dropped, "dropped the metrics of deleted networks");
            }
        }
    });
    controller
        .owns_stream(node_events.touched_objects())
        .owns_stream(waiting_after_refusal(budgets_stream, FORBIDDEN_RETRY))
        .owns_stream(waiting_after_refusal(policies_stream, FORBIDDEN_RETRY))
        // A pod turning Ready (or not) opens the next stage at once (network::reconcile).
        .watches_stream(pod_wakes, network_of)
        // A deleted or changed key Secret or genesis ConfigMap wakes its network.
        .watches_stream(secret_metadata(client, ns), network_of)
        .watches(scoped::<ConfigMap>(client, ns), managed(), network_of)
        .reconcile_all_on(resync_ticks(ctx.resync))
        // A network's chain observer wakes it when its chain changed in a way a decision
        // rests on (controller::chain): at rest, nothing else does before the resync.
        .reconcile_on(chain_wakes)
        .with_config(controller_config(concurrency))
        .trigger_backoff(WatchBackoff::default())
        .shutdown_on_signal()
        .run(reconcile_network, network_error_policy, ctx)
        .for_each(|res| async move { log_failure("network", res) })
        .await;
    pruner.abort();
}

/// The operator's pods, passed on only when one appears, goes, or its Ready condition
/// flips: the network controller's stage gates wait on pod readiness, and nothing else
/// about a pod wakes a network. `pods` is the pod watch after its store took each
/// change, so a network woken reads the change from the store.
fn pod_readiness(
    pods: impl futures::Stream<Item = Result<Pod, watcher::Error>> + Send + 'static,
) -> impl futures::Stream<Item = Result<Pod, watcher::Error>> + Send + 'static {
    use kube::runtime::PredicateConfig;
    use kube::runtime::WatchStreamExt as _;
    let readiness = |pod: &Pod| -> Option<u64> {
        use std::hash::{Hash, Hasher};
        let ready = controller::pod_ready_condition(pod).map(|c| c.status == "True");
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (pod.uid(), ready, pod.metadata.deletion_timestamp.is_some()).hash(&mut h);
        Some(h.finish())
    };
    pods.predicate_filter(readiness, PredicateConfig::default())
}

/// The operator's Secrets as metadata only (`PartialObjectMetadata`): a key Secret's
/// identity is in its annotations (controller::key_identity), so no watch ever carries
/// key material into the operator.
fn secret_metadata(
    client: &Client,
    ns: Option<&str>,
) -> impl futures::Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + 'static
{
    use kube::runtime::WatchStreamExt as _;
    // An Api of PartialObjectMeta makes metadata-only requests (kube 5).
    watcher(scoped::<PartialObjectMeta<Secret>>(client, ns), managed())
        .backoff(WatchBackoff::default())
        .touched_objects()
}

async fn node_controller(
    concurrency: u16,
    client: &Client,
    ns: Option<&str>,
    ctx: Arc<Context>,
    pods: kube::runtime::reflector::Store<Pod>,
    (nodes, node_events): (
        kube::runtime::reflector::Store<BesuNode>,
        impl futures::Stream<Item = Result<watcher::Event<BesuNode>, watcher::Error>> + Send + 'static,
    ),
) {
    use kube::runtime::WatchStreamExt as _;
    // The watches feed the caches a node reconcile reads its children from
    // (controller::NodeStores); claims and pods only fill their stores.
    let (sets, sets_stream) =
        stored_trimmed::<StatefulSet>(client, ns, managed(), controller::trim_statefulset);
    let (services, services_stream) =
        stored_trimmed::<Service>(client, ns, managed(), controller::trim_service);
    let (config_maps, config_maps_stream) =
        stored_trimmed::<ConfigMap>(client, ns, managed(), controller::trim_config_map);
    let (claims, claims_stream) =
        stored_trimmed::<PersistentVolumeClaim>(client, ns, managed(), controller::trim_claim);
    let (secrets, secrets_stream) = stored::<PartialObjectMeta<Secret>>(client, ns, managed());
    ctx.node_stores.add(
        ns,
        controller::NodeStores {
            sets,
            services,
            config_maps,
            claims,
            pods,
            secrets,
        },
    );
    Controller::for_stream(node_events.applied_objects(), nodes)
        .owns_stream(sets_stream)
        .owns_stream(services_stream)
        .owns_stream(config_maps_stream)
        .owns(scoped::<Deployment>(client, ns), managed())
        .watches_stream(secrets_stream, node_of)
        .watches_stream(claims_stream, |_| None::<ObjectRef<BesuNode>>)
        .with_config(controller_config(concurrency))
        .reconcile_all_on(resync_ticks(ctx.resync))
        .trigger_backoff(WatchBackoff::default())
        .shutdown_on_signal()
        .run(reconcile_node, node_error_policy, ctx)
        .for_each(|res| async move { log_failure("node", res) })
        .await;
}

/// The watch of EthereumNode children: those labelled
/// [`controller::ethereum::CHILD_SELECTOR`], each kind feeding a store ([`stored`]).
fn ethereum_children() -> watcher::Config {
    watcher::Config::default().labels(controller::ethereum::CHILD_SELECTOR)
}

/// A namespaced kind a watch can feed into a store.
trait Cached:
    kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Cached for K where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// A watch of one kind with `config` feeding a store (without managed fields, which no
/// reconcile reads): (the store, the stream the controller polls).
fn stored<K>(
    client: &Client,
    ns: Option<&str>,
    config: watcher::Config,
) -> (
    kube::runtime::reflector::Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Cached,
{
    stored_trimmed(client, ns, config, |_| {})
}

/// [`stored`], each object also trimmed by `trim` before the store keeps it.
fn stored_trimmed<K>(
    client: &Client,
    ns: Option<&str>,
    config: watcher::Config,
    trim: fn(&mut K),
) -> (
    kube::runtime::reflector::Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Cached,
{
    use kube::runtime::WatchStreamExt as _;
    let (store, events) = reflected(client, ns, config, trim);
    (store, events.touched_objects())
}

/// The events of a watch of one kind with `config`, each object trimmed before the store
/// returned keeps it: its managed fields (no reconcile reads them, and they are most of
/// a small object's size) and whatever `trim` drops.
fn reflected<K>(
    client: &Client,
    ns: Option<&str>,
    config: watcher::Config,
    trim: fn(&mut K),
) -> (
    kube::runtime::reflector::Store<K>,
    impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
)
where
    K: Cached,
{
    use kube::runtime::WatchStreamExt as _;
    let (store, writer) = kube::runtime::reflector::store();
    let events = watcher(scoped::<K>(client, ns), config)
        .backoff(WatchBackoff::default())
        .modify(move |obj: &mut K| {
            obj.meta_mut().managed_fields = None;
            trim(obj);
        })
        .reflect(writer);
    (store, events)
}

/// Events a [`fan_out`] consumer may lag behind the other before it holds it back.
const FAN_OUT_BUFFER: usize = 64;

/// The events of one watch for two consumers (a `Controller` takes its input streams by
/// value, and kube's shared streams pass on no deletion): a task drives `events` and
/// hands every event to both streams returned, in order. A watch error is logged here
/// (the watch retries by its backoff). The task ends at the first event after a consumer
/// is gone (controllers stop only when the process exits).
fn fan_out<K>(
    kind: &'static str,
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
) -> [impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static; 2]
where
    K: Clone + Send + Sync + 'static,
{
    use futures::SinkExt as _;
    let (mut first, first_rx) = futures::channel::mpsc::channel(FAN_OUT_BUFFER);
    let (mut second, second_rx) = futures::channel::mpsc::channel(FAN_OUT_BUFFER);
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    if first.send(Ok(event.clone())).await.is_err()
                        || second.send(Ok(event)).await.is_err()
                    {
                        return;
                    }
                }
                Err(e) => warn!(error = %e, "watch of {kind} failed; retrying"),
            }
        }
    });
    [first_rx, second_rx]
}

async fn ethereum_controller(
    concurrency: u16,
    client: &Client,
    ns: Option<&str>,
    ctx: Arc<Context>,
) {
    let (sets, sets_stream) = stored::<StatefulSet>(client, ns, ethereum_children());
    let (services, services_stream) = stored::<Service>(client, ns, ethereum_children());
    let (ingresses, ingresses_stream) = stored::<Ingress>(client, ns, ethereum_children());
    let (pods, pods_stream) =
        stored_trimmed::<Pod>(client, ns, ethereum_children(), controller::trim_pod);
    let (secrets, secrets_stream) =
        stored::<PartialObjectMeta<Secret>>(client, ns, ethereum_children());
    let caches = controller::ethereum::Caches {
        sets,
        services,
        ingresses,
        pods,
        secrets,
    };
    use kube::runtime::WatchStreamExt as _;
    let ectx = controller::ethereum::EthContext::new(ctx.clone(), caches);
    let (store, events) = reflected::<EthereumNode>(client, ns, watcher::Config::default(), |_| {});
    Controller::for_stream(events.applied_objects(), store)
        .owns_stream(sets_stream)
        .owns_stream(services_stream)
        .owns_stream(ingresses_stream)
        // A pod appearing, going or changing (Ready, restarted) updates the node's status.
        .watches_stream(pods_stream, ethereum_node_of)
        .owns_stream(secrets_stream)
        .with_config(controller_config(concurrency))
        .reconcile_all_on(resync_ticks(ctx.resync))
        .trigger_backoff(WatchBackoff::default())
        .shutdown_on_signal()
        .run(reconcile_ethereum, ethereum_error_policy, ectx)
        .for_each(|res| async move { log_failure("ethereum", res) })
        .await;
}

fn ethereum_node_of<K: ResourceExt>(obj: K) -> Option<ObjectRef<EthereumNode>> {
    let node = obj.labels().get(LABEL_ETHEREUM_NODE)?;
    Some(ObjectRef::new(node).within(&obj.namespace()?))
}

async fn reconcile_ethereum(
    node: Arc<EthereumNode>,
    ectx: Arc<controller::ethereum::EthContext>,
) -> Result<kube::runtime::controller::Action, controller::Error> {
    let ctx = ectx.ctx.clone();
    let run = controller::ethereum::reconcile(node.clone(), ectx.clone());
    guarded("ethereum", node.as_ref(), &ctx, run, |reason, message| {
        let (node, ctx) = (node.clone(), ctx.clone());
        async move { controller::ethereum::report_blocked(&node, &ctx, reason, &message).await }
    })
    .await
}

fn ethereum_error_policy(
    node: Arc<EthereumNode>,
    error: &controller::Error,
    ectx: Arc<controller::ethereum::EthContext>,
) -> kube::runtime::controller::Action {
    ectx.ctx
        .metrics
        .ethereum_reconcile_failed(&node.namespace().unwrap_or_default(), &node.name_any());
    error_policy(object_key("ethereum", node.as_ref()), error, &ectx.ctx)
}

/// How long [`install_crds`] waits for the API server to serve the CRDs.
pub const CRD_ESTABLISHED_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Applies every CRD of the operator (server-side apply, field manager `besu-operator`)
/// and waits until each is Established.
pub async fn install_crds(client: &Client) -> Result<(), RunError> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::runtime::wait::{await_condition, conditions};
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in besu_operator_api::crds() {
        let name = crd.name_any();
        api.patch(
            &name,
            &kube::api::PatchParams::apply(crate::render::FIELD_MANAGER).force(),
            &kube::api::Patch::Apply(&crd),
        )
        .await
        .map_err(RunError::CrdInstall)?;
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(CRD_ESTABLISHED_DEADLINE, established).await {
            Ok(Ok(_)) => info!(crd = %name, "CRD applied and Established"),
            Ok(Err(e)) => return Err(RunError::CrdNotEstablished(name, e.to_string())),
            Err(_) => {
                return Err(RunError::CrdNotEstablished(
                    name,
                    format!("not Established within {CRD_ESTABLISHED_DEADLINE:?}"),
                ));
            }
        }
    }
    Ok(())
}

/// Logs a failed reconcile. A request for an object not (yet) in the controller's store
/// is no failure: a key Secret created just before its BesuNode wakes the node
/// controller for a node it has not seen yet, and the node's own event follows.
fn log_failure<T, E: std::fmt::Display, Q: std::fmt::Display>(
    kind: &str,
    res: Result<T, kube::runtime::controller::Error<E, Q>>,
) {
    match res {
        Ok(_) => {}
        Err(kube::runtime::controller::Error::ObjectNotFound(object)) => {
            tracing::debug!(%object, "{kind} reconcile skipped: not in the store (yet)");
        }
        Err(e) => warn!(error = %e, "{kind} reconcile failed"),
    }
}

async fn reconcile_network(
    network: Arc<BesuNetwork>,
    ctx: Arc<Context>,
) -> Result<kube::runtime::controller::Action, controller::Error> {
    let run = controller::network::reconcile(network.clone(), ctx.clone());
    guarded("network", network.as_ref(), &ctx, run, |reason, message| {
        let (network, ctx) = (network.clone(), ctx.clone());
        async move { controller::network::report_blocked(&network, &ctx, reason, &message).await }
    })
    .await
}

async fn reconcile_node(
    node: Arc<BesuNode>,
    ctx: Arc<Context>,
) -> Result<kube::runtime::controller::Action, controller::Error> {
    let run = controller::node::reconcile(node.clone(), ctx.clone());
    guarded("node", node.as_ref(), &ctx, run, |reason, message| {
        let (node, ctx) = (node.clone(), ctx.clone());
        async move { controller::node::report_blocked(&node, &ctx, reason, &message).await }
    })
    .await
}

/// One reconcile of `obj` (a `kind`) under [`RECONCILE_DEADLINE`], recorded in the metrics;
/// a pass forgets the object's failures, and a failure only a person can fix is reported
/// in the object's status by `report`.
async fn guarded<K, P>(
    kind: &'static str,
    obj: &K,
    ctx: &Context,
    run: impl std::future::Future<Output = Result<kube::runtime::controller::Action, controller::Error>>,
    report: impl FnOnce(&'static str, String) -> P,
) -> Result<kube::runtime::controller::Action, controller::Error>
where
    K: ResourceExt,
    P: std::future::Future<Output = Result<(), controller::Error>>,
{
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(RECONCILE_DEADLINE, run)
        .await
        .unwrap_or(Err(controller::Error::Deadline(RECONCILE_DEADLINE)));
    let error = result.as_ref().err().map(controller::Error::metric_label);
    ctx.metrics
        .reconciled(kind, started.elapsed().as_secs_f64(), error);
    let key = object_key(kind, obj);
    tracing::debug!(
        target: "besu_operator::reconcile",
        object = %key,
        ms = started.elapsed().as_millis() as u64,
        ok = result.is_ok(),
        "reconcile done"
    );
    match result {
        Ok(action) => {
            ctx.succeeded(&key);
            Ok(action)
        }
        Err(e) => {
            if let controller::Remedy::UserChange { reason, message } = e.remedy()
                && let Err(failed) = report(reason, message).await
            {
                warn!(object = %key, error = %failed, "could not report a blocked object in its status");
            }
            Err(e)
        }
    }
}

/// `kind/namespace/name`, the key of an object's failure count.
fn object_key<K: ResourceExt>(kind: &str, obj: &K) -> String {
    format!(
        "{kind}/{}/{}",
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

fn network_of<K: ResourceExt>(obj: K) -> Option<ObjectRef<BesuNetwork>> {
    let network = obj.labels().get(LABEL_NETWORK)?;
    Some(ObjectRef::new(network).within(&obj.namespace()?))
}

fn node_of<K: ResourceExt>(obj: K) -> Option<ObjectRef<BesuNode>> {
    let node = obj.labels().get(LABEL_NODE)?;
    Some(ObjectRef::new(node).within(&obj.namespace()?))
}

fn network_error_policy(
    network: Arc<BesuNetwork>,
    error: &controller::Error,
    ctx: Arc<Context>,
) -> kube::runtime::controller::Action {
    error_policy(object_key("network", network.as_ref()), error, &ctx)
}

fn node_error_policy(
    node: Arc<BesuNode>,
    error: &controller::Error,
    ctx: Arc<Context>,
) -> kube::runtime::controller::Action {
    error_policy(object_key("node", node.as_ref()), error, &ctx)
}

/// A failed reconcile is retried after a per-object exponential backoff (1 s doubling for
/// transient errors, 30 s doubling for those a person must fix, jittered, at most 5 min);
/// a watch event for the object (an edit of its spec, a child changed) still reconciles
/// it at once.
fn error_policy(
    key: String,
    error: &controller::Error,
    ctx: &Context,
) -> kube::runtime::controller::Action {
    let remedy = error.remedy();
    let delay = ctx.failed(&key, &remedy);
    warn!(
        object = %key,
        error = %error,
        label = error.metric_label(),
        needs_user = matches!(remedy, controller::Remedy::UserChange { .. }),
        retry_in_ms = delay.as_millis() as u64,
        "reconcile failed"
    );
    kube::runtime::controller::Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a refusal slows a watch down to minutes; an outage or a server error keeps
    /// the quick retry that rides out an API server restart.
    #[test]
    fn only_a_403_counts_as_forbidden() {
        let api = |code: u16| {
            kube::Error::Api(Box::new(
                kube::core::Status::failure("x", "y").with_code(code),
            ))
        };
        assert!(is_forbidden(&watcher::Error::InitialListFailed(api(403))));
        assert!(is_forbidden(&watcher::Error::WatchStartFailed(api(403))));
        assert!(is_forbidden(&watcher::Error::WatchFailed(api(403))));
        assert!(is_forbidden(&watcher::Error::WatchError(Box::new(
            kube::core::Status::failure("x", "Forbidden").with_code(403)
        ))));
        for code in [401, 404, 410, 429, 500, 503] {
            assert!(
                !is_forbidden(&watcher::Error::InitialListFailed(api(code))),
                "{code}"
            );
        }
        assert!(!is_forbidden(&watcher::Error::NoResourceVersion));
    }

    /// The triggers follow kube-runtime's own wording of its reasons (its `Display`), so
    /// a kube release that rewords one fails here rather than miscounting.
    #[test]
    fn every_kube_reconcile_reason_maps_to_its_trigger() {
        use kube::runtime::controller::ReconcileReason;
        let related = ReconcileReason::RelatedObjectUpdated {
            obj_ref: Box::new(
                ObjectRef::new_with("p", kube::api::ApiResource::erase::<Pod>(&())).within("ns"),
            ),
        };
        for (reason, trigger, timer) in [
            (ReconcileReason::ObjectUpdated, Trigger::Object, false),
            (related, Trigger::Related, false),
            (
                ReconcileReason::ReconcilerRequestedRetry,
                Trigger::Requeue,
                true,
            ),
            (ReconcileReason::BulkReconcile, Trigger::Resync, true),
            (
                ReconcileReason::ErrorPolicyRequestedRetry,
                Trigger::ErrorRetry,
                true,
            ),
            (ReconcileReason::Unknown, Trigger::Other, false),
        ] {
            let text = reason.to_string();
            assert_eq!(Trigger::from_reason(&text), trigger, "{text}");
            assert_eq!(trigger.is_timer(), timer, "{text}");
        }
    }
    use kube::runtime::utils::Backoff;
    use std::time::Duration;

    #[test]
    fn watch_retries_grow_to_the_cap_and_start_over_on_success() {
        let mut b = WatchBackoff::default();
        let first: Vec<Duration> = (0..8).map(|_| b.next().unwrap()).collect();
        // 250, 500, 1000, 2000, 4000, 4000, ... each less up to a fifth.
        let nominal = [250u64, 500, 1000, 2000, 4000, 4000, 4000, 4000];
        for (d, n) in first.iter().zip(nominal) {
            let n = Duration::from_millis(n);
            assert!(*d <= n && *d >= n.mul_f64(0.8), "{d:?} for nominal {n:?}");
        }
        b.reset();
        assert!(b.next().unwrap() <= WATCH_RETRY_MIN);
    }
}
