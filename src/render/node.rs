//! `BesuNode` → StatefulSet, headless Service, RPC Service and node ConfigMap.
//!
//! The Besu container follows besu-facts §5: genesis, data path and node key from
//! mounted files; `--p2p-host` from the pod IP (Besu rejects host names there);
//! `--nat-method=NONE`; DNS enabled so that bootnode enodes may use Service names;
//! RPC and metrics on 0.0.0.0 with a host allowlist that lets kubelet probes in.
//!
//! Peering that survives restarts (review W1, R3, R4; hyperledger/besu 26.3.0):
//! - Enode host names carry no cluster domain (`<pod>.<service>.<namespace>.svc`): the
//!   pod's resolv.conf search list completes them on any cluster domain, and Besu
//!   resolves through the system resolver (`EnodeURLImpl.Builder.ipAddress`,
//!   `InetAddress.getByName`).
//! - `--Xdns-update-enabled=true` stays: with it a name that resolved at start is kept and
//!   resolved again on every dial (`EnodeURLImpl.getIp`), so a peer whose pod IP changed
//!   is followed. Without it every name is frozen to its start-time address, and any
//!   single unresolvable name (one validator's pod Pending after a node failure) makes
//!   every restarting node exit at start: one lost pod would stop the others restarting.
//!   The cost of keeping it, a name unresolvable at start silently becoming 127.0.0.1
//!   (`Builder.ipAddress` catch branch), is bounded by the next two points.
//! - Static nodes: every node keeps maintained connections to every bootnode and
//!   validator (`--static-nodes-file`, `StaticNodesParser`; dialled through
//!   `enode.getIp()` on every attempt, `NettyConnectionInitializer`, and re-checked
//!   every `--Xp2p-check-maintained-connections-frequency`). Bootnodes alone are dialled
//!   at the address discv4 froze at start (`PeerDiscoveryAgentV4`, `Endpoint.fromEnode`),
//!   so they cannot carry a restarted network. A peer that was unresolvable when this
//!   node started still dials this node when it starts itself (it has it in its own list).
//! - The operator heals a node left with no peer: it calls `admin_addPeer` with the
//!   stable enode URLs (`AdminAddPeer` parses them with the node's DNS configuration and
//!   adds maintained peers), so no peering depends on a name resolving at the instant a
//!   process started.
//! - Readiness requires one peer (`ReadinessCheck`, minPeers) except on a node that has
//!   nobody to peer with yet: a network's first bootnode, or a node given no bootnodes
//!   and no static nodes. An isolated validator is then not Ready, and the validator PDB
//!   counts it as unavailable.
//!
//! Memory (review R1, R2): Besu's start script adds no heap size and no
//! `-XX:+ExitOnOutOfMemoryError` (`build.gradle` default JVM options), so the operator
//! sets `BESU_OPTS` (read by the start script) with a heap derived from the container's
//! memory limit ([`heap_mib`]) and exit on OOM, so that a node that ran out of heap is
//! restarted by the kubelet instead of lingering with `/liveness` UP.

use std::collections::BTreeMap;

use besu_operator_api::{BesuNode, DeletionPolicy, NodeType};
use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec,
    TypedLocalObjectReference, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};

use super::{node_labels, sha256_hex};

/// The uid and gid of the `besu` user in the Besu image.
pub const BESU_UID: i64 = 1000;
/// Where the data volume is mounted.
pub const DATA_PATH: &str = "/data";
/// Where the genesis ConfigMap is mounted.
pub const GENESIS_DIR: &str = "/etc/besu/genesis";
/// Where the node ConfigMap (config.toml) is mounted.
pub const CONFIG_DIR: &str = "/etc/besu/config";
/// Where the key Secret is mounted.
pub const KEY_DIR: &str = "/etc/besu/key";
/// The annotation holding the checksum of the node configuration, so that a change rolls
/// the pod.
pub const CONFIG_CHECKSUM_ANNOTATION: &str = "besu.nodeops.dev/config-checksum";
/// On a StatefulSet: the revision of its pod template ([`pod_template_revision`]).
pub const TEMPLATE_REVISION_ANNOTATION: &str = "besu.nodeops.dev/template-revision";
/// On a `BesuNode` that a network owns: the pod template revision the network's
/// quorum-safe rollout allows the node controller to roll out (copied from the node's
/// `status.pendingTemplateRevision` when the rollout picks the node). Any change to what
/// runs in the pod (a spec change or an operator release that renders differently) waits
/// for it, so pods restart only when and where the rollout decides.
pub const ROLLOUT_PERMIT_ANNOTATION: &str = "besu.nodeops.dev/rollout-permit";

/// A label added to every Besu pod template (and volume claim template) when the
/// operator was started with `BESU_OPERATOR_TEST_RENDER_SALT` in a debug build: the
/// fault-matrix tests use it to make a restarted operator render differently, as a new
/// release would. Release builds never read it, and it is no flag or CRD field.
pub const TEST_RENDER_SALT_LABEL: &str = "besu.nodeops.dev/test-render-salt";
static TEST_RENDER_SALT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Reads `BESU_OPERATOR_TEST_RENDER_SALT` once, in debug builds only (see
/// [`TEST_RENDER_SALT_LABEL`]). Called by `besu-operator run` at start.
pub fn init_test_render_salt() {
    #[cfg(debug_assertions)]
    if let Ok(salt) = std::env::var("BESU_OPERATOR_TEST_RENDER_SALT")
        && !salt.is_empty()
    {
        let _ = TEST_RENDER_SALT.set(salt);
    }
}

/// The revision of a StatefulSet's pod template: 16 hex digits of the SHA-256 of its
/// JSON. Anything that changes what runs in the pod changes it.
pub fn pod_template_revision(sts: &StatefulSet) -> String {
    let template = serde_json::to_string(&sts.spec.template).unwrap_or_default();
    sha256_hex(&template)[..16].to_string()
}

/// Errors the node renderer reports; each names what the user must fix.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The object has no namespace (it must be namespaced).
    #[error("{kind} {name} has no namespace")]
    NoNamespace {
        /// Kind of the object.
        kind: &'static str,
        /// Name of the object.
        name: String,
    },
    /// A monitoring node type has no Besu workload to render.
    #[error("node type {0} has no Besu workload")]
    NotBesu(&'static str),
}

/// The headless Service name: also the DNS subdomain of the pod
/// (`<node>-0.<node>.<namespace>.svc.<cluster domain>`).
pub fn headless_service_name(node: &str) -> String {
    node.to_string()
}

/// The ClusterIP Service for JSON-RPC, WebSocket and metrics.
pub fn rpc_service_name(node: &str) -> String {
    format!("{node}-rpc")
}

/// The node ConfigMap holding `config.toml`.
pub fn config_map_name(node: &str) -> String {
    format!("{node}-config")
}

/// The pod's stable DNS name, used in enode URLs: without the cluster domain, which the
/// pods' DNS search list supplies (`<namespace>.svc.<domain>`, `svc.<domain>`,
/// `<domain>`), so that it resolves on a cluster whatever its domain.
pub fn pod_dns_name(node: &str, namespace: &str) -> String {
    format!("{node}-0.{}.{namespace}.svc", headless_service_name(node))
}

/// Where a node's static nodes list is mounted.
pub const STATIC_NODES_DIR: &str = "/etc/besu/static-nodes";

/// `max-peers` on every node: above the most nodes a network may have (5 bootnodes,
/// 25 validators, 50 members; the CRD's bounds), so that members' connections never
/// crowd validators out (review R13; Besu's default is 25, `DefaultCommandValues`).
pub const MAX_PEERS: u32 = 100;

/// Bytes in a MiB.
const MIB: u64 = 1024 * 1024;

/// Parses a Kubernetes memory quantity (`512Mi`, `4Gi`, `2G`, `1500M`, `1e9`,
/// `2147483648`) into bytes. `None` for anything else.
pub fn memory_bytes(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let value: f64 = number.parse().ok()?;
    let factor: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    let bytes = value * factor;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// The JVM heap (`-Xmx`, MiB) for a container memory limit: what is left after a
/// reserve for everything outside the heap, which in Besu is substantial: RocksDB's
/// block cache alone is 128 MiB (`RocksDBCLIOptions.DEFAULT_CACHE_CAPACITY`), plus its
/// memtables, metaspace, code cache, thread stacks, Netty's direct buffers and the JFR
/// recording Besu starts by default. The reserve is 40% of the limit and at least
/// 768 MiB; the heap never drops below a quarter of the limit (the JVM's own default),
/// so a small limit still starts, with the JVM's usual share.
pub fn heap_mib(limit_bytes: u64) -> u64 {
    let limit = limit_bytes / MIB;
    let reserve = (limit * 2 / 5).max(768);
    limit.saturating_sub(reserve).max(limit / 4)
}

/// `BESU_OPTS` for a node: a heap from its memory limit (none without a limit) and exit
/// on `OutOfMemoryError`.
pub fn besu_opts(resources: &k8s_openapi::api::core::v1::ResourceRequirements) -> String {
    let limit = resources
        .limits
        .as_ref()
        .and_then(|l| l.get("memory"))
        .and_then(|q| memory_bytes(&q.0));
    let mut opts = Vec::new();
    if let Some(limit) = limit {
        opts.push(format!("-Xmx{}m", heap_mib(limit)));
    }
    opts.push("-XX:+ExitOnOutOfMemoryError".to_string());
    opts.join(" ")
}

/// The readiness probe's `minPeers`: 0 for a node that has nobody to peer with when it
/// starts (a network's first bootnode, or a node given no bootnodes and no static
/// nodes), 1 for every other node, so that an isolated node is not Ready.
pub fn readiness_min_peers(node: &BesuNode) -> u32 {
    let spec = &node.spec;
    let first_bootnode = spec.node_type == NodeType::Bootnode
        && (spec.bootnodes.is_empty()
            || node
                .labels()
                .get(besu_operator_api::LABEL_ORDINAL)
                .map(String::as_str)
                == Some("0"));
    let alone = spec.bootnodes.is_empty() && spec.static_nodes_config_map_ref.is_none();
    if first_bootnode || alone { 0 } else { 1 }
}

fn owner(node: &BesuNode) -> Vec<OwnerReference> {
    node.controller_owner_ref(&()).into_iter().collect()
}

fn meta(node: &BesuNode, name: String) -> Result<ObjectMeta, RenderError> {
    let namespace = node.namespace().ok_or_else(|| RenderError::NoNamespace {
        kind: "BesuNode",
        name: node.name_any(),
    })?;
    Ok(ObjectMeta {
        name: Some(name),
        namespace: Some(namespace),
        labels: Some(node_labels(
            &node.name_any(),
            node.spec.node_type,
            node.spec.network.as_deref(),
        )),
        owner_references: Some(owner(node)),
        ..ObjectMeta::default()
    })
}

/// The JSON-RPC API groups a node enables: the spec's, plus `QBFT`/`IBFT` for a
/// validator, upper-cased and de-duplicated in order.
pub fn rpc_apis(node: &BesuNode) -> Vec<String> {
    let mut apis: Vec<String> = Vec::new();
    let extra = match (node.spec.node_type, node.spec.consensus) {
        (NodeType::Validator, Some(c)) => Some(c.rpc_api().to_string()),
        _ => None,
    };
    for api in node.spec.rpc_apis.iter().cloned().chain(extra) {
        let api = api.to_ascii_uppercase();
        if !apis.contains(&api) {
            apis.push(api);
        }
    }
    apis
}

fn toml_string(s: &str) -> String {
    // serde_json's string escaping is valid TOML basic-string escaping for our inputs
    // (quotes, backslashes, control characters).
    serde_json::Value::String(s.to_string()).to_string()
}

fn toml_array(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
    format!("[{}]", items.join(", "))
}

/// Besu's `config.toml` for a node. Pod-specific values (`--p2p-host`) are passed as
/// arguments instead, because they are known only when the pod starts.
pub fn besu_config_toml(node: &BesuNode) -> String {
    let spec = &node.spec;
    let mut lines: Vec<String> = vec![
        "# Rendered by besu-operator. Edit the BesuNode, not this file.".to_string(),
        format!(
            "genesis-file={}",
            toml_string(&format!("{GENESIS_DIR}/genesis.json"))
        ),
        format!("data-path={}", toml_string(DATA_PATH)),
    ];
    if spec.key_secret_ref.is_some() {
        lines.push(format!(
            "node-private-key-file={}",
            toml_string(&format!("{KEY_DIR}/key"))
        ));
    }
    lines.extend([
        "nat-method=\"NONE\"".to_string(),
        "p2p-interface=\"0.0.0.0\"".to_string(),
        format!("p2p-port={}", spec.ports.p2p),
        "discovery-enabled=true".to_string(),
    ]);
    if !spec.bootnodes.is_empty() {
        lines.push(format!("bootnodes={}", toml_array(&spec.bootnodes)));
    }
    if spec.static_nodes_config_map_ref.is_some() {
        lines.push(format!(
            "static-nodes-file={}",
            toml_string(&format!("{STATIC_NODES_DIR}/static-nodes.json"))
        ));
    }
    lines.extend([
        format!("max-peers={MAX_PEERS}"),
        // Besu's ENTERPRISE profile: every node of a private network may dial in.
        "remote-connections-limit-enabled=false".to_string(),
    ]);
    let apis = rpc_apis(node);
    lines.extend([
        "rpc-http-enabled=true".to_string(),
        "rpc-http-host=\"0.0.0.0\"".to_string(),
        format!("rpc-http-port={}", spec.ports.rpc_http),
        format!("rpc-http-api={}", toml_array(&apis)),
        // Probes and in-cluster clients send Host: <pod IP> or a Service name.
        "host-allowlist=[\"*\"]".to_string(),
        "rpc-ws-enabled=true".to_string(),
        "rpc-ws-host=\"0.0.0.0\"".to_string(),
        format!("rpc-ws-port={}", spec.ports.ws),
        format!("rpc-ws-api={}", toml_array(&apis)),
        "metrics-enabled=true".to_string(),
        "metrics-host=\"0.0.0.0\"".to_string(),
        format!("metrics-port={}", spec.ports.metrics),
        "sync-mode=\"FULL\"".to_string(),
    ]);
    if let Some(format) = spec.storage.data_storage_format {
        lines.push(format!("data-storage-format=\"{}\"", format.as_str()));
    }
    if spec.free_gas {
        lines.push("min-gas-price=0".to_string());
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// The node ConfigMap (`config.toml`).
pub fn desired_config_map(node: &BesuNode) -> Result<ConfigMap, RenderError> {
    Ok(ConfigMap {
        metadata: meta(node, config_map_name(&node.name_any()))?,
        data: Some(BTreeMap::from([(
            "config.toml".to_string(),
            besu_config_toml(node),
        )])),
        ..ConfigMap::default()
    })
}

/// The container arguments: the config file, the pod IP as advertised P2P host, DNS
/// support for host names in enode URLs, then the user's extra arguments.
pub fn besu_args(node: &BesuNode) -> Vec<String> {
    let mut args = vec![
        format!("--config-file={CONFIG_DIR}/config.toml"),
        "--p2p-host=$(POD_IP)".to_string(),
        "--Xdns-enabled=true".to_string(),
        "--Xdns-update-enabled=true".to_string(),
    ];
    args.extend(node.spec.extra_args.iter().cloned());
    args
}

/// A volume of one required ConfigMap key, mounted as the file `path`.
fn config_map_file(r: &besu_operator_api::ConfigMapKeyRef, path: &str) -> ConfigMapVolumeSource {
    ConfigMapVolumeSource {
        name: r.name.clone(),
        items: Some(vec![KeyToPath {
            key: r.key.clone(),
            path: path.to_string(),
            ..KeyToPath::default()
        }]),
        optional: Some(false),
        ..ConfigMapVolumeSource::default()
    }
}

/// A named container port.
pub fn port(name: &str, port: i32, protocol: &str) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: port,
        protocol: Some(protocol.to_string()),
        ..ContainerPort::default()
    }
}

fn http_probe(path: &str, port: i32, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::Int(port),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn default_resources() -> k8s_openapi::api::core::v1::ResourceRequirements {
    k8s_openapi::api::core::v1::ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("500m".to_string())),
            ("memory".to_string(), Quantity("2Gi".to_string())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_string(),
            Quantity("4Gi".to_string()),
        )])),
        ..Default::default()
    }
}

/// The pod-level security context: non-root as the image's `besu` user, RuntimeDefault
/// seccomp, volumes group-owned by the same gid.
pub fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(BESU_UID),
        run_as_group: Some(BESU_UID),
        fs_group: Some(BESU_UID),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// The container-level security context: read-only root, no privilege escalation, all
/// capabilities dropped.
pub fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

/// The StatefulSet (one replica) running Besu.
///
/// `replicas` is 1, or 0 while the node's key Secret is missing: a validator must never
/// start without its key, because Besu would generate a new one and come up under
/// another identity (besu-facts §4).
pub fn desired_statefulset(node: &BesuNode, replicas: i32) -> Result<StatefulSet, RenderError> {
    let spec = &node.spec;
    if !spec.node_type.is_besu() {
        return Err(RenderError::NotBesu(spec.node_type.as_str()));
    }
    let name = node.name_any();
    let mut metadata = meta(node, name.clone())?;
    let mut labels = metadata.labels.clone().unwrap_or_default();
    if let Some(salt) = TEST_RENDER_SALT.get() {
        labels.insert(TEST_RENDER_SALT_LABEL.to_string(), salt.clone());
    }
    let selector = BTreeMap::from([(besu_operator_api::LABEL_NODE.to_string(), name.clone())]);

    let mut volumes = vec![
        Volume {
            name: "genesis".to_string(),
            config_map: spec
                .genesis_config_map_ref
                .as_ref()
                .map(|g| config_map_file(g, "genesis.json")),
            ..Volume::default()
        },
        Volume {
            name: "config".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map_name(&name),
                optional: Some(false),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".to_string(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    let mut mounts = vec![
        VolumeMount {
            name: DATA_VOLUME.to_string(),
            mount_path: DATA_PATH.to_string(),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "genesis".to_string(),
            mount_path: GENESIS_DIR.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "config".to_string(),
            mount_path: CONFIG_DIR.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "tmp".to_string(),
            mount_path: "/tmp".to_string(),
            ..VolumeMount::default()
        },
    ];
    if let Some(key) = &spec.key_secret_ref {
        volumes.push(Volume {
            name: "key".to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(key.name.clone()),
                items: Some(vec![KeyToPath {
                    key: key.key.clone(),
                    path: "key".to_string(),
                    ..KeyToPath::default()
                }]),
                default_mode: Some(0o400),
                // Never optional: without its key the node must not start.
                optional: Some(false),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: "key".to_string(),
            mount_path: KEY_DIR.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }

    if let Some(r) = &spec.static_nodes_config_map_ref {
        volumes.push(Volume {
            name: "static-nodes".to_string(),
            config_map: Some(config_map_file(r, "static-nodes.json")),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: "static-nodes".to_string(),
            mount_path: STATIC_NODES_DIR.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }

    let resources = spec.resources.clone().unwrap_or_else(default_resources);
    let ports = &spec.ports;
    let container = Container {
        name: "besu".to_string(),
        image: Some(spec.image.clone()),
        // Bypass the image's entry script, which expects to start as root and chown.
        command: Some(vec!["/opt/besu/bin/besu".to_string()]),
        args: Some(besu_args(node)),
        env: Some(vec![
            EnvVar {
                name: "POD_IP".to_string(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "status.podIP".to_string(),
                        ..ObjectFieldSelector::default()
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            },
            EnvVar {
                name: "BESU_OPTS".to_string(),
                value: Some(besu_opts(&resources)),
                ..EnvVar::default()
            },
        ]),
        ports: Some(vec![
            port("p2p-tcp", ports.p2p, "TCP"),
            port("p2p-udp", ports.p2p, "UDP"),
            port("rpc-http", ports.rpc_http, "TCP"),
            port("rpc-ws", ports.ws, "TCP"),
            port("metrics", ports.metrics, "TCP"),
        ]),
        resources: Some(resources),
        readiness_probe: Some(http_probe(
            &format!(
                "/readiness?minPeers={}&maxBlocksBehind={}",
                readiness_min_peers(node),
                crate::chain::IN_SYNC_BLOCKS
            ),
            ports.rpc_http,
            10,
            3,
        )),
        liveness_probe: Some(http_probe("/liveness", ports.rpc_http, 15, 4)),
        startup_probe: Some(http_probe("/liveness", ports.rpc_http, 5, 60)),
        security_context: Some(container_security_context()),
        volume_mounts: Some(mounts),
        ..Container::default()
    };

    let claim = data_claim_template(node, labels.clone());

    let config_checksum = sha256_hex(&besu_config_toml(node));
    let mut sts = StatefulSet {
        metadata: metadata.clone(),
        spec: StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(headless_service_name(&name)),
            pod_management_policy: Some("Parallel".to_string()),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            // Retain, Retain: the StatefulSet controller never writes to the claim (see
            // desired_data_claim); deletionPolicy acts through the claim's own owner.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".to_string()),
                    when_scaled: Some("Retain".to_string()),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_CHECKSUM_ANNOTATION.to_string(),
                        config_checksum,
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(volumes),
                    security_context: Some(pod_security_context()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(60),
                    node_selector: (!spec.node_selector.is_empty())
                        .then(|| spec.node_selector.clone()),
                    tolerations: (!spec.tolerations.is_empty()).then(|| spec.tolerations.clone()),
                    affinity: spec.affinity.clone(),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![claim]),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    };
    metadata.annotations = Some(BTreeMap::from([(
        TEMPLATE_REVISION_ANNOTATION.to_string(),
        pod_template_revision(&sts),
    )]));
    sts.metadata = metadata;
    Ok(sts)
}

/// The name of the StatefulSet's volume claim template for the data directory.
pub const DATA_VOLUME: &str = "data";

/// The name of a node's data volume claim: what the StatefulSet controller names the
/// claim of template [`DATA_VOLUME`] for the node's only pod, ordinal 0.
pub fn data_claim_name(node: &str) -> String {
    format!("{DATA_VOLUME}-{node}-0")
}

fn data_claim_template(node: &BesuNode, labels: BTreeMap<String, String>) -> PersistentVolumeClaim {
    let storage = &node.spec.storage;
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.to_string()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(storage.size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// The owner a node's data volume should have: the `BesuNode` under `deletionPolicy:
/// Delete` (the volume goes with the node), none under `Retain`. A plain reference, not
/// a controller one: claims made by earlier releases still carry the StatefulSet's
/// controller reference until the StatefulSet controller drops it, and an object may
/// have only one controller.
pub fn data_claim_owner(node: &BesuNode) -> Option<OwnerReference> {
    match node.spec.deletion_policy {
        DeletionPolicy::Retain => None,
        DeletionPolicy::Delete => node.controller_owner_ref(&()).map(|mut o| {
            o.controller = Some(false);
            o
        }),
    }
}

/// The node's data volume claim, which the operator creates before the StatefulSet,
/// exactly as the StatefulSet controller would (same name, labels and spec), so that the
/// StatefulSet controller finds it and never writes to it.
///
/// Why: with `persistentVolumeClaimRetentionPolicy.whenDeleted: Delete` the StatefulSet
/// controller creates the claim and then updates it to add its owner reference
/// (`UpdatePodClaimForRetentionPolicy`, pkg/controller/statefulset/stateful_pod_control.go),
/// racing the persistent-volume binder's own update of the new claim. The loser of that
/// race gets 409 Conflict; when it is the binder, the claim stays Pending until the
/// binder's periodic resync, 15 s by default (measured: 6-15 s stalls in 4 of 8
/// bring-ups). Here the claim is created once with its final owner, the StatefulSet's
/// policy is Retain/Retain (nothing for its controller to do), and `deletionPolicy`
/// keeps its meaning through [`data_claim_owner`].
pub fn desired_data_claim(node: &BesuNode) -> Result<PersistentVolumeClaim, RenderError> {
    let name = node.name_any();
    let mut meta = meta(node, data_claim_name(&name))?;
    let mut labels = meta.labels.take().unwrap_or_default();
    labels.insert(besu_operator_api::LABEL_NODE.to_string(), name);
    let mut claim = data_claim_template(node, labels);
    meta.labels = claim.metadata.labels.take();
    meta.owner_references = data_claim_owner(node).map(|o| vec![o]);
    claim.metadata = meta;
    if let (Some(snapshot), Some(spec)) = (&node.spec.from_snapshot, claim.spec.as_mut()) {
        // Only read when the claim is created: a claim's dataSource is immutable, and a
        // volume that exists keeps its data.
        spec.data_source = Some(TypedLocalObjectReference {
            api_group: Some("snapshot.storage.k8s.io".to_string()),
            kind: "VolumeSnapshot".to_string(),
            name: snapshot.clone(),
        });
    }
    Ok(claim)
}

fn service_port(name: &str, port: i32, protocol: &str) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port,
        target_port: Some(IntOrString::Int(port)),
        protocol: Some(protocol.to_string()),
        ..ServicePort::default()
    }
}

/// The headless Service that gives the pod its stable DNS name. It publishes addresses
/// before the pod is Ready, so that peers can discover each other while syncing.
pub fn desired_headless_service(node: &BesuNode) -> Result<Service, RenderError> {
    let name = node.name_any();
    let p = &node.spec.ports;
    Ok(Service {
        metadata: meta(node, headless_service_name(&name))?,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            publish_not_ready_addresses: Some(true),
            selector: Some(BTreeMap::from([(
                besu_operator_api::LABEL_NODE.to_string(),
                name.clone(),
            )])),
            ports: Some(vec![
                service_port("p2p-tcp", p.p2p, "TCP"),
                service_port("p2p-udp", p.p2p, "UDP"),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// The ClusterIP Service for JSON-RPC (HTTP and WebSocket) and metrics.
pub fn desired_rpc_service(node: &BesuNode) -> Result<Service, RenderError> {
    let name = node.name_any();
    let p = &node.spec.ports;
    Ok(Service {
        metadata: meta(node, rpc_service_name(&name))?,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            selector: Some(BTreeMap::from([(
                besu_operator_api::LABEL_NODE.to_string(),
                name.clone(),
            )])),
            ports: Some(vec![
                service_port("rpc-http", p.rpc_http, "TCP"),
                service_port("rpc-ws", p.ws, "TCP"),
                service_port("metrics", p.metrics, "TCP"),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// A validator with every reference set (key, genesis, static nodes, a bootnode), for
/// tests.
#[cfg(test)]
pub(crate) fn test_validator() -> BesuNode {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "besu.nodeops.dev/v1alpha1",
        "kind": "BesuNode",
        "metadata": {"name": "v", "namespace": "ns"},
        "spec": {
            "type": "validator",
            "consensus": "qbft",
            "image": "hyperledger/besu:26.3.0",
            "keySecretRef": {"name": "v-key"},
            "genesisConfigMapRef": {"name": "g"},
            "staticNodesConfigMapRef": {"name": "s", "key": "static-nodes.json"},
            "bootnodes": [format!("enode://{}@b-0.b.ns.svc:30303", "a".repeat(128))],
            "storage": {"dataStorageFormat": "FOREST"},
        },
    }))
    .unwrap_or_else(|e| panic!("test node: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim_test_node(policy: &str) -> BesuNode {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "besu.nodeops.dev/v1alpha1",
            "kind": "BesuNode",
            "metadata": {"name": "m", "namespace": "ns", "uid": "u-1"},
            "spec": {
                "type": "member",
                "image": "hyperledger/besu:26.3.0",
                "storage": {"size": "3Gi", "storageClassName": "fast"},
                "deletionPolicy": policy,
            },
        }))
        .unwrap_or_else(|e| panic!("test node: {e}"))
    }

    /// The claim the operator creates is the one the StatefulSet controller would have
    /// made from the template (`getPersistentVolumeClaims`: template spec, template labels
    /// plus the selector's, name `<template>-<set>-<ordinal>`), so the controller uses it
    /// as it is; and the StatefulSet's own retention policy gives its controller nothing
    /// to write, whatever the deletion policy.
    #[test]
    fn the_data_claim_is_the_statefulsets_own_with_the_owner_of_the_deletion_policy() {
        for (policy, owned) in [("Retain", false), ("Delete", true)] {
            let node = claim_test_node(policy);
            let claim = desired_data_claim(&node).unwrap_or_else(|e| panic!("{e}"));
            let sts = desired_statefulset(&node, 1).unwrap_or_else(|e| panic!("{e}"));
            let template = &sts.spec.volume_claim_templates.clone().unwrap_or_default()[0];
            assert_eq!(claim.metadata.name.as_deref(), Some("data-m-0"));
            assert_eq!(template.metadata.name.as_deref(), Some(DATA_VOLUME));
            assert_eq!(claim.spec, template.spec, "{policy}");
            let mut labels = template.metadata.labels.clone().unwrap_or_default();
            labels.extend(sts.spec.selector.match_labels.clone().unwrap_or_default());
            assert_eq!(claim.metadata.labels, Some(labels), "{policy}");
            let retention = sts
                .spec
                .persistent_volume_claim_retention_policy
                .clone()
                .unwrap_or_default();
            assert_eq!(
                retention.when_deleted.as_deref(),
                Some("Retain"),
                "{policy}"
            );
            assert_eq!(retention.when_scaled.as_deref(), Some("Retain"), "{policy}");
            let owners = claim.metadata.owner_references.clone().unwrap_or_default();
            if owned {
                assert_eq!(owners.len(), 1);
                assert_eq!(
                    (owners[0].kind.as_str(), owners[0].uid.as_str()),
                    ("BesuNode", "u-1")
                );
                assert_eq!(
                    owners[0].controller,
                    Some(false),
                    "never a second controller"
                );
            } else {
                assert!(owners.is_empty(), "Retain: {owners:?}");
            }
        }
    }

    /// Every option the operator passes on the command line, and every one it owns in
    /// config.toml, is one admission refuses in `extraArgs` (`OPERATOR_OPTIONS`), so no
    /// user argument can repeat (Besu refuses) or override it.
    #[test]
    fn admission_refuses_every_option_the_operator_sets() {
        let node = test_validator();
        for arg in besu_args(&node) {
            assert!(
                besu_operator_api::operator_option(&arg).is_some(),
                "{arg} is not refused in extraArgs"
            );
        }
        let toml = besu_config_toml(&node);
        for key in [
            "genesis-file",
            "data-path",
            "node-private-key-file",
            "static-nodes-file",
            "bootnodes",
            "p2p-port",
            "rpc-http-enabled",
            "rpc-http-port",
            "rpc-http-api",
            "metrics-enabled",
            "metrics-port",
            "nat-method",
            "data-storage-format",
        ] {
            assert!(
                toml.lines().any(|l| l.starts_with(&format!("{key}="))),
                "config.toml sets no {key}"
            );
            assert!(
                besu_operator_api::operator_option(&format!("--{key}")).is_some(),
                "--{key} is not refused in extraArgs"
            );
        }
    }

    #[test]
    fn memory_quantities_parse_as_kubernetes_writes_them() {
        for (q, bytes) in [
            ("512Mi", 512 * MIB),
            ("4Gi", 4096 * MIB),
            ("2G", 2_000_000_000),
            ("1500M", 1_500_000_000),
            ("1e9", 1_000_000_000),
            ("2147483648", 2048 * MIB),
            ("1.5Gi", 1536 * MIB),
            ("64Ki", 65_536),
        ] {
            assert_eq!(memory_bytes(q), Some(bytes), "{q}");
        }
        for q in ["", "Gi", "4 GiB", "-1Gi", "4Xi"] {
            assert_eq!(memory_bytes(q), None, "{q}");
        }
    }

    /// The heap is the limit less a reserve of 40% (at least 768 MiB) for RocksDB and the
    /// JVM's native memory, and never below the JVM's default quarter.
    #[test]
    fn heap_follows_the_memory_limit() {
        for (limit, heap) in [
            ("512Mi", 128), // a quarter: the reserve would leave nothing
            ("1Gi", 256),   // 1024 - 768
            ("2Gi", 1229),  // 2048 - 819
            ("3Gi", 1844),  // 3072 - 1228
            ("4Gi", 2458),  // 4096 - 1638
            ("8Gi", 4916),  // 8192 - 3276
            ("16Gi", 9831), // 16384 - 6553
            ("4G", 2289),   // 3814 MiB - 1525
        ] {
            let bytes = memory_bytes(limit).unwrap_or_default();
            assert_eq!(heap_mib(bytes), heap, "{limit}");
            assert!(
                heap_mib(bytes) * MIB < bytes,
                "{limit}: heap below the limit"
            );
        }
        let with_limit = k8s_openapi::api::core::v1::ResourceRequirements {
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity("4Gi".to_string()),
            )])),
            ..Default::default()
        };
        assert_eq!(
            besu_opts(&with_limit),
            "-Xmx2458m -XX:+ExitOnOutOfMemoryError"
        );
        assert_eq!(
            besu_opts(&Default::default()),
            "-XX:+ExitOnOutOfMemoryError"
        );
    }
}
