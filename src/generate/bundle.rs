//! The OLM bundle under `bundle/`: the ClusterServiceVersion (with the Deployment and
//! RBAC of [`super::install`], owned-CRD descriptors and `alm-examples` from
//! `samples/`), the CRDs, `metadata/annotations.yaml` and `bundle.Dockerfile`.
//! `tests/install_bundle.rs` runs `operator-sdk bundle validate` on the result.

use serde_json::{Value, json};

use super::install::{self, InstallOptions, NAME};
use super::rbac::{GROUP, leader_election_rules, policy_rules, rbac_rules};
use super::{GenerateError, GeneratedFile, HEADER};

/// The OLM package name.
pub const PACKAGE: &str = NAME;
/// The channel the bundle is published in (OLM's naming convention).
pub const CHANNEL: &str = "candidate";
/// Oldest Kubernetes the CRDs work on (CEL transition rules with messageExpression-free
/// `oldSelf`, validating admission ratcheting): 1.30.
pub const MIN_KUBE_VERSION: &str = "1.30.0";

/// The samples that become `alm-examples`, in this order (embedded at build time, so
/// that a changed sample is a drift `tests/generated.rs` reports).
pub const SAMPLES: [(&str, &str); 6] = [
    (
        "qbft-network.yaml",
        include_str!("../../samples/qbft-network.yaml"),
    ),
    (
        "ibft2-network.yaml",
        include_str!("../../samples/ibft2-network.yaml"),
    ),
    (
        "member-node.yaml",
        include_str!("../../samples/member-node.yaml"),
    ),
    (
        "ethereumnode-sepolia-full.yaml",
        include_str!("../../samples/ethereumnode-sepolia-full.yaml"),
    ),
    (
        "ethereumnode-validator.yaml",
        include_str!("../../samples/ethereumnode-validator.yaml"),
    ),
    (
        "ethereumnode-custom-network.yaml",
        include_str!("../../samples/ethereumnode-custom-network.yaml"),
    ),
];

/// The bundle's icon (also the Helm chart's).
pub const ICON_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="64" height="64">
  <polygon points="32,3 57,17.5 57,46.5 32,61 7,46.5 7,17.5" fill="#1f4e79"/>
  <polygon points="32,13 48,22 48,42 32,51 16,42 16,22" fill="none" stroke="#ffffff" stroke-width="3"/>
  <circle cx="32" cy="13" r="4" fill="#f2a900"/>
  <circle cx="48" cy="42" r="4" fill="#f2a900"/>
  <circle cx="16" cy="42" r="4" fill="#f2a900"/>
</svg>
"##;

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn descriptor(path: &str, display: &str, description: &str, x: &[&str]) -> Value {
    json!({
        "path": path,
        "displayName": display,
        "description": description,
        "x-descriptors": x,
    })
}

const TEXT: &str = "urn:alm:descriptor:com.tectonic.ui:text";
const NUMBER: &str = "urn:alm:descriptor:com.tectonic.ui:number";
const POD_COUNT: &str = "urn:alm:descriptor:com.tectonic.ui:podCount";
const SWITCH: &str = "urn:alm:descriptor:com.tectonic.ui:booleanSwitch";
const RESOURCES: &str = "urn:alm:descriptor:com.tectonic.ui:resourceRequirements";
const CONDITIONS: &str = "urn:alm:descriptor:io.kubernetes.conditions";
const PHASE: &str = "urn:alm:descriptor:io.kubernetes.phase";

fn owned_crds() -> Value {
    let network_spec = vec![
        descriptor(
            "consensus",
            "Consensus",
            "qbft (recommended) or ibft2. Immutable.",
            &[
                "urn:alm:descriptor:com.tectonic.ui:select:qbft",
                "urn:alm:descriptor:com.tectonic.ui:select:ibft2",
            ],
        ),
        descriptor(
            "chainId",
            "Chain ID",
            "Private chain ID written into genesis. Immutable.",
            &[NUMBER],
        ),
        descriptor(
            "bootnodes",
            "Bootnodes",
            "Number of bootnodes.",
            &[POD_COUNT],
        ),
        descriptor(
            "validators",
            "Validators",
            "Number of validators; changed by on-chain vote.",
            &[POD_COUNT],
        ),
        descriptor(
            "members",
            "Members",
            "Number of non-validating nodes.",
            &[POD_COUNT],
        ),
        descriptor("image", "Besu image", "Besu container image.", &[TEXT]),
        descriptor(
            "nodeTemplate.resources",
            "Node resources",
            "Resources of every Besu container.",
            &[RESOURCES],
        ),
        descriptor(
            "nodeTemplate.storage.size",
            "Volume size",
            "Size of each node's data volume.",
            &[TEXT],
        ),
        descriptor(
            "monitoring.prometheus.enabled",
            "Prometheus",
            "Run a Prometheus for the network.",
            &[SWITCH],
        ),
        descriptor(
            "deletionPolicy",
            "Deletion policy",
            "Retain keeps keys, genesis and volumes when the network is deleted; Delete removes them.",
            &[
                "urn:alm:descriptor:com.tectonic.ui:select:Retain",
                "urn:alm:descriptor:com.tectonic.ui:select:Delete",
            ],
        ),
    ];
    let network_status = vec![
        descriptor(
            "phase",
            "Phase",
            "Pending, Creating, Ready or Degraded.",
            &[PHASE],
        ),
        descriptor(
            "conditions",
            "Conditions",
            "Conditions of the network.",
            &[CONDITIONS],
        ),
        descriptor(
            "validators.summary",
            "Validators",
            "Ready/desired validators.",
            &[TEXT],
        ),
        descriptor(
            "genesisConfigMap",
            "Genesis ConfigMap",
            "The ConfigMap holding genesis.json.",
            &["urn:alm:descriptor:io.kubernetes:ConfigMap"],
        ),
        descriptor(
            "genesisChecksum",
            "Genesis checksum",
            "SHA-256 of the frozen genesis.",
            &[TEXT],
        ),
        descriptor(
            "bootnodeEnodes",
            "Bootnode enodes",
            "enode URLs of the bootnodes.",
            &[TEXT],
        ),
    ];
    let node_spec = vec![
        descriptor(
            "type",
            "Type",
            "bootnode, validator or member.",
            &[
                "urn:alm:descriptor:com.tectonic.ui:select:bootnode",
                "urn:alm:descriptor:com.tectonic.ui:select:validator",
                "urn:alm:descriptor:com.tectonic.ui:select:member",
            ],
        ),
        descriptor(
            "network",
            "Network",
            "The BesuNetwork this node belongs to, if any.",
            &[TEXT],
        ),
        descriptor("image", "Besu image", "Besu container image.", &[TEXT]),
        descriptor(
            "resources",
            "Resources",
            "Resources of the Besu container.",
            &[RESOURCES],
        ),
        descriptor(
            "storage.size",
            "Volume size",
            "Size of the data volume.",
            &[TEXT],
        ),
        descriptor(
            "keySecretRef.name",
            "Key Secret",
            "Secret holding the node key.",
            &["urn:alm:descriptor:io.kubernetes:Secret"],
        ),
        descriptor(
            "genesisConfigMapRef.name",
            "Genesis ConfigMap",
            "ConfigMap holding genesis.json.",
            &["urn:alm:descriptor:io.kubernetes:ConfigMap"],
        ),
    ];
    let node_status = vec![
        descriptor("phase", "Phase", "Pending, Ready or Degraded.", &[PHASE]),
        descriptor(
            "conditions",
            "Conditions",
            "Conditions of the node.",
            &[CONDITIONS],
        ),
        descriptor("enode", "enode", "The node's enode URL.", &[TEXT]),
        descriptor("address", "Address", "The node's account address.", &[TEXT]),
        descriptor(
            "podReady",
            "Pod ready",
            "Whether the node's pod is Ready.",
            &[SWITCH],
        ),
    ];
    json!({
        "owned": [
            {
                "name": format!("besunetworks.{GROUP}"),
                "version": "v1alpha1",
                "kind": "BesuNetwork",
                "displayName": "Besu Network",
                "description": "A Hyperledger Besu private network (QBFT or IBFT 2.0): keys, genesis and nodes, brought up in order.",
                "resources": [
                    {"kind": "BesuNode", "name": "", "version": "besu.nodeops.dev/v1alpha1"},
                    {"kind": "Secret", "name": "", "version": "v1"},
                    {"kind": "ConfigMap", "name": "", "version": "v1"},
                    {"kind": "PodDisruptionBudget", "name": "", "version": "policy/v1"},
                    {"kind": "Event", "name": "", "version": "events.k8s.io/v1"},
                ],
                "specDescriptors": network_spec,
                "statusDescriptors": network_status,
            },
            {
                "name": format!("besunodes.{GROUP}"),
                "version": "v1alpha1",
                "kind": "BesuNode",
                "displayName": "Besu Node",
                "description": "One Besu node (bootnode, validator or member): a StatefulSet with its Services and configuration.",
                "resources": [
                    {"kind": "StatefulSet", "name": "", "version": "apps/v1"},
                    {"kind": "Service", "name": "", "version": "v1"},
                    {"kind": "ConfigMap", "name": "", "version": "v1"},
                    {"kind": "Event", "name": "", "version": "events.k8s.io/v1"},
                ],
                "specDescriptors": node_spec,
                "statusDescriptors": node_status,
            },
            {
                "name": "ethereumnodes.ethereum.nodeops.dev",
                "version": "v1alpha1",
                "kind": "EthereumNode",
                "displayName": "Ethereum Node",
                "description": "An Ethereum node on a public or custom proof-of-stake network: execution and consensus clients in one pod sharing a JWT, checkpoint sync, storage, Services and an optional validator client.",
                "resources": [
                    {"kind": "StatefulSet", "name": "", "version": "apps/v1"},
                    {"kind": "Service", "name": "", "version": "v1"},
                    {"kind": "Secret", "name": "", "version": "v1"},
                    {"kind": "Ingress", "name": "", "version": "networking.k8s.io/v1"},
                    {"kind": "Event", "name": "", "version": "events.k8s.io/v1"},
                ],
                "specDescriptors": [
                    descriptor("network", "Network", "mainnet, sepolia, hoodi, holesky (deprecated) or custom. Immutable.", &[TEXT]),
                    descriptor("nodeType", "Node type", "full, archive, validator or gateway.", &[TEXT]),
                    descriptor("replicas", "Replicas", "Pods; 0 stops the node (volumes kept). Validators: at most 1.", &[POD_COUNT]),
                    descriptor("execution.client", "Execution client", "geth (default) or besu. Immutable.", &[TEXT]),
                    descriptor("consensus.client", "Consensus client", "prysm (default), teku or lighthouse. Immutable.", &[TEXT]),
                    descriptor("consensus.checkpointSyncUrl", "Checkpoint sync URL", "Beacon API to start from; a default per public network.", &[TEXT]),
                ],
                "statusDescriptors": [
                    descriptor("phase", "Phase", "Pending, Configuring, Syncing, Running, Stopped or Error.", &[PHASE]),
                    descriptor("conditions", "Conditions", "Ready, Synced and Error.", &[CONDITIONS]),
                    descriptor("executionHead", "Head", "The execution head block number.", &[TEXT]),
                ],
            }
        ]
    })
}

fn to_json<T: serde::Serialize>(what: &str, v: &T) -> Result<Value, GenerateError> {
    serde_json::to_value(v).map_err(|e| GenerateError::Json {
        what: what.to_string(),
        message: e.to_string(),
    })
}

fn alm_examples() -> Result<String, GenerateError> {
    let mut examples = Vec::new();
    for (file, text) in SAMPLES {
        let mut value: Value =
            serde_yaml::from_str(text).map_err(|source| GenerateError::Yaml {
                what: format!("samples/{file}"),
                source,
            })?;
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("namespace");
        }
        examples.push(value);
    }
    serde_json::to_string_pretty(&examples).map_err(|e| GenerateError::Json {
        what: "alm-examples".to_string(),
        message: e.to_string(),
    })
}

const DESCRIPTION: &str = "\
besu-operator runs Hyperledger Besu private networks (QBFT and IBFT 2.0) on Kubernetes.

Apply one `BesuNetwork` and the operator:

* generates a node key per node into a Secret, once, and never regenerates it;
* writes a genesis whose extraData names the validators, and freezes it;
* brings up bootnodes, then validators, then members, each a `BesuNode` backed by a
  StatefulSet with persistent storage;
* changes the validator set by on-chain vote and rolls out upgrades without ever taking
  down more validators than the chain can lose;
* reports progress in status conditions and Events.

A `BesuNode` can also run alone, for example a member joining an existing chain.

Keys never appear in logs, Events or status. Retain (the default) keeps keys, genesis and
volumes when a network is deleted, so that re-creating it resumes the chain.
";

/// The ClusterServiceVersion.
pub fn csv() -> Result<Value, GenerateError> {
    let version = env!("CARGO_PKG_VERSION");
    let opts = InstallOptions::default();
    let mut deployment = install::deployment(&opts);
    // OLM tells the operator its target namespaces through this annotation on the pod
    // ("" for all namespaces); --namespaces is not passed, so the variable applies.
    if let Some(container) = deployment
        .spec
        .template
        .spec
        .as_mut()
        .and_then(|p| p.containers.first_mut())
    {
        container
            .env
            .get_or_insert_with(Vec::new)
            .push(k8s_openapi::api::core::v1::EnvVar {
                name: "BESU_OPERATOR_NAMESPACES".to_string(),
                value_from: Some(k8s_openapi::api::core::v1::EnvVarSource {
                    field_ref: Some(k8s_openapi::api::core::v1::ObjectFieldSelector {
                        field_path: "metadata.annotations['olm.targetNamespaces']".to_string(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
    }
    let deployment_spec = to_json("Deployment", &deployment.spec)?;
    let mut rules = policy_rules(&rbac_rules());
    rules.extend(policy_rules(&leader_election_rules()));
    let rules = to_json("rules", &rules)?;
    Ok(json!({
        "apiVersion": "operators.coreos.com/v1alpha1",
        "kind": "ClusterServiceVersion",
        "metadata": {
            "name": format!("{PACKAGE}.v{version}"),
            "namespace": "placeholder",
            "annotations": {
                "alm-examples": alm_examples()?,
                "capabilities": "Basic Install",
                "categories": "Developer Tools",
                "containerImage": opts.image,
                "description": "Runs Hyperledger Besu private networks (QBFT, IBFT 2.0): keys, genesis, staged bring-up, validator votes, safe upgrades.",
                "repository": "https://github.com/nodeops/besu-operator",
                "support": "besu-operator maintainers",
                "operatorframework.io/suggested-namespace": install::NAMESPACE,
            },
            "labels": {
                "operatorframework.io/arch.amd64": "supported",
                "operatorframework.io/arch.arm64": "supported",
                "operatorframework.io/os.linux": "supported",
            },
        },
        "spec": {
            "displayName": "Besu Operator",
            "description": DESCRIPTION,
            "version": version,
            "minKubeVersion": MIN_KUBE_VERSION,
            "maturity": "alpha",
            "provider": {"name": "nodeops", "url": "https://github.com/nodeops"},
            "maintainers": [
                {"name": "besu-operator maintainers", "email": "besu-operator@nodeops.dev"}
            ],
            "links": [
                {"name": "Source", "url": "https://github.com/nodeops/besu-operator"},
                {"name": "Documentation", "url": "https://github.com/nodeops/besu-operator#readme"},
                {"name": "Hyperledger Besu", "url": "https://besu.hyperledger.org"},
            ],
            "keywords": ["besu", "hyperledger", "ethereum", "blockchain", "qbft", "ibft", "private network"],
            "icon": [{"base64data": base64(ICON_SVG.as_bytes()), "mediatype": "image/svg+xml"}],
            "installModes": [
                {"type": "OwnNamespace", "supported": true},
                {"type": "SingleNamespace", "supported": true},
                {"type": "MultiNamespace", "supported": true},
                {"type": "AllNamespaces", "supported": true},
            ],
            "customresourcedefinitions": owned_crds(),
            "install": {
                "strategy": "deployment",
                "spec": {
                    // Namespaced `permissions`: OLM grants them in each target namespace
                    // of the OperatorGroup (and cluster-wide only in AllNamespaces mode),
                    // which is the watch-namespace mode's Roles-instead-of-ClusterRole.
                    "permissions": [
                        {"serviceAccountName": NAME, "rules": rules}
                    ],
                    "deployments": [
                        {
                            "name": NAME,
                            "label": install::labels(),
                            "spec": deployment_spec,
                        }
                    ],
                },
            },
        },
    }))
}

fn annotations_yaml() -> String {
    format!(
        "{HEADER}annotations:
  operators.operatorframework.io.bundle.mediatype.v1: registry+v1
  operators.operatorframework.io.bundle.manifests.v1: manifests/
  operators.operatorframework.io.bundle.metadata.v1: metadata/
  operators.operatorframework.io.bundle.package.v1: {PACKAGE}
  operators.operatorframework.io.bundle.channels.v1: {CHANNEL}
  operators.operatorframework.io.bundle.channel.default.v1: {CHANNEL}
"
    )
}

fn dockerfile() -> String {
    format!(
        "# Generated by `besu-operator crd --write .` (make bundle). Do not edit.
# The OLM bundle image. Build from this directory:
#   docker build -f bundle/bundle.Dockerfile -t ghcr.io/nodeops/besu-operator-bundle:v{v} bundle/
FROM scratch

LABEL operators.operatorframework.io.bundle.mediatype.v1=registry+v1
LABEL operators.operatorframework.io.bundle.manifests.v1=manifests/
LABEL operators.operatorframework.io.bundle.metadata.v1=metadata/
LABEL operators.operatorframework.io.bundle.package.v1={PACKAGE}
LABEL operators.operatorframework.io.bundle.channels.v1={CHANNEL}
LABEL operators.operatorframework.io.bundle.channel.default.v1={CHANNEL}

COPY manifests /manifests/
COPY metadata /metadata/
",
        v = env!("CARGO_PKG_VERSION")
    )
}

/// Every file of the bundle.
pub fn bundle_files() -> Result<Vec<GeneratedFile>, GenerateError> {
    let csv_yaml = serde_yaml::to_string(&csv()?).map_err(|source| GenerateError::Yaml {
        what: "ClusterServiceVersion".to_string(),
        source,
    })?;
    let mut files = vec![
        GeneratedFile {
            path: format!("bundle/manifests/{PACKAGE}.clusterserviceversion.yaml"),
            contents: format!("{HEADER}{csv_yaml}"),
        },
        GeneratedFile {
            path: "bundle/metadata/annotations.yaml".to_string(),
            contents: annotations_yaml(),
        },
        GeneratedFile {
            path: "bundle/bundle.Dockerfile".to_string(),
            contents: dockerfile(),
        },
        GeneratedFile {
            path: "bundle/icon.svg".to_string(),
            contents: ICON_SVG.to_string(),
        },
    ];
    for crd in besu_operator_api::crds() {
        let plural = crd.spec.names.plural.clone();
        let yaml = serde_yaml::to_string(&crd).map_err(|source| GenerateError::Yaml {
            what: plural.clone(),
            source,
        })?;
        files.push(GeneratedFile {
            path: format!("bundle/manifests/{}_{plural}.yaml", crd.spec.group),
            contents: format!("{HEADER}{yaml}"),
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
