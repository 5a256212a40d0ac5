//! What Hyperledger Besu 26.3.0 refuses at start, or what would break the nodes the
//! operator manages, refused at admission instead: one source of truth for the CEL rules
//! of `rpcApis` and `extraArgs` (on `BesuNetwork.spec.nodeTemplate` and `BesuNode.spec`),
//! which the renderer can be tested against as well.

use kube::core::{Message, Rule};

/// The JSON-RPC API groups Besu 26.3.0 accepts in `--rpc-http-api` and `--rpc-ws-api`:
/// the `RpcApis` enum of `ethereum/api/src/main/java/org/hyperledger/besu/ethereum/api/jsonrpc/RpcApis.java`.
/// Any other entry makes `JsonRpcHttpOptions.validate`
/// (`app/src/main/java/org/hyperledger/besu/cli/options/JsonRpcHttpOptions.java`) refuse
/// to start with "Invalid value for option '--rpc-http-api': invalid entries found [...]".
/// `EEA` and `PRIV` went with private transactions, `CLIQUE` with Clique. The operator
/// upper-cases entries, so admission accepts them in any case. (Namespaces a Besu plugin
/// registers are accepted by Besu too; the stock image has none.)
pub const BESU_RPC_APIS: &[&str] = &[
    "ETH", "DEBUG", "MINER", "NET", "PERM", "WEB3", "ADMIN", "TXPOOL", "TRACE", "PLUGINS", "IBFT",
    "ENGINE", "QBFT", "TESTING",
];

/// The API groups every Besu node must enable, with the method the operator calls in
/// each: it reads every node's height and peer count.
pub const REQUIRED_RPC_APIS: &[(&str, &str)] =
    &[("ETH", "eth_blockNumber"), ("NET", "net_peerCount")];

/// A Besu option the operator sets itself, which `extraArgs` must not set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperatorOption {
    /// The option as Besu spells it, e.g. `--p2p-host`.
    pub name: &'static str,
    /// What the operator sets it to, and why overriding it would break the node.
    pub reason: &'static str,
    /// The `BesuNode.spec` field that sets it instead, if there is one.
    pub node_field: Option<&'static str>,
    /// The `BesuNetwork.spec` field that sets it instead, if there is one.
    pub network_field: Option<&'static str>,
}

/// The options the operator sets on every Besu node: on the command line
/// (`--config-file`, `--p2p-host`, `--Xdns-enabled`, `--Xdns-update-enabled`), where Besu
/// refuses a scalar option given twice ("Option '--p2p-host' should be specified only
/// once", `BesuCommand.rejectDuplicateScalarOptions` in
/// `app/src/main/java/org/hyperledger/besu/cli/BesuCommand.java`), and in `config.toml`,
/// where the command line would override what the operator manages (volumes, ports,
/// probes, JSON-RPC, metrics). Admission refuses an `extraArgs` entry naming any of them.
pub const OPERATOR_OPTIONS: &[OperatorOption] = &[
    OperatorOption {
        name: "--config-file",
        reason: "to the config.toml it renders from this spec",
        node_field: None,
        network_field: None,
    },
    OperatorOption {
        name: "--p2p-host",
        reason: "to the pod IP on the command line, and Besu refuses an option given twice",
        node_field: None,
        network_field: None,
    },
    OperatorOption {
        name: "--Xdns-enabled",
        reason: "on the command line, so that host names in enode URLs resolve, and Besu refuses an option given twice",
        node_field: None,
        network_field: None,
    },
    OperatorOption {
        name: "--Xdns-update-enabled",
        reason: "on the command line, so that enode host names are resolved again when a pod moves, and Besu refuses an option given twice",
        node_field: None,
        network_field: None,
    },
    OperatorOption {
        name: "--genesis-file",
        reason: "to the genesis ConfigMap it mounts",
        node_field: Some("genesisConfigMapRef"),
        network_field: Some("genesis"),
    },
    OperatorOption {
        name: "--data-path",
        reason: "to the data volume it mounts",
        node_field: Some("storage"),
        network_field: Some("nodeTemplate.storage"),
    },
    OperatorOption {
        name: "--node-private-key-file",
        reason: "to the key Secret it mounts, the node's identity",
        node_field: Some("keySecretRef"),
        network_field: Some("importedKeys"),
    },
    OperatorOption {
        name: "--static-nodes-file",
        reason: "to the static-nodes ConfigMap it mounts",
        node_field: Some("staticNodesConfigMapRef"),
        network_field: None,
    },
    OperatorOption {
        name: "--bootnodes",
        reason: "to the bootnodes' enode URLs",
        node_field: Some("bootnodes"),
        network_field: None,
    },
    OperatorOption {
        name: "--p2p-port",
        reason: "to the port its Services and enode URLs use",
        node_field: Some("ports.p2p"),
        network_field: None,
    },
    OperatorOption {
        name: "--rpc-http-enabled",
        reason: "on, for the probes and its own JSON-RPC calls",
        node_field: None,
        network_field: None,
    },
    OperatorOption {
        name: "--rpc-http-port",
        reason: "to the port its probes, Services and JSON-RPC calls use",
        node_field: Some("ports.rpcHttp"),
        network_field: None,
    },
    OperatorOption {
        name: "--rpc-http-api",
        reason: "to rpcApis, plus QBFT or IBFT on a validator for its votes",
        node_field: Some("rpcApis"),
        network_field: Some("nodeTemplate.rpcApis"),
    },
    OperatorOption {
        name: "--rpc-http-apis",
        reason: "(as --rpc-http-api) to rpcApis, plus QBFT or IBFT on a validator for its votes",
        node_field: Some("rpcApis"),
        network_field: Some("nodeTemplate.rpcApis"),
    },
    OperatorOption {
        name: "--metrics-enabled",
        reason: "on, for Prometheus",
        node_field: None,
        network_field: None,
    },
    OperatorOption {
        name: "--metrics-port",
        reason: "to the port Prometheus scrapes",
        node_field: Some("ports.metrics"),
        network_field: None,
    },
    OperatorOption {
        name: "--nat-method",
        reason: "to NONE: pods are reached at their pod IP",
        node_field: None,
        network_field: None,
    },
    OperatorOption {
        name: "--data-storage-format",
        reason: "from the storage's dataStorageFormat, which a database cannot change",
        node_field: Some("storage.dataStorageFormat"),
        network_field: Some("nodeTemplate.storage.dataStorageFormat"),
    },
];

/// The operator option an `extraArgs` entry sets, if any: the entry's option name is the
/// part before `=`, so `--p2p-host=1.2.3.4` and `--p2p-host` (its value in the next
/// entry) are both found. The same test as admission's.
pub fn operator_option(arg: &str) -> Option<&'static OperatorOption> {
    let name = arg.split('=').next().unwrap_or(arg);
    OPERATOR_OPTIONS.iter().find(|o| o.name == name)
}

/// Which kind's spec a rule is built for: the fields to name differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    Network,
    Node,
}

/// `s` as a CEL single-quoted string literal.
fn cel_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `items` as a CEL list of strings.
fn cel_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(cel_str).collect();
    format!("[{}]", items.join(", "))
}

/// The rule on an `rpcApis` list: every entry is one of [`BESU_RPC_APIS`], in any case.
/// The message names the first entry that is not.
pub(crate) fn rpc_apis_known_rule() -> Rule {
    let valid = cel_list(BESU_RPC_APIS.iter().copied());
    let advice = format!(
        "is not a JSON-RPC API group of Besu 26.3.0, which would refuse to start; use only {} (any case). EEA and PRIV were removed from Besu with private transactions (old Helm chart values still list them), CLIQUE with Clique: remove them",
        BESU_RPC_APIS.join(", ")
    );
    let message = format!(
        "'rpcApis entry \"' + self.filter(a, !(a.upperAscii() in {valid}))[0] + '\" ' + {}",
        cel_str(&advice)
    );
    Rule::new(format!("self.all(a, a.upperAscii() in {valid})"))
        .message(Message::Expression(message))
}

/// The rule that a Besu node's `rpcApis` include [`REQUIRED_RPC_APIS`]. For a network the
/// rule sits on `nodeTemplate.rpcApis` (every node of a network runs Besu); for a node on
/// the spec, where it skips Prometheus and Grafana nodes, and points at `rpcApis`.
pub(crate) fn rpc_apis_required_rule(owner: Owner) -> Rule {
    let list = match owner {
        Owner::Network => "self",
        Owner::Node => "self.rpcApis",
    };
    let has = |api: &str| format!("{list}.exists(a, a.upperAscii() == {})", cel_str(api));
    let all_present: Vec<String> = REQUIRED_RPC_APIS.iter().map(|(api, _)| has(api)).collect();
    let all_present = all_present.join(" && ");
    let missing: Vec<String> = REQUIRED_RPC_APIS
        .iter()
        .map(|(api, _)| format!("({} ? '' : {})", has(api), cel_str(&format!(" {api}"))))
        .collect();
    let calls: Vec<String> = REQUIRED_RPC_APIS
        .iter()
        .map(|(api, method)| format!("{method} ({api})"))
        .collect();
    let names: Vec<&str> = REQUIRED_RPC_APIS.iter().map(|(api, _)| *api).collect();
    let advice = format!(
        ": the operator calls {} on every Besu node; add {} to rpcApis",
        calls.join(" and "),
        names.join(" and ")
    );
    let message = format!(
        "'rpcApis lacks' + {} + {}",
        missing.join(" + "),
        cel_str(&advice)
    );
    match owner {
        Owner::Network => Rule::new(all_present),
        Owner::Node => Rule::new(format!(
            "self.type == 'prometheus' || self.type == 'grafana' || !has(self.rpcApis) || ({all_present})"
        ))
        .field_path(".rpcApis"),
    }
    .message(Message::Expression(message))
}

/// The rule on an `extraArgs` list: no entry sets one of [`OPERATOR_OPTIONS`]. The
/// message names the first such option, why the operator sets it, and the spec field to
/// use instead where there is one.
pub(crate) fn extra_args_rule(owner: Owner) -> Rule {
    let names = cel_list(OPERATOR_OPTIONS.iter().map(|o| o.name));
    let option_of = "a.split('=')[0]";
    let entries: Vec<String> = OPERATOR_OPTIONS
        .iter()
        .map(|o| {
            let field = match owner {
                Owner::Network => o.network_field,
                Owner::Node => o.node_field,
            };
            let instead = match field {
                Some(field) => format!("set spec.{field} instead"),
                None => "remove it from extraArgs".to_string(),
            };
            let text = format!("the operator sets it {}; {instead}", o.reason);
            format!("{}: {}", cel_str(o.name), cel_str(&text))
        })
        .collect();
    let first = format!("self.map(a, {option_of}).filter(o, o in {names})[0]");
    let message = format!(
        "'extraArgs must not set ' + {first} + ': ' + {{{}}}[{first}]",
        entries.join(", ")
    );
    Rule::new(format!("self.all(a, !({option_of} in {names}))"))
        .message(Message::Expression(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_option_is_found_with_and_without_a_value() {
        assert_eq!(
            operator_option("--p2p-host=1.2.3.4").map(|o| o.name),
            Some("--p2p-host")
        );
        assert_eq!(
            operator_option("--data-path").map(|o| o.name),
            Some("--data-path")
        );
        assert_eq!(operator_option("--max-peers=50"), None);
        assert_eq!(operator_option("/x"), None);
        assert_eq!(operator_option(""), None);
    }

    #[test]
    fn option_names_are_unique_long_options() {
        let mut names: Vec<&str> = OPERATOR_OPTIONS.iter().map(|o| o.name).collect();
        assert!(
            names
                .iter()
                .all(|n| n.starts_with("--") && !n.contains('='))
        );
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OPERATOR_OPTIONS.len());
    }

    #[test]
    fn required_apis_are_valid_apis() {
        for (api, _) in REQUIRED_RPC_APIS {
            assert!(BESU_RPC_APIS.contains(api), "{api}");
        }
    }

    #[test]
    fn cel_strings_are_escaped() {
        assert_eq!(cel_str(r"it's a \ test"), r"'it\'s a \\ test'");
    }
}
