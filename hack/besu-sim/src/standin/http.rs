//! The HTTP side of a node: JSON-RPC, health and metrics.
//!
//! Besu: `JsonRpcHttpService` (`buildRouter`: the host allowlist on every route,
//! `checkAllowlistHostHeader` → 403 `{"message":"Host not authorized."}`; `GET /liveness`,
//! `GET /readiness`, `POST /`), `MetricsHttpService` (the same allowlist), health checks
//! `LivenessCheck` / `ReadinessCheck` ([`crate::node::readiness`]), `JsonRpcExecutor`
//! (`-32604 Method not enabled` for a method of an API group not in `--rpc-http-api`, or
//! of the other BFT protocol; `-32601 Method not found` otherwise), the methods under
//! `ethereum/api/.../jsonrpc/internal/methods` and `consensus/{qbft,ibft}/.../jsonrpc`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::block::{Block, H256};
use super::node::{Node, Shared};
use crate::besu::Consensus;
// Besu's parameter parsing and quantities, shared with the simulator's node surface.
use crate::rpc::{
    BlockParam, INVALID_VOTE_TYPE_PARAMS, METHOD_NOT_ENABLED, METHOD_NOT_FOUND, RpcError,
    UNKNOWN_BLOCK, address_param, addresses, block_param, handle_body, param, quantity,
};

/// The methods served, with the `--rpc-http-api` group that enables each.
const METHODS: &[(&str, &str)] = &[
    ("eth_blockNumber", "ETH"),
    ("eth_syncing", "ETH"),
    ("eth_chainId", "ETH"),
    ("eth_getBlockByNumber", "ETH"),
    ("eth_getBlockByHash", "ETH"),
    ("net_peerCount", "NET"),
    ("net_version", "NET"),
    ("net_enode", "NET"),
    ("net_listening", "NET"),
    ("web3_clientVersion", "WEB3"),
    ("admin_nodeInfo", "ADMIN"),
    ("admin_peers", "ADMIN"),
    ("admin_addPeer", "ADMIN"),
    ("qbft_proposeValidatorVote", "QBFT"),
    ("qbft_discardValidatorVote", "QBFT"),
    ("qbft_getPendingVotes", "QBFT"),
    ("qbft_getValidatorsByBlockNumber", "QBFT"),
    ("qbft_getValidatorsByBlockHash", "QBFT"),
    ("qbft_getRequestTimeoutSeconds", "QBFT"),
    ("ibft_proposeValidatorVote", "IBFT"),
    ("ibft_discardValidatorVote", "IBFT"),
    ("ibft_getPendingVotes", "IBFT"),
    ("ibft_getValidatorsByBlockNumber", "IBFT"),
    ("ibft_getValidatorsByBlockHash", "IBFT"),
];

const INVALID_PARAMS: RpcError = RpcError {
    code: -32602,
    message: "Invalid params",
};

/// `BftHelpers.EXPECTED_MIX_HASH`.
const BFT_MIX_HASH: &str = "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365";
/// keccak256(RLP([])) and the empty trie root.
const EMPTY_OMMERS: &str = "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347";
const EMPTY_TRIE: &str = "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421";

/// A block as `eth_getBlockByNumber` shows it (no transactions in a stand-in chain).
fn block_json(node: &Node, b: &Block) -> Value {
    let consensus = node.chain.consensus();
    let extra = if b.number == 0 {
        node.chain.genesis.extra_data.clone()
    } else {
        b.extra_data(consensus, true)
    };
    json!({
        "number": quantity(b.number),
        "hash": b.hash(consensus).to_string(),
        "parentHash": b.parent_hash.to_string(),
        "nonce": "0x0000000000000000",
        "sha3Uncles": EMPTY_OMMERS,
        "logsBloom": format!("0x{}", "00".repeat(256)),
        "transactionsRoot": EMPTY_TRIE,
        "stateRoot": H256::default().to_string(),
        "receiptsRoot": EMPTY_TRIE,
        "miner": b.proposer.to_string(),
        "difficulty": "0x1",
        "totalDifficulty": quantity(b.number + 1),
        "extraData": format!("0x{}", hex::encode(extra)),
        "size": quantity(500),
        "gasLimit": quantity(node.chain.genesis.gas_limit),
        "gasUsed": "0x0",
        "timestamp": quantity(b.timestamp),
        "mixHash": BFT_MIX_HASH,
        "transactions": [],
        "uncles": [],
    })
}

/// `<qbft|ibft>_getValidatorsByBlockNumber`: QBFT sorts the header's validators and
/// answers `pending` with the set after the head (`getValidatorsAfterBlock`); IBFT keeps
/// header order and answers `pending` like `latest`
/// (`AbstractBlockParameterMethod.pendingResult`).
fn validators_of(node: &Node, number: u64) -> Value {
    match node.chain.block(number) {
        None => Value::Null,
        Some(b) => {
            let mut v = b.validators.clone();
            if node.chain.consensus() == Consensus::Qbft {
                v.sort();
            }
            addresses(&v)
        }
    }
}

/// One JSON-RPC method call.
pub fn call(node: &mut Node, method: &str, params: &Value) -> Result<Value, RpcError> {
    let Some((_, group)) = METHODS.iter().find(|(m, _)| *m == method) else {
        return Err(METHOD_NOT_FOUND);
    };
    let consensus = node.chain.consensus();
    let protocol_ok = match *group {
        "QBFT" => consensus == Consensus::Qbft,
        "IBFT" => consensus == Consensus::Ibft2,
        _ => true,
    };
    if !node.settings.rpc_http_apis.iter().any(|a| a == group) || !protocol_ok {
        return Err(METHOD_NOT_ENABLED);
    }
    let head = node.chain.head_number();
    let verb = method.split_once('_').map(|(_, v)| v).unwrap_or(method);
    Ok(match verb {
        "blockNumber" => quantity(head),
        "syncing" => match node.sync_status() {
            None => Value::Bool(false),
            Some(s) => json!({
                "startingBlock": quantity(s.starting),
                "currentBlock": quantity(s.current),
                "highestBlock": quantity(s.highest),
            }),
        },
        "chainId" => quantity(node.chain.genesis.chain_id),
        "getBlockByNumber" | "getBlockByHash" => {
            if param(params, 1).and_then(Value::as_bool).is_none() {
                return Err(INVALID_PARAMS);
            }
            let number = if verb == "getBlockByHash" {
                let hash: H256 = param(params, 0)
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
                    .ok_or(INVALID_PARAMS)?;
                node.chain.number_of_hash(&hash)
            } else {
                match block_param(params)? {
                    BlockParam::Latest | BlockParam::Pending => Some(head),
                    BlockParam::Earliest => Some(0),
                    BlockParam::Finalized => return Err(UNKNOWN_BLOCK),
                    BlockParam::Number(n) => Some(n),
                }
            };
            match number.and_then(|n| node.chain.block(n)) {
                Some(b) => block_json(node, b),
                None => Value::Null,
            }
        }
        "peerCount" => quantity(node.peer_count() as u64),
        "addPeer" => {
            let url = param(params, 0)
                .and_then(Value::as_str)
                .ok_or(INVALID_PARAMS)?;
            let dns = node.settings.dns;
            let enode = super::enode::Enode::parse(url, dns, super::enode::resolver())
                .map_err(|_| INVALID_PARAMS)?;
            Value::Bool(node.add_maintained_peer(enode))
        }
        "version" => Value::String(node.settings.network_id.to_string()),
        "enode" => Value::String(node.enode()),
        "listening" => Value::Bool(node.settings.p2p_enabled),
        "clientVersion" => Value::String(node.settings.client_version.clone()),
        "nodeInfo" => json!({
            "enode": node.enode(),
            "id": node.id.to_hex(),
            "ip": node.settings.p2p_host.to_string(),
            "listenAddr": format!("{}:{}", node.settings.p2p_host, node.settings.p2p_port),
            "name": node.settings.client_version,
            "ports": {"discovery": node.settings.p2p_port, "listener": node.settings.p2p_port},
            "protocols": {"eth": {
                "difficulty": head + 1,
                "genesis": node.chain.genesis.hash.to_string(),
                "head": node.chain.head_hash().to_string(),
                "network": node.settings.network_id,
            }},
        }),
        "peers" => Value::Array(
            node.peers()
                .map(|p| {
                    json!({
                        "version": "0x5",
                        "name": p.hello.client,
                        "caps": ["eth/68", "istanbul/100"],
                        "network": {
                            "localAddress": format!("{}:{}", node.settings.p2p_host, node.settings.p2p_port),
                            "remoteAddress": p.hello.remote.to_string(),
                            "inbound": p.hello.inbound,
                        },
                        "port": quantity(u64::from(p.hello.listen_port)),
                        "id": format!("0x{}", p.hello.id.to_hex()),
                        "enode": p.enode(),
                        "protocols": {"eth": {"difficulty": quantity(p.head + 1), "version": 68}},
                    })
                })
                .collect(),
        ),
        "proposeValidatorVote" => {
            let subject = address_param(params)?;
            let add = param(params, 1)
                .and_then(Value::as_bool)
                .ok_or(INVALID_VOTE_TYPE_PARAMS)?;
            node.votes.propose(subject, add);
            Value::Bool(true)
        }
        "discardValidatorVote" => {
            let subject = address_param(params)?;
            node.votes.discard(&subject);
            Value::Bool(true)
        }
        "getPendingVotes" => Value::Object(
            node.votes
                .proposals()
                .into_iter()
                .map(|(a, add)| (a.to_string(), Value::Bool(add)))
                .collect::<Map<String, Value>>(),
        ),
        "getValidatorsByBlockNumber" => match block_param(params)? {
            BlockParam::Latest => validators_of(node, head),
            BlockParam::Earliest => validators_of(node, 0),
            BlockParam::Number(n) => validators_of(node, n),
            BlockParam::Finalized => return Err(UNKNOWN_BLOCK),
            BlockParam::Pending => match consensus {
                Consensus::Qbft => addresses(&node.chain.next_validators()),
                Consensus::Ibft2 => validators_of(node, head),
            },
        },
        "getValidatorsByBlockHash" => {
            let hash: H256 = param(params, 0)
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .ok_or(INVALID_PARAMS)?;
            match node.chain.number_of_hash(&hash) {
                Some(n) => validators_of(node, n),
                None => Value::Null,
            }
        }
        "getRequestTimeoutSeconds" => json!(node.chain.genesis.request_timeout_seconds),
        _ => return Err(METHOD_NOT_FOUND),
    })
}

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub shared: Arc<Shared>,
    /// Empty = nothing allowed; `*` = everything.
    pub allowlist: Arc<Vec<String>>,
}

/// `checkAllowlistHostHeader`: `*`, or the Host header's host (without the port)
/// equal to an entry, ignoring case. A wedged node answers nothing at all.
async fn guard(State(s): State<HttpState>, req: Request, next: Next) -> Response {
    if s.shared.is_wedged() {
        std::future::pending::<()>().await;
    }
    let allowed = s.allowlist.iter().any(|a| a == "*")
        || req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(host_of)
            .is_some_and(|host| s.allowlist.iter().any(|a| a.eq_ignore_ascii_case(&host)));
    if !allowed {
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            "{\"message\":\"Host not authorized.\"}",
        )
            .into_response();
    }
    next.run(req).await
}

/// The host of a Host header value (`HostAndPort.host()`): brackets kept off IPv6.
pub fn host_of(value: &str) -> String {
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_string();
    }
    value.rsplit_once(':').map_or(value, |(h, _)| h).to_string()
}

fn health(ok: bool) -> Response {
    let (code, text) = if ok {
        (StatusCode::OK, "UP")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "DOWN")
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "status": text }).to_string(),
    )
        .into_response()
}

/// The test-only `standin_*` methods (not Besu's; always served, whatever
/// `--rpc-http-api` says): faults a test injects into a running pod.
/// - `standin_wedge []`: from now on answer nothing (HTTP hangs, P2P and consensus stop),
///   as a wedged JVM would: the kubelet's liveness probe must restart the container;
/// - `standin_allocate [MiB]`: allocate and touch that much memory (on a thread, after
///   the reply), to go over the container's memory limit;
/// - `standin_isolate []`: drop every peer, forget every address, turn away peers that
///   dial in, until an `admin_addPeer` ([`super::node::Node::isolate`]).
fn standin_node_call(
    node: &mut super::node::Node,
    method: &str,
) -> Option<Result<Value, RpcError>> {
    match method {
        "standin_isolate" => {
            tracing::warn!("standin_isolate: every peer dropped and forgotten until admin_addPeer");
            node.isolate();
            Some(Ok(Value::Bool(true)))
        }
        _ => None,
    }
}

/// Faults that act on the process rather than the node state (see above).
fn standin_call(
    shared: &Arc<Shared>,
    method: &str,
    params: &Value,
) -> Option<Result<Value, RpcError>> {
    match method {
        "standin_wedge" => {
            tracing::warn!("standin_wedge: wedged; answering nothing from now on");
            shared.wedge();
            Some(Ok(Value::Bool(true)))
        }
        "standin_allocate" => Some(match param(params, 0).and_then(Value::as_u64) {
            Some(mib) => {
                tracing::warn!("standin_allocate: allocating and touching {mib} MiB");
                std::thread::spawn(move || super::allocate(mib));
                Ok(Value::Bool(true))
            }
            None => Err(INVALID_PARAMS),
        }),
        _ => None,
    }
}

async fn rpc(State(s): State<HttpState>, body: Bytes) -> Response {
    let reply = {
        let mut node = s.shared.node();
        handle_body(&body, |m, p| {
            standin_call(&s.shared, m, p)
                .or_else(|| standin_node_call(&mut node, m))
                .unwrap_or_else(|| call(&mut node, m, p))
        })
    };
    match reply {
        None => StatusCode::OK.into_response(),
        Some(v) => ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response(),
    }
}

async fn liveness() -> Response {
    health(true)
}

async fn readiness(
    State(s): State<HttpState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let node = s.shared.node();
    // `ReadinessCheck`: the peer check only with P2P enabled.
    let min_peers = if node.settings.p2p_enabled {
        q.get("minPeers").map(String::as_str)
    } else {
        Some("0")
    };
    health(crate::node::readiness(
        node.peer_count(),
        node.sync_status(),
        min_peers,
        q.get("maxBlocksBehind").map(String::as_str),
    ))
}

async fn metrics(State(s): State<HttpState>) -> Response {
    let mut text = {
        let node = s.shared.node();
        let mut t = crate::node::metrics_text(&crate::node::Metrics {
            height: node.chain.head_number(),
            best_known: node.best_known(),
            peers: node.peer_count(),
            peer_limit: node.settings.max_peers,
            in_sync: node.in_sync(),
            head_timestamp: node.chain.head().timestamp,
        });
        t.push_str(&format!(
            "# HELP besu_peers_connected_total Total number of peers connected\n# TYPE besu_peers_connected_total counter\nbesu_peers_connected_total {:?}\n\
             # HELP besu_peers_disconnected_total Total number of peers disconnected\n# TYPE besu_peers_disconnected_total counter\nbesu_peers_disconnected_total {:?}\n",
            node.connected_total as f64, node.disconnected_total as f64
        ));
        t
    };
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(p) = crate::node::process_figures(&stat, &status) {
        text.push_str(&crate::node::process_text(&p));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The JSON-RPC server's routes.
pub fn rpc_router(state: HttpState) -> Router {
    Router::new()
        .route("/", post(rpc).get(|| async { StatusCode::CREATED }))
        .route("/liveness", get(liveness))
        .route("/readiness", get(readiness))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// The metrics server's routes.
pub fn metrics_router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_hosts() {
        assert_eq!(host_of("10.0.0.7:8545"), "10.0.0.7");
        assert_eq!(host_of("localhost"), "localhost");
        assert_eq!(host_of("[::1]:8545"), "::1");
        assert_eq!(host_of("node.svc"), "node.svc");
    }
}
