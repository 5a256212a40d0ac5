//! The stand-in's own peer-to-peer protocol over TCP (not devp2p): length-prefixed JSON
//! frames (a 4-byte big-endian length, then the JSON of a [`Wire`] message).
//!
//! Handshake: both sides send [`Wire::Hello`] with their node id (the 64-byte public
//! key), chain (network id, genesis hash), advertised endpoint and a random nonce; each
//! answers the other's Hello with [`Wire::Auth`], its signature of the other's nonce. A
//! side whose signature does not recover to the id it claims is dropped, and so is a peer
//! dialled from an enode URL whose proven id is not the URL's (RLPx, whose handshake is
//! encrypted to the dialled id, fails the same way). Peers of another chain are dropped
//! (Besu's eth status check: network id and genesis hash).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::block::{Block, H256, keccak};
use super::node::Shared;
use crate::besu::{NodeKey, PublicKey, recover_prehash};

/// This protocol's version.
pub const PROTOCOL: u32 = 1;
/// The largest frame accepted.
const MAX_FRAME: usize = 16 << 20;
/// How long a handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A message between peers.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Wire {
    Hello {
        protocol: u32,
        network_id: u64,
        genesis: H256,
        /// 128 hex digits.
        id: String,
        listen_host: String,
        listen_port: u16,
        nonce: String,
        client: String,
        head: u64,
    },
    Auth {
        sig: String,
    },
    Disconnect {
        reason: String,
    },
    Status {
        head: u64,
        head_hash: H256,
    },
    /// Peer exchange (stands in for discv4's FINDNODE/NEIGHBORS).
    GetPeers,
    Peers {
        enodes: Vec<String>,
    },
    GetBlocks {
        from: u64,
        count: u32,
    },
    Blocks {
        blocks: Vec<Block>,
    },
    NewBlock {
        block: Block,
    },
    /// A signed consensus message: `data` is the JSON of a `consensus::Payload`, `sig`
    /// its author's signature of keccak256(data). Gossiped: relayed once to every other
    /// peer.
    Consensus {
        data: String,
        sig: String,
    },
}

/// The hash a node signs to prove its id to a peer that sent `nonce`.
fn auth_hash(nonce: &str, id_hex: &str) -> H256 {
    keccak(format!("besu-standin auth\n{nonce}\n{id_hex}").as_bytes())
}

pub async fn read_frame(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Wire> {
    let len = stream.read_u32().await? as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    serde_json::from_slice(&buf)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

pub async fn write_frame(
    stream: &mut (impl AsyncWrite + Unpin),
    msg: &Wire,
) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(msg)?;
    stream.write_u32(bytes.len() as u32).await?;
    stream.write_all(&bytes).await?;
    stream.flush().await
}

/// What the handshake established about a peer.
#[derive(Clone, Debug)]
pub struct PeerHello {
    pub id: PublicKey,
    pub listen_host: String,
    pub listen_port: u16,
    pub client: String,
    pub head: u64,
    pub remote: SocketAddr,
    pub inbound: bool,
}

/// Runs one connection: handshake, registration with the node, then messages until
/// either side closes. `expected` is the id a dialled enode URL names.
pub async fn run_connection(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    remote: SocketAddr,
    expected: Option<PublicKey>,
) {
    let inbound = expected.is_none();
    let hello = shared.hello();
    let key: NodeKey = shared.key.clone();
    let my_id = key.public_key().to_hex();
    let (network_id, genesis, my_nonce) = match &hello {
        Wire::Hello {
            network_id,
            genesis,
            nonce,
            ..
        } => (*network_id, *genesis, nonce.clone()),
        _ => unreachable!("hello() builds a Hello"),
    };
    let handshake = async {
        write_frame(&mut stream, &hello).await?;
        let mut peer: Option<(PublicKey, Wire)> = None;
        let mut proven = false;
        while !(peer.is_some() && proven) {
            match read_frame(&mut stream).await? {
                msg @ Wire::Hello { .. } => {
                    let Wire::Hello {
                        protocol,
                        network_id: their_net,
                        genesis: their_genesis,
                        ref id,
                        ref nonce,
                        ..
                    } = msg
                    else {
                        unreachable!()
                    };
                    if protocol != PROTOCOL || their_net != network_id || their_genesis != genesis {
                        let _ = write_frame(
                            &mut stream,
                            &Wire::Disconnect {
                                reason: "different chain".into(),
                            },
                        )
                        .await;
                        return Err(std::io::Error::other(format!(
                            "peer is on another chain (network id {their_net}, genesis {})",
                            their_genesis.short()
                        )));
                    }
                    let mut raw = [0u8; 64];
                    hex::decode_to_slice(id, &mut raw)
                        .map_err(|_| std::io::Error::other("bad node id in hello"))?;
                    let sig = key.sign_prehash(&auth_hash(nonce, &my_id).0);
                    write_frame(
                        &mut stream,
                        &Wire::Auth {
                            sig: hex::encode(sig),
                        },
                    )
                    .await?;
                    peer = Some((PublicKey(raw), msg));
                }
                Wire::Auth { sig } => {
                    let Some((id, _)) = &peer else {
                        return Err(std::io::Error::other("auth before hello"));
                    };
                    let bytes = hex::decode(&sig).unwrap_or_default();
                    let h = auth_hash(&my_nonce, &id.to_hex());
                    if recover_prehash(&h.0, &bytes).as_ref() != Some(id) {
                        return Err(std::io::Error::other(
                            "the peer could not prove the node id it claims",
                        ));
                    }
                    proven = true;
                }
                Wire::Disconnect { reason } => {
                    return Err(std::io::Error::other(format!(
                        "peer disconnected: {reason}"
                    )));
                }
                _ => return Err(std::io::Error::other("unexpected message in handshake")),
            }
        }
        Ok::<_, std::io::Error>(peer.expect("loop ends with a hello"))
    };
    let (id, hello_msg) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            debug!(%remote, error = %e, "handshake failed");
            return;
        }
        Err(_) => {
            debug!(%remote, "handshake timed out");
            return;
        }
    };
    if let Some(exp) = &expected
        && *exp != id
    {
        warn!(
            %remote,
            expected = %short_id(exp),
            actual = %short_id(&id),
            "Disconnecting: the peer's node id is not the one in its enode URL"
        );
        let _ = write_frame(
            &mut stream,
            &Wire::Disconnect {
                reason: "unexpected identity".into(),
            },
        )
        .await;
        return;
    }
    let Wire::Hello {
        listen_host,
        listen_port,
        client,
        head,
        ..
    } = hello_msg
    else {
        unreachable!()
    };
    let info_ = PeerHello {
        id: id.clone(),
        listen_host,
        listen_port,
        client,
        head,
        remote,
        inbound,
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Wire>();
    let connected = shared.node().on_connected(info_, tx);
    let conn = match connected {
        Ok(conn) => conn,
        Err(reason) => {
            debug!(%remote, peer = %short_id(&id), %reason, "connection refused");
            let _ = write_frame(&mut stream, &Wire::Disconnect { reason }).await;
            return;
        }
    };
    let (mut reader, mut writer) = stream.into_split();
    let writer_task = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let last = matches!(msg, Wire::Disconnect { .. });
            if write_frame(&mut writer, &msg).await.is_err() || last {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    loop {
        match read_frame(&mut reader).await {
            Ok(Wire::Disconnect { reason }) => {
                debug!(peer = %short_id(&id), %reason, "peer disconnected");
                break;
            }
            Ok(msg) => {
                if shared.is_wedged() {
                    continue;
                }
                shared.on_message(&id, conn, msg);
            }
            Err(e) => {
                debug!(peer = %short_id(&id), error = %e, "connection closed");
                break;
            }
        }
    }
    shared.node().on_disconnected(&id, conn);
    writer_task.abort();
}

/// Dials `addr` expecting node `id`.
pub async fn dial(shared: Arc<Shared>, addr: SocketAddr, id: PublicKey) {
    if shared.loopback_only && !addr.ip().is_loopback() {
        warn!(%addr, "BESU_STANDIN_LOOPBACK_ONLY: not dialling a non-loopback address");
        shared.node().dial_finished(&id);
        return;
    }
    match tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            shared.node().dial_finished(&id);
            run_connection(shared, stream, addr, Some(id)).await;
        }
        Ok(Err(e)) => {
            debug!(%addr, error = %e, "dial failed");
            shared.node().dial_finished(&id);
        }
        Err(_) => {
            debug!(%addr, "dial timed out");
            shared.node().dial_finished(&id);
        }
    }
}

/// Accepts connections on the P2P listener.
pub async fn accept_loop(shared: Arc<Shared>, listener: tokio::net::TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(run_connection(shared.clone(), stream, remote, None));
            }
            Err(e) => {
                info!(error = %e, "P2P accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// `0x1234…cdef` of a node id, for logs.
pub fn short_id(id: &PublicKey) -> String {
    let h = id.to_hex();
    format!("0x{}…{}", &h[..8], &h[120..])
}
