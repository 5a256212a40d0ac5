//! The local control plane behaves like a real cluster for what the operator
//! needs: fake nodes with capacity, StatefulSets with persistent volumes,
//! loopback pod IPs, Service IPs from the cluster's range, garbage collection, namespace deletion and
//! ServiceAccount tokens under RBAC.

mod support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Node, PersistentVolume, PersistentVolumeClaim, Pod, Service, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Resource;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

use support::{Check, TestNamespace, cluster, not_yet, wait_until};

const WAIT: Duration = Duration::from_secs(60);

fn ipv4_in(addr: &str, net: Ipv4Addr, prefix: u32) -> bool {
    let Ok(ip) = addr.parse::<Ipv4Addr>() else {
        return false;
    };
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    u32::from(ip) & mask == u32::from(net) & mask
}

fn cidr_in(cidr: &str, net: Ipv4Addr, prefix: u32) -> bool {
    match cidr.split_once('/') {
        Some((addr, len)) => {
            ipv4_in(addr, net, prefix) && len.parse::<u32>().is_ok_and(|l| l >= prefix)
        }
        None => false,
    }
}

#[test]
fn ipv4_range_helpers() {
    assert!(ipv4_in("127.64.3.7", Ipv4Addr::new(127, 64, 0, 0), 12));
    assert!(!ipv4_in("127.80.0.1", Ipv4Addr::new(127, 64, 0, 0), 12));
    assert!(!ipv4_in("10.0.0.1", Ipv4Addr::new(127, 0, 0, 0), 8));
    assert!(!ipv4_in("not-an-ip", Ipv4Addr::new(127, 0, 0, 0), 8));
    assert!(cidr_in("127.64.2.0/24", Ipv4Addr::new(127, 64, 0, 0), 12));
    assert!(!cidr_in("127.64.0.0/8", Ipv4Addr::new(127, 64, 0, 0), 12));
}

#[tokio::test]
async fn three_fake_nodes_are_ready_with_capacity_and_loopback_pod_cidrs() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let nodes: Api<Node> = Api::all(client);
    let lp = ListParams::default().labels("besu-operator.local/fake-node=true");
    let ready = wait_until("3 fake nodes Ready", WAIT, || async {
        let list = nodes.list(&lp).await?;
        let summary: Vec<String> = list
            .items
            .iter()
            .map(|n| {
                let ready = n
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
                    .map(|c| c.status.clone())
                    .unwrap_or_default();
                format!(
                    "{}: Ready={ready}",
                    n.metadata.name.clone().unwrap_or_default()
                )
            })
            .collect();
        if list.items.len() == 3 && summary.iter().all(|s| s.ends_with("Ready=True")) {
            Ok(Check::Done(list.items))
        } else {
            not_yet(format!("{summary:?}"))
        }
    })
    .await?;
    for node in ready {
        let name = node.metadata.name.clone().unwrap_or_default();
        let status = node.status.context("node status")?;
        for (what, resources) in [
            ("capacity", status.capacity.context("capacity")?),
            ("allocatable", status.allocatable.context("allocatable")?),
        ] {
            assert_eq!(resources["cpu"].0, "16", "{name} {what} cpu");
            assert_eq!(resources["memory"].0, "64Gi", "{name} {what} memory");
            assert_eq!(resources["pods"].0, "256", "{name} {what} pods");
        }
        let pod_cidr = node
            .spec
            .and_then(|s| s.pod_cidr)
            .with_context(|| format!("{name} has no podCIDR"))?;
        assert!(
            cidr_in(&pod_cidr, Ipv4Addr::new(127, 64, 0, 0), 12),
            "{name} podCIDR {pod_cidr} is not inside 127.64.0.0/12"
        );
        for address in status.addresses.unwrap_or_default() {
            if address.type_ == "InternalIP" {
                assert!(
                    ipv4_in(&address.address, Ipv4Addr::new(127, 0, 0, 0), 8),
                    "{name} InternalIP {} is not loopback",
                    address.address
                );
            }
        }
    }
    Ok(())
}

/// The fake kubelets renew their node Leases, as kubelets do. Without that the
/// node lifecycle controller marks every node NotReady after its grace period
/// (~50 s) and every pod loses Ready; this catches it in one renewal interval.
#[tokio::test]
async fn fake_kubelets_renew_node_leases() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    for node in ["kwok-node-0", "kwok-node-1", "kwok-node-2"] {
        let first = wait_until(&format!("a Lease for {node}"), WAIT, || async {
            match leases.get_opt(node).await? {
                Some(l) => match l.spec.and_then(|s| s.renew_time) {
                    Some(t) => Ok(Check::Done(t.0)),
                    None => not_yet("Lease without renewTime"),
                },
                None => not_yet("no Lease"),
            }
        })
        .await?;
        wait_until(
            &format!("{node}'s Lease to be renewed after {first:?}"),
            WAIT,
            || async {
                let now = leases
                    .get(node)
                    .await?
                    .spec
                    .and_then(|s| s.renew_time)
                    .map(|t| t.0);
                match now {
                    Some(t) if t > first => Ok(Check::Done(())),
                    other => not_yet(format!("renewTime {other:?}")),
                }
            },
        )
        .await?;
    }
    Ok(())
}

/// The Service range of the cluster: 127.32.0.0/16 with kwok nodes only, 198.19.0.0/16
/// (reachable from real pods through kube-proxy) with the real node.
fn service_range() -> anyhow::Result<(Ipv4Addr, u32)> {
    let c = cluster();
    let cidr = c
        .env_value("SERVICE_CIDR")
        .context("SERVICE_CIDR in cluster.env")?;
    let expected = match c.env_value("REAL_NODE").as_deref() {
        Some("1") => "198.19.0.0/16",
        _ => "127.32.0.0/16",
    };
    anyhow::ensure!(cidr == expected, "SERVICE_CIDR {cidr}, expected {expected}");
    let (net, prefix) = cidr.split_once('/').context("CIDR")?;
    Ok((net.parse()?, prefix.parse()?))
}

#[tokio::test]
async fn service_cluster_ips_come_from_the_cluster_s_service_range() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let (net, prefix) = service_range()?;
    let ns = TestNamespace::create(&client, "svc").await?;
    let services: Api<Service> = ns.api();
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "rpc"},
        "spec": {"selector": {"app": "x"}, "ports": [{"name": "rpc", "port": 8545}]}
    }))?;
    let created = services.create(&PostParams::default(), &svc).await?;
    let ip = created
        .spec
        .and_then(|s| s.cluster_ip)
        .context("no clusterIP allocated")?;
    assert!(
        ipv4_in(&ip, net, prefix),
        "clusterIP {ip} is not in {net}/{prefix}"
    );
    // The apiserver's own Service got the first address of the range.
    let kubernetes: Api<Service> = Api::default_namespaced(client.clone());
    let ip = kubernetes
        .get("kubernetes")
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .unwrap_or_default();
    assert_eq!(ip, Ipv4Addr::from(u32::from(net) + 1).to_string());
    ns.cleanup().await
}

fn statefulset(name: &str) -> anyhow::Result<StatefulSet> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "serviceName": name,
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "besu",
                    "image": "example.invalid/besu:test",
                    "ports": [{"name": "rpc", "containerPort": 8545}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]
                }]}
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}
                }
            }]
        }
    }))?)
}

fn pod_summary(pod: &Pod) -> String {
    let status = pod.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status)
        .unwrap_or_default();
    format!(
        "{} phase={:?} ready={ready} podIP={:?} node={:?}",
        pod.metadata.name.clone().unwrap_or_default(),
        status.phase,
        status.pod_ip,
        pod.spec.as_ref().and_then(|s| s.node_name.clone())
    )
}

#[tokio::test]
async fn statefulset_with_volume_claim_runs_ready_on_loopback_and_is_garbage_collected()
-> anyhow::Result<()> {
    let client = cluster().client().await?;
    let ns = TestNamespace::create(&client, "sts").await?;
    let sets: Api<StatefulSet> = ns.api();
    let pods: Api<Pod> = ns.api();
    let claims: Api<PersistentVolumeClaim> = ns.api();
    let volumes: Api<PersistentVolume> = Api::all(client.clone());

    sets.create(&PostParams::default(), &statefulset("node")?)
        .await?;

    let pod = wait_until("pod node-0 Running and Ready", WAIT, || async {
        let Some(pod) = pods.get_opt("node-0").await? else {
            return not_yet("no pod node-0 yet");
        };
        let status = pod.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .as_ref()
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if status.phase.as_deref() == Some("Running") && ready {
            Ok(Check::Done(pod))
        } else {
            not_yet(pod_summary(&pod))
        }
    })
    .await?;
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .context("Ready pod without an IP")?;
    assert!(
        ipv4_in(&ip, Ipv4Addr::new(127, 0, 0, 0), 8),
        "pod IP {ip} is not loopback"
    );
    assert!(
        ipv4_in(&ip, Ipv4Addr::new(127, 64, 0, 0), 12),
        "pod IP {ip} is not from the pod range 127.64.0.0/12"
    );

    let claim = claims.get("data-node-0").await?;
    let phase = claim.status.as_ref().and_then(|s| s.phase.clone());
    assert_eq!(phase.as_deref(), Some("Bound"), "PVC data-node-0");
    assert_eq!(
        claim
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.clone())
            .as_deref(),
        Some("standard"),
        "the default StorageClass applies"
    );
    let volume_name = claim
        .spec
        .and_then(|s| s.volume_name)
        .context("bound claim without a volume")?;
    let host_path = volumes
        .get(&volume_name)
        .await?
        .spec
        .and_then(|s| s.host_path)
        .map(|h| h.path)
        .context("volume is not a hostPath volume")?;
    assert!(
        host_path.starts_with("/tmp/hostpath_pv/"),
        "volume dir {host_path}"
    );
    assert!(
        Path::new(&host_path).is_dir(),
        "provisioner made {host_path}"
    );

    // Deleting the StatefulSet lets the garbage collector delete its pod
    // (ownerReferences), and the fake kubelet confirm the deletion.
    sets.delete("node", &DeleteParams::background()).await?;
    wait_until(
        "pods of the deleted StatefulSet to be gone",
        WAIT,
        || async {
            let left = pods.list(&ListParams::default().labels("app=node")).await?;
            if left.items.is_empty() {
                Ok(Check::Done(()))
            } else {
                not_yet(format!(
                    "{:?}",
                    left.items.iter().map(pod_summary).collect::<Vec<_>>()
                ))
            }
        },
    )
    .await?;

    // Claims outlive their StatefulSet; deleting one deletes its volume and
    // the volume's directory (reclaimPolicy Delete).
    claims
        .delete("data-node-0", &DeleteParams::default())
        .await?;
    wait_until("the released volume to be deleted", WAIT, || async {
        match volumes.get_opt(&volume_name).await? {
            None if !Path::new(&host_path).exists() => Ok(Check::Done(())),
            None => not_yet(format!("volume gone, {host_path} still exists")),
            Some(pv) => not_yet(format!(
                "volume {volume_name} phase {:?}",
                pv.status.and_then(|s| s.phase)
            )),
        }
    })
    .await?;
    ns.cleanup().await
}

#[tokio::test]
async fn owner_references_drive_garbage_collection() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let ns = TestNamespace::create(&client, "gc").await?;
    let maps: Api<ConfigMap> = ns.api();
    let parent: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "parent"}}))?;
    let parent = maps.create(&PostParams::default(), &parent).await?;
    let owner = parent
        .controller_owner_ref(&())
        .context("owner reference")?;
    let mut child: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "child"}}))?;
    child.metadata.owner_references = Some(vec![owner]);
    maps.create(&PostParams::default(), &child).await?;

    maps.delete("parent", &DeleteParams::background()).await?;
    wait_until("the owned ConfigMap to be collected", WAIT, || async {
        match maps.get_opt("child").await? {
            None => Ok(Check::Done(())),
            Some(c) => not_yet(format!(
                "child still there (deletionTimestamp {:?})",
                c.metadata.deletion_timestamp
            )),
        }
    })
    .await?;
    ns.cleanup().await
}

#[tokio::test]
async fn service_account_token_authenticates_and_rbac_authorizes() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let ns = TestNamespace::create(&client, "rbac").await?;
    let accounts: Api<ServiceAccount> = ns.api();

    // The controller-manager makes the default account and publishes the CA.
    wait_until(
        "default ServiceAccount and kube-root-ca.crt",
        WAIT,
        || async {
            let sa = accounts.get_opt("default").await?;
            let ca = ns.api::<ConfigMap>().get_opt("kube-root-ca.crt").await?;
            match (sa, ca) {
                (Some(_), Some(_)) => Ok(Check::Done(())),
                (sa, ca) => not_yet(format!(
                    "default SA present: {}, kube-root-ca.crt present: {}",
                    sa.is_some(),
                    ca.is_some()
                )),
            }
        },
    )
    .await?;

    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "operator"}}))?;
    accounts.create(&PostParams::default(), &sa).await?;
    let token = support::service_account_token(&client, &ns.name, "operator").await?;
    let as_sa = cluster().client_with_token(&token).await?;
    let sa_pods: Api<Pod> = Api::namespaced(as_sa, &ns.name);

    match sa_pods.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) if s.code == 403 => {
            assert!(
                s.message
                    .contains(&format!("system:serviceaccount:{}:operator", ns.name)),
                "403 names the service account: {}",
                s.message
            );
        }
        other => panic!("expected 403 before any RoleBinding, got {other:?}"),
    }

    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    }))?;
    ns.api::<Role>()
        .create(&PostParams::default(), &role)
        .await?;
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "operator-reads-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": ns.name}]
    }))?;
    ns.api::<RoleBinding>()
        .create(&PostParams::default(), &binding)
        .await?;
    wait_until("the RoleBinding to authorize the token", WAIT, || async {
        match sa_pods.list(&ListParams::default()).await {
            Ok(_) => Ok(Check::Done(())),
            Err(e) => not_yet(e),
        }
    })
    .await?;
    // Still nothing beyond the Role.
    let sa_maps: Api<ConfigMap> =
        Api::namespaced(cluster().client_with_token(&token).await?, &ns.name);
    assert!(
        matches!(sa_maps.list(&ListParams::default()).await, Err(kube::Error::Api(s)) if s.code == 403),
        "the Role grants pods only"
    );
    ns.cleanup().await
}
