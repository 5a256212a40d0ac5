//! Shared support for integration tests against the real local control plane
//! (`hack/local-cluster.sh`). Each test file includes it with `mod support;`.
//!
//! - [`cluster()`]: one cluster per test binary. When `KUBECONFIG` points at a
//!   running local cluster (as `hack/run-tests.sh` arranges), it is reused;
//!   otherwise this binary starts its own in a private state dir and a
//!   watchdog stops it as soon as the binary's process is gone (normal exit,
//!   panic or kill alike).
//! - [`TestNamespace`]: a fresh, uniquely named namespace per test.
//! - [`wait_until`]: poll with a deadline; on timeout, say what was last seen.
//! - [`AuditLog`]: read the API server's audit log and count writes by user agent.
#![allow(dead_code)] // each test binary uses its own subset

use std::fmt::Display;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::Deserialize;

/// The repository root (the root crate's manifest dir).
pub fn repo_root() -> PathBuf {
    // At run time first: cargo and hack/run-tests.sh set it to the checkout being tested.
    // Cargo reuses a test binary built in another checkout of the same sources when the
    // build directory is shared (CI's clone and a developer's checkout share
    // ~/.cache/besu-operator/target), and the path compiled in then names that checkout,
    // which may be gone or hold other files.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// `hack/local-cluster.sh`.
pub fn cluster_script() -> PathBuf {
    repo_root().join("hack/local-cluster.sh")
}

/// kubectl from the pinned tool build (not whatever is on PATH).
pub fn kubectl_path() -> PathBuf {
    let out = Command::new(repo_root().join("hack/build-tools.sh"))
        .arg("bindir")
        .output()
        .expect("run hack/build-tools.sh bindir");
    let bindir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    PathBuf::from(bindir).join("kubernetes/kubectl")
}

/// A running local cluster: where its state and credentials are.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The state dir (`BESU_CLUSTER_DIR`).
    pub state_dir: PathBuf,
    /// Admin kubeconfig (client certificate in `system:masters`).
    pub kubeconfig: PathBuf,
    /// The API server's audit log (JSON lines).
    pub audit_log: PathBuf,
    /// Whether this process started it (and its watchdog stops it).
    pub started_here: bool,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The cluster for this test binary, started on first use.
///
/// Panics when no cluster can be had: a test against the real cluster must not
/// pass without one.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| match reuse_from_env().or_else(start_own) {
        Ok(c) => c,
        Err(e) => panic!("no local cluster for the tests: {e:#}"),
    })
}

impl Cluster {
    /// A state dir that holds a cluster (no checks).
    pub fn at(state_dir: &Path) -> Self {
        Cluster {
            state_dir: state_dir.to_path_buf(),
            kubeconfig: state_dir.join("kubeconfig"),
            audit_log: state_dir.join("audit/audit.log"),
            started_here: false,
        }
    }

    /// A value from the cluster's `cluster.env` (ports, ranges, versions).
    pub fn env_value(&self, key: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.state_dir.join("cluster.env")).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
    }

    /// A kube client config for the admin user.
    pub async fn config(&self) -> anyhow::Result<Config> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)
            .with_context(|| format!("read {}", self.kubeconfig.display()))?;
        Ok(Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?)
    }

    /// A client for the admin user. Create one per test: a client belongs to
    /// the tokio runtime it was made in, and each `#[tokio::test]` has its own.
    pub async fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::try_from(self.config().await?)?)
    }

    /// An admin client that sends `User-Agent: <user_agent>` (audit tests).
    pub async fn client_with_user_agent(&self, user_agent: &str) -> anyhow::Result<Client> {
        let mut config = self.config().await?;
        config
            .headers
            .push(("user-agent".parse()?, user_agent.parse()?));
        Ok(Client::try_from(config)?)
    }

    /// A client that authenticates with a bearer token (e.g. a ServiceAccount
    /// token from [`service_account_token`]), trusting the cluster CA.
    pub async fn client_with_token(&self, token: &str) -> anyhow::Result<Client> {
        let mut config = self.config().await?;
        config.auth_info = kube::config::AuthInfo {
            token: Some(token.to_string().into()),
            ..Default::default()
        };
        Ok(Client::try_from(config)?)
    }

    /// Runs the pinned kubectl against this cluster; returns stdout or an error
    /// with stderr.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(kubectl_path())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("run kubectl")?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The kubeconfig of the identity `name` the cluster script made besides the admin
    /// (`hack/local-cluster.sh`: `<state dir>/<name>.kubeconfig`).
    pub fn kubeconfig_of(&self, name: &str) -> PathBuf {
        self.state_dir.join(format!("{name}.kubeconfig"))
    }

    /// The audit log of this cluster.
    pub fn audit(&self) -> AuditLog {
        AuditLog::new(&self.audit_log)
    }
}

/// Runs `hack/local-cluster.sh <action>` with `BESU_CLUSTER_DIR=<state_dir>`.
pub fn run_cluster_script(state_dir: &Path, action: &str) -> anyhow::Result<String> {
    run_cluster_script_with(state_dir, action, &[])
}

/// [`run_cluster_script`] with extra environment (e.g. `BESU_REAL_NODE=0` for a second
/// cluster: one real node per machine).
pub fn run_cluster_script_with(
    state_dir: &Path,
    action: &str,
    env: &[(&str, &str)],
) -> anyhow::Result<String> {
    let out = Command::new(cluster_script())
        .arg(action)
        .envs(env.iter().copied())
        .env("BESU_CLUSTER_DIR", state_dir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run hack/local-cluster.sh {action}"))?;
    if !out.status.success() {
        bail!(
            "hack/local-cluster.sh {action} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `KUBECONFIG` names a kubeconfig inside a local-cluster state dir whose
/// cluster is up: reuse it. Anything else (unset, a remote cluster, a stopped
/// local one) is not used.
fn reuse_from_env() -> anyhow::Result<Cluster> {
    let kubeconfig = std::env::var_os("KUBECONFIG").context("KUBECONFIG is not set")?;
    let kubeconfig = PathBuf::from(kubeconfig);
    let dir = kubeconfig
        .parent()
        .context("KUBECONFIG has no parent dir")?;
    if !dir.join("cluster.env").is_file() {
        bail!(
            "KUBECONFIG is not a local cluster's ({})",
            kubeconfig.display()
        );
    }
    run_cluster_script(dir, "status")?;
    Ok(Cluster::at(dir))
}

fn start_own(why_not_reused: anyhow::Error) -> anyhow::Result<Cluster> {
    let exe = std::env::current_exe()?;
    let stem = exe
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tests".into());
    // A short path: the real node's kubelet dials sockets under it, and a socket address
    // holds at most 107 bytes (hack/real-node.sh).
    let name = stem.split('-').next().unwrap_or("tests");
    let dir = PathBuf::from("/tmp").join(format!("besu-cluster-{name}-{}", std::process::id()));
    eprintln!(
        "support: starting a local cluster for this test binary in {} (not reusing one: {why_not_reused:#})",
        dir.display()
    );
    std::fs::create_dir_all(dir.parent().expect("has parent"))?;
    // The watchdog first: even if `up` fails half-way, what it started goes.
    Command::new(cluster_script())
        .arg("down-when-gone")
        .arg(std::process::id().to_string())
        .env("BESU_CLUSTER_DIR", &dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start the cluster watchdog")?;
    let started = Instant::now();
    run_cluster_script(&dir, "up")?;
    eprintln!("support: cluster up in {:.1?}", started.elapsed());
    Ok(Cluster {
        started_here: true,
        ..Cluster::at(&dir)
    })
}

// --- waiting --------------------------------------------------------------

/// What one poll of [`wait_until`] found.
pub enum Check<T> {
    /// The condition holds; the wait returns this value.
    Done(T),
    /// Not yet; says what was seen (reported if the deadline passes).
    NotYet(String),
}

/// Shorthand for `Ok(Check::NotYet(seen.to_string()))`.
pub fn not_yet<T>(seen: impl Display) -> anyhow::Result<Check<T>> {
    Ok(Check::NotYet(seen.to_string()))
}

/// The interval between polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Polls `probe` every [`POLL_INTERVAL`] until it returns `Check::Done` or
/// `timeout` passes. A probe error counts as "not yet" (the API may be busy)
/// and is reported like any other observation. On timeout, the error names
/// `what`, the time waited and the last observation.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Check<T>>>,
{
    let start = Instant::now();
    let mut polls = 0u32;
    loop {
        polls += 1;
        let last_seen = match probe().await {
            Ok(Check::Done(v)) => return Ok(v),
            Ok(Check::NotYet(seen)) => seen,
            Err(e) => format!("error: {e:#}"),
        };
        if start.elapsed() >= timeout {
            bail!(
                "timed out after {:.1?} ({polls} polls) waiting for {what}; last seen: {last_seen}",
                start.elapsed()
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

// --- namespaces -----------------------------------------------------------

static NAME_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A DNS-1123 label `<prefix>-<unique suffix>` (unique per process and call).
pub fn unique_name(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = NAME_COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = format!(
        "{:x}{:x}{n:x}",
        std::process::id() & 0xffff,
        nanos & 0xfffff
    );
    let mut prefix: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    prefix.truncate(62 - suffix.len());
    format!("{}-{suffix}", prefix.trim_matches('-'))
}

/// A fresh namespace for one test. Call [`TestNamespace::cleanup`] at the end
/// (it also proves that namespace deletion completes); if a test fails before,
/// `Drop` asks the API server to delete it (kubectl, fire and forget) and
/// never panics.
pub struct TestNamespace {
    pub name: String,
    client: Client,
    kubeconfig: PathBuf,
    cleaned: bool,
}

/// Label on every test namespace.
pub const TEST_NAMESPACE_LABEL: &str = "besu-operator.local/test";

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> anyhow::Result<Self> {
        let name = unique_name(prefix);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(TEST_NAMESPACE_LABEL.to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("create namespace {name}"))?;
        Ok(TestNamespace {
            name,
            client: client.clone(),
            kubeconfig: cluster().kubeconfig.clone(),
            cleaned: false,
        })
    }

    /// A namespaced API in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Deletes the namespace and waits until it is gone (namespace controller,
    /// garbage collection and the fake kubelets all have to play along).
    pub async fn cleanup(mut self) -> anyhow::Result<()> {
        self.cleaned = true;
        let api = Api::<Namespace>::all(self.client.clone());
        match api.delete(&self.name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(e).context(format!("delete namespace {}", self.name)),
        }
        let name = self.name.clone();
        wait_until(
            &format!("namespace {name} to be deleted"),
            Duration::from_secs(120),
            || async {
                match api.get_opt(&name).await? {
                    None => Ok(Check::Done(())),
                    Some(ns) => not_yet(format!(
                        "phase {:?}, conditions {:?}",
                        ns.status.as_ref().and_then(|s| s.phase.clone()),
                        ns.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .map(|cs| cs
                                .iter()
                                .filter(|c| c.status == "True")
                                .map(|c| format!(
                                    "{}: {}",
                                    c.type_,
                                    c.message.clone().unwrap_or_default()
                                ))
                                .collect::<Vec<_>>())
                    )),
                }
            },
        )
        .await
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // No runtime can be relied on here: a plain process, errors ignored.
        let _ = Command::new(kubectl_path())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args([
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// --- audit log --------------------------------------------------------------

/// The verbs that change state.
pub const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

/// One audit event (the fields the tests look at).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    #[serde(rename = "auditID")]
    pub audit_id: String,
    pub stage: String,
    pub verb: String,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    #[serde(default)]
    pub user_agent: String,
    pub user: AuditUser,
    pub object_ref: Option<AuditObjectRef>,
    pub response_status: Option<AuditResponseStatus>,
    pub request_received_timestamp: String,
    /// The response body, recorded only where the audit policy asks for it (the
    /// operator under the Secret audit); only its kind is kept here.
    #[serde(default)]
    pub response_object: Option<AuditResponseObject>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuditResponseObject {
    #[serde(default)]
    pub kind: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuditUser {
    #[serde(default)]
    pub username: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditObjectRef {
    pub resource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuditResponseStatus {
    pub code: Option<i32>,
}

impl AuditEvent {
    /// When the API server received the request.
    pub fn received_at(&self) -> anyhow::Result<SystemTime> {
        let ts: k8s_openapi::jiff::Timestamp = self
            .request_received_timestamp
            .parse()
            .with_context(|| format!("timestamp {:?}", self.request_received_timestamp))?;
        let micros = u64::try_from(ts.as_microsecond()).context("timestamp before 1970")?;
        Ok(UNIX_EPOCH + Duration::from_micros(micros))
    }

    pub fn is_write(&self) -> bool {
        WRITE_VERBS.contains(&self.verb.as_str())
    }

    /// `verb resource ns/name (code) by user [agent]`, for test output.
    pub fn summary(&self) -> String {
        let o = self.object_ref.as_ref();
        format!(
            "{} {} {}/{} {} -> {:?} by {} [{}]",
            self.verb,
            o.and_then(|o| o.resource.clone()).unwrap_or_default(),
            o.and_then(|o| o.namespace.clone()).unwrap_or_default(),
            o.and_then(|o| o.name.clone()).unwrap_or_default(),
            o.and_then(|o| o.subresource.clone()).unwrap_or_default(),
            self.response_status.as_ref().and_then(|s| s.code),
            self.user.username,
            self.user_agent
        )
    }
}

/// Reads the API server's audit log (one JSON event per line, policy in
/// `hack/cluster/audit-policy.yaml`: Metadata level, RequestReceived omitted).
#[derive(Debug, Clone)]
pub struct AuditLog {
    pub path: PathBuf,
}

impl AuditLog {
    pub fn new(path: &Path) -> Self {
        AuditLog {
            path: path.to_path_buf(),
        }
    }

    /// Every complete event. A last line without its newline is still being
    /// written and is left for the next read; any other line that does not
    /// parse is an error (a reader that skipped it would undercount).
    pub fn events(&self) -> anyhow::Result<Vec<AuditEvent>> {
        let text = std::fs::read_to_string(&self.path)
            .with_context(|| format!("read audit log {}", self.path.display()))?;
        let complete = match text.rfind('\n') {
            Some(end) => &text[..end],
            None => "",
        };
        complete
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str::<AuditEvent>(l).with_context(|| {
                    format!("audit log {} line {}: {l}", self.path.display(), i + 1)
                })
            })
            .collect()
    }

    /// Write requests (create, update, patch, delete, deletecollection) whose
    /// user agent starts with `user_agent_prefix`, received within
    /// `[since, until]`, counted once each (stage ResponseComplete). Audit
    /// timestamps have microsecond precision; the window's ends are widened
    /// to whole milliseconds.
    pub fn writes_by_agent(
        &self,
        user_agent_prefix: &str,
        since: SystemTime,
        until: SystemTime,
    ) -> anyhow::Result<Vec<AuditEvent>> {
        self.requests_by_agent(user_agent_prefix, since, until, AuditEvent::is_write)
    }

    /// [`AuditLog::writes_by_agent`] for the requests `pick` chooses, reads included.
    pub fn requests_by_agent(
        &self,
        user_agent_prefix: &str,
        since: SystemTime,
        until: SystemTime,
        pick: impl Fn(&AuditEvent) -> bool,
    ) -> anyhow::Result<Vec<AuditEvent>> {
        let since = since - Duration::from_millis(1);
        let until = until + Duration::from_millis(1);
        let mut out = Vec::new();
        for e in self.events()? {
            if e.stage != "ResponseComplete"
                || !pick(&e)
                || !e.user_agent.starts_with(user_agent_prefix)
            {
                continue;
            }
            let at = e.received_at()?;
            if at >= since && at <= until {
                out.push(e);
            }
        }
        Ok(out)
    }
}

/// Requests a token for a ServiceAccount (TokenRequest API, like
/// `kubectl create token`).
pub async fn service_account_token(
    client: &Client,
    namespace: &str,
    service_account: &str,
) -> anyhow::Result<String> {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    let api = Api::<ServiceAccount>::namespaced(client.clone(), namespace);
    let request = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600}
    });
    let created: TokenRequest = api
        .create_subresource("token", service_account, &PostParams::default(), &request)
        .await
        .with_context(|| format!("token for {namespace}/{service_account}"))?;
    created
        .status
        .and_then(|s| s.token)
        .context("TokenRequest answered without a token")
}
