//! The node controller: `BesuNode` → ConfigMap, Services, StatefulSet; status from the
//! StatefulSet and the node's key.

use std::sync::Arc;
use std::time::Duration;

use besu_operator_api::{BesuNode, BesuNodeStatus, NodePhase};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::Patch;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::{info, instrument};

use super::status::{DesiredCondition, merge_conditions, transitions, write_status_if_changed};
use super::{Context, Error, applied_hash, apply_if_changed_over, apply_over, cached_or_get};
use crate::chain::enode::enode_url;
use crate::render::node::{
    ROLLOUT_PERMIT_ANNOTATION, TEMPLATE_REVISION_ANNOTATION, data_claim_name, data_claim_owner,
    desired_config_map, desired_data_claim, desired_headless_service, desired_rpc_service,
    desired_statefulset, pod_dns_name, pod_template_revision,
};

/// Whether a `BesuNetwork` controls this node: then its pod template changes wait for the
/// network's rollout permit (a standalone node has no quorum to protect).
fn owned_by_network(node: &BesuNode) -> bool {
    node.owner_references()
        .iter()
        .any(|o| o.kind == "BesuNetwork" && o.controller == Some(true))
}

/// What to do with the StatefulSet's pod template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateDecision {
    /// Apply the rendered StatefulSet (new, unchanged template, or permitted).
    Apply,
    /// Keep the live pod template: it differs from the rendered one and the network's
    /// rollout has not permitted the rendered revision yet.
    Hold,
}

/// The pure rule behind [`TemplateDecision`]: a network-owned node whose live StatefulSet
/// runs another template revision than the rendered one applies it only with a permit
/// naming that revision. A live StatefulSet without a revision (an older release) counts
/// as different.
pub fn template_decision(
    network_owned: bool,
    live_revision: Option<Option<&str>>,
    rendered: &str,
    permit: Option<&str>,
) -> TemplateDecision {
    match live_revision {
        None => TemplateDecision::Apply,
        Some(live) if live == Some(rendered) => TemplateDecision::Apply,
        Some(_) if !network_owned || permit == Some(rendered) => TemplateDecision::Apply,
        Some(_) => TemplateDecision::Hold,
    }
}

/// The image of the `besu` container of a StatefulSet's pod template.
fn template_image(sts: &StatefulSet) -> Option<String> {
    sts.spec
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "besu")?
        .image
        .clone()
}

/// What the reconcile found about the node's key Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyFact {
    /// The node has no key Secret (Besu keeps its own key on the data volume).
    NotConfigured,
    /// The Secret exists and holds a valid key with this public key and address.
    Valid(crate::chain::key::PublicKey, crate::chain::key::Address),
    /// The Secret does not exist.
    Missing(String),
    /// The Secret exists but does not hold a valid key; the text says why (no material).
    Invalid(String),
}

/// The node's Besu container was last stopped by the kernel for exceeding its memory
/// limit (the kubelet's `OOMKilled`), read from the pod's container status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OomFact {
    /// The pod that holds the container.
    pub pod: String,
    /// The container's restart count (each OOMKill is one restart).
    pub restarts: i32,
    /// The container's memory limit, when it has one.
    pub limit: Option<String>,
}

/// What the reconcile observed, the input of [`decide`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFacts {
    /// The key Secret.
    pub key: KeyFact,
    /// Name of the genesis ConfigMap when it is referenced but missing.
    pub genesis_missing: Option<String>,
    /// Whether the StatefulSet's pod is Ready and runs the current template.
    pub pod_ready: bool,
    /// The Besu container's last termination was an OOMKill.
    pub oom: Option<OomFact>,
    /// `spec.stopped`: the node must not run (a network snapshots its volume).
    pub stopped: bool,
}

/// The `OOMKilled` condition: True while the Besu container's last termination was the
/// kernel's OOM killer at the memory limit, with what to change.
fn oom_condition(oom: Option<&OomFact>) -> DesiredCondition {
    match oom {
        Some(o) => DesiredCondition::new(
            "OOMKilled",
            true,
            "ContainerOOMKilled",
            format!(
                "the besu container of pod {} was killed for exceeding its memory limit ({}; {} restart(s) so far). Raise spec.resources.limits.memory (or the network's nodeTemplate): Besu needs its JVM heap plus RocksDB's off-heap memory",
                o.pod,
                o.limit.as_deref().unwrap_or("no limit set"),
                o.restarts
            ),
        ),
        None => DesiredCondition::new(
            "OOMKilled",
            false,
            "NoOOMKill",
            "the besu container's last termination was not an OOMKill",
        ),
    }
}

/// Reads the OOM fact from the node's pod (`<statefulset>-0`), if any.
pub(crate) fn oom_fact(pod: &Pod) -> Option<OomFact> {
    let status = pod.status.as_ref()?;
    let c = status
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == "besu")?;
    let oom = |t: Option<&k8s_openapi::api::core::v1::ContainerStateTerminated>| {
        t.is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"))
    };
    let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    let now = c.state.as_ref().and_then(|s| s.terminated.as_ref());
    if !(oom(now) || (now.is_none() && oom(last))) {
        return None;
    }
    // The limit the kubelet reports it applied (a cached pod keeps only that,
    // controller::trim_pod), else the spec's.
    let from_spec = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == "besu"))
        .and_then(|c| c.resources.as_ref());
    let limit = [c.resources.as_ref(), from_spec]
        .into_iter()
        .flatten()
        .find_map(|r| r.limits.as_ref()?.get("memory"))
        .map(|q| q.0.clone());
    Some(OomFact {
        pod: pod.name_any(),
        restarts: c.restart_count,
        limit,
    })
}

/// What the node controller decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeDecision {
    /// StatefulSet replicas: 0 while the node must not run.
    pub replicas: i32,
    /// Phase for status.
    pub phase: NodePhase,
    /// Conditions for status.
    pub conditions: Vec<DesiredCondition>,
}

/// Decides replicas, phase and conditions from the facts. Pure.
pub fn decide(facts: &NodeFacts) -> NodeDecision {
    let mut problems: Vec<(&str, String)> = Vec::new();
    match &facts.key {
        KeyFact::Missing(name) => problems.push((
            "KeySecretMissing",
            format!(
                "key Secret {name} not found; the node stays stopped rather than start under a new identity. Restore the Secret from your backup (the operator never regenerates a key)"
            ),
        )),
        KeyFact::Invalid(why) => problems.push((
            "KeySecretInvalid",
            format!("{why}; put a Besu key (0x followed by 64 hex digits) in the Secret"),
        )),
        KeyFact::NotConfigured | KeyFact::Valid(..) => {}
    }
    if let Some(name) = &facts.genesis_missing {
        problems.push((
            "GenesisMissing",
            format!(
                "genesis ConfigMap {name} not found; create it or fix spec.genesisConfigMapRef"
            ),
        ));
    }
    let replicas = if problems.is_empty() && !facts.stopped {
        1
    } else {
        0
    };
    let ready = problems.is_empty() && facts.pod_ready && !facts.stopped;
    let phase = if !problems.is_empty() {
        NodePhase::Degraded
    } else if ready {
        NodePhase::Ready
    } else {
        NodePhase::Pending
    };
    let degraded = match problems.first() {
        Some((reason, message)) => {
            DesiredCondition::new("Degraded", true, *reason, message.clone())
        }
        None => DesiredCondition::new("Degraded", false, "AsExpected", "no problem found"),
    };
    let ready_cond = if facts.stopped && problems.is_empty() {
        DesiredCondition::new(
            "Ready",
            false,
            "Stopped",
            "spec.stopped: the node's pod is stopped (its data volume and key stay)",
        )
    } else if ready {
        DesiredCondition::new(
            "Ready",
            true,
            "PodReady",
            "the node's pod is Running and Ready",
        )
    } else if problems.is_empty() {
        DesiredCondition::new(
            "Ready",
            false,
            "PodNotReady",
            "waiting for the node's pod to become Ready",
        )
    } else {
        DesiredCondition::new(
            "Ready",
            false,
            "Degraded",
            "the node cannot run; see the Degraded condition",
        )
    };
    NodeDecision {
        replicas,
        phase,
        conditions: vec![ready_cond, degraded, oom_condition(facts.oom.as_ref())],
    }
}

/// The node's key as its Secret's metadata tells it (super::key_identity): the key itself
/// is read only from a Secret the operator did not annotate, once per version.
async fn key_fact(secrets: &Api<Secret>, node: &BesuNode, ctx: &Context) -> Result<KeyFact, Error> {
    use super::key_identity::KeyIdentity;
    let identities = &ctx.key_identities;
    let Some(r) = &node.spec.key_secret_ref else {
        return Ok(KeyFact::NotConfigured);
    };
    let ns = node.namespace().unwrap_or_default();
    let stores = ctx.node_stores.get(&ns);
    let meta = super::cached_or(stores.as_ref().map(|s| &s.secrets), &ns, &r.name, || {
        secrets.get_metadata_opt(&r.name)
    })
    .await?;
    let Some(meta) = meta else {
        return Ok(KeyFact::Missing(r.name.clone()));
    };
    Ok(match identities.identity(secrets, &meta, &r.key).await? {
        None => KeyFact::Missing(r.name.clone()),
        Some(KeyIdentity::Valid(public_key, address)) => KeyFact::Valid(public_key, address),
        Some(KeyIdentity::Invalid(why)) => KeyFact::Invalid(why),
    })
}

/// Creates the node's data volume claim unless it exists (render::node::desired_data_claim
/// says why the operator, not the StatefulSet controller, creates it), and keeps its
/// owner as `deletionPolicy` wants. Never otherwise writes to a live claim: the binder
/// updates it while binding, and a write of ours could make the binder's fail.
/// Returns whether a write was made.
async fn ensure_data_claim(
    claims: &Api<PersistentVolumeClaim>,
    node: &BesuNode,
    live: Option<PersistentVolumeClaim>,
) -> Result<bool, Error> {
    let desired = desired_data_claim(node)?;
    let name = desired.name_any();
    let Some(live) = live else {
        super::create_once(claims, &desired).await?;
        return Ok(true);
    };
    let Some(uid) = node.uid() else {
        return Ok(false);
    };
    let has_ref = live.owner_references().iter().any(|o| o.uid == uid);
    let patch = match (data_claim_owner(node), has_ref) {
        (Some(owner), false) => serde_json::json!({ "metadata": { "ownerReferences": [owner] } }),
        (None, true) => serde_json::json!({
            "metadata": { "ownerReferences": [{ "$patch": "delete", "uid": uid }] }
        }),
        _ => return Ok(false),
    };
    // Strategic merge: owner references merge by uid, so others (the StatefulSet's, on a
    // claim made by an earlier release) are left as they are.
    claims
        .patch(&name, &super::patch_params(), &Patch::Strategic(&patch))
        .await?;
    info!(claim = %name, owned = !has_ref, "set the data volume's owner for the deletion policy");
    Ok(true)
}

/// A reconcile of `node` failed in a way only a person can fix: `Degraded` says so in
/// status with the API server's words, and a Warning Event the first time.
pub async fn report_blocked(
    node: &BesuNode,
    ctx: &Context,
    reason: &str,
    message: &str,
) -> Result<(), Error> {
    let ns = node.namespace().unwrap_or_default();
    let api: Api<BesuNode> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(live) = api.get_opt(&node.name_any()).await? else {
        return Ok(());
    };
    let previous = live.status.clone().unwrap_or_default();
    let (conditions, news) = super::status::blocked_conditions(
        &previous.conditions,
        reason,
        message,
        live.metadata.generation,
        Timestamp::now(),
    );
    let status = BesuNodeStatus {
        phase: NodePhase::Degraded,
        conditions,
        ..previous
    };
    write_status_if_changed(&api, &live, live.status.as_ref(), &status).await?;
    if news {
        ctx.event(&live, EventType::Warning, reason, message.to_string())
            .await;
    }
    Ok(())
}

/// Reconciles one `BesuNode`.
#[instrument(skip_all, fields(node = %node.name_any(), namespace = node.namespace().unwrap_or_default()))]
pub async fn reconcile(node: Arc<BesuNode>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = node.namespace().unwrap_or_default();
    let client = ctx.client.clone();
    let nodes: Api<BesuNode> = Api::namespaced(client.clone(), &ns);
    let name = node.name_any();

    if !node.spec.node_type.is_besu() {
        return super::monitoring::reconcile(node, ctx).await;
    }

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);

    // Independent reads, then independent writes, each group at once: a node's first
    // reconcile opens its stage, and sequential round trips were most of its time.
    // Children from the controller's caches where they hold them (super::NodeStores).
    let stores = ctx.node_stores.get(&ns);
    let stores = stores.as_ref();
    let genesis_missing = async {
        Ok::<_, Error>(match &node.spec.genesis_config_map_ref {
            Some(g)
                if cached_or_get(stores.map(|s| &s.config_maps), &config_maps, &ns, &g.name)
                    .await?
                    .is_none() =>
            {
                Some(g.name.clone())
            }
            _ => None,
        })
    };
    let desired_config = desired_config_map(&node)?;
    let desired_headless = desired_headless_service(&node)?;
    let desired_rpc = desired_rpc_service(&node)?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let claim_name = data_claim_name(&name);
    let (config_name, headless_name, rpc_name) = (
        desired_config.name_any(),
        desired_headless.name_any(),
        desired_rpc.name_any(),
    );
    let (key, genesis_missing, live, live_claim, live_config, live_headless, live_rpc) = futures::try_join!(
        key_fact(&secrets, &node, &ctx),
        genesis_missing,
        cached_or_get(stores.map(|s| &s.sets), &statefulsets, &ns, &name),
        cached_or_get(stores.map(|s| &s.claims), &claims, &ns, &claim_name),
        cached_or_get(
            stores.map(|s| &s.config_maps),
            &config_maps,
            &ns,
            &config_name
        ),
        cached_or_get(stores.map(|s| &s.services), &services, &ns, &headless_name),
        cached_or_get(stores.map(|s| &s.services), &services, &ns, &rpc_name),
    )?;
    // Replicas do not depend on the pod; readiness is read after the StatefulSet is
    // applied, so that a spec change (a new image) is never reported Ready on the
    // strength of the pod it is about to replace.
    let replicas = decide(&NodeFacts {
        key: key.clone(),
        genesis_missing: genesis_missing.clone(),
        pod_ready: false,
        oom: None,
        stopped: node.spec.stopped,
    })
    .replicas;
    let mut sts = desired_statefulset(&node, replicas)?;
    let rendered = pod_template_revision(&sts);
    // The hash of what was rendered, before the live claim templates replace the
    // rendered ones below: the API server fills defaults into the live ones, and a hash
    // over those would differ from the one written at creation, costing a second write.
    let sts_hash = applied_hash(&sts)?;
    if let Some(live) = &live {
        // volumeClaimTemplates are immutable: an existing StatefulSet keeps the ones it
        // was created with, so that no later rendering change (labels, a storage edit)
        // can make every apply fail.
        sts.spec.volume_claim_templates = live.spec.volume_claim_templates.clone().map(|claims| {
            claims
                .into_iter()
                .map(|mut c| {
                    c.status = None;
                    c
                })
                .collect()
        });
    }
    let decision = template_decision(
        owned_by_network(&node),
        live.as_ref().map(|l| {
            l.annotations()
                .get(TEMPLATE_REVISION_ANNOTATION)
                .map(String::as_str)
        }),
        &rendered,
        node.annotations()
            .get(ROLLOUT_PERMIT_ANNOTATION)
            .map(String::as_str),
    );
    let pending_template_revision = match decision {
        TemplateDecision::Apply => None,
        TemplateDecision::Hold => Some(rendered),
    };
    // Every child was read at once above; the data claim goes before the StatefulSet
    // (whose controller would otherwise make it), the rest alongside: a new node's
    // StatefulSet is three round trips from its BesuNode (reads, claim, StatefulSet).
    let claim_then_statefulset = async {
        let claim_written = if replicas > 0 {
            ensure_data_claim(&claims, &node, live_claim).await?
        } else {
            false
        };
        let sts_written = match decision {
            TemplateDecision::Apply => {
                apply_over(&statefulsets, sts, sts_hash, live.as_ref()).await?
            }
            TemplateDecision::Hold => {
                // Only the replica count may change without a permit (a missing key stops
                // the pod at once); the pod template waits for the rollout.
                let live_replicas = live.as_ref().and_then(|l| l.spec.replicas);
                if live_replicas != Some(replicas) {
                    let patch = serde_json::json!({ "spec": { "replicas": replicas } });
                    statefulsets
                        .patch(&name, &super::patch_params(), &Patch::Merge(&patch))
                        .await?;
                    true
                } else {
                    false
                }
            }
        };
        Ok::<_, Error>(claim_written || sts_written)
    };
    let (config_written, headless_written, rpc_written, sts_written) = futures::try_join!(
        apply_if_changed_over(&config_maps, desired_config, live_config),
        apply_if_changed_over(&services, desired_headless, live_headless),
        apply_if_changed_over(&services, desired_rpc, live_rpc),
        claim_then_statefulset,
    )?;
    let wrote = config_written || headless_written || rpc_written || sts_written;
    if wrote {
        info!(
            replicas,
            held = pending_template_revision.is_some(),
            "applied children"
        );
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod_name = format!("{name}-0");
    // After a write the StatefulSet is read again from the API (its status must be about
    // what was just applied); without one, the read made at the start still stands.
    let (live, pod) = if wrote {
        futures::try_join!(statefulsets.get_opt(&name), pods.get_opt(&pod_name))?
    } else {
        let pod = cached_or_get(stores.map(|s| &s.pods), &pods, &ns, &pod_name).await?;
        (live, pod)
    };
    let pod_ready = live.as_ref().is_some_and(super::statefulset_ready);
    let template_revision = live
        .as_ref()
        .and_then(|l| l.annotations().get(TEMPLATE_REVISION_ANNOTATION).cloned());
    let running_image = live.as_ref().and_then(template_image);
    let oom = pod.as_ref().and_then(oom_fact);
    let facts = NodeFacts {
        key,
        genesis_missing,
        pod_ready,
        oom,
        stopped: node.spec.stopped,
    };
    let decision = decide(&facts);

    let (enode, address) = match &facts.key {
        KeyFact::Valid(public_key, address) => {
            let enode = enode_url(
                public_key,
                &pod_dns_name(&name, &ns),
                u16::try_from(node.spec.ports.p2p).unwrap_or(30303),
                None,
            );
            (Some(enode), Some(address.to_string()))
        }
        _ => (None, None),
    };
    let previous = node.status.clone().unwrap_or_default();
    let conditions = merge_conditions(
        &previous.conditions,
        &decision.conditions,
        node.metadata.generation,
        Timestamp::now(),
    );
    // An OOMKill is news each time it happens again (its message counts the restarts).
    let oom_again = conditions.iter().find(|c| {
        c.type_ == "OOMKilled"
            && c.status == "True"
            && previous
                .conditions
                .iter()
                .any(|p| p.type_ == c.type_ && p.status == c.status && p.message != c.message)
    });
    for c in transitions(&previous.conditions, &conditions)
        .into_iter()
        .chain(oom_again)
    {
        let interesting = (c.type_ == "Ready")
            || (c.type_ == "Degraded" && c.status == "True")
            || (c.type_ == "OOMKilled" && c.status == "True");
        if interesting {
            let type_ = if c.type_ == "Degraded" || c.type_ == "OOMKilled" {
                EventType::Warning
            } else {
                EventType::Normal
            };
            ctx.event(node.as_ref(), type_, &c.reason, c.message.clone())
                .await;
        }
    }
    let status = BesuNodeStatus {
        phase: decision.phase,
        observed_generation: node.metadata.generation,
        conditions,
        enode,
        address,
        pod_ready: facts.pod_ready,
        image: if facts.pod_ready { running_image } else { None },
        template_revision,
        pending_template_revision,
    };
    write_status_if_changed(&nodes, &node, node.status.as_ref(), &status).await?;

    Ok(match decision.phase {
        NodePhase::Ready => Action::requeue(ctx.resync),
        // The pod turning Ready arrives as a StatefulSet status event; this is the net.
        NodePhase::Pending => Action::requeue(super::network::NODE_WAIT_SAFETY_NET),
        NodePhase::Degraded => Action::requeue(Duration::from_secs(30)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> KeyFact {
        let key = crate::chain::key::NodeKey::generate();
        KeyFact::Valid(key.public_key(), key.address())
    }

    #[test]
    fn a_changed_template_of_a_network_node_waits_for_its_permit() {
        use TemplateDecision::{Apply, Hold};
        // No StatefulSet yet: create it.
        assert_eq!(template_decision(true, None, "r2", None), Apply);
        // Unchanged template: apply (other fields may have changed).
        assert_eq!(template_decision(true, Some(Some("r2")), "r2", None), Apply);
        // An operator release renders r2 where r1 runs: hold until permitted.
        assert_eq!(template_decision(true, Some(Some("r1")), "r2", None), Hold);
        assert_eq!(
            template_decision(true, Some(Some("r1")), "r2", Some("r1")),
            Hold
        );
        assert_eq!(
            template_decision(true, Some(Some("r1")), "r2", Some("r2")),
            Apply
        );
        // A StatefulSet of an older release carries no revision: different.
        assert_eq!(template_decision(true, Some(None), "r2", None), Hold);
        // A standalone node has no quorum to protect.
        assert_eq!(
            template_decision(false, Some(Some("r1")), "r2", None),
            Apply
        );
    }

    #[test]
    fn missing_key_stops_the_pod_and_says_what_to_do() {
        let d = decide(&NodeFacts {
            key: KeyFact::Missing("net-validator-0-key".into()),
            genesis_missing: None,
            pod_ready: true,
            oom: None,
            stopped: false,
        });
        assert_eq!(d.replicas, 0);
        assert_eq!(d.phase, NodePhase::Degraded);
        let degraded = &d.conditions[1];
        assert!(degraded.status);
        assert_eq!(degraded.reason, "KeySecretMissing");
        assert!(degraded.message.contains("net-validator-0-key"));
        assert!(degraded.message.contains("Restore"));
    }

    #[test]
    fn replicas_do_not_depend_on_the_pod() {
        // The reconcile decides replicas before it reads the pod (after the apply).
        for key in [
            valid(),
            KeyFact::Missing("k".into()),
            KeyFact::NotConfigured,
        ] {
            let with = |pod_ready| {
                decide(&NodeFacts {
                    key: key.clone(),
                    genesis_missing: None,
                    pod_ready,
                    oom: None,
                    stopped: false,
                })
                .replicas
            };
            assert_eq!(with(true), with(false), "{key:?}");
        }
    }

    #[test]
    fn ready_only_when_pod_ready_and_no_problem() {
        let pending = decide(&NodeFacts {
            key: valid(),
            genesis_missing: None,
            pod_ready: false,
            oom: None,
            stopped: false,
        });
        assert_eq!((pending.replicas, pending.phase), (1, NodePhase::Pending));
        let ready = decide(&NodeFacts {
            key: valid(),
            genesis_missing: None,
            pod_ready: true,
            oom: None,
            stopped: false,
        });
        assert_eq!((ready.replicas, ready.phase), (1, NodePhase::Ready));
        let no_genesis = decide(&NodeFacts {
            key: KeyFact::NotConfigured,
            genesis_missing: Some("g".into()),
            pod_ready: true,
            oom: None,
            stopped: false,
        });
        assert_eq!(
            (no_genesis.replicas, no_genesis.phase),
            (0, NodePhase::Degraded)
        );
    }

    #[test]
    fn an_oomkilled_container_is_reported_with_its_limit_and_restarts() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "net-validator-1-0"},
            "spec": {"containers": [{"name": "besu", "resources": {"limits": {"memory": "512Mi"}}}]},
            "status": {"containerStatuses": [{
                "name": "besu", "image": "i", "imageID": "", "ready": true, "restartCount": 2,
                "state": {"running": {}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}
            }]}
        }))
        .expect("pod");
        let oom = oom_fact(&pod).expect("an OOM fact");
        assert_eq!(oom.restarts, 2);
        assert_eq!(oom.limit.as_deref(), Some("512Mi"));
        let d = decide(&NodeFacts {
            key: valid(),
            genesis_missing: None,
            pod_ready: true,
            oom: Some(oom),
            stopped: false,
        });
        let c = d
            .conditions
            .iter()
            .find(|c| c.type_ == "OOMKilled")
            .expect("condition");
        assert!(c.status);
        assert!(c.message.contains("net-validator-1-0") && c.message.contains("512Mi"));
        // The node still runs: an OOMKill is reported, not a reason to stop the pod.
        assert_eq!((d.replicas, d.phase), (1, NodePhase::Ready));

        // Killed for another reason last time: no OOM fact.
        let mut other = pod.clone();
        if let Some(cs) = other
            .status
            .as_mut()
            .and_then(|s| s.container_statuses.as_mut())
        {
            cs[0].last_state = serde_json::from_value(
                serde_json::json!({"terminated": {"exitCode": 143, "reason": "Error"}}),
            )
            .ok();
        }
        assert_eq!(oom_fact(&other), None);
    }
}
