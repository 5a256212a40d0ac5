//! Genesis documents for QBFT and IBFT 2.0 networks.
//!
//! [`genesis_json`] is a pure function of its [`GenesisSpec`]: the same spec
//! always gives the same bytes (fixed key order, validators sorted, fixed
//! nonce/timestamp), so [`genesis_sha256`] identifies a network's genesis.
//!
//! # Forks
//!
//! Every milestone up to and including **Shanghai** is active from genesis:
//! `homesteadBlock`, `eip150Block`, `eip158Block`, `byzantiumBlock`,
//! `constantinopleBlock`, `petersburgBlock`, `istanbulBlock`, `berlinBlock`,
//! `londonBlock` = 0 and `shanghaiTime` = 0. (The glacier milestones only move
//! the difficulty bomb, which BFT replaces with a constant difficulty of 1.)
//!
//! Why Shanghai and not later, from hyperledger/besu @ 3fd224e (after 26.3.0):
//! - Shanghai is the newest fork Besu supports on BFT chains: CHANGELOG
//!   "Support for `shanghaiTime` fork and Shanghai EVM smart contracts in
//!   QBFT/IBFT chains" (#6353), fixed again in 26.x "Fix QBFT Shanghai support
//!   by reintroducing NotApplicableWithdrawals withdrawals validator" (#9830);
//!   the BFT acceptance tests run Shanghai
//!   (`acceptance-tests/.../bft/ParameterizedBftTestBase.updateGenesisConfigToShanghai`);
//!   the issue that added it is besu-eth/besu#5446 "Shanghai support for QBFT/IBFT".
//! - No BFT test, changelog entry or doc enables `cancunTime` or later on
//!   QBFT/IBFT 2.0. `BaseBftProtocolScheduleBuilder` reuses the mainnet
//!   milestones, but BFT block creation has no beacon root
//!   (`BlockHeaderBuilder.createPending` uses zero), Cancun's EIP-4788 system
//!   call then logs an error on every block unless the beacon-roots contract
//!   is in `alloc` (`CancunPreExecutionProcessor`, `SystemCallProcessor`), and
//!   Prague's EIP-7002/7251 request system calls throw
//!   `InvalidSystemCallAddressException` when their contracts are not
//!   deployed, so a Prague BFT chain without those contracts in `alloc` could
//!   not produce blocks.
//! - besu-docs' QBFT and IBFT 2.0 genesis examples
//!   (`private-networks/how-to/configure/consensus/{qbft,ibft}.md`) still use
//!   only `berlinBlock: 0`; London adds EIP-1559 (use `zero_base_fee` for
//!   free-gas networks) and Shanghai adds PUSH0, which current Solidity emits
//!   by default.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::extradata::{
    BftExtraData, Consensus, ConsensusError, ExtraDataError, encode_genesis_extra_data,
};
use super::key::Address;

/// `BftHelpers.EXPECTED_MIX_HASH`: "ctical byzantine fault tolerance" in ASCII,
/// which Besu requires in every BFT block header (besu-docs qbft.md/ibft.md).
pub const BFT_MIX_HASH: &str = "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365";

/// Besu's defaults for the BFT options (`JsonBftConfigOptions`), written out
/// explicitly when the spec leaves them unset.
pub const DEFAULT_BLOCK_PERIOD_SECONDS: u64 = 1;
pub const DEFAULT_EPOCH_LENGTH: u64 = 30_000;
pub const DEFAULT_REQUEST_TIMEOUT_SECONDS: u64 = 1;
/// Block gas limit when the spec sets none: 700,000,000 (`0x29b92700`), the
/// value in besu-docs' QBFT genesis example.
pub const DEFAULT_GAS_LIMIT: u64 = 0x29b9_2700;

/// Largest balance Besu accepts (`Wei` is a 256-bit unsigned integer).
const MAX_U256_DECIMAL: &str =
    "115792089237316195423570985008687907853269984665640564039457584007913129639935";

/// What goes into a genesis document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenesisSpec {
    pub consensus: Consensus,
    pub chain_id: u64,
    /// `blockperiodseconds`; Besu's default 1 when `None`.
    pub block_period_seconds: Option<u64>,
    /// `epochlength`; Besu's default 30000 when `None`.
    pub epoch_length: Option<u64>,
    /// `requesttimeoutseconds`; Besu's default 1 when `None`.
    pub request_timeout_seconds: Option<u64>,
    /// Genesis block gas limit; [`DEFAULT_GAS_LIMIT`] when `None`.
    pub gas_limit: Option<u64>,
    /// `config.zeroBaseFee` (written only when true).
    pub zero_base_fee: bool,
    /// `config.contractSizeLimit` in bytes (written only when set).
    pub contract_size_limit: Option<u32>,
    pub alloc: BTreeMap<Address, GenesisAccount>,
    /// Initial validators, in any order: the genesis lists them sorted.
    pub validators: Vec<Address>,
}

impl GenesisSpec {
    /// A spec with Besu's defaults and an empty `alloc`.
    pub fn new(consensus: Consensus, chain_id: u64, validators: Vec<Address>) -> GenesisSpec {
        GenesisSpec {
            consensus,
            chain_id,
            block_period_seconds: None,
            epoch_length: None,
            request_timeout_seconds: None,
            gas_limit: None,
            zero_base_fee: false,
            contract_size_limit: None,
            alloc: BTreeMap::new(),
            validators,
        }
    }
}

/// A pre-funded account (or contract) in `alloc`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GenesisAccount {
    /// Wei, as a decimal string or `0x` hex, at most 2^256-1.
    pub balance: String,
    /// Contract code, `0x` + an even number of hex digits.
    pub code: Option<String>,
    /// Storage slots: key and value each `0x`-optional hex of at most 64 digits.
    /// Written as `0x` + 64 lower-case digits.
    pub storage: Option<BTreeMap<String, String>>,
    pub nonce: Option<u64>,
}

/// Why a genesis could not be written or read.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum GenesisError {
    #[error("chain id must not be 0")]
    ChainIdZero,
    #[error("a BFT genesis needs at least one validator")]
    NoValidators,
    #[error("validator {0} is listed more than once")]
    DuplicateValidator(Address),
    #[error("{field} must be at least 1")]
    ZeroValue { field: &'static str },
    #[error("alloc {address}: {reason}")]
    Account { address: Address, reason: String },
    #[error("genesis is not valid JSON: {0}")]
    Json(String),
    #[error("genesis has no {0}")]
    Missing(&'static str),
    #[error("genesis config names no BFT protocol (expected a qbft or ibft2 object)")]
    NoConsensus,
    #[error("genesis config: {0}")]
    UnsupportedConsensus(ConsensusError),
    #[error(
        "genesis config has both qbft and ibft2 (an IBFT 2.0 to QBFT migration), which is not supported"
    )]
    BothConsensus,
    #[error("genesis extraData is not 0x-prefixed hex")]
    ExtraDataHex,
    #[error(transparent)]
    ExtraData(#[from] ExtraDataError),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenesisDoc {
    config: ConfigDoc,
    nonce: &'static str,
    timestamp: &'static str,
    gas_limit: String,
    difficulty: &'static str,
    mix_hash: &'static str,
    coinbase: &'static str,
    number: &'static str,
    gas_used: &'static str,
    parent_hash: &'static str,
    extra_data: String,
    alloc: BTreeMap<Address, AccountDoc>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigDoc {
    chain_id: u64,
    homestead_block: u64,
    eip150_block: u64,
    eip158_block: u64,
    byzantium_block: u64,
    constantinople_block: u64,
    petersburg_block: u64,
    istanbul_block: u64,
    berlin_block: u64,
    london_block: u64,
    shanghai_time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    zero_base_fee: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contract_size_limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    qbft: Option<BftDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ibft2: Option<BftDoc>,
}

/// Besu reads these keys case-insensitively; lower case is what its docs use.
#[derive(Serialize)]
struct BftDoc {
    blockperiodseconds: u64,
    epochlength: u64,
    requesttimeoutseconds: u64,
}

#[derive(Serialize)]
struct AccountDoc {
    balance: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    storage: Option<BTreeMap<String, String>>,
}

/// The genesis document for `spec`: pretty-printed JSON (2-space indent) with a
/// fixed key order and a trailing newline, byte-for-byte the same for the same
/// spec. Validators are sorted ascending (the order Besu requires in every
/// later block header); duplicates, chain id 0, no validators and zero BFT
/// periods are refused, as are malformed `alloc` entries.
pub fn genesis_json(spec: &GenesisSpec) -> Result<String, GenesisError> {
    if spec.chain_id == 0 {
        return Err(GenesisError::ChainIdZero);
    }
    if spec.validators.is_empty() {
        return Err(GenesisError::NoValidators);
    }
    let mut validators = spec.validators.clone();
    validators.sort();
    if let Some(w) = validators.windows(2).find(|w| w[0] == w[1]) {
        return Err(GenesisError::DuplicateValidator(w[0]));
    }
    let bft = BftDoc {
        blockperiodseconds: positive(
            "block period seconds",
            spec.block_period_seconds
                .unwrap_or(DEFAULT_BLOCK_PERIOD_SECONDS),
        )?,
        epochlength: positive(
            "epoch length",
            spec.epoch_length.unwrap_or(DEFAULT_EPOCH_LENGTH),
        )?,
        requesttimeoutseconds: positive(
            "request timeout seconds",
            spec.request_timeout_seconds
                .unwrap_or(DEFAULT_REQUEST_TIMEOUT_SECONDS),
        )?,
    };
    let gas_limit = positive("gas limit", spec.gas_limit.unwrap_or(DEFAULT_GAS_LIMIT))?;
    if spec.contract_size_limit == Some(0) {
        return Err(GenesisError::ZeroValue {
            field: "contract size limit",
        });
    }
    let alloc = spec
        .alloc
        .iter()
        .map(|(address, account)| {
            account_doc(account)
                .map(|doc| (*address, doc))
                .map_err(|reason| GenesisError::Account {
                    address: *address,
                    reason,
                })
        })
        .collect::<Result<BTreeMap<_, _>, _>>()?;

    let (qbft, ibft2) = match spec.consensus {
        Consensus::Qbft => (Some(bft), None),
        Consensus::Ibft2 => (None, Some(bft)),
    };
    let doc = GenesisDoc {
        config: ConfigDoc {
            chain_id: spec.chain_id,
            homestead_block: 0,
            eip150_block: 0,
            eip158_block: 0,
            byzantium_block: 0,
            constantinople_block: 0,
            petersburg_block: 0,
            istanbul_block: 0,
            berlin_block: 0,
            london_block: 0,
            shanghai_time: 0,
            zero_base_fee: spec.zero_base_fee.then_some(true),
            contract_size_limit: spec.contract_size_limit,
            qbft,
            ibft2,
        },
        nonce: "0x0",
        timestamp: "0x0",
        gas_limit: format!("{gas_limit:#x}"),
        difficulty: "0x1",
        mix_hash: BFT_MIX_HASH,
        coinbase: "0x0000000000000000000000000000000000000000",
        number: "0x0",
        gas_used: "0x0",
        parent_hash: "0x0000000000000000000000000000000000000000000000000000000000000000",
        extra_data: format!(
            "0x{}",
            hex::encode(encode_genesis_extra_data(spec.consensus, &validators))
        ),
        alloc,
    };
    let mut json =
        serde_json::to_string_pretty(&doc).map_err(|e| GenesisError::Json(e.to_string()))?;
    json.push('\n');
    Ok(json)
}

fn positive(field: &'static str, value: u64) -> Result<u64, GenesisError> {
    if value == 0 {
        return Err(GenesisError::ZeroValue { field });
    }
    Ok(value)
}

fn account_doc(account: &GenesisAccount) -> Result<AccountDoc, String> {
    check_balance(&account.balance)?;
    let code = match &account.code {
        None => None,
        Some(code) => {
            let digits = code.strip_prefix("0x").ok_or("code must start with 0x")?;
            if digits.len() % 2 != 0 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err("code must be 0x followed by an even number of hex digits".into());
            }
            Some(format!("0x{}", digits.to_ascii_lowercase()))
        }
    };
    let storage = match &account.storage {
        None => None,
        Some(slots) => {
            let mut out = BTreeMap::new();
            for (k, v) in slots {
                let key = word(k).map_err(|r| format!("storage key {k:?} {r}"))?;
                let value = word(v).map_err(|r| format!("storage value {v:?} {r}"))?;
                if out.insert(key, value).is_some() {
                    return Err(format!("storage key {k:?} is listed more than once"));
                }
            }
            Some(out)
        }
    };
    Ok(AccountDoc {
        balance: account.balance.clone(),
        code,
        nonce: account.nonce.map(|n| format!("{n:#x}")),
        storage,
    })
}

/// A balance Besu's `ParserUtils.parseBalance` reads and `Wei` holds.
fn check_balance(balance: &str) -> Result<(), String> {
    if let Some(digits) = balance.strip_prefix("0x") {
        let significant = digits.trim_start_matches('0');
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("balance {balance:?} is not 0x-prefixed hex"));
        }
        if significant.len() > 64 {
            return Err(format!("balance {balance:?} is larger than 2^256-1"));
        }
    } else {
        if balance.is_empty() || !balance.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "balance {balance:?} is neither a decimal number nor 0x hex"
            ));
        }
        let significant = balance.trim_start_matches('0');
        if significant.len() > MAX_U256_DECIMAL.len()
            || (significant.len() == MAX_U256_DECIMAL.len() && significant > MAX_U256_DECIMAL)
        {
            return Err(format!("balance {balance:?} is larger than 2^256-1"));
        }
    }
    Ok(())
}

/// A 256-bit storage word: `0x`-optional hex, at most 64 significant digits,
/// written back as `0x` + 64 lower-case digits.
fn word(s: &str) -> Result<String, &'static str> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("is not hex");
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > 64 {
        return Err("is longer than 32 bytes");
    }
    Ok(format!("0x{:0>64}", significant.to_ascii_lowercase()))
}

/// SHA-256 of the genesis document's exact bytes, as 64 lower-case hex digits
/// (no prefix). The operator stores it in status as `genesisChecksum`.
pub fn genesis_sha256(json: &str) -> String {
    hex::encode(Sha256::digest(json.as_bytes()))
}

/// Reads the consensus protocol and the validators back from a genesis
/// document (any genesis Besu would read: keys are matched case-insensitively
/// as Besu's `GenesisReader` normalizes them). Validators are returned in the
/// order the extraData lists them.
pub fn decode_genesis_validators(json: &str) -> Result<(Consensus, Vec<Address>), GenesisError> {
    let root: serde_json::Value =
        serde_json::from_str(json).map_err(|e| GenesisError::Json(e.to_string()))?;
    let root = root
        .as_object()
        .ok_or(GenesisError::Json("not a JSON object".into()))?;
    let config = get_ci(root, "config")
        .and_then(|c| c.as_object())
        .ok_or(GenesisError::Missing("config object"))?;
    let has = |key: &str| get_ci(config, key).is_some();
    let consensus = match (has("qbft"), has("ibft2")) {
        (true, true) => return Err(GenesisError::BothConsensus),
        (true, false) => Consensus::Qbft,
        (false, true) => Consensus::Ibft2,
        (false, false) => {
            return Err(if has("clique") {
                GenesisError::UnsupportedConsensus(ConsensusError::Clique)
            } else if has("ibft") {
                GenesisError::UnsupportedConsensus(ConsensusError::Ibft1)
            } else {
                GenesisError::NoConsensus
            });
        }
    };
    let extra = get_ci(root, "extraData")
        .and_then(|e| e.as_str())
        .ok_or(GenesisError::Missing("extraData string"))?;
    let digits = extra.strip_prefix("0x").ok_or(GenesisError::ExtraDataHex)?;
    let bytes = hex::decode(digits).map_err(|_| GenesisError::ExtraDataHex)?;
    let data = BftExtraData::decode(consensus, &bytes)?;
    Ok((consensus, data.validators))
}

/// What a genesis means for the chain it starts, independent of how it was rendered:
/// the chain id, the BFT protocol and its options, the validators, the accounts and the
/// block gas limit. Fork activations and formatting are left out, so that a release that
/// renders genesis differently (key order, a new fork field) still recognises a genesis it
/// wrote earlier as the same one; what is in here may never differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenesisMeaning {
    pub chain_id: Option<u64>,
    pub consensus: Consensus,
    /// The protocol's options (`blockperiodseconds`, `epochlength`, ...), keys lower-cased.
    pub bft_options: BTreeMap<String, String>,
    /// Sorted.
    pub validators: Vec<Address>,
    /// Lower-case address without `0x` → the account's JSON with keys lower-cased and
    /// quantities as numbers where they parse.
    pub alloc: BTreeMap<String, String>,
    pub gas_limit: Option<u128>,
    pub zero_base_fee: bool,
    pub contract_size_limit: Option<String>,
}

impl GenesisMeaning {
    /// The names of the parts that differ, for a message.
    pub fn differences(&self, other: &GenesisMeaning) -> Vec<&'static str> {
        let mut d = Vec::new();
        if self.chain_id != other.chain_id {
            d.push("chainId");
        }
        if self.consensus != other.consensus {
            d.push("consensus");
        }
        if self.bft_options != other.bft_options {
            d.push("BFT options (block period, epoch, timeouts)");
        }
        if self.validators != other.validators {
            d.push("validators");
        }
        if self.alloc != other.alloc {
            d.push("alloc");
        }
        if self.gas_limit != other.gas_limit {
            d.push("gasLimit");
        }
        if self.zero_base_fee != other.zero_base_fee {
            d.push("zeroBaseFee");
        }
        if self.contract_size_limit != other.contract_size_limit {
            d.push("contractSizeLimit");
        }
        d
    }
}

/// A JSON quantity (number, decimal string or 0x-hex string) as a number, if it is one.
fn quantity(v: &serde_json::Value) -> Option<u128> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().map(u128::from),
        serde_json::Value::String(s) => match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))
        {
            Some("") => Some(0),
            Some(h) => u128::from_str_radix(h, 16).ok(),
            None => s.parse().ok(),
        },
        _ => None,
    }
}

/// Canonical text of a JSON value: object keys lower-cased and sorted, quantities as
/// decimal numbers.
fn canonical(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let sorted: BTreeMap<String, String> = m
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), canonical(v)))
                .collect();
            let parts: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("{{{}}}", parts.join(","))
        }
        serde_json::Value::Array(a) => {
            format!(
                "[{}]",
                a.iter().map(canonical).collect::<Vec<_>>().join(",")
            )
        }
        other => match quantity(other) {
            Some(n) => n.to_string(),
            None => other.to_string().to_ascii_lowercase(),
        },
    }
}

/// Reads what a genesis document means ([`GenesisMeaning`]).
pub fn genesis_meaning(json: &str) -> Result<GenesisMeaning, GenesisError> {
    let (consensus, mut validators) = decode_genesis_validators(json)?;
    validators.sort();
    let root: serde_json::Value =
        serde_json::from_str(json).map_err(|e| GenesisError::Json(e.to_string()))?;
    let root = root
        .as_object()
        .ok_or(GenesisError::Json("not a JSON object".into()))?;
    let config = get_ci(root, "config")
        .and_then(|c| c.as_object())
        .ok_or(GenesisError::Missing("config object"))?;
    let protocol = match consensus {
        Consensus::Qbft => "qbft",
        Consensus::Ibft2 => "ibft2",
    };
    let bft_options = get_ci(config, protocol)
        .and_then(|o| o.as_object())
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), canonical(v)))
                .collect()
        })
        .unwrap_or_default();
    let alloc = get_ci(root, "alloc")
        .and_then(|a| a.as_object())
        .map(|a| {
            a.iter()
                .map(|(k, v)| {
                    let addr = k.trim_start_matches("0x").trim_start_matches("0X");
                    (addr.to_ascii_lowercase(), canonical(v))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(GenesisMeaning {
        chain_id: get_ci(config, "chainId")
            .and_then(quantity)
            .and_then(|n| u64::try_from(n).ok()),
        consensus,
        bft_options,
        validators,
        alloc,
        gas_limit: get_ci(root, "gasLimit").and_then(quantity),
        zero_base_fee: get_ci(config, "zeroBaseFee")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        contract_size_limit: get_ci(config, "contractSizeLimit").map(canonical),
    })
}

fn get_ci<'a>(
    map: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Option<&'a serde_json::Value> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests;
