//! The network controller: `BesuNetwork` → key Secrets, genesis ConfigMap, and
//! `BesuNode`s brought up in stages (bootnodes, then validators, then members), then
//! kept: the validator set changed by on-chain votes, changes rolled out within the
//! validator budget.
//!
//! A reconcile is a pipeline, one module per step:
//! - `observe`: the network, its nodes, genesis and pods from the caches, and the chain
//!   (`Observed`);
//! - `keys`, `genesis`: the writes every decision rests on (a key minted only where no
//!   node ever had one; the genesis written once);
//! - `decide`: pure functions from `Observed` to what is done: the bring-up stages' new
//!   nodes (`stage_nodes`), then everything else (`plan` → `Plan`) and the requeue;
//! - `apply`: executes them, with the Events;
//! - `conditions`: the status, a pure function of what was observed, planned and applied.

use std::sync::Arc;
use std::time::Duration;

use besu_operator_api::{BesuNetwork, BesuNetworkStatus, GENESIS_FIELD, NetworkPhase, NodeType};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use tracing::{instrument, warn};

use super::status::write_status_if_changed;
use super::{Context, Error, apply_if_changed_cached, cached_or_get, snapshots};
use crate::render::network::{desired_static_nodes_config_map, genesis_config_map_name, slots};

mod apply;
pub mod backup;
pub mod conditions;
pub mod decide;
mod genesis;
mod keys;
mod observe;

pub use decide::NODE_WAIT_SAFETY_NET;
pub use keys::RETIRED_VALIDATORS_ANNOTATION;
use observe::{Observed, PodsSeen};

/// The key under which a network's writes are recorded (controller::freshness), its
/// chain observed and its gauges kept: `namespace/name`.
pub fn scope_of(network: &BesuNetwork) -> String {
    format!(
        "{}/{}",
        network.namespace().unwrap_or_default(),
        network.name_any()
    )
}

/// A reconcile of `network` failed in a way only a person can fix: `Degraded` says so in
/// status with the API server's words, and a Warning Event the first time.
pub async fn report_blocked(
    network: &BesuNetwork,
    ctx: &Context,
    reason: &str,
    message: &str,
) -> Result<(), Error> {
    let ns = network.namespace().unwrap_or_default();
    let api: Api<BesuNetwork> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(live) = api.get_opt(&network.name_any()).await? else {
        return Ok(());
    };
    let previous = live.status.clone().unwrap_or_default();
    let (conditions, news) = super::status::blocked_conditions(
        &previous.conditions,
        reason,
        message,
        live.metadata.generation,
        Timestamp::now(),
    );
    let status = BesuNetworkStatus {
        phase: NetworkPhase::Degraded,
        conditions,
        ..previous
    };
    if let Some(written) =
        write_status_if_changed(&api, &live, live.status.as_ref(), &status).await?
    {
        ctx.writes.wrote(&scope_of(&written), &written);
    }
    if news {
        ctx.event(&live, EventType::Warning, reason, message.to_string())
            .await;
    }
    Ok(())
}

/// Reconciles one `BesuNetwork`.
#[instrument(skip_all, fields(network = %network.name_any(), namespace = network.namespace().unwrap_or_default()))]
pub async fn reconcile(network: Arc<BesuNetwork>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile_inner(network, ctx).await;
    let took = started.elapsed();
    if took > Duration::from_secs(2) {
        warn!(took_ms = took.as_millis() as u64, "slow network reconcile");
    }
    result
}

async fn reconcile_inner(network: Arc<BesuNetwork>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = network.namespace().unwrap_or_default();
    let name = network.name_any();
    let scope = scope_of(&network);
    let networks: Api<BesuNetwork> = Api::namespaced(ctx.client.clone(), &ns);
    let nodes_api = Api::namespaced(ctx.client.clone(), &ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let pods = Api::namespaced(ctx.client.clone(), &ns);
    // Observe: the network, its nodes and its genesis, each from its cache once that
    // shows this network's own writes, else from the API (freshness).
    let stores = ctx.network_stores.get(&ns);
    let node_stores = ctx.node_stores.get(&ns);
    let genesis_name = genesis_config_map_name(&name);
    let (fresh, nodes, genesis_cm) = futures::try_join!(
        observe::observe_network(&ctx, stores.as_ref(), &networks, &scope, &ns, &name),
        observe::observe_nodes(&ctx, stores.as_ref(), &nodes_api, &scope, &ns, &name),
        cached_or_get(
            node_stores.as_ref().map(|s| &s.config_maps),
            &config_maps,
            &ns,
            &genesis_name
        ),
    )?;
    // Gone, or being deleted (a foreground deletion keeps it while its children go): the
    // children leave with it through their owner references, and nothing is created,
    // rolled out or voted for meanwhile. Acting on it would re-create the BesuNodes the
    // garbage collector has just deleted.
    let Some(fresh) = fresh.filter(|n| n.metadata.deletion_timestamp.is_none()) else {
        ctx.chains.forget(&scope);
        ctx.writes.forget(&scope);
        return Ok(Action::await_change());
    };
    let network = Arc::new(fresh);
    let mut problems: Vec<(&'static str, String)> = Vec::new();
    let stored_genesis = genesis_cm
        .as_ref()
        .and_then(|cm| cm.data.as_ref())
        .and_then(|d| d.get(GENESIS_FIELD))
        .cloned();
    let genesis_validators =
        genesis::stored_validators(stored_genesis.as_deref(), &genesis_name, &mut problems);

    // Stage 1: keys. One Secret per node, created once and never overwritten.
    let key_slots = keys::key_slots(&network, &nodes);
    let keys = keys::ensure_keys(
        &ctx,
        &network,
        &key_slots,
        &nodes,
        genesis_validators.as_ref().map(Vec::len),
        node_stores.as_ref(),
    )
    .await?;
    let key_problems = keys::key_problems(&keys);
    if !key_problems.is_empty() {
        problems.push(("KeyMissing", key_problems.join("; ")));
    }
    let mut observed = Observed {
        slots: slots(&network),
        network: network.clone(),
        key_slots,
        keys,
        genesis_validators,
        genesis_checksum: None,
        nodes,
        pods: PodsSeen::default(),
        chain: Default::default(),
        advancing: None,
        fresh_chain: false,
        snapshots: None,
        restore: None,
    };

    // Stage 2: genesis, frozen once written. Its validators are the sorted addresses of
    // the validator keys.
    observed.genesis_checksum = genesis::ensure_genesis(
        &ctx,
        &network,
        stored_genesis.as_deref(),
        observed.validator_addresses().as_deref(),
        &mut problems,
    )
    .await?;
    // Every bootnode and validator, as static nodes of every node (see render::node).
    let static_nodes = observed.static_nodes();
    let static_enodes: Vec<String> = static_nodes.iter().map(|(_, e)| e.clone()).collect();
    apply_if_changed_cached(
        node_stores.as_ref().map(|s| &s.config_maps),
        &config_maps,
        &ns,
        desired_static_nodes_config_map(&network, &static_enodes)?,
    )
    .await?;

    // The network's snapshots, when it takes them or is restored from one: new nodes may
    // start from the newest, a restored network's from the one it names.
    if network.spec.backup.is_some() || network.spec.restore.is_some() {
        observed.snapshots = Some(observe_snapshots(&ctx, &network).await?);
        match backup::restore_source(&observed) {
            Ok(restore) => observed.restore = restore,
            Err(why) => problems.push(("RestoreRefused", why)),
        }
    }

    // Stages 3-5: bootnodes, then validators once every bootnode is Ready, then members
    // once a commit quorum of validators is Ready. Only creation waits for its stage;
    // changes to existing nodes go through the quorum-safe rollout (`decide::plan`). A
    // stage's new nodes are created as soon as its gate is known, before the chain is
    // read, which can cost a node that just turned Ready a retry (0.2-0.3 s per stage
    // measured for issue 18). The bootnodes' stage is always open: it goes alongside
    // the pod list.
    let bootnodes = decide::stage_nodes(&observed, &[NodeType::Bootnode])?;
    // A backup run about to start reads the pods and the chain as they are now, not as
    // the cache last heard: a pod deleted a moment ago must not count as a node in service.
    let backup_due = backup::run_due(&network, Timestamp::now());
    let (seen, mut created) = futures::try_join!(
        observe::observe_pods(
            stores.as_ref().filter(|_| !backup_due).map(|s| &s.pods),
            &pods,
            &ns,
            &name,
            &observed.nodes
        ),
        apply::create_nodes(&ctx, &scope, &nodes_api, bootnodes),
    )?;
    observed.pods = seen;
    let gates = observed.gates();
    let later: Vec<NodeType> = [NodeType::Validator, NodeType::Member]
        .into_iter()
        .filter(|t| gates.open(*t))
        .collect();
    let opening = decide::stage_nodes(&observed, &later)?;
    created.extend(apply::create_nodes(&ctx, &scope, &nodes_api, opening).await?);

    // The chain, then what to do about it.
    observe::observe_chain(&ctx, &scope, &mut observed, backup_due).await;
    apply::heal_isolated(
        &ctx,
        &network,
        &observed.pods.running,
        &observed.pods.endpoints,
        &static_nodes,
    )
    .await;
    // From here on the observer reads these nodes every poll and wakes this controller
    // when the chain changes in a way that matters; the metrics are this reconcile's.
    let targets = observed.targets();
    let figures = super::chain::figures(&targets, &observed.chain, observed.advancing);
    ctx.chains
        .keep_observing(ObjectRef::from_obj(network.as_ref()), targets, &figures);
    let now = Timestamp::now();
    let plan = decide::plan(&observed, now)?;
    let applied = apply::execute(
        &ctx,
        &scope,
        &observed,
        &plan,
        apply::Applied {
            created,
            ..apply::Applied::default()
        },
    )
    .await?;

    // Status, and the Events of the conditions it changes.
    let status = conditions::network_status(&observed, &plan, &applied, &problems, now);
    let previous = network
        .status
        .as_ref()
        .map_or(&[][..], |s| &s.conditions[..]);
    for (kind, reason, message) in conditions::events(previous, &status.conditions) {
        ctx.event(network.as_ref(), kind, &reason, message).await;
    }
    let requeue = decide::requeue(&observed, &plan, status.phase, ctx.resync);
    if let Some(written) =
        write_status_if_changed(&networks, &network, network.status.as_ref(), &status).await?
    {
        ctx.writes.wrote(&scope, &written);
    }
    Ok(Action::requeue(requeue))
}

/// The network's VolumeSnapshots (by its label), and the one `spec.restore` names if it
/// lacks the label, so that what is wrong with it can be said.
async fn observe_snapshots(
    ctx: &Context,
    network: &BesuNetwork,
) -> Result<snapshots::Listed, Error> {
    let ns = network.namespace().unwrap_or_default();
    let mut listed = snapshots::list(&ctx.client, &ns, &network.name_any()).await?;
    let pinned = network
        .status
        .as_ref()
        .is_some_and(|s| s.restored_from.is_some());
    if let (Some(restore), snapshots::Listed::Snapshots(found), false) =
        (&network.spec.restore, &mut listed, pinned)
        && restore.from_snapshot != "latest"
        && !found.iter().any(|s| s.name == restore.from_snapshot)
        && let snapshots::Listed::Snapshots(named) =
            snapshots::get(&ctx.client, &ns, &restore.from_snapshot).await?
    {
        found.extend(named);
    }
    Ok(listed)
}
