//! `besu-operator render`: print every object the operator would create for the given
//! BesuNetworks and BesuNodes, as multi-document YAML, without a cluster.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use besu_operator::render::all::{
    EphemeralKeys, KeyDir, KeySource, RenderOptions, parse_objects, render_all, to_yaml_stream,
};

/// Print what the operator would create for a BesuNetwork or BesuNode manifest.
#[derive(clap::Args)]
#[command(after_help = "\
Key directory layout (--keys DIR): DIR/<BesuNode name>/key, each in Besu's key-file \
format (0x + 64 hex digits), e.g. DIR/qbft-validator-0/key. Without --keys, fresh keys \
are generated and the addresses, enode URLs and genesis in the output are illustrative.

Owner references are printed only when the input has metadata.uid (e.g. \
`kubectl get besunetwork NAME -o yaml | besu-operator render -f -`).

With monitoring enabled, the Prometheus and Grafana nodes and their objects are printed \
too; the PrometheusRule and PodMonitor the operator adds when the Prometheus Operator's \
CRDs are installed are not.")]
pub struct RenderArgs {
    /// The manifest: one or more YAML documents, each a BesuNetwork or BesuNode
    /// (`-` reads standard input).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Read node keys from this directory instead of generating throw-away ones.
    #[arg(long, value_name = "DIR")]
    pub keys: Option<PathBuf>,
    /// Print Secret values (node private keys, a fresh Grafana admin password) instead
    /// of `<redacted>`.
    #[arg(long)]
    pub show_secrets: bool,
    /// `host:port` of the operator's /metrics for the monitoring Prometheus to scrape, as
    /// `run --metrics-target` (the operator Deployment uses
    /// besu-operator-metrics.<namespace>.svc:8080). Without it: no operator scrape job.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_target: Option<String>,
    /// Namespace of objects that name none.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
}

pub fn run(args: RenderArgs) -> ExitCode {
    match render(&args) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            // One line: the chain of causes joined.
            eprintln!("besu-operator render: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

fn render(args: &RenderArgs) -> anyhow::Result<String> {
    let text = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        text
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?
    };
    let inputs = parse_objects(&text, &args.namespace)?;
    let mut keys: Box<dyn KeySource> = match &args.keys {
        Some(dir) => {
            if !dir.is_dir() {
                anyhow::bail!("--keys {}: not a directory", dir.display());
            }
            Box::new(KeyDir::new(dir))
        }
        None => Box::new(EphemeralKeys),
    };
    let needs_keys = inputs
        .iter()
        .any(|i| matches!(i, besu_operator::render::all::Input::Network(_)));
    if keys.is_ephemeral() && needs_keys {
        eprintln!(
            "besu-operator render: warning: no --keys given; generated throw-away keys, so addresses, enode URLs and genesis are illustrative"
        );
    }
    let options = RenderOptions {
        show_secrets: args.show_secrets,
        metrics_target: args.metrics_target.clone().filter(|t| !t.is_empty()),
    };
    let objects = render_all(&inputs, keys.as_mut(), &options)?;
    to_yaml_stream(&objects).context("cannot serialise the output as YAML")
}
