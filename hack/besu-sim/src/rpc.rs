//! JSON-RPC 2.0 as Besu answers it, for the methods the operator and tests use.
//!
//! Error codes and messages are Besu's `RpcErrorType`. A method Besu knows but whose
//! API group the node did not enable (`rpc-http-api`), or that belongs to the other BFT
//! protocol, gets `-32604 Method not enabled` (`JsonRpcExecutor.validateMethodAvailability`);
//! anything else the simulator does not implement gets `-32601 Method not found`.

use std::collections::BTreeSet;

use crate::besu::{Address, Consensus};
use serde_json::{Map, Value, json};

use crate::chain::{Chain, VoteProposer};
use crate::node::SyncStatus;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcError {
    pub code: i64,
    pub message: &'static str,
}

pub const PARSE_ERROR: RpcError = RpcError {
    code: -32700,
    message: "Parse error",
};
pub const INVALID_REQUEST: RpcError = RpcError {
    code: -32600,
    message: "Invalid Request",
};
pub const METHOD_NOT_FOUND: RpcError = RpcError {
    code: -32601,
    message: "Method not found",
};
pub const INVALID_ADDRESS_PARAMS: RpcError = RpcError {
    code: -32602,
    message: "Invalid address params",
};
pub const INVALID_VOTE_TYPE_PARAMS: RpcError = RpcError {
    code: -32602,
    message: "Invalid vote type params",
};
pub const INVALID_BLOCK_PARAMS: RpcError = RpcError {
    code: -32602,
    message: "Invalid block param (block not found)",
};
pub const METHOD_NOT_ENABLED: RpcError = RpcError {
    code: -32604,
    message: "Method not enabled",
};
pub const UNKNOWN_BLOCK: RpcError = RpcError {
    code: -39001,
    message: "Unknown block",
};

/// The methods served, with the `rpc-http-api` group that enables each.
pub const METHODS: &[(&str, &str)] = &[
    ("eth_blockNumber", "ETH"),
    ("eth_syncing", "ETH"),
    ("eth_chainId", "ETH"),
    ("net_peerCount", "NET"),
    ("net_version", "NET"),
    ("net_enode", "NET"),
    ("net_listening", "NET"),
    ("web3_clientVersion", "WEB3"),
    ("admin_nodeInfo", "ADMIN"),
    ("qbft_proposeValidatorVote", "QBFT"),
    ("qbft_discardValidatorVote", "QBFT"),
    ("qbft_getPendingVotes", "QBFT"),
    ("qbft_getValidatorsByBlockNumber", "QBFT"),
    ("ibft_proposeValidatorVote", "IBFT"),
    ("ibft_discardValidatorVote", "IBFT"),
    ("ibft_getPendingVotes", "IBFT"),
    ("ibft_getValidatorsByBlockNumber", "IBFT"),
];

/// Besu's default `--rpc-http-api`.
pub const DEFAULT_APIS: [&str; 3] = ["ETH", "NET", "WEB3"];

/// What a method call can see and change of one node.
pub struct NodeCtx<'a> {
    pub chain: &'a Chain,
    pub apis: &'a BTreeSet<String>,
    pub proposer: &'a mut VoteProposer,
    pub local_height: u64,
    pub sync: Option<SyncStatus>,
    pub peers: usize,
    pub node_id: String,
    pub ip: String,
    pub p2p_port: u16,
    pub client_version: &'a str,
}

pub(crate) fn quantity(n: u64) -> Value {
    Value::String(format!("0x{n:x}"))
}

pub(crate) fn param(params: &Value, i: usize) -> Option<&Value> {
    params.as_array().and_then(|a| a.get(i))
}

pub(crate) fn address_param(params: &Value) -> Result<Address, RpcError> {
    param(params, 0)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or(INVALID_ADDRESS_PARAMS)
}

/// Besu's `BlockParameter`: a tag or a number (`Long.decode`: `0x` hex or decimal).
pub(crate) enum BlockParam {
    Latest,
    Pending,
    Earliest,
    Finalized,
    Number(u64),
}

pub(crate) fn block_param(params: &Value) -> Result<BlockParam, RpcError> {
    let s = match param(params, 0) {
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        Some(Value::Number(n)) => {
            return n
                .as_u64()
                .map(BlockParam::Number)
                .ok_or(INVALID_BLOCK_PARAMS);
        }
        _ => return Err(INVALID_BLOCK_PARAMS),
    };
    Ok(match s.as_str() {
        "latest" => BlockParam::Latest,
        "pending" => BlockParam::Pending,
        "earliest" => BlockParam::Earliest,
        "finalized" | "safe" => BlockParam::Finalized,
        other => {
            let n = match other.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => other.parse(),
            };
            BlockParam::Number(n.map_err(|_| INVALID_BLOCK_PARAMS)?)
        }
    })
}

pub(crate) fn addresses(list: &[Address]) -> Value {
    Value::Array(list.iter().map(|a| Value::String(a.to_string())).collect())
}

/// `*_getValidatorsByBlockNumber`. QBFT (`QbftGetValidatorsByBlockNumber`): a block's
/// header validators sorted, `pending` = `getValidatorsAfterBlock(head)`. IBFT
/// (`IbftGetValidatorsByBlockNumber`): header order, and `pending` falls back to
/// `latest` (`AbstractBlockParameterMethod.pendingResult`).
fn validators_by_block(ctx: &NodeCtx, params: &Value) -> Result<Value, RpcError> {
    let consensus = ctx.chain.params.consensus;
    let header = |n: u64| -> Value {
        if n > ctx.local_height {
            return Value::Null;
        }
        match ctx.chain.block(n) {
            None => Value::Null,
            Some(b) => {
                let mut v = b.validators.clone();
                if consensus == Consensus::Qbft {
                    v.sort();
                }
                addresses(&v)
            }
        }
    };
    Ok(match block_param(params)? {
        BlockParam::Latest => header(ctx.local_height),
        BlockParam::Earliest => header(0),
        BlockParam::Number(n) => header(n),
        BlockParam::Finalized => return Err(UNKNOWN_BLOCK),
        BlockParam::Pending => match consensus {
            Consensus::Qbft => ctx
                .chain
                .validators_after(ctx.local_height)
                .map(|v| addresses(&v))
                .unwrap_or(Value::Null),
            Consensus::Ibft2 => header(ctx.local_height),
        },
    })
}

/// Calls one method (after the enabled-check).
pub fn call(ctx: &mut NodeCtx, method: &str, params: &Value) -> Result<Value, RpcError> {
    let Some((_, group)) = METHODS.iter().find(|(m, _)| *m == method) else {
        return Err(METHOD_NOT_FOUND);
    };
    let protocol_ok = match *group {
        "QBFT" => ctx.chain.params.consensus == Consensus::Qbft,
        "IBFT" => ctx.chain.params.consensus == Consensus::Ibft2,
        _ => true,
    };
    if !ctx.apis.contains(*group) || !protocol_ok {
        return Err(METHOD_NOT_ENABLED);
    }
    let chain_id = ctx.chain.params.chain_id;
    let enode = format!("enode://{}@{}:{}", ctx.node_id, ctx.ip, ctx.p2p_port);
    let verb = method.split_once('_').map(|(_, v)| v).unwrap_or(method);
    Ok(match verb {
        "blockNumber" => quantity(ctx.local_height),
        "syncing" => match ctx.sync {
            None => Value::Bool(false),
            Some(s) => json!({
                "startingBlock": quantity(s.starting),
                "currentBlock": quantity(s.current),
                "highestBlock": quantity(s.highest),
            }),
        },
        "chainId" => quantity(chain_id),
        "peerCount" => quantity(ctx.peers as u64),
        "version" => Value::String(chain_id.to_string()),
        "enode" => Value::String(enode),
        "listening" => Value::Bool(true),
        "clientVersion" => Value::String(ctx.client_version.to_string()),
        "nodeInfo" => json!({
            "enode": enode,
            "id": ctx.node_id,
            "ip": ctx.ip,
            "listenAddr": format!("{}:{}", ctx.ip, ctx.p2p_port),
            "name": ctx.client_version,
            "ports": {"discovery": ctx.p2p_port, "listener": ctx.p2p_port},
            "protocols": {"eth": {
                "chainId": chain_id,
                "network": chain_id,
                "difficulty": ctx.local_height + 1,
                "head": quantity(ctx.local_height),
            }},
        }),
        "proposeValidatorVote" => {
            let subject = address_param(params)?;
            let add = param(params, 1)
                .and_then(Value::as_bool)
                .ok_or(INVALID_VOTE_TYPE_PARAMS)?;
            ctx.proposer.propose(subject, add);
            Value::Bool(true)
        }
        "discardValidatorVote" => {
            let subject = address_param(params)?;
            ctx.proposer.discard(&subject);
            Value::Bool(true)
        }
        "getPendingVotes" => Value::Object(
            ctx.proposer
                .proposals()
                .into_iter()
                .map(|(a, add)| (a.to_string(), Value::Bool(add)))
                .collect::<Map<String, Value>>(),
        ),
        "getValidatorsByBlockNumber" => validators_by_block(ctx, params)?,
        _ => return Err(METHOD_NOT_FOUND),
    })
}

fn response(id: Value, result: Result<Value, RpcError>) -> Value {
    match result {
        Ok(r) => json!({"jsonrpc": "2.0", "id": id, "result": r}),
        Err(e) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": e.code, "message": e.message}})
        }
    }
}

fn one(req: &Value, f: &mut impl FnMut(&str, &Value) -> Result<Value, RpcError>) -> Option<Value> {
    let Some(obj) = req.as_object() else {
        return Some(response(Value::Null, Err(INVALID_REQUEST)));
    };
    let id = obj.get("id").cloned();
    let Some(method) = obj.get("method").and_then(Value::as_str) else {
        return Some(response(id.unwrap_or(Value::Null), Err(INVALID_REQUEST)));
    };
    // A notification (no id) gets no response (`JsonRpcNoResponse`).
    let id = id?;
    let params = obj
        .get("params")
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    Some(response(id, f(method, &params)))
}

/// A request body (single or batch) → the response body, `None` for notifications.
pub fn handle_body(
    body: &[u8],
    mut f: impl FnMut(&str, &Value) -> Result<Value, RpcError>,
) -> Option<Value> {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => return Some(response(Value::Null, Err(PARSE_ERROR))),
    };
    match &req {
        Value::Array(items) if items.is_empty() => {
            Some(response(Value::Null, Err(INVALID_REQUEST)))
        }
        Value::Array(items) => {
            let out: Vec<Value> = items.iter().filter_map(|r| one(r, &mut f)).collect();
            (!out.is_empty()).then_some(Value::Array(out))
        }
        _ => one(&req, &mut f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::besu::{Vote, VoteKind};
    use crate::chain::{ChainParams, VoteTally};

    fn addr(n: u8) -> Address {
        let mut a = [0u8; 20];
        a[0] = 0xab;
        a[19] = n;
        Address(a)
    }

    fn chain(consensus: Consensus) -> Chain {
        // Genesis order deliberately unsorted.
        let mut c = Chain::new(
            ChainParams {
                consensus,
                chain_id: 1337,
                block_period_seconds: 1,
                epoch_length: 30000,
                genesis_validators: vec![addr(3), addr(1), addr(2)],
                genesis_timestamp: 0,
            },
            0,
        );
        // Block 1 carries the vote that adds 4 (threshold 2 of 3 reached earlier).
        c.tally.add_vote(
            addr(2),
            Vote {
                recipient: addr(4),
                kind: VoteKind::Add,
            },
        );
        let up: BTreeSet<Address> = [addr(1), addr(2), addr(3)].into();
        c.step(1000, &up, |_, _| {
            Some(Vote {
                recipient: addr(4),
                kind: VoteKind::Add,
            })
        });
        c
    }

    fn ctx<'a>(
        chain: &'a Chain,
        apis: &'a BTreeSet<String>,
        proposer: &'a mut VoteProposer,
    ) -> NodeCtx<'a> {
        NodeCtx {
            chain,
            apis,
            proposer,
            local_height: chain.head(),
            sync: None,
            peers: 3,
            node_id: "ab".repeat(64),
            ip: "127.64.0.7".into(),
            p2p_port: 30303,
            client_version: "besu-sim/v26.3.0",
        }
    }

    fn apis(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn quantities_are_hex_like_besu() {
        let c = chain(Consensus::Qbft);
        let a = apis(&["ETH", "NET", "WEB3", "ADMIN"]);
        let mut p = VoteProposer::default();
        let mut x = ctx(&c, &a, &mut p);
        assert_eq!(
            call(&mut x, "eth_blockNumber", &json!([])),
            Ok(json!("0x1"))
        );
        assert_eq!(call(&mut x, "eth_chainId", &json!([])), Ok(json!("0x539")));
        assert_eq!(call(&mut x, "net_version", &json!([])), Ok(json!("1337")));
        assert_eq!(call(&mut x, "net_peerCount", &json!([])), Ok(json!("0x3")));
        assert_eq!(call(&mut x, "eth_syncing", &json!([])), Ok(json!(false)));
        let enode = call(&mut x, "net_enode", &json!([])).unwrap();
        assert_eq!(
            enode,
            json!(format!("enode://{}@127.64.0.7:30303", "ab".repeat(64)))
        );
        x.sync = Some(SyncStatus {
            starting: 0,
            current: 1,
            highest: 26,
        });
        assert_eq!(
            call(&mut x, "eth_syncing", &json!([])),
            Ok(json!({"startingBlock": "0x0", "currentBlock": "0x1", "highestBlock": "0x1a"}))
        );
    }

    /// `JsonRpcExecutor.validateMethodAvailability`: a known method of a group that is
    /// not enabled → -32604; an unknown method → -32601.
    #[test]
    fn disabled_groups_and_unknown_methods() {
        let c = chain(Consensus::Qbft);
        let a = apis(&["ETH", "NET", "WEB3"]);
        let mut p = VoteProposer::default();
        let mut x = ctx(&c, &a, &mut p);
        assert_eq!(
            call(&mut x, "qbft_getPendingVotes", &json!([])),
            Err(METHOD_NOT_ENABLED)
        );
        assert_eq!(
            call(&mut x, "admin_nodeInfo", &json!([])),
            Err(METHOD_NOT_ENABLED)
        );
        assert_eq!(
            call(&mut x, "eth_frobnicate", &json!([])),
            Err(METHOD_NOT_FOUND)
        );
        // IBFT methods on a QBFT chain are not registered even when enabled.
        let a = apis(&["ETH", "QBFT", "IBFT"]);
        let mut x = ctx(&c, &a, &mut p);
        assert_eq!(
            call(&mut x, "ibft_getPendingVotes", &json!([])),
            Err(METHOD_NOT_ENABLED)
        );
        assert_eq!(
            call(&mut x, "qbft_getPendingVotes", &json!([])),
            Ok(json!({}))
        );
    }

    #[test]
    fn voting_methods() {
        let c = chain(Consensus::Qbft);
        let a = apis(&["QBFT"]);
        let mut p = VoteProposer::default();
        let mut x = ctx(&c, &a, &mut p);
        let five = addr(5).to_string();
        assert_eq!(
            call(&mut x, "qbft_proposeValidatorVote", &json!([five, true])),
            Ok(json!(true))
        );
        assert_eq!(
            call(
                &mut x,
                "qbft_proposeValidatorVote",
                &json!([addr(1).to_string(), false])
            ),
            Ok(json!(true))
        );
        assert_eq!(
            call(&mut x, "qbft_getPendingVotes", &json!([])),
            Ok(json!({ addr(1).to_string(): false, five.clone(): true }))
        );
        assert_eq!(
            call(&mut x, "qbft_discardValidatorVote", &json!([five])),
            Ok(json!(true))
        );
        assert_eq!(
            call(&mut x, "qbft_getPendingVotes", &json!([]))
                .unwrap()
                .as_object()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            call(&mut x, "qbft_proposeValidatorVote", &json!(["0x12", true])),
            Err(INVALID_ADDRESS_PARAMS)
        );
        assert_eq!(
            call(
                &mut x,
                "qbft_proposeValidatorVote",
                &json!([addr(5).to_string(), "yes"])
            ),
            Err(INVALID_VOTE_TYPE_PARAMS)
        );
    }

    /// `QbftGetValidatorsByBlockNumber`: header validators sorted; `pending` is the set
    /// after the head (`getValidatorsAfterBlock`).
    #[test]
    fn qbft_validators_by_block() {
        let c = chain(Consensus::Qbft);
        let a = apis(&["QBFT"]);
        let mut p = VoteProposer::default();
        let mut x = ctx(&c, &a, &mut p);
        let m = "qbft_getValidatorsByBlockNumber";
        let three = json!([
            addr(1).to_string(),
            addr(2).to_string(),
            addr(3).to_string()
        ]);
        let four = json!([
            addr(1).to_string(),
            addr(2).to_string(),
            addr(3).to_string(),
            addr(4).to_string()
        ]);
        assert_eq!(call(&mut x, m, &json!(["latest"])), Ok(three.clone()));
        assert_eq!(call(&mut x, m, &json!(["0x0"])), Ok(three.clone()));
        assert_eq!(call(&mut x, m, &json!(["pending"])), Ok(four));
        assert_eq!(call(&mut x, m, &json!(["0x2"])), Ok(Value::Null));
        assert_eq!(call(&mut x, m, &json!([])), Err(INVALID_BLOCK_PARAMS));
        assert_eq!(call(&mut x, m, &json!(["finalized"])), Err(UNKNOWN_BLOCK));
        // A syncing node answers from its own head.
        x.local_height = 0;
        assert_eq!(call(&mut x, m, &json!(["0x1"])), Ok(Value::Null));
        assert_eq!(call(&mut x, m, &json!(["pending"])), Ok(three));
    }

    /// `IbftGetValidatorsByBlockNumber`: header order (genesis unsorted) and `pending`
    /// answers like `latest`.
    #[test]
    fn ibft_validators_by_block() {
        let c = chain(Consensus::Ibft2);
        let a = apis(&["IBFT"]);
        let mut p = VoteProposer::default();
        let mut x = ctx(&c, &a, &mut p);
        let m = "ibft_getValidatorsByBlockNumber";
        let genesis = json!([
            addr(3).to_string(),
            addr(1).to_string(),
            addr(2).to_string()
        ]);
        let sorted = json!([
            addr(1).to_string(),
            addr(2).to_string(),
            addr(3).to_string()
        ]);
        assert_eq!(call(&mut x, m, &json!(["earliest"])), Ok(genesis));
        assert_eq!(call(&mut x, m, &json!(["latest"])), Ok(sorted.clone()));
        assert_eq!(call(&mut x, m, &json!(["pending"])), Ok(sorted));
        let _ = VoteTally::default();
    }

    #[test]
    fn envelopes_batches_and_errors() {
        let echo = |m: &str, _: &Value| -> Result<Value, RpcError> {
            if m == "ok" {
                Ok(json!(1))
            } else {
                Err(METHOD_NOT_FOUND)
            }
        };
        assert_eq!(
            handle_body(br#"{"jsonrpc":"2.0","id":7,"method":"ok"}"#, echo),
            Some(json!({"jsonrpc":"2.0","id":7,"result":1}))
        );
        assert_eq!(
            handle_body(
                br#"{"jsonrpc":"2.0","id":"a","method":"x","params":[]}"#,
                echo
            ),
            Some(
                json!({"jsonrpc":"2.0","id":"a","error":{"code":-32601,"message":"Method not found"}})
            )
        );
        assert_eq!(
            handle_body(b"{not json", echo),
            Some(
                json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}})
            )
        );
        assert_eq!(
            handle_body(br#"{"jsonrpc":"2.0","method":"ok"}"#, echo),
            None
        );
        let batch = handle_body(
            br#"[{"id":1,"method":"ok"},{"method":"ok"},{"id":2,"method":"x"}]"#,
            echo,
        )
        .unwrap();
        assert_eq!(batch.as_array().unwrap().len(), 2);
    }
}
