//! Thin orchestration: observe → decide (pure, tested) → apply → write status.
//!
//! Two controllers run in one process: the network controller turns a `BesuNetwork` into
//! keys, genesis and `BesuNode`s; the node controller turns a `BesuNode` into its
//! StatefulSet and Services.

pub mod day2;
pub mod monitoring;
pub mod network;
pub mod node;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
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
}

impl Error {
    /// A stable, low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Render(_) => "render",
            Error::Genesis(_) => "genesis",
            Error::Serialize(_) => "serialize",
            Error::Monitoring(_) => "monitoring",
        }
    }
}

/// A network's chain as last read: when, what, and whether its head was advancing.
pub type CachedChain = (std::time::Instant, network::ChainView, Option<bool>);

/// State shared by every reconcile.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Publishes Events.
    pub recorder: Recorder,
    /// How often a settled object is reconciled again.
    pub resync: Duration,
    /// Talks to the nodes' JSON-RPC.
    pub rpc: crate::rpc::RpcClient,
    /// Per network (`namespace/name`): the last chain height seen and when it changed.
    pub chain_progress:
        std::sync::Mutex<std::collections::HashMap<String, (u64, std::time::Instant)>>,
    /// The operator's metrics (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// At a steady state, how often a network's chain is read over JSON-RPC (while a
    /// change is in progress it is read on every reconcile).
    pub chain_poll: Duration,
    /// Per network (`namespace/name`): the chain as last read, when, and whether its head
    /// was advancing then.
    pub chain_cache: std::sync::Mutex<std::collections::HashMap<String, CachedChain>>,
    /// `host:port` where a network's Prometheus scrapes the operator's `/metrics`.
    pub metrics_target: Option<String>,
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
        Arc::new(Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            resync,
            rpc: crate::rpc::RpcClient::default(),
            chain_progress: std::sync::Mutex::new(std::collections::HashMap::new()),
            metrics,
            chain_poll,
            chain_cache: std::sync::Mutex::new(std::collections::HashMap::new()),
            metrics_target,
        })
    }

    /// Records a network's chain height; returns how long ago the height last changed.
    pub fn height_changed_ago(&self, network: &str, height: u64) -> Duration {
        let now = std::time::Instant::now();
        let Ok(mut map) = self.chain_progress.lock() else {
            return Duration::ZERO;
        };
        let entry = map.entry(network.to_string()).or_insert((height, now));
        if entry.0 != height {
            *entry = (height, now);
        }
        now.duration_since(entry.1)
    }

    /// The chain as read less than `chain_poll` ago, with whether it was advancing.
    pub fn cached_chain(&self, network: &str) -> Option<(network::ChainView, Option<bool>)> {
        let map = self.chain_cache.lock().ok()?;
        let (at, view, advancing) = map.get(network)?;
        (at.elapsed() < self.chain_poll).then(|| (view.clone(), *advancing))
    }

    /// Remembers the chain as just read.
    pub fn store_chain(&self, network: &str, view: network::ChainView, advancing: Option<bool>) {
        if let Ok(mut map) = self.chain_cache.lock() {
            map.insert(
                network.to_string(),
                (std::time::Instant::now(), view, advancing),
            );
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
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            warn!(error = %e, reason, "cannot publish event");
        }
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
pub async fn apply_if_changed<K>(api: &Api<K>, mut desired: K) -> Result<bool, Error>
where
    K: Resource<Scope = NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let name = desired.name_any();
    let hash = applied_hash(&desired)?;
    if let Some(live) = api.get_opt(&name).await?
        && live.annotations().get(APPLIED_HASH_ANNOTATION) == Some(&hash)
    {
        return Ok(false);
    }
    desired
        .annotations_mut()
        .insert(APPLIED_HASH_ANNOTATION.to_string(), hash);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&desired),
    )
    .await?;
    Ok(true)
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

/// Backoff for failed reconciles: transient API errors retry soon, the rest later.
pub fn retry_after(error: &Error) -> Action {
    match error {
        Error::Kube(_) => Action::requeue(Duration::from_secs(5)),
        _ => Action::requeue(Duration::from_secs(30)),
    }
}
