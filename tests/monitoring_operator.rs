//! The operator's own `/metrics` while the qbft sample scales from 4 to 5 validators
//! (with the Besu simulator): validator counts (desired, on-chain, ready), fault
//! tolerance, head height, producing, per-node height and lag, and the per-controller
//! reconcile counters and histogram.

mod operator;
mod safety;
mod support;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use besu_operator_api::BesuNetwork;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use operator::{install_crds, qbft_chain_only};
use support::{Check, TestNamespace, cluster, not_yet, wait_until};

const NETWORK: &str = "qbft";
const BRING_UP: Duration = Duration::from_secs(180);
const SCALE_WAIT: Duration = Duration::from_secs(240);

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("reqwest client")
}

/// Series → value from the text format (no `# ` lines).
fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(addr: &str) -> anyhow::Result<BTreeMap<String, f64>> {
    let r = http().get(format!("http://{addr}/metrics")).send().await?;
    ensure!(r.status().is_success(), "GET /metrics: {}", r.status());
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    ensure!(
        ct.starts_with("application/openmetrics-text"),
        "content type {ct}"
    );
    Ok(parse(&r.text().await?))
}

/// The network's figures from one scrape: (desired, onchain, ready, fault tolerance).
fn figures(
    m: &BTreeMap<String, f64>,
    ns: &str,
) -> (Option<f64>, Option<f64>, Option<f64>, Option<f64>) {
    let net = format!("namespace=\"{ns}\",network=\"{NETWORK}\"");
    let v = |s: &str| {
        m.get(&format!("besu_network_validators{{{net},state=\"{s}\"}}"))
            .copied()
    };
    (
        v("desired"),
        v("onchain"),
        v("ready"),
        m.get(&format!("besu_network_fault_tolerance{{{net}}}"))
            .copied(),
    )
}

#[tokio::test]
async fn operator_metrics_follow_a_scale_from_4_to_5_validators() -> anyhow::Result<()> {
    let c = cluster();
    let client = c.client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "mon-operator").await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let log = std::env::temp_dir().join(format!("besu-operator-{}.log", ns.name));
    let out = std::fs::File::create(&log)?;
    let _op = Proc(
        Command::new(env!("CARGO_BIN_EXE_besu-operator"))
            .args([
                "run",
                "--http-addr",
                &addr,
                "--namespaces",
                &ns.name,
                "--resync-seconds",
                "5",
                "--chain-poll-seconds",
                "2",
            ])
            .env("KUBECONFIG", &c.kubeconfig)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("start besu-operator")?,
    );
    let mut net: BesuNetwork = qbft_chain_only()?;
    net.metadata.namespace = Some(ns.name.clone());
    let networks: Api<BesuNetwork> = ns.api();
    networks.create(&PostParams::default(), &net).await?;
    let name = ns.name.clone();
    let result = async {
        // 4 validators, all on-chain and Ready, tolerating 1; the chain producing.
        wait_until(
            "4/4/4 validators, fault tolerance 1, producing",
            BRING_UP,
            || async {
                let m = scrape(&addr).await?;
                let f = figures(&m, &name);
                let producing = m.get(&format!(
                    "besu_network_producing{{namespace=\"{name}\",network=\"{NETWORK}\"}}"
                ));
                if f == (Some(4.0), Some(4.0), Some(4.0), Some(1.0)) && producing == Some(&1.0) {
                    Ok(Check::Done(()))
                } else {
                    not_yet(format!("{f:?}, producing {producing:?}"))
                }
            },
        )
        .await?;

        networks
            .patch(
                NETWORK,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"validators": 5}})),
            )
            .await?;
        // Every scrape during the change: desired is 5 as soon as the operator saw the
        // spec, the on-chain set only grows 4 → 5, and fault tolerance stays 1 (4 and
        // 5 validators both tolerate one stopped, none is down).
        let seen_onchain = std::cell::RefCell::new(Vec::new());
        let samples = std::cell::Cell::new(0u32);
        // A probe error only means "not yet" to wait_until: violations are collected.
        let violations = std::cell::RefCell::new(Vec::<String>::new());
        wait_until("5/5/5 validators, fault tolerance 1", SCALE_WAIT, || {
            let addr = addr.clone();
            let name = name.clone();
            let seen = &seen_onchain;
            let violations = &violations;
            samples.set(samples.get() + 1);
            async move {
                let m = scrape(&addr).await?;
                let (desired, onchain, ready, ft) = figures(&m, &name);
                if let Some(o) = onchain {
                    let mut seen = seen.borrow_mut();
                    if seen.last() != Some(&o) {
                        seen.push(o);
                    }
                }
                if ft.is_some_and(|ft| ft != 1.0)
                    || ready.is_some_and(|r| !(4.0..=5.0).contains(&r))
                {
                    violations.borrow_mut().push(format!(
                        "on-chain {onchain:?}, ready {ready:?}, fault tolerance {ft:?}"
                    ));
                }
                if (desired, onchain, ready) == (Some(5.0), Some(5.0), Some(5.0)) {
                    Ok(Check::Done(()))
                } else {
                    not_yet(format!(
                        "desired {desired:?}, on-chain {onchain:?}, ready {ready:?}, ft {ft:?}"
                    ))
                }
            }
        })
        .await?;
        let violations = violations.into_inner();
        assert!(violations.is_empty(), "during the scale: {violations:?}");
        let seen_onchain = seen_onchain.into_inner();
        assert_eq!(
            seen_onchain,
            vec![4.0, 5.0],
            "the on-chain count went {seen_onchain:?}"
        );
        assert!(samples.get() > 3, "only {} samples", samples.get());

        // Per node: 7 nodes with height and lag; the head matches the highest height.
        let m = wait_until("7 nodes with figures", BRING_UP, || async {
            let m = scrape(&addr).await?;
            let n = m
                .keys()
                .filter(|k| k.starts_with("besu_node_block_height{") && k.contains(&name))
                .count();
            if n == 7 {
                Ok(Check::Done(m))
            } else {
                not_yet(format!("{n} nodes"))
            }
        })
        .await?;
        let head = m
            .get(&format!(
                "besu_network_block_height{{namespace=\"{name}\",network=\"{NETWORK}\"}}"
            ))
            .copied()
            .context("no head")?;
        let max = m
            .iter()
            .filter(|(k, _)| k.starts_with("besu_node_block_height{"))
            .map(|(_, v)| *v)
            .fold(0.0, f64::max);
        assert_eq!(head, max);
        for (k, v) in m
            .iter()
            .filter(|(k, _)| k.starts_with("besu_node_lag_blocks{"))
        {
            assert!(*v <= 5.0, "{k} {v}");
        }
        assert!(m.keys().any(|k| k.starts_with("besu_node_peers{")));
        // Reconciles are counted and timed per controller.
        for controller in ["network", "node"] {
            let count = m
                .get(&format!(
                    "besu_operator_reconciles_total{{controller=\"{controller}\"}}"
                ))
                .copied()
                .unwrap_or(0.0);
            let timed = m
                .get(&format!(
                    "besu_operator_reconcile_duration_seconds_count{{controller=\"{controller}\"}}"
                ))
                .copied()
                .unwrap_or(0.0);
            assert!(
                count > 0.0 && count == timed,
                "{controller}: {count} reconciles, {timed} timed"
            );
        }
        // The chain was safe up to here; what follows is the user's deletion, which
        // takes every validator down by the user's hand.
        safety::assert_chain_safe(&name, NETWORK, &[], 5_000).await?;
        // A deleted network's series go (it is never reconciled again).
        networks.delete(NETWORK, &Default::default()).await?;
        wait_until(
            "the deleted network's series to go",
            Duration::from_secs(60),
            || async {
                let m = scrape(&addr).await?;
                let left = m
                    .keys()
                    .filter(|k| k.contains(&format!("namespace=\"{name}\"")))
                    .count();
                if left == 0 {
                    Ok(Check::Done(()))
                } else {
                    not_yet(format!("{left} series left"))
                }
            },
        )
        .await?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        bail!(
            "{e:#}\n--- operator ---\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    ns.cleanup().await
}
