//! The node runtime: watches Besu pods and runs a simulated Besu "process" for each
//! Running one, serving its JSON-RPC, health and metrics ports on the pod's IP.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::IntoFuture;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::besu::{Consensus, NodeKey};
use crate::rpc::DEFAULT_APIS;
use crate::witness::PodObservation;
use crate::world::{NodeStart, RpcOutcome};
use crate::{Shared, now_ms};

/// Pods this runtime serves.
pub const BESU_SELECTOR: &str = "app.kubernetes.io/name=besu";

/// The operator's pod labels, as the simulator reads them (an interface, written out here:
/// the simulator shares no code with the operator).
pub const LABEL_NETWORK: &str = "besu.nodeops.dev/network";
pub const LABEL_NODE: &str = "besu.nodeops.dev/node";
pub const LABEL_NODE_TYPE: &str = "besu.nodeops.dev/node-type";
/// Set by the StatefulSet controller on each pod: the revision it was created from.
pub const LABEL_REVISION: &str = "controller-revision-hash";

/// How long a JSON-RPC request to a node with a `timeout` fault is held before its
/// connection is dropped without an answer.
pub const RPC_FAULT_HOLD: Duration = Duration::from_secs(30);

/// The failure-injection rule: a pod whose Besu container image contains this string
/// never starts Besu. The simulator serves nothing for it, and the kwok stage
/// `besu-local-pod-never-ready` (hack/cluster/kwok-stages.yaml) keeps it Running but
/// not Ready, as a kubelet whose readiness and startup probes keep failing would.
pub const NEVER_READY_MARKER: &str = "never-ready";

/// What the simulator needs from a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodFacts {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub network: Option<String>,
    pub node: Option<String>,
    pub node_type: Option<String>,
    pub revision: Option<String>,
    pub phase: Option<String>,
    pub ip: Option<IpAddr>,
    pub ready: bool,
    pub deleting: bool,
    pub image: String,
    pub rpc_port: u16,
    pub metrics_port: u16,
    pub p2p_port: u16,
    /// Genesis ConfigMap and its key (volume `genesis`).
    pub genesis: Option<(String, String)>,
    /// Key Secret and its key (volume `key`).
    pub key: Option<(String, String)>,
    /// Node ConfigMap with `config.toml` (volume `config`).
    pub config: Option<String>,
    pub args: Vec<String>,
}

impl PodFacts {
    pub fn from_pod(pod: &Pod) -> Option<PodFacts> {
        let spec = pod.spec.as_ref()?;
        let container = spec
            .containers
            .iter()
            .find(|c| c.name == "besu")
            .or_else(|| spec.containers.first())?;
        let port = |name: &str, default: u16| {
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .unwrap_or(default)
        };
        let volume = |name: &str| spec.volumes.iter().flatten().find(|v| v.name == name);
        let genesis = volume("genesis")
            .and_then(|v| v.config_map.as_ref())
            .map(|cm| {
                let key = cm
                    .items
                    .iter()
                    .flatten()
                    .next()
                    .map(|i| i.key.clone())
                    .unwrap_or_else(|| "genesis.json".into());
                (cm.name.clone(), key)
            });
        let key = volume("key").and_then(|v| v.secret.as_ref()).and_then(|s| {
            let item = s
                .items
                .iter()
                .flatten()
                .next()
                .map(|i| i.key.clone())
                .unwrap_or_else(|| "key".into());
            s.secret_name.clone().map(|n| (n, item))
        });
        let config = volume("config")
            .and_then(|v| v.config_map.as_ref())
            .map(|cm| cm.name.clone());
        let status = pod.status.as_ref();
        let labels = pod.labels();
        Some(PodFacts {
            uid: pod.uid()?,
            namespace: pod.namespace()?,
            name: pod.name_any(),
            network: labels.get(LABEL_NETWORK).cloned(),
            node: labels.get(LABEL_NODE).cloned(),
            node_type: labels.get(LABEL_NODE_TYPE).cloned(),
            revision: labels.get(LABEL_REVISION).cloned(),
            phase: status.and_then(|s| s.phase.clone()),
            ip: status
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse().ok()),
            ready: status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
            deleting: pod.metadata.deletion_timestamp.is_some(),
            image: container.image.clone().unwrap_or_default(),
            rpc_port: port("rpc-http", 8545),
            metrics_port: port("metrics", 9545),
            p2p_port: port("p2p-tcp", 30303),
            genesis,
            key,
            config,
            args: container.args.clone().unwrap_or_default(),
        })
    }

    /// What the witness record needs of this pod.
    pub fn observation(&self) -> PodObservation {
        PodObservation {
            uid: self.uid.clone(),
            namespace: self.namespace.clone(),
            pod: self.name.clone(),
            network: self.network.clone(),
            node: self.node.clone(),
            node_type: self.node_type.clone(),
            running: self.phase.as_deref() == Some("Running"),
            deleting: self.deleting,
            ready: self.ready,
        }
    }

    /// The image is marked to never start ([`NEVER_READY_MARKER`]).
    pub fn never_starts(&self) -> bool {
        self.image.contains(NEVER_READY_MARKER)
    }

    /// Besu runs in this pod: Running, with a loopback pod IP, not being deleted, and
    /// its image not marked never-ready. (Only loopback IPs are ever bound.)
    pub fn runs(&self) -> bool {
        self.phase.as_deref() == Some("Running")
            && self.ip.is_some_and(|ip| ip.is_loopback())
            && !self.deleting
            && !self.never_starts()
    }
}

fn parse_api_list(s: &str) -> BTreeSet<String> {
    s.trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|a| a.trim().trim_matches('"').trim().to_ascii_uppercase())
        .filter(|a| !a.is_empty())
        .collect()
}

/// `rpc-http-api` as Besu resolves it: a command-line `--rpc-http-api` wins over
/// `config.toml`; without either, Besu's default ETH,NET,WEB3 (plus the voting group
/// for a validator pod, as the operator always enables it).
pub fn rpc_apis(
    config_toml: Option<&str>,
    args: &[String],
    node_type: Option<&str>,
    consensus: Consensus,
) -> BTreeSet<String> {
    if let Some(v) = args
        .iter()
        .rev()
        .find_map(|a| a.strip_prefix("--rpc-http-api="))
    {
        return parse_api_list(v);
    }
    if let Some(line) = config_toml.and_then(|t| {
        t.lines().find(|l| {
            l.split_once('=')
                .is_some_and(|(k, _)| k.trim() == "rpc-http-api")
        })
    }) {
        return parse_api_list(line.split_once('=').map(|(_, v)| v).unwrap_or(""));
    }
    let mut apis: BTreeSet<String> = DEFAULT_APIS.iter().map(|s| s.to_string()).collect();
    if node_type == Some("validator") {
        apis.insert(
            match consensus {
                Consensus::Qbft => "QBFT",
                Consensus::Ibft2 => "IBFT",
            }
            .to_string(),
        );
    }
    apis
}

/// Reads what Besu reads at start: the genesis file, the key file and the config.
async fn load(client: &Client, facts: &PodFacts) -> anyhow::Result<NodeStart> {
    let ip = facts.ip.context("no pod IP")?;
    let (genesis_cm, genesis_key) = facts
        .genesis
        .clone()
        .context("the pod has no `genesis` ConfigMap volume")?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &facts.namespace);
    let cm = cms
        .get(&genesis_cm)
        .await
        .with_context(|| format!("genesis ConfigMap {genesis_cm}"))?;
    let genesis_json = cm
        .data
        .as_ref()
        .and_then(|d| d.get(&genesis_key))
        .cloned()
        .ok_or_else(|| anyhow!("genesis ConfigMap {genesis_cm} has no key {genesis_key}"))?;
    let params = crate::genesis::chain_params(&genesis_json)
        .with_context(|| format!("genesis ConfigMap {genesis_cm}"))?;
    // One chain per network; a standalone node joins the network whose genesis
    // ConfigMap it mounts (its network label), else a chain named after the ConfigMap.
    let chain_name = facts
        .network
        .clone()
        .or_else(|| cm.labels().get(LABEL_NETWORK).cloned())
        .unwrap_or_else(|| genesis_cm.clone());
    let key = match &facts.key {
        None => None,
        Some((secret, item)) => {
            let secrets: Api<Secret> = Api::namespaced(client.clone(), &facts.namespace);
            let s = secrets
                .get(secret)
                .await
                .with_context(|| format!("key Secret {secret}"))?;
            let bytes = s
                .data
                .as_ref()
                .and_then(|d| d.get(item))
                .ok_or_else(|| anyhow!("key Secret {secret} has no key {item}"))?;
            // Never echo the content: only the parse error kind.
            let key = NodeKey::parse_key_file(&String::from_utf8_lossy(&bytes.0))
                .map_err(|e| anyhow!("key Secret {secret}: {e}"))?;
            Some(key)
        }
    };
    let config_toml = match &facts.config {
        None => None,
        Some(name) => cms
            .get_opt(name)
            .await
            .with_context(|| format!("node ConfigMap {name}"))?
            .and_then(|cm| cm.data.and_then(|mut d| d.remove("config.toml"))),
    };
    Ok(NodeStart {
        uid: facts.uid.clone(),
        namespace: facts.namespace.clone(),
        pod: facts.name.clone(),
        node: facts.node.clone(),
        node_type: facts.node_type.clone(),
        image: facts.image.clone(),
        revision: facts.revision.clone(),
        ip,
        rpc_port: facts.rpc_port,
        metrics_port: facts.metrics_port,
        p2p_port: facts.p2p_port,
        key,
        apis: rpc_apis(
            config_toml.as_deref(),
            &facts.args,
            facts.node_type.as_deref(),
            params.consensus,
        ),
        chain_name,
        genesis_json,
    })
}

/// Binds `addr`, retrying while the address is busy (a previous pod's server may
/// still be closing). Only loopback addresses are bound.
async fn bind(addr: SocketAddr, cancel: &CancellationToken) -> Option<TcpListener> {
    if !addr.ip().is_loopback() {
        warn!(%addr, "refusing to bind a non-loopback address");
        return None;
    }
    let mut warned = false;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Some(l),
            Err(e) => {
                if !warned {
                    warn!(%addr, error = %e, "cannot bind yet; retrying");
                    warned = true;
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return None,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

#[derive(Clone)]
struct NodeState {
    shared: Arc<Shared>,
    uid: Arc<str>,
}

fn gone() -> Response {
    // The process is going away: as close to "connection refused" as HTTP allows.
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONNECTION, "close")],
        "",
    )
        .into_response()
}

/// Holds a request for `hold`, then answers with a body that fails at once: hyper then
/// closes the connection before anything of the response is written, so the client gets
/// no answer at all (as from a hung node).
pub async fn hang(hold: Duration) -> Response {
    tokio::time::sleep(hold).await;
    let failing = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("rpc-fault timeout: dropped"))
    });
    axum::body::Body::from_stream(failing).into_response()
}

async fn rpc_handler(State(s): State<NodeState>, body: Bytes) -> Response {
    let out = s.shared.world().rpc(&s.uid, &body, now_ms());
    match out {
        RpcOutcome::NoNode => gone(),
        RpcOutcome::Hang => hang(RPC_FAULT_HOLD).await,
        RpcOutcome::Reply(None) => StatusCode::OK.into_response(),
        RpcOutcome::Reply(Some(v)) => {
            ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
        }
    }
}

fn health(ok: bool) -> Response {
    let (code, text) = if ok {
        (StatusCode::OK, "UP")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "DOWN")
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "status": text }).to_string(),
    )
        .into_response()
}

/// `LivenessCheck`: always UP while the RPC server runs.
async fn liveness(State(s): State<NodeState>) -> Response {
    if s.shared.world().nodes.contains_key(&*s.uid) {
        health(true)
    } else {
        gone()
    }
}

/// `ReadinessCheck` (see [`crate::node::readiness`]).
async fn readiness_handler(
    State(s): State<NodeState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let r = s.shared.world().readiness(
        &s.uid,
        now_ms(),
        q.get("minPeers").map(String::as_str),
        q.get("maxBlocksBehind").map(String::as_str),
    );
    match r {
        None => gone(),
        Some(ok) => health(ok),
    }
}

async fn metrics_handler(State(s): State<NodeState>) -> Response {
    let chain = s.shared.world().metrics(&s.uid, now_ms());
    match chain {
        None => gone(),
        Some(mut text) => {
            if let Some(p) = process_figures().await {
                text.push_str(&crate::node::process_text(&p));
            }
            (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                text,
            )
                .into_response()
        }
    }
}

/// This process's CPU time and resident memory (see [`crate::node::ProcessFigures`]).
async fn process_figures() -> Option<crate::node::ProcessFigures> {
    let stat = tokio::fs::read_to_string("/proc/self/stat").await.ok()?;
    let status = tokio::fs::read_to_string("/proc/self/status").await.ok()?;
    crate::node::process_figures(&stat, &status)
}

/// One simulated Besu process, from start to stop.
async fn run_process(
    shared: Arc<Shared>,
    client: Client,
    facts: PodFacts,
    cancel: CancellationToken,
) {
    let pod = format!("{}/{}", facts.namespace, facts.name);
    let mut warned = false;
    let start = loop {
        let r = tokio::select! {
            _ = cancel.cancelled() => return,
            r = load(&client, &facts) => r,
        };
        match r {
            Ok(s) => break s,
            Err(e) => {
                if !warned {
                    warn!(%pod, error = format!("{e:#}"), "cannot start Besu yet; retrying every 2 s");
                    warned = true;
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    };
    let ip = start.ip;
    let Some(rpc) = bind(SocketAddr::new(ip, start.rpc_port), &cancel).await else {
        return;
    };
    let Some(metrics) = bind(SocketAddr::new(ip, start.metrics_port), &cancel).await else {
        return;
    };
    let uid: Arc<str> = Arc::from(facts.uid.as_str());
    if let Err(e) = shared.world().start_node(start, now_ms()) {
        warn!(%pod, error = format!("{e:#}"), "cannot start Besu");
        return;
    }
    let state = NodeState {
        shared: shared.clone(),
        uid: uid.clone(),
    };
    let rpc_app = Router::new()
        .route("/", post(rpc_handler))
        .route("/liveness", get(liveness))
        .route("/readiness", get(readiness_handler))
        .with_state(state.clone());
    let metrics_app = Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(state);
    let c1 = cancel.clone();
    let c2 = cancel.clone();
    let servers = futures::future::join(
        axum::serve(rpc, rpc_app)
            .with_graceful_shutdown(async move { c1.cancelled().await })
            .into_future(),
        axum::serve(metrics, metrics_app)
            .with_graceful_shutdown(async move { c2.cancelled().await })
            .into_future(),
    );
    tokio::pin!(servers);
    tokio::select! {
        _ = cancel.cancelled() => {}
        (a, b) = &mut servers => {
            warn!(%pod, rpc = ?a.err(), metrics = ?b.err(), "servers ended unexpectedly");
        }
    }
    shared.world().stop_node(&uid, now_ms());
    // Let open connections finish, but not forever.
    let _ = tokio::time::timeout(Duration::from_secs(5), servers).await;
}

/// Watches Besu pods in all namespaces and starts or stops their processes.
pub async fn run(shared: Arc<Shared>, client: Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    let stream =
        watcher::watcher(pods, watcher::Config::default().labels(BESU_SELECTOR)).default_backoff();
    futures::pin_mut!(stream);
    let mut procs: HashMap<String, CancellationToken> = HashMap::new();
    let mut never: HashSet<String> = HashSet::new();
    let mut listed: Option<HashSet<String>> = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => listed = Some(HashSet::new()),
            Ok(Event::InitApply(pod)) | Ok(Event::Apply(pod)) => {
                let Some(facts) = PodFacts::from_pod(&pod) else {
                    continue;
                };
                if let Some(l) = listed.as_mut() {
                    l.insert(facts.uid.clone());
                }
                shared.world().observe_pod(&facts.observation(), now_ms());
                let running = procs.contains_key(&facts.uid);
                if facts.runs() && !running {
                    let cancel = CancellationToken::new();
                    procs.insert(facts.uid.clone(), cancel.clone());
                    tokio::spawn(run_process(shared.clone(), client.clone(), facts, cancel));
                } else if !facts.runs() && running {
                    if let Some(c) = procs.remove(&facts.uid) {
                        c.cancel();
                    }
                } else if facts.never_starts()
                    && facts.phase.as_deref() == Some("Running")
                    && never.insert(facts.uid.clone())
                {
                    info!(pod = %format!("{}/{}", facts.namespace, facts.name), image = %facts.image,
                        "not starting Besu: image marked {NEVER_READY_MARKER:?}");
                }
            }
            Ok(Event::Delete(pod)) => {
                if let Some(uid) = pod.uid() {
                    if let Some(c) = procs.remove(&uid) {
                        c.cancel();
                    }
                    never.remove(&uid);
                    let namespace = pod.namespace().unwrap_or_default();
                    shared
                        .world()
                        .pod_deleted(&namespace, &pod.name_any(), &uid, now_ms());
                }
            }
            Ok(Event::InitDone) => {
                if let Some(seen) = listed.take() {
                    shared.world().pods_relisted(&seen, now_ms());
                    procs.retain(|uid, c| {
                        let keep = seen.contains(uid);
                        if !keep {
                            c.cancel();
                        }
                        keep
                    });
                }
            }
            Err(e) => warn!(error = %e, "pod watch error"),
        }
    }
}

/// Fails unless `s` names a loopback socket address.
pub fn loopback_addr(s: &str) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = s
        .parse()
        .with_context(|| format!("not a socket address: {s}"))?;
    if !addr.ip().is_loopback() {
        bail!("{addr} is not a loopback address");
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: &str) -> Pod {
        serde_json::from_str(json).unwrap()
    }

    const POD: &str = r#"{
      "metadata": {"name": "qbft-validator-0-0", "namespace": "ns", "uid": "u1",
        "labels": {"app.kubernetes.io/name": "besu", "besu.nodeops.dev/network": "qbft",
                   "besu.nodeops.dev/node": "qbft-validator-0", "besu.nodeops.dev/node-type": "validator"}},
      "spec": {"containers": [{"name": "besu", "image": "hyperledger/besu:26.3.0",
          "args": ["--config-file=/etc/besu/config/config.toml"],
          "ports": [{"name": "p2p-tcp", "containerPort": 30303}, {"name": "rpc-http", "containerPort": 8546},
                    {"name": "metrics", "containerPort": 9546}]}],
        "volumes": [
          {"name": "genesis", "configMap": {"name": "qbft-genesis", "items": [{"key": "genesis.json", "path": "genesis.json"}]}},
          {"name": "config", "configMap": {"name": "qbft-validator-0-config"}},
          {"name": "key", "secret": {"secretName": "qbft-validator-0-key", "items": [{"key": "key", "path": "key"}]}}]},
      "status": {"phase": "Running", "podIP": "127.64.1.5",
        "conditions": [{"type": "Ready", "status": "True"}]}
    }"#;

    #[test]
    fn reads_the_rendered_pod() {
        let f = PodFacts::from_pod(&pod(POD)).unwrap();
        assert_eq!(f.network.as_deref(), Some("qbft"));
        assert_eq!(f.node_type.as_deref(), Some("validator"));
        assert_eq!(
            (f.rpc_port, f.metrics_port, f.p2p_port),
            (8546, 9546, 30303)
        );
        assert_eq!(
            f.genesis,
            Some(("qbft-genesis".into(), "genesis.json".into()))
        );
        assert_eq!(f.key, Some(("qbft-validator-0-key".into(), "key".into())));
        assert_eq!(f.config.as_deref(), Some("qbft-validator-0-config"));
        assert!(f.ready && f.runs());
    }

    /// The never-ready rule, and what does not run.
    #[test]
    fn what_runs() {
        let base = PodFacts::from_pod(&pod(POD)).unwrap();
        let never = PodFacts {
            image: "hyperledger/besu:26.4.0-never-ready".into(),
            ..base.clone()
        };
        assert!(never.never_starts() && !never.runs());
        assert!(
            !PodFacts {
                deleting: true,
                ..base.clone()
            }
            .runs()
        );
        assert!(
            !PodFacts {
                phase: Some("Pending".into()),
                ..base.clone()
            }
            .runs()
        );
        assert!(
            !PodFacts {
                ip: Some("10.0.0.1".parse().unwrap()),
                ..base.clone()
            }
            .runs()
        );
        assert!(!PodFacts { ip: None, ..base }.runs());
    }

    #[test]
    fn api_groups_like_besu() {
        let toml =
            "genesis-file=\"/x\"\nrpc-http-api=[\"ETH\", \"NET\", \"WEB3\", \"ADMIN\", \"QBFT\"]\n";
        let apis = rpc_apis(Some(toml), &[], Some("member"), Consensus::Qbft);
        assert_eq!(apis.len(), 5);
        assert!(apis.contains("ADMIN") && apis.contains("QBFT"));
        // A command-line flag wins.
        let args = vec!["--rpc-http-api=eth,net".to_string()];
        assert_eq!(rpc_apis(Some(toml), &args, None, Consensus::Qbft).len(), 2);
        // Nothing: Besu's default, plus the voting API for a validator.
        let d = rpc_apis(None, &[], Some("validator"), Consensus::Ibft2);
        assert_eq!(
            d,
            ["ETH", "IBFT", "NET", "WEB3"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        );
    }

    #[test]
    fn only_loopback_admin_addresses() {
        assert!(loopback_addr("127.0.0.1:0").is_ok());
        assert!(loopback_addr("0.0.0.0:80").is_err());
    }
}

#[cfg(test)]
mod hang_tests {
    use super::*;

    /// A hung request ends with the connection closed and not a byte of a response.
    #[tokio::test]
    async fn hang_drops_the_connection_without_an_answer() {
        let app = Router::new().route("/", post(|| hang(Duration::ZERO)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let (code, body) = tokio::task::spawn_blocking(move || {
            crate::admin::tests::http(
                addr,
                "POST",
                "/",
                r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}"#,
            )
        })
        .await
        .unwrap();
        assert_eq!((code, body.as_str()), (0, ""));
    }
}
