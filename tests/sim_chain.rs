//! End to end with the Besu simulator (`hack/besu-sim`): the operator brings the qbft
//! sample up on the local cluster and the simulator runs its chain. The chain
//! advances and every node agrees on the height; losing 2 of 4 validators stalls it
//! and restoring them resumes it; three validator votes over raw JSON-RPC add a fifth
//! address from the block after the deciding vote. A second test checks the node
//! surface (JSON-RPC errors, health, metrics), proposals lost with a restarted pod and
//! the never-ready image rule.
//!
//! The simulator must run beside the cluster in use: `hack/local-cluster.sh up` starts
//! it from `target/debug/besu-sim` (or `$BESU_SIM_BIN`); its admin endpoint's address
//! is in `<state dir>/besu-sim.addr`.

mod operator;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use besu_operator::chain::key::{Address, NodeKey};
use besu_operator_api::{BesuNetwork, LABEL_NETWORK, LABEL_NODE};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use operator::{Operator, install_crds, qbft_chain_only};
use support::{Check, TestNamespace, cluster, not_yet, wait_until};

const BRING_UP: Duration = Duration::from_secs(120);
const CHAIN_WAIT: Duration = Duration::from_secs(60);
/// The sample's `blockPeriodSeconds`.
const BLOCK_PERIOD: Duration = Duration::from_secs(2);
const NETWORK: &str = "qbft";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("reqwest client")
}

/// The simulator's admin endpoint (`host:port`) for the cluster in use.
fn sim_addr() -> anyhow::Result<String> {
    let dir = &cluster().state_dir;
    let path = dir.join("besu-sim.addr");
    let addr = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "besu-sim is not running for the cluster in {}: build it (cargo build -p besu-sim) \
             and run `BESU_CLUSTER_DIR={} hack/local-cluster.sh up` (it starts the simulator)",
            dir.display(),
            dir.display()
        )
    })?;
    Ok(addr.trim().to_string())
}

/// `GET /chains/<ns>/<network>` of the simulator.
async fn chain_view(ns: &str) -> anyhow::Result<Value> {
    let url = format!("http://{}/chains/{ns}/{NETWORK}", sim_addr()?);
    let resp = http().get(&url).send().await?;
    ensure!(resp.status().is_success(), "GET {url}: {}", resp.status());
    Ok(resp.json().await?)
}

fn head(view: &Value) -> u64 {
    view["head"].as_u64().unwrap_or(0)
}

fn addresses(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A raw JSON-RPC call; returns the whole response object.
async fn rpc_raw(ip: &str, port: u16, method: &str, params: Value) -> anyhow::Result<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let resp = http()
        .post(format!("http://{ip}:{port}/"))
        .json(&body)
        .send()
        .await
        .with_context(|| format!("{method} to {ip}:{port}"))?;
    ensure!(
        resp.status().is_success(),
        "{method} to {ip}:{port}: HTTP {}",
        resp.status()
    );
    Ok(resp.json().await?)
}

/// A JSON-RPC call that must succeed; returns its result.
async fn rpc(ip: &str, port: u16, method: &str, params: Value) -> anyhow::Result<Value> {
    let v = rpc_raw(ip, port, method, params).await?;
    if let Some(e) = v.get("error") {
        bail!("{method} to {ip}: error {e}");
    }
    Ok(v["result"].clone())
}

fn quantity(v: &Value) -> anyhow::Result<u64> {
    let s = v.as_str().context("not a string")?;
    Ok(u64::from_str_radix(
        s.strip_prefix("0x").context("no 0x")?,
        16,
    )?)
}

/// A running pod of a node: name, UID, IP and its rpc-http / metrics ports.
#[derive(Debug, Clone)]
struct NodePod {
    node: String,
    uid: String,
    ip: String,
    rpc_port: u16,
    metrics_port: u16,
    ready: bool,
    image: String,
}

fn node_pod(p: &Pod) -> Option<NodePod> {
    let status = p.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") || p.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let c = p.spec.as_ref()?.containers.first()?;
    let port = |name: &str, default: u16| {
        c.ports
            .iter()
            .flatten()
            .find(|x| x.name.as_deref() == Some(name))
            .map(|x| x.container_port as u16)
            .unwrap_or(default)
    };
    Some(NodePod {
        node: p.labels().get(LABEL_NODE)?.clone(),
        uid: p.uid()?,
        ip: status.pod_ip.clone()?,
        rpc_port: port("rpc-http", 8545),
        metrics_port: port("metrics", 9545),
        ready: status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        image: c.image.clone().unwrap_or_default(),
    })
}

/// Running pods of the network, by node name.
async fn node_pods(pods: &Api<Pod>) -> anyhow::Result<BTreeMap<String, NodePod>> {
    let list = pods
        .list(&ListParams::default().labels(&format!("{LABEL_NETWORK}={NETWORK}")))
        .await?;
    Ok(list
        .iter()
        .filter_map(node_pod)
        .map(|n| (n.node.clone(), n))
        .collect())
}

fn validator(i: usize) -> String {
    format!("{NETWORK}-validator-{i}")
}

async fn setup(prefix: &str) -> anyhow::Result<(Client, TestNamespace, Operator)> {
    let c = cluster();
    sim_addr()?;
    let client = c.client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, prefix).await?;
    let op = Operator::start(c, &ns.name)?;
    let mut net: BesuNetwork = qbft_chain_only()?;
    net.metadata.namespace = Some(ns.name.clone());
    Api::<BesuNetwork>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &net)
        .await?;
    Ok((client, ns, op))
}

/// Waits until the simulator's chain for `ns` is at least at `height`.
async fn wait_height(ns: &str, height: u64, timeout: Duration) -> anyhow::Result<Value> {
    wait_until(
        &format!("chain {ns}/{NETWORK} at height {height}"),
        timeout,
        || async {
            let v = chain_view(ns).await?;
            if head(&v) >= height {
                Ok(Check::Done(v))
            } else {
                not_yet(format!("head {}, stalled {}", head(&v), v["stalled"]))
            }
        },
    )
    .await
}

async fn scale(sts: &Api<StatefulSet>, name: &str, replicas: i32) -> anyhow::Result<()> {
    sts.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await
    .with_context(|| format!("scale {name} to {replicas}"))?;
    Ok(())
}

#[tokio::test]
async fn chain_advances_stalls_without_quorum_and_adds_a_voted_validator() -> anyhow::Result<()> {
    let (client, ns, mut op) = setup("sim-chain").await?;
    let pods: Api<Pod> = ns.api();
    let sts: Api<StatefulSet> = ns.api();

    // 1. The chain advances.
    let start = wait_height(&ns.name, 1, BRING_UP).await?;
    let h0 = head(&start);
    wait_height(&ns.name, h0 + 3, CHAIN_WAIT).await?;

    // 2. Every node (1 bootnode, 4 validators, 1 member) answers eth_blockNumber, and
    //    they agree within 2 blocks.
    wait_until(
        "all 6 nodes agree on the height within 2",
        BRING_UP,
        || async {
            let nodes = node_pods(&pods).await?;
            let mut heights = BTreeMap::new();
            for (name, p) in &nodes {
                let h = quantity(&rpc(&p.ip, p.rpc_port, "eth_blockNumber", json!([])).await?)?;
                heights.insert(name.clone(), h);
            }
            let (min, max) = (
                heights.values().min().copied().unwrap_or(0),
                heights.values().max().copied().unwrap_or(0),
            );
            if heights.len() == 6 && max - min <= 2 && min > 0 {
                Ok(Check::Done(()))
            } else {
                not_yet(format!("{heights:?}"))
            }
        },
    )
    .await?;

    // 3. Two of four validators stop: the chain stalls (3 of 4 are needed). The
    //    operator would scale them back, so it is stopped first.
    op.kill();
    scale(&sts, &validator(2), 0).await?;
    scale(&sts, &validator(3), 0).await?;
    let stalled = wait_until("the chain to stall", CHAIN_WAIT, || async {
        let v = chain_view(&ns.name).await?;
        if v["stalled"].is_object() {
            Ok(Check::Done(v))
        } else {
            not_yet(format!("head {}, up {}", head(&v), v["validators_up"]))
        }
    })
    .await?;
    let stalled_at = head(&stalled);
    assert_eq!(stalled["stalled"]["needed"], json!(3));
    assert!(
        stalled["stalled"]["up"].as_u64().unwrap_or(9) <= 2,
        "{}",
        stalled["stalled"]
    );
    // Observe 3 block periods, then check the record: no block since the stall.
    let watch = Instant::now();
    let later = wait_until("3 block periods to pass", CHAIN_WAIT, || async {
        let v = chain_view(&ns.name).await?;
        if watch.elapsed() >= 3 * BLOCK_PERIOD {
            Ok(Check::Done(v))
        } else {
            not_yet(format!("head {} after {:?}", head(&v), watch.elapsed()))
        }
    })
    .await?;
    assert_eq!(
        head(&later),
        stalled_at,
        "blocks while 2 of 4 validators were down"
    );
    assert!(later["stalled"].is_object());

    // 4. Restoring them resumes the chain.
    scale(&sts, &validator(2), 1).await?;
    scale(&sts, &validator(3), 1).await?;
    let resumed = wait_height(&ns.name, stalled_at + 2, CHAIN_WAIT).await?;
    let first = &resumed["blocks"][(stalled_at + 1) as usize];
    assert!(
        first["validators_up"].as_array().map_or(0, Vec::len) >= 3,
        "first block after the stall: {first}"
    );

    // 5. Three validators vote to add a new address; it is a validator from the block
    //    after the one carrying the deciding (3rd) vote.
    let candidate = NodeKey::generate().address();
    let voters = [validator(0), validator(1), validator(2)];
    for v in &voters {
        wait_until(&format!("{v} to accept the vote"), CHAIN_WAIT, || async {
            let nodes = node_pods(&pods).await?;
            let Some(p) = nodes.get(v) else {
                return not_yet("no running pod");
            };
            let r = rpc(
                &p.ip,
                p.rpc_port,
                "qbft_proposeValidatorVote",
                json!([candidate.to_string(), true]),
            )
            .await?;
            ensure!(r == json!(true), "propose returned {r}");
            let pending = rpc(&p.ip, p.rpc_port, "qbft_getPendingVotes", json!([])).await?;
            ensure!(
                pending[candidate.to_string()] == json!(true),
                "pending votes {pending}"
            );
            Ok(Check::Done(()))
        })
        .await?;
    }
    let c = candidate.to_string();
    let added = wait_until("the candidate on-chain", CHAIN_WAIT, || async {
        let v = chain_view(&ns.name).await?;
        let decided = v["blocks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|b| b["change"]["address"] == json!(c))
            .and_then(|b| b["number"].as_u64());
        match decided {
            Some(d) if head(&v) > d => Ok(Check::Done((v, d))),
            _ => not_yet(format!("head {}, tallies {}", head(&v), v["tallies"])),
        }
    })
    .await?;
    let (view, decided) = added;
    let blocks = view["blocks"].as_array().context("blocks")?;
    let deciding = &blocks[decided as usize];
    let next = &blocks[decided as usize + 1];
    assert!(
        !addresses(&deciding["validators"]).contains(&c),
        "deciding block {deciding}"
    );
    assert!(
        addresses(&next["validators"]).contains(&c),
        "next block {next}"
    );
    assert_eq!(deciding["change"]["added"], json!(true));
    // The votes that decided it: three distinct validators, the last in the deciding block.
    let voters_seen: BTreeSet<String> = blocks[..=decided as usize]
        .iter()
        .filter(|b| b["vote"]["subject"] == json!(c) && b["vote"]["counted"] == json!(true))
        .filter_map(|b| b["proposer"].as_str().map(str::to_string))
        .collect();
    assert_eq!(voters_seen.len(), 3, "voters {voters_seen:?}");
    assert_eq!(deciding["vote"]["subject"], json!(c));
    // The nodes say the same over JSON-RPC.
    let nodes = node_pods(&pods).await?;
    let p = nodes.get(&validator(0)).context("validator 0")?;
    let at = |n: u64| json!([format!("0x{n:x}")]);
    let before = rpc(
        &p.ip,
        p.rpc_port,
        "qbft_getValidatorsByBlockNumber",
        at(decided),
    )
    .await?;
    let after = rpc(
        &p.ip,
        p.rpc_port,
        "qbft_getValidatorsByBlockNumber",
        at(decided + 1),
    )
    .await?;
    assert_eq!(addresses(&before).len(), 4);
    assert!(!addresses(&before).contains(&c));
    assert_eq!(addresses(&after).len(), 5);
    assert!(addresses(&after).contains(&c));
    let latest = rpc(
        &p.ip,
        p.rpc_port,
        "qbft_getValidatorsByBlockNumber",
        json!(["latest"]),
    )
    .await?;
    assert!(addresses(&latest).contains(&c));
    // Five validators, four up: ceil(10/3) = 4, so the chain still advances.
    wait_height(&ns.name, head(&view) + 2, CHAIN_WAIT).await?;

    drop(client);
    ns.cleanup().await
}

#[tokio::test]
async fn node_surface_restart_loses_proposals_and_never_ready_images_stay_down()
-> anyhow::Result<()> {
    let (_client, ns, mut op) = setup("sim-node").await?;
    let pods: Api<Pod> = ns.api();
    let sts: Api<StatefulSet> = ns.api();
    wait_height(&ns.name, 2, BRING_UP).await?;
    let nodes = wait_until("6 running nodes", BRING_UP, || async {
        let nodes = node_pods(&pods).await?;
        if nodes.len() == 6 {
            Ok(Check::Done(nodes))
        } else {
            not_yet(format!("{:?}", nodes.keys()))
        }
    })
    .await?;
    let v0 = nodes[&validator(0)].clone();
    let member = nodes[&format!("{NETWORK}-member-0")].clone();
    let h = http();

    // JSON-RPC: the member has no QBFT API (-32604, as Besu), unknown methods -32601.
    let r = wait_until("the member to answer", CHAIN_WAIT, || async {
        Ok(Check::Done(
            rpc_raw(
                &member.ip,
                member.rpc_port,
                "qbft_getPendingVotes",
                json!([]),
            )
            .await?,
        ))
    })
    .await?;
    assert_eq!(r["error"]["code"], json!(-32604), "{r}");
    assert_eq!(r["error"]["message"], json!("Method not enabled"));
    let r = rpc_raw(&v0.ip, v0.rpc_port, "eth_noSuchMethod", json!([])).await?;
    assert_eq!(r["error"]["code"], json!(-32601), "{r}");
    assert_eq!(
        rpc(&v0.ip, v0.rpc_port, "eth_chainId", json!([])).await?,
        json!("0x539")
    );
    assert_eq!(
        rpc(&v0.ip, v0.rpc_port, "net_version", json!([])).await?,
        json!("1337")
    );
    let version = rpc(&v0.ip, v0.rpc_port, "web3_clientVersion", json!([])).await?;
    assert!(
        version.as_str().unwrap_or("").starts_with("besu-sim/"),
        "{version}"
    );
    let peers = quantity(&rpc(&v0.ip, v0.rpc_port, "net_peerCount", json!([])).await?)?;
    assert_eq!(peers, 5);
    let enode = rpc(&v0.ip, v0.rpc_port, "net_enode", json!([])).await?;
    assert!(
        enode
            .as_str()
            .unwrap_or("")
            .ends_with(&format!("@{}:30303", v0.ip)),
        "{enode}"
    );

    // Health endpoints with Besu's semantics.
    let base = format!("http://{}:{}", v0.ip, v0.rpc_port);
    for (path, code, status) in [
        ("/liveness", 200, "UP"),
        ("/readiness?minPeers=0&maxBlocksBehind=2", 200, "UP"),
        ("/readiness", 200, "UP"),
        ("/readiness?minPeers=6", 503, "DOWN"),
        ("/readiness?minPeers=abc", 503, "DOWN"),
    ] {
        let resp = h.get(format!("{base}{path}")).send().await?;
        assert_eq!(resp.status().as_u16(), code, "{path}");
        let body: Value = resp.json().await?;
        assert_eq!(body, json!({"status": status}), "{path}");
    }

    // Metrics with Besu's names and the chain's values. Polled: on a loaded machine the
    // node may be a block behind for a moment (in sync 0) right after the chain's height 2.
    let scrape = || async {
        h.get(format!("http://{}:{}/metrics", v0.ip, v0.metrics_port))
            .send()
            .await?
            .text()
            .await
    };
    let value = |text: &str, name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    let text = wait_until(
        "v0's metrics at height 2, 5 peers, in sync",
        CHAIN_WAIT,
        || async {
            let text = scrape().await?;
            let height = value(&text, "ethereum_blockchain_height").unwrap_or(0.0);
            let peers = value(&text, "ethereum_peer_count");
            let in_sync = value(&text, "besu_synchronizer_in_sync");
            if height >= 2.0 && peers == Some(5.0) && in_sync == Some(1.0) {
                Ok(Check::Done(text))
            } else {
                not_yet(format!(
                    "height {height}, peers {peers:?}, in sync {in_sync:?}"
                ))
            }
        },
    )
    .await?;
    let metric = |name: &str| value(&text, name);
    assert!(
        metric("ethereum_best_known_block_number").is_some(),
        "{text}"
    );

    // A proposal lives in the node's memory: a restarted pod (new UID) has none.
    let candidate: Address = NodeKey::generate().address();
    rpc(
        &v0.ip,
        v0.rpc_port,
        "qbft_proposeValidatorVote",
        json!([candidate.to_string(), true]),
    )
    .await?;
    let pending = rpc(&v0.ip, v0.rpc_port, "qbft_getPendingVotes", json!([])).await?;
    assert_eq!(pending, json!({ candidate.to_string(): true }));
    pods.delete(&format!("{}-0", validator(0)), &DeleteParams::default())
        .await?;
    let restarted = wait_until("validator 0 restarted and serving", BRING_UP, || async {
        let nodes = node_pods(&pods).await?;
        match nodes.get(&validator(0)) {
            Some(p) if p.uid != v0.uid => {
                let pending = rpc(&p.ip, p.rpc_port, "qbft_getPendingVotes", json!([])).await?;
                Ok(Check::Done(pending))
            }
            _ => not_yet("old pod"),
        }
    })
    .await?;
    assert_eq!(restarted, json!({}));

    // The never-ready rule: an image containing "never-ready" runs but never turns
    // Ready, and the simulator serves nothing for it. 3 of 4 validators keep the chain
    // going. (The operator would roll the image back, so it is stopped.)
    op.kill();
    sts.patch(
        &validator(3),
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "besu", "image": "hyperledger/besu:26.4.0-never-ready"}
        ]}}}})),
    )
    .await?;
    let bad = wait_until(
        "validator 3 running the never-ready image",
        BRING_UP,
        || async {
            let nodes = node_pods(&pods).await?;
            match nodes.get(&validator(3)) {
                Some(p) if p.image.contains("never-ready") => Ok(Check::Done(p.clone())),
                other => not_yet(format!("{other:?}")),
            }
        },
    )
    .await?;
    let from = head(&chain_view(&ns.name).await?);
    let view = wait_height(&ns.name, from + 3, CHAIN_WAIT).await?;
    let nodes = node_pods(&pods).await?;
    let p3 = nodes.get(&validator(3)).context("validator 3 pod")?;
    assert_eq!(p3.uid, bad.uid);
    assert!(!p3.ready, "a never-ready pod turned Ready");
    assert!(
        h.get(format!("http://{}:{}/liveness", p3.ip, p3.rpc_port))
            .send()
            .await
            .is_err(),
        "the simulator serves a never-ready pod"
    );
    assert_eq!(
        view["validators_up"].as_array().map(Vec::len),
        Some(3),
        "{}",
        view["validators_up"]
    );

    ns.cleanup().await
}
