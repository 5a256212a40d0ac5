//! A witness for a chain whose nodes really run (the Besu stand-ins on the real node),
//! kept by the test itself: the simulator's witness sees only the simulator's own pods.
//! It watches what every node's JSON-RPC says, several times a second, and records what
//! [`super::check`] judges, in the simulator's terms:
//!
//! - blocks: each new head, when first seen, with the validator set the producing nodes
//!   report for it (`qbft_getValidatorsByBlockNumber`);
//! - per pod: the keys it served with (`net_enode`: the node ID, hashed into its address
//!   as Ethereum does: the last 20 bytes of the Keccak-256 of the public key), and every
//!   interval in which it was down: no pod, no running pod, no answer for [`SILENCE`]
//!   or more, or more than [`BEHIND`] blocks behind the head (a node still syncing takes
//!   no part in consensus).
//!
//! Nothing here comes from the operator: only pods (by the network's label) and what the
//! nodes themselves answer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use sha3::{Digest, Keccak256};

use super::{Down, KeySeen, Witness, WitnessBlock, WitnessNode};

/// Blocks a node may lag the head and still count as taking part.
pub const BEHIND: u64 = 2;
/// How often the nodes are asked.
pub const PERIOD: Duration = Duration::from_millis(300);
/// How long a node that runs may leave the witness unanswered before it counts as down
/// (from its first unanswered poll): on a loaded machine a stand-in that takes part in
/// consensus may miss a poll or two. A pod stopped or restarted is down for longer, and
/// a node with no running pod counts at once.
pub const SILENCE: Duration = Duration::from_secs(3);
const RPC_PORT: u16 = 8545;

#[derive(Default)]
struct NodeState {
    keys: Vec<KeySeen>,
    down: Vec<Down>,
    /// Down since (ms), with the cause.
    down_since: Option<(u64, String)>,
    /// Running but silent since (ms): down once that lasts [`SILENCE`].
    silent_since: Option<u64>,
}

#[derive(Default)]
struct State {
    blocks: Vec<WitnessBlock>,
    nodes: BTreeMap<String, NodeState>,
    polls: u64,
    errors: u64,
}

/// The running witness of one network; stops when dropped.
pub struct RealWitness {
    t0: Instant,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RealWitness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

async fn call(http: &reqwest::Client, ip: &str, method: &str, params: Value) -> Option<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let r: Value = http
        .post(format!("http://{ip}:{RPC_PORT}/"))
        .json(&body)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    r.get("result").cloned()
}

fn quantity(v: &Value) -> Option<u64> {
    u64::from_str_radix(v.as_str()?.trim_start_matches("0x"), 16).ok()
}

/// The address of an enode's node ID (its uncompressed public key, 64 bytes in hex).
pub fn address_of_enode(enode: &str) -> Option<String> {
    let id = enode.strip_prefix("enode://")?.split('@').next()?;
    let key = hex::decode(id).ok().filter(|k| k.len() == 64)?;
    let hash = Keccak256::digest(&key);
    Some(format!("0x{}", hex::encode(&hash[12..])))
}

/// What one pod said in one poll.
struct Answer {
    pod: String,
    height: Option<u64>,
    address: Option<String>,
    ip: Option<String>,
}

impl RealWitness {
    /// Starts watching the pods labelled `besu.nodeops.dev/network=<network>` in `ns`.
    pub fn start(client: Client, ns: &str, network: &str) -> RealWitness {
        let t0 = Instant::now();
        let state = Arc::new(Mutex::new(State::default()));
        let pods: Api<Pod> = Api::namespaced(client, ns);
        let selector = format!("besu.nodeops.dev/network={network},app.kubernetes.io/name=besu");
        let st = state.clone();
        let task = tokio::spawn(async move {
            let http = http();
            loop {
                let tick = Instant::now();
                poll(&pods, &selector, &http, &st, t0).await;
                let spent = tick.elapsed();
                tokio::time::sleep(PERIOD.saturating_sub(spent)).await;
            }
        });
        RealWitness { t0, state, task }
    }

    /// The record so far, as the simulator would serve it.
    pub fn witness(&self) -> Witness {
        let now_ms = ms(self.t0);
        let Ok(st) = self.state.lock() else {
            return Witness {
                now_ms,
                block_period_ms: 0,
                genesis: Vec::new(),
                blocks: Vec::new(),
                nodes: Vec::new(),
            };
        };
        Witness {
            now_ms,
            block_period_ms: 0,
            genesis: Vec::new(),
            blocks: st.blocks.clone(),
            nodes: st
                .nodes
                .iter()
                .map(|(pod, n)| {
                    let mut down = n.down.clone();
                    if let Some((from, cause)) = &n.down_since {
                        down.push(Down {
                            from_ms: *from,
                            to_ms: None,
                            cause: cause.clone(),
                            uid: None,
                        });
                    }
                    WitnessNode {
                        pod: pod.clone(),
                        node: None,
                        node_type: None,
                        keys: n.keys.clone(),
                        starts: Vec::new(),
                        down,
                    }
                })
                .collect(),
        }
    }

    /// Polls made and polls that could not list the pods.
    pub fn polls(&self) -> (u64, u64) {
        self.state
            .lock()
            .map(|s| (s.polls, s.errors))
            .unwrap_or_default()
    }
}

fn ms(t0: Instant) -> u64 {
    u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX)
}

async fn poll(
    pods: &Api<Pod>,
    selector: &str,
    http: &reqwest::Client,
    state: &Mutex<State>,
    t0: Instant,
) {
    let Ok(list) = pods.list(&ListParams::default().labels(selector)).await else {
        if let Ok(mut st) = state.lock() {
            st.polls += 1;
            st.errors += 1;
        }
        return;
    };
    let answers = futures::future::join_all(list.items.iter().map(|p| async move {
        let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let ip = p
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .filter(|_| running);
        let (height, address) = match &ip {
            Some(ip) => {
                let (h, e) = tokio::join!(
                    call(http, ip, "eth_blockNumber", json!([])),
                    call(http, ip, "net_enode", json!([])),
                );
                (
                    h.as_ref().and_then(quantity),
                    e.as_ref()
                        .and_then(Value::as_str)
                        .and_then(address_of_enode),
                )
            }
            None => (None, None),
        };
        Answer {
            pod: p.name_any(),
            height,
            address,
            ip,
        }
    }))
    .await;
    let head = answers.iter().filter_map(|a| a.height).max();
    let last = state
        .lock()
        .ok()
        .and_then(|s| s.blocks.last().map(|b| b.number));
    // The set in force at a new head, from a node at that head.
    // (Only validators serve the QBFT API: each node at the head is asked in turn.)
    let mut validators: Option<Vec<String>> = None;
    if let Some(h) = head
        && last.is_none_or(|l| h > l)
    {
        for ip in answers
            .iter()
            .filter(|a| a.height == Some(h))
            .filter_map(|a| a.ip.as_deref())
        {
            if let Some(Value::Array(v)) = call(
                http,
                ip,
                "qbft_getValidatorsByBlockNumber",
                json!([format!("0x{h:x}")]),
            )
            .await
            {
                validators = Some(
                    v.iter()
                        .filter_map(|a| a.as_str().map(str::to_lowercase))
                        .collect(),
                );
                break;
            }
        }
    }
    let now = ms(t0);
    let Ok(mut st) = state.lock() else {
        return;
    };
    st.polls += 1;
    if let (Some(h), Some(set)) = (head, validators) {
        let from = st.blocks.last().map_or(h, |b| b.number + 1);
        for number in from..=h {
            st.blocks.push(WitnessBlock {
                number,
                time_ms: now,
                validators: set.clone(),
            });
        }
    }
    let head = st.blocks.last().map(|b| b.number);
    let present: Vec<&str> = answers.iter().map(|a| a.pod.as_str()).collect();
    for a in &answers {
        let n = st.nodes.entry(a.pod.clone()).or_default();
        if let Some(addr) = &a.address
            && n.keys.last().is_none_or(|k| &k.address != addr)
        {
            n.keys.push(KeySeen {
                address: addr.clone(),
                first_seen_ms: now,
            });
        }
        if a.height.is_some() || a.ip.is_none() {
            n.silent_since = None;
        }
        let cause = match (a.height, head) {
            (None, _) if a.ip.is_none() => Some("not running"),
            (None, _) => {
                let since = *n.silent_since.get_or_insert(now);
                if now.saturating_sub(since) >= u64::try_from(SILENCE.as_millis()).unwrap_or(0) {
                    // Down from the first poll it left unanswered.
                    if n.down_since.is_none() {
                        n.down_since = Some((since, "not answering".to_string()));
                    }
                    Some("not answering")
                } else {
                    None
                }
            }
            (Some(h), Some(top)) if h + BEHIND < top => Some("behind the head"),
            _ => None,
        };
        if cause.is_none() && a.height.is_none() {
            // Silent for less than SILENCE: neither down nor back up yet.
            continue;
        }
        mark(n, cause, now);
    }
    for (pod, n) in st.nodes.iter_mut() {
        if !present.contains(&pod.as_str()) {
            mark(n, Some("no pod"), now);
        }
    }
}

fn mark(n: &mut NodeState, cause: Option<&str>, now: u64) {
    match (cause, n.down_since.take()) {
        (Some(c), None) => n.down_since = Some((now, c.to_string())),
        (Some(_), Some(since)) => n.down_since = Some(since),
        (None, Some((from, cause))) => n.down.push(Down {
            from_ms: from,
            to_ms: Some(now),
            cause,
            uid: None,
        }),
        (None, None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enode_gives_the_address_of_its_key() {
        // The public key of private key 1 (the generator point) has the address
        // 0x7e5f4552091a69125d5dfcb7b8c2659029395bdf (a standard test vector).
        let g = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8";
        assert_eq!(
            address_of_enode(&format!("enode://{g}@127.0.0.1:30303")).as_deref(),
            Some("0x7e5f4552091a69125d5dfcb7b8c2659029395bdf")
        );
        assert_eq!(address_of_enode("enode://00@x:1"), None);
    }
}
