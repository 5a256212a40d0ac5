//! Admission against the real API server: the CRDs' schemas and CEL rules reject bad
//! `BesuNetwork`s and `BesuNode`s at create with a message naming the problem, refuse
//! edits to the fields that feed genesis, accept the edits that the operator supports,
//! refuse what Besu 26.3.0 would refuse at start (unknown `rpcApis`, `extraArgs` setting an
//! option the operator sets) while accepting its near misses, and accept every sample in
//! `samples/`.

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
        // What Besu 26.3.0 would refuse at start, or what would break a managed node.
        Case {
            what: "rpcApis with EEA on a network",
            object: network(
                "bad-rpc-eea",
                json!({"spec": {"nodeTemplate": {"rpcApis": ["ETH", "NET", "EEA"]}}}),
            ),
            expect: &[
                "spec.nodeTemplate.rpcApis",
                "rpcApis entry \"EEA\" is not a JSON-RPC API group of Besu 26.3.0",
                "EEA and PRIV were removed from Besu",
            ],
        },
        Case {
            what: "rpcApis with PRIV on a node",
            object: node(
                "bad-rpc-priv",
                json!({"spec": {"rpcApis": ["ETH", "NET", "WEB3", "PRIV"]}}),
            ),
            expect: &[
                "spec.rpcApis",
                "rpcApis entry \"PRIV\"",
                "EEA and PRIV were removed from Besu",
            ],
        },
        Case {
            what: "rpcApis with an unknown lower-case entry",
            object: validator(
                "bad-rpc-lower",
                json!({"spec": {"rpcApis": ["eth", "net", "qbft", "clique"]}}),
            ),
            expect: &[
                "spec.rpcApis",
                "rpcApis entry \"clique\"",
                "use only ETH, DEBUG, MINER, NET",
            ],
        },
        Case {
            what: "rpcApis without NET on a network",
            object: network(
                "bad-rpc-no-net",
                json!({"spec": {"nodeTemplate": {"rpcApis": ["eth", "WEB3"]}}}),
            ),
            expect: &[
                "spec.nodeTemplate.rpcApis",
                "rpcApis lacks NET:",
                "net_peerCount (NET)",
            ],
        },
        Case {
            what: "rpcApis without ETH and NET on a node",
            object: node("bad-rpc-no-eth", json!({"spec": {"rpcApis": ["WEB3"]}})),
            expect: &[
                "spec.rpcApis",
                "rpcApis lacks ETH NET:",
                "add ETH and NET to rpcApis",
            ],
        },
        Case {
            what: "extraArgs --p2p-host=... on a network",
            object: network(
                "bad-args-p2p-host",
                json!({"spec": {"nodeTemplate": {"extraArgs": ["--p2p-host=1.2.3.4"]}}}),
            ),
            expect: &[
                "spec.nodeTemplate.extraArgs",
                "extraArgs must not set --p2p-host: the operator sets it to the pod IP",
                "Besu refuses an option given twice",
            ],
        },
        Case {
            what: "extraArgs --Xdns-update-enabled=false on a node",
            object: node(
                "bad-args-dns",
                json!({"spec": {"extraArgs": ["--max-peers=10", "--Xdns-update-enabled=false"]}}),
            ),
            expect: &[
                "spec.extraArgs",
                "extraArgs must not set --Xdns-update-enabled",
                "remove it from extraArgs",
            ],
        },
        Case {
            what: "extraArgs --data-path with its value in the next entry",
            object: node(
                "bad-args-data-path",
                json!({"spec": {"extraArgs": ["--data-path", "/x"]}}),
            ),
            expect: &[
                "spec.extraArgs",
                "extraArgs must not set --data-path",
                "set spec.storage instead",
            ],
        },
        Case {
            what: "extraArgs --config-file=... on a network",
            object: network(
                "bad-args-config-file",
                json!({"spec": {"nodeTemplate": {"extraArgs": ["--config-file=/x"]}}}),
            ),
            expect: &[
                "spec.nodeTemplate.extraArgs",
                "extraArgs must not set --config-file",
            ],
        },
        Case {
            what: "extraArgs --data-storage-format on a network",
            object: network(
                "bad-args-storage-format",
                json!({"spec": {"nodeTemplate": {"extraArgs": ["--data-storage-format=FOREST"]}}}),
            ),
            expect: &[
                "extraArgs must not set --data-storage-format",
                "set spec.nodeTemplate.storage.dataStorageFormat instead",
            ],
        },
        Case {
            what: "extraArgs --p2p-port on a node",
            object: node(
                "bad-args-p2p-port",
                json!({"spec": {"extraArgs": ["--p2p-port=30304"]}}),
            ),
            expect: &[
                "extraArgs must not set --p2p-port",
                "set spec.ports.p2p instead",
            ],
        },
        Case {
            what: "storage.dataStorageFormat neither FOREST nor BONSAI",
            object: node(
                "bad-storage-format",
                json!({"spec": {"storage": {"dataStorageFormat": "forest"}}}),
            ),
            expect: &[
                "spec.storage.dataStorageFormat",
                "Unsupported value: \"forest\"",
            ],
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

/// Objects near the refused ones that Besu accepts, and admission must too.
fn valid_cases() -> Vec<(&'static str, Value)> {
    let lower_case = json!(["eth", "net", "qbft"]);
    let extra_args = json!(["--max-peers=50", "--logging=DEBUG"]);
    vec![
        (
            "network with lower-case rpcApis and unmanaged extraArgs",
            network(
                "ok-network-args",
                json!({"spec": {"nodeTemplate": {
                    "rpcApis": lower_case,
                    "extraArgs": extra_args,
                    "storage": {"dataStorageFormat": "FOREST"},
                }}}),
            ),
        ),
        (
            "validator node with lower-case rpcApis and unmanaged extraArgs",
            validator(
                "ok-node-args",
                json!({"spec": {
                    "rpcApis": lower_case,
                    "extraArgs": extra_args,
                    "storage": {"dataStorageFormat": "BONSAI"},
                }}),
            ),
        ),
        (
            "Prometheus node without rpcApis, as the operator creates it",
            json!({
                "apiVersion": "besu.nodeops.dev/v1alpha1",
                "kind": "BesuNode",
                "metadata": {"name": "ok-prometheus"},
                "spec": {"type": "prometheus", "image": "prom/prometheus:v3.5.0", "rpcApis": []},
            }),
        ),
    ]
}

#[tokio::test]
async fn what_besu_accepts_passes_admission() -> anyhow::Result<()> {
    let (client, ns) = setup("admission-valid").await?;
    let mut failures = Vec::new();
    for (what, object) in valid_cases() {
        let api = match object["kind"].as_str() {
            Some("BesuNetwork") => dynamic_api::<BesuNetwork>(&client, &ns.name),
            _ => dynamic_api::<BesuNode>(&client, &ns.name),
        };
        let object: DynamicObject = serde_json::from_value(object)?;
        if let Err(e) = api.create(&PostParams::default(), &object).await {
            failures.push(format!("{what}: refused: {e}"));
        }
    }
    // A network without nodeTemplate gets the default rpcApis, which include ETH and NET.
    let networks = dynamic_api::<BesuNetwork>(&client, &ns.name);
    let bare: DynamicObject = serde_json::from_value(network("ok-bare", json!({})))?;
    match networks.create(&PostParams::default(), &bare).await {
        Ok(stored) => {
            let apis = &stored.data["spec"]["nodeTemplate"]["rpcApis"];
            if *apis != json!(["ETH", "NET", "WEB3", "ADMIN", "TXPOOL"]) {
                failures.push(format!(
                    "network without nodeTemplate: stored rpcApis {apis}, expected the defaults"
                ));
            }
        }
        Err(e) => failures.push(format!("network without nodeTemplate: refused: {e}")),
    }
    ns.cleanup().await?;
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
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
            "nodeTemplate": {"storage": {"dataStorageFormat": "FOREST"}},
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
            what: "nodeTemplate.storage.dataStorageFormat FOREST to BONSAI",
            patch: json!({"spec": {"nodeTemplate": {"storage": {"dataStorageFormat": "BONSAI"}}}}),
            refused_with: Some(&[
                "spec.nodeTemplate.storage.dataStorageFormat",
                "dataStorageFormat is immutable: Besu cannot open a database created in the other format",
                "create a new node",
            ]),
        },
        Edit {
            what: "nodeTemplate.storage.dataStorageFormat FOREST removed",
            patch: json!({"spec": {"nodeTemplate": {"storage": {"dataStorageFormat": null}}}}),
            refused_with: Some(&[
                "spec.nodeTemplate.storage",
                "dataStorageFormat may be added to or removed from existing nodes only as BONSAI",
            ]),
        },
        Edit {
            what: "nodeTemplate.storage.size (the format left as it is)",
            patch: json!({"spec": {"nodeTemplate": {"storage": {"size": "20Gi"}}}}),
            refused_with: None,
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
        "dataStorageFormat": spec["nodeTemplate"]["storage"]["dataStorageFormat"],
    });
    let expected = json!({
        "chainId": 1337,
        "consensus": "qbft",
        "blockPeriodSeconds": 2,
        "allocAccounts": 1,
        "validators": 5,
        "members": 3,
        "image": "hyperledger/besu:26.3.1",
        "dataStorageFormat": "FOREST",
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

    // Its data storage format may be written down as BONSAI, what an unset one means, but
    // not set to FOREST afterwards, nor changed once set.
    let format_edits = [
        Edit {
            what: "BesuNode storage.dataStorageFormat unset to FOREST",
            patch: json!({"spec": {"storage": {"dataStorageFormat": "FOREST"}}}),
            refused_with: Some(&[
                "spec.storage",
                "dataStorageFormat may be added to or removed from existing nodes only as BONSAI",
                "unset means BONSAI",
            ]),
        },
        Edit {
            what: "BesuNode storage.dataStorageFormat unset to BONSAI",
            patch: json!({"spec": {"storage": {"dataStorageFormat": "BONSAI"}}}),
            refused_with: None,
        },
        Edit {
            what: "BesuNode storage.dataStorageFormat BONSAI to FOREST",
            patch: json!({"spec": {"storage": {"dataStorageFormat": "FOREST"}}}),
            refused_with: Some(&[
                "spec.storage.dataStorageFormat",
                "dataStorageFormat is immutable",
            ]),
        },
    ];
    for edit in &format_edits {
        if let Err(e) = apply_edit(&nodes, "frozen-member", edit).await {
            failures.push(format!("{e:#}"));
        }
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
