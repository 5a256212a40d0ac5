//! `make bench`: the operator binary with many networks on the local cluster (with the
//! Besu simulator), printing figures: time until every network is Ready, the operator's
//! resident and peak memory, and its API requests and writes per minute at rest.
//!
//! Figures are printed, never compared with a time or size limit. What it does assert
//! is behaviour: every network reaches Ready, and the operator writes nothing at rest.
//! Bounded: `BENCH_NETWORKS` networks (default 10, at most 40) of 1 bootnode and 4
//! validators each (5 pods, so 10 networks are 50 pods on the 3 fake nodes), a 600 s
//! bring-up deadline and a 60 s observation window. The operator runs with its default
//! resync (300 s) and chain poll (15 s), as users get it; `BENCH_RESYNC_SECONDS` changes
//! the resync (the integration tests use 5 s).
//!
//! Not part of `make test` (it is `#[ignore]`d): `make bench` runs it.

mod operator;
mod support;

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use besu_operator_api::{BesuNetwork, NetworkPhase};
use kube::api::{ListParams, PostParams};

use operator::{OPERATOR_AGENT, Operator, install_crds, qbft_chain_only, writes_over_quiet_window};
use support::{Check, TestNamespace, cluster, not_yet, wait_until};

const WINDOW: Duration = Duration::from_secs(60);

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("{name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run with make bench"]
async fn many_networks_bring_up_and_rest() -> anyhow::Result<()> {
    let count: usize = std::env::var("BENCH_NETWORKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .clamp(1, 40);
    let c = cluster();
    let client = c.client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "bench").await?;
    let resync: u64 = std::env::var("BENCH_RESYNC_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
        .max(1);
    let op = Operator::start_with_resync(c, &ns.name, resync)?;
    let pid = op.pid().context("the operator is not running")?;
    wait_until("the operator to start", Duration::from_secs(30), || async {
        if op.log_text().contains("controllers started") {
            Ok(Check::Done(()))
        } else {
            not_yet("not yet")
        }
    })
    .await?;
    let (rss_idle, _) = memory_kib(pid)?;

    let networks: kube::Api<BesuNetwork> = ns.api();
    let started = Instant::now();
    for i in 0..count {
        let mut net = qbft_chain_only()?;
        net.metadata.name = Some(format!("bench-{i}"));
        net.metadata.namespace = Some(ns.name.clone());
        net.spec.members = 0;
        networks.create(&PostParams::default(), &net).await?;
    }
    let first_ready = std::sync::Mutex::new(None::<Duration>);
    wait_until(
        &format!("{count} networks Ready"),
        Duration::from_secs(600),
        || async {
            let list = networks.list(&ListParams::default()).await?.items;
            let ready = list
                .iter()
                .filter(|n| n.status.as_ref().map(|s| s.phase) == Some(NetworkPhase::Ready))
                .count();
            if ready > 0
                && let Ok(mut f) = first_ready.lock()
            {
                f.get_or_insert(started.elapsed());
            }
            if ready == count {
                Ok(Check::Done(()))
            } else {
                not_yet(format!("{ready}/{count} Ready"))
            }
        },
    )
    .await?;
    let all_ready = started.elapsed();
    let (rss_ready, _) = memory_kib(pid)?;

    // At rest: every request by the operator over the window, and its writes.
    let (from, to, writes) = writes_over_quiet_window(&ns.name, WINDOW).await?;
    let requests = c
        .audit()
        .events()?
        .into_iter()
        .filter(|e| e.stage == "ResponseComplete" && e.user_agent.starts_with(OPERATOR_AGENT))
        .filter(|e| e.received_at().is_ok_and(|t| t >= from && t <= to))
        .count();
    let (rss_rest, peak) = memory_kib(pid)?;
    let minutes = to.duration_since(from).unwrap_or(WINDOW).as_secs_f64() / 60.0;

    let first = first_ready
        .lock()
        .ok()
        .and_then(|f| *f)
        .unwrap_or(all_ready);
    eprintln!(
        "bench: {count} networks x 5 Besu nodes (1 bootnode, 4 validators), operator resync {resync} s, chain poll 15 s"
    );
    eprintln!(
        "bench: first network Ready after {:.1} s, all {count} after {:.1} s",
        first.as_secs_f64(),
        all_ready.as_secs_f64()
    );
    eprintln!(
        "bench: operator memory (RSS): {} KiB started, {} KiB when all Ready, {} KiB at rest, peak {} KiB",
        rss_idle, rss_ready, rss_rest, peak
    );
    eprintln!(
        "bench: at rest over {:.0} s: {:.0} requests/min, {} writes",
        minutes * 60.0,
        requests as f64 / minutes,
        writes.len()
    );
    ensure!(writes.is_empty(), "writes at rest: {writes:?}");
    drop(op);
    ns.cleanup().await
}
