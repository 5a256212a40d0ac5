//! besu-sim: the node runtime for Besu pods on the local test cluster.
//!
//! Besu cannot run on the local cluster's fake (kwok) nodes, so this program stands in
//! for it. It watches pods labelled `app.kubernetes.io/name=besu` and, for each one that
//! is Running, serves on the pod's (loopback) IP:
//! - JSON-RPC (`POST /`), `GET /liveness`, `GET /readiness` on the `rpc-http` port;
//! - `GET /metrics` (Prometheus text, Besu's metric names) on the `metrics` port.
//!
//! It keeps one simulated chain per network with Besu's BFT rules (see `chain.rs`) and
//! an admin endpoint for tests on 127.0.0.1, whose address it writes to
//! `$BESU_CLUSTER_DIR/besu-sim.addr`: chain views, a witness record of every node's
//! down intervals (`witness.rs`) and fault knobs. Rules and their Besu sources:
//! `README.md`; Besu's formats and arithmetic are implemented in `besu/`, sharing no
//! code with the operator under test.

mod admin;
mod pods;
mod witness;
mod world;

// Besu's formats and rules, the chain rules and the node surface live in the library
// (shared with the `besu-standin` binary); `crate::besu` etc. keep naming them here.
use besu_sim::{besu, chain, genesis, node, rpc};

use std::fs::File;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser;
use tracing::{info, warn};

use crate::world::World;

/// The file in the cluster state dir that holds the admin endpoint's address.
pub const ADDR_FILE: &str = "besu-sim.addr";
/// The lock that keeps one simulator per cluster.
pub const LOCK_FILE: &str = "besu-sim.lock";

#[derive(Parser, Debug)]
#[command(version, about = "Besu simulator for the local test cluster")]
struct Args {
    /// The local cluster's state dir: the admin address goes to <dir>/besu-sim.addr.
    #[arg(long, env = "BESU_CLUSTER_DIR")]
    state_dir: Option<PathBuf>,
    /// Where the admin endpoint listens (loopback only; port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    admin_addr: String,
    /// How long a node that starts behind takes to reach the head.
    #[arg(long, default_value_t = 2.0)]
    sync_seconds: f64,
    /// How often chains are advanced (block production is checked), in ms.
    #[arg(long, default_value_t = 100)]
    tick_ms: u64,
}

/// State shared by the pod watcher, the node servers, the ticker and the admin API.
pub struct Shared {
    world: Mutex<World>,
}

impl Shared {
    pub fn world(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock is a bug; keep serving what is there.
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn write_atomically(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let admin_addr = pods::loopback_addr(&args.admin_addr)?;

    // One simulator per cluster: two would fight over the pod IPs.
    let _lock = match &args.state_dir {
        Some(dir) => {
            let path = dir.join(LOCK_FILE);
            let f = File::create(&path).with_context(|| format!("create {}", path.display()))?;
            f.try_lock()
                .map_err(|_| anyhow::anyhow!("another besu-sim holds {}", path.display()))?;
            Some(f)
        }
        None => None,
    };

    let mut config = kube::Config::infer()
        .await
        .context("kubeconfig (KUBECONFIG)")?;
    config.headers.push((
        "user-agent".parse()?,
        concat!("besu-sim/", env!("CARGO_PKG_VERSION")).parse()?,
    ));
    let client = kube::Client::try_from(config)?;

    let shared = Arc::new(Shared {
        world: Mutex::new(World::new((args.sync_seconds * 1000.0) as u64)),
    });

    let listener = tokio::net::TcpListener::bind(admin_addr)
        .await
        .with_context(|| format!("bind admin endpoint {admin_addr}"))?;
    let local = listener.local_addr()?;
    let addr_file = args.state_dir.as_ref().map(|d| d.join(ADDR_FILE));
    if let Some(path) = &addr_file {
        write_atomically(path, &format!("{local}\n"))?;
    }
    info!(admin = %local, addr_file = ?addr_file, sync_s = args.sync_seconds, "besu-sim started");

    tokio::spawn(admin::serve(listener, shared.clone()));
    tokio::spawn(pods::run(shared.clone(), client));
    let ticker = {
        let shared = shared.clone();
        let period = Duration::from_millis(args.tick_ms.max(10));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                shared.world().tick(now_ms());
            }
        })
    };

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("interrupted"),
        _ = term.recv() => info!("terminated"),
    }
    ticker.abort();
    if let Some(path) = &addr_file
        && let Err(e) = std::fs::remove_file(path)
    {
        warn!(error = %e, "remove {}", path.display());
    }
    info!("besu-sim stopped");
    Ok(())
}
