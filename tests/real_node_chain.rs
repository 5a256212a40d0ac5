//! A chain on the real node: every Besu pod is a real container running the Besu
//! stand-in (hack/besu-sim, `besu-standin`, under the pinned Besu image's name), started
//! by the kubelet from the operator's rendered pod exactly as Besu would be. The
//! stand-ins find each other through CoreDNS with Besu's `--Xdns-*` rules, peer over
//! TCP on the bridge and produce blocks only with a BFT quorum of connected validators.
//!
//! - the sample's chain forms through CoreDNS, on a cluster whose DNS domain is not
//!   `cluster.local` (the real node's, `nodeops.test`), and produces blocks;
//! - a validator pod deleted comes back on its own volume with its chain;
//! - the only bootnode's pod deleted and then a validator restarted while the bootnode's
//!   name has no address: the validator ends with peers and following the head (static
//!   nodes; with the flags of 7b98455 it stayed at 0 peers for good, review W1);
//! - a validator isolated (every peer dropped and forgotten) turns not Ready by its real
//!   readiness probe, and the operator's heal (`admin_addPeer`) reconnects it;
//! - a stand-in that stops answering `/liveness` is restarted by the kubelet;
//! - a container over its memory limit is OOMKilled and the operator says so on the
//!   BesuNode (condition `OOMKilled` and a Warning Event naming the pod).
//!
//! The operator runs on the host, scoped to the test's namespace, and reaches the pods on
//! the real node's bridge (198.18.0.0/24), as an in-cluster operator would.

mod operator;
mod real_node_support;
mod support;

use std::time::Duration;

use anyhow::{Context as _, ensure};
use besu_operator_api::{BesuNetwork, BesuNode, NetworkPhase};
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use operator::{Operator, install_crds, qbft_chain_only};
use real_node_support::{
    RPC_PORT, cluster_domain, fit_real_node, hold_new_pods, last_termination, pod_ip, pod_of,
    pod_ready, quantity, required, restart_count, rpc, use_real_node, views, wait_blocks,
};
use support::{Check, TestNamespace, cluster, not_yet, wait_until};

const BRING_UP: Duration = Duration::from_secs(240);
const RECOVER: Duration = Duration::from_secs(120);

async fn wait_phase(api: &Api<BesuNetwork>, name: &str, phase: NetworkPhase) -> anyhow::Result<()> {
    wait_until(&format!("{name} {phase:?}"), BRING_UP, || async {
        let s = api.get(name).await?.status.unwrap_or_default();
        if s.phase == phase {
            Ok(Check::Done(()))
        } else {
            not_yet(format!(
                "{:?}: {}",
                s.phase,
                s.conditions
                    .iter()
                    .filter(|c| c.status != "True")
                    .map(|c| format!("{} ({})", c.type_, c.message))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    })
    .await
}

/// Waits for a node's pod to be Ready again as a new pod or a restarted container.
async fn wait_pod_back(
    client: &Client,
    ns: &str,
    node: &str,
    old_uid: Option<&str>,
    min_restarts: i32,
) -> anyhow::Result<Pod> {
    wait_until(&format!("{node}'s pod back and Ready"), RECOVER, || async {
        let p = match pod_of(client, ns, node).await {
            Ok(p) => p,
            Err(e) => return not_yet(format!("{e:#}")),
        };
        let new = old_uid.is_none_or(|u| p.uid().as_deref() != Some(u));
        if new && pod_ready(&p) && restart_count(&p, "besu") >= min_restarts {
            Ok(Check::Done(p))
        } else {
            not_yet(format!(
                "new {new}, ready {}, restarts {}",
                pod_ready(&p),
                restart_count(&p, "besu")
            ))
        }
    })
    .await
}

struct Setup {
    client: Client,
    ns: TestNamespace,
    name: String,
    _op: Operator,
}

async fn chain_on_the_real_node(prefix: &str) -> anyhow::Result<Option<Setup>> {
    let c = cluster();
    let client = c.client().await?;
    if !required(&client).await? {
        return Ok(None);
    }
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, prefix).await?;
    use_real_node(&client, &ns.name).await?;
    let op = Operator::start(c, &ns.name)?;
    let mut net = qbft_chain_only()?;
    // One bootnode: the case where losing it used to isolate a restarted node.
    net.spec.bootnodes = 1;
    fit_real_node(&mut net)?;
    net.metadata.namespace = Some(ns.name.clone());
    let name = net.name_any();
    let networks: Api<BesuNetwork> = ns.api();
    networks.create(&PostParams::default(), &net).await?;
    wait_phase(&networks, &name, NetworkPhase::Ready)
        .await
        .with_context(|| format!("operator log:\n{}", tail(&op.log_text(), 30)))?;
    Ok(Some(Setup {
        client,
        ns,
        name,
        _op: op,
    }))
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn summary(v: &std::collections::BTreeMap<String, real_node_support::NodeView>) -> String {
    v.values()
        .map(|n| format!("{} h{} p{}", n.pod, n.height, n.peers))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::test]
async fn the_chain_forms_through_coredns_and_a_killed_pod_keeps_its_volume_and_chain()
-> anyhow::Result<()> {
    let Some(s) = chain_on_the_real_node("real-chain").await? else {
        return Ok(());
    };
    let (client, ns, name) = (&s.client, &s.ns.name, &s.name);

    // Formed: every validator peers with the others (names resolved through CoreDNS;
    // the bootnode enode names a Service), and blocks come with a quorum.
    let v = wait_until("every validator with 3 or more peers", RECOVER, || async {
        let v = views(client, ns, name).await?;
        let validators: Vec<_> = v
            .values()
            .filter(|n| n.pod.contains("-validator-"))
            .collect();
        if validators.len() == 4 && validators.iter().all(|n| n.peers >= 3) {
            Ok(Check::Done(v))
        } else {
            not_yet(summary(&v))
        }
    })
    .await?;
    let domain = cluster_domain();
    ensure!(
        domain != "cluster.local",
        "the real node's cluster domain is cluster.local: this test is meant to show a network forming on another one"
    );
    let net = Api::<BesuNetwork>::namespaced(client.clone(), ns)
        .get(name)
        .await?;
    let enodes = net.status.map(|s| s.bootnode_enodes).unwrap_or_default();
    ensure!(
        !enodes.is_empty() && enodes.iter().all(|e| e.ends_with(".svc:30303")),
        "bootnode enodes name no cluster domain: {enodes:?}"
    );
    println!("formed on cluster domain {domain}: {}", summary(&v));
    wait_blocks(client, ns, name, 3, Duration::from_secs(60)).await?;

    // A validator's pod deleted: the StatefulSet's new pod mounts the same claim and the
    // stand-in resumes from the chain on it (its log says so), not from genesis.
    let node = format!("{name}-validator-2");
    let before = pod_of(client, ns, &node).await?;
    let ip = pod_ip(&before)?;
    let height = quantity(&rpc(&ip, RPC_PORT, "eth_blockNumber", json!([])).await?)?;
    let claims: Api<PersistentVolumeClaim> = s.ns.api();
    let claim = format!("data-{node}-0");
    let claim_uid = claims.get(&claim).await?.uid();
    Api::<Pod>::namespaced(client.clone(), ns)
        .delete(&format!("{node}-0"), &DeleteParams::default())
        .await?;
    let after = wait_pod_back(client, ns, &node, before.uid().as_deref(), 0).await?;
    ensure!(
        claims.get(&claim).await?.uid() == claim_uid,
        "{claim} was replaced"
    );
    let logs = cluster().kubectl(&["-n", ns, "logs", &after.name_any(), "-c", "besu"])?;
    // The stand-in's first words about its chain: `Chain head #N (hash)`, read from the
    // data path before it talks to any peer.
    let loaded = logs
        .lines()
        .find(|l| l.contains("Chain head #"))
        .with_context(|| {
            format!(
                "the restarted stand-in did not report its chain head:\n{}",
                tail(&logs, 20)
            )
        })?;
    println!("{node} at {height} before deletion; after: {loaded}");
    let resumed: u64 = loaded
        .split("Chain head #")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no height in {loaded:?}"))?;
    ensure!(
        resumed >= height,
        "{node} started at #{resumed}, below the #{height} it had before: its chain was not kept"
    );
    wait_blocks(client, ns, name, 3, Duration::from_secs(60)).await?;

    // The only bootnode's pod deleted, then a validator restarted while the bootnode's
    // name has no address (its new pod held Pending: no IP, no DNS record): a name that
    // does not resolve at start becomes 127.0.0.1 for good (besu-facts §5), and the
    // bootnode comes back at a new IP. The validator's static nodes (the other
    // validators) still bring it back; with only the bootnode to go by (the flags before
    // this issue) it stays at 0 peers for good.
    let boot = format!("{name}-bootnode-0");
    let victim = format!("{name}-validator-1");
    let boot_pod = pod_of(client, ns, &boot).await?;
    let victim_pod = pod_of(client, ns, &victim).await?;
    let pods: Api<Pod> = s.ns.api();
    hold_new_pods(client, ns, true).await?;
    pods.delete(&format!("{boot}-0"), &DeleteParams::default())
        .await?;
    let held = wait_until("the bootnode's new pod Pending", RECOVER, || async {
        match pod_of(client, ns, &boot).await {
            Ok(p)
                if p.uid() != boot_pod.uid()
                    && p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_none() =>
            {
                Ok(Check::Done(p))
            }
            Ok(p) => not_yet(format!("{:?}", p.status.and_then(|s| s.phase))),
            Err(e) => not_yet(format!("{e:#}")),
        }
    })
    .await?;
    hold_new_pods(client, ns, false).await?;
    pods.delete(&format!("{victim}-0"), &DeleteParams::default())
        .await?;
    let back = wait_pod_back(client, ns, &victim, victim_pod.uid().as_deref(), 0).await?;
    // The validator has started (and resolved its enodes) while the bootnode had no
    // address; now the bootnode may come back.
    pods.delete(&held.name_any(), &DeleteParams::default())
        .await?;
    wait_pod_back(client, ns, &boot, held.uid().as_deref(), 0).await?;
    let started = std::time::Instant::now();
    let rejoined = wait_until(
        "the restarted validator with a peer, following the head",
        RECOVER,
        || async {
            let v = views(client, ns, name).await?;
            let head = v.values().map(|n| n.height).max().unwrap_or(0);
            match v.get(&back.name_any()) {
                Some(n) if n.peers > 0 && n.height + 2 >= head => Ok(Check::Done(format!(
                    "{} peers {}, height {} of head {head}",
                    n.pod, n.peers, n.height
                ))),
                other => not_yet(format!("{other:?}; head {head}")),
            }
        },
    )
    .await
    .with_context(|| {
        format!(
            "logs of {}:\n{}",
            back.name_any(),
            tail(
                &cluster()
                    .kubectl(&["-n", ns, "logs", &back.name_any(), "-c", "besu"])
                    .unwrap_or_default(),
                15
            )
        )
    })?;
    println!(
        "bootnode held off, {victim} restarted meanwhile: rejoined {} s after the bootnode came back ({rejoined})",
        started.elapsed().as_secs()
    );
    // Three validators of four still make a quorum: the chain keeps producing.
    wait_blocks(client, ns, name, 3, Duration::from_secs(60)).await?;
    s.ns.cleanup().await
}

#[tokio::test]
async fn probes_and_memory_limits_are_real() -> anyhow::Result<()> {
    let Some(s) = chain_on_the_real_node("real-probes").await? else {
        return Ok(());
    };
    let (client, ns, name) = (&s.client, &s.ns.name, &s.name);

    // A stand-in that stops answering (a wedged JVM): the kubelet's liveness probe
    // restarts its container; the pod comes back Ready on the same volume.
    let node = format!("{name}-member-0");
    let pod = pod_of(client, ns, &node).await?;
    let ip = pod_ip(&pod)?;
    let restarts = restart_count(&pod, "besu");
    rpc(&ip, RPC_PORT, "standin_wedge", json!([])).await?;
    let t0 = std::time::Instant::now();
    let back = wait_pod_back(client, ns, &node, None, restarts + 1).await?;
    let last =
        last_termination(&back, "besu").map(|t| format!("{:?} exit {}", t.reason, t.exit_code));
    println!(
        "wedged {node}: restarted by the kubelet after {:.1?} (last state {last:?})",
        t0.elapsed()
    );

    // Over its memory limit: the kernel kills the container (OOMKilled) and the operator
    // reports it on the BesuNode.
    let node = format!("{name}-validator-3");
    let pod = pod_of(client, ns, &node).await?;
    let ip = pod_ip(&pod)?;
    let restarts = restart_count(&pod, "besu");
    // 512 MiB more than the container's memory limit.
    let limit_quantity = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == "besu"))
        .and_then(|c| c.resources.as_ref()?.limits.as_ref()?.get("memory"))
        .map(|q| q.0.clone())
        .context("the besu container has no memory limit")?;
    let limit = besu_operator::render::node::memory_bytes(&limit_quantity)
        .with_context(|| format!("memory limit {limit_quantity}"))?;
    let over_mib = limit / (1024 * 1024) + 512;
    let _ = rpc(&ip, RPC_PORT, "standin_allocate", json!([over_mib])).await;
    let back = wait_pod_back(client, ns, &node, None, restarts + 1).await?;
    let reason = last_termination(&back, "besu").and_then(|t| t.reason.clone());
    ensure!(
        reason.as_deref() == Some("OOMKilled"),
        "last termination {reason:?}"
    );
    let nodes: Api<BesuNode> = s.ns.api();
    let condition = wait_until(
        &format!("{node} to report the OOMKill"),
        RECOVER,
        || async {
            let n = nodes.get(&node).await?;
            let c = n
                .status
                .unwrap_or_default()
                .conditions
                .into_iter()
                .find(|c| c.type_ == "OOMKilled");
            match c {
                Some(c) if c.status == "True" => Ok(Check::Done(c)),
                other => not_yet(format!("{other:?}")),
            }
        },
    )
    .await?;
    ensure!(
        condition.message.contains(&format!("{node}-0"))
            && condition.message.contains(&limit_quantity),
        "{}",
        condition.message
    );
    let events: Api<Event> = s.ns.api();
    let warned = events.list(&ListParams::default()).await?.iter().any(|e| {
        e.reason.as_deref() == Some("ContainerOOMKilled")
            && e.type_.as_deref() == Some("Warning")
            && e.involved_object.name.as_deref() == Some(node.as_str())
    });
    ensure!(
        warned,
        "no Warning Event ContainerOOMKilled on BesuNode {node}"
    );
    println!("{node}: {}", condition.message);
    wait_blocks(client, ns, name, 3, Duration::from_secs(60)).await?;
    s.ns.cleanup().await
}

/// Review R5 and W1's remedy: a validator with no peer at all (the stand-in's
/// `standin_isolate` drops and forgets every peer and turns away those that dial in, the
/// state a node is left in when every address it had resolved to 127.0.0.1) is called not
/// Ready by its real readiness probe (`minPeers=1`), and the operator, seeing a running
/// node with no peer, asks it to dial the network's Ready bootnodes and validators
/// (`admin_addPeer`, a Warning Event `PeeringHealed`): it reconnects and is Ready again.
#[tokio::test]
async fn an_isolated_validator_turns_not_ready_and_the_operator_reconnects_it() -> anyhow::Result<()>
{
    let Some(s) = chain_on_the_real_node("real-heal").await? else {
        return Ok(());
    };
    let (client, ns, name) = (&s.client, &s.ns.name, &s.name);
    wait_until("every validator with 2 or more peers", RECOVER, || async {
        let v = views(client, ns, name).await?;
        let validators = v.values().filter(|n| n.pod.contains("-validator-"));
        if validators.clone().count() == 4 && validators.clone().all(|n| n.peers >= 2) {
            Ok(Check::Done(()))
        } else {
            not_yet(summary(&v))
        }
    })
    .await?;
    let node = format!("{name}-validator-3");
    let pod = pod_of(client, ns, &node).await?;
    let ip = pod_ip(&pod)?;
    let started = std::time::Instant::now();
    rpc(&ip, RPC_PORT, "standin_isolate", json!([])).await?;

    // The kubelet's readiness probe (/readiness?minPeers=1) calls it not Ready, and the
    // validators' PodDisruptionBudget (maxUnavailable 1 of 4) then allows no eviction: a
    // drain cannot take a second validator while this one is cut off.
    let pdbs: Api<PodDisruptionBudget> = s.ns.api();
    let pdb = besu_operator::render::network::validator_pdb_name(name);
    wait_until(
        "the isolated validator not Ready and its PDB allowing no disruption",
        RECOVER,
        || async {
            let p = pod_of(client, ns, &node).await?;
            let peers = quantity(&rpc(&ip, RPC_PORT, "net_peerCount", json!([])).await?)?;
            let allowed = pdbs
                .get(&pdb)
                .await?
                .status
                .map(|st| (st.disruptions_allowed, st.current_healthy));
            if !pod_ready(&p) && allowed.is_some_and(|(a, _)| a == Some(0)) {
                Ok(Check::Done(()))
            } else {
                not_yet(format!(
                    "Ready {}, {peers} peers; PDB (allowed, healthy) {allowed:?}",
                    pod_ready(&p)
                ))
            }
        },
    )
    .await?;
    let not_ready_after = started.elapsed().as_secs();

    // The operator heals it: Event, then peers and Ready again, same pod (no restart).
    let events: Api<Event> = s.ns.api();
    let healed = wait_until("a PeeringHealed Event for it", RECOVER, || async {
        let list = events.list(&ListParams::default()).await?;
        match list.iter().find(|e| {
            e.reason.as_deref() == Some("PeeringHealed")
                && e.message.as_deref().is_some_and(|m| m.contains(&node))
        }) {
            Some(e) => Ok(Check::Done(e.message.clone().unwrap_or_default())),
            None => not_yet("no Event yet"),
        }
    })
    .await?;
    let back = wait_until("the validator Ready with peers again", RECOVER, || async {
        let p = pod_of(client, ns, &node).await?;
        let peers = quantity(&rpc(&ip, RPC_PORT, "net_peerCount", json!([])).await?)?;
        if pod_ready(&p) && peers >= 1 {
            Ok(Check::Done((p, peers)))
        } else {
            not_yet(format!("Ready {}, {peers} peers", pod_ready(&p)))
        }
    })
    .await?;
    ensure!(
        back.0.uid() == pod.uid() && restart_count(&back.0, "besu") == restart_count(&pod, "besu"),
        "the validator was restarted, not healed"
    );
    println!(
        "{node} isolated: not Ready after {not_ready_after} s; healed ({healed}); Ready with {} peers after {} s",
        back.1,
        started.elapsed().as_secs()
    );
    wait_blocks(client, ns, name, 3, Duration::from_secs(60)).await?;
    s.ns.cleanup().await
}
