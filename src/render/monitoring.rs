//! The monitoring node types: `prometheus` (a StatefulSet scraping the network's Besu
//! pods and the operator, with the network's alert rules) and `grafana` (a Deployment
//! with the network's Prometheus as datasource and our Besu network dashboard).
//!
//! Metric names are Besu's (besu-facts §7: `ethereum_blockchain_height`,
//! `ethereum_peer_count`, `besu_synchronizer_in_sync`, ...) and the operator's
//! (`besu_network_*`, `besu_node_*`, `besu_operator_*`, see `crate::metrics`).

use std::collections::BTreeMap;

use besu_operator_api::{BesuNetwork, BesuNode, BesuNodeSpec, NodeType, PortsSpec, StorageSpec};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::node::RenderError;
use super::{node_labels, sha256_hex};

/// Why a monitoring object could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum MonitoringError {
    /// The node cannot be rendered (no namespace).
    #[error(transparent)]
    Render(#[from] RenderError),
    /// An object did not convert to its Kubernetes type.
    #[error("cannot build a monitoring object: {0}")]
    Json(#[from] serde_json::Error),
}

/// Prometheus's HTTP port.
pub const PROMETHEUS_PORT: i32 = 9090;
/// Grafana's HTTP port.
pub const GRAFANA_PORT: i32 = 3000;
/// How long Prometheus keeps samples.
pub const PROMETHEUS_RETENTION: &str = "15d";
/// The data key of the Grafana admin password in its Secret.
pub const GRAFANA_PASSWORD_KEY: &str = "admin-password";
/// The Prometheus config file name in its ConfigMap.
pub const PROMETHEUS_CONFIG_FILE: &str = "prometheus.yml";
/// The alert rules file name in the Prometheus ConfigMap.
pub const RULES_FILE: &str = "besu-alerts.yml";
/// The dashboard file name in the Grafana ConfigMap.
pub const DASHBOARD_FILE: &str = "besu-network.json";
/// Peers below which a node is "low on peers".
pub const MIN_PEERS: u32 = 1;
/// Blocks behind the head at which a node is "behind".
pub const MAX_BLOCKS_BEHIND: u32 = 10;

/// The ConfigMap holding `prometheus.yml` and the rules, or Grafana's provisioning.
pub fn config_map_name(node: &str) -> String {
    format!("{node}-config")
}

/// The Secret holding the Grafana admin password.
pub fn grafana_secret_name(node: &str) -> String {
    format!("{node}-admin")
}

/// The in-cluster URL of a network's Prometheus.
pub fn prometheus_url(network: &str, namespace: &str) -> String {
    let node = super::network::node_name(network, NodeType::Prometheus, 0);
    format!("http://{node}.{namespace}.svc:{PROMETHEUS_PORT}")
}

/// The `BesuNode` of a network's monitoring component (`prometheus` or `grafana`).
pub fn desired_monitoring_node(
    network: &BesuNetwork,
    node_type: NodeType,
) -> Result<BesuNode, RenderError> {
    let name = network.name_any();
    let node = super::network::node_name(&name, node_type, 0);
    let m = &network.spec.monitoring;
    let image = match node_type {
        NodeType::Grafana => m.grafana_image(),
        _ => m.prometheus_image(),
    };
    Ok(BesuNode {
        metadata: ObjectMeta {
            name: Some(node.clone()),
            namespace: Some(
                network
                    .namespace()
                    .ok_or_else(|| RenderError::NoNamespace {
                        kind: "BesuNetwork",
                        name: name.clone(),
                    })?,
            ),
            labels: Some(node_labels(&node, node_type, Some(&name))),
            owner_references: network.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: BesuNodeSpec {
            node_type,
            network: Some(name),
            consensus: None,
            image: image.to_string(),
            resources: None,
            storage: StorageSpec::default(),
            ports: PortsSpec::default(),
            rpc_apis: Vec::new(),
            key_secret_ref: None,
            genesis_config_map_ref: None,
            bootnodes: Vec::new(),
            static_nodes_config_map_ref: None,
            free_gas: false,
            extra_args: Vec::new(),
            node_selector: network.spec.node_template.node_selector.clone(),
            tolerations: network.spec.node_template.tolerations.clone(),
            affinity: None,
            deletion_policy: network.spec.deletion_policy,
            stopped: false,
            from_snapshot: None,
        },
        status: None,
    })
}

fn sanitize(label: &str) -> String {
    label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// `prometheus.yml` for a network: Besu pods found by `kubernetes_sd_configs` (role pod,
/// this namespace only, this network's pods), their `metrics` port kept; the operator
/// scraped at `operator_target` with only this network's series kept.
pub fn prometheus_config(namespace: &str, network: &str, operator_target: Option<&str>) -> String {
    let pod_label = |l: &str| format!("__meta_kubernetes_pod_label_{}", sanitize(l));
    let mut jobs = vec![json!({
        "job_name": "besu",
        "scrape_interval": "5s",
        "kubernetes_sd_configs": [{
            "role": "pod",
            "namespaces": {"names": [namespace]},
            "selectors": [{
                "role": "pod",
                "label": format!("{}={network},app.kubernetes.io/name=besu", besu_operator_api::LABEL_NETWORK),
            }],
        }],
        "relabel_configs": [
            {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "metrics", "action": "keep"},
            {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Running", "action": "keep"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": [pod_label(besu_operator_api::LABEL_NETWORK)], "target_label": "network"},
            {"source_labels": [pod_label(besu_operator_api::LABEL_NODE)], "target_label": "node"},
            {"source_labels": [pod_label(besu_operator_api::LABEL_NODE_TYPE)], "target_label": "role"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ],
    })];
    if let Some(target) = operator_target {
        jobs.push(json!({
            "job_name": "besu-operator",
            "scrape_interval": "5s",
            "static_configs": [{"targets": [target]}],
            // The operator reports every network it runs; keep this network's series
            // and the controller-wide ones (no namespace/network label).
            "metric_relabel_configs": [{
                "source_labels": ["namespace", "network"],
                "regex": format!("{};{}|;", regex_escape(namespace), regex_escape(network)),
                "action": "keep",
            }],
        }));
    }
    let config = json!({
        "global": {"scrape_interval": "15s", "evaluation_interval": "5s"},
        "rule_files": [RULES_FILE],
        "scrape_configs": jobs,
    });
    serde_yaml::to_string(&config).unwrap_or_default()
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

/// One alert rule: name, PromQL, how long it must hold, severity, summary.
pub struct AlertRule {
    /// Alert name.
    pub name: &'static str,
    /// PromQL expression.
    pub expr: String,
    /// `for` duration.
    pub for_: &'static str,
    /// `critical` or `warning`.
    pub severity: &'static str,
    /// Human summary (may use `$labels`).
    pub summary: &'static str,
}

/// The network's alert rules. Chain-level rules use the operator's figures
/// (`besu_network_*`), which come from the nodes' JSON-RPC; node-level rules use Besu's
/// own metrics as scraped.
pub fn alert_rules() -> Vec<AlertRule> {
    vec![
        AlertRule {
            name: "BesuChainNotProducing",
            expr: "besu_network_producing == 0 or max by (namespace, network) (max_over_time(ethereum_blockchain_height[2m]) - min_over_time(ethereum_blockchain_height[2m])) == 0".to_string(),
            for_: "30s",
            severity: "critical",
            summary: "Network {{ $labels.namespace }}/{{ $labels.network }} is not producing blocks: more than a third of its validators may be down",
        },
        AlertRule {
            name: "BesuValidatorDown",
            expr: "besu_network_validators{state=\"onchain\"} - ignoring(state) besu_network_validators{state=\"ready\"} > 0".to_string(),
            for_: "1m",
            severity: "warning",
            summary: "{{ $value }} on-chain validator(s) of {{ $labels.namespace }}/{{ $labels.network }} are not Ready",
        },
        AlertRule {
            name: "BesuFaultToleranceZero",
            expr: "besu_network_fault_tolerance <= 0".to_string(),
            for_: "1m",
            severity: "critical",
            summary: "Network {{ $labels.namespace }}/{{ $labels.network }} cannot lose another validator without halting",
        },
        AlertRule {
            name: "BesuPeerCountLow",
            expr: format!("ethereum_peer_count < {MIN_PEERS}"),
            for_: "2m",
            severity: "warning",
            summary: "Node {{ $labels.node }} has {{ $value }} peers",
        },
        AlertRule {
            name: "BesuNodeBehindHead",
            expr: format!("max by (namespace, network) (ethereum_blockchain_height) - on(namespace, network) group_right ethereum_blockchain_height > {MAX_BLOCKS_BEHIND}"),
            for_: "1m",
            severity: "warning",
            summary: "Node {{ $labels.node }} is {{ $value }} blocks behind the head",
        },
        AlertRule {
            name: "BesuOperatorReconcileErrors",
            expr: "sum by (controller, error) (increase(besu_operator_reconcile_errors_total[5m])) > 0".to_string(),
            for_: "5m",
            severity: "warning",
            summary: "The besu-operator {{ $labels.controller }} controller keeps failing ({{ $labels.error }})",
        },
    ]
}

fn rule_groups() -> Value {
    rule_groups_of("besu-network", alert_rules())
}

/// Alert rules as one Prometheus rule group named `group` (the `groups:` list).
pub fn rule_groups_of(group: &str, rules: Vec<AlertRule>) -> Value {
    let rules: Vec<Value> = rules
        .into_iter()
        .map(|r| {
            json!({
                "alert": r.name,
                "expr": r.expr,
                "for": r.for_,
                "labels": {"severity": r.severity},
                "annotations": {"summary": r.summary},
            })
        })
        .collect();
    json!([{"name": group, "rules": rules}])
}

/// The Prometheus rule file (`groups:`).
pub fn alert_rules_yaml() -> String {
    serde_yaml::to_string(&json!({"groups": rule_groups()})).unwrap_or_default()
}

/// A Prometheus Operator `PrometheusRule` with the same rules, for clusters that run it.
pub fn prometheus_rule(node: &BesuNode) -> Result<Value, RenderError> {
    let meta = meta(node, &node.name_any())?;
    Ok(json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": meta,
        "spec": {"groups": rule_groups()},
    }))
}

/// A Prometheus Operator `PodMonitor` for the network's Besu pods.
pub fn pod_monitor(node: &BesuNode) -> Result<Value, RenderError> {
    let meta = meta(node, &node.name_any())?;
    let network = node.spec.network.clone().unwrap_or_default();
    Ok(json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": {
                besu_operator_api::LABEL_NETWORK: network,
                "app.kubernetes.io/name": "besu",
            }},
            "podMetricsEndpoints": [{"port": "metrics", "interval": "15s"}],
        },
    }))
}

fn meta(node: &BesuNode, name: &str) -> Result<ObjectMeta, RenderError> {
    Ok(ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(node.namespace().ok_or_else(|| RenderError::NoNamespace {
            kind: "BesuNode",
            name: node.name_any(),
        })?),
        labels: Some(node_labels(
            &node.name_any(),
            node.spec.node_type,
            node.spec.network.as_deref(),
        )),
        owner_references: node.controller_owner_ref(&()).map(|o| vec![o]),
        ..ObjectMeta::default()
    })
}

fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, MonitoringError> {
    Ok(serde_json::from_value(v)?)
}

fn pod_security() -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": 65534,
        "runAsGroup": 65534,
        "fsGroup": 65534,
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

fn container_security() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]},
    })
}

/// What the Prometheus node runs: ServiceAccount, Role (pods get/list/watch in the
/// namespace), RoleBinding, ConfigMap, Service and StatefulSet.
pub struct PrometheusObjects {
    /// Identity of the Prometheus pod.
    pub service_account: ServiceAccount,
    /// Pod discovery in this namespace only.
    pub role: Role,
    /// Binds the Role to the ServiceAccount.
    pub role_binding: RoleBinding,
    /// `prometheus.yml` and the rules.
    pub config_map: ConfigMap,
    /// Port 9090.
    pub service: Service,
    /// One replica with a PVC.
    pub statefulset: StatefulSet,
}

/// Renders the `prometheus` node.
pub fn prometheus_objects(
    node: &BesuNode,
    operator_target: Option<&str>,
) -> Result<PrometheusObjects, MonitoringError> {
    let name = node.name_any();
    let ns = node.namespace().unwrap_or_default();
    let network = node.spec.network.clone().unwrap_or_else(|| name.clone());
    let m = meta(node, &name)?;
    let config = prometheus_config(&ns, &network, operator_target);
    let rules = alert_rules_yaml();
    let checksum = sha256_hex(&format!("{config}\n---\n{rules}"));
    let cm_meta = meta(node, &config_map_name(&name))?;
    let selector = json!({besu_operator_api::LABEL_NODE: name});
    let labels = m.labels.clone().unwrap_or_default();
    let resources = node.spec.resources.clone().map_or_else(
        || json!({"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}),
        |r| serde_json::to_value(r).unwrap_or(Value::Null),
    );
    let mut pvc = json!({
        "metadata": {"name": "data", "labels": labels},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": node.spec.storage.size}},
        },
    });
    if let Some(class) = &node.spec.storage.storage_class_name {
        pvc["spec"]["storageClassName"] = json!(class);
    }
    let statefulset = from_json(json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": m,
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {super::node::CONFIG_CHECKSUM_ANNOTATION: checksum},
                },
                "spec": {
                    "serviceAccountName": name,
                    "securityContext": pod_security(),
                    "nodeSelector": node.spec.node_selector,
                    "tolerations": node.spec.tolerations,
                    "containers": [{
                        "name": "prometheus",
                        "image": node.spec.image,
                        "args": [
                            format!("--config.file=/etc/prometheus/{PROMETHEUS_CONFIG_FILE}"),
                            "--storage.tsdb.path=/prometheus",
                            format!("--storage.tsdb.retention.time={PROMETHEUS_RETENTION}"),
                            format!("--web.listen-address=:{PROMETHEUS_PORT}"),
                        ],
                        "ports": [{"name": "http", "containerPort": PROMETHEUS_PORT, "protocol": "TCP"}],
                        "readinessProbe": {"httpGet": {"path": "/-/ready", "port": PROMETHEUS_PORT}, "periodSeconds": 10},
                        "livenessProbe": {"httpGet": {"path": "/-/healthy", "port": PROMETHEUS_PORT}, "periodSeconds": 15, "failureThreshold": 4},
                        "resources": resources,
                        "securityContext": container_security(),
                        "volumeMounts": [
                            {"name": "config", "mountPath": "/etc/prometheus", "readOnly": true},
                            {"name": "data", "mountPath": "/prometheus"},
                        ],
                    }],
                    "volumes": [{"name": "config", "configMap": {"name": config_map_name(&name)}}],
                },
            },
            "volumeClaimTemplates": [pvc],
        },
    }))?;
    Ok(PrometheusObjects {
        service_account: ServiceAccount {
            metadata: m.clone(),
            automount_service_account_token: Some(true),
            ..ServiceAccount::default()
        },
        role: from_json(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": m,
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
        }))?,
        role_binding: from_json(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": m,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
        }))?,
        config_map: ConfigMap {
            metadata: cm_meta,
            data: Some(BTreeMap::from([
                (PROMETHEUS_CONFIG_FILE.to_string(), config),
                (RULES_FILE.to_string(), rules),
            ])),
            ..ConfigMap::default()
        },
        service: from_json(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": m,
            "spec": {
                "selector": selector,
                "ports": [{"name": "http", "port": PROMETHEUS_PORT, "targetPort": PROMETHEUS_PORT, "protocol": "TCP"}],
            },
        }))?,
        statefulset,
    })
}

/// The dashboard's panels: title, unit and PromQL (one query each). Every query names
/// this network's series only.
pub fn dashboard_panels(
    namespace: &str,
    network: &str,
) -> Vec<(&'static str, &'static str, String)> {
    let sel = format!("namespace=\"{namespace}\",network=\"{network}\"");
    vec![
        (
            "Block height per node",
            "none",
            format!("ethereum_blockchain_height{{{sel}}}"),
        ),
        (
            "Blocks per minute",
            "none",
            format!("60 * max by (network) (deriv(ethereum_blockchain_height{{{sel}}}[2m]))"),
        ),
        (
            "Peers per node",
            "none",
            format!("ethereum_peer_count{{{sel}}}"),
        ),
        (
            "Validators (desired, on-chain, ready)",
            "none",
            format!("besu_network_validators{{{sel}}}"),
        ),
        (
            "Fault tolerance (validators that may still stop)",
            "none",
            format!("besu_network_fault_tolerance{{{sel}}}"),
        ),
        (
            "Sync lag (blocks behind the head)",
            "none",
            format!(
                "scalar(max(ethereum_blockchain_height{{{sel}}})) - ethereum_blockchain_height{{{sel}}}"
            ),
        ),
        (
            "In sync",
            "none",
            format!("besu_synchronizer_in_sync{{{sel}}}"),
        ),
        (
            "CPU (cores)",
            "none",
            format!("rate(process_cpu_seconds_total{{{sel}}}[2m])"),
        ),
        (
            "Memory (resident)",
            "bytes",
            format!("process_resident_memory_bytes{{{sel}}}"),
        ),
    ]
}

/// The Grafana dashboard JSON (schema 39, timeseries panels on a 2-column grid).
pub fn dashboard(namespace: &str, network: &str) -> Value {
    let panels: Vec<Value> = dashboard_panels(namespace, network)
        .into_iter()
        .enumerate()
        .map(|(i, (title, unit, expr))| {
            let id = i + 1;
            json!({
                "id": id,
                "type": "timeseries",
                "title": title,
                "datasource": {"type": "prometheus", "uid": "prometheus"},
                "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i / 2) * 8},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                "targets": [{
                    "refId": "A",
                    "datasource": {"type": "prometheus", "uid": "prometheus"},
                    "expr": expr,
                    "legendFormat": "{{node}}{{state}}",
                }],
            })
        })
        .collect();
    json!({
        "uid": format!("besu-{}", &sha256_hex(&format!("{namespace}/{network}"))[..16]),
        "title": format!("Besu network {namespace}/{network}"),
        "tags": ["besu", "besu-operator"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": false,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "panels": panels,
    })
}

/// What the Grafana node runs (besides its admin Secret, created once).
pub struct GrafanaObjects {
    /// Datasource, dashboard provider and dashboard.
    pub config_map: ConfigMap,
    /// Port 3000.
    pub service: Service,
    /// One replica.
    pub deployment: Deployment,
}

/// A random Grafana admin password: 24 bytes from the OS, hex. Never logged.
pub fn generate_password() -> String {
    super::random_hex(24)
}

/// The admin password Secret (created once, never overwritten; the password is
/// generated by the caller and never logged).
pub fn grafana_admin_secret(node: &BesuNode, password: &str) -> Result<Secret, RenderError> {
    let name = grafana_secret_name(&node.name_any());
    Ok(Secret {
        metadata: meta(node, &name)?,
        type_: Some("Opaque".to_string()),
        string_data: Some(BTreeMap::from([
            ("admin-user".to_string(), "admin".to_string()),
            (GRAFANA_PASSWORD_KEY.to_string(), password.to_string()),
        ])),
        ..Secret::default()
    })
}

/// Renders the `grafana` node.
pub fn grafana_objects(node: &BesuNode) -> Result<GrafanaObjects, MonitoringError> {
    let name = node.name_any();
    let ns = node.namespace().unwrap_or_default();
    let network = node.spec.network.clone().unwrap_or_else(|| name.clone());
    let m = meta(node, &name)?;
    let datasources = serde_yaml::to_string(&json!({
        "apiVersion": 1,
        "datasources": [{
            "name": "Prometheus",
            "uid": "prometheus",
            "type": "prometheus",
            "access": "proxy",
            "url": prometheus_url(&network, &ns),
            "isDefault": true,
            "editable": false,
        }],
    }))
    .unwrap_or_default();
    let providers = serde_yaml::to_string(&json!({
        "apiVersion": 1,
        "providers": [{
            "name": "besu-operator",
            "type": "file",
            "disableDeletion": true,
            "allowUiUpdates": false,
            "options": {"path": "/etc/grafana/dashboards"},
        }],
    }))
    .unwrap_or_default();
    let dashboard = serde_json::to_string_pretty(&dashboard(&ns, &network))?;
    let checksum = sha256_hex(&format!("{datasources}\n{providers}\n{dashboard}"));
    let selector = json!({besu_operator_api::LABEL_NODE: name});
    let labels = m.labels.clone().unwrap_or_default();
    let secret = grafana_secret_name(&name);
    let resources = node.spec.resources.clone().map_or_else(
        || json!({"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}),
        |r| serde_json::to_value(r).unwrap_or(Value::Null),
    );
    let item = |key: &str, path: &str| json!({"key": key, "path": path});
    Ok(GrafanaObjects {
        config_map: ConfigMap {
            metadata: meta(node, &config_map_name(&name))?,
            data: Some(BTreeMap::from([
                ("datasources.yaml".to_string(), datasources),
                ("dashboards.yaml".to_string(), providers),
                (DASHBOARD_FILE.to_string(), dashboard),
            ])),
            ..ConfigMap::default()
        },
        service: from_json(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": m,
            "spec": {
                "selector": selector,
                "ports": [{"name": "http", "port": GRAFANA_PORT, "targetPort": GRAFANA_PORT, "protocol": "TCP"}],
            },
        }))?,
        deployment: from_json(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": m,
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": selector},
                "strategy": {"type": "Recreate"},
                "template": {
                    "metadata": {
                        "labels": labels,
                        "annotations": {super::node::CONFIG_CHECKSUM_ANNOTATION: checksum},
                    },
                    "spec": {
                        "automountServiceAccountToken": false,
                        "securityContext": {
                            "runAsNonRoot": true, "runAsUser": 472, "runAsGroup": 472, "fsGroup": 472,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "nodeSelector": node.spec.node_selector,
                        "tolerations": node.spec.tolerations,
                        "containers": [{
                            "name": "grafana",
                            "image": node.spec.image,
                            "env": [
                                {"name": "GF_SECURITY_ADMIN_USER", "valueFrom": {"secretKeyRef": {"name": secret, "key": "admin-user"}}},
                                {"name": "GF_SECURITY_ADMIN_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": GRAFANA_PASSWORD_KEY}}},
                                {"name": "GF_PATHS_DATA", "value": "/var/lib/grafana"},
                                {"name": "GF_ANALYTICS_REPORTING_ENABLED", "value": "false"},
                                {"name": "GF_ANALYTICS_CHECK_FOR_UPDATES", "value": "false"},
                                {"name": "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH", "value": format!("/etc/grafana/dashboards/{DASHBOARD_FILE}")},
                            ],
                            "ports": [{"name": "http", "containerPort": GRAFANA_PORT, "protocol": "TCP"}],
                            "readinessProbe": {"httpGet": {"path": "/api/health", "port": GRAFANA_PORT}, "periodSeconds": 10},
                            "livenessProbe": {"httpGet": {"path": "/api/health", "port": GRAFANA_PORT}, "periodSeconds": 15, "failureThreshold": 4},
                            "resources": resources,
                            "securityContext": container_security(),
                            "volumeMounts": [
                                {"name": "provisioning", "mountPath": "/etc/grafana/provisioning/datasources", "readOnly": true},
                                {"name": "providers", "mountPath": "/etc/grafana/provisioning/dashboards", "readOnly": true},
                                {"name": "dashboards", "mountPath": "/etc/grafana/dashboards", "readOnly": true},
                                {"name": "data", "mountPath": "/var/lib/grafana"},
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                        }],
                        "volumes": [
                            {"name": "provisioning", "configMap": {"name": config_map_name(&name), "items": [item("datasources.yaml", "datasources.yaml")]}},
                            {"name": "providers", "configMap": {"name": config_map_name(&name), "items": [item("dashboards.yaml", "dashboards.yaml")]}},
                            {"name": "dashboards", "configMap": {"name": config_map_name(&name), "items": [item(DASHBOARD_FILE, DASHBOARD_FILE)]}},
                            {"name": "data", "emptyDir": {}},
                            {"name": "tmp", "emptyDir": {}},
                        ],
                    },
                },
            },
        }))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_config_is_namespaced_and_keeps_the_metrics_port() {
        let c = prometheus_config("ns1", "qbft", Some("op:8080"));
        let v: Value = serde_yaml::from_str(&c).expect("yaml");
        let sd = &v["scrape_configs"][0]["kubernetes_sd_configs"][0];
        assert_eq!(sd["role"], "pod");
        assert_eq!(sd["namespaces"]["names"], json!(["ns1"]));
        assert!(c.contains("regex: metrics"));
        assert_eq!(
            v["scrape_configs"][1]["static_configs"][0]["targets"],
            json!(["op:8080"])
        );
        assert!(
            prometheus_config("ns1", "qbft", None)
                .matches("job_name")
                .count()
                == 1
        );
    }

    #[test]
    fn dashboard_queries_name_this_network_only() {
        let d = dashboard("ns1", "qbft");
        let panels = d["panels"].as_array().expect("panels");
        assert_eq!(panels.len(), dashboard_panels("ns1", "qbft").len());
        for p in panels {
            let expr = p["targets"][0]["expr"].as_str().expect("expr");
            assert!(expr.contains(r#"network="qbft""#), "{expr}");
        }
        let ids: std::collections::BTreeSet<u64> =
            panels.iter().filter_map(|p| p["id"].as_u64()).collect();
        assert_eq!(ids.len(), panels.len());
    }

    #[test]
    fn six_alerts() {
        let names: Vec<&str> = alert_rules().iter().map(|r| r.name).collect();
        assert_eq!(names.len(), 6);
        assert!(alert_rules_yaml().contains("BesuFaultToleranceZero"));
    }
}
