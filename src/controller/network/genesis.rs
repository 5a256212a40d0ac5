//! Stage 2 of a network reconcile: the genesis, written once from the validator keys and
//! never rewritten; a stored one is checked against the spec by meaning.

use besu_operator_api::BesuNetwork;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use crate::chain::genesis::{genesis_meaning, genesis_sha256};
use crate::chain::key::Address;
use crate::controller::{Context, Error, create_once};
use crate::render::network::{
    GENESIS_CHECKSUM_ANNOTATION, desired_genesis_config_map, genesis_config_map_name, genesis_for,
    genesis_validators,
};

/// The validators of a stored genesis (None: no genesis yet, or it cannot be read, which
/// is a problem).
pub(super) fn stored_validators(
    stored: Option<&str>,
    genesis_name: &str,
    problems: &mut Vec<(&'static str, String)>,
) -> Option<Vec<Address>> {
    match genesis_validators(stored?) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push((
                "GenesisUnreadable",
                format!("genesis ConfigMap {genesis_name} cannot be read: {e}"),
            ));
            None
        }
    }
}

/// Stage 2: the genesis, written once (its validators the sorted addresses of the
/// validator keys, once every one exists) and never rewritten; a stored one must mean
/// what this spec does. Returns its checksum when it is in place and matches; a
/// mismatch or an unreadable genesis is a problem.
pub(super) async fn ensure_genesis(
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
