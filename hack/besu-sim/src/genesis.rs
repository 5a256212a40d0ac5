//! Chain parameters from a genesis file, read as Besu reads them.

use besu_operator::chain::decode_genesis_validators;
use serde_json::{Map, Value};

use crate::chain::ChainParams;

/// `JsonBftConfigOptions` defaults (besu-facts §5).
pub const DEFAULT_BLOCK_PERIOD_SECONDS: u64 = 1;
pub const DEFAULT_EPOCH_LENGTH: u64 = 30000;

fn get_ci<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    // Genesis keys are case-insensitive (`GenesisReader`, `JsonUtil.normalizeKeys`).
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// A JSON number, decimal string or `0x` hex string.
fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => s.parse().ok(),
        },
        _ => None,
    }
}

/// Consensus, validators (extraData), chain id, block period, epoch length and
/// timestamp of a genesis document.
pub fn chain_params(json: &str) -> anyhow::Result<ChainParams> {
    let (consensus, validators) = decode_genesis_validators(json)?;
    let root: Value = serde_json::from_str(json)?;
    let root = root
        .as_object()
        .ok_or_else(|| anyhow::anyhow!("genesis is not an object"))?;
    let config = get_ci(root, "config")
        .and_then(Value::as_object)
        .ok_or_else(|| anyhow::anyhow!("genesis has no config object"))?;
    let bft = get_ci(config, consensus.genesis_key()).and_then(Value::as_object);
    let option = |key: &str, default: u64| {
        bft.and_then(|b| get_ci(b, key))
            .and_then(as_u64)
            .unwrap_or(default)
    };
    Ok(ChainParams {
        consensus,
        chain_id: get_ci(config, "chainId").and_then(as_u64).unwrap_or(0),
        block_period_seconds: option("blockperiodseconds", DEFAULT_BLOCK_PERIOD_SECONDS).max(1),
        epoch_length: option("epochlength", DEFAULT_EPOCH_LENGTH).max(1),
        genesis_validators: validators,
        genesis_timestamp: get_ci(root, "timestamp").and_then(as_u64).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use besu_operator::chain::{Address, Consensus, GenesisSpec, genesis_json};

    #[test]
    fn reads_the_operators_genesis() {
        let validators: Vec<Address> = [
            "0x627306090abab3a6e1400e9345bc60c78a8bef57",
            "0xfe3b557e8fb62b89f4916b721be55ceb828dbd73",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let mut spec = GenesisSpec::new(Consensus::Qbft, 1337, validators.clone());
        spec.block_period_seconds = Some(2);
        spec.epoch_length = Some(100);
        let json = genesis_json(&spec).unwrap();
        let p = chain_params(&json).unwrap();
        assert_eq!(p.consensus, Consensus::Qbft);
        assert_eq!(p.chain_id, 1337);
        assert_eq!(p.block_period_seconds, 2);
        assert_eq!(p.epoch_length, 100);
        let mut sorted = validators;
        sorted.sort();
        assert_eq!(p.genesis_validators, sorted);
    }

    /// Besu's defaults (`JsonBftConfigOptions`) and case-insensitive keys.
    #[test]
    fn defaults_and_case_insensitive_keys() {
        let json = r#"{"CONFIG":{"ChainId":"0x539","IBFT2":{"BlockPeriodSeconds":"5"}},
            "extraData":"0xf83ea00000000000000000000000000000000000000000000000000000000000000000d594627306090abab3a6e1400e9345bc60c78a8bef57808400000000c0",
            "timestamp":"0x10"}"#;
        let p = chain_params(json).unwrap();
        assert_eq!(p.consensus, Consensus::Ibft2);
        assert_eq!(p.chain_id, 1337);
        assert_eq!(p.block_period_seconds, 5);
        assert_eq!(p.epoch_length, DEFAULT_EPOCH_LENGTH);
        assert_eq!(p.genesis_timestamp, 16);
        assert_eq!(p.genesis_validators.len(), 1);
    }
}
