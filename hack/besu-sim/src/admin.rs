//! The admin endpoint for tests (127.0.0.1 only):
//! - `GET /healthz` → `ok`;
//! - `GET /chains` → every chain, summarized;
//! - `GET /chains/<namespace>/<name>[?from=N]` → one chain: head, validators, tallies,
//!   nodes, node events and every block from `N` (default 0) on;
//! - `GET /chains/<namespace>/<name>/witness` → the witness record (`witness.rs`);
//! - `POST /chains/<namespace>/<name>/nodes/<pod>/rpc-fault` → inject or clear a JSON-RPC
//!   fault on a node;
//! - `POST /chains/<namespace>/<name>/out-of-band-vote` → every up validator proposes a vote.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;

use crate::besu::Address;
use crate::witness::RpcFault;
use crate::{Shared, now_ms};

async fn chains(State(s): State<Arc<Shared>>) -> Response {
    Json(s.world().summaries()).into_response()
}

fn no_chain(namespace: &str, name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("no chain {namespace}/{name}\n"),
    )
        .into_response()
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
}

async fn chain(
    State(s): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let from = q.get("from").and_then(|f| f.parse().ok()).unwrap_or(0);
    match s.world().view(&namespace, &name, from, now_ms()) {
        Some(v) => Json(v).into_response(),
        None => no_chain(&namespace, &name),
    }
}

async fn witness(
    State(s): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    match s.world().witness(&namespace, &name, now_ms()) {
        Some(w) => Json(w).into_response(),
        None => no_chain(&namespace, &name),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    mode: String,
    blocks: Option<u64>,
}

/// The body of `POST …/rpc-fault`: `{"mode":"timeout"}`, `{"mode":"lag","blocks":N}` or
/// `{"mode":"none"}` (→ `None`).
pub fn parse_fault(body: &[u8]) -> Result<Option<RpcFault>, String> {
    let req: FaultRequest =
        serde_json::from_slice(body).map_err(|e| format!("bad rpc-fault body: {e}"))?;
    match (req.mode.as_str(), req.blocks) {
        ("timeout", None) => Ok(Some(RpcFault::Timeout)),
        ("lag", Some(n)) => Ok(Some(RpcFault::Lag(n))),
        ("none", None) => Ok(None),
        ("lag", None) => Err("mode lag needs \"blocks\": N".into()),
        ("timeout" | "none", Some(_)) => Err("\"blocks\" goes only with mode lag".into()),
        (other, _) => Err(format!("unknown mode {other:?} (timeout, lag or none)")),
    }
}

async fn rpc_fault(
    State(s): State<Arc<Shared>>,
    Path((namespace, name, pod)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let fault = match parse_fault(&body) {
        Ok(f) => f,
        Err(e) => return bad_request(e),
    };
    if !s
        .world()
        .set_rpc_fault(&namespace, &name, &pod, fault, now_ms())
    {
        return (
            StatusCode::NOT_FOUND,
            format!("no pod {pod} of chain {namespace}/{name}\n"),
        )
            .into_response();
    }
    Json(json!({
        "pod": pod,
        "mode": fault.map_or("none", RpcFault::mode),
        "blocks": fault.and_then(RpcFault::blocks),
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VoteRequest {
    address: Address,
    add: bool,
}

/// The body of `POST …/out-of-band-vote`: `{"address":"0x…","add":true|false}`.
pub fn parse_vote(body: &[u8]) -> Result<(Address, bool), String> {
    let req: VoteRequest =
        serde_json::from_slice(body).map_err(|e| format!("bad out-of-band-vote body: {e}"))?;
    Ok((req.address, req.add))
}

async fn out_of_band_vote(
    State(s): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (address, add) = match parse_vote(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    match s
        .world()
        .out_of_band_vote(&namespace, &name, address, add, now_ms())
    {
        // The body is the number of validators that now propose the vote.
        Some(n) => Json(n).into_response(),
        None => no_chain(&namespace, &name),
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/chains", get(chains))
        .route("/chains/{namespace}/{name}", get(chain))
        .route("/chains/{namespace}/{name}/witness", get(witness))
        .route(
            "/chains/{namespace}/{name}/nodes/{pod}/rpc-fault",
            post(rpc_fault),
        )
        .route(
            "/chains/{namespace}/{name}/out-of-band-vote",
            post(out_of_band_vote),
        )
        .with_state(shared)
}

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    if let Err(e) = axum::serve(listener, router(shared)).await {
        tracing::error!(error = %e, "admin endpoint failed");
    }
}

#[cfg(test)]
pub mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::SocketAddr;
    use std::sync::Mutex;

    use serde_json::Value;

    use super::*;
    use crate::besu::{Consensus, NodeKey};
    use crate::witness::PodObservation;
    use crate::world::{NodeStart, World};

    /// One HTTP/1.1 request over a plain socket: the status code and the body (empty if
    /// the server closed the connection without answering).
    pub fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = Vec::new();
        // A connection dropped without an answer may end in a reset.
        let _ = s.read_to_end(&mut out);
        let out = String::from_utf8(out).unwrap();
        let Some((head, body)) = out.split_once("\r\n\r\n") else {
            return (0, out);
        };
        let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (code, body.to_string())
    }

    async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
        let (method, path, body) = (method.to_string(), path.to_string(), body.to_string());
        tokio::task::spawn_blocking(move || http(addr, &method, &path, &body))
            .await
            .unwrap()
    }

    fn key(i: u8) -> NodeKey {
        let mut b = [0u8; 32];
        b[31] = i;
        NodeKey::from_bytes(&b).unwrap()
    }

    /// A world with a 4-validator QBFT chain `ns/net`, all up, head 3.
    fn world() -> World {
        let keys: Vec<NodeKey> = (1..=4).map(key).collect();
        let validators: Vec<_> = keys.iter().map(|k| k.address()).collect();
        let g = crate::genesis::test_support::genesis(Consensus::Qbft, 1337, 1, &validators);
        let mut w = World::new(2_000);
        for (i, k) in keys.into_iter().enumerate() {
            let (uid, pod) = (format!("u{i}"), format!("net-validator-{i}-0"));
            let mut obs = PodObservation {
                uid: uid.clone(),
                namespace: "ns".into(),
                pod: pod.clone(),
                network: Some("net".into()),
                node: Some(format!("net-validator-{i}")),
                node_type: Some("validator".into()),
                running: true,
                deleting: false,
                ready: false,
            };
            w.observe_pod(&obs, 1_000);
            w.start_node(
                NodeStart {
                    uid: uid.clone(),
                    namespace: "ns".into(),
                    pod,
                    node: obs.node.clone(),
                    node_type: obs.node_type.clone(),
                    image: "hyperledger/besu:26.3.0".into(),
                    revision: Some("net-validator-7b9c".into()),
                    ip: format!("127.64.0.{}", i + 1).parse().unwrap(),
                    rpc_port: 8545,
                    metrics_port: 9545,
                    p2p_port: 30303,
                    key: Some(k),
                    apis: ["ETH", "QBFT"].iter().map(|s| s.to_string()).collect(),
                    chain_name: "net".into(),
                    genesis_json: g.clone(),
                },
                1_100,
            )
            .unwrap();
            obs.ready = true;
            w.observe_pod(&obs, 1_600);
        }
        for t in [2_100, 3_100, 4_100] {
            w.tick(t);
        }
        w
    }

    async fn serve_admin(w: World) -> (SocketAddr, Arc<Shared>) {
        let shared = Arc::new(Shared {
            world: Mutex::new(w),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, shared.clone()));
        (addr, shared)
    }

    #[tokio::test]
    async fn witness_endpoint_serves_the_record() {
        let (addr, _) = serve_admin(world()).await;
        let (code, body) = request(addr, "GET", "/chains/ns/net/witness", "").await;
        assert_eq!(code, 200, "{body}");
        let j: Value = serde_json::from_str(&body).unwrap();
        assert!(j["now_ms"].as_u64().unwrap() > 1_700_000_000_000);
        assert_eq!(j["block_period_ms"], 1_000);
        assert_eq!(j["blocks"].as_array().unwrap().len(), 4);
        assert_eq!(j["blocks"][1]["time_ms"], 2_100);
        assert_eq!(j["nodes"].as_array().unwrap().len(), 4);
        let n0 = &j["nodes"][0];
        assert_eq!(n0["pod"], "net-validator-0-0");
        assert_eq!(n0["node"], "net-validator-0");
        assert_eq!(n0["node_type"], "validator");
        assert_eq!(
            n0["down"],
            serde_json::json!([
                {"from_ms": 1_000, "to_ms": 1_100, "cause": "not-started", "uid": "u0"},
                {"from_ms": 1_100, "to_ms": 1_600, "cause": "not-ready", "uid": "u0"}
            ])
        );
        assert_eq!(
            n0["starts"],
            serde_json::json!([{"uid": "u0", "at_ms": 1_100, "image": "hyperledger/besu:26.3.0", "revision": "net-validator-7b9c"}])
        );
        assert_eq!(n0["keys"][0]["address"], key(1).address().to_string());
        assert_eq!(n0["rpc_faults"], serde_json::json!([]));
        assert_eq!(j["genesis"][0]["first_seen_ms"], 1_100);
        let (code, _) = request(addr, "GET", "/chains/ns/nope/witness", "").await;
        assert_eq!(code, 404);
    }

    #[tokio::test]
    async fn fault_and_vote_knobs() {
        let (addr, shared) = serve_admin(world()).await;
        let path = "/chains/ns/net/nodes/net-validator-1-0/rpc-fault";
        let (code, body) = request(addr, "POST", path, r#"{"mode":"lag","blocks":2}"#).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            serde_json::json!({"pod": "net-validator-1-0", "mode": "lag", "blocks": 2})
        );
        assert_eq!(
            shared.world().witness.pods[&("ns".to_string(), "net-validator-1-0".to_string())].fault,
            Some(RpcFault::Lag(2))
        );
        let (code, _) = request(addr, "POST", path, r#"{"mode":"timeout"}"#).await;
        assert_eq!(code, 200);
        let (code, _) = request(addr, "POST", path, r#"{"mode":"none"}"#).await;
        assert_eq!(code, 200);
        {
            let w = shared.world();
            let h = &w.witness.pods[&("ns".to_string(), "net-validator-1-0".to_string())];
            assert_eq!(h.fault, None);
            // Wall-clock times: intervals that lasted no millisecond are not kept.
            assert!(h.rpc_faults.iter().all(|f| f.to_ms.is_some()));
        }
        for bad in [
            r#"{"mode":"lag"}"#,
            r#"{"mode":"slow"}"#,
            "{",
            r#"{"mode":"none","x":1}"#,
        ] {
            let (code, body) = request(addr, "POST", path, bad).await;
            assert_eq!(code, 400, "{bad}: {body}");
        }
        let (code, _) = request(
            addr,
            "POST",
            "/chains/ns/net/nodes/nope/rpc-fault",
            r#"{"mode":"none"}"#,
        )
        .await;
        assert_eq!(code, 404);

        let subject = key(9).address().to_string();
        let vote = format!(r#"{{"address":"{subject}","add":true}}"#);
        let (code, body) = request(addr, "POST", "/chains/ns/net/out-of-band-vote", &vote).await;
        assert_eq!((code, body.as_str()), (200, "4"));
        let (code, _) = request(addr, "POST", "/chains/ns/nope/out-of-band-vote", &vote).await;
        assert_eq!(code, 404);
        let (code, _) = request(
            addr,
            "POST",
            "/chains/ns/net/out-of-band-vote",
            r#"{"address":"0x12","add":true}"#,
        )
        .await;
        assert_eq!(code, 400);
        let pending = shared.world().nodes["u2"].proposer.proposals();
        assert_eq!(pending.len(), 1);
    }

    #[test]
    fn fault_bodies() {
        assert_eq!(
            parse_fault(br#"{"mode":"timeout"}"#),
            Ok(Some(RpcFault::Timeout))
        );
        assert_eq!(
            parse_fault(br#"{"mode":"lag","blocks":7}"#),
            Ok(Some(RpcFault::Lag(7)))
        );
        assert_eq!(parse_fault(br#"{"mode":"none"}"#), Ok(None));
        assert!(parse_fault(br#"{"mode":"timeout","blocks":1}"#).is_err());
        assert!(parse_fault(br#"{"blocks":1}"#).is_err());
        assert!(
            parse_vote(br#"{"address":"0x627306090abab3a6e1400e9345bc60c78a8bef57","add":false}"#)
                .is_ok()
        );
        assert!(
            parse_vote(br#"{"address":"0x627306090abab3a6e1400e9345bc60c78a8bef57"}"#).is_err()
        );
    }
}
