use super::*;

fn a(s: &str) -> Address {
    s.parse().unwrap()
}

/// The two addresses of hyperledger/besu `app/src/test/resources/operator/config_import_keys.json`.
fn operator_validators() -> Vec<Address> {
    vec![
        a("0xd6a9a4c886eb008ac307abdc1f38745c1dd13a88"),
        a("0xd5feb0fc5a54a89f97aeb34c3df15397c19f6dd2"),
    ]
}

fn example_spec() -> GenesisSpec {
    let mut spec = GenesisSpec::new(Consensus::Qbft, 2017, operator_validators());
    spec.alloc.insert(
        a("0x24defc2d149861d3d245749b81fe0e6b28e04f31"),
        GenesisAccount {
            balance: "0x446c3b15f9926687d2c40534fdb564000000000000".into(),
            ..Default::default()
        },
    );
    spec.alloc.insert(
        a("0x0000000000000000000000000000000000007777"),
        GenesisAccount {
            balance: "0".into(),
            code: Some("0x6080AB".into()),
            nonce: Some(1),
            storage: Some([("0".to_string(), "0x02".to_string())].into()),
        },
    );
    spec
}

/// The whole document, byte for byte. Its extraData is the QBFT value of
/// `OperatorSubCommandTest.shouldCreateQbftExtraData` with the two validators sorted (they
/// happen to be in ascending order there already).
const EXAMPLE_GENESIS: &str = r#"{
  "config": {
    "chainId": 2017,
    "homesteadBlock": 0,
    "eip150Block": 0,
    "eip158Block": 0,
    "byzantiumBlock": 0,
    "constantinopleBlock": 0,
    "petersburgBlock": 0,
    "istanbulBlock": 0,
    "berlinBlock": 0,
    "londonBlock": 0,
    "shanghaiTime": 0,
    "qbft": {
      "blockperiodseconds": 1,
      "epochlength": 30000,
      "requesttimeoutseconds": 1
    }
  },
  "nonce": "0x0",
  "timestamp": "0x0",
  "gasLimit": "0x29b92700",
  "difficulty": "0x1",
  "mixHash": "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365",
  "coinbase": "0x0000000000000000000000000000000000000000",
  "number": "0x0",
  "gasUsed": "0x0",
  "parentHash": "0x0000000000000000000000000000000000000000000000000000000000000000",
  "extraData": "0xf84fa00000000000000000000000000000000000000000000000000000000000000000ea94d5feb0fc5a54a89f97aeb34c3df15397c19f6dd294d6a9a4c886eb008ac307abdc1f38745c1dd13a88c080c0",
  "alloc": {
    "0x0000000000000000000000000000000000007777": {
      "balance": "0",
      "code": "0x6080ab",
      "nonce": "0x1",
      "storage": {
        "0x0000000000000000000000000000000000000000000000000000000000000000": "0x0000000000000000000000000000000000000000000000000000000000000002"
      }
    },
    "0x24defc2d149861d3d245749b81fe0e6b28e04f31": {
      "balance": "0x446c3b15f9926687d2c40534fdb564000000000000"
    }
  }
}
"#;

#[test]
fn example_genesis_is_exactly_as_expected() {
    let json = genesis_json(&example_spec()).unwrap();
    assert_eq!(json, EXAMPLE_GENESIS);
    // Computed independently (Python hashlib.sha256) over EXAMPLE_GENESIS.
    assert_eq!(genesis_sha256(&json), EXAMPLE_SHA256);
}

const EXAMPLE_SHA256: &str = "ba2e83a6122d55bffcfd988dc4331b701d25c3d294a817558eeb448cdc1b305f";

#[test]
fn validator_order_does_not_matter() {
    let mut spec = example_spec();
    let first = genesis_json(&spec).unwrap();
    spec.validators.reverse();
    assert_eq!(genesis_json(&spec).unwrap(), first);
    let many: Vec<Address> = (0u8..30)
        .map(|i| Address([i.wrapping_mul(37); 20]))
        .collect();
    let mut spec = GenesisSpec::new(Consensus::Ibft2, 7, many.clone());
    let sorted = genesis_json(&spec).unwrap();
    spec.validators.reverse();
    assert_eq!(genesis_json(&spec).unwrap(), sorted);
    let (consensus, decoded) = decode_genesis_validators(&sorted).unwrap();
    assert_eq!(consensus, Consensus::Ibft2);
    let mut expected = many;
    expected.sort();
    assert_eq!(decoded, expected);
}

#[test]
fn round_trips_validators_for_both_protocols() {
    for consensus in [Consensus::Qbft, Consensus::Ibft2] {
        let spec = GenesisSpec::new(consensus, 1337, operator_validators());
        let json = genesis_json(&spec).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(v["config"][consensus.genesis_key()].is_object());
        let (c, validators) = decode_genesis_validators(&json).unwrap();
        assert_eq!(c, consensus);
        let mut sorted = operator_validators();
        sorted.sort();
        assert_eq!(validators, sorted);
    }
    // IBFT 2.0: the OperatorSubCommandTest.shouldCreateIbft2ExtraData value.
    let json = genesis_json(&GenesisSpec::new(
        Consensus::Ibft2,
        2017,
        operator_validators(),
    ))
    .unwrap();
    assert!(json.contains(
        "\"extraData\": \"0xf853a00000000000000000000000000000000000000000000000000000000000000000ea94d5feb0fc5a54a89f97aeb34c3df15397c19f6dd294d6a9a4c886eb008ac307abdc1f38745c1dd13a88808400000000c0\""
    ));
    assert!(json.contains("\"ibft2\": {"));
    assert!(!json.contains("\"qbft\""));
}

#[test]
fn options_are_written_when_set() {
    let mut spec = GenesisSpec::new(Consensus::Qbft, 1337, operator_validators());
    spec.block_period_seconds = Some(5);
    spec.epoch_length = Some(100);
    spec.request_timeout_seconds = Some(10);
    spec.gas_limit = Some(0x1f_ffff_ffff_ffff);
    spec.zero_base_fee = true;
    spec.contract_size_limit = Some(2_147_483_647);
    let v: serde_json::Value = serde_json::from_str(&genesis_json(&spec).unwrap()).unwrap();
    assert_eq!(v["config"]["qbft"]["blockperiodseconds"], 5);
    assert_eq!(v["config"]["qbft"]["epochlength"], 100);
    assert_eq!(v["config"]["qbft"]["requesttimeoutseconds"], 10);
    assert_eq!(v["config"]["zeroBaseFee"], true);
    assert_eq!(v["config"]["contractSizeLimit"], 2_147_483_647);
    assert_eq!(v["gasLimit"], "0x1fffffffffffff");
    // The fork set: everything through Shanghai from genesis, nothing later.
    for key in [
        "homesteadBlock",
        "eip150Block",
        "eip158Block",
        "byzantiumBlock",
        "constantinopleBlock",
        "petersburgBlock",
        "istanbulBlock",
        "berlinBlock",
        "londonBlock",
        "shanghaiTime",
    ] {
        assert_eq!(v["config"][key], 0, "{key}");
    }
    assert!(v["config"].get("cancunTime").is_none());
    assert_eq!(v["difficulty"], "0x1");
    assert_eq!(v["mixHash"], BFT_MIX_HASH);
}

#[test]
fn bad_specs_are_refused() {
    let ok = || GenesisSpec::new(Consensus::Qbft, 1337, operator_validators());
    let mut s = ok();
    s.chain_id = 0;
    assert_eq!(genesis_json(&s), Err(GenesisError::ChainIdZero));
    let mut s = ok();
    s.validators.clear();
    assert_eq!(genesis_json(&s), Err(GenesisError::NoValidators));
    let mut s = ok();
    let dup = s.validators[0];
    s.validators.push(dup);
    let err = genesis_json(&s).unwrap_err();
    assert_eq!(err, GenesisError::DuplicateValidator(dup));
    assert!(
        err.to_string()
            .contains("0xd6a9a4c886eb008ac307abdc1f38745c1dd13a88")
    );
    for f in [
        |s: &mut GenesisSpec| s.block_period_seconds = Some(0),
        |s: &mut GenesisSpec| s.epoch_length = Some(0),
        |s: &mut GenesisSpec| s.request_timeout_seconds = Some(0),
        |s: &mut GenesisSpec| s.gas_limit = Some(0),
        |s: &mut GenesisSpec| s.contract_size_limit = Some(0),
    ] {
        let mut s = ok();
        f(&mut s);
        assert!(matches!(
            genesis_json(&s),
            Err(GenesisError::ZeroValue { .. })
        ));
    }
    let bad_accounts = [
        GenesisAccount {
            balance: "".into(),
            ..Default::default()
        },
        GenesisAccount {
            balance: "-1".into(),
            ..Default::default()
        },
        GenesisAccount {
            balance: "1e18".into(),
            ..Default::default()
        },
        GenesisAccount {
            balance: "0x".into(),
            ..Default::default()
        },
        GenesisAccount {
            balance: "0xzz".into(),
            ..Default::default()
        },
        GenesisAccount {
            balance: format!("0x1{}", "0".repeat(64)),
            ..Default::default()
        },
        GenesisAccount {
            balance:
                "115792089237316195423570985008687907853269984665640564039457584007913129639936"
                    .into(),
            ..Default::default()
        },
        GenesisAccount {
            balance: "1".into(),
            code: Some("6080".into()),
            ..Default::default()
        },
        GenesisAccount {
            balance: "1".into(),
            code: Some("0x608".into()),
            ..Default::default()
        },
        GenesisAccount {
            balance: "1".into(),
            storage: Some([("0xg".to_string(), "1".to_string())].into()),
            ..Default::default()
        },
        GenesisAccount {
            balance: "1".into(),
            storage: Some([("1".to_string(), format!("0x1{}", "0".repeat(64)))].into()),
            ..Default::default()
        },
        GenesisAccount {
            balance: "1".into(),
            storage: Some(
                [
                    ("1".to_string(), "2".to_string()),
                    ("0x01".to_string(), "3".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
    ];
    for account in bad_accounts {
        let mut s = ok();
        s.alloc.insert(Address([9; 20]), account.clone());
        assert!(
            matches!(genesis_json(&s), Err(GenesisError::Account { .. })),
            "{account:?}"
        );
    }
    // The largest balances are fine.
    let mut s = ok();
    s.alloc.insert(
        Address([1; 20]),
        GenesisAccount {
            balance:
                "115792089237316195423570985008687907853269984665640564039457584007913129639935"
                    .into(),
            ..Default::default()
        },
    );
    s.alloc.insert(
        Address([2; 20]),
        GenesisAccount {
            balance: format!("0x00{}", "f".repeat(64)),
            ..Default::default()
        },
    );
    assert!(genesis_json(&s).is_ok());
}

/// Genesis documents from Besu's docs and tests (hack/testdata/besu/README.md names the sources).
#[test]
fn reads_validators_from_besu_genesis_files() {
    let qbft = include_str!("../../../hack/testdata/besu/docs-qbft-genesis.json");
    let (c, v) = decode_genesis_validators(qbft).unwrap();
    assert_eq!(c, Consensus::Qbft);
    // The docs list them unsorted; the order is kept.
    assert_eq!(
        v,
        [
            a("0x64a702e6263b7297a96638cac6ae65e6541f4169"),
            a("0x3923390ad55e90c237593b3b0e401f3b08a03185"),
            a("0xaefdb9a738c9f433e5b6b212a6d62f6370c2f692"),
            a("0xc7eeb9a4e00ce683cf93039b212648e01c6c6b78"),
        ]
    );
    let ibft2 = include_str!("../../../hack/testdata/besu/docs-ibft2-genesis.json");
    assert_eq!(
        decode_genesis_validators(ibft2).unwrap(),
        (
            Consensus::Ibft2,
            vec![a("0xc2ab482b506de561668e07f04547232a72897daf")]
        )
    );
    let empty = include_str!("../../../hack/testdata/besu/besu-qbft-emptyextradata.json");
    assert_eq!(
        decode_genesis_validators(empty).unwrap(),
        (Consensus::Qbft, vec![])
    );
    let clique = include_str!("../../../hack/testdata/besu/besu-clique-to-pos.json");
    let err = decode_genesis_validators(clique).unwrap_err();
    assert_eq!(
        err,
        GenesisError::UnsupportedConsensus(ConsensusError::Clique)
    );
    assert!(err.to_string().contains("26.3.0"));
}

#[test]
fn malformed_genesis_documents_are_refused() {
    assert!(matches!(
        decode_genesis_validators("{"),
        Err(GenesisError::Json(_))
    ));
    assert!(matches!(
        decode_genesis_validators("[]"),
        Err(GenesisError::Json(_))
    ));
    assert_eq!(
        decode_genesis_validators("{}"),
        Err(GenesisError::Missing("config object"))
    );
    assert_eq!(
        decode_genesis_validators(r#"{"config":{}}"#),
        Err(GenesisError::NoConsensus)
    );
    assert_eq!(
        decode_genesis_validators(r#"{"config":{"ibft":{}}}"#),
        Err(GenesisError::UnsupportedConsensus(ConsensusError::Ibft1))
    );
    assert_eq!(
        decode_genesis_validators(r#"{"config":{"qbft":{},"ibft2":{}}}"#),
        Err(GenesisError::BothConsensus)
    );
    assert_eq!(
        decode_genesis_validators(r#"{"config":{"QBFT":{}}}"#),
        Err(GenesisError::Missing("extraData string"))
    );
    assert_eq!(
        decode_genesis_validators(r#"{"config":{"qbft":{}},"extradata":"f8"}"#),
        Err(GenesisError::ExtraDataHex)
    );
    assert!(matches!(
        decode_genesis_validators(r#"{"config":{"qbft":{}},"EXTRADATA":"0xf8"}"#),
        Err(GenesisError::ExtraData(_))
    ));
    // An IBFT 2.0 extraData under a qbft config is refused (its vote/round do not parse).
    let ibft_extra = "0xf83ea00000000000000000000000000000000000000000000000000000000000000000d594c2ab482b506de561668e07f04547232a72897daf808400000000c0";
    let doc = format!(r#"{{"config":{{"qbft":{{}}}},"extraData":"{ibft_extra}"}}"#);
    assert!(matches!(
        decode_genesis_validators(&doc),
        Err(GenesisError::ExtraData(_))
    ));
}

/// Review C3: a genesis is the same chain when it means the same, however a release
/// renders it (key order, spacing, key case, quantity notation, fork fields).
#[test]
fn genesis_meaning_ignores_rendering_and_catches_real_changes() {
    let json = genesis_json(&example_spec()).expect("genesis");
    let original = genesis_meaning(&json).expect("meaning");
    // Re-rendered: keys reordered and re-cased, pretty-printed differently, a quantity in
    // decimal instead of hex, and a fork field a later release might add.
    let mut v: serde_json::Value = serde_json::from_str(&json).expect("json");
    let config = v["config"].as_object_mut().expect("config");
    config.insert("cancunTime".into(), serde_json::json!(0));
    let gas = v["gasLimit"].as_str().expect("gasLimit hex").to_string();
    let decimal = u128::from_str_radix(gas.trim_start_matches("0x"), 16).expect("hex");
    v["gasLimit"] = serde_json::json!(decimal.to_string());
    let mut text = serde_json::to_string(&v).expect("text");
    text = text.replace("\"chainId\"", "\"CHAINID\"");
    let rerendered = genesis_meaning(&text).expect("meaning");
    assert_eq!(original, rerendered);
    assert_ne!(genesis_sha256(&json), genesis_sha256(&text));

    // What must never differ does.
    let mut other = example_spec();
    other.chain_id += 1;
    let changed = genesis_meaning(&genesis_json(&other).expect("genesis")).expect("meaning");
    assert_eq!(original.differences(&changed), vec!["chainId"]);
    let mut other = example_spec();
    other.validators.pop();
    let changed = genesis_meaning(&genesis_json(&other).expect("genesis")).expect("meaning");
    assert_eq!(original.differences(&changed), vec!["validators"]);
    let mut other = example_spec();
    other.block_period_seconds = Some(other.block_period_seconds.unwrap_or(1) + 4);
    let changed = genesis_meaning(&genesis_json(&other).expect("genesis")).expect("meaning");
    assert_eq!(
        original.differences(&changed),
        vec!["BFT options (block period, epoch, timeouts)"]
    );
}
