//! Shared by the install, RBAC and leader election tests: the operator binary run with
//! arbitrary arguments and credentials, kubeconfigs for ServiceAccount tokens, pinned
//! tool paths, waits on a network's phase, and applying generated manifests.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use besu_operator_api::{BesuNetwork, NetworkPhase};
use kube::Api;

use crate::support::{Check, Cluster, kubectl_path, not_yet, repo_root, unique_name, wait_until};

/// A pinned tool from `hack/build-tools.sh` (`helm/helm`, `operator-sdk/operator-sdk`).
/// Fails, never skips, when it has not been built.
pub fn tool(rel: &str) -> anyhow::Result<PathBuf> {
    let out = Command::new(repo_root().join("hack/build-tools.sh"))
        .arg("bindir")
        .output()
        .context("run hack/build-tools.sh bindir")?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join(rel);
    if !path.is_file() {
        bail!(
            "{} is missing: run `make tools` (hack/build-tools.sh)",
            path.display()
        );
    }
    Ok(path)
}

/// Runs a command; returns (exit status, stdout, stderr).
pub fn run(cmd: &mut Command) -> anyhow::Result<(ExitStatus, String, String)> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {cmd:?}"))?;
    Ok((
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A kubeconfig for `cluster` that authenticates with `token` only (no client
/// certificate): the cluster entry of the admin kubeconfig, a token user.
pub fn token_kubeconfig(
    cluster: &Cluster,
    token: &str,
    file_stem: &str,
) -> anyhow::Result<PathBuf> {
    let admin: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(&cluster.kubeconfig).context("read admin kubeconfig")?,
    )?;
    let clusters = admin
        .get("clusters")
        .cloned()
        .context("kubeconfig has no clusters")?;
    let cluster_name = clusters
        .get(0)
        .and_then(|c| c.get("name"))
        .and_then(|n| n.as_str())
        .context("kubeconfig cluster has no name")?
        .to_string();
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": clusters,
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": cluster_name, "user": "sa"}}],
        "current-context": "sa",
    });
    let path = std::env::temp_dir().join(format!("{file_stem}.kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&config)?)?;
    Ok(path)
}

/// `kubectl apply -f <file>` with the admin kubeconfig, from a YAML string.
pub fn kubectl_apply(cluster: &Cluster, yaml: &str, extra: &[&str]) -> anyhow::Result<String> {
    let file = std::env::temp_dir().join(format!("{}.yaml", unique_name("apply")));
    std::fs::write(&file, yaml)?;
    let path = file.to_string_lossy().into_owned();
    let mut args = vec!["apply", "-f", path.as_str()];
    args.extend_from_slice(extra);
    let out = cluster.kubectl(&args);
    let _ = std::fs::remove_file(&file);
    out
}

/// Deletes cluster-scoped objects (`kind/name`) when dropped, so that a failed test
/// leaves no ClusterRole behind.
pub struct ClusterScopedCleanup {
    pub kubeconfig: PathBuf,
    pub objects: Vec<String>,
}

impl Drop for ClusterScopedCleanup {
    fn drop(&mut self) {
        for o in &self.objects {
            let _ = Command::new(kubectl_path())
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["delete", o, "--ignore-not-found", "--wait=false"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The operator binary, run with the given arguments and kubeconfig. Dropping it
/// kills the process.
pub struct OperatorProcess {
    child: std::sync::Mutex<Option<Child>>,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    /// Its name in test output (and its `--instance`, when the caller passes one).
    pub name: String,
}

impl OperatorProcess {
    /// Starts `besu-operator run <args>` with `KUBECONFIG=kubeconfig`, listening on a
    /// free loopback port, with a 5 s resync unless `args` sets one.
    pub fn start(name: &str, kubeconfig: &Path, args: &[&str]) -> anyhow::Result<Self> {
        let log = std::env::temp_dir().join(format!("{}.log", unique_name(name)));
        let file = std::fs::File::create(&log)?;
        let resync: &[&str] = if args.contains(&"--resync-seconds") {
            &[]
        } else {
            &["--resync-seconds", "5"]
        };
        let child = Command::new(env!("CARGO_BIN_EXE_besu-operator"))
            .arg("run")
            .args(["--http-addr", "127.0.0.1:0"])
            .args(resync)
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,besu_operator=debug")
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("start besu-operator")?;
        Ok(OperatorProcess {
            child: std::sync::Mutex::new(Some(child)),
            log,
            name: name.to_string(),
        })
    }

    /// SIGKILL, as a crash would; waits for the exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.take_child() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (a pod being stopped); waits up to `timeout` for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let mut child = self.take_child().context("not running")?;
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        let start = std::time::Instant::now();
        loop {
            if let Some(s) = child.try_wait()? {
                return Ok(s);
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{} did not exit within {timeout:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn take_child(&mut self) -> Option<Child> {
        self.child
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// The exit status, if the process has exited on its own.
    pub fn exited(&self) -> Option<ExitStatus> {
        self.child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Everything it printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines it printed (a failure message that shows the whole log of a
    /// long run gets cut in the middle by whoever shows it, and the end is what explains).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        let from = all.len().saturating_sub(lines);
        let mut out = String::new();
        if from > 0 {
            out.push_str(&format!(
                "[{from} earlier lines in {}]\n",
                self.log.display()
            ));
        }
        out.push_str(&all[from..].join("\n"));
        out
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits for a network's phase while `op` reconciles it: fails at once, with the end of
/// its log, if the operator exits on its own (a leader that lost its Lease does), and on
/// timeout says what was last seen, with the end of its log too.
pub async fn wait_phase_of(
    op: &OperatorProcess,
    api: &Api<BesuNetwork>,
    name: &str,
    phase: NetworkPhase,
    timeout: Duration,
) -> anyhow::Result<BesuNetwork> {
    // An exit ends the wait (Done with the reason), rather than being polled past.
    let waited = wait_until(
        &format!("BesuNetwork {name} {phase:?} ({} running)", op.name),
        timeout,
        || async {
            if let Some(status) = op.exited() {
                return Ok(Check::Done(Err(anyhow::anyhow!(
                    "{} exited with {status} before the network was {phase:?}",
                    op.name
                ))));
            }
            Ok(match phase_reached(api, name, phase).await? {
                Check::Done(net) => Check::Done(Ok(net)),
                Check::NotYet(seen) => Check::NotYet(seen),
            })
        },
    )
    .await
    .and_then(|outcome| outcome);
    waited.map_err(|e| anyhow::anyhow!("{e:#}\nend of {}'s log:\n{}", op.name, op.log_tail(80)))
}

/// Waits for a network's phase; on timeout says what was last seen.
pub async fn wait_phase(
    api: &Api<BesuNetwork>,
    name: &str,
    phase: NetworkPhase,
    timeout: Duration,
) -> anyhow::Result<BesuNetwork> {
    wait_until(&format!("BesuNetwork {name} {phase:?}"), timeout, || {
        phase_reached(api, name, phase)
    })
    .await
}

async fn phase_reached(
    api: &Api<BesuNetwork>,
    name: &str,
    phase: NetworkPhase,
) -> anyhow::Result<Check<BesuNetwork>> {
    let net = api.get(name).await?;
    let status = net.status.clone().unwrap_or_default();
    if status.phase == phase {
        Ok(Check::Done(net))
    } else {
        not_yet(format!(
            "phase {:?}; {}",
            status.phase,
            status
                .conditions
                .iter()
                .filter(|c| c.status != "True" || c.type_ == "Degraded")
                .map(|c| format!("{}={} ({})", c.type_, c.status, c.message))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// One audit event with the fields the RBAC tests need (the shared reader in
/// `tests/support` does not keep the API group).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub stage: String,
    pub verb: String,
    #[serde(rename = "requestURI", default)]
    pub request_uri: String,
    #[serde(default)]
    pub user_agent: String,
    pub user: AuditUser,
    pub object_ref: Option<AuditRef>,
    pub response_status: Option<AuditStatus>,
    pub request_received_timestamp: String,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct AuditUser {
    #[serde(default)]
    pub username: String,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRef {
    pub resource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    #[serde(default)]
    pub api_group: String,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct AuditStatus {
    pub code: Option<i32>,
}

impl AuditRecord {
    /// `group/resource[/subresource]`, with `core` for the core group.
    pub fn group_resource(&self) -> Option<(String, String)> {
        let o = self.object_ref.as_ref()?;
        let mut resource = o.resource.clone()?;
        if let Some(sub) = &o.subresource {
            resource = format!("{resource}/{sub}");
        }
        Some((o.api_group.clone(), resource))
    }
}

/// Every request by `username` in the audit log (stages ResponseStarted, for watches
/// still open, and ResponseComplete).
pub fn audit_by_user(cluster: &Cluster, username: &str) -> anyhow::Result<Vec<AuditRecord>> {
    let text = std::fs::read_to_string(&cluster.audit_log)
        .with_context(|| format!("read {}", cluster.audit_log.display()))?;
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    let mut out = Vec::new();
    for line in complete.lines().filter(|l| !l.trim().is_empty()) {
        let r: AuditRecord =
            serde_json::from_str(line).with_context(|| format!("audit line {line}"))?;
        if r.stage != "RequestReceived" && r.user.username == username {
            out.push(r);
        }
    }
    Ok(out)
}

/// Every request whose User-Agent is exactly `user_agent` (stages as in
/// [`audit_by_user`]), with when the API server received it.
pub fn audit_by_agent(
    cluster: &Cluster,
    user_agent: &str,
) -> anyhow::Result<Vec<(std::time::SystemTime, AuditRecord)>> {
    let text = std::fs::read_to_string(&cluster.audit_log)
        .with_context(|| format!("read {}", cluster.audit_log.display()))?;
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    let mut out = Vec::new();
    for line in complete.lines().filter(|l| !l.trim().is_empty()) {
        let r: AuditRecord =
            serde_json::from_str(line).with_context(|| format!("audit line {line}"))?;
        if r.stage != "RequestReceived" && r.user_agent == user_agent {
            let ts: k8s_openapi::jiff::Timestamp = r.request_received_timestamp.parse()?;
            let micros = u64::try_from(ts.as_microsecond()).context("timestamp before 1970")?;
            out.push((std::time::UNIX_EPOCH + Duration::from_micros(micros), r));
        }
    }
    Ok(out)
}

/// Whether an audited verb changes state.
pub fn is_write(verb: &str) -> bool {
    ["create", "update", "patch", "delete", "deletecollection"].contains(&verb)
}
