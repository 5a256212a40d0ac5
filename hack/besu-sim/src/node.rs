//! One simulated Besu process: its sync progress, health checks and metrics.

use serde::Serialize;

/// Besu's `--max-peers` default (besu-facts §5).
pub const MAX_PEERS: usize = 25;

/// Sync progress of a node that started behind the head. Linear: it reaches the head
/// `duration_ms` after it started (the head may move meanwhile), then follows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SyncModel {
    pub start_height: u64,
    pub started_ms: u64,
    pub duration_ms: u64,
    pub done: bool,
}

/// What `eth_syncing` reports while a node is behind (`SyncingResult`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SyncStatus {
    pub starting: u64,
    pub current: u64,
    pub highest: u64,
}

impl SyncModel {
    /// A node whose local chain ends at `start_height` when the network's head is `head`.
    pub fn new(start_height: u64, head: u64, now_ms: u64, duration_ms: u64) -> SyncModel {
        SyncModel {
            start_height,
            started_ms: now_ms,
            duration_ms,
            done: start_height >= head,
        }
    }

    /// The node's local head.
    pub fn height(&self, now_ms: u64, head: u64) -> u64 {
        if self.done || self.start_height >= head || self.duration_ms == 0 {
            return head;
        }
        let elapsed = now_ms.saturating_sub(self.started_ms);
        if elapsed >= self.duration_ms {
            return head;
        }
        let gap = head - self.start_height;
        self.start_height + ((gap as u128 * elapsed as u128) / self.duration_ms as u128) as u64
    }

    /// Marks the sync done once the node has reached the head; from then on it follows.
    pub fn update(&mut self, now_ms: u64, head: u64) {
        if !self.done && self.height(now_ms, head) >= head {
            self.done = true;
        }
    }

    pub fn in_sync(&self, now_ms: u64, head: u64) -> bool {
        self.done || self.height(now_ms, head) >= head
    }

    /// `Synchronizer.getSyncStatus()`: present only while behind.
    pub fn status(&self, now_ms: u64, head: u64) -> Option<SyncStatus> {
        if self.in_sync(now_ms, head) {
            return None;
        }
        Some(SyncStatus {
            starting: self.start_height,
            current: self.height(now_ms, head),
            highest: head,
        })
    }
}

/// Besu's `ReadinessCheck.isHealthy`: with p2p enabled, at least `minPeers` peers
/// (default 1), and, while syncing, at most `maxBlocksBehind` (default 2) behind; a
/// parameter that is not a number means not ready.
pub fn readiness(
    peers: usize,
    sync: Option<SyncStatus>,
    min_peers: Option<&str>,
    max_blocks_behind: Option<&str>,
) -> bool {
    let min_peers = match min_peers {
        None => 1,
        Some(s) => match s.parse::<i32>() {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    if (peers as i64) < min_peers as i64 {
        return false;
    }
    match sync {
        None => true,
        Some(s) => {
            let max_behind = match max_blocks_behind {
                None => 2,
                Some(v) => match v.parse::<i64>() {
                    Ok(n) => n,
                    Err(_) => return false,
                },
            };
            (s.highest as i64 - s.current as i64) <= max_behind
        }
    }
}

/// The figures a node's `/metrics` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metrics {
    pub height: u64,
    pub best_known: u64,
    pub peers: usize,
    pub peer_limit: usize,
    pub in_sync: bool,
    pub head_timestamp: u64,
}

/// Prometheus text format with Besu's names and help texts (besu-facts §7):
/// `DefaultBlockchain` (`ethereum_blockchain_height`, `besu_blockchain_chain_head_timestamp`),
/// `EthPeers` (`ethereum_peer_count`, `ethereum_peer_limit`) and `DefaultSynchronizer`
/// (`ethereum_best_known_block_number`, `besu_synchronizer_in_sync`).
pub fn metrics_text(m: &Metrics) -> String {
    let gauges: [(&str, &str, f64); 6] = [
        (
            "besu_blockchain_chain_head_timestamp",
            "Timestamp from the current chain head",
            m.head_timestamp as f64,
        ),
        (
            "besu_synchronizer_in_sync",
            "Whether or not the local node has caught up to the best known peer",
            if m.in_sync { 1.0 } else { 0.0 },
        ),
        (
            "ethereum_best_known_block_number",
            "The estimated highest block available",
            m.best_known as f64,
        ),
        (
            "ethereum_blockchain_height",
            "The current height of the canonical chain",
            m.height as f64,
        ),
        (
            "ethereum_peer_count",
            "The current number of peers connected",
            m.peers as f64,
        ),
        (
            "ethereum_peer_limit",
            "The maximum number of peers this node allows to connect",
            m.peer_limit as f64,
        ),
    ];
    let mut out = String::new();
    for (name, help, value) in gauges {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value:?}\n"
        ));
    }
    out
}

/// Linux's `USER_HZ`: the unit of `utime`/`stime` in `/proc/<pid>/stat` (proc(5)); 100
/// on every architecture the kernel exports to user space.
const USER_HZ: f64 = 100.0;

/// The simulator process's own CPU time and resident memory.
///
/// Besu registers the Prometheus Java client's `StandardExports` under its `process`
/// category (`metrics/core/.../prometheus/PrometheusMetricsSystem.java`, `init`), so a
/// real node serves `process_cpu_seconds_total` and `process_resident_memory_bytes`.
/// One simulator process serves every simulated node, so every node reports the same,
/// real, figures of that process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcessFigures {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
}

/// Reads [`ProcessFigures`] from the text of `/proc/self/stat` and `/proc/self/status`;
/// `None` if either does not have the expected shape.
pub fn process_figures(stat: &str, status: &str) -> Option<ProcessFigures> {
    // Fields after the command name (which may hold spaces and parentheses): state is
    // field 3, utime field 14 and stime field 15 (proc(5)).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    let cpu_ticks = ticks(11)? + ticks(12)?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(ProcessFigures {
        cpu_seconds: cpu_ticks as f64 / USER_HZ,
        resident_bytes: rss_kib * 1024,
    })
}

/// [`ProcessFigures`] in Prometheus text format, with the Java client's names and types.
pub fn process_text(p: &ProcessFigures) -> String {
    format!(
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
         # TYPE process_cpu_seconds_total counter\n\
         process_cpu_seconds_total {:?}\n\
         # HELP process_resident_memory_bytes Resident memory size in bytes.\n\
         # TYPE process_resident_memory_bytes gauge\n\
         process_resident_memory_bytes {:?}\n",
        p.cpu_seconds, p.resident_bytes as f64
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_figures_from_procfs_text() {
        // A command name with a space and a parenthesis; utime 250, stime 50 ticks.
        let stat =
            "4242 (besu sim)) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 9 0 1 1 1";
        let status = "Name:\tbesu-sim\nVmPeak:\t  99999 kB\nVmRSS:\t   20480 kB\nThreads:\t9\n";
        let p = process_figures(stat, status).expect("figures");
        assert_eq!(p.cpu_seconds, 3.0);
        assert_eq!(p.resident_bytes, 20 * 1024 * 1024);
        let text = process_text(&p);
        assert!(text.contains("\nprocess_cpu_seconds_total 3.0\n"), "{text}");
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("\nprocess_resident_memory_bytes 20971520.0\n"),
            "{text}"
        );
        assert_eq!(process_figures("4242 (x) S 1", status), None);
        assert_eq!(process_figures(stat, "Name:\tx\n"), None);
    }

    #[test]
    fn process_figures_of_this_process() {
        let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        let p = process_figures(&stat, &status).expect("figures");
        assert!(p.resident_bytes > 0);
        assert!(p.cpu_seconds >= 0.0);
    }

    /// A node that starts behind reaches the head within the sync duration, even
    /// though the head moves meanwhile; then it follows the head.
    #[test]
    fn sync_catches_up_within_the_duration() {
        let mut s = SyncModel::new(10, 110, 1_000, 2_000);
        assert!(!s.done);
        assert_eq!(s.height(1_000, 110), 10);
        assert_eq!(s.height(2_000, 110), 60);
        assert_eq!(
            s.status(2_000, 111),
            Some(SyncStatus {
                starting: 10,
                current: 60,
                highest: 111
            })
        );
        s.update(2_500, 112);
        assert!(!s.done);
        s.update(3_000, 112);
        assert!(s.done);
        assert_eq!(s.height(3_000, 113), 113);
        assert_eq!(s.status(3_000, 113), None);
    }

    #[test]
    fn a_node_at_the_head_is_in_sync_at_once() {
        let s = SyncModel::new(0, 0, 5, 2_000);
        assert!(s.done);
        assert_eq!(s.status(5, 0), None);
        // A retained local chain at the head: in sync.
        assert!(SyncModel::new(42, 42, 0, 2_000).done);
    }

    /// Besu `ReadinessCheck` (and `ReadinessCheckTest`): minPeers default 1,
    /// maxBlocksBehind default 2, non-numeric parameters → not ready, no sync status →
    /// ready.
    #[test]
    fn readiness_follows_besu() {
        let behind = |current, highest| {
            Some(SyncStatus {
                starting: 0,
                current,
                highest,
            })
        };
        assert!(!readiness(0, None, None, None));
        assert!(readiness(1, None, None, None));
        assert!(readiness(0, None, Some("0"), None));
        assert!(!readiness(2, None, Some("3"), None));
        assert!(!readiness(5, None, Some("abc"), None));
        assert!(readiness(1, behind(8, 10), None, None));
        assert!(!readiness(1, behind(7, 10), None, None));
        assert!(readiness(1, behind(0, 10), None, Some("10")));
        assert!(!readiness(1, behind(8, 10), None, Some("x")));
        // maxBlocksBehind is only read while syncing.
        assert!(readiness(1, None, None, Some("x")));
        assert!(readiness(0, behind(8, 10), Some("0"), Some("2")));
    }

    #[test]
    fn metrics_use_besu_names() {
        let text = metrics_text(&Metrics {
            height: 12,
            best_known: 14,
            peers: 3,
            peer_limit: MAX_PEERS,
            in_sync: false,
            head_timestamp: 1_700_000_000,
        });
        assert!(text.contains(
            "# TYPE ethereum_blockchain_height gauge\nethereum_blockchain_height 12.0\n"
        ));
        assert!(text.contains("\nethereum_peer_count 3.0\n"));
        assert!(text.contains("\nbesu_synchronizer_in_sync 0.0\n"));
        assert!(text.contains("\nethereum_best_known_block_number 14.0\n"));
        assert!(text.contains("\nethereum_peer_limit 25.0\n"));
    }
}
