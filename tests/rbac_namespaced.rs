//! Watch-namespace mode: the operator binary runs as the ServiceAccount with only the
//! Roles that `besu-operator crd --install --watch-namespaces <ns>` generates (one in the
//! watched namespace, the leader election Role in its own; no ClusterRole), brings a
//! network in the watched namespace to Ready, and never touches a network in a
//! namespace it does not watch: no status, no children, not one API request there.

mod install_support;
mod operator;
mod safety;
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use anyhow::ensure;
use besu_operator::generate::install::{InstallOptions, join_documents, rbac_documents};
use besu_operator_api::{BesuNetwork, BesuNode, NetworkPhase, NodePhase};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};

use install_support::{
    OperatorProcess, audit_by_user, kubectl_apply, token_kubeconfig, wait_phase,
};
use operator::{install_crds, sample};
use support::{Check, TestNamespace, cluster, not_yet, service_account_token, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_with_roles_only_runs_the_watched_namespace_and_ignores_the_rest()
-> anyhow::Result<()> {
    let c = cluster();
    let admin = c.client().await?;
    install_crds(&admin).await?;
    let op_ns = TestNamespace::create(&admin, "wns-op").await?;
    let watched = TestNamespace::create(&admin, "wns-watched").await?;
    let unwatched = TestNamespace::create(&admin, "wns-unwatched").await?;

    let opts = InstallOptions {
        namespace: op_ns.name.clone(),
        watch_namespaces: vec![watched.name.clone()],
        ..InstallOptions::default()
    };
    let docs = rbac_documents(&opts);
    ensure!(
        docs.iter().all(|d| !d.contains("kind: ClusterRole")),
        "watch-namespace RBAC must not contain a ClusterRole(Binding)"
    );
    kubectl_apply(c, &join_documents("", &docs), &[])?;
    let token = service_account_token(&admin, &op_ns.name, "besu-operator").await?;
    let kubeconfig = token_kubeconfig(c, &token, &op_ns.name)?;
    let username = format!("system:serviceaccount:{}:besu-operator", op_ns.name);

    let op = OperatorProcess::start(
        "rbac-namespaced",
        &kubeconfig,
        &[
            "--namespaces",
            &watched.name,
            "--leader-elect",
            "--leader-elect-namespace",
            &op_ns.name,
        ],
    )?;

    // A network where the operator does not look, created first.
    let ignored: Api<BesuNetwork> = unwatched.api();
    let mut net: BesuNetwork = sample("qbft-network.yaml")?;
    net.metadata.namespace = Some(unwatched.name.clone());
    ignored.create(&PostParams::default(), &net).await?;

    let networks: Api<BesuNetwork> = watched.api();
    net.metadata.namespace = Some(watched.name.clone());
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;
    if let Err(e) = wait_phase(
        &networks,
        &name,
        NetworkPhase::Ready,
        Duration::from_secs(180),
    )
    .await
    {
        anyhow::bail!("{e:#}\noperator log:\n{}", op.log_text());
    }
    // Two resync periods (5 s) pass with the ignored network in place: the operator is
    // seen reading the watched namespace 10 s after Ready.
    let ready_at = SystemTime::now();
    wait_until(
        "the operator's requests 10 s after Ready (two resyncs)",
        Duration::from_secs(40),
        || async {
            let later = audit_by_user(c, &username)?
                .iter()
                .filter(|r| {
                    r.object_ref.as_ref().and_then(|o| o.namespace.as_deref())
                        == Some(watched.name.as_str())
                })
                .filter_map(|r| {
                    r.request_received_timestamp
                        .parse::<k8s_openapi::jiff::Timestamp>()
                        .ok()
                })
                .filter(|t| SystemTime::from(*t) >= ready_at + Duration::from_secs(10))
                .count();
            if later > 0 {
                Ok(Check::Done(()))
            } else {
                not_yet("no request yet 10 s after Ready")
            }
        },
    )
    .await?;

    let untouched = ignored.get(&name).await?;
    ensure!(
        untouched.status.is_none(),
        "the network in the unwatched namespace got a status: {:?}",
        untouched.status
    );
    let nodes: Api<BesuNode> = unwatched.api();
    let secrets: Api<Secret> = unwatched.api();
    ensure!(nodes.list(&ListParams::default()).await?.items.is_empty());
    ensure!(
        secrets
            .list(&ListParams::default().labels("app.kubernetes.io/managed-by=besu-operator"))
            .await?
            .items
            .is_empty(),
        "key Secrets appeared in the unwatched namespace"
    );

    let requests = audit_by_user(c, &username)?;
    ensure!(!requests.is_empty(), "no request by {username}");
    // Requests without an object are API discovery (whether the Prometheus Operator's
    // CRDs are served, asked once because the sample has monitoring on): reads of
    // /api or /apis, which name no namespace.
    let (resource_requests, other): (Vec<_>, Vec<_>) =
        requests.iter().partition(|r| r.object_ref.is_some());
    let not_discovery: Vec<String> = other
        .iter()
        .filter(|r| !(r.verb == "get" && r.request_uri.starts_with("/api")))
        .map(|r| format!("{} {}", r.verb, r.request_uri))
        .collect();
    ensure!(
        not_discovery.is_empty(),
        "requests that are neither on an object nor API discovery: {not_discovery:?}"
    );
    let namespaces: BTreeSet<Option<String>> = resource_requests
        .iter()
        .map(|r| r.object_ref.as_ref().and_then(|o| o.namespace.clone()))
        .collect();
    let allowed: BTreeSet<Option<String>> =
        [Some(watched.name.clone()), Some(op_ns.name.clone())].into();
    ensure!(
        namespaces.is_subset(&allowed),
        "requests outside the watched and the operator's namespace: {:?}",
        namespaces.difference(&allowed).collect::<Vec<_>>()
    );
    let refused: Vec<_> = requests
        .iter()
        .filter(|r| r.response_status.as_ref().and_then(|s| s.code) == Some(403))
        .map(|r| format!("{} {:?}", r.verb, r.group_resource()))
        .collect();
    ensure!(refused.is_empty(), "refused: {refused:?}");
    eprintln!(
        "{} requests by the operator, all in {} or {}",
        requests.len(),
        watched.name,
        op_ns.name
    );
    safety::assert_chain_safe(&watched.name, &name, &[], 5_000).await?;
    drop(op);
    unwatched.cleanup().await?;
    watched.cleanup().await?;
    op_ns.cleanup().await?;
    Ok(())
}

/// Without one permission it needs (the validator PodDisruptionBudget), the operator says
/// so where a user looks: the network is Degraded with reason Forbidden and the API
/// server's own message, one Warning Event says it, and the refused request is retried
/// with a growing backoff rather than every few seconds. Once the permission is granted,
/// the network becomes Ready without anything else being touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_is_reported_and_retried_slowly() -> anyhow::Result<()> {
    let c = cluster();
    let admin = c.client().await?;
    install_crds(&admin).await?;
    let op_ns = TestNamespace::create(&admin, "perm-op").await?;
    let watched = TestNamespace::create(&admin, "perm-watched").await?;
    let opts = InstallOptions {
        namespace: op_ns.name.clone(),
        watch_namespaces: vec![watched.name.clone()],
        ..InstallOptions::default()
    };
    let full = join_documents("", &rbac_documents(&opts));
    let withheld = full.replace(
        "resources: [poddisruptionbudgets]",
        "resources: [poddisruptionbudgets-withheld-by-the-test]",
    );
    ensure!(
        withheld != full,
        "the generated RBAC has no poddisruptionbudgets rule to withhold"
    );
    kubectl_apply(c, &withheld, &[])?;
    let token = service_account_token(&admin, &op_ns.name, "besu-operator").await?;
    let kubeconfig = token_kubeconfig(c, &token, &op_ns.name)?;
    let username = format!("system:serviceaccount:{}:besu-operator", op_ns.name);
    // The production resync (300 s), so that only the error backoff paces the retries.
    let op = OperatorProcess::start(
        "rbac-withheld",
        &kubeconfig,
        &[
            "--namespaces",
            &watched.name,
            "--leader-elect",
            "--leader-elect-namespace",
            &op_ns.name,
            "--resync-seconds",
            "300",
        ],
    )?;

    let networks: Api<BesuNetwork> = watched.api();
    let mut net: BesuNetwork = sample("qbft-network.yaml")?;
    net.metadata.namespace = Some(watched.name.clone());
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;

    let degraded = wait_until(
        "the network Degraded with reason Forbidden",
        Duration::from_secs(180),
        || async {
            let n = networks.get(&name).await?;
            let c = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Degraded").cloned());
            match c {
                Some(c) if c.status == "True" && c.reason == "Forbidden" => {
                    Ok(Check::Done(c.message))
                }
                other => not_yet(format!("Degraded: {other:?}")),
            }
        },
    )
    .await;
    let message = match degraded {
        Ok(m) => m,
        Err(e) => anyhow::bail!("{e:#}\noperator log:\n{}", op.log_text()),
    };
    println!("Degraded: {message}");
    ensure!(
        message.contains("poddisruptionbudgets") && message.contains("forbidden"),
        "the condition does not carry the API server's message: {message}"
    );
    ensure!(
        message.contains("manifests/rbac"),
        "the condition does not say what to do: {message}"
    );

    // Let the bring-up settle (every node Ready: no more child events), then count the
    // refused requests over a minute.
    let nodes: Api<BesuNode> = watched.api();
    // Every Besu node of the sample (monitoring comes after the forbidden
    // PodDisruptionBudget in a reconcile, so it never does here).
    let want = usize::try_from(net.spec.bootnodes + net.spec.validators + net.spec.members)?;
    wait_until("every node Ready", Duration::from_secs(180), || async {
        let list = nodes.list(&ListParams::default()).await?.items;
        let ready = list
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .is_some_and(|s| s.phase == NodePhase::Ready)
            })
            .count();
        if ready == list.len() && list.len() >= want {
            Ok(Check::Done(()))
        } else {
            not_yet(format!("{ready}/{} nodes Ready", list.len()))
        }
    })
    .await?;
    let refused_pdb = |since: SystemTime| -> anyhow::Result<usize> {
        Ok(audit_by_user(c, &username)?
            .iter()
            .filter(|r| r.response_status.as_ref().and_then(|s| s.code) == Some(403))
            .filter(|r| {
                r.object_ref.as_ref().and_then(|o| o.resource.as_deref())
                    == Some("poddisruptionbudgets")
            })
            .filter_map(|r| {
                r.request_received_timestamp
                    .parse::<k8s_openapi::jiff::Timestamp>()
                    .ok()
            })
            .filter(|t| SystemTime::from(*t) >= since)
            .count())
    };
    let window_start = SystemTime::now();
    let window = Duration::from_secs(60);
    wait_until(
        "a minute of retries",
        window + Duration::from_secs(10),
        || async {
            let elapsed = window_start.elapsed().unwrap_or_default();
            if elapsed >= window {
                Ok(Check::Done(()))
            } else {
                not_yet(format!("{elapsed:.0?}"))
            }
        },
    )
    .await?;
    let refused = refused_pdb(window_start)?;
    println!("refused PodDisruptionBudget requests in 60 s at rest: {refused}");
    // The fixed 5 s retry made 12 or more; a backoff from 30 s doubling makes at most 2.
    ensure!(
        refused <= 3,
        "{refused} refused requests in 60 s: the operator retries a 403 hot"
    );

    let events: Api<k8s_openapi::api::core::v1::Event> = watched.api();
    let warnings: Vec<String> = events
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|e| {
            e.reason.as_deref() == Some("Forbidden")
                && e.type_.as_deref() == Some("Warning")
                && e.involved_object.name.as_deref() == Some(name.as_str())
        })
        .map(|e| {
            format!(
                "{} x{}",
                e.message.clone().unwrap_or_default(),
                e.count.unwrap_or(1)
            )
        })
        .collect();
    ensure!(
        warnings.len() == 1,
        "expected one Warning Event with reason Forbidden, got {warnings:?}"
    );

    // The user grants the permission and, as the message says, touches the network to
    // have it retried at once rather than at the next backoff (up to 5 min).
    kubectl_apply(c, &full, &[])?;
    let granted = SystemTime::now();
    networks
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "metadata": {"annotations": {"example.com/retry": "now"}}
            })),
        )
        .await?;
    if let Err(e) = wait_phase(
        &networks,
        &name,
        NetworkPhase::Ready,
        Duration::from_secs(120),
    )
    .await
    {
        anyhow::bail!("{e:#}\noperator log:\n{}", op.log_text());
    }
    println!(
        "Ready {:.1} s after the permission was granted",
        granted.elapsed().unwrap_or_default().as_secs_f64()
    );
    let n = networks.get(&name).await?;
    let still = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Degraded"))
        .map(|c| c.status.clone());
    ensure!(
        still.as_deref() == Some("False"),
        "Degraded is {still:?} after the network became Ready"
    );
    safety::assert_chain_safe(&watched.name, &name, &[], 5_000).await?;
    drop(op);
    watched.cleanup().await?;
    op_ns.cleanup().await?;
    Ok(())
}
