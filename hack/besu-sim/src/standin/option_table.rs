//! The options of Besu's main command, as `besu` knows them.
//!
//! Read from the picocli `@Option` annotations of hyperledger/besu @ 3fd224e2
//! (`app/src/main/java/org/hyperledger/besu/cli/BesuCommand.java`, the option classes
//! under `app/src/main/java/org/hyperledger/besu/cli/options/`, and the RocksDB plugin's
//! `RocksDBCLIOptions`, which Besu registers before parsing), plus picocli's standard
//! `--help`/`--version` (`mixinStandardHelpOptions = true`). Only names, arity and
//! whether an option takes one value or a list are kept: that is what the parser needs
//! to accept what Besu accepts and refuse what it refuses. Which of them the stand-in
//! acts on is decided in `config.rs`; the others are accepted and ignored.
//!
//! Regenerate when Besu's options change (`besu --help` lists the visible ones).

use super::options::{Kind, OptSpec};

/// Every option, sorted by its first name.
pub const OPTIONS: &[OptSpec] = &[
    OptSpec {
        names: &["--help", "-h"],
        kind: Kind::Help,
        hidden: false,
    },
    OptSpec {
        names: &["--version", "-V"],
        kind: Kind::Version,
        hidden: false,
    },
    OptSpec {
        names: &["--api-gas-and-priority-fee-limiting-enabled"],
        kind: Kind::Flag,
        hidden: true,
    },
    OptSpec {
        names: &["--api-gas-and-priority-fee-lower-bound-coefficient"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--api-gas-and-priority-fee-upper-bound-coefficient"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--api-gas-price-blocks"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--api-gas-price-max"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--api-gas-price-percentile"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--auto-log-bloom-caching-enabled"],
        kind: Kind::Bool1,
        hidden: false,
    },
    OptSpec {
        names: &["--banned-node-ids", "--banned-node-id"],
        kind: Kind::MultiVarargs,
        hidden: false,
    },
    OptSpec {
        names: &["--block-txs-selection-max-time"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--bonsai-historical-block-limit"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--bonsai-limit-trie-logs-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--bonsai-parallel-state-root-computation-enabled"],
        kind: Kind::Bool1,
        hidden: false,
    },
    OptSpec {
        names: &["--bonsai-parallel-tx-processing-enabled"],
        kind: Kind::Bool1,
        hidden: false,
    },
    OptSpec {
        names: &["--bonsai-trie-logs-pruning-window-size"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--bootnodes"],
        kind: Kind::MultiVarargsOrNone,
        hidden: false,
    },
    OptSpec {
        names: &["--cache-last-block-headers"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--cache-last-block-headers-preload-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--cache-last-blocks"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--cache-precompiles"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--color-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--config-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--data-path"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--data-storage-format"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--discovery-dns-url"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--discovery-enabled"],
        kind: Kind::Bool1,
        hidden: false,
    },
    OptSpec {
        names: &["--engine-host-allowlist"],
        kind: Kind::Multi,
        hidden: false,
    },
    OptSpec {
        names: &["--engine-jwt-disabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--engine-jwt-secret"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--engine-rpc-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--engine-rpc-port", "--engine-rpc-http-port"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--era1-data-uri"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--era1-import-prepipeline-concurrency"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--era1-import-prepipeline-enabled"],
        kind: Kind::Bool01,
        hidden: false,
    },
    OptSpec {
        names: &["--estimate-gas-tolerance-ratio"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--ethstats"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--ethstats-cacert-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--ethstats-contact"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--ethstats-report-interval"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--filter-on-enr-fork-id"],
        kind: Kind::Flag,
        hidden: true,
    },
    OptSpec {
        names: &["--genesis-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--genesis-state-hash-cache-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--graphql-http-cors-origins"],
        kind: Kind::Multi,
        hidden: false,
    },
    OptSpec {
        names: &["--graphql-http-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--graphql-http-host"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--graphql-http-port"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--graphql-mtls-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--graphql-tls-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--graphql-tls-keystore-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--graphql-tls-keystore-password-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--graphql-tls-truststore-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--graphql-tls-truststore-password-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--history-expiry-prune"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--host-allowlist"],
        kind: Kind::Multi,
        hidden: false,
    },
    OptSpec {
        names: &["--identity"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--json-pretty-print-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--key-value-storage"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--kzg-trusted-setup"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--logging", "-l"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--max-blobs-per-block"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--max-blobs-per-transaction"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--max-peers", "--p2p-peer-upper-bound"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--metrics-category", "--metrics-categories"],
        kind: Kind::MultiVarargs,
        hidden: false,
    },
    OptSpec {
        names: &["--metrics-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--metrics-host"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--metrics-port"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--metrics-protocol"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--metrics-push-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--metrics-push-host"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--metrics-push-interval"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--metrics-push-port"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--metrics-push-prometheus-job"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--min-block-occupancy-ratio"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--min-gas-price"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--min-priority-fee"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--miner-extra-data"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--nat-method"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--net-restrict"],
        kind: Kind::MultiVarargs,
        hidden: false,
    },
    OptSpec {
        names: &["--network"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--network-id"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--node-private-key-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--override-genesis-config"],
        kind: Kind::MultiVarargsOrNone,
        hidden: true,
    },
    OptSpec {
        names: &["--p2p-enabled"],
        kind: Kind::Bool1,
        hidden: false,
    },
    OptSpec {
        names: &["--p2p-host"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--p2p-host-ipv6"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--p2p-interface"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--p2p-interface-ipv6"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--p2p-ipv6-outbound-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--p2p-port"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--p2p-port-ipv6"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--permissions-accounts-config-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--permissions-accounts-config-file-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--permissions-nodes-config-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--permissions-nodes-config-file-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--pid-path"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--plugin-block-txs-selection-max-time"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--plugin-continue-on-error"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--plugins"],
        kind: Kind::Multi,
        hidden: false,
    },
    OptSpec {
        names: &["--plugins-verification-mode"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--poa-block-txs-selection-max-time"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--poa-discovery-retry-bootnodes"],
        kind: Kind::Bool1,
        hidden: false,
    },
    OptSpec {
        names: &["--print-paths-and-exit"],
        kind: Kind::ScalarOrNone,
        hidden: false,
    },
    OptSpec {
        names: &["--profile"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--random-peer-priority-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--receipt-compaction-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--remote-connections-limit-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--remote-connections-max-percentage"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--reorg-logging-threshold"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--required-blocks", "--required-block"],
        kind: Kind::MultiVarargsOrNone,
        hidden: false,
    },
    OptSpec {
        names: &["--revert-reason-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-gas-cap"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-api", "--rpc-http-apis"],
        kind: Kind::MultiVarargs,
        hidden: false,
    },
    OptSpec {
        names: &[
            "--rpc-http-api-method-no-auth",
            "--rpc-http-api-methods-no-auth",
        ],
        kind: Kind::MultiVarargs,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-authentication-credentials-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-authentication-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-authentication-jwt-algorithm"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-authentication-jwt-public-key-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-cors-origins"],
        kind: Kind::Multi,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-host"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-max-active-connections"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-max-batch-size"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-max-request-content-length"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-port"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-tls-ca-clients-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &[
            "--rpc-http-tls-cipher-suite",
            "--rpc-http-tls-cipher-suites",
        ],
        kind: Kind::MultiVarargs,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-tls-client-auth-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-tls-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-tls-keystore-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-tls-keystore-password-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-tls-known-clients-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-tls-protocol", "--rpc-http-tls-protocols"],
        kind: Kind::MultiVarargs,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-tls-truststore-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-http-tls-truststore-password-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-max-logs-range"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-max-trace-filter-range"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-tx-feecap"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-api", "--rpc-ws-apis"],
        kind: Kind::MultiVarargs,
        hidden: false,
    },
    OptSpec {
        names: &[
            "--rpc-ws-api-methods-no-auth",
            "--rpc-ws-api-method-no-auth",
        ],
        kind: Kind::MultiVarargs,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-authentication-credentials-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-authentication-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-authentication-jwt-algorithm"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-authentication-jwt-public-key-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-host"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-max-active-connections"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-max-frame-size"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-port"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-ssl-cert-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-ssl-client-auth-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-ssl-enabled"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-ssl-key-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-ssl-keystore-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-ssl-keystore-password"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-ssl-keystore-password-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-ssl-keystore-type"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-ssl-trustcert-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-ssl-truststore-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-ssl-truststore-password"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-ssl-truststore-password-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--rpc-ws-ssl-truststore-type"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--security-module"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--snapsync-server-enabled"],
        kind: Kind::Bool01,
        hidden: false,
    },
    OptSpec {
        names: &["--snapsync-synchronizer-pre-checkpoint-headers-only-enabled"],
        kind: Kind::Bool01,
        hidden: false,
    },
    OptSpec {
        names: &["--snapsync-synchronizer-transaction-indexing-enabled"],
        kind: Kind::Bool01,
        hidden: false,
    },
    OptSpec {
        names: &["--static-nodes-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--strict-tx-replay-protection-enabled"],
        kind: Kind::Bool01,
        hidden: false,
    },
    OptSpec {
        names: &["--sync-min-peers"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--sync-mode"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--target-gas-limit"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--tx-pool"],
        kind: Kind::ScalarOrNone,
        hidden: false,
    },
    OptSpec {
        names: &["--tx-pool-blob-price-bump"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--tx-pool-enable-balance-check"],
        kind: Kind::Bool01,
        hidden: false,
    },
    OptSpec {
        names: &["--tx-pool-enable-save-restore"],
        kind: Kind::Bool01,
        hidden: false,
    },
    OptSpec {
        names: &["--tx-pool-layer-max-capacity"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--tx-pool-limit-by-account-percentage"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--tx-pool-max-future-by-sender"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--tx-pool-max-prioritized"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--tx-pool-max-prioritized-by-type"],
        kind: Kind::Multi,
        hidden: false,
    },
    OptSpec {
        names: &["--tx-pool-max-size"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--tx-pool-min-gas-price"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--tx-pool-min-score"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--tx-pool-no-local-priority"],
        kind: Kind::Bool01,
        hidden: false,
    },
    OptSpec {
        names: &["--tx-pool-price-bump"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--tx-pool-priority-senders"],
        kind: Kind::MultiVarargs,
        hidden: false,
    },
    OptSpec {
        names: &["--tx-pool-retention-hours"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--tx-pool-save-file"],
        kind: Kind::Scalar,
        hidden: false,
    },
    OptSpec {
        names: &["--version-compatibility-protection"],
        kind: Kind::Flag,
        hidden: false,
    },
    OptSpec {
        names: &["--Xaltbn128-native-enabled"],
        kind: Kind::Bool1,
        hidden: true,
    },
    OptSpec {
        names: &["--Xbal-lenient-on-state-root-mismatch"],
        kind: Kind::Flag,
        hidden: true,
    },
    OptSpec {
        names: &["--Xbal-log-bals-on-mismatch"],
        kind: Kind::Flag,
        hidden: true,
    },
    OptSpec {
        names: &["--Xbal-perfect-parallelization-enabled"],
        kind: Kind::Flag,
        hidden: true,
    },
    OptSpec {
        names: &["--Xbal-processing-timeout"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xbal-state-root-timeout"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xbal-trust-state-root"],
        kind: Kind::Flag,
        hidden: true,
    },
    OptSpec {
        names: &["--Xblake2bf-native-enabled"],
        kind: Kind::Bool1,
        hidden: true,
    },
    OptSpec {
        names: &["--Xbonsai-code-using-code-hash-enabled"],
        kind: Kind::Bool1,
        hidden: true,
    },
    OptSpec {
        names: &["--Xbonsai-full-flat-db-enabled"],
        kind: Kind::Bool1,
        hidden: true,
    },
    OptSpec {
        names: &["--Xchain-pruning-bals-retained"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xchain-pruning-blocks-retained"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xchain-pruning-enabled"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xchain-pruning-frequency"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xchain-pruning-retained-minimum"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xcheckpoint-post-merge-enabled"],
        kind: Kind::Bool01,
        hidden: true,
    },
    OptSpec {
        names: &["--Xdns-enabled"],
        kind: Kind::Bool1,
        hidden: true,
    },
    OptSpec {
        names: &["--Xdns-update-enabled"],
        kind: Kind::Bool1,
        hidden: true,
    },
    OptSpec {
        names: &["--Xeth-capability-max"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xeth-capability-min"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xeth-max-message-size"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xeth-max-transactions-message-size"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xeth65-tx-announced-buffering-period-milliseconds"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xevm-jumpdest-cache-weight-kb"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xevm-optimized-opcodes"],
        kind: Kind::Bool1,
        hidden: true,
    },
    OptSpec {
        names: &["--Xevm-worldstate-update-mode"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xewp-max-get-bodies"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xewp-max-get-headers"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xewp-max-get-node-data"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xewp-max-get-pooled-transactions"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xewp-max-get-receipts"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xhttp-timeout-seconds"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xin-process-rpc-api", "--Xin-process-rpc-apis"],
        kind: Kind::MultiVarargs,
        hidden: true,
    },
    OptSpec {
        names: &["--Xin-process-rpc-enabled"],
        kind: Kind::Flag,
        hidden: true,
    },
    OptSpec {
        names: &["--Xincoming-tx-messages-keep-alive-seconds"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xmax-tracked-seen-txs-per-peer"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xmetrics-idle-timeout"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xmetrics-timers-enabled"],
        kind: Kind::Flag,
        hidden: true,
    },
    OptSpec {
        names: &["--Xmodexp-native-enabled"],
        kind: Kind::Bool1,
        hidden: true,
    },
    OptSpec {
        names: &["--Xnat-method-fallback-enabled"],
        kind: Kind::Bool1,
        hidden: true,
    },
    OptSpec {
        names: &["--Xp256verify-native-enabled"],
        kind: Kind::Bool1,
        hidden: true,
    },
    OptSpec {
        names: &["--Xp2p-check-maintained-connections-frequency"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xp2p-dns-discovery-server"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xp2p-initiate-connections-frequency"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xp2p-peer-task-timeout"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xpeer-tracker-forget-evicted-txs"],
        kind: Kind::Bool01,
        hidden: true,
    },
    OptSpec {
        names: &["--Xpeertask-system-enabled"],
        kind: Kind::Flag,
        hidden: true,
    },
    OptSpec {
        names: &["--Xplugin-rocksdb-background-thread-count"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xplugin-rocksdb-blob-garbage-collection-age-cutoff"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xplugin-rocksdb-blob-garbage-collection-force-threshold"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xplugin-rocksdb-blockchain-blob-garbage-collection-enabled"],
        kind: Kind::Flag,
        hidden: true,
    },
    OptSpec {
        names: &["--Xplugin-rocksdb-cache-capacity"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xplugin-rocksdb-high-spec-enabled"],
        kind: Kind::Flag,
        hidden: true,
    },
    OptSpec {
        names: &["--Xplugin-rocksdb-max-open-files"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xplugin-rocksdb-read-cache-snapshots-enabled"],
        kind: Kind::Flag,
        hidden: true,
    },
    OptSpec {
        names: &["--Xplugins-external-enabled"],
        kind: Kind::Flag,
        hidden: true,
    },
    OptSpec {
        names: &["--Xpos-block-creation-max-time"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xpos-block-creation-repetition-min-duration"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xpos-block-finalization-timeout-ms"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xpos-slot-duration"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xpre-merge-pruning-quantity"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xqbft-enable-early-round-change"],
        kind: Kind::Flag,
        hidden: true,
    },
    OptSpec {
        names: &["--Xrpc-ipc-api", "--Xrpc-ipc-apis"],
        kind: Kind::MultiVarargs,
        hidden: true,
    },
    OptSpec {
        names: &["--Xrpc-ipc-enabled"],
        kind: Kind::Flag,
        hidden: true,
    },
    OptSpec {
        names: &["--Xrpc-ipc-path"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsecp-native-enabled", "--Xsecp256k1-native-enabled"],
        kind: Kind::Bool1,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsnapsync-synchronizer-bytecode-count-per-request"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsnapsync-synchronizer-flat-account-healed-count-per-request"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsnapsync-synchronizer-flat-slot-healed-count-per-request"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsnapsync-synchronizer-pivot-block-distance-before-caching"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsnapsync-synchronizer-pivot-block-window-validity"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsnapsync-synchronizer-storage-count-per-request"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsnapsync-synchronizer-trienode-count-per-request"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsynchronizer-backward-headers-download-step-timeout-millis"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsynchronizer-block-propagation-range"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsynchronizer-bodies-download-step-timeout-millis"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsynchronizer-computation-parallelism"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsynchronizer-downloader-bodies-request-size"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsynchronizer-downloader-chain-segment-size"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsynchronizer-downloader-change-target-threshold-by-height"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsynchronizer-downloader-change-target-threshold-by-td"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &[
            "--Xsynchronizer-downloader-checkpoint-RETRIES",
            "--Xsynchronizer-downloader-checkpoint-timeouts-permitted",
        ],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsynchronizer-downloader-header-request-size"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsynchronizer-downloader-parallelism"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsynchronizer-header-download-parallelism-factor"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsynchronizer-pivot-distance"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsynchronizer-receipts-download-step-timeout-millis"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsynchronizer-transactions-parallelism"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsynchronizer-world-state-hash-count-per-request"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsynchronizer-world-state-max-requests-without-progress"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsynchronizer-world-state-min-millis-before-stalling"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsynchronizer-world-state-request-parallelism"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xsynchronizer-world-state-task-cache-size"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xtx-pool-save-restore-timeout"],
        kind: Kind::Scalar,
        hidden: true,
    },
    OptSpec {
        names: &["--Xv5-discovery-enabled"],
        kind: Kind::Flag,
        hidden: true,
    },
    OptSpec {
        names: &["--Xws-timeout-seconds"],
        kind: Kind::Scalar,
        hidden: true,
    },
];
