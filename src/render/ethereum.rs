//! `EthereumNode` → JWT Secret, StatefulSet, headless, RPC and P2P Services, Ingress.
//!
//! One pod per replica runs the execution client and the consensus client side by side;
//! they talk over the Engine API on `127.0.0.1:8551`, authenticated by the JWT both
//! mount from one Secret. A `validator` node adds the validator client (its wallet and
//! slashing-protection database on a volume of its own) and, optionally, MEV-boost.
//!
//! Each client's flags come from its own documentation (the README's table names the
//! pages); the choices that matter for operating them:
//! - Readiness follows sync: the consensus container is Ready only when its beacon API's
//!   standard health endpoint answers 200 (`/eth/v1/node/health?syncing_status=503`,
//!   which answers 503 while syncing), so a syncing replica is taken out of the RPC
//!   Service. Liveness is a TCP check on each client's API port with a generous
//!   threshold, behind a startup probe of up to an hour: it never kills a node for
//!   syncing, only one whose process stopped serving.
//! - Each client advertises an address peers can reach: the pod IP, the node's IP with a
//!   NodePort Service (the clients then listen on the node ports), or the load
//!   balancer's address, which the operator reads from the Service before it renders.
//!   Geth never probes the network for a NAT gateway (`--nat=extip:`).
//! - On a custom network the clients get only the peers the network's ConfigMap lists:
//!   Geth's built-in mainnet bootnodes are never dialled there.

use std::collections::BTreeMap;

use besu_operator_api::{
    ConsensusClient, DEFAULT_BESU_IMAGE, DEFAULT_GETH_IMAGE, DEFAULT_LIGHTHOUSE_IMAGE,
    DEFAULT_MEV_BOOST_IMAGE, DEFAULT_PRYSM_BEACON_IMAGE, DEFAULT_PRYSM_VALIDATOR_IMAGE,
    DEFAULT_TEKU_IMAGE, EthereumNetwork, EthereumNode, EthereumNodeType, ExecutionClient,
    JWT_FIELD, LABEL_ETHEREUM_NODE, P2pServiceType,
};
use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, HTTPGetAction, KeyToPath,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, SeccompProfile, Secret, SecretVolumeSource, Service, ServicePort,
    ServiceSpec, TCPSocketAction, TypedLocalObjectReference, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};

use super::node::RenderError;
use super::node::{container_security_context, port};
use super::{MANAGED_BY, field_env};

/// The uid and gid the clients run as (any non-root id works: the images need no home
/// and write only to their volumes and `/tmp`).
pub const CLIENT_UID: i64 = 10001;

/// Execution JSON-RPC over HTTP.
pub const EXECUTION_HTTP_PORT: i32 = 8545;
/// Execution JSON-RPC over WebSocket.
pub const EXECUTION_WS_PORT: i32 = 8546;
/// The Engine API, on the pod's loopback only.
pub const ENGINE_PORT: i32 = 8551;
/// Execution client metrics.
pub const EXECUTION_METRICS_PORT: i32 = 6060;
/// The beacon node's REST API (the standard Beacon API).
pub const BEACON_HTTP_PORT: i32 = 3500;
/// Prysm's beacon gRPC, which its validator client uses, on the pod's loopback only.
pub const BEACON_GRPC_PORT: i32 = 4000;
/// Beacon node metrics.
pub const BEACON_METRICS_PORT: i32 = 8080;
/// Validator client metrics.
pub const VALIDATOR_METRICS_PORT: i32 = 8081;
/// MEV-boost's API for the beacon node, on the pod's loopback.
pub const MEV_BOOST_PORT: i32 = 18550;

/// Where the execution client's volume is mounted.
pub const EXECUTION_DATA: &str = "/data/execution";
/// Where the consensus client's volume is mounted.
pub const CONSENSUS_DATA: &str = "/data/consensus";
/// Where the validator client's volume (wallet, slashing protection) is mounted.
pub const VALIDATOR_DATA: &str = "/data/validator";
/// Where the JWT Secret is mounted.
pub const JWT_DIR: &str = "/jwt";
/// Where a custom network's ConfigMap is mounted.
pub const NETWORK_DIR: &str = "/network";
/// Where the keystore Secret is mounted.
pub const KEYSTORE_DIR: &str = "/keystores";

/// The annotation on the pod template holding a hash of the inputs that are files, not
/// flags (the custom network's ConfigMap version), so that a change rolls the pods.
pub const INPUTS_CHECKSUM_ANNOTATION: &str = "ethereum.nodeops.dev/inputs-checksum";

/// What the renderer needs beyond the spec, read by the controller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// A custom network's execution bootnodes (enode URLs).
    pub bootnodes: Vec<String>,
    /// A custom network's consensus bootstrap nodes (ENRs or multiaddrs).
    pub bootstrap_nodes: Vec<String>,
    /// The load balancer's address, for a `LoadBalancer` P2P Service.
    pub advertised_ip: Option<String>,
    /// A checksum of the custom network ConfigMap's files, rolled into the pod template.
    pub network_version: Option<String>,
    /// The custom network ConfigMap holds gzip-compressed files (`*.gz`, for a genesis
    /// state over a ConfigMap's 1 MiB): an init container running `operator_image`
    /// (`besu-operator network-files`) decompresses them into the pod first.
    pub compressed_network: bool,
    /// The operator's own image, for that init container.
    pub operator_image: Option<String>,
}

/// Where the custom network ConfigMap is mounted when an init container decompresses it
/// into [`NETWORK_DIR`].
pub const NETWORK_SOURCE_DIR: &str = "/network-source";

/// The Secret holding the generated JWT of a node without `jwtSecretRef`.
pub fn generated_jwt_secret_name(node: &str) -> String {
    format!("{node}-jwt")
}

/// The Secret holding the generated password of a validator's Prysm wallet (the wallet
/// on the validator volume that the keystores are imported into).
pub fn wallet_secret_name(node: &str) -> String {
    format!("{node}-wallet")
}

/// The key of the wallet password in [`wallet_secret_name`].
pub const WALLET_PASSWORD_FIELD: &str = "password";

/// Where the wallet password Secret is mounted.
pub const WALLET_PASSWORD_DIR: &str = "/wallet-password";

/// The generated wallet password Secret: created once, immutable, owned by the node.
/// Prysm refuses weak wallet passwords (at least 8 characters with a letter, a digit and
/// a symbol), so `password` is random hex plus one of each.
pub fn desired_wallet_secret(node: &EthereumNode, password: String) -> Result<Secret, RenderError> {
    Ok(Secret {
        metadata: meta(node, wallet_secret_name(&node.name_any()))?,
        immutable: Some(true),
        type_: Some("Opaque".to_string()),
        string_data: Some(BTreeMap::from([(
            WALLET_PASSWORD_FIELD.to_string(),
            password,
        )])),
        ..Secret::default()
    })
}

/// The Secret name and key of the JWT a node uses.
pub fn jwt_secret(node: &EthereumNode) -> (String, String) {
    match &node.spec.jwt_secret_ref {
        Some(r) => (r.name.clone(), r.key.clone()),
        None => (
            generated_jwt_secret_name(&node.name_any()),
            JWT_FIELD.to_string(),
        ),
    }
}

/// The headless Service (the pods' DNS subdomain).
pub fn headless_service_name(node: &str) -> String {
    node.to_string()
}

/// The ClusterIP Service for JSON-RPC and the beacon API (Ready pods only).
pub fn rpc_service_name(node: &str) -> String {
    format!("{node}-rpc")
}

/// The P2P Service of the (single) replica.
pub fn p2p_service_name(node: &str) -> String {
    format!("{node}-p2p")
}

/// The labels of every child of an `EthereumNode`.
pub fn labels(node: &EthereumNode) -> BTreeMap<String, String> {
    let name = node.name_any();
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "ethereum-node".to_string(),
        ),
        ("app.kubernetes.io/instance".to_string(), name.clone()),
        (
            "app.kubernetes.io/component".to_string(),
            node.spec.node_type.as_str().to_string(),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            MANAGED_BY.to_string(),
        ),
        (
            "app.kubernetes.io/part-of".to_string(),
            node.spec.network.as_str().to_string(),
        ),
        (LABEL_ETHEREUM_NODE.to_string(), name),
    ])
}

fn selector(node: &EthereumNode) -> BTreeMap<String, String> {
    BTreeMap::from([(LABEL_ETHEREUM_NODE.to_string(), node.name_any())])
}

fn owner(node: &EthereumNode) -> Vec<OwnerReference> {
    node.controller_owner_ref(&()).into_iter().collect()
}

fn meta(node: &EthereumNode, name: String) -> Result<ObjectMeta, RenderError> {
    let namespace = node.namespace().ok_or_else(|| RenderError::NoNamespace {
        kind: "EthereumNode",
        name: node.name_any(),
    })?;
    Ok(ObjectMeta {
        name: Some(name),
        namespace: Some(namespace),
        labels: Some(labels(node)),
        owner_references: Some(owner(node)),
        ..ObjectMeta::default()
    })
}

/// The generated JWT Secret: created once, immutable, owned by the node (deleted with
/// it). `jwt_hex` is 64 hex digits from a CSPRNG.
pub fn desired_jwt_secret(node: &EthereumNode, jwt_hex: String) -> Result<Secret, RenderError> {
    Ok(Secret {
        metadata: meta(node, generated_jwt_secret_name(&node.name_any()))?,
        immutable: Some(true),
        type_: Some("Opaque".to_string()),
        string_data: Some(BTreeMap::from([(JWT_FIELD.to_string(), jwt_hex)])),
        ..Secret::default()
    })
}

/// The execution client's image.
pub fn execution_image(node: &EthereumNode) -> String {
    node.spec.execution.image.clone().unwrap_or_else(|| {
        match node.spec.execution.client {
            ExecutionClient::Geth => DEFAULT_GETH_IMAGE,
            ExecutionClient::Besu => DEFAULT_BESU_IMAGE,
        }
        .to_string()
    })
}

/// The beacon node's image.
pub fn consensus_image(node: &EthereumNode) -> String {
    node.spec.consensus.image.clone().unwrap_or_else(|| {
        match node.spec.consensus.client {
            ConsensusClient::Prysm => DEFAULT_PRYSM_BEACON_IMAGE,
            ConsensusClient::Teku => DEFAULT_TEKU_IMAGE,
            ConsensusClient::Lighthouse => DEFAULT_LIGHTHOUSE_IMAGE,
        }
        .to_string()
    })
}

/// The validator client's image (Prysm's validator).
pub fn validator_image(node: &EthereumNode) -> Option<String> {
    let v = node.spec.validator.as_ref()?;
    Some(
        v.image
            .clone()
            .unwrap_or_else(|| DEFAULT_PRYSM_VALIDATOR_IMAGE.to_string()),
    )
}

/// The address each client advertises to peers: a literal, or `$(VAR)` of the pod's
/// environment (expanded by the kubelet).
fn advertised_address(node: &EthereumNode, facts: &Facts) -> String {
    match node.spec.p2p_service.as_ref().map(|p| p.service_type) {
        Some(P2pServiceType::NodePort) => "$(NODE_IP)".to_string(),
        Some(P2pServiceType::LoadBalancer) => facts
            .advertised_ip
            .clone()
            .unwrap_or_else(|| "$(POD_IP)".to_string()),
        _ => "$(POD_IP)".to_string(),
    }
}

/// The clients' P2P ports.
pub fn p2p_ports(node: &EthereumNode) -> (i32, i32) {
    match &node.spec.p2p_service {
        Some(p) => (p.execution_port, p.consensus_port),
        None => (
            besu_operator_api::default_execution_p2p_port(),
            besu_operator_api::default_consensus_p2p_port(),
        ),
    }
}

fn is_archive(node: &EthereumNode) -> bool {
    node.spec.node_type == EthereumNodeType::Archive
}

fn is_gateway(node: &EthereumNode) -> bool {
    node.spec.node_type == EthereumNodeType::Gateway
}

/// The checkpoint sync URL in effect: the spec's (empty means none), else the public
/// network's default.
pub fn checkpoint_sync_url(node: &EthereumNode) -> Option<String> {
    match &node.spec.consensus.checkpoint_sync_url {
        Some(u) if u.is_empty() => None,
        Some(u) => Some(u.clone()),
        None => node
            .spec
            .network
            .default_checkpoint_sync_url()
            .map(str::to_string),
    }
}

/// Geth's or Besu's arguments.
pub fn execution_args(node: &EthereumNode, facts: &Facts) -> Vec<String> {
    let spec = &node.spec;
    let (p2p, _) = p2p_ports(node);
    let jwt = format!("{JWT_DIR}/{JWT_FIELD}");
    let addr = advertised_address(node, facts);
    let mut a: Vec<String> = Vec::new();
    match spec.execution.client {
        ExecutionClient::Geth => {
            a.push(format!("--datadir={EXECUTION_DATA}"));
            match spec.network {
                EthereumNetwork::Custom => {
                    if let Some(c) = &spec.custom_network {
                        a.push(format!("--networkid={}", c.chain_id));
                    }
                    // Geth dials the mainnet bootnodes when given none; a custom network's
                    // peers are the ConfigMap's, or nobody.
                    a.push(format!("--bootnodes={}", facts.bootnodes.join(",")));
                    a.push("--discovery.dns=".to_string());
                }
                n => a.push(format!("--{}", n.as_str())),
            }
            if is_archive(node) {
                a.push("--syncmode=full".to_string());
                a.push("--gcmode=archive".to_string());
            } else if spec.network == EthereumNetwork::Custom {
                // A private network is small and may have no peer serving snap sync.
                a.push("--syncmode=full".to_string());
            } else {
                a.push("--syncmode=snap".to_string());
            }
            let apis = if is_gateway(node) {
                "eth,net,web3,txpool"
            } else {
                "eth,net,web3"
            };
            a.extend([
                "--http".to_string(),
                "--http.addr=0.0.0.0".to_string(),
                format!("--http.port={EXECUTION_HTTP_PORT}"),
                "--http.vhosts=*".to_string(),
                format!("--http.api={apis}"),
                "--ws".to_string(),
                "--ws.addr=0.0.0.0".to_string(),
                format!("--ws.port={EXECUTION_WS_PORT}"),
                format!("--ws.api={apis}"),
                "--authrpc.addr=127.0.0.1".to_string(),
                format!("--authrpc.port={ENGINE_PORT}"),
                "--authrpc.vhosts=localhost,127.0.0.1".to_string(),
                format!("--authrpc.jwtsecret={jwt}"),
                format!("--port={p2p}"),
                format!("--discovery.port={p2p}"),
                format!("--nat=extip:{addr}"),
                "--metrics".to_string(),
                "--metrics.addr=0.0.0.0".to_string(),
                format!("--metrics.port={EXECUTION_METRICS_PORT}"),
            ]);
            if is_gateway(node) {
                a.extend([
                    "--rpc.batch-request-limit=1000".to_string(),
                    "--rpc.batch-response-max-size=100000000".to_string(),
                    "--http.rpcprefix=/".to_string(),
                ]);
            }
        }
        ExecutionClient::Besu => {
            a.push(format!("--data-path={EXECUTION_DATA}"));
            match spec.network {
                EthereumNetwork::Custom => {
                    a.push(format!("--genesis-file={NETWORK_DIR}/genesis.json"));
                    if let Some(c) = &spec.custom_network {
                        a.push(format!("--network-id={}", c.chain_id));
                    }
                    a.push(format!("--bootnodes={}", facts.bootnodes.join(",")));
                }
                n => a.push(format!("--network={}", n.as_str())),
            }
            if is_archive(node) {
                a.push("--sync-mode=FULL".to_string());
                a.push("--data-storage-format=FOREST".to_string());
            } else {
                a.push("--sync-mode=SNAP".to_string());
                a.push("--data-storage-format=BONSAI".to_string());
            }
            let apis = if is_gateway(node) {
                "ETH,NET,WEB3,TXPOOL"
            } else {
                "ETH,NET,WEB3"
            };
            a.extend([
                "--rpc-http-enabled=true".to_string(),
                "--rpc-http-host=0.0.0.0".to_string(),
                format!("--rpc-http-port={EXECUTION_HTTP_PORT}"),
                format!("--rpc-http-api={apis}"),
                "--rpc-ws-enabled=true".to_string(),
                "--rpc-ws-host=0.0.0.0".to_string(),
                format!("--rpc-ws-port={EXECUTION_WS_PORT}"),
                "--host-allowlist=*".to_string(),
                "--engine-rpc-enabled=true".to_string(),
                format!("--engine-rpc-port={ENGINE_PORT}"),
                "--engine-host-allowlist=localhost,127.0.0.1".to_string(),
                format!("--engine-jwt-secret={jwt}"),
                format!("--p2p-port={p2p}"),
                format!("--p2p-host={addr}"),
                "--nat-method=NONE".to_string(),
                "--metrics-enabled=true".to_string(),
                "--metrics-host=0.0.0.0".to_string(),
                format!("--metrics-port={EXECUTION_METRICS_PORT}"),
            ]);
            if is_gateway(node) {
                a.push("--rpc-http-max-active-connections=400".to_string());
                a.push("--rpc-http-max-batch-size=1000".to_string());
            }
        }
    }
    a.extend(spec.execution.extra_args.iter().cloned());
    a
}

/// The beacon node's arguments.
pub fn consensus_args(node: &EthereumNode, facts: &Facts) -> Vec<String> {
    let spec = &node.spec;
    let (_, p2p) = p2p_ports(node);
    let jwt = format!("{JWT_DIR}/{JWT_FIELD}");
    let engine = format!("http://127.0.0.1:{ENGINE_PORT}");
    let addr = advertised_address(node, facts);
    let checkpoint = checkpoint_sync_url(node);
    let custom = spec.network == EthereumNetwork::Custom;
    let mev = spec
        .validator
        .as_ref()
        .and_then(|v| v.mev_boost.as_ref())
        .is_some();
    let mut a: Vec<String> = Vec::new();
    match spec.consensus.client {
        ConsensusClient::Prysm => {
            a.push("--accept-terms-of-use".to_string());
            a.push(format!("--datadir={CONSENSUS_DATA}"));
            if custom {
                a.push(format!("--chain-config-file={NETWORK_DIR}/config.yaml"));
                a.push(format!("--genesis-state={NETWORK_DIR}/genesis.ssz"));
                // The network's first node has nobody to sync from; a node given peers
                // waits for one (with 0 it would stop syncing at its checkpoint).
                let peers = if facts.bootstrap_nodes.is_empty() {
                    0
                } else {
                    1
                };
                a.push(format!("--min-sync-peers={peers}"));
                // A devnet has too few nodes to spread PeerDAS data columns over: this
                // node keeps every column.
                a.push("--supernode".to_string());
                for b in &facts.bootstrap_nodes {
                    a.push(format!("--bootstrap-node={b}"));
                }
            } else {
                a.push(format!("--{}", spec.network.as_str()));
            }
            if let Some(url) = &checkpoint {
                a.push(format!("--checkpoint-sync-url={url}"));
                a.push(format!("--genesis-beacon-api-url={url}"));
            }
            a.extend([
                format!("--execution-endpoint={engine}"),
                format!("--jwt-secret={jwt}"),
                "--http-host=0.0.0.0".to_string(),
                format!("--http-port={BEACON_HTTP_PORT}"),
                "--rpc-host=127.0.0.1".to_string(),
                format!("--rpc-port={BEACON_GRPC_PORT}"),
                format!("--p2p-tcp-port={p2p}"),
                format!("--p2p-udp-port={p2p}"),
                format!("--p2p-host-ip={addr}"),
                // The P2P identity persists on the volume: peers know it across restarts.
                "--p2p-static-id".to_string(),
                // Prysm 7.1's QUIC transport (quic-go before 0.57.1) panics when built
                // with Go 1.26 (quic-go#5572); TCP carries the same protocols.
                "--disable-quic".to_string(),
                "--monitoring-host=0.0.0.0".to_string(),
                format!("--monitoring-port={BEACON_METRICS_PORT}"),
            ]);
            if is_archive(node) {
                a.push("--slots-per-archive-point=32".to_string());
            }
            if mev {
                a.push(format!(
                    "--http-mev-relay=http://127.0.0.1:{MEV_BOOST_PORT}"
                ));
            }
        }
        ConsensusClient::Teku => {
            if custom {
                a.push(format!("--network={NETWORK_DIR}/config.yaml"));
                a.push(format!("--initial-state={NETWORK_DIR}/genesis.ssz"));
                if !facts.bootstrap_nodes.is_empty() {
                    a.push(format!(
                        "--p2p-discovery-bootnodes={}",
                        facts.bootstrap_nodes.join(",")
                    ));
                }
            } else {
                a.push(format!("--network={}", spec.network.as_str()));
            }
            if let Some(url) = &checkpoint {
                a.push(format!("--checkpoint-sync-url={url}"));
            }
            a.extend([
                format!("--data-path={CONSENSUS_DATA}"),
                format!("--ee-endpoint={engine}"),
                format!("--ee-jwt-secret-file={jwt}"),
                "--rest-api-enabled=true".to_string(),
                "--rest-api-interface=0.0.0.0".to_string(),
                format!("--rest-api-port={BEACON_HTTP_PORT}"),
                "--rest-api-host-allowlist=*".to_string(),
                format!("--p2p-port={p2p}"),
                format!("--p2p-advertised-ip={addr}"),
                "--metrics-enabled=true".to_string(),
                "--metrics-interface=0.0.0.0".to_string(),
                format!("--metrics-port={BEACON_METRICS_PORT}"),
                "--metrics-host-allowlist=*".to_string(),
            ]);
            a.push(format!(
                "--data-storage-mode={}",
                if is_archive(node) { "archive" } else { "prune" }
            ));
            if mev {
                a.push(format!(
                    "--builder-endpoint=http://127.0.0.1:{MEV_BOOST_PORT}"
                ));
            }
        }
        ConsensusClient::Lighthouse => {
            a.push("bn".to_string());
            a.push(format!("--datadir={CONSENSUS_DATA}"));
            if custom {
                a.push(format!("--testnet-dir={NETWORK_DIR}"));
                if !facts.bootstrap_nodes.is_empty() {
                    a.push(format!("--boot-nodes={}", facts.bootstrap_nodes.join(",")));
                }
            } else {
                a.push(format!("--network={}", spec.network.as_str()));
            }
            if let Some(url) = &checkpoint {
                a.push(format!("--checkpoint-sync-url={url}"));
            }
            a.extend([
                format!("--execution-endpoint={engine}"),
                format!("--execution-jwt={jwt}"),
                "--http".to_string(),
                "--http-address=0.0.0.0".to_string(),
                format!("--http-port={BEACON_HTTP_PORT}"),
                format!("--port={p2p}"),
                format!("--enr-address={addr}"),
                "--metrics".to_string(),
                "--metrics-address=0.0.0.0".to_string(),
                format!("--metrics-port={BEACON_METRICS_PORT}"),
            ]);
            if is_archive(node) {
                a.push("--reconstruct-historic-states".to_string());
            }
            if mev {
                a.push(format!("--builder=http://127.0.0.1:{MEV_BOOST_PORT}"));
            }
        }
    }
    a.extend(spec.consensus.extra_args.iter().cloned());
    a
}

fn prysm_network_flags(node: &EthereumNode) -> Vec<String> {
    match node.spec.network {
        EthereumNetwork::Custom => vec![format!("--chain-config-file={NETWORK_DIR}/config.yaml")],
        n => vec![format!("--{}", n.as_str())],
    }
}

/// The validator wallet's directory on the validator volume.
pub fn wallet_dir() -> String {
    format!("{VALIDATOR_DATA}/wallet")
}

/// The init container's arguments: imports the keystores of the Secret into the wallet
/// on the validator volume (Prysm's `validator accounts import`, which skips keys already
/// in the wallet), with the generated wallet password. The keys directory is the Secret
/// volume's `..data`: the kubelet's directory of the Secret's files themselves, without
/// the volume's own symlinks, which Prysm would try to read as keystores (files that are
/// not keystore JSON, such as `password`, Prysm skips).
pub fn import_args(node: &EthereumNode) -> Vec<String> {
    let mut a = vec![
        "accounts".to_string(),
        "import".to_string(),
        "--accept-terms-of-use".to_string(),
        format!("--keys-dir={KEYSTORE_DIR}/..data"),
        format!("--wallet-dir={}", wallet_dir()),
        format!("--wallet-password-file={WALLET_PASSWORD_DIR}/{WALLET_PASSWORD_FIELD}"),
        format!("--account-password-file={KEYSTORE_DIR}/password"),
    ];
    // `accounts import` takes the public networks' flags but not --chain-config-file
    // (Prysm 7.1 refuses it); the import does not depend on the chain.
    if node.spec.network != EthereumNetwork::Custom {
        a.extend(prysm_network_flags(node));
    }
    a
}

/// The validator client's arguments.
pub fn validator_args(node: &EthereumNode) -> Vec<String> {
    let Some(v) = node.spec.validator.as_ref() else {
        return Vec::new();
    };
    let mut a = vec![
        "--accept-terms-of-use".to_string(),
        format!("--datadir={VALIDATOR_DATA}"),
        format!("--wallet-dir={}", wallet_dir()),
        format!("--wallet-password-file={WALLET_PASSWORD_DIR}/{WALLET_PASSWORD_FIELD}"),
        format!("--beacon-rpc-provider=127.0.0.1:{BEACON_GRPC_PORT}"),
        format!("--suggested-fee-recipient={}", v.fee_recipient),
        "--monitoring-host=0.0.0.0".to_string(),
        format!("--monitoring-port={VALIDATOR_METRICS_PORT}"),
    ];
    a.extend(prysm_network_flags(node));
    if let Some(g) = &v.graffiti {
        a.push(format!("--graffiti={g}"));
    }
    if v.doppelganger_protection {
        a.push("--enable-doppelganger".to_string());
    }
    if v.mev_boost.is_some() {
        a.push("--enable-builder".to_string());
    }
    a.extend(v.extra_args.iter().cloned());
    a
}

/// MEV-boost's arguments.
pub fn mev_boost_args(node: &EthereumNode) -> Vec<String> {
    let Some(m) = node
        .spec
        .validator
        .as_ref()
        .and_then(|v| v.mev_boost.as_ref())
    else {
        return Vec::new();
    };
    vec![
        format!("-addr=0.0.0.0:{MEV_BOOST_PORT}"),
        format!("-{}", node.spec.network.as_str()),
        "-relay-check".to_string(),
        format!("-relays={}", m.relays.join(",")),
    ]
}

fn gi(q: &str) -> Quantity {
    Quantity(q.to_string())
}

fn resources(cpu: &str, memory: &str, limit: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), gi(cpu)),
            ("memory".to_string(), gi(memory)),
        ])),
        limits: Some(BTreeMap::from([("memory".to_string(), gi(limit))])),
        ..ResourceRequirements::default()
    }
}

/// Which volume of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Volume3 {
    /// The execution client's.
    Execution,
    /// The consensus client's.
    Consensus,
    /// The validator client's.
    Validator,
}

/// The default size of a volume for the node's network and type.
pub fn default_storage_size(node: &EthereumNode, which: Volume3) -> &'static str {
    let archive = is_archive(node);
    match (which, node.spec.network) {
        (Volume3::Validator, _) => "1Gi",
        (_, EthereumNetwork::Custom) => "20Gi",
        (Volume3::Execution, EthereumNetwork::Mainnet) => {
            if archive {
                "4Ti"
            } else {
                "2Ti"
            }
        }
        (Volume3::Execution, EthereumNetwork::Sepolia | EthereumNetwork::Holesky) => {
            if archive {
                "2Ti"
            } else {
                "1Ti"
            }
        }
        (Volume3::Execution, EthereumNetwork::Hoodi) => {
            if archive {
                "1Ti"
            } else {
                "300Gi"
            }
        }
        (Volume3::Consensus, EthereumNetwork::Mainnet) => {
            if archive {
                "2Ti"
            } else {
                "300Gi"
            }
        }
        (Volume3::Consensus, _) => {
            if archive {
                "1Ti"
            } else {
                "150Gi"
            }
        }
    }
}

fn default_resources(node: &EthereumNode, which: Volume3) -> ResourceRequirements {
    let custom = node.spec.network == EthereumNetwork::Custom;
    match which {
        Volume3::Validator => resources("100m", "256Mi", "1Gi"),
        _ if custom => resources("250m", "1Gi", "2Gi"),
        Volume3::Execution if is_archive(node) => resources("4", "16Gi", "32Gi"),
        _ => resources("2", "8Gi", "16Gi"),
    }
}

/// The volume claim template of one client's volume.
fn claim_template(
    node: &EthereumNode,
    which: Volume3,
    storage: &besu_operator_api::ClientStorage,
) -> PersistentVolumeClaim {
    let name = volume_name(which);
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels(node)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(
                        storage
                            .size
                            .clone()
                            .unwrap_or_else(|| default_storage_size(node, which).to_string()),
                    ),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// The volume (and claim template) name of a client's data.
pub fn volume_name(which: Volume3) -> &'static str {
    match which {
        Volume3::Execution => "execution",
        Volume3::Consensus => "consensus",
        Volume3::Validator => "validator",
    }
}

/// The claim a replica's volume gets from the StatefulSet: `<volume>-<node>-<ordinal>`.
pub fn claim_name(node: &str, which: Volume3, ordinal: u32) -> String {
    format!("{}-{node}-{ordinal}", volume_name(which))
}

/// The claim of the replica `pod`'s volume (`<volume>-<pod>`).
pub fn replica_claim_name(which: Volume3, pod: &str) -> String {
    format!("{}-{pod}", volume_name(which))
}

/// A replica's claim made before its pod, so that the StatefulSet uses it instead of an
/// empty one: its template's, starting from the VolumeSnapshot `snapshot`.
pub fn seeded_claim(
    node: &EthereumNode,
    which: Volume3,
    ordinal: i32,
    snapshot: &str,
) -> PersistentVolumeClaim {
    let storage = match which {
        Volume3::Execution => &node.spec.execution.storage,
        Volume3::Consensus => &node.spec.consensus.storage,
        Volume3::Validator => node
            .spec
            .validator
            .as_ref()
            .map(|v| &v.storage)
            .unwrap_or(&node.spec.execution.storage),
    };
    let mut claim = claim_template(node, which, storage);
    claim.metadata.name = Some(replica_claim_name(
        which,
        &format!("{}-{ordinal}", node.name_any()),
    ));
    claim.metadata.namespace = node.namespace();
    if let Some(spec) = claim.spec.as_mut() {
        spec.data_source = Some(TypedLocalObjectReference {
            api_group: Some("snapshot.storage.k8s.io".to_string()),
            kind: "VolumeSnapshot".to_string(),
            name: snapshot.to_string(),
        });
    }
    claim
}

/// The files that hold a client's P2P identity, under its data directory (each client's
/// default when no key is given): Geth `geth/nodekey` (go-ethereum node/config.go), Besu
/// `key`, Prysm `network-keys` (with `--p2p-static-id`; beacon-chain/p2p/utils.go), Teku
/// `beacon/kvstore/generated-node-key.dat`, Lighthouse `beacon/network/key` and its
/// `enr.dat`.
pub fn identity_files(which: Volume3, node: &EthereumNode) -> Vec<&'static str> {
    match which {
        Volume3::Execution => match node.spec.execution.client {
            ExecutionClient::Geth => vec!["geth/nodekey"],
            ExecutionClient::Besu => vec!["key"],
        },
        Volume3::Consensus => match node.spec.consensus.client {
            ConsensusClient::Prysm => vec!["network-keys"],
            ConsensusClient::Teku => vec!["beacon/kvstore/generated-node-key.dat"],
            ConsensusClient::Lighthouse => vec!["beacon/network/key", "beacon/network/enr.dat"],
        },
        Volume3::Validator => Vec::new(),
    }
}

fn tcp_probe(port: i32, period: i32, failures: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(port),
            ..TCPSocketAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// The beacon API path whose 200 means "synced": 503 while syncing or not initialised
/// (the standard Beacon API's `syncing_status` override).
pub const BEACON_READY_PATH: &str = "/eth/v1/node/health?syncing_status=503";

fn beacon_readiness() -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(BEACON_READY_PATH.to_string()),
            port: IntOrString::Int(BEACON_HTTP_PORT),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        timeout_seconds: Some(5),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// Up to an hour to open a large database after an unclean stop, before liveness counts.
fn startup_probe(port: i32) -> Probe {
    tcp_probe(port, 10, 360)
}

fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(CLIENT_UID),
        run_as_group: Some(CLIENT_UID),
        fs_group: Some(CLIENT_UID),
        fs_group_change_policy: Some("OnRootMismatch".to_string()),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn address_env() -> Vec<EnvVar> {
    vec![
        field_env("POD_IP", "status.podIP"),
        field_env("NODE_IP", "status.hostIP"),
    ]
}

/// The operator's image, which runs the pods' own init steps.
fn operator_image(facts: &Facts) -> String {
    facts.operator_image.clone().unwrap_or_else(|| {
        format!(
            "ghcr.io/nodeops/besu-operator:{}",
            env!("CARGO_PKG_VERSION")
        )
    })
}

/// The StatefulSet: `spec.replicas` pods, each with the clients and their volumes.
pub fn desired_statefulset(node: &EthereumNode, facts: &Facts) -> Result<StatefulSet, RenderError> {
    let spec = &node.spec;
    let name = node.name_any();
    let metadata = meta(node, name.clone())?;
    let custom = spec.network == EthereumNetwork::Custom;
    let (exec_p2p, cons_p2p) = p2p_ports(node);
    let (jwt_name, jwt_key) = jwt_secret(node);

    let mut volumes = vec![
        Volume {
            name: "jwt".to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(jwt_name),
                items: Some(vec![KeyToPath {
                    key: jwt_key,
                    path: JWT_FIELD.to_string(),
                    mode: Some(0o440),
                    ..KeyToPath::default()
                }]),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".to_string(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    let unpack = custom && facts.compressed_network;
    if let (true, Some(c)) = (custom, &spec.custom_network) {
        let config_map = Some(ConfigMapVolumeSource {
            name: c.config_map_name.clone(),
            ..ConfigMapVolumeSource::default()
        });
        if unpack {
            volumes.push(Volume {
                name: "network-source".to_string(),
                config_map,
                ..Volume::default()
            });
            volumes.push(Volume {
                name: "network".to_string(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            });
        } else {
            volumes.push(Volume {
                name: "network".to_string(),
                config_map,
                ..Volume::default()
            });
        }
    }
    if let Some(v) = &spec.validator {
        volumes.push(Volume {
            name: "wallet-password".to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(wallet_secret_name(&name)),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        volumes.push(Volume {
            name: "keystores".to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(v.keystore_secret_name.clone()),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }

    let network_mount = || mount("network", NETWORK_DIR, true);
    let mut exec_mounts = vec![
        mount(volume_name(Volume3::Execution), EXECUTION_DATA, false),
        mount("jwt", JWT_DIR, true),
        mount("tmp", "/tmp", false),
    ];
    let mut cons_mounts = vec![
        mount(volume_name(Volume3::Consensus), CONSENSUS_DATA, false),
        mount("jwt", JWT_DIR, true),
        mount("tmp", "/tmp", false),
    ];
    if custom {
        exec_mounts.push(network_mount());
        cons_mounts.push(network_mount());
    }

    let mut init_containers = Vec::new();
    if spec.backup.is_some() || spec.restore.is_some() {
        // A replica may start from a copy of another's volumes (a backup seeding a new
        // replica, a restore): it must not come up under the other's P2P identity.
        let mut args = vec![
            "data-identity".to_string(),
            "--owner=$(POD_NAMESPACE)/$(POD_NAME)".to_string(),
            format!("--volume={EXECUTION_DATA}"),
            format!("--volume={CONSENSUS_DATA}"),
        ];
        for (which, dir) in [
            (Volume3::Execution, EXECUTION_DATA),
            (Volume3::Consensus, CONSENSUS_DATA),
        ] {
            for f in identity_files(which, node) {
                args.push(format!("--forget={dir}/{f}"));
            }
        }
        init_containers.push(Container {
            name: "data-identity".to_string(),
            image: Some(operator_image(facts)),
            args: Some(args),
            env: Some(vec![
                field_env("POD_NAME", "metadata.name"),
                field_env("POD_NAMESPACE", "metadata.namespace"),
            ]),
            volume_mounts: Some(vec![
                mount(volume_name(Volume3::Execution), EXECUTION_DATA, false),
                mount(volume_name(Volume3::Consensus), CONSENSUS_DATA, false),
            ]),
            security_context: Some(container_security_context()),
            resources: Some(resources("10m", "32Mi", "64Mi")),
            ..Container::default()
        });
    }
    if unpack {
        init_containers.push(Container {
            name: "network-files".to_string(),
            image: Some(operator_image(facts)),
            args: Some(vec![
                "network-files".to_string(),
                format!("--from={NETWORK_SOURCE_DIR}"),
                format!("--to={NETWORK_DIR}"),
            ]),
            volume_mounts: Some(vec![
                mount("network-source", NETWORK_SOURCE_DIR, true),
                mount("network", NETWORK_DIR, false),
            ]),
            security_context: Some(container_security_context()),
            resources: Some(resources("10m", "32Mi", "256Mi")),
            ..Container::default()
        });
    }
    if custom && spec.execution.client == ExecutionClient::Geth {
        // Geth takes a custom genesis only through `geth init`; it is idempotent for the
        // same genesis and refuses a different one, so it runs before every start.
        init_containers.push(Container {
            name: "execution-init".to_string(),
            image: Some(execution_image(node)),
            args: Some(vec![
                "init".to_string(),
                format!("--datadir={EXECUTION_DATA}"),
                format!("{NETWORK_DIR}/genesis.json"),
            ]),
            volume_mounts: Some(exec_mounts.clone()),
            security_context: Some(container_security_context()),
            resources: Some(
                spec.execution
                    .resources
                    .clone()
                    .unwrap_or_else(|| default_resources(node, Volume3::Execution)),
            ),
            ..Container::default()
        });
    }

    let execution = Container {
        name: "execution".to_string(),
        image: Some(execution_image(node)),
        args: Some(execution_args(node, facts)),
        env: Some(address_env()),
        ports: Some(vec![
            port("http", EXECUTION_HTTP_PORT, "TCP"),
            port("ws", EXECUTION_WS_PORT, "TCP"),
            port("el-p2p-tcp", exec_p2p, "TCP"),
            port("el-p2p-udp", exec_p2p, "UDP"),
            port("el-metrics", EXECUTION_METRICS_PORT, "TCP"),
        ]),
        startup_probe: Some(startup_probe(EXECUTION_HTTP_PORT)),
        liveness_probe: Some(tcp_probe(EXECUTION_HTTP_PORT, 30, 10)),
        readiness_probe: Some(tcp_probe(EXECUTION_HTTP_PORT, 10, 3)),
        resources: Some(
            spec.execution
                .resources
                .clone()
                .unwrap_or_else(|| default_resources(node, Volume3::Execution)),
        ),
        volume_mounts: Some(exec_mounts),
        security_context: Some(container_security_context()),
        ..Container::default()
    };
    let consensus = Container {
        name: "consensus".to_string(),
        image: Some(consensus_image(node)),
        args: Some(consensus_args(node, facts)),
        env: Some(address_env()),
        ports: Some(vec![
            port("beacon-http", BEACON_HTTP_PORT, "TCP"),
            port("cl-p2p-tcp", cons_p2p, "TCP"),
            port("cl-p2p-udp", cons_p2p, "UDP"),
            port("cl-metrics", BEACON_METRICS_PORT, "TCP"),
        ]),
        startup_probe: Some(startup_probe(BEACON_HTTP_PORT)),
        liveness_probe: Some(tcp_probe(BEACON_HTTP_PORT, 30, 10)),
        readiness_probe: Some(beacon_readiness()),
        resources: Some(
            spec.consensus
                .resources
                .clone()
                .unwrap_or_else(|| default_resources(node, Volume3::Consensus)),
        ),
        volume_mounts: Some(cons_mounts),
        security_context: Some(container_security_context()),
        ..Container::default()
    };
    let mut containers = vec![execution, consensus];

    let mut claims = vec![
        claim_template(node, Volume3::Execution, &spec.execution.storage),
        claim_template(node, Volume3::Consensus, &spec.consensus.storage),
    ];
    if let (Some(v), Some(image)) = (&spec.validator, validator_image(node)) {
        claims.push(claim_template(node, Volume3::Validator, &v.storage));
        let mut mounts = vec![
            mount(volume_name(Volume3::Validator), VALIDATOR_DATA, false),
            mount("keystores", KEYSTORE_DIR, true),
            mount("wallet-password", WALLET_PASSWORD_DIR, true),
            mount("tmp", "/tmp", false),
        ];
        if custom {
            mounts.push(network_mount());
        }
        let res = v
            .resources
            .clone()
            .unwrap_or_else(|| default_resources(node, Volume3::Validator));
        init_containers.push(Container {
            name: "import-keys".to_string(),
            image: Some(image.clone()),
            args: Some(import_args(node)),
            volume_mounts: Some(mounts.clone()),
            security_context: Some(container_security_context()),
            resources: Some(res.clone()),
            ..Container::default()
        });
        containers.push(Container {
            name: "validator".to_string(),
            image: Some(image),
            args: Some(validator_args(node)),
            ports: Some(vec![port("vc-metrics", VALIDATOR_METRICS_PORT, "TCP")]),
            liveness_probe: Some(tcp_probe(VALIDATOR_METRICS_PORT, 30, 10)),
            resources: Some(res),
            volume_mounts: Some(mounts),
            security_context: Some(container_security_context()),
            ..Container::default()
        });
        if let Some(m) = &v.mev_boost {
            containers.push(Container {
                name: "mev-boost".to_string(),
                image: Some(
                    m.image
                        .clone()
                        .unwrap_or_else(|| DEFAULT_MEV_BOOST_IMAGE.to_string()),
                ),
                args: Some(mev_boost_args(node)),
                ports: Some(vec![port("mev-boost", MEV_BOOST_PORT, "TCP")]),
                liveness_probe: Some(tcp_probe(MEV_BOOST_PORT, 30, 10)),
                resources: Some(resources("50m", "64Mi", "256Mi")),
                security_context: Some(container_security_context()),
                ..Container::default()
            });
        }
    }

    let mut annotations = BTreeMap::new();
    if let Some(v) = &facts.network_version {
        annotations.insert(INPUTS_CHECKSUM_ANNOTATION.to_string(), v.clone());
    }
    let pod_labels = labels(node);
    Ok(StatefulSet {
        metadata,
        spec: StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(headless_service_name(&name)),
            selector: LabelSelector {
                match_labels: Some(selector(node)),
                ..LabelSelector::default()
            },
            // Replicas sync independently: one syncing for hours must not hold the
            // others' start. Rolling updates still replace one pod at a time.
            pod_management_policy: Some("Parallel".to_string()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".to_string()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    partition: Some(0),
                    ..RollingUpdateStatefulSetStrategy::default()
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: (!annotations.is_empty()).then_some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    init_containers: (!init_containers.is_empty()).then_some(init_containers),
                    containers,
                    volumes: Some(volumes),
                    security_context: Some(pod_security_context()),
                    enable_service_links: Some(false),
                    automount_service_account_token: Some(false),
                    termination_grace_period_seconds: Some(300),
                    node_selector: (!spec.node_selector.is_empty())
                        .then(|| spec.node_selector.clone()),
                    tolerations: (!spec.tolerations.is_empty()).then(|| spec.tolerations.clone()),
                    affinity: spec.affinity.clone(),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(claims),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    })
}

fn service_port(name: &str, port: i32, protocol: &str, node_port: Option<i32>) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port,
        target_port: Some(IntOrString::Int(port)),
        protocol: Some(protocol.to_string()),
        node_port,
        ..ServicePort::default()
    }
}

/// The headless Service: the pods' stable DNS names, published before they are Ready.
pub fn desired_headless_service(node: &EthereumNode) -> Result<Service, RenderError> {
    let (e, c) = p2p_ports(node);
    Ok(Service {
        metadata: meta(node, headless_service_name(&node.name_any()))?,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector(node)),
            ports: Some(vec![
                service_port("el-p2p-tcp", e, "TCP", None),
                service_port("el-p2p-udp", e, "UDP", None),
                service_port("cl-p2p-tcp", c, "TCP", None),
                service_port("cl-p2p-udp", c, "UDP", None),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// The ClusterIP Service for execution JSON-RPC, the beacon API and metrics (Ready pods).
pub fn desired_rpc_service(node: &EthereumNode) -> Result<Service, RenderError> {
    Ok(Service {
        metadata: meta(node, rpc_service_name(&node.name_any()))?,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            selector: Some(selector(node)),
            ports: Some(vec![
                service_port("http", EXECUTION_HTTP_PORT, "TCP", None),
                service_port("ws", EXECUTION_WS_PORT, "TCP", None),
                service_port("beacon-http", BEACON_HTTP_PORT, "TCP", None),
                service_port("el-metrics", EXECUTION_METRICS_PORT, "TCP", None),
                service_port("cl-metrics", BEACON_METRICS_PORT, "TCP", None),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// The P2P Service, for `p2pService` `LoadBalancer` or `NodePort` (one replica).
pub fn desired_p2p_service(node: &EthereumNode) -> Result<Option<Service>, RenderError> {
    let Some(p) = &node.spec.p2p_service else {
        return Ok(None);
    };
    let type_ = match p.service_type {
        P2pServiceType::None => return Ok(None),
        P2pServiceType::LoadBalancer => "LoadBalancer",
        P2pServiceType::NodePort => "NodePort",
    };
    let node_port = |port: i32| (p.service_type == P2pServiceType::NodePort).then_some(port);
    Ok(Some(Service {
        metadata: meta(node, p2p_service_name(&node.name_any()))?,
        spec: Some(ServiceSpec {
            type_: Some(type_.to_string()),
            // Peers must reach the pod while it syncs, before it is Ready.
            publish_not_ready_addresses: Some(true),
            external_traffic_policy: Some("Local".to_string()),
            selector: Some(selector(node)),
            ports: Some(vec![
                service_port(
                    "el-p2p-tcp",
                    p.execution_port,
                    "TCP",
                    node_port(p.execution_port),
                ),
                service_port(
                    "el-p2p-udp",
                    p.execution_port,
                    "UDP",
                    node_port(p.execution_port),
                ),
                service_port(
                    "cl-p2p-tcp",
                    p.consensus_port,
                    "TCP",
                    node_port(p.consensus_port),
                ),
                service_port(
                    "cl-p2p-udp",
                    p.consensus_port,
                    "UDP",
                    node_port(p.consensus_port),
                ),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }))
}

/// The gateway's Ingress to the execution JSON-RPC.
pub fn desired_ingress(node: &EthereumNode) -> Result<Option<Ingress>, RenderError> {
    let Some(i) = &node.spec.ingress else {
        return Ok(None);
    };
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: rpc_service_name(&node.name_any()),
            port: Some(ServiceBackendPort {
                number: Some(EXECUTION_HTTP_PORT),
                ..ServiceBackendPort::default()
            }),
        }),
        ..IngressBackend::default()
    };
    Ok(Some(Ingress {
        metadata: meta(node, node.name_any())?,
        spec: Some(IngressSpec {
            ingress_class_name: i.class_name.clone(),
            rules: Some(vec![IngressRule {
                host: Some(i.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".to_string()),
                        path_type: "Prefix".to_string(),
                        backend,
                    }],
                }),
            }]),
            tls: i.tls_secret_name.as_ref().map(|s| {
                vec![IngressTLS {
                    hosts: Some(vec![i.host.clone()]),
                    secret_name: Some(s.clone()),
                }]
            }),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    }))
}

/// How long an EthereumNode's head may stand still before `EthereumNodeHeadNotAdvancing`.
pub const HEAD_STALL_WINDOW: &str = "5m";
/// Slots behind the wall clock that count as "not synced".
pub const MAX_SYNC_DISTANCE: u64 = 2;

/// The EthereumNode alert rules, on the operator's `ethereum_node_*` series
/// (`manifests/monitoring/ethereum-node-rules.yaml`, tested by `promtool test rules`).
pub fn alert_rules() -> Vec<super::monitoring::AlertRule> {
    use super::monitoring::AlertRule;
    vec![
        AlertRule {
            name: "EthereumNodeHeadNotAdvancing",
            expr: format!("rate(ethereum_node_block_height[{HEAD_STALL_WINDOW}]) == 0"),
            for_: "5m",
            severity: "critical",
            summary: "EthereumNode {{ $labels.namespace }}/{{ $labels.name }} ({{ $labels.pod }}): the execution head has not advanced for 5 minutes",
        },
        AlertRule {
            name: "EthereumNodeNotSynced",
            expr: format!("ethereum_node_sync_distance > {MAX_SYNC_DISTANCE}"),
            for_: "30m",
            severity: "warning",
            summary: "EthereumNode {{ $labels.namespace }}/{{ $labels.name }} ({{ $labels.pod }}) is {{ $value }} slots behind and has not caught up for 30 minutes",
        },
        AlertRule {
            name: "EthereumNodeNoPeers",
            expr: "ethereum_node_peers == 0".to_string(),
            for_: "10m",
            severity: "warning",
            summary: "EthereumNode {{ $labels.namespace }}/{{ $labels.name }} ({{ $labels.pod }}): its {{ $labels.client }} client has had no peers for 10 minutes",
        },
        AlertRule {
            name: "EthereumNodeReconcileErrors",
            expr: "increase(ethereum_node_reconcile_errors_total[10m]) > 0".to_string(),
            for_: "10m",
            severity: "warning",
            summary: "The operator keeps failing to reconcile EthereumNode {{ $labels.namespace }}/{{ $labels.name }}",
        },
    ]
}

fn rule_groups() -> serde_json::Value {
    super::monitoring::rule_groups_of("ethereum-node", alert_rules())
}

/// The rules as a Prometheus rule file (`groups:`).
pub fn alert_rules_yaml() -> String {
    serde_yaml::to_string(&serde_json::json!({"groups": rule_groups()})).unwrap_or_default()
}

/// The rules as a Prometheus Operator `PrometheusRule`.
pub fn prometheus_rule_yaml() -> String {
    serde_yaml::to_string(&serde_json::json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "ethereum-node",
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/name": "ethereum-node"},
        },
        "spec": {"groups": rule_groups()},
    }))
    .unwrap_or_default()
}

/// A Grafana dashboard of every EthereumNode: heads, sync distance and peers per pod.
pub fn dashboard_json() -> String {
    let panel = |id: u32, title: &str, expr: &str, legend: &str, y: u32| {
        serde_json::json!({
            "id": id,
            "type": "timeseries",
            "title": title,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": 24, "x": 0, "y": y},
            "targets": [{"expr": expr, "legendFormat": legend, "refId": "A"}],
        })
    };
    let dashboard = serde_json::json!({
        "uid": "ethereum-node",
        "title": "Ethereum nodes",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]},
        "panels": [
            panel(1, "Execution head", "ethereum_node_block_height", "{{namespace}}/{{pod}}", 0),
            panel(2, "Blocks per minute", "60 * rate(ethereum_node_block_height[5m])", "{{namespace}}/{{pod}}", 8),
            panel(3, "Consensus sync distance (slots)", "ethereum_node_sync_distance", "{{namespace}}/{{pod}}", 16),
            panel(4, "Peers", "ethereum_node_peers", "{{namespace}}/{{pod}} {{client}}", 24),
        ],
    });
    serde_json::to_string_pretty(&dashboard).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use besu_operator_api::EthereumNodeSpec;

    fn node(yaml: &str) -> EthereumNode {
        let spec: EthereumNodeSpec = serde_yaml::from_str(yaml).expect("spec");
        let mut n = EthereumNode::new("eth", spec);
        n.metadata.namespace = Some("ns".to_string());
        n.metadata.uid = Some("uid-1".to_string());
        n
    }

    fn has(args: &[String], a: &str) -> bool {
        args.iter().any(|x| x == a)
    }

    #[test]
    fn sepolia_full_node_uses_the_public_network_and_its_checkpoint() {
        let n = node("network: sepolia\n");
        let f = Facts::default();
        let e = execution_args(&n, &f);
        assert!(has(&e, "--sepolia"), "{e:?}");
        assert!(has(&e, "--syncmode=snap"));
        assert!(has(&e, "--authrpc.jwtsecret=/jwt/jwt.hex"));
        assert!(has(&e, "--authrpc.addr=127.0.0.1"));
        assert!(has(&e, "--nat=extip:$(POD_IP)"));
        assert!(!e.iter().any(|a| a.starts_with("--bootnodes")), "{e:?}");
        let c = consensus_args(&n, &f);
        assert!(has(&c, "--sepolia"));
        assert!(has(
            &c,
            "--checkpoint-sync-url=https://sepolia.checkpoint.sigp.io"
        ));
        assert!(has(&c, "--jwt-secret=/jwt/jwt.hex"));
        assert!(has(&c, "--execution-endpoint=http://127.0.0.1:8551"));
        let sts = desired_statefulset(&n, &f).expect("sts");
        let pod = sts.spec.template.spec.clone().expect("pod");
        assert_eq!(pod.containers.len(), 2);
        assert!(
            pod.init_containers.is_none(),
            "public networks need no geth init"
        );
        let claims = sts.spec.volume_claim_templates.expect("claims");
        let size = |i: usize| {
            claims[i]
                .spec
                .as_ref()
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .map(|q| q.0.clone())
        };
        assert_eq!(size(0).as_deref(), Some("1Ti"));
        assert_eq!(size(1).as_deref(), Some("150Gi"));
    }

    #[test]
    fn checkpoint_sync_can_be_turned_off_and_custom_networks_have_none_by_default() {
        let off = node("network: mainnet\nconsensus: {checkpointSyncUrl: ''}\n");
        assert_eq!(checkpoint_sync_url(&off), None);
        let custom = node("network: custom\ncustomNetwork: {configMapName: dev, chainId: 32382}\n");
        assert_eq!(checkpoint_sync_url(&custom), None);
        let c = consensus_args(&custom, &Facts::default());
        assert!(
            !c.iter().any(|a| a.starts_with("--checkpoint-sync-url")),
            "{c:?}"
        );
    }

    #[test]
    fn custom_network_mounts_its_config_and_never_dials_public_bootnodes() {
        let n = node("network: custom\ncustomNetwork: {configMapName: dev, chainId: 32382}\n");
        let f = Facts {
            bootstrap_nodes: vec!["enr:-abc".to_string()],
            ..Facts::default()
        };
        let e = execution_args(&n, &f);
        assert!(has(&e, "--networkid=32382"));
        assert!(
            has(&e, "--bootnodes="),
            "geth must get an explicit empty list: {e:?}"
        );
        assert!(has(&e, "--discovery.dns="));
        let c = consensus_args(&n, &f);
        assert!(has(&c, "--chain-config-file=/network/config.yaml"));
        assert!(has(&c, "--genesis-state=/network/genesis.ssz"));
        assert!(has(&c, "--bootstrap-node=enr:-abc"));
        let sts = desired_statefulset(&n, &f).expect("sts");
        let pod = sts.spec.template.spec.expect("pod");
        let init = pod.init_containers.expect("geth init");
        assert_eq!(init[0].args.as_ref().map(|a| a[0].as_str()), Some("init"));
        assert!(
            pod.volumes
                .expect("volumes")
                .iter()
                .any(|v| v.config_map.as_ref().is_some_and(|c| c.name == "dev"))
        );
    }

    #[test]
    fn a_node_with_backups_forgets_a_copied_identity_first_and_seeds_claims_from_a_backup() {
        let f = Facts {
            operator_image: Some("op:1".to_string()),
            ..Facts::default()
        };
        let init = |n: &EthereumNode| {
            desired_statefulset(n, &f)
                .expect("sts")
                .spec
                .template
                .spec
                .and_then(|p| p.init_containers)
                .unwrap_or_default()
        };
        // Without backup or restore the pods are as before (no rollout on an upgrade).
        let plain = node("network: hoodi\n");
        assert!(init(&plain).iter().all(|c| c.name != "data-identity"));
        let n = node(
            "network: hoodi\nconsensus: {client: lighthouse, storage: {storageClassName: csi}}\nbackup: {schedule: '0 * * * *', volumeSnapshotClassName: csi}\n",
        );
        let first = init(&n).into_iter().next().expect("init");
        assert_eq!(first.name, "data-identity");
        assert_eq!(first.image.as_deref(), Some("op:1"));
        let args = first.args.expect("args");
        assert!(has(&args, "--owner=$(POD_NAMESPACE)/$(POD_NAME)"));
        assert!(has(&args, "--volume=/data/consensus"));
        assert!(has(&args, "--forget=/data/execution/geth/nodekey"));
        assert!(has(&args, "--forget=/data/consensus/beacon/network/key"));
        let claim = seeded_claim(&n, Volume3::Consensus, 2, "full-x-consensus");
        assert_eq!(claim.name_any(), format!("consensus-{}-2", n.name_any()));
        let spec = claim.spec.expect("spec");
        assert_eq!(spec.storage_class_name.as_deref(), Some("csi"));
        let source = spec.data_source.expect("dataSource");
        assert_eq!(
            (source.kind.as_str(), source.name.as_str()),
            ("VolumeSnapshot", "full-x-consensus")
        );
    }

    #[test]
    fn a_compressed_network_is_unpacked_by_the_operator_image_first() {
        let n = node("network: custom\ncustomNetwork: {configMapName: dev, chainId: 32382}\n");
        let f = Facts {
            compressed_network: true,
            operator_image: Some("op:1".to_string()),
            ..Facts::default()
        };
        let pod = desired_statefulset(&n, &f)
            .expect("sts")
            .spec
            .template
            .spec
            .expect("pod");
        let init = pod.init_containers.expect("init");
        assert_eq!(init[0].name, "network-files");
        assert_eq!(init[0].image.as_deref(), Some("op:1"));
        let vols = pod.volumes.expect("vols");
        let network = vols.iter().find(|v| v.name == "network").expect("network");
        assert!(network.empty_dir.is_some());
        let source = vols
            .iter()
            .find(|v| v.name == "network-source")
            .expect("source");
        assert_eq!(
            source.config_map.as_ref().map(|c| c.name.as_str()),
            Some("dev")
        );
        // The clients read the unpacked files where they would read the ConfigMap's.
        assert!(has(
            &consensus_args(&n, &f),
            "--genesis-state=/network/genesis.ssz"
        ));
    }

    #[test]
    fn validator_gets_a_wallet_volume_an_import_and_doppelganger_protection() {
        let n = node(
            "network: custom\ncustomNetwork: {configMapName: dev, chainId: 32382}\nnodeType: validator\nvalidator: {keystoreSecretName: keys, feeRecipient: '0x00000000000000000000000000000000000000aa', graffiti: hi}\n",
        );
        let sts = desired_statefulset(&n, &Facts::default()).expect("sts");
        let spec = sts.spec;
        let pod = spec.template.spec.expect("pod");
        let names: Vec<_> = pod.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["execution", "consensus", "validator"]);
        let init: Vec<_> = pod
            .init_containers
            .expect("init")
            .iter()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(init, ["execution-init", "import-keys"]);
        let v = validator_args(&n);
        assert!(has(&v, "--enable-doppelganger"));
        assert!(has(
            &v,
            "--suggested-fee-recipient=0x00000000000000000000000000000000000000aa"
        ));
        assert!(has(&v, "--graffiti=hi"));
        let claims: Vec<_> = spec
            .volume_claim_templates
            .expect("claims")
            .iter()
            .map(|c| c.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(claims, ["execution", "consensus", "validator"]);
    }

    #[test]
    fn every_container_is_locked_down() {
        let n = node(
            "network: mainnet\nnodeType: validator\nvalidator: {keystoreSecretName: keys, feeRecipient: '0x00000000000000000000000000000000000000aa', mevBoost: {relays: ['https://0x000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000@relay.example']}}\n",
        );
        let sts = desired_statefulset(&n, &Facts::default()).expect("sts");
        let pod = sts.spec.template.spec.expect("pod");
        let psc = pod.security_context.expect("psc");
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(
            psc.seccomp_profile.map(|s| s.type_).as_deref(),
            Some("RuntimeDefault")
        );
        for c in pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
        {
            let sc = c.security_context.as_ref().expect("sc");
            assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
            assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
            assert_eq!(
                sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
                Some(vec!["ALL".to_string()]),
                "{}",
                c.name
            );
        }
        assert_eq!(
            pod.containers.len(),
            4,
            "execution, consensus, validator, mev-boost"
        );
    }

    #[test]
    fn readiness_follows_sync_and_liveness_never_waits_on_it() {
        let n = node("network: hoodi\n");
        let sts = desired_statefulset(&n, &Facts::default()).expect("sts");
        let pod = sts.spec.template.spec.expect("pod");
        let cons = &pod.containers[1];
        let path = cons
            .readiness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone());
        assert_eq!(path.as_deref(), Some(BEACON_READY_PATH));
        for c in &pod.containers {
            let l = c.liveness_probe.as_ref().expect("liveness");
            assert!(
                l.tcp_socket.is_some() && l.http_get.is_none(),
                "{}: liveness must not depend on sync",
                c.name
            );
            assert!(
                c.startup_probe
                    .as_ref()
                    .is_some_and(|s| s.failure_threshold == Some(360))
            );
        }
    }

    #[test]
    fn node_port_advertises_the_node_address_on_the_node_ports() {
        let n = node(
            "network: mainnet\np2pService: {type: NodePort, executionPort: 30303, consensusPort: 30304}\n",
        );
        let f = Facts::default();
        assert!(has(&execution_args(&n, &f), "--nat=extip:$(NODE_IP)"));
        assert!(has(&consensus_args(&n, &f), "--p2p-host-ip=$(NODE_IP)"));
        let svc = desired_p2p_service(&n).expect("svc").expect("some");
        let ports = svc.spec.and_then(|s| s.ports).expect("ports");
        assert!(ports.iter().all(|p| p.node_port == Some(p.port)));
        let lb = node("network: mainnet\np2pService: {type: LoadBalancer}\n");
        let f = Facts {
            advertised_ip: Some("203.0.113.7".to_string()),
            ..Facts::default()
        };
        assert!(has(&execution_args(&lb, &f), "--nat=extip:203.0.113.7"));
    }

    #[test]
    fn archive_and_gateway_map_to_each_clients_flags() {
        let geth = node("network: mainnet\nnodeType: archive\n");
        let e = execution_args(&geth, &Facts::default());
        assert!(
            has(&e, "--gcmode=archive") && has(&e, "--syncmode=full"),
            "{e:?}"
        );
        assert!(has(
            &consensus_args(&geth, &Facts::default()),
            "--slots-per-archive-point=32"
        ));
        let besu = node(
            "network: mainnet\nnodeType: archive\nexecution: {client: besu}\nconsensus: {client: lighthouse}\n",
        );
        let e = execution_args(&besu, &Facts::default());
        assert!(
            has(&e, "--data-storage-format=FOREST") && has(&e, "--sync-mode=FULL"),
            "{e:?}"
        );
        assert!(has(&e, "--engine-jwt-secret=/jwt/jwt.hex"));
        let c = consensus_args(&besu, &Facts::default());
        assert_eq!(c[0], "bn");
        assert!(
            has(&c, "--reconstruct-historic-states") && has(&c, "--execution-jwt=/jwt/jwt.hex")
        );
        let teku = node("network: hoodi\nnodeType: gateway\nconsensus: {client: teku}\n");
        let c = consensus_args(&teku, &Facts::default());
        assert!(has(&c, "--network=hoodi") && has(&c, "--ee-jwt-secret-file=/jwt/jwt.hex"));
        assert!(has(
            &execution_args(&teku, &Facts::default()),
            "--http.api=eth,net,web3,txpool"
        ));
    }

    #[test]
    fn jwt_comes_from_the_reference_or_the_generated_secret() {
        let n = node("network: mainnet\n");
        assert_eq!(
            jwt_secret(&n),
            ("eth-jwt".to_string(), "jwt.hex".to_string())
        );
        let s = desired_jwt_secret(&n, "ab".repeat(32)).expect("secret");
        assert_eq!(s.immutable, Some(true));
        let given = node("network: mainnet\njwtSecretRef: {name: shared, key: token}\n");
        assert_eq!(
            jwt_secret(&given),
            ("shared".to_string(), "token".to_string())
        );
        let sts = desired_statefulset(&given, &Facts::default()).expect("sts");
        let vols = sts
            .spec
            .template
            .spec
            .and_then(|p| p.volumes)
            .expect("vols");
        let jwt = vols
            .iter()
            .find(|v| v.name == "jwt")
            .and_then(|v| v.secret.clone())
            .expect("jwt");
        assert_eq!(jwt.secret_name.as_deref(), Some("shared"));
        assert_eq!(jwt.items.expect("items")[0].key, "token");
    }
}
