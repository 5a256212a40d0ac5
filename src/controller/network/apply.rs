//! Executes a network reconcile's decisions: the bring-up stages' new nodes, and a
//! `decide::Plan` in order (votes and discards over JSON-RPC, the voted-out validator's
//! removal, the rollout, the scale-up, the network-level children, monitoring, nodes no
//! longer wanted), with an Event for each change; and the peering heal, which asks a
//! node directly before it acts.

use std::collections::BTreeMap;
use std::time::Duration;

use besu_operator_api::{BesuNetwork, BesuNode};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::{info, warn};

use super::backup::{BackupPlan, STOPPED_FOR_BACKUP_ANNOTATION};
use super::decide::{HEAL_AFTER, Plan};
use super::keys::{retired_validators, set_retired_validators};
use super::observe::Observed;
use crate::chain::extradata::Consensus;
use crate::controller::{
    Context, Error, applied, applied_hash, apply_if_changed_cached, snapshots,
};
use crate::render::node::ROLLOUT_PERMIT_ANNOTATION;
use crate::rpc::Endpoint;

/// What applying a plan did, for the status and the Events.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// Validators holding the scaling step's proposal after the asks.
    pub holding: usize,
    /// Nodes created (the bring-up stages' and the scale-up's).
    pub created: Vec<String>,
    /// Nodes updated by the rollout.
    pub updated: Vec<String>,
}

/// Creates a bring-up stage's new nodes (absent from the nodes observed: applied without
/// a read of each first). Returns those written.
pub(super) async fn create_nodes(
    ctx: &Context,
    scope: &str,
    api: &Api<BesuNode>,
    nodes: Vec<BesuNode>,
) -> Result<Vec<String>, Error> {
    let written = futures::future::try_join_all(
        nodes
            .iter()
            .map(|desired| apply_node(ctx, scope, api, desired.clone(), None)),
    )
    .await?;
    Ok(nodes
        .into_iter()
        .zip(written)
        .filter(|(_, wrote)| *wrote)
        .map(|(desired, _)| desired.name_any())
        .collect())
}

/// Executes `plan`, decided from `o`. `applied.created` comes in with the bring-up
/// stages' nodes; every node created or updated is announced by one Event each way.
pub(super) async fn execute(
    ctx: &Context,
    scope: &str,
    o: &Observed,
    plan: &Plan,
    mut applied: Applied,
) -> Result<Applied, Error> {
    let network = o.network.as_ref();
    let ns = network.namespace().unwrap_or_default();
    let name = network.name_any();
    let nodes_api: Api<BesuNode> = Api::namespaced(ctx.client.clone(), &ns);
    let consensus = Consensus::from(network.spec.consensus);
    let endpoints = &o.pods.endpoints;

    // Validator set changes, by on-chain vote, one validator at a time.
    if let Some(votes) = &plan.votes {
        applied.holding = votes.holding;
        for node in &votes.ask {
            let Some(ep) = endpoints.get(node) else {
                continue;
            };
            match ctx
                .rpc
                .propose_vote(ep, consensus, &votes.address, votes.add)
                .await
            {
                Ok(_) => {
                    applied.holding += 1;
                    ctx.event(
                        network,
                        EventType::Normal,
                        "VoteProposed",
                        format!(
                            "asked {node} to vote to {} validator {} ({})",
                            if votes.add { "add" } else { "remove" },
                            votes.ordinal,
                            votes.address
                        ),
                    )
                    .await;
                }
                Err(e) => warn!(error = %e, "vote proposal failed"),
            }
        }
    }
    for d in &plan.discards {
        let Some(ep) = endpoints.get(&d.node) else {
            continue;
        };
        if ctx
            .rpc
            .discard_vote(ep, consensus, &d.address)
            .await
            .is_ok()
        {
            ctx.event(
                network,
                EventType::Normal,
                if d.done {
                    "ValidatorChanged"
                } else {
                    "VoteDiscarded"
                },
                format!(
                    "{} dropped its proposal to {} {}{}",
                    d.node,
                    if d.add { "add" } else { "remove" },
                    d.address,
                    if d.done {
                        ": the change is on-chain"
                    } else {
                        ": no longer wanted"
                    }
                ),
            )
            .await;
        }
    }
    if let Some(removal) = &plan.removal {
        delete_node(ctx, scope, &nodes_api, &removal.node).await?;
        if let Some(secret) = &removal.key_secret {
            // Recorded before the key goes: a later scale-up may give this ordinal a new
            // key (a genesis validator's lost key is otherwise never regenerated).
            let mut retired = retired_validators(network);
            if retired.insert(removal.ordinal) {
                let networks: Api<BesuNetwork> = Api::namespaced(ctx.client.clone(), &ns);
                set_retired_validators(ctx, &networks, &name, &retired).await?;
            }
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
            secrets.delete(secret, &DeleteParams::background()).await?;
        }
        ctx.event(
            network,
            EventType::Normal,
            "ValidatorRemoved",
            format!(
                "{} left the on-chain validator set; its node was deleted",
                removal.node
            ),
        )
        .await;
    }

    // The rollout: the step's nodes applied, the step in progress permitted to roll out
    // the pod template each holds back (a new spec's, or a new release's rendering).
    for desired in &plan.update {
        let node = desired.name_any();
        if apply_node(ctx, scope, &nodes_api, desired.clone(), o.nodes.get(&node)).await? {
            applied.updated.push(node);
        }
    }
    for node in &plan.permit {
        if let Some(live) = o.nodes.get(node)
            && grant_rollout_permit(ctx, scope, &nodes_api, live).await?
        {
            info!(node = %node, "rollout permit granted");
        }
    }
    if !plan.rollout.withheld.is_empty() {
        info!(nodes = ?plan.rollout.withheld, "rollout step called off: the validator budget is used up");
    }
    for desired in &plan.scale_up {
        let node = desired.name_any();
        if apply_node(ctx, scope, &nodes_api, desired.clone(), None).await? {
            applied.created.push(node);
        }
    }
    if !applied.created.is_empty() {
        ctx.event(
            network,
            EventType::Normal,
            "NodesCreated",
            format!("created {}", applied.created.join(", ")),
        )
        .await;
    }
    if !applied.updated.is_empty() {
        ctx.event(
            network,
            EventType::Normal,
            "RollingUpdate",
            format!(
                "updating {} ({})",
                applied.updated.join(", "),
                network.spec.image
            ),
        )
        .await;
    }

    // Compared with the network controller's cached copies (a stale one costs an
    // idempotent apply, never a wrong decision: nothing is decided on them).
    let stores = ctx.network_stores.get(&ns);
    if let Some(budget) = plan.budget.clone() {
        let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &ns);
        apply_if_changed_cached(stores.as_ref().map(|s| &s.budgets), &api, &ns, budget).await?;
    }
    let policies: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), &ns);
    apply_if_changed_cached(
        stores.as_ref().map(|s| &s.policies),
        &policies,
        &ns,
        plan.policy.clone(),
    )
    .await?;

    for desired in &plan.monitoring {
        let node = desired.name_any();
        apply_node(ctx, scope, &nodes_api, desired.clone(), o.nodes.get(&node)).await?;
    }
    for node in &plan.monitoring_off {
        delete_node(ctx, scope, &nodes_api, node).await?;
    }
    for node in &plan.remove {
        delete_node(ctx, scope, &nodes_api, node).await?;
        ctx.event(
            network,
            EventType::Normal,
            "NodeRemoved",
            format!("removed {node}"),
        )
        .await;
    }
    execute_backup(ctx, scope, o, &nodes_api, &plan.backup).await?;
    Ok(applied)
}

/// At most one heal per node this often.
const HEAL_EVERY: Duration = Duration::from_secs(60);

/// Heals peering (see render::node): a node whose Besu has run for [`HEAL_AFTER`] and is
/// not Ready with no peer at all (`net_peerCount` 0, asked directly) is given the stable enode URL of every Ready bootnode and validator with
/// `admin_addPeer`, which Besu resolves now and keeps as maintained peers. One Event per
/// heal. Never fails the reconcile: a node that does not answer is left to its probes.
pub(super) async fn heal_isolated(
    ctx: &Context,
    network: &BesuNetwork,
    running: &BTreeMap<String, (Endpoint, Duration)>,
    ready: &BTreeMap<String, Endpoint>,
    static_nodes: &[(String, String)],
) {
    let ns = network.namespace().unwrap_or_default();
    for (node, (ep, ran)) in running {
        // A Ready node passes its readiness probe, which asks for a peer on every node
        // that has one to find (render::node::readiness_min_peers).
        if *ran < HEAL_AFTER || ready.contains_key(node) {
            continue;
        }
        match ctx.rpc.peer_count(ep).await {
            Ok(0) => {}
            _ => continue,
        }
        let targets: Vec<&String> = static_nodes
            .iter()
            .filter(|(n, _)| n != node && ready.contains_key(n))
            .map(|(_, e)| e)
            .collect();
        if targets.is_empty() {
            continue;
        }
        let key = format!("{ns}/{node}");
        let due = match ctx.heals.lock() {
            Ok(mut heals) => {
                let due = heals.get(&key).is_none_or(|t| t.elapsed() >= HEAL_EVERY);
                if due {
                    heals.insert(key, std::time::Instant::now());
                }
                due
            }
            Err(_) => false,
        };
        if !due {
            continue;
        }
        let mut asked = 0;
        let mut failed = None;
        for enode in &targets {
            match ctx.rpc.add_peer(ep, enode).await {
                Ok(_) => asked += 1,
                Err(e) => failed = Some(e.to_string()),
            }
        }
        let message = match failed {
            None => format!(
                "{node} had no peer {} s after its start; asked it to dial {asked} Ready bootnodes and validators (admin_addPeer)",
                ran.as_secs()
            ),
            Some(e) => format!(
                "{node} had no peer {} s after its start; admin_addPeer reached {asked} of {} nodes ({e}); it needs ADMIN in rpcApis to be healed",
                ran.as_secs(),
                targets.len()
            ),
        };
        info!(node = %node, asked, "peering healed");
        ctx.event(network, EventType::Warning, "PeeringHealed", message)
            .await;
    }
}

/// Applies a BesuNode unless `live` carries its hash already, and records the write.
pub(super) async fn apply_node(
    ctx: &Context,
    scope: &str,
    api: &Api<BesuNode>,
    desired: BesuNode,
    live: Option<&BesuNode>,
) -> Result<bool, Error> {
    let hash = applied_hash(&desired)?;
    match applied(api, desired, hash, live).await? {
        Some(written) => {
            ctx.writes.wrote(scope, &written);
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Deletes a BesuNode (one already gone counts as deleted), and records the delete.
pub(super) async fn delete_node(
    ctx: &Context,
    scope: &str,
    api: &Api<BesuNode>,
    name: &str,
) -> Result<(), Error> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    ctx.writes.deleted::<BesuNode>(scope, name);
    Ok(())
}

/// Permits the node controller to roll out the template revision it holds back. Returns
/// whether a write was made.
async fn grant_rollout_permit(
    ctx: &Context,
    scope: &str,
    nodes: &Api<BesuNode>,
    node: &BesuNode,
) -> Result<bool, Error> {
    let Some(pending) = node
        .status
        .as_ref()
        .and_then(|s| s.pending_template_revision.clone())
    else {
        return Ok(false);
    };
    if node.annotations().get(ROLLOUT_PERMIT_ANNOTATION) == Some(&pending) {
        return Ok(false);
    }
    let patch = serde_json::json!({
        "metadata": { "annotations": { ROLLOUT_PERMIT_ANNOTATION: pending } }
    });
    let written = nodes
        .patch(
            &node.name_any(),
            &crate::controller::patch_params(),
            &Patch::Merge(&patch),
        )
        .await?;
    ctx.writes.wrote(scope, &written);
    Ok(true)
}

/// Carries out a backup plan: nodes stopped and started, the snapshot created, the
/// excess pruned, the run's Events.
async fn execute_backup(
    ctx: &Context,
    scope: &str,
    o: &Observed,
    nodes_api: &Api<BesuNode>,
    plan: &BackupPlan,
) -> Result<(), Error> {
    let network = o.network.as_ref();
    let ns = network.namespace().unwrap_or_default();
    let stops = plan.stop.iter().map(|n| (n, true));
    let starts = plan.start.iter().map(|n| (n, false));
    for (node, stopped) in stops.chain(starts) {
        let Some(live) = o.nodes.get(node) else {
            continue;
        };
        if live.spec.stopped == stopped {
            continue;
        }
        // A merge patch of the field and the mark that a run set it (a node a person
        // stopped is theirs): the network's server-side apply of the node never names
        // either, so it neither takes them away nor counts them as a change.
        let (value, mark) = if stopped {
            (
                serde_json::Value::Bool(true),
                serde_json::Value::from("true"),
            )
        } else {
            (serde_json::Value::Null, serde_json::Value::Null)
        };
        let patch = serde_json::json!({
            "metadata": { "annotations": { STOPPED_FOR_BACKUP_ANNOTATION: mark } },
            "spec": { "stopped": value },
        });
        let written = nodes_api
            .patch(
                node,
                &crate::controller::patch_params(),
                &Patch::Merge(&patch),
            )
            .await?;
        ctx.writes.wrote(scope, &written);
        info!(node = %node, stopped, "backup: node {}", if stopped { "stopped" } else { "started" });
    }
    if let Some(new) = &plan.create {
        snapshots::create(&ctx.client, &ns, new).await?;
        info!(snapshot = %new.name, node = %new.node, height = new.height, "backup: snapshot created");
    }
    for name in &plan.prune {
        snapshots::delete(&ctx.client, &ns, name).await?;
        ctx.event(
            network,
            EventType::Normal,
            "SnapshotPruned",
            format!("deleted snapshot {name}: more than spec.backup.keep ready snapshots"),
        )
        .await;
    }
    for (kind, reason, message) in &plan.events {
        ctx.event(network, *kind, reason, message.clone()).await;
    }
    Ok(())
}
