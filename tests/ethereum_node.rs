//! `EthereumNode` against the real control plane (kwok nodes: the pods are scheduled and
//! "run", but no client answers, so these tests cover what the operator does with the
//! API objects; tests/real_node_ethereum.rs runs the real clients):
//!
//! - admission refuses every combination that cannot work, each with what to do, and
//!   refuses edits of the fields a client's database depends on;
//! - a node without `jwtSecretRef` gets a 32-byte JWT in an immutable Secret it owns,
//!   mounted into both clients, never regenerated (not by an operator restart either);
//! - drift repair: a deleted Service comes back, edited StatefulSet args are put back;
//!   an image change reaches the StatefulSet; `replicas: 0` gives `Stopped`; and at rest
//!   the operator writes nothing;
//! - a missing JWT Secret or custom-network ConfigMap is phase `Error` with a message
//!   that says what to create, and the node proceeds once it exists;
//! - without the VolumeSnapshot API, `spec.backup` gives `BackupFailing` naming what to
//!   install (the node runs all the same) and `spec.restore` is refused with no pods;
//!   `kubectl explain` documents every backup field.

mod operator;
mod support;

use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use besu_operator_api::{EthereumNode, EthereumNodePhase};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use operator::{Operator, install_crds, writes_over_quiet_window};
use support::{Check, TestNamespace, cluster, not_yet, wait_until};

const SETTLE: Duration = Duration::from_secs(90);

fn node_json(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "ethereum.nodeops.dev/v1alpha1",
        "kind": "EthereumNode",
        "metadata": {"name": name},
        "spec": spec,
    })
}

const FEE: &str = "0x00000000000000000000000000000000000000aa";

/// (what, object, substrings the refusal must contain)
fn invalid_cases() -> Vec<(&'static str, Value, Vec<&'static str>)> {
    let long = format!("e{}", "a".repeat(40));
    vec![
        (
            "unknown network",
            node_json("bad-net", json!({"network": "goerli"})),
            vec!["spec.network", "Unsupported value"],
        ),
        (
            "custom without customNetwork",
            node_json("bad-custom", json!({"network": "custom"})),
            vec!["customNetwork: the ConfigMap"],
        ),
        (
            "customNetwork on a public network",
            node_json(
                "bad-custom2",
                json!({"network": "sepolia", "customNetwork": {"configMapName": "x", "chainId": 5}}),
            ),
            vec!["customNetwork is only for network: custom"],
        ),
        (
            "validator without keys",
            node_json(
                "bad-val",
                json!({"network": "hoodi", "nodeType": "validator"}),
            ),
            vec!["nodeType validator needs validator"],
        ),
        (
            "two validator replicas",
            node_json(
                "bad-val2",
                json!({"network": "hoodi", "nodeType": "validator", "replicas": 2, "validator": {"keystoreSecretName": "k", "feeRecipient": FEE}}),
            ),
            vec!["at most 1 replica", "slashed"],
        ),
        (
            "validator section on a full node",
            node_json(
                "bad-val3",
                json!({"network": "hoodi", "validator": {"keystoreSecretName": "k", "feeRecipient": FEE}}),
            ),
            vec!["validator is only for nodeType: validator"],
        ),
        (
            "validator on teku",
            node_json(
                "bad-val4",
                json!({"network": "hoodi", "nodeType": "validator", "consensus": {"client": "teku"}, "validator": {"keystoreSecretName": "k", "feeRecipient": FEE}}),
            ),
            vec!["needs consensus.client prysm"],
        ),
        (
            "bad fee recipient",
            node_json(
                "bad-fee",
                json!({"network": "hoodi", "nodeType": "validator", "validator": {"keystoreSecretName": "k", "feeRecipient": "0x12"}}),
            ),
            vec!["feeRecipient"],
        ),
        (
            "graffiti over 32 bytes",
            node_json(
                "bad-graffiti",
                json!({"network": "hoodi", "nodeType": "validator", "validator": {"keystoreSecretName": "k", "feeRecipient": FEE, "graffiti": "g".repeat(33)}}),
            ),
            vec!["graffiti"],
        ),
        (
            "MEV-boost on a custom network",
            node_json(
                "bad-mev",
                json!({"network": "custom", "customNetwork": {"configMapName": "x", "chainId": 5}, "nodeType": "validator", "validator": {"keystoreSecretName": "k", "feeRecipient": FEE, "mevBoost": {"relays": [format!("https://0x{}@relay.example", "ab".repeat(48))]}}}),
            ),
            vec!["mevBoost is for public networks"],
        ),
        (
            "P2P LoadBalancer with 3 replicas",
            node_json(
                "bad-p2p",
                json!({"network": "mainnet", "replicas": 3, "p2pService": {"type": "LoadBalancer"}}),
            ),
            vec!["needs replicas <= 1"],
        ),
        (
            "NodePort outside the node-port range",
            node_json(
                "bad-np",
                json!({"network": "mainnet", "p2pService": {"type": "NodePort", "executionPort": 30303, "consensusPort": 13000}}),
            ),
            vec!["NodePort range 30000-32767"],
        ),
        (
            "ingress on a full node",
            node_json(
                "bad-ing",
                json!({"network": "mainnet", "ingress": {"host": "rpc.example.com"}}),
            ),
            vec!["ingress is only for nodeType: gateway"],
        ),
        (
            "checkpoint URL not http(s)",
            node_json(
                "bad-cp",
                json!({"network": "mainnet", "consensus": {"checkpointSyncUrl": "ftp://x"}}),
            ),
            vec!["checkpointSyncUrl must be an http(s) URL"],
        ),
        (
            "teku archive from a checkpoint",
            node_json(
                "bad-teku",
                json!({"network": "mainnet", "nodeType": "archive", "consensus": {"client": "teku", "checkpointSyncUrl": "https://x.example"}}),
            ),
            vec!["Teku's archive mode"],
        ),
        (
            "extraArgs setting the JWT",
            node_json(
                "bad-args",
                json!({"network": "mainnet", "execution": {"extraArgs": ["--authrpc.jwtsecret=/tmp/x"]}}),
            ),
            vec!["execution.extraArgs must not set an option the operator sets"],
        ),
        (
            "consensus extraArgs setting the endpoint",
            node_json(
                "bad-args2",
                json!({"network": "mainnet", "consensus": {"extraArgs": ["--execution-endpoint=http://x"]}}),
            ),
            vec!["consensus.extraArgs must not set"],
        ),
        (
            "17 replicas",
            node_json("bad-many", json!({"network": "mainnet", "replicas": 17})),
            vec!["spec.replicas"],
        ),
        (
            "name too long",
            node_json(&long, json!({"network": "mainnet"})),
            vec!["at most 40 characters"],
        ),
    ]
}

fn api(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<EthereumNode>(&()))
}

#[tokio::test]
async fn invalid_ethereum_nodes_are_refused_at_admission_with_what_to_do() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "ethn-admission").await?;
    let dynamic = api(&client, &ns.name);
    let cases = invalid_cases();
    ensure!(cases.len() >= 10);
    let mut failures = Vec::new();
    for (what, object, expect) in &cases {
        let obj: DynamicObject = serde_json::from_value(object.clone())?;
        match dynamic.create(&PostParams::default(), &obj).await {
            Ok(_) => failures.push(format!("{what}: accepted")),
            Err(kube::Error::Api(s)) if s.code == 422 => {
                let missing: Vec<_> = expect.iter().filter(|e| !s.message.contains(**e)).collect();
                if !missing.is_empty() {
                    failures.push(format!("{what}: message lacks {missing:?}: {}", s.message));
                }
            }
            Err(e) => failures.push(format!("{what}: {e}")),
        }
    }
    // Edits of what a client's database depends on are refused; full <-> gateway is not.
    let ok: DynamicObject = serde_json::from_value(node_json("ok", json!({"network": "sepolia"})))?;
    dynamic
        .create(&PostParams::default(), &ok)
        .await
        .context("a valid node")?;
    for (what, patch, expect) in [
        (
            "network edit",
            json!({"spec": {"network": "hoodi"}}),
            "network is immutable",
        ),
        (
            "execution client edit",
            json!({"spec": {"execution": {"client": "besu"}}}),
            "execution.client is immutable",
        ),
        (
            "full to archive",
            json!({"spec": {"nodeType": "archive"}}),
            "nodeType may change only between full and gateway",
        ),
    ] {
        match dynamic
            .patch("ok", &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => failures.push(format!("{what}: accepted")),
            Err(kube::Error::Api(s)) if s.message.contains(expect) => {}
            Err(e) => failures.push(format!("{what}: {e}")),
        }
    }
    dynamic
        .patch(
            "ok",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"nodeType": "gateway"}})),
        )
        .await
        .context("full to gateway is allowed")?;
    ns.cleanup().await?;
    if !failures.is_empty() {
        bail!(
            "{} of {} checks failed:\n{}",
            failures.len(),
            cases.len() + 4,
            failures.join("\n")
        );
    }
    Ok(())
}

async fn phase_is(
    nodes: &Api<EthereumNode>,
    name: &str,
    want: &[EthereumNodePhase],
) -> anyhow::Result<EthereumNode> {
    wait_until(&format!("{name} in {want:?}"), SETTLE, || async {
        let n = nodes.get(name).await?;
        let phase = n.status.as_ref().map(|s| s.phase);
        if phase.is_some_and(|p| want.contains(&p)) {
            Ok(Check::Done(n))
        } else {
            not_yet(format!(
                "{phase:?} {:?}",
                n.status.as_ref().map(|s| &s.conditions)
            ))
        }
    })
    .await
}

fn container_args(sts: &StatefulSet, container: &str) -> Vec<String> {
    sts.spec
        .template
        .spec
        .as_ref()
        .and_then(|p| p.containers.iter().find(|c| c.name == container))
        .and_then(|c| c.args.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_node_gets_its_jwt_and_children_and_drift_is_put_back() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "ethn-children").await?;
    let mut op = Operator::start(cluster(), &ns.name)?;
    let nodes: Api<EthereumNode> = ns.api();
    let secrets: Api<Secret> = ns.api();
    let services: Api<Service> = ns.api();
    let sets: Api<StatefulSet> = ns.api();

    let node: EthereumNode = serde_json::from_value(node_json(
        "sep",
        json!({"network": "sepolia", "execution": {"storage": {"size": "1Gi"}}, "consensus": {"storage": {"size": "1Gi"}}}),
    ))?;
    nodes.create(&PostParams::default(), &node).await?;

    // The JWT: 32 random bytes as 64 hex digits, immutable, owned by the node.
    let jwt = wait_until("the generated JWT Secret", SETTLE, || async {
        match secrets.get_opt("sep-jwt").await? {
            Some(s) => Ok(Check::Done(s)),
            None => not_yet("absent"),
        }
    })
    .await?;
    let value = jwt
        .data
        .as_ref()
        .and_then(|d| d.get("jwt.hex"))
        .map(|b| String::from_utf8_lossy(&b.0).to_string())
        .context("jwt.hex")?;
    ensure!(
        value.len() == 64 && value.chars().all(|c| c.is_ascii_hexdigit()),
        "JWT is not 64 hex digits"
    );
    ensure!(
        jwt.immutable == Some(true),
        "the JWT Secret must be immutable"
    );
    ensure!(
        jwt.owner_references()
            .iter()
            .any(|o| o.kind == "EthereumNode" && o.name == "sep"),
        "owned by the node"
    );
    ensure!(
        !op.log_text().contains(&value),
        "the JWT appears in the operator's log"
    );

    let sts = wait_until("the StatefulSet", SETTLE, || async {
        match sets.get_opt("sep").await? {
            Some(s) => Ok(Check::Done(s)),
            None => not_yet("absent"),
        }
    })
    .await?;
    let pod = sts.spec.template.spec.clone().context("pod spec")?;
    for c in ["execution", "consensus"] {
        let mounts = pod
            .containers
            .iter()
            .find(|x| x.name == c)
            .and_then(|x| x.volume_mounts.clone())
            .unwrap_or_default();
        ensure!(
            mounts
                .iter()
                .any(|m| m.name == "jwt" && m.mount_path == "/jwt"),
            "{c} mounts the JWT"
        );
    }
    ensure!(
        container_args(&sts, "execution").contains(&"--authrpc.jwtsecret=/jwt/jwt.hex".to_string())
    );
    ensure!(container_args(&sts, "consensus").contains(&"--jwt-secret=/jwt/jwt.hex".to_string()));
    let n = phase_is(
        &nodes,
        "sep",
        &[EthereumNodePhase::Pending, EthereumNodePhase::Configuring],
    )
    .await?;
    ensure!(n.status.and_then(|s| s.jwt_secret).as_deref() == Some("sep-jwt/jwt.hex"));

    // A deleted Service comes back.
    services.delete("sep-rpc", &DeleteParams::default()).await?;
    wait_until("sep-rpc back", SETTLE, || async {
        match services.get_opt("sep-rpc").await? {
            Some(s) if s.metadata.deletion_timestamp.is_none() => Ok(Check::Done(())),
            _ => not_yet("absent"),
        }
    })
    .await?;

    // Edited args are put back.
    let desired_args = container_args(&sts, "execution");
    let edit = json!({"spec": {"template": {"spec": {"containers": [{"name": "execution", "args": ["--datadir=/data/execution", "--syncmode=full"]}]}}}});
    sets.patch("sep", &PatchParams::default(), &Patch::Strategic(&edit))
        .await
        .context("edit the StatefulSet's args")?;
    wait_until("the StatefulSet's args put back", SETTLE, || async {
        let live = sets.get("sep").await?;
        let args = container_args(&live, "execution");
        if args == desired_args {
            Ok(Check::Done(()))
        } else {
            not_yet(format!("{args:?}"))
        }
    })
    .await?;

    // At rest: no writes.
    let (_, _, writes) = writes_over_quiet_window(&ns.name, Duration::from_secs(20)).await?;
    ensure!(writes.is_empty(), "the operator wrote at rest: {writes:?}");

    // An operator restart does not touch the JWT.
    op.kill();
    op.restart()?;
    let image = "docker.io/ethereum/client-go:v1.17.9";
    nodes
        .patch(
            "sep",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"execution": {"image": image}}})),
        )
        .await?;
    wait_until("the new image in the StatefulSet", SETTLE, || async {
        let live = sets.get("sep").await?;
        let images: Vec<String> = live
            .spec
            .template
            .spec
            .iter()
            .flat_map(|p| p.containers.iter())
            .filter_map(|c| c.image.clone())
            .collect();
        if images.iter().any(|i| i == image) {
            Ok(Check::Done(()))
        } else {
            not_yet(format!("{images:?}"))
        }
    })
    .await?;
    let again = secrets.get("sep-jwt").await?;
    ensure!(
        again.uid() == jwt.uid() && again.data == jwt.data,
        "the JWT Secret changed"
    );

    // replicas: 0 -> Stopped.
    nodes
        .patch(
            "sep",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 0}})),
        )
        .await?;
    phase_is(&nodes, "sep", &[EthereumNodePhase::Stopped]).await?;
    ensure!(sets.get("sep").await?.spec.replicas == Some(0));
    ensure!(
        !op.log_text().contains(&value),
        "the JWT appears in the operator's log"
    );
    drop(op);
    ns.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn backup_and_restore_without_the_snapshot_api_say_what_to_install() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    install_crds(&client).await?;
    // Every field is documented where users look it up.
    for field in [
        "backup.schedule",
        "backup.volumeSnapshotClassName",
        "backup.keep",
        "backup.seedNewReplicas",
        "backup.readyTimeoutSeconds",
        "restore.fromBackup",
    ] {
        // The API server publishes a CRD's new schema a moment after it is applied.
        wait_until(
            &format!("kubectl explain ethereumnode.spec.{field} to document it"),
            SETTLE,
            || async {
                let text = cluster()
                    .kubectl(&["explain", &format!("ethereumnode.spec.{field}")])
                    .unwrap_or_default();
                let description = text
                    .split("DESCRIPTION:")
                    .nth(1)
                    .map(str::trim)
                    .unwrap_or_default();
                if description.len() > 20 {
                    Ok(Check::Done(()))
                } else {
                    not_yet(text)
                }
            },
        )
        .await?;
    }
    if client
        .list_api_group_resources("snapshot.storage.k8s.io/v1")
        .await
        .is_ok()
    {
        eprintln!(
            "skipped: this cluster serves snapshot.storage.k8s.io/v1 (BESU_SIDE_CLUSTER=0 runs every test on the real node's cluster)"
        );
        return Ok(());
    }
    let ns = TestNamespace::create(&client, "ethn-nosnap").await?;
    let op = Operator::start(cluster(), &ns.name)?;
    let nodes: Api<EthereumNode> = ns.api();
    let sets: Api<StatefulSet> = ns.api();
    let backed: EthereumNode = serde_json::from_value(node_json(
        "backed",
        json!({"network": "hoodi",
               "backup": {"schedule": "*/5 * * * * *", "volumeSnapshotClassName": "any"}}),
    ))?;
    nodes.create(&PostParams::default(), &backed).await?;
    let failing = wait_until("BackupFailing naming what to install", SETTLE, || async {
        let n = nodes.get("backed").await?;
        match n
            .status
            .iter()
            .flat_map(|s| s.conditions.iter())
            .find(|c| c.type_ == "BackupFailing")
        {
            Some(c) if c.status == "True" => Ok(Check::Done(c.clone())),
            other => not_yet(format!("{other:?}")),
        }
    })
    .await?;
    ensure!(
        failing.reason == "SnapshotAPINotServed"
            && failing.message.contains("external-snapshotter"),
        "{failing:?}"
    );
    // The node comes up all the same (the pods gain the identity step), and says it once.
    let sts = wait_until("backed's StatefulSet", SETTLE, || async {
        match sets.get_opt("backed").await? {
            Some(s) => Ok(Check::Done(s)),
            None => not_yet("absent"),
        }
    })
    .await?;
    ensure!(
        sts.spec.replicas == Some(1),
        "nothing is stopped: {:?}",
        sts.spec.replicas
    );
    let warned = cluster().kubectl(&[
        "get",
        "events",
        "-n",
        &ns.name,
        "--field-selector",
        "reason=SnapshotAPINotServed,type=Warning",
        "-o",
        "name",
    ])?;
    ensure!(warned.lines().count() == 1, "one Warning: {warned}");

    let restored: EthereumNode = serde_json::from_value(node_json(
        "restored",
        json!({"network": "hoodi", "restore": {"fromBackup": "latest"}}),
    ))?;
    nodes.create(&PostParams::default(), &restored).await?;
    let n = phase_is(&nodes, "restored", &[EthereumNodePhase::Error]).await?;
    let e = n
        .status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .find(|c| c.type_ == "Error" && c.status == "True")
        .context("no Error")?;
    ensure!(
        e.reason == "RestoreRefused" && e.message.contains("external-snapshotter"),
        "{e:?}"
    );
    ensure!(
        sets.get_opt("restored").await?.is_none(),
        "no StatefulSet without its backup"
    );
    // restore only at creation.
    let refused = nodes
        .patch(
            "backed",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"restore": {"fromBackup": "latest"}}})),
        )
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    ensure!(
        refused.contains("restore applies when the node is created"),
        "{refused}"
    );
    drop(op);
    ns.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn missing_inputs_are_errors_that_say_what_to_create() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "ethn-inputs").await?;
    let op = Operator::start(cluster(), &ns.name)?;
    let nodes: Api<EthereumNode> = ns.api();
    let secrets: Api<Secret> = ns.api();
    let config_maps: Api<ConfigMap> = ns.api();
    let sets: Api<StatefulSet> = ns.api();

    let node: EthereumNode = serde_json::from_value(node_json(
        "dev",
        json!({"network": "custom", "customNetwork": {"configMapName": "devnet", "chainId": 32382},
               "jwtSecretRef": {"name": "shared-jwt"}}),
    ))?;
    nodes.create(&PostParams::default(), &node).await?;
    let n = phase_is(&nodes, "dev", &[EthereumNodePhase::Error]).await?;
    let message = n
        .status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .find(|c| c.type_ == "Error")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    ensure!(
        message.contains("Secret shared-jwt") && message.contains("kubectl create secret"),
        "{message}"
    );
    ensure!(
        sets.get_opt("dev").await?.is_none(),
        "no StatefulSet without its JWT"
    );

    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "shared-jwt"},
        "stringData": {"jwt.hex": "ab".repeat(32)},
    }))?;
    secrets.create(&PostParams::default(), &secret).await?;
    wait_until("the ConfigMap error", SETTLE, || async {
        let n = nodes.get("dev").await?;
        let m = n
            .status
            .iter()
            .flat_map(|s| s.conditions.iter())
            .find(|c| c.type_ == "Error" && c.status == "True")
            .map(|c| c.message.clone())
            .unwrap_or_default();
        if m.contains("ConfigMap devnet") && m.contains("kubectl create configmap") {
            Ok(Check::Done(()))
        } else {
            not_yet(m)
        }
    })
    .await?;
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "devnet"},
        "data": {"genesis.json": "{}", "config.yaml": "PRESET_BASE: mainnet\n", "bootnodes.txt": "enode://aa@10.0.0.1:30303\n"},
        "binaryData": {"genesis.ssz": "AAEC"},
    }))?;
    config_maps.create(&PostParams::default(), &cm).await?;
    let sts = wait_until("the StatefulSet once the inputs exist", SETTLE, || async {
        match sets.get_opt("dev").await? {
            Some(s) => Ok(Check::Done(s)),
            None => not_yet("absent"),
        }
    })
    .await?;
    ensure!(
        container_args(&sts, "execution")
            .contains(&"--bootnodes=enode://aa@10.0.0.1:30303".to_string())
    );
    ensure!(
        container_args(&sts, "consensus")
            .contains(&"--genesis-state=/network/genesis.ssz".to_string())
    );
    phase_is(
        &nodes,
        "dev",
        &[EthereumNodePhase::Pending, EthereumNodePhase::Configuring],
    )
    .await?;
    drop(op);
    ns.cleanup().await?;
    Ok(())
}
