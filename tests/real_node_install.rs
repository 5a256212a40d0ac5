//! Installing for real, on the local cluster's real node: `manifests/install.yaml` and
//! the Helm chart, applied unmodified with the operator image built from local files
//! (hack/real-node.sh images), run the operator in-cluster under its own ServiceAccount
//! and the `restricted` Pod Security Standard, and bring a network to Ready whose Besu
//! pods are stand-in processes producing blocks. With 2 replicas, deleting the leader's
//! pod hands over and the network stays Ready.
//!
//! The installed operator watches every namespace, so this binary runs alone
//! (hack/run-tests.sh EXCLUSIVE). The operator's namespace and the network's namespace
//! are pointed at the real node by annotation (PodNodeSelector/PodTolerationRestriction),
//! so the manifests apply as users get them. The network is samples/qbft-network.yaml
//! with its resources shrunk to fit the real node's 2 cores (as the sample's comment says
//! to on a small cluster) and Grafana off: no Grafana image is built here (a pull would fail at containerd's
//! dead loopback proxy); Prometheus runs from the locally built image.

mod install_support;
mod operator;
mod real_node_support;
mod support;

use std::time::Duration;

use anyhow::{Context as _, ensure};
use besu_operator_api::{BesuNetwork, NetworkPhase};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};

use install_support::{run, tool, wait_phase};
use operator::{install_crds, sample};
use real_node_support::{REAL_NODE, head, required, use_real_node, views, wait_blocks};
use support::{Check, TestNamespace, cluster, not_yet, repo_root, wait_until};

const OPERATOR_NS: &str = "besu-operator-system";
const LEASE: &str = "besu-operator-leader";
const BRING_UP: Duration = Duration::from_secs(240);

/// Creates the operator's namespace pointed at the real node (install.yaml's own
/// Namespace document then only adds its labels).
async fn operator_namespace(client: &Client) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    if api.get_opt(OPERATOR_NS).await?.is_none() {
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": OPERATOR_NS}
        }))?;
        api.create(&PostParams::default(), &ns).await?;
    }
    use_real_node(client, OPERATOR_NS).await
}

async fn delete_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
    wait_until(
        &format!("namespace {name} gone"),
        Duration::from_secs(120),
        || async {
            match api.get_opt(name).await? {
                None => Ok(Check::Done(())),
                Some(_) => not_yet("still there"),
            }
        },
    )
    .await
}

/// The operator pods: Running and Ready on the real node, under the ServiceAccount and
/// as the non-root user of the image.
async fn operator_pods_ready(client: &Client, replicas: usize) -> anyhow::Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), OPERATOR_NS);
    wait_until(
        &format!("{replicas} operator pod(s) Ready on {REAL_NODE}"),
        Duration::from_secs(120),
        || async {
            let list = pods
                .list(&ListParams::default().labels("app.kubernetes.io/name=besu-operator"))
                .await?;
            let live: Vec<Pod> = list
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            let ready = live
                .iter()
                .filter(|p| real_node_support::pod_ready(p))
                .count();
            if ready == replicas && live.len() == replicas {
                Ok(Check::Done(live))
            } else {
                not_yet(format!("{} pods, {ready} Ready", live.len()))
            }
        },
    )
    .await
    .and_then(|pods| {
        for p in &pods {
            let spec = p.spec.as_ref().context("pod spec")?;
            ensure!(
                spec.node_name.as_deref() == Some(REAL_NODE),
                "{} runs on {:?}, not the real node",
                p.name_any(),
                spec.node_name
            );
            ensure!(spec.service_account_name.as_deref() == Some("besu-operator"));
        }
        Ok(pods)
    })
}

async fn lease_holder(client: &Client) -> anyhow::Result<Option<String>> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NS);
    Ok(leases
        .get_opt(LEASE)
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity))
}

/// A network in its own namespace on the real node, Ready, producing blocks.
async fn network_on_the_real_node(
    client: &Client,
    prefix: &str,
    monitoring: bool,
) -> anyhow::Result<(TestNamespace, BesuNetwork)> {
    let ns = TestNamespace::create(client, prefix).await?;
    use_real_node(client, &ns.name).await?;
    let mut net: BesuNetwork = sample("qbft-network.yaml")?;
    // The sample's resources are a real validator's; the real node has 2 cores.
    real_node_support::fit_real_node(&mut net)?;
    net.spec.monitoring.grafana.enabled = false;
    net.spec.monitoring.prometheus.enabled = monitoring;
    net.metadata.namespace = Some(ns.name.clone());
    let networks: Api<BesuNetwork> = ns.api();
    networks.create(&PostParams::default(), &net).await?;
    let name = net.name_any();
    wait_phase(&networks, &name, NetworkPhase::Ready, BRING_UP).await?;
    let h = wait_blocks(client, &ns.name, &name, 3, Duration::from_secs(60)).await?;
    let v = views(client, &ns.name, &name).await?;
    println!(
        "{name} Ready in {}, head {h}; stand-ins: {}",
        ns.name,
        v.values()
            .map(|n| format!("{} h{} p{}", n.pod, n.height, n.peers))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Every Besu pod is a real container on the real node.
    let pods: Api<Pod> = ns.api();
    for p in pods.list(&ListParams::default()).await? {
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
        ensure!(
            node.as_deref() == Some(REAL_NODE),
            "{} on {node:?}",
            p.name_any()
        );
    }
    ensure!(v.len() >= 6, "only {} stand-ins answer: {v:?}", v.len());
    Ok((ns, net))
}

#[tokio::test]
async fn install_yaml_and_the_helm_chart_run_the_operator_in_cluster_on_the_real_node()
-> anyhow::Result<()> {
    let c = cluster();
    let client = c.client().await?;
    if !required(&client).await? {
        return Ok(());
    }
    install_crds(&client).await?;

    // 1. kubectl apply -f manifests/install.yaml, as a user does.
    operator_namespace(&client).await?;
    let install = repo_root().join("manifests/install.yaml");
    c.kubectl(&["apply", "-f", &install.to_string_lossy()])?;
    let result = async {
        operator_pods_ready(&client, 1).await?;
        let (ns, net) = network_on_the_real_node(&client, "real-install", true).await?;
        let name = net.name_any();
        let networks: Api<BesuNetwork> = ns.api();

        // 2. Two replicas; the leader's pod deleted: the standby takes the Lease and the
        // network stays Ready, producing.
        c.kubectl(&[
            "-n",
            OPERATOR_NS,
            "scale",
            "deployment/besu-operator",
            "--replicas=2",
        ])?;
        let pods = operator_pods_ready(&client, 2).await?;
        let leader = wait_until("a Lease holder", Duration::from_secs(60), || async {
            match lease_holder(&client).await? {
                Some(h) if pods.iter().any(|p| p.name_any() == h) => Ok(Check::Done(h)),
                other => not_yet(format!("holder {other:?}")),
            }
        })
        .await?;
        let before = head(&client, &ns.name, &name).await?;
        Api::<Pod>::namespaced(client.clone(), OPERATOR_NS)
            .delete(&leader, &DeleteParams::default())
            .await?;
        let new_leader = wait_until(
            "another operator pod to hold the Lease",
            Duration::from_secs(90),
            || async {
                match lease_holder(&client).await? {
                    Some(h) if h != leader => Ok(Check::Done(h)),
                    other => not_yet(format!("holder {other:?}")),
                }
            },
        )
        .await?;
        println!("leader {leader} deleted; {new_leader} took over");
        let after = wait_blocks(&client, &ns.name, &name, 3, Duration::from_secs(60)).await?;
        ensure!(after > before);
        let phase = networks
            .get(&name)
            .await?
            .status
            .map(|s| s.phase)
            .unwrap_or_default();
        ensure!(
            phase == NetworkPhase::Ready,
            "network {phase:?} after the handover"
        );
        ns.cleanup().await?;
        anyhow::Ok(())
    }
    .await;
    let logs = c
        .kubectl(&[
            "-n",
            OPERATOR_NS,
            "logs",
            "deployment/besu-operator",
            "--tail=20",
        ])
        .unwrap_or_default();
    // Uninstall all but the CRDs (other tests' objects live in them).
    let _ = c.kubectl(&[
        "delete",
        "clusterrolebinding/besu-operator",
        "clusterrole/besu-operator",
        "--ignore-not-found",
    ]);
    delete_namespace(&client, OPERATOR_NS).await?;
    result.with_context(|| format!("install.yaml; operator log tail:\n{logs}"))?;

    // 3. helm install of the chart, as a user does.
    operator_namespace(&client).await?;
    let chart = repo_root().join("manifests/helm/besu-operator");
    let home = std::env::temp_dir().join("besu-operator-helm-home");
    let helm = |args: &[&str]| -> anyhow::Result<String> {
        let (status, out, err) = run(std::process::Command::new(tool("helm/helm")?)
            .args(args)
            .env("KUBECONFIG", &c.kubeconfig)
            .env("HOME", &home)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data")))?;
        ensure!(status.success(), "helm {args:?}: {out}{err}");
        Ok(out)
    };
    helm(&[
        "install",
        "besu-operator",
        &chart.to_string_lossy(),
        "--namespace",
        OPERATOR_NS,
        "--skip-crds",
        "--wait",
        "--timeout",
        "120s",
    ])?;
    let result = async {
        operator_pods_ready(&client, 1).await?;
        let (ns, _net) = network_on_the_real_node(&client, "real-helm", false).await?;
        ns.cleanup().await
    }
    .await;
    let logs = c
        .kubectl(&[
            "-n",
            OPERATOR_NS,
            "logs",
            "deployment/besu-operator",
            "--tail=20",
        ])
        .unwrap_or_default();
    let _ = helm(&[
        "uninstall",
        "besu-operator",
        "--namespace",
        OPERATOR_NS,
        "--wait",
    ]);
    delete_namespace(&client, OPERATOR_NS).await?;
    result.with_context(|| format!("helm chart; operator log tail:\n{logs}"))
}
