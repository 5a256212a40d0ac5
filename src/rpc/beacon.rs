//! A small client of the standard Beacon API (the consensus clients' REST API): sync
//! state, peers and finality, each call with a timeout and an error naming the endpoint.

use std::time::Duration;

use serde_json::Value;

/// A failed Beacon API call.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {reason}")]
pub struct BeaconError {
    /// The URL called.
    pub url: String,
    /// What went wrong.
    pub reason: String,
}

/// `/eth/v1/node/syncing`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BeaconSync {
    /// The head slot.
    pub head_slot: u64,
    /// Slots behind the wall clock.
    pub sync_distance: u64,
    /// Whether the node is syncing.
    pub is_syncing: bool,
    /// Whether the node cannot reach its execution client (absent in old clients).
    pub el_offline: Option<bool>,
    /// Whether the head was imported without its execution payload verified.
    pub is_optimistic: Option<bool>,
}

/// A Beacon API client.
#[derive(Clone, Debug)]
pub struct BeaconClient {
    http: reqwest::Client,
}

impl Default for BeaconClient {
    fn default() -> Self {
        BeaconClient::new(Duration::from_secs(3))
    }
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

impl BeaconClient {
    /// A client with the given per-call timeout.
    pub fn new(timeout: Duration) -> BeaconClient {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_idle_timeout(super::IDLE_CONNECTION)
            .pool_max_idle_per_host(1)
            .no_proxy()
            .build()
            .unwrap_or_default();
        BeaconClient { http }
    }

    async fn data(&self, url: String) -> Result<Value, BeaconError> {
        let fail = |reason: String| BeaconError {
            url: url.clone(),
            reason,
        };
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!("HTTP {}", resp.status())));
        }
        let v: Value = resp.json().await.map_err(|e| fail(e.to_string()))?;
        v.get("data")
            .cloned()
            .ok_or_else(|| fail(format!("no data in {v}")))
    }

    /// The sync state of the beacon node at `base` (`http://host:port`).
    pub async fn syncing(&self, base: &str) -> Result<BeaconSync, BeaconError> {
        let url = format!("{base}/eth/v1/node/syncing");
        let d = self.data(url.clone()).await?;
        let head_slot = d.get("head_slot").and_then(number);
        let sync_distance = d.get("sync_distance").and_then(number);
        let is_syncing = d.get("is_syncing").and_then(Value::as_bool);
        match (head_slot, sync_distance, is_syncing) {
            (Some(head_slot), Some(sync_distance), Some(is_syncing)) => Ok(BeaconSync {
                head_slot,
                sync_distance,
                is_syncing,
                el_offline: d.get("el_offline").and_then(Value::as_bool),
                is_optimistic: d.get("is_optimistic").and_then(Value::as_bool),
            }),
            _ => Err(BeaconError {
                url,
                reason: format!("unexpected syncing data {d}"),
            }),
        }
    }

    /// Connected peers.
    pub async fn peer_count(&self, base: &str) -> Result<u64, BeaconError> {
        let url = format!("{base}/eth/v1/node/peer_count");
        let d = self.data(url.clone()).await?;
        d.get("connected").and_then(number).ok_or(BeaconError {
            url,
            reason: format!("unexpected peer_count data {d}"),
        })
    }

    /// The finalized epoch of the head state.
    pub async fn finalized_epoch(&self, base: &str) -> Result<u64, BeaconError> {
        let url = format!("{base}/eth/v1/beacon/states/head/finality_checkpoints");
        let d = self.data(url.clone()).await?;
        d.get("finalized")
            .and_then(|f| f.get("epoch"))
            .and_then(number)
            .ok_or(BeaconError {
                url,
                reason: format!("unexpected finality data {d}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_come_as_strings_or_numbers() {
        assert_eq!(number(&serde_json::json!("12")), Some(12));
        assert_eq!(number(&serde_json::json!(7)), Some(7));
        assert_eq!(number(&serde_json::json!("x")), None);
    }

    #[tokio::test]
    async fn an_unreachable_beacon_names_its_url() {
        let c = BeaconClient::new(Duration::from_millis(300));
        let e = c.syncing("http://127.0.0.1:9").await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("http://127.0.0.1:9/eth/v1/node/syncing"),
            "{e}"
        );
    }
}
