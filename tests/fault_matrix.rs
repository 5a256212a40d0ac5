//! The fault matrix: the operator binary, the local cluster and the Besu simulator, with
//! faults a real cluster has, each test ending with the safety monitor (`tests/safety`:
//! the simulator's witness record checked against Besu's fault budget, own keys, own
//! genesis, no long stall) and zero writes by the operator in a 60 s window at rest.
//!
//! - an operator release that renders every Besu pod differently (the debug-only
//!   `BESU_OPERATOR_TEST_RENDER_SALT`, a label that reaches the pod template and the claim
//!   template) rolls out through the quorum-safe rollout, never all at once;
//! - a validator whose JSON-RPC times out during an image rollout is never restarted
//!   for it, and the rollout waits (condition `Upgrading`, naming it) until it answers;
//! - a validator voted in out of band (no Kubernetes object changes) is reported within
//!   a chain poll, with a 10-minute resync: the network's chain observer wakes it.

mod faults;
mod operator;
mod safety;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use besu_operator::render::node::{TEMPLATE_REVISION_ANNOTATION, TEST_RENDER_SALT_LABEL};
use besu_operator_api::{BesuNetwork, LABEL_NETWORK, NetworkPhase};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use faults::{
    CHANGE, MAX_GAP_MS, condition, network, now_ms, pod_states, quiet_at_rest, set_image, setup,
    sim_post, wait_in_step, wait_ready, wait_rollout_done,
};
use safety::assert_chain_safe;
use support::{Check, not_yet, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_release_that_renders_differently_rolls_out_within_the_budget()
-> anyhow::Result<()> {
    let (_client, ns, mut op) = setup("opupgrade").await?;
    let networks: Api<BesuNetwork> = ns.api();
    let net = network(&ns.name)?;
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;
    wait_ready(&networks, &name).await?;
    let sts: Api<StatefulSet> = ns.api();
    let revisions = |list: Vec<StatefulSet>| -> BTreeMap<String, String> {
        list.into_iter()
            .map(|s| {
                let r = s
                    .annotations()
                    .get(TEMPLATE_REVISION_ANNOTATION)
                    .cloned()
                    .unwrap_or_default();
                (s.name_any(), r)
            })
            .collect()
    };
    let before = revisions(sts.list(&ListParams::default()).await?.items);
    ensure!(before.len() == 6, "{} StatefulSets, want 6", before.len());

    // A new release: same BesuNetwork, every Besu pod (and claim) template rendered
    // differently.
    op.kill();
    op.env
        .push(("BESU_OPERATOR_TEST_RENDER_SALT".into(), "release-b".into()));
    op.restart()?;
    let started = Instant::now();
    let pods: Api<Pod> = ns.api();
    let selector = format!("{LABEL_NETWORK}={name}");
    wait_until(
        "every Besu pod on release B's template, Ready",
        CHANGE,
        || async {
            let after = revisions(sts.list(&ListParams::default()).await?.items);
            let changed = after
                .iter()
                .filter(|(n, r)| before.get(*n).is_some_and(|b| b != *r))
                .count();
            let list = pods.list(&ListParams::default().labels(&selector)).await?;
            let on_b = list
                .iter()
                .filter(|p| p.labels().get(TEST_RENDER_SALT_LABEL).map(String::as_str) == Some("release-b"))
                .filter(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .count();
            let net = networks.get(&name).await?;
            let up = condition(&net, "Upgrading");
            let ready = net.status.as_ref().map(|s| s.phase) == Some(NetworkPhase::Ready);
            if changed == 6 && on_b == 6 && ready && up.as_ref().is_some_and(|u| u.0 == "False") {
                Ok(Check::Done(()))
            } else {
                not_yet(format!(
                    "{changed}/6 StatefulSets on a new revision, {on_b}/6 pods Ready on release B; Upgrading {up:?}"
                ))
            }
        },
    )
    .await?;
    println!(
        "operator upgrade: all 6 nodes on the new template {:.1} s after the new operator started",
        started.elapsed().as_secs_f64()
    );
    let log = op.log_text();
    ensure!(
        !log.contains("field is immutable"),
        "the operator hit an immutable field (volumeClaimTemplates?):\n{}",
        log.lines()
            .filter(|l| l.contains("immutable"))
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_chain_safe(&ns.name, &name, &[], MAX_GAP_MS).await?;
    quiet_at_rest(&ns.name).await?;
    drop(op);
    ns.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpc_timeout_during_a_rollout_never_takes_a_second_validator_down() -> anyhow::Result<()>
{
    let (_client, ns, op) = setup("rpcfault").await?;
    let networks: Api<BesuNetwork> = ns.api();
    let net = network(&ns.name)?;
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;
    wait_ready(&networks, &name).await?;
    let pods: Api<Pod> = ns.api();
    let selector = format!("{LABEL_NETWORK}={name}");
    let faulty_node = format!("{name}-validator-1");
    let faulty_pod = format!("{faulty_node}-0");
    let before = pod_states(&pods, &selector).await?;
    let faulty_uid = before
        .get(&faulty_pod)
        .map(|s| s.0.clone())
        .context("no validator-1 pod")?;

    let image = "hyperledger/besu:26.3.1";
    set_image(&networks, &name, image).await?;
    // The moment the first validator is taken down for the new image, validator-1's
    // JSON-RPC starts timing out (its pod stays Ready: Kubernetes sees nothing wrong).
    let v0 = format!("{name}-validator-0");
    wait_in_step(&networks, &name, &v0).await?;
    let fault_at = now_ms();
    sim_post(
        &format!("/chains/{}/{name}/nodes/{faulty_pod}/rpc-fault", ns.name),
        json!({"mode": "timeout"}),
    )
    .await?;

    // The rollout must wait, naming validator-1, with validator-0 back on the new image
    // and no other validator touched.
    // The rollout must wait, naming validator-1. Validator-0 is either back (its pod went
    // down before the fault) or untouched (its step was called off when validator-1 went
    // silent before validator-0's pod was taken down): no other validator is touched.
    let waiting = wait_until("the rollout waiting for validator-1", CHANGE, || async {
        let net = networks.get(&name).await?;
        let up = condition(&net, "Upgrading");
        let states = pod_states(&pods, &selector).await?;
        let v0_settled = states
            .get(&format!("{v0}-0"))
            .is_some_and(|(_, _, ready)| *ready);
        match &up {
            Some((s, reason, msg))
                if s == "True"
                    && reason == "Waiting"
                    && msg.contains(&faulty_node)
                    && v0_settled =>
            {
                Ok(Check::Done(msg.clone()))
            }
            _ => not_yet(format!("Upgrading {up:?}; validator-0 Ready: {v0_settled}")),
        }
    })
    .await?;
    println!("rollout waits: {waiting}");
    let states = pod_states(&pods, &selector).await?;
    let restarted: Vec<&String> = states
        .iter()
        .filter(|(n, (uid, _, _))| {
            n.contains("-validator-") && before.get(*n).is_some_and(|b| &b.0 != uid)
        })
        .map(|(n, _)| n)
        .collect();
    let v0_pod = format!("{v0}-0");
    ensure!(
        restarted.iter().all(|n| **n == v0_pod),
        "while validator-1's RPC timed out, the rollout restarted {restarted:?} (only validator-0 was allowed)"
    );
    ensure!(
        states.get(&faulty_pod).map(|s| &s.0) == Some(&faulty_uid),
        "validator-1 was restarted because its RPC timed out"
    );

    // The RPC answers again: the rollout finishes.
    sim_post(
        &format!("/chains/{}/{name}/nodes/{faulty_pod}/rpc-fault", ns.name),
        json!({"mode": "none"}),
    )
    .await?;
    let healed_at = now_ms();
    wait_rollout_done(&networks, &pods, &name, &selector, image, 6).await?;
    println!(
        "rpc fault: validator-1's RPC timed out for {} ms; the rollout finished {} ms after it answered again",
        healed_at.saturating_sub(fault_at),
        now_ms().saturating_sub(healed_at)
    );
    assert_chain_safe(&ns.name, &name, &[], MAX_GAP_MS).await?;
    quiet_at_rest(&ns.name).await?;
    drop(op);
    ns.cleanup().await
}

/// `besu_operator_reconcile_triggers_total` of the network controller for `trigger`.
async fn network_triggers(op: &operator::Operator, trigger: &str) -> anyhow::Result<f64> {
    Ok(op
        .metrics()
        .await?
        .iter()
        .filter(|(series, _)| {
            series.starts_with("besu_operator_reconcile_triggers_total{")
                && series.contains("controller=\"network\"")
                && series.contains(&format!("trigger=\"{trigger}\""))
        })
        .map(|(_, v)| *v)
        .sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_band_validator_is_reported_and_left_alone() -> anyhow::Result<()> {
    // A resync of 10 minutes: a vote changes no Kubernetes object, so only the network's
    // chain observer (controller::chain) can wake its reconcile in time.
    let client = support::cluster().client().await?;
    operator::install_crds(&client).await?;
    let ns = support::TestNamespace::create(&client, "oob").await?;
    let op = operator::Operator::start_with_resync(support::cluster(), &ns.name, 600)?;
    let networks: Api<BesuNetwork> = ns.api();
    let net = network(&ns.name)?;
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;
    wait_ready(&networks, &name).await?;
    wait_until("ValidatorSetConverged", CHANGE, || async {
        let net = networks.get(&name).await?;
        match condition(&net, "ValidatorSetConverged") {
            Some((s, _, _)) if s == "True" => Ok(Check::Done(())),
            other => not_yet(format!("{other:?}")),
        }
    })
    .await?;
    // Someone with access to the validators' JSON-RPC votes in an address of their own.
    let woken_before = network_triggers(&op, "other").await?;
    let stranger = format!("0x{}", "5a".repeat(20));
    sim_post(
        &format!("/chains/{}/{name}/out-of-band-vote", ns.name),
        json!({"address": stranger, "add": true}),
    )
    .await?;
    let message = wait_until(
        "the network to report the unknown validator",
        CHANGE,
        || async {
            let net = networks.get(&name).await?;
            match condition(&net, "ValidatorSetConverged") {
                Some((s, reason, msg))
                    if s == "False"
                        && reason == "UnknownValidator"
                        && msg.to_lowercase().contains(&stranger) =>
                {
                    Ok(Check::Done(msg))
                }
                other => not_yet(format!("{other:?}")),
            }
        },
    )
    .await?;
    println!("reported: {message}");
    let woken = network_triggers(&op, "other").await? - woken_before;
    ensure!(
        woken >= 1.0,
        "the report came without a reconcile started by the chain observer"
    );
    println!("the chain observer woke the network {woken} times");
    let events: Api<k8s_openapi::api::core::v1::Event> = ns.api();
    let warned = wait_until(
        "a Warning event naming the address",
        Duration::from_secs(30),
        || async {
            let list = events.list(&ListParams::default()).await?;
            let hit = list.items.iter().any(|e| {
                e.reason.as_deref() == Some("UnknownValidator")
                    && e.type_.as_deref() == Some("Warning")
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.to_lowercase().contains(&stranger))
            });
            if hit {
                Ok(Check::Done(()))
            } else {
                not_yet(format!("{} events", list.items.len()))
            }
        },
    )
    .await;
    warned?;
    // At rest for 60 s: the operator writes nothing and never votes the stranger out.
    quiet_at_rest(&ns.name).await?;
    let w = safety::witness(&ns.name, &name).await?;
    let last = w.blocks.last().context("no blocks")?;
    ensure!(
        last.validators
            .iter()
            .any(|v| v.eq_ignore_ascii_case(&stranger)),
        "the stranger {stranger} is no longer on-chain at block {}: the operator voted it out on its own",
        last.number
    );
    let net = networks.get(&name).await?;
    ensure!(
        condition(&net, "ValidatorSetConverged").is_some_and(|c| c.0 == "False"),
        "the network calls itself converged with an unknown validator on-chain"
    );
    assert_chain_safe(&ns.name, &name, &[], MAX_GAP_MS).await?;
    drop(op);
    ns.cleanup().await
}

/// Deletes a pod as a node failure or an eviction would, and returns the fault's label.
async fn delete_pod(pods: &Api<Pod>, pod: &str) -> anyhow::Result<safety::Injected> {
    let at_ms = now_ms();
    pods.delete(pod, &kube::api::DeleteParams::default())
        .await?;
    Ok(safety::Injected {
        pod: pod.to_string(),
        at_ms,
        what: "the test deleted the pod".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_deleted_during_a_rollout_and_a_scale_count_against_the_budget() -> anyhow::Result<()>
{
    let (_client, ns, op) = setup("poddel").await?;
    let networks: Api<BesuNetwork> = ns.api();
    let net = network(&ns.name)?;
    let name = net.name_any();
    networks.create(&PostParams::default(), &net).await?;
    wait_ready(&networks, &name).await?;
    let pods: Api<Pod> = ns.api();
    let selector = format!("{LABEL_NETWORK}={name}");
    let mut injected = Vec::new();

    // 1. A rollout: while validator-0 is being updated, validator-2's pod is deleted.
    let before_rollout = pod_states(&pods, &selector).await?;
    let image = "hyperledger/besu:26.3.1";
    set_image(&networks, &name, image).await?;
    let v0 = format!("{name}-validator-0");
    // Once validator-0 is really down (its pod replaced or not Ready: a lasting sign, which
    // a poll cannot miss the way it can miss a short rollout step), validator-2's pod is
    // deleted: from then on the operator may take no other validator down until
    // validator-2 is back.
    let v0_uid = before_rollout.get(&format!("{v0}-0")).map(|s| s.0.clone());
    wait_until("validator-0's pod down for the update", CHANGE, || async {
        let states = pod_states(&pods, &selector).await?;
        match states.get(&format!("{v0}-0")) {
            Some((uid, _, ready)) if Some(uid) == v0_uid.as_ref() && *ready => not_yet("still up"),
            other => Ok(Check::Done(format!("{other:?}"))),
        }
    })
    .await?;
    injected.push(delete_pod(&pods, &format!("{name}-validator-2-0")).await?);
    wait_rollout_done(&networks, &pods, &name, &selector, image, 6).await?;

    // 2. A scale 4 -> 5: while the vote runs, validator-1's pod is deleted.
    networks
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"validators": 5}})),
        )
        .await?;
    wait_until("a vote in progress", CHANGE, || async {
        let net = networks.get(&name).await?;
        let pending = net.status.map(|s| s.validators.pending).unwrap_or_default();
        if pending.iter().any(|p| p.votes >= 1) {
            Ok(Check::Done(()))
        } else {
            not_yet(format!("{pending:?}"))
        }
    })
    .await?;
    injected.push(delete_pod(&pods, &format!("{name}-validator-1-0")).await?);
    wait_until("5 validators on-chain, converged", CHANGE, || async {
        let net = networks.get(&name).await?;
        let status = net.status.clone().unwrap_or_default();
        let converged = condition(&net, "ValidatorSetConverged").is_some_and(|c| c.0 == "True");
        if converged && status.validators.on_chain.len() == 5 {
            Ok(Check::Done(()))
        } else {
            not_yet(format!(
                "on-chain {}; {:?}",
                status.validators.on_chain.len(),
                condition(&net, "ValidatorSetConverged")
            ))
        }
    })
    .await?;
    // One injected outage at a time with one validator of 4 or 5 allowed down: the
    // chain may pause while both an injected and the rollout's validator are down.
    assert_chain_safe(&ns.name, &name, &injected, 10_000).await?;
    quiet_at_rest(&ns.name).await?;
    drop(op);
    ns.cleanup().await
}
