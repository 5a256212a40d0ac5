//! Backups of an EthereumNode (`spec.backup`), and the restore and seeding that start
//! replicas from them, decided here as pure functions of what the reconcile read; the
//! reconcile carries them out.
//!
//! A backup is one replica's execution and consensus volumes, copied together as
//! VolumeSnapshots while that replica is stopped: the clients' databases (LevelDB,
//! Pebble, RocksDB) are not guaranteed consistent from a live copy, and the two volumes
//! must hold the same moment of the chain. The replica is the last ordinal, the only one
//! a StatefulSet can stop (it is scaled to `replicas - 1`); with one replica the node is
//! offline while its volumes are copied. The run's memory is `status.backup.inProgress`,
//! so a restarted operator carries on where it stopped.
//!
//! - A run starts only with every replica Ready and synced and no rollout under way.
//! - The validator client's volume is never copied: a validator started on an older
//!   slashing-protection database could sign again what it signed after the copy.
//! - Each snapshot is annotated with the backup it belongs to, the replica's execution
//!   head, the chain (a public network's name, or a custom network's chain ID and files'
//!   checksum) and the clients: a restore from another chain or other clients is refused.
//! - A replica started from a copy of another replica's volumes would share its P2P
//!   identity; the pods of a node with backup or restore run `besu-operator
//!   data-identity` first, which forgets a copied identity (see `cli::data_identity`).

use std::time::Duration;

use besu_operator_api::{
    BackupAttempt, BackupStatus, EthereumNetwork, EthereumNode, LABEL_ETHEREUM_NODE, SnapshotRecord,
};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::events::EventType;
use serde_json::{Value, json};

use super::ethereum::{ReplicaView, replica_synced};
use super::network::backup::{HELD_RETRY, POLL, SNAPSHOTTING, STARTING, STOPPING};
use super::network::backup::{
    due, fail_run, next, parse_schedule, parse_time, snapshot_name, until,
};
use super::snapshots::{NOT_SERVED, SNAPSHOT_API, Snapshot};
use super::status::DesiredCondition;
use crate::render::ethereum::{Volume3, replica_claim_name, volume_name};
use crate::render::{MANAGED_BY, MANAGED_BY_LABEL};

/// The backup a snapshot belongs to (annotation).
pub const BACKUP_ANNOTATION: &str = "ethereum.nodeops.dev/backup";
/// Which of the replica's volumes a snapshot copies (`execution`, `consensus`): a label,
/// so that the operator lists only EthereumNode snapshots.
pub const VOLUME_LABEL: &str = "ethereum.nodeops.dev/volume";
/// The replica's execution head when it was stopped (annotation).
pub const HEIGHT_ANNOTATION: &str = "ethereum.nodeops.dev/height";
/// The chain the volumes hold (annotation): see [`Identity`].
pub const CHAIN_ANNOTATION: &str = "ethereum.nodeops.dev/chain";
/// The clients that wrote them (annotation), `<execution>+<consensus>`.
pub const CLIENTS_ANNOTATION: &str = "ethereum.nodeops.dev/clients";

/// The volumes a backup copies (never the validator client's).
pub const BACKED_UP: [Volume3; 2] = [Volume3::Execution, Volume3::Consensus];

/// What chain data a node holds: only a backup of the same may start its volumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// A public network's name, or `custom-<chainId>-<checksum of the network's files>`.
    pub chain: String,
    /// `<execution client>+<consensus client>`.
    pub clients: String,
}

/// The identity of `node`'s chain data; None while a custom network's files are not read.
pub fn identity(node: &EthereumNode, network_checksum: Option<&str>) -> Option<Identity> {
    let spec = &node.spec;
    let chain = match spec.network {
        EthereumNetwork::Custom => {
            let chain_id = spec.custom_network.as_ref()?.chain_id;
            format!("custom-{chain_id}-{}", network_checksum?)
        }
        n => n.as_str().to_string(),
    };
    Some(Identity {
        chain,
        clients: format!(
            "{}+{}",
            spec.execution.client.as_str(),
            spec.consensus.client.as_str()
        ),
    })
}

/// A VolumeSnapshot of one of a replica's volumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeCopy {
    /// What every VolumeSnapshot says (name, readiness, error, creation).
    pub snapshot: Snapshot,
    pub backup: Option<String>,
    pub volume: Option<String>,
    pub node: Option<String>,
    pub height: Option<u64>,
    pub chain: Option<String>,
    pub clients: Option<String>,
}

impl VolumeCopy {
    pub fn from_object(o: &DynamicObject) -> VolumeCopy {
        let a = o.annotations();
        VolumeCopy {
            snapshot: Snapshot::from_object(o),
            backup: a.get(BACKUP_ANNOTATION).cloned(),
            volume: o.labels().get(VOLUME_LABEL).cloned(),
            node: o.labels().get(LABEL_ETHEREUM_NODE).cloned(),
            height: a.get(HEIGHT_ANNOTATION).and_then(|h| h.parse().ok()),
            chain: a.get(CHAIN_ANNOTATION).cloned(),
            clients: a.get(CLIENTS_ANNOTATION).cloned(),
        }
    }
}

/// A backup: the snapshots of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    pub name: String,
    pub copies: Vec<VolumeCopy>,
}

impl Backup {
    /// The copy of `v`.
    pub fn copy_of(&self, v: Volume3) -> Option<&VolumeCopy> {
        self.copies
            .iter()
            .find(|c| c.volume.as_deref() == Some(volume_name(v)))
    }

    /// Every backed-up volume copied and ready to use.
    pub fn complete(&self) -> bool {
        BACKED_UP.iter().all(|v| {
            self.copy_of(*v)
                .is_some_and(|c| c.snapshot.ready && c.snapshot.error.is_none())
        })
    }

    /// Why it failed (a copy's error).
    pub fn error(&self) -> Option<String> {
        self.copies.iter().find_map(|c| c.snapshot.error.clone())
    }

    fn first<'a, T>(&'a self, f: impl Fn(&'a VolumeCopy) -> Option<T>) -> Option<T> {
        self.copies.iter().find_map(f)
    }

    pub fn node(&self) -> Option<&str> {
        self.first(|c| c.node.as_deref())
    }

    pub fn height(&self) -> Option<u64> {
        self.first(|c| c.height)
    }

    pub fn created(&self) -> Option<Timestamp> {
        self.copies.iter().filter_map(|c| c.snapshot.created).max()
    }

    /// Whether its data is of `id`'s chain and clients; Err: why not, for the user.
    pub fn matches(&self, id: &Identity) -> Result<(), String> {
        let chain = self.first(|c| c.chain.as_deref());
        let clients = self.first(|c| c.clients.as_deref());
        match (chain, clients) {
            (Some(c), _) if c != id.chain => Err(format!(
                "backup {} holds another chain ({c}; this node's is {})",
                self.name, id.chain
            )),
            (_, Some(c)) if c != id.clients => Err(format!(
                "backup {} was written by other clients ({c}; this node runs {})",
                self.name, id.clients
            )),
            (Some(_), Some(_)) => Ok(()),
            _ => Err(format!(
                "backup {} does not say which chain and clients it holds (no {CHAIN_ANNOTATION} and {CLIENTS_ANNOTATION} annotations): restore from a backup this operator took",
                self.name
            )),
        }
    }
}

/// The label selector of every EthereumNode snapshot the operator took in a namespace.
pub fn selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY},{VOLUME_LABEL}")
}

/// Snapshots grouped into backups, oldest first.
pub fn group(objects: &[DynamicObject]) -> Vec<Backup> {
    let mut out: Vec<Backup> = Vec::new();
    for copy in objects.iter().map(VolumeCopy::from_object) {
        let Some(name) = copy.backup.clone() else {
            continue;
        };
        match out.iter_mut().find(|b| b.name == name) {
            Some(b) => b.copies.push(copy),
            None => out.push(Backup {
                name,
                copies: vec![copy],
            }),
        }
    }
    out.sort_by(|a, b| a.created().cmp(&b.created()).then(a.name.cmp(&b.name)));
    out
}

/// The VolumeSnapshot name of `backup`'s copy of `v`.
pub fn copy_name(backup: &str, v: Volume3) -> String {
    format!("{backup}-{}", volume_name(v))
}

/// What a new backup's snapshots record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBackup<'a> {
    pub backup: &'a str,
    pub node: &'a str,
    pub pod: &'a str,
    pub class: &'a str,
    pub height: u64,
    pub identity: &'a Identity,
}

/// The VolumeSnapshot of `b`'s copy of `v`. No owner: a backup outlives its node.
pub fn desired_copy(b: &NewBackup<'_>, v: Volume3, ns: &str) -> Value {
    json!({
        "apiVersion": SNAPSHOT_API,
        "kind": "VolumeSnapshot",
        "metadata": {
            "name": copy_name(b.backup, v),
            "namespace": ns,
            "labels": {
                LABEL_ETHEREUM_NODE: b.node,
                VOLUME_LABEL: volume_name(v),
                MANAGED_BY_LABEL: MANAGED_BY,
            },
            "annotations": {
                BACKUP_ANNOTATION: b.backup,
                HEIGHT_ANNOTATION: b.height.to_string(),
                CHAIN_ANNOTATION: b.identity.chain,
                CLIENTS_ANNOTATION: b.identity.clients,
            },
        },
        "spec": {
            "volumeSnapshotClassName": b.class,
            "source": { "persistentVolumeClaimName": replica_claim_name(v, b.pod) },
        },
    })
}

/// What the reconcile knows for a backup decision.
#[derive(Clone, Debug)]
pub struct BackupView<'a> {
    pub node: &'a EthereumNode,
    /// None while a custom network's files are unread.
    pub identity: Option<Identity>,
    /// The namespace's EthereumNode backups: None not listed, Some(None) the API is not
    /// served.
    pub backups: Option<Option<Vec<Backup>>>,
    /// The replicas' pods, as read.
    pub pods: &'a [ReplicaView],
    /// Names of the node's pods that exist (running, starting or terminating).
    pub present: &'a [String],
    /// The StatefulSet has rolled every pod onto its current template.
    pub at_rest: bool,
    pub now: Timestamp,
}

impl BackupView<'_> {
    fn name(&self) -> String {
        self.node.name_any()
    }

    fn own_backups(&self) -> Vec<&Backup> {
        let name = self.name();
        match &self.backups {
            Some(Some(b)) => b
                .iter()
                .filter(|b| b.node() == Some(name.as_str()))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// What the reconcile does about backups.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EthBackupPlan {
    /// `status.backup` (None: no backup configured).
    pub status: Option<BackupStatus>,
    /// Render the StatefulSet with `replicas - 1`: the last replica is stopped for a run.
    pub stop_last: bool,
    /// VolumeSnapshots to create (an existing one is kept).
    pub create: Vec<Value>,
    /// VolumeSnapshots of backups beyond `keep`: deleted.
    pub prune: Vec<String>,
    /// The `BackupFailing` condition (None: no backup configured).
    pub condition: Option<DesiredCondition>,
    pub events: Vec<(EventType, &'static str, String)>,
    /// When to look again for the backup's sake.
    pub requeue: Option<Duration>,
}

/// The time the schedule counts from: the last run's tick, else the node's creation.
fn last_run(node: &EthereumNode, status: &BackupStatus, now: Timestamp) -> Timestamp {
    status
        .last_schedule_time
        .as_deref()
        .and_then(parse_time)
        .or_else(|| node.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now)
}

/// Whether the reconcile must list the snapshots: a run in progress or due, the API's
/// answer not yet known, or replicas about to be created from a backup (`scaling_up`).
pub fn must_list(node: &EthereumNode, scaling_up: bool, now: Timestamp) -> bool {
    let status = node.status.as_ref();
    // Until the restore's backup is pinned in status (a reconcile that made the claims may
    // have failed to write it).
    let restoring =
        node.spec.restore.is_some() && status.and_then(|s| s.restored_from.as_ref()).is_none();
    let Some(spec) = &node.spec.backup else {
        return restoring;
    };
    let backup = status.and_then(|s| s.backup.clone()).unwrap_or_default();
    let known = status.is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "BackupFailing"));
    let due_now = parse_schedule(&spec.schedule)
        .is_ok_and(|c| due(&c, last_run(node, &backup, now), now).is_some());
    restoring
        || backup.in_progress.is_some()
        || !known
        || due_now
        || (scaling_up && spec.seed_new_replicas)
}

/// The pod a run stops: the last ordinal.
pub fn last_pod(node: &EthereumNode) -> Option<String> {
    (node.spec.replicas > 0).then(|| format!("{}-{}", node.name_any(), node.spec.replicas - 1))
}

/// Why a due run may not start now (None: it may).
fn held_back(v: &BackupView<'_>) -> Option<String> {
    let replicas = usize::try_from(v.node.spec.replicas).unwrap_or(0);
    if replicas == 0 {
        return Some("the node is stopped (replicas 0)".to_string());
    }
    if !v.at_rest {
        return Some("a rollout is in progress".to_string());
    }
    let not_ready: Vec<&str> = v
        .pods
        .iter()
        .filter(|p| !(p.ready && replica_synced(p)))
        .map(|p| p.pod.as_str())
        .collect();
    if v.pods.len() != replicas || !not_ready.is_empty() {
        return Some(format!(
            "not every replica is Ready and synced ({} of {replicas}{})",
            v.pods.len() - not_ready.len(),
            if not_ready.is_empty() {
                String::new()
            } else {
                format!("; not: {}", not_ready.join(", "))
            }
        ));
    }
    if v.identity.is_none() {
        return Some("the custom network's files are not read yet".to_string());
    }
    None
}

fn fail(
    run: &mut BackupAttempt,
    status: &mut BackupStatus,
    events: &mut Vec<(EventType, &'static str, String)>,
    why: String,
) {
    fail_run(run, status, events, why, ("backup", "replica"));
}

/// Complete backups of this node beyond `keep`, oldest first: the names of their
/// snapshots. Never the backup the node was restored from.
fn excess(v: &BackupView<'_>, keep: i32) -> Vec<String> {
    let restored = v.node.status.as_ref().and_then(|s| s.restored_from.clone());
    let complete: Vec<&Backup> = v
        .own_backups()
        .into_iter()
        .filter(|b| b.complete())
        .collect();
    let keep = usize::try_from(keep.max(1)).unwrap_or(1);
    complete
        .iter()
        .take(complete.len().saturating_sub(keep))
        .filter(|b| restored.as_deref() != Some(b.name.as_str()))
        .flat_map(|b| b.copies.iter().map(|c| c.snapshot.name.clone()))
        .collect()
}

/// The backup plan of a reconcile.
pub fn plan_backup(v: &BackupView<'_>) -> EthBackupPlan {
    let node = v.node;
    let now = v.now;
    let mut out = EthBackupPlan::default();
    let Some(spec) = &node.spec.backup else {
        return out;
    };
    let mut status = node
        .status
        .as_ref()
        .and_then(|s| s.backup.clone())
        .unwrap_or_default();
    let cron = parse_schedule(&spec.schedule);
    let failing = |reason: &str, message: String| {
        Some(DesiredCondition::new(
            "BackupFailing",
            true,
            reason,
            message,
        ))
    };
    let backups: &[Backup] = match &v.backups {
        Some(Some(b)) => b,
        Some(None) => {
            // Not served: no run; the tick is spent, so that the API is asked again at the
            // next one rather than at every reconcile.
            if let Ok(c) = &cron
                && let Some(tick) = due(c, last_run(node, &status, now), now)
            {
                status.last_schedule_time = Some(tick.to_string());
            }
            status.in_progress = None;
            out.status = Some(status);
            out.condition = failing("SnapshotAPINotServed", NOT_SERVED.to_string());
            out.requeue = cron.ok().and_then(|c| next(&c, now)).map(|t| until(now, t));
            return out;
        }
        None => &[],
    };
    let listed = v.backups.is_some();

    if let Some(mut run) = status.in_progress.take() {
        let timeout = Duration::from_secs(u64::try_from(spec.ready_timeout_seconds).unwrap_or(600));
        let started = parse_time(&run.started_at).unwrap_or(now);
        let timed_out = now.duration_since(started).as_secs() >= timeout.as_secs() as i64;
        if run.phase != STARTING && last_pod(node).as_deref() != Some(run.node.as_str()) {
            fail(
                &mut run,
                &mut status,
                &mut out.events,
                "the node's replicas changed during the run".to_string(),
            );
        }
        if run.phase == STOPPING {
            if let Some(h) = v
                .pods
                .iter()
                .find(|p| p.pod == run.node)
                .and_then(|p| p.execution_head)
            {
                run.height = run.height.max(i64::try_from(h).unwrap_or(i64::MAX));
            }
            if timed_out {
                fail(
                    &mut run,
                    &mut status,
                    &mut out.events,
                    format!("its pod did not stop within {}s", timeout.as_secs()),
                );
            } else if v.present.contains(&run.node) {
                out.stop_last = true;
            } else {
                run.phase = SNAPSHOTTING.to_string();
            }
        }
        if run.phase == SNAPSHOTTING && listed {
            let this = backups.iter().find(|b| b.name == run.snapshot);
            match this {
                Some(b) if b.complete() => {
                    out.events.push((
                        EventType::Normal,
                        "BackupSucceeded",
                        format!(
                            "backup {} of {} at block {} is ready to use; the replica is started again",
                            b.name, run.node, run.height
                        ),
                    ));
                    status.last_snapshot = Some(SnapshotRecord {
                        name: b.name.clone(),
                        node: run.node.clone(),
                        height: run.height,
                        time: b.created().unwrap_or(now).to_string(),
                    });
                    status.last_failure = None;
                    run.phase = STARTING.to_string();
                }
                Some(b) if b.error().is_some() => {
                    let e = b.error().unwrap_or_default();
                    fail(
                        &mut run,
                        &mut status,
                        &mut out.events,
                        format!("a snapshot failed: {e}"),
                    );
                }
                _ if timed_out => fail(
                    &mut run,
                    &mut status,
                    &mut out.events,
                    format!(
                        "the snapshots were not ready to use within {}s",
                        timeout.as_secs()
                    ),
                ),
                found => {
                    out.stop_last = true;
                    if let Some(id) = &v.identity {
                        let new = NewBackup {
                            backup: &run.snapshot,
                            node: &node.name_any(),
                            pod: &run.node,
                            class: &spec.volume_snapshot_class_name,
                            height: u64::try_from(run.height).unwrap_or(0),
                            identity: id,
                        };
                        let ns = node.namespace().unwrap_or_default();
                        for vol in BACKED_UP {
                            if found.and_then(|b| b.copy_of(vol)).is_none() {
                                out.create.push(desired_copy(&new, vol, &ns));
                            }
                        }
                    }
                }
            }
        } else if run.phase == SNAPSHOTTING {
            out.stop_last = true;
        }
        let mut done = false;
        if run.phase == STARTING {
            // Done once the replica is back, Ready and synced.
            done = v
                .pods
                .iter()
                .any(|p| p.pod == run.node && p.ready && replica_synced(p))
                || last_pod(node).is_none_or(|p| p != run.node && !v.present.contains(&run.node));
        }
        out.condition = Some(match (&status.last_failure, done) {
            (Some(why), _) => {
                DesiredCondition::new("BackupFailing", true, "SnapshotFailed", why.clone())
            }
            (None, false) => DesiredCondition::new(
                "BackupFailing",
                false,
                "InProgress",
                format!("backup {} of {}: {}", run.snapshot, run.node, run.phase),
            ),
            (None, true) => DesiredCondition::new(
                "BackupFailing",
                false,
                "Succeeded",
                "the last backup succeeded",
            ),
        });
        if done {
            if listed {
                out.prune = excess(v, spec.keep);
            }
            out.requeue = cron.ok().and_then(|c| next(&c, now)).map(|t| until(now, t));
        } else {
            status.in_progress = Some(run);
            out.requeue = Some(POLL);
        }
        out.status = Some(status);
        return out;
    }

    let cron = match cron {
        Ok(c) => c,
        Err(why) => {
            out.condition = failing("InvalidSchedule", why);
            out.status = Some(status);
            return out;
        }
    };
    // The API's last answer stands until it is asked again (at the next tick).
    let not_served = node.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "BackupFailing" && c.reason == "SnapshotAPINotServed")
    });
    let quiet = match (&status.last_failure, &status.last_snapshot) {
        _ if !listed && not_served.is_some() => {
            DesiredCondition::new("BackupFailing", true, "SnapshotAPINotServed", NOT_SERVED)
        }
        (Some(why), _) => {
            DesiredCondition::new("BackupFailing", true, "SnapshotFailed", why.clone())
        }
        (None, Some(s)) => DesiredCondition::new(
            "BackupFailing",
            false,
            "Succeeded",
            format!("last backup {} of {} at block {}", s.name, s.node, s.height),
        ),
        (None, None) => DesiredCondition::new(
            "BackupFailing",
            false,
            "Scheduled",
            format!("no backup yet; schedule {:?} (UTC)", spec.schedule),
        ),
    };
    let Some(tick) = due(&cron, last_run(node, &status, now), now) else {
        out.requeue = next(&cron, now).map(|t| until(now, t));
        out.condition = Some(quiet);
        out.status = Some(status);
        return out;
    };
    if listed {
        out.prune = excess(v, spec.keep);
    }
    let pod = last_pod(node).unwrap_or_default();
    let height = v
        .pods
        .iter()
        .find(|p| p.pod == pod)
        .and_then(|p| p.execution_head);
    let held = held_back(v)
        .or_else(|| (!listed).then(|| "the snapshots are not listed yet".to_string()))
        .or_else(|| {
            height
                .is_none()
                .then(|| format!("{pod}'s execution head is not known"))
        });
    if let Some(why) = held {
        out.requeue = Some(HELD_RETRY);
        out.condition = Some(if status.last_failure.is_some() {
            quiet
        } else {
            DesiredCondition::new(
                "BackupFailing",
                false,
                "Waiting",
                format!("a backup is due since {tick}; waiting: {why}"),
            )
        });
        out.status = Some(status);
        return out;
    }
    let backup = snapshot_name(&node.name_any(), tick);
    let height = height.unwrap_or(0);
    out.events.push((
        EventType::Normal,
        "BackupStarted",
        format!("stopping {pod} at block {height} to copy its execution and consensus volumes as backup {backup}"),
    ));
    out.stop_last = true;
    out.condition = Some(DesiredCondition::new(
        "BackupFailing",
        false,
        "InProgress",
        format!("backup {backup} of {pod}: {STOPPING}"),
    ));
    status.in_progress = Some(BackupAttempt {
        node: pod,
        snapshot: backup,
        height: i64::try_from(height).unwrap_or(i64::MAX),
        started_at: now.to_string(),
        phase: STOPPING.to_string(),
        failure: None,
        settle_at_height: None,
    });
    status.last_schedule_time = Some(tick.to_string());
    out.requeue = Some(POLL);
    out.status = Some(status);
    out
}

/// The backup a restored node's replicas start from (`spec.restore`): the one recorded in
/// status once resolved, else the named one or this node's newest (`latest`), complete
/// and of this node's chain and clients. Ok(None): no restore, or not decidable yet. Err:
/// why the node may not come up, for the user.
pub fn restore_source(v: &BackupView<'_>) -> Result<Option<String>, String> {
    let Some(restore) = &v.node.spec.restore else {
        return Ok(None);
    };
    if let Some(pinned) = v.node.status.as_ref().and_then(|s| s.restored_from.clone()) {
        return Ok(Some(pinned));
    }
    let Some(id) = &v.identity else {
        return Ok(None);
    };
    let backups = match &v.backups {
        Some(Some(b)) => b,
        Some(None) => return Err(NOT_SERVED.to_string()),
        None => return Ok(None),
    };
    let name = v.name();
    if restore.from_backup == "latest" {
        return v
            .own_backups()
            .into_iter()
            .rev()
            .find(|b| b.complete() && b.matches(id).is_ok())
            .map(|b| Some(b.name.clone()))
            .ok_or_else(|| {
                format!(
                    "spec.restore.fromBackup is latest, but no complete backup of {name} holds this node's chain ({}) and clients ({}); list them with kubectl get volumesnapshots -l {LABEL_ETHEREUM_NODE}={name} -o custom-columns=NAME:.metadata.name,BACKUP:.metadata.annotations.ethereum\\.nodeops\\.dev/backup,READY:.status.readyToUse",
                    id.chain, id.clients
                )
            });
    }
    let wanted = &restore.from_backup;
    let Some(b) = backups.iter().find(|b| &b.name == wanted) else {
        return Err(format!(
            "backup {wanted} (spec.restore.fromBackup) has no VolumeSnapshots in this namespace"
        ));
    };
    b.matches(id)?;
    if let Some(e) = b.error() {
        return Err(format!("backup {wanted} failed: {e}"));
    }
    if !b.complete() {
        return Err(format!(
            "backup {wanted} is not complete and ready to use yet (it needs the execution and consensus snapshots, each ready)"
        ));
    }
    Ok(Some(wanted.clone()))
}

/// The newest complete backup of this node's own that new replicas start from: only with
/// `seedNewReplicas` and once the node has taken one.
pub fn seed_source(v: &BackupView<'_>) -> Option<String> {
    let spec = v.node.spec.backup.as_ref()?;
    if !spec.seed_new_replicas {
        return None;
    }
    v.node
        .status
        .as_ref()?
        .backup
        .as_ref()?
        .last_snapshot
        .as_ref()?;
    let id = v.identity.as_ref()?;
    v.own_backups()
        .into_iter()
        .rev()
        .find(|b| b.complete() && b.matches(id).is_ok())
        .map(|b| b.name.clone())
}

#[cfg(test)]
mod tests;
