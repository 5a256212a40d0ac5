//! End to end: the operator binary brings a `BesuNetwork` up on the real local control
//! plane, in stages, with a genesis built from its own keys; survives SIGKILL; writes
//! nothing at rest; follows its deletion policy; never regenerates a lost key; never
//! leaks key material.

mod operator;
mod safety;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use besu_operator::chain::enode::enode_url;
use besu_operator::chain::genesis::decode_genesis_validators;
use besu_operator::chain::key::{Address, NodeKey};
use besu_operator::render::node::pod_dns_name;
use besu_operator_api::{
    BesuNetwork, BesuNode, DeletionPolicy, LABEL_NETWORK, NetworkPhase, NodePhase,
};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Event, PersistentVolumeClaim, Pod, Secret};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};

use operator::{OPERATOR_AGENT, Operator, install_crds, qbft_chain_only};
use support::{Check, TestNamespace, cluster, not_yet, wait_until};

const BRING_UP: Duration = Duration::from_secs(120);

/// The qbft sample, in the test namespace, optionally smaller.
fn qbft_network(ns: &str, members: i32) -> anyhow::Result<BesuNetwork> {
    let mut net: BesuNetwork = qbft_chain_only()?;
    net.metadata.namespace = Some(ns.to_string());
    net.spec.members = members;
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

async fn wait_phase(
    api: &Api<BesuNetwork>,
    name: &str,
    phase: NetworkPhase,
    timeout: Duration,
) -> anyhow::Result<BesuNetwork> {
    wait_until(
        &format!("BesuNetwork {name} {phase:?}"),
        timeout,
        || async {
            let net = api.get(name).await?;
            let status = net.status.clone().unwrap_or_default();
            if status.phase == phase {
                Ok(Check::Done(net))
            } else {
                not_yet(format!(
                    "phase {:?}; {}",
                    status.phase,
                    status
                        .conditions
                        .iter()
                        .map(|c| format!("{}={} ({})", c.type_, c.status, c.message))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        },
    )
    .await
}

/// Node keys of a network by Secret name, parsed from the Secrets.
async fn keys_by_secret(
    secrets: &Api<Secret>,
    network: &str,
) -> anyhow::Result<BTreeMap<String, NodeKey>> {
    let mut out = BTreeMap::new();
    for s in secrets
        .list(&ListParams::default().labels(&format!("{LABEL_NETWORK}={network}")))
        .await?
    {
        if let Some(bytes) = s.data.as_ref().and_then(|d| d.get("key")) {
            let key = NodeKey::parse(&String::from_utf8_lossy(&bytes.0))
                .map_err(|e| anyhow::anyhow!("Secret {}: {e}", s.name_any()))?;
            out.insert(s.name_any(), key);
        }
    }
    Ok(out)
}

/// Fails when any key's hex (with or without 0x, any case) appears in the operator's log
/// or in the namespace's Events.
async fn assert_no_key_material(
    client: &Client,
    ns: &str,
    op: &Operator,
    keys: &[NodeKey],
) -> anyhow::Result<()> {
    ensure!(!keys.is_empty(), "no keys to look for");
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let mut haystack = op.log_text().to_ascii_lowercase();
    for e in events.list(&ListParams::default()).await? {
        haystack.push_str(&serde_json::to_string(&e)?.to_ascii_lowercase());
    }
    ensure!(
        haystack.len() > 100,
        "the operator log and events are suspiciously empty"
    );
    for key in keys {
        let hex = key.to_besu_key_file();
        let bare = hex.trim_start_matches("0x");
        ensure!(
            !haystack.contains(bare),
            "a private key appears in the operator's log or Events"
        );
    }
    Ok(())
}

/// Order of events by etcd revision, seen by watches opened before the network exists.
#[derive(Default)]
struct Timeline {
    /// Revision at which each pod first reported Ready.
    pod_ready: BTreeMap<String, u64>,
    /// Revision at which each StatefulSet was created (its first watch event).
    sts_created: BTreeMap<String, u64>,
}

fn rv(obj: &impl Resource) -> u64 {
    obj.meta()
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn pod_is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn record_timeline(client: &Client, ns: &str) -> Arc<Mutex<Timeline>> {
    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let t = timeline.clone();
    tokio::spawn(async move {
        let mut stream = watcher(pods, watcher::Config::default()).boxed();
        while let Some(Ok(ev)) = stream.next().await {
            if let watcher::Event::Apply(p) | watcher::Event::InitApply(p) = ev
                && pod_is_ready(&p)
                && let Ok(mut t) = t.lock()
            {
                t.pod_ready.entry(p.name_any()).or_insert(rv(&p));
            }
        }
    });
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let t = timeline.clone();
    tokio::spawn(async move {
        let mut stream = watcher(sts, watcher::Config::default()).boxed();
        while let Some(Ok(ev)) = stream.next().await {
            if let watcher::Event::Apply(s) | watcher::Event::InitApply(s) = ev
                && let Ok(mut t) = t.lock()
            {
                t.sts_created.entry(s.name_any()).or_insert(rv(&s));
            }
        }
    });
    timeline
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qbft_sample_comes_up_in_stages_with_a_genesis_from_its_own_keys() -> anyhow::Result<()> {
    let (client, ns, op) = setup("bringup").await?;
    let timeline = record_timeline(&client, &ns.name);
    let networks: Api<BesuNetwork> = ns.api();
    let net = qbft_network(&ns.name, 1)?;
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;
    let ready = wait_phase(&networks, &name, NetworkPhase::Ready, BRING_UP).await?;

    // 1. Every BesuNode Ready; every pod Running and Ready; every PVC Bound.
    let nodes: Api<BesuNode> = ns.api();
    let nodes = nodes.list(&ListParams::default()).await?.items;
    ensure!(
        nodes.len() == 6,
        "expected 6 BesuNodes, found {}",
        nodes.len()
    );
    for n in &nodes {
        let phase = n.status.as_ref().map(|s| s.phase);
        ensure!(
            phase == Some(NodePhase::Ready),
            "{} is {phase:?}",
            n.name_any()
        );
    }
    let pods: Api<Pod> = ns.api();
    let pods = pods.list(&ListParams::default()).await?.items;
    ensure!(pods.len() == 6, "expected 6 pods, found {}", pods.len());
    for p in &pods {
        let phase = p.status.as_ref().and_then(|s| s.phase.clone());
        ensure!(
            phase.as_deref() == Some("Running") && pod_is_ready(p),
            "pod {} not Running and Ready",
            p.name_any()
        );
    }
    let pvcs: Api<PersistentVolumeClaim> = ns.api();
    for pvc in pvcs.list(&ListParams::default()).await? {
        let phase = pvc.status.and_then(|s| s.phase);
        ensure!(
            phase.as_deref() == Some("Bound"),
            "PVC {:?} is {phase:?}",
            pvc.metadata.name
        );
    }

    // 2. Staged order, by etcd revision: validator StatefulSets after every bootnode pod
    //    was Ready; members after a commit quorum (3 of 4) of validator pods was Ready.
    {
        let t = timeline
            .lock()
            .map_err(|_| anyhow::anyhow!("timeline lock"))?;
        let ready_at = |pod: &str| t.pod_ready.get(pod).copied();
        let created_at = |sts: &str| t.sts_created.get(sts).copied();
        let bootnode_ready =
            ready_at(&format!("{name}-bootnode-0-0")).context("bootnode pod never seen Ready")?;
        for i in 0..4 {
            let sts = format!("{name}-validator-{i}");
            let created = created_at(&sts).with_context(|| format!("{sts} never seen"))?;
            ensure!(
                created > bootnode_ready,
                "{sts} created at revision {created}, before the bootnode was Ready at {bootnode_ready}"
            );
        }
        let mut validator_ready: Vec<u64> = (0..4)
            .filter_map(|i| ready_at(&format!("{name}-validator-{i}-0")))
            .collect();
        validator_ready.sort();
        ensure!(
            validator_ready.len() == 4,
            "validator pods seen Ready: {validator_ready:?}"
        );
        let quorum_ready = validator_ready[2];
        let member = created_at(&format!("{name}-member-0")).context("member never seen")?;
        ensure!(
            member > quorum_ready,
            "member created at revision {member}, before 3 validators were Ready ({quorum_ready})"
        );
    }

    // 3. Genesis: extraData names exactly the validator keys' addresses, ascending; the
    //    bootnode enodes in status match the bootnode key.
    let secrets: Api<Secret> = ns.api();
    let keys = keys_by_secret(&secrets, &name).await?;
    let mut expected: Vec<Address> = (0..4)
        .map(|i| {
            keys.get(&format!("{name}-validator-{i}-key"))
                .map(|k| k.address())
                .with_context(|| format!("no key Secret for validator {i}"))
        })
        .collect::<anyhow::Result<_>>()?;
    expected.sort();
    let cms: Api<ConfigMap> = ns.api();
    let genesis = cms.get(&format!("{name}-genesis")).await?;
    let json = genesis
        .data
        .as_ref()
        .and_then(|d| d.get("genesis.json"))
        .context("genesis.json missing")?;
    let (_, validators) = decode_genesis_validators(json)?;
    ensure!(
        validators == expected,
        "genesis validators {validators:?} != keys {expected:?}"
    );
    let status = ready.status.clone().unwrap_or_default();
    let bootnode_key = keys
        .get(&format!("{name}-bootnode-0-key"))
        .context("bootnode key")?;
    let expected_enode = enode_url(
        &bootnode_key.public_key(),
        &pod_dns_name(&format!("{name}-bootnode-0"), &ns.name),
        30303,
        None,
    );
    ensure!(
        status.bootnode_enodes == vec![expected_enode.clone()],
        "status enodes {:?}",
        status.bootnode_enodes
    );
    let listed: Vec<String> = expected.iter().map(|a| a.to_string()).collect();
    ensure!(
        status.validators.addresses == listed,
        "status addresses {:?}",
        status.validators.addresses
    );
    // Every validator joins through the bootnode.
    let validator: BesuNode = ns
        .api::<BesuNode>()
        .get(&format!("{name}-validator-0"))
        .await?;
    ensure!(
        validator.spec.bootnodes == vec![expected_enode],
        "validator bootnodes {:?}",
        validator.spec.bootnodes
    );

    // The validators' PodDisruptionBudget keeps the same bound as rollouts:
    // 4 validators, at most 4 - ceil(8/3) = 1 evicted at once.
    let pdb: k8s_openapi::api::policy::v1::PodDisruptionBudget =
        ns.api().get(&format!("{name}-validators")).await?;
    let max_unavailable = pdb.spec.as_ref().and_then(|s| s.max_unavailable.clone());
    ensure!(
        max_unavailable == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1)),
        "validator PDB maxUnavailable {max_unavailable:?}"
    );

    // 5. Steady state: once settled, zero writes by the operator in this namespace over
    //    60 s, across ~12 resyncs (the operator runs with --resync-seconds 5).
    let audit = cluster().audit();
    let (settled, window_end, in_ns) =
        operator::writes_over_quiet_window(&ns.name, Duration::from_secs(60)).await?;
    ensure!(in_ns.is_empty(), "the operator wrote at rest: {in_ns:#?}");
    let reads = audit
        .events()?
        .iter()
        .filter(|e| e.user_agent.starts_with(OPERATOR_AGENT) && !e.is_write())
        .filter(|e| {
            e.received_at()
                .is_ok_and(|t| t >= settled && t <= window_end)
        })
        .count();
    ensure!(
        reads > 0,
        "the operator made no request at all in the window; the check proves nothing"
    );
    eprintln!("steady state: 0 writes and {reads} reads by the operator in 60 s");

    // 8. No key material in logs or Events.
    let all: Vec<NodeKey> = keys.into_values().collect();
    assert_no_key_material(&client, &ns.name, &op, &all).await?;
    safety::assert_chain_safe(&ns.name, &name, &[], 5_000).await?;
    drop(op);
    ns.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_killed_during_bring_up_converges_to_the_same_keys_and_genesis()
-> anyhow::Result<()> {
    let (client, ns, mut op) = setup("restart").await?;
    let networks: Api<BesuNetwork> = ns.api();
    let secrets: Api<Secret> = ns.api();
    let cms: Api<ConfigMap> = ns.api();
    let nodes: Api<BesuNode> = ns.api();
    let net = qbft_network(&ns.name, 1)?;
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;

    // Kill at successive points of the bring-up; restart each time.
    let mut first_keys: BTreeMap<String, String> = BTreeMap::new();
    let mut first_checksum: Option<String> = None;
    let points: [KillPoint; 4] = [
        ("first key Secret exists", |p| p.keys >= 1),
        ("genesis ConfigMap exists", |p| p.genesis),
        ("first BesuNode exists", |p| p.nodes >= 1),
        ("a validator BesuNode exists", |p| p.validators >= 1),
    ];
    for (what, reached) in points {
        let seen = wait_until(what, BRING_UP, || async {
            let keys = keys_by_secret(&secrets, &name).await?;
            let genesis = cms.get_opt(&format!("{name}-genesis")).await?;
            let all = nodes.list(&ListParams::default()).await?.items;
            let validators = all
                .iter()
                .filter(|n| n.name_any().contains("-validator-"))
                .count();
            let progress = Progress {
                keys: keys.len(),
                genesis: genesis.is_some(),
                nodes: all.len(),
                validators,
            };
            if reached(&progress) {
                Ok(Check::Done((keys, genesis)))
            } else {
                not_yet(format!(
                    "{} keys, genesis {}, {} nodes",
                    keys.len(),
                    genesis.is_some(),
                    all.len()
                ))
            }
        })
        .await?;
        op.kill();
        eprintln!(
            "killed the operator once {what} ({} keys, genesis {})",
            seen.0.len(),
            seen.1.is_some()
        );
        for (secret, key) in &seen.0 {
            let prev = first_keys
                .entry(secret.clone())
                .or_insert_with(|| key.to_besu_key_file());
            ensure!(
                *prev == key.to_besu_key_file(),
                "key in {secret} changed across a restart"
            );
        }
        if let Some(cm) = seen.1 {
            let sum = cm
                .annotations()
                .get("besu.nodeops.dev/genesis-checksum")
                .cloned();
            let prev = first_checksum.get_or_insert_with(|| sum.clone().unwrap_or_default());
            ensure!(
                Some(prev.clone()) == sum,
                "genesis checksum changed across a restart"
            );
        }
        op.restart()?;
    }
    let ready = wait_phase(&networks, &name, NetworkPhase::Ready, BRING_UP).await?;

    // Same keys, same genesis, nothing duplicated.
    let keys = keys_by_secret(&secrets, &name).await?;
    ensure!(
        keys.len() == 6,
        "expected 6 key Secrets, found {}",
        keys.len()
    );
    for (secret, key) in &keys {
        if let Some(prev) = first_keys.get(secret) {
            ensure!(*prev == key.to_besu_key_file(), "key in {secret} changed");
        }
    }
    let checksum = ready.status.clone().unwrap_or_default().genesis_checksum;
    ensure!(
        checksum.is_some() && checksum == first_checksum,
        "genesis checksum {checksum:?} != first seen {first_checksum:?}"
    );
    let node_names: BTreeSet<String> = nodes
        .list(&ListParams::default())
        .await?
        .iter()
        .map(|n| n.name_any())
        .collect();
    let expected: BTreeSet<String> = [
        "bootnode-0",
        "validator-0",
        "validator-1",
        "validator-2",
        "validator-3",
        "member-0",
    ]
    .iter()
    .map(|s| format!("{name}-{s}"))
    .collect();
    ensure!(node_names == expected, "BesuNodes {node_names:?}");
    let sts: Api<StatefulSet> = ns.api();
    ensure!(
        sts.list(&ListParams::default()).await?.items.len() == 6,
        "StatefulSet count"
    );
    let genesis_cms = cms
        .list(&ListParams::default())
        .await?
        .iter()
        .filter(|c| c.name_any().ends_with("-genesis"))
        .count();
    ensure!(genesis_cms == 1, "{genesis_cms} genesis ConfigMaps");
    ensure!(op.starts == 5, "operator started {} times", op.starts);

    let all: Vec<NodeKey> = keys.into_values().collect();
    assert_no_key_material(&client, &ns.name, &op, &all).await?;
    safety::assert_chain_safe(&ns.name, &name, &[], 5_000).await?;
    drop(op);
    ns.cleanup().await
}

/// Where to SIGKILL the operator: a description and when it is reached.
type KillPoint = (&'static str, fn(&Progress) -> bool);

/// How far a bring-up got, as seen from the API.
struct Progress {
    keys: usize,
    genesis: bool,
    nodes: usize,
    validators: usize,
}

async fn wait_gone<K>(api: &Api<K>, selector: &str, what: &str) -> anyhow::Result<()>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    wait_until(
        &format!("{what} to be gone"),
        Duration::from_secs(90),
        || async {
            let left: Vec<String> = api
                .list(&ListParams::default().labels(selector))
                .await?
                .iter()
                .map(|o| o.name_any())
                .collect();
            if left.is_empty() {
                Ok(Check::Done(()))
            } else {
                not_yet(format!("left: {left:?}"))
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_keeps_keys_and_volumes_and_recreating_resumes_the_same_chain() -> anyhow::Result<()>
{
    let (client, ns, op) = setup("retain").await?;
    let networks: Api<BesuNetwork> = ns.api();
    let net = qbft_network(&ns.name, 0)?;
    ensure!(
        net.spec.deletion_policy == DeletionPolicy::Retain,
        "sample should default to Retain"
    );
    let name = net.name_any();
    let selector = format!("{LABEL_NETWORK}={name}");
    networks.create(&PostParams::default(), &net).await?;
    let first = wait_phase(&networks, &name, NetworkPhase::Ready, BRING_UP).await?;
    let secrets: Api<Secret> = ns.api();
    let pvcs: Api<PersistentVolumeClaim> = ns.api();
    let keys_before = keys_by_secret(&secrets, &name).await?;
    let secret_versions: BTreeMap<String, Option<String>> = secrets
        .list(&ListParams::default().labels(&selector))
        .await?
        .iter()
        .map(|s| (s.name_any(), s.resource_version()))
        .collect();
    let pvc_uids: BTreeSet<String> = pvcs
        .list(&ListParams::default())
        .await?
        .iter()
        .filter_map(|p| p.uid())
        .collect();
    ensure!(
        pvc_uids.len() == 5,
        "expected 5 PVCs, found {}",
        pvc_uids.len()
    );

    // The user deletes the network: its validators go down together, by the user's
    // hand, not the operator's (labelled for the safety monitor).
    let deleted_at = std::time::SystemTime::now();
    let deleted_ms = u64::try_from(
        deleted_at
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?;
    let injected: Vec<safety::Injected> = (0..4)
        .map(|i| safety::Injected {
            pod: format!("{name}-validator-{i}-0"),
            at_ms: deleted_ms,
            what: "the user deleted the network".into(),
        })
        .collect();
    networks.delete(&name, &DeleteParams::foreground()).await?;
    wait_gone(&ns.api::<BesuNode>(), &selector, "BesuNodes").await?;
    wait_gone(&ns.api::<StatefulSet>(), &selector, "StatefulSets").await?;
    ensure!(
        keys_by_secret(&secrets, &name).await?.len() == 5,
        "key Secrets were deleted under Retain"
    );
    let pvc_after: BTreeSet<String> = pvcs
        .list(&ListParams::default())
        .await?
        .iter()
        .filter_map(|p| p.uid())
        .collect();
    ensure!(pvc_after == pvc_uids, "PVCs changed under Retain");
    ensure!(
        ns.api::<ConfigMap>()
            .get_opt(&format!("{name}-genesis"))
            .await?
            .is_some(),
        "genesis deleted under Retain"
    );

    let net = qbft_network(&ns.name, 0)?;
    networks.create(&PostParams::default(), &net).await?;
    let second = wait_phase(&networks, &name, NetworkPhase::Ready, BRING_UP).await?;
    let sum = |n: &BesuNetwork| n.status.clone().unwrap_or_default().genesis_checksum;
    ensure!(
        sum(&first).is_some() && sum(&first) == sum(&second),
        "genesis checksum changed: {:?} -> {:?}",
        sum(&first),
        sum(&second)
    );
    let versions_after: BTreeMap<String, Option<String>> = secrets
        .list(&ListParams::default().labels(&selector))
        .await?
        .iter()
        .map(|s| (s.name_any(), s.resource_version()))
        .collect();
    ensure!(
        versions_after == secret_versions,
        "key Secrets were rewritten: {secret_versions:?} -> {versions_after:?}"
    );
    let pvc_final: BTreeSet<String> = pvcs
        .list(&ListParams::default())
        .await?
        .iter()
        .filter_map(|p| p.uid())
        .collect();
    ensure!(
        pvc_final == pvc_uids,
        "the re-created network did not reuse its volumes"
    );

    // The same chain resumed: same keys and genesis in the witness too, and no stop
    // longer than the time the network was gone.
    let gone_for = deleted_at.elapsed()?;
    let max_gap_ms = u64::try_from(gone_for.as_millis())? + 5_000;
    safety::assert_chain_safe(&ns.name, &name, &injected, max_gap_ms).await?;

    let all: Vec<NodeKey> = keys_before.into_values().collect();
    assert_no_key_material(&client, &ns.name, &op, &all).await?;
    drop(op);
    ns.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_policy_removes_everything_of_the_network() -> anyhow::Result<()> {
    let (_client, ns, op) = setup("delete").await?;
    let networks: Api<BesuNetwork> = ns.api();
    let mut net = qbft_network(&ns.name, 0)?;
    net.spec.deletion_policy = DeletionPolicy::Delete;
    let name = net.name_any();
    let selector = format!("{LABEL_NETWORK}={name}");
    networks.create(&PostParams::default(), &net).await?;
    wait_phase(&networks, &name, NetworkPhase::Ready, BRING_UP).await?;
    ensure!(
        !ns.api::<PersistentVolumeClaim>()
            .list(&ListParams::default())
            .await?
            .items
            .is_empty(),
        "no PVCs to delete"
    );
    // The bring-up was safe; what follows is the user deleting the chain.
    safety::assert_chain_safe(&ns.name, &name, &[], 5_000).await?;

    networks.delete(&name, &DeleteParams::background()).await?;
    wait_gone(&ns.api::<BesuNode>(), &selector, "BesuNodes").await?;
    wait_gone(&ns.api::<StatefulSet>(), &selector, "StatefulSets").await?;
    wait_gone(&ns.api::<Secret>(), &selector, "key Secrets").await?;
    wait_gone(&ns.api::<ConfigMap>(), &selector, "ConfigMaps").await?;
    wait_gone(&ns.api::<PersistentVolumeClaim>(), &selector, "PVCs").await?;
    wait_gone(&ns.api::<Pod>(), &selector, "pods").await?;
    drop(op);
    ns.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_validator_key_degrades_the_network_and_is_never_regenerated()
-> anyhow::Result<()> {
    let (client, ns, op) = setup("lostkey").await?;
    let networks: Api<BesuNetwork> = ns.api();
    let net = qbft_network(&ns.name, 0)?;
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;
    wait_phase(&networks, &name, NetworkPhase::Ready, BRING_UP).await?;
    let secrets: Api<Secret> = ns.api();
    let secret_name = format!("{name}-validator-2-key");
    let original = secrets.get(&secret_name).await?;
    let keys = keys_by_secret(&secrets, &name).await?;

    // The test's fault: the key is lost. Stopping its validator is the operator's right
    // answer to it, so that outage is labelled as the test's.
    let lost_at = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?;
    let injected = [safety::Injected {
        pod: format!("{name}-validator-2-0"),
        at_ms: lost_at,
        what: "the test deleted its key Secret".into(),
    }];
    secrets
        .delete(&secret_name, &DeleteParams::default())
        .await?;
    let degraded = wait_phase(
        &networks,
        &name,
        NetworkPhase::Degraded,
        Duration::from_secs(60),
    )
    .await?;
    let message = degraded
        .status
        .clone()
        .unwrap_or_default()
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    ensure!(
        message.contains(&secret_name) && message.contains("never regenerates"),
        "Degraded message: {message}"
    );
    // The node stops rather than start under a new identity.
    let sts: Api<StatefulSet> = ns.api();
    wait_until(
        "validator-2 scaled to 0",
        Duration::from_secs(60),
        || async {
            let s = sts.get(&format!("{name}-validator-2")).await?;
            let node: BesuNode = ns
                .api::<BesuNode>()
                .get(&format!("{name}-validator-2"))
                .await?;
            let replicas = s.spec.replicas;
            let phase = node.status.map(|s| s.phase);
            if replicas == Some(0) && phase == Some(NodePhase::Degraded) {
                Ok(Check::Done(()))
            } else {
                not_yet(format!("replicas {replicas:?}, node {phase:?}"))
            }
        },
    )
    .await?;
    ensure!(
        secrets.get_opt(&secret_name).await?.is_none(),
        "the operator regenerated a lost validator key"
    );

    // Restoring the Secret from backup heals the network with the same identity.
    let mut restored = original.clone();
    restored.metadata = kube::api::ObjectMeta {
        name: original.metadata.name.clone(),
        labels: original.metadata.labels.clone(),
        annotations: original.metadata.annotations.clone(),
        ..Default::default()
    };
    secrets.create(&PostParams::default(), &restored).await?;
    wait_phase(
        &networks,
        &name,
        NetworkPhase::Ready,
        Duration::from_secs(90),
    )
    .await?;
    // Same key before and after (the witness would see a new one), and no other
    // validator taken down meanwhile.
    safety::assert_chain_safe(&ns.name, &name, &injected, 5_000).await?;

    let all: Vec<NodeKey> = keys.into_values().collect();
    assert_no_key_material(&client, &ns.name, &op, &all).await?;
    drop(op);
    ns.cleanup().await
}

/// 42 characters and a 0x prefix, so admission (which checks only those, cheaply) lets it
/// through; not hex, so only the reconciler can tell.
const BAD_ALLOC_KEY: &str = "0xzz00000000000000000000000000000000000000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alloc_key_that_is_not_an_address_is_reported_as_degraded() -> anyhow::Result<()> {
    let (_client, ns, op) = setup("badalloc").await?;
    let networks: Api<BesuNetwork> = ns.api();
    let mut net = qbft_network(&ns.name, 0)?;
    let account = net
        .spec
        .genesis
        .alloc
        .values()
        .next()
        .cloned()
        .context("sample has an alloc account")?;
    net.spec
        .genesis
        .alloc
        .insert(BAD_ALLOC_KEY.to_string(), account);
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;
    let degraded = wait_phase(
        &networks,
        &name,
        NetworkPhase::Degraded,
        Duration::from_secs(60),
    )
    .await?;
    let message = degraded
        .status
        .unwrap_or_default()
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    if !message.contains(BAD_ALLOC_KEY) {
        bail!("Degraded message does not name the bad alloc key: {message}");
    }
    ensure!(
        ns.api::<ConfigMap>()
            .get_opt(&format!("{name}-genesis"))
            .await?
            .is_none(),
        "a genesis was written from a bad spec"
    );
    drop(op);
    ns.cleanup().await
}

/// A bring-up is driven by watch events alone (issue: bring-up at the speed of the
/// cluster): from the apply to Ready, no reconcile of either controller is started by a
/// timer (a requeue, the resync or an error retry), as the operator's own
/// `besu_operator_reconcile_triggers` counts them. And the data volumes are the
/// operator's, created before their StatefulSets with the owner `deletionPolicy: Delete`
/// wants: the StatefulSet controller never writes to a claim, so it cannot race the
/// volume binder (whose 409 Conflict used to leave a claim Pending until its 15 s
/// resync).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bring_up_waits_on_watch_events_never_on_timers_and_no_claim_is_contended()
-> anyhow::Result<()> {
    let c = cluster();
    let client = c.client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "events").await?;
    // The binary's default resync (300 s), as users run it: the test operators' 5 s
    // resync would itself be a timer during the bring-up.
    let op = Operator::start_with_resync(c, &ns.name, 300)?;
    let before = op.timer_triggers().await?;
    let networks: Api<BesuNetwork> = ns.api();
    let mut net = qbft_network(&ns.name, 1)?;
    net.spec.deletion_policy = DeletionPolicy::Delete;
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;
    wait_phase(&networks, &name, NetworkPhase::Ready, BRING_UP).await?;
    let after = op.timer_triggers().await?;
    let started: Vec<String> = after
        .iter()
        .filter(|(k, v)| **v > before.get(*k).copied().unwrap_or(0.0))
        .map(|(k, v)| format!("{k}: {}", v - before.get(k).copied().unwrap_or(0.0)))
        .collect();
    ensure!(
        started.is_empty(),
        "reconciles started by timers between the apply and Ready: {started:?}"
    );
    let all = op.metrics().await?;
    let by_events: f64 = all
        .iter()
        .filter(|(k, _)| {
            k.starts_with("besu_operator_reconcile_triggers_total{")
                && (k.contains("trigger=\"object\"") || k.contains("trigger=\"related\""))
        })
        .map(|(_, v)| v)
        .sum();
    ensure!(
        by_events >= 6.0,
        "the trigger counter saw {by_events} event-driven reconciles for 6 nodes: is it counting?"
    );

    // Every data volume: created by the operator, owned by its BesuNode (Delete), and
    // never written by the StatefulSet controller.
    let nodes: BTreeMap<String, String> = ns
        .api::<BesuNode>()
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter_map(|n| Some((n.name_any(), n.uid()?)))
        .collect();
    let claims = ns
        .api::<PersistentVolumeClaim>()
        .list(&ListParams::default())
        .await?
        .items;
    ensure!(
        claims.len() == 6,
        "expected 6 claims, found {}",
        claims.len()
    );
    for claim in &claims {
        let node = claim
            .name_any()
            .strip_prefix("data-")
            .and_then(|n| n.strip_suffix("-0"))
            .map(str::to_string)
            .with_context(|| format!("claim {}", claim.name_any()))?;
        let owner = nodes
            .get(&node)
            .with_context(|| format!("no BesuNode {node}"))?;
        ensure!(
            claim
                .owner_references()
                .iter()
                .any(|o| &o.uid == owner && o.kind == "BesuNode"),
            "claim {} is not owned by BesuNode {node}: {:?}",
            claim.name_any(),
            claim.owner_references()
        );
    }
    let audit = c.audit().events()?;
    let in_ns = |e: &&support::AuditEvent| {
        e.stage == "ResponseComplete"
            && e.object_ref.as_ref().is_some_and(|o| {
                o.namespace.as_deref() == Some(ns.name.as_str())
                    && o.resource.as_deref() == Some("persistentvolumeclaims")
            })
    };
    let created_by_operator = audit
        .iter()
        .filter(in_ns)
        .filter(|e| e.verb == "create" && e.user_agent.starts_with(OPERATOR_AGENT))
        .count();
    ensure!(
        created_by_operator == 6,
        "the operator created {created_by_operator} claims, not 6"
    );
    let by_statefulset_controller: Vec<String> = audit
        .iter()
        .filter(in_ns)
        // Updates are the race; a create that lost to ours (409, from a stale cache) is not.
        .filter(|e| {
            matches!(e.verb.as_str(), "update" | "patch")
                && e.user.username.ends_with(":statefulset-controller")
        })
        .map(support::AuditEvent::summary)
        .collect();
    ensure!(
        by_statefulset_controller.is_empty(),
        "the StatefulSet controller updated claims: {by_statefulset_controller:?}"
    );
    drop(op);
    ns.cleanup().await
}

/// No key material in the operator's memory at rest. Run as its own identity, whose Secret
/// reads the audit log records with their responses (hack/cluster/audit-policy.yaml), the
/// operator lists, gets and watches Secrets as metadata only: a generated key's identity
/// is in its Secret's annotations. The one Secret it reads in full is the key the user
/// imported (no annotations to go by), and that once per version, not once per reconcile.
#[tokio::test]
async fn secrets_are_read_as_metadata_and_an_imported_key_in_full_once() -> anyhow::Result<()> {
    const USER: &str = "besu-operator-audited";
    let c = cluster();
    let client = c.client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "secret-audit").await?;
    let imported_key = NodeKey::generate();
    let imported = "user-bootnode-key";
    let secrets: Api<Secret> = ns.api();
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": { "name": imported },
                "stringData": { "key": imported_key.to_besu_key_file() },
            }))?,
        )
        .await?;
    let mut net = qbft_network(&ns.name, 0)?;
    net.spec.imported_keys = Some(serde_json::from_value(
        serde_json::json!({ "bootnodes": [imported] }),
    )?);
    let name = net.name_any();
    let op = Operator::start_as(&ns.name, c.kubeconfig_of("operator-audited"))?;
    let networks: Api<BesuNetwork> = ns.api();
    networks.create(&PostParams::default(), &net).await?;
    let ready = wait_phase(&networks, &name, NetworkPhase::Ready, BRING_UP).await?;

    // The imported key is the bootnode's identity.
    let status = ready.status.clone().unwrap_or_default();
    let expected_enode = enode_url(
        &imported_key.public_key(),
        &pod_dns_name(&format!("{name}-bootnode-0"), &ns.name),
        30303,
        None,
    );
    ensure!(
        status.bootnode_enodes == vec![expected_enode],
        "bootnode enodes {:?} are not the imported key's",
        status.bootnode_enodes
    );
    // Reconciles go on at rest (resync 5 s): wait for many reads of the imported key's
    // metadata (each network reconcile makes one: the key is not the operator's, so no
    // cache of its own holds it), then judge every Secret read the operator made.
    let audit = c.audit();
    let reads = || -> anyhow::Result<Vec<support::AuditEvent>> {
        Ok(audit
            .events()?
            .into_iter()
            // A watch is recorded when its response starts (it completes only when closed).
            .filter(|e| {
                e.user.username == USER
                    && (e.stage == "ResponseComplete"
                        || (e.verb == "watch" && e.stage == "ResponseStarted"))
            })
            .filter(|e| {
                e.object_ref.as_ref().is_some_and(|o| {
                    o.resource.as_deref() == Some("secrets")
                        && o.namespace.as_deref() == Some(ns.name.as_str())
                })
            })
            .collect())
    };
    let events = wait_until(
        "10 reads of the imported key Secret by the audited operator",
        Duration::from_secs(120),
        || async {
            let events = reads()?;
            let gets = events
                .iter()
                .filter(|e| {
                    e.verb == "get"
                        && e.object_ref
                            .as_ref()
                            .is_some_and(|o| o.name.as_deref() == Some(imported))
                })
                .count();
            if gets >= 10 {
                Ok(Check::Done(events))
            } else {
                not_yet(format!("{gets} reads"))
            }
        },
    )
    .await?;
    let kind = |e: &support::AuditEvent| {
        e.response_object
            .as_ref()
            .map(|o| o.kind.clone())
            .unwrap_or_default()
    };
    let name_of = |e: &support::AuditEvent| {
        e.object_ref
            .as_ref()
            .and_then(|o| o.name.clone())
            .unwrap_or_default()
    };
    let (mut lists, mut watches, mut metadata_gets, mut imported_metadata_gets) = (0, 0, 0, 0);
    let (mut creates, mut not_found) = (0, 0);
    let mut full_reads = Vec::new();
    for e in &events {
        let ok = e
            .response_status
            .as_ref()
            .is_some_and(|s| s.code.is_some_and(|c| c < 300));
        match (e.verb.as_str(), kind(e).as_str()) {
            ("watch", _) => watches += 1,
            // The keys it generates (creates are recorded without bodies).
            ("create", _) => creates += 1,
            ("list", "PartialObjectMetadataList") => lists += 1,
            ("get", "PartialObjectMetadata") => {
                metadata_gets += 1;
                if name_of(e) == imported {
                    imported_metadata_gets += 1;
                }
            }
            // A Secret that does not exist yet: nothing was read.
            ("get", _) if !ok => not_found += 1,
            (verb, kind) => full_reads.push(format!("{verb} {} -> {kind}", name_of(e))),
        }
    }
    eprintln!(
        "secret audit: {lists} metadata lists, {watches} watches, {metadata_gets} metadata gets ({imported_metadata_gets} of the imported key), {not_found} gets of absent Secrets, {creates} creates, full reads: {full_reads:?}"
    );
    ensure!(
        creates == 4,
        "{creates} Secrets created, 4 generated keys expected"
    );
    ensure!(
        watches >= 2,
        "{watches} Secret watches (one per controller expected)"
    );
    ensure!(
        imported_metadata_gets >= 3,
        "the imported key's metadata was read {imported_metadata_gets} times: too few reconciles to judge"
    );
    let imported_full = format!("get {imported} -> Secret");
    ensure!(
        full_reads.iter().all(|r| *r == imported_full),
        "Secrets read in full besides the imported key's: {full_reads:?}"
    );
    // Once per version, by each controller at most (both may miss the shared cache at
    // the same moment).
    ensure!(
        (1..=2).contains(&full_reads.len()),
        "the imported key was read in full {} times, its metadata {imported_metadata_gets} times",
        full_reads.len()
    );
    // The generated keys are annotated with their identities.
    let keys = keys_by_secret(&secrets, &name).await?;
    ensure!(keys.len() == 4, "{} generated key Secrets", keys.len());
    for (secret, key) in &keys {
        let live = secrets.get(secret).await?;
        let annotated = live.annotations().get("besu.nodeops.dev/public-key");
        ensure!(
            annotated == Some(&key.public_key().to_hex()),
            "{secret} is annotated with public key {annotated:?}"
        );
    }

    let mut all_keys: Vec<NodeKey> = keys.into_values().collect();
    all_keys.push(imported_key);
    assert_no_key_material(&client, &ns.name, &op, &all_keys).await?;
    drop(op);
    ns.cleanup().await
}

/// `spec.backup` and `spec.restore` on a cluster that does not serve
/// `snapshot.storage.k8s.io/v1` (the run's kwok-only cluster: only the real node's cluster
/// installs the VolumeSnapshot CRDs): no crash loop, no silence. The backup is refused with
/// a condition and a Warning naming what to install, and the chain comes up regardless; a
/// restore creates no node and says why.
#[tokio::test]
async fn backup_and_restore_without_the_snapshot_api_say_what_to_install() -> anyhow::Result<()> {
    let (client, ns, op) = setup("nosnap").await?;
    // Every field is documented where users look it up.
    for field in [
        "backup.schedule",
        "backup.volumeSnapshotClassName",
        "backup.keep",
        "backup.source",
        "backup.seedNewNodes",
        "backup.readyTimeoutSeconds",
        "restore.fromSnapshot",
    ] {
        let text = cluster().kubectl(&["explain", &format!("besunetwork.spec.{field}")])?;
        let description = text
            .split("DESCRIPTION:")
            .nth(1)
            .map(str::trim)
            .unwrap_or_default();
        ensure!(
            description.len() > 20,
            "kubectl explain besunetwork.spec.{field} documents nothing:\n{text}"
        );
    }
    if client
        .list_api_group_resources("snapshot.storage.k8s.io/v1")
        .await
        .is_ok()
    {
        eprintln!(
            "skipped: this cluster serves snapshot.storage.k8s.io/v1 (BESU_SIDE_CLUSTER=0 runs every test on the real node's cluster)"
        );
        return Ok(());
    }
    let networks: Api<BesuNetwork> = ns.api();
    let mut net = qbft_network(&ns.name, 1)?;
    net.spec.backup = Some(serde_json::from_value(serde_json::json!({
        "schedule": "0 * * * *",
        "volumeSnapshotClassName": "any",
    }))?);
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;
    let ready = wait_phase(&networks, &name, NetworkPhase::Ready, BRING_UP).await?;
    let conditions = ready.status.map(|s| s.conditions).unwrap_or_default();
    let failing = conditions
        .iter()
        .find(|c| c.type_ == "BackupFailing")
        .context("no BackupFailing condition")?;
    ensure!(
        failing.status == "True"
            && failing.reason == "SnapshotAPINotServed"
            && failing.message.contains("external-snapshotter"),
        "BackupFailing: {} {} {}",
        failing.status,
        failing.reason,
        failing.message
    );
    let events: Api<Event> = ns.api();
    wait_until("a Warning about the snapshot API", BRING_UP, || async {
        let found = events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .any(|e| {
                e.type_.as_deref() == Some("Warning")
                    && e.reason.as_deref() == Some("SnapshotAPINotServed")
            });
        if found {
            Ok(Check::Done(()))
        } else {
            not_yet("none yet")
        }
    })
    .await?;

    let mut restored = qbft_network(&ns.name, 1)?;
    restored.metadata.name = Some("restored".into());
    restored.spec.restore = Some(serde_json::from_value(serde_json::json!({
        "fromSnapshot": "latest",
    }))?);
    networks.create(&PostParams::default(), &restored).await?;
    let degraded = wait_phase(&networks, "restored", NetworkPhase::Degraded, BRING_UP).await?;
    let why = degraded
        .status
        .map(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Degraded")
        .context("no Degraded condition")?;
    ensure!(
        why.reason == "RestoreRefused" && why.message.contains("external-snapshotter"),
        "Degraded: {} {}",
        why.reason,
        why.message
    );
    let nodes: Api<BesuNode> = ns.api();
    let made = nodes
        .list(&ListParams::default().labels("besu.nodeops.dev/network=restored"))
        .await?;
    ensure!(
        made.items.is_empty(),
        "the unrestorable network created nodes"
    );
    drop(op);
    ns.cleanup().await
}
