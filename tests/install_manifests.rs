//! The plain-manifest install: `manifests/install.yaml` passes a server-side dry run on
//! the local cluster; a generated install really applied in a fresh namespace gets its
//! operator pod admitted under the `restricted` Pod Security Standard; the Dockerfile
//! builds the `cargo build --release` binary into a non-root runtime image.

mod install_support;
mod support;

use std::time::Duration;

use anyhow::{Context as _, ensure};
use besu_operator::generate::install::{self, InstallOptions};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use install_support::{ClusterScopedCleanup, kubectl_apply};
use support::{Check, cluster, not_yet, repo_root, unique_name, wait_until};

fn documents(yaml: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut docs = Vec::new();
    for d in serde_yaml::Deserializer::from_str(yaml) {
        let v: serde_json::Value = serde::Deserialize::deserialize(d)?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

#[tokio::test]
async fn install_yaml_passes_a_server_side_dry_run() -> anyhow::Result<()> {
    let c = cluster();
    let client = c.client().await?;
    let path = repo_root().join("manifests/install.yaml");
    let text = std::fs::read_to_string(&path)?;
    let docs = documents(&text)?;
    // A dry run cannot create the Namespace its other objects go into, so the
    // Namespace (the file's first document) is applied for real first, and removed
    // again unless it was there before.
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let existed = ns_api.get_opt(install::NAMESPACE).await?.is_some();
    ensure!(
        docs[0]["kind"] == "Namespace",
        "install.yaml must start with its Namespace"
    );
    kubectl_apply(c, &serde_yaml::to_string(&docs[0])?, &[])?;
    let out = c.kubectl(&["apply", "-f", &path.to_string_lossy(), "--dry-run=server"]);
    if !existed {
        c.kubectl(&["delete", "namespace", install::NAMESPACE, "--wait=false"])?;
    }
    let out = out?;
    let dry = out
        .lines()
        .filter(|l| l.ends_with("(server dry run)"))
        .count();
    ensure!(
        dry == docs.len(),
        "{} documents, {dry} accepted by the dry run:\n{out}",
        docs.len()
    );
    Ok(())
}

#[tokio::test]
async fn watch_namespace_install_passes_a_server_side_dry_run() -> anyhow::Result<()> {
    let c = cluster();
    let opts = InstallOptions {
        namespace: "default".to_string(),
        watch_namespaces: vec!["default".to_string(), "kube-public".to_string()],
        ..InstallOptions::default()
    };
    let yaml = besu_operator::generate::install_yaml(&opts)?;
    let docs = documents(&yaml)?;
    let out = kubectl_apply(c, &yaml, &["--dry-run=server"])?;
    let dry = out
        .lines()
        .filter(|l| l.ends_with("(server dry run)"))
        .count();
    ensure!(
        dry == docs.len(),
        "{dry} of {} accepted:\n{out}",
        docs.len()
    );
    ensure!(
        !out.contains("clusterrole"),
        "a ClusterRole in watch-namespace mode:\n{out}"
    );
    Ok(())
}

#[tokio::test]
async fn operator_pod_is_admitted_under_the_restricted_pod_security_standard() -> anyhow::Result<()>
{
    let c = cluster();
    let client = c.client().await?;
    let ns = unique_name("install");
    let opts = InstallOptions {
        namespace: ns.clone(),
        ..InstallOptions::default()
    };
    // Everything but the CRDs (other tests in this cluster use them), with a
    // ClusterRole name of its own.
    let mut yaml = String::new();
    for d in install::install_documents(&opts)? {
        let mut doc: serde_json::Value = serde_yaml::from_str(&d)?;
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        if kind == "CustomResourceDefinition" {
            continue;
        }
        if kind.starts_with("ClusterRole") {
            doc["metadata"]["name"] = ns.clone().into();
        }
        if kind == "ClusterRoleBinding" {
            doc["roleRef"]["name"] = ns.clone().into();
        }
        yaml.push_str("---\n");
        yaml.push_str(&serde_yaml::to_string(&doc)?);
    }
    let _cleanup = ClusterScopedCleanup {
        kubeconfig: c.kubeconfig.clone(),
        objects: vec![
            format!("namespace/{ns}"),
            format!("clusterrolebinding/{ns}"),
            format!("clusterrole/{ns}"),
        ],
    };
    kubectl_apply(c, &yaml, &[])?;
    let labels = c.kubectl(&["get", "namespace", &ns, "-o", "jsonpath={.metadata.labels}"])?;
    ensure!(labels.contains("\"pod-security.kubernetes.io/enforce\":\"restricted\""));
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod = wait_until(
        "the operator pod Running",
        Duration::from_secs(60),
        || async {
            let list = pods
                .list(&ListParams::default().labels("app.kubernetes.io/name=besu-operator"))
                .await?;
            match list.items.first() {
                Some(p)
                    if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") =>
                {
                    Ok(Check::Done(p.clone()))
                }
                Some(p) => not_yet(format!(
                    "{} {:?}",
                    p.name_any(),
                    p.status.as_ref().and_then(|s| s.phase.clone())
                )),
                None => {
                    // A pod refused by Pod Security shows up as a ReplicaSet event.
                    let events = c
                        .kubectl(&["get", "events", "-n", &ns, "-o", "name"])
                        .unwrap_or_default();
                    not_yet(format!("no pod yet; events: {events}"))
                }
            }
        },
    )
    .await
    .context("the Deployment's pod was not created (refused by Pod Security?)")?;
    let spec = pod.spec.context("pod spec")?;
    ensure!(spec.service_account_name.as_deref() == Some(install::NAME));
    let container = &spec.containers[0];
    let sc = container
        .security_context
        .as_ref()
        .context("securityContext")?;
    ensure!(sc.read_only_root_filesystem == Some(true));
    ensure!(sc.allow_privilege_escalation == Some(false));
    let env: Vec<&str> = container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    ensure!(env.contains(&"POD_NAME") && env.contains(&"POD_NAMESPACE"));
    Ok(())
}

#[test]
fn dockerfile_builds_the_release_binary_into_a_non_root_runtime() -> anyhow::Result<()> {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile"))?;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    ensure!(froms.len() == 2, "two stages expected: {froms:?}");
    ensure!(
        froms[0].contains(" AS builder"),
        "first stage is the builder"
    );
    ensure!(
        froms[1].contains("gcr.io/distroless/cc") && froms[1].contains(":nonroot"),
        "runtime is distroless cc, nonroot: {}",
        froms[1]
    );
    ensure!(
        lines
            .iter()
            .any(|l| l.contains("cargo build --release --locked --bin besu-operator")),
        "the builder runs cargo build --release"
    );
    let runtime: Vec<&&str> = lines
        .iter()
        .skip_while(|l| !l.starts_with("FROM ") || l.contains(" AS builder"))
        .collect();
    let copies: Vec<&&&str> = runtime.iter().filter(|l| l.starts_with("COPY")).collect();
    ensure!(
        copies.len() == 1
            && copies[0].contains("--from=builder")
            && copies[0].contains("/target/release/besu-operator"),
        "the runtime stage copies only the release binary: {copies:?}"
    );
    ensure!(
        runtime.contains(&&"USER 65532:65532"),
        "the runtime runs as 65532 (nonroot), as the Deployment expects"
    );
    ensure!(
        runtime
            .iter()
            .any(|l| l.starts_with("ENTRYPOINT [\"/besu-operator\"]"))
    );
    // The builder's Rust is at least the workspace's rust-version.
    let cargo = std::fs::read_to_string(repo_root().join("Cargo.toml"))?;
    let msrv = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|l| l.strip_suffix('"'))
        .context("rust-version")?;
    ensure!(
        text.contains(&format!("ARG RUST_VERSION={msrv}")),
        "Dockerfile RUST_VERSION must be the workspace rust-version {msrv}"
    );
    Ok(())
}
