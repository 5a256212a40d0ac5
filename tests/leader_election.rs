//! Leader election: two operator processes run against one namespace with a short Lease;
//! only the leader writes (per the audit log, told apart by the instance in their
//! User-Agents); after SIGKILL of the leader mid bring-up, the standby takes the Lease,
//! never before the dead leader's Lease expired, and finishes the bring-up; on SIGTERM a leader releases
//! the Lease, so a successor takes over without waiting for it to expire, even while its
//! reconciles wait on nodes whose JSON-RPC never answers.

mod faults;
mod install_support;
mod operator;
mod safety;
mod support;

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, ensure};
use besu_operator::operator::USER_AGENT;
use besu_operator_api::{BesuNetwork, BesuNode, NetworkPhase};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};

use install_support::{OperatorProcess, audit_by_agent, is_write, wait_phase_of};
use operator::{install_crds, sample};
use support::{Check, TestNamespace, cluster, not_yet, unique_name, wait_until};

const LEASE: &str = "besu-operator-leader";
// Short enough for a quick takeover, long enough that a loaded machine's slow API server
// (a 7 s network reconcile was seen beside the suite's other lanes) does not end a
// leadership mid-test: with 4/3/1 the leader lost its Lease there and exited.
const LEASE_SECONDS: u64 = 12;
const RENEW_SECONDS: u64 = 8;
const RETRY_SECONDS: u64 = 2;

fn start(name: &str, ns: &str) -> anyhow::Result<OperatorProcess> {
    let (lease, renew, retry) = (
        LEASE_SECONDS.to_string(),
        RENEW_SECONDS.to_string(),
        RETRY_SECONDS.to_string(),
    );
    OperatorProcess::start(
        name,
        &cluster().kubeconfig,
        &[
            "--namespaces",
            ns,
            "--leader-elect",
            "--leader-elect-namespace",
            ns,
            "--leader-elect-lease-seconds",
            &lease,
            "--leader-elect-renew-seconds",
            &renew,
            "--leader-elect-retry-seconds",
            &retry,
            "--instance",
            name,
        ],
    )
}

fn agent(instance: &str) -> String {
    format!("{USER_AGENT} ({instance})")
}

async fn wait_holder(leases: &Api<Lease>, holder: &str, timeout: Duration) -> anyhow::Result<()> {
    wait_until(&format!("Lease held by {holder}"), timeout, || async {
        let seen = leases
            .get_opt(LEASE)
            .await?
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity);
        if seen.as_deref() == Some(holder) {
            Ok(Check::Done(()))
        } else {
            not_yet(format!("holder {seen:?}"))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_and_a_standby_takes_over_after_sigkill() -> anyhow::Result<()> {
    let c = cluster();
    let admin = c.client().await?;
    install_crds(&admin).await?;
    let ns = TestNamespace::create(&admin, "leader").await?;
    let leases: Api<Lease> = ns.api();
    let a_name = unique_name("leader-a");
    let b_name = unique_name("leader-b");

    let mut a = start(&a_name, &ns.name)?;
    wait_holder(&leases, &a_name, Duration::from_secs(30)).await?;
    let b = start(&b_name, &ns.name)?;
    wait_until(
        "the standby to see the leader",
        Duration::from_secs(30),
        || async {
            if b.log_text().contains("another instance leads") {
                Ok(Check::Done(()))
            } else {
                not_yet("no 'waiting for leadership' in its log")
            }
        },
    )
    .await?;

    // A bring-up, interrupted: SIGKILL the leader as soon as the first BesuNode exists.
    let t0 = SystemTime::now();
    let networks: Api<BesuNetwork> = ns.api();
    let mut net: BesuNetwork = sample("qbft-network.yaml")?;
    net.metadata.namespace = Some(ns.name.clone());
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;
    let nodes: Api<BesuNode> = ns.api();
    wait_until("the first BesuNode", Duration::from_secs(60), || async {
        if nodes.list(&ListParams::default()).await?.items.is_empty() {
            not_yet("none")
        } else {
            Ok(Check::Done(()))
        }
    })
    .await?;
    a.kill();
    let killed = Instant::now();
    let t_kill = SystemTime::now();
    // The dead leader's last renewal: nobody may take the Lease before it has expired.
    let last_renew = leases
        .get(LEASE)
        .await?
        .spec
        .and_then(|s| s.renew_time)
        .map(|t| t.0)
        .context("the leader's Lease has no renewTime")?;
    let at_kill = networks.get(&name).await?;
    let nodes_at_kill = nodes.list(&ListParams::default()).await?.items.len();
    ensure!(
        at_kill.status.as_ref().map(|s| s.phase) != Some(NetworkPhase::Ready) && nodes_at_kill < 6,
        "the bring-up finished before the leader was killed ({nodes_at_kill} nodes)"
    );

    // Until the kill, every write came from the leader; the standby only read its Lease.
    let b_requests = audit_by_agent(c, &agent(&b_name))?;
    let a_requests = audit_by_agent(c, &agent(&a_name))?;
    let a_writes = a_requests
        .iter()
        .filter(|(t, r)| *t >= t0 && *t <= t_kill && is_write(&r.verb))
        .count();
    // The standby: no write at all; reads of its Lease, and the startup probes that the
    // CRDs are installed (one list of BesuNetworks, one of EthereumNodes).
    let b_before: Vec<String> = b_requests
        .iter()
        .filter(|(t, _)| *t <= t_kill)
        .filter(|(_, r)| {
            let resource = r.group_resource().map(|(_, res)| res).unwrap_or_default();
            is_write(&r.verb)
                || !(resource == "leases" && r.verb == "get"
                    || resource == "besunetworks" && r.verb == "list"
                    || resource == "ethereumnodes" && r.verb == "list")
        })
        .map(|(_, r)| format!("{} {:?}", r.verb, r.group_resource()))
        .collect();
    ensure!(
        a_writes > 0,
        "the leader wrote nothing before it was killed"
    );
    ensure!(
        b_before.is_empty(),
        "the standby made requests other than reading its Lease and the CRD probe: {b_before:?}"
    );

    // The standby takes over, never before the dead leader's Lease expired (two leaders
    // at once is the failure that matters; how fast it notices depends on the machine's
    // load, so the time is printed, not bounded), and finishes the bring-up.
    wait_holder(&leases, &b_name, Duration::from_secs(60)).await?;
    let takeover = killed.elapsed();
    let acquired = leases
        .get(LEASE)
        .await?
        .spec
        .and_then(|s| s.acquire_time)
        .map(|t| t.0)
        .context("the new leader's Lease has no acquireTime")?;
    let expiry = last_renew
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(i64::try_from(
            LEASE_SECONDS,
        )?))
        .context("lease expiry")?;
    ensure!(
        acquired >= expiry,
        "the standby acquired the Lease at {acquired}, before the dead leader's expired at {expiry} (last renewal {last_renew})"
    );
    wait_phase_of(
        &b,
        &networks,
        &name,
        NetworkPhase::Ready,
        Duration::from_secs(180),
    )
    .await?;
    let b_writes = audit_by_agent(c, &agent(&b_name))?
        .iter()
        .filter(|(t, r)| {
            *t > t_kill
                && is_write(&r.verb)
                && r.group_resource().is_some_and(|(_, res)| res != "leases")
        })
        .count();
    ensure!(b_writes > 0, "the new leader wrote nothing");
    eprintln!(
        "leader wrote {a_writes} times before SIGKILL, standby 0; takeover {takeover:.1?} after SIGKILL (lease {LEASE_SECONDS}s, retry {RETRY_SECONDS}s); new leader wrote {b_writes} times to finish"
    );

    // SIGTERM: the leader releases the Lease; a fresh standby takes over at once.
    let c_name = unique_name("leader-c");
    let standby = start(&c_name, &ns.name)?;
    wait_until(
        "the new standby to see the leader",
        Duration::from_secs(30),
        || async {
            if standby.log_text().contains("another instance leads") {
                Ok(Check::Done(()))
            } else {
                not_yet("not yet")
            }
        },
    )
    .await?;
    let mut b = b;
    let stopped = Instant::now();
    let status = b.terminate(Duration::from_secs(10))?;
    ensure!(
        status.success(),
        "the leader exited with {status} on SIGTERM"
    );
    ensure!(
        b.log_text().contains("released leadership"),
        "the leader did not release its Lease:\n{}",
        b.log_text()
    );
    // Released, not left to expire: the moment the leader is gone, the Lease names no
    // holder (or already the standby); an unreleased one would name the leader for up to
    // its duration.
    let holder = leases
        .get_opt(LEASE)
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity);
    ensure!(
        holder.is_none() || holder.as_deref() == Some(c_name.as_str()),
        "the Lease still names {holder:?} after the leader exited"
    );
    wait_holder(&leases, &c_name, Duration::from_secs(30)).await?;
    let handover = stopped.elapsed();
    eprintln!("handover after SIGTERM: {handover:.1?} (lease duration {LEASE_SECONDS} s)");
    safety::assert_chain_safe(&ns.name, &name, &[], 5_000).await?;
    drop(standby);
    ns.cleanup().await?;
    Ok(())
}

/// SIGTERM reaches a leader whose reconciles are waiting on JSON-RPC that never answers
/// (every node of its network silent, a rollout asked for so that the chain is read at
/// once): like a kubelet, the test sends SIGKILL if it has not exited 10 s later (the
/// Deployment's terminationGracePeriodSeconds). It must exit on its own within that, and
/// release its Lease on the way out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_waiting_on_silent_nodes_stops_within_the_grace_period() -> anyhow::Result<()> {
    let c = cluster();
    let client = c.client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "leader-term").await?;
    let leases: Api<Lease> = ns.api();
    let name = unique_name("leader-t");
    let mut op = start(&name, &ns.name)?;
    wait_holder(&leases, &name, Duration::from_secs(30)).await?;

    let networks: Api<BesuNetwork> = ns.api();
    let mut net: BesuNetwork = sample("qbft-network.yaml")?;
    net.metadata.namespace = Some(ns.name.clone());
    let network = net.name_any();
    networks.create(&PostParams::default(), &net).await?;
    wait_phase_of(
        &op,
        &networks,
        &network,
        NetworkPhase::Ready,
        Duration::from_secs(180),
    )
    .await?;

    let pods: Api<k8s_openapi::api::core::v1::Pod> = ns.api();
    let selector = format!(
        "{}={network},app.kubernetes.io/name=besu",
        besu_operator_api::LABEL_NETWORK
    );
    for pod in pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
    {
        faults::sim_post(
            &format!(
                "/chains/{}/{network}/nodes/{}/rpc-fault",
                ns.name,
                pod.name_any()
            ),
            serde_json::json!({"mode": "timeout"}),
        )
        .await?;
    }
    // A change, so that the next reconcile reads the chain rather than its cache.
    networks
        .patch(
            &network,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                serde_json::json!({"spec": {"image": "hyperledger/besu:26.3.1"}}),
            ),
        )
        .await?;
    wait_until(
        "a reconcile waiting on silent JSON-RPC",
        Duration::from_secs(60),
        || async {
            // The operator logs a slow reconcile only once it ends: after the first, the
            // ones that follow (the rollout keeps asking) wait on the same silence.
            if op.log_text().contains("slow network reconcile") {
                Ok(Check::Done(()))
            } else {
                not_yet("no slow reconcile yet")
            }
        },
    )
    .await?;
    let sent = Instant::now();
    let status = op.terminate(Duration::from_secs(10));
    let took = sent.elapsed();
    let log = op.log_text();
    let status = match status {
        Ok(s) => s,
        Err(e) => anyhow::bail!("{e:#}\noperator log:\n{log}"),
    };
    println!("exit {status} {took:.1?} after SIGTERM, with every node's JSON-RPC silent");
    ensure!(
        status.success(),
        "the leader exited with {status} on SIGTERM"
    );
    ensure!(
        log.contains("released leadership"),
        "the leader did not release its Lease:\n{log}"
    );
    let holder = leases
        .get_opt(LEASE)
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity);
    ensure!(holder.is_none(), "the Lease is still held by {holder:?}");
    safety::assert_chain_safe(&ns.name, &network, &[], 5_000).await?;
    ns.cleanup().await?;
    Ok(())
}
