//! Enode URLs: `enode://<128 lower-case hex node id>@<host>:<tcp port>[?discport=<udp port>]`.
//!
//! Format from hyperledger/besu `ethereum/p2p/.../peers/EnodeURLImpl.java`
//! (`toURI`, `fromURI`) and its `EnodeURLImplTest`:
//! - the node id has no `0x`;
//! - `?discport=` appears only when the UDP discovery port differs from the
//!   TCP listening port;
//! - IPv6 addresses are bracketed and written in compact form;
//! - DNS names are allowed (Besu resolves them with `--Xdns-enabled=true`).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use thiserror::Error;

use super::key::{PublicKey, PublicKeyError};

/// Builds an enode URL. `host` may be an IPv4 literal, an IPv6 literal (with
/// or without brackets; written back bracketed and compacted) or a DNS name
/// (written as given). `udp_port` of `None` means the same as `tcp_port`.
pub fn enode_url(node_id: &PublicKey, host: &str, tcp_port: u16, udp_port: Option<u16>) -> String {
    let host = format_host(host);
    let mut url = format!("enode://{}@{}:{}", node_id.to_hex(), host, tcp_port);
    if let Some(udp) = udp_port
        && udp != tcp_port
    {
        url.push_str(&format!("?discport={udp}"));
    }
    url
}

fn format_host(host: &str) -> String {
    let inner = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match inner.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => host.to_owned(),
    }
}

/// The host part of an enode URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnodeHost {
    Ip(IpAddr),
    /// A DNS name, kept in lower case.
    Dns(String),
}

impl fmt::Display for EnodeHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnodeHost::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
            EnodeHost::Ip(IpAddr::V4(v4)) => write!(f, "{v4}"),
            EnodeHost::Dns(name) => f.write_str(name),
        }
    }
}

/// A parsed enode URL. `Display` gives the canonical form Besu prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enode {
    pub node_id: PublicKey,
    pub host: EnodeHost,
    pub tcp_port: u16,
    pub udp_port: u16,
}

impl fmt::Display for Enode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "enode://{}@{}:{}",
            self.node_id.to_hex(),
            self.host,
            self.tcp_port
        )?;
        if self.udp_port != self.tcp_port {
            write!(f, "?discport={}", self.udp_port)?;
        }
        Ok(())
    }
}

/// Why an enode URL was refused. Enode URLs are public, so the input is quoted.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum EnodeError {
    #[error("enode URL {url:?} must start with enode://")]
    Scheme { url: String },
    #[error("enode URL {url:?} has no node id before '@'")]
    MissingNodeId { url: String },
    #[error(
        "enode URL {url:?}: node id must have exactly 128 hexadecimal characters and no 0x prefix"
    )]
    NodeIdFormat { url: String },
    #[error("enode URL {url:?}: {source}")]
    NodeId { url: String, source: PublicKeyError },
    #[error("enode URL {url:?} has a missing or invalid host")]
    Host { url: String },
    #[error("enode URL {url:?} has a missing or invalid TCP port")]
    TcpPort { url: String },
    #[error("enode URL {url:?}: the only query allowed is discport=<port>")]
    Query { url: String },
}

/// Parses a user-supplied enode URL (for example a bootnode), as Besu's
/// `EnodeURLImpl.fromString` does with DNS enabled: the node id must be
/// exactly 128 hex digits without `0x` (and, stricter than Besu, a point on
/// the curve); the host is an IPv4 literal, a bracketed IPv6 literal or a DNS
/// name; the TCP port is required; the only query allowed is
/// `discport=<1-5 digits>`.
pub fn parse_enode(url: &str) -> Result<Enode, EnodeError> {
    let owned = || url.to_owned();
    let rest = url
        .get(..8)
        .filter(|s| s.eq_ignore_ascii_case("enode://"))
        .map(|_| &url[8..])
        .ok_or_else(|| EnodeError::Scheme { url: owned() })?;
    let (id, rest) = rest
        .split_once('@')
        .ok_or_else(|| EnodeError::MissingNodeId { url: owned() })?;
    if id.is_empty() {
        return Err(EnodeError::MissingNodeId { url: owned() });
    }
    if id.len() != 128 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(EnodeError::NodeIdFormat { url: owned() });
    }
    let node_id = PublicKey::parse(id).map_err(|source| EnodeError::NodeId {
        url: owned(),
        source,
    })?;
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (host, port) =
        split_host_port(authority).ok_or_else(|| EnodeError::Host { url: owned() })?;
    let host = parse_host(host).ok_or_else(|| EnodeError::Host { url: owned() })?;
    let tcp_port = parse_port(port).ok_or_else(|| EnodeError::TcpPort { url: owned() })?;
    let udp_port = match query {
        None => tcp_port,
        Some(q) => q
            .strip_prefix("discport=")
            .and_then(parse_port)
            .ok_or_else(|| EnodeError::Query { url: owned() })?,
    };
    Ok(Enode {
        node_id,
        host,
        tcp_port,
        udp_port,
    })
}

/// Splits `host:port` or `[v6]:port`. The port may be empty here; the caller
/// reports that as a port error.
fn split_host_port(authority: &str) -> Option<(&str, &str)> {
    if authority.starts_with('[') {
        let close = authority.find(']')?;
        let port = authority[close + 1..].strip_prefix(':')?;
        Some((&authority[..=close], port))
    } else {
        Some(authority.rsplit_once(':').unwrap_or((authority, "")))
    }
}

fn parse_host(host: &str) -> Option<EnodeHost> {
    if let Some(inner) = host.strip_prefix('[') {
        let v6: Ipv6Addr = inner.strip_suffix(']')?.parse().ok()?;
        return Some(EnodeHost::Ip(IpAddr::V6(v6)));
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // All digits and dots: must be a complete IPv4 literal ("192.0.1" is
        // refused, as in EnodeURLImplTest.fromString_withInvalidIpFormatShouldFail).
        return host.parse().ok().map(EnodeHost::Ip);
    }
    is_dns_name(host).then(|| EnodeHost::Dns(host.to_ascii_lowercase()))
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner
/// hyphens, each 1..=63 long, 253 characters in all.
fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// hyperledger/besu `ethereum/p2p/src/test/java/org/hyperledger/besu/ethereum/p2p/peers/EnodeURLImplTest.java` `VALID_NODE_ID`.
    const VALID_NODE_ID: &str = "6f8a80d14311c39f35f516fa664deaaaa13e85b2f7493f37f6144d86991ec012937307647bd3b9a82abe2974e1407241d54947bbb39763a4cac9f77166ad92a0";

    fn id(hex: &str) -> PublicKey {
        PublicKey::parse(hex).unwrap()
    }

    /// EnodeURLImplTest: `fromString_withDiscoveryPortShouldBuildExpectedEnodeURLObject`,
    /// `fromString_withoutDiscoveryPortShouldBuildExpectedEnodeURLObject`,
    /// `fromString_withIPV6InCompactFormShouldBuildExpectedEnodeURLObject` (toString equality).
    #[test]
    fn builds_the_urls_besu_prints() {
        let n = id(VALID_NODE_ID);
        assert_eq!(
            enode_url(&n, "192.168.0.1", 30303, Some(30301)),
            format!("enode://{VALID_NODE_ID}@192.168.0.1:30303?discport=30301")
        );
        assert_eq!(
            enode_url(&n, "192.168.0.1", 30303, None),
            format!("enode://{VALID_NODE_ID}@192.168.0.1:30303")
        );
        assert_eq!(
            enode_url(&n, "192.168.0.1", 30303, Some(30303)),
            format!("enode://{VALID_NODE_ID}@192.168.0.1:30303")
        );
        // IPV6_FULL_ADDRESS is written back compacted, as IPV6_COMPACT_ADDRESS.
        assert_eq!(
            enode_url(&n, "2001:db8:85a3:0:0:8a2e:370:7334", 30303, Some(30301)),
            format!("enode://{VALID_NODE_ID}@[2001:db8:85a3::8a2e:370:7334]:30303?discport=30301")
        );
        assert_eq!(
            enode_url(&n, "[2001:db8:85a3:0:0:8a2e:370:7334]", 30303, None),
            format!("enode://{VALID_NODE_ID}@[2001:db8:85a3::8a2e:370:7334]:30303")
        );
        // EnodeURLImplTest.fromString_with0ValuedDiscoveryPort
        assert_eq!(
            enode_url(&n, "2001:db8:85a3::8a2e:370:7334", 30303, Some(0)),
            format!("enode://{VALID_NODE_ID}@[2001:db8:85a3::8a2e:370:7334]:30303?discport=0")
        );
    }

    /// besu-docs `docs/public-networks/concepts/node-keys.md`: the enode URL
    /// examples (with discport, default host:port, and a DNS name).
    #[test]
    fn matches_besu_docs_node_keys_examples() {
        let n = id(
            "0xc35c3ec90a8a51fd5703594c6303382f3ae6b2ecb9589bab2c04b3794f2bc3fc2631dabb0c08af795787a6c004d8f532230ae6e9925cbbefb0b28b79295d615f",
        );
        let hex = "c35c3ec90a8a51fd5703594c6303382f3ae6b2ecb9589bab2c04b3794f2bc3fc2631dabb0c08af795787a6c004d8f532230ae6e9925cbbefb0b28b79295d615f";
        assert_eq!(
            enode_url(&n, "10.3.58.6", 30303, Some(30301)),
            format!("enode://{hex}@10.3.58.6:30303?discport=30301")
        );
        assert_eq!(
            enode_url(&n, "127.0.0.1", 30303, None),
            format!("enode://{hex}@127.0.0.1:30303")
        );
        let dns = format!("enode://{hex}@mydomain.dev.example.net:30301");
        assert_eq!(enode_url(&n, "mydomain.dev.example.net", 30301, None), dns);
        let parsed = parse_enode(&dns).unwrap();
        assert_eq!(
            parsed.host,
            EnodeHost::Dns("mydomain.dev.example.net".into())
        );
        assert_eq!(parsed.to_string(), dns);
    }

    #[test]
    fn parses_what_besu_parses() {
        let with_disc = format!("enode://{VALID_NODE_ID}@192.168.0.1:30303?discport=30301");
        let e = parse_enode(&with_disc).unwrap();
        assert_eq!(e.node_id.to_hex(), VALID_NODE_ID);
        assert_eq!(e.host, EnodeHost::Ip("192.168.0.1".parse().unwrap()));
        assert_eq!((e.tcp_port, e.udp_port), (30303, 30301));
        assert_eq!(e.to_string(), with_disc);

        let v6 = format!(
            "enode://{VALID_NODE_ID}@[2001:db8:85a3:0:0:8a2e:370:7334]:30303?discport=30301"
        );
        assert_eq!(
            parse_enode(&v6).unwrap().to_string(),
            format!("enode://{VALID_NODE_ID}@[2001:db8:85a3::8a2e:370:7334]:30303?discport=30301")
        );
        // fromString_with0ValuedListeningPort, fromString_with0ValuedDiscoveryPort
        let zero = format!("enode://{VALID_NODE_ID}@192.168.0.1:0");
        assert_eq!(parse_enode(&zero).unwrap().to_string(), zero);
        let e = parse_enode(&format!(
            "enode://{VALID_NODE_ID}@[2001:db8:85a3::8a2e:370:7334]:30303?discport=0"
        ))
        .unwrap();
        assert_eq!(e.udp_port, 0);
        // Upper-case node id and scheme are accepted (NODE_ID_PATTERN is [0-9a-fA-F]; scheme equalsIgnoreCase).
        let upper = format!("ENODE://{}@192.168.0.1:30303", VALID_NODE_ID.to_uppercase());
        assert_eq!(parse_enode(&upper).unwrap().node_id.to_hex(), VALID_NODE_ID);
    }

    /// The failure cases of EnodeURLImplTest.
    #[test]
    fn rejects_what_besu_rejects() {
        let ip = "192.168.0.1";
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "Scheme"),
            (" ".into(), "Scheme"),
            (format!("http://{VALID_NODE_ID}@{ip}:30303"), "Scheme"),
            (format!("enode://@{ip}:30303"), "MissingNodeId"),
            (
                format!("enode://wrong_size_string@{ip}:30303"),
                "NodeIdFormat",
            ),
            (
                format!("enode://0x{}@{ip}:30303", "0".repeat(126)),
                "NodeIdFormat",
            ),
            (
                format!("enode://0x{VALID_NODE_ID}@{ip}:30303"),
                "NodeIdFormat",
            ),
            (
                format!("enode://{}@{ip}:30303", &VALID_NODE_ID[1..]),
                "NodeIdFormat",
            ),
            (format!("enode://{VALID_NODE_ID}@:30303"), "Host"),
            (format!("enode://{VALID_NODE_ID}@192.0.1:30303"), "Host"),
            (format!("enode://{VALID_NODE_ID}@{ip}"), "TcpPort"),
            (format!("enode://{VALID_NODE_ID}@{ip}:"), "TcpPort"),
            (
                format!("enode://{VALID_NODE_ID}@{ip}:?discport=30301"),
                "TcpPort",
            ),
            (format!("enode://{VALID_NODE_ID}@{ip}:98765"), "TcpPort"),
            (
                format!("enode://{VALID_NODE_ID}@{ip}:30303?discport=98765"),
                "Query",
            ),
            (
                format!("enode://{VALID_NODE_ID}@{ip}:30303?adiscport=1234"),
                "Query",
            ),
            (
                format!("enode://{VALID_NODE_ID}@{ip}:30303?discport=1234&other=y"),
                "Query",
            ),
            (
                format!("enode://{VALID_NODE_ID}@{ip}:30303?other=123&discport=1234"),
                "Query",
            ),
            (
                format!("enode://{VALID_NODE_ID}@{ip}:30303?discport=1234&discport=456"),
                "Query",
            ),
            (format!("enode://{VALID_NODE_ID}@[::1:30303"), "Host"),
            (format!("enode://{VALID_NODE_ID}@bad_host:30303"), "Host"),
            (format!("enode://{}@{ip}:30303", "0".repeat(128)), "NodeId"),
        ];
        for (url, kind) in cases {
            let err = parse_enode(&url).unwrap_err();
            let dbg = format!("{err:?}");
            assert!(dbg.starts_with(kind), "{url}: {dbg}");
        }
        let err = parse_enode(&format!("enode://{}@{ip}:30303", &VALID_NODE_ID[1..])).unwrap_err();
        assert!(
            err.to_string()
                .contains("exactly 128 hexadecimal characters and no 0x prefix")
        );
    }
}
