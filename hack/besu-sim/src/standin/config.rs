//! The options the stand-in acts on, typed and checked as Besu checks them.
//!
//! Defaults are Besu's (besu-facts §5; the field initialisers of `BesuCommand`,
//! `P2PDiscoveryOptions`, `JsonRpcHttpOptions`, `MetricsOptions`, `NetworkingOptions`)
//! except `--data-path`, whose Besu default is the install directory: here it is the
//! working directory. Checks and their messages:
//! - `BesuCommand.validateDnsOptionsParams`: update without DNS refused.
//! - `P2PDiscoveryOptions.validateHost`: `--p2p-host` must be an IP literal.
//! - `JsonRpcHttpOptions.validate`: `--rpc-http-api` entries must be `RpcApis` names.
//! - `BesuCommand.setSyncMode`: FULL or SNAP (CHECKPOINT is SNAP, with a warning).
//! - `JsonRPCAllowlistHostsProperty`: `all` = `*`, `none` = nothing, neither with others.
//! - picocli's converters: integers, enums (`NatMethod`, case-insensitive).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::options::{ParamError, Resolved, parse_bool};

/// The options the stand-in acts on (`--help` lists them).
pub const MODELLED: &[&str] = &[
    "--config-file",
    "--profile",
    "--data-path",
    "--genesis-file",
    "--node-private-key-file",
    "--network-id",
    "--identity",
    "--logging",
    "--p2p-enabled",
    "--discovery-enabled",
    "--p2p-host",
    "--p2p-interface",
    "--p2p-port",
    "--max-peers",
    "--bootnodes",
    "--static-nodes-file",
    "--nat-method",
    "--Xdns-enabled",
    "--Xdns-update-enabled",
    "--Xp2p-initiate-connections-frequency",
    "--Xp2p-check-maintained-connections-frequency",
    "--rpc-http-enabled",
    "--rpc-http-host",
    "--rpc-http-port",
    "--rpc-http-api",
    "--host-allowlist",
    "--metrics-enabled",
    "--metrics-host",
    "--metrics-port",
    "--min-gas-price",
    "--sync-mode",
    "--network",
];

/// `RpcApis.VALID_APIS`.
pub const VALID_APIS: &[&str] = &[
    "ETH", "DEBUG", "MINER", "NET", "PERM", "WEB3", "ADMIN", "TXPOOL", "TRACE", "PLUGINS", "IBFT",
    "ENGINE", "QBFT", "TESTING",
];

/// `NatMethod` (besu-facts §0: KUBERNETES was removed in 25.3.0).
const NAT_METHODS: &[&str] = &["UPNP", "UPNPP2PONLY", "DOCKER", "AUTO", "NONE"];

/// The configuration the stand-in runs with.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_path: PathBuf,
    pub genesis_file: Option<PathBuf>,
    pub node_private_key_file: Option<PathBuf>,
    pub network: Option<String>,
    pub network_id: Option<u64>,
    pub identity: Option<String>,
    /// `--logging`, upper case (default INFO).
    pub logging: String,
    pub p2p_enabled: bool,
    pub discovery_enabled: bool,
    pub p2p_host: IpAddr,
    pub p2p_interface: String,
    pub p2p_port: u16,
    pub max_peers: usize,
    /// Bootnode strings as given (enode URLs or files), empty ones dropped.
    pub bootnodes: Vec<String>,
    /// `--bootnodes` was given (even empty).
    pub bootnodes_given: bool,
    pub static_nodes_file: Option<PathBuf>,
    pub nat_method: String,
    pub dns_enabled: bool,
    pub dns_update_enabled: bool,
    pub initiate_connections_frequency: Duration,
    pub check_maintained_connections_frequency: Duration,
    pub rpc_http_enabled: bool,
    pub rpc_http_host: String,
    pub rpc_http_port: u16,
    pub rpc_http_apis: Vec<String>,
    /// Empty = nothing allowed (`none`); `["*"]` = everything.
    pub host_allowlist: Vec<String>,
    pub metrics_enabled: bool,
    pub metrics_host: String,
    pub metrics_port: u16,
    pub min_gas_price: String,
    pub sync_mode: String,
    /// Options that were set but that the stand-in does not act on.
    pub ignored: Vec<String>,
    /// Warnings Besu would log at startup.
    pub warnings: Vec<String>,
}

fn invalid(option: &str, detail: impl std::fmt::Display) -> ParamError {
    ParamError::new(format!("Invalid value for option '{option}': {detail}"))
}

fn int<T: std::str::FromStr>(option: &str, value: &str, java: &str) -> Result<T, ParamError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(option, format!("'{value}' is not {java}")))
}

fn port(r: &Resolved, option: &str, default: u16) -> Result<u16, ParamError> {
    match r.scalar(option) {
        None => Ok(default),
        Some(v) => {
            let n: i64 = int(option, v, "an int")?;
            u16::try_from(n).map_err(|_| invalid(option, format!("'{v}' is not a valid port")))
        }
    }
}

fn boolean(r: &Resolved, option: &str, default: bool) -> Result<bool, ParamError> {
    match r.scalar(option) {
        None => Ok(default),
        Some(v) => parse_bool(option, v),
    }
}

/// `JsonRPCAllowlistHostsProperty.addAll`.
fn host_allowlist(values: &[String]) -> Result<Vec<String>, ParamError> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if v.is_empty() {
            return Err(invalid(
                "--host-allowlist",
                "Hostname cannot be empty string or null string.",
            ));
        }
        for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            out.push(if s == "all" { "*".into() } else { s.into() });
        }
    }
    if out.iter().any(|s| s == "none") {
        if out.len() > 1 {
            return Err(invalid(
                "--host-allowlist",
                "Value 'none' can't be used with other hostnames",
            ));
        }
        return Ok(Vec::new());
    }
    if out.iter().any(|s| s == "*") && out.len() > 1 {
        return Err(invalid(
            "--host-allowlist",
            "Values '*' or 'all' can't be used with other hostnames",
        ));
    }
    Ok(out)
}

impl Config {
    /// The typed configuration; `cwd` resolves relative paths. Besu's option
    /// validations (`BesuCommand.validateOptions` and friends) are in [`Config::validate`].
    pub fn from_resolved(r: &Resolved, cwd: &Path) -> Result<Config, ParamError> {
        let path = |o: &str| r.scalar(o).map(|v| cwd.join(v));
        let mut warnings = Vec::new();
        let sync_mode = match r.scalar("--sync-mode") {
            None => "FULL".to_string(),
            Some(v) => {
                let up = v.to_ascii_uppercase();
                match up.as_str() {
                    "FULL" | "SNAP" => up,
                    "CHECKPOINT" => {
                        warnings.push("CHECKPOINT sync mode is deprecated and has been removed. Using SNAP sync mode instead. Your checkpoint configuration will be used automatically.".to_string());
                        "SNAP".to_string()
                    }
                    _ => {
                        return Err(ParamError::new(format!(
                            "Invalid value for option '--sync-mode': '{v}' is not a valid sync mode. Valid values are: FULL, SNAP"
                        )));
                    }
                }
            }
        };
        let nat_method = match r.scalar("--nat-method") {
            None => "AUTO".to_string(),
            Some(v) => {
                let up = v.to_ascii_uppercase();
                if !NAT_METHODS.contains(&up.as_str()) {
                    return Err(invalid(
                        "--nat-method",
                        format!(
                            "expected one of [{}] (case-insensitive) but was '{v}'",
                            NAT_METHODS.join(", ")
                        ),
                    ));
                }
                up
            }
        };
        let logging = r.scalar("--logging").unwrap_or("INFO").to_ascii_uppercase();
        if ![
            "OFF", "FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE", "ALL",
        ]
        .contains(&logging.as_str())
        {
            return Err(invalid(
                "--logging",
                format!("'{logging}' is not a log level"),
            ));
        }
        let secs = |o: &str, default: u64| -> Result<Duration, ParamError> {
            match r.scalar(o) {
                None => Ok(Duration::from_secs(default)),
                Some(v) => {
                    let n: u64 = int(o, v, "a long")?;
                    if n == 0 {
                        return Err(invalid(o, "must be positive"));
                    }
                    Ok(Duration::from_secs(n))
                }
            }
        };
        let bootnodes_given = r.get("--bootnodes").is_some();
        let p2p_host_text = r.scalar("--p2p-host").unwrap_or("127.0.0.1").to_string();
        // `P2PDiscoveryOptions.validateHost`.
        let p2p_host: IpAddr = p2p_host_text.parse().map_err(|_| {
            ParamError::new(format!(
                "The provided --p2p-host is invalid: {p2p_host_text}"
            ))
        })?;
        let max_peers: i64 = match r.scalar("--max-peers") {
            None => 25,
            Some(v) => int("--p2p-peer-upper-bound", v, "an int")?,
        };
        let network_id = match r.scalar("--network-id") {
            None => None,
            Some(v) => Some(int("--network-id", v, "a BigInteger")?),
        };
        let apis: Vec<String> = match r.get("--rpc-http-api") {
            None => vec!["ETH".into(), "NET".into(), "WEB3".into()],
            Some(s) => s
                .values
                .iter()
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect(),
        };
        let invalid_apis: Vec<&String> = apis
            .iter()
            .filter(|a| !VALID_APIS.contains(&a.to_ascii_uppercase().as_str()))
            .collect();
        if !invalid_apis.is_empty() {
            let list: Vec<&str> = invalid_apis.iter().map(|s| s.as_str()).collect();
            return Err(ParamError::new(format!(
                "Invalid value for option '--rpc-http-api': invalid entries found [{}]",
                list.join(", ")
            )));
        }
        let mut rpc_http_apis: Vec<String> = Vec::new();
        for a in apis {
            let up = a.to_ascii_uppercase();
            if !rpc_http_apis.contains(&up) {
                rpc_http_apis.push(up);
            }
        }
        let allow = match r.get("--host-allowlist") {
            None => vec!["localhost".into(), "127.0.0.1".into()],
            Some(s) => host_allowlist(&s.values)?,
        };
        let ignored = r
            .settings
            .keys()
            .filter(|k| !MODELLED.contains(k))
            .map(|k| k.to_string())
            .collect();
        Ok(Config {
            data_path: path("--data-path").unwrap_or_else(|| cwd.to_path_buf()),
            genesis_file: path("--genesis-file"),
            node_private_key_file: path("--node-private-key-file"),
            network: r.scalar("--network").map(str::to_string),
            network_id,
            identity: r.scalar("--identity").map(str::to_string),
            logging,
            p2p_enabled: boolean(r, "--p2p-enabled", true)?,
            discovery_enabled: boolean(r, "--discovery-enabled", true)?,
            p2p_host,
            p2p_interface: r.scalar("--p2p-interface").unwrap_or("0.0.0.0").to_string(),
            p2p_port: port(r, "--p2p-port", 30303)?,
            max_peers: usize::try_from(max_peers.max(0)).unwrap_or(0),
            bootnodes: r
                .list("--bootnodes")
                .into_iter()
                .map(|b| b.trim().to_string())
                .filter(|b| !b.is_empty())
                .collect(),
            bootnodes_given,
            static_nodes_file: path("--static-nodes-file"),
            nat_method,
            dns_enabled: boolean(r, "--Xdns-enabled", false)?,
            dns_update_enabled: boolean(r, "--Xdns-update-enabled", false)?,
            initiate_connections_frequency: secs("--Xp2p-initiate-connections-frequency", 30)?,
            check_maintained_connections_frequency: secs(
                "--Xp2p-check-maintained-connections-frequency",
                60,
            )?,
            rpc_http_enabled: boolean(r, "--rpc-http-enabled", false)?,
            rpc_http_host: r
                .scalar("--rpc-http-host")
                .unwrap_or("127.0.0.1")
                .to_string(),
            rpc_http_port: port(r, "--rpc-http-port", 8545)?,
            rpc_http_apis,
            host_allowlist: allow,
            metrics_enabled: boolean(r, "--metrics-enabled", false)?,
            metrics_host: r
                .scalar("--metrics-host")
                .unwrap_or("127.0.0.1")
                .to_string(),
            metrics_port: port(r, "--metrics-port", 9545)?,
            min_gas_price: r.scalar("--min-gas-price").unwrap_or("1000").to_string(),
            sync_mode,
            ignored,
            warnings,
        })
    }

    /// Besu's checks of option combinations, run at startup (their failures are logged
    /// as "Failed to start Besu").
    pub fn validate(&self) -> Result<(), ParamError> {
        if !self.dns_enabled && self.dns_update_enabled {
            return Err(ParamError::new(
                "The `--Xdns-update-enabled` requires dns to be enabled. Either remove --Xdns-update-enabled or specify dns is enabled (--Xdns-enabled)",
            ));
        }
        if self.network.is_some() && self.genesis_file.is_some() {
            return Err(ParamError::new(
                "--network option and --genesis-file option can't be used at the same time.  Please refer to CLI reference for more details about this constraint.",
            ));
        }
        if self.genesis_file.is_none() {
            return Err(ParamError::new(
                "besu-standin needs --genesis-file: the public networks (--network) are not simulated",
            ));
        }
        Ok(())
    }

    /// The node key file: `--node-private-key-file`, else `<data-path>/key`.
    pub fn key_file(&self) -> PathBuf {
        self.node_private_key_file
            .clone()
            .unwrap_or_else(|| self.data_path.join("key"))
    }

    /// Whether an API group is enabled for JSON-RPC over HTTP.
    pub fn api_enabled(&self, group: &str) -> bool {
        self.rpc_http_apis.iter().any(|a| a == group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standin::options::{Outcome, parse};
    use std::collections::BTreeMap;

    fn config(list: &[&str]) -> Result<Config, ParamError> {
        let args: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        let Outcome::Run(r) = parse(&args, &BTreeMap::new(), Path::new("/w"))? else {
            panic!("not a run")
        };
        Config::from_resolved(&r, Path::new("/w"))
    }

    #[test]
    fn besu_defaults() {
        let c = config(&["--genesis-file=g.json"]).unwrap();
        assert_eq!(c.genesis_file, Some(PathBuf::from("/w/g.json")));
        assert_eq!(c.data_path, PathBuf::from("/w"));
        assert_eq!(c.key_file(), PathBuf::from("/w/key"));
        assert_eq!(c.p2p_port, 30303);
        assert_eq!(c.p2p_host.to_string(), "127.0.0.1");
        assert_eq!(c.max_peers, 25);
        assert_eq!(c.rpc_http_apis, ["ETH", "NET", "WEB3"]);
        assert_eq!(c.host_allowlist, ["localhost", "127.0.0.1"]);
        assert!(!c.rpc_http_enabled && !c.metrics_enabled && !c.dns_enabled);
        assert!(c.discovery_enabled && c.p2p_enabled);
        assert_eq!((c.rpc_http_port, c.metrics_port), (8545, 9545));
        assert_eq!(c.nat_method, "AUTO");
        assert_eq!(c.min_gas_price, "1000");
        c.validate().unwrap();
    }

    #[test]
    fn besu_refusals() {
        let msg = |l: &[&str]| config(l).and_then(|c| c.validate()).unwrap_err().message;
        assert_eq!(
            msg(&["--genesis-file=g", "--p2p-host=pod-0.svc"]),
            "The provided --p2p-host is invalid: pod-0.svc"
        );
        assert_eq!(
            msg(&["--genesis-file=g", "--Xdns-update-enabled=true"]),
            "The `--Xdns-update-enabled` requires dns to be enabled. Either remove --Xdns-update-enabled or specify dns is enabled (--Xdns-enabled)"
        );
        assert_eq!(
            msg(&["--genesis-file=g", "--rpc-http-api=ETH,FOO,qbft"]),
            "Invalid value for option '--rpc-http-api': invalid entries found [FOO]"
        );
        assert_eq!(
            msg(&["--genesis-file=g", "--sync-mode=FAST"]),
            "Invalid value for option '--sync-mode': 'FAST' is not a valid sync mode. Valid values are: FULL, SNAP"
        );
        assert_eq!(
            msg(&["--genesis-file=g", "--nat-method=KUBERNETES"]),
            "Invalid value for option '--nat-method': expected one of [UPNP, UPNPP2PONLY, DOCKER, AUTO, NONE] (case-insensitive) but was 'KUBERNETES'"
        );
        assert_eq!(
            msg(&["--genesis-file=g", "--p2p-port=abc"]),
            "Invalid value for option '--p2p-port': 'abc' is not an int"
        );
        assert_eq!(
            msg(&["--genesis-file=g", "--host-allowlist=*,foo"]),
            "Invalid value for option '--host-allowlist': Values '*' or 'all' can't be used with other hostnames"
        );
        assert!(msg(&["--data-path=/d"]).contains("--genesis-file"));
    }

    #[test]
    fn lists_and_allowlist() {
        let c = config(&[
            "--genesis-file=g",
            "--host-allowlist=all",
            "--rpc-http-api=eth,qbft,ETH",
            "--bootnodes=",
        ])
        .unwrap();
        assert_eq!(c.host_allowlist, ["*"]);
        assert_eq!(c.rpc_http_apis, ["ETH", "QBFT"]);
        assert!(c.bootnodes.is_empty() && c.bootnodes_given);
        let c = config(&["--genesis-file=g", "--host-allowlist=none"]).unwrap();
        assert!(c.host_allowlist.is_empty());
        assert!(c.ignored.is_empty());
        let c = config(&["--genesis-file=g", "--tx-pool-max-size=10"]).unwrap();
        assert_eq!(c.ignored, ["--tx-pool-max-size"]);
    }
}
