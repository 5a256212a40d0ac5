//! The kube-apiserver goes away for 30 s in the middle of an image rollout, and comes
//! back. The operator must ride it out without a restart, resume, finish the rollout, and
//! never have taken more validators down than the chain can lose (the safety monitor).
//!
//! Its own test binary: stopping the API server disturbs every test running beside it,
//! and cargo runs test binaries one at a time.

mod faults;
mod operator;
mod safety;
mod support;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::ensure;
use besu_operator_api::{BesuNetwork, LABEL_NETWORK};
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::{Api, ResourceExt};

use faults::{
    CHANGE, MAX_GAP_MS, network, quiet_at_rest, set_image, setup, wait_in_step, wait_ready,
    wait_rollout_done,
};
use operator::OPERATOR_AGENT;
use support::{Check, cluster, cluster_script, not_yet, wait_until};

const OUTAGE: Duration = Duration::from_secs(30);

fn cluster_command(action: &str) -> anyhow::Result<()> {
    let out = Command::new(cluster_script())
        .arg(action)
        .env("BESU_CLUSTER_DIR", &cluster().state_dir)
        .output()?;
    ensure!(
        out.status.success(),
        "hack/local-cluster.sh {action} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Starts the API server again if the test fails while it is stopped, so that the
/// following test binaries still have a cluster.
struct RestartOnDrop(bool);
impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        if self.0 {
            let _ = cluster_command("start-apiserver");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_outage_mid_rollout_is_ridden_out() -> anyhow::Result<()> {
    let (_client, ns, op) = setup("apiout").await?;
    let networks: Api<BesuNetwork> = ns.api();
    let net = network(&ns.name)?;
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;
    wait_ready(&networks, &name).await?;
    let pid = op.pid();

    let image = "hyperledger/besu:26.3.1";
    set_image(&networks, &name, image).await?;
    let v0 = format!("{name}-validator-0");
    wait_in_step(&networks, &name, &v0).await?;

    cluster_command("stop-apiserver")?;
    let mut guard = RestartOnDrop(true);
    let stopped = Instant::now();
    wait_until("the outage", OUTAGE + Duration::from_secs(10), || async {
        if stopped.elapsed() >= OUTAGE {
            Ok(Check::Done(()))
        } else {
            not_yet(format!("{:.0?} of the outage", stopped.elapsed()))
        }
    })
    .await?;
    cluster_command("start-apiserver")?;
    guard.0 = false;
    let back = SystemTime::now();
    let back_instant = Instant::now();
    println!(
        "API server down for {:.1} s (stopped mid-rollout)",
        stopped.elapsed().as_secs_f64() - back_instant.elapsed().as_secs_f64()
    );

    // The same operator process resumes: its first write after the API came back.
    let audit = cluster().audit();
    let resumed = wait_until(
        "the operator's first write after the outage",
        CHANGE,
        || async {
            let writes = audit.writes_by_agent(OPERATOR_AGENT, back, SystemTime::now())?;
            let ours: Vec<_> = writes
                .iter()
                .filter(|e| {
                    e.object_ref.as_ref().and_then(|o| o.namespace.as_deref())
                        == Some(ns.name.as_str())
                })
                .collect();
            match ours.first() {
                Some(e) => Ok(Check::Done(e.received_at()?)),
                None => not_yet("no write yet"),
            }
        },
    )
    .await?;
    // What "resumed" means: the first reconcile of the network after the outage (each
    // reconcile starts by reading its network), and the first write, which may wait on
    // the cluster itself (the restarted controller-manager recreating a pod).
    let first_reconcile = audit
        .events()?
        .into_iter()
        .filter(|e| e.stage == "ResponseComplete" && e.user_agent.starts_with(OPERATOR_AGENT))
        .filter(|e| e.verb == "get")
        .filter(|e| {
            e.object_ref.as_ref().is_some_and(|o| {
                o.resource.as_deref() == Some("besunetworks")
                    && o.namespace.as_deref() == Some(ns.name.as_str())
                    && o.subresource.is_none()
            })
        })
        .filter_map(|e| e.received_at().ok())
        .filter(|t| *t >= back)
        .min();
    let after = |t: SystemTime| t.duration_since(back).unwrap_or_default().as_secs_f64();
    println!(
        "the operator reconciled the network again {} after the API server was back, and wrote {:.1} s after",
        first_reconcile.map_or("never".to_string(), |t| format!("{:.1} s", after(t))),
        after(resumed)
    );
    ensure!(
        op.pid() == pid && op.starts == 1,
        "the operator was restarted"
    );
    ensure!(
        pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists()),
        "the operator process is gone"
    );

    let pods: Api<Pod> = ns.api();
    let selector = format!("{LABEL_NETWORK}={name}");
    wait_rollout_done(&networks, &pods, &name, &selector, image, 6).await?;
    println!(
        "rollout finished {:.1} s after the API server was back",
        back_instant.elapsed().as_secs_f64()
    );
    // The outage itself stops no validator, but no block is lost to it either: the
    // chain's validators keep running while the control plane is away.
    safety::assert_chain_safe(&ns.name, &name, &[], MAX_GAP_MS).await?;
    quiet_at_rest(&ns.name).await?;
    drop(op);
    ns.cleanup().await
}
