use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use besu_operator::leader::{LeaderElectionConfig, default_identity};
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
    /// Seconds between a network's chain observer's JSON-RPC reads (height, peers,
    /// validators): for metrics, and to wake the network when its chain changed; while a
    /// change is in progress the reconcile also reads it, every time.
    #[arg(long, env = "BESU_OPERATOR_CHAIN_POLL_SECONDS", default_value_t = 15)]
    pub chain_poll_seconds: u64,
    /// `host:port` where a network's Prometheus scrapes the operator's /metrics.
    /// Default: the metrics Service in $POD_NAMESPACE, else none.
    #[arg(long, env = "BESU_OPERATOR_METRICS_TARGET")]
    pub metrics_target: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "BESU_OPERATOR_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// This instance's name, in the User-Agent of its API requests and as its leader
    /// election identity. Default: $POD_NAME, else none.
    #[arg(long, env = "BESU_OPERATOR_INSTANCE")]
    pub instance: Option<String>,
    /// Reconcile only while holding a coordination.k8s.io Lease, so that several
    /// replicas can run. Off by default for the CLI; the Deployment turns it on.
    #[arg(long, env = "BESU_OPERATOR_LEADER_ELECT", num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the leader election Lease.
    #[arg(
        long,
        env = "BESU_OPERATOR_LEADER_ELECT_LEASE",
        default_value = "besu-operator-leader"
    )]
    pub leader_elect_lease: String,
    /// Namespace of the Lease. Default: $POD_NAMESPACE, else the client's namespace.
    #[arg(long, env = "BESU_OPERATOR_LEADER_ELECT_NAMESPACE")]
    pub leader_elect_namespace: Option<String>,
    /// Seconds a Lease that is not renewed keeps other replicas from taking over.
    #[arg(
        long,
        env = "BESU_OPERATOR_LEADER_ELECT_LEASE_SECONDS",
        default_value_t = 15
    )]
    pub leader_elect_lease_seconds: u64,
    /// Seconds the leader keeps trying to renew before it stops (< lease seconds).
    #[arg(
        long,
        env = "BESU_OPERATOR_LEADER_ELECT_RENEW_SECONDS",
        default_value_t = 10
    )]
    pub leader_elect_renew_seconds: u64,
    /// Seconds between attempts to acquire or renew the Lease (< renew seconds).
    #[arg(
        long,
        env = "BESU_OPERATOR_LEADER_ELECT_RETRY_SECONDS",
        default_value_t = 2
    )]
    pub leader_elect_retry_seconds: u64,
    /// Apply the operator's CRDs (server-side apply) at start and wait until they are
    /// Established. Off by default: CRDs are cluster-wide and usually installed by
    /// whoever installs the operator; turning this on needs the ClusterRole in
    /// manifests/rbac/crd-installer.yaml bound to the operator's ServiceAccount.
    #[arg(long, env = "BESU_OPERATOR_INSTALL_CRDS", num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = clap::ArgAction::Set)]
    pub install_crds: bool,
    /// Reconciles each controller runs at once (per watched namespace). More lets a large
    /// bring-up queue less; each running reconcile holds its state and API connections.
    #[arg(long, env = "BESU_OPERATOR_CONCURRENT_RECONCILES", default_value_t = besu_operator::operator::DEFAULT_CONCURRENT_RECONCILES, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrent_reconciles: u16,
}

pub fn run(args: RunArgs) -> ExitCode {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let metrics = std::sync::Arc::new(besu_operator::metrics::Metrics::new());
    let triggers = besu_operator::operator::TriggerLayer::new(metrics.clone()).with_filter(
        tracing_subscriber::filter::filter_fn(besu_operator::operator::TriggerLayer::filter),
    );
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(triggers);
    if args.log_format == "json" {
        registry.with(logs.json().with_filter(filter)).init();
    } else {
        registry.with(logs.with_filter(filter)).init();
    }
    besu_operator::render::node::init_test_render_salt();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("besu-operator run: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        let instance = args
            .instance
            .clone()
            .or_else(|| std::env::var("POD_NAME").ok())
            .filter(|i| !i.is_empty());
        let client = besu_operator::operator::client_for(instance.as_deref())
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot build a Kubernetes client ({e}); set KUBECONFIG or run in a cluster"
                )
            })?;
        let leader_election = args.leader_elect.then(|| LeaderElectionConfig {
            lease_name: args.leader_elect_lease.clone(),
            namespace: args
                .leader_elect_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| client.default_namespace().to_string()),
            identity: instance.clone().unwrap_or_else(default_identity),
            lease_duration: Duration::from_secs(args.leader_elect_lease_seconds),
            renew_deadline: Duration::from_secs(args.leader_elect_renew_seconds),
            retry_period: Duration::from_secs(args.leader_elect_retry_seconds),
        });
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
                leader_election,
                chain_poll: std::time::Duration::from_secs(args.chain_poll_seconds.max(1)),
                metrics_target: args
                    .metrics_target
                    .clone()
                    .filter(|t| !t.is_empty())
                    .or_else(|| {
                        std::env::var("POD_NAMESPACE")
                            .ok()
                            .filter(|n| !n.is_empty())
                            .map(|ns| format!("besu-operator-metrics.{ns}.svc:8080"))
                    }),
                metrics,
                install_crds: args.install_crds,
                concurrent_reconciles: args.concurrent_reconciles,
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
