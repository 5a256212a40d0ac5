//! `BesuNetwork` → key Secrets, genesis ConfigMap and `BesuNode`s.
//!
//! Key Secrets and the genesis ConfigMap are owned by the network only under
//! `deletionPolicy: Delete`; under `Retain` they outlive it, so that re-creating a network
//! of the same name resumes the same chain with the same keys.

use std::collections::BTreeMap;

use besu_operator_api::{
    BesuNetwork, BesuNode, BesuNodeSpec, ConfigMapKeyRef, DeletionPolicy, GENESIS_FIELD, KEY_FIELD,
    LABEL_ORDINAL, NodeType, PortsSpec, SecretKeyRef, StorageSpec,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use super::node::{RenderError, pod_dns_name};
use super::{network_labels, node_labels};
use crate::chain::enode::enode_url;
use crate::chain::extradata::Consensus;
use crate::chain::genesis::{
    GenesisAccount, GenesisSpec, decode_genesis_validators, genesis_json, genesis_sha256,
};
use crate::chain::key::{Address, NodeKey, PublicKey};

/// Annotation on a key Secret holding the node's public address (public information).
pub const ADDRESS_ANNOTATION: &str = "besu.nodeops.dev/address";
/// Annotation on a key Secret holding the node's public key (128 hex digits, Besu's node
/// id; public information): with it the operator never reads the key to know the node
/// (controller::key_identity).
pub const PUBLIC_KEY_ANNOTATION: &str = "besu.nodeops.dev/public-key";
/// Annotation on the genesis ConfigMap holding the SHA-256 of genesis.json.
pub const GENESIS_CHECKSUM_ANNOTATION: &str = "besu.nodeops.dev/genesis-checksum";

/// One node slot of a network: role and ordinal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot {
    /// Role.
    pub node_type: NodeType,
    /// Index within the role.
    pub ordinal: i32,
}

/// Every Besu node slot the spec asks for, in bring-up order: bootnodes, validators,
/// members.
pub fn slots(network: &BesuNetwork) -> Vec<Slot> {
    let s = &network.spec;
    let role = |node_type, n: i32| (0..n.max(0)).map(move |ordinal| Slot { node_type, ordinal });
    role(NodeType::Bootnode, s.bootnodes)
        .chain(role(NodeType::Validator, s.validators))
        .chain(role(NodeType::Member, s.members))
        .collect()
}

/// Name of the `BesuNode` for a role and ordinal: `<network>-<role>-<ordinal>`, or
/// `<network>-<role>` for the monitoring singletons.
pub fn node_name(network: &str, node_type: NodeType, ordinal: i32) -> String {
    if node_type.is_besu() {
        format!("{network}-{}-{ordinal}", node_type.as_str())
    } else {
        format!("{network}-{}", node_type.as_str())
    }
}

/// Name of the Secret holding a generated node key.
pub fn key_secret_name(network: &str, node_type: NodeType, ordinal: i32) -> String {
    format!("{}-key", node_name(network, node_type, ordinal))
}

/// Name of the genesis ConfigMap.
pub fn genesis_config_map_name(network: &str) -> String {
    format!("{network}-genesis")
}

/// The Secret that holds the key of a node: the user's imported one if the spec names
/// it, otherwise the generated one.
pub fn key_secret_for(network: &BesuNetwork, node_type: NodeType, ordinal: i32) -> String {
    let imported = network.spec.imported_keys.as_ref().and_then(|k| {
        let list = match node_type {
            NodeType::Validator => &k.validators,
            NodeType::Bootnode => &k.bootnodes,
            _ => return None,
        };
        usize::try_from(ordinal)
            .ok()
            .and_then(|i| list.get(i))
            .cloned()
    });
    imported.unwrap_or_else(|| key_secret_name(&network.name_any(), node_type, ordinal))
}

/// Whether a slot's key is the user's (`spec.importedKeys`): the operator reads that
/// Secret and never creates or deletes it.
pub fn is_imported_key(network: &BesuNetwork, node_type: NodeType, ordinal: i32) -> bool {
    key_secret_for(network, node_type, ordinal)
        != key_secret_name(&network.name_any(), node_type, ordinal)
}

fn namespace(network: &BesuNetwork) -> Result<String, RenderError> {
    network.namespace().ok_or_else(|| RenderError::NoNamespace {
        kind: "BesuNetwork",
        name: network.name_any(),
    })
}

/// Owner references for children that follow `deletionPolicy` (keys, genesis): the
/// network under `Delete`, none under `Retain`.
fn policy_owner(network: &BesuNetwork) -> Option<Vec<OwnerReference>> {
    match network.spec.deletion_policy {
        DeletionPolicy::Delete => network.owner_ref(&()).map(|o| vec![o]),
        DeletionPolicy::Retain => None,
    }
}

/// A new key Secret. It is created once, immutable, and never overwritten: a validator's
/// key is its identity.
pub fn desired_key_secret(
    network: &BesuNetwork,
    node_type: NodeType,
    ordinal: i32,
    key: &NodeKey,
) -> Result<Secret, RenderError> {
    let name = network.name_any();
    let node = node_name(&name, node_type, ordinal);
    let mut labels = node_labels(&node, node_type, Some(&name));
    labels.insert(LABEL_ORDINAL.to_string(), ordinal.to_string());
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(key_secret_name(&name, node_type, ordinal)),
            namespace: Some(namespace(network)?),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([
                (ADDRESS_ANNOTATION.to_string(), key.address().to_string()),
                (PUBLIC_KEY_ANNOTATION.to_string(), key.public_key().to_hex()),
            ])),
            owner_references: policy_owner(network),
            ..ObjectMeta::default()
        },
        immutable: Some(true),
        type_: Some("Opaque".to_string()),
        data: Some(BTreeMap::from([(
            KEY_FIELD.to_string(),
            ByteString(key.to_besu_key_file().into_bytes()),
        )])),
        ..Secret::default()
    })
}

/// The genesis ConfigMap. Immutable: genesis never changes once written.
pub fn desired_genesis_config_map(
    network: &BesuNetwork,
    genesis_json: &str,
    checksum: &str,
) -> Result<ConfigMap, RenderError> {
    let name = network.name_any();
    Ok(ConfigMap {
        metadata: ObjectMeta {
            name: Some(genesis_config_map_name(&name)),
            namespace: Some(namespace(network)?),
            labels: Some(network_labels(&name)),
            annotations: Some(BTreeMap::from([(
                GENESIS_CHECKSUM_ANNOTATION.to_string(),
                checksum.to_string(),
            )])),
            owner_references: policy_owner(network),
            ..ObjectMeta::default()
        },
        immutable: Some(true),
        data: Some(BTreeMap::from([(
            GENESIS_FIELD.to_string(),
            genesis_json.to_string(),
        )])),
        ..ConfigMap::default()
    })
}

/// The enode URL of a bootnode, by its stable DNS name.
pub fn bootnode_enode(network: &BesuNetwork, ordinal: i32, public_key: &PublicKey) -> String {
    node_enode(network, NodeType::Bootnode, ordinal, public_key)
}

/// The enode URL of a node of the network, by its stable DNS name.
pub fn node_enode(
    network: &BesuNetwork,
    node_type: NodeType,
    ordinal: i32,
    public_key: &PublicKey,
) -> String {
    let name = network.name_any();
    let node = node_name(&name, node_type, ordinal);
    let ns = network.namespace().unwrap_or_default();
    let port = u16::try_from(PortsSpec::default().p2p).unwrap_or(30303);
    enode_url(public_key, &pod_dns_name(&node, &ns), port, None)
}

/// The static nodes ConfigMap: every bootnode's and validator's enode URL. Besu reads it
/// at start; it is updated in place (no restart) when validators are added or removed,
/// and the operator adds the new ones to running nodes with `admin_addPeer`.
pub fn desired_static_nodes_config_map(
    network: &BesuNetwork,
    enodes: &[String],
) -> Result<ConfigMap, RenderError> {
    let name = network.name_any();
    let json = serde_json::to_string_pretty(enodes).unwrap_or_else(|_| "[]".to_string());
    Ok(ConfigMap {
        metadata: owned_meta(network, static_nodes_config_map_name(&name))?,
        data: Some(BTreeMap::from([(
            STATIC_NODES_FIELD.to_string(),
            format!("{json}\n"),
        )])),
        ..ConfigMap::default()
    })
}

/// Metadata of a network-level child the network owns (deleted with it whatever its
/// deletion policy): its name, namespace, the network's labels and owner reference.
fn owned_meta(network: &BesuNetwork, name: String) -> Result<ObjectMeta, RenderError> {
    Ok(ObjectMeta {
        name: Some(name),
        namespace: Some(namespace(network)?),
        labels: Some(network_labels(&network.name_any())),
        owner_references: network.controller_owner_ref(&()).map(|o| vec![o]),
        ..ObjectMeta::default()
    })
}

/// The ConfigMap key of a network's static nodes list.
pub const STATIC_NODES_FIELD: &str = "static-nodes.json";

/// The network ConfigMap holding `static-nodes.json`: the enode URLs (stable DNS names)
/// of every bootnode and validator.
pub fn static_nodes_config_map_name(network: &str) -> String {
    format!("{network}-static-nodes")
}

/// A Besu `BesuNode` of the network (bootnode, validator or member).
///
/// `bootnodes` are the enode URLs of every bootnode; a bootnode is not given its own.
pub fn desired_besu_node(
    network: &BesuNetwork,
    node_type: NodeType,
    ordinal: i32,
    bootnodes: &[String],
) -> Result<BesuNode, RenderError> {
    let name = network.name_any();
    let spec = &network.spec;
    let node = node_name(&name, node_type, ordinal);
    let own_enode_host = format!(
        "@{}:",
        pod_dns_name(&node, &network.namespace().unwrap_or_default())
    );
    let bootnodes: Vec<String> = bootnodes
        .iter()
        .filter(|e| !e.contains(&own_enode_host))
        .cloned()
        .collect();
    let key_secret_ref = match node_type {
        NodeType::Bootnode | NodeType::Validator | NodeType::Member => Some(SecretKeyRef {
            name: key_secret_for(network, node_type, ordinal),
            key: KEY_FIELD.to_string(),
        }),
        _ => None,
    };
    let mut labels = node_labels(&node, node_type, Some(&name));
    labels.insert(LABEL_ORDINAL.to_string(), ordinal.to_string());
    let t = &spec.node_template;
    Ok(BesuNode {
        metadata: ObjectMeta {
            name: Some(node),
            namespace: Some(namespace(network)?),
            labels: Some(labels),
            owner_references: network.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: BesuNodeSpec {
            node_type,
            network: Some(name.clone()),
            consensus: Some(spec.consensus),
            image: spec.image.clone(),
            resources: t.resources.clone(),
            storage: StorageSpec {
                size: t.storage.size.clone(),
                storage_class_name: t.storage.storage_class_name.clone(),
                data_storage_format: t.storage.data_storage_format,
            },
            ports: PortsSpec::default(),
            rpc_apis: t.rpc_apis.clone(),
            key_secret_ref,
            genesis_config_map_ref: Some(ConfigMapKeyRef {
                name: genesis_config_map_name(&name),
                key: GENESIS_FIELD.to_string(),
            }),
            bootnodes,
            static_nodes_config_map_ref: Some(ConfigMapKeyRef {
                name: static_nodes_config_map_name(&name),
                key: STATIC_NODES_FIELD.to_string(),
            }),
            free_gas: spec.genesis.zero_base_fee,
            extra_args: t.extra_args.clone(),
            node_selector: t.node_selector.clone(),
            tolerations: t.tolerations.clone(),
            affinity: t.affinity.clone(),
            deletion_policy: spec.deletion_policy,
            stopped: false,
            from_snapshot: None,
        },
        status: None,
    })
}

/// The chain-level genesis spec of a network with the given validators.
pub fn genesis_spec(network: &BesuNetwork, validators: &[Address]) -> Result<GenesisSpec, String> {
    let spec = &network.spec;
    let g = &spec.genesis;
    let consensus = Consensus::from(spec.consensus);
    let chain_id = u64::try_from(spec.chain_id)
        .map_err(|_| format!("spec.chainId {} must be positive", spec.chain_id))?;
    let positive = |field: &str, v: i64| {
        u64::try_from(v).map_err(|_| format!("spec.genesis.{field} {v} must be positive"))
    };
    let gas_limit = u64::from_str_radix(g.gas_limit.trim_start_matches("0x"), 16)
        .map_err(|_| format!("spec.genesis.gasLimit {} is not 0x hex", g.gas_limit))?;
    let mut alloc = BTreeMap::new();
    for (address, account) in &g.alloc {
        let addr: Address = address
            .parse()
            .map_err(|e| format!("spec.genesis.alloc key {address}: {e}"))?;
        let nonce = match &account.nonce {
            None => None,
            Some(n) => Some(parse_u64(n).ok_or_else(|| {
                format!("spec.genesis.alloc[{address}].nonce {n} is not a number")
            })?),
        };
        alloc.insert(
            addr,
            GenesisAccount {
                balance: account.balance.clone(),
                code: account.code.clone(),
                storage: account.storage.clone(),
                nonce,
            },
        );
    }
    Ok(GenesisSpec {
        consensus,
        chain_id,
        block_period_seconds: Some(positive(
            "blockPeriodSeconds",
            i64::from(g.block_period_seconds),
        )?),
        epoch_length: Some(positive("epochLength", g.epoch_length)?),
        request_timeout_seconds: Some(positive(
            "requestTimeoutSeconds",
            i64::from(g.request_timeout_seconds),
        )?),
        gas_limit: Some(gas_limit),
        zero_base_fee: g.zero_base_fee,
        contract_size_limit: match g.contract_size_limit {
            None => None,
            Some(v) => Some(
                u32::try_from(v)
                    .map_err(|_| format!("spec.genesis.contractSizeLimit {v} is out of range"))?,
            ),
        },
        alloc,
        validators: validators.to_vec(),
    })
}

fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The genesis document of a network with the given validators (sorted ascending by the
/// genesis builder), and its checksum. Errors are messages for the user.
pub fn genesis_for(
    network: &BesuNetwork,
    validators: &[Address],
) -> Result<(String, String), String> {
    let spec = genesis_spec(network, validators)?;
    let json = genesis_json(&spec).map_err(|e| e.to_string())?;
    let checksum = genesis_sha256(&json);
    Ok((json, checksum))
}

/// The validators named in a genesis document's extraData.
pub fn genesis_validators(json: &str) -> Result<Vec<Address>, String> {
    decode_genesis_validators(json)
        .map(|(_, v)| v)
        .map_err(|e| e.to_string())
}

/// Name of the PodDisruptionBudget protecting the validators.
pub fn validator_pdb_name(network: &str) -> String {
    format!("{network}-validators")
}

/// The PodDisruptionBudget of the validators: voluntary evictions (node drains) may take
/// down at most `max_unavailable` validators at once, the same bound rollouts keep.
pub fn desired_validator_pdb(
    network: &BesuNetwork,
    max_unavailable: i32,
) -> Result<k8s_openapi::api::policy::v1::PodDisruptionBudget, RenderError> {
    use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let name = network.name_any();
    let selector = BTreeMap::from([
        (besu_operator_api::LABEL_NETWORK.to_string(), name.clone()),
        (
            besu_operator_api::LABEL_NODE_TYPE.to_string(),
            NodeType::Validator.as_str().to_string(),
        ),
    ]);
    Ok(PodDisruptionBudget {
        metadata: owned_meta(network, validator_pdb_name(&name))?,
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(max_unavailable)),
            selector: Some(LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

/// Name of the network's NetworkPolicy.
pub fn network_policy_name(network: &str) -> String {
    format!("{network}-rpc")
}

/// Labels of the operator's own pods (manifests/operator, the Helm chart, the bundle).
pub const OPERATOR_POD_LABELS: [(&str, &str); 2] = [
    ("app.kubernetes.io/name", "besu-operator"),
    ("app.kubernetes.io/component", "operator"),
];

/// The network's NetworkPolicy (review R7): on bootnodes and validators, JSON-RPC
/// (HTTP and WebSocket: ADMIN, and QBFT/IBFT voting on validators) only from the
/// operator's pods, in any namespace; P2P and metrics from anywhere. Members are not
/// selected: they keep serving RPC to users. Besu itself cannot restrict this: its
/// `host-allowlist` checks the Host header, not the caller, and the probes need `*`.
/// Enforced only by a NetworkPolicy-capable CNI; traffic from the node itself (kubelet
/// probes) is not subject to it on the common ones.
pub fn desired_network_policy(
    network: &BesuNetwork,
) -> Result<k8s_openapi::api::networking::v1::NetworkPolicy, RenderError> {
    use k8s_openapi::api::networking::v1::{
        NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
        NetworkPolicySpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let name = network.name_any();
    let ports = PortsSpec::default();
    let port = |p: i32, protocol: &str| NetworkPolicyPort {
        port: Some(IntOrString::Int(p)),
        protocol: Some(protocol.to_string()),
        ..NetworkPolicyPort::default()
    };
    let operator = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector::default()),
        pod_selector: Some(LabelSelector {
            match_labels: Some(
                OPERATOR_POD_LABELS
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    };
    Ok(NetworkPolicy {
        metadata: owned_meta(network, network_policy_name(&name))?,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    besu_operator_api::LABEL_NETWORK.to_string(),
                    name.clone(),
                )])),
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: besu_operator_api::LABEL_NODE_TYPE.to_string(),
                    operator: "In".to_string(),
                    values: Some(vec![
                        NodeType::Bootnode.as_str().to_string(),
                        NodeType::Validator.as_str().to_string(),
                    ]),
                }]),
            }),
            policy_types: Some(vec!["Ingress".to_string()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    ports: Some(vec![
                        port(ports.p2p, "TCP"),
                        port(ports.p2p, "UDP"),
                        port(ports.metrics, "TCP"),
                    ]),
                    from: None,
                },
                NetworkPolicyIngressRule {
                    ports: Some(vec![port(ports.rpc_http, "TCP"), port(ports.ws, "TCP")]),
                    from: Some(vec![operator]),
                },
            ]),
            ..NetworkPolicySpec::default()
        }),
    })
}
