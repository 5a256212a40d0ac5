//! The local cluster's real node (hack/real-node.sh): pods land there only when they ask
//! for it, run as real containers with an IP on the node's bridge, and the operator
//! image built from local files is the Dockerfile's image: same binary (the release
//! build), same user, same entrypoint and command, under the name manifests/install.yaml
//! uses.

mod real_node_support;
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use real_node_support::{REAL_NODE, REAL_NODE_LABEL, required, use_real_node};
use support::{Check, TestNamespace, cluster, not_yet, repo_root, wait_until};

fn images_dir() -> PathBuf {
    let cache = std::env::var_os("BESU_OPERATOR_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("besu-operator"))
        })
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/besu-operator")))
        .unwrap_or_else(|| PathBuf::from(".cache/besu-operator"));
    cache.join("images")
}

/// A file of a docker-archive (`tar -xOf`), or of its single layer.
fn archive_file(archive: &PathBuf, path: &str) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(archive)
        .arg(path)
        .output()
        .context("run tar")?;
    ensure!(
        out.status.success(),
        "tar -xOf {} {path}: {}",
        archive.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout)
}

fn layer_file(archive: &PathBuf, path: &str) -> anyhow::Result<Vec<u8>> {
    let layer = std::env::temp_dir().join(support::unique_name("layer"));
    std::fs::write(&layer, archive_file(archive, "layer.tar")?)?;
    let r = archive_file(&layer, path);
    let _ = std::fs::remove_file(&layer);
    r
}

fn sha256(bytes: &[u8]) -> anyhow::Result<String> {
    let file = std::env::temp_dir().join(support::unique_name("sha"));
    std::fs::write(&file, bytes)?;
    let out = Command::new("sha256sum").arg(&file).output()?;
    let _ = std::fs::remove_file(&file);
    Ok(String::from_utf8(out.stdout)?
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// The last stage's value of a Dockerfile instruction, as JSON when it is JSON.
fn dockerfile(instruction: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile"))?;
    let mut value = None;
    for line in text.lines() {
        let mut words = line.trim().splitn(2, char::is_whitespace);
        let (Some(i), rest) = (words.next(), words.next()) else {
            continue;
        };
        if i.eq_ignore_ascii_case("FROM") {
            value = None;
        } else if i.eq_ignore_ascii_case(instruction) {
            value = rest.map(|r| r.trim().to_string());
        }
    }
    value.with_context(|| format!("no {instruction} in the Dockerfile's last stage"))
}

#[test]
fn the_local_operator_image_is_the_dockerfile_image_with_this_trees_binary() -> anyhow::Result<()> {
    if std::env::var("BESU_REAL_NODE").as_deref() == Ok("0") {
        eprintln!("skipped: BESU_REAL_NODE=0");
        return Ok(());
    }
    let archive = images_dir().join("operator.tar");
    ensure!(
        archive.exists(),
        "{} is missing: run make images",
        archive.display()
    );
    let manifest: Value = serde_json::from_slice(&archive_file(&archive, "manifest.json")?)?;
    let config_name = manifest[0]["Config"].as_str().context("no Config")?;
    let config: Value = serde_json::from_slice(&archive_file(&archive, config_name)?)?;
    let c = &config["config"];

    // The name install.yaml and the chart use.
    let install = std::fs::read_to_string(repo_root().join("manifests/install.yaml"))?;
    let image = install
        .lines()
        .find_map(|l| l.trim().strip_prefix("image: "))
        .context("no image in install.yaml")?;
    ensure!(
        manifest[0]["RepoTags"][0] == image,
        "tag {} vs install.yaml {image}",
        manifest[0]["RepoTags"][0]
    );

    // User, entrypoint and command as the Dockerfile's runtime stage declares them.
    let user = dockerfile("USER")?;
    ensure!(
        c["User"] == user.as_str(),
        "User {} vs Dockerfile {user}",
        c["User"]
    );
    let entry: Value = serde_json::from_str(&dockerfile("ENTRYPOINT")?)?;
    ensure!(
        c["Entrypoint"] == entry,
        "Entrypoint {} vs Dockerfile {entry}",
        c["Entrypoint"]
    );
    let cmd: Value = serde_json::from_str(&dockerfile("CMD")?)?;
    ensure!(c["Cmd"] == cmd, "Cmd {} vs Dockerfile {cmd}", c["Cmd"]);

    // The binary at the entrypoint is this tree's build of the profile `make images` used
    // (BESU_IMAGE_PROFILE: debug, the default, or release).
    let profile = std::env::var("BESU_IMAGE_PROFILE").unwrap_or_else(|_| "debug".to_string());
    let path = entry[0]
        .as_str()
        .context("entrypoint path")?
        .trim_start_matches('/');
    let in_image = sha256(&layer_file(&archive, path)?)?;
    let this = PathBuf::from(env!("CARGO_BIN_EXE_besu-operator"));
    let binary = this
        .parent()
        .and_then(|d| d.parent())
        .context("target dir")?
        .join(format!("{profile}/besu-operator"));
    let built =
        sha256(&std::fs::read(&binary).with_context(|| format!("read {}", binary.display()))?)?;
    ensure!(
        in_image == built,
        "the image's /{path} ({in_image}) is not {} ({built}): run make images BESU_IMAGE_PROFILE={profile}",
        binary.display()
    );
    Ok(())
}

async fn pod_in(ns: &TestNamespace, name: &str, image: &str, args: Value) -> anyhow::Result<Pod> {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "main", "image": image, "imagePullPolicy": "Never", "args": args,
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                    "capabilities": {"drop": ["ALL"]}},
                "resources": {"limits": {"memory": "64Mi"}}
            }]
        }
    }))?;
    Ok(ns.api::<Pod>().create(&PostParams::default(), &pod).await?)
}

#[tokio::test]
async fn pods_land_on_the_real_node_only_when_they_ask_and_run_as_real_containers()
-> anyhow::Result<()> {
    let c = cluster();
    let client = c.client().await?;
    if !required(&client).await? {
        return Ok(());
    }
    // The real node is labelled and tainted; the kwok nodes are neither.
    let nodes: Api<Node> = Api::all(client.clone());
    for n in nodes.list(&ListParams::default()).await? {
        let tainted = n
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|ts| {
                ts.iter()
                    .any(|t| t.key == REAL_NODE_LABEL && t.effect == "NoSchedule")
            });
        let labelled = n.labels().get(REAL_NODE_LABEL).map(String::as_str) == Some("true");
        let real = n.name_any() == REAL_NODE;
        ensure!(
            tainted == real && labelled == real,
            "node {}: tainted {tainted}, labelled {labelled}",
            n.name_any()
        );
    }

    // The operator image, unmodified, in a plain namespace: scheduled to a kwok node.
    let image = std::fs::read_to_string(repo_root().join("manifests/install.yaml"))?
        .lines()
        .find_map(|l| l.trim().strip_prefix("image: ").map(str::to_string))
        .context("no image in install.yaml")?;
    let plain = TestNamespace::create(&client, "real-plain").await?;
    pod_in(&plain, "version", &image, json!(["--version"])).await?;
    let pods: Api<Pod> = plain.api();
    let on = wait_until("the pod scheduled", Duration::from_secs(60), || async {
        match pods.get("version").await?.spec.and_then(|s| s.node_name) {
            Some(n) => Ok(Check::Done(n)),
            None => not_yet("unscheduled"),
        }
    })
    .await?;
    ensure!(
        on.starts_with("kwok-node-"),
        "a pod that did not ask went to {on}"
    );

    // In a namespace pointed at the real node: a real container, as the image's
    // non-root user (runAsNonRoot is checked against the image by the kubelet), with an
    // IP on the bridge, whose output the kubelet serves.
    let real = TestNamespace::create(&client, "real-pods").await?;
    use_real_node(&client, &real.name).await?;
    pod_in(&real, "version", &image, json!(["--version"])).await?;
    let pods: Api<Pod> = real.api();
    let pod = wait_until(
        "the operator image's --version to run",
        Duration::from_secs(90),
        || async {
            let p = pods.get("version").await?;
            let phase = p
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default();
            match phase.as_str() {
                "Succeeded" => Ok(Check::Done(p)),
                "Failed" => bail!("the pod failed: {:?}", p.status),
                _ => not_yet(format!(
                    "phase {phase}: {:?}",
                    p.status.as_ref().and_then(|s| s.container_statuses.clone())
                )),
            }
        },
    )
    .await?;
    let spec = pod.spec.as_ref().context("spec")?;
    ensure!(
        spec.node_name.as_deref() == Some(REAL_NODE),
        "ran on {:?}",
        spec.node_name
    );
    let status = pod.status.as_ref().context("status")?;
    let ip = status.pod_ip.clone().unwrap_or_default();
    ensure!(
        ip.starts_with("198.18.0."),
        "pod IP {ip} is not on the real node's bridge"
    );
    let id = status
        .container_statuses
        .as_ref()
        .and_then(|cs| cs.first())
        .and_then(|c| c.container_id.clone())
        .unwrap_or_default();
    ensure!(id.starts_with("containerd://"), "container id {id}");
    let logs = c.kubectl(&["-n", &real.name, "logs", "version"])?;
    let version = env!("CARGO_PKG_VERSION");
    ensure!(
        logs.contains(version),
        "--version printed {logs:?}, not {version}"
    );
    plain.cleanup().await?;
    real.cleanup().await
}
