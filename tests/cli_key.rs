//! `besu-operator key …` run as a real binary: the output shapes scripts rely on,
//! file modes, and exit code 2 with a one-line message for bad input.

use std::path::Path;
use std::process::{Command, Output};

use besu_operator::chain::NodeKey;

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

/// Exit code 2 and exactly one line on stderr containing `needle`.
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

/// hyperledger/besu `acceptance-tests/tests/src/acceptanceTest/resources/key` and the node id
/// (`TestPermissioningPlugin` alice) and address (`resources/qbft/qbft.json`) it gives.
const KEY: &str = "8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63";
const NODE_ID: &str = "09b02f8a5fddd222ade4ea4528faefc399623af3f736be3c44f03e2df22fb792f3931a4d9573d333ca74343305762a753388c3422a86d98b713fc91c1ea04842";
const ADDRESS: &str = "0xfe3b557e8fb62b89f4916b721be55ceb828dbd73";

#[test]
fn inspect_prints_public_key_address_and_enode() {
    let o = cli(&["key", "inspect", KEY]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "{{\"publicKey\":\"0x{NODE_ID}\",\"address\":\"{ADDRESS}\",\"enode\":\"enode://{NODE_ID}@127.0.0.1:30303\"}}\n"
        )
    );
    assert!(!stdout(&o).contains(KEY));
}

#[test]
fn inspect_reads_besu_key_files_and_takes_host_and_port() {
    let dir = tempfile::tempdir().unwrap();
    // The forms Besu reads: bare (as the acceptance-test file), 0x with newline, upper case.
    for (name, contents) in [
        ("bare", KEY.to_string()),
        ("prefixed", format!("0x{KEY}\n")),
        ("upper", KEY.to_uppercase()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        let o = cli(&[
            "key",
            "inspect",
            "--file",
            path.to_str().unwrap(),
            "--host",
            "2001:db8:0:0:0:0:0:1",
            "--port",
            "30304",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["address"], ADDRESS);
        assert_eq!(v["enode"], format!("enode://{NODE_ID}@[2001:db8::1]:30304"));
        assert_eq!(v.as_object().unwrap().len(), 3);
    }
    let o = cli(&[
        "key",
        "inspect",
        KEY,
        "--host",
        "validator-0.besu.svc.cluster.local",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["enode"],
        format!("enode://{NODE_ID}@validator-0.besu.svc.cluster.local:30303")
    );
}

#[test]
fn inspect_rejects_bad_keys_without_echoing_them() {
    let short = &KEY[..63];
    let o = cli(&["key", "inspect", short]);
    assert_user_error(&o, "key has 63 hex digits, expected 64");
    assert!(!stderr(&o).contains(&short[..16]));

    let bad = format!("0x{}z{}", &KEY[..10], &KEY[11..]);
    let o = cli(&["key", "inspect", &bad]);
    assert_user_error(&o, "non-hex character at position 13");
    assert!(!stderr(&o).contains(&KEY[..10]));

    let o = cli(&["key", "inspect", &"0".repeat(64)]);
    assert_user_error(&o, "key is zero");
    let o = cli(&["key", "inspect", &"f".repeat(64)]);
    assert_user_error(&o, "group order");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    std::fs::write(&path, format!("{KEY}\n\n")).unwrap();
    let o = cli(&["key", "inspect", "--file", path.to_str().unwrap()]);
    assert_user_error(&o, "has 2 lines, expected exactly 1");
    assert!(!stderr(&o).contains(&KEY[..16]));
}

#[test]
fn inspect_rejects_bad_arguments() {
    assert_user_error(&cli(&["key", "inspect"]), "KEY_HEX or with --file");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    std::fs::write(&path, KEY).unwrap();
    let o = cli(&["key", "inspect", KEY, "--file", path.to_str().unwrap()]);
    assert_user_error(&o, "not both");
    assert!(!stderr(&o).contains(KEY));
    assert_user_error(
        &cli(&["key", "inspect", KEY, "--port", "98765"]),
        "\"98765\"",
    );
    assert_user_error(
        &cli(&["key", "inspect", KEY, "--host", "bad_host"]),
        "\"bad_host\"",
    );
    let missing = dir.path().join("missing");
    let o = cli(&["key", "inspect", "--file", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn generate_prints_a_besu_key() {
    let o = cli(&["key", "generate"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["address", "privateKey", "publicKey"]);
    let private = v["privateKey"].as_str().unwrap();
    assert!(out.starts_with("{\"privateKey\":\"0x"));
    assert_eq!(private.len(), 66);
    let key = NodeKey::parse(private).unwrap();
    assert_eq!(v["publicKey"], key.public_key().to_string());
    assert_eq!(v["address"], key.address().to_string());
}

#[test]
fn generate_out_writes_0600_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    let o = cli(&["key", "generate", "--out", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let written = std::fs::read_to_string(&path).unwrap();
    assert_eq!(written.len(), 66, "0x + 64 hex, no newline: {written:?}");
    assert!(written.starts_with("0x") && !written.ends_with('\n'));
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v.get("privateKey").is_none());
    assert!(!stdout(&o).contains(&written[2..]));
    let key = NodeKey::parse(&written).unwrap();
    assert_eq!(v["address"], key.address().to_string());
    assert_eq!(v["publicKey"], key.public_key().to_string());

    let o = cli(&["key", "generate", "--out", path.to_str().unwrap()]);
    assert_user_error(&o, "refusing to overwrite");
    assert!(stderr(&o).contains(path.to_str().unwrap()));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), written);
}
