//! Scheduled snapshots of a network's chain data (`spec.backup`), decided here as pure
//! functions of what the reconcile observed; `apply` carries them out.
//!
//! A run: when the schedule comes due and the network may spare a node, one node is
//! stopped (`BesuNode.spec.stopped`: its StatefulSet scaled to zero), its data volume is
//! snapshotted once its pod is gone (Besu's RocksDB is not guaranteed consistent from a
//! live copy), and the node is started again as soon as the snapshot is ready to use or
//! `readyTimeoutSeconds` passes. The run's memory is `status.backup.inProgress`, so a
//! restarted operator carries on where it stopped; a node found stopped with no run in
//! progress is started again.
//!
//! Safety (DESIGN invariant 3): a run starts only with every node Ready, the chain
//! producing, no rollout, no validator set change and no vote under way; a validator is
//! stopped only when the validators down, counting it, stay within `n - ceil(2n/3)`.

use std::time::Duration;

use besu_operator_api::{
    BackupAttempt, BackupSource, BackupSpec, BackupStatus, NodeType, SnapshotRecord,
};
use croner::Cron;
use croner::parser::CronParser;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::tz::TimeZone;
use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::decide::{Plan, SETTLE_BLOCKS};
use super::observe::Observed;
use crate::chain::IN_SYNC_BLOCKS;
use crate::controller::day2::{ScalingStep, max_unavailable_validators};
use crate::controller::snapshots::{Listed, NOT_SERVED, NewSnapshot, Snapshot};
use crate::controller::status::DesiredCondition;
use crate::render::node::data_claim_name;

/// How often a run in progress is looked at (the snapshot's readiness is read, not
/// watched).
pub const POLL: Duration = Duration::from_secs(2);
/// How soon a run held back (a rollout, a vote, a node not Ready) is tried again.
pub const HELD_RETRY: Duration = Duration::from_secs(10);

pub const STOPPING: &str = "Stopping";
pub const SNAPSHOTTING: &str = "Snapshotting";
pub const STARTING: &str = "Starting";

/// What the reconcile does about backups.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BackupPlan {
    /// `status.backup` (None: no backup configured).
    pub status: Option<BackupStatus>,
    /// Nodes to stop (`spec.stopped: true`).
    pub stop: Option<String>,
    /// Nodes to start again (`spec.stopped` removed).
    pub start: Vec<String>,
    /// The snapshot to create (creation is idempotent: an existing one is kept).
    pub create: Option<NewSnapshot>,
    /// Snapshots beyond `keep`, oldest first: deleted.
    pub prune: Vec<String>,
    /// The `BackupFailing` condition (None: no backup configured).
    pub condition: Option<DesiredCondition>,
    /// Events of this run's steps.
    pub events: Vec<(EventType, &'static str, String)>,
    /// When to look again for the backup's sake (None: no need).
    pub requeue: Option<Duration>,
}

/// The schedule: five cron fields (a CronJob's), or six with seconds first; UTC.
pub fn schedule(spec: &BackupSpec) -> Result<Cron, String> {
    parse_schedule(&spec.schedule)
}

/// `spec.backup.schedule` parsed, or what is wrong with it.
pub fn parse_schedule(expr: &str) -> Result<Cron, String> {
    CronParser::new()
        .parse(expr)
        .map_err(|e| format!("spec.backup.schedule {expr:?} is not a cron expression ({e}); give five fields (minute hour day-of-month month day-of-week), for example \"0 */6 * * *\""))
}

/// The latest time of `cron` at or before `now`, if it is after `since` (a run is due).
pub fn due(cron: &Cron, since: Timestamp, now: Timestamp) -> Option<Timestamp> {
    let now_utc = now.to_zoned(TimeZone::UTC);
    let tick = cron.find_previous_occurrence(&now_utc, true).ok()?;
    let tick = tick.timestamp();
    (tick > since).then_some(tick)
}

/// The first time of `cron` after `now`.
pub fn next(cron: &Cron, now: Timestamp) -> Option<Timestamp> {
    let now_utc = now.to_zoned(TimeZone::UTC);
    cron.find_next_occurrence(&now_utc, false)
        .ok()
        .map(|z| z.timestamp())
}

/// A snapshot's name: the network and the scheduled time it serves, so that a run
/// retried within the same tick finds its own snapshot.
pub fn snapshot_name(network: &str, tick: Timestamp) -> String {
    format!(
        "{network}-{}",
        tick.strftime("%Y%m%d-%H%M%S").to_string().to_lowercase()
    )
}

pub(crate) fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

/// How long from `now` to `t`, at least a second.
pub(crate) fn until(now: Timestamp, t: Timestamp) -> Duration {
    let d = t.duration_since(now);
    if d.is_positive() {
        Duration::from_secs(d.as_secs().unsigned_abs()).max(Duration::from_secs(1))
    } else {
        Duration::from_secs(1)
    }
}

/// Whether a run is due now (and none in progress): the reconcile then reads the chain
/// afresh instead of taking the observer's view, so that the run starts on what the nodes
/// say now.
pub fn run_due(network: &besu_operator_api::BesuNetwork, now: Timestamp) -> bool {
    let Some(spec) = &network.spec.backup else {
        return false;
    };
    let status = network.status.as_ref().and_then(|s| s.backup.as_ref());
    if status.is_some_and(|b| b.in_progress.is_some()) {
        return false;
    }
    let since = last_run(network, status, now);
    schedule(spec).is_ok_and(|cron| due(&cron, since, now).is_some())
}

/// The time the schedule counts from: the tick of the last run started, else the
/// network's creation.
fn last_run(
    network: &besu_operator_api::BesuNetwork,
    status: Option<&BackupStatus>,
    now: Timestamp,
) -> Timestamp {
    status
        .and_then(|b| b.last_schedule_time.as_deref())
        .and_then(parse_time)
        .or_else(|| network.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now)
}

/// Back in service: its pod Ready and its JSON-RPC within [`IN_SYNC_BLOCKS`] of the head
/// (a Ready pod alone is not a running node: a node still starting or syncing takes no
/// part in consensus).
fn in_service(o: &Observed, node: &str) -> bool {
    o.pods.endpoints.contains_key(node) && o.chain.follows_head(node, IN_SYNC_BLOCKS)
}

/// Why a run that is due may not start now (None: it may).
fn held_back(o: &Observed, plan: &Plan) -> Option<String> {
    if !o.fresh_chain {
        return Some("waiting for a fresh read of the chain".to_string());
    }
    let not_ready: Vec<String> = o
        .slots
        .iter()
        .map(|s| o.node_of(s))
        .filter(|n| !in_service(o, n))
        .collect();
    if !not_ready.is_empty() {
        return Some(format!(
            "not every node is Ready and in sync with the head ({})",
            not_ready.join(", ")
        ));
    }
    if plan.rollout.rolling(&plan.rollout_nodes) {
        return Some("a rollout is in progress".to_string());
    }
    if !matches!(plan.scaling, Some(ScalingStep::Converged)) || plan.votes.is_some() {
        return Some("the validator set is changing or cannot be read".to_string());
    }
    if o.advancing != Some(true) {
        return Some("the chain is not seen producing blocks".to_string());
    }
    None
}

/// The node a run stops: Ready, following the head with a known height; a validator
/// only within the fault budget. Round robin after the last snapshot's node.
fn source_node(o: &Observed, spec: &BackupSpec, last: Option<&str>) -> Option<(String, u64)> {
    let candidates = |t: NodeType| -> Vec<(String, u64)> {
        o.slots
            .iter()
            .filter(|s| s.node_type == t)
            .map(|s| o.node_of(s))
            .filter(|n| o.pods.endpoints.contains_key(n))
            .filter(|n| o.chain.follows_head(n, IN_SYNC_BLOCKS))
            .filter_map(|n| o.chain.heights.get(&n).map(|h| (n.clone(), *h)))
            .collect()
    };
    let validators = || {
        let n = o.wanted(NodeType::Validator);
        let down = n.saturating_sub(o.ready(NodeType::Validator));
        if down < max_unavailable_validators(n) {
            candidates(NodeType::Validator)
        } else {
            Vec::new()
        }
    };
    let pool = match spec.source {
        BackupSource::Member => candidates(NodeType::Member),
        BackupSource::Validator => validators(),
        BackupSource::Auto if o.wanted(NodeType::Member) > 0 => candidates(NodeType::Member),
        BackupSource::Auto => validators(),
    };
    let after = last.and_then(|l| pool.iter().find(|(n, _)| n.as_str() > l).cloned());
    after.or_else(|| pool.first().cloned())
}

/// The ready snapshots the operator took of this network, beyond `keep`, oldest first;
/// never one a node or the restore still starts from.
fn excess(o: &Observed, snapshots: &[Snapshot], keep: i32) -> Vec<String> {
    let in_use = |name: &str| {
        o.network
            .status
            .as_ref()
            .and_then(|s| s.restored_from.as_deref())
            == Some(name)
            || o.nodes.values().any(|n| {
                n.spec.from_snapshot.as_deref() == Some(name)
                    && !o.pods.endpoints.contains_key(&n.name_any())
            })
    };
    let name = o.name();
    let ours: Vec<&Snapshot> = snapshots
        .iter()
        .filter(|s| s.managed && s.ready && s.network.as_deref() == Some(name.as_str()))
        .collect();
    let keep = usize::try_from(keep.max(1)).unwrap_or(1);
    ours.iter()
        .take(ours.len().saturating_sub(keep))
        .filter(|s| !in_use(&s.name))
        .map(|s| s.name.clone())
        .collect()
}

/// Marks a node a backup run stopped (`spec.stopped` set by the network, not a person).
pub const STOPPED_FOR_BACKUP_ANNOTATION: &str = "besu.nodeops.dev/stopped-for-backup";

fn stopped_for_backup(node: &besu_operator_api::BesuNode) -> bool {
    node.spec.stopped
        && node
            .annotations()
            .contains_key(STOPPED_FOR_BACKUP_ANNOTATION)
}

/// A run that failed: recorded, and its node started again.
fn fail(
    run: &mut BackupAttempt,
    status: &mut BackupStatus,
    events: &mut Vec<(EventType, &'static str, String)>,
    why: String,
) {
    fail_run(run, status, events, why, ("snapshot", "node"));
}

/// A run that failed: the `BackupFailed` Event ("<copy> <name> of <node>: why; the
/// <stopped> is started again"), the attempt and status marked, and the run moved to
/// `Starting`. `words`: what a copy and a stopped thing are called (a network's snapshot
/// of a node, an EthereumNode's backup of a replica).
pub(crate) fn fail_run(
    run: &mut BackupAttempt,
    status: &mut BackupStatus,
    events: &mut Vec<(EventType, &'static str, String)>,
    why: String,
    (copy, stopped): (&str, &str),
) {
    events.push((
        EventType::Warning,
        "BackupFailed",
        format!(
            "{copy} {} of {}: {why}; the {stopped} is started again",
            run.snapshot, run.node
        ),
    ));
    run.failure = Some(why.clone());
    run.phase = STARTING.to_string();
    status.last_failure = Some(why);
}

/// The backup plan of a reconcile at `now`: `listed` is the network's snapshots (None:
/// not listed, because no backup is configured).
pub fn plan_backup(
    o: &Observed,
    plan: &Plan,
    listed: Option<&Listed>,
    now: Timestamp,
) -> BackupPlan {
    let network = &o.network;
    let previous = network.status.as_ref().and_then(|s| s.backup.clone());
    // Only the nodes a run stopped: one a person stopped stays stopped.
    let stopped = |except: Option<&str>| -> Vec<String> {
        o.nodes
            .values()
            .filter(|n| stopped_for_backup(n) && Some(n.name_any().as_str()) != except)
            .map(ResourceExt::name_any)
            .collect()
    };
    let mut out = BackupPlan::default();
    let Some(spec) = network.spec.backup.as_ref() else {
        // No backup (or no longer): whatever a run had stopped starts again.
        out.start = stopped(None);
        return out;
    };
    let failing = |reason: &str, message: String| {
        Some(DesiredCondition::new(
            "BackupFailing",
            true,
            reason,
            message,
        ))
    };
    let mut status = previous.clone().unwrap_or_default();
    let listed = match listed {
        Some(Listed::Snapshots(s)) => s.as_slice(),
        Some(Listed::NotServed) | None => {
            out.start = stopped(None);
            out.status = Some(BackupStatus {
                in_progress: None,
                ..status
            });
            out.condition = failing("SnapshotAPINotServed", NOT_SERVED.to_string());
            return out;
        }
    };

    // A run in progress goes on, whatever else changed.
    if let Some(mut run) = status.in_progress.take() {
        out.start = stopped(Some(&run.node));
        let started = parse_time(&run.started_at).unwrap_or(now);
        let timeout = Duration::from_secs(u64::try_from(spec.ready_timeout_seconds).unwrap_or(600));
        let timed_out = now.duration_since(started).as_secs() >= timeout.as_secs() as i64;
        if !o.nodes.contains_key(&run.node) && run.phase != STARTING {
            fail(
                &mut run,
                &mut status,
                &mut out.events,
                "the node was deleted".to_string(),
            );
        }
        if run.phase == STOPPING {
            // The last height read before the pod stops: what the copy holds at least.
            if let Some(h) = o.chain.heights.get(&run.node) {
                run.height = run.height.max(i64::try_from(*h).unwrap_or(i64::MAX));
            }
            if timed_out {
                fail(
                    &mut run,
                    &mut status,
                    &mut out.events,
                    format!("its pod did not stop within {}s", timeout.as_secs()),
                );
            } else if o.pods.present.contains(&run.node) {
                out.stop = Some(run.node.clone());
            } else {
                run.phase = SNAPSHOTTING.to_string();
            }
        }
        if run.phase == SNAPSHOTTING {
            match listed.iter().find(|s| s.name == run.snapshot) {
                Some(s) if s.ready => {
                    let record = SnapshotRecord {
                        name: s.name.clone(),
                        node: run.node.clone(),
                        height: run.height,
                        time: s.created.unwrap_or(now).to_string(),
                    };
                    out.events.push((
                        EventType::Normal,
                        "BackupSucceeded",
                        format!("snapshot {} of {} at height {} is ready to use; the node is started again", s.name, run.node, run.height),
                    ));
                    status.last_snapshot = Some(record);
                    status.last_failure = None;
                    run.phase = STARTING.to_string();
                }
                Some(Snapshot { error: Some(e), .. }) => {
                    fail(
                        &mut run,
                        &mut status,
                        &mut out.events,
                        format!("the snapshot failed: {e}"),
                    );
                }
                _ if timed_out => {
                    fail(
                        &mut run,
                        &mut status,
                        &mut out.events,
                        format!(
                            "the snapshot was not ready to use within {}s",
                            timeout.as_secs()
                        ),
                    );
                }
                found => {
                    out.stop = Some(run.node.clone());
                    if found.is_none() {
                        out.create = Some(NewSnapshot {
                            name: run.snapshot.clone(),
                            network: o.name(),
                            node: run.node.clone(),
                            claim: data_claim_name(&run.node),
                            class: spec.volume_snapshot_class_name.clone(),
                            height: u64::try_from(run.height).unwrap_or(0),
                            genesis_checksum: o.genesis_checksum.clone().unwrap_or_default(),
                        });
                    }
                }
            }
        }
        if run.phase == STARTING {
            if o.nodes.get(&run.node).is_some_and(stopped_for_backup) {
                out.start.push(run.node.clone());
            }
            // Back once it answers in sync, and settled once the chain has gone
            // SETTLE_BLOCKS further with it (as a rollout step): a restarted node that
            // answers but is not yet taking part must not let the next run stop another.
            let head = o.chain.head.and_then(|h| i64::try_from(h).ok());
            let settled = match (run.settle_at_height, head) {
                (Some(at), Some(h)) => h >= at,
                _ => false,
            };
            if o.nodes.contains_key(&run.node) && !settled {
                if in_service(o, &run.node) && run.settle_at_height.is_none() {
                    run.settle_at_height =
                        head.map(|h| h + i64::try_from(SETTLE_BLOCKS).unwrap_or(2));
                }
                status.in_progress = Some(run);
            }
        } else {
            status.in_progress = Some(run);
        }
        out.condition = Some(match (&status.in_progress, &status.last_failure) {
            (_, Some(why)) => {
                DesiredCondition::new("BackupFailing", true, "SnapshotFailed", why.clone())
            }
            (Some(run), None) => DesiredCondition::new(
                "BackupFailing",
                false,
                "InProgress",
                format!("snapshot {} of {}: {}", run.snapshot, run.node, run.phase),
            ),
            (None, None) => DesiredCondition::new(
                "BackupFailing",
                false,
                "Succeeded",
                "the last snapshot succeeded",
            ),
        });
        if status.in_progress.is_some() {
            out.requeue = Some(POLL);
        } else {
            out.prune = excess(o, listed, spec.keep);
        }
        out.status = Some(status);
        return out;
    }

    out.start = stopped(None);
    let cron = match schedule(spec) {
        Ok(c) => c,
        Err(why) => {
            out.condition = failing("InvalidSchedule", why);
            out.status = Some(status);
            return out;
        }
    };
    out.prune = excess(o, listed, spec.keep);
    let since = last_run(network, Some(&status), now);
    let quiet = match &status.last_failure {
        Some(why) => DesiredCondition::new("BackupFailing", true, "SnapshotFailed", why.clone()),
        None => DesiredCondition::new(
            "BackupFailing",
            false,
            if status.last_snapshot.is_some() {
                "Succeeded"
            } else {
                "Scheduled"
            },
            match &status.last_snapshot {
                Some(s) => format!(
                    "last snapshot {} of {} at height {}",
                    s.name, s.node, s.height
                ),
                None => format!("no snapshot yet; schedule {:?} (UTC)", spec.schedule),
            },
        ),
    };
    let Some(tick) = due(&cron, since, now) else {
        out.requeue = next(&cron, now).map(|t| until(now, t));
        out.condition = Some(quiet);
        out.status = Some(status);
        return out;
    };
    let held = held_back(o, plan).or_else(|| {
        o.genesis_checksum
            .is_none()
            .then(|| "the genesis is not in place".to_string())
    });
    let source = match held {
        Some(why) => Err(why),
        None => source_node(
            o,
            spec,
            status.last_snapshot.as_ref().map(|s| s.node.as_str()),
        )
        .ok_or_else(|| match spec.source {
            BackupSource::Member => "no member is Ready and in sync".to_string(),
            _ if o.wanted(NodeType::Member) > 0 && spec.source == BackupSource::Auto => {
                "no member is Ready and in sync".to_string()
            }
            _ => "no validator may stop within the fault budget".to_string(),
        }),
    };
    match source {
        Err(why) => {
            out.requeue = Some(HELD_RETRY);
            out.condition = Some(if status.last_failure.is_some() {
                quiet
            } else {
                DesiredCondition::new(
                    "BackupFailing",
                    false,
                    "Waiting",
                    format!("a snapshot is due since {tick}; waiting: {why}"),
                )
            });
        }
        Ok((node, height)) => {
            let snapshot = snapshot_name(&o.name(), tick);
            out.events.push((
                EventType::Normal,
                "BackupStarted",
                format!(
                    "stopping {node} at height {height} to snapshot its data volume as {snapshot}"
                ),
            ));
            out.stop = Some(node.clone());
            out.condition = Some(DesiredCondition::new(
                "BackupFailing",
                false,
                "InProgress",
                format!("snapshot {snapshot} of {node}: {STOPPING}"),
            ));
            status.in_progress = Some(BackupAttempt {
                node,
                snapshot,
                height: i64::try_from(height).unwrap_or(i64::MAX),
                started_at: now.to_string(),
                phase: STOPPING.to_string(),
                failure: None,
                settle_at_height: None,
            });
            status.last_schedule_time = Some(tick.to_string());
            out.requeue = Some(POLL);
        }
    }
    out.status = Some(status);
    out
}

/// The snapshot a restored network's nodes start from (`spec.restore`): the one
/// recorded in status once resolved, else the named one or the newest (`latest`), ready
/// and of this network's chain. Ok(None): no restore. Err: why the network may not come
/// up, for the user.
pub fn restore_source(o: &Observed) -> Result<Option<String>, String> {
    let Some(restore) = &o.network.spec.restore else {
        return Ok(None);
    };
    if let Some(pinned) = o
        .network
        .status
        .as_ref()
        .and_then(|s| s.restored_from.clone())
    {
        return Ok(Some(pinned));
    }
    // No genesis yet: nothing is created before it anyway.
    let Some(checksum) = o.genesis_checksum.as_deref() else {
        return Ok(None);
    };
    let listed = match &o.snapshots {
        Some(Listed::Snapshots(s)) => s.as_slice(),
        Some(Listed::NotServed) | None => return Err(NOT_SERVED.to_string()),
    };
    let name = o.name();
    if restore.from_snapshot == "latest" {
        return listed
            .iter()
            .rev()
            .find(|s| {
                s.ready
                    && s.network.as_deref() == Some(name.as_str())
                    && s.genesis_checksum.as_deref() == Some(checksum)
            })
            .map(|s| Some(s.name.clone()))
            .ok_or_else(|| format!("spec.restore.fromSnapshot is latest, but no VolumeSnapshot labelled {}={name} of this network's genesis (checksum {checksum}) is ready to use; list them with kubectl get volumesnapshots -l {}={name}", besu_operator_api::LABEL_NETWORK, besu_operator_api::LABEL_NETWORK));
    }
    let wanted = &restore.from_snapshot;
    let Some(s) = listed.iter().find(|s| &s.name == wanted) else {
        return Err(format!(
            "VolumeSnapshot {wanted} (spec.restore.fromSnapshot) does not exist in this namespace"
        ));
    };
    match s.genesis_checksum.as_deref() {
        Some(c) if c == checksum => {}
        Some(c) => {
            return Err(format!(
                "VolumeSnapshot {wanted} holds the chain of another genesis (checksum {c}; this network's is {checksum}): restore from a snapshot of this network"
            ));
        }
        None => {
            return Err(format!(
                "VolumeSnapshot {wanted} does not say which chain it holds (no {} annotation): restore from a snapshot this operator took",
                crate::render::network::GENESIS_CHECKSUM_ANNOTATION
            ));
        }
    }
    if !s.ready {
        return Err(format!("VolumeSnapshot {wanted} is not ready to use yet"));
    }
    Ok(Some(wanted.clone()))
}

/// The newest ready snapshot of this network's chain (same genesis) that new nodes may
/// start from: only once this network has taken one itself and `seedNewNodes` is on.
pub fn seed(o: &Observed, listed: Option<&Listed>) -> Option<String> {
    let spec = o.network.spec.backup.as_ref()?;
    if !spec.seed_new_nodes {
        return None;
    }
    o.network
        .status
        .as_ref()?
        .backup
        .as_ref()?
        .last_snapshot
        .as_ref()?;
    let checksum = o.genesis_checksum.as_deref()?;
    listed?
        .snapshots()
        .iter()
        .rev()
        .find(|s| {
            s.ready
                && s.error.is_none()
                && s.network.as_deref() == Some(o.name().as_str())
                && s.genesis_checksum.as_deref() == Some(checksum)
        })
        .map(|s| s.name.clone())
}

#[cfg(test)]
mod tests;
