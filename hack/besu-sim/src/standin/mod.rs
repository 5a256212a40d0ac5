//! `besu-standin`: one process per Besu pod, started exactly as the operator starts Besu
//! (`/opt/besu/bin/besu <args>`), standing in for Hyperledger Besu in tests.
//!
//! It reads Besu's command line, environment and `--config-file` ([`options`],
//! [`config`]), the genesis and key files, keeps its chain under the data path
//! ([`chain`]), talks to its peers over TCP with a small protocol of its own ([`p2p`],
//! [`node`]), agrees on blocks with the other validators ([`consensus`]) and serves
//! JSON-RPC, health and metrics like Besu ([`http`]). Rules, sources and
//! simplifications: `hack/besu-sim/README.md`, "besu-standin".
//!
//! Test knobs, read from the environment at start:
//! - `BESU_STANDIN_WEDGE_AFTER_SECONDS=N`: after N seconds the process stops answering
//!   anything (HTTP requests hang, P2P messages are dropped, no consensus), as a hung
//!   JVM would; SIGTERM still stops it.
//! - `BESU_STANDIN_ALLOCATE_MIB=N`: allocate and touch N MiB at start (OOM-kill tests).
//! - JSON-RPC `standin_wedge []` and `standin_allocate [MiB]`: the same two faults, in a
//!   running pod (tests/real_node_chain.rs), whatever `--rpc-http-api` enables.
//! - `BESU_STANDIN_LOOPBACK_ONLY=1`: refuse to bind or dial outside 127.0.0.0/8 (tests).
//! - `BESU_STANDIN_HOSTS_FILE=<path>`: resolve host names in enode URLs from this
//!   hosts-format file only (read again on every lookup), never through DNS (tests).

pub mod block;
pub mod chain;
pub mod config;
pub mod consensus;
pub mod enode;
pub mod http;
pub mod node;
pub mod option_table;
pub mod options;
pub mod p2p;

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use self::chain::{Chain, GenesisInfo};
use self::config::Config;
use self::enode::{DnsConfig, Enode, resolver};
use self::node::{Node, NodeSettings, Shared, now_ms};
use self::options::{Outcome, ParamError};
use crate::besu::NodeKey;
use crate::besu::key::KeyError;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The test knobs (see the module docs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Knobs {
    pub wedge_after: Option<Duration>,
    pub allocate_mib: Option<u64>,
    pub loopback_only: bool,
    /// `BESU_STANDIN_HOSTS_FILE`: resolve host names from this file only, never DNS.
    pub hosts_file: Option<std::path::PathBuf>,
}

impl Knobs {
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<Knobs, String> {
        let wedge_after = match env.get("BESU_STANDIN_WEDGE_AFTER_SECONDS") {
            None => None,
            Some(v) => {
                let s: f64 = v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| {
                        format!("BESU_STANDIN_WEDGE_AFTER_SECONDS={v}: not a number of seconds")
                    })?;
                Some(Duration::from_secs_f64(s))
            }
        };
        let allocate_mib = match env.get("BESU_STANDIN_ALLOCATE_MIB") {
            None => None,
            Some(v) => Some(
                v.trim()
                    .parse()
                    .map_err(|_| format!("BESU_STANDIN_ALLOCATE_MIB={v}: not a number of MiB"))?,
            ),
        };
        let loopback_only = env
            .get("BESU_STANDIN_LOOPBACK_ONLY")
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        Ok(Knobs {
            wedge_after,
            allocate_mib,
            loopback_only,
            hosts_file: env
                .get("BESU_STANDIN_HOSTS_FILE")
                .filter(|v| !v.is_empty())
                .map(std::path::PathBuf::from),
        })
    }
}

/// `web3_clientVersion`: says it is a stand-in (Besu: `besu[/identity]/v<version>/<os>/<jvm>`).
pub fn client_version(identity: Option<&str>) -> String {
    match identity {
        Some(id) => format!("besu-standin/{id}/v{VERSION}/linux-x86_64/stand-in"),
        None => format!("besu-standin/v{VERSION}/linux-x86_64/stand-in"),
    }
}

fn init_logging(level: &str) {
    let ours = match level {
        "OFF" => "off",
        "FATAL" | "ERROR" => "error",
        "WARN" => "warn",
        "INFO" => "info",
        "DEBUG" => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::new(format!("warn,besu_sim={ours}"));
    let filter = if level == "OFF" {
        tracing_subscriber::EnvFilter::new("off")
    } else {
        filter
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .with_target(false)
        .with_env_filter(filter)
        .try_init();
}

/// Allocates and touches `mib` MiB, kept for the process's life.
pub(crate) fn allocate(mib: u64) {
    let bytes = usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    let mut v = vec![0u8; bytes];
    for i in (0..v.len()).step_by(4096) {
        v[i] = 1;
    }
    std::hint::black_box(&v);
    Box::leak(v.into_boxed_slice());
}

/// `KeyPairUtil.loadKeyPair`: read the key file, or generate a key and store it as
/// `<key file's directory>/key` (Besu's `storeKeyFile(key, keyFile.getParentFile())`).
fn load_or_generate_key(path: &Path) -> Result<NodeKey, String> {
    if path.exists() {
        info!("Attempting to load public key from {}", path.display());
        let text = std::fs::read_to_string(path)
            .map_err(|_| "Supplied file does not contain valid keyPair pair.".to_string())?;
        let key = NodeKey::parse_key_file(&text).map_err(|e| match e {
            KeyError::Lines(_) => "Supplied file does not contain valid keyPair pair.".to_string(),
            other => format!(
                "Supplied file does not contain valid keyPair pair. ({} in {})",
                other,
                path.display()
            ),
        })?;
        info!(
            "Loaded public key 0x{} from {}",
            key.public_key().to_hex(),
            path.display()
        );
        return Ok(key);
    }
    let key = NodeKey::generate();
    let dir = path.parent().unwrap_or(Path::new("."));
    let target = dir.join("key");
    let tmp = dir.join(format!(".key.{}.tmp", std::process::id()));
    std::fs::write(&tmp, key.to_key_file_text())
        .and_then(|_| std::fs::rename(&tmp, &target))
        .map_err(|_| {
            let _ = std::fs::remove_file(&tmp);
            "Cannot store generated private key.".to_string()
        })?;
    info!(
        "Generated new secp256k1 public key 0x{} and stored it to {}",
        key.public_key().to_hex(),
        path.display()
    );
    Ok(key)
}

fn resolve_bind(
    host: &str,
    port: u16,
    loopback_only: bool,
    what: &str,
) -> Result<SocketAddr, ParamError> {
    let addr = (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ParamError::new(format!("Invalid {what} host: {host}")))?;
    if loopback_only && !addr.ip().is_loopback() {
        return Err(ParamError::new(format!(
            "BESU_STANDIN_LOOPBACK_ONLY: refusing to listen for {what} on {addr}"
        )));
    }
    Ok(addr)
}

async fn bind(addr: SocketAddr, what: &str) -> Result<tokio::net::TcpListener, ParamError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ParamError::new(format!("Failed to bind {what} to {addr}: {e}")))
}

/// Everything `BesuCommand.run` does before the node runs; an error is a startup
/// failure ("Failed to start Besu").
async fn start(config: Config, knobs: &Knobs) -> Result<Arc<Shared>, ParamError> {
    info!(
        "Starting Besu: besu-standin v{VERSION}, a stand-in for Hyperledger Besu in tests (not a client)"
    );
    for w in &config.warnings {
        warn!("{w}");
    }
    config.validate()?;
    if !config.ignored.is_empty() {
        info!(
            "Options accepted but not acted on by the stand-in: {}",
            config.ignored.join(", ")
        );
    }
    let genesis_path = config.genesis_file.clone().expect("validate() checked it");
    let text = std::fs::read_to_string(&genesis_path).map_err(|e| {
        ParamError::new(format!(
            "Unable to load genesis file. Unable to load genesis file: {} ({e})",
            genesis_path.display()
        ))
    })?;
    let genesis = GenesisInfo::parse(&text).map_err(|e| {
        ParamError::new(format!(
            "Unable to load genesis file {}: {e:#}",
            genesis_path.display()
        ))
    })?;
    let network_id = config.network_id.unwrap_or(genesis.chain_id);
    std::fs::create_dir_all(&config.data_path).map_err(|e| {
        ParamError::new(format!(
            "Unable to create data path {}: {e}",
            config.data_path.display()
        ))
    })?;
    let key = load_or_generate_key(&config.key_file()).map_err(ParamError::new)?;
    let request_timeout = genesis.request_timeout_seconds;
    let chain =
        Chain::open(genesis, &config.data_path).map_err(|e| ParamError::new(format!("{e:#}")))?;

    let dns = DnsConfig {
        enabled: config.dns_enabled,
        update_enabled: config.dns_update_enabled,
    };
    let entries = enode::expand_bootnode_entries(&config.bootnodes).map_err(ParamError::new)?;
    if !entries.is_empty() && !config.discovery_enabled {
        warn!("Discovery disabled: bootnodes will be ignored.");
    }
    let mut bootnodes = Vec::new();
    for e in &entries {
        let enode = Enode::parse(e, dns, resolver()).map_err(ParamError::new)?;
        if enode.discport == 0 {
            return Err(ParamError::new(format!(
                "Bootnodes must have discovery enabled. Invalid bootnodes: {e}."
            )));
        }
        bootnodes.push(enode);
    }
    let (static_path, explicit) = match &config.static_nodes_file {
        Some(p) => (p.clone(), true),
        None => (config.data_path.join("static-nodes.json"), false),
    };
    let statics = enode::parse_static_nodes(&static_path, explicit, dns, resolver())
        .map_err(ParamError::new)?;
    info!("Connecting to {} static nodes.", statics.len());

    let settings = NodeSettings {
        discovery_enabled: config.discovery_enabled,
        max_peers: config.max_peers,
        initiate_connections_frequency: config.initiate_connections_frequency,
        check_maintained_connections_frequency: config.check_maintained_connections_frequency,
        network_id,
        client_version: client_version(config.identity.as_deref()),
        p2p_host: config.p2p_host,
        p2p_port: config.p2p_port,
        p2p_enabled: config.p2p_enabled,
        rpc_http_apis: config.rpc_http_apis.clone(),
        dns,
    };
    let p2p = if config.p2p_enabled {
        let addr = resolve_bind(
            &config.p2p_interface,
            config.p2p_port,
            knobs.loopback_only,
            "P2P",
        )?;
        Some(bind(addr, "the P2P listener").await?)
    } else {
        None
    };
    let rpc = if config.rpc_http_enabled {
        let addr = resolve_bind(
            &config.rpc_http_host,
            config.rpc_http_port,
            knobs.loopback_only,
            "JSON-RPC",
        )?;
        Some(bind(addr, "the HTTP JSON-RPC service").await?)
    } else {
        None
    };
    let metrics = if config.metrics_enabled {
        let addr = resolve_bind(
            &config.metrics_host,
            config.metrics_port,
            knobs.loopback_only,
            "metrics",
        )?;
        Some(bind(addr, "the metrics service").await?)
    } else {
        None
    };

    let head = chain.head_number();
    let head_hash = chain.head_hash();
    let node = Node::new(
        settings,
        key.clone(),
        chain,
        bootnodes,
        statics,
        request_timeout,
        now_ms(),
    );
    let enode = node.enode();
    let address = node.me;
    let validator = node.is_validator();
    let shared = Arc::new(Shared::new(node, key, knobs.loopback_only));
    info!("Enode URL {enode}");
    info!("Node address {address}");
    info!(
        "Chain head #{head} ({}); {} validator",
        head_hash.short(),
        if validator { "a" } else { "not a" }
    );

    if let Some(listener) = p2p {
        tokio::spawn(p2p::accept_loop(shared.clone(), listener));
    }
    let state = http::HttpState {
        shared: shared.clone(),
        allowlist: Arc::new(config.host_allowlist.clone()),
    };
    if let Some(listener) = rpc {
        info!(
            "JSON-RPC service started and listening on {}",
            listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default()
        );
        let app = http::rpc_router(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                error!("JSON-RPC service failed: {e}");
            }
        });
    }
    if let Some(listener) = metrics {
        info!(
            "Metrics service started and listening on {}",
            listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default()
        );
        let app = http::metrics_router(state);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                error!("Metrics service failed: {e}");
            }
        });
    }
    tokio::spawn(node::run_ticker(shared.clone()));
    if let Some(after) = knobs.wedge_after {
        let s = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            warn!("BESU_STANDIN_WEDGE_AFTER_SECONDS: wedged; answering nothing from now on");
            s.wedge();
        });
    }
    Ok(shared)
}

/// Runs the stand-in with this process's arguments and environment; the exit code.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let resolved = match options::parse(&args, &env, &cwd) {
        Err(e) => {
            eprint!("{}", e.stderr_text());
            return 2;
        }
        Ok(Outcome::Help) => {
            print!("{}", options::help_text());
            return 0;
        }
        Ok(Outcome::Version) => {
            println!("{}", client_version(None));
            return 0;
        }
        Ok(Outcome::Run(r)) => r,
    };
    let config = match config::Config::from_resolved(&resolved, &cwd) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{}", e.stderr_text());
            return 2;
        }
    };
    init_logging(&config.logging);
    let knobs = match Knobs::from_env(&env) {
        Ok(k) => k,
        Err(e) => {
            error!("Failed to start Besu: {e}");
            eprint!("{}", ParamError::new(e).stderr_text());
            return 2;
        }
    };
    enode::init_resolver(knobs.hosts_file.clone());
    if let Some(mib) = knobs.allocate_mib {
        allocate(mib);
        info!("BESU_STANDIN_ALLOCATE_MIB: allocated and touched {mib} MiB");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(async move {
        let shared = match start(config, &knobs).await {
            Ok(s) => s,
            Err(e) => {
                error!("Failed to start Besu: {}", e.message);
                eprint!("{}", e.stderr_text());
                return 2;
            }
        };
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    error!("cannot watch SIGTERM: {e}");
                    return 1;
                }
            };
        tokio::select! {
            _ = term.recv() => info!("Received SIGTERM, shutting down"),
            _ = tokio::signal::ctrl_c() => info!("Received SIGINT, shutting down"),
        }
        let head = shared.node().chain.head_number();
        info!("Besu stopped at block #{head}");
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knobs_from_env() {
        let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(Knobs::from_env(&env(&[])), Ok(Knobs::default()));
        let k = Knobs::from_env(&env(&[
            ("BESU_STANDIN_WEDGE_AFTER_SECONDS", "2.5"),
            ("BESU_STANDIN_ALLOCATE_MIB", "64"),
            ("BESU_STANDIN_LOOPBACK_ONLY", "1"),
        ]))
        .unwrap();
        assert_eq!(k.wedge_after, Some(Duration::from_millis(2500)));
        assert_eq!(k.allocate_mib, Some(64));
        assert!(k.loopback_only);
        assert!(Knobs::from_env(&env(&[("BESU_STANDIN_ALLOCATE_MIB", "x")])).is_err());
        assert!(Knobs::from_env(&env(&[("BESU_STANDIN_WEDGE_AFTER_SECONDS", "-1")])).is_err());
    }

    #[test]
    fn key_files_are_loaded_or_generated_like_besu() {
        let dir = tempfile::tempdir().unwrap();
        // Missing: generated and stored as <dir>/key, "0x" + 64 hex digits, no newline.
        let named = dir.path().join("nodekey");
        let k = load_or_generate_key(&named).unwrap();
        let stored = std::fs::read_to_string(dir.path().join("key")).unwrap();
        assert_eq!(stored, k.to_key_file_text());
        assert!(!named.exists());
        let again = load_or_generate_key(&dir.path().join("key")).unwrap();
        assert_eq!(again.address(), k.address());
        // Malformed.
        std::fs::write(&named, "0x01\n\n").unwrap();
        assert_eq!(
            load_or_generate_key(&named).unwrap_err(),
            "Supplied file does not contain valid keyPair pair."
        );
        std::fs::write(&named, "zz").unwrap();
        assert!(
            load_or_generate_key(&named)
                .unwrap_err()
                .starts_with("Supplied file does not contain valid keyPair pair.")
        );
        // Not storable.
        let ro = dir.path().join("no-such-dir").join("key");
        assert_eq!(
            load_or_generate_key(&ro).unwrap_err(),
            "Cannot store generated private key."
        );
    }

    #[test]
    fn client_version_says_stand_in() {
        assert!(client_version(None).starts_with("besu-standin/v"));
        assert!(client_version(Some("v0")).starts_with("besu-standin/v0/v"));
    }
}
