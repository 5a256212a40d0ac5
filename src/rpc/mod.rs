//! A small Besu JSON-RPC client: chain height, peers, sync state, the validator set and
//! validator votes (`qbft_*` / `ibft_*`, besu-facts §6).
//!
//! Every call has a timeout and a bounded number of retries on transport errors, and
//! every error names the node and the method.

pub mod beacon;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::chain::extradata::Consensus;
use crate::chain::key::Address;

/// Where a node's JSON-RPC is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The `BesuNode` name, for messages.
    pub node: String,
    /// `http://<pod IP>:<port>`.
    pub url: String,
}

impl Endpoint {
    /// The endpoint of a pod IP and RPC port.
    pub fn new(node: &str, pod_ip: &str, port: i32) -> Endpoint {
        let host = if pod_ip.contains(':') {
            format!("[{pod_ip}]")
        } else {
            pod_ip.to_string()
        };
        Endpoint {
            node: node.to_string(),
            url: format!("http://{host}:{port}"),
        }
    }
}

/// A failed JSON-RPC call.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The request did not complete (connection, timeout, HTTP status).
    #[error("{node}: {method} failed after {attempts} attempt(s): {reason}")]
    Transport {
        /// The node.
        node: String,
        /// The JSON-RPC method.
        method: String,
        /// Attempts made.
        attempts: u32,
        /// What went wrong.
        reason: String,
    },
    /// The node answered with a JSON-RPC error.
    #[error("{node}: {method} returned error {code}: {message}")]
    Rpc {
        /// The node.
        node: String,
        /// The JSON-RPC method.
        method: String,
        /// The JSON-RPC error code.
        code: i64,
        /// The JSON-RPC error message.
        message: String,
    },
    /// The node answered with a result of an unexpected shape.
    #[error("{node}: {method} returned an unexpected result: {detail}")]
    Decode {
        /// The node.
        node: String,
        /// The JSON-RPC method.
        method: String,
        /// What was wrong.
        detail: String,
    },
}

/// A node's sync state (`eth_syncing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncStatus {
    /// The node's current block.
    pub current: u64,
    /// The highest block the node knows of.
    pub highest: u64,
}

/// The JSON-RPC client.
#[derive(Clone, Debug)]
pub struct RpcClient {
    http: reqwest::Client,
    attempts: u32,
    /// Requests in flight at once, across every reconcile sharing this client: reads that
    /// do not depend on each other run concurrently, but a network of many nodes (or many
    /// networks) cannot open hundreds of connections at once.
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
}

/// At most this many JSON-RPC requests in flight per operator.
pub const MAX_IN_FLIGHT: usize = 32;

/// How long a connection to a node may sit idle before it is closed, and at most one is
/// kept per node. A chain observer reads every node once per poll (15 s by default), so a
/// connection lasts one round instead of living on in the pool: with 500 nodes, three
/// connections each (a round's reads run at once), the pooled connections' buffers were
/// among the largest items of the operator's heap (heaptrack, 100-network bench). A new
/// connection per node and round costs one TCP handshake.
pub const IDLE_CONNECTION: Duration = Duration::from_secs(2);

impl Default for RpcClient {
    fn default() -> Self {
        RpcClient::new(Duration::from_secs(3), 3)
    }
}

fn api_prefix(consensus: Consensus) -> &'static str {
    match consensus {
        Consensus::Qbft => "qbft",
        Consensus::Ibft2 => "ibft",
    }
}

/// Parses a JSON-RPC hex quantity (`0x1a`).
pub fn parse_quantity(v: &Value) -> Option<u64> {
    let s = v.as_str()?.strip_prefix("0x")?;
    u64::from_str_radix(s, 16).ok()
}

impl RpcClient {
    /// A client with the given per-call timeout and attempts (at least 1).
    pub fn new(timeout: Duration, attempts: u32) -> RpcClient {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_idle_timeout(IDLE_CONNECTION)
            .pool_max_idle_per_host(1)
            .no_proxy()
            .build()
            .unwrap_or_default();
        RpcClient {
            http,
            attempts: attempts.max(1),
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Calls `method` with `params`; retries transport errors (not JSON-RPC errors).
    pub async fn call(
        &self,
        ep: &Endpoint,
        method: &str,
        params: Value,
    ) -> Result<Value, RpcError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            let sent = {
                // The semaphore is never closed; if it were, the request goes unbounded.
                let _slot = self.in_flight.acquire().await.ok();
                self.http.post(&ep.url).json(&body).send().await
            };
            match sent {
                Ok(resp) if resp.status().is_success() => {
                    let v: Value = resp.json().await.map_err(|e| RpcError::Decode {
                        node: ep.node.clone(),
                        method: method.to_string(),
                        detail: e.to_string(),
                    })?;
                    if let Some(err) = v.get("error") {
                        return Err(RpcError::Rpc {
                            node: ep.node.clone(),
                            method: method.to_string(),
                            code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                            message: err
                                .get("message")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                        });
                    }
                    return Ok(v.get("result").cloned().unwrap_or(Value::Null));
                }
                Ok(resp) => last = format!("HTTP {}", resp.status()),
                Err(e) => last = e.to_string(),
            }
            if attempt < self.attempts {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
        Err(RpcError::Transport {
            node: ep.node.clone(),
            method: method.to_string(),
            attempts: self.attempts,
            reason: last,
        })
    }

    async fn typed<T: DeserializeOwned>(
        &self,
        ep: &Endpoint,
        method: &str,
        params: Value,
    ) -> Result<T, RpcError> {
        let v = self.call(ep, method, params).await?;
        serde_json::from_value(v.clone()).map_err(|e| RpcError::Decode {
            node: ep.node.clone(),
            method: method.to_string(),
            detail: format!("{e}: {v}"),
        })
    }

    fn quantity(ep: &Endpoint, method: &str, v: &Value) -> Result<u64, RpcError> {
        parse_quantity(v).ok_or_else(|| RpcError::Decode {
            node: ep.node.clone(),
            method: method.to_string(),
            detail: format!("not a hex quantity: {v}"),
        })
    }

    /// `eth_blockNumber`.
    pub async fn block_number(&self, ep: &Endpoint) -> Result<u64, RpcError> {
        let v = self.call(ep, "eth_blockNumber", json!([])).await?;
        Self::quantity(ep, "eth_blockNumber", &v)
    }

    /// `net_peerCount`.
    pub async fn peer_count(&self, ep: &Endpoint) -> Result<u64, RpcError> {
        let v = self.call(ep, "net_peerCount", json!([])).await?;
        Self::quantity(ep, "net_peerCount", &v)
    }

    /// `admin_addPeer`: whether the node took the enode URL as a new maintained peer
    /// (false when it was one already).
    pub async fn add_peer(&self, ep: &Endpoint, enode: &str) -> Result<bool, RpcError> {
        let v = self.call(ep, "admin_addPeer", json!([enode])).await?;
        Ok(v == Value::Bool(true))
    }

    /// `eth_syncing`: `None` when in sync.
    pub async fn syncing(&self, ep: &Endpoint) -> Result<Option<SyncStatus>, RpcError> {
        let v = self.call(ep, "eth_syncing", json!([])).await?;
        if v == Value::Bool(false) {
            return Ok(None);
        }
        let field = |name: &str| {
            v.get(name)
                .and_then(parse_quantity)
                .ok_or_else(|| RpcError::Decode {
                    node: ep.node.clone(),
                    method: "eth_syncing".to_string(),
                    detail: format!("no {name} in {v}"),
                })
        };
        Ok(Some(SyncStatus {
            current: field("currentBlock")?,
            highest: field("highestBlock")?,
        }))
    }

    /// `<qbft|ibft>_getValidatorsByBlockNumber(block)`; `block` is `latest`, `pending` or
    /// a hex number.
    pub async fn validators(
        &self,
        ep: &Endpoint,
        consensus: Consensus,
        block: &str,
    ) -> Result<Vec<Address>, RpcError> {
        let method = format!("{}_getValidatorsByBlockNumber", api_prefix(consensus));
        let list: Vec<String> = self.typed(ep, &method, json!([block])).await?;
        list.iter()
            .map(|a| {
                a.parse().map_err(|e| RpcError::Decode {
                    node: ep.node.clone(),
                    method: method.clone(),
                    detail: format!("{a}: {e}"),
                })
            })
            .collect()
    }

    /// `<qbft|ibft>_proposeValidatorVote(address, add)`.
    pub async fn propose_vote(
        &self,
        ep: &Endpoint,
        consensus: Consensus,
        address: &Address,
        add: bool,
    ) -> Result<bool, RpcError> {
        let method = format!("{}_proposeValidatorVote", api_prefix(consensus));
        self.typed(ep, &method, json!([address.to_string(), add]))
            .await
    }

    /// `<qbft|ibft>_discardValidatorVote(address)`.
    pub async fn discard_vote(
        &self,
        ep: &Endpoint,
        consensus: Consensus,
        address: &Address,
    ) -> Result<bool, RpcError> {
        let method = format!("{}_discardValidatorVote", api_prefix(consensus));
        self.typed(ep, &method, json!([address.to_string()])).await
    }

    /// `<qbft|ibft>_getPendingVotes`: the node's proposals, address → add.
    pub async fn pending_votes(
        &self,
        ep: &Endpoint,
        consensus: Consensus,
    ) -> Result<BTreeMap<Address, bool>, RpcError> {
        let method = format!("{}_getPendingVotes", api_prefix(consensus));
        let raw: BTreeMap<String, bool> = self.typed(ep, &method, json!([])).await?;
        raw.into_iter()
            .map(|(a, add)| {
                a.parse()
                    .map(|addr| (addr, add))
                    .map_err(|e| RpcError::Decode {
                        node: ep.node.clone(),
                        method: method.clone(),
                        detail: format!("{a}: {e}"),
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_endpoints() {
        assert_eq!(parse_quantity(&json!("0x1a")), Some(26));
        assert_eq!(parse_quantity(&json!("0x0")), Some(0));
        assert_eq!(parse_quantity(&json!("26")), None);
        assert_eq!(parse_quantity(&json!(26)), None);
        assert_eq!(
            Endpoint::new("n", "127.64.0.5", 8545).url,
            "http://127.64.0.5:8545"
        );
        assert_eq!(Endpoint::new("n", "::1", 8545).url, "http://[::1]:8545");
    }

    #[tokio::test]
    async fn transport_errors_name_the_node_and_the_method() {
        // Port 9 on loopback: nothing listens there, the connection is refused at once.
        let ep = Endpoint::new("net-validator-0", "127.0.0.1", 9);
        let client = RpcClient::new(Duration::from_millis(300), 2);
        let err = client.block_number(&ep).await.err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("net-validator-0"), "{err}");
        assert!(err.contains("eth_blockNumber"), "{err}");
        assert!(err.contains("2 attempt"), "{err}");
    }

    /// A node that answers slowly: 100 concurrent calls through one client never have
    /// more than MAX_IN_FLIGHT requests open at the node at once, and all are answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_in_flight_are_bounded() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (o, m) = (open.clone(), most.clone());
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move || {
                let (o, m) = (o.clone(), m.clone());
                async move {
                    let now = o.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    o.fetch_sub(1, Ordering::SeqCst);
                    axum::Json(json!({"jsonrpc": "2.0", "id": 1, "result": "0x5"}))
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = RpcClient::new(Duration::from_secs(5), 1);
        let ep = Endpoint::new("slow", "127.0.0.1", i32::from(port));
        let answers = futures::future::join_all((0..100).map(|_| client.block_number(&ep))).await;
        assert!(answers.iter().all(|a| matches!(a, Ok(5))), "{answers:?}");
        let most = most.load(Ordering::SeqCst);
        assert!(most <= MAX_IN_FLIGHT, "{most} requests open at once");
        assert!(most > 1, "the calls did not overlap at all ({most})");
    }
}
