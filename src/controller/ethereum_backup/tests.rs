use super::*;
use crate::rpc::beacon::BeaconSync;
use besu_operator_api::EthereumNodeStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

fn t(s: &str) -> Timestamp {
    s.parse().expect("time")
}

fn node(replicas: i32, status: Option<EthereumNodeStatus>) -> EthereumNode {
    let mut n: EthereumNode = serde_json::from_value(json!({
        "apiVersion": "ethereum.nodeops.dev/v1alpha1", "kind": "EthereumNode",
        "metadata": {"name": "full", "namespace": "ns", "creationTimestamp": "2026-11-29T10:00:00Z"},
        "spec": {
            "network": "custom",
            "customNetwork": {"configMapName": "devnet", "chainId": 32382},
            "replicas": replicas,
            "backup": {"schedule": "*/20 * * * * *", "volumeSnapshotClassName": "csi", "keep": 1},
        },
    }))
    .expect("node");
    n.status = status;
    n
}

fn synced(pod: &str, head: u64) -> ReplicaView {
    ReplicaView {
        pod: pod.to_string(),
        ready: true,
        execution_head: Some(head),
        execution_syncing: Some(false),
        consensus: Some(BeaconSync::default()),
        ..ReplicaView::default()
    }
}

fn id() -> Identity {
    Identity {
        chain: "custom-32382-abc".to_string(),
        clients: "geth+prysm".to_string(),
    }
}

fn copy(backup: &str, node: &str, v: Volume3, ready: bool, created: &str) -> VolumeCopy {
    let id = id();
    VolumeCopy {
        snapshot: Snapshot {
            name: copy_name(backup, v),
            ready,
            error: None,
            network: None,
            node: None,
            height: None,
            genesis_checksum: None,
            managed: true,
            created: Some(t(created)),
            claim: None,
        },
        backup: Some(backup.to_string()),
        volume: Some(volume_name(v).to_string()),
        node: Some(node.to_string()),
        height: Some(40),
        chain: Some(id.chain),
        clients: Some(id.clients),
    }
}

fn backup(name: &str, node: &str, ready: bool, created: &str) -> Backup {
    Backup {
        name: name.to_string(),
        copies: BACKED_UP
            .iter()
            .map(|v| copy(name, node, *v, ready, created))
            .collect(),
    }
}

struct World {
    node: EthereumNode,
    backups: Option<Option<Vec<Backup>>>,
    pods: Vec<ReplicaView>,
    present: Vec<String>,
    at_rest: bool,
    now: Timestamp,
}

impl World {
    fn new(replicas: i32) -> World {
        let pods: Vec<ReplicaView> = (0..replicas)
            .map(|i| synced(&format!("full-{i}"), 40 + u64::try_from(i).unwrap_or(0)))
            .collect();
        World {
            node: node(replicas, None),
            backups: Some(Some(Vec::new())),
            present: pods.iter().map(|p| p.pod.clone()).collect(),
            pods,
            at_rest: true,
            now: t("2026-11-29T10:00:21Z"),
        }
    }

    fn plan(&self) -> EthBackupPlan {
        plan_backup(&self.view())
    }

    fn view(&self) -> BackupView<'_> {
        BackupView {
            node: &self.node,
            identity: Some(id()),
            backups: self.backups.clone(),
            pods: &self.pods,
            present: &self.present,
            at_rest: self.at_rest,
            now: self.now,
        }
    }

    /// Carries a plan's status into the node, as the reconcile writes it.
    fn carry(&mut self, p: &EthBackupPlan) {
        let mut st = self.node.status.clone().unwrap_or_default();
        st.backup = p.status.clone();
        if let Some(c) = &p.condition {
            st.conditions = vec![Condition {
                type_: c.type_.to_string(),
                status: if c.status { "True" } else { "False" }.to_string(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                observed_generation: None,
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    self.now,
                ),
            }];
        }
        self.node.status = Some(st);
    }
}

fn run(p: &EthBackupPlan) -> BackupAttempt {
    p.status
        .as_ref()
        .and_then(|s| s.in_progress.clone())
        .expect("a run in progress")
}

#[test]
fn a_due_run_stops_the_last_replica_copies_both_volumes_and_starts_it_again() {
    let mut w = World::new(2);
    let p = w.plan();
    assert!(p.stop_last, "{p:?}");
    let r = run(&p);
    assert_eq!((r.node.as_str(), r.phase.as_str()), ("full-1", STOPPING));
    assert_eq!(r.height, 41);
    assert_eq!(r.snapshot, "full-20261129-100020");
    assert!(p.events.iter().any(|e| e.1 == "BackupStarted"));
    w.carry(&p);

    // The pod still there: kept stopped, nothing copied yet.
    w.now = t("2026-11-29T10:00:23Z");
    w.pods[1].execution_head = Some(42);
    let p = w.plan();
    assert!(p.stop_last && p.create.is_empty());
    assert_eq!(run(&p).height, 42, "the last head read before it stopped");
    w.carry(&p);

    // Gone: both volumes are copied, labelled and annotated.
    w.pods.pop();
    w.present.pop();
    let p = w.plan();
    assert!(p.stop_last);
    assert_eq!(run(&p).phase, SNAPSHOTTING);
    assert_eq!(p.create.len(), 2, "{:?}", p.create);
    let c = &p.create[0];
    assert_eq!(c["metadata"]["name"], "full-20261129-100020-execution");
    assert_eq!(
        c["spec"]["source"]["persistentVolumeClaimName"],
        "execution-full-1"
    );
    assert_eq!(c["metadata"]["annotations"][HEIGHT_ANNOTATION], "42");
    assert_eq!(
        c["metadata"]["annotations"][CHAIN_ANNOTATION],
        "custom-32382-abc"
    );
    assert_eq!(c["metadata"]["labels"][LABEL_ETHEREUM_NODE], "full");
    assert_eq!(
        p.create[1]["spec"]["source"]["persistentVolumeClaimName"],
        "consensus-full-1"
    );
    w.carry(&p);

    // One copy ready: still stopped, nothing created again.
    let mut half = backup("full-20261129-100020", "full", true, "2026-11-29T10:00:24Z");
    half.copies[1].snapshot.ready = false;
    w.backups = Some(Some(vec![
        backup("full-old", "full", true, "2026-11-29T09:00:00Z"),
        half,
    ]));
    let p = w.plan();
    assert!(p.stop_last && p.create.is_empty(), "{p:?}");
    w.carry(&p);

    // Both ready: recorded, the replica starts again.
    w.backups = Some(Some(vec![
        backup("full-old", "full", true, "2026-11-29T09:00:00Z"),
        backup("full-20261129-100020", "full", true, "2026-11-29T10:00:24Z"),
    ]));
    let p = w.plan();
    assert!(!p.stop_last);
    assert_eq!(run(&p).phase, STARTING);
    let last = p
        .status
        .as_ref()
        .and_then(|s| s.last_snapshot.clone())
        .expect("recorded");
    assert_eq!(
        (last.name.as_str(), last.height),
        ("full-20261129-100020", 42)
    );
    assert!(p.events.iter().any(|e| e.1 == "BackupSucceeded"));
    w.carry(&p);

    // Back but still syncing: the run goes on.
    let mut back = synced("full-1", 42);
    back.execution_syncing = Some(true);
    w.pods.push(back);
    w.present.push("full-1".to_string());
    let p = w.plan();
    assert!(run(&p).phase == STARTING && !p.stop_last);
    assert!(p.prune.is_empty());
    // Synced: the run ends, and the older backup goes (keep 1).
    w.pods[1] = synced("full-1", 44);
    let p = w.plan();
    assert!(p.status.as_ref().is_some_and(|s| s.in_progress.is_none()));
    assert_eq!(p.prune, ["full-old-execution", "full-old-consensus"]);
    let c = p.condition.expect("condition");
    assert!(!c.status && c.reason == "Succeeded", "{c:?}");
}

#[test]
fn a_run_waits_for_every_replica_synced_and_no_rollout() {
    let mut w = World::new(2);
    w.pods[0].execution_syncing = Some(true);
    let p = w.plan();
    assert!(!p.stop_last && p.status.as_ref().is_some_and(|s| s.in_progress.is_none()));
    let c = p.condition.expect("condition");
    assert_eq!(c.reason, "Waiting");
    assert!(c.message.contains("full-0"), "{}", c.message);
    assert_eq!(p.requeue, Some(HELD_RETRY));

    let mut w = World::new(2);
    w.at_rest = false;
    let p = w.plan();
    assert!(!p.stop_last);
    assert!(p.condition.expect("c").message.contains("rollout"));

    let mut w = World::new(2);
    w.pods.pop();
    w.present.pop();
    assert!(!w.plan().stop_last, "a replica missing");

    // Not due: nothing, and a look at the next tick.
    let mut w = World::new(1);
    w.now = t("2026-11-29T10:00:05Z");
    let p = w.plan();
    assert!(!p.stop_last);
    assert_eq!(p.requeue, Some(Duration::from_secs(15)));
    assert_eq!(p.condition.expect("c").reason, "Scheduled");
}

#[test]
fn a_failed_or_late_copy_fails_the_run_and_starts_the_replica() {
    let mut w = World::new(1);
    let p = w.plan();
    w.carry(&p);
    w.pods.clear();
    w.present.clear();
    let p = w.plan();
    w.carry(&p);
    let mut b = backup(
        "full-20261129-100020",
        "full",
        false,
        "2026-11-29T10:00:22Z",
    );
    b.copies[0].snapshot.error = Some("disk full".to_string());
    w.backups = Some(Some(vec![b]));
    let p = w.plan();
    assert!(!p.stop_last, "started again");
    assert_eq!(run(&p).phase, STARTING);
    let c = p.condition.clone().expect("c");
    assert!(c.status && c.message.contains("disk full"), "{c:?}");
    assert!(p.events.iter().any(|e| e.1 == "BackupFailed"));

    // Timeout while the copies are not ready.
    let mut w = World::new(1);
    let p = w.plan();
    w.carry(&p);
    w.pods.clear();
    w.present.clear();
    w.backups = Some(Some(vec![backup(
        "full-20261129-100020",
        "full",
        false,
        "2026-11-29T10:00:22Z",
    )]));
    w.now = t("2026-11-29T10:20:30Z");
    let p = w.plan();
    assert!(!p.stop_last);
    assert!(
        p.status
            .as_ref()
            .and_then(|s| s.last_failure.clone())
            .is_some_and(|f| f.contains("600s"))
    );
}

#[test]
fn without_the_snapshot_api_the_condition_says_what_to_install_until_the_next_tick() {
    let mut w = World::new(1);
    w.backups = Some(None);
    let p = w.plan();
    assert!(!p.stop_last);
    let c = p.condition.clone().expect("c");
    assert!(c.status && c.reason == "SnapshotAPINotServed");
    assert!(c.message.contains("external-snapshotter"));
    w.carry(&p);
    // Not listed again before the next tick, and the condition stands.
    w.backups = None;
    w.now = t("2026-11-29T10:00:30Z");
    assert!(!must_list(&w.node, false, w.now));
    let c = w.plan().condition.expect("c");
    assert_eq!(c.reason, "SnapshotAPINotServed");
    assert!(must_list(&w.node, false, t("2026-11-29T10:00:41Z")));
}

#[test]
fn a_restore_takes_a_complete_backup_of_the_same_chain_and_clients() {
    let mut w = World::new(1);
    w.node.spec.backup = None;
    w.node.spec.restore = Some(besu_operator_api::EthereumRestoreSpec {
        from_backup: "latest".to_string(),
    });
    w.backups = Some(Some(vec![
        backup("full-a", "full", true, "2026-11-29T09:00:00Z"),
        backup("full-b", "full", true, "2026-11-29T09:30:00Z"),
        backup("full-c", "full", false, "2026-11-29T09:40:00Z"),
        backup("other-z", "other", true, "2026-11-29T09:50:00Z"),
    ]));
    assert_eq!(restore_source(&w.view()), Ok(Some("full-b".to_string())));
    assert!(must_list(&w.node, true, w.now));
    assert!(must_list(&w.node, false, w.now), "until pinned");

    w.node.spec.restore = Some(besu_operator_api::EthereumRestoreSpec {
        from_backup: "other-z".to_string(),
    });
    assert_eq!(restore_source(&w.view()), Ok(Some("other-z".to_string())));

    let mut foreign = backup("alien", "x", true, "2026-11-29T09:00:00Z");
    for c in &mut foreign.copies {
        c.chain = Some("hoodi".to_string());
    }
    let mut lighthouse = backup("lh", "x", true, "2026-11-29T09:00:00Z");
    for c in &mut lighthouse.copies {
        c.clients = Some("geth+lighthouse".to_string());
    }
    w.backups = Some(Some(vec![
        foreign,
        lighthouse,
        backup("full-c", "full", false, "2026-11-29T09:40:00Z"),
    ]));
    for (wanted, says) in [
        ("alien", "another chain (hoodi"),
        ("lh", "other clients (geth+lighthouse"),
        ("full-c", "not complete"),
        ("nothing", "has no VolumeSnapshots"),
    ] {
        w.node.spec.restore = Some(besu_operator_api::EthereumRestoreSpec {
            from_backup: wanted.to_string(),
        });
        let e = restore_source(&w.view()).expect_err(wanted);
        assert!(e.contains(says), "{wanted}: {e}");
    }
    w.backups = Some(None);
    assert!(
        restore_source(&w.view())
            .expect_err("not served")
            .contains("external-snapshotter")
    );
    // Once resolved, pinned.
    w.node.status = Some(EthereumNodeStatus {
        restored_from: Some("full-a".to_string()),
        ..EthereumNodeStatus::default()
    });
    assert_eq!(restore_source(&w.view()), Ok(Some("full-a".to_string())));
    w.node.spec.backup = None;
    assert!(!must_list(&w.node, false, w.now), "pinned: no more listing");
}

#[test]
fn new_replicas_start_from_the_newest_own_backup_once_one_was_taken() {
    let mut w = World::new(2);
    w.backups = Some(Some(vec![
        backup("full-a", "full", true, "2026-11-29T09:00:00Z"),
        backup("full-b", "full", true, "2026-11-29T09:30:00Z"),
        backup("other-z", "other", true, "2026-11-29T09:50:00Z"),
    ]));
    assert_eq!(seed_source(&w.view()), None, "none taken by this node yet");
    w.node.status = Some(EthereumNodeStatus {
        backup: Some(BackupStatus {
            last_snapshot: Some(SnapshotRecord::default()),
            ..BackupStatus::default()
        }),
        ..EthereumNodeStatus::default()
    });
    assert_eq!(seed_source(&w.view()), Some("full-b".to_string()));
    if let Some(b) = w.node.spec.backup.as_mut() {
        b.seed_new_replicas = false;
    }
    assert_eq!(seed_source(&w.view()), None);
}

#[test]
fn snapshots_group_into_backups_oldest_first() {
    let obj = |name: &str, backup: &str, vol: &str, created: &str| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": SNAPSHOT_API, "kind": "VolumeSnapshot",
            "metadata": {"name": name, "namespace": "ns",
                "labels": {LABEL_ETHEREUM_NODE: "full", VOLUME_LABEL: vol},
                "annotations": {BACKUP_ANNOTATION: backup, HEIGHT_ANNOTATION: "7",
                    CHAIN_ANNOTATION: "hoodi", CLIENTS_ANNOTATION: "geth+prysm"}},
            "spec": {},
            "status": {"readyToUse": true, "creationTime": created},
        }))
        .expect("object")
    };
    let groups = group(&[
        obj("b-execution", "b", "execution", "2026-11-29T10:00:00Z"),
        obj("a-execution", "a", "execution", "2026-11-29T09:00:00Z"),
        obj("b-consensus", "b", "consensus", "2026-11-29T10:00:01Z"),
    ]);
    assert_eq!(
        groups.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert!(!groups[0].complete(), "a has no consensus copy");
    assert!(groups[1].complete());
    assert_eq!(groups[1].height(), Some(7));
    assert_eq!(groups[1].node(), Some("full"));
}
