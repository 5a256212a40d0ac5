//! Pure builders: (spec, observed facts) → desired Kubernetes objects.
//!
//! The controllers and the offline `render` command call the same functions, so what
//! `besu-operator render` prints is what the operator applies.

pub mod all;
pub mod ethereum;
pub mod monitoring;
pub mod network;
pub mod node;

use std::collections::BTreeMap;

use besu_operator_api::{LABEL_NETWORK, LABEL_NODE, LABEL_NODE_TYPE, NodeType};

/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "besu-operator";
/// The label naming what manages an object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// `app.kubernetes.io/managed-by` value of every child.
pub const MANAGED_BY: &str = "besu-operator";

/// The labels every child of a node carries: the `app.kubernetes.io/*` set and ours.
pub fn node_labels(
    node_name: &str,
    node_type: NodeType,
    network: Option<&str>,
) -> BTreeMap<String, String> {
    let app = if node_type.is_besu() {
        "besu"
    } else {
        node_type.as_str()
    };
    let mut labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), app.to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            node_name.to_string(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            node_type.as_str().to_string(),
        ),
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
        (LABEL_NODE.to_string(), node_name.to_string()),
        (LABEL_NODE_TYPE.to_string(), node_type.as_str().to_string()),
    ]);
    if let Some(network) = network {
        labels.insert("app.kubernetes.io/part-of".to_string(), network.to_string());
        labels.insert(LABEL_NETWORK.to_string(), network.to_string());
    }
    labels
}

/// The labels of a network-level child that belongs to no single node (genesis).
pub fn network_labels(network: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "besu".to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            network.to_string(),
        ),
        ("app.kubernetes.io/part-of".to_string(), network.to_string()),
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
        (LABEL_NETWORK.to_string(), network.to_string()),
    ])
}

/// An environment variable from the pod's own fields (`status.podIP`, `metadata.name`...).
pub fn field_env(name: &str, path: &str) -> k8s_openapi::api::core::v1::EnvVar {
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector};
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_string(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// `len` bytes from the OS CSPRNG, hex: generated secrets (a JWT, passwords). The caller
/// writes it into a Secret and drops it; it is never logged.
pub fn random_hex(len: usize) -> String {
    use rand_core::RngCore;
    let mut bytes = vec![0u8; len];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Hex SHA-256 of some text; used for checksum annotations that roll pods on change.
pub fn sha256_hex(text: &str) -> String {
    use sha3::Digest;
    // Keccak is what the chain uses; for a content checksum any strong hash will do,
    // and sha3 is already a dependency.
    hex::encode(sha3::Sha3_256::digest(text.as_bytes()))
}
