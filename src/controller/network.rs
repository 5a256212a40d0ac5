//! The network controller: `BesuNetwork` → key Secrets, genesis ConfigMap, and
//! `BesuNode`s brought up in stages (bootnodes, then validators, then members).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use besu_operator_api::{
    BesuNetwork, BesuNetworkStatus, BesuNode, GENESIS_FIELD, KEY_FIELD, LABEL_NETWORK,
    NetworkPhase, NodePhase, NodeType, RoleStatus, ValidatorSetStatus,
};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::{info, instrument};

use super::status::{DesiredCondition, merge_conditions, transitions, write_status_if_changed};
use super::{Context, Error, apply_if_changed, create_once};
use crate::chain::key::{Address, NodeKey, PublicKey};
use crate::chain::quorum::commit_quorum;
use crate::render::network::{
    GENESIS_CHECKSUM_ANNOTATION, bootnode_enode, desired_besu_node, desired_genesis_config_map,
    desired_key_secret, genesis_config_map_name, genesis_for, genesis_validators, key_secret_for,
    node_name,
};

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

/// What the reconcile knows about a slot's key.
enum KeyState {
    Valid(PublicKey, Address),
    Problem(String),
}

/// Whether the operator may generate a key for a slot whose Secret does not exist.
/// Never for a node that has existed (its BesuNode or data volume is there) or for a
/// validator named in genesis: such a key was lost, and regenerating it would silently
/// give the node another identity.
pub fn may_generate_key(
    slot: Slot,
    imported: bool,
    genesis_validator_count: Option<usize>,
    node_exists: bool,
    volume_exists: bool,
) -> bool {
    if imported || node_exists || volume_exists {
        return false;
    }
    match (slot.node_type, genesis_validator_count) {
        (NodeType::Validator, Some(n)) => usize::try_from(slot.ordinal).is_ok_and(|o| o >= n),
        _ => true,
    }
}

/// Reconciles one `BesuNetwork`.
#[instrument(skip_all, fields(network = %network.name_any(), namespace = network.namespace().unwrap_or_default()))]
pub async fn reconcile(network: Arc<BesuNetwork>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = network.namespace().unwrap_or_default();
    let name = network.name_any();
    let client = ctx.client.clone();
    let networks: Api<BesuNetwork> = Api::namespaced(client.clone(), &ns);
    let nodes_api: Api<BesuNode> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);

    let selector = format!("{LABEL_NETWORK}={name}");
    let existing_nodes: BTreeMap<String, BesuNode> = nodes_api
        .list(&ListParams::default().labels(&selector))
        .await?
        .into_iter()
        .map(|n| (n.name_any(), n))
        .collect();
    let mut problems: Vec<(&'static str, String)> = Vec::new();
    let mut conditions: Vec<DesiredCondition> = Vec::new();

    // Stage 1: keys. One Secret per node, created once and never overwritten.
    let genesis_name = genesis_config_map_name(&name);
    let genesis_cm = config_maps.get_opt(&genesis_name).await?;
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
    let mut keys: BTreeMap<Slot, KeyState> = BTreeMap::new();
    let mut generated = 0usize;
    for slot in &slots {
        let secret_name = key_secret_for(&network, slot.node_type, slot.ordinal);
        let imported = secret_name
            != crate::render::network::key_secret_name(&name, slot.node_type, slot.ordinal);
        let node = node_name(&name, slot.node_type, slot.ordinal);
        let state = match secrets.get_opt(&secret_name).await? {
            Some(secret) => key_state(&secret, &secret_name),
            None => {
                let volume_exists = pvcs.get_opt(&format!("data-{node}-0")).await?.is_some();
                if may_generate_key(
                    *slot,
                    imported,
                    stored_validators.as_ref().map(Vec::len),
                    existing_nodes.contains_key(&node),
                    volume_exists,
                ) {
                    let key = NodeKey::generate();
                    let desired = desired_key_secret(&network, slot.node_type, slot.ordinal, &key)?;
                    let (live, created) = create_once(&secrets, &desired).await?;
                    if created {
                        generated += 1;
                    }
                    key_state(&live, &secret_name)
                } else if imported {
                    KeyState::Problem(format!(
                        "imported key Secret {secret_name} for {node} not found; create it with the node's key under data key '{KEY_FIELD}'"
                    ))
                } else {
                    KeyState::Problem(format!(
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
            network.as_ref(),
            EventType::Normal,
            "KeysGenerated",
            format!("generated {generated} node key Secret(s)"),
        )
        .await;
    }
    let key_problems: Vec<String> = keys
        .values()
        .filter_map(|k| match k {
            KeyState::Problem(p) => Some(p.clone()),
            KeyState::Valid(..) => None,
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
                if let Some(KeyState::Valid(_, a)) = keys.get(slot) {
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
    let mut genesis_checksum: Option<String> = None;
    match (&stored_genesis, &validator_addresses) {
        (Some(json), Some(validators)) => {
            // Frozen: never rewritten. It must still match this spec, or it belongs to an
            // earlier network of the same name.
            match genesis_for(&network, validators) {
                Ok((expected, checksum)) if &expected == json => genesis_checksum = Some(checksum),
                Ok(_) => problems.push((
                    "GenesisMismatch",
                    format!(
                        "genesis ConfigMap {genesis_name} does not match spec.consensus, spec.chainId or spec.genesis; it was written by an earlier network of this name. Restore the original spec, or delete the ConfigMap, the key Secrets and the PVCs labelled {selector} to start a new chain"
                    ),
                )),
                Err(e) => problems.push(("GenesisInvalid", e)),
            }
        }
        (None, Some(validators)) => match genesis_for(&network, validators) {
            Ok((json, checksum)) => {
                let cm = desired_genesis_config_map(&network, &json, &checksum)?;
                let (live, created) = create_once(&config_maps, &cm).await?;
                if created {
                    ctx.event(
                        network.as_ref(),
                        EventType::Normal,
                        "GenesisWritten",
                        format!(
                            "genesis with {} validators, checksum {checksum}",
                            validators.len()
                        ),
                    )
                    .await;
                }
                genesis_checksum = live
                    .annotations()
                    .get(GENESIS_CHECKSUM_ANNOTATION)
                    .cloned()
                    .or(Some(checksum));
            }
            Err(e) => problems.push(("GenesisInvalid", e)),
        },
        (_, None) => {}
    }
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
    // once a commit quorum of validators is Ready. A node that already exists is always
    // kept up to date; only creation waits for its stage.
    let mut bootnode_enodes = Vec::new();
    for slot in slots.iter().filter(|s| s.node_type == NodeType::Bootnode) {
        if let Some(KeyState::Valid(pk, _)) = keys.get(slot) {
            bootnode_enodes.push(bootnode_enode(&network, slot.ordinal, pk));
        }
    }
    let is_ready = |node: &str| {
        existing_nodes
            .get(node)
            .and_then(|n| n.status.as_ref())
            .is_some_and(|s| s.phase == NodePhase::Ready)
    };
    let count_ready = |t: NodeType| {
        slots
            .iter()
            .filter(|s| s.node_type == t && is_ready(&node_name(&name, t, s.ordinal)))
            .count()
    };
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
    let stage_open = |t: NodeType| match t {
        NodeType::Bootnode => true,
        NodeType::Validator => b_ready == b_want,
        _ => v_ready >= commit_quorum(v_want),
    };
    let mut created = Vec::new();
    if genesis_checksum.is_some() && bootnode_enodes.len() == b_want {
        for slot in &slots {
            let node = node_name(&name, slot.node_type, slot.ordinal);
            let exists = existing_nodes.contains_key(&node);
            if !exists && !stage_open(slot.node_type) {
                continue;
            }
            if !matches!(keys.get(slot), Some(KeyState::Valid(..))) && !exists {
                continue;
            }
            let desired =
                desired_besu_node(&network, slot.node_type, slot.ordinal, &bootnode_enodes)?;
            if apply_if_changed(&nodes_api, desired).await? && !exists {
                created.push(node);
            }
        }
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

    // Nodes the spec no longer asks for. Bootnodes and members go; validators stay until
    // they are voted out on-chain (not done by this version), which a condition reports.
    let wanted: BTreeSet<String> = slots
        .iter()
        .map(|s| node_name(&name, s.node_type, s.ordinal))
        .collect();
    let mut validators_to_vote_out = Vec::new();
    for (node, obj) in &existing_nodes {
        if wanted.contains(node) || !obj.spec.node_type.is_besu() {
            continue;
        }
        if obj.spec.node_type == NodeType::Validator {
            validators_to_vote_out.push(node.clone());
        } else {
            nodes_api.delete(node, &DeleteParams::background()).await?;
            ctx.event(
                network.as_ref(),
                EventType::Normal,
                "NodeRemoved",
                format!("removed {node}"),
            )
            .await;
        }
    }
    if !validators_to_vote_out.is_empty() {
        problems.push((
            "ValidatorRemovalNotSupported",
            format!(
                "spec.validators is below the running validators ({}); removing a validator needs an on-chain vote, which this operator version does not do yet. Restore spec.validators",
                validators_to_vote_out.join(", ")
            ),
        ));
    }

    let role = |t, ready: usize, want: usize, waiting: &str| {
        let ok = ready == want;
        DesiredCondition::new(
            t,
            ok,
            if ok { "AllReady" } else { "NotAllReady" },
            if ok {
                format!("{ready}/{want} ready")
            } else {
                format!("{ready}/{want} ready; {waiting}")
            },
        )
    };
    conditions.push(role(
        "BootnodesReady",
        b_ready,
        b_want,
        "waiting for bootnode pods",
    ));
    conditions.push(role(
        "ValidatorsReady",
        v_ready,
        v_want,
        &if stage_open(NodeType::Validator) {
            format!(
                "waiting for validator pods (members start at {} ready)",
                commit_quorum(v_want)
            )
        } else {
            "validators start once every bootnode is Ready".to_string()
        },
    ));
    conditions.push(role(
        "MembersReady",
        m_ready,
        m_want,
        &if stage_open(NodeType::Member) {
            "waiting for member pods".to_string()
        } else {
            format!(
                "members start once {} validators are Ready",
                commit_quorum(v_want)
            )
        },
    ));
    let all_ready =
        genesis_checksum.is_some() && b_ready == b_want && v_ready == v_want && m_ready == m_want;
    let ready = all_ready && problems.is_empty();
    conditions.push(if ready {
        DesiredCondition::new("Ready", true, "AllNodesReady", "every node is Ready")
    } else if !problems.is_empty() {
        DesiredCondition::new("Ready", false, "Degraded", "see the Degraded condition")
    } else {
        DesiredCondition::new(
            "Ready",
            false,
            "Creating",
            "bringing nodes up in order: bootnodes, validators, members",
        )
    });
    conditions.push(match problems.first() {
        Some((reason, _)) => DesiredCondition::new(
            "Degraded",
            true,
            *reason,
            problems
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        None => DesiredCondition::new("Degraded", false, "AsExpected", "no problem found"),
    });

    let phase = if !problems.is_empty() {
        NetworkPhase::Degraded
    } else if ready {
        NetworkPhase::Ready
    } else if genesis_checksum.is_some() {
        NetworkPhase::Creating
    } else {
        NetworkPhase::Pending
    };
    let previous = network.status.clone().unwrap_or_default();
    let merged = merge_conditions(
        &previous.conditions,
        &conditions,
        network.metadata.generation,
        Timestamp::now(),
    );
    for c in transitions(&previous.conditions, &merged) {
        if c.type_ == "Degraded" && c.status == "True" {
            ctx.event(
                network.as_ref(),
                EventType::Warning,
                &c.reason,
                c.message.clone(),
            )
            .await;
        } else if c.status == "True" && c.type_ != "Degraded" {
            ctx.event(
                network.as_ref(),
                EventType::Normal,
                &c.type_,
                c.message.clone(),
            )
            .await;
        }
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
        },
        members: RoleStatus {
            desired: to_i32(m_want),
            ready: to_i32(m_ready),
        },
        bootnode_enodes,
        genesis_checksum,
        genesis_config_map: Some(genesis_name),
    };
    write_status_if_changed(&networks, &network, network.status.as_ref(), &status).await?;

    Ok(match phase {
        NetworkPhase::Ready => Action::requeue(ctx.resync),
        NetworkPhase::Degraded => Action::requeue(Duration::from_secs(60)),
        _ => Action::requeue(Duration::from_secs(15)),
    })
}

fn key_state(secret: &Secret, name: &str) -> KeyState {
    let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(KEY_FIELD)) else {
        return KeyState::Problem(format!("Secret {name} has no data key '{KEY_FIELD}'"));
    };
    match NodeKey::parse(&String::from_utf8_lossy(&bytes.0)) {
        Ok(k) => KeyState::Valid(k.public_key(), k.address()),
        Err(e) => KeyState::Problem(format!("Secret {name} does not hold a valid Besu key: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(node_type: NodeType, ordinal: i32) -> Slot {
        Slot { node_type, ordinal }
    }

    #[test]
    fn keys_are_generated_only_for_nodes_that_never_existed() {
        let v0 = slot(NodeType::Validator, 0);
        assert!(may_generate_key(v0, false, None, false, false));
        // A genesis validator whose key vanished: never regenerated.
        assert!(!may_generate_key(v0, false, Some(4), false, false));
        // A validator added after genesis (scale-up) may get a new key.
        assert!(may_generate_key(
            slot(NodeType::Validator, 4),
            false,
            Some(4),
            false,
            false
        ));
        // A node that ran before (its BesuNode or its data volume exists).
        let m0 = slot(NodeType::Member, 0);
        assert!(!may_generate_key(m0, false, Some(4), true, false));
        assert!(!may_generate_key(m0, false, Some(4), false, true));
        // Imported keys are the user's: never generated.
        assert!(!may_generate_key(
            slot(NodeType::Bootnode, 0),
            true,
            None,
            false,
            false
        ));
    }
}
