//! Helpers for the tests that run on the local cluster's real node (hack/real-node.sh):
//! a kubelet with containerd, real containers, CoreDNS, kube-proxy. Pods land there only
//! when they ask: a test namespace is pointed at the real node with the PodNodeSelector
//! and PodTolerationRestriction annotations, so that manifests apply unmodified.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::support::{Check, not_yet, wait_until};

/// The real node's name, label and taint key (hack/real-node.sh).
pub const REAL_NODE: &str = "real-node-0";
pub const REAL_NODE_LABEL: &str = "nodeops.dev/real-node";

/// Whether the real-node tests should run. `BESU_REAL_NODE=0` (a kwok-only cluster, see
/// the README) skips them, saying so; otherwise the real node must be there: a cluster
/// without it fails the test instead of passing it silently.
pub async fn required(client: &Client) -> anyhow::Result<bool> {
    if std::env::var("BESU_REAL_NODE").as_deref() == Ok("0") {
        eprintln!("skipped: BESU_REAL_NODE=0 (kwok nodes only)");
        return Ok(false);
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let Some(node) = nodes.get_opt(REAL_NODE).await? else {
        bail!(
            "the cluster has no node {REAL_NODE}: start it with hack/local-cluster.sh up (real node on by default), or set BESU_REAL_NODE=0 to skip the real-node tests"
        );
    };
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    anyhow::ensure!(ready, "node {REAL_NODE} is not Ready");
    Ok(true)
}

/// Points every pod of `namespace` at the real node: a node selector and a toleration
/// added by admission (PodNodeSelector, PodTolerationRestriction) to every pod created
/// there, whatever created it.
pub async fn use_real_node(client: &Client, namespace: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let patch = json!({"metadata": {"annotations": {
        "scheduler.alpha.kubernetes.io/node-selector": format!("{REAL_NODE_LABEL}=true"),
        "scheduler.alpha.kubernetes.io/defaultTolerations":
            json!([{"key": REAL_NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}]).to_string(),
    }}});
    api.patch(namespace, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("annotate namespace {namespace} for the real node"))?;
    Ok(())
}

/// While `held`, pods created in `namespace` are given a node selector no node matches
/// (PodNodeSelector applies the namespace's at creation): they stay Pending, with no IP
/// and so no DNS record. Pods created before or after keep running or land on the real
/// node as usual.
pub async fn hold_new_pods(client: &Client, namespace: &str, held: bool) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let value = if held { "held-by-test" } else { "true" };
    let patch = json!({"metadata": {"annotations": {
        "scheduler.alpha.kubernetes.io/node-selector": format!("{REAL_NODE_LABEL}={value}"),
    }}});
    api.patch(namespace, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("node selector of namespace {namespace}"))?;
    Ok(())
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .no_proxy()
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// One JSON-RPC call to a stand-in at `ip:port` (a pod IP on the real node's bridge).
pub async fn rpc(ip: &str, port: u16, method: &str, params: Value) -> anyhow::Result<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let r: Value = http()
        .post(format!("http://{ip}:{port}/"))
        .json(&body)
        .send()
        .await
        .with_context(|| format!("{method} on {ip}:{port}"))?
        .json()
        .await?;
    if let Some(e) = r.get("error") {
        bail!("{method} on {ip}:{port}: {e}");
    }
    Ok(r.get("result").cloned().unwrap_or(Value::Null))
}

pub fn quantity(v: &Value) -> anyhow::Result<u64> {
    let s = v.as_str().context("not a quantity")?;
    Ok(u64::from_str_radix(s.trim_start_matches("0x"), 16)?)
}

/// What one node's stand-in reports.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub pod: String,
    pub ip: String,
    pub height: u64,
    pub peers: u64,
}

/// The RPC port of the pods (the operator's default).
pub const RPC_PORT: u16 = 8545;

/// Every Running pod of a network with its stand-in's height and peer count (pods that
/// do not answer are left out).
pub async fn views(
    client: &Client,
    ns: &str,
    network: &str,
) -> anyhow::Result<BTreeMap<String, NodeView>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut out = BTreeMap::new();
    let lp = ListParams::default().labels(&format!(
        "besu.nodeops.dev/network={network},app.kubernetes.io/name=besu"
    ));
    for pod in pods.list(&lp).await? {
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
            continue;
        };
        let (Ok(h), Ok(p)) = (
            rpc(&ip, RPC_PORT, "eth_blockNumber", json!([])).await,
            rpc(&ip, RPC_PORT, "net_peerCount", json!([])).await,
        ) else {
            continue;
        };
        out.insert(
            pod.name_any(),
            NodeView {
                pod: pod.name_any(),
                ip,
                height: quantity(&h)?,
                peers: quantity(&p)?,
            },
        );
    }
    Ok(out)
}

/// Waits until the highest height among the network's stand-ins grows by `blocks` from
/// its value now; returns the new head.
pub async fn wait_blocks(
    client: &Client,
    ns: &str,
    network: &str,
    blocks: u64,
    timeout: Duration,
) -> anyhow::Result<u64> {
    let start = head(client, ns, network).await.unwrap_or(0);
    wait_until(
        &format!("{blocks} more blocks on {network} (from {start})"),
        timeout,
        || async {
            let h = head(client, ns, network).await?;
            if h >= start + blocks {
                Ok(Check::Done(h))
            } else {
                not_yet(format!("head {h}"))
            }
        },
    )
    .await
}

pub async fn head(client: &Client, ns: &str, network: &str) -> anyhow::Result<u64> {
    views(client, ns, network)
        .await?
        .values()
        .map(|v| v.height)
        .max()
        .context("no stand-in answers")
}

/// The pod of a node (`<node>-0`) and the node it runs on.
pub async fn pod_of(client: &Client, ns: &str, node: &str) -> anyhow::Result<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.get(&format!("{node}-0"))
        .await
        .with_context(|| format!("pod {node}-0"))
}

/// The pod's IP (on the real node's bridge).
pub fn pod_ip(pod: &Pod) -> anyhow::Result<String> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .with_context(|| format!("pod {} has no IP", pod.name_any()))
}

/// How a container's previous run ended, if it ran before.
pub fn last_termination<'a>(
    pod: &'a Pod,
    container: &str,
) -> Option<&'a k8s_openapi::api::core::v1::ContainerStateTerminated> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == container)?
        .last_state
        .as_ref()?
        .terminated
        .as_ref()
}

pub fn restart_count(pod: &Pod, container: &str) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container))
        .map(|c| c.restart_count)
        .unwrap_or(0)
}

pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Shrinks a sample's resources to what the real node (2 cores) can schedule for a whole
/// network of stand-ins, as the samples' comment tells users of a small cluster to do.
/// The memory limit stays what the operator derives the heap from.
pub fn fit_real_node(net: &mut besu_operator_api::BesuNetwork) -> anyhow::Result<()> {
    net.spec.node_template.resources = Some(serde_json::from_value(json!({
        "requests": {"cpu": "50m", "memory": "128Mi"},
        "limits": {"memory": "1Gi"},
    }))?);
    Ok(())
}

/// The cluster's DNS domain (`CLUSTER_DOMAIN` in cluster.env; `cluster.local` when the
/// cluster predates it).
pub fn cluster_domain() -> String {
    crate::support::cluster()
        .env_value("CLUSTER_DOMAIN")
        .unwrap_or_else(|| "cluster.local".to_string())
}

/// VolumeSnapshots (`snapshot.storage.k8s.io/v1`) in `ns`, as dynamic objects (the real
/// node's cluster serves the API; the tests read what the operator created).
pub fn snapshot_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: "snapshot.storage.k8s.io".into(),
        version: "v1".into(),
        api_version: "snapshot.storage.k8s.io/v1".into(),
        kind: "VolumeSnapshot".into(),
        plural: "volumesnapshots".into(),
    };
    Api::namespaced_with(client.clone(), ns, &ar)
}
