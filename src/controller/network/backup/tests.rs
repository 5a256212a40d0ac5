//! The backup decisions, from fixtures of the sample network (decide::tests::plan).

use std::collections::BTreeSet;
use std::sync::Arc;

use besu_operator_api::{BackupSpec, BesuNetworkStatus, NodeType};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::controller::network::decide::plan;
use crate::controller::network::decide::tests::plan::{
    address, all_nodes, network, observed, with_node,
};
use crate::controller::snapshots::Snapshot;

fn at(seconds: i64) -> Timestamp {
    // 2027-01-15T08:00:00Z: on the hour.
    Timestamp::from_second(1_800_000_000 + seconds).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn spec(schedule: &str) -> BackupSpec {
    BackupSpec {
        schedule: schedule.into(),
        volume_snapshot_class_name: "csi".into(),
        keep: 2,
        source: BackupSource::Auto,
        seed_new_nodes: true,
        ready_timeout_seconds: 60,
    }
}

/// The sample network (2 bootnodes, `validators`, `members`), every node Ready at height
/// 100 with the chain converged, created an hour before `at(0)`, backing up hourly.
fn ready(validators: i32, members: i32) -> Observed {
    let mut net = network(validators, members);
    net.spec.backup = Some(spec("0 * * * *"));
    net.metadata.creation_timestamp = Some(Time(at(-3600)));
    let mut o = observed(net, validators);
    all_nodes(&mut o, validators, 100);
    for m in 0..members {
        with_node(&mut o, NodeType::Member, m, 100);
    }
    o.chain.onchain = Some((0..validators).map(address).collect::<BTreeSet<_>>());
    o.snapshots = Some(Listed::Snapshots(Vec::new()));
    for n in o.nodes.keys() {
        o.pods.present.insert(n.clone());
    }
    o
}

fn with_status(o: &mut Observed, backup: BackupStatus) {
    let mut net = (*o.network).clone();
    net.status = Some(BesuNetworkStatus {
        backup: Some(backup),
        ..BesuNetworkStatus::default()
    });
    o.network = Arc::new(net);
}

fn backup_at(o: &Observed, now: Timestamp) -> BackupPlan {
    plan(o, now).expect("plan").backup
}

fn condition(p: &BackupPlan) -> (bool, String) {
    let c = p.condition.clone().expect("a BackupFailing condition");
    assert_eq!(c.type_, "BackupFailing");
    (c.status, c.reason)
}

fn snapshot(name: &str, ready: bool, seconds: i64) -> Snapshot {
    Snapshot {
        name: name.into(),
        ready,
        error: None,
        network: Some("qbft".into()),
        node: Some("qbft-member-0".into()),
        height: Some(100),
        genesis_checksum: Some("abc".into()),
        managed: true,
        created: Some(at(seconds)),
        claim: Some("data-qbft-member-0-0".into()),
    }
}

fn running(node: &str, snapshot: &str, phase: &str, started: i64) -> BackupStatus {
    BackupStatus {
        last_schedule_time: Some(at(0).to_string()),
        in_progress: Some(BackupAttempt {
            node: node.into(),
            snapshot: snapshot.into(),
            height: 100,
            started_at: at(started).to_string(),
            phase: phase.into(),
            failure: None,
            settle_at_height: None,
        }),
        ..BackupStatus::default()
    }
}

/// Stopped by a run: the field and the run's mark.
fn mark_stopped(o: &mut Observed, node: &str) {
    let n = o.nodes.get_mut(node).expect("node");
    n.spec.stopped = true;
    n.annotations_mut()
        .insert(STOPPED_FOR_BACKUP_ANNOTATION.into(), "true".into());
}

fn stop(o: &mut Observed, node: &str) {
    mark_stopped(o, node);
    o.pods.endpoints.remove(node);
    o.pods.present.remove(node);
}

#[test]
fn without_the_snapshot_api_it_says_what_to_install_and_stops_nothing() {
    let mut o = ready(4, 1);
    o.snapshots = Some(Listed::NotServed);
    let p = backup_at(&o, at(5));
    assert_eq!(condition(&p), (true, "SnapshotAPINotServed".into()));
    assert!(
        p.condition
            .unwrap()
            .message
            .contains("external-snapshotter")
    );
    assert_eq!(p.stop, None);
    assert!(p.create.is_none());
}

#[test]
fn a_schedule_that_is_not_cron_is_refused_with_an_example() {
    let mut o = ready(4, 1);
    let mut net = (*o.network).clone();
    net.spec.backup = Some(spec("every hour"));
    o.network = Arc::new(net);
    let p = backup_at(&o, at(5));
    assert_eq!(condition(&p), (true, "InvalidSchedule".into()));
    assert!(p.condition.unwrap().message.contains("0 */6 * * *"));
    assert_eq!(p.stop, None);
}

#[test]
fn before_its_time_nothing_runs_and_the_network_looks_again_at_the_next_tick() {
    let mut o = ready(4, 1);
    with_status(
        &mut o,
        BackupStatus {
            last_schedule_time: Some(at(0).to_string()),
            ..BackupStatus::default()
        },
    );
    let p = backup_at(&o, at(600));
    assert_eq!(p.stop, None);
    assert_eq!(p.requeue, Some(Duration::from_secs(3000)));
    assert_eq!(condition(&p), (false, "Scheduled".into()));
    // Six fields: seconds first.
    with_status(
        &mut o,
        BackupStatus {
            last_schedule_time: Some(at(600).to_string()),
            ..BackupStatus::default()
        },
    );
    let mut net = (*o.network).clone();
    net.spec.backup = Some(spec("*/20 * * * * *"));
    o.network = Arc::new(net);
    assert_eq!(
        backup_at(&o, at(605)).requeue,
        Some(Duration::from_secs(15))
    );
}

#[test]
fn a_due_run_stops_a_member_and_remembers_the_tick_it_serves() {
    let o = ready(4, 1);
    let p = backup_at(&o, at(30));
    assert_eq!(p.stop.as_deref(), Some("qbft-member-0"));
    let status = p.status.expect("status");
    let run = status.in_progress.expect("a run");
    assert_eq!(run.phase, STOPPING);
    assert_eq!(run.height, 100);
    assert_eq!(run.snapshot, "qbft-20270115-080000");
    assert_eq!(status.last_schedule_time, Some(at(0).to_string()));
    assert_eq!(p.requeue, Some(POLL));
    assert!(p.create.is_none(), "no snapshot before the pod is gone");
    assert_eq!(p.events[0].1, "BackupStarted");
}

#[test]
fn a_due_run_waits_for_every_node_ready_a_rollout_and_a_producing_chain() {
    let mut o = ready(4, 1);
    o.pods.endpoints.remove("qbft-validator-2");
    let p = backup_at(&o, at(30));
    assert_eq!(p.stop, None);
    assert_eq!(condition(&p), (false, "Waiting".into()));
    assert!(p.condition.unwrap().message.contains("qbft-validator-2"));
    assert_eq!(p.requeue, Some(HELD_RETRY));

    let mut o = ready(4, 1);
    o.advancing = Some(false);
    let p = backup_at(&o, at(30));
    assert_eq!(p.stop, None);
    assert!(p.condition.unwrap().message.contains("not seen producing"));

    // A changed image: the rollout goes first.
    let mut o = ready(4, 1);
    let mut net = (*o.network).clone();
    net.spec.image = "hyperledger/besu:other".into();
    o.network = Arc::new(net);
    let p = backup_at(&o, at(30));
    assert_eq!(p.stop, None);
    assert!(p.condition.unwrap().message.contains("rollout"));
}

#[test]
fn without_members_validators_are_snapshotted_one_at_a_time_within_the_fault_budget() {
    let o = ready(4, 0);
    let p = backup_at(&o, at(30));
    assert_eq!(p.stop.as_deref(), Some("qbft-validator-0"));
    // The next run takes the next validator.
    let mut o = ready(4, 0);
    with_status(
        &mut o,
        BackupStatus {
            last_schedule_time: Some(at(-3600).to_string()),
            last_snapshot: Some(SnapshotRecord {
                name: "qbft-20270115-070000".into(),
                node: "qbft-validator-0".into(),
                height: 50,
                time: at(-3590).to_string(),
            }),
            ..BackupStatus::default()
        },
    );
    assert_eq!(
        backup_at(&o, at(30)).stop.as_deref(),
        Some("qbft-validator-1")
    );
    // 4 validators tolerate 1 down: with one already down, none may stop. (The run is
    // also held for the node that is not Ready; the budget holds on its own too.)
    let mut o = ready(4, 0);
    o.nodes.remove("qbft-validator-3");
    o.pods.endpoints.remove("qbft-validator-3");
    assert_eq!(source_node(&o, &spec("0 * * * *"), None), None);
    let o = ready(4, 0);
    assert!(source_node(&o, &spec("0 * * * *"), None).is_some());
    // source: member on a network without one: nothing.
    let mut s = spec("0 * * * *");
    s.source = BackupSource::Member;
    assert_eq!(source_node(&o, &s, None), None);
}

#[test]
fn the_snapshot_is_taken_only_once_the_pod_is_gone() {
    let mut o = ready(4, 1);
    with_status(&mut o, running("qbft-member-0", "snap-a", STOPPING, 0));
    mark_stopped(&mut o, "qbft-member-0");
    let p = backup_at(&o, at(5));
    assert!(p.create.is_none());
    assert_eq!(p.stop.as_deref(), Some("qbft-member-0"));
    stop(&mut o, "qbft-member-0");
    let p = backup_at(&o, at(6));
    let new = p.create.expect("the snapshot");
    assert_eq!(new.claim, "data-qbft-member-0-0");
    assert_eq!(new.height, 100);
    assert_eq!(new.genesis_checksum, "abc");
    assert_eq!(new.class, "csi");
    assert_eq!(p.status.unwrap().in_progress.unwrap().phase, SNAPSHOTTING);
}

#[test]
fn a_ready_snapshot_is_recorded_the_node_started_and_the_oldest_pruned_once_it_is_back() {
    let mut o = ready(4, 1);
    with_status(&mut o, running("qbft-member-0", "snap-c", SNAPSHOTTING, 0));
    stop(&mut o, "qbft-member-0");
    o.snapshots = Some(Listed::Snapshots(vec![
        snapshot("snap-a", true, -7200),
        snapshot("snap-b", true, -3600),
        snapshot("snap-c", true, 1),
    ]));
    let p = backup_at(&o, at(10));
    assert!(p.create.is_none());
    assert_eq!(p.start, ["qbft-member-0"]);
    let status = p.status.expect("status");
    let last = status.last_snapshot.expect("recorded");
    assert_eq!((last.name.as_str(), last.height), ("snap-c", 100));
    assert_eq!(status.in_progress.expect("still running").phase, STARTING);
    assert!(
        p.prune.is_empty(),
        "nothing is pruned while the node is down"
    );
    assert_eq!(p.events[0].1, "BackupSucceeded");

    // The node back: the run settles 2 blocks later, then ends, and keep = 2 prunes
    // snap-a.
    let after = p_status_after(&o, at(10));
    with_status(&mut o, after);
    let n = o.nodes.get_mut("qbft-member-0").unwrap();
    n.spec.stopped = false;
    with_node(&mut o, NodeType::Member, 0, 101);
    let p = backup_at(&o, at(20));
    assert!(
        p.prune.is_empty(),
        "nothing is pruned before the run settles"
    );
    let after = p.status.expect("status");
    with_status(&mut o, after);
    for h in o.chain.heights.values_mut() {
        *h = 103;
    }
    o.chain.head = Some(103);
    let p = backup_at(&o, at(24));
    assert!(p.status.as_ref().unwrap().in_progress.is_none());
    assert_eq!(p.prune, ["snap-a"]);
    assert_eq!(condition(&p), (false, "Succeeded".into()));
}

fn p_status_after(o: &Observed, now: Timestamp) -> BackupStatus {
    backup_at(o, now).status.expect("status")
}

#[test]
fn a_snapshot_not_ready_in_time_fails_the_run_and_starts_the_node_again() {
    let mut o = ready(4, 1);
    with_status(&mut o, running("qbft-member-0", "snap-c", SNAPSHOTTING, 0));
    stop(&mut o, "qbft-member-0");
    o.snapshots = Some(Listed::Snapshots(vec![snapshot("snap-c", false, 1)]));
    let p = backup_at(&o, at(30));
    assert!(
        p.start.is_empty() && p.stop.is_some(),
        "within the timeout it waits"
    );
    let p = backup_at(&o, at(61));
    assert_eq!(p.start, ["qbft-member-0"]);
    assert_eq!(condition(&p), (true, "SnapshotFailed".into()));
    let status = p.status.unwrap();
    assert!(status.last_failure.unwrap().contains("within 60s"));
    assert_eq!(p.events[0].0, EventType::Warning);
    // A snapshot that reports an error fails at once.
    let mut failed = snapshot("snap-c", false, 1);
    failed.error = Some("disk full".into());
    o.snapshots = Some(Listed::Snapshots(vec![failed]));
    let p = backup_at(&o, at(5));
    assert!(
        p.status
            .unwrap()
            .last_failure
            .unwrap()
            .contains("disk full")
    );
}

#[test]
fn a_node_left_stopped_without_a_run_is_started_and_so_are_all_when_backup_goes() {
    let mut o = ready(4, 1);
    mark_stopped(&mut o, "qbft-member-0");
    // One a person stopped (no run's mark) is theirs: it stays stopped.
    o.nodes.get_mut("qbft-validator-3").unwrap().spec.stopped = true;
    with_status(
        &mut o,
        BackupStatus {
            last_schedule_time: Some(at(0).to_string()),
            ..BackupStatus::default()
        },
    );
    assert_eq!(backup_at(&o, at(10)).start, ["qbft-member-0"]);
    let mut net = (*o.network).clone();
    net.spec.backup = None;
    o.network = Arc::new(net);
    let p = backup_at(&o, at(10));
    assert_eq!(p.start, ["qbft-member-0"]);
    assert!(p.condition.is_none() && p.status.is_none());
}

#[test]
fn new_nodes_start_from_the_newest_ready_snapshot_of_the_same_chain() {
    let mut o = ready(4, 1);
    let mut other = snapshot("snap-other", true, 50);
    other.genesis_checksum = Some("another-chain".into());
    o.snapshots = Some(Listed::Snapshots(vec![
        snapshot("snap-a", true, 1),
        snapshot("snap-b", true, 2),
        snapshot("snap-c", false, 3),
        other,
    ]));
    // Not before this network has taken one itself.
    assert_eq!(seed(&o, o.snapshots.as_ref()), None);
    with_status(
        &mut o,
        BackupStatus {
            last_snapshot: Some(SnapshotRecord {
                name: "snap-b".into(),
                ..SnapshotRecord::default()
            }),
            ..BackupStatus::default()
        },
    );
    assert_eq!(seed(&o, o.snapshots.as_ref()).as_deref(), Some("snap-b"));
    let mut net = (*o.network).clone();
    net.spec.backup.as_mut().unwrap().seed_new_nodes = false;
    o.network = Arc::new(net);
    assert_eq!(seed(&o, o.snapshots.as_ref()), None);
}

fn restoring(from: &str) -> Observed {
    let mut net = network(4, 1);
    net.spec.restore = Some(besu_operator_api::RestoreSpec {
        from_snapshot: from.into(),
    });
    let mut o = observed(net, 4);
    let mut other = snapshot("snap-other", true, 50);
    other.genesis_checksum = Some("another-chain".into());
    o.snapshots = Some(Listed::Snapshots(vec![
        snapshot("snap-a", true, 1),
        snapshot("snap-b", true, 2),
        snapshot("snap-c", false, 3),
        other,
    ]));
    o
}

#[test]
fn a_restore_takes_the_newest_ready_snapshot_of_its_own_chain_and_refuses_another() {
    let o = restoring("latest");
    assert_eq!(restore_source(&o), Ok(Some("snap-b".into())));
    let o = restoring("snap-a");
    assert_eq!(restore_source(&o), Ok(Some("snap-a".into())));
    let why = restore_source(&restoring("snap-other")).unwrap_err();
    assert!(why.contains("another genesis"), "{why}");
    let why = restore_source(&restoring("snap-c")).unwrap_err();
    assert!(why.contains("not ready"), "{why}");
    let why = restore_source(&restoring("nope")).unwrap_err();
    assert!(why.contains("does not exist"), "{why}");
    let mut o = restoring("latest");
    o.snapshots = Some(Listed::NotServed);
    assert!(
        restore_source(&o)
            .unwrap_err()
            .contains("external-snapshotter")
    );
    // Once resolved, the status's choice stands (a newer snapshot changes nothing).
    let mut o = restoring("latest");
    let mut net = (*o.network).clone();
    net.status = Some(BesuNetworkStatus {
        restored_from: Some("snap-a".into()),
        ..BesuNetworkStatus::default()
    });
    o.network = Arc::new(net);
    assert_eq!(restore_source(&o), Ok(Some("snap-a".into())));
}

#[test]
fn a_restore_starts_every_node_from_the_snapshot_and_validators_one_at_a_time() {
    use crate::controller::network::decide::stage_nodes;
    let mut o = restoring("latest");
    // Unresolved (a refused snapshot): nothing is created.
    assert!(stage_nodes(&o, &[NodeType::Bootnode]).unwrap().is_empty());
    o.restore = Some("snap-b".into());
    let boot = stage_nodes(&o, &[NodeType::Bootnode]).unwrap();
    assert_eq!(boot.len(), 2);
    assert!(
        boot.iter()
            .all(|n| n.spec.from_snapshot.as_deref() == Some("snap-b"))
    );
    for b in 0..2 {
        with_node(&mut o, NodeType::Bootnode, b, 100);
    }
    // 4 validators tolerate 1 down: one on restored data at a time.
    let v = stage_nodes(&o, &[NodeType::Validator]).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].spec.from_snapshot.as_deref(), Some("snap-b"));
    with_node(&mut o, NodeType::Validator, 0, 100);
    let name = "qbft-validator-0";
    o.pods.endpoints.remove(name);
    o.nodes.get_mut(name).unwrap().status = None;
    assert!(stage_nodes(&o, &[NodeType::Validator]).unwrap().is_empty());
    with_node(&mut o, NodeType::Validator, 0, 100);
    let v = stage_nodes(&o, &[NodeType::Validator]).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].metadata.name.as_deref(), Some("qbft-validator-1"));
}

#[test]
fn a_run_waits_for_every_node_to_answer_in_sync_on_a_fresh_read_not_for_ready_pods_alone() {
    // A pod Ready by decree whose node does not answer yet (it is starting).
    let mut o = ready(4, 0);
    o.chain.heights.remove("qbft-validator-3");
    let p = backup_at(&o, at(30));
    assert_eq!(p.stop, None);
    assert!(p.condition.unwrap().message.contains("qbft-validator-3"));
    // One far behind the head (syncing).
    let mut o = ready(4, 0);
    o.chain.heights.insert("qbft-validator-3".into(), 10);
    assert_eq!(backup_at(&o, at(30)).stop, None);
    // The observer's view, not a fresh read: wait for one.
    let mut o = ready(4, 0);
    o.fresh_chain = false;
    let p = backup_at(&o, at(30));
    assert_eq!(p.stop, None);
    assert!(p.condition.unwrap().message.contains("fresh read"));
    // A run is due: the reconcile reads the chain afresh.
    assert!(run_due(&o.network, at(30)));
    let mut net = (*o.network).clone();
    net.spec.backup = None;
    assert!(!run_due(&net, at(30)));
}

#[test]
fn a_run_ends_when_its_node_answers_in_sync_again_not_when_its_pod_is_ready() {
    let mut o = ready(4, 1);
    with_status(&mut o, running("qbft-member-0", "snap-c", STARTING, 0));
    o.chain.heights.remove("qbft-member-0");
    let p = backup_at(&o, at(10));
    let run = p.status.unwrap().in_progress.expect("still running");
    assert_eq!(
        run.settle_at_height, None,
        "the pod is Ready but its node does not answer"
    );
    // It answers in sync: the run settles 2 blocks later, not before.
    o.chain.heights.insert("qbft-member-0".into(), 100);
    let p = backup_at(&o, at(11));
    let run = p.status.unwrap().in_progress.expect("settling");
    assert_eq!(run.settle_at_height, Some(102));
    let mut settling = running("qbft-member-0", "snap-c", STARTING, 0);
    settling.in_progress.as_mut().unwrap().settle_at_height = Some(102);
    with_status(&mut o, settling);
    assert!(backup_at(&o, at(12)).status.unwrap().in_progress.is_some());
    for h in o.chain.heights.values_mut() {
        *h = 102;
    }
    o.chain.head = Some(102);
    let p = backup_at(&o, at(13));
    assert!(p.status.unwrap().in_progress.is_none());
}
