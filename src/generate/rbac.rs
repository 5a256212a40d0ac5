//! The operator's RBAC, rule by rule, each with the API calls that need it. Every rule
//! is generated into `manifests/rbac/`, the Helm chart and the OLM bundle from here.
//!
//! Keep this list exact: a call the code makes without a rule fails with 403 in
//! `tests/rbac_cluster.rs` (the operator runs there with these rules only); a rule the
//! code does not need fails that test's allow-list check.

/// One RBAC rule: an API group, a resource (or `resource/subresource`) and verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// API group (`""` for the core group).
    pub api_group: &'static str,
    /// Resource, or `resource/subresource`.
    pub resource: &'static str,
    /// Verbs, in the order `get, list, watch, create, update, patch, delete`.
    pub verbs: &'static [&'static str],
    /// Which calls need it (written into the generated YAML as a comment).
    pub used_by: &'static str,
}

/// The API group of the CRDs.
pub const GROUP: &str = "besu.nodeops.dev";

/// Rules the controllers need in every namespace they watch: one ClusterRole for all
/// namespaces, or one Role per watched namespace.
pub fn rbac_rules() -> Vec<Rule> {
    vec![
        Rule {
            api_group: GROUP,
            resource: "besunetworks",
            verbs: &["get", "list", "watch", "patch"],
            used_by: "network controller watch (operator::network_controller); startup CRD probe (operator::run); get: each reconcile reads its network fresh, not from the watch cache (network::reconcile_inner); patch: the retired-validators annotation (network::set_retired_validators)",
        },
        Rule {
            api_group: GROUP,
            resource: "besunetworks/status",
            verbs: &["patch"],
            used_by: "network status by server-side apply (controller::status::write_status_if_changed)",
        },
        Rule {
            api_group: GROUP,
            resource: "besunodes",
            verbs: &["get", "list", "watch", "create", "patch", "delete"],
            used_by: "node controller watch, network owns; nodes by label (network::reconcile); apply_if_changed get + server-side apply (creates when absent); delete of scaled-down nodes",
        },
        Rule {
            api_group: GROUP,
            resource: "besunodes/status",
            verbs: &["patch"],
            used_by: "node status by server-side apply (controller::status::write_status_if_changed)",
        },
        Rule {
            api_group: "ethereum.nodeops.dev",
            resource: "ethereumnodes",
            verbs: &["list", "watch"],
            used_by: "EthereumNode controller watch (operator::ethereum_controller); startup CRD probe (operator::run)",
        },
        Rule {
            api_group: "ethereum.nodeops.dev",
            resource: "ethereumnodes/status",
            verbs: &["patch"],
            used_by: "EthereumNode status by server-side apply (controller::status::write_status_if_changed)",
        },
        Rule {
            api_group: "networking.k8s.io",
            resource: "ingresses",
            verbs: &["list", "watch", "create", "patch", "delete"],
            used_by: "a gateway EthereumNode's Ingress: server-side apply over the watched copy (controller::ethereum, operator::ethereum_children), deleted when spec.ingress is removed",
        },
        Rule {
            api_group: "",
            resource: "secrets",
            verbs: &["get", "list", "watch", "create", "delete"],
            used_by: "key Secrets, as metadata only (key_identity): watch (wakes network and node), list and get (network::reconcile, node::key_fact); get in full only of a key Secret the operator did not annotate (an imported key), once per version; create_once (never overwritten), delete of a removed validator's generated key with deletionPolicy Delete",
        },
        Rule {
            api_group: "",
            resource: "configmaps",
            verbs: &["get", "list", "watch", "create", "patch"],
            used_by: "genesis ConfigMap create_once and get; node ConfigMap apply_if_changed (get + server-side apply); watch",
        },
        Rule {
            api_group: "",
            resource: "services",
            verbs: &["get", "list", "watch", "create", "patch", "delete"],
            used_by: "node and EthereumNode Services: apply_if_changed (get + server-side apply); node and EthereumNode controllers own them (watch); delete of an EthereumNode's P2P Service when spec.p2pService is removed",
        },
        Rule {
            api_group: "apps",
            resource: "statefulsets",
            verbs: &["get", "list", "watch", "create", "patch"],
            used_by: "node StatefulSet: readiness get, apply_if_changed (get + server-side apply); node controller owns (watch)",
        },
        Rule {
            api_group: "policy",
            resource: "poddisruptionbudgets",
            verbs: &["get", "list", "watch", "create", "patch"],
            used_by: "validator PodDisruptionBudget: server-side apply over the network controller's cached copy (list/watch: operator::network_controller; get when the cache lacks it) in network::reconcile",
        },
        Rule {
            api_group: "networking.k8s.io",
            resource: "networkpolicies",
            verbs: &["get", "list", "watch", "create", "patch"],
            used_by: "the network's NetworkPolicy (JSON-RPC of bootnodes and validators from the operator only): server-side apply over the network controller's cached copy (list/watch: operator::network_controller; get when the cache lacks it) in network::reconcile",
        },
        Rule {
            api_group: "",
            resource: "pods",
            verbs: &["get", "list", "watch"],
            used_by: "JSON-RPC endpoints of Ready pods and how long others have been down, by label (network::observe_pods); watched for readiness changes, which open the next stage (operator::pod_readiness), and into the node controller's cache (operator::node_controller); get only so that the prometheus node's Role may grant pod discovery (RBAC escalation check)",
        },
        Rule {
            api_group: "",
            resource: "serviceaccounts",
            verbs: &["get", "create", "patch"],
            used_by: "prometheus node ServiceAccount: apply_if_changed (get + server-side apply) in controller::monitoring",
        },
        Rule {
            api_group: "rbac.authorization.k8s.io",
            resource: "roles",
            verbs: &["get", "create", "patch"],
            used_by: "prometheus node Role (pods get/list/watch in its namespace): apply_if_changed in controller::monitoring",
        },
        Rule {
            api_group: "rbac.authorization.k8s.io",
            resource: "rolebindings",
            verbs: &["get", "create", "patch"],
            used_by: "prometheus node RoleBinding: apply_if_changed in controller::monitoring",
        },
        Rule {
            api_group: "apps",
            resource: "deployments",
            verbs: &["get", "list", "watch", "create", "patch"],
            used_by: "grafana node Deployment: readiness get, apply_if_changed (get + server-side apply) in controller::monitoring; list/watch: the node controller owns it, so its rollout re-reconciles the BesuNode",
        },
        Rule {
            api_group: "monitoring.coreos.com",
            resource: "prometheusrules",
            verbs: &["get", "create", "patch"],
            used_by: "alert rules as a PrometheusRule when the Prometheus Operator CRDs exist (controller::monitoring::apply_dynamic)",
        },
        Rule {
            api_group: "monitoring.coreos.com",
            resource: "podmonitors",
            verbs: &["get", "create", "patch"],
            used_by: "a PodMonitor for the network's Besu pods when the Prometheus Operator CRDs exist (controller::monitoring::apply_dynamic)",
        },
        Rule {
            api_group: "",
            resource: "persistentvolumeclaims",
            verbs: &["get", "list", "watch", "create", "patch"],
            used_by: "a node's data volume exists, so its key is never generated anew (network::reconcile); the node's data volume is created before its StatefulSet, and owned by the BesuNode under deletionPolicy Delete (node::ensure_data_claim); watched into the node controller's cache (operator::node_controller); an EthereumNode replica's volumes made from a backup before its pod (controller::ethereum)",
        },
        Rule {
            api_group: "snapshot.storage.k8s.io",
            resource: "volumesnapshots",
            verbs: &["get", "list", "create", "delete"],
            used_by: "spec.backup: a network's snapshots listed (seeding, retention, a run's readiness), created with the node stopped, the oldest beyond spec.backup.keep deleted; spec.restore: the snapshot read (controller::snapshots); the same for an EthereumNode's backups (controller::ethereum_backup)",
        },
        Rule {
            api_group: "events.k8s.io",
            resource: "events",
            verbs: &["create", "patch"],
            used_by: "Events (kube::runtime::events::Recorder: create, patch for a repeated event's series)",
        },
    ]
}

/// Rules for `besu-operator run --install-crds` (a ClusterRole that is generated but not
/// bound: bind it to the operator's ServiceAccount to turn the flag on).
pub fn crd_installer_rules() -> Vec<Rule> {
    vec![Rule {
        api_group: "apiextensions.k8s.io",
        resource: "customresourcedefinitions",
        verbs: &["get", "list", "watch", "create", "patch"],
        used_by: "--install-crds: server-side apply of each CRD (operator::install_crds), then watch until Established",
    }]
}

/// Rules for leader election, in the operator's own namespace only (a Role).
pub fn leader_election_rules() -> Vec<Rule> {
    vec![Rule {
        api_group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "create", "update"],
        used_by: "leader election Lease (leader::LeaderElector: get, create when absent, update to renew, take over or release)",
    }]
}

/// The rules as the YAML list of a (Cluster)Role, one rule per resource, each preceded
/// by a comment naming the calls that need it; every line indented by `indent` spaces.
pub fn rules_yaml(rules: &[Rule], indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    for r in rules {
        out.push_str(&format!("{pad}# {}\n", r.used_by));
        let group = if r.api_group.is_empty() {
            "\"\"".to_string()
        } else {
            r.api_group.to_string()
        };
        out.push_str(&format!("{pad}- apiGroups: [{group}]\n"));
        out.push_str(&format!("{pad}  resources: [{}]\n", r.resource));
        out.push_str(&format!("{pad}  verbs: [{}]\n", r.verbs.join(", ")));
    }
    out
}

/// The rules as Kubernetes PolicyRules.
pub fn policy_rules(rules: &[Rule]) -> Vec<k8s_openapi::api::rbac::v1::PolicyRule> {
    rules
        .iter()
        .map(|r| k8s_openapi::api::rbac::v1::PolicyRule {
            api_groups: Some(vec![r.api_group.to_string()]),
            resources: Some(vec![r.resource.to_string()]),
            verbs: r.verbs.iter().map(|v| v.to_string()).collect(),
            ..Default::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_wildcards_and_no_duplicates() {
        let all: Vec<Rule> = rbac_rules()
            .into_iter()
            .chain(leader_election_rules())
            .chain(crd_installer_rules())
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for r in &all {
            assert!(!r.resource.contains('*') && !r.api_group.contains('*'));
            assert!(r.verbs.iter().all(|v| !v.contains('*')));
            assert!(seen.insert((r.api_group, r.resource)), "{r:?} twice");
            assert!(!r.used_by.contains('\n'));
        }
    }

    #[test]
    fn rules_yaml_parses_back_to_the_policy_rules() {
        let yaml = rules_yaml(&rbac_rules(), 0);
        let parsed: Vec<k8s_openapi::api::rbac::v1::PolicyRule> =
            serde_yaml::from_str(&yaml).expect("yaml");
        assert_eq!(parsed, policy_rules(&rbac_rules()));
    }
}
