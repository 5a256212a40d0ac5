//! A real Prometheus (the pinned v3.5.0, built from its Go module by
//! `hack/build-tools.sh`) scrapes a network on the local cluster, where the Besu
//! simulator serves each pod's `/metrics`.
//!
//! The operator runs with monitoring switched on for the qbft sample and renders the
//! `prometheus` node's ConfigMap; the test takes `prometheus.yml` and the rule file from
//! that ConfigMap, adds only a `kubeconfig_file` to its `kubernetes_sd_configs` (to run
//! out of cluster) and the operator's loopback address is the operator target the
//! operator itself rendered (`--metrics-target`). Prometheus listens on 127.0.0.1.
//!
//! 1. Discovery and scraping: `ethereum_blockchain_height` has one advancing series
//!    per node; every dashboard panel query parses and returns data.
//! 2. Alerts: one of 4 validators stopped fires BesuValidatorDown and
//!    BesuFaultToleranceZero; two stopped fire BesuChainNotProducing; restoring them
//!    clears all three.

mod operator;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use besu_operator::render::monitoring::{PROMETHEUS_CONFIG_FILE, RULES_FILE, dashboard_panels};
use besu_operator_api::{BesuNetwork, BesuNode, NodePhase};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use operator::{install_crds, sample};
use support::{Check, TestNamespace, cluster, not_yet, repo_root, wait_until};

const NETWORK: &str = "qbft";
const BRING_UP: Duration = Duration::from_secs(180);
const SCRAPE_WAIT: Duration = Duration::from_secs(90);
const ALERT_WAIT: Duration = Duration::from_secs(150);

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn bin_dir() -> anyhow::Result<PathBuf> {
    let out = Command::new(repo_root().join("hack/build-tools.sh"))
        .arg("bindir")
        .output()
        .context("run hack/build-tools.sh bindir")?;
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn tool(name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir()?.join("prometheus").join(name);
    ensure!(
        path.is_file(),
        "{} is missing: run `make tools`",
        path.display()
    );
    Ok(path)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

/// The operator with its HTTP server (and `/metrics`) on a known loopback port, which
/// is also the target it renders for the network's Prometheus.
fn start_operator(ns: &str, log: &Path) -> anyhow::Result<(Proc, String)> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let out = std::fs::File::create(log)?;
    let child = Command::new(env!("CARGO_BIN_EXE_besu-operator"))
        .args([
            "run",
            "--http-addr",
            &addr,
            "--namespaces",
            ns,
            "--resync-seconds",
            "5",
            "--chain-poll-seconds",
            "2",
            "--metrics-target",
            &addr,
        ])
        .env("KUBECONFIG", &cluster().kubeconfig)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("start besu-operator")?;
    Ok((Proc(child), addr))
}

/// A network with monitoring on, brought up by the operator; returns the operator.
struct Setup {
    ns: TestNamespace,
    _operator: Proc,
    operator_addr: String,
    _prometheus: Proc,
    prometheus: String,
    dir: tempfile::TempDir,
}

async fn setup(prefix: &str) -> anyhow::Result<Setup> {
    let c = cluster();
    let client = c.client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, prefix).await?;
    let dir = tempfile::tempdir()?;
    let (operator, operator_addr) = start_operator(&ns.name, &dir.path().join("operator.log"))?;
    let mut net: BesuNetwork = sample("qbft-network.yaml")?;
    net.metadata.namespace = Some(ns.name.clone());
    // One bootnode (the sample ships two): the series counts below are for 6 nodes.
    net.spec.bootnodes = 1;
    net.spec.monitoring.prometheus.enabled = true;
    net.spec.monitoring.grafana.enabled = true;
    Api::<BesuNetwork>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &net)
        .await?;

    // The operator renders the Prometheus node's configuration into its ConfigMap.
    let cms: Api<ConfigMap> = ns.api();
    let cm_name = format!("{NETWORK}-prometheus-config");
    let data = wait_until(&format!("ConfigMap {cm_name}"), BRING_UP, || async {
        match cms.get_opt(&cm_name).await? {
            Some(cm) => Ok(Check::Done(cm.data.unwrap_or_default())),
            None => not_yet("absent"),
        }
    })
    .await?;
    let mut config: serde_yaml::Value = serde_yaml::from_str(
        data.get(PROMETHEUS_CONFIG_FILE)
            .context("no prometheus.yml")?,
    )?;
    // The one addition for running out of cluster: how to reach the API server.
    let kubeconfig = c.kubeconfig.display().to_string();
    for job in config["scrape_configs"]
        .as_sequence_mut()
        .context("scrape_configs")?
    {
        if let Some(sds) = job
            .get_mut("kubernetes_sd_configs")
            .and_then(|s| s.as_sequence_mut())
        {
            for sd in sds {
                sd["kubeconfig_file"] = kubeconfig.clone().into();
            }
        }
    }
    let rendered_target = serde_json::to_string(&config)?;
    ensure!(
        rendered_target.contains(&operator_addr),
        "the rendered config does not scrape the operator at {operator_addr}"
    );
    std::fs::write(
        dir.path().join(PROMETHEUS_CONFIG_FILE),
        serde_yaml::to_string(&config)?,
    )?;
    std::fs::write(
        dir.path().join(RULES_FILE),
        data.get(RULES_FILE).context("no rules")?,
    )?;
    for args in [
        vec!["check", "config", PROMETHEUS_CONFIG_FILE],
        vec!["check", "rules", RULES_FILE],
    ] {
        let out = Command::new(tool("promtool")?)
            .args(&args)
            .current_dir(dir.path())
            .output()?;
        ensure!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let listen = format!("127.0.0.1:{}", free_port()?);
    let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
    let prometheus = Command::new(tool("prometheus")?)
        .args([
            &format!(
                "--config.file={}",
                dir.path().join(PROMETHEUS_CONFIG_FILE).display()
            ),
            &format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            &format!("--web.listen-address={listen}"),
        ])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("start prometheus")?;
    let setup = Setup {
        ns,
        _operator: operator,
        operator_addr,
        _prometheus: Proc(prometheus),
        prometheus: format!("http://{listen}"),
        dir,
    };
    wait_until("prometheus ready", Duration::from_secs(60), || async {
        let r = http()
            .get(format!("{}/-/ready", setup.prometheus))
            .send()
            .await?;
        if r.status().is_success() {
            Ok(Check::Done(()))
        } else {
            not_yet(r.status())
        }
    })
    .await?;
    Ok(setup)
}

impl Setup {
    /// `/api/v1/query`; fails when the query does not parse or evaluate.
    async fn query(&self, q: &str) -> anyhow::Result<Vec<Value>> {
        let v: Value = http()
            .get(format!(
                "{}/api/v1/query?query={}",
                self.prometheus,
                encode(q)
            ))
            .send()
            .await?
            .json()
            .await?;
        if v["status"] != "success" {
            bail!("query {q}: {v}");
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// Firing alerts by name, for this network.
    async fn firing(&self) -> anyhow::Result<BTreeSet<String>> {
        let v: Value = http()
            .get(format!("{}/api/v1/alerts", self.prometheus))
            .send()
            .await?
            .json()
            .await?;
        Ok(v["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|a| a["state"] == "firing")
            .filter(|a| {
                a["labels"]["namespace"] == json!(self.ns.name)
                    || a["labels"]["namespace"].is_null()
            })
            .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_string))
            .collect())
    }

    fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        let tail = |s: String| {
            s.lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        };
        format!(
            "--- operator ---\n{}\n--- prometheus ---\n{}",
            tail(read("operator.log")),
            tail(read("prometheus.log"))
        )
    }
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn heights(result: &[Value]) -> BTreeMap<String, f64> {
    result
        .iter()
        .filter_map(|s| {
            let node = s["metric"]["node"].as_str()?.to_string();
            let v = s["value"][1].as_str()?.parse().ok()?;
            Some((node, v))
        })
        .collect()
}

#[tokio::test]
async fn prometheus_discovers_and_scrapes_every_node_and_the_dashboard_has_data()
-> anyhow::Result<()> {
    let s = setup("mon-scrape").await?;
    let ns = s.ns.name.clone();
    let sel = format!("{{namespace=\"{ns}\",network=\"{NETWORK}\"}}");
    let result = async {
        // One series per node (1 bootnode, 4 validators, 1 member), found by pod discovery.
        let first = wait_until("6 height series", BRING_UP, || async {
            let h = heights(&s.query(&format!("ethereum_blockchain_height{sel}")).await?);
            if h.len() == 6 && h.values().all(|v| *v > 0.0) {
                Ok(Check::Done(h))
            } else {
                not_yet(format!("{h:?}"))
            }
        })
        .await?;
        let roles = s
            .query(&format!(
                "count by (role) (ethereum_blockchain_height{sel})"
            ))
            .await?;
        let roles: BTreeMap<String, String> = roles
            .iter()
            .filter_map(|r| {
                Some((
                    r["metric"]["role"].as_str()?.to_string(),
                    r["value"][1].as_str()?.to_string(),
                ))
            })
            .collect();
        assert_eq!(
            roles,
            BTreeMap::from([
                ("bootnode".to_string(), "1".to_string()),
                ("member".to_string(), "1".to_string()),
                ("validator".to_string(), "4".to_string())
            ])
        );
        // Each series advances.
        wait_until("every height series to advance", SCRAPE_WAIT, || async {
            let h = heights(&s.query(&format!("ethereum_blockchain_height{sel}")).await?);
            let behind: Vec<&String> = first
                .iter()
                .filter(|(n, v)| h.get(*n).is_none_or(|now| now <= *v))
                .map(|(n, _)| n)
                .collect();
            if h.len() == 6 && behind.is_empty() {
                Ok(Check::Done(()))
            } else {
                not_yet(format!("not advanced: {behind:?}; now {h:?}"))
            }
        })
        .await?;
        // The operator is scraped too, with only this network's series.
        let up = s
            .query(&format!(
                "up{{job=\"besu-operator\",instance=\"{}\"}}",
                s.operator_addr
            ))
            .await?;
        ensure!(
            up.len() == 1 && up[0]["value"][1] == "1",
            "operator target: {up:?}"
        );

        // Every dashboard panel's query parses and returns data, CPU and memory included
        // (the simulator serves Besu's process_* metrics with its own process figures).
        wait_until("every panel query to return data", SCRAPE_WAIT, || async {
            let mut empty = Vec::new();
            for (title, _, expr) in dashboard_panels(&ns, NETWORK) {
                let r = s.query(&expr).await?;
                if r.is_empty() {
                    empty.push(title);
                }
            }
            if empty.is_empty() {
                Ok(Check::Done(()))
            } else {
                not_yet(format!("no data: {empty:?}"))
            }
        })
        .await?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        bail!("{e:#}\n{}", s.logs());
    }
    s.ns.cleanup().await
}

async fn scale(sts: &Api<StatefulSet>, name: &str, replicas: i32) -> anyhow::Result<()> {
    sts.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await
    .with_context(|| format!("scale {name} to {replicas}"))?;
    Ok(())
}

#[tokio::test]
async fn alerts_fire_when_validators_stop_and_clear_when_restored() -> anyhow::Result<()> {
    let s = setup("mon-alerts").await?;
    let sts: Api<StatefulSet> = s.ns.api();
    let nodes: Api<BesuNode> = s.ns.api();
    let chain_alerts = [
        "BesuValidatorDown",
        "BesuFaultToleranceZero",
        "BesuChainNotProducing",
    ];
    let result = async {
        // A healthy network first: every node Ready, none of the alerts firing.
        wait_until("every node Ready", BRING_UP, || async {
            let list = nodes.list(&Default::default()).await?;
            let ready = list
                .iter()
                .filter(|n| {
                    n.status
                        .as_ref()
                        .is_some_and(|s| s.phase == NodePhase::Ready)
                })
                .count();
            if list.items.len() == 8 && ready == 8 {
                Ok(Check::Done(()))
            } else {
                not_yet(format!("{ready}/{} Ready", list.items.len()))
            }
        })
        .await?;
        wait_until("a healthy network with data", SCRAPE_WAIT, || async {
            let ft = s.query("besu_network_fault_tolerance").await?;
            let firing = s.firing().await?;
            if ft.len() == 1
                && ft[0]["value"][1] == "1"
                && chain_alerts.iter().all(|a| !firing.contains(*a))
            {
                Ok(Check::Done(()))
            } else {
                not_yet(format!("fault tolerance {ft:?}, firing {firing:?}"))
            }
        })
        .await?;

        // One of four validators stops: validator down, fault tolerance 0.
        scale(&sts, &format!("{NETWORK}-validator-3"), 0).await?;
        wait_until(
            "BesuValidatorDown and BesuFaultToleranceZero",
            ALERT_WAIT,
            || async {
                let f = s.firing().await?;
                if f.contains("BesuValidatorDown") && f.contains("BesuFaultToleranceZero") {
                    Ok(Check::Done(()))
                } else {
                    not_yet(format!("firing {f:?}"))
                }
            },
        )
        .await?;
        ensure!(
            !s.firing().await?.contains("BesuChainNotProducing"),
            "3 of 4 still produce"
        );

        // A second one: no quorum, the chain stops.
        scale(&sts, &format!("{NETWORK}-validator-2"), 0).await?;
        wait_until("BesuChainNotProducing", ALERT_WAIT, || async {
            let f = s.firing().await?;
            if f.contains("BesuChainNotProducing") {
                Ok(Check::Done(()))
            } else {
                not_yet(format!("firing {f:?}"))
            }
        })
        .await?;

        // Restored: all three clear.
        scale(&sts, &format!("{NETWORK}-validator-2"), 1).await?;
        scale(&sts, &format!("{NETWORK}-validator-3"), 1).await?;
        wait_until("the three alerts to clear", ALERT_WAIT, || async {
            let f = s.firing().await?;
            let still: Vec<&&str> = chain_alerts.iter().filter(|a| f.contains(**a)).collect();
            if still.is_empty() {
                Ok(Check::Done(()))
            } else {
                not_yet(format!("still firing {still:?}"))
            }
        })
        .await?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        bail!("{e:#}\n{}", s.logs());
    }
    s.ns.cleanup().await
}
