//! Runs the real `besu-operator` binary against the test cluster, scoped to one
//! namespace so that tests in one binary can run side by side, and installs the CRDs.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use besu_operator::render::FIELD_MANAGER;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use crate::support::{Check, Cluster, not_yet, wait_until};

/// The user agent of the operator binary (see `besu_operator::operator::USER_AGENT`).
pub const OPERATOR_AGENT: &str = "besu-operator/";

/// A running operator process. Dropping it kills the process.
pub struct Operator {
    child: Option<Child>,
    /// Where its stdout and stderr go (appended across restarts).
    pub log: PathBuf,
    namespace: String,
    kubeconfig: PathBuf,
    /// How many times it was started.
    pub starts: u32,
    /// `--resync-seconds`.
    resync_seconds: u64,
    /// Extra environment for the next start (e.g. the debug-only
    /// `BESU_OPERATOR_TEST_RENDER_SALT`, to render as another release would).
    pub env: Vec<(String, String)>,
    /// The binary it runs.
    binary: PathBuf,
}

impl Operator {
    /// Starts the operator watching only `namespace`, with a short resync so that
    /// steady-state checks cover several periodic reconciles.
    pub fn start(cluster: &Cluster, namespace: &str) -> anyhow::Result<Operator> {
        Operator::start_with_resync(cluster, namespace, 5)
    }

    /// Starts the operator watching only `namespace` with the given resync period (the
    /// binary's default is 300 s).
    pub fn start_with_resync(
        cluster: &Cluster,
        namespace: &str,
        resync_seconds: u64,
    ) -> anyhow::Result<Operator> {
        Operator::launch(
            namespace,
            cluster.kubeconfig.clone(),
            resync_seconds,
            operator_binary(),
        )
    }

    /// [`Operator::start_with_resync`] running another build of the operator (`make
    /// bench` compares a baseline release with this one).
    pub fn start_binary(
        cluster: &Cluster,
        namespace: &str,
        resync_seconds: u64,
        binary: PathBuf,
    ) -> anyhow::Result<Operator> {
        Operator::launch(
            namespace,
            cluster.kubeconfig.clone(),
            resync_seconds,
            binary,
        )
    }

    /// Starts the operator watching only `namespace` with a short resync, as the identity
    /// of `kubeconfig` instead of the cluster's admin.
    pub fn start_as(namespace: &str, kubeconfig: PathBuf) -> anyhow::Result<Operator> {
        Operator::launch(namespace, kubeconfig, 5, operator_binary())
    }

    fn launch(
        namespace: &str,
        kubeconfig: PathBuf,
        resync_seconds: u64,
        binary: PathBuf,
    ) -> anyhow::Result<Operator> {
        let log = std::env::temp_dir().join(format!("besu-operator-{namespace}.log"));
        let _ = std::fs::remove_file(&log);
        let mut op = Operator {
            child: None,
            log,
            namespace: namespace.to_string(),
            kubeconfig,
            starts: 0,
            resync_seconds,
            env: Vec::new(),
            binary,
        };
        op.restart()?;
        Ok(op)
    }

    /// Starts the process again (after [`Operator::kill`]).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("open {}", self.log.display()))?;
        let child = Command::new(&self.binary)
            .args([
                "run",
                "--http-addr",
                "127.0.0.1:0",
                "--namespaces",
                &self.namespace,
                "--resync-seconds",
                &self.resync_seconds.to_string(),
            ])
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", "info,besu_operator=debug")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start besu-operator")?;
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    /// SIGKILL, as a crash or an OOM kill would; waits for the process to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the operator printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Where the operator serves `/metrics`, from its log (`--http-addr 127.0.0.1:0`
    /// lets it pick a free port), once it has started.
    pub async fn metrics_addr(&self) -> anyhow::Result<String> {
        wait_until(
            "the operator's HTTP server",
            Duration::from_secs(30),
            || async {
                let text = strip_ansi(&self.log_text());
                let addr = text
                    .lines()
                    .filter(|l| l.contains("serving /healthz"))
                    .filter_map(|l| l.split("addr=").nth(1))
                    .filter_map(|rest| rest.split_whitespace().next())
                    .map(|a| a.replace(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'), ""))
                    .next_back();
                match addr {
                    Some(a) if !a.is_empty() => Ok(Check::Done(a)),
                    _ => not_yet("no `serving` line yet"),
                }
            },
        )
        .await
    }

    /// The operator's metrics now: series (name and labels, as printed) to value.
    pub async fn metrics(&self) -> anyhow::Result<std::collections::BTreeMap<String, f64>> {
        let addr = self.metrics_addr().await?;
        let text = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()?
            .get(format!("http://{addr}/metrics"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_string(), value.parse().ok()?))
            })
            .collect())
    }

    /// Reconciles started so far by a timer (a requeue, the resync or an error retry),
    /// not by a watch event, per `controller/trigger` (`besu_operator_reconcile_triggers`).
    pub async fn timer_triggers(&self) -> anyhow::Result<std::collections::BTreeMap<String, f64>> {
        Ok(self
            .metrics()
            .await?
            .into_iter()
            .filter_map(|(series, value)| {
                let labels = series.strip_prefix("besu_operator_reconcile_triggers_total{")?;
                let label = |name: &str| {
                    labels
                        .split(',')
                        .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                        .map(|v| v.trim_end_matches('}').trim_end_matches('"').to_string())
                };
                let trigger = label("trigger")?;
                ["requeue", "resync", "error_retry"]
                    .contains(&trigger.as_str())
                    .then(|| {
                        (
                            format!("{}/{trigger}", label("controller").unwrap_or_default()),
                            value,
                        )
                    })
            })
            .collect())
    }
}

/// `text` without terminal colour sequences (`ESC [ ... m`), which the operator's log
/// carries when its output is not JSON.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The operator binary the tests run: `BESU_OPERATOR_BIN` when set (`make bench` runs the
/// release build, as users get it), else the one cargo built for these tests.
pub fn operator_binary() -> PathBuf {
    std::env::var_os("BESU_OPERATOR_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_besu-operator")))
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Installs (server-side applies) the CRDs and waits until both are Established.
pub async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in besu_operator_api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("apply CRD {name}"))?;
        wait_until(
            &format!("CRD {name} Established"),
            Duration::from_secs(30),
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let crd = api.get(&name).await?;
                    let established = crd
                        .status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True");
                    if established {
                        Ok(Check::Done(()))
                    } else {
                        not_yet("not Established")
                    }
                }
            },
        )
        .await?;
    }
    Ok(())
}

/// A sample manifest from `samples/`, parsed.
pub fn sample<T: serde::de::DeserializeOwned>(file: &str) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(crate::support::repo_root().join("samples").join(file))
        .with_context(|| format!("read samples/{file}"))?;
    Ok(serde_yaml::from_str(&text)?)
}

/// `samples/qbft-network.yaml` without its Prometheus and Grafana: the chain only, for
/// tests that count the network's nodes and pods (6) or time its bring-up.
pub fn qbft_chain_only() -> anyhow::Result<besu_operator_api::BesuNetwork> {
    let mut net: besu_operator_api::BesuNetwork = sample("qbft-network.yaml")?;
    net.spec.monitoring.prometheus.enabled = false;
    net.spec.monitoring.grafana.enabled = false;
    // One bootnode (the sample ships two): the day-2 and fault tests count pods and steps
    // for that shape; the sample as shipped runs in monitoring_sample and the install tests.
    net.spec.bootnodes = 1;
    Ok(net)
}

/// The operator's writes to one namespace over a quiet window: waits until it has made
/// no write there for 3 s, then observes `window`. Returns the window's start and end and
/// a summary of every write in it (empty at rest).
pub async fn writes_over_quiet_window(
    namespace: &str,
    window: Duration,
) -> anyhow::Result<(std::time::SystemTime, std::time::SystemTime, Vec<String>)> {
    use std::time::SystemTime;
    let audit = crate::support::cluster().audit();
    let in_ns = |events: Vec<crate::support::AuditEvent>| -> Vec<String> {
        events
            .iter()
            .filter(|e| {
                e.object_ref.as_ref().and_then(|o| o.namespace.as_deref()) == Some(namespace)
            })
            .map(|e| e.summary())
            .collect()
    };
    let settled = wait_until(
        "the operator to stop writing",
        Duration::from_secs(30),
        || async {
            let now = SystemTime::now();
            let recent =
                in_ns(audit.writes_by_agent(OPERATOR_AGENT, now - Duration::from_secs(3), now)?);
            match recent.first() {
                None => Ok(Check::Done(now)),
                Some(e) => not_yet(format!("{} writes in the last 3 s, e.g. {e}", recent.len())),
            }
        },
    )
    .await?;
    let end = settled + window;
    wait_until(
        "the observation window",
        window + Duration::from_secs(10),
        || async {
            if SystemTime::now() >= end {
                Ok(Check::Done(()))
            } else {
                not_yet("window still open")
            }
        },
    )
    .await?;
    let writes = in_ns(audit.writes_by_agent(OPERATOR_AGENT, settled, end)?);
    Ok((settled, end, writes))
}
