//! Committed generated artifacts must match what the binary generates now.

#[test]
fn committed_generated_files_have_not_drifted() {
    // The checkout under test (set at run time; see tests/support's repo_root).
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let root = root.as_path();
    let files = besu_operator::generate::generated_files().expect("generate");
    assert!(!files.is_empty());
    let mut drifted = Vec::new();
    for f in files {
        let committed = std::fs::read_to_string(root.join(&f.path)).unwrap_or_default();
        if committed != f.contents {
            drifted.push(f.path);
        }
    }
    assert!(
        drifted.is_empty(),
        "generated files drifted from the code: {drifted:?}; run `make generate` and commit"
    );
}
