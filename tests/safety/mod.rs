//! The safety monitor: reads the Besu simulator's witness record of a chain
//! (`GET /chains/{ns}/{name}/witness`, `hack/besu-sim`) and says whether the operator ever
//! broke the promise it makes to a chain:
//!
//! - at no instant after the chain started did the operator cause a validator to be down
//!   while more than `n - ceil(2n/3)` of the `n` current validators were down (faults the
//!   test injected itself are labelled and do not count against the operator, but the
//!   operator must not add downtime on top of them beyond the budget);
//! - no node ever served with a key other than its first;
//! - the genesis never changed;
//! - the chain never stopped producing for longer than the test allows.
//!
//! The rule `n - ceil(2n/3)` is written out here (Besu's
//! `BftHelpers.calculateRequiredValidatorQuorum`), not imported from the operator: the
//! monitor must be able to disagree with it.
#![allow(dead_code)] // each test binary uses its own subset

use std::fmt::Write as _;

use anyhow::{Context as _, ensure};
use serde::Deserialize;

use crate::support::cluster;

pub mod real;

/// The witness record, as `besu-sim` serves it.
#[derive(Debug, Clone, Deserialize)]
pub struct Witness {
    pub now_ms: u64,
    #[serde(default)]
    pub block_period_ms: u64,
    #[serde(default)]
    pub genesis: Vec<GenesisSeen>,
    #[serde(default)]
    pub blocks: Vec<WitnessBlock>,
    #[serde(default)]
    pub nodes: Vec<WitnessNode>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GenesisSeen {
    pub sha256: String,
    pub first_seen_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WitnessBlock {
    pub number: u64,
    pub time_ms: u64,
    pub validators: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WitnessNode {
    pub pod: String,
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub node_type: Option<String>,
    #[serde(default)]
    pub keys: Vec<KeySeen>,
    #[serde(default)]
    pub starts: Vec<Start>,
    #[serde(default)]
    pub down: Vec<Down>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeySeen {
    pub address: String,
    pub first_seen_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Start {
    pub uid: String,
    pub at_ms: u64,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub revision: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Down {
    pub from_ms: u64,
    pub to_ms: Option<u64>,
    pub cause: String,
    #[serde(default)]
    pub uid: Option<String>,
}

/// A fault the test injected itself: the pod's next down interval that starts within
/// [`INJECTION_SLACK_MS`] after `at_ms` is the test's, not the operator's.
#[derive(Debug, Clone)]
pub struct Injected {
    pub pod: String,
    pub at_ms: u64,
    pub what: String,
}

/// How long after an injected fault the witness may first see the pod down.
pub const INJECTION_SLACK_MS: u64 = 5_000;

/// Validators that may be down while the rest still produce blocks:
/// `n - ceil(2n/3)` (Besu `BftHelpers.calculateRequiredValidatorQuorum`; BftHelpersTest:
/// 4 validators need 3, 7 need 5, 10 need 7).
pub fn fault_budget(n: usize) -> usize {
    n - (2 * n).div_ceil(3)
}

/// What the monitor saw, for the test's output.
#[derive(Debug, Default)]
pub struct Report {
    pub blocks: usize,
    pub validator_down_intervals: usize,
    pub injected_intervals: usize,
    /// The most validators down at once when the operator had one of them down.
    pub max_down_with_operator: usize,
    /// The budget at that instant.
    pub budget_then: usize,
    /// The longest time without a block after the chain started, in ms.
    pub max_gap_ms: u64,
    pub violations: Vec<String>,
}

impl Report {
    pub fn summary(&self) -> String {
        format!(
            "{} blocks; {} validator down intervals ({} injected by the test); at most {} validators down \
             at once with the operator's part in it (budget then {}); longest gap without a block {} ms; {} violation(s)",
            self.blocks,
            self.validator_down_intervals,
            self.injected_intervals,
            self.max_down_with_operator,
            self.budget_then,
            self.max_gap_ms,
            self.violations.len()
        )
    }
}

/// Checks a witness record. `max_gap_ms`: the longest time without a block this test
/// allows after the chain started (its injected faults included).
pub fn check(w: &Witness, injected: &[Injected], max_gap_ms: u64) -> Report {
    let mut r = Report {
        blocks: w.blocks.len(),
        ..Report::default()
    };
    // Identity: one key per pod name, one genesis per chain. The one allowed change: a
    // validator voted out of the set (its address in no block's set any more when the new
    // key first served) may come back as a new validator with a new key.
    let set_at_time = |t: u64| -> Vec<String> {
        let i = w.blocks.partition_point(|b| b.time_ms <= t);
        w.blocks
            .get(i.saturating_sub(1))
            .map(|b| b.validators.iter().map(|v| v.to_lowercase()).collect())
            .unwrap_or_default()
    };
    let ever_validator = |a: &str| {
        w.blocks
            .iter()
            .any(|b| b.validators.iter().any(|v| v.eq_ignore_ascii_case(a)))
    };
    for n in &w.nodes {
        for pair in n.keys.windows(2) {
            let (old, new) = (&pair[0], &pair[1]);
            if old.address.eq_ignore_ascii_case(&new.address) {
                continue;
            }
            let retired = ever_validator(&old.address)
                && !set_at_time(new.first_seen_ms).contains(&old.address.to_lowercase());
            if !retired {
                r.violations.push(format!(
                    "{} served with key {} and then with {} (at {} ms) while the first was still its identity",
                    n.pod, old.address, new.address, new.first_seen_ms
                ));
            }
        }
    }
    if w.genesis.len() > 1 {
        r.violations.push(format!(
            "the genesis changed: {}",
            w.genesis
                .iter()
                .map(|g| g.sha256.as_str())
                .collect::<Vec<_>>()
                .join(" then ")
        ));
    }

    // The chain starts with its first produced block (block 0 is the genesis, recorded
    // when the first node started): bring-up, before a quorum was ever up, is no fault.
    let Some(start_index) = w.blocks.iter().position(|b| b.number >= 1) else {
        return r;
    };
    let chain_start = w.blocks[start_index].time_ms;

    // Blocks: the longest gap after the chain started (up to now).
    let mut last = chain_start;
    for b in &w.blocks[start_index + 1..] {
        r.max_gap_ms = r.max_gap_ms.max(b.time_ms.saturating_sub(last));
        last = b.time_ms;
    }
    r.max_gap_ms = r.max_gap_ms.max(w.now_ms.saturating_sub(last));
    if r.max_gap_ms > max_gap_ms {
        r.violations.push(format!(
            "the chain produced no block for {} ms (this test allows {max_gap_ms} ms)",
            r.max_gap_ms
        ));
    }

    // Every validator down interval after the chain started, labelled.
    struct Interval<'a> {
        pod: &'a str,
        address: String,
        from: u64,
        to: u64,
        injected: bool,
        cause: String,
    }
    let mut intervals: Vec<Interval> = Vec::new();
    for n in &w.nodes {
        let Some(addr) = n.keys.first().map(|k| k.address.to_lowercase()) else {
            continue;
        };
        let mut used: Vec<bool> = vec![false; injected.len()];
        // One continuous outage may be recorded as several intervals (deleted, then
        // not-started, not-ready, syncing): merged, it keeps its first cause, so that an
        // injected fault covers the whole outage it caused.
        let mut merged: Vec<Down> = Vec::new();
        for d in &n.down {
            match merged.last_mut() {
                Some(last) if last.to_ms.is_some_and(|t| t + 1 >= d.from_ms) => {
                    last.to_ms = d.to_ms;
                }
                _ => merged.push(d.clone()),
            }
        }
        for d in &merged {
            let to = d.to_ms.unwrap_or(w.now_ms);
            if to <= chain_start {
                continue;
            }
            let from = d.from_ms.max(chain_start);
            let inj = injected.iter().enumerate().position(|(i, f)| {
                !used[i]
                    && f.pod == n.pod
                    && d.from_ms + 1_000 >= f.at_ms
                    && d.from_ms <= f.at_ms + INJECTION_SLACK_MS
            });
            if let Some(i) = inj {
                used[i] = true;
            }
            intervals.push(Interval {
                pod: &n.pod,
                address: addr.clone(),
                from,
                to,
                injected: inj.is_some(),
                cause: d.cause.clone(),
            });
        }
    }
    // The validator set in force at `t`: that of the last block produced at or before it.
    let set_at = |t: u64| -> Vec<String> {
        let i = w.blocks.partition_point(|b| b.time_ms <= t);
        let b = &w.blocks[i.saturating_sub(1)];
        b.validators.iter().map(|v| v.to_lowercase()).collect()
    };
    let mut report = String::new();
    for iv in &intervals {
        let set = set_at(iv.from);
        if !set.contains(&iv.address) {
            continue;
        }
        r.validator_down_intervals += 1;
        if iv.injected {
            r.injected_intervals += 1;
            continue;
        }
        // The operator's interval starts: how many current validators are down then?
        let down: Vec<&Interval> = intervals
            .iter()
            .filter(|o| set.contains(&o.address) && o.from <= iv.from && iv.from < o.to)
            .collect();
        let mut pods: Vec<&str> = down.iter().map(|o| o.pod).collect();
        pods.sort();
        pods.dedup();
        let budget = fault_budget(set.len());
        if pods.len() > r.max_down_with_operator {
            r.max_down_with_operator = pods.len();
            r.budget_then = budget;
        }
        if pods.len() > budget {
            report.clear();
            for o in &down {
                let _ = write!(
                    report,
                    " {}({}{}, {}..{})",
                    o.pod,
                    o.cause,
                    if o.injected { ", injected" } else { "" },
                    o.from,
                    o.to
                );
            }
            r.violations.push(format!(
                "at {} ms the operator had {} down ({}) while {} of {} validators were down, budget {}:{}",
                iv.from,
                iv.pod,
                iv.cause,
                pods.len(),
                set.len(),
                budget,
                report
            ));
        }
    }
    r
}

/// GETs `path` from the running simulator's admin endpoint, as JSON.
pub async fn sim_get<T: serde::de::DeserializeOwned>(path: &str) -> anyhow::Result<T> {
    let file = cluster().state_dir.join("besu-sim.addr");
    let addr = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "the Besu simulator is not running ({} missing)",
            file.display()
        )
    })?;
    let url = format!("http://{}{path}", addr.trim());
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .get(&url)
        .send()
        .await?;
    ensure!(resp.status().is_success(), "GET {url}: {}", resp.status());
    Ok(resp.json().await?)
}

/// Judges a witness record, prints the figures, and fails on any violation.
pub fn assert_safe(
    what: &str,
    w: &Witness,
    injected: &[Injected],
    max_gap_ms: u64,
) -> anyhow::Result<Report> {
    let r = check(w, injected, max_gap_ms);
    println!("safety monitor {what}: {}", r.summary());
    ensure!(
        r.violations.is_empty(),
        "the safety monitor found {} violation(s) on {what}:\n  {}",
        r.violations.len(),
        r.violations.join("\n  ")
    );
    Ok(r)
}

/// Fetches the witness record of a chain from the running simulator.
pub async fn witness(ns: &str, name: &str) -> anyhow::Result<Witness> {
    sim_get(&format!("/chains/{ns}/{name}/witness")).await
}

/// The end of every end-to-end test: fetch the witness, print the figures, fail on any
/// violation.
pub async fn assert_chain_safe(
    ns: &str,
    name: &str,
    injected: &[Injected],
    max_gap_ms: u64,
) -> anyhow::Result<Report> {
    let w = witness(ns, name).await?;
    assert_safe(&format!("{ns}/{name}"), &w, injected, max_gap_ms)
}
