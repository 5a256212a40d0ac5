//! Helpers shared by the fault tests (`tests/fault_*.rs`): a 6-node network, the operator,
//! the simulator's fault knobs, conditions, pod states and the at-rest check.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, ensure};
use besu_operator_api::{BesuNetwork, NetworkPhase};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use serde_json::Value;

use crate::operator::{Operator, install_crds, qbft_chain_only, writes_over_quiet_window};
use crate::support::{Check, TestNamespace, cluster, not_yet, wait_until};

pub const PERIOD_S: i32 = 1;
pub const CHANGE: Duration = Duration::from_secs(240);
/// Longest time without a block any of these tests allows: with at most one of four
/// validators down, the simulator's chain never misses a block period; 5 periods leave
/// room for a loaded 2-core machine.
pub const MAX_GAP_MS: u64 = 5_000;

/// 1 bootnode, 4 validators, 1 member, 1 s blocks.
pub fn network(ns: &str) -> anyhow::Result<BesuNetwork> {
    let mut net: BesuNetwork = qbft_chain_only()?;
    net.metadata.namespace = Some(ns.to_string());
    net.spec.members = 1;
    net.spec.genesis.block_period_seconds = PERIOD_S;
    net.spec.genesis.request_timeout_seconds = 2 * PERIOD_S;
    Ok(net)
}

pub async fn setup(prefix: &str) -> anyhow::Result<(Client, TestNamespace, Operator)> {
    let c = cluster();
    let client = c.client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, prefix).await?;
    let op = Operator::start(c, &ns.name)?;
    Ok((client, ns, op))
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// POSTs a fault knob to the simulator's admin endpoint.
pub async fn sim_post(path: &str, body: Value) -> anyhow::Result<()> {
    let file = cluster().state_dir.join("besu-sim.addr");
    let addr = std::fs::read_to_string(&file)
        .with_context(|| format!("the Besu simulator is not running ({})", file.display()))?;
    let url = format!("http://{}{path}", addr.trim());
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .post(&url)
        .json(&body)
        .send()
        .await?;
    ensure!(resp.status().is_success(), "POST {url}: {}", resp.status());
    Ok(())
}

pub async fn wait_ready(api: &Api<BesuNetwork>, name: &str) -> anyhow::Result<()> {
    wait_until("network Ready", CHANGE, || async {
        let net = api.get(name).await?;
        let status = net.status.unwrap_or_default();
        let upgrading = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Upgrading")
            .map(|c| c.status.clone());
        if status.phase == NetworkPhase::Ready && upgrading.as_deref() != Some("True") {
            Ok(Check::Done(()))
        } else {
            not_yet(format!("{:?}, upgrading {upgrading:?}", status.phase))
        }
    })
    .await
}

pub fn condition(net: &BesuNetwork, type_: &str) -> Option<(String, String, String)> {
    net.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    })
}

/// Pod name → (uid, image, Ready) of the network's pods.
pub async fn pod_states(
    pods: &Api<Pod>,
    selector: &str,
) -> anyhow::Result<BTreeMap<String, (String, String, bool)>> {
    let mut out = BTreeMap::new();
    for p in pods.list(&ListParams::default().labels(selector)).await? {
        let image = p
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        out.insert(p.name_any(), (p.uid().unwrap_or_default(), image, ready));
    }
    Ok(out)
}

pub async fn quiet_at_rest(ns: &str) -> anyhow::Result<()> {
    let (_, _, writes) = writes_over_quiet_window(ns, Duration::from_secs(60)).await?;
    if !writes.is_empty() {
        // Which Events were written again (the audit log names only the object).
        let client = cluster().client().await?;
        let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client, ns);
        for e in events.list(&ListParams::default()).await? {
            if writes.iter().any(|w| w.contains(&e.name_any())) {
                println!(
                    "rewritten at rest: Event {} {:?} {:?} x{:?}: {:?}",
                    e.name_any(),
                    e.type_,
                    e.reason,
                    e.count,
                    e.message
                );
            }
        }
    }
    ensure!(
        writes.is_empty(),
        "the operator wrote {} times in 60 s at rest: {writes:?}",
        writes.len()
    );
    println!("at rest: 0 writes by the operator in 60 s");
    Ok(())
}

/// Patches the network's image (the start of a rollout).
pub async fn set_image(networks: &Api<BesuNetwork>, name: &str, image: &str) -> anyhow::Result<()> {
    networks
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"image": image}})),
        )
        .await?;
    Ok(())
}

/// Waits until the rollout's current step includes `node`, or has already passed it (a
/// loaded machine's poll can miss a short step).
pub async fn wait_in_step(
    networks: &Api<BesuNetwork>,
    name: &str,
    node: &str,
) -> anyhow::Result<()> {
    wait_until(
        &format!("{node} in the rollout's current step"),
        CHANGE,
        || async {
            let net = networks.get(name).await?;
            let up = net
                .status
                .as_ref()
                .and_then(|s| s.upgrade.clone())
                .unwrap_or_default();
            if up.in_progress.iter().any(|n| n == node) || up.done.iter().any(|n| n == node) {
                Ok(Check::Done(()))
            } else {
                not_yet(format!("{up:?}"))
            }
        },
    )
    .await
}

/// Waits until `pods` pods are Ready on `image` and the rollout says it is done.
pub async fn wait_rollout_done(
    networks: &Api<BesuNetwork>,
    pods: &Api<Pod>,
    name: &str,
    selector: &str,
    image: &str,
    want: usize,
) -> anyhow::Result<()> {
    wait_until(
        "every pod on the new image, rollout done",
        CHANGE,
        || async {
            let states = pod_states(pods, selector).await?;
            let on = states
                .values()
                .filter(|(_, img, ready)| img == image && *ready)
                .count();
            let net = networks.get(name).await?;
            let up = condition(&net, "Upgrading");
            if on == want && up.as_ref().is_some_and(|u| u.0 == "False") {
                Ok(Check::Done(()))
            } else {
                not_yet(format!(
                    "{on}/{want} pods Ready on {image}; Upgrading {up:?}"
                ))
            }
        },
    )
    .await
}
