//! The plain-manifest install: Namespace, CRDs, ServiceAccount, RBAC, Deployment and the
//! metrics Service. The same functions feed `manifests/`, the Helm chart comparison and
//! the OLM bundle.

use crate::render::field_env;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, HTTPGetAction, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext, Service,
    ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;

use super::rbac::{leader_election_rules, rbac_rules, rules_yaml};

/// Name of every install object (ServiceAccount, Deployment, ClusterRole, ...).
pub const NAME: &str = "besu-operator";
/// Default install namespace.
pub const NAMESPACE: &str = "besu-operator-system";
/// Image repository of the operator.
pub const IMAGE_REPOSITORY: &str = "ghcr.io/nodeops/besu-operator";
/// Port of `/healthz`, `/readyz` and `/metrics`.
pub const HTTP_PORT: i32 = 8080;
/// Name of the container in the Deployment.
pub const CONTAINER: &str = "operator";
/// Name of the leader election Lease.
pub const LEASE_NAME: &str = "besu-operator-leader";
/// Leader election defaults written into the Deployment's arguments.
pub const LEASE_SECONDS: u64 = 15;
/// See [`LEASE_SECONDS`].
pub const RENEW_SECONDS: u64 = 10;
/// See [`LEASE_SECONDS`].
pub const RETRY_SECONDS: u64 = 2;
/// Default `RUST_LOG`.
pub const LOG_LEVEL: &str = "info,kube=warn";

/// The image of this version.
pub fn default_image() -> String {
    format!("{IMAGE_REPOSITORY}:{}", env!("CARGO_PKG_VERSION"))
}

/// What an install looks like.
#[derive(Clone, Debug)]
pub struct InstallOptions {
    /// Namespace of the operator (ServiceAccount, Deployment, Lease).
    pub namespace: String,
    /// Namespaces to watch; empty: all, with a ClusterRole. Otherwise one Role and
    /// RoleBinding per namespace and no ClusterRole.
    pub watch_namespaces: Vec<String>,
    /// Operator image.
    pub image: String,
    /// Replicas (leader election keeps all but one idle).
    pub replicas: i32,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            namespace: NAMESPACE.to_string(),
            watch_namespaces: Vec::new(),
            image: default_image(),
            replicas: 1,
        }
    }
}

/// The labels of every install object.
pub fn labels() -> BTreeMap<String, String> {
    [
        ("app.kubernetes.io/name", NAME),
        ("app.kubernetes.io/instance", NAME),
        ("app.kubernetes.io/component", "operator"),
        ("app.kubernetes.io/version", env!("CARGO_PKG_VERSION")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The Deployment's selector labels.
pub fn selector_labels() -> BTreeMap<String, String> {
    [
        ("app.kubernetes.io/name", NAME),
        ("app.kubernetes.io/instance", NAME),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels()),
        ..ObjectMeta::default()
    }
}

fn yaml<T: serde::Serialize>(what: &str, obj: &T) -> Result<String, super::GenerateError> {
    serde_yaml::to_string(obj).map_err(|source| super::GenerateError::Yaml {
        what: what.to_string(),
        source,
    })
}

fn labels_yaml(indent: usize) -> String {
    let pad = " ".repeat(indent);
    labels()
        .iter()
        .map(|(k, v)| format!("{pad}{k}: {}\n", quote(v)))
        .collect()
}

/// A YAML scalar, quoted when it would not read back as the same string.
fn quote(v: &str) -> String {
    match serde_yaml::from_str::<serde_yaml::Value>(v) {
        Ok(serde_yaml::Value::String(s)) if s == v && !v.contains(['#', ':']) => v.to_string(),
        _ => format!("\"{v}\""),
    }
}

/// The operator's Namespace, with the `restricted` Pod Security Standard enforced (the
/// Deployment meets it).
pub fn namespace_yaml(namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n  labels:\n{}    pod-security.kubernetes.io/enforce: restricted\n",
        labels_yaml(4)
    )
}

/// The operator's ServiceAccount.
pub fn service_account_yaml(namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {NAME}\n  namespace: {namespace}\n  labels:\n{}",
        labels_yaml(4)
    )
}

fn role_yaml(kind: &str, name: &str, namespace: Option<&str>, rules: &str) -> String {
    let ns = namespace.map_or(String::new(), |n| format!("  namespace: {n}\n"));
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: {kind}\nmetadata:\n  name: {name}\n{ns}  labels:\n{}rules:\n{rules}",
        labels_yaml(4)
    )
}

fn binding_yaml(
    kind: &str,
    role_kind: &str,
    name: &str,
    namespace: Option<&str>,
    sa_namespace: &str,
) -> String {
    let ns = namespace.map_or(String::new(), |n| format!("  namespace: {n}\n"));
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: {kind}\nmetadata:\n  name: {name}\n{ns}  labels:\n{}roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: {role_kind}\n  name: {name}\nsubjects:\n- kind: ServiceAccount\n  name: {NAME}\n  namespace: {sa_namespace}\n",
        labels_yaml(4)
    )
}

/// Name of the Role (and RoleBinding) for leader election.
pub const LEADER_ELECTION_ROLE: &str = "besu-operator-leader-election";

/// The ClusterRole with [`rbac_rules`].
pub fn cluster_role_yaml() -> String {
    role_yaml("ClusterRole", NAME, None, &rules_yaml(&rbac_rules(), 0))
}

/// The ClusterRole `besu-operator run --install-crds` needs; not bound by the manifests.
pub fn crd_installer_role_yaml() -> String {
    format!(
        "# Bind this ClusterRole to the operator's ServiceAccount only to run it with --install-crds:\n#   kubectl create clusterrolebinding besu-operator-crd-installer --clusterrole=besu-operator-crd-installer --serviceaccount=besu-operator-system:besu-operator\n{}",
        role_yaml(
            "ClusterRole",
            "besu-operator-crd-installer",
            None,
            &rules_yaml(&super::rbac::crd_installer_rules(), 0),
        )
    )
}

/// Binds the ClusterRole to the ServiceAccount.
pub fn cluster_role_binding_yaml(namespace: &str) -> String {
    binding_yaml("ClusterRoleBinding", "ClusterRole", NAME, None, namespace)
}

/// The Role with [`rbac_rules`] in one watched namespace.
pub fn watch_role_yaml(watched: &str) -> String {
    role_yaml("Role", NAME, Some(watched), &rules_yaml(&rbac_rules(), 0))
}

/// Binds a watched namespace's Role to the ServiceAccount in `namespace`.
pub fn watch_role_binding_yaml(watched: &str, namespace: &str) -> String {
    binding_yaml("RoleBinding", "Role", NAME, Some(watched), namespace)
}

/// The leader election Role in the operator's namespace.
pub fn leader_election_role_yaml(namespace: &str) -> String {
    role_yaml(
        "Role",
        LEADER_ELECTION_ROLE,
        Some(namespace),
        &rules_yaml(&leader_election_rules(), 0),
    )
}

/// Binds the leader election Role.
pub fn leader_election_role_binding_yaml(namespace: &str) -> String {
    binding_yaml(
        "RoleBinding",
        "Role",
        LEADER_ELECTION_ROLE,
        Some(namespace),
        namespace,
    )
}

/// The container's arguments.
pub fn operator_args(watch_namespaces: &[String]) -> Vec<String> {
    let mut args = vec![
        "run".to_string(),
        format!("--http-addr=0.0.0.0:{HTTP_PORT}"),
        "--log-format=json".to_string(),
        "--leader-elect=true".to_string(),
        format!("--leader-elect-lease={LEASE_NAME}"),
        format!("--leader-elect-lease-seconds={LEASE_SECONDS}"),
        format!("--leader-elect-renew-seconds={RENEW_SECONDS}"),
        format!("--leader-elect-retry-seconds={RETRY_SECONDS}"),
    ];
    if !watch_namespaces.is_empty() {
        args.push(format!("--namespaces={}", watch_namespaces.join(",")));
    }
    args
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

fn http_probe(path: &str, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("http".to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// The operator's Deployment: non-root, read-only root filesystem, no capabilities,
/// seccomp `RuntimeDefault`, requests and limits, probes on the HTTP port.
pub fn deployment(opts: &InstallOptions) -> Deployment {
    let container = Container {
        name: CONTAINER.to_string(),
        image: Some(opts.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        args: Some(operator_args(&opts.watch_namespaces)),
        env: Some(vec![
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            EnvVar {
                name: "RUST_LOG".to_string(),
                value: Some(LOG_LEVEL.to_string()),
                ..EnvVar::default()
            },
            // Where a network's Prometheus scrapes the operator: the metrics Service.
            EnvVar {
                name: "BESU_OPERATOR_METRICS_TARGET".to_string(),
                value: Some(format!("{NAME}-metrics.$(POD_NAMESPACE).svc:{HTTP_PORT}")),
                ..EnvVar::default()
            },
            // The operator's own image, which EthereumNode pods on a compressed custom
            // network run as an init container (besu-operator network-files).
            EnvVar {
                name: "BESU_OPERATOR_IMAGE".to_string(),
                value: Some(opts.image.clone()),
                ..EnvVar::default()
            },
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_string()),
            container_port: HTTP_PORT,
            protocol: Some("TCP".to_string()),
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(Probe {
            initial_delay_seconds: Some(5),
            ..http_probe("/healthz", 10)
        }),
        readiness_probe: Some(http_probe("/readyz", 5)),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "50m"), ("memory", "64Mi")])),
            limits: Some(quantities(&[("cpu", "500m"), ("memory", "256Mi")])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Container::default()
    };
    Deployment {
        metadata: meta(NAME, Some(&opts.namespace)),
        spec: DeploymentSpec {
            replicas: Some(opts.replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels()),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                // One leader at a time anyway; a new pod takes over when the old
                // one releases its Lease on SIGTERM.
                type_: Some("RollingUpdate".to_string()),
                ..DeploymentStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    annotations: Some(
                        [(
                            "kubectl.kubernetes.io/default-container".to_string(),
                            CONTAINER.to_string(),
                        )]
                        .into(),
                    ),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(NAME.to_string()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        run_as_group: Some(65532),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_string(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    termination_grace_period_seconds: Some(10),
                    containers: vec![container],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}

/// The Deployment as YAML.
pub fn deployment_yaml(opts: &InstallOptions) -> Result<String, super::GenerateError> {
    yaml("Deployment", &deployment(opts))
}

/// The Service in front of the HTTP port (for scraping `/metrics`).
pub fn metrics_service(namespace: &str) -> Service {
    Service {
        metadata: meta(&format!("{NAME}-metrics"), Some(namespace)),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels()),
            ports: Some(vec![ServicePort {
                name: Some("http-metrics".to_string()),
                port: HTTP_PORT,
                target_port: Some(IntOrString::String("http".to_string())),
                protocol: Some("TCP".to_string()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The metrics Service as YAML.
pub fn metrics_service_yaml(namespace: &str) -> Result<String, super::GenerateError> {
    yaml("Service", &metrics_service(namespace))
}

/// The RBAC documents for these options, in apply order.
pub fn rbac_documents(opts: &InstallOptions) -> Vec<String> {
    let mut docs = vec![service_account_yaml(&opts.namespace)];
    if opts.watch_namespaces.is_empty() {
        docs.push(cluster_role_yaml());
        docs.push(cluster_role_binding_yaml(&opts.namespace));
    } else {
        for w in &opts.watch_namespaces {
            docs.push(watch_role_yaml(w));
            docs.push(watch_role_binding_yaml(w, &opts.namespace));
        }
    }
    docs.push(leader_election_role_yaml(&opts.namespace));
    docs.push(leader_election_role_binding_yaml(&opts.namespace));
    docs
}

/// Every document of a full install, in apply order: Namespace, CRDs, RBAC,
/// Deployment, Service.
pub fn install_documents(opts: &InstallOptions) -> Result<Vec<String>, super::GenerateError> {
    let mut docs = vec![namespace_yaml(&opts.namespace)];
    for crd in besu_operator_api::crds() {
        docs.push(yaml(crd.metadata.name.as_deref().unwrap_or("CRD"), &crd)?);
    }
    docs.extend(rbac_documents(opts));
    docs.push(deployment_yaml(opts)?);
    docs.push(metrics_service_yaml(&opts.namespace)?);
    Ok(docs)
}

/// Documents joined into one multi-document stream.
pub fn join_documents(header: &str, docs: &[String]) -> String {
    let mut out = String::from(header);
    for d in docs {
        out.push_str("---\n");
        out.push_str(d);
        if !d.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}
