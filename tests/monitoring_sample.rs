//! The qbft sample as shipped, monitoring on (`spec.monitoring.prometheus.enabled` and
//! `grafana.enabled`) reaches Ready under kwok with the Prometheus and Grafana pods
//! Ready, the Grafana admin password in a Secret and never in the operator's log, and
//! then the operator writes nothing over 60 s (the "no writes at rest" invariant).

mod operator;
mod safety;
mod support;

use std::time::{Duration, SystemTime};

use anyhow::{Context as _, ensure};
use besu_operator_api::{BesuNetwork, BesuNode, NetworkPhase, NodePhase};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};

use operator::{OPERATOR_AGENT, Operator, install_crds, sample};
use support::{Check, TestNamespace, cluster, not_yet, wait_until};

const NETWORK: &str = "qbft";
const BRING_UP: Duration = Duration::from_secs(180);

#[tokio::test]
async fn sample_with_monitoring_is_ready_and_quiet_at_rest() -> anyhow::Result<()> {
    let c = cluster();
    let client = c.client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "mon-sample").await?;
    let op = Operator::start(c, &ns.name)?;
    let mut net: BesuNetwork = sample("qbft-network.yaml")?;
    net.metadata.namespace = Some(ns.name.clone());
    // The sample as shipped: monitoring on.
    ensure!(
        net.spec.monitoring.prometheus.enabled && net.spec.monitoring.grafana.enabled,
        "samples/qbft-network.yaml should ship with Prometheus and Grafana enabled"
    );
    let networks: Api<BesuNetwork> = ns.api();
    networks.create(&PostParams::default(), &net).await?;

    let nodes: Api<BesuNode> = ns.api();
    let pods: Api<Pod> = ns.api();
    wait_until("network Ready, 9 nodes Ready", BRING_UP, || async {
        let phase = networks.get(NETWORK).await?.status.map(|s| s.phase);
        let list = nodes.list(&ListParams::default()).await?;
        let ready = list
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .is_some_and(|s| s.phase == NodePhase::Ready)
            })
            .count();
        if phase == Some(NetworkPhase::Ready) && list.items.len() == 9 && ready == 9 {
            Ok(Check::Done(()))
        } else {
            not_yet(format!(
                "network {phase:?}, {ready}/{} nodes Ready",
                list.items.len()
            ))
        }
    })
    .await?;
    for component in ["prometheus", "grafana"] {
        let list = pods
            .list(&ListParams::default().labels(&format!("app.kubernetes.io/name={component}")))
            .await?;
        ensure!(
            list.items.len() == 1,
            "{component}: {} pods",
            list.items.len()
        );
        let p = &list.items[0];
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        ensure!(ready, "{component} pod {} not Ready", p.name_any());
    }
    let secret: Secret = ns
        .api::<Secret>()
        .get(&format!("{NETWORK}-grafana-admin"))
        .await?;
    let password = secret
        .data
        .as_ref()
        .and_then(|d| d.get("admin-password"))
        .map(|b| String::from_utf8_lossy(&b.0).to_string())
        .context("no admin-password")?;
    ensure!(password.len() >= 32, "a short password");

    // At rest: zero writes by the operator in this namespace over 60 s.
    let audit = cluster().audit();
    let in_ns = |events: Vec<support::AuditEvent>| -> Vec<String> {
        events
            .iter()
            .filter(|e| {
                e.object_ref.as_ref().and_then(|o| o.namespace.as_deref()) == Some(ns.name.as_str())
            })
            .map(|e| e.summary())
            .collect()
    };
    let settled = wait_until(
        "the operator to stop writing",
        Duration::from_secs(60),
        || async {
            let now = SystemTime::now();
            let recent =
                in_ns(audit.writes_by_agent(OPERATOR_AGENT, now - Duration::from_secs(6), now)?);
            if recent.is_empty() {
                Ok(Check::Done(now))
            } else {
                not_yet(format!(
                    "{} writes in the last 6 s, e.g. {}",
                    recent.len(),
                    recent[0]
                ))
            }
        },
    )
    .await?;
    let window_end = settled + Duration::from_secs(60);
    wait_until("a 60 s window", Duration::from_secs(70), || async {
        if SystemTime::now() >= window_end {
            Ok(Check::Done(()))
        } else {
            not_yet("open")
        }
    })
    .await?;
    let writes = in_ns(audit.writes_by_agent(OPERATOR_AGENT, settled, window_end)?);
    ensure!(writes.is_empty(), "the operator wrote at rest: {writes:#?}");
    ensure!(
        !op.log_text().contains(&password),
        "the Grafana admin password is in the operator's log"
    );
    safety::assert_chain_safe(&ns.name, &net.name_any(), &[], 5_000).await?;
    drop(op);
    ns.cleanup().await
}
