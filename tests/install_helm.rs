//! The Helm chart: `helm lint --strict` is clean, and `helm template` renders the same
//! objects as `manifests/install.yaml` for default values (and as the generator for
//! watch namespaces), up to Helm's own labels. helm is the pinned build from
//! `hack/build-tools.sh`.

mod install_support;
mod support;

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context as _, ensure};
use besu_operator::generate::install::{self, InstallOptions};
use serde_json::Value;

use install_support::{run, tool};
use support::repo_root;

const RELEASE: &str = install::NAME;

fn helm(args: &[&str]) -> anyhow::Result<(bool, String)> {
    let home = std::env::temp_dir().join("besu-operator-helm-home");
    let (status, out, err) = run(Command::new(tool("helm/helm")?)
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG"))?;
    Ok((status.success(), format!("{out}{err}")))
}

fn chart() -> String {
    repo_root()
        .join("manifests/helm/besu-operator")
        .to_string_lossy()
        .into_owned()
}

/// Objects by (kind, namespace, name), with Helm's bookkeeping labels removed.
fn objects(yaml: &str) -> anyhow::Result<BTreeMap<(String, String, String), Value>> {
    let mut out = BTreeMap::new();
    for d in serde_yaml::Deserializer::from_str(yaml) {
        let mut v: Value = serde::Deserialize::deserialize(d)?;
        if v.is_null() {
            continue;
        }
        if let Some(labels) = v.pointer_mut("/metadata/labels") {
            strip(labels);
        }
        if let Some(labels) = v.pointer_mut("/spec/template/metadata/labels") {
            strip(labels);
        }
        let key = (
            v["kind"].as_str().unwrap_or_default().to_string(),
            v["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            v["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        ensure!(out.insert(key.clone(), v).is_none(), "{key:?} twice");
    }
    Ok(out)
}

fn strip(labels: &mut Value) {
    if let Some(m) = labels.as_object_mut() {
        m.remove("helm.sh/chart");
        m.remove("app.kubernetes.io/managed-by");
    }
}

fn template(extra: &[&str]) -> anyhow::Result<String> {
    let chart = chart();
    let mut args = vec![
        "template",
        RELEASE,
        chart.as_str(),
        "--namespace",
        install::NAMESPACE,
        "--include-crds",
    ];
    args.extend_from_slice(extra);
    let (ok, out) = helm(&args)?;
    ensure!(ok, "helm template failed:\n{out}");
    Ok(out)
}

fn assert_same(
    helm: &BTreeMap<(String, String, String), Value>,
    expected: &BTreeMap<(String, String, String), Value>,
) -> anyhow::Result<()> {
    let helm_keys: Vec<_> = helm.keys().collect();
    let expected_keys: Vec<_> = expected.keys().collect();
    ensure!(
        helm_keys == expected_keys,
        "objects differ:\nhelm:     {helm_keys:?}\nexpected: {expected_keys:?}"
    );
    for (k, v) in expected {
        let h = &helm[k];
        ensure!(
            h == v,
            "{k:?} differs:\nhelm:\n{}\nexpected:\n{}",
            serde_yaml::to_string(h)?,
            serde_yaml::to_string(v)?
        );
    }
    Ok(())
}

#[test]
fn helm_lint_is_clean() -> anyhow::Result<()> {
    let chart = chart();
    for extra in [
        vec![],
        vec!["--set", "watchNamespaces={team-a,team-b}"],
        vec![
            "--set",
            "serviceMonitor.enabled=true",
            "--set",
            "replicas=2",
        ],
    ] {
        let mut args = vec!["lint", "--strict", chart.as_str()];
        args.extend(extra.iter().copied());
        let (ok, out) = helm(&args)?;
        ensure!(ok, "helm lint {extra:?} failed:\n{out}");
        ensure!(
            out.contains("1 chart(s) linted, 0 chart(s) failed")
                && !out.contains("[ERROR]")
                && !out.contains("[WARNING]")
                && !out.contains("[INFO]"),
            "helm lint {extra:?} is not clean:\n{out}"
        );
    }
    Ok(())
}

#[test]
fn helm_template_with_default_values_renders_install_yaml() -> anyhow::Result<()> {
    let rendered = objects(&template(&[])?)?;
    let committed = std::fs::read_to_string(repo_root().join("manifests/install.yaml"))?;
    let mut expected = objects(&committed)?;
    // Helm does not create its release namespace.
    expected.retain(|(kind, _, _), _| kind != "Namespace");
    // 3 CRDs (BesuNetwork, BesuNode, EthereumNode), ServiceAccount, ClusterRole(Binding),
    // leader election Role(Binding), Deployment, metrics Service.
    ensure!(
        expected.len() == 10,
        "install.yaml has {} objects",
        expected.len()
    );
    assert_same(&rendered, &expected)
}

#[test]
fn helm_template_with_watch_namespaces_renders_roles_like_the_generator() -> anyhow::Result<()> {
    let rendered = objects(&template(&["--set", "watchNamespaces={team-a,team-b}"])?)?;
    let opts = InstallOptions {
        watch_namespaces: vec!["team-a".into(), "team-b".into()],
        ..InstallOptions::default()
    };
    let mut expected = objects(&besu_operator::generate::install_yaml(&opts)?)?;
    expected.retain(|(kind, _, _), _| kind != "Namespace");
    ensure!(
        !rendered
            .keys()
            .any(|(k, _, _)| k.starts_with("ClusterRole")),
        "a ClusterRole in watch-namespace mode"
    );
    assert_same(&rendered, &expected)
}

#[test]
fn helm_service_monitor_is_optional_and_scrapes_the_metrics_service() -> anyhow::Result<()> {
    let default = objects(&template(&[])?)?;
    ensure!(!default.keys().any(|(k, _, _)| k == "ServiceMonitor"));
    let with = objects(&template(&[
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "serviceMonitor.labels.release=prometheus",
    ])?)?;
    let sm = with
        .iter()
        .find(|((k, _, _), _)| k == "ServiceMonitor")
        .map(|(_, v)| v)
        .context("no ServiceMonitor")?;
    ensure!(sm["spec"]["endpoints"][0]["port"] == "http-metrics");
    ensure!(sm["metadata"]["labels"]["release"] == "prometheus");
    let service = with
        .iter()
        .find(|((k, _, _), _)| k == "Service")
        .map(|(_, v)| v)
        .context("no metrics Service")?;
    ensure!(service["spec"]["ports"][0]["name"] == "http-metrics");
    ensure!(sm["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]);
    let (ok, out) = helm(&[
        "template",
        RELEASE,
        &chart(),
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "metrics.enabled=false",
    ])?;
    ensure!(
        !ok && out.contains("serviceMonitor.enabled needs metrics.enabled"),
        "a ServiceMonitor without its Service must be refused:\n{out}"
    );
    Ok(())
}
