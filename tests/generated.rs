//! Committed generated artifacts must match what the binary generates now.

#[test]
fn committed_generated_files_have_not_drifted() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
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
