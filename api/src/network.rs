//! `BesuNetwork`: one private Besu chain, with its keys, genesis and nodes.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    ConsensusProtocol, DEFAULT_BESU_IMAGE, DEFAULT_GRAFANA_IMAGE, DEFAULT_PROMETHEUS_IMAGE,
    DeletionPolicy, NodeTemplate,
};

/// Longest `BesuNetwork` name. Child names such as `<network>-validator-24` and the
/// StatefulSet's `controller-revision-hash` label (`<node>-<10 chars>`) must stay valid
/// 63-character DNS labels.
pub const MAX_NETWORK_NAME: usize = 36;
/// Most validators a network may declare (Besu tested IBFT 2.0 up to about 30).
pub const MAX_VALIDATORS: i32 = 25;
/// Most bootnodes a network may declare.
pub const MAX_BOOTNODES: i32 = 5;
/// Most members a network may declare.
pub const MAX_MEMBERS: i32 = 50;

/// A Hyperledger Besu private network: the operator generates node keys, writes a
/// genesis naming the validators, and brings up bootnodes, then validators, then members.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "besu.nodeops.dev",
    version = "v1alpha1",
    kind = "BesuNetwork",
    namespaced,
    status = "BesuNetworkStatus",
    shortname = "bnet",
    category = "besu",
    doc = "A Hyperledger Besu private network (QBFT or IBFT 2.0): keys, genesis and nodes.",
    printcolumn(name = "Consensus", type_ = "string", json_path = ".spec.consensus"),
    printcolumn(name = "Validators", type_ = "string", json_path = ".status.validators.summary", description = "ready/desired validators"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 36").message("metadata.name must be at most 36 characters, so that every child name (for example <name>-validator-24-0) stays a valid DNS label"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.restore) == has(oldSelf.restore)").message("restore applies when the network is created: it cannot be added to or removed from an existing network"))]
#[x_kube(validation = Rule::new("!has(self.importedKeys) || !has(self.importedKeys.validators) || size(self.importedKeys.validators) <= self.validators").message("importedKeys.validators lists more Secrets than spec.validators"))]
#[x_kube(validation = Rule::new("!has(self.importedKeys) || !has(self.importedKeys.bootnodes) || size(self.importedKeys.bootnodes) <= self.bootnodes").message("importedKeys.bootnodes lists more Secrets than spec.bootnodes"))]
pub struct BesuNetworkSpec {
    /// Consensus protocol: `qbft` (recommended) or `ibft2`. Clique is not offered:
    /// Besu 26.3.0 removed Clique block production. Immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("consensus is immutable: the genesis is frozen once written; create a new BesuNetwork for another protocol"))]
    pub consensus: ConsensusProtocol,

    /// Chain ID of the network, written into genesis. Must be positive and must not be a
    /// public chain's ID (1 mainnet, 11155111 Sepolia, 17000 Holesky, 560048 Hoodi, ...).
    /// Immutable.
    #[x_kube(validation = Rule::new("self > 0").message("chainId must be a positive integer"))]
    #[x_kube(validation = Rule::new("!(self in [1, 2, 3, 4, 5, 10, 56, 61, 100, 137, 8453, 17000, 42161, 11155111, 560048])").message("chainId is a public chain's ID; pick a private one (for example 1337)"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("chainId is immutable: the genesis is frozen once written; create a new BesuNetwork for another chain"))]
    pub chain_id: i64,

    /// Everything written into genesis besides consensus and chain ID: consensus timing,
    /// gas settings and pre-funded accounts. Immutable once the network exists.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("genesis settings are immutable: the genesis is frozen once written; create a new BesuNetwork to change them"))]
    pub genesis: GenesisOptions,

    /// Number of bootnodes (discovery entry points), started first.
    #[serde(default = "default_bootnodes")]
    #[schemars(range(min = 1, max = 5))]
    pub bootnodes: i32,

    /// Number of validators. Changing it on a running network adds or removes validators
    /// by on-chain vote. Fewer than 4 tolerate no validator failure.
    #[serde(default = "default_validators")]
    #[schemars(range(min = 1, max = 25))]
    pub validators: i32,

    /// Number of members: non-validating nodes for RPC clients.
    #[serde(default)]
    #[schemars(range(min = 0, max = 50))]
    pub members: i32,

    /// The Besu container image of every node.
    #[serde(default = "default_image")]
    #[schemars(length(min = 1))]
    pub image: String,

    /// Pod settings shared by every Besu node: resources, storage, RPC APIs, extra
    /// arguments, scheduling.
    #[serde(default)]
    pub node_template: NodeTemplate,

    /// Prometheus and Grafana for this network.
    #[serde(default)]
    pub monitoring: MonitoringSpec,

    /// Existing node keys to use instead of generated ones, for migrating a running
    /// network. Each entry names a Secret with key `key` holding a Besu key
    /// (`0x` + 64 hex digits); the list index is the node's ordinal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_keys: Option<ImportedKeys>,

    /// What happens to key Secrets and data volumes when the network is deleted.
    /// `Retain` (default) keeps them so that re-creating the network resumes the same
    /// chain; `Delete` removes them.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Scheduled VolumeSnapshots of one node's data volume, taken with the node stopped
    /// (a consistent copy), with retention, and used to start new nodes from. Needs the
    /// cluster to serve `snapshot.storage.k8s.io/v1` (the VolumeSnapshot CRDs and a
    /// snapshot controller) and a CSI driver that takes snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,

    /// Disaster recovery: every node of this network starts its data volume from a
    /// VolumeSnapshot of the network (its `besu.nodeops.dev/network` label and genesis
    /// checksum must match), validators no more than the fault budget at a time. Used with
    /// the keys and genesis a `deletionPolicy: Retain` network left behind. Only at
    /// creation: it cannot be added to or removed from a network that exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("restore is immutable: it applies when the network is created"))]
    pub restore: Option<RestoreSpec>,
}

/// Scheduled snapshots of a network's chain data.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// When to take a snapshot: a cron expression in UTC, five fields (minute hour
    /// day-of-month month day-of-week, as a Kubernetes CronJob), or six with a leading
    /// seconds field. A run missed while the operator was down, or held back (a rollout,
    /// a vote, a stalled chain, no node that may stop), is taken once it may be.
    #[schemars(length(min = 1, max = 128))]
    pub schedule: String,
    /// The VolumeSnapshotClass of the snapshots (its driver must be the data volumes').
    #[schemars(length(min = 1, max = 253))]
    pub volume_snapshot_class_name: String,
    /// How many ready snapshots of the network to keep; the oldest go first.
    #[serde(default = "default_keep")]
    #[schemars(range(min = 1, max = 100))]
    pub keep: i32,
    /// Which node to stop and snapshot: `auto` (a member if the network has one,
    /// otherwise a validator), `member` or `validator`. A validator is stopped only when
    /// the chain keeps a commit quorum without it (at most `n - ceil(2n/3)` validators
    /// down, counting those already down), one at a time.
    #[serde(default)]
    pub source: BackupSource,
    /// Start new nodes (a scale-up) from the newest ready snapshot, so that they sync only
    /// the blocks since.
    #[serde(default = "default_true")]
    pub seed_new_nodes: bool,
    /// How long the stopped node waits for its snapshot to become ready to use before it
    /// is started again anyway (the attempt then fails).
    #[serde(default = "default_ready_timeout")]
    #[schemars(range(min = 10, max = 86400))]
    pub ready_timeout_seconds: i32,
}

fn default_keep() -> i32 {
    3
}
fn default_true() -> bool {
    true
}
fn default_ready_timeout() -> i32 {
    600
}

/// The node a scheduled snapshot stops.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupSource {
    /// A member if there is one, otherwise a validator.
    #[default]
    Auto,
    /// A member only.
    Member,
    /// A validator only, within the fault budget.
    Validator,
}

/// Where a restored network's data comes from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSpec {
    /// A VolumeSnapshot of this network in its namespace, or `latest` for the newest
    /// ready one.
    #[schemars(length(min = 1, max = 253))]
    pub from_snapshot: String,
}

fn default_bootnodes() -> i32 {
    1
}
fn default_validators() -> i32 {
    4
}
fn default_image() -> String {
    DEFAULT_BESU_IMAGE.to_string()
}

/// Genesis settings besides consensus protocol and chain ID.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GenesisOptions {
    /// Seconds between blocks (`blockperiodseconds`).
    #[serde(default = "default_block_period")]
    #[schemars(range(min = 1, max = 3600))]
    pub block_period_seconds: i32,
    /// Blocks per epoch (`epochlength`); pending validator votes are discarded at each
    /// epoch block.
    #[serde(default = "default_epoch_length")]
    #[schemars(range(min = 10))]
    pub epoch_length: i64,
    /// Seconds before a round change (`requesttimeoutseconds`); Besu's docs suggest about
    /// twice the block period.
    #[serde(default = "default_request_timeout")]
    #[schemars(range(min = 1, max = 3600))]
    pub request_timeout_seconds: i32,
    /// Block gas limit, as `0x` hex.
    #[serde(default = "default_gas_limit")]
    #[schemars(regex(pattern = r"^0x[0-9a-fA-F]{1,16}$"))]
    pub gas_limit: String,
    /// Free-gas network: base fee stays zero and nodes accept zero gas price
    /// (`zeroBaseFee` in genesis, `--min-gas-price=0` on nodes).
    #[serde(default)]
    pub zero_base_fee: bool,
    /// Maximum contract size in bytes (`contractSizeLimit`); Besu's default is 24576.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2147483647))]
    pub contract_size_limit: Option<i64>,
    /// Pre-funded accounts, keyed by `0x` address (40 hex digits). Admission checks the
    /// `0x` prefix and the length (a regex over map keys exceeds the CEL cost budget); a
    /// key with a non-hex digit leaves the network Degraded with a message naming it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 10000))]
    #[x_kube(validation = Rule::new("self.all(k, size(k) == 42 && k.startsWith('0x'))").message("alloc keys must be addresses: 0x followed by 40 hex digits"))]
    pub alloc: BTreeMap<String, AllocAccount>,
}

impl Default for GenesisOptions {
    fn default() -> Self {
        GenesisOptions {
            block_period_seconds: default_block_period(),
            epoch_length: default_epoch_length(),
            request_timeout_seconds: default_request_timeout(),
            gas_limit: default_gas_limit(),
            zero_base_fee: false,
            contract_size_limit: None,
            alloc: BTreeMap::new(),
        }
    }
}

fn default_block_period() -> i32 {
    2
}
fn default_epoch_length() -> i64 {
    30000
}
fn default_request_timeout() -> i32 {
    4
}
fn default_gas_limit() -> String {
    "0x1fffffffffffff".to_string()
}

/// A pre-funded account in genesis.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AllocAccount {
    /// Balance in wei, as a decimal string or `0x` hex.
    #[schemars(regex(pattern = r"^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$"))]
    pub balance: String,
    /// Contract bytecode, `0x` hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Contract storage slots, `0x` hex keys and values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<BTreeMap<String, String>>,
    /// Account nonce, as a decimal string or `0x` hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// Node keys supplied by the user. The list index is the node's ordinal.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportedKeys {
    /// Secrets holding validator keys, for ordinals 0, 1, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validators: Vec<String>,
    /// Secrets holding bootnode keys, for ordinals 0, 1, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bootnodes: Vec<String>,
}

/// Monitoring nodes of a network.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// A Prometheus that scrapes every node of the network.
    #[serde(default = "default_prometheus")]
    pub prometheus: MonitoringComponent,
    /// A Grafana with the network's dashboard, reading from the network's Prometheus.
    #[serde(default = "default_grafana")]
    pub grafana: MonitoringComponent,
}

/// One monitoring component.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringComponent {
    /// Whether to run it.
    #[serde(default)]
    pub enabled: bool,
    /// Container image. Empty means the operator's pinned default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

fn default_prometheus() -> MonitoringComponent {
    MonitoringComponent::default()
}
fn default_grafana() -> MonitoringComponent {
    MonitoringComponent::default()
}

impl MonitoringSpec {
    /// The Prometheus image to run.
    pub fn prometheus_image(&self) -> &str {
        self.prometheus
            .image
            .as_deref()
            .unwrap_or(DEFAULT_PROMETHEUS_IMAGE)
    }
    /// The Grafana image to run.
    pub fn grafana_image(&self) -> &str {
        self.grafana
            .image
            .as_deref()
            .unwrap_or(DEFAULT_GRAFANA_IMAGE)
    }
}

/// Where a network stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum NetworkPhase {
    /// Keys and genesis are being created.
    #[default]
    Pending,
    /// Nodes are being brought up in order.
    Creating,
    /// Every node is Ready.
    Ready,
    /// Something needs the user's attention; see the `Degraded` condition.
    Degraded,
}

/// Desired and ready counts of one role.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleStatus {
    /// Nodes the spec asks for.
    pub desired: i32,
    /// Nodes whose pod is Ready.
    pub ready: i32,
}

/// The validator set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidatorSetStatus {
    /// Validators the spec asks for.
    pub desired: i32,
    /// Validators whose pod is Ready.
    pub ready: i32,
    /// `ready/desired`, for `kubectl get`.
    pub summary: String,
    /// Addresses of the validators, ascending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// The validator set on-chain at the latest block, ascending, as the validators'
    /// JSON-RPC reports it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_chain: Vec<String>,
    /// The validator being added or removed by vote, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<ValidatorChange>,
}

/// A validator set change in progress.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidatorChange {
    /// The validator's address.
    pub address: String,
    /// Its ordinal.
    pub ordinal: i32,
    /// `add` or `remove`.
    pub action: String,
    /// Validators currently holding the proposal (Besu keeps proposals in memory).
    pub votes: i32,
    /// Votes the change needs: more than half of the current validators.
    pub needed: i32,
}

/// Progress of a rolling update of the nodes (after `spec.image` or `spec.nodeTemplate`
/// changed).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStatus {
    /// The image being rolled out.
    pub target_image: String,
    /// Nodes already on the new spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<String>,
    /// Nodes still to update, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
    /// Nodes updated in the current step, awaited back Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_progress: Vec<String>,
    /// The next step waits until the chain reaches this height (2 blocks after the
    /// previous step's nodes came back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle_at_height: Option<i64>,
    /// When the current step started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<String>,
}

/// Observed state of a `BesuNetwork`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BesuNetworkStatus {
    /// Where the network stands: Pending, Creating, Ready or Degraded.
    #[serde(default)]
    pub phase: NetworkPhase,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// KeysReady, GenesisReady, BootnodesReady, ValidatorsReady, MembersReady, Ready,
    /// Degraded, ValidatorSetConverged, FaultTolerant, Producing, UpgradeStalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Bootnodes desired and ready.
    #[serde(default)]
    pub bootnodes: RoleStatus,
    /// Validators desired and ready, and their addresses.
    #[serde(default)]
    pub validators: ValidatorSetStatus,
    /// Members desired and ready.
    #[serde(default)]
    pub members: RoleStatus,
    /// Enode URLs of the bootnodes, as given to every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bootnode_enodes: Vec<String>,
    /// SHA-256 of the genesis document in the genesis ConfigMap. Equal checksums mean
    /// the same genesis, hence the same chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genesis_checksum: Option<String>,
    /// Name of the ConfigMap holding `genesis.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genesis_config_map: Option<String>,
    /// The rolling update in progress or last finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradeStatus>,
    /// Scheduled snapshots: the last one taken and the one in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupStatus>,
    /// The VolumeSnapshot a restored network's nodes start from (`spec.restore`, with
    /// `latest` resolved once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<String>,
}

/// Scheduled snapshots of a network.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// The last snapshot that became ready to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_snapshot: Option<SnapshotRecord>,
    /// The scheduled time (RFC 3339) of the last run started: the next run is the
    /// schedule's first time after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// The snapshot in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<BackupAttempt>,
    /// Why the last attempt failed (empty once one succeeds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

/// A snapshot taken.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRecord {
    /// The VolumeSnapshot's name.
    pub name: String,
    /// The node whose data volume it copied.
    pub node: String,
    /// The chain height of that node when it was stopped (at least: the last height
    /// read before its pod stopped).
    pub height: i64,
    /// When it was taken (RFC 3339).
    pub time: String,
}

/// A snapshot in progress: stop the node, snapshot its volume, start it again.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupAttempt {
    /// The node stopped for it.
    pub node: String,
    /// The VolumeSnapshot's name.
    pub snapshot: String,
    /// The node's chain height when it was stopped: the last height read before its pod
    /// stopped, so the copy holds at least this many blocks.
    pub height: i64,
    /// When the node was stopped (RFC 3339).
    pub started_at: String,
    /// `Stopping` (waiting for the pod to go), `Snapshotting` (waiting for the snapshot
    /// to be ready to use) or `Starting` (waiting for the node to be Ready again).
    pub phase: String,
    /// Why the attempt failed, once it did (the node is started again all the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Once the node answers in sync again: the run ends when the chain reaches this
    /// height (2 blocks later), so that the next run never stops a node while the last
    /// one is not yet taking part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle_at_height: Option<i64>,
}
