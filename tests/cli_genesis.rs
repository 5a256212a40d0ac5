//! `besu-operator genesis …` run as a real binary.

use std::path::Path;
use std::process::{Command, Output};

use besu_operator::chain::{
    Address, Consensus, NodeKey, PublicKey, decode_genesis_validators, genesis_sha256,
};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_besu-operator"))
        .args(args)
        .output()
        .expect("run besu-operator")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn assert_user_error(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(o));
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(err.contains(needle), "{err:?} does not contain {needle:?}");
    assert!(o.stdout.is_empty(), "stdout: {}", stdout(o));
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// hyperledger/besu `RLPSubCommandTest.java` (`canEncodeToQbftExtraData`,
/// `encodeWithoutPathMustWriteToStandardOutput`).
#[test]
fn extradata_matches_besu_rlp_encode() {
    let validators =
        "0xbe068f726a13c8d46c44be6ce9d275600e1735a4,0x5ff6f4b66a46a2b2310a6f3a93aaddc0d9a1c193";
    let o = cli(&[
        "genesis",
        "extradata",
        "--consensus",
        "qbft",
        "--validators",
        validators,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "0xf84fa00000000000000000000000000000000000000000000000000000000000000000ea94be068f726a13c8d46c44be6ce9d275600e1735a4945ff6f4b66a46a2b2310a6f3a93aaddc0d9a1c193c080c0\n"
    );
    let o = cli(&[
        "genesis",
        "extradata",
        "--consensus",
        "ibft2",
        "--validators",
        validators,
    ]);
    assert_eq!(
        stdout(&o),
        "0xf853a00000000000000000000000000000000000000000000000000000000000000000ea94be068f726a13c8d46c44be6ce9d275600e1735a4945ff6f4b66a46a2b2310a6f3a93aaddc0d9a1c193808400000000c0\n"
    );
}

/// besu-docs `consensus/qbft.md` "Generate extra data": upper-case hex accepted, order kept.
#[test]
fn extradata_keeps_the_given_order() {
    let validators = "0x4592C8E45706CC08B8F44B11E43CBA0CFC5892CB, 0x06e23768a0f59cf365e18c2e0c89e151bcdedc70,0xc5327f96ee02d7bcbc1bf1236b8c15148971e1de,0xab5e7f4061c605820d3744227eed91ff8e2c8908";
    let o = cli(&[
        "genesis",
        "extradata",
        "--consensus",
        "QBFT",
        "--validators",
        validators,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim_end(),
        "0xf87aa00000000000000000000000000000000000000000000000000000000000000000f854944592c8e45706cc08b8f44b11e43cba0cfc5892cb9406e23768a0f59cf365e18c2e0c89e151bcdedc7094c5327f96ee02d7bcbc1bf1236b8c15148971e1de94ab5e7f4061c605820d3744227eed91ff8e2c8908c080c0"
    );
}

#[test]
fn extradata_rejects_bad_input() {
    let a = "0xbe068f726a13c8d46c44be6ce9d275600e1735a4";
    let dup = format!(
        "{a},0x5ff6f4b66a46a2b2310a6f3a93aaddc0d9a1c193,{}",
        a.to_uppercase().replace("0X", "0x")
    );
    assert_user_error(
        &cli(&[
            "genesis",
            "extradata",
            "--consensus",
            "qbft",
            "--validators",
            &dup,
        ]),
        "duplicate validator address 0xbe068f726a13c8d46c44be6ce9d275600e1735a4",
    );
    let o = cli(&[
        "genesis",
        "extradata",
        "--consensus",
        "clique",
        "--validators",
        a,
    ]);
    assert_user_error(&o, "Besu 26.3.0 removed Clique");
    assert!(stderr(&o).contains("use qbft"));
    assert_user_error(
        &cli(&[
            "genesis",
            "extradata",
            "--consensus",
            "ibft",
            "--validators",
            a,
        ]),
        "IBFT 1.0",
    );
    assert_user_error(
        &cli(&[
            "genesis",
            "extradata",
            "--consensus",
            "raft",
            "--validators",
            a,
        ]),
        "\"raft\"",
    );
    assert_user_error(
        &cli(&[
            "genesis",
            "extradata",
            "--consensus",
            "qbft",
            "--validators",
            "0x1234",
        ]),
        "\"0x1234\" has 4 hex digits, expected 40",
    );
    assert_user_error(
        &cli(&[
            "genesis",
            "extradata",
            "--consensus",
            "qbft",
            "--validators",
            "be068f726a13c8d46c44be6ce9d275600e1735a4",
        ]),
        "must start with 0x",
    );
    assert_user_error(
        &cli(&[
            "genesis",
            "extradata",
            "--consensus",
            "qbft",
            "--validators",
            "0xbe068f726a13c8d46c44be6ce9d275600e1735zz",
        ]),
        "non-hex character at position 41",
    );
}

#[test]
fn generate_writes_genesis_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net");
    let o = cli(&[
        "genesis",
        "generate",
        "--consensus",
        "qbft",
        "--validators",
        "4",
        "--chain-id",
        "4242",
        "--block-period",
        "2",
        "--epoch-length",
        "1000",
        "--request-timeout",
        "4",
        "--zero-base-fee",
        "--alloc",
        "0xfe3b557e8fb62b89f4916b721be55ceb828dbd73=0xad78ebc5ac6200000",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();

    let genesis_path = out.join("genesis.json");
    let json = std::fs::read_to_string(&genesis_path).unwrap();
    assert_eq!(summary["genesis"], genesis_path.to_str().unwrap());
    assert_eq!(summary["genesisChecksum"], genesis_sha256(&json));
    assert_eq!(summary["consensus"], "qbft");
    assert_eq!(summary["chainId"], 4242);
    #[cfg(unix)]
    assert_eq!(mode(&genesis_path), 0o644);

    let (consensus, validators) = decode_genesis_validators(&json).unwrap();
    assert_eq!(consensus, Consensus::Qbft);
    assert_eq!(validators.len(), 4);
    assert!(validators.windows(2).all(|w| w[0] < w[1]), "sorted");
    let listed: Vec<Address> = serde_json::from_value(summary["validators"].clone()).unwrap();
    assert_eq!(listed, validators);

    let mut dirs: Vec<String> = std::fs::read_dir(out.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    dirs.sort();
    assert_eq!(
        dirs,
        validators
            .iter()
            .map(Address::to_string)
            .collect::<Vec<_>>()
    );
    for v in &validators {
        let key_path = out.join("keys").join(v.to_string()).join("key");
        let pub_path = out.join("keys").join(v.to_string()).join("key.pub");
        let key_text = std::fs::read_to_string(&key_path).unwrap();
        let pub_text = std::fs::read_to_string(&pub_path).unwrap();
        assert_eq!(key_text.len(), 66);
        assert_eq!(pub_text.len(), 130);
        assert!(!key_text.ends_with('\n') && !pub_text.ends_with('\n'));
        let key = NodeKey::parse(&key_text).unwrap();
        assert_eq!(key.address(), *v);
        assert_eq!(PublicKey::parse(&pub_text).unwrap(), key.public_key());
        assert_eq!(pub_text, key.public_key().to_string());
        #[cfg(unix)]
        {
            assert_eq!(mode(&key_path), 0o600);
            assert_eq!(mode(&pub_path), 0o644);
        }
        assert!(!stdout(&o).contains(&key_text[2..]));
    }

    let g: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(g["config"]["chainId"], 4242);
    assert_eq!(g["config"]["qbft"]["blockperiodseconds"], 2);
    assert_eq!(g["config"]["qbft"]["epochlength"], 1000);
    assert_eq!(g["config"]["qbft"]["requesttimeoutseconds"], 4);
    assert_eq!(g["config"]["zeroBaseFee"], true);
    assert_eq!(
        g["alloc"]["0xfe3b557e8fb62b89f4916b721be55ceb828dbd73"]["balance"],
        "0xad78ebc5ac6200000"
    );

    // A second run into the same (now non-empty) directory is refused and changes nothing.
    let o = cli(&[
        "genesis",
        "generate",
        "--consensus",
        "qbft",
        "--validators",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_user_error(&o, "is not empty");
    assert_eq!(std::fs::read_to_string(&genesis_path).unwrap(), json);
}

#[test]
fn generate_ibft2_into_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let o = cli(&[
        "genesis",
        "generate",
        "--consensus",
        "ibft2",
        "--validators",
        "1",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json = std::fs::read_to_string(dir.path().join("genesis.json")).unwrap();
    let g: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(g["config"]["ibft2"]["blockperiodseconds"], 1);
    assert_eq!(g["config"]["ibft2"]["epochlength"], 30000);
    assert_eq!(g["config"]["ibft2"]["requesttimeoutseconds"], 1);
    assert_eq!(g["config"]["chainId"], 1337);
    assert!(g["extraData"].as_str().unwrap().ends_with("808400000000c0"));
}

#[test]
fn generate_rejects_bad_input_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net");
    let o_str = out.to_str().unwrap();
    let base = |extra: &[&str]| {
        let mut args = vec!["genesis", "generate", "--out", o_str];
        args.extend_from_slice(extra);
        cli(&args)
    };
    assert_user_error(
        &base(&["--consensus", "clique", "--validators", "4"]),
        "Clique",
    );
    assert_user_error(
        &base(&["--consensus", "qbft", "--validators", "0"]),
        "invalid --validators \"0\"",
    );
    assert_user_error(
        &base(&["--consensus", "qbft", "--validators", "four"]),
        "\"four\"",
    );
    assert_user_error(
        &base(&[
            "--consensus",
            "qbft",
            "--validators",
            "4",
            "--chain-id",
            "0",
        ]),
        "invalid --chain-id \"0\"",
    );
    assert_user_error(
        &base(&[
            "--consensus",
            "qbft",
            "--validators",
            "4",
            "--block-period",
            "-1",
        ]),
        "invalid --block-period \"-1\"",
    );
    assert_user_error(
        &base(&[
            "--consensus",
            "qbft",
            "--validators",
            "4",
            "--alloc",
            "0xfe3b557e8fb62b89f4916b721be55ceb828dbd73",
        ]),
        "expected 0xADDRESS=BALANCE",
    );
    assert_user_error(
        &base(&[
            "--consensus",
            "qbft",
            "--validators",
            "4",
            "--alloc",
            "0xfe3b557e8fb62b89f4916b721be55ceb828dbd73=1e18",
        ]),
        "\"1e18\"",
    );
    assert!(!out.exists(), "nothing written for bad input");

    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    assert_user_error(
        &cli(&[
            "genesis",
            "generate",
            "--consensus",
            "qbft",
            "--validators",
            "1",
            "--out",
            file.to_str().unwrap(),
        ]),
        "not a directory",
    );
}
