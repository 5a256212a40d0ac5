//! Admission against the real API server: the CRDs' schemas and CEL rules reject bad
//! `BesuNetwork`s and `BesuNode`s at create with a message naming the problem, refuse
//! edits to the fields that feed genesis, accept the edits that the operator supports,
//! and accept every sample in `samples/`.

mod support;

use std::time::Duration;

use anyhow::{Context, bail};
use besu_operator_api::{BesuNetwork, BesuNode, crds};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use support::{Check, TestNamespace, cluster, not_yet, wait_until};

const FIELD_MANAGER: &str = "besu-operator";

/// Server-side applies the CRDs (as the operator's install does) and waits until both
/// are Established and their resources are served.
async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for crd in crds() {
        let name = crd.metadata.name.clone().context("CRD without a name")?;
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .with_context(|| format!("apply CRD {name}"))?;
        wait_until(
            &format!("CRD {name} to be Established"),
            Duration::from_secs(60),
            || async {
                let crd = api.get(&name).await?;
                let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
                let established = conditions
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                if established {
                    Ok(Check::Done(()))
                } else {
                    not_yet(format!(
                        "conditions {:?}",
                        conditions
                            .iter()
                            .map(|c| format!("{}={}", c.type_, c.status))
                            .collect::<Vec<_>>()
                    ))
                }
            },
        )
        .await?;
    }
    // Established can precede the discovery/handler update by a moment.
    let networks: Api<BesuNetwork> = Api::all(client.clone());
    let nodes: Api<BesuNode> = Api::all(client.clone());
    wait_until(
        "BesuNetwork and BesuNode to be served",
        Duration::from_secs(60),
        || async {
            networks.list(&Default::default()).await?;
            nodes.list(&Default::default()).await?;
            Ok(Check::Done(()))
        },
    )
    .await
}

async fn setup(prefix: &str) -> anyhow::Result<(Client, TestNamespace)> {
    let client = cluster().client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, prefix).await?;
    Ok((client, ns))
}

fn dynamic_api<K>(client: &Client, namespace: &str) -> Api<DynamicObject>
where
    K: kube::Resource<DynamicType = ()>,
{
    Api::namespaced_with(client.clone(), namespace, &ApiResource::erase::<K>(&()))
}

/// Recursively merges `patch` into `base` (objects merge, anything else replaces; a
/// `null` removes the key), as a JSON merge patch does.
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(k);
                } else {
                    merge(b.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// A valid minimal `BesuNetwork`, changed by `patch`.
fn network(name: &str, patch: Value) -> Value {
    let mut object = json!({
        "apiVersion": "besu.nodeops.dev/v1alpha1",
        "kind": "BesuNetwork",
        "metadata": {"name": name},
        "spec": {"chainId": 1337},
    });
    merge(&mut object, &patch);
    object
}

/// A valid standalone member `BesuNode`, changed by `patch`.
fn node(name: &str, patch: Value) -> Value {
    let mut object = json!({
        "apiVersion": "besu.nodeops.dev/v1alpha1",
        "kind": "BesuNode",
        "metadata": {"name": name},
        "spec": {
            "type": "member",
            "image": "hyperledger/besu:26.3.0",
            "genesisConfigMapRef": {"name": "some-genesis"},
        },
    });
    merge(&mut object, &patch);
    object
}

/// A valid validator `BesuNode`, changed by `patch`.
fn validator(name: &str, patch: Value) -> Value {
    node(
        name,
        merge_into(
            json!({"spec": {
                "type": "validator",
                "consensus": "qbft",
                "keySecretRef": {"name": "some-key"},
            }}),
            patch,
        ),
    )
}

fn merge_into(mut base: Value, patch: Value) -> Value {
    merge(&mut base, &patch);
    base
}

/// The node id of the test key `tests/testdata/keys/qbft-bootnode-0`.
const ENODE_ID: &str = "8475fd74535ea65e5d9490e44b087c7088ad2de6ee0a4537556acfa34bef749ac56ffb5c67e1ad90e442a61755b3ad01d19034e630eaeec725c1e27a59e24b91";

/// An invalid object, and the substrings the API server's message must contain.
struct Case {
    what: &'static str,
    object: Value,
    expect: &'static [&'static str],
}

fn invalid_cases() -> Vec<Case> {
    let long_network = format!("n{}", "a".repeat(36)); // 37 characters
    let long_node = format!("n{}", "a".repeat(52)); // 53 characters
    vec![
        Case {
            what: "chainId 0",
            object: network("bad-chain-zero", json!({"spec": {"chainId": 0}})),
            expect: &["spec.chainId", "chainId must be a positive integer"],
        },
        Case {
            what: "chainId negative",
            object: network("bad-chain-negative", json!({"spec": {"chainId": -7}})),
            expect: &["spec.chainId", "chainId must be a positive integer"],
        },
        Case {
            what: "chainId 1 (Ethereum mainnet)",
            object: network("bad-chain-mainnet", json!({"spec": {"chainId": 1}})),
            expect: &["spec.chainId", "public chain's ID"],
        },
        Case {
            what: "chainId 11155111 (Sepolia)",
            object: network("bad-chain-sepolia", json!({"spec": {"chainId": 11155111}})),
            expect: &["spec.chainId", "public chain's ID"],
        },
        Case {
            what: "chainId missing",
            object: network("bad-chain-missing", json!({"spec": {"chainId": null}})),
            expect: &["spec.chainId", "Required value"],
        },
        Case {
            what: "validators 0",
            object: network("bad-validators-zero", json!({"spec": {"validators": 0}})),
            expect: &["spec.validators", "greater than or equal to 1"],
        },
        Case {
            what: "validators 26",
            object: network("bad-validators-many", json!({"spec": {"validators": 26}})),
            expect: &["spec.validators", "less than or equal to 25"],
        },
        Case {
            what: "bootnodes 0",
            object: network("bad-bootnodes-zero", json!({"spec": {"bootnodes": 0}})),
            expect: &["spec.bootnodes", "greater than or equal to 1"],
        },
        Case {
            what: "members -1",
            object: network("bad-members-negative", json!({"spec": {"members": -1}})),
            expect: &["spec.members", "greater than or equal to 0"],
        },
        Case {
            what: "network name of 37 characters",
            object: network(&long_network, json!({})),
            expect: &["metadata.name must be at most 36 characters"],
        },
        Case {
            what: "network name not a DNS-1035 label",
            object: network("9lives", json!({})),
            expect: &["DNS-1035"],
        },
        Case {
            what: "gasLimit not hex",
            object: network(
                "bad-gas-limit",
                json!({"spec": {"genesis": {"gasLimit": "8000000"}}}),
            ),
            expect: &[
                "spec.genesis.gasLimit",
                "should match '^0x[0-9a-fA-F]{1,16}$'",
            ],
        },
        Case {
            what: "alloc key not an address",
            object: network(
                "bad-alloc-key",
                json!({"spec": {"genesis": {"alloc": {"0x1234": {"balance": "1"}}}}}),
            ),
            expect: &["spec.genesis.alloc", "alloc keys must be addresses"],
        },
        Case {
            what: "alloc key without 0x",
            object: network(
                "bad-alloc-prefix",
                json!({"spec": {"genesis": {"alloc": {
                    "627306090abab3a6e1400e9345bc60c78a8bef5700": {"balance": "1"}
                }}}}),
            ),
            expect: &["spec.genesis.alloc", "alloc keys must be addresses"],
        },
        Case {
            what: "alloc balance not a number",
            object: network(
                "bad-alloc-balance",
                json!({"spec": {"genesis": {"alloc": {
                    "0x627306090abab3a6e1400e9345bc60c78a8bef57": {"balance": "ten ether"}
                }}}}),
            ),
            expect: &["balance", "should match"],
        },
        Case {
            what: "blockPeriodSeconds 0",
            object: network(
                "bad-block-period",
                json!({"spec": {"genesis": {"blockPeriodSeconds": 0}}}),
            ),
            expect: &[
                "spec.genesis.blockPeriodSeconds",
                "greater than or equal to 1",
            ],
        },
        Case {
            what: "consensus clique",
            object: network("bad-clique", json!({"spec": {"consensus": "clique"}})),
            expect: &["spec.consensus", "Unsupported value: \"clique\""],
        },
        Case {
            what: "importedKeys lists more validators than spec.validators",
            object: network(
                "bad-imported-keys",
                json!({"spec": {"validators": 2, "importedKeys": {"validators": ["k0", "k1", "k2"]}}}),
            ),
            expect: &["importedKeys.validators lists more Secrets than spec.validators"],
        },
        Case {
            what: "empty image",
            object: network("bad-image", json!({"spec": {"image": ""}})),
            expect: &["spec.image", "at least 1 chars long"],
        },
        Case {
            what: "validator node without keySecretRef",
            object: validator("bad-validator-key", json!({"spec": {"keySecretRef": null}})),
            expect: &["a validator needs keySecretRef"],
        },
        Case {
            what: "validator node without consensus",
            object: validator(
                "bad-validator-consensus",
                json!({"spec": {"consensus": null}}),
            ),
            expect: &["a validator needs consensus"],
        },
        Case {
            what: "member node without genesisConfigMapRef",
            object: node(
                "bad-member-genesis",
                json!({"spec": {"genesisConfigMapRef": null}}),
            ),
            expect: &["a Besu node needs genesisConfigMapRef"],
        },
        Case {
            what: "bootnode enode with a 0x node id",
            object: node(
                "bad-enode-prefix",
                json!({"spec": {"bootnodes": [format!("enode://0x{ENODE_ID}@10.0.0.1:30303")]}}),
            ),
            expect: &["spec.bootnodes[0]", "should match '^enode://"],
        },
        Case {
            what: "bootnode enode without a port",
            object: node(
                "bad-enode-port",
                json!({"spec": {"bootnodes": [format!("enode://{ENODE_ID}@boot.example")]}}),
            ),
            expect: &["spec.bootnodes[0]", "should match '^enode://"],
        },
        Case {
            what: "node name of 53 characters",
            object: node(&long_node, json!({})),
            expect: &["metadata.name must be at most 52 characters"],
        },
        Case {
            what: "node name not a DNS-1035 label",
            object: node("1st-member", json!({})),
            expect: &["DNS-1035"],
        },
        Case {
            what: "unknown node type",
            object: node("bad-type", json!({"spec": {"type": "miner"}})),
            expect: &["spec.type", "Unsupported value: \"miner\""],
        },
        Case {
            what: "p2p port below 1024",
            object: node("bad-port", json!({"spec": {"ports": {"p2p": 80}}})),
            expect: &["spec.ports.p2p", "greater than or equal to 1024"],
        },
    ]
}

/// Creates `object`, expecting a 422 whose message contains every expected substring.
async fn expect_rejected(client: &Client, namespace: &str, case: &Case) -> anyhow::Result<()> {
    let api = match case.object["kind"].as_str() {
        Some("BesuNetwork") => dynamic_api::<BesuNetwork>(client, namespace),
        _ => dynamic_api::<BesuNode>(client, namespace),
    };
    let object: DynamicObject = serde_json::from_value(case.object.clone())?;
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => bail!("{}: was accepted, expected a rejection", case.what),
        Err(kube::Error::Api(status)) => {
            if status.code != 422 {
                bail!(
                    "{}: expected 422 Invalid, got {}: {}",
                    case.what,
                    status.code,
                    status.message
                );
            }
            let missing: Vec<_> = case
                .expect
                .iter()
                .filter(|s| !status.message.contains(*s))
                .collect();
            if !missing.is_empty() {
                bail!(
                    "{}: message lacks {missing:?}: {}",
                    case.what,
                    status.message
                );
            }
            Ok(())
        }
        Err(e) => Err(e).context(case.what),
    }
}

#[tokio::test]
async fn invalid_objects_are_rejected_at_create_with_a_specific_message() -> anyhow::Result<()> {
    let (client, ns) = setup("admission-invalid").await?;
    let cases = invalid_cases();
    assert!(cases.len() >= 15);
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(e) = expect_rejected(&client, &ns.name, case).await {
            failures.push(format!("{e:#}"));
        }
    }
    ns.cleanup().await?;
    if !failures.is_empty() {
        bail!(
            "{} of {} invalid objects were not rejected as expected:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }
    Ok(())
}

/// A merge patch, and the substrings the refusal must contain (`None`: accepted).
struct Edit {
    what: &'static str,
    patch: Value,
    refused_with: Option<&'static [&'static str]>,
}

async fn apply_edit(api: &Api<DynamicObject>, name: &str, edit: &Edit) -> anyhow::Result<()> {
    let result = api
        .patch(name, &PatchParams::default(), &Patch::Merge(&edit.patch))
        .await;
    match (result, edit.refused_with) {
        (Ok(_), None) => Ok(()),
        (Ok(_), Some(_)) => bail!("{}: was accepted, expected a refusal", edit.what),
        (Err(kube::Error::Api(status)), Some(expect)) => {
            let missing: Vec<_> = expect
                .iter()
                .filter(|s| !status.message.contains(*s))
                .collect();
            if status.code != 422 || !missing.is_empty() {
                bail!(
                    "{}: expected 422 containing {missing:?}, got {}: {}",
                    edit.what,
                    status.code,
                    status.message
                );
            }
            Ok(())
        }
        (Err(e), _) => Err(e).context(edit.what),
    }
}

#[tokio::test]
async fn genesis_fields_are_immutable_and_scaling_edits_are_accepted() -> anyhow::Result<()> {
    let (client, ns) = setup("admission-immutable").await?;
    let api = dynamic_api::<BesuNetwork>(&client, &ns.name);
    let name = "frozen";
    let object: DynamicObject = serde_json::from_value(network(
        name,
        json!({"spec": {
            "consensus": "qbft",
            "genesis": {"alloc": {"0x627306090abab3a6e1400e9345bc60c78a8bef57": {"balance": "1000"}}},
        }}),
    ))?;
    api.create(&PostParams::default(), &object).await?;

    const NEW_NETWORK: &str = "create a new BesuNetwork";
    let edits = [
        Edit {
            what: "chainId",
            patch: json!({"spec": {"chainId": 1338}}),
            refused_with: Some(&["chainId is immutable", NEW_NETWORK]),
        },
        Edit {
            what: "consensus",
            patch: json!({"spec": {"consensus": "ibft2"}}),
            refused_with: Some(&["consensus is immutable", NEW_NETWORK]),
        },
        Edit {
            what: "genesis.blockPeriodSeconds",
            patch: json!({"spec": {"genesis": {"blockPeriodSeconds": 5}}}),
            refused_with: Some(&["genesis settings are immutable", NEW_NETWORK]),
        },
        Edit {
            what: "genesis.gasLimit",
            patch: json!({"spec": {"genesis": {"gasLimit": "0x1000"}}}),
            refused_with: Some(&["genesis settings are immutable", NEW_NETWORK]),
        },
        Edit {
            what: "genesis.zeroBaseFee",
            patch: json!({"spec": {"genesis": {"zeroBaseFee": true}}}),
            refused_with: Some(&["genesis settings are immutable", NEW_NETWORK]),
        },
        Edit {
            what: "genesis.alloc (a new account)",
            patch: json!({"spec": {"genesis": {"alloc": {
                "0xf17f52151ebef6c7334fad080c5704d77216b732": {"balance": "5"}
            }}}}),
            refused_with: Some(&["genesis settings are immutable", NEW_NETWORK]),
        },
        Edit {
            what: "genesis.contractSizeLimit (added)",
            patch: json!({"spec": {"genesis": {"contractSizeLimit": 49152}}}),
            refused_with: Some(&["genesis settings are immutable", NEW_NETWORK]),
        },
        Edit {
            what: "validators",
            patch: json!({"spec": {"validators": 5}}),
            refused_with: None,
        },
        Edit {
            what: "members",
            patch: json!({"spec": {"members": 3}}),
            refused_with: None,
        },
        Edit {
            what: "image",
            patch: json!({"spec": {"image": "hyperledger/besu:26.3.1"}}),
            refused_with: None,
        },
    ];
    let mut failures = Vec::new();
    for edit in &edits {
        if let Err(e) = apply_edit(&api, name, edit).await {
            failures.push(format!("{e:#}"));
        }
    }

    // The refused edits left the genesis fields as created; the accepted ones stuck.
    let stored = api.get(name).await?;
    let spec = &stored.data["spec"];
    let observed = json!({
        "chainId": spec["chainId"],
        "consensus": spec["consensus"],
        "blockPeriodSeconds": spec["genesis"]["blockPeriodSeconds"],
        "allocAccounts": spec["genesis"]["alloc"].as_object().map(|a| a.len()),
        "validators": spec["validators"],
        "members": spec["members"],
        "image": spec["image"],
    });
    let expected = json!({
        "chainId": 1337,
        "consensus": "qbft",
        "blockPeriodSeconds": 2,
        "allocAccounts": 1,
        "validators": 5,
        "members": 3,
        "image": "hyperledger/besu:26.3.1",
    });
    if observed != expected {
        failures.push(format!("stored spec {observed} != expected {expected}"));
    }

    // A BesuNode's type is immutable too.
    let nodes = dynamic_api::<BesuNode>(&client, &ns.name);
    let member: DynamicObject = serde_json::from_value(node("frozen-member", json!({})))?;
    nodes.create(&PostParams::default(), &member).await?;
    let type_edit = Edit {
        what: "BesuNode type",
        patch: json!({"spec": {"type": "bootnode"}}),
        refused_with: Some(&["type is immutable"]),
    };
    if let Err(e) = apply_edit(&nodes, "frozen-member", &type_edit).await {
        failures.push(format!("{e:#}"));
    }

    ns.cleanup().await?;
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}

#[tokio::test]
async fn every_sample_passes_admission() -> anyhow::Result<()> {
    let (_client, ns) = setup("admission-samples").await?;
    let dir = support::repo_root().join("samples");
    let mut samples: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    samples.sort();
    assert!(
        samples.len() >= 3,
        "expected at least 3 samples, found {samples:?}"
    );
    let mut failures = Vec::new();
    // All into one namespace, as a user would: the standalone member sample joins the
    // QBFT sample's chain.
    for sample in &samples {
        let path = sample.to_string_lossy();
        let result = cluster().kubectl(&[
            "apply",
            "--server-side",
            "--field-manager=admission-test",
            "--validate=strict",
            "-n",
            &ns.name,
            "-f",
            &path,
        ]);
        if let Err(e) = result {
            failures.push(format!("{path}: {e:#}"));
        }
    }
    // What was applied is stored: one object per document.
    let stored = cluster().kubectl(&[
        "get",
        "besunetworks,besunodes",
        "-n",
        &ns.name,
        "-o",
        "name",
    ])?;
    for expected in [
        "besunetwork.besu.nodeops.dev/qbft",
        "besunetwork.besu.nodeops.dev/ibft2",
        "besunode.besu.nodeops.dev/",
    ] {
        if !stored.lines().any(|l| l.starts_with(expected)) {
            failures.push(format!("{expected} not stored; have: {stored}"));
        }
    }
    ns.cleanup().await?;
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}
