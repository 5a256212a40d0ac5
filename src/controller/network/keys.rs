//! Stage 1 of a network reconcile, the one write that precedes every decision: each
//! slot's key identity, its Secret created once and never overwritten, and minted only
//! where no node ever had one (`may_generate_key`, on live reads of absence).

use std::collections::{BTreeMap, BTreeSet};

use besu_operator_api::{BesuNetwork, BesuNode, KEY_FIELD, LABEL_ORDINAL, NodeType};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::api::{PartialObjectMeta, Patch};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::info;

use super::observe::{of_network, of_network_in, synced};
use super::scope_of;
use crate::chain::key::NodeKey;
use crate::controller::key_identity::{self, KeyIdentity};
use crate::controller::{Context, Error, NodeStores, create_once};
use crate::render::network::{
    Slot, desired_key_secret, is_imported_key, key_secret_for, node_name, slots,
};
use crate::render::node::data_claim_name;

/// The slots whose keys matter: those the spec asks for, and validators beyond
/// `spec.validators` that still have a node (they stay until voted out).
pub(super) fn key_slots(network: &BesuNetwork, nodes: &BTreeMap<String, BesuNode>) -> Vec<Slot> {
    let extra_validators = nodes
        .values()
        .filter(|n| n.spec.node_type == NodeType::Validator)
        .filter_map(|n| n.labels().get(LABEL_ORDINAL)?.parse::<i32>().ok())
        .filter(|o| *o >= network.spec.validators)
        .map(|ordinal| Slot {
            node_type: NodeType::Validator,
            ordinal,
        });
    slots(network).into_iter().chain(extra_validators).collect()
}

/// Why keys are unusable, one line per slot (empty: every key is valid).
pub(super) fn key_problems(keys: &BTreeMap<Slot, KeyIdentity>) -> Vec<String> {
    keys.values()
        .filter_map(|k| match k {
            KeyIdentity::Invalid(p) => Some(p.clone()),
            KeyIdentity::Valid(..) => None,
        })
        .collect()
}

/// On a `BesuNetwork` with `deletionPolicy: Delete`: the ordinals of genesis validators
/// that were voted out and whose generated keys the operator deleted itself (comma
/// separated). Such an ordinal may get a new key when the network grows again; the
/// ordinal is removed from the list as soon as its new key exists.
pub const RETIRED_VALIDATORS_ANNOTATION: &str = "besu.nodeops.dev/retired-validators";

/// The ordinals in [`RETIRED_VALIDATORS_ANNOTATION`].
pub(super) fn retired_validators(network: &BesuNetwork) -> BTreeSet<i32> {
    network
        .annotations()
        .get(RETIRED_VALIDATORS_ANNOTATION)
        .map(|v| v.split(',').filter_map(|o| o.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Writes the retired ordinals (merge patch of one annotation; `null` removes it).
pub(super) async fn set_retired_validators(
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
        .patch(
            name,
            &crate::controller::patch_params(),
            &Patch::Merge(&patch),
        )
        .await?;
    ctx.writes.wrote(&scope_of(&written), &written);
    Ok(())
}

/// Stage 1, the one write that precedes every decision: the identity of each key slot,
/// its Secret created once and never overwritten, and only where a key may be minted
/// (`may_generate_key`, on live reads of the Secret's, the volume's and the node's
/// absence).
pub(super) async fn ensure_keys(
    ctx: &Context,
    network: &BesuNetwork,
    key_slots: &[Slot],
    existing_nodes: &BTreeMap<String, BesuNode>,
    stored_validators: Option<usize>,
    node_stores: Option<&NodeStores>,
) -> Result<BTreeMap<Slot, KeyIdentity>, Error> {
    let ns = network.namespace().unwrap_or_default();
    let name = network.name_any();
    let networks: Api<BesuNetwork> = Api::namespaced(ctx.client.clone(), &ns);
    let nodes_api: Api<BesuNode> = Api::namespaced(ctx.client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
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
                .list_metadata(&of_network(&name))
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
        let imported = is_imported_key(network, slot.node_type, slot.ordinal);
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

#[cfg(test)]
mod tests {
    use super::*;

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
