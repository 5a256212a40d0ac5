use std::net::SocketAddr;
use std::process::ExitCode;

use besu_operator::operator::{RunOptions, run as run_operator};

/// Run the operator against the cluster in KUBECONFIG or the in-cluster config.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Address of the HTTP server for /healthz and /readyz.
    #[arg(long, env = "BESU_OPERATOR_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Namespaces to watch, comma-separated. Empty: all namespaces.
    #[arg(long, env = "BESU_OPERATOR_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Seconds between reconciles of a settled object (a drift check that writes
    /// nothing unless something changed).
    #[arg(long, env = "BESU_OPERATOR_RESYNC_SECONDS", default_value_t = 300)]
    pub resync_seconds: u64,
    /// Log format: text or json.
    #[arg(long, env = "BESU_OPERATOR_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

pub fn run(args: RunArgs) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("besu-operator run: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        let client = besu_operator::operator::client().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot build a Kubernetes client ({e}); set KUBECONFIG or run in a cluster"
            )
        })?;
        run_operator(
            client,
            RunOptions {
                http_addr: args.http_addr,
                namespaces: args
                    .namespaces
                    .into_iter()
                    .filter(|n| !n.is_empty())
                    .collect(),
                resync: std::time::Duration::from_secs(args.resync_seconds.max(1)),
            },
        )
        .await?;
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("besu-operator run: {e:#}");
            ExitCode::FAILURE
        }
    }
}
