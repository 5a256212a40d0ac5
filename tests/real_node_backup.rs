//! Backups on the real node: VolumeSnapshots of a network's data volumes through a CSI
//! driver that really copies them (hack/csi-driver, with the upstream csi-provisioner,
//! csi-snapshotter and snapshot-controller: hack/real-node.sh), and Besu stand-ins that
//! really start from what the copy holds (their first log line about the chain is read
//! from the data path, before any peer is dialled).
//!
//! - a schedule takes snapshots on time, each with the member stopped, each labelled with
//!   the node, the chain height and the genesis checksum, and retention keeps `keep`;
//! - a member added by a scale-up starts from the newest snapshot (its claim's
//!   `dataSource`) at the snapshot's height, not at 0;
//! - the network deleted (`deletionPolicy: Retain`) and its volumes lost, re-created with
//!   `spec.restore.fromSnapshot: latest`, resumes the chain from the snapshot's height;
//! - a network restoring another chain's snapshot is refused with a message;
//! - without members, validators are snapshotted one at a time and blocks keep coming
//!   (4 validators: at most 1 down);
//! - the safety monitor judges each of these chains from the stand-ins' own answers
//!   (tests/safety/real.rs): no validator down beyond the fault budget, no key changed,
//!   no gap without blocks over 20 s.

mod faults;
mod operator;
mod real_node_support;
mod safety;
mod support;

use safety::real::RealWitness;

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use besu_operator_api::{BesuNetwork, BesuNode, NetworkPhase};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use operator::{Operator, install_crds, qbft_chain_only};
use real_node_support::{
    fit_real_node, pod_of, required, snapshot_api, use_real_node, wait_blocks,
};
use support::{Check, TestNamespace, cluster, not_yet, wait_until};

/// hack/real-node.sh's StorageClass and VolumeSnapshotClass.
const CSI_CLASS: &str = "nodeops-csi";
const BRING_UP: Duration = Duration::from_secs(240);
const RUNS: Duration = Duration::from_secs(180);
/// The longest time without a block the safety monitor allows the real stand-ins (a
/// stopped validator's turn to propose costs a round change; `make test` loads the
/// machine).
const REAL_MAX_GAP_MS: u64 = 20_000;

fn ready_to_use(s: &DynamicObject) -> bool {
    s.data
        .pointer("/status/readyToUse")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn network(
    ns: &str,
    validators: i32,
    members: i32,
    backup: Option<Value>,
) -> anyhow::Result<BesuNetwork> {
    let mut net = qbft_chain_only()?;
    net.metadata.namespace = Some(ns.to_string());
    net.spec.validators = validators;
    net.spec.members = members;
    net.spec.node_template.storage.storage_class_name = Some(CSI_CLASS.to_string());
    fit_real_node(&mut net)?;
    if let Some(b) = backup {
        net.spec.backup = Some(serde_json::from_value(b)?);
    }
    Ok(net)
}

async fn wait_phase(
    api: &Api<BesuNetwork>,
    name: &str,
    phase: NetworkPhase,
) -> anyhow::Result<BesuNetwork> {
    wait_until(&format!("{name} {phase:?}"), BRING_UP, || async {
        let n = api.get(name).await?;
        let s = n.status.clone().unwrap_or_default();
        if s.phase == phase {
            Ok(Check::Done(n))
        } else {
            not_yet(format!(
                "{:?}: {}",
                s.phase,
                s.conditions
                    .iter()
                    .map(|c| format!("{}={} ({})", c.type_, c.status, c.message))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    })
    .await
}

/// The first `Chain head #N` of a pod's Besu container: the height the stand-in found on
/// its data volume at start.
fn first_head(client_ns: &str, pod: &str) -> anyhow::Result<u64> {
    let logs = cluster().kubectl(&["-n", client_ns, "logs", pod, "-c", "besu"])?;
    let line = logs
        .lines()
        .find(|l| l.contains("Chain head #"))
        .with_context(|| format!("{pod} did not report its chain head:\n{logs}"))?;
    line.split("Chain head #")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no height in {line:?}"))
}

async fn first_head_when_ready(client: &Client, ns: &str, node: &str) -> anyhow::Result<u64> {
    wait_until(
        &format!("{node}'s stand-in reporting its chain"),
        BRING_UP,
        || async {
            match pod_of(client, ns, node).await {
                Ok(p) if p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some() => {
                    match first_head(ns, &p.name_any()) {
                        Ok(h) => Ok(Check::Done(h)),
                        Err(e) => not_yet(format!("{e:#}")),
                    }
                }
                Ok(_) => not_yet("no IP yet"),
                Err(e) => not_yet(format!("{e:#}")),
            }
        },
    )
    .await
}

struct Taken {
    name: String,
    node: String,
    height: u64,
}

/// The snapshots the network's status has recorded as its last one, in order, until
/// `count` distinct ones were seen. A failed run fails the wait.
async fn wait_snapshots(
    api: &Api<BesuNetwork>,
    name: &str,
    count: usize,
) -> anyhow::Result<Vec<Taken>> {
    let seen: RefCell<Vec<Taken>> = RefCell::new(Vec::new());
    wait_until(
        &format!("{count} snapshots recorded by {name}"),
        RUNS,
        || {
            let seen = &seen;
            async move {
                let s = api.get(name).await?.status.unwrap_or_default();
                let b = s.backup.unwrap_or_default();
                if let Some(why) = b.last_failure {
                    anyhow::bail!("a backup run failed: {why}");
                }
                let mut seen = seen.borrow_mut();
                if let Some(l) = b.last_snapshot
                    && !seen.iter().any(|t| t.name == l.name)
                {
                    seen.push(Taken {
                        name: l.name,
                        node: l.node,
                        height: u64::try_from(l.height).unwrap_or(0),
                    });
                }
                if seen.len() >= count {
                    Ok(Check::Done(()))
                } else {
                    not_yet(format!("{} so far", seen.len()))
                }
            }
        },
    )
    .await?;
    Ok(seen.into_inner())
}

struct Setup {
    client: Client,
    ns: TestNamespace,
    op: Operator,
}

async fn setup(prefix: &str) -> anyhow::Result<Option<Setup>> {
    let c = cluster();
    let client = c.client().await?;
    if !required(&client).await? {
        return Ok(None);
    }
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, prefix).await?;
    use_real_node(&client, &ns.name).await?;
    let op = Operator::start(c, &ns.name)?;
    Ok(Some(Setup { client, ns, op }))
}

#[tokio::test]
async fn snapshots_on_schedule_seed_a_new_member_and_restore_a_lost_network() -> anyhow::Result<()>
{
    let Some(s) = setup("real-backup").await? else {
        return Ok(());
    };
    let (client, ns) = (&s.client, s.ns.name.as_str());
    let networks: Api<BesuNetwork> = s.ns.api();
    let snaps = snapshot_api(client, ns);

    // One bootnode, one validator (it produces alone), one member: the member is what a
    // run stops. Every 20 s, keep 2.
    let net = network(
        ns,
        1,
        1,
        Some(json!({
            "schedule": "*/20 * * * * *",
            "volumeSnapshotClassName": CSI_CLASS,
            "keep": 2,
            "readyTimeoutSeconds": 120,
        })),
    )?;
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;
    wait_phase(&networks, &name, NetworkPhase::Ready).await?;
    // The safety monitor watches the stand-ins themselves from here on.
    let witness = RealWitness::start(client.clone(), ns, &name);
    wait_blocks(client, ns, &name, 2, Duration::from_secs(60)).await?;
    let member = format!("{name}-member-0");

    // Three runs: each on its tick, of the member, at a height that grows, labelled.
    let taken = wait_snapshots(&networks, &name, 3).await?;
    let genesis = networks
        .get(&name)
        .await?
        .status
        .and_then(|s| s.genesis_checksum)
        .context("no genesis checksum")?;
    let mut ticks = Vec::new();
    for t in &taken {
        ensure!(
            t.node == member,
            "{} copied {}, not the member",
            t.name,
            t.node
        );
        ensure!(t.height > 0, "{} at height 0", t.name);
        let tick = t.name.trim_start_matches(&format!("{name}-")).to_string();
        ticks.push(tick);
    }
    println!(
        "snapshots: {}",
        taken
            .iter()
            .map(|t| format!("{} (h{})", t.name, t.height))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for w in ticks.windows(2) {
        // yyyymmdd-hhmmss: ticks on the 20 s schedule, in order.
        let secs = |t: &str| -> anyhow::Result<i64> {
            let hms = t.split('-').nth(1).context("tick")?;
            let n: i64 = hms.parse()?;
            Ok(n / 10000 * 3600 + n / 100 % 100 * 60 + n % 100)
        };
        let (a, b) = (secs(&w[0])?, secs(&w[1])?);
        ensure!(
            a % 20 == 0 && b % 20 == 0,
            "ticks off the schedule: {ticks:?}"
        );
        ensure!(b > a || b + 86400 > a, "ticks out of order: {ticks:?}");
    }
    // On time: each snapshot was created within two periods (40 s) of the tick it serves
    // (a run stops its node first, and on a loaded 2-core machine the first run after
    // the bring-up was measured 22 s late), and never for a tick it does not serve.
    for t in &taken {
        let snap = snaps.get_opt(&t.name).await?;
        let Some(snap) = snap else { continue }; // pruned already: the oldest
        let created = snap
            .data
            .pointer("/status/creationTime")
            .and_then(Value::as_str)
            .and_then(|c| c.parse::<k8s_openapi::jiff::Timestamp>().ok())
            .with_context(|| format!("{} has no creationTime", t.name))?;
        let tick = k8s_openapi::jiff::civil::DateTime::strptime(
            "%Y%m%d-%H%M%S",
            t.name.trim_start_matches(&format!("{name}-")),
        )?
        .to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC)?
        .timestamp();
        let late = created.duration_since(tick).as_secs();
        ensure!(
            (0..40).contains(&late),
            "{} created {late} s after its tick: not on time",
            t.name
        );
    }
    for w in taken.windows(2) {
        ensure!(
            w[1].height >= w[0].height,
            "heights went down: {} then {}",
            w[0].height,
            w[1].height
        );
    }
    // Retention: 2 ready snapshots, the newest two; each labelled and annotated.
    let kept = wait_until("retention down to 2 snapshots", RUNS, || async {
        let list = snaps
            .list(&ListParams::default().labels(&format!("besu.nodeops.dev/network={name}")))
            .await?;
        let ready: Vec<DynamicObject> = list.items.into_iter().filter(ready_to_use).collect();
        if ready.len() == 2 && !ready.iter().any(|s| s.name_any() == taken[0].name) {
            Ok(Check::Done(ready))
        } else {
            not_yet(format!(
                "{:?}",
                ready.iter().map(ResourceExt::name_any).collect::<Vec<_>>()
            ))
        }
    })
    .await?;
    for k in &kept {
        let a = k.annotations();
        ensure!(
            a.get("besu.nodeops.dev/genesis-checksum") == Some(&genesis),
            "{} lacks the genesis checksum: {a:?}",
            k.name_any()
        );
        ensure!(
            k.labels().get("besu.nodeops.dev/node") == Some(&member)
                && k.labels().get("besu.nodeops.dev/height").is_some(),
            "{} labels {:?}",
            k.name_any(),
            k.labels()
        );
    }

    // The schedule paused (next run: next New Year), the member back; then a second member
    // starts from the newest snapshot.
    let patch = json!({"spec": {"backup": {"schedule": "0 0 1 1 *"}}});
    networks
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let newest = wait_until("no run in progress and the member Ready", RUNS, || async {
        let s = networks.get(&name).await?.status.unwrap_or_default();
        let b = s.backup.unwrap_or_default();
        match (b.in_progress, b.last_snapshot, s.members.ready) {
            (None, Some(l), 1) => Ok(Check::Done(l)),
            (run, _, ready) => not_yet(format!("run {run:?}, members ready {ready}")),
        }
    })
    .await?;
    let patch = json!({"spec": {"members": 2}});
    networks
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let second = format!("{name}-member-1");
    let node = wait_until(&format!("{second} created"), BRING_UP, || async {
        match Api::<BesuNode>::namespaced(client.clone(), ns)
            .get_opt(&second)
            .await?
        {
            Some(n) => Ok(Check::Done(n)),
            None => not_yet("absent"),
        }
    })
    .await?;
    ensure!(
        node.spec.from_snapshot.as_deref() == Some(newest.name.as_str()),
        "{second} starts from {:?}, not the newest snapshot {}",
        node.spec.from_snapshot,
        newest.name
    );
    let claim: PersistentVolumeClaim =
        wait_until(&format!("{second}'s claim"), BRING_UP, || async {
            match s
                .ns
                .api::<PersistentVolumeClaim>()
                .get_opt(&format!("data-{second}-0"))
                .await?
            {
                Some(c) => Ok(Check::Done(c)),
                None => not_yet("absent"),
            }
        })
        .await?;
    let source = claim.spec.as_ref().and_then(|s| s.data_source.as_ref());
    ensure!(
        source.is_some_and(|d| d.kind == "VolumeSnapshot" && d.name == newest.name),
        "{second}'s claim dataSource {source:?}"
    );
    let head = first_head_when_ready(client, ns, &second).await?;
    println!(
        "{second} started at #{head} from {} (height {})",
        newest.name, newest.height
    );
    ensure!(
        head >= u64::try_from(newest.height).unwrap_or(u64::MAX),
        "{second} started at #{head}, below its snapshot's height {}: not from the snapshot",
        newest.height
    );
    wait_phase(&networks, &name, NetworkPhase::Ready).await?;

    // Runs stopped the member only: the validator never went down.
    let r = safety::assert_safe(
        &format!("{ns}/{name}"),
        &witness.witness(),
        &[],
        REAL_MAX_GAP_MS,
    )?;
    ensure!(
        r.blocks > 0 && r.validator_down_intervals == 0,
        "{}",
        r.summary()
    );
    drop(witness);

    // Disaster: the network deleted (Retain keeps keys and genesis), every volume lost.
    let last = networks
        .get(&name)
        .await?
        .status
        .and_then(|s| s.backup)
        .and_then(|b| b.last_snapshot)
        .context("no snapshot")?;
    networks.delete(&name, &DeleteParams::foreground()).await?;
    wait_until("the network and its pods gone", BRING_UP, || async {
        let pods =
            s.ns.api::<Pod>()
                .list(&ListParams::default())
                .await?
                .items
                .len();
        let gone = networks.get_opt(&name).await?.is_none();
        if gone && pods == 0 {
            Ok(Check::Done(()))
        } else {
            not_yet(format!("{pods} pods, network gone {gone}"))
        }
    })
    .await?;
    let claims: Api<PersistentVolumeClaim> = s.ns.api();
    claims
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    wait_until("every claim gone", BRING_UP, || async {
        let n = claims.list(&ListParams::default()).await?.items.len();
        if n == 0 {
            Ok(Check::Done(()))
        } else {
            not_yet(format!("{n} claims"))
        }
    })
    .await?;
    let mut again = network(ns, 1, 1, None)?;
    again.spec.restore = Some(serde_json::from_value(json!({"fromSnapshot": "latest"}))?);
    networks.create(&PostParams::default(), &again).await?;
    let witness = RealWitness::start(client.clone(), ns, &name);
    let restored = wait_phase(&networks, &name, NetworkPhase::Ready).await?;
    let from = restored
        .status
        .and_then(|s| s.restored_from)
        .context("no restoredFrom")?;
    ensure!(
        from == last.name,
        "restored from {from}, not the latest {}",
        last.name
    );
    for node in [
        format!("{name}-bootnode-0"),
        format!("{name}-validator-0"),
        format!("{name}-member-0"),
    ] {
        let c = claims.get(&format!("data-{node}-0")).await?;
        let d = c.spec.and_then(|s| s.data_source);
        ensure!(
            d.as_ref().is_some_and(|d| d.name == from),
            "{node}'s claim dataSource {d:?}"
        );
        let head = first_head_when_ready(client, ns, &node).await?;
        ensure!(
            head >= u64::try_from(last.height).unwrap_or(u64::MAX),
            "{node} started at #{head}, below the snapshot's height {}",
            last.height
        );
        println!(
            "{node} restored at #{head} (snapshot height {})",
            last.height
        );
    }
    let h = wait_blocks(client, ns, &name, 2, Duration::from_secs(60)).await?;
    ensure!(
        h > u64::try_from(last.height).unwrap_or(0),
        "the chain is at {h}, not past the snapshot's {}",
        last.height
    );
    // The restored chain, from its first block: the keys the nodes served with are the
    // ones they had, and the validator stayed up.
    safety::assert_safe(
        &format!("{ns}/{name} restored"),
        &witness.witness(),
        &[],
        REAL_MAX_GAP_MS,
    )?;
    drop(witness);

    // Another chain's snapshot is refused, with a message.
    let mut other = network(ns, 1, 0, None)?;
    other.metadata.name = Some("other".into());
    other.spec.restore = Some(serde_json::from_value(json!({"fromSnapshot": from}))?);
    networks.create(&PostParams::default(), &other).await?;
    let refused = wait_until(
        "the other network refusing the snapshot",
        BRING_UP,
        || async {
            let s = networks.get("other").await?.status.unwrap_or_default();
            match s
                .conditions
                .iter()
                .find(|c| c.type_ == "Degraded" && c.status == "True")
            {
                Some(c) => Ok(Check::Done(c.clone())),
                None => not_yet(format!("{:?}", s.phase)),
            }
        },
    )
    .await?;
    ensure!(
        refused.reason == "RestoreRefused" && refused.message.contains("another genesis"),
        "refusal: {} {}",
        refused.reason,
        refused.message
    );
    let nodes = Api::<BesuNode>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels("besu.nodeops.dev/network=other"))
        .await?;
    ensure!(nodes.items.is_empty(), "the refused network created nodes");
    drop(s.op);
    s.ns.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn without_members_validators_are_snapshotted_one_at_a_time_and_blocks_keep_coming()
-> anyhow::Result<()> {
    let Some(s) = setup("real-backup-v").await? else {
        return Ok(());
    };
    let (client, ns) = (&s.client, s.ns.name.as_str());
    let networks: Api<BesuNetwork> = s.ns.api();
    let net = network(
        ns,
        4,
        0,
        Some(json!({
            "schedule": "*/15 * * * * *",
            "volumeSnapshotClassName": CSI_CLASS,
            "keep": 4,
        })),
    )?;
    let name = net.name_any();
    // The witness from before the bring-up: the first run may start the moment the
    // network is Ready, and its validator's outage must fall after the first block seen.
    let witness = RealWitness::start(client.clone(), ns, &name);
    networks.create(&PostParams::default(), &net).await?;
    wait_phase(&networks, &name, NetworkPhase::Ready).await?;
    // Watch the validators while runs go on: never two BesuNodes stopped at once, and the
    // head keeps moving.
    let nodes: Api<BesuNode> = s.ns.api();
    let stopped_max = Cell::new(0usize);
    // The head's lowest and highest readings while a run had a validator down.
    let while_down: Cell<Option<(u64, u64)>> = Cell::new(None);
    let copied: RefCell<BTreeSet<String>> = RefCell::new(BTreeSet::new());
    let start = real_node_support::head(client, ns, &name).await?;
    wait_until("two validators snapshotted", RUNS, || {
        let (nodes, networks, stopped_max, copied, name, while_down) =
            (&nodes, &networks, &stopped_max, &copied, &name, &while_down);
        async move {
            let list = nodes.list(&ListParams::default()).await?;
            let stopped = list.items.iter().filter(|n| n.spec.stopped).count();
            stopped_max.set(stopped_max.get().max(stopped));
            ensure!(stopped <= 1, "{stopped} validators stopped at once");
            let b = networks
                .get(name)
                .await?
                .status
                .and_then(|s| s.backup)
                .unwrap_or_default();
            // A run keeps its validator down from the stop until its pod is Ready again.
            if b.in_progress.is_some()
                && let Ok(h) = real_node_support::head(client, ns, name).await
            {
                let (lo, hi) = while_down.get().unwrap_or((h, h));
                while_down.set(Some((lo.min(h), hi.max(h))));
            }
            if let Some(why) = b.last_failure {
                anyhow::bail!("a run failed: {why}");
            }
            let mut copied = copied.borrow_mut();
            if let Some(l) = b.last_snapshot {
                copied.insert(l.node);
            }
            if copied.len() >= 2 {
                Ok(Check::Done(()))
            } else {
                not_yet(format!("{copied:?}"))
            }
        }
    })
    .await?;
    let (stopped_max, copied) = (stopped_max.get(), copied.into_inner());
    let (lo, hi) = while_down
        .get()
        .context("no head read while a run had a validator down")?;
    let end = wait_blocks(client, ns, &name, 1, Duration::from_secs(60)).await?;
    println!(
        "validators snapshotted: {copied:?}; at most {stopped_max} stopped at once; head {start} -> {end}"
    );
    ensure!(stopped_max == 1, "no run was seen stopping a validator");
    ensure!(
        hi > lo,
        "no block while a run had a validator down (head {lo} throughout): the other three must keep producing"
    );
    println!("blocks while a run had a validator down: #{lo} -> #{hi}");
    ensure!(
        copied.iter().all(|n| n.contains("-validator-")),
        "{copied:?}"
    );
    // The safety monitor, from the stand-ins' own answers: each run took a validator down,
    // and never one beyond the fault budget (1 of 4).
    let r = safety::assert_safe(
        &format!("{ns}/{name}"),
        &witness.witness(),
        &[],
        REAL_MAX_GAP_MS,
    )?;
    ensure!(
        r.validator_down_intervals >= 2 && r.max_down_with_operator == 1,
        "the monitor did not see the runs' validators down: {}",
        r.summary()
    );
    drop(s.op);
    s.ns.cleanup().await?;
    Ok(())
}

/// Backups on the kwok nodes of the same cluster (the simulator's pods: the CSI driver
/// copies empty directories there), judged by the safety monitor, which counts validators
/// down from the simulator's witness with Besu's quorum rule, not the operator's: the
/// runs stop validators one at a time, and with a validator already down (the test holds
/// its new pod Pending) no run stops another until it is back.
#[tokio::test]
async fn backups_never_take_a_second_validator_down_under_the_safety_monitor() -> anyhow::Result<()>
{
    let c = cluster();
    let client = c.client().await?;
    if !required(&client).await? {
        return Ok(());
    }
    let (client, ns, op) = faults::setup("backup-safety").await?;
    let networks: Api<BesuNetwork> = ns.api();
    let mut net = faults::network(&ns.name)?;
    net.spec.members = 0;
    net.spec.node_template.storage.storage_class_name = Some(CSI_CLASS.to_string());
    net.spec.backup = Some(serde_json::from_value(json!({
        "schedule": "*/10 * * * * *",
        "volumeSnapshotClassName": CSI_CLASS,
        "keep": 3,
    }))?);
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;
    faults::wait_ready(&networks, &name).await?;
    let nodes: Api<BesuNode> = ns.api();
    let no_two_stopped = || async {
        let stopped: Vec<String> = nodes
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|n| n.spec.stopped)
            .map(ResourceExt::name_any)
            .collect();
        ensure!(stopped.len() <= 1, "stopped at once: {stopped:?}");
        Ok::<_, anyhow::Error>(stopped)
    };
    // Two runs, of two validators.
    let copied: RefCell<BTreeSet<String>> = RefCell::new(BTreeSet::new());
    let first = wait_until("two validators snapshotted", RUNS, || async {
        no_two_stopped().await?;
        let b = backup_status(&networks, &name).await?;
        let Some(l) = b.last_snapshot else {
            return not_yet("no snapshot yet");
        };
        let mut copied = copied.borrow_mut();
        copied.insert(l.node.clone());
        if copied.len() >= 2 && b.in_progress.is_none() {
            Ok(Check::Done(l))
        } else {
            not_yet(format!("{copied:?}"))
        }
    })
    .await?;
    ensure!(
        copied.borrow().iter().all(|n| n.contains("-validator-")),
        "{:?}",
        copied.borrow()
    );
    // A validator down that the operator did not cause: its pod deleted, the new one held
    // Pending. Runs keep coming due; none may stop another validator meanwhile. The
    // schedule is paused while the fault is set up: the hold applies to every new pod, so
    // a run's restarted validator would be held too (the test's doing, not the operator's).
    set_schedule(&networks, &name, "0 0 1 1 *").await?;
    wait_until("no run in progress", RUNS, || async {
        match backup_status(&networks, &name).await?.in_progress {
            None => Ok(Check::Done(())),
            Some(run) => not_yet(format!("{run:?}")),
        }
    })
    .await?;
    let pods: Api<Pod> = ns.api();
    let victim = format!("{name}-validator-3-0");
    hold(&client, &ns.name, true).await?;
    let at_ms = faults::now_ms();
    pods.delete(&victim, &DeleteParams::default()).await?;
    let injected = safety::Injected {
        pod: victim.clone(),
        at_ms,
        what: "the test deleted the pod and held its replacement Pending".into(),
    };
    // The fault in place (the operator counts 3 of 4 validators Ready), then runs come due.
    wait_until("the operator to see validator-3 down", RUNS, || async {
        let s = networks.get(&name).await?.status.unwrap_or_default();
        if s.validators.ready == 3 {
            Ok(Check::Done(()))
        } else {
            not_yet(format!("validators {}", s.validators.summary))
        }
    })
    .await?;
    set_schedule(&networks, &name, "*/10 * * * * *").await?;
    let held = wait_until(
        "a due run held back for the down validator",
        RUNS,
        || async {
            no_two_stopped().await?;
            let s = networks.get(&name).await?.status.unwrap_or_default();
            let b = s.backup.unwrap_or_default();
            let cond = s
                .conditions
                .iter()
                .find(|c| c.type_ == "BackupFailing")
                .cloned();
            match (b.in_progress, cond) {
                (None, Some(c)) if c.reason == "Waiting" => Ok(Check::Done(c.message)),
                (run, c) => not_yet(format!("run {run:?}, {c:?}")),
            }
        },
    )
    .await?;
    ensure!(
        held.contains("validator-3"),
        "held back for another reason: {held}"
    );
    // Released: the held pod keeps its unmatched selector, so it goes; its replacement
    // lands.
    hold(&client, &ns.name, false).await?;
    pods.delete(&victim, &DeleteParams::default()).await?;
    // Back: the runs go on.
    wait_until("a run after the validator came back", RUNS, || async {
        no_two_stopped().await?;
        let b = backup_status(&networks, &name).await?;
        match b.last_snapshot {
            Some(l) if l.name != first.name => Ok(Check::Done(())),
            other => not_yet(format!("{other:?}")),
        }
    })
    .await?;
    safety::assert_chain_safe(&ns.name, &name, &[injected], faults::MAX_GAP_MS).await?;
    drop(op);
    ns.cleanup().await
}

async fn set_schedule(networks: &Api<BesuNetwork>, name: &str, cron: &str) -> anyhow::Result<()> {
    networks
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"backup": {"schedule": cron}}})),
        )
        .await?;
    Ok(())
}

/// While `held`, pods created in the namespace get a node selector no node matches.
async fn hold(client: &Client, ns: &str, held: bool) -> anyhow::Result<()> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let value = if held {
        json!("nodeops.dev/held=by-test")
    } else {
        Value::Null
    };
    let patch = json!({"metadata": {"annotations": {"scheduler.alpha.kubernetes.io/node-selector": value}}});
    api.patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

async fn backup_status(
    networks: &Api<BesuNetwork>,
    name: &str,
) -> anyhow::Result<besu_operator_api::BackupStatus> {
    Ok(networks
        .get(name)
        .await?
        .status
        .and_then(|s| s.backup)
        .unwrap_or_default())
}
