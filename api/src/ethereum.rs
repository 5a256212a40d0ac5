//! `EthereumNode` (group `ethereum.nodeops.dev`): an Ethereum node on a public or custom
//! proof-of-stake network, an execution client and a consensus client in one pod that
//! share a JWT over the authenticated Engine API, optionally with a validator client.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of `EthereumNode`.
pub const ETHEREUM_GROUP: &str = "ethereum.nodeops.dev";
/// Label naming the `EthereumNode` an object belongs to.
pub const LABEL_ETHEREUM_NODE: &str = "ethereum.nodeops.dev/node";
/// Longest `EthereumNode` name: its StatefulSet's pods are `<name>-<ordinal>`, their
/// `controller-revision-hash` label `<name>-<10 characters>`, and its children
/// `<name>-p2p-<ordinal>`; all must stay 63-character DNS labels.
pub const MAX_ETHEREUM_NODE_NAME: usize = 40;
/// Most replicas of a `full` or `gateway` node.
pub const MAX_ETHEREUM_REPLICAS: i32 = 16;
/// The pinned default Teku image (25.11.0: the first Teku release for Fusaka on mainnet).
pub const DEFAULT_TEKU_IMAGE: &str = "consensys/teku:25.11.0";
/// The pinned default Lighthouse image (v8.0.1: Fusaka on mainnet).
pub const DEFAULT_LIGHTHOUSE_IMAGE: &str = "sigp/lighthouse:v8.0.1";
/// The pinned default MEV-boost image (1.10.0: Fusaka).
pub const DEFAULT_MEV_BOOST_IMAGE: &str = "flashbots/mev-boost:1.10.0";
/// The key of a JWT Secret (generated or given) holding the hex-encoded 32-byte secret.
pub const JWT_FIELD: &str = "jwt.hex";

/// An Ethereum node: an execution client and a consensus client in one pod (a
/// StatefulSet of `replicas` such pods), sharing a JWT for the Engine API, with
/// persistent storage per client, checkpoint sync, Services and a validator client for
/// `nodeType: validator`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ethereum.nodeops.dev",
    version = "v1alpha1",
    kind = "EthereumNode",
    namespaced,
    status = "EthereumNodeStatus",
    shortname = "ethn",
    category = "ethereum",
    doc = "An Ethereum node: execution and consensus clients in one pod sharing a JWT, with storage, checkpoint sync, Services and an optional validator client.",
    printcolumn(name = "Network", type_ = "string", json_path = ".spec.network"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.nodeType"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Head", type_ = "integer", json_path = ".status.executionHead", description = "the execution client's head block number"),
    printcolumn(name = "Peers", type_ = "string", json_path = ".status.peers", description = "execution/consensus peers"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 40").message("metadata.name must be at most 40 characters, so that the names of its pods, volumes and Services stay valid DNS labels"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.network != 'custom' || has(self.customNetwork)").message("network custom needs customNetwork: the ConfigMap with the execution genesis (genesis.json), the consensus config (config.yaml) and the genesis state (genesis.ssz)"))]
#[x_kube(validation = Rule::new("self.network == 'custom' || !has(self.customNetwork)").message("customNetwork is only for network: custom; a public network's genesis and config are built into the clients"))]
#[x_kube(validation = Rule::new("self.nodeType != 'validator' || has(self.validator)").message("nodeType validator needs validator: the keystore Secret and the fee recipient; without keys there is nothing to validate with"))]
#[x_kube(validation = Rule::new("self.nodeType == 'validator' || !has(self.validator)").message("validator is only for nodeType: validator; set nodeType: validator, or remove the validator section"))]
#[x_kube(validation = Rule::new("self.nodeType != 'validator' || self.replicas <= 1").message("a validator node runs at most 1 replica: two signers with the same keys get the validators slashed; use replicas 0 to stop it"))]
#[x_kube(validation = Rule::new("!has(self.p2pService) || self.p2pService.type == 'None' || self.replicas <= 1").message("p2pService LoadBalancer or NodePort needs replicas <= 1: each client advertises one external address; run several EthereumNodes to expose several peers"))]
#[x_kube(validation = Rule::new("!has(self.ingress) || self.nodeType == 'gateway'").message("ingress is only for nodeType: gateway, the type tuned for serving JSON-RPC to others"))]
#[x_kube(validation = Rule::new("self.nodeType != 'archive' || !has(self.consensus.checkpointSyncUrl) || self.consensus.client != 'teku'").message("an archive node with client teku cannot start from a checkpoint: Teku's archive mode needs every historical state from genesis; remove consensus.checkpointSyncUrl or use prysm or lighthouse"))]
#[x_kube(validation = Rule::new("self.nodeType != 'validator' || self.consensus.client == 'prysm'").message("nodeType validator runs Prysm's validator client, which needs consensus.client prysm; the Teku and Lighthouse validator clients are not supported yet"))]
#[x_kube(validation = Rule::new("has(self.restore) == has(oldSelf.restore)").message("restore applies when the node is created: it cannot be added to or removed from an existing EthereumNode"))]
#[x_kube(validation = Rule::new("!has(self.validator) || !has(self.validator.mevBoost) || self.network != 'custom'").message("validator.mevBoost is for public networks: MEV relays serve mainnet, sepolia, hoodi and holesky only"))]
pub struct EthereumNodeSpec {
    /// The chain: `mainnet`, `sepolia`, `hoodi`, `holesky` (deprecated upstream: the
    /// Ethereum Foundation announced its end after Fusaka; new nodes should use `hoodi`),
    /// or `custom` with `customNetwork` for private proof-of-stake networks and devnets.
    /// Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("network is immutable: the clients' databases belong to one chain; create a new EthereumNode for another network"))]
    pub network: EthereumNetwork,

    /// For `network: custom`: where the chain's definition lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_network: Option<CustomNetwork>,

    /// What the node is for: `full` (snap sync, recent state; the default), `archive`
    /// (every historical state: full sync and archive garbage collection, more storage),
    /// `validator` (adds a validator client with the keys of `validator`), `gateway`
    /// (tuned to serve JSON-RPC to others: more connections, larger RPC limits). See the
    /// README's table for each client's flags.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf || (self in ['full', 'gateway'] && oldSelf in ['full', 'gateway'])").message("nodeType may change only between full and gateway: an archive database cannot be pruned back, a full one does not hold archive state, and a validator's slashing protection must not move; create a new EthereumNode"))]
    pub node_type: EthereumNodeType,

    /// Number of pods (each with its own volumes). `0` stops the node and keeps its
    /// volumes (phase `Stopped`). `validator` nodes run at most 1.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 16))]
    pub replicas: i32,

    /// The execution client.
    #[serde(default)]
    pub execution: ExecutionSpec,

    /// The consensus (beacon) client.
    #[serde(default)]
    pub consensus: ConsensusSpec,

    /// An existing Secret holding the Engine API JWT (32 bytes, hex). Unset: the operator
    /// generates one with a CSPRNG into the Secret `<name>-jwt` once, marks it immutable
    /// and never regenerates it while the node exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_secret_ref: Option<JwtSecretRef>,

    /// For `nodeType: validator`: keys, fee recipient, graffiti, MEV-boost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator: Option<ValidatorSpec>,

    /// How peers outside the cluster reach the clients' P2P ports. Unset: no P2P Service
    /// (the node still dials out to peers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p2p_service: Option<P2pServiceSpec>,

    /// An Ingress in front of the execution JSON-RPC (`nodeType: gateway` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,

    /// Node selector for the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Tolerations for the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Affinity rules for the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Scheduled backups: the execution and consensus volumes of one replica (the last
    /// ordinal) copied as VolumeSnapshots with that replica stopped (a consistent copy),
    /// with retention, and used to start new replicas from. The validator client's volume
    /// (its slashing protection) is never copied. With one replica the node is offline
    /// while its volumes are copied. Needs the cluster to serve
    /// `snapshot.storage.k8s.io/v1` and a CSI driver that takes snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<EthereumBackupSpec>,

    /// Start every replica's execution and consensus volumes from a backup (of this node
    /// or another node of the same chain and clients). Only at creation: it cannot be
    /// added to or removed from a node that exists. A replica started from another
    /// replica's copy gets a new P2P identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("restore is immutable: it applies when the node is created"))]
    pub restore: Option<EthereumRestoreSpec>,
}

/// Scheduled backups of an EthereumNode's chain data.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EthereumBackupSpec {
    /// When to take a backup: a cron expression in UTC, five fields (minute hour
    /// day-of-month month day-of-week, as a Kubernetes CronJob), or six with a leading
    /// seconds field. A run is held while a replica is not Ready and synced or a rollout
    /// is under way, and taken once it may be.
    #[schemars(length(min = 1, max = 128))]
    pub schedule: String,
    /// The VolumeSnapshotClass of the snapshots (its driver must be the volumes').
    #[schemars(length(min = 1, max = 253))]
    pub volume_snapshot_class_name: String,
    /// How many complete backups to keep; the oldest go first.
    #[serde(default = "default_backup_keep")]
    #[schemars(range(min = 1, max = 100))]
    pub keep: i32,
    /// Start new replicas (a scale-up) from the newest complete backup, so that they sync
    /// only the blocks since.
    #[serde(default = "default_true")]
    pub seed_new_replicas: bool,
    /// How long the stopped replica waits for its snapshots to become ready to use before
    /// it is started again anyway (the attempt then fails).
    #[serde(default = "default_backup_ready_timeout")]
    #[schemars(range(min = 10, max = 86400))]
    pub ready_timeout_seconds: i32,
}

fn default_backup_keep() -> i32 {
    3
}
fn default_backup_ready_timeout() -> i32 {
    600
}

/// Where a restored EthereumNode's chain data comes from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EthereumRestoreSpec {
    /// A backup's name (`status.backup.lastSnapshot.name`, the annotation
    /// `ethereum.nodeops.dev/backup` of its VolumeSnapshots) in this namespace, or
    /// `latest` for this node's newest complete backup. Its chain and clients must be this
    /// node's.
    #[schemars(length(min = 1, max = 253))]
    pub from_backup: String,
}

fn default_replicas() -> i32 {
    1
}

/// The chain an `EthereumNode` follows.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EthereumNetwork {
    /// Ethereum mainnet.
    Mainnet,
    /// The Sepolia testnet.
    Sepolia,
    /// The Hoodi testnet (staking and infrastructure testing; Holesky's successor).
    Hoodi,
    /// The Holesky testnet: deprecated upstream, use Hoodi for new nodes.
    Holesky,
    /// A private proof-of-stake network or devnet, defined by `customNetwork`.
    Custom,
}

impl EthereumNetwork {
    /// The name in flags and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            EthereumNetwork::Mainnet => "mainnet",
            EthereumNetwork::Sepolia => "sepolia",
            EthereumNetwork::Hoodi => "hoodi",
            EthereumNetwork::Holesky => "holesky",
            EthereumNetwork::Custom => "custom",
        }
    }

    /// The default checkpoint sync provider of a public network: the community endpoints
    /// listed at <https://eth-clients.github.io/checkpoint-sync-endpoints/>. A node
    /// starts from a finalized state instead of replaying from genesis.
    pub fn default_checkpoint_sync_url(self) -> Option<&'static str> {
        match self {
            EthereumNetwork::Mainnet => Some("https://mainnet.checkpoint.sigp.io"),
            EthereumNetwork::Sepolia => Some("https://sepolia.checkpoint.sigp.io"),
            EthereumNetwork::Hoodi => Some("https://hoodi.checkpoint.sigp.io"),
            EthereumNetwork::Holesky => Some("https://holesky.checkpoint.sigp.io"),
            EthereumNetwork::Custom => None,
        }
    }
}

/// Where a custom network's definition lives.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomNetwork {
    /// A ConfigMap in the node's namespace with the keys `genesis.json` (the execution
    /// genesis), `config.yaml` (the consensus chain config) and `genesis.ssz` (the
    /// genesis state, in `binaryData`), and optionally `bootnodes.txt` (execution enode
    /// URLs, one per line) and `bootstrap-nodes.txt` (consensus ENRs or multiaddrs, one
    /// per line).
    #[schemars(length(min = 1, max = 253))]
    pub config_map_name: String,
    /// The execution chain ID (`--networkid`). Must match `genesis.json`'s
    /// `config.chainId`.
    #[schemars(range(min = 1))]
    pub chain_id: i64,
}

/// The key of a custom network's execution genesis.
pub const CUSTOM_GENESIS_KEY: &str = "genesis.json";
/// The key of a custom network's consensus config.
pub const CUSTOM_CONFIG_KEY: &str = "config.yaml";
/// The key (in `binaryData`) of a custom network's genesis state.
pub const CUSTOM_GENESIS_STATE_KEY: &str = "genesis.ssz";
/// The key of a custom network's execution bootnodes.
pub const CUSTOM_BOOTNODES_KEY: &str = "bootnodes.txt";
/// The key of a custom network's consensus bootstrap nodes.
pub const CUSTOM_BOOTSTRAP_NODES_KEY: &str = "bootstrap-nodes.txt";

/// What an `EthereumNode` is for.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EthereumNodeType {
    /// Snap sync, recent state, checkpoint-synced consensus.
    #[default]
    Full,
    /// Every historical state.
    Archive,
    /// A full node plus a validator client signing with the given keys.
    Validator,
    /// A full node tuned to serve JSON-RPC to others.
    Gateway,
}

impl EthereumNodeType {
    /// The name in labels.
    pub fn as_str(self) -> &'static str {
        match self {
            EthereumNodeType::Full => "full",
            EthereumNodeType::Archive => "archive",
            EthereumNodeType::Validator => "validator",
            EthereumNodeType::Gateway => "gateway",
        }
    }
}

/// An execution client.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionClient {
    /// Go Ethereum, the default: the most widely run execution client, and the one this
    /// operator's tests run for real.
    #[default]
    Geth,
    /// Hyperledger Besu.
    Besu,
}

impl ExecutionClient {
    /// The client's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionClient::Geth => "geth",
            ExecutionClient::Besu => "besu",
        }
    }
}

/// A consensus client.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConsensusClient {
    /// Prysm, the default: its beacon node and validator client are tested here for real.
    #[default]
    Prysm,
    /// Teku.
    Teku,
    /// Lighthouse.
    Lighthouse,
}

impl ConsensusClient {
    /// The client's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsensusClient::Prysm => "prysm",
            ConsensusClient::Teku => "teku",
            ConsensusClient::Lighthouse => "lighthouse",
        }
    }
}

/// A client's data volume.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientStorage {
    /// Size of the volume, as a Kubernetes quantity. Unset: a size for the network and
    /// node type (for example 2Ti for a mainnet full execution client, 4Ti for archive,
    /// 20Gi on a custom network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"))]
    pub size: Option<String>,
    /// StorageClass of the volume. Unset: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// The execution client.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionSpec {
    /// `geth` (default) or `besu`. Immutable: the database is the client's own.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("execution.client is immutable: its database is the client's own; create a new EthereumNode to switch clients"))]
    pub client: ExecutionClient,
    /// Container image. Unset: the pinned default of the client
    /// (`ethereum/client-go` or `hyperledger/besu`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    /// CPU and memory requests and limits. Unset: a size for the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The execution data volume.
    #[serde(default)]
    pub storage: ClientStorage,
    /// Extra command-line arguments, appended after the operator's own. Options the
    /// operator sets (data directory, Engine API, JWT, ports, network) are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 1024)))]
    #[x_kube(validation = Rule::new("self.all(a, !a.matches('^--?(datadir|data-path|authrpc\\\\.[a-z]+|engine-[a-z-]+|http\\\\.port|rpc-http-port|port|p2p-port|networkid|network-id|network|mainnet|sepolia|hoodi|holesky|genesis-file|syncmode|sync-mode|gcmode)(=.*)?$'))").message("execution.extraArgs must not set an option the operator sets (data directory, Engine API and JWT, ports, network, sync mode); use the spec's fields instead"))]
    pub extra_args: Vec<String>,
}

/// The consensus client.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConsensusSpec {
    /// `prysm` (default), `teku` or `lighthouse`. Immutable: the database is the
    /// client's own.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("consensus.client is immutable: its database is the client's own; create a new EthereumNode to switch clients"))]
    pub client: ConsensusClient,
    /// Container image of the beacon node. Unset: the pinned default of the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    /// CPU and memory requests and limits. Unset: a size for the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The consensus data volume.
    #[serde(default)]
    pub storage: ClientStorage,
    /// A beacon API serving a recent finalized state to start from. Unset on a public
    /// network: the network's default provider (see the README); unset on `custom`:
    /// sync from genesis. Set to an empty string to sync a public network from genesis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self == '' || self.matches('^https?://[^\\\\s/?#]+(/[^\\\\s]*)?$')").message("consensus.checkpointSyncUrl must be an http(s) URL of a beacon API (for example https://sepolia.checkpoint.sigp.io), or empty to sync from genesis"))]
    pub checkpoint_sync_url: Option<String>,
    /// Extra command-line arguments of the beacon node, appended after the operator's
    /// own. Options the operator sets (data directory, execution endpoint, JWT, ports,
    /// network, checkpoint sync) are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 1024)))]
    #[x_kube(validation = Rule::new("self.all(a, !a.matches('^--?(datadir|data-path|data-base-path|execution-endpoint|execution-endpoints|ee-endpoint|jwt-secret|execution-jwt|ee-jwt-secret-file|checkpoint-sync-url|genesis-beacon-api-url|checkpoint-sync-state-url|network|mainnet|sepolia|hoodi|holesky|chain-config-file|genesis-state|http-port|rest-api-port|p2p-tcp-port|p2p-udp-port|port|p2p-port|accept-terms-of-use)(=.*)?$'))").message("consensus.extraArgs must not set an option the operator sets (data directory, execution endpoint and JWT, network, checkpoint sync, ports); use the spec's fields instead"))]
    pub extra_args: Vec<String>,
}

/// A Secret key holding a JWT.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtSecretRef {
    /// Name of the Secret, in the node's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret: 64 hex digits, optionally `0x`-prefixed.
    #[serde(default = "default_jwt_field")]
    pub key: String,
}

fn default_jwt_field() -> String {
    JWT_FIELD.to_string()
}

/// A validator client's keys and settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ValidatorSpec {
    /// A Secret holding EIP-2335 keystores (keys ending in `.json`, one per validator)
    /// and their password (key `password`). Imported at every start into a Prysm wallet
    /// on the validator client's own volume (keys already there are skipped), whose
    /// password the operator generates once into the Secret `<name>-wallet`.
    #[schemars(length(min = 1, max = 253))]
    pub keystore_secret_name: String,
    /// The address that receives priority fees and MEV of blocks this node proposes.
    #[schemars(regex(pattern = r"^0x[0-9a-fA-F]{40}$"))]
    pub fee_recipient: String,
    /// Graffiti written into proposed blocks (at most 32 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub graffiti: Option<String>,
    /// Doppelganger protection: before signing, watch the network for 2-3 epochs for the
    /// keys being active elsewhere, and refuse to start if they are. On by default; turn
    /// off only for a new network whose validators have never run.
    #[serde(default = "default_true")]
    pub doppelganger_protection: bool,
    /// Container image of the validator client. Unset: the pinned default of the
    /// consensus client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    /// CPU and memory requests and limits of the validator client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The volume holding the validator client's wallet and slashing-protection
    /// database. It survives restarts and image changes.
    #[serde(default)]
    pub storage: ClientStorage,
    /// Extra command-line arguments of the validator client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 1024)))]
    #[x_kube(validation = Rule::new("self.all(a, !a.matches('^--?(datadir|data-dir|wallet-dir|wallet-password-file|beacon-rpc-provider|beacon-node|beacon-nodes|beacon-node-api-endpoint|suggested-fee-recipient|validators-proposer-default-fee-recipient|graffiti|validators-graffiti|enable-doppelganger|doppelganger-detection-enabled|enable-doppelganger-protection|network|mainnet|sepolia|hoodi|holesky|chain-config-file|accept-terms-of-use)(=.*)?$'))").message("validator.extraArgs must not set an option the operator sets (wallet, beacon node, fee recipient, graffiti, doppelganger protection, network); use the spec's fields instead"))]
    pub extra_args: Vec<String>,
    /// An MEV-boost sidecar the beacon node asks for blocks from relays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mev_boost: Option<MevBoostSpec>,
}

fn default_true() -> bool {
    true
}

/// The MEV-boost sidecar.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MevBoostSpec {
    /// Container image. Unset: the pinned default (`flashbots/mev-boost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    /// Relay URLs (`https://0x<BLS public key>@<host>`), at least one.
    #[schemars(
        length(min = 1, max = 32),
        inner(regex(pattern = r"^https://0x[0-9a-fA-F]{96}@[^\s/]+(/[^\s]*)?$"))
    )]
    pub relays: Vec<String>,
}

/// How peers outside the cluster reach the P2P ports.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type != 'NodePort' || (self.executionPort >= 30000 && self.executionPort <= 32767 && self.consensusPort >= 30000 && self.consensusPort <= 32767)").message("with type NodePort the clients listen on their node ports, so executionPort and consensusPort must be in the NodePort range 30000-32767 (for example 30303 and 30304)"))]
#[x_kube(validation = Rule::new("self.executionPort != self.consensusPort").message("executionPort and consensusPort must differ"))]
pub struct P2pServiceSpec {
    /// `LoadBalancer` (the clients advertise the load balancer's address once it has
    /// one), `NodePort` (they advertise their node's address and listen on the node
    /// ports) or `None`.
    #[serde(rename = "type")]
    pub service_type: P2pServiceType,
    /// The execution client's P2P port (TCP and UDP).
    #[serde(default = "default_execution_p2p_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub execution_port: i32,
    /// The consensus client's P2P port (TCP and UDP).
    #[serde(default = "default_consensus_p2p_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub consensus_port: i32,
}

/// The default execution P2P port.
pub fn default_execution_p2p_port() -> i32 {
    30303
}
/// The default consensus P2P port.
pub fn default_consensus_p2p_port() -> i32 {
    30304
}

/// The kind of P2P Service.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum P2pServiceType {
    /// A `LoadBalancer` Service.
    LoadBalancer,
    /// A `NodePort` Service.
    NodePort,
    /// No Service.
    None,
}

/// An Ingress in front of the execution JSON-RPC.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// The IngressClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// The host name served.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
        length(max = 253)
    )]
    pub host: String,
    /// A Secret with the TLS certificate and key for `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
}

/// Where an `EthereumNode` stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum EthereumNodePhase {
    /// Children are being created.
    #[default]
    Pending,
    /// Pods exist but the clients are not serving yet (pulling, initialising, importing
    /// keys).
    Configuring,
    /// The clients serve and are syncing.
    Syncing,
    /// Every replica's clients are synced and Ready.
    Running,
    /// `replicas: 0`: no pods; volumes kept.
    Stopped,
    /// A backup has stopped the last replica to copy its volumes; it starts again once
    /// the copies are ready to use (see `status.backup.inProgress`).
    BackingUp,
    /// Something needs the user's attention; see the `Error` condition.
    Error,
}

/// Observed state of an `EthereumNode`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EthereumNodeStatus {
    /// Pending, Configuring, Syncing, Running, Stopped, BackingUp or Error.
    #[serde(default)]
    pub phase: EthereumNodePhase,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Synced and Error conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Pods Ready, of `replicas`.
    #[serde(default)]
    pub ready_replicas: i32,
    /// The highest execution head block number among the replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_head: Option<u64>,
    /// The highest consensus head slot among the replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consensus_head_slot: Option<u64>,
    /// The consensus client's finalized epoch, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalized_epoch: Option<u64>,
    /// Execution and consensus peers of the first replica (`<execution>/<consensus>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<String>,
    /// The Secret (and key) holding the Engine API JWT both clients use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<String>,
    /// The images the pods run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<String>,
    /// Scheduled backups: the last one taken (its name is the backup's, its node the
    /// replica copied, its height that replica's execution head) and the one in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<crate::BackupStatus>,
    /// The backup a restored node's replicas start from (`spec.restore`, with `latest`
    /// resolved once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    /// Every property under `path` in `schema` (JSON), recursively through objects, arrays
    /// and maps, with whether it has a description.
    fn undocumented(schema: &serde_json::Value, path: &str, out: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
            for (name, prop) in props {
                let here = format!("{path}.{name}");
                let described = prop
                    .get("description")
                    .and_then(|d| d.as_str())
                    .is_some_and(|d| !d.trim().is_empty());
                if !described {
                    out.push(here.clone());
                }
                undocumented(prop, &here, out);
            }
        }
        for nested in ["items", "additionalProperties"] {
            if let Some(inner) = schema.get(nested).filter(|v| v.is_object()) {
                undocumented(inner, &format!("{path}[]"), out);
            }
        }
    }

    /// What `kubectl explain ethereumnode.spec --recursive` shows comes from the CRD's
    /// schema: every field of the spec (and the status) carries a description.
    #[test]
    fn kubectl_explain_documents_every_field() {
        let crd = serde_json::to_value(EthereumNode::crd()).unwrap_or_default();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut missing = Vec::new();
        for part in ["spec", "status"] {
            let sub = &schema["properties"][part];
            assert!(sub.is_object(), "no {part} in the schema");
            undocumented(sub, part, &mut missing);
        }
        let fields = serde_json::to_string(schema)
            .unwrap_or_default()
            .matches("\"description\"")
            .count();
        assert!(
            fields > 50,
            "only {fields} descriptions: the walk found no fields"
        );
        assert!(
            missing.is_empty(),
            "fields without a description: {missing:?}"
        );
    }
}
