//! `make bench`: the operator binary with many networks on the local cluster (with the
//! Besu simulator), printing figures: time until every network is Ready, the operator's
//! resident and peak memory, and its API requests and writes per minute at rest.
//!
//! Figures are printed, never compared with a time or size limit. What it does assert
//! is behaviour: every network reaches Ready, and the operator writes nothing at rest.
//! Bounded: `BENCH_NETWORKS` networks (default 10, at most 100) of 1 bootnode and 4
//! validators each (5 pods with small requests, so 100 networks are 500 pods on the 3
//! fake nodes of 256 pods each), a 900 s
//! bring-up deadline and a 60 s observation window (`BENCH_REST_SECONDS`). The operator runs with its default
//! resync (300 s) and chain poll (15 s), as users get it; `BENCH_RESYNC_SECONDS` changes
//! the resync (the integration tests use 5 s).
//!
//! The bring-up mode (`bring_up_latency_next_to_kubectl`) times the operator's bring-up of
//! one network, and of `BENCH_BRINGUP_NETWORKS` at once, against the limit: the same
//! objects (`besu-operator render`) applied with kubectl, and against the floor of any
//! bring-up in the operator's order: the same objects created by a client in the
//! operator's three stages, each the instant its gate is seen. All three run in the same
//! rounds, in alternating order, each on a cluster left quiet by the last (volumes
//! deleted).
//!
//! Not part of `make test` (they are `#[ignore]`d): `make bench` runs them.

mod operator;
mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use besu_operator_api::{BesuNetwork, NetworkPhase};
use kube::ResourceExt;
use kube::api::{ListParams, PostParams};

use operator::{OPERATOR_AGENT, Operator, install_crds, qbft_chain_only, writes_over_quiet_window};
use support::{Check, TestNamespace, cluster, not_yet, wait_until};

/// The observation window at rest: `BENCH_REST_SECONDS` (default 60, at most 900). A
/// window as long as the resync (300) includes one resync of everything.
fn window() -> Duration {
    Duration::from_secs(
        std::env::var("BENCH_REST_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60)
            .clamp(10, 900),
    )
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("{name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// What one run of the scale bench measured.
struct ScaleFigures {
    first_ready: Duration,
    all_ready: Duration,
    /// RSS in KiB: started, all Ready, at the end of the window at rest; and the peak.
    rss_start: u64,
    rss_ready: u64,
    rss_rest: u64,
    rss_peak: u64,
    window: Duration,
    requests_per_min: f64,
    eth_requests_per_min: f64,
    writes: Vec<String>,
    by_kind: String,
    /// Network reconciles over the window at rest, and their duration's p50, p90 and p99
    /// (the upper bound of the histogram bucket each falls in, in seconds).
    reconciles_at_rest: f64,
    percentiles: Option<(f64, f64, f64)>,
}

/// The network controller's reconcile-duration buckets (upper bound, cumulative count).
fn network_buckets(metrics: &BTreeMap<String, f64>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = metrics
        .iter()
        .filter_map(|(series, value)| {
            let labels = series.strip_prefix("besu_operator_reconcile_duration_seconds_bucket{")?;
            if !labels.contains("controller=\"network\"") {
                return None;
            }
            let le = labels.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, *value))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The count of reconciles between two scrapes, and the p50, p90 and p99 of their
/// durations as bucket upper bounds.
fn percentiles_between(
    before: &[(f64, f64)],
    after: &[(f64, f64)],
) -> (f64, Option<(f64, f64, f64)>) {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let was = before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, c)| *c);
            (*le, n - was)
        })
        .collect();
    let total = delta.last().map_or(0.0, |(_, n)| *n);
    if total <= 0.0 {
        return (0.0, None);
    }
    let q = |q: f64| {
        delta
            .iter()
            .find(|(_, n)| *n >= q * total)
            .map_or(f64::INFINITY, |(le, _)| *le)
    };
    (total, Some((q(0.5), q(0.9), q(0.99))))
}

/// One run: `count` networks (and `eth_count` EthereumNodes) brought up by `binary` in a
/// namespace of their own, then watched at rest for [`window`].
async fn measure_scale(
    binary: std::path::PathBuf,
    count: usize,
    eth_count: usize,
    resync: u64,
) -> anyhow::Result<ScaleFigures> {
    let c = cluster();
    let client = c.client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "bench").await?;
    let op = Operator::start_binary(c, &ns.name, resync, binary)?;
    let pid = op.pid().context("the operator is not running")?;
    wait_until("the operator to start", Duration::from_secs(30), || async {
        if op.log_text().contains("controllers started") {
            Ok(Check::Done(()))
        } else {
            not_yet("not yet")
        }
    })
    .await?;
    let (rss_start, _) = memory_kib(pid)?;

    let networks: kube::Api<BesuNetwork> = ns.api();
    let started = Instant::now();
    // EthereumNodes beside the networks (hoodi full nodes: on the fake nodes no client
    // answers, so they settle in Configuring with every child in place).
    let eth_nodes: kube::Api<besu_operator_api::EthereumNode> = ns.api();
    for i in 0..eth_count {
        let node: besu_operator_api::EthereumNode = serde_json::from_value(serde_json::json!({
            "apiVersion": "ethereum.nodeops.dev/v1alpha1", "kind": "EthereumNode",
            "metadata": {"name": format!("eth-{i}")},
            "spec": {"network": "hoodi",
                     "execution": {"storage": {"size": "1Gi"}, "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}}},
                     "consensus": {"storage": {"size": "1Gi"}, "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}}}},
        }))?;
        eth_nodes.create(&PostParams::default(), &node).await?;
    }
    for i in 0..count {
        let mut net = qbft_chain_only()?;
        net.metadata.name = Some(format!("bench-{i}"));
        net.metadata.namespace = Some(ns.name.clone());
        net.spec.members = 0;
        // Shrunk so that 100 networks (500 pods) fit on the fake nodes.
        net.spec.node_template.resources = Some(serde_json::from_value(serde_json::json!({
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"memory": "1Gi"},
        }))?);
        net.spec.node_template.storage.size = "1Gi".to_string();
        networks.create(&PostParams::default(), &net).await?;
    }
    let first_ready = std::sync::Mutex::new(None::<Duration>);
    wait_until(
        &format!("{count} networks Ready"),
        Duration::from_secs(900),
        || async {
            let list = networks.list(&ListParams::default()).await?.items;
            let ready = list
                .iter()
                .filter(|n| n.status.as_ref().map(|s| s.phase) == Some(NetworkPhase::Ready))
                .count();
            if ready > 0
                && let Ok(mut f) = first_ready.lock()
            {
                f.get_or_insert(started.elapsed());
            }
            // Every EthereumNode has its StatefulSet and a phase.
            let eth_settled = eth_nodes
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .filter(|n| n.status.as_ref().is_some_and(|s| s.images.is_some()))
                .count();
            let sets: kube::Api<k8s_openapi::api::apps::v1::StatefulSet> = ns.api();
            let eth_sets = sets
                .list(&ListParams::default().labels("app.kubernetes.io/name=ethereum-node"))
                .await?
                .items
                .len();
            if ready == count && eth_settled == eth_count && eth_sets == eth_count {
                Ok(Check::Done(()))
            } else {
                not_yet(format!(
                    "{ready}/{count} networks Ready, {eth_settled}/{eth_count} EthereumNodes with a status, {eth_sets} StatefulSets"
                ))
            }
        },
    )
    .await?;
    let all_ready = started.elapsed();
    let (rss_ready, _) = memory_kib(pid)?;

    // At rest: every request by the operator over the window, and its writes.
    let before = network_buckets(&op.metrics().await?);
    let (from, to, writes) = writes_over_quiet_window(&ns.name, window()).await?;
    let after = network_buckets(&op.metrics().await?);
    let (reconciles_at_rest, percentiles) = percentiles_between(&before, &after);
    let at_rest: Vec<_> = c
        .audit()
        .events()?
        .into_iter()
        .filter(|e| e.stage == "ResponseComplete" && e.user_agent.starts_with(OPERATOR_AGENT))
        .filter(|e| e.received_at().is_ok_and(|t| t >= from && t <= to))
        .collect();
    // Which requests: verb and resource, most frequent first.
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for e in &at_rest {
        let resource = e
            .object_ref
            .as_ref()
            .and_then(|o| o.resource.clone())
            .unwrap_or_default();
        *kinds.entry(format!("{} {resource}", e.verb)).or_default() += 1;
    }
    let mut kinds: Vec<(String, usize)> = kinds.into_iter().collect();
    kinds.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let (rss_rest, rss_peak) = memory_kib(pid)?;
    let window = to.duration_since(from).unwrap_or(window());
    let minutes = window.as_secs_f64() / 60.0;
    let eth_requests = at_rest
        .iter()
        .filter(|e| {
            e.object_ref.as_ref().is_some_and(|o| {
                o.name.as_deref().is_some_and(|n| n.starts_with("eth-"))
                    || o.resource.as_deref() == Some("ethereumnodes")
            })
        })
        .count();
    let first = first_ready
        .lock()
        .ok()
        .and_then(|f| *f)
        .unwrap_or(all_ready);
    drop(op);
    ns.cleanup().await?;
    Ok(ScaleFigures {
        first_ready: first,
        all_ready,
        rss_start,
        rss_ready,
        rss_rest,
        rss_peak,
        window,
        requests_per_min: at_rest.len() as f64 / minutes,
        eth_requests_per_min: eth_requests as f64 / minutes,
        writes,
        by_kind: kinds
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        reconciles_at_rest,
        percentiles,
    })
}

fn print_scale(label: &str, f: &ScaleFigures) {
    eprintln!(
        "bench [{label}]: first network Ready after {:.1} s, all after {:.1} s",
        f.first_ready.as_secs_f64(),
        f.all_ready.as_secs_f64()
    );
    eprintln!(
        "bench [{label}]: operator memory (RSS): {} KiB started, {} KiB when all Ready, {} KiB after {:.0} s at rest, peak {} KiB",
        f.rss_start,
        f.rss_ready,
        f.rss_rest,
        f.window.as_secs_f64(),
        f.rss_peak
    );
    eprintln!(
        "bench [{label}]: at rest over {:.0} s: {:.1} requests/min ({:.1}/min naming an EthereumNode or its children), {} writes",
        f.window.as_secs_f64(),
        f.requests_per_min,
        f.eth_requests_per_min,
        f.writes.len()
    );
    eprintln!(
        "bench [{label}]: at rest, by verb and resource: {}",
        f.by_kind
    );
    match f.percentiles {
        Some((p50, p90, p99)) => eprintln!(
            "bench [{label}]: {:.0} network reconciles at rest, duration p50 <= {:.0} ms, p90 <= {:.0} ms, p99 <= {:.0} ms (histogram bucket bounds)",
            f.reconciles_at_rest,
            p50 * 1000.0,
            p90 * 1000.0,
            p99 * 1000.0
        ),
        None => eprintln!("bench [{label}]: no network reconcile at rest"),
    }
}

/// `make bench` scale mode. With `BENCH_BASELINE_BIN` (another build of the operator,
/// for example the last release's), the same run is made with it first, in a namespace
/// of its own, and the figures are printed side by side as ratios (this build / the
/// baseline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run with make bench"]
async fn many_networks_bring_up_and_rest() -> anyhow::Result<()> {
    let count: usize = std::env::var("BENCH_NETWORKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let resync: u64 = std::env::var("BENCH_RESYNC_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
        .max(1);
    let eth_count: usize = std::env::var("BENCH_ETHEREUM_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .min(40);
    let baseline_bin = std::env::var_os("BENCH_BASELINE_BIN")
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from);
    eprintln!(
        "bench: {count} networks x 5 Besu nodes (1 bootnode, 4 validators) and {eth_count} EthereumNodes (hoodi full), operator resync {resync} s, chain poll 15 s"
    );
    let baseline = match baseline_bin {
        Some(bin) => {
            eprintln!("bench: baseline {}", bin.display());
            let f = measure_scale(bin, count, eth_count, resync).await?;
            print_scale("baseline", &f);
            Some(f)
        }
        None => None,
    };
    let current = measure_scale(operator::operator_binary(), count, eth_count, resync).await?;
    print_scale("this build", &current);
    if let Some(b) = &baseline {
        let ratio = |now: f64, then: f64| {
            if then > 0.0 {
                format!("{:.2}x", now / then)
            } else {
                "n/a".to_string()
            }
        };
        eprintln!(
            "bench: this build / baseline: all Ready {}, RSS started {}, at Ready {}, at rest {}, requests/min at rest {}, network reconcile p99 at rest {}",
            ratio(current.all_ready.as_secs_f64(), b.all_ready.as_secs_f64()),
            ratio(current.rss_start as f64, b.rss_start as f64),
            ratio(current.rss_ready as f64, b.rss_ready as f64),
            ratio(current.rss_rest as f64, b.rss_rest as f64),
            ratio(current.requests_per_min, b.requests_per_min),
            match (current.percentiles, b.percentiles) {
                (Some(c), Some(b)) => ratio(c.2, b.2),
                _ => "n/a".to_string(),
            }
        );
    }
    ensure!(
        current.writes.is_empty(),
        "writes at rest: {:?}",
        current.writes
    );
    Ok(())
}

// --- bring-up latency ------------------------------------------------------------------

/// When each pod turned Ready, each PVC was first seen and turned Bound, and each network
/// turned Ready, in one namespace, from watches opened before the apply.
#[derive(Default)]
struct Seen {
    pod_ready: BTreeMap<String, Instant>,
    pvc_seen: BTreeMap<String, Instant>,
    pvc_bound: BTreeMap<String, Instant>,
    network_ready: BTreeMap<String, Instant>,
}

/// Watches a namespace's pods, PVCs and BesuNetworks, recording first transitions.
struct Tracker {
    seen: Arc<Mutex<Seen>>,
    changed: Arc<tokio::sync::Notify>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Spawns a watch of `api` that calls `record` on every object seen; resolves once the
/// initial list is in, so that nothing the caller does next is missed.
async fn spawn_watch<K>(
    api: kube::Api<K>,
    seen: Arc<Mutex<Seen>>,
    changed: Arc<tokio::sync::Notify>,
    record: fn(&K, &mut Seen, Instant),
) -> anyhow::Result<tokio::task::JoinHandle<()>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    use futures::StreamExt;
    use kube::runtime::watcher;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut tx = Some(tx);
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = stream.next().await {
            let now = Instant::now();
            match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    if let Ok(mut s) = seen.lock() {
                        record(&o, &mut s, now);
                    }
                    changed.notify_waiters();
                }
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(30), rx)
        .await
        .context("a watch did not list in 30 s")?
        .context("a watch stopped before it listed")?;
    Ok(task)
}

impl Tracker {
    async fn start(client: &kube::Client, ns: &str) -> anyhow::Result<Tracker> {
        use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
        let seen = Arc::new(Mutex::new(Seen::default()));
        let changed = Arc::new(tokio::sync::Notify::new());
        let pods = spawn_watch::<Pod>(
            kube::Api::namespaced(client.clone(), ns),
            seen.clone(),
            changed.clone(),
            |p, s, now| {
                let ready = p
                    .status
                    .as_ref()
                    .and_then(|st| st.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if ready {
                    s.pod_ready.entry(p.name_any()).or_insert(now);
                }
            },
        )
        .await?;
        let pvcs = spawn_watch::<PersistentVolumeClaim>(
            kube::Api::namespaced(client.clone(), ns),
            seen.clone(),
            changed.clone(),
            |c, s, now| {
                s.pvc_seen.entry(c.name_any()).or_insert(now);
                if c.status.as_ref().and_then(|st| st.phase.as_deref()) == Some("Bound") {
                    s.pvc_bound.entry(c.name_any()).or_insert(now);
                }
            },
        )
        .await?;
        let networks = spawn_watch::<BesuNetwork>(
            kube::Api::namespaced(client.clone(), ns),
            seen.clone(),
            changed.clone(),
            |n, s, now| {
                if n.status.as_ref().map(|st| st.phase) == Some(NetworkPhase::Ready) {
                    s.network_ready.entry(n.name_any()).or_insert(now);
                }
            },
        )
        .await?;
        Ok(Tracker {
            seen,
            changed,
            tasks: vec![pods, pvcs, networks],
        })
    }

    /// Waits, woken by the watches themselves (no polling delay), until at least `needed`
    /// of the named pods were seen Ready.
    async fn wait_pods_ready(&self, pods: &[String], needed: usize) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let ready = {
                let s = self.seen.lock().map_err(|_| anyhow::anyhow!("lock"))?;
                pods.iter().filter(|p| s.pod_ready.contains_key(*p)).count()
            };
            if ready >= needed {
                return Ok(());
            }
            tokio::time::timeout_at(deadline, notified)
                .await
                .with_context(|| format!("{ready}/{needed} of {pods:?} Ready after 300 s"))?;
        }
    }

    /// Waits until `pods` pods and `networks` networks were seen Ready; returns the
    /// bring-up measured from `from`.
    async fn wait(&self, from: Instant, pods: usize, networks: usize) -> anyhow::Result<BringUp> {
        wait_until(
            &format!("{pods} pods and {networks} networks Ready"),
            Duration::from_secs(300),
            || async {
                let s = self.seen.lock().map_err(|_| anyhow::anyhow!("lock"))?;
                if s.pod_ready.len() >= pods && s.network_ready.len() >= networks {
                    Ok(Check::Done(()))
                } else {
                    not_yet(format!(
                        "{}/{pods} pods, {}/{networks} networks Ready",
                        s.pod_ready.len(),
                        s.network_ready.len()
                    ))
                }
            },
        )
        .await?;
        let s = self.seen.lock().map_err(|_| anyhow::anyhow!("lock"))?;
        let since = |t: &Instant| t.saturating_duration_since(from).as_secs_f64();
        Ok(BringUp {
            pods_ready: s.pod_ready.values().map(since).fold(0.0, f64::max),
            networks_ready: (networks > 0)
                .then(|| s.network_ready.values().map(since).fold(0.0, f64::max)),
            pvc_waits: s
                .pvc_bound
                .iter()
                .filter_map(|(name, bound)| {
                    let seen = s.pvc_seen.get(name)?;
                    Some(bound.saturating_duration_since(*seen).as_secs_f64())
                })
                .collect(),
        })
    }
}

/// One bring-up: seconds from the apply to the last pod Ready and to the last network
/// Ready (operator only), and every PVC's wait from first seen to Bound.
struct BringUp {
    pods_ready: f64,
    networks_ready: Option<f64>,
    pvc_waits: Vec<f64>,
}

/// The bench network: the IBFT 2.0 sample (deletionPolicy Delete) with 1 bootnode, 4
/// validators and 1 member, monitoring off, resources shrunk so that both sides of 10
/// networks fit on the fake nodes together.
fn bench_network(name: &str, ns: &str) -> anyhow::Result<BesuNetwork> {
    let mut net: BesuNetwork = operator::sample("ibft2-network.yaml")?;
    net.metadata.name = Some(name.to_string());
    net.metadata.namespace = Some(ns.to_string());
    net.spec.bootnodes = 1;
    net.spec.validators = 4;
    net.spec.members = 1;
    net.spec.monitoring.prometheus.enabled = false;
    net.spec.monitoring.grafana.enabled = false;
    net.spec.node_template.resources = Some(serde_json::from_value(serde_json::json!({
        "requests": {"cpu": "50m", "memory": "128Mi"},
        "limits": {"memory": "1Gi"},
    }))?);
    net.spec.node_template.storage.size = "1Gi".to_string();
    Ok(net)
}

/// What the operator would create for `networks` in `ns`: the output of
/// `besu-operator render` (keys generated, Secrets shown) without the BesuNodes, which
/// only the operator reads.
fn rendered_docs(networks: &[BesuNetwork], ns: &str) -> anyhow::Result<Vec<serde_yaml::Value>> {
    use std::io::Write as _;
    let input = networks
        .iter()
        .map(serde_yaml::to_string)
        .collect::<Result<Vec<_>, _>>()?
        .join("---\n");
    let mut child = std::process::Command::new(operator::operator_binary())
        .args(["render", "-f", "-", "-n", ns, "--show-secrets"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("run besu-operator render")?;
    child
        .stdin
        .take()
        .context("render stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "besu-operator render failed");
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_slice(&out.stdout) {
        let value = <serde_yaml::Value as serde::Deserialize>::deserialize(doc)?;
        if value.get("kind").and_then(serde_yaml::Value::as_str) != Some("BesuNode")
            && !value.is_null()
        {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// [`rendered_docs`] as one YAML stream, for kubectl.
fn rendered_children(networks: &[BesuNetwork], ns: &str) -> anyhow::Result<String> {
    Ok(rendered_docs(networks, ns)?
        .iter()
        .map(serde_yaml::to_string)
        .collect::<Result<Vec<_>, _>>()?
        .join("---\n"))
}

/// The stage of the operator's order a rendered object belongs to: 0 for a network's
/// shared objects, every key Secret and the bootnodes, 1 for the validators, 2 for the
/// members.
fn stage_of(doc: &serde_yaml::Value) -> usize {
    let kind = doc.get("kind").and_then(serde_yaml::Value::as_str);
    let component = doc
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(|l| l.get("app.kubernetes.io/component"))
        .and_then(serde_yaml::Value::as_str);
    match (kind, component) {
        (Some("Secret"), _) => 0,
        (_, Some("validator")) => 1,
        (_, Some("member")) => 2,
        _ => 0,
    }
}

/// Creates `docs` in `ns` straight to the API server: every object at once, then every
/// StatefulSet at once (as the operator does, so that the claims are there first).
async fn create_all(
    client: &kube::Client,
    ns: &str,
    docs: &[serde_yaml::Value],
) -> anyhow::Result<()> {
    let is_sts = |d: &&serde_yaml::Value| {
        d.get("kind").and_then(serde_yaml::Value::as_str) == Some("StatefulSet")
    };
    create_wave(client, ns, docs.iter().filter(|d| !is_sts(d))).await?;
    create_wave(client, ns, docs.iter().filter(is_sts)).await
}

/// Creates `docs` in `ns` at once.
async fn create_wave(
    client: &kube::Client,
    ns: &str,
    docs: impl Iterator<Item = &serde_yaml::Value>,
) -> anyhow::Result<()> {
    use kube::api::{DynamicObject, GroupVersionKind};
    use kube::discovery::ApiResource;
    futures::future::try_join_all(docs.map(|doc| async move {
        let obj: DynamicObject = serde_yaml::from_value(doc.clone())?;
        let types = obj
            .types
            .as_ref()
            .context("a rendered object without a kind")?;
        let resource = ApiResource::from_gvk(&GroupVersionKind::try_from(types)?);
        let api: kube::Api<DynamicObject> =
            kube::Api::namespaced_with(client.clone(), ns, &resource);
        api.create(&PostParams::default(), &obj)
            .await
            .with_context(|| format!("create {} {}", types.kind, obj.name_any()))?;
        anyhow::Ok(())
    }))
    .await?;
    Ok(())
}

/// The floor of any bring-up that keeps the operator's order: the same objects as the
/// limit, created by a client straight to the API server (no process started, nothing
/// computed), in the three stages the operator keeps and
/// `qbft_sample_comes_up_in_stages_with_a_genesis_from_its_own_keys` asserts, each stage
/// created the instant the watch sees its gate: bootnodes (with every Secret and shared
/// object) at once, validators once every bootnode pod is Ready, members once a commit
/// quorum of validator pods is Ready. No operator can bring a network up in this order
/// faster than this on the same cluster.
async fn staged_round(count: usize) -> anyhow::Result<BringUp> {
    let c = cluster();
    let client = c.client().await?;
    let ns = TestNamespace::create(&client, "bringup-staged").await?;
    let nets = (0..count)
        .map(|i| bench_network(&format!("net-{i}"), &ns.name))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut plans = Vec::new();
    for net in &nets {
        let docs = rendered_docs(std::slice::from_ref(net), &ns.name)?;
        let mut stages: [Vec<serde_yaml::Value>; 3] = Default::default();
        for doc in docs {
            stages[stage_of(&doc)].push(doc);
        }
        let pods = |role: &str, n: i32| -> Vec<String> {
            (0..n)
                .map(|i| format!("{}-{role}-{i}-0", net.name_any()))
                .collect()
        };
        let bootnodes = pods("bootnode", net.spec.bootnodes);
        let validators = pods("validator", net.spec.validators);
        let quorum = (2 * validators.len()).div_ceil(3);
        plans.push((stages, bootnodes, validators, quorum));
    }
    let tracker = Tracker::start(&client, &ns.name).await?;
    let from = Instant::now();
    futures::future::try_join_all(plans.iter().map(|(stages, bootnodes, validators, quorum)| {
        let (client, ns, tracker) = (&client, &ns.name, &tracker);
        async move {
            create_all(client, ns, &stages[0]).await?;
            tracker.wait_pods_ready(bootnodes, bootnodes.len()).await?;
            create_all(client, ns, &stages[1]).await?;
            tracker.wait_pods_ready(validators, *quorum).await?;
            create_all(client, ns, &stages[2]).await
        }
    }))
    .await?;
    let result = tracker.wait(from, 6 * count, 0).await?;
    drop(tracker);
    ns.cleanup().await?;
    Ok(result)
}

/// Waits until the cluster holds no more PersistentVolumes than `baseline`: the volumes
/// of deleted namespaces are gone, so that the next measurement starts on a quiet
/// cluster.
async fn wait_volumes_gone(client: &kube::Client, baseline: usize) -> anyhow::Result<()> {
    let pvs: kube::Api<k8s_openapi::api::core::v1::PersistentVolume> =
        kube::Api::all(client.clone());
    wait_until(
        "the deleted volumes to go",
        Duration::from_secs(180),
        || async {
            let n = pvs.list(&ListParams::default()).await?.items.len();
            if n <= baseline {
                Ok(Check::Done(()))
            } else {
                not_yet(format!("{n} PersistentVolumes, {baseline} before"))
            }
        },
    )
    .await
}

/// The operator's side of a round: a fresh namespace and a freshly started operator
/// (default resync), `count` networks created, until every pod and network is Ready.
/// Also returns the reconciles timers started during the bring-up.
async fn operator_round(count: usize) -> anyhow::Result<(BringUp, f64)> {
    let c = cluster();
    let client = c.client().await?;
    let ns = TestNamespace::create(&client, "bringup-op").await?;
    let op = Operator::start_with_resync(c, &ns.name, 300)?;
    wait_until("the operator to start", Duration::from_secs(30), || async {
        if op.log_text().contains("controllers started") {
            Ok(Check::Done(()))
        } else {
            not_yet("not yet")
        }
    })
    .await?;
    let timers_before: f64 = op.timer_triggers().await?.values().sum();
    let tracker = Tracker::start(&client, &ns.name).await?;
    let networks: kube::Api<BesuNetwork> = ns.api();
    let from = Instant::now();
    for i in 0..count {
        networks
            .create(
                &PostParams::default(),
                &bench_network(&format!("net-{i}"), &ns.name)?,
            )
            .await?;
    }
    let result = tracker.wait(from, 6 * count, count).await?;
    let timers: f64 = op.timer_triggers().await?.values().sum::<f64>() - timers_before;
    drop(tracker);
    drop(op);
    ns.cleanup().await?;
    Ok((result, timers))
}

/// The limit's side of a round: the same objects applied with kubectl in a fresh
/// namespace, until every pod is Ready.
async fn kubectl_round(count: usize) -> anyhow::Result<BringUp> {
    let c = cluster();
    let client = c.client().await?;
    let ns = TestNamespace::create(&client, "bringup-kubectl").await?;
    let nets = (0..count)
        .map(|i| bench_network(&format!("net-{i}"), &ns.name))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), rendered_children(&nets, &ns.name)?)?;
    let path = file.path().to_string_lossy().into_owned();
    let tracker = Tracker::start(&client, &ns.name).await?;
    let from = Instant::now();
    tokio::task::spawn_blocking(move || c.kubectl(&["apply", "-f", &path]).map(drop)).await??;
    let result = tracker.wait(from, 6 * count, 0).await?;
    drop(tracker);
    ns.cleanup().await?;
    Ok(result)
}

/// min, median, p90 and max (nearest rank) of `values`.
fn spread(values: &[f64]) -> (f64, f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (0.0, 0.0, 0.0, 0.0);
    }
    let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (v[0], rank(0.5), rank(0.9), v[v.len() - 1])
}

fn print_spread(what: &str, values: &[f64]) {
    let (min, median, p90, max) = spread(values);
    eprintln!(
        "bench: {what}: min {min:.2} s, median {median:.2} s, p90 {p90:.2} s, max {max:.2} s ({} runs)",
        values.len()
    );
}

/// `make bench` bring-up mode: `BENCH_ROUNDS` rounds (default 10) of one network, then of
/// `BENCH_BRINGUP_NETWORKS` networks at once (default 10), each round measuring the
/// operator (freshly started) and, alternately before or after it, the same objects
/// applied with kubectl: time to every pod Ready and to every network Ready, the ratio
/// to the kubectl limit, and PVC binds that waited longer than 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run with make bench"]
async fn bring_up_latency_next_to_kubectl() -> anyhow::Result<()> {
    let env = |name: &str, default: usize, max: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
            .clamp(1, max)
    };
    let rounds = env("BENCH_ROUNDS", 10, 50);
    let many = env("BENCH_BRINGUP_NETWORKS", 10, 20);
    let c = cluster();
    let client = c.client().await?;
    install_crds(&client).await?;
    let pvs: kube::Api<k8s_openapi::api::core::v1::PersistentVolume> =
        kube::Api::all(client.clone());
    let baseline = pvs.list(&ListParams::default()).await?.items.len();
    eprintln!(
        "bench: bring-up of IBFT 2.0 networks (1 bootnode, 4 validators, 1 member, deletionPolicy Delete), operator {}",
        operator::operator_binary().display()
    );
    let counts: Vec<usize> = if many > 1 { vec![1, many] } else { vec![1] };
    for count in counts {
        let (mut op_pods, mut op_nets, mut lim_pods) = (Vec::new(), Vec::new(), Vec::new());
        let mut floor_pods = Vec::new();
        let (mut op_slow, mut lim_slow, mut floor_slow, mut timers) = (0usize, 0usize, 0usize, 0.0);
        for round in 0..rounds {
            let mut measure_operator = async || -> anyhow::Result<()> {
                let (b, t) = operator_round(count).await?;
                wait_volumes_gone(&client, baseline).await?;
                op_pods.push(b.pods_ready);
                op_nets.extend(b.networks_ready);
                op_slow += b.pvc_waits.iter().filter(|w| **w > 5.0).count();
                timers += t;
                Ok(())
            };
            let mut measure_floor = async || -> anyhow::Result<()> {
                let b = staged_round(count).await?;
                wait_volumes_gone(&client, baseline).await?;
                floor_pods.push(b.pods_ready);
                floor_slow += b.pvc_waits.iter().filter(|w| **w > 5.0).count();
                Ok(())
            };
            if round % 2 == 0 {
                measure_operator().await?;
            } else {
                measure_floor().await?;
            }
            let b = kubectl_round(count).await?;
            wait_volumes_gone(&client, baseline).await?;
            lim_pods.push(b.pods_ready);
            lim_slow += b.pvc_waits.iter().filter(|w| **w > 5.0).count();
            if round % 2 == 0 {
                measure_floor().await?;
            } else {
                measure_operator().await?;
            }
            eprintln!(
                "bench: {count} network(s), round {}/{rounds}: operator pods {:.2} s, network Ready {:.2} s; kubectl pods {:.2} s; staged floor pods {:.2} s",
                round + 1,
                op_pods.last().copied().unwrap_or_default(),
                op_nets.last().copied().unwrap_or_default(),
                lim_pods.last().copied().unwrap_or_default(),
                floor_pods.last().copied().unwrap_or_default()
            );
        }
        print_spread(
            &format!("{count} network(s): kubectl (the limit), every pod Ready"),
            &lim_pods,
        );
        print_spread(
            &format!(
                "{count} network(s): staged floor (client, the operator's order), every pod Ready"
            ),
            &floor_pods,
        );
        print_spread(
            &format!("{count} network(s): operator, every pod Ready"),
            &op_pods,
        );
        print_spread(
            &format!("{count} network(s): operator, every network Ready"),
            &op_nets,
        );
        let (_, lim_median, lim_p90, _) = spread(&lim_pods);
        let (_, floor_median, floor_p90, _) = spread(&floor_pods);
        let (_, op_median, op_p90, _) = spread(&op_pods);
        let (_, net_median, net_p90, _) = spread(&op_nets);
        eprintln!(
            "bench: {count} network(s): ratio to the limit, every pod Ready: operator median {:.2}, p90 {:.2}; staged floor median {:.2}, p90 {:.2}; every network Ready: median {:.2}, p90 {:.2}",
            op_median / lim_median,
            op_p90 / lim_p90,
            floor_median / lim_median,
            floor_p90 / lim_p90,
            net_median / lim_median,
            net_p90 / lim_p90
        );
        eprintln!(
            "bench: {count} network(s): operator over the staged floor, every pod Ready: median {:.2}, p90 {:.2}",
            op_median / floor_median,
            op_p90 / floor_p90
        );
        eprintln!(
            "bench: {count} network(s): PVC binds that waited more than 5 s: operator {op_slow}, kubectl {lim_slow}, staged floor {floor_slow}; reconciles started by timers during the operator's bring-ups: {timers}"
        );
    }
    Ok(())
}
