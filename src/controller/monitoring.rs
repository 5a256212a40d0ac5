//! The node controller's part for the monitoring node types: `prometheus` and `grafana`
//! BesuNodes become their workloads (see `render::monitoring`).

use std::sync::Arc;
use std::time::Duration;

use besu_operator_api::{BesuNode, BesuNodeStatus, NodePhase, NodeType};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt};
use tokio::sync::OnceCell;
use tracing::info;

use super::status::{DesiredCondition, merge_conditions, write_status_if_changed};
use super::{Context, Error, apply_if_changed, create_once};
use crate::render::FIELD_MANAGER;
use crate::render::monitoring::{
    generate_password, grafana_admin_secret, grafana_objects, grafana_secret_name, pod_monitor,
    prometheus_objects, prometheus_rule,
};

static PROMETHEUS_OPERATOR: OnceCell<bool> = OnceCell::const_new();

/// Whether the Prometheus Operator's CRDs (`monitoring.coreos.com/v1`) are served;
/// asked once per process.
pub async fn prometheus_operator_present(client: &Client) -> bool {
    *PROMETHEUS_OPERATOR
        .get_or_init(|| async {
            let present = client
                .list_api_group_resources("monitoring.coreos.com/v1")
                .await
                .is_ok_and(|l| {
                    l.resources
                        .iter()
                        .any(|r| r.name == "prometheusrules" || r.name == "podmonitors")
                });
            info!(present, "Prometheus Operator CRDs");
            present
        })
        .await
}

fn deployment_ready(d: &Deployment) -> bool {
    let Some(status) = &d.status else {
        return false;
    };
    status.observed_generation >= d.metadata.generation
        && status.updated_replicas.unwrap_or(0) >= 1
        && status.ready_replicas.unwrap_or(0) >= 1
}

async fn apply_dynamic(
    client: &Client,
    ns: &str,
    kind: &str,
    obj: serde_json::Value,
) -> Result<(), Error> {
    let gvk = GroupVersionKind::gvk("monitoring.coreos.com", "v1", kind);
    let plural = format!("{}s", kind.to_lowercase());
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, &plural),
    );
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let hash = super::applied_hash(&obj)?;
    if let Some(live) = api.get_opt(&name).await?
        && live.annotations().get(super::APPLIED_HASH_ANNOTATION) == Some(&hash)
    {
        return Ok(());
    }
    let mut obj = obj;
    obj["metadata"]["annotations"] = serde_json::json!({super::APPLIED_HASH_ANNOTATION: hash});
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await?;
    Ok(())
}

/// Reconciles a `prometheus` or `grafana` BesuNode.
pub async fn reconcile(node: Arc<BesuNode>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = node.namespace().unwrap_or_default();
    let client = ctx.client.clone();
    let name = node.name_any();
    let mut wrote = false;
    let ready = match node.spec.node_type {
        NodeType::Prometheus => {
            let o = prometheus_objects(&node, ctx.metrics_target.as_deref())?;
            wrote |= apply_if_changed(
                &Api::<ServiceAccount>::namespaced(client.clone(), &ns),
                o.service_account,
            )
            .await?;
            wrote |=
                apply_if_changed(&Api::<Role>::namespaced(client.clone(), &ns), o.role).await?;
            wrote |= apply_if_changed(
                &Api::<RoleBinding>::namespaced(client.clone(), &ns),
                o.role_binding,
            )
            .await?;
            wrote |= apply_if_changed(
                &Api::<ConfigMap>::namespaced(client.clone(), &ns),
                o.config_map,
            )
            .await?;
            wrote |= apply_if_changed(&Api::<Service>::namespaced(client.clone(), &ns), o.service)
                .await?;
            let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
            wrote |= apply_if_changed(&sts, o.statefulset).await?;
            if prometheus_operator_present(&client).await {
                apply_dynamic(&client, &ns, "PrometheusRule", prometheus_rule(&node)?).await?;
                apply_dynamic(&client, &ns, "PodMonitor", pod_monitor(&node)?).await?;
            }
            sts.get_opt(&name)
                .await?
                .is_some_and(|s| super::statefulset_ready(&s))
        }
        _ => {
            let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
            if secrets
                .get_metadata_opt(&grafana_secret_name(&name))
                .await?
                .is_none()
            {
                let secret = grafana_admin_secret(&node, &generate_password())?;
                let (_, created) = create_once(&secrets, &secret).await?;
                wrote |= created;
            }
            let o = grafana_objects(&node)?;
            wrote |= apply_if_changed(
                &Api::<ConfigMap>::namespaced(client.clone(), &ns),
                o.config_map,
            )
            .await?;
            wrote |= apply_if_changed(&Api::<Service>::namespaced(client.clone(), &ns), o.service)
                .await?;
            let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
            wrote |= apply_if_changed(&deployments, o.deployment).await?;
            deployments
                .get_opt(&name)
                .await?
                .is_some_and(|d| deployment_ready(&d))
        }
    };
    if wrote {
        info!(
            node_type = node.spec.node_type.as_str(),
            "applied monitoring children"
        );
    }
    let ready_cond = if ready {
        DesiredCondition::new(
            "Ready",
            true,
            "PodReady",
            "the node's pod is Running and Ready",
        )
    } else {
        DesiredCondition::new(
            "Ready",
            false,
            "PodNotReady",
            "waiting for the node's pod to become Ready",
        )
    };
    let degraded = DesiredCondition::new("Degraded", false, "AsExpected", "no problem found");
    let previous = node.status.clone().unwrap_or_default();
    let status = BesuNodeStatus {
        phase: if ready {
            NodePhase::Ready
        } else {
            NodePhase::Pending
        },
        observed_generation: node.metadata.generation,
        conditions: merge_conditions(
            &previous.conditions,
            &[ready_cond, degraded],
            node.metadata.generation,
            Timestamp::now(),
        ),
        pod_ready: ready,
        image: ready.then(|| node.spec.image.clone()),
        ..BesuNodeStatus::default()
    };
    let nodes: Api<BesuNode> = Api::namespaced(client, &ns);
    write_status_if_changed(&nodes, &node, node.status.as_ref(), &status).await?;
    Ok(if ready {
        Action::requeue(ctx.resync)
    } else {
        Action::requeue(Duration::from_secs(10))
    })
}
