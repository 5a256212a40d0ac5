//! Day-2 operations end to end: the operator binary, the local cluster and the Besu
//! simulator (`hack/besu-sim`), whose block record is the witness of what the chain did.

mod operator;
mod safety;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, ensure};
use besu_operator::chain::key::NodeKey;
use besu_operator_api::{BesuNetwork, BesuNode, LABEL_NETWORK, NetworkPhase, NodePhase};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use operator::{OPERATOR_AGENT, Operator, install_crds, qbft_chain_only};
use support::{Check, TestNamespace, cluster, not_yet, wait_until};

const PERIOD_S: i32 = 1;
const CHANGE: Duration = Duration::from_secs(120);

/// A network with 1 bootnode, 4 validators, no member, 1 s blocks.
fn network(ns: &str) -> anyhow::Result<BesuNetwork> {
    let mut net: BesuNetwork = qbft_chain_only()?;
    net.metadata.namespace = Some(ns.to_string());
    net.spec.members = 0;
    net.spec.genesis.block_period_seconds = PERIOD_S;
    net.spec.genesis.request_timeout_seconds = 2 * PERIOD_S;
    Ok(net)
}

async fn setup(prefix: &str) -> anyhow::Result<(Client, TestNamespace, Operator)> {
    let c = cluster();
    let client = c.client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, prefix).await?;
    let op = Operator::start(c, &ns.name)?;
    Ok((client, ns, op))
}

/// The simulator's record of a chain.
async fn sim_chain(ns: &str, name: &str) -> anyhow::Result<Value> {
    safety::sim_get(&format!("/chains/{ns}/{name}")).await
}

fn blocks(chain: &Value) -> Vec<Value> {
    chain["blocks"].as_array().cloned().unwrap_or_default()
}

fn addresses(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_lowercase))
                .collect()
        })
        .unwrap_or_default()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The longest gap between consecutive blocks produced after `since_ms`.
fn max_gap_ms(chain: &Value, since_ms: u64) -> u64 {
    let times: Vec<u64> = blocks(chain)
        .iter()
        .filter_map(|b| b["produced_at_ms"].as_u64())
        .filter(|t| *t >= since_ms)
        .collect();
    times
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or(0)
}

/// The validator addresses of ordinals `0..n`, from their key Secrets.
async fn validator_addresses(
    secrets: &Api<Secret>,
    name: &str,
    n: i32,
) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for i in 0..n {
        let s = secrets.get(&format!("{name}-validator-{i}-key")).await?;
        let bytes = s
            .data
            .as_ref()
            .and_then(|d| d.get("key"))
            .context("no key")?;
        let key = NodeKey::parse(&String::from_utf8_lossy(&bytes.0))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        out.push(key.address().to_string());
    }
    Ok(out)
}

/// Waits until the network reports the desired validators on-chain and
/// `ValidatorSetConverged`, for the current generation.
async fn wait_converged(
    api: &Api<BesuNetwork>,
    secrets: &Api<Secret>,
    name: &str,
    n: i32,
) -> anyhow::Result<BesuNetwork> {
    wait_until(
        &format!("{n} validators on-chain and converged"),
        CHANGE,
        || async {
            let net = api.get(name).await?;
            let status = net.status.clone().unwrap_or_default();
            let converged = status
                .conditions
                .iter()
                .any(|c| c.type_ == "ValidatorSetConverged" && c.status == "True");
            let fresh = status.observed_generation == net.metadata.generation;
            let mut want = validator_addresses(secrets, name, n)
                .await
                .unwrap_or_default();
            want.sort();
            if converged && fresh && status.validators.on_chain == want {
                Ok(Check::Done(net))
            } else {
                let cond = status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == "ValidatorSetConverged")
                    .map(|c| format!("{}: {}", c.status, c.message))
                    .unwrap_or_default();
                not_yet(format!(
                    "on-chain {} of {n}; {cond}; pending {:?}",
                    status.validators.on_chain.len(),
                    status.validators.pending
                ))
            }
        },
    )
    .await
}

async fn set_validators(api: &Api<BesuNetwork>, name: &str, n: i32) -> anyhow::Result<()> {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"validators": n}})),
    )
    .await?;
    Ok(())
}

async fn wait_ready(api: &Api<BesuNetwork>, name: &str) -> anyhow::Result<()> {
    wait_until("network Ready", CHANGE, || async {
        let net = api.get(name).await?;
        let phase = net.status.map(|s| s.phase);
        if phase == Some(NetworkPhase::Ready) {
            Ok(Check::Done(()))
        } else {
            not_yet(format!("{phase:?}"))
        }
    })
    .await
}

/// When the audit log saw the operator delete each BesuNode of the namespace.
fn node_deletions(ns: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for e in cluster().audit().events()? {
        let Some(o) = e.object_ref.as_ref() else {
            continue;
        };
        if e.stage == "ResponseComplete"
            && e.verb == "delete"
            && e.user_agent.starts_with(OPERATOR_AGENT)
            && o.resource.as_deref() == Some("besunodes")
            && o.namespace.as_deref() == Some(ns)
        {
            let at = e.received_at()?.duration_since(UNIX_EPOCH)?.as_millis() as u64;
            out.insert(o.name.clone().unwrap_or_default(), at);
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_scale_4_5_7_4_by_vote_and_the_chain_never_stops() -> anyhow::Result<()> {
    let (client, ns, op) = setup("scale").await?;
    let networks: Api<BesuNetwork> = ns.api();
    let secrets: Api<Secret> = ns.api();
    let net = network(&ns.name)?;
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;
    wait_ready(&networks, &name).await?;
    wait_converged(&networks, &secrets, &name, 4).await?;
    let start = now_ms();

    for n in [5, 7, 4] {
        set_validators(&networks, &name, n).await?;
        let converged = wait_converged(&networks, &secrets, &name, n).await?;
        let chain = sim_chain(&ns.name, &name).await?;
        let head = addresses(&chain["validators"]);
        let want: BTreeSet<String> = validator_addresses(&secrets, &name, n)
            .await?
            .into_iter()
            .collect();
        ensure!(
            head == want,
            "simulator's validators {head:?} != desired {want:?}"
        );
        eprintln!(
            "{n} validators on-chain at block {} ({} status)",
            chain["head"],
            converged
                .status
                .map(|s| s.validators.on_chain.len())
                .unwrap_or(0)
        );
    }
    // Every removed validator's node is gone, and only after it left the set.
    let nodes: Api<BesuNode> = ns.api();
    wait_until("validators 4-6 deleted", CHANGE, || async {
        let left: Vec<String> = nodes
            .list(&ListParams::default())
            .await?
            .iter()
            .map(|n| n.name_any())
            .filter(|n| n.contains("-validator-"))
            .collect();
        if left.len() == 4 {
            Ok(Check::Done(()))
        } else {
            not_yet(format!("{left:?}"))
        }
    })
    .await?;
    let chain = sim_chain(&ns.name, &name).await?;
    let all = validator_addresses(&secrets, &name, 7).await?;
    let deletions = node_deletions(&ns.name)?;
    for (ordinal, address) in all.iter().enumerate().skip(4) {
        let node = format!("{name}-validator-{ordinal}");
        let address = address.to_lowercase();
        let deleted_at = *deletions
            .get(&node)
            .with_context(|| format!("no audit record of deleting {node}"))?;
        // The first block after the removal that no longer lists it.
        let left_at = blocks(&chain)
            .iter()
            .filter(|b| b["produced_at_ms"].as_u64().is_some_and(|t| t >= start))
            .skip_while(|b| !addresses(&b["validators"]).contains(&address))
            .find(|b| !addresses(&b["validators"]).contains(&address))
            .and_then(|b| b["produced_at_ms"].as_u64())
            .with_context(|| format!("{node} never left the set in the record"))?;
        ensure!(
            deleted_at >= left_at,
            "{node} deleted at {deleted_at} ms, before it left the set at {left_at} ms"
        );
        eprintln!(
            "{node}: left the set at {left_at}, node deleted {} ms later",
            deleted_at - left_at
        );
    }
    // Block production never stopped: no gap longer than 3 block periods.
    let gap = max_gap_ms(&chain, start);
    eprintln!("longest gap between blocks during 4→5→7→4: {gap} ms");
    ensure!(
        gap <= 3 * 1000 * PERIOD_S as u64 + 500,
        "block production stalled for {gap} ms"
    );

    // Steady state: no Kubernetes write and no vote over 60 s once converged.
    let events: Api<Event> = ns.api();
    let votes_before = events
        .list(&ListParams::default())
        .await?
        .iter()
        .filter(|e| e.reason.as_deref() == Some("VoteProposed"))
        .count();
    let (settled, quiet_end, writes) =
        operator::writes_over_quiet_window(&ns.name, Duration::from_secs(60)).await?;
    let settled_ms = settled.duration_since(UNIX_EPOCH)?.as_millis() as u64;
    ensure!(writes.is_empty(), "writes at rest: {writes:#?}");
    // A network at rest is decided from the operator's caches: over the window's
    // resyncs (every 5 s, so a dozen reconciles of every network and node) it never GETs
    // an object of the namespace (the network, its nodes, genesis, key Secrets, pods,
    // the PodDisruptionBudget, the NetworkPolicy), and lists only what a watch re-list
    // may need (at most one per watched kind; the reconciles made 3 per resync before).
    let reads: Vec<(String, String)> = cluster()
        .audit()
        .requests_by_agent(OPERATOR_AGENT, settled, quiet_end, |e| {
            matches!(e.verb.as_str(), "get" | "list")
                && e.object_ref
                    .as_ref()
                    .is_some_and(|o| o.namespace.as_deref() == Some(ns.name.as_str()))
        })?
        .iter()
        .map(|e| (e.verb.clone(), e.summary()))
        .collect();
    let gets: Vec<&String> = reads
        .iter()
        .filter(|(v, _)| v == "get")
        .map(|(_, s)| s)
        .collect();
    let lists: Vec<&String> = reads
        .iter()
        .filter(|(v, _)| v == "list")
        .map(|(_, s)| s)
        .collect();
    eprintln!(
        "at rest over 60 s: {} GETs and {} LISTs by the operator in the namespace",
        gets.len(),
        lists.len()
    );
    ensure!(
        gets.is_empty(),
        "objects read from the API at rest: {gets:?}"
    );
    ensure!(lists.len() <= 3, "lists at rest: {lists:?}");
    let chain = sim_chain(&ns.name, &name).await?;
    let produced: Vec<Value> = blocks(&chain)
        .into_iter()
        .filter(|b| {
            b["produced_at_ms"]
                .as_u64()
                .is_some_and(|t| t >= settled_ms)
        })
        .collect();
    ensure!(
        produced.len() >= 30,
        "only {} blocks in 60 s",
        produced.len()
    );
    let voted = produced.iter().filter(|b| !b["vote"].is_null()).count();
    ensure!(voted == 0, "{voted} blocks carried a vote at rest");
    let votes_after = events
        .list(&ListParams::default())
        .await?
        .iter()
        .filter(|e| e.reason.as_deref() == Some("VoteProposed"))
        .count();
    ensure!(
        votes_after == votes_before,
        "the operator proposed votes at rest"
    );
    eprintln!(
        "steady state: 0 writes, 0 votes, {} blocks in 60 s",
        produced.len()
    );
    safety::assert_chain_safe(&ns.name, &name, &[], 5_000).await?;
    drop(op);
    drop(client);
    ns.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_killed_mid_vote_completes_the_change_exactly_once() -> anyhow::Result<()> {
    let (_client, ns, mut op) = setup("midvote").await?;
    let networks: Api<BesuNetwork> = ns.api();
    let secrets: Api<Secret> = ns.api();
    let net = network(&ns.name)?;
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;
    wait_ready(&networks, &name).await?;
    wait_converged(&networks, &secrets, &name, 4).await?;

    set_validators(&networks, &name, 5).await?;
    wait_until("a vote in progress", CHANGE, || async {
        let net = networks.get(&name).await?;
        let pending = net.status.map(|s| s.validators.pending).unwrap_or_default();
        if pending.iter().any(|p| p.votes >= 1) {
            Ok(Check::Done(()))
        } else {
            not_yet(format!("{pending:?}"))
        }
    })
    .await?;
    op.kill();
    eprintln!("killed the operator mid-vote");
    op.restart()?;
    wait_converged(&networks, &secrets, &name, 5).await?;

    let added = validator_addresses(&secrets, &name, 5).await?[4].to_lowercase();
    let chain = sim_chain(&ns.name, &name).await?;
    let changes: Vec<Value> = blocks(&chain)
        .into_iter()
        .filter_map(|b| b.get("change").filter(|c| !c.is_null()).cloned())
        .filter(|c| c["address"].as_str().map(str::to_lowercase).as_deref() == Some(added.as_str()))
        .collect();
    ensure!(
        changes.len() == 1 && changes[0]["added"] == json!(true),
        "changes for the new validator: {changes:?}"
    );
    let head = addresses(&chain["validators"]);
    ensure!(
        head.len() == 5 && head.contains(&added),
        "validators now {head:?}"
    );
    safety::assert_chain_safe(&ns.name, &name, &[], 5_000).await?;
    drop(op);
    ns.cleanup().await
}

async fn pods_on_image(
    pods: &Api<Pod>,
    selector: &str,
    image: &str,
) -> anyhow::Result<(usize, usize)> {
    let all = pods
        .list(&ListParams::default().labels(selector))
        .await?
        .items;
    let on = all
        .iter()
        .filter(|p| {
            p.spec.as_ref().is_some_and(|s| {
                s.containers
                    .iter()
                    .all(|c| c.image.as_deref() == Some(image))
            })
        })
        .count();
    Ok((on, all.len()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_upgrade_rolls_one_validator_at_a_time_without_stalling_the_chain()
-> anyhow::Result<()> {
    let (_client, ns, op) = setup("upgrade").await?;
    let networks: Api<BesuNetwork> = ns.api();
    let secrets: Api<Secret> = ns.api();
    let mut net = network(&ns.name)?;
    net.spec.members = 1;
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;
    wait_ready(&networks, &name).await?;
    wait_converged(&networks, &secrets, &name, 4).await?;
    let start = now_ms();
    let image = "hyperledger/besu:26.3.1";
    networks
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"image": image}})),
        )
        .await?;
    let pods: Api<Pod> = ns.api();
    let selector = format!("{LABEL_NETWORK}={name}");
    wait_until(
        "every pod on the new image, rollout done",
        Duration::from_secs(240),
        || async {
            let (on, all) = pods_on_image(&pods, &selector, image).await?;
            let net = networks.get(&name).await?;
            let status = net.status.clone().unwrap_or_default();
            let upgrade = status.upgrade.clone().unwrap_or_default();
            let ready = status.phase == NetworkPhase::Ready;
            if on == 6
                && all == 6
                && upgrade.pending.is_empty()
                && upgrade.in_progress.is_empty()
                && ready
            {
                Ok(Check::Done(()))
            } else {
                not_yet(format!(
                    "{on}/{all} pods on {image}; upgrade {upgrade:?}; phase {:?}",
                    status.phase
                ))
            }
        },
    )
    .await?;
    let sts: Api<StatefulSet> = ns.api();
    for s in sts.list(&ListParams::default()).await? {
        let img = s
            .spec
            .template
            .spec
            .as_ref()
            .and_then(|p| p.containers[0].image.clone());
        ensure!(
            img.as_deref() == Some(image),
            "{} still on {img:?}",
            s.name_any()
        );
    }
    let chain = sim_chain(&ns.name, &name).await?;
    let produced: Vec<Value> = blocks(&chain)
        .into_iter()
        .filter(|b| b["produced_at_ms"].as_u64().is_some_and(|t| t >= start))
        .collect();
    let min_up = produced
        .iter()
        .map(|b| addresses(&b["validators_up"]).len())
        .min()
        .unwrap_or(0);
    // 4 validators: at most 4 - ceil(8/3) = 1 down at once.
    ensure!(
        min_up >= 3,
        "at some block only {min_up} of 4 validators were up"
    );
    let gap = max_gap_ms(&chain, start);
    eprintln!(
        "upgrade: {} blocks, at least {min_up}/4 validators up at every block, longest gap {gap} ms",
        produced.len()
    );
    ensure!(
        gap <= 3 * 1000 * PERIOD_S as u64 + 500,
        "block production stalled for {gap} ms"
    );
    safety::assert_chain_safe(&ns.name, &name, &[], 5_000).await?;
    drop(op);
    ns.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_ready_image_stalls_the_rollout_and_reverting_recovers() -> anyhow::Result<()> {
    let (_client, ns, op) = setup("stall").await?;
    let networks: Api<BesuNetwork> = ns.api();
    let secrets: Api<Secret> = ns.api();
    let mut net = network(&ns.name)?;
    net.spec.bootnodes = 1;
    let name = net.name_any();
    let original = net.spec.image.clone();
    networks.create(&PostParams::default(), &net).await?;
    wait_ready(&networks, &name).await?;
    wait_converged(&networks, &secrets, &name, 4).await?;

    // The simulator never starts an image whose tag contains "never-ready".
    let bad = "hyperledger/besu:26.3.1-never-ready";
    // Every BesuNode status from here on: none may claim Ready on the bad image (a node
    // controller that judged readiness by the pod it was about to replace once did,
    // for one reconcile, and the rollout went on to a second node).
    let claims = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let recorder = {
        let claims = claims.clone();
        let original = original.clone();
        let nodes: Api<BesuNode> = ns.api();
        tokio::spawn(async move {
            let mut stream = watcher(nodes, watcher::Config::default()).boxed();
            while let Some(Ok(ev)) = stream.next().await {
                if let watcher::Event::Apply(n) | watcher::Event::InitApply(n) = ev
                    && let Some(st) = &n.status
                    && n.spec.image == bad
                    && st.observed_generation >= n.metadata.generation
                    // Ready while the pod template is still held back (status.image the
                    // old one, pendingTemplateRevision set) is true: the old pod runs.
                    && st.image.as_deref() != Some(original.as_str())
                    && (st.phase == NodePhase::Ready || st.pod_ready)
                    && let Ok(mut c) = claims.lock()
                {
                    c.push(format!(
                        "{} generation {:?}: {:?}, podReady {}, image {:?}",
                        n.name_any(),
                        n.metadata.generation,
                        st.phase,
                        st.pod_ready,
                        st.image
                    ));
                }
            }
        })
    };
    networks
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"image": bad}})),
        )
        .await?;
    let stalled = wait_until("UpgradeStalled", Duration::from_secs(150), || async {
        let net = networks.get(&name).await?;
        let status = net.status.clone().unwrap_or_default();
        match status
            .conditions
            .iter()
            .find(|c| c.type_ == "UpgradeStalled")
        {
            Some(c) if c.status == "True" => Ok(Check::Done(net)),
            other => not_yet(format!("{other:?}; upgrade {:?}", status.upgrade)),
        }
    })
    .await?;
    let status = stalled.status.clone().unwrap_or_default();
    let message = status
        .conditions
        .iter()
        .find(|c| c.type_ == "UpgradeStalled")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    ensure!(
        message.contains(bad) && message.contains("revert"),
        "UpgradeStalled says: {message}"
    );
    // Exactly one node was touched; the chain still produces blocks.
    let pods: Api<Pod> = ns.api();
    let (on_bad, _) = pods_on_image(&pods, &format!("{LABEL_NETWORK}={name}"), bad).await?;
    ensure!(
        on_bad == 1,
        "{on_bad} pods on the bad image; the rollout should stop after one"
    );
    let false_ready = claims.lock().map(|c| c.clone()).unwrap_or_default();
    ensure!(
        false_ready.is_empty(),
        "BesuNode status claimed Ready on the never-ready image: {false_ready:?}"
    );
    let h1 = sim_chain(&ns.name, &name).await?["head"]
        .as_u64()
        .unwrap_or(0);
    wait_until(
        "the chain to keep producing",
        Duration::from_secs(20),
        || async {
            let h = sim_chain(&ns.name, &name).await?["head"]
                .as_u64()
                .unwrap_or(0);
            if h >= h1 + 3 {
                Ok(Check::Done(()))
            } else {
                not_yet(format!("head {h}"))
            }
        },
    )
    .await?;

    // Reverting the image recovers.
    networks
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"image": original}})),
        )
        .await?;
    wait_until("recovery", Duration::from_secs(120), || async {
        let net = networks.get(&name).await?;
        let status = net.status.clone().unwrap_or_default();
        let not_stalled = status
            .conditions
            .iter()
            .any(|c| c.type_ == "UpgradeStalled" && c.status == "False");
        let (on_bad, _) = pods_on_image(&pods, &format!("{LABEL_NETWORK}={name}"), bad).await?;
        if not_stalled && on_bad == 0 && status.phase == NetworkPhase::Ready {
            Ok(Check::Done(()))
        } else {
            not_yet(format!(
                "{on_bad} on the bad image, phase {:?}",
                status.phase
            ))
        }
    })
    .await?;
    recorder.abort();
    safety::assert_chain_safe(&ns.name, &name, &[], 5_000).await?;
    drop(op);
    ns.cleanup().await
}

/// Review C8: under `deletionPolicy: Delete`, a genesis validator voted out loses its key
/// with its node; growing the network again gives that ordinal a new key, voted in as a
/// new validator, instead of a dead end asking to restore a key the operator deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_policy_scale_down_and_up_gives_a_genesis_validator_a_new_key() -> anyhow::Result<()>
{
    let (_client, ns, op) = setup("rekey").await?;
    let networks: Api<BesuNetwork> = ns.api();
    let secrets: Api<Secret> = ns.api();
    let mut net = network(&ns.name)?;
    net.spec.deletion_policy = besu_operator_api::DeletionPolicy::Delete;
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;
    wait_ready(&networks, &name).await?;
    wait_converged(&networks, &secrets, &name, 4).await?;
    let old = validator_addresses(&secrets, &name, 4).await?[3].to_lowercase();

    set_validators(&networks, &name, 3).await?;
    wait_converged(&networks, &secrets, &name, 3).await?;
    let secret3 = format!("{name}-validator-3-key");
    wait_until("validator-3's key Secret deleted", CHANGE, || async {
        match secrets.get_opt(&secret3).await? {
            None => Ok(Check::Done(())),
            Some(_) => not_yet("still there"),
        }
    })
    .await?;

    set_validators(&networks, &name, 4).await?;
    wait_converged(&networks, &secrets, &name, 4).await?;
    let new = validator_addresses(&secrets, &name, 4).await?[3].to_lowercase();
    ensure!(
        new != old,
        "validator-3 came back with its old address {old}"
    );
    let chain = sim_chain(&ns.name, &name).await?;
    let head = addresses(&chain["validators"]);
    ensure!(
        head.contains(&new) && !head.contains(&old),
        "on-chain {head:?}: want the new {new}, not the old {old}"
    );
    let net = networks.get(&name).await?;
    ensure!(
        !net.annotations()
            .contains_key("besu.nodeops.dev/retired-validators"),
        "the retired mark outlived the new key: {:?}",
        net.annotations()
    );
    let events: Api<Event> = ns.api();
    let regenerated = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("ValidatorKeyRegenerated"))
        .count();
    ensure!(
        regenerated == 1,
        "{regenerated} ValidatorKeyRegenerated Events"
    );
    safety::assert_chain_safe(&ns.name, &name, &[], 5_000).await?;
    drop(op);
    ns.cleanup().await
}
