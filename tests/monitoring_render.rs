//! What the monitoring node types render, checked by the pinned `promtool` (built from
//! Prometheus's Go module by `hack/build-tools.sh`): `promtool check config` on the
//! scrape configuration (with and without the operator job), `promtool check rules`
//! on the alert rules and on the PrometheusRule's groups, a `promtool test rules` unit
//! test of the alerts, and a structural check of the Grafana dashboard.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail, ensure};
use besu_operator::render::monitoring::{
    PROMETHEUS_CONFIG_FILE, RULES_FILE, alert_rules, dashboard, dashboard_panels, grafana_objects,
    prometheus_objects, prometheus_rule,
};
use besu_operator_api::{BesuNetwork, BesuNode, NodeType};
use serde_json::Value;

fn repo_root() -> PathBuf {
    // The checkout under test (set at run time; see tests/support's repo_root).
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// `promtool` from the pinned build; fails (never skips) when it has not been built.
fn promtool() -> anyhow::Result<PathBuf> {
    let out = Command::new(repo_root().join("hack/build-tools.sh"))
        .arg("bindir")
        .output()
        .context("run hack/build-tools.sh bindir")?;
    let path =
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("prometheus/promtool");
    ensure!(
        path.is_file(),
        "{} is missing: run `make tools`",
        path.display()
    );
    Ok(path)
}

fn promtool_ok(args: &[&str], dir: &Path) -> anyhow::Result<String> {
    let out = Command::new(promtool()?)
        .args(args)
        .current_dir(dir)
        .output()
        .context("run promtool")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("promtool {} failed:\n{text}", args.join(" "));
    }
    Ok(text)
}

fn network() -> anyhow::Result<BesuNetwork> {
    let text = std::fs::read_to_string(repo_root().join("samples/qbft-network.yaml"))?;
    let mut net: BesuNetwork = serde_yaml::from_str(&text)?;
    net.metadata.namespace = Some("chain-ns".to_string());
    net.metadata.uid = Some("00000000-0000-0000-0000-000000000001".to_string());
    Ok(net)
}

fn monitoring_node(t: NodeType) -> anyhow::Result<BesuNode> {
    Ok(besu_operator::render::monitoring::desired_monitoring_node(
        &network()?,
        t,
    )?)
}

/// The rendered ConfigMap's files, written to a fresh directory.
fn write_prometheus_files(operator: Option<&str>) -> anyhow::Result<tempfile::TempDir> {
    let node = monitoring_node(NodeType::Prometheus)?;
    let objects = prometheus_objects(&node, operator)?;
    let dir = tempfile::tempdir()?;
    for (file, text) in objects.config_map.data.unwrap_or_default() {
        std::fs::write(dir.path().join(file), text)?;
    }
    Ok(dir)
}

#[test]
fn promtool_accepts_the_scrape_config_and_rules() -> anyhow::Result<()> {
    for operator in [Some("besu-operator-metrics.ops.svc:8080"), None] {
        let dir = write_prometheus_files(operator)?;
        let out = promtool_ok(&["check", "config", PROMETHEUS_CONFIG_FILE], dir.path())?;
        assert!(out.contains("SUCCESS"), "{out}");
        // The config's rule file is found and checked, too.
        assert!(out.contains(RULES_FILE), "{out}");
        let out = promtool_ok(&["check", "rules", RULES_FILE], dir.path())?;
        assert!(
            out.contains(&format!("{} rules found", alert_rules().len())),
            "{out}"
        );
    }
    // The PrometheusRule carries the same groups.
    let rule = prometheus_rule(&monitoring_node(NodeType::Prometheus)?)?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("from-crd.yml"),
        serde_yaml::to_string(&serde_json::json!({"groups": rule["spec"]["groups"]}))?,
    )?;
    promtool_ok(&["check", "rules", "from-crd.yml"], dir.path())?;
    Ok(())
}

/// `promtool test rules`: the alerts fire on the series the operator and Besu export,
/// and stay quiet on a healthy network.
#[test]
fn alerts_fire_on_the_figures_they_watch() -> anyhow::Result<()> {
    let dir = write_prometheus_files(Some("op:8080"))?;
    let net = r#"namespace="chain-ns",network="qbft""#;
    let test = format!(
        r#"rule_files: [{RULES_FILE}]
evaluation_interval: 5s
tests:
- interval: 5s
  input_series:
  # A healthy node, and one that stopped at block 10 and lost its peers.
  - series: 'ethereum_blockchain_height{{{net},node="qbft-validator-0"}}'
    values: '0+1x60'
  - series: 'ethereum_blockchain_height{{{net},node="qbft-validator-1"}}'
    values: '0+1x10 10x50'
  - series: 'ethereum_peer_count{{{net},node="qbft-validator-1"}}'
    values: '0x60'
  - series: 'besu_network_validators{{{net},state="onchain"}}'
    values: '4x60'
  - series: 'besu_network_validators{{{net},state="ready"}}'
    values: '4x10 3x50'
  - series: 'besu_network_fault_tolerance{{{net}}}'
    values: '1x10 0x50'
  - series: 'besu_network_producing{{{net}}}'
    values: '1x40 0x20'
  - series: 'besu_operator_reconcile_errors_total{{controller="network",error="kube"}}'
    values: '0+1x60'
  alert_rule_test:
  - eval_time: 40s
    alertname: BesuValidatorDown
    exp_alerts: []
  - eval_time: 2m
    alertname: BesuValidatorDown
    exp_alerts:
    - exp_labels: {{severity: warning, namespace: chain-ns, network: qbft}}
      exp_annotations: {{summary: '1 on-chain validator(s) of chain-ns/qbft are not Ready'}}
  - eval_time: 2m
    alertname: BesuFaultToleranceZero
    exp_alerts:
    - exp_labels: {{severity: critical, namespace: chain-ns, network: qbft}}
      exp_annotations: {{summary: 'Network chain-ns/qbft cannot lose another validator without halting'}}
  - eval_time: 2m
    alertname: BesuChainNotProducing
    exp_alerts: []
  - eval_time: 4m50s
    alertname: BesuChainNotProducing
    exp_alerts:
    - exp_labels: {{severity: critical, namespace: chain-ns, network: qbft}}
      exp_annotations: {{summary: 'Network chain-ns/qbft is not producing blocks: more than a third of its validators may be down'}}
  - eval_time: 4m50s
    alertname: BesuPeerCountLow
    exp_alerts:
    - exp_labels: {{severity: warning, namespace: chain-ns, network: qbft, node: qbft-validator-1}}
      exp_annotations: {{summary: 'Node qbft-validator-1 has 0 peers'}}
  - eval_time: 4m50s
    alertname: BesuNodeBehindHead
    exp_alerts:
    - exp_labels: {{severity: warning, namespace: chain-ns, network: qbft, node: qbft-validator-1}}
      exp_annotations: {{summary: 'Node qbft-validator-1 is 48 blocks behind the head'}}
"#
    );
    std::fs::write(dir.path().join("alerts-test.yml"), test)?;
    let out = promtool_ok(&["test", "rules", "alerts-test.yml"], dir.path())?;
    assert!(out.contains("SUCCESS"), "{out}");
    Ok(())
}

#[test]
fn dashboard_is_well_formed_and_provisioned() -> anyhow::Result<()> {
    let node = monitoring_node(NodeType::Grafana)?;
    let g = grafana_objects(&node)?;
    let data = g.config_map.data.unwrap_or_default();
    let d: Value = serde_json::from_str(&data["besu-network.json"])?;
    assert_eq!(d, dashboard("chain-ns", "qbft"));
    for key in ["uid", "title", "panels", "schemaVersion", "time"] {
        assert!(!d[key].is_null(), "dashboard has no {key}");
    }
    let panels = d["panels"].as_array().context("panels")?;
    let wanted = dashboard_panels("chain-ns", "qbft");
    assert_eq!(panels.len(), wanted.len());
    let mut ids = std::collections::BTreeSet::new();
    let mut cells = std::collections::BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().context("id")?), "duplicate id");
        let pos = &p["gridPos"];
        let (x, y, w) = (pos["x"].as_u64(), pos["y"].as_u64(), pos["w"].as_u64());
        assert!(
            x.unwrap_or(99) + w.unwrap_or(99) <= 24,
            "panel wider than the grid"
        );
        assert!(cells.insert((x, y)), "two panels at {x:?},{y:?}");
        assert_eq!(p["datasource"]["uid"], "prometheus");
        let t = &p["targets"][0];
        assert_eq!(t["datasource"]["uid"], "prometheus");
        assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()));
    }
    // Every topic the issue asks for has a panel, with Besu's metric names.
    let all: String = wanted.iter().map(|(_, _, e)| e.as_str()).collect();
    for metric in [
        "ethereum_blockchain_height",
        "ethereum_peer_count",
        "besu_network_validators",
        "besu_network_fault_tolerance",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(all.contains(metric), "no panel uses {metric}");
    }
    // The datasource points at the network's Prometheus and is the default.
    let ds: Value = serde_yaml::from_str(&data["datasources.yaml"])?;
    assert_eq!(
        ds["datasources"][0]["url"],
        "http://qbft-prometheus.chain-ns.svc:9090"
    );
    assert_eq!(ds["datasources"][0]["uid"], "prometheus");
    // The admin password comes from the Secret, never from the Deployment itself.
    let dep = serde_json::to_string(&g.deployment)?;
    assert!(dep.contains("GF_SECURITY_ADMIN_PASSWORD") && dep.contains("secretKeyRef"));
    Ok(())
}

/// The EthereumNode alerts: `promtool check rules` on the committed PrometheusRule's
/// groups, and `promtool test rules`: each fires on the operator's `ethereum_node_*`
/// series when it should, and not on a healthy node.
#[test]
fn ethereum_node_alerts_fire_on_the_figures_they_watch() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("ethereum.yml"),
        besu_operator::render::ethereum::alert_rules_yaml(),
    )?;
    promtool_ok(&["check", "rules", "ethereum.yml"], dir.path())?;
    let committed =
        std::fs::read_to_string(repo_root().join("manifests/monitoring/ethereum-node-rules.yaml"))?;
    let rule: serde_json::Value = serde_yaml::from_str(&committed)?;
    std::fs::write(
        dir.path().join("from-crd.yml"),
        serde_yaml::to_string(&serde_json::json!({"groups": rule["spec"]["groups"]}))?,
    )?;
    promtool_ok(&["check", "rules", "from-crd.yml"], dir.path())?;
    let ok = r#"namespace="eth",name="dev",pod="dev-0""#;
    let bad = r#"namespace="eth",name="stuck",pod="stuck-0""#;
    let test = format!(
        r#"rule_files: [ethereum.yml]
evaluation_interval: 30s
tests:
- interval: 30s
  input_series:
  - series: 'ethereum_node_block_height{{{ok}}}'
    values: '0+1x120'
  - series: 'ethereum_node_block_height{{{bad}}}'
    values: '0+1x10 10x110'
  - series: 'ethereum_node_sync_distance{{{ok}}}'
    values: '0x120'
  - series: 'ethereum_node_sync_distance{{{bad}}}'
    values: '500x120'
  - series: 'ethereum_node_peers{{{ok},client="consensus"}}'
    values: '5x120'
  - series: 'ethereum_node_peers{{{bad},client="execution"}}'
    values: '0x120'
  - series: 'ethereum_node_reconcile_errors_total{{namespace="eth",name="dev"}}'
    values: '0x120'
  alert_rule_test:
  - eval_time: 4m
    alertname: EthereumNodeHeadNotAdvancing
    exp_alerts: []
  - eval_time: 20m
    alertname: EthereumNodeHeadNotAdvancing
    exp_alerts:
    - exp_labels: {{severity: critical, namespace: eth, name: stuck, pod: stuck-0}}
      exp_annotations: {{summary: 'EthereumNode eth/stuck (stuck-0): the execution head has not advanced for 5 minutes'}}
  - eval_time: 20m
    alertname: EthereumNodeNoPeers
    exp_alerts:
    - exp_labels: {{severity: warning, namespace: eth, name: stuck, pod: stuck-0, client: execution}}
      exp_annotations: {{summary: 'EthereumNode eth/stuck (stuck-0): its execution client has had no peers for 10 minutes'}}
  - eval_time: 20m
    alertname: EthereumNodeNotSynced
    exp_alerts: []
  - eval_time: 45m
    alertname: EthereumNodeNotSynced
    exp_alerts:
    - exp_labels: {{severity: warning, namespace: eth, name: stuck, pod: stuck-0}}
      exp_annotations: {{summary: 'EthereumNode eth/stuck (stuck-0) is 500 slots behind and has not caught up for 30 minutes'}}
  - eval_time: 45m
    alertname: EthereumNodeReconcileErrors
    exp_alerts: []
"#
    );
    std::fs::write(dir.path().join("ethereum-test.yml"), test)?;
    let out = promtool_ok(&["test", "rules", "ethereum-test.yml"], dir.path())?;
    assert!(out.contains("SUCCESS"), "{out}");
    Ok(())
}
