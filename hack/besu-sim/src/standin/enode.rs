//! Enode URLs and Besu's `--Xdns-*` rules for the host names in them (besu-facts §5).
//!
//! Besu: `ethereum/p2p/.../peers/EnodeURLImpl.java` (`fromString`, `fromURI`,
//! `Builder.ipAddress`, `getIp`, `toURI`), `StaticNodesParser`, `BesuCommand.buildEnodes`
//! / `loadStaticNodes`, `BootnodeResolver`:
//! - DNS disabled: the host must be an IP literal ("Invalid ip address.").
//! - DNS enabled, update disabled: the host is resolved once, when the URL is parsed; an
//!   unresolvable host is an error, and any error then reads "Invalid IP address '<url>'
//!   (or DNS query resolved an invalid IP). --Xdns-enabled is true but
//!   --Xdns-update-enabled flag is false."; the host name is not kept.
//! - DNS and update enabled: a host that resolves keeps its name and is resolved again on
//!   every `getIp()` (a failed lookup keeps the last address); a loopback answer (any of
//!   127.0.0.0/8) is replaced by `InetAddress.getLocalHost()` (the machine's host name,
//!   resolved, and that name is the one kept); an
//!   unresolvable host silently becomes 127.0.0.1 and its name is dropped, so it is
//!   never resolved again.
//! - Static nodes are dialled through `getIp()` on every attempt; bootnodes feed discv4,
//!   whose endpoints are built once at start (`Endpoint.fromEnode`), so they keep the
//!   address they had then.
//!
//! Simplification: an IP literal keeps no host name here; Besu's update mode asks
//! `InetAddress.getHostName()`, i.e. a reverse lookup, and re-resolves that name.

use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};

use crate::besu::PublicKey;

/// How host names in enode URLs are treated (`EnodeDnsConfiguration`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    pub enabled: bool,
    pub update_enabled: bool,
}

/// Name resolution, so tests can answer without a DNS server.
pub trait Resolver: Send + Sync {
    /// The address of `host` (IPv4 preferred, as Java does by default), if it resolves.
    fn lookup(&self, host: &str) -> Option<IpAddr>;
    /// `InetAddress.getLocalHost()`'s host name.
    fn local_host_name(&self) -> Option<String>;
}

/// The system resolver (`getaddrinfo`: `/etc/hosts`, then `/etc/resolv.conf`).
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup(&self, host: &str) -> Option<IpAddr> {
        let addrs: Vec<IpAddr> = (host, 0u16)
            .to_socket_addrs()
            .ok()?
            .map(|a| a.ip())
            .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied()
    }

    fn local_host_name(&self) -> Option<String> {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }
}

/// A resolver that reads only a hosts-format file (`<ip> <name> [<alias>…]`, `#`
/// comments), read again on every lookup: the `BESU_STANDIN_HOSTS_FILE` test knob, so
/// tests can resolve, un-resolve and move names without any DNS traffic.
pub struct HostsFileResolver {
    pub path: std::path::PathBuf,
}

impl HostsFileResolver {
    fn entries(&self) -> Vec<(IpAddr, String)> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let mut out = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
                continue;
            };
            out.extend(words.map(|n| (ip, n.to_ascii_lowercase())));
        }
        out
    }
}

impl Resolver for HostsFileResolver {
    fn lookup(&self, host: &str) -> Option<IpAddr> {
        let host = host.to_ascii_lowercase();
        let found: Vec<IpAddr> = self
            .entries()
            .into_iter()
            .filter(|(_, n)| *n == host)
            .map(|(ip, _)| ip)
            .collect();
        found
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| found.first())
            .copied()
    }

    fn local_host_name(&self) -> Option<String> {
        SystemResolver.local_host_name()
    }
}

static RESOLVER: std::sync::OnceLock<Box<dyn Resolver>> = std::sync::OnceLock::new();

/// Chooses the process's resolver once: a hosts file (test knob) or the system's.
pub fn init_resolver(hosts_file: Option<std::path::PathBuf>) {
    let r: Box<dyn Resolver> = match hosts_file {
        Some(path) => Box::new(HostsFileResolver { path }),
        None => Box::new(SystemResolver),
    };
    let _ = RESOLVER.set(r);
}

/// The process's resolver ([`init_resolver`]; the system's if never chosen).
pub fn resolver() -> &'static dyn Resolver {
    RESOLVER.get_or_init(|| Box::new(SystemResolver)).as_ref()
}

/// A parsed enode URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enode {
    pub id: PublicKey,
    /// The current address (`getIp()`'s last answer).
    pub ip: IpAddr,
    /// Kept only with DNS update enabled and a name that resolved: resolved again on
    /// every [`Enode::refresh`].
    pub hostname: Option<String>,
    /// TCP listening port (0 = not listening).
    pub port: u16,
    /// UDP discovery port.
    pub discport: u16,
}

const SYNTAX_HELP: &str = "Enode URL should have the following format 'enode://<node_id>@<ip>:<listening_port>[?discport=<discovery_port>]'.";

impl Enode {
    /// `EnodeURLImpl.fromString(value, dns)`.
    pub fn parse(value: &str, dns: DnsConfig, resolver: &dyn Resolver) -> Result<Enode, String> {
        Self::parse_inner(value, dns, resolver).map_err(|detail| {
            if dns.enabled && !dns.update_enabled {
                format!(
                    "Invalid IP address '{value}' (or DNS query resolved an invalid IP). --Xdns-enabled is true but --Xdns-update-enabled flag is false."
                )
            } else {
                format!("Invalid enode URL syntax '{value}'. {SYNTAX_HELP} {detail}")
            }
        })
    }

    fn parse_inner(value: &str, dns: DnsConfig, resolver: &dyn Resolver) -> Result<Enode, String> {
        if value.trim().is_empty() {
            return Err("Invalid empty value.".into());
        }
        let (scheme, rest) = value
            .split_once("://")
            .ok_or_else(|| "Missing 'enode' scheme.".to_string())?;
        if !scheme.eq_ignore_ascii_case("enode") {
            return Err("Invalid URI scheme (must equal \"enode\").".into());
        }
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let authority = authority.trim_end_matches('/');
        let (user, hostport) = authority
            .rsplit_once('@')
            .ok_or_else(|| "Missing node ID.".to_string())?;
        if user.len() != 128 || !user.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("Invalid node ID: node ID must have exactly 128 hexadecimal characters and should not include any '0x' hex prefix.".into());
        }
        let mut id = [0u8; 64];
        hex::decode_to_slice(user, &mut id).map_err(|_| "Invalid node ID.".to_string())?;
        let (host, port_text) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, p) = v6
                .split_once(']')
                .ok_or_else(|| "Missing or invalid host or ip address.".to_string())?;
            (h, p.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err("Missing or invalid host or ip address.".into());
        }
        let port: u16 = match port_text {
            Some(p) => p
                .parse()
                .map_err(|_| format!("Invalid listening port: {p}."))?,
            None => return Err("Invalid listening port: -1.".into()),
        };
        let discport = match query {
            None => port,
            Some(q) => q
                .strip_prefix("discport=")
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("Invalid discovery port: '{q}'."))?,
        };
        let (ip, hostname) = resolve_host(host, dns, resolver)?;
        Ok(Enode {
            id: PublicKey(id),
            ip,
            hostname,
            port,
            discport,
        })
    }

    /// `getIp()`: with a kept host name, resolve it again (keeping the last address if
    /// it does not resolve now).
    pub fn refresh(&mut self, resolver: &dyn Resolver) -> IpAddr {
        if let Some(name) = &self.hostname
            && let Some(ip) = resolver.lookup(name)
        {
            self.ip = ip;
        }
        self.ip
    }

    /// `toURI()`: the kept host name or the address, and `?discport` only when it
    /// differs from the listening port.
    pub fn to_uri(&self) -> String {
        let host = match (&self.hostname, self.ip) {
            (Some(h), _) => h.clone(),
            (None, IpAddr::V6(v6)) => format!("[{v6}]"),
            (None, ip) => ip.to_string(),
        };
        let mut out = format!("enode://{}@{}:{}", self.id.to_hex(), host, self.port);
        if self.discport != self.port {
            out.push_str(&format!("?discport={}", self.discport));
        }
        out
    }
}

/// `EnodeURLImpl.Builder.ipAddress(host, dns)`.
fn resolve_host(
    host: &str,
    dns: DnsConfig,
    resolver: &dyn Resolver,
) -> Result<(IpAddr, Option<String>), String> {
    if !dns.enabled {
        return host
            .parse::<IpAddr>()
            .map(|ip| (ip, None))
            .map_err(|_| "Invalid ip address.".to_string());
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    match resolver.lookup(host) {
        Some(ip) if dns.update_enabled && ip.is_loopback() => {
            // `InetAddress.getLocalHost()`: the machine's name and its address; if that
            // does not resolve, the `UnknownHostException` lands in the same catch as
            // an unresolvable host: 127.0.0.1, no name.
            match resolver
                .local_host_name()
                .and_then(|n| resolver.lookup(&n).map(|local| (local, n)))
            {
                Some((local, name)) => Ok((local, Some(name))),
                None => Ok((IpAddr::V4(Ipv4Addr::LOCALHOST), None)),
            }
        }
        Some(ip) if dns.update_enabled => Ok((ip, Some(host.to_string()))),
        Some(ip) => Ok((ip, None)),
        None if dns.update_enabled => Ok((IpAddr::V4(Ipv4Addr::LOCALHOST), None)),
        None => Err("Invalid ip address or hostname.".into()),
    }
}

/// `BootnodeResolver.resolve`: each entry is an enode URL, or a local file (plain path
/// or `file://`) of enode URLs, one a line (blank lines and `#` comments skipped).
/// http(s) lists are refused here: the stand-in fetches nothing from the network.
pub fn expand_bootnode_entries(entries: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for entry in entries.iter().filter(|e| !e.trim().is_empty()) {
        let lower = entry.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Err(format!(
                "Failed to fetch bootnodes from URL: {entry}; besu-standin does not fetch bootnode lists over the network"
            ));
        }
        let path = if lower.starts_with("file://") {
            Some(std::path::PathBuf::from(&entry[7..]))
        } else if !lower.starts_with("enode:") && std::path::Path::new(entry).exists() {
            Some(std::path::PathBuf::from(entry))
        } else {
            None
        };
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| format!("Failed to read bootnodes from file: {entry}; {e}"))?;
                out.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_string),
                );
            }
            None => out.push(entry.clone()),
        }
    }
    Ok(out)
}

/// `StaticNodesParser.fromPath`: a JSON array of enode URLs; a missing file is no static
/// nodes (unless `--static-nodes-file` named it: `explicit`), an empty file too.
pub fn parse_static_nodes(
    path: &std::path::Path,
    explicit: bool,
    dns: DnsConfig,
    resolver: &dyn Resolver,
) -> Result<Vec<Enode>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if explicit {
                return Err(format!(
                    "Static nodes file {} does not exist",
                    path.display()
                ));
            }
            return Ok(Vec::new());
        }
        Err(e) => {
            return Err(format!(
                "Unable to parse static nodes file ({}): {e}",
                path.display()
            ));
        }
    };
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "Content of ({}) was invalid json, and could not be decoded: {e}",
            path.display()
        )
    })?;
    let mut out: Vec<Enode> = Vec::new();
    for s in list {
        let enode = Enode::parse(&s, dns, resolver)
            .and_then(|e| {
                if e.port == 0 {
                    Err("Static node must be configured with a valid listening port.".into())
                } else {
                    Ok(e)
                }
            })
            .map_err(|_| format!("Illegal static enode supplied ({s})"))?;
        // A set in Besu.
        if !out.contains(&enode) {
            out.push(enode);
        }
    }
    Ok(out)
}

#[cfg(test)]
pub mod test_support {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// A resolver answering from a table that tests can change.
    #[derive(Default)]
    pub struct TableResolver {
        pub names: Mutex<BTreeMap<String, IpAddr>>,
        pub local: Option<String>,
    }

    impl TableResolver {
        pub fn set(&self, name: &str, ip: Option<&str>) {
            let mut names = self.names.lock().unwrap();
            match ip {
                Some(ip) => names.insert(name.to_string(), ip.parse().unwrap()),
                None => names.remove(name),
            };
        }
    }

    impl Resolver for TableResolver {
        fn lookup(&self, host: &str) -> Option<IpAddr> {
            self.names.lock().unwrap().get(host).copied()
        }
        fn local_host_name(&self) -> Option<String> {
            self.local.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::TableResolver;
    use super::*;

    const ID: &str = "09b02f8a5fddd222ade4ea4528faefc399623af3f736be3c44f03e2df22fb792f3931a4d9573d333ca74343305762a753388c3422a86d98b713fc91c1ea04842";
    const OFF: DnsConfig = DnsConfig {
        enabled: false,
        update_enabled: false,
    };
    const ON: DnsConfig = DnsConfig {
        enabled: true,
        update_enabled: false,
    };
    const UPDATE: DnsConfig = DnsConfig {
        enabled: true,
        update_enabled: true,
    };

    fn url(host: &str) -> String {
        format!("enode://{ID}@{host}:30303")
    }

    #[test]
    fn parses_and_prints_like_besu() {
        let r = TableResolver::default();
        let e = Enode::parse(&url("10.0.0.7"), OFF, &r).unwrap();
        assert_eq!(e.id.to_hex(), ID);
        assert_eq!(
            (e.ip.to_string(), e.port, e.discport),
            ("10.0.0.7".into(), 30303, 30303)
        );
        assert_eq!(e.to_uri(), url("10.0.0.7"));
        let e = Enode::parse(&format!("{}?discport=30301", url("10.0.0.7")), OFF, &r).unwrap();
        assert_eq!(e.discport, 30301);
        assert!(e.to_uri().ends_with(":30303?discport=30301"));
        let e = Enode::parse(&format!("enode://{ID}@[::1]:1"), OFF, &r).unwrap();
        assert_eq!(e.to_uri(), format!("enode://{ID}@[::1]:1"));
        // A 0x prefix or a short id is refused.
        let err = Enode::parse(&format!("enode://0x{}@1.2.3.4:1", &ID[2..]), OFF, &r).unwrap_err();
        assert!(err.starts_with("Invalid enode URL syntax"), "{err}");
        assert!(
            err.ends_with("should not include any '0x' hex prefix."),
            "{err}"
        );
    }

    /// DNS disabled: host names are refused whatever they resolve to.
    #[test]
    fn dns_disabled_refuses_names() {
        let r = TableResolver::default();
        r.set("boot.svc", Some("10.0.0.1"));
        let err = Enode::parse(&url("boot.svc"), OFF, &r).unwrap_err();
        assert_eq!(
            err,
            format!(
                "Invalid enode URL syntax '{}'. {SYNTAX_HELP} Invalid ip address.",
                url("boot.svc")
            )
        );
    }

    /// DNS enabled, update disabled: resolved once, name dropped; unresolvable = error
    /// with Besu's message.
    #[test]
    fn dns_without_update_resolves_once_or_fails() {
        let r = TableResolver::default();
        r.set("boot.svc", Some("10.0.0.1"));
        let mut e = Enode::parse(&url("boot.svc"), ON, &r).unwrap();
        assert_eq!(
            (e.ip.to_string(), e.hostname.clone()),
            ("10.0.0.1".into(), None)
        );
        r.set("boot.svc", Some("10.0.0.2"));
        assert_eq!(e.refresh(&r).to_string(), "10.0.0.1");
        assert_eq!(e.to_uri(), url("10.0.0.1"));
        let err = Enode::parse(&url("nosuchhost.invalid"), ON, &r).unwrap_err();
        assert_eq!(
            err,
            format!(
                "Invalid IP address '{}' (or DNS query resolved an invalid IP). --Xdns-enabled is true but --Xdns-update-enabled flag is false.",
                url("nosuchhost.invalid")
            )
        );
    }

    /// DNS and update enabled: a resolved name is followed; an unresolvable one becomes
    /// 127.0.0.1 for good; a loopback answer becomes the local host.
    #[test]
    fn dns_with_update() {
        let r = TableResolver {
            local: Some("pod-7".into()),
            ..TableResolver::default()
        };
        r.set("boot.svc", Some("10.0.0.1"));
        let mut e = Enode::parse(&url("boot.svc"), UPDATE, &r).unwrap();
        assert_eq!(e.hostname.as_deref(), Some("boot.svc"));
        r.set("boot.svc", Some("10.0.0.2"));
        assert_eq!(e.refresh(&r).to_string(), "10.0.0.2");
        // A failed lookup keeps the last address.
        r.set("boot.svc", None);
        assert_eq!(e.refresh(&r).to_string(), "10.0.0.2");
        assert_eq!(e.to_uri(), url("boot.svc"));

        let mut lost = Enode::parse(&url("nosuchhost.invalid"), UPDATE, &r).unwrap();
        assert_eq!(
            (lost.ip.to_string(), lost.hostname.clone()),
            ("127.0.0.1".into(), None)
        );
        r.set("nosuchhost.invalid", Some("10.0.0.9"));
        assert_eq!(lost.refresh(&r).to_string(), "127.0.0.1");

        // Any name that resolves to a loopback address (127.0.0.0/8) is replaced by the
        // local host: its name is kept and followed from then on.
        r.set("localhost", Some("127.0.0.1"));
        r.set("pod-7", Some("10.1.1.7"));
        let mut local = Enode::parse(&url("localhost"), UPDATE, &r).unwrap();
        assert_eq!(
            (local.ip.to_string(), local.hostname.as_deref()),
            ("10.1.1.7".into(), Some("pod-7"))
        );
        r.set("pod-7", Some("10.1.1.8"));
        assert_eq!(local.refresh(&r).to_string(), "10.1.1.8");
        // A local host name that does not resolve: 127.0.0.1, no name.
        r.set("pod-7", None);
        let lost = Enode::parse(&url("localhost"), UPDATE, &r).unwrap();
        assert_eq!(
            (lost.ip.to_string(), lost.hostname),
            ("127.0.0.1".into(), None)
        );
    }

    /// The hosts-file resolver (the `BESU_STANDIN_HOSTS_FILE` knob): read on every
    /// lookup, IPv4 first, names case-insensitive. (No test here asks the system
    /// resolver about a name: on a machine whose resolv.conf names a remote server that
    /// would leave the machine.)
    #[test]
    fn hosts_file_resolver() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(
            &path,
            "# test\n127.0.0.1 localhost\n::1 v6only localhost\n127.0.0.9 Boot.Svc alias # x\n",
        )
        .unwrap();
        let r = HostsFileResolver { path: path.clone() };
        assert_eq!(r.lookup("localhost"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(r.lookup("boot.svc"), Some("127.0.0.9".parse().unwrap()));
        assert_eq!(r.lookup("alias"), Some("127.0.0.9".parse().unwrap()));
        assert_eq!(r.lookup("v6only"), Some("::1".parse().unwrap()));
        assert_eq!(r.lookup("nosuchhost.invalid"), None);
        let e = Enode::parse(&url("localhost"), ON, &r).unwrap();
        assert_eq!(e.ip.to_string(), "127.0.0.1");
        assert!(Enode::parse(&url("nosuchhost.invalid"), ON, &r).is_err());
        std::fs::write(&path, "127.0.0.10 boot.svc\n").unwrap();
        assert_eq!(r.lookup("boot.svc"), Some("127.0.0.10".parse().unwrap()));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(r.lookup("boot.svc"), None);
    }

    #[test]
    fn static_nodes_files() {
        let dir = tempfile::tempdir().unwrap();
        let r = TableResolver::default();
        let p = dir.path().join("static-nodes.json");
        assert_eq!(parse_static_nodes(&p, false, OFF, &r), Ok(vec![]));
        assert!(
            parse_static_nodes(&p, true, OFF, &r)
                .unwrap_err()
                .contains("does not exist")
        );
        std::fs::write(&p, "").unwrap();
        assert_eq!(parse_static_nodes(&p, true, OFF, &r), Ok(vec![]));
        std::fs::write(
            &p,
            format!("[\"{}\", \"{}\"]", url("10.0.0.1"), url("10.0.0.1")),
        )
        .unwrap();
        assert_eq!(parse_static_nodes(&p, true, OFF, &r).unwrap().len(), 1);
        std::fs::write(
            &p,
            format!("[\"{}\"]", url("10.0.0.1:0").replace(":30303", "")),
        )
        .unwrap();
        let err = parse_static_nodes(&p, true, OFF, &r).unwrap_err();
        assert!(err.starts_with("Illegal static enode supplied ("), "{err}");
        std::fs::write(&p, "{").unwrap();
        assert!(
            parse_static_nodes(&p, true, OFF, &r)
                .unwrap_err()
                .contains("invalid json")
        );
    }

    #[test]
    fn bootnode_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("boot.txt");
        std::fs::write(&p, format!("# list\n\n {}\n", url("10.0.0.1"))).unwrap();
        let entries = vec![
            p.display().to_string(),
            format!("file://{}", p.display()),
            url("10.0.0.2"),
        ];
        assert_eq!(
            expand_bootnode_entries(&entries).unwrap(),
            vec![url("10.0.0.1"), url("10.0.0.1"), url("10.0.0.2")]
        );
        assert!(expand_bootnode_entries(&["https://example.invalid/b".into()]).is_err());
    }
}
