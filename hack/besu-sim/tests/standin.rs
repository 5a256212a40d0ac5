//! `besu-standin` as processes: started the way the operator starts Besu (a rendered
//! `config.toml` plus `--config-file`, `--p2p-host`, `--Xdns-*` arguments), talking to
//! each other over loopback TCP, observed over JSON-RPC, health and metrics.
//!
//! Every socket is on 127.0.0.0/8: each node gets its own 127.0.0.x address and free
//! ports, and runs with `BESU_STANDIN_LOOPBACK_ONLY=1` (it refuses to bind or dial
//! elsewhere) and `BESU_STANDIN_HOSTS_FILE` (host names resolve from a file in the test's
//! directory, never through DNS). Waits poll with a deadline.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use besu_sim::besu::{Address, Consensus, NodeKey};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_besu-standin");
const POLL: Duration = Duration::from_millis(100);

// --- HTTP and JSON-RPC over std TCP ---------------------------------------------------

/// One HTTP/1.1 request with `Connection: close`: (status, body).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    body: &str,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    Ok((status, body.to_string()))
}

/// A JSON-RPC call: the result, or the error object (or transport error) as Err.
fn rpc(addr: SocketAddr, method: &str, params: Value) -> Result<Value, String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let (status, text) = http(
        addr,
        "POST",
        "/",
        "localhost",
        &body,
        Duration::from_secs(2),
    )
    .map_err(|e| format!("{method}: {e}"))?;
    if status != 200 {
        return Err(format!("{method}: HTTP {status}: {text}"));
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{method}: {e}: {text}"))?;
    match v.get("error") {
        Some(e) => Err(e.to_string()),
        None => Ok(v.get("result").cloned().unwrap_or(Value::Null)),
    }
}

fn quantity(v: &Value) -> Option<u64> {
    u64::from_str_radix(v.as_str()?.strip_prefix("0x")?, 16).ok()
}

/// Polls `probe` until it gives a value or `timeout` passes (then panics with `what` and
/// the last thing seen).
fn wait_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        let seen = match probe() {
            Ok(v) => return v,
            Err(e) => e,
        };
        if start.elapsed() > timeout {
            panic!(
                "timed out after {:.1?} waiting for {what}; last seen: {seen}",
                start.elapsed()
            );
        }
        std::thread::sleep(POLL);
    }
}

fn free_port(ip: IpAddr) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn key(n: u8) -> NodeKey {
    let mut b = [0u8; 32];
    b[0] = 0x5a;
    b[31] = n;
    NodeKey::from_bytes(&b).unwrap()
}

// --- one stand-in process ---------------------------------------------------------------

struct Standin {
    name: String,
    ip: IpAddr,
    dir: PathBuf,
    key: NodeKey,
    p2p: u16,
    rpc: SocketAddr,
    metrics: SocketAddr,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    starts: u32,
}

struct NodeSpec<'a> {
    name: &'a str,
    ip: &'a str,
    key: NodeKey,
    bootnodes: Vec<String>,
    apis: &'a [&'a str],
    /// Extra `config.toml` lines.
    toml: Vec<String>,
    /// Extra arguments after the operator's.
    args: Vec<String>,
    env: Vec<(&'a str, String)>,
    /// `--Xdns-update-enabled=<this>` (the operator renders true).
    dns_update: bool,
}

impl<'a> NodeSpec<'a> {
    fn new(name: &'a str, ip: &'a str, key: NodeKey) -> NodeSpec<'a> {
        NodeSpec {
            name,
            ip,
            key,
            bootnodes: Vec::new(),
            apis: &["ETH", "NET", "WEB3", "QBFT", "ADMIN"],
            toml: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            dns_update: true,
        }
    }
}

fn toml_array(items: &[String]) -> String {
    let q: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", q.join(", "))
}

impl Standin {
    /// Lays out a node as the operator does (key file, config.toml naming the genesis
    /// and data path) and starts it.
    fn start(root: &Path, genesis: &Path, hosts: &Path, spec: NodeSpec) -> Standin {
        let ip: IpAddr = spec.ip.parse().unwrap();
        let dir = root.join(spec.name);
        std::fs::create_dir_all(dir.join("key")).unwrap();
        std::fs::write(dir.join("key/key"), spec.key.to_key_file_text()).unwrap();
        let (p2p, rpc, ws, metrics) = (free_port(ip), free_port(ip), free_port(ip), free_port(ip));
        let apis: Vec<String> = spec.apis.iter().map(|s| s.to_string()).collect();
        let mut lines = vec![
            "# Rendered like besu-operator's besu_config_toml, on a test address.".to_string(),
            format!("genesis-file={:?}", genesis.display().to_string()),
            format!("data-path={:?}", dir.join("data").display().to_string()),
            format!(
                "node-private-key-file={:?}",
                dir.join("key/key").display().to_string()
            ),
            "nat-method=\"NONE\"".into(),
            format!("p2p-interface=\"{ip}\""),
            format!("p2p-port={p2p}"),
            "discovery-enabled=true".into(),
        ];
        if !spec.bootnodes.is_empty() {
            lines.push(format!("bootnodes={}", toml_array(&spec.bootnodes)));
        }
        lines.extend([
            "rpc-http-enabled=true".into(),
            format!("rpc-http-host=\"{ip}\""),
            format!("rpc-http-port={rpc}"),
            format!("rpc-http-api={}", toml_array(&apis)),
            "host-allowlist=[\"*\"]".into(),
            "rpc-ws-enabled=true".into(),
            format!("rpc-ws-host=\"{ip}\""),
            format!("rpc-ws-port={ws}"),
            format!("rpc-ws-api={}", toml_array(&apis)),
            "metrics-enabled=true".into(),
            format!("metrics-host=\"{ip}\""),
            format!("metrics-port={metrics}"),
            "sync-mode=\"FULL\"".into(),
            "min-gas-price=0".into(),
        ]);
        lines.extend(spec.toml);
        std::fs::write(dir.join("config.toml"), lines.join("\n") + "\n").unwrap();
        let mut args = vec![
            format!("--config-file={}", dir.join("config.toml").display()),
            format!("--p2p-host={ip}"),
            "--Xdns-enabled=true".into(),
            format!("--Xdns-update-enabled={}", spec.dns_update),
        ];
        args.extend(spec.args);
        let mut env = vec![
            ("BESU_STANDIN_LOOPBACK_ONLY".to_string(), "1".to_string()),
            (
                "BESU_STANDIN_HOSTS_FILE".to_string(),
                hosts.display().to_string(),
            ),
        ];
        env.extend(spec.env.into_iter().map(|(k, v)| (k.to_string(), v)));
        let mut s = Standin {
            name: spec.name.to_string(),
            ip,
            dir,
            key: spec.key,
            p2p,
            rpc: SocketAddr::new(ip, rpc),
            metrics: SocketAddr::new(ip, metrics),
            args,
            env,
            child: None,
            starts: 0,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log =
            std::fs::File::create(self.dir.join(format!("stdout.{}.log", self.starts))).unwrap();
        let err =
            std::fs::File::create(self.dir.join(format!("stderr.{}.log", self.starts))).unwrap();
        let child = Command::new(BIN)
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn address(&self) -> Address {
        self.key.address()
    }

    fn enode(&self, host: &str) -> String {
        format!(
            "enode://{}@{host}:{}",
            self.key.public_key().to_hex(),
            self.p2p
        )
    }

    fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        rpc(self.rpc, method, params)
    }

    fn height(&self) -> Result<u64, String> {
        let v = self.call("eth_blockNumber", json!([]))?;
        quantity(&v).ok_or_else(|| format!("not a quantity: {v}"))
    }

    fn peers(&self) -> Result<u64, String> {
        let v = self.call("net_peerCount", json!([]))?;
        quantity(&v).ok_or_else(|| format!("not a quantity: {v}"))
    }

    fn block_hash(&self, n: u64) -> Result<String, String> {
        let b = self.call("eth_getBlockByNumber", json!([format!("0x{n:x}"), false]))?;
        b.get("hash")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("no block {n}: {b}"))
    }

    fn validators(&self, tag: &str) -> Result<Vec<Address>, String> {
        let v = self.call("qbft_getValidatorsByBlockNumber", json!([tag]))?;
        serde_json::from_value(v.clone()).map_err(|e| format!("{e}: {v}"))
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("stdout.{}.log", self.starts)))
            .unwrap_or_default()
    }

    /// SIGTERM; the process must exit 0 within a second.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let start = Instant::now();
        let exit: ExitStatus = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > Duration::from_secs(1) {
                let _ = child.kill();
                panic!("{} did not stop within 1 s of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(exit.code(), Some(0), "{}: {exit:?}", self.name);
        assert!(
            self.stdout().contains("Received SIGTERM"),
            "{}",
            self.stdout()
        );
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the binary to completion (for refusals): (exit code, stdout, stderr).
fn run_to_exit(args: &[String], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .env("BESU_STANDIN_LOOPBACK_ONLY", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn write_genesis(dir: &Path, validators: &[Address]) -> PathBuf {
    let path = dir.join("genesis.json");
    std::fs::write(
        &path,
        besu_sim::genesis::test_support::genesis(Consensus::Qbft, 1337, 1, validators),
    )
    .unwrap();
    path
}

// --- tests ------------------------------------------------------------------------------

/// picocli's refusals, as Besu exits on them: message on stderr, the help hint, code 2.
#[test]
fn command_line_refusals_exit_2_like_besu() {
    let dir = tempfile::tempdir().unwrap();
    let args = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (code, _, err) = run_to_exit(&args(&["--foo"]), &[]);
    assert_eq!(code, Some(2));
    assert!(err.starts_with("Unknown option: '--foo'\n"), "{err}");
    assert!(
        err.ends_with("To display full help:\nbesu [COMMAND] --help\n"),
        "{err}"
    );

    let (code, _, err) = run_to_exit(&args(&["--p2p-port=1", "--p2p-port=2"]), &[]);
    assert_eq!(code, Some(2));
    assert!(
        err.starts_with("Option '--p2p-port' should be specified only once\n"),
        "{err}"
    );

    let toml = dir.path().join("c.toml");
    std::fs::write(&toml, "data-path=\"/tmp/x\"\nrpc-http-enabeld=true\n").unwrap();
    let (code, _, err) = run_to_exit(&[format!("--config-file={}", toml.display())], &[]);
    assert_eq!(code, Some(2));
    assert!(
        err.starts_with("Unknown option in TOML configuration file: rpc-http-enabeld\n"),
        "{err}"
    );

    // A startup failure (no genesis here) exits 2 too, logged as "Failed to start Besu".
    let (code, out, err) = run_to_exit(
        &[
            format!("--data-path={}", dir.path().join("d").display()),
            format!(
                "--genesis-file={}",
                dir.path().join("missing.json").display()
            ),
        ],
        &[],
    );
    assert_eq!(code, Some(2));
    assert!(
        out.contains("Failed to start Besu: Unable to load genesis file."),
        "{out}"
    );
    assert!(err.starts_with("Unable to load genesis file."), "{err}");

    let (code, out, _) = run_to_exit(&args(&["--version"]), &[]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("besu-standin/v"), "{out}");
}

/// Missing or malformed key and genesis files, and a data path of another chain.
#[test]
fn files_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(1);
    let genesis = write_genesis(dir.path(), &[k.address()]);
    let data = dir.path().join("data");
    let key_file = dir.path().join("nodekey");
    let base = |extra: &[String]| {
        let mut a = vec![
            format!("--genesis-file={}", genesis.display()),
            format!("--data-path={}", data.display()),
            format!("--node-private-key-file={}", key_file.display()),
            "--p2p-enabled=false".to_string(),
        ];
        a.extend(extra.iter().cloned());
        a
    };
    std::fs::write(&key_file, format!("{}\n\n", k.to_key_file_text())).unwrap();
    let (code, out, err) = run_to_exit(&base(&[]), &[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        err.starts_with("Supplied file does not contain valid keyPair pair."),
        "{err}"
    );
    assert!(!out.contains(&k.to_key_file_text()[2..]) && !err.contains(&k.to_key_file_text()[2..]));

    std::fs::write(
        dir.path().join("bad.json"),
        "{\"config\":{\"clique\":{}},\"extraData\":\"0x\"}",
    )
    .unwrap();
    std::fs::write(&key_file, k.to_key_file_text()).unwrap();
    let mut a = base(&[]);
    a[0] = format!("--genesis-file={}", dir.path().join("bad.json").display());
    let (code, out, _) = run_to_exit(&a, &[]);
    assert_eq!(code, Some(2));
    assert!(
        out.contains("Failed to start Besu: Unable to load genesis file"),
        "{out}"
    );

    // A good start creates the chain store; another genesis on it is refused.
    let mut node = Standin {
        name: "files".into(),
        ip: "127.0.0.30".parse().unwrap(),
        dir: dir.path().to_path_buf(),
        key: k.clone(),
        p2p: 0,
        rpc: SocketAddr::new(
            "127.0.0.30".parse().unwrap(),
            free_port("127.0.0.30".parse().unwrap()),
        ),
        metrics: SocketAddr::new("127.0.0.30".parse().unwrap(), 0),
        args: base(&[]),
        env: vec![("BESU_STANDIN_LOOPBACK_ONLY".into(), "1".into())],
        child: None,
        starts: 0,
    };
    let port = node.rpc.port();
    node.args.extend([
        "--rpc-http-enabled".into(),
        "--rpc-http-host=127.0.0.30".into(),
        format!("--rpc-http-port={port}"),
    ]);
    node.spawn();
    wait_until(
        "the single validator to produce",
        Duration::from_secs(15),
        || {
            node.height().and_then(|h| {
                if h >= 1 {
                    Ok(h)
                } else {
                    Err(format!("height {h}"))
                }
            })
        },
    );
    node.stop();
    let other = dir.path().join("other.json");
    std::fs::write(
        &other,
        besu_sim::genesis::test_support::genesis(Consensus::Qbft, 1338, 1, &[k.address()]),
    )
    .unwrap();
    let mut a = base(&[]);
    a[0] = format!("--genesis-file={}", other.display());
    let (code, _, err) = run_to_exit(&a, &[]);
    assert_eq!(code, Some(2));
    assert!(
        err.starts_with("Supplied genesis block does not match chain data stored in "),
        "{err}"
    );
}

/// Besu's `--Xdns-*` rules with host names that never resolve (`.invalid`), that resolve
/// later, that move, and `localhost`.
#[test]
fn dns_rules_for_enode_host_names() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    let (ka, kb, kc) = (key(11), key(12), key(13));
    let genesis = write_genesis(dir.path(), &[key(10).address()]);
    let hosts_env = hosts.display().to_string();

    // DNS on, update off: an unresolvable bootnode fails the start with Besu's message.
    let bogus = format!(
        "enode://{}@nosuchhost.invalid:30303",
        ka.public_key().to_hex()
    );
    let (code, out, err) = run_to_exit(
        &[
            format!("--genesis-file={}", genesis.display()),
            format!("--data-path={}", dir.path().join("x").display()),
            format!("--bootnodes={bogus}"),
            "--Xdns-enabled=true".into(),
            "--p2p-enabled=false".into(),
        ],
        &[("BESU_STANDIN_HOSTS_FILE", &hosts_env)],
    );
    assert_eq!(code, Some(2), "{out}");
    let expected = format!(
        "Invalid IP address '{bogus}' (or DNS query resolved an invalid IP). --Xdns-enabled is true but --Xdns-update-enabled flag is false."
    );
    assert!(err.starts_with(&expected), "{err}");
    assert!(
        out.contains(&format!("Failed to start Besu: {expected}")),
        "{out}"
    );
    // DNS off: a host name is no address at all.
    let (code, _, err) = run_to_exit(
        &[
            format!("--genesis-file={}", genesis.display()),
            format!("--data-path={}", dir.path().join("x").display()),
            format!(
                "--bootnodes=enode://{}@localhost:30303",
                ka.public_key().to_hex()
            ),
            "--p2p-enabled=false".into(),
        ],
        &[("BESU_STANDIN_HOSTS_FILE", &hosts_env)],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("Invalid ip address."), "{err}");

    // Node A listens on 127.0.0.1 (so `localhost` reaches it); C is another node.
    let mut spec_a = NodeSpec::new("a", "127.0.0.1", ka.clone());
    spec_a.apis = &["ETH", "NET", "WEB3", "ADMIN"];
    let a = Standin::start(dir.path(), &genesis, &hosts, spec_a);
    let c = Standin::start(
        dir.path(),
        &genesis,
        &hosts,
        NodeSpec::new("c", "127.0.0.22", kc),
    );
    wait_until("A and C to answer", Duration::from_secs(10), || {
        a.peers().and(c.peers())
    });

    // DNS on, update off, `localhost` resolves once (hosts file) and is dialled.
    let mut spec = NodeSpec::new("b1", "127.0.0.23", kb.clone());
    spec.bootnodes = vec![a.enode("localhost")];
    spec.dns_update = false;
    let mut b1 = Standin::start(dir.path(), &genesis, &hosts, spec);
    wait_until(
        "B1 to reach A through localhost",
        Duration::from_secs(10),
        || {
            b1.peers().and_then(|n| {
                if n >= 1 {
                    Ok(n)
                } else {
                    Err(format!("{n} peers"))
                }
            })
        },
    );
    b1.stop();
    wait_until("A to see B1 go", Duration::from_secs(10), || {
        a.peers().and_then(|n| {
            if n == 0 {
                Ok(n)
            } else {
                Err(format!("{n} peers"))
            }
        })
    });

    // DNS and update on: a bootnode that does not resolve at start becomes 127.0.0.1 for
    // good. `late.test` (C's id and port) then resolves to C, and B2, retrying every
    // second, never goes there: neither side ever has a peer.
    let mut spec = NodeSpec::new("b2", "127.0.0.24", kb.clone());
    spec.bootnodes = vec![c.enode("late.test")];
    spec.args = vec!["--Xp2p-initiate-connections-frequency=1".into()];
    let b2 = Standin::start(dir.path(), &genesis, &hosts, spec);
    wait_until(
        "B2 to start despite the unresolvable bootnode",
        Duration::from_secs(10),
        || {
            http(
                b2.rpc,
                "GET",
                "/liveness",
                "localhost",
                "",
                Duration::from_secs(1),
            )
            .map_err(|e| e.to_string())
            .and_then(|(s, b)| {
                if s == 200 {
                    Ok(b)
                } else {
                    Err(format!("{s} {b}"))
                }
            })
        },
    );
    std::fs::write(&hosts, format!("127.0.0.1 localhost\n{} late.test\n", c.ip)).unwrap();
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            b2.peers(),
            Ok(0),
            "B2 must not follow a name it could not resolve at start"
        );
        assert_eq!(c.peers(), Ok(0));
        std::thread::sleep(POLL);
    }
    drop(b2);

    // A peer that proves another id than the URL's is refused: `moving.test` with A's id
    // points at C's address and port (resolved once: DNS update off).
    std::fs::write(
        &hosts,
        format!("127.0.0.1 localhost\n{} moving.test\n", c.ip),
    )
    .unwrap();
    let statics = dir.path().join("static-nodes.json");
    let to_c = format!("enode://{}@moving.test:{}", ka.public_key().to_hex(), c.p2p);
    std::fs::write(&statics, json!([to_c]).to_string()).unwrap();
    let mut spec = NodeSpec::new("b3", "127.0.0.25", kb);
    spec.dns_update = false;
    spec.toml = vec![format!(
        "static-nodes-file={:?}",
        statics.display().to_string()
    )];
    spec.args = vec!["--Xp2p-check-maintained-connections-frequency=1".into()];
    let b3 = Standin::start(dir.path(), &genesis, &hosts, spec);
    wait_until("B3 to refuse C's identity", Duration::from_secs(10), || {
        if b3
            .stdout()
            .contains("the peer's node id is not the one in its enode URL")
        {
            Ok(())
        } else {
            Err("no refusal logged yet".into())
        }
    });
    // (C may still connect to B3 on its own: C learned B3's address from the attempt.)
    let peers = b3.call("admin_peers", json!([])).unwrap();
    assert!(
        !peers.to_string().contains(&ka.public_key().to_hex()),
        "{peers}"
    );
    drop(b3);

    // A static node's name is resolved again on every dial. The test's names resolve to
    // loopback addresses, for which Besu's update mode keeps the local host instead
    // (`InetAddress.getLocalHost()`: this machine's name, resolved): so the name that is
    // followed is the machine's. It first points at C's address (nothing on A's port
    // there), then at A's.
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    std::fs::write(
        &hosts,
        format!("127.0.0.1 localhost\n{} moving.test {machine}\n", c.ip),
    )
    .unwrap();
    let to_a = format!("enode://{}@moving.test:{}", ka.public_key().to_hex(), a.p2p);
    std::fs::write(&statics, json!([to_a]).to_string()).unwrap();
    let mut spec = NodeSpec::new("b4", "127.0.0.26", key(14));
    spec.toml = vec![format!(
        "static-nodes-file={:?}",
        statics.display().to_string()
    )];
    spec.args = vec!["--Xp2p-check-maintained-connections-frequency=1".into()];
    let b4 = Standin::start(dir.path(), &genesis, &hosts, spec);
    wait_until("B4 to answer", Duration::from_secs(10), || b4.peers());
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(2) {
        assert_eq!(b4.peers(), Ok(0), "the name points at C's address");
        std::thread::sleep(POLL);
    }
    std::fs::write(
        &hosts,
        format!("127.0.0.1 localhost {machine}\n{} moving.test\n", c.ip),
    )
    .unwrap();
    wait_until(
        "B4 to follow the name to A",
        Duration::from_secs(10),
        || {
            b4.peers().and_then(|n| {
                if n == 1 {
                    Ok(n)
                } else {
                    Err(format!("{n} peers"))
                }
            })
        },
    );
    // A lists the connection once its side of the handshake is done, which can be a
    // moment after B4 counts it.
    wait_until("A to list B4 as a peer", Duration::from_secs(10), || {
        let peers = a.call("admin_peers", json!([]))?;
        if peers.to_string().contains(&key(14).public_key().to_hex()) {
            Ok(())
        } else {
            Err(peers.to_string())
        }
    });
}

/// Health, allowlist, JSON-RPC errors, metrics and the fault knobs on single nodes.
#[test]
fn node_surface_and_fault_knobs() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    let k = key(21);
    let genesis = write_genesis(dir.path(), &[k.address()]);
    let mut spec = NodeSpec::new("solo", "127.0.0.40", k.clone());
    spec.apis = &["ETH", "NET", "WEB3", "QBFT"];
    // The default allowlist (localhost,127.0.0.1) instead of the rendered "*"; the
    // command line wins over the file's.
    spec.args = vec!["--host-allowlist=localhost,127.0.0.1".into()];
    spec.env = vec![("BESU_STANDIN_ALLOCATE_MIB", "64".into())];
    let solo = Standin::start(dir.path(), &genesis, &hosts, spec);
    wait_until(
        "the solo validator to produce block 2",
        Duration::from_secs(15),
        || {
            solo.height().and_then(|h| {
                if h >= 2 {
                    Ok(h)
                } else {
                    Err(format!("height {h}"))
                }
            })
        },
    );
    let t = Duration::from_secs(2);
    let ip_host = format!("{}:{}", solo.ip, solo.rpc.port());
    for path in ["/liveness", "/readiness"] {
        assert_eq!(
            http(solo.rpc, "GET", path, &ip_host, "", t).unwrap(),
            (403, "{\"message\":\"Host not authorized.\"}".to_string())
        );
    }
    assert_eq!(
        http(solo.metrics, "GET", "/metrics", "evil.example", "", t)
            .unwrap()
            .0,
        403
    );
    let status = |addr, path: &str, host: &str| http(addr, "GET", path, host, "", t).unwrap().0;
    assert_eq!(status(solo.rpc, "/nope", &ip_host), 403);
    assert_eq!(status(solo.rpc, "/nope", "localhost"), 404);
    assert_eq!(status(solo.rpc, "/", "localhost"), 201);
    assert_eq!(
        http(solo.rpc, "GET", "/liveness", "localhost:1", "", t).unwrap(),
        (200, "{\"status\":\"UP\"}".to_string())
    );
    // No peers: not ready with Besu's default minPeers=1, ready with minPeers=0.
    assert_eq!(
        http(solo.rpc, "GET", "/readiness", "localhost", "", t).unwrap(),
        (503, "{\"status\":\"DOWN\"}".to_string())
    );
    assert_eq!(
        http(
            solo.rpc,
            "GET",
            "/readiness?minPeers=0&maxBlocksBehind=2",
            "localhost",
            "",
            t
        )
        .unwrap()
        .0,
        200
    );
    assert_eq!(
        http(solo.rpc, "GET", "/readiness?minPeers=x", "localhost", "", t)
            .unwrap()
            .0,
        503
    );
    // JSON-RPC: a group not enabled, an unknown method, blocks, client version.
    let err = solo.call("admin_nodeInfo", json!([])).unwrap_err();
    assert!(
        err.contains("-32604") && err.contains("Method not enabled"),
        "{err}"
    );
    assert!(
        solo.call("eth_noSuchMethod", json!([]))
            .unwrap_err()
            .contains("-32601")
    );
    assert!(
        solo.call("ibft_getPendingVotes", json!([]))
            .unwrap_err()
            .contains("-32604")
    );
    assert_eq!(solo.call("eth_chainId", json!([])).unwrap(), json!("0x539"));
    assert_eq!(solo.call("net_version", json!([])).unwrap(), json!("1337"));
    assert_eq!(solo.call("eth_syncing", json!([])).unwrap(), json!(false));
    assert!(
        solo.call("web3_clientVersion", json!([]))
            .unwrap()
            .as_str()
            .unwrap()
            .starts_with("besu-standin/")
    );
    let b1 = solo
        .call("eth_getBlockByNumber", json!(["0x1", false]))
        .unwrap();
    assert_eq!(b1["number"], json!("0x1"));
    assert_eq!(b1["miner"], json!(k.address().to_string()));
    assert_eq!(b1["parentHash"], json!(solo.block_hash(0).unwrap()));
    let extra = hex::decode(b1["extraData"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    let decoded = besu_sim::besu::extradata::decode(Consensus::Qbft, &extra).unwrap();
    assert_eq!((decoded.validators, decoded.seals), (vec![k.address()], 1));
    assert_eq!(solo.validators("latest").unwrap(), vec![k.address()]);
    // Metrics with Besu's names; the 64 MiB allocated at start are resident.
    let (code, text) = http(solo.metrics, "GET", "/metrics", "localhost", "", t).unwrap();
    assert_eq!(code, 200);
    for name in [
        "ethereum_blockchain_height",
        "ethereum_peer_count 0",
        "ethereum_best_known_block_number",
        "besu_synchronizer_in_sync 1",
        "ethereum_peer_limit 25",
    ] {
        assert!(text.contains(name), "{name} in {text}");
    }
    let rss: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(rss >= 64.0 * 1024.0 * 1024.0, "{rss}");
    assert!(
        solo.stdout()
            .contains("BESU_STANDIN_ALLOCATE_MIB: allocated and touched 64 MiB")
    );
    assert!(solo.stdout().contains("Produced #1"), "{}", solo.stdout());
    // The JSON-RPC knobs of the real-node tests: allocate, then wedge a running node.
    assert_eq!(
        solo.call("standin_allocate", json!([1])).unwrap(),
        json!(true)
    );
    assert_eq!(solo.call("standin_wedge", json!([])).unwrap(), json!(true));
    wait_until(
        "liveness to stop answering after standin_wedge",
        Duration::from_secs(10),
        || match http(
            solo.rpc,
            "GET",
            "/liveness",
            "localhost",
            "",
            Duration::from_millis(500),
        ) {
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        },
    );
    drop(solo);

    // Wedged after 1 s: /liveness answers, then nothing does; SIGTERM still stops it.
    let k2 = key(22);
    let genesis2 = dir.path().join("g2");
    std::fs::create_dir_all(&genesis2).unwrap();
    let genesis2 = write_genesis(&genesis2, &[k2.address()]);
    let mut spec = NodeSpec::new("wedge", "127.0.0.41", k2);
    spec.env = vec![("BESU_STANDIN_WEDGE_AFTER_SECONDS", "1".into())];
    let mut wedge = Standin::start(dir.path(), &genesis2, &hosts, spec);
    wait_until("liveness before the wedge", Duration::from_secs(10), || {
        http(
            wedge.rpc,
            "GET",
            "/liveness",
            "localhost",
            "",
            Duration::from_millis(500),
        )
        .map_err(|e| e.to_string())
        .and_then(|(s, _)| if s == 200 { Ok(()) } else { Err(s.to_string()) })
    });
    wait_until(
        "liveness to stop answering",
        Duration::from_secs(10),
        || match http(
            wedge.rpc,
            "GET",
            "/liveness",
            "localhost",
            "",
            Duration::from_millis(500),
        ) {
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        },
    );
    wedge.stop();
}

/// Four validators and a member on their own addresses, from a generated genesis: blocks
/// are sealed over the network; stopping two of the four halts the chain (`ceil(2n/3)` =
/// 3); one restarted with its data path keeps its chain (but not its vote proposals) and
/// the chain resumes; then a majority's votes add the member as a fifth validator, which
/// seals from the next block on.
#[test]
fn validators_agree_vote_stall_and_resume() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n127.0.0.2 validator-0.test\n").unwrap();
    let keys: Vec<NodeKey> = (31..36).map(key).collect();
    let genesis_validators: Vec<Address> = keys[..4].iter().map(NodeKey::address).collect();
    let genesis = write_genesis(dir.path(), &genesis_validators);
    let ips = [
        "127.0.0.2",
        "127.0.0.3",
        "127.0.0.4",
        "127.0.0.5",
        "127.0.0.6",
    ];
    let names = [
        "validator-0",
        "validator-1",
        "validator-2",
        "validator-3",
        "member-0",
    ];
    let mut nodes: Vec<Standin> = Vec::new();
    let n0 = Standin::start(
        dir.path(),
        &genesis,
        &hosts,
        NodeSpec::new(names[0], ips[0], keys[0].clone()),
    );
    // The others know validator-0 by its DNS name only, as the operator renders bootnodes.
    // DNS update is off here: the test's names resolve to loopback addresses, which
    // Besu's update mode would replace by this machine's own address (see the DNS test).
    let boot = n0.enode("validator-0.test");
    nodes.push(n0);
    for i in 1..5 {
        let mut spec = NodeSpec::new(names[i], ips[i], keys[i].clone());
        spec.dns_update = false;
        spec.bootnodes = vec![boot.clone()];
        spec.args = vec!["--Xp2p-initiate-connections-frequency=2".into()];
        nodes.push(Standin::start(dir.path(), &genesis, &hosts, spec));
    }
    let heights = |nodes: &[Standin], which: &[usize]| -> Result<Vec<u64>, String> {
        which.iter().map(|i| nodes[*i].height()).collect()
    };
    let all = [0, 1, 2, 3, 4];
    wait_until(
        "every node at block 3 or more",
        Duration::from_secs(20),
        || {
            let h = heights(&nodes, &all)?;
            if h.iter().all(|x| *x >= 3) {
                Ok(())
            } else {
                Err(format!("{h:?}"))
            }
        },
    );
    // One chain: every node has the same block 3.
    let hash3: Vec<String> = nodes.iter().map(|n| n.block_hash(3).unwrap()).collect();
    assert!(hash3.iter().all(|h| *h == hash3[0]), "{hash3:?}");
    // Discovery: validators 1-3 were given only validator-0, and found each other.
    wait_until(
        "validators to learn each other",
        Duration::from_secs(10),
        || {
            let p: Result<Vec<u64>, String> = (1..4).map(|i| nodes[i].peers()).collect();
            let p = p?;
            if p.iter().all(|n| *n >= 3) {
                Ok(())
            } else {
                Err(format!("peers {p:?}"))
            }
        },
    );
    assert_eq!(nodes[4].validators("latest").unwrap().len(), 4);

    // Validator-2 holds a vote proposal (in memory only, as Besu's `VoteProposer`).
    let outsider = key(99).address();
    assert_eq!(
        nodes[2]
            .call(
                "qbft_proposeValidatorVote",
                json!([outsider.to_string(), true])
            )
            .unwrap(),
        json!(true)
    );
    assert_eq!(
        nodes[2].call("qbft_getPendingVotes", json!([])).unwrap(),
        json!({ outsider.to_string(): true })
    );

    // Stop two of the four validators: 2 < ceil(8/3) = 3, the chain halts.
    let h2 = nodes[2].height().unwrap();
    nodes[2].stop();
    nodes[3].stop();
    let alive = [0, 1, 4];
    let stopped_at = heights(&nodes, &alive).unwrap().into_iter().max().unwrap();
    // A block already being sealed may still land: watch 1 s, then 3 s of no progress.
    let settle = Instant::now();
    let mut halted = stopped_at;
    while settle.elapsed() < Duration::from_secs(1) {
        halted = halted.max(heights(&nodes, &alive).unwrap().into_iter().max().unwrap());
        std::thread::sleep(POLL);
    }
    assert!(halted <= stopped_at + 1, "{halted} vs {stopped_at}");
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(3) {
        let h = heights(&nodes, &alive).unwrap();
        assert!(
            h.iter().all(|x| *x <= halted),
            "the chain went on without a quorum: {h:?}"
        );
        std::thread::sleep(POLL);
    }

    // Restart validator-2 on its data path: it keeps its chain, and 3 of 4 resume.
    let restarted = Instant::now();
    nodes[2].spawn();
    let first = wait_until(
        "validator-2 to answer again",
        Duration::from_secs(10),
        || nodes[2].height(),
    );
    assert!(
        first >= h2,
        "restarted at {first}, had {h2}: the chain was kept"
    );
    // Read from its data path before any peer was heard: the head it logs at start.
    let log = nodes[2].stdout();
    let logged: u64 = log
        .split("Chain head #")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no start head in {log}"));
    assert!(logged >= h2, "started at #{logged}, had #{h2}");
    wait_until("the chain to resume", Duration::from_secs(40), || {
        let h = heights(&nodes, &[0, 1, 2, 4])?;
        if h.iter().all(|x| *x > halted) {
            Ok(())
        } else {
            Err(format!("{h:?} (halted at {halted})"))
        }
    });
    eprintln!(
        "the chain resumed {:.1?} after the restart",
        restarted.elapsed()
    );
    let next: Vec<String> = [0, 1, 2, 4]
        .iter()
        .map(|i| nodes[*i].block_hash(halted + 1).unwrap())
        .collect();
    assert!(next.iter().all(|h| *h == next[0]), "{next:?}");
    // The restarted process lost its vote proposal.
    assert_eq!(
        nodes[2].call("qbft_getPendingVotes", json!([])).unwrap(),
        json!({})
    );

    // A majority (3 of 4: the running validators) proposes adding the member.
    let member = nodes[4].address();
    for i in [0, 1, 2] {
        assert_eq!(
            nodes[i]
                .call(
                    "qbft_proposeValidatorVote",
                    json!([member.to_string(), true])
                )
                .unwrap(),
            json!(true)
        );
    }
    let added_at = wait_until(
        "the member to be a validator",
        Duration::from_secs(25),
        || {
            let v = nodes[4].validators("latest")?;
            if v.contains(&member) {
                nodes[4].height()
            } else {
                Err(format!("{} validators", v.len()))
            }
        },
    );
    assert_eq!(nodes[0].validators("pending").unwrap().len(), 5);
    // The block before the first five-validator block was sealed by the old set.
    let before = nodes[4]
        .call(
            "qbft_getValidatorsByBlockNumber",
            json!([format!("0x{:x}", added_at - 1)]),
        )
        .unwrap();
    assert_eq!(before.as_array().map(Vec::len), Some(4), "{before}");
    // Five validators need ceil(10/3) = 4 seals: the four running ones, the member too.
    wait_until("two blocks of the five", Duration::from_secs(15), || {
        let h = nodes[0].height()?;
        if h > added_at + 1 {
            Ok(())
        } else {
            Err(format!("height {h}"))
        }
    });
    let b = nodes[4]
        .call(
            "eth_getBlockByNumber",
            json!([format!("0x{:x}", added_at + 1), false]),
        )
        .unwrap();
    let extra = hex::decode(b["extraData"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    let d = besu_sim::besu::extradata::decode(Consensus::Qbft, &extra).unwrap();
    assert_eq!((d.validators.len(), d.seals), (5, 4), "{b}");
    for i in [0, 1, 2, 4] {
        nodes[i].stop();
    }
    eprintln!(
        "validators_agree_vote_stall_and_resume took {:.1?}",
        started.elapsed()
    );
}
