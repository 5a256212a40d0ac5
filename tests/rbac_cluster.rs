//! RBAC is enough, and only just: the operator binary runs out of cluster as the
//! ServiceAccount of `manifests/rbac/` (a token, no admin credentials), watching every
//! namespace with the ClusterRole and the leader election Role exactly as committed, and
//! brings the qbft sample up to Ready, scales it down and turns its deletionPolicy to
//! Delete. Then the audit log shows no request it was refused (enough), and every granted
//! verb on every resource was used (only just), except for the few documented below that
//! this run cannot reach.

mod install_support;
mod operator;
mod safety;
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use besu_operator_api::{BesuNetwork, BesuNode, EthereumNode, NetworkPhase};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use kube::api::{ApiResource, DynamicObject};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::Value;

use install_support::{
    ClusterScopedCleanup, OperatorProcess, audit_by_user, kubectl_apply, token_kubeconfig,
    wait_phase,
};
use operator::{install_crds, sample};
use support::{
    Check, TestNamespace, cluster, not_yet, repo_root, service_account_token, unique_name,
    wait_until,
};

const BRING_UP: Duration = Duration::from_secs(180);

/// Granted but not reached by this test (or not in every run of it), each with the code
/// path that needs it.
const NOT_EXERCISED: [(&str, &str, &str, &str); 10] = [
    (
        "events.k8s.io",
        "events",
        "patch",
        "kube Recorder patches an Event only when the same event repeats within its cache TTL",
    ),
    (
        "",
        "secrets",
        "delete",
        "network::reconcile deletes a generated key Secret only when a validator is voted out with deletionPolicy Delete (tests/day2.rs territory)",
    ),
    (
        "besu.nodeops.dev",
        "besunetworks",
        "patch",
        "network::set_retired_validators marks a genesis validator voted out under deletionPolicy Delete (tests/day2.rs delete_policy_scale_down_and_up_gives_a_genesis_validator_a_new_key)",
    ),
    (
        "besu.nodeops.dev",
        "besunetworks",
        "get",
        "network::observe::observe_network reads the network live only when the cache does not yet show this operator's last status write; whether a reconcile starts in that window depends on the watch's latency (some runs do, some do not)",
    ),
    (
        "snapshot.storage.k8s.io",
        "volumesnapshots",
        "list",
        "spec.backup and spec.restore only (controller::snapshots; tests/real_node_backup.rs, on the cluster that serves the API)",
    ),
    (
        "snapshot.storage.k8s.io",
        "volumesnapshots",
        "get",
        "spec.restore naming a snapshot without the network's label (network::observe_snapshots; tests/real_node_backup.rs)",
    ),
    (
        "snapshot.storage.k8s.io",
        "volumesnapshots",
        "create",
        "a spec.backup run (controller::snapshots::create; tests/real_node_backup.rs)",
    ),
    (
        "snapshot.storage.k8s.io",
        "volumesnapshots",
        "delete",
        "retention beyond spec.backup.keep (controller::snapshots::delete; tests/real_node_backup.rs)",
    ),
    (
        "",
        "pods",
        "get",
        "not called: held so that the prometheus node's Role (pods get/list/watch) passes the RBAC escalation check",
    ),
    (
        "",
        "pods",
        "watch",
        "not called: held so that the prometheus node's Role (pods get/list/watch) passes the RBAC escalation check",
    ),
];

/// Stand-ins for the Prometheus Operator's CRDs, so that the operator also applies its
/// PrometheusRule and PodMonitor (controller::monitoring, only when these exist).
const PROMETHEUS_OPERATOR_CRDS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: prometheusrules.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {kind: PrometheusRule, listKind: PrometheusRuleList, plural: prometheusrules, singular: prometheusrule}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: podmonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {kind: PodMonitor, listKind: PodMonitorList, plural: podmonitors, singular: podmonitor}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

/// The committed RBAC documents, moved into `namespace`, with cluster-scoped names
/// made unique (`cluster_name`); rules untouched.
fn committed_rbac(namespace: &str, cluster_name: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    for file in [
        "service_account",
        "cluster_role",
        "cluster_role_binding",
        "leader_election_role",
        "leader_election_role_binding",
    ] {
        let path = repo_root().join(format!("manifests/rbac/{file}.yaml"));
        let text = std::fs::read_to_string(&path).with_context(|| format!("read {path:?}"))?;
        let mut doc: Value = serde_yaml::from_str(&text)?;
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        if doc["metadata"].get("namespace").is_some() {
            doc["metadata"]["namespace"] = namespace.into();
        }
        if kind.starts_with("Cluster") {
            doc["metadata"]["name"] = cluster_name.into();
        }
        if kind == "ClusterRoleBinding" {
            doc["roleRef"]["name"] = cluster_name.into();
        }
        if let Some(subjects) = doc.get_mut("subjects").and_then(Value::as_array_mut) {
            for s in subjects {
                s["namespace"] = namespace.into();
            }
        }
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&doc)?);
    }
    Ok(out)
}

/// (group, resource, verb) triples of RBAC rules; fails on any `*`.
fn granted(rules: &[PolicyRule]) -> anyhow::Result<BTreeSet<(String, String, String)>> {
    let mut out = BTreeSet::new();
    for r in rules {
        let groups = r.api_groups.clone().unwrap_or_default();
        let resources = r.resources.clone().unwrap_or_default();
        ensure!(
            r.non_resource_urls.is_none() && r.resource_names.is_none(),
            "unexpected rule shape {r:?}"
        );
        for g in &groups {
            for res in &resources {
                for v in &r.verbs {
                    ensure!(
                        !g.contains('*') && !res.contains('*') && !v.contains('*'),
                        "wildcard in rule {r:?}"
                    );
                    out.insert((g.clone(), res.clone(), v.clone()));
                }
            }
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_as_the_manifest_service_account_brings_a_network_up_using_every_rule()
-> anyhow::Result<()> {
    let c = cluster();
    let admin = c.client().await?;
    install_crds(&admin).await?;
    let op_ns = TestNamespace::create(&admin, "rbac-op").await?;
    let net_ns = TestNamespace::create(&admin, "rbac-net").await?;
    let cluster_name = unique_name("besu-operator-test");
    let _cleanup = ClusterScopedCleanup {
        kubeconfig: c.kubeconfig.clone(),
        objects: vec![
            format!("clusterrolebinding/{cluster_name}"),
            format!("clusterrole/{cluster_name}"),
            "crd/prometheusrules.monitoring.coreos.com".to_string(),
            "crd/podmonitors.monitoring.coreos.com".to_string(),
        ],
    };
    kubectl_apply(c, PROMETHEUS_OPERATOR_CRDS, &[])?;
    c.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/prometheusrules.monitoring.coreos.com",
        "crd/podmonitors.monitoring.coreos.com",
    ])?;
    kubectl_apply(c, &committed_rbac(&op_ns.name, &cluster_name)?, &[])?;
    let token = service_account_token(&admin, &op_ns.name, "besu-operator").await?;
    let kubeconfig = token_kubeconfig(c, &token, &cluster_name)?;
    let username = format!("system:serviceaccount:{}:besu-operator", op_ns.name);

    let started = Instant::now();
    let mut op = OperatorProcess::start(
        "rbac-cluster",
        &kubeconfig,
        &[
            "--leader-elect",
            "--leader-elect-namespace",
            &op_ns.name,
            "--instance",
            &cluster_name,
        ],
    )?;
    let networks: Api<BesuNetwork> = net_ns.api();
    let mut net: BesuNetwork = sample("qbft-network.yaml")?;
    net.metadata.namespace = Some(net_ns.name.clone());
    // With Prometheus and Grafana: their ServiceAccount, Role, RoleBinding, Deployment.
    net.spec.monitoring.prometheus.enabled = true;
    net.spec.monitoring.grafana.enabled = true;
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;
    let ready = wait_phase(&networks, &name, NetworkPhase::Ready, BRING_UP).await;
    if let Err(e) = ready {
        anyhow::bail!("{e:#}\noperator log:\n{}", op.log_text());
    }
    eprintln!(
        "network Ready {:.1?} after the operator started",
        started.elapsed()
    );

    // Scale members down: the operator deletes the member's BesuNode.
    networks
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"members": 0}})),
        )
        .await?;
    let nodes: Api<BesuNode> = net_ns.api();
    let member = format!("{name}-member-0");
    wait_until(
        &format!("{member} deleted"),
        Duration::from_secs(60),
        || async {
            match nodes.get_opt(&member).await? {
                None => Ok(Check::Done(())),
                Some(_) => not_yet("still there"),
            }
        },
    )
    .await?;
    wait_phase(&networks, &name, NetworkPhase::Ready, BRING_UP).await?;

    // Retain → Delete: each data volume gets its BesuNode as owner (the claim patch of
    // node::ensure_data_claim), with no pod restarted for it.
    networks
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"deletionPolicy": "Delete"}})),
        )
        .await?;
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = net_ns.api();
    wait_until(
        "every Besu data volume owned by its BesuNode",
        BRING_UP,
        || async {
            // The Besu nodes' volumes (not the member's, scaled away under Retain, nor
            // Prometheus's, which is not a Besu node).
            let besu: BTreeSet<String> = nodes
                .list(&Default::default())
                .await?
                .items
                .iter()
                .filter(|n| n.spec.node_type.is_besu())
                .map(|n| format!("data-{}-0", n.name_any()))
                .collect();
            let listed = claims.list(&Default::default()).await?.items;
            let ours: Vec<_> = listed
                .iter()
                .filter(|c| besu.contains(&c.name_any()))
                .collect();
            let unowned: Vec<String> = ours
                .iter()
                .filter(|c| !c.owner_references().iter().any(|o| o.kind == "BesuNode"))
                .map(|c| c.name_any())
                .collect();
            if !besu.is_empty() && ours.len() == besu.len() && unowned.is_empty() {
                Ok(Check::Done(()))
            } else {
                not_yet(format!("not owned yet: {unowned:?}"))
            }
        },
    )
    .await?;
    wait_phase(&networks, &name, NetworkPhase::Ready, BRING_UP).await?;

    // An EthereumNode gateway with an Ingress and a NodePort P2P Service (its JWT Secret,
    // StatefulSet, Services, Ingress), then both removed: the operator deletes them.
    let ethn: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        &net_ns.name,
        &ApiResource::erase::<EthereumNode>(&()),
    );
    let gateway: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "ethereum.nodeops.dev/v1alpha1", "kind": "EthereumNode",
        "metadata": {"name": "gw"},
        "spec": {"network": "hoodi", "nodeType": "gateway",
                 "ingress": {"host": "rpc.example.test"},
                 "p2pService": {"type": "NodePort", "executionPort": 31303, "consensusPort": 31304}},
    }))?;
    ethn.create(&PostParams::default(), &gateway).await?;
    let services: Api<Service> = net_ns.api();
    let ingresses: Api<Ingress> = net_ns.api();
    let sets: Api<StatefulSet> = net_ns.api();
    wait_until("the gateway's children", BRING_UP, || async {
        let have = (
            sets.get_opt("gw").await?.is_some(),
            services.get_opt("gw-p2p").await?.is_some(),
            ingresses.get_opt("gw").await?.is_some(),
        );
        if have == (true, true, true) {
            Ok(Check::Done(()))
        } else {
            not_yet(format!("{have:?}"))
        }
    })
    .await?;
    ethn.patch(
        "gw",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"ingress": null, "p2pService": null}})),
    )
    .await?;
    wait_until(
        "the gateway's Ingress and P2P Service deleted",
        BRING_UP,
        || async {
            let have = (
                services.get_opt("gw-p2p").await?.is_some(),
                ingresses.get_opt("gw").await?.is_some(),
            );
            if have == (false, false) {
                Ok(Check::Done(()))
            } else {
                not_yet(format!("{have:?}"))
            }
        },
    )
    .await?;
    op.kill();

    // Enough: no request refused. Only this test's namespaces and cluster-wide
    // requests count: watching every namespace, the operator may also meet a namespace
    // another test is deleting, where creates are refused with 403 as well.
    let requests = audit_by_user(c, &username)?;
    ensure!(
        !requests.is_empty(),
        "no request by {username} in the audit log"
    );
    let ours = |r: &&install_support::AuditRecord| {
        r.object_ref
            .as_ref()
            .and_then(|o| o.namespace.as_deref())
            .is_none_or(|n| n == net_ns.name || n == op_ns.name)
    };
    let refused: Vec<String> = requests
        .iter()
        .filter(ours)
        .filter(|r| r.response_status.as_ref().and_then(|s| s.code) == Some(403))
        .map(|r| format!("{} {:?} {:?}", r.verb, r.group_resource(), r.object_ref))
        .collect();
    ensure!(
        refused.is_empty(),
        "requests refused (403): {refused:?}\noperator log:\n{}",
        op.log_text()
    );

    // Only just: every granted (group, resource, verb) was used, or is listed above.
    // A server-side apply that creates its object is audited as a `patch` answered
    // 201, and RBAC checks `create` for it as well.
    let used: BTreeSet<(String, String, String)> = requests
        .iter()
        .flat_map(|r| {
            let created =
                r.verb == "patch" && r.response_status.as_ref().and_then(|s| s.code) == Some(201);
            r.group_resource().into_iter().flat_map(move |(g, res)| {
                let mut verbs = vec![(g.clone(), res.clone(), r.verb.clone())];
                if created {
                    verbs.push((g, res, "create".to_string()));
                }
                verbs
            })
        })
        .collect();
    let cluster_role = Api::<ClusterRole>::all(admin.clone())
        .get(&cluster_name)
        .await?;
    let leader_role = Api::<Role>::namespaced(admin.clone(), &op_ns.name)
        .get("besu-operator-leader-election")
        .await?;
    let mut rules = cluster_role.rules.clone().unwrap_or_default();
    rules.extend(leader_role.rules.clone().unwrap_or_default());
    let granted = granted(&rules)?;
    let exempt: BTreeSet<(String, String, String)> = NOT_EXERCISED
        .iter()
        .map(|(g, r, v, _)| (g.to_string(), r.to_string(), v.to_string()))
        .collect();
    let stale: Vec<_> = exempt.difference(&granted).collect();
    ensure!(
        stale.is_empty(),
        "NOT_EXERCISED lists rules that are not granted: {stale:?}"
    );
    let unused: Vec<_> = granted
        .iter()
        .filter(|t| !used.contains(*t) && !exempt.contains(*t))
        .collect();
    ensure!(
        unused.is_empty(),
        "granted but never used by the operator: {unused:?}; used: {used:?}"
    );
    eprintln!(
        "RBAC: {} rules in the ClusterRole + {} in the leader election Role = {} (group, resource, verb) grants; {} used in this run, {} not reachable here",
        cluster_role.rules.as_ref().map_or(0, Vec::len),
        leader_role.rules.as_ref().map_or(0, Vec::len),
        granted.len(),
        granted.intersection(&used).count(),
        exempt.len()
    );
    safety::assert_chain_safe(&net_ns.name, &name, &[], 5_000).await?;
    net_ns.cleanup().await?;
    op_ns.cleanup().await?;
    Ok(())
}
