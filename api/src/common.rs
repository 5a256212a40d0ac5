//! Types shared by `BesuNetwork` and `BesuNode`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every kind in this crate.
pub const GROUP: &str = "besu.nodeops.dev";
/// API version of every kind in this crate.
pub const VERSION: &str = "v1alpha1";

/// Label naming the `BesuNetwork` an object belongs to.
pub const LABEL_NETWORK: &str = "besu.nodeops.dev/network";
/// Label naming the node type (`bootnode`, `validator`, ...) of an object.
pub const LABEL_NODE_TYPE: &str = "besu.nodeops.dev/node-type";
/// Label naming the `BesuNode` an object belongs to.
pub const LABEL_NODE: &str = "besu.nodeops.dev/node";
/// Label holding a node's ordinal within its role.
pub const LABEL_ORDINAL: &str = "besu.nodeops.dev/ordinal";

/// The pinned default Besu image. 26.3.0 is the first release without Clique
/// block production; QBFT and IBFT 2.0 are fully supported.
pub const DEFAULT_BESU_IMAGE: &str = "hyperledger/besu:26.3.0";
/// The pinned default Geth image (EthereumNode's default execution client).
pub const DEFAULT_GETH_IMAGE: &str = "docker.io/ethereum/client-go:v1.17.10";
/// The pinned default Prysm beacon node image (EthereumNode's default consensus client).
pub const DEFAULT_PRYSM_BEACON_IMAGE: &str = "gcr.io/offchainlabs/prysm/beacon-chain:v7.1.2";
/// The pinned default Prysm validator client image.
pub const DEFAULT_PRYSM_VALIDATOR_IMAGE: &str = "gcr.io/offchainlabs/prysm/validator:v7.1.2";
/// The pinned default Prometheus image.
pub const DEFAULT_PROMETHEUS_IMAGE: &str = "prom/prometheus:v3.5.0";
/// The pinned default Grafana image.
pub const DEFAULT_GRAFANA_IMAGE: &str = "grafana/grafana:12.1.0";

/// The BFT consensus protocol of a network.
///
/// Clique is not offered: Besu 26.3.0 removed Clique block production.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConsensusProtocol {
    /// QBFT, the protocol Besu recommends for private networks.
    #[default]
    Qbft,
    /// IBFT 2.0, supported by Besu for existing private networks.
    Ibft2,
}

impl ConsensusProtocol {
    /// The lower-case name used in genesis (`qbft`, `ibft2`).
    pub fn as_str(self) -> &'static str {
        match self {
            ConsensusProtocol::Qbft => "qbft",
            ConsensusProtocol::Ibft2 => "ibft2",
        }
    }

    /// The JSON-RPC API group that carries validator voting (`QBFT` or `IBFT`).
    pub fn rpc_api(self) -> &'static str {
        match self {
            ConsensusProtocol::Qbft => "QBFT",
            ConsensusProtocol::Ibft2 => "IBFT",
        }
    }
}

/// What happens to node keys and data volumes when their owner is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep key Secrets and PersistentVolumeClaims. Re-creating a network with the same
    /// name resumes the same chain with the same keys.
    #[default]
    Retain,
    /// Delete key Secrets and PersistentVolumeClaims with the network. The chain is gone.
    Delete,
}

/// Persistent storage for a node's data directory.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.dataStorageFormat) == has(oldSelf.dataStorageFormat) || (has(self.dataStorageFormat) ? self.dataStorageFormat : oldSelf.dataStorageFormat) == 'BONSAI'").message("dataStorageFormat may be added to or removed from existing nodes only as BONSAI: unset means BONSAI, Besu's default, and Besu cannot open a database created in the other format; to use FOREST, create a new node (a new BesuNode, or a new BesuNetwork) with it"))]
pub struct StorageSpec {
    /// Size of the data volume, as a Kubernetes quantity.
    #[serde(default = "default_storage_size")]
    pub size: String,
    /// StorageClass of the data volume. Empty means the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Besu's database format (`--data-storage-format`): `FOREST` or `BONSAI`. Unset means
    /// Besu's default, `BONSAI`, which nodes created before this field existed run with.
    /// Immutable: Besu cannot open a database created in the other format; to change it,
    /// create a new node. Nodes run with FULL sync. `FOREST` keeps the state of every
    /// block, so `eth_call` and `eth_getBalance` answer at any height: it is what Besu's
    /// own private-network profile (ENTERPRISE,
    /// `config/src/main/resources/profiles/enterprise-private.toml`) uses with FULL sync.
    /// `BONSAI` keeps one state plus trie logs; with FULL sync Besu never prunes the trie
    /// logs (it forces `--bonsai-limit-trie-logs-enabled=false`, `BesuCommand.java`) and
    /// serves historical state only for the last 512 blocks
    /// (`--bonsai-historical-block-limit`, `PathBasedExtraStorageConfiguration.java`),
    /// about 17 minutes at 2 s blocks: `eth_call` and `eth_getBalance` at older blocks fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("dataStorageFormat is immutable: Besu cannot open a database created in the other format; to change it, create a new node (a new BesuNode, or a new BesuNetwork) with the format you want"))]
    pub data_storage_format: Option<DataStorageFormat>,
}

impl Default for StorageSpec {
    fn default() -> Self {
        StorageSpec {
            size: default_storage_size(),
            storage_class_name: None,
            data_storage_format: None,
        }
    }
}

/// Besu's database format, as `--data-storage-format` spells it
/// (`plugin-api/src/main/java/org/hyperledger/besu/plugin/services/storage/DataStorageFormat.java`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
#[schemars(transform = without_description)]
pub enum DataStorageFormat {
    /// Every block's state trie: historical state at any height.
    Forest,
    /// One state trie plus trie logs (Besu's default).
    Bonsai,
}

impl DataStorageFormat {
    /// The value of `--data-storage-format` (`FOREST`, `BONSAI`).
    pub fn as_str(self) -> &'static str {
        match self {
            DataStorageFormat::Forest => "FOREST",
            DataStorageFormat::Bonsai => "BONSAI",
        }
    }
}

/// Drops a type's own description from its schema: kube flattens an `Option<T>` field's
/// schema with `T`'s over the field's, so `kubectl explain` would show the type's doc
/// instead of the field's.
fn without_description(schema: &mut schemars::Schema) {
    if let Some(object) = schema.as_object_mut() {
        object.remove("description");
    }
}

fn default_storage_size() -> String {
    "10Gi".to_string()
}

/// Container ports of a Besu node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortsSpec {
    /// P2P port, TCP and UDP (discovery).
    #[serde(default = "default_p2p_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub p2p: i32,
    /// JSON-RPC over HTTP; also serves `/liveness` and `/readiness`.
    #[serde(default = "default_rpc_http_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub rpc_http: i32,
    /// JSON-RPC over WebSocket.
    #[serde(default = "default_ws_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub ws: i32,
    /// Prometheus metrics (`/metrics`).
    #[serde(default = "default_metrics_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub metrics: i32,
}

impl Default for PortsSpec {
    fn default() -> Self {
        PortsSpec {
            p2p: default_p2p_port(),
            rpc_http: default_rpc_http_port(),
            ws: default_ws_port(),
            metrics: default_metrics_port(),
        }
    }
}

fn default_p2p_port() -> i32 {
    30303
}
fn default_rpc_http_port() -> i32 {
    8545
}
fn default_ws_port() -> i32 {
    8546
}
fn default_metrics_port() -> i32 {
    9545
}

/// Pod-level settings shared by every node of a network.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeTemplate {
    /// CPU and memory requests and limits of the Besu container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The data volume of each node.
    #[serde(default)]
    pub storage: StorageSpec,
    /// JSON-RPC API groups enabled on every node (`--rpc-http-api`), in any case: some of
    /// ETH, DEBUG, MINER, NET, PERM, WEB3, ADMIN, TXPOOL, TRACE, PLUGINS, IBFT, ENGINE,
    /// QBFT, TESTING (Besu 26.3.0 refuses to start with any other). Must include `ETH` and
    /// `NET`, which the operator calls. Validators always get `QBFT` or `IBFT` added, for
    /// voting.
    #[serde(default = "default_rpc_apis")]
    #[schemars(length(max = 32), inner(length(max = 32)))]
    #[x_kube(validation = crate::besu::rpc_apis_known_rule())]
    #[x_kube(validation = crate::besu::rpc_apis_required_rule(crate::besu::Owner::Network))]
    pub rpc_apis: Vec<String>,
    /// Extra Besu command-line arguments, appended after the operator's own. Options the
    /// operator sets itself (`--config-file`, `--p2p-host`, `--data-path`, the ports...)
    /// are refused: Besu refuses an option given twice, and overriding the others would
    /// break the node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128), inner(length(max = 4096)))]
    #[x_kube(validation = crate::besu::extra_args_rule(crate::besu::Owner::Network))]
    pub extra_args: Vec<String>,
    /// Node selector for the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations for the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity rules for the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
}

/// An omitted `nodeTemplate` is one whose fields are all omitted: its `rpcApis` are
/// [`default_rpc_apis`], as when only `rpcApis` is omitted (a derived `Default` would give
/// none, which admission refuses and which would leave the operator without `ETH` and `NET`).
impl Default for NodeTemplate {
    fn default() -> Self {
        NodeTemplate {
            resources: None,
            storage: StorageSpec::default(),
            rpc_apis: default_rpc_apis(),
            extra_args: Vec::new(),
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            affinity: None,
        }
    }
}

/// The JSON-RPC API groups enabled when none are given.
pub fn default_rpc_apis() -> Vec<String> {
    ["ETH", "NET", "WEB3", "ADMIN", "TXPOOL"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// A reference to a key inside a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret whose value is the node key in Besu's format
    /// (`0x` + 64 hex digits).
    #[serde(default = "default_key_field")]
    pub key: String,
}

/// The Secret data key that holds a node's private key.
pub const KEY_FIELD: &str = "key";

fn default_key_field() -> String {
    KEY_FIELD.to_string()
}

/// A reference to a key inside a ConfigMap in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// Name of the ConfigMap.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the ConfigMap that holds the genesis JSON.
    #[serde(default = "default_genesis_field")]
    pub key: String,
}

/// The ConfigMap data key that holds the genesis document.
pub const GENESIS_FIELD: &str = "genesis.json";

fn default_genesis_field() -> String {
    GENESIS_FIELD.to_string()
}
