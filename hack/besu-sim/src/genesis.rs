//! Chain parameters from a genesis file, read as Besu reads them.

use anyhow::{anyhow, bail};
use serde_json::{Map, Value};

use crate::besu::extradata;
use crate::besu::{Address, Consensus};
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

/// The consensus protocol a genesis `config` selects, in the order of Besu's
/// `BesuController.Builder.fromGenesisFile`: a consensus migration (`ibft2` or `ibft`
/// together with `qbft`, `GenesisConfigOptions.isConsensusMigration`), then ethash, `ibft2`,
/// legacy `ibft`, `qbft`, `clique`. Only plain QBFT and IBFT 2.0 are simulated.
fn consensus_of(config: &Map<String, Value>) -> anyhow::Result<Consensus> {
    let has = |key: &str| get_ci(config, key).is_some();
    if (has("ibft2") || has("ibft")) && has("qbft") {
        bail!("a consensus migration to QBFT (config.qbft.startblock) is not simulated");
    }
    if has("ethash") {
        bail!("proof of work (config.ethash) is not simulated");
    }
    if has("ibft2") {
        return Ok(Consensus::Ibft2);
    }
    if has("ibft") {
        bail!("IBFT1 (legacy) is no longer supported. Consider using IBFT2 or QBFT.");
    }
    if has("qbft") {
        return Ok(Consensus::Qbft);
    }
    if has("clique") {
        bail!("Clique Block Production (mining) is no longer supported (Besu 26.3.0)");
    }
    bail!("Unknown consensus mechanism defined")
}

/// The consensus protocol and the validators in the genesis extraData, in extraData order.
/// `extraData` is read like `GenesisState.parseExtraData` (tuweni `Bytes.fromHexString`:
/// optional `0x`, an even number of hex digits; missing = empty) and decoded by the
/// protocol's codec ([`extradata::decode`]).
pub fn decode_genesis_validators(json: &str) -> anyhow::Result<(Consensus, Vec<Address>)> {
    let root: Value = serde_json::from_str(json)?;
    let root = root
        .as_object()
        .ok_or_else(|| anyhow!("genesis is not an object"))?;
    let config = get_ci(root, "config")
        .and_then(Value::as_object)
        .ok_or_else(|| anyhow!("genesis has no config object"))?;
    let consensus = consensus_of(config)?;
    let extra = match get_ci(root, "extraData") {
        None => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => bail!("genesis extraData is not a string"),
    };
    let digits = extra.strip_prefix("0x").unwrap_or(extra);
    let bytes = hex::decode(digits)
        .map_err(|_| anyhow!("genesis extraData is not an even number of hex digits"))?;
    let data = extradata::decode(consensus, &bytes)?;
    Ok((consensus, data.validators))
}

/// Consensus, validators (extraData), chain id, block period, epoch length and
/// timestamp of a genesis document.
pub fn chain_params(json: &str) -> anyhow::Result<ChainParams> {
    let (consensus, validators) = decode_genesis_validators(json)?;
    let root: Value = serde_json::from_str(json)?;
    let root = root
        .as_object()
        .ok_or_else(|| anyhow!("genesis is not an object"))?;
    let config = get_ci(root, "config")
        .and_then(Value::as_object)
        .ok_or_else(|| anyhow!("genesis has no config object"))?;
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

#[doc(hidden)]
pub mod test_support {
    //! A small genesis builder for test fixtures.

    use crate::besu::extradata::test_support::encode_genesis;
    use crate::besu::{Address, Consensus, NodeKey};

    /// `n` fixed test keys: private keys 1, 2, ... n.
    pub fn keys(n: usize) -> Vec<NodeKey> {
        (1..=n)
            .map(|i| {
                let mut b = [0u8; 32];
                b[31] = u8::try_from(i).expect("at most 255 test keys");
                NodeKey::from_bytes(&b).expect("a valid test key")
            })
            .collect()
    }

    /// A genesis document with `validators` in its extraData (in this order).
    pub fn genesis(
        consensus: Consensus,
        chain_id: u64,
        period: u64,
        validators: &[Address],
    ) -> String {
        let extra = hex::encode(encode_genesis(consensus, validators));
        format!(
            r#"{{"config":{{"chainId":{chain_id},"{key}":{{"blockperiodseconds":{period},"epochlength":30000}}}},"extraData":"0x{extra}","difficulty":"0x1","gasLimit":"0x1fffffffffffff","mixHash":"0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365","alloc":{{}}}}"#,
            key = consensus.genesis_key()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<Address> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    /// besu-docs @ faacf35 `docs/private-networks/how-to/configure/consensus/qbft.md`, the
    /// block header validator selection genesis example (also
    /// `hack/testdata/besu/docs-qbft-genesis.json`); `alloc` shortened.
    const DOCS_QBFT_GENESIS: &str = r#"{
  "config": {
    "chainid": 1337,
    "berlinBlock": 0,
    "qbft": {
      "epochlength": 30000,
      "blockperiodseconds": 5,
      "requesttimeoutseconds": 10
    }
  },
  "nonce": "0x0",
  "timestamp": "0x5b3d92d7",
  "extraData": "0xf87aa00000000000000000000000000000000000000000000000000000000000000000f8549464a702e6263b7297a96638cac6ae65e6541f4169943923390ad55e90c237593b3b0e401f3b08a0318594aefdb9a738c9f433e5b6b212a6d62f6370c2f69294c7eeb9a4e00ce683cf93039b212648e01c6c6b78c080c0",
  "gasLimit": "0x29b92700",
  "difficulty": "0x1",
  "mixHash": "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365",
  "coinbase": "0x0000000000000000000000000000000000000000",
  "alloc": {},
  "number": "0x0",
  "gasUsed": "0x0",
  "parentHash": "0x0000000000000000000000000000000000000000000000000000000000000000"
}"#;

    /// besu-docs @ faacf35 `docs/private-networks/how-to/configure/consensus/ibft.md`,
    /// "Example IBFT 2.0 genesis file" (also `hack/testdata/besu/docs-ibft2-genesis.json`).
    const DOCS_IBFT2_GENESIS: &str = r#"{
  "config": {
    "chainId": 1981,
    "berlinBlock": 0,
    "ibft2": {
      "blockperiodseconds": 2,
      "epochlength": 30000,
      "requesttimeoutseconds": 4,
      "blockreward": "5000000000000000",
      "miningbeneficiary": "0xfe3b557e8fb62b89f4916b721be55ceb828dbd73"
    }
  },
  "nonce": "0x0",
  "timestamp": "0x58ee40ba",
  "extraData": "0xf83ea00000000000000000000000000000000000000000000000000000000000000000d594c2ab482b506de561668e07f04547232a72897daf808400000000c0",
  "gasLimit": "0x1fffffffffffff",
  "difficulty": "0x1",
  "mixHash": "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365",
  "alloc": {}
}"#;

    #[test]
    fn reads_the_docs_qbft_genesis() {
        let p = chain_params(DOCS_QBFT_GENESIS).unwrap();
        assert_eq!(p.consensus, Consensus::Qbft);
        assert_eq!(p.chain_id, 1337);
        assert_eq!(p.block_period_seconds, 5);
        assert_eq!(p.epoch_length, 30000);
        assert_eq!(p.genesis_timestamp, 0x5b3d92d7);
        // extraData order (unsorted in the docs example).
        assert_eq!(
            p.genesis_validators,
            addrs(&[
                "0x64a702e6263b7297a96638cac6ae65e6541f4169",
                "0x3923390ad55e90c237593b3b0e401f3b08a03185",
                "0xaefdb9a738c9f433e5b6b212a6d62f6370c2f692",
                "0xc7eeb9a4e00ce683cf93039b212648e01c6c6b78",
            ])
        );
    }

    #[test]
    fn reads_the_docs_ibft2_genesis() {
        let p = chain_params(DOCS_IBFT2_GENESIS).unwrap();
        assert_eq!(p.consensus, Consensus::Ibft2);
        assert_eq!(p.chain_id, 1981);
        assert_eq!(p.block_period_seconds, 2);
        assert_eq!(
            p.genesis_validators,
            addrs(&["0xc2ab482b506de561668e07f04547232a72897daf"])
        );
    }

    /// Besu's defaults (`JsonBftConfigOptions`) and case-insensitive keys.
    #[test]
    fn defaults_and_case_insensitive_keys() {
        let json = r#"{"CONFIG":{"ChainId":"0x539","IBFT2":{"BlockPeriodSeconds":"5"}},
            "EXTRADATA":"0xf83ea00000000000000000000000000000000000000000000000000000000000000000d594627306090abab3a6e1400e9345bc60c78a8bef57808400000000c0",
            "timestamp":"0x10"}"#;
        let p = chain_params(json).unwrap();
        assert_eq!(p.consensus, Consensus::Ibft2);
        assert_eq!(p.chain_id, 1337);
        assert_eq!(p.block_period_seconds, 5);
        assert_eq!(p.epoch_length, DEFAULT_EPOCH_LENGTH);
        assert_eq!(p.genesis_timestamp, 16);
        assert_eq!(
            p.genesis_validators,
            addrs(&["0x627306090abab3a6e1400e9345bc60c78a8bef57"])
        );
    }

    /// What Besu 26.x does not start, or the simulator does not model.
    #[test]
    fn unsupported_geneses() {
        let qbft_extra =
            "0xe5a00000000000000000000000000000000000000000000000000000000000000000c0c080c0";
        for config in [
            r#"{"clique":{}}"#,
            r#"{"ibft":{}}"#,
            r#"{"ibft2":{},"qbft":{"startblock":10}}"#,
            r#"{"ethash":{}}"#,
            r#"{}"#,
        ] {
            let json = format!(r#"{{"config":{config},"extraData":"{qbft_extra}"}}"#);
            assert!(decode_genesis_validators(&json).is_err(), "{config}");
        }
        // Missing, odd-length and non-hex extraData.
        for extra in [None, Some("0xe5a"), Some("0xzz")] {
            let extra = extra
                .map(|e| format!(r#","extraData":"{e}""#))
                .unwrap_or_default();
            let json = format!(r#"{{"config":{{"qbft":{{}}}}{extra}}}"#);
            assert!(decode_genesis_validators(&json).is_err(), "{json}");
        }
        // Validator contract mode: no header validators.
        let json = format!(r#"{{"config":{{"qbft":{{}}}},"extraData":"{qbft_extra}"}}"#);
        assert_eq!(
            decode_genesis_validators(&json).unwrap(),
            (Consensus::Qbft, vec![])
        );
    }

    #[test]
    fn the_test_builder_round_trips() {
        let v = addrs(&[
            "0xfe3b557e8fb62b89f4916b721be55ceb828dbd73",
            "0x627306090abab3a6e1400e9345bc60c78a8bef57",
        ]);
        for consensus in [Consensus::Qbft, Consensus::Ibft2] {
            let g = test_support::genesis(consensus, 2018, 3, &v);
            let p = chain_params(&g).unwrap();
            assert_eq!(
                (p.consensus, p.chain_id, p.block_period_seconds),
                (consensus, 2018, 3)
            );
            assert_eq!(p.genesis_validators, v);
        }
    }
}
