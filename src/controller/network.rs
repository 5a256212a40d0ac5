//! The network controller: `BesuNetwork` → key Secrets, genesis ConfigMap, and
//! `BesuNode`s brought up in stages (bootnodes, then validators, then members).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use besu_operator_api::{
    BesuNetwork, BesuNetworkStatus, BesuNode, DeletionPolicy, GENESIS_FIELD, KEY_FIELD,
    LABEL_NETWORK, LABEL_NODE, LABEL_ORDINAL, NetworkPhase, NodePhase, NodeType, RoleStatus,
    ValidatorChange, ValidatorSetStatus,
};
use futures::FutureExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, PartialObjectMeta, Patch};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use tracing::{info, instrument, warn};

use super::chain::{IN_SYNC_BLOCKS, Targets};
use super::day2::{
    DOWN_SETTLED, RolloutNode, ScalingStep, ValidatorView, max_unavailable_validators,
    next_scaling_step,
};
use super::key_identity::KeyIdentity;
use super::status::{DesiredCondition, merge_conditions, write_status_if_changed};
use super::{
    Context, Error, applied, applied_hash, apply_if_changed_cached, cached_or_get, create_once,
    is_applied, key_identity,
};
use crate::chain::extradata::Consensus;
use crate::chain::genesis::{genesis_meaning, genesis_sha256};
use crate::chain::key::{Address, NodeKey};
use crate::render::network::{
    GENESIS_CHECKSUM_ANNOTATION, bootnode_enode, desired_besu_node, desired_genesis_config_map,
    desired_key_secret, desired_network_policy, desired_static_nodes_config_map,
    desired_validator_pdb, genesis_config_map_name, genesis_for, genesis_validators,
    key_secret_for, node_enode, node_name,
};
use crate::render::node::{ROLLOUT_PERMIT_ANNOTATION, data_claim_name};
use crate::rpc::Endpoint;

pub mod conditions;
pub mod decide;

/// One node slot of a network: role and ordinal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot {
    /// Role.
    pub node_type: NodeType,
    /// Index within the role.
    pub ordinal: i32,
}

/// Every Besu node slot the spec asks for, in bring-up order.
pub fn desired_slots(network: &BesuNetwork) -> Vec<Slot> {
    let s = &network.spec;
    let role = |node_type, n: i32| (0..n.max(0)).map(move |ordinal| Slot { node_type, ordinal });
    role(NodeType::Bootnode, s.bootnodes)
        .chain(role(NodeType::Validator, s.validators))
        .chain(role(NodeType::Member, s.members))
        .collect()
}

/// On a `BesuNetwork` with `deletionPolicy: Delete`: the ordinals of genesis validators
/// that were voted out and whose generated keys the operator deleted itself (comma
/// separated). Such an ordinal may get a new key when the network grows again; the
/// ordinal is removed from the list as soon as its new key exists.
pub const RETIRED_VALIDATORS_ANNOTATION: &str = "besu.nodeops.dev/retired-validators";

/// The ordinals in [`RETIRED_VALIDATORS_ANNOTATION`].
fn retired_validators(network: &BesuNetwork) -> BTreeSet<i32> {
    network
        .annotations()
        .get(RETIRED_VALIDATORS_ANNOTATION)
        .map(|v| v.split(',').filter_map(|o| o.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Writes the retired ordinals (merge patch of one annotation; `null` removes it).
async fn set_retired_validators(
    ctx: &Context,
    api: &Api<BesuNetwork>,
    name: &str,
    ordinals: &BTreeSet<i32>,
) -> Result<(), Error> {
    let value = if ordinals.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::Value::String(
            ordinals
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        )
    };
    let patch = serde_json::json!({
        "metadata": { "annotations": { RETIRED_VALIDATORS_ANNOTATION: value } }
    });
    let written = api
        .patch(name, &super::patch_params(), &Patch::Merge(&patch))
        .await?;
    ctx.writes.wrote(&scope_of(&written), &written);
    Ok(())
}

/// The key under which a network's writes are recorded (controller::freshness), its
/// chain observed and its gauges kept: `namespace/name`.
pub fn scope_of(network: &BesuNetwork) -> String {
    format!(
        "{}/{}",
        network.namespace().unwrap_or_default(),
        network.name_any()
    )
}

/// Stage 1, the one write that precedes every decision: the identity of each key slot,
/// its Secret created once and never overwritten, and only where a key may be minted
/// (`may_generate_key`, on live reads of the Secret's, the volume's and the node's
/// absence).
async fn ensure_keys(
    ctx: &Context,
    network: &BesuNetwork,
    key_slots: &[Slot],
    existing_nodes: &BTreeMap<String, BesuNode>,
    stored_validators: Option<usize>,
    node_stores: Option<&super::NodeStores>,
) -> Result<BTreeMap<Slot, KeyIdentity>, Error> {
    let ns = network.namespace().unwrap_or_default();
    let name = network.name_any();
    let networks: Api<BesuNetwork> = Api::namespaced(ctx.client.clone(), &ns);
    let nodes_api: Api<BesuNode> = Api::namespaced(ctx.client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let of_network = ListParams::default().labels(&format!("{LABEL_NETWORK}={name}"));
    let mut keys: BTreeMap<Slot, KeyIdentity> = BTreeMap::new();
    let mut generated = 0usize;
    // The generated key Secrets (they carry the network label) from the node controller's
    // cache, or one list; a get only for a name they lack (an imported Secret, a missing
    // one, or one created since the cache was filled): a key is never minted on a
    // cache's word. Metadata only: a key's identity is in its Secret's annotations
    // (key_identity).
    let mut labelled: BTreeMap<String, PartialObjectMeta<Secret>> =
        match node_stores.map(|s| &s.secrets).filter(|s| synced(s)) {
            Some(store) => of_network_in(store, &ns, &name)
                .map(|s| (s.name_any(), PartialObjectMeta::clone(&s)))
                .collect(),
            None => secrets
                .list_metadata(&of_network)
                .await?
                .into_iter()
                .map(|s| (s.name_any(), s))
                .collect(),
        };
    // The reads the loop below may need, at once: Secrets the list lacks (imported or
    // missing), then the data volumes of slots still without one (a key is only minted
    // where no volume holds an identity already).
    let unlisted: Vec<String> = key_slots
        .iter()
        .map(|slot| key_secret_for(network, slot.node_type, slot.ordinal))
        .filter(|n| !labelled.contains_key(n))
        .collect();
    let fetched =
        futures::future::try_join_all(unlisted.iter().map(|n| secrets.get_metadata_opt(n))).await?;
    let mut absent = BTreeSet::new();
    for (n, meta) in unlisted.into_iter().zip(fetched) {
        match meta {
            Some(meta) => {
                labelled.insert(n, meta);
            }
            None => {
                absent.insert(n);
            }
        }
    }
    let keyless: Vec<String> = key_slots
        .iter()
        .filter(|slot| {
            !labelled.contains_key(&key_secret_for(network, slot.node_type, slot.ordinal))
        })
        .map(|slot| data_claim_name(&node_name(&name, slot.node_type, slot.ordinal)))
        .collect();
    let volumes = futures::future::try_join_all(keyless.iter().map(|c| pvcs.get_opt(c))).await?;
    let volume_exists_at: BTreeMap<String, bool> = keyless
        .into_iter()
        .zip(volumes)
        .map(|(c, v)| (c, v.is_some()))
        .collect();
    let mut retired = retired_validators(network);
    for slot in key_slots {
        let secret_name = key_secret_for(network, slot.node_type, slot.ordinal);
        let imported = secret_name
            != crate::render::network::key_secret_name(&name, slot.node_type, slot.ordinal);
        let node = node_name(&name, slot.node_type, slot.ordinal);
        let found = match labelled.remove(&secret_name) {
            Some(secret) => Some(secret),
            None if absent.contains(&secret_name) => None,
            None => secrets.get_metadata_opt(&secret_name).await?,
        };
        let identity = match &found {
            Some(meta) => {
                ctx.key_identities
                    .identity(&secrets, meta, KEY_FIELD)
                    .await?
            }
            None => None,
        };
        let state = match identity {
            Some(identity) => identity,
            None => {
                let claim = data_claim_name(&node);
                let volume_exists = match volume_exists_at.get(&claim) {
                    Some(exists) => *exists,
                    None => pvcs.get_opt(&claim).await?.is_some(),
                };
                let retired_slot =
                    slot.node_type == NodeType::Validator && retired.contains(&slot.ordinal);
                // The node's absence is read live too: a cache's word is never why an
                // identity is minted.
                let node_exists = existing_nodes.contains_key(&node)
                    || (!imported && !volume_exists && nodes_api.get_opt(&node).await?.is_some());
                if may_generate_key(
                    *slot,
                    imported,
                    stored_validators,
                    node_exists,
                    volume_exists,
                    retired_slot,
                ) {
                    let key = NodeKey::generate();
                    let desired = desired_key_secret(network, slot.node_type, slot.ordinal, &key)?;
                    let (live, created) = create_once(&secrets, &desired).await?;
                    if created {
                        generated += 1;
                    }
                    if retired_slot {
                        // The new identity exists: from now on this key is as precious
                        // as any other, so the exception ends.
                        retired.remove(&slot.ordinal);
                        set_retired_validators(ctx, &networks, &name, &retired).await?;
                        ctx.event(
                            network,
                            EventType::Normal,
                            "ValidatorKeyRegenerated",
                            format!(
                                "{node} was voted out earlier and its key deleted (deletionPolicy: Delete); it starts with a new key and is voted in as a new validator"
                            ),
                        )
                        .await;
                    }
                    if created {
                        KeyIdentity::Valid(key.public_key(), key.address())
                    } else {
                        key_identity::of_secret(&live, KEY_FIELD)
                    }
                } else if imported {
                    KeyIdentity::Invalid(format!(
                        "imported key Secret {secret_name} for {node} not found; create it with the node's key under data key '{KEY_FIELD}'"
                    ))
                } else {
                    KeyIdentity::Invalid(format!(
                        "key Secret {secret_name} of {node} is missing. The operator never regenerates a key: restore the Secret from your backup"
                    ))
                }
            }
        };
        keys.insert(*slot, state);
    }
    if generated > 0 {
        info!(generated, "generated node keys");
        ctx.event(
            network,
            EventType::Normal,
            "KeysGenerated",
            format!("generated {generated} node key Secret(s)"),
        )
        .await;
    }
    Ok(keys)
}

/// Stage 2: the genesis, written once (its validators the sorted addresses of the
/// validator keys, once every one exists) and never rewritten; a stored one must mean
/// what this spec does. Returns its checksum when it is in place and matches; a
/// mismatch or an unreadable genesis is a problem.
async fn ensure_genesis(
    ctx: &Context,
    network: &BesuNetwork,
    stored_genesis: Option<&str>,
    validators: Option<&[Address]>,
    problems: &mut Vec<(&'static str, String)>,
) -> Result<Option<String>, Error> {
    let ns = network.namespace().unwrap_or_default();
    let genesis_name = genesis_config_map_name(&network.name_any());
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let mut checksum: Option<String> = None;
    match (stored_genesis, validators) {
        (Some(json), Some(validators)) => {
            // Frozen: never rewritten. It must still match this spec, or it belongs to an
            // earlier network of the same name.
            // Compared by meaning, not bytes: a release that renders genesis differently
            // must still recognise the one it wrote (review C3).
            let meanings = genesis_for(network, validators).and_then(|(expected, _)| {
                let want = genesis_meaning(&expected).map_err(|e| e.to_string())?;
                let have = genesis_meaning(json)
                    .map_err(|e| format!("genesis ConfigMap {genesis_name} cannot be read: {e}"))?;
                Ok((want, have))
            });
            match meanings {
                Ok((want, have)) if want == have => {
                    checksum = Some(genesis_sha256(json));
                }
                Ok((want, have)) => problems.push((
                    "GenesisMismatch",
                    format!(
                        "genesis ConfigMap {genesis_name} differs from this network's spec in: {}. It was written by an earlier network of this name, or a genesis field of the spec was changed; the operator leaves it as it is and starts no node. Restore the spec that matches it (kubectl get configmap {genesis_name} -o yaml shows it)",
                        want.differences(&have).join(", ")
                    ),
                )),
                Err(e) => problems.push(("GenesisInvalid", e)),
            }
        }
        (None, Some(validators)) => match genesis_for(network, validators) {
            Ok((json, written)) => {
                let cm = desired_genesis_config_map(network, &json, &written)?;
                let (live, created) = create_once(&config_maps, &cm).await?;
                if created {
                    ctx.event(
                        network,
                        EventType::Normal,
                        "GenesisWritten",
                        format!(
                            "genesis with {} validators, checksum {written}",
                            validators.len()
                        ),
                    )
                    .await;
                }
                checksum = live
                    .annotations()
                    .get(GENESIS_CHECKSUM_ANNOTATION)
                    .cloned()
                    .or(Some(written));
            }
            Err(e) => problems.push(("GenesisInvalid", e)),
        },
        (_, None) => {}
    }
    Ok(checksum)
}

/// Whether the operator may generate a key for a slot whose Secret does not exist.
/// Never for a node that has existed (its BesuNode or data volume is there) or for a
/// validator named in genesis: such a key was lost, and regenerating it would silently
/// give the node another identity. The one exception is a genesis validator the
/// operator itself voted out and whose key it deleted (`retired`, deletionPolicy Delete):
/// that identity is gone from the chain on purpose, and a new one is voted in.
pub fn may_generate_key(
    slot: Slot,
    imported: bool,
    genesis_validator_count: Option<usize>,
    node_exists: bool,
    volume_exists: bool,
    retired: bool,
) -> bool {
    if imported || node_exists || volume_exists {
        return false;
    }
    match (slot.node_type, genesis_validator_count) {
        (NodeType::Validator, Some(n)) => {
            retired || usize::try_from(slot.ordinal).is_ok_and(|o| o >= n)
        }
        _ => true,
    }
}

/// Reconciles one `BesuNetwork`.
#[instrument(skip_all, fields(network = %network.name_any(), namespace = network.namespace().unwrap_or_default()))]
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
    let client = ctx.client.clone();
    let networks: Api<BesuNetwork> = Api::namespaced(client.clone(), &ns);
    let nodes_api: Api<BesuNode> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let policies: Api<k8s_openapi::api::networking::v1::NetworkPolicy> =
        Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
    // Read from the caches (the network controller's and the node controller's), each
    // only once it shows this network's own writes; else from the API (freshness).
    let chain_key = scope_of(&network);
    let stores = ctx.network_stores.get(&ns);
    let node_stores = ctx.node_stores.get(&ns);
    let selector = format!("{LABEL_NETWORK}={name}");
    let genesis_name = genesis_config_map_name(&name);
    let of_network = ListParams::default().labels(&selector);
    let (fresh, existing_nodes, genesis_cm) = futures::try_join!(
        observe_network(&ctx, stores.as_ref(), &networks, &chain_key, &ns, &name),
        observe_nodes(
            &ctx,
            stores.as_ref(),
            &nodes_api,
            &chain_key,
            &ns,
            &name,
            &of_network
        ),
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
        ctx.chains.forget(&chain_key);
        ctx.writes.forget(&chain_key);
        return Ok(Action::await_change());
    };
    let network = Arc::new(fresh);
    let mut problems: Vec<(&'static str, String)> = Vec::new();
    let mut conditions: Vec<DesiredCondition> = Vec::new();

    // Stage 1: keys. One Secret per node, created once and never overwritten.
    let stored_genesis = genesis_cm
        .as_ref()
        .and_then(|cm| cm.data.as_ref())
        .and_then(|d| d.get(GENESIS_FIELD))
        .cloned();
    let stored_validators = match &stored_genesis {
        Some(json) => match genesis_validators(json) {
            Ok(v) => Some(v),
            Err(e) => {
                problems.push((
                    "GenesisUnreadable",
                    format!("genesis ConfigMap {genesis_name} cannot be read: {e}"),
                ));
                None
            }
        },
        None => None,
    };

    let slots = desired_slots(&network);
    // Validators beyond spec.validators stay until voted out, so their keys matter too.
    let extra_validators = existing_nodes
        .values()
        .filter(|n| n.spec.node_type == NodeType::Validator)
        .filter_map(|n| n.labels().get(LABEL_ORDINAL)?.parse::<i32>().ok())
        .filter(|o| *o >= network.spec.validators)
        .map(|ordinal| Slot {
            node_type: NodeType::Validator,
            ordinal,
        });
    let key_slots: Vec<Slot> = slots.iter().copied().chain(extra_validators).collect();
    let keys = ensure_keys(
        &ctx,
        &network,
        &key_slots,
        &existing_nodes,
        stored_validators.as_ref().map(Vec::len),
        node_stores.as_ref(),
    )
    .await?;
    let key_problems: Vec<String> = keys
        .values()
        .filter_map(|k| match k {
            KeyIdentity::Invalid(p) => Some(p.clone()),
            KeyIdentity::Valid(..) => None,
        })
        .collect();
    conditions.push(if key_problems.is_empty() {
        DesiredCondition::new(
            "KeysReady",
            true,
            "KeysPresent",
            format!("{} node keys present", keys.len()),
        )
    } else {
        problems.push(("KeyMissing", key_problems.join("; ")));
        DesiredCondition::new("KeysReady", false, "KeyMissing", key_problems.join("; "))
    });

    // Stage 2: genesis, frozen once written. Its validators are the sorted addresses of
    // the validator keys.
    let validator_addresses: Option<Vec<Address>> = match &stored_validators {
        Some(v) => Some(v.clone()),
        None => {
            let mut addrs = Vec::new();
            for slot in slots.iter().filter(|s| s.node_type == NodeType::Validator) {
                if let Some(KeyIdentity::Valid(_, a)) = keys.get(slot) {
                    addrs.push(*a);
                }
            }
            (addrs.len()
                == slots
                    .iter()
                    .filter(|s| s.node_type == NodeType::Validator)
                    .count())
            .then_some(addrs)
        }
    };
    let genesis_checksum = ensure_genesis(
        &ctx,
        &network,
        stored_genesis.as_deref(),
        validator_addresses.as_deref(),
        &mut problems,
    )
    .await?;
    conditions.push(match &genesis_checksum {
        Some(c) => DesiredCondition::new(
            "GenesisReady",
            true,
            "GenesisWritten",
            format!("genesis ConfigMap {genesis_name}, checksum {c}"),
        ),
        None => DesiredCondition::new(
            "GenesisReady",
            false,
            "WaitingForKeys",
            "genesis is written once every validator key exists",
        ),
    });

    // Stages 3-5: bootnodes, then validators once every bootnode is Ready, then members
    // once a commit quorum of validators is Ready. Only creation waits for its stage;
    // changes to existing nodes go through the quorum-safe rollout below.
    let mut bootnode_enodes = Vec::new();
    for slot in slots.iter().filter(|s| s.node_type == NodeType::Bootnode) {
        if let Some(KeyIdentity::Valid(pk, _)) = keys.get(slot) {
            bootnode_enodes.push(bootnode_enode(&network, slot.ordinal, pk));
        }
    }
    // Every bootnode and validator, as static nodes of every node (see render::node).
    let static_nodes: Vec<(String, String)> = key_slots
        .iter()
        .filter(|s| matches!(s.node_type, NodeType::Bootnode | NodeType::Validator))
        .filter_map(|s| match keys.get(s) {
            Some(KeyIdentity::Valid(pk, _)) => Some((
                node_name(&name, s.node_type, s.ordinal),
                node_enode(&network, s.node_type, s.ordinal, pk),
            )),
            _ => None,
        })
        .collect();
    let static_enodes: Vec<String> = static_nodes.iter().map(|(_, e)| e.clone()).collect();
    apply_if_changed_cached(
        node_stores.as_ref().map(|s| &s.config_maps),
        &config_maps,
        &ns,
        desired_static_nodes_config_map(&network, &static_enodes)?,
    )
    .await?;
    let is_ready = |node: &str| existing_nodes.get(node).is_some_and(node_ready);
    // How many slots of role `t` have a node that passes `up`.
    let count = |t: NodeType, up: &dyn Fn(&str) -> bool| {
        slots
            .iter()
            .filter(|s| s.node_type == t && up(&node_name(&name, t, s.ordinal)))
            .count()
    };
    let count_ready = |t: NodeType| count(t, &is_ready);
    let desired_count = |t: NodeType| slots.iter().filter(|s| s.node_type == t).count();
    let (b_ready, v_ready, m_ready) = (
        count_ready(NodeType::Bootnode),
        count_ready(NodeType::Validator),
        count_ready(NodeType::Member),
    );
    let (b_want, v_want, m_want) = (
        desired_count(NodeType::Bootnode),
        desired_count(NodeType::Validator),
        desired_count(NodeType::Member),
    );
    let genesis_count = stored_validators.as_ref().map(Vec::len).unwrap_or(v_want);
    // A bring-up stage's new nodes depend on the keys, the genesis and the gates alone,
    // never on the chain: they are created as soon as their gate is known, before the
    // JSON-RPC reads below, which can cost a node that just turned Ready a retry (0.2-0.3 s
    // per stage measured for issue 18). Validators beyond the genesis set wait for the
    // scaling step further down. Returns the nodes written.
    let bring_up = genesis_checksum.is_some() && bootnode_enodes.len() == b_want;
    let open_stages = async |open: &[NodeType]| -> Result<Vec<String>, Error> {
        if !bring_up {
            return Ok(Vec::new());
        }
        let opening = decide::bring_up_slots(
            &slots,
            open,
            genesis_count,
            |s| existing_nodes.contains_key(&node_name(&name, s.node_type, s.ordinal)),
            |s| matches!(keys.get(s), Some(KeyIdentity::Valid(..))),
        )
        .into_iter()
        .map(|s| desired_besu_node(&network, s.node_type, s.ordinal, &bootnode_enodes))
        .collect::<Result<Vec<_>, _>>()?;
        // Absent from the nodes read at the start of this reconcile: applied without a
        // read of each first.
        let applied = futures::future::try_join_all(
            opening
                .iter()
                .map(|desired| apply_node(&ctx, &chain_key, &nodes_api, desired.clone(), None)),
        )
        .await?;
        Ok(opening
            .into_iter()
            .zip(applied)
            .filter(|(_, wrote)| *wrote)
            .map(|(desired, _)| desired.name_any())
            .collect())
    };
    // The bootnodes' stage is always open: it goes alongside the pod list.
    let (
        PodsSeen {
            endpoints,
            down_settled,
            running,
        },
        opened_bootnodes,
    ) = futures::try_join!(
        observe_pods(
            stores.as_ref().map(|s| &s.pods),
            &pods,
            &ns,
            &name,
            &existing_nodes
        ),
        open_stages(&[NodeType::Bootnode]),
    )?;
    // A stage opens on the pods of the one before being Ready, as listed just now (their
    // readiness changes wake this controller directly, operator::network_controller),
    // without waiting for the StatefulSet controller and the node controller to carry
    // the news into the BesuNode's status: that relay costs 0.1-0.4 s per stage.
    let gate_count = |t: NodeType| {
        count(t, &|node: &str| {
            is_ready(node) || endpoints.contains_key(node)
        })
    };
    let gates = decide::Gates {
        bootnodes_wanted: b_want,
        validators_wanted: v_want,
        genesis_validators: genesis_count,
        bootnodes_up: gate_count(NodeType::Bootnode),
        validators_up: gate_count(NodeType::Validator),
    };
    // The other stages open now (the bootnodes' did above), before the JSON-RPC reads
    // below.
    let mut created = opened_bootnodes;
    let later: Vec<NodeType> = [NodeType::Validator, NodeType::Member]
        .into_iter()
        .filter(|t| gates.open(*t))
        .collect();
    created.extend(open_stages(&later).await?);

    // What the chain says: heights, the on-chain validator set, proposals held.
    let consensus = match network.spec.consensus {
        besu_operator_api::ConsensusProtocol::Qbft => Consensus::Qbft,
        besu_operator_api::ConsensusProtocol::Ibft2 => Consensus::Ibft2,
    };
    let g = &network.spec.genesis;
    let period = u64::try_from(g.block_period_seconds).unwrap_or(1).max(1);
    let stall_window = decide::stall_window(
        period,
        u64::try_from(g.request_timeout_seconds).unwrap_or(1),
    );
    // At rest the chain observer's view serves (read at most a poll ago from the same
    // nodes); while anything is changing, the chain is read now (day-2 decisions need
    // fresh figures).
    let validator_nodes: BTreeSet<String> = existing_nodes
        .values()
        .filter(|n| n.spec.node_type == NodeType::Validator)
        .map(ResourceExt::name_any)
        .collect();
    let mut targets = Targets {
        consensus,
        endpoints: endpoints.clone(),
        validators: validator_nodes,
        stall_window,
        desired: v_want,
        ready: v_ready,
        up: BTreeSet::new(),
        nodes: existing_nodes
            .values()
            .filter(|n| n.spec.node_type.is_besu())
            .map(ResourceExt::name_any)
            .collect(),
    };
    // A view with proposals held is read again: proposals that serve no step are
    // discarded only on a fresh read (below).
    let recent = if at_rest(&network, &existing_nodes) {
        ctx.chains
            .recent(&chain_key, &endpoints)
            .filter(|(view, _)| view.pending.values().all(BTreeMap::is_empty))
    } else {
        None
    };
    let fresh_chain = recent.is_none();
    let (chain, advancing) = match recent {
        Some(c) => c,
        None => ctx.chains.read(&chain_key, &targets).await,
    };
    ctx.chains.decided(&chain_key, &chain, advancing);

    heal_isolated(&ctx, &network, &running, &endpoints, &static_nodes).await;

    // Validator set changes, by on-chain vote, one validator at a time.
    let views: Vec<ValidatorView> = key_slots
        .iter()
        .filter(|s| s.node_type == NodeType::Validator)
        .filter_map(|s| match keys.get(s) {
            Some(KeyIdentity::Valid(_, address)) => {
                let node = node_name(&name, NodeType::Validator, s.ordinal);
                Some(ValidatorView {
                    ordinal: s.ordinal,
                    address: *address,
                    exists: existing_nodes.contains_key(&node),
                    up: is_ready(&node) && endpoints.contains_key(&node),
                    height: chain.heights.get(&node).copied(),
                })
            }
            _ => None,
        })
        .collect();
    targets.up = views.iter().filter(|v| v.up).map(|v| v.address).collect();
    // From here on the observer reads these nodes every poll and wakes this controller
    // when the chain changes in a way that matters; the metrics are this reconcile's.
    let figures = super::chain::figures(&targets, &chain, advancing);
    ctx.chains.keep_observing(
        kube::runtime::reflector::ObjectRef::from_obj(network.as_ref()),
        targets,
        &figures,
    );
    let scaling = match (&chain.onchain, chain.head) {
        (Some(onchain), Some(head)) => Some(next_scaling_step(
            network.spec.validators,
            onchain,
            &views,
            head,
        )),
        _ => None,
    };
    let mut pending_changes = Vec::new();
    if let (
        Some(
            step @ ScalingStep::Vote {
                ordinal,
                address,
                add,
                voters,
            },
        ),
        Some(_),
    ) = (&scaling, &chain.onchain)
    {
        let plan = decide::votes(&name, step, &chain.pending, &endpoints);
        let mut holding = plan.holding.len();
        for node in &plan.ask {
            let Some(ep) = endpoints.get(node) else {
                continue;
            };
            match ctx.rpc.propose_vote(ep, consensus, address, *add).await {
                Ok(_) => {
                    holding += 1;
                    ctx.event(
                        network.as_ref(),
                        EventType::Normal,
                        "VoteProposed",
                        format!(
                            "asked {node} to vote to {} validator {ordinal} ({address})",
                            if *add { "add" } else { "remove" }
                        ),
                    )
                    .await;
                }
                Err(e) => warn!(error = %e, "vote proposal failed"),
            }
        }
        pending_changes.push(ValidatorChange {
            address: address.to_string(),
            ordinal: *ordinal,
            action: if *add { "add" } else { "remove" }.to_string(),
            votes: i32::try_from(holding).unwrap_or(i32::MAX),
            needed: i32::try_from(voters.len()).unwrap_or(i32::MAX),
        });
    }
    // Proposals that no longer serve the current step are discarded: the change they
    // asked for happened, or the spec no longer wants it. Only on a fresh read of the
    // chain: the observer's view may still list proposals discarded since, and acting on
    // it would discard them again, with an Event.
    if fresh_chain && let Some(onchain) = &chain.onchain {
        for d in decide::discards(scaling.as_ref(), &chain.pending, &endpoints, onchain) {
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
                    network.as_ref(),
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
    }
    if let Some(ScalingStep::RemoveNode { ordinal }) = &scaling {
        let node = node_name(&name, NodeType::Validator, *ordinal);
        delete_node(&ctx, &chain_key, &nodes_api, &node).await?;
        let secret = key_secret_for(&network, NodeType::Validator, *ordinal);
        let generated =
            crate::render::network::key_secret_name(&name, NodeType::Validator, *ordinal);
        if network.spec.deletion_policy == DeletionPolicy::Delete && secret == generated {
            // Recorded before the key goes: a later scale-up may give this ordinal a new
            // key (a genesis validator's lost key is otherwise never regenerated).
            let mut retired = retired_validators(&network);
            if retired.insert(*ordinal) {
                set_retired_validators(&ctx, &networks, &name, &retired).await?;
            }
            secrets.delete(&secret, &DeleteParams::background()).await?;
        }
        ctx.event(
            network.as_ref(),
            EventType::Normal,
            "ValidatorRemoved",
            format!("{node} left the on-chain validator set; its node was deleted"),
        )
        .await;
    }

    // Desired nodes, and the rollout of changes to existing ones.
    let mut desired_nodes: Vec<(Slot, BesuNode)> = Vec::new();
    if genesis_checksum.is_some() && bootnode_enodes.len() == b_want {
        for slot in &key_slots {
            if !matches!(keys.get(slot), Some(KeyIdentity::Valid(..))) {
                continue;
            }
            let node = desired_besu_node(&network, slot.node_type, slot.ordinal, &bootnode_enodes)?;
            desired_nodes.push((*slot, node));
        }
    }
    // In sync, for the rollout: when the chain's height is known, the node's JSON-RPC
    // says it is within 2 blocks of the head (what Besu's /readiness checks).
    // With no height known at all (no node answered), nobody is known to be in sync: the
    // rollout then takes no Ready validator down.
    let in_sync = |node: &str| chain.follows_head(node, IN_SYNC_BLOCKS);
    // Back in service after a rollout step: Ready, caught up with the head (a node still
    // syncing takes no part in consensus yet), and running the pod template the rollout
    // permitted, with none held back.
    let caught_up = |node: &str| chain.follows_head(node, 1);
    let in_service = |node: &str| {
        is_ready(node)
            && caught_up(node)
            && existing_nodes.get(node).is_some_and(on_permitted_template)
    };
    let mut rollout_nodes = Vec::new();
    for (_, desired) in &desired_nodes {
        if let Some(live) = existing_nodes.get(&desired.name_any()) {
            rollout_nodes.push(RolloutNode {
                name: desired.name_any(),
                node_type: desired.spec.node_type,
                outdated: !is_applied(live, desired)? || template_held(live),
                ready: is_ready(&desired.name_any()),
                in_sync: in_sync(&desired.name_any()),
                down_settled: down_settled.contains(&desired.name_any()),
            });
        }
    }
    let previous_upgrade = network.status.as_ref().and_then(|s| s.upgrade.clone());
    let rollout = decide::decide_rollout(
        &rollout_nodes,
        previous_upgrade.as_ref(),
        in_service,
        chain.head,
        advancing,
        Timestamp::now(),
    );
    let mut updated = Vec::new();
    for (slot, desired) in desired_nodes {
        let node = desired.name_any();
        if existing_nodes.contains_key(&node) {
            if rollout.update.contains(&node)
                && apply_node(
                    &ctx,
                    &chain_key,
                    &nodes_api,
                    desired,
                    existing_nodes.get(&node),
                )
                .await?
            {
                updated.push(node.clone());
            }
            // The rollout let this node's controller roll out the pod template it holds
            // back (a new spec's, or a new release's rendering).
            if rollout.permit.contains(&node)
                && let Some(live) = existing_nodes.get(&node)
                && grant_rollout_permit(&ctx, &chain_key, &nodes_api, live).await?
            {
                info!(node = %node, "rollout permit granted");
            }
            continue;
        }
        // A new node of a bring-up stage was created above (open_stages); the one new
        // node left to create here is the validator a scale-up step adds.
        let scale_up = slot.node_type == NodeType::Validator
            && gates.open(NodeType::Validator)
            && slot.ordinal < network.spec.validators
            && usize::try_from(slot.ordinal).is_ok_and(|o| o >= genesis_count)
            && scaling
                == Some(ScalingStep::CreateNode {
                    ordinal: slot.ordinal,
                });
        if scale_up && apply_node(&ctx, &chain_key, &nodes_api, desired, None).await? {
            created.push(node);
        }
    }
    if !rollout.withheld.is_empty() {
        info!(nodes = ?rollout.withheld, "rollout step called off: the validator budget is used up");
    }
    if !created.is_empty() {
        ctx.event(
            network.as_ref(),
            EventType::Normal,
            "NodesCreated",
            format!("created {}", created.join(", ")),
        )
        .await;
    }
    if !updated.is_empty() {
        ctx.event(
            network.as_ref(),
            EventType::Normal,
            "RollingUpdate",
            format!("updating {} ({})", updated.join(", "), network.spec.image),
        )
        .await;
    }
    // Compared with the network controller's cached copies (a stale one costs an
    // idempotent apply, never a wrong decision: nothing is decided on them).
    let stores = ctx.network_stores.get(&ns);
    if v_want > 0 {
        let budget = max_unavailable_validators(v_want);
        let pdb = desired_validator_pdb(&network, i32::try_from(budget).unwrap_or(1))?;
        apply_if_changed_cached(stores.as_ref().map(|s| &s.budgets), &pdbs, &ns, pdb).await?;
    }
    let policy = desired_network_policy(&network)?;
    apply_if_changed_cached(stores.as_ref().map(|s| &s.policies), &policies, &ns, policy).await?;

    // Monitoring nodes: there while switched on, deleted when switched off.
    let monitoring = &network.spec.monitoring;
    for (node_type, enabled) in [
        (NodeType::Prometheus, monitoring.prometheus.enabled),
        (NodeType::Grafana, monitoring.grafana.enabled),
    ] {
        let node = node_name(&name, node_type, 0);
        if enabled {
            let desired = crate::render::monitoring::desired_monitoring_node(&network, node_type)?;
            apply_node(
                &ctx,
                &chain_key,
                &nodes_api,
                desired,
                existing_nodes.get(&node),
            )
            .await?;
        } else if existing_nodes.contains_key(&node) {
            delete_node(&ctx, &chain_key, &nodes_api, &node).await?;
        }
    }

    // Bootnodes and members the spec no longer asks for go at once; validators go only
    // once voted out (above).
    let wanted: BTreeSet<String> = key_slots
        .iter()
        .map(|s| node_name(&name, s.node_type, s.ordinal))
        .collect();
    for (node, obj) in &existing_nodes {
        if wanted.contains(node)
            || !obj.spec.node_type.is_besu()
            || obj.spec.node_type == NodeType::Validator
        {
            continue;
        }
        delete_node(&ctx, &chain_key, &nodes_api, node).await?;
        ctx.event(
            network.as_ref(),
            EventType::Normal,
            "NodeRemoved",
            format!("removed {node}"),
        )
        .await;
    }

    // Day-2 conditions.
    conditions.push(conditions::validator_set(
        scaling.as_ref(),
        chain.error.as_deref(),
        network.spec.validators,
        &name,
    ));
    conditions.push(conditions::fault_tolerant(network.spec.validators));
    conditions.push(conditions::producing(advancing, stall_window));
    conditions.extend(decide::rollout_conditions(
        &rollout,
        &network.spec.image,
        period,
        Timestamp::now(),
    ));
    let rolling = rollout.rolling(&rollout_nodes);
    let upgrade = decide::upgrade_status(
        &rollout,
        &rollout_nodes,
        previous_upgrade.as_ref(),
        &network.spec.image,
    );

    let roles = conditions::Roles {
        bootnodes: (b_ready, b_want),
        validators: (v_ready, v_want),
        members: (m_ready, m_want),
    };
    let (readiness, phase) =
        conditions::readiness(&roles, &gates, genesis_checksum.is_some(), &problems);
    conditions.extend(readiness);
    let previous = network.status.clone().unwrap_or_default();
    let merged = merge_conditions(
        &previous.conditions,
        &conditions,
        network.metadata.generation,
        Timestamp::now(),
    );
    for (kind, reason, message) in conditions::events(&previous.conditions, &merged) {
        ctx.event(network.as_ref(), kind, &reason, message).await;
    }
    let to_i32 = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let mut addresses: Vec<String> = validator_addresses
        .unwrap_or_default()
        .iter()
        .map(|a| a.to_string())
        .collect();
    addresses.sort();
    let status = BesuNetworkStatus {
        phase,
        observed_generation: network.metadata.generation,
        conditions: merged,
        bootnodes: RoleStatus {
            desired: to_i32(b_want),
            ready: to_i32(b_ready),
        },
        validators: ValidatorSetStatus {
            desired: to_i32(v_want),
            ready: to_i32(v_ready),
            summary: format!("{v_ready}/{v_want}"),
            addresses,
            on_chain: chain
                .onchain
                .as_ref()
                .map(|set| set.iter().map(|a| a.to_string()).collect())
                .unwrap_or_default(),
            pending: pending_changes,
        },
        members: RoleStatus {
            desired: to_i32(m_want),
            ready: to_i32(m_ready),
        },
        bootnode_enodes,
        genesis_checksum,
        genesis_config_map: Some(genesis_name),
        upgrade,
    };
    if let Some(written) =
        write_status_if_changed(&networks, &network, network.status.as_ref(), &status).await?
    {
        ctx.writes.wrote(&chain_key, &written);
    }

    // Only node readiness outstanding (a bring-up, or nodes coming back): every change
    // it waits for arrives as a watch event (a pod's readiness, a BesuNode's status).
    let waits_on_nodes_only = matches!(scaling, None | Some(ScalingStep::Converged))
        && !rolling
        && status.validators.pending.is_empty();
    let heal_due_in = running
        .iter()
        .filter(|(node, _)| !endpoints.contains_key(*node))
        .map(|(_, (_, ran))| HEAL_AFTER.saturating_sub(*ran))
        .min();
    Ok(Action::requeue(requeue_after(
        phase,
        waits_on_nodes_only,
        heal_due_in,
        ctx.resync,
    )))
}

/// While only node readiness is outstanding, the longest a network waits without a
/// watch event: a safety net, never the way a stage opens.
pub const NODE_WAIT_SAFETY_NET: Duration = Duration::from_secs(60);

/// While the chain itself is awaited (a vote, a rollout step's settling, a new
/// validator catching up), how often it is read.
pub const CHAIN_WAIT: Duration = Duration::from_secs(15);

/// When a network is looked at again without a watch event. Ready: at the chain poll
/// (metrics follow the chain) or the resync, whichever is sooner (`at_rest`). Degraded:
/// every minute. Coming up with only node readiness outstanding
/// (`waits_on_nodes_only`): the safety net, or sooner when a running node becomes due
/// for a peering heal (`heal_due_in`). Otherwise the chain is awaited: [`CHAIN_WAIT`].
pub fn requeue_after(
    phase: NetworkPhase,
    waits_on_nodes_only: bool,
    heal_due_in: Option<Duration>,
    at_rest: Duration,
) -> Duration {
    match phase {
        NetworkPhase::Ready => at_rest,
        NetworkPhase::Degraded => Duration::from_secs(60),
        NetworkPhase::Pending | NetworkPhase::Creating if waits_on_nodes_only => heal_due_in
            .map_or(NODE_WAIT_SAFETY_NET, |d| {
                d.max(Duration::from_secs(1)).min(NODE_WAIT_SAFETY_NET)
            }),
        NetworkPhase::Pending | NetworkPhase::Creating => CHAIN_WAIT,
    }
}

/// A node counts as Ready when its controller has seen its latest spec and its pod is
/// Ready on it.
/// Whether the node controller holds back a pod template until the rollout permits it.
fn template_held(node: &BesuNode) -> bool {
    node.status
        .as_ref()
        .is_some_and(|s| s.pending_template_revision.is_some())
}

/// Whether the node runs the pod template its rollout permit names (or has no permit)
/// and holds none back.
fn on_permitted_template(node: &BesuNode) -> bool {
    let status = node.status.as_ref();
    !template_held(node)
        && match node.annotations().get(ROLLOUT_PERMIT_ANNOTATION) {
            Some(permit) => status.and_then(|s| s.template_revision.as_ref()) == Some(permit),
            None => true,
        }
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
            &super::patch_params(),
            &Patch::Merge(&patch),
        )
        .await?;
    ctx.writes.wrote(scope, &written);
    Ok(true)
}

fn node_ready(node: &BesuNode) -> bool {
    node.status.as_ref().is_some_and(|s| {
        s.phase == NodePhase::Ready && s.observed_generation >= node.metadata.generation
    })
}

/// The network's pods as listed just now, by node name.
#[derive(Default)]
struct PodsSeen {
    /// JSON-RPC endpoints of the Ready pods.
    endpoints: BTreeMap<String, Endpoint>,
    /// Nodes whose pod has been not Ready for at least [`DOWN_SETTLED`].
    down_settled: BTreeSet<String>,
    /// Every pod whose Besu container runs (Ready or not): its endpoint and how long ago
    /// the container started.
    running: BTreeMap<String, (Endpoint, Duration)>,
}

/// How long a node's container must have run with no peer before the operator asks it
/// to dial the network's nodes: longer than a start-up's own discovery and static-node
/// dialling takes.
const HEAL_AFTER: Duration = Duration::from_secs(45);
/// At most one heal per node this often.
const HEAL_EVERY: Duration = Duration::from_secs(60);

/// Heals peering (see render::node): a node whose Besu has run for [`HEAL_AFTER`] and is
/// not Ready with no peer at all (`net_peerCount` 0, asked directly) is given the stable enode URL of every Ready bootnode and validator with
/// `admin_addPeer`, which Besu resolves now and keeps as maintained peers. One Event per
/// heal. Never fails the reconcile: a node that does not answer is left to its probes.
async fn heal_isolated(
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

/// The network's pods, from the cache whose changes wake the network (or one list while
/// it is not filled): where to reach the Ready ones, and which have been down for a while. Pods
/// are written by others only, so a cache a moment behind shows what a list made a
/// moment earlier would have (controller::freshness).
async fn observe_pods(
    store: Option<&Store<Pod>>,
    pods: &Api<Pod>,
    ns: &str,
    network: &str,
    nodes: &BTreeMap<String, BesuNode>,
) -> Result<PodsSeen, Error> {
    let listed: Vec<Pod> = match store.filter(|s| synced(s)) {
        Some(store) => of_network_in(store, ns, network)
            .map(|p| Pod::clone(&p))
            .collect(),
        None => {
            let selector = format!("{LABEL_NETWORK}={network}");
            pods.list(&ListParams::default().labels(&selector))
                .await?
                .items
        }
    };
    Ok(pods_seen(listed, nodes, Timestamp::now()))
}

/// What [`observe_pods`] makes of the pods it found, at `now`.
fn pods_seen(listed: Vec<Pod>, nodes: &BTreeMap<String, BesuNode>, now: Timestamp) -> PodsSeen {
    let mut out = PodsSeen::default();
    for pod in listed {
        let Some(node) = pod.labels().get(LABEL_NODE).and_then(|n| nodes.get(n)) else {
            continue;
        };
        let status = pod.status.as_ref();
        let ready_condition = super::pod_ready_condition(&pod);
        let ready = ready_condition.is_some_and(|c| c.status == "True");
        let ip = status.and_then(|s| s.pod_ip.clone());
        let deleting = pod.metadata.deletion_timestamp.is_some();
        if let (true, Some(ip), false) = (ready, ip, deleting) {
            out.endpoints.insert(
                node.name_any(),
                Endpoint::new(&node.name_any(), &ip, node.spec.ports.rpc_http),
            );
        }
        // Not Ready since the later of its creation and its Ready condition's last
        // change; a pod being deleted is on its way out, not settled.
        let since = [
            pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
            ready_condition
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0),
        ]
        .into_iter()
        .flatten()
        .max();
        let settled = since.is_some_and(|t| {
            let d = now.duration_since(t);
            d.is_positive() && d.unsigned_abs() >= DOWN_SETTLED
        });
        if !ready && !deleting && settled {
            out.down_settled.insert(node.name_any());
        }
        let started = status
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == "besu"))
            .and_then(|c| c.state.as_ref())
            .and_then(|st| st.running.as_ref())
            .and_then(|r| r.started_at.as_ref());
        if let (Some(started), Some(ip), false) =
            (started, status.and_then(|s| s.pod_ip.as_ref()), deleting)
        {
            let ago = now.duration_since(started.0);
            out.running.insert(
                node.name_any(),
                (
                    Endpoint::new(&node.name_any(), ip, node.spec.ports.rpc_http),
                    Duration::from_secs(u64::try_from(ago.as_secs()).unwrap_or(0)),
                ),
            );
        }
    }
    out
}

/// Whether a store has been filled by its first list (a store's contents are swapped in
/// whole on each re-list, so a filled store never shows part of a list).
fn synced<K: kube::Resource<DynamicType = ()> + Clone>(store: &Store<K>) -> bool {
    store
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|r| r.is_ok())
}

/// The objects of `store` in `ns` labelled as `network`'s.
fn of_network_in<'a, K>(
    store: &'a Store<K>,
    ns: &'a str,
    network: &'a str,
) -> impl Iterator<Item = Arc<K>> + 'a
where
    K: kube::Resource<DynamicType = ()> + Clone + 'a,
{
    store.state().into_iter().filter(move |o| {
        o.meta().namespace.as_deref() == Some(ns)
            && o.labels().get(LABEL_NETWORK).map(String::as_str) == Some(network)
    })
}

/// The network from the controller's cache once it shows this network's own writes (a
/// status with the rollout's memory, above all), else read live. None: it was deleted.
async fn observe_network(
    ctx: &Context,
    stores: Option<&super::NetworkStores>,
    api: &Api<BesuNetwork>,
    scope: &str,
    ns: &str,
    name: &str,
) -> Result<Option<BesuNetwork>, Error> {
    if let Some(stores) = stores {
        let cached = stores.networks.get(&ObjectRef::new(name).within(ns));
        if ctx
            .writes
            .shown::<BesuNetwork, _>(scope, |_| cached.clone())
        {
            return Ok(cached.map(|n| BesuNetwork::clone(&n)));
        }
    }
    let live = api.get_opt(name).await?;
    ctx.writes.read_live::<BesuNetwork>(scope);
    Ok(live)
}

/// The network's BesuNodes from the cache once it is filled and shows every write of
/// this network's reconciles (a node created, a rollout permit, a deletion), else listed.
async fn observe_nodes(
    ctx: &Context,
    stores: Option<&super::NetworkStores>,
    api: &Api<BesuNode>,
    scope: &str,
    ns: &str,
    name: &str,
    of_network: &ListParams,
) -> Result<BTreeMap<String, BesuNode>, Error> {
    if let Some(store) = stores.map(|s| &s.nodes).filter(|s| synced(s))
        && ctx
            .writes
            .shown::<BesuNode, _>(scope, |n| store.get(&ObjectRef::new(n).within(ns)))
    {
        return Ok(of_network_in(store, ns, name)
            .map(|n| (n.name_any(), BesuNode::clone(&n)))
            .collect());
    }
    let listed = api.list(of_network).await?;
    ctx.writes.read_live::<BesuNode>(scope);
    Ok(listed.into_iter().map(|n| (n.name_any(), n)).collect())
}

/// Applies a BesuNode unless `live` carries its hash already, and records the write.
async fn apply_node(
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
async fn delete_node(
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

/// Whether nothing is changing: the network is Ready on its current spec, its validator
/// set converged, no rollout under way and every node Ready. Then the chain is read at
/// the poll rate only.
fn at_rest(network: &BesuNetwork, nodes: &BTreeMap<String, BesuNode>) -> bool {
    let Some(s) = &network.status else {
        return false;
    };
    let holds = |t: &str| {
        s.conditions
            .iter()
            .any(|c| c.type_ == t && c.status == "True")
    };
    s.phase == NetworkPhase::Ready
        && s.observed_generation == network.metadata.generation
        && holds("ValidatorSetConverged")
        && holds("Producing")
        && s.validators.pending.is_empty()
        && s.upgrade
            .as_ref()
            .is_none_or(|u| u.in_progress.is_empty() && u.pending.is_empty())
        && nodes.values().all(node_ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every branch of the network's requeue: only the chain, a heal or the safety net
    /// wakes a network that a watch event would not.
    #[test]
    fn a_network_sleeps_on_timers_only_where_no_watch_event_can_wake_it() {
        use NetworkPhase::*;
        let rest = Duration::from_secs(15);
        let s = Duration::from_secs;
        let cases = [
            // (phase, only nodes awaited, heal due in, expected)
            (Ready, true, None, rest),
            (Ready, false, Some(s(3)), rest),
            (Degraded, true, None, s(60)),
            (Creating, true, None, NODE_WAIT_SAFETY_NET),
            (Pending, true, None, NODE_WAIT_SAFETY_NET),
            (Creating, true, Some(s(20)), s(20)),
            (Creating, true, Some(s(0)), s(1)),
            (Creating, true, Some(s(90)), NODE_WAIT_SAFETY_NET),
            (Creating, false, None, CHAIN_WAIT),
            (Pending, false, Some(s(5)), CHAIN_WAIT),
        ];
        for (phase, only_nodes, heal, want) in cases {
            assert_eq!(
                requeue_after(phase, only_nodes, heal, rest),
                want,
                "{phase:?} only_nodes={only_nodes} heal={heal:?}"
            );
        }
    }

    #[test]
    fn the_chain_is_read_at_the_poll_rate_only_when_nothing_changes() {
        // The checkout under test, set at run time (the compiled-in path can name another
        // checkout sharing the build directory).
        let root = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
        let text =
            std::fs::read_to_string(format!("{root}/samples/qbft-network.yaml")).expect("sample");
        let mut net: BesuNetwork = serde_yaml::from_str(&text).expect("yaml");
        net.metadata.generation = Some(1);
        let condition = |t: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: t.to_string(),
            status: "True".to_string(),
            reason: "R".to_string(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::UNIX_EPOCH,
            ),
        };
        let settled = BesuNetworkStatus {
            phase: NetworkPhase::Ready,
            observed_generation: Some(1),
            conditions: vec![condition("ValidatorSetConverged"), condition("Producing")],
            ..BesuNetworkStatus::default()
        };
        net.status = Some(settled.clone());
        let nodes = BTreeMap::new();
        assert!(at_rest(&net, &nodes));
        // A spec change not yet seen, a vote or a rollout in progress, a stalled chain:
        // read on every reconcile.
        net.metadata.generation = Some(2);
        assert!(!at_rest(&net, &nodes));
        net.metadata.generation = Some(1);
        let mut s = settled.clone();
        s.validators.pending.push(ValidatorChange::default());
        net.status = Some(s);
        assert!(!at_rest(&net, &nodes));
        let mut s = settled.clone();
        s.upgrade = Some(besu_operator_api::UpgradeStatus {
            in_progress: vec!["n-validator-0".into()],
            ..besu_operator_api::UpgradeStatus::default()
        });
        net.status = Some(s);
        assert!(!at_rest(&net, &nodes));
        let mut s = settled.clone();
        s.conditions.pop();
        net.status = Some(s);
        assert!(!at_rest(&net, &nodes));
        net.status = None;
        assert!(!at_rest(&net, &nodes));
    }

    fn slot(node_type: NodeType, ordinal: i32) -> Slot {
        Slot { node_type, ordinal }
    }

    #[test]
    fn keys_are_generated_only_for_nodes_that_never_existed() {
        let v0 = slot(NodeType::Validator, 0);
        assert!(may_generate_key(v0, false, None, false, false, false));
        // A genesis validator whose key vanished: never regenerated...
        assert!(!may_generate_key(v0, false, Some(4), false, false, false));
        // ...unless the operator voted it out and deleted the key itself (Delete policy),
        // and only once its node and volume are gone.
        assert!(may_generate_key(v0, false, Some(4), false, false, true));
        assert!(!may_generate_key(v0, false, Some(4), true, false, true));
        assert!(!may_generate_key(v0, false, Some(4), false, true, true));
        assert!(!may_generate_key(v0, true, Some(4), false, false, true));
        // A validator added after genesis (scale-up) may get a new key.
        assert!(may_generate_key(
            slot(NodeType::Validator, 4),
            false,
            Some(4),
            false,
            false,
            false
        ));
        // A node that ran before (its BesuNode or its data volume exists).
        let m0 = slot(NodeType::Member, 0);
        assert!(!may_generate_key(m0, false, Some(4), true, false, false));
        assert!(!may_generate_key(m0, false, Some(4), false, true, false));
        // Imported keys are the user's: never generated.
        assert!(!may_generate_key(
            slot(NodeType::Bootnode, 0),
            true,
            None,
            false,
            false,
            false
        ));
    }
}
