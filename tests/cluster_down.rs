//! `hack/local-cluster.sh down` leaves nothing behind: a throwaway cluster in a
//! temporary state dir is started (and `up` again is a no-op), given a volume,
//! then stopped; none of its processes, listening ports, volume directories
//! or state remain.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::{Cluster, run_cluster_script, run_cluster_script_with};

/// The throwaway cluster has kwok nodes only: the machine's one real node belongs to
/// the test cluster (its teardown is checked by hack/run-tests.sh: real-node.sh
/// check-clean).
const KWOK_ONLY: &[(&str, &str)] = &[("BESU_REAL_NODE", "0")];

/// Runs `down` on drop, so a failing test does not leak its cluster.
struct Throwaway(PathBuf);

impl Drop for Throwaway {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = run_cluster_script(&self.0, "down");
        }
    }
}

fn pids(dir: &Path) -> BTreeMap<String, u32> {
    std::fs::read_dir(dir.join("pids"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e
                        .file_name()
                        .to_string_lossy()
                        .strip_suffix(".pid")?
                        .to_string();
                    let pid = std::fs::read_to_string(e.path())
                        .ok()?
                        .trim()
                        .parse()
                        .ok()?;
                    Some((name, pid))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Running and not a zombie. (A stopped daemon whose parent already exited is
/// re-parented to PID 1; if PID 1 does not reap, it stays a zombie: dead, no
/// sockets, no memory, only a process-table entry.)
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
    !matches!(state, Some(Some('Z' | 'X')) | None)
}

/// Local ports in LISTEN state, from /proc/net/tcp and tcp6.
fn listening_ports() -> Vec<u16> {
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() > 3
                && fields[3] == "0A"
                && let Some(port) = fields[1]
                    .rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            {
                ports.push(port);
            }
        }
    }
    ports
}

#[test]
fn down_leaves_no_process_port_volume_or_state_behind() -> anyhow::Result<()> {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("clusters");
    std::fs::create_dir_all(&base)?;
    let dir = base.join(format!("throwaway-{}", std::process::id()));
    let _guard = Throwaway(dir.clone());

    let started = Instant::now();
    let env_line = run_cluster_script_with(&dir, "up", KWOK_ONLY)?;
    eprintln!("throwaway cluster up in {:.1?}", started.elapsed());
    assert_eq!(
        env_line.trim(),
        format!("export KUBECONFIG={}/kubeconfig", dir.display())
    );

    let cluster = Cluster::at(&dir);
    let before = pids(&dir);
    for name in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    ] {
        let pid = before.get(name).copied();
        assert!(pid.is_some_and(alive), "{name} runs (pid {pid:?})");
    }
    let ports: Vec<u16> = [
        "ETCD_PORT",
        "ETCD_PEER_PORT",
        "API_PORT",
        "CONTROLLER_MANAGER_PORT",
        "SCHEDULER_PORT",
        "KWOK_PORT",
    ]
    .iter()
    .map(|k| {
        cluster
            .env_value(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} in cluster.env"))
    })
    .collect();
    let listening = listening_ports();
    for p in &ports[..5] {
        assert!(listening.contains(p), "port {p} listens while up");
    }

    // `up` on a running cluster: the same line, the same processes.
    assert_eq!(run_cluster_script_with(&dir, "up", KWOK_ONLY)?, env_line);
    assert_eq!(pids(&dir), before);
    run_cluster_script(&dir, "status")?;

    // A claim gets a volume directory from the hostpath provisioner.
    let claim = r#"{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"c","namespace":"default"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}"#;
    let claim_file = dir.join("claim.json");
    std::fs::write(&claim_file, claim)?;
    cluster.kubectl(&["create", "-f", claim_file.to_str().unwrap_or_default()])?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let volume_dir = loop {
        let path = cluster.kubectl(&["get", "pv", "-o", "jsonpath={.items[0].spec.hostPath.path}"]);
        if let Ok(path) = path
            && !path.is_empty()
            && Path::new(&path).is_dir()
        {
            break PathBuf::from(path);
        }
        assert!(
            Instant::now() < deadline,
            "no volume provisioned within 60 s"
        );
        std::thread::sleep(support::POLL_INTERVAL);
    };

    let stopping = Instant::now();
    run_cluster_script(&dir, "down")?;
    eprintln!("down in {:.1?}", stopping.elapsed());

    for (name, pid) in &before {
        assert!(!alive(*pid), "{name} (pid {pid}) still runs after down");
    }
    let listening = listening_ports();
    for p in &ports {
        assert!(!listening.contains(p), "port {p} still listens after down");
    }
    assert!(!volume_dir.exists(), "{} remains", volume_dir.display());
    assert!(!dir.exists(), "state dir {} remains", dir.display());
    assert!(
        run_cluster_script(&dir, "status").is_err(),
        "status says up after down"
    );
    // down again: nothing to do, no error.
    run_cluster_script(&dir, "down")?;
    Ok(())
}
