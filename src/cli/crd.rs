use std::path::PathBuf;
use std::process::ExitCode;

use besu_operator::generate;

/// Print the CRDs as YAML, or write every generated file under a repository root.
#[derive(clap::Args)]
pub struct CrdArgs {
    /// Write every generated file (manifests/crd/*.yaml) under this repository root
    /// instead of printing the CRDs.
    #[arg(long, value_name = "DIR")]
    pub write: Option<PathBuf>,
}

pub fn run(args: CrdArgs) -> ExitCode {
    let result = match args.write {
        None => generate::crd_yaml()
            .map(|yaml| print!("{yaml}"))
            .map_err(|e| e.to_string()),
        Some(root) => generate::generated_files()
            .map_err(|e| e.to_string())
            .and_then(|files| {
                for f in files {
                    let path = root.join(&f.path);
                    if let Some(dir) = path.parent() {
                        std::fs::create_dir_all(dir)
                            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                    }
                    std::fs::write(&path, f.contents)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    eprintln!("wrote {}", path.display());
                }
                Ok(())
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("besu-operator crd: {e}");
            ExitCode::FAILURE
        }
    }
}
