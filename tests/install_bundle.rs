//! The OLM bundle: `operator-sdk bundle validate ./bundle --select-optional
//! suite=operatorframework` reports no error and no warning (operator-sdk is the pinned
//! build from `hack/build-tools.sh`), and the CSV carries the committed Deployment, RBAC,
//! CRDs and samples.

mod install_support;
mod support;

use std::process::Command;

use anyhow::{Context as _, ensure};
use serde_json::Value;

use install_support::{run, tool};
use support::repo_root;

fn yaml_file(path: &str) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(repo_root().join(path)).with_context(|| path.to_string())?;
    Ok(serde_yaml::from_str(&text)?)
}

#[test]
fn operator_sdk_bundle_validate_reports_no_errors_and_no_warnings() -> anyhow::Result<()> {
    let home = tempfile::tempdir()?;
    let (status, out, err) = run(Command::new(tool("operator-sdk/operator-sdk")?)
        .args([
            "bundle",
            "validate",
            "./bundle",
            "--select-optional",
            "suite=operatorframework",
        ])
        .current_dir(repo_root())
        .env("HOME", home.path())
        .env_remove("KUBECONFIG"))?;
    let all = format!("{out}{err}");
    ensure!(
        status.success(),
        "bundle validate failed ({status}):\n{all}"
    );
    ensure!(
        !all.contains("level=warning") && !all.contains("level=error"),
        "bundle validate reported problems:\n{all}"
    );
    ensure!(
        all.contains("All validation tests have completed successfully"),
        "unexpected output:\n{all}"
    );
    Ok(())
}

#[test]
fn csv_carries_the_committed_deployment_rbac_crds_and_samples() -> anyhow::Result<()> {
    let csv = yaml_file("bundle/manifests/besu-operator.clusterserviceversion.yaml")?;
    let spec = &csv["spec"];

    // The Deployment of manifests/operator, plus OLM's target namespaces.
    let deployment = yaml_file("manifests/operator/deployment.yaml")?;
    let mut in_csv = spec["install"]["spec"]["deployments"][0]["spec"].clone();
    let env = in_csv
        .pointer_mut("/template/spec/containers/0/env")
        .and_then(Value::as_array_mut)
        .context("env")?;
    let olm = env.pop().context("no env")?;
    ensure!(olm["name"] == "BESU_OPERATOR_NAMESPACES");
    ensure!(
        olm["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.annotations['olm.targetNamespaces']"
    );
    ensure!(
        in_csv == deployment["spec"],
        "CSV deployment differs from manifests/operator"
    );

    // The rules of manifests/rbac, ClusterRole and leader election Role.
    let mut rules = yaml_file("manifests/rbac/cluster_role.yaml")?["rules"]
        .as_array()
        .cloned()
        .context("rules")?;
    rules.extend(
        yaml_file("manifests/rbac/leader_election_role.yaml")?["rules"]
            .as_array()
            .cloned()
            .context("rules")?,
    );
    let csv_rules = spec["install"]["spec"]["permissions"][0]["rules"]
        .as_array()
        .context("permissions")?;
    ensure!(
        csv_rules == &rules,
        "CSV permissions differ from manifests/rbac"
    );
    ensure!(spec["install"]["spec"]["permissions"][0]["serviceAccountName"] == "besu-operator");

    // The CRDs, each owned with descriptors.
    for (plural, kind) in [("besunetworks", "BesuNetwork"), ("besunodes", "BesuNode")] {
        let name = format!("{plural}.besu.nodeops.dev");
        ensure!(
            yaml_file(&format!("bundle/manifests/besu.nodeops.dev_{plural}.yaml"))?
                == yaml_file(&format!("manifests/crd/{name}.yaml"))?,
            "bundle CRD {name} differs from manifests/crd"
        );
        let owned = spec["customresourcedefinitions"]["owned"]
            .as_array()
            .context("owned")?
            .iter()
            .find(|o| o["name"] == name.as_str())
            .with_context(|| format!("{name} not owned"))?;
        ensure!(owned["kind"] == kind);
        ensure!(
            owned["specDescriptors"]
                .as_array()
                .is_some_and(|d| d.len() >= 5)
        );
        ensure!(owned["statusDescriptors"].as_array().is_some_and(|d| {
            d.iter().any(|x| x["path"] == "conditions") && d.iter().any(|x| x["path"] == "phase")
        }));
    }

    // alm-examples: the samples, as they are.
    let examples: Vec<Value> = serde_json::from_str(
        csv["metadata"]["annotations"]["alm-examples"]
            .as_str()
            .context("alm-examples")?,
    )?;
    for (i, file) in [
        "qbft-network.yaml",
        "ibft2-network.yaml",
        "member-node.yaml",
    ]
    .iter()
    .enumerate()
    {
        ensure!(
            examples.get(i) == Some(&yaml_file(&format!("samples/{file}"))?),
            "alm-examples[{i}] is not samples/{file}"
        );
    }
    for key in [
        "minKubeVersion",
        "installModes",
        "keywords",
        "maintainers",
        "links",
        "description",
        "icon",
    ] {
        ensure!(!spec[key].is_null(), "CSV spec.{key} missing");
    }
    Ok(())
}
