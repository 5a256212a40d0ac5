//! Everything the operator would create for a set of input objects, without a cluster:
//! the engine of `besu-operator render`.
//!
//! It calls the same builders as the controllers ([`super::network`], [`super::node`],
//! [`super::monitoring`]), so the output is what the operator applies. For a
//! `BesuNetwork`: key Secrets, the genesis ConfigMap, the Besu `BesuNode`s, the monitoring
//! `BesuNode`s (`prometheus`, `grafana`) when enabled, and each node's children. For a
//! `BesuNode`: its children (for a Besu node: node ConfigMap, headless Service, RPC
//! Service, StatefulSet).
//!
//! Not rendered: the PrometheusRule and PodMonitor the operator adds only when it finds
//! the Prometheus Operator's CRDs in the cluster (a render has no cluster to ask).
//!
//! Owner references appear only when the input carries `metadata.uid` (as an object read
//! back from the cluster does); a fresh manifest has none, so none are invented.

use std::collections::BTreeMap;
use std::path::PathBuf;

use besu_operator_api::{BesuNetwork, BesuNode, GROUP, NodeType, VERSION};
use kube::ResourceExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::monitoring::{
    MonitoringError, desired_monitoring_node, generate_password, grafana_admin_secret,
    grafana_objects, prometheus_objects,
};
use super::network::{
    Slot, bootnode_enode, desired_besu_node, desired_genesis_config_map, desired_key_secret,
    desired_network_policy, desired_static_nodes_config_map, is_imported_key, node_enode,
    node_name, slots,
};
use super::node::{
    RenderError, desired_config_map, desired_data_claim, desired_headless_service,
    desired_rpc_service, desired_statefulset,
};
use crate::chain::key::{Address, KeyError, NodeKey};

/// What replaces each Secret value unless secrets are shown.
pub const REDACTED: &str = "<redacted>";

/// Why rendering failed. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum RenderAllError {
    /// A YAML document does not parse.
    #[error("document {doc}: not valid YAML: {error}")]
    Yaml {
        /// 1-based index of the document in the stream.
        doc: usize,
        /// The parser's error.
        error: serde_yaml::Error,
    },
    /// A document is not a `BesuNetwork` or `BesuNode` of this API version.
    #[error(
        "document {doc}: unknown kind {kind:?} (apiVersion {api_version:?}); expected BesuNetwork or BesuNode of {GROUP}/{VERSION}, or EthereumNode of ethereum.nodeops.dev/{VERSION}"
    )]
    UnknownKind {
        /// 1-based index of the document in the stream.
        doc: usize,
        /// The document's `kind`.
        kind: String,
        /// The document's `apiVersion`.
        api_version: String,
    },
    /// A document of a known kind does not match its schema.
    #[error("document {doc}: invalid {kind}: {message}")]
    Invalid {
        /// 1-based index of the document in the stream.
        doc: usize,
        /// The document's kind.
        kind: &'static str,
        /// What is wrong, from the deserializer.
        message: String,
    },
    /// The input holds no object.
    #[error("no BesuNetwork or BesuNode in the input")]
    Empty,
    /// A key file is missing or unreadable.
    #[error("cannot read the key of node {node} from {path}: {error}")]
    KeyFile {
        /// The `BesuNode` name.
        node: String,
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A key file does not hold a valid Besu key (the error never quotes the key).
    #[error("invalid key for node {node} in {path}: {error}")]
    InvalidKey {
        /// The `BesuNode` name.
        node: String,
        /// The key file.
        path: PathBuf,
        /// What is wrong with the key.
        error: KeyError,
    },
    /// A builder refused the object.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// A monitoring builder refused the object.
    #[error(transparent)]
    Monitoring(#[from] MonitoringError),
    /// The genesis could not be built.
    #[error("cannot build the genesis of BesuNetwork {network}: {message}")]
    Genesis {
        /// The network name.
        network: String,
        /// What went wrong.
        message: String,
    },
    /// An object could not be turned into JSON.
    #[error("cannot serialise {what}: {error}")]
    Serialise {
        /// Which object.
        what: String,
        /// The serialiser's error.
        error: serde_json::Error,
    },
}

/// One input object.
#[derive(Clone, Debug)]
pub enum Input {
    /// A network: renders keys, genesis, nodes and their children.
    Network(Box<BesuNetwork>),
    /// A single node: renders its children.
    Node(Box<BesuNode>),
    /// An Ethereum node: renders its JWT Secret (if generated), Services, StatefulSet
    /// and Ingress.
    Ethereum(Box<besu_operator_api::EthereumNode>),
}

impl Input {
    /// `Kind/name`, for messages.
    pub fn describe(&self) -> String {
        match self {
            Input::Network(n) => format!("BesuNetwork/{}", n.name_any()),
            Input::Node(n) => format!("BesuNode/{}", n.name_any()),
            Input::Ethereum(n) => format!("EthereumNode/{}", n.name_any()),
        }
    }
}

/// Where node keys come from.
pub trait KeySource {
    /// The private key of the `BesuNode` named `node`.
    fn key_for(&mut self, node: &str) -> Result<NodeKey, RenderAllError>;
    /// Whether the keys are throw-away (addresses, enodes and genesis are illustrative).
    fn is_ephemeral(&self) -> bool;
}

/// Fresh random keys: the output shows the shape, not the addresses, of a real network.
#[derive(Debug, Default)]
pub struct EphemeralKeys;

impl KeySource for EphemeralKeys {
    fn key_for(&mut self, _node: &str) -> Result<NodeKey, RenderAllError> {
        Ok(NodeKey::generate())
    }
    fn is_ephemeral(&self) -> bool {
        true
    }
}

/// Keys read from a directory: `DIR/<BesuNode name>/key`, in Besu's key-file format
/// (`0x` + 64 hex digits, as `besu-operator key generate` or Besu itself writes it).
#[derive(Debug)]
pub struct KeyDir {
    dir: PathBuf,
}

impl KeyDir {
    /// Keys under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> KeyDir {
        KeyDir { dir: dir.into() }
    }

    /// The key file of a node.
    pub fn path_for(&self, node: &str) -> PathBuf {
        self.dir.join(node).join("key")
    }
}

impl KeySource for KeyDir {
    fn key_for(&mut self, node: &str) -> Result<NodeKey, RenderAllError> {
        let path = self.path_for(node);
        let text = std::fs::read_to_string(&path).map_err(|error| RenderAllError::KeyFile {
            node: node.to_string(),
            path: path.clone(),
            error,
        })?;
        NodeKey::parse(&text).map_err(|error| RenderAllError::InvalidKey {
            node: node.to_string(),
            path,
            error,
        })
    }
    fn is_ephemeral(&self) -> bool {
        false
    }
}

/// Parses a multi-document YAML stream of `BesuNetwork`s and `BesuNode`s (a `kind: List`
/// is expanded). Objects without a namespace get `default_namespace`. Empty documents are
/// skipped; anything else is an error naming the document.
pub fn parse_objects(text: &str, default_namespace: &str) -> Result<Vec<Input>, RenderAllError> {
    let mut out = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let doc = i + 1;
        let value: serde_yaml::Value = serde::Deserialize::deserialize(document)
            .map_err(|error| RenderAllError::Yaml { doc, error })?;
        if value.is_null() {
            continue;
        }
        let value: Value = serde_json::to_value(&value).map_err(|e| RenderAllError::Invalid {
            doc,
            kind: "object",
            message: e.to_string(),
        })?;
        push_object(value, doc, default_namespace, &mut out)?;
    }
    if out.is_empty() {
        return Err(RenderAllError::Empty);
    }
    Ok(out)
}

fn push_object(
    value: Value,
    doc: usize,
    default_namespace: &str,
    out: &mut Vec<Input>,
) -> Result<(), RenderAllError> {
    let text = |field: &str| {
        value
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let ours = api_version == format!("{GROUP}/{VERSION}");
    match (ours, kind.as_str()) {
        (true, "BesuNetwork") => {
            let mut network: BesuNetwork = from_value(value, doc, "BesuNetwork")?;
            if network.metadata.namespace.is_none() {
                network.metadata.namespace = Some(default_namespace.to_string());
            }
            if network
                .metadata
                .name
                .as_deref()
                .unwrap_or_default()
                .is_empty()
            {
                return Err(invalid(doc, "BesuNetwork", "metadata.name is missing"));
            }
            out.push(Input::Network(Box::new(network)));
        }
        (true, "BesuNode") => {
            let mut node: BesuNode = from_value(value, doc, "BesuNode")?;
            if node.metadata.namespace.is_none() {
                node.metadata.namespace = Some(default_namespace.to_string());
            }
            if node.metadata.name.as_deref().unwrap_or_default().is_empty() {
                return Err(invalid(doc, "BesuNode", "metadata.name is missing"));
            }
            out.push(Input::Node(Box::new(node)));
        }
        (_, "EthereumNode")
            if api_version == format!("{}/{VERSION}", besu_operator_api::ETHEREUM_GROUP) =>
        {
            let mut node: besu_operator_api::EthereumNode = from_value(value, doc, "EthereumNode")?;
            if node.metadata.namespace.is_none() {
                node.metadata.namespace = Some(default_namespace.to_string());
            }
            if node.metadata.name.as_deref().unwrap_or_default().is_empty() {
                return Err(invalid(doc, "EthereumNode", "metadata.name is missing"));
            }
            out.push(Input::Ethereum(Box::new(node)));
        }
        (_, "List") if api_version == "v1" => {
            let items = match value.get("items") {
                Some(Value::Array(items)) => items.clone(),
                _ => Vec::new(),
            };
            for item in items {
                push_object(item, doc, default_namespace, out)?;
            }
        }
        _ => {
            return Err(RenderAllError::UnknownKind {
                doc,
                kind,
                api_version,
            });
        }
    }
    Ok(())
}

fn invalid(doc: usize, kind: &'static str, message: &str) -> RenderAllError {
    RenderAllError::Invalid {
        doc,
        kind,
        message: message.to_string(),
    }
}

fn from_value<T: DeserializeOwned>(
    value: Value,
    doc: usize,
    kind: &'static str,
) -> Result<T, RenderAllError> {
    serde_json::from_value(value).map_err(|e| RenderAllError::Invalid {
        doc,
        kind,
        message: e.to_string(),
    })
}

fn to_json<T: Serialize>(object: &T, what: impl Fn() -> String) -> Result<Value, RenderAllError> {
    serde_json::to_value(object).map_err(|error| RenderAllError::Serialise {
        what: what(),
        error,
    })
}

/// How to render.
#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    /// Print Secret values (node keys, the Grafana admin password) instead of
    /// [`REDACTED`].
    pub show_secrets: bool,
    /// `host:port` where a network's Prometheus scrapes the operator (`run
    /// --metrics-target`); without it the scrape config has no operator job.
    pub metrics_target: Option<String>,
}

/// Every object the operator would create for `inputs`, in creation order, as JSON
/// values with `apiVersion` and `kind`. Secret values are replaced by [`REDACTED`]
/// unless `options.show_secrets`.
pub fn render_all(
    inputs: &[Input],
    keys: &mut dyn KeySource,
    options: &RenderOptions,
) -> Result<Vec<Value>, RenderAllError> {
    let mut out = Vec::new();
    for input in inputs {
        match input {
            Input::Network(network) => render_network(network, keys, options, &mut out)?,
            Input::Node(node) => render_node_children(node, options, &mut out)?,
            Input::Ethereum(node) => render_ethereum_node(node, options, &mut out)?,
        }
    }
    Ok(out)
}

fn render_network(
    network: &BesuNetwork,
    keys: &mut dyn KeySource,
    options: &RenderOptions,
    out: &mut Vec<Value>,
) -> Result<(), RenderAllError> {
    let name = network.name_any();
    let mut bootnode_enodes = Vec::new();
    let mut static_enodes = Vec::new();
    let mut validators: Vec<Address> = Vec::new();

    // Key Secrets: one per node, unless the user imported that node's key (then the
    // operator reads the user's Secret and creates none).
    for Slot { node_type, ordinal } in slots(network) {
        let node = node_name(&name, node_type, ordinal);
        let key = keys.key_for(&node)?;
        if node_type == NodeType::Bootnode {
            bootnode_enodes.push(bootnode_enode(network, ordinal, &key.public_key()));
        }
        if node_type == NodeType::Validator {
            validators.push(key.address());
        }
        if matches!(node_type, NodeType::Bootnode | NodeType::Validator) {
            static_enodes.push(node_enode(network, node_type, ordinal, &key.public_key()));
        }
        if !is_imported_key(network, node_type, ordinal) {
            let secret = desired_key_secret(network, node_type, ordinal, &key)?;
            let mut value = to_json(&secret, || format!("Secret for {node}"))?;
            if !options.show_secrets {
                redact_secret(&mut value);
            }
            out.push(value);
        }
    }

    validators.sort();
    let (genesis, checksum) = genesis_for(network, &validators)?;
    let genesis_map = desired_genesis_config_map(network, &genesis, &checksum)?;
    out.push(to_json(&genesis_map, || {
        format!("genesis ConfigMap of {name}")
    })?);
    let statics = desired_static_nodes_config_map(network, &static_enodes)?;
    out.push(to_json(&statics, || {
        format!("static nodes ConfigMap of {name}")
    })?);
    let policy = desired_network_policy(network)?;
    out.push(to_json(&policy, || format!("NetworkPolicy of {name}"))?);

    for Slot { node_type, ordinal } in slots(network) {
        let node = desired_besu_node(network, node_type, ordinal, &bootnode_enodes)?;
        out.push(to_json(&node, || format!("BesuNode {}", node.name_any()))?);
        render_node_children(&node, options, out)?;
    }

    // Monitoring last, as the network controller creates it.
    let m = &network.spec.monitoring;
    for (node_type, enabled) in [
        (NodeType::Prometheus, m.prometheus.enabled),
        (NodeType::Grafana, m.grafana.enabled),
    ] {
        if enabled {
            let node = desired_monitoring_node(network, node_type)?;
            out.push(to_json(&node, || format!("BesuNode {}", node.name_any()))?);
            render_node_children(&node, options, out)?;
        }
    }
    Ok(())
}

/// The genesis document and its checksum, from the network spec and the validator
/// addresses (ascending).
fn genesis_for(
    network: &BesuNetwork,
    validators: &[Address],
) -> Result<(String, String), RenderAllError> {
    super::network::genesis_for(network, validators).map_err(|e| RenderAllError::Genesis {
        network: network.name_any(),
        message: e.to_string(),
    })
}

fn render_node_children(
    node: &BesuNode,
    options: &RenderOptions,
    out: &mut Vec<Value>,
) -> Result<(), RenderAllError> {
    let name = node.name_any();
    match node.spec.node_type {
        NodeType::Prometheus => {
            let o = prometheus_objects(node, options.metrics_target.as_deref())?;
            out.push(to_json(&o.service_account, || {
                format!("ServiceAccount of {name}")
            })?);
            out.push(to_json(&o.role, || format!("Role of {name}"))?);
            out.push(to_json(&o.role_binding, || {
                format!("RoleBinding of {name}")
            })?);
            out.push(to_json(&o.config_map, || format!("ConfigMap of {name}"))?);
            out.push(to_json(&o.service, || format!("Service of {name}"))?);
            out.push(to_json(&o.statefulset, || {
                format!("StatefulSet of {name}")
            })?);
            return Ok(());
        }
        NodeType::Grafana => {
            // The operator generates the password once; a render shows a fresh one only
            // when asked to show secrets.
            let password = if options.show_secrets {
                generate_password()
            } else {
                REDACTED.to_string()
            };
            let mut secret = to_json(&grafana_admin_secret(node, &password)?, || {
                format!("admin Secret of {name}")
            })?;
            if !options.show_secrets {
                redact_secret(&mut secret);
            }
            out.push(secret);
            let o = grafana_objects(node)?;
            out.push(to_json(&o.config_map, || format!("ConfigMap of {name}"))?);
            out.push(to_json(&o.service, || format!("Service of {name}"))?);
            out.push(to_json(&o.deployment, || format!("Deployment of {name}"))?);
            return Ok(());
        }
        _ => {}
    }
    out.push(to_json(&desired_config_map(node)?, || {
        format!("ConfigMap of {name}")
    })?);
    out.push(to_json(&desired_headless_service(node)?, || {
        format!("headless Service of {name}")
    })?);
    out.push(to_json(&desired_rpc_service(node)?, || {
        format!("RPC Service of {name}")
    })?);
    out.push(to_json(&desired_data_claim(node)?, || {
        format!("data volume claim of {name}")
    })?);
    out.push(to_json(&desired_statefulset(node, 1)?, || {
        format!("StatefulSet of {name}")
    })?);
    Ok(())
}

/// An EthereumNode's objects. A custom network's peers come from its ConfigMap in the
/// cluster, so offline the rendered clients have none.
fn render_ethereum_node(
    node: &besu_operator_api::EthereumNode,
    options: &RenderOptions,
    out: &mut Vec<Value>,
) -> Result<(), RenderAllError> {
    use super::ethereum as eth;
    let name = node.name_any();
    if node.spec.jwt_secret_ref.is_none() {
        let jwt = if options.show_secrets {
            super::random_hex(32)
        } else {
            REDACTED.to_string()
        };
        let mut secret = to_json(&eth::desired_jwt_secret(node, jwt)?, || {
            format!("JWT Secret of {name}")
        })?;
        if !options.show_secrets {
            redact_secret(&mut secret);
        }
        out.push(secret);
    }
    let facts = eth::Facts::default();
    out.push(to_json(&eth::desired_headless_service(node)?, || {
        format!("headless Service of {name}")
    })?);
    out.push(to_json(&eth::desired_rpc_service(node)?, || {
        format!("RPC Service of {name}")
    })?);
    if let Some(svc) = eth::desired_p2p_service(node)? {
        out.push(to_json(&svc, || format!("P2P Service of {name}"))?);
    }
    if let Some(ingress) = eth::desired_ingress(node)? {
        out.push(to_json(&ingress, || format!("Ingress of {name}"))?);
    }
    out.push(to_json(&eth::desired_statefulset(node, &facts)?, || {
        format!("StatefulSet of {name}")
    })?);
    Ok(())
}

/// Replaces every value under `data` and `stringData` of a Secret with [`REDACTED`].
pub fn redact_secret(secret: &mut Value) {
    for field in ["data", "stringData"] {
        if let Some(Value::Object(map)) = secret.get_mut(field) {
            for value in map.values_mut() {
                *value = Value::String(REDACTED.to_string());
            }
        }
    }
}

/// Serialises rendered objects as a multi-document YAML stream (`---` before each).
pub fn to_yaml_stream(objects: &[Value]) -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(object)?);
    }
    Ok(out)
}

/// Groups rendered objects by `kind`, for callers that check invariants.
pub fn by_kind(objects: &[Value]) -> BTreeMap<String, Vec<&Value>> {
    let mut map: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for object in objects {
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        map.entry(kind).or_default().push(object);
    }
    map
}
