//! The operator SIGKILLed at seeded random points of a network's life: bring-up, image
//! rollouts, scale 4 -> 7 and scale 7 -> 4, in turn. Each point applies the next change,
//! kills the operator a random delay after it, starts it again, and waits until the
//! network has converged; then it checks that every key and the genesis are the ones first
//! seen, nothing is duplicated, no vote was lost or doubled, and (at the end) the safety
//! monitor is clean.
//!
//! `make test` runs `CHAOS_POINTS` (default 5) points; `make chaos` runs 50. The seed is
//! printed; `CHAOS_SEED=<seed>` replays a run.

mod faults;
mod operator;
mod safety;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, ensure};
use besu_operator_api::{BesuNetwork, BesuNode, LABEL_NETWORK, NetworkPhase};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use faults::{condition, network, pod_states, setup};
use support::{Check, not_yet, wait_until};

const CONVERGE: Duration = Duration::from_secs(300);
const IMAGES: [&str; 2] = ["hyperledger/besu:26.3.0", "hyperledger/besu:26.3.1"];

/// splitmix64: small, seedable, the same sequence everywhere.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn range_ms(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

#[derive(Clone, Copy, Debug)]
enum Change {
    BringUp,
    Validators(i32),
    Image(usize),
}

/// The change of point `i`: bring-up first, then a rollout, 4 -> 7 and 7 -> 4 in turn
/// (5 points: bring-up, rollout, 4 -> 7, 7 -> 4, rollout back).
fn change(i: usize) -> Change {
    if i == 0 {
        return Change::BringUp;
    }
    match (i - 1) % 3 {
        0 => Change::Image((i - 1) / 3 % 2 + 1),
        1 => Change::Validators(7),
        _ => Change::Validators(4),
    }
}

async fn wait_for(delay: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    wait_until("the kill delay", delay + Duration::from_secs(5), || async {
        if start.elapsed() >= delay {
            Ok(Check::Done(()))
        } else {
            not_yet("waiting")
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_sigkill_at_seeded_points_always_converges() -> anyhow::Result<()> {
    let points: usize = std::env::var("CHAOS_POINTS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5);
    let seed: u64 = match std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(s) => s,
        None => SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64,
    };
    println!(
        "chaos: {points} points, seed {seed} (replay: CHAOS_SEED={seed} CHAOS_POINTS={points})"
    );
    let mut rng = Rng(seed);

    let (_client, ns, mut op) = setup("chaos").await?;
    let networks: Api<BesuNetwork> = ns.api();
    let secrets: Api<Secret> = ns.api();
    let cms: Api<ConfigMap> = ns.api();
    let nodes: Api<BesuNode> = ns.api();
    let sts: Api<StatefulSet> = ns.api();
    let pods: Api<Pod> = ns.api();
    let net = network(&ns.name)?;
    let name = net.name_any();
    let selector = format!("{LABEL_NETWORK}={name}");

    let mut first_keys: BTreeMap<String, String> = BTreeMap::new();
    let mut first_genesis: Option<String> = None;
    let mut validators = 4;
    let mut image = 0usize;
    let mut times: Vec<f64> = Vec::new();
    for i in 0..points {
        let c = change(i);
        match c {
            Change::BringUp => {
                networks.create(&PostParams::default(), &net).await?;
            }
            Change::Validators(n) => {
                validators = n;
                networks
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": {"validators": n}})),
                    )
                    .await?;
            }
            Change::Image(k) => {
                image = k % 2;
                networks
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": {"image": IMAGES[image]}})),
                    )
                    .await?;
            }
        }
        let delay = Duration::from_millis(rng.range_ms(200, 8_000));
        wait_for(delay).await?;
        op.kill();
        op.restart()?;
        let restarted = Instant::now();
        let want_pods = 2 + validators as usize;
        wait_until(&format!("point {i} ({c:?}) to converge"), CONVERGE, || async {
            let net = networks.get(&name).await?;
            let status = net.status.clone().unwrap_or_default();
            let converged = condition(&net, "ValidatorSetConverged").is_some_and(|c| c.0 == "True");
            let upgrading = condition(&net, "Upgrading").map(|c| c.0);
            let states = pod_states(&pods, &selector).await?;
            let on = states
                .values()
                .filter(|(_, img, ready)| img == IMAGES[image] && *ready)
                .count();
            if status.phase == NetworkPhase::Ready
                && status.observed_generation == net.metadata.generation
                && converged
                && status.validators.on_chain.len() == validators as usize
                && upgrading.as_deref() == Some("False")
                && on == want_pods
                && states.len() == want_pods
            {
                Ok(Check::Done(()))
            } else {
                not_yet(format!(
                    "{:?}, on-chain {}/{validators}, converged {converged}, upgrading {upgrading:?}, {on}/{} pods Ready on {}",
                    status.phase,
                    status.validators.on_chain.len(),
                    states.len(),
                    IMAGES[image]
                ))
            }
        })
        .await?;
        let secs = restarted.elapsed().as_secs_f64();
        times.push(secs);
        println!(
            "point {i}: {c:?}, killed {} ms after the change, converged {secs:.1} s after the restart",
            delay.as_millis()
        );

        // Identity: every key and the genesis as first seen.
        for s in secrets
            .list(&ListParams::default().labels(&selector))
            .await?
        {
            let Some(bytes) = s.data.as_ref().and_then(|d| d.get("key")) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes.0).to_string();
            let prev = first_keys
                .entry(s.name_any())
                .or_insert_with(|| text.clone());
            ensure!(
                *prev == text,
                "the key in {} changed at point {i}",
                s.name_any()
            );
        }
        let genesis = cms
            .get(&format!("{name}-genesis"))
            .await?
            .data
            .and_then(|d| d.get("genesis.json").cloned())
            .context("no genesis.json")?;
        let prev = first_genesis.get_or_insert_with(|| genesis.clone());
        ensure!(*prev == genesis, "the genesis changed at point {i}");
        // Nothing duplicated: one BesuNode and one StatefulSet per node.
        let n_nodes = nodes.list(&ListParams::default()).await?.items.len();
        let n_sts = sts.list(&ListParams::default()).await?.items.len();
        ensure!(
            n_nodes == want_pods && n_sts == want_pods,
            "point {i}: {n_nodes} BesuNodes and {n_sts} StatefulSets, want {want_pods}"
        );
    }

    // Votes: every address's on-chain changes alternate add, remove, add... (none lost,
    // none doubled).
    let w = safety::witness(&ns.name, &name).await?;
    let mut prev: Option<Vec<String>> = None;
    let mut changes: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for b in &w.blocks {
        let set: Vec<String> = b.validators.iter().map(|v| v.to_lowercase()).collect();
        if let Some(p) = &prev {
            for a in set.iter().filter(|a| !p.contains(a)) {
                changes.entry(a.clone()).or_default().push(true);
            }
            for a in p.iter().filter(|a| !set.contains(a)) {
                changes.entry(a.clone()).or_default().push(false);
            }
        }
        prev = Some(set);
    }
    for (addr, seq) in &changes {
        ensure!(
            seq.windows(2).all(|w| w[0] != w[1]) && seq.first() == Some(&true),
            "validator {addr} changed {seq:?} (true = added)"
        );
    }
    safety::assert_chain_safe(&ns.name, &name, &[], 10_000).await?;
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "chaos: seed {seed}, {points} points converged; time to converge after the restart min {:.1} s, median {:.1} s, max {:.1} s",
        sorted.first().copied().unwrap_or_default(),
        sorted.get(sorted.len() / 2).copied().unwrap_or_default(),
        sorted.last().copied().unwrap_or_default()
    );
    drop(op);
    ns.cleanup().await
}
