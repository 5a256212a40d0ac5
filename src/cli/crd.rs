use std::path::PathBuf;
use std::process::ExitCode;

use besu_operator::generate;
use besu_operator::generate::install::{InstallOptions, NAMESPACE};

/// Print the CRDs as YAML (or a full install manifest), or write every generated file
/// under a repository root.
#[derive(clap::Args)]
pub struct CrdArgs {
    /// Write every generated file (CRDs, RBAC, Deployment, install.yaml, Helm chart, OLM
    /// bundle) under this repository root instead of printing the CRDs.
    #[arg(long, value_name = "DIR", conflicts_with = "install")]
    pub write: Option<PathBuf>,
    /// Print a full install manifest (Namespace, CRDs, RBAC, Deployment, Service) for
    /// the options below, instead of the CRDs alone.
    #[arg(long)]
    pub install: bool,
    /// With --install: the operator's namespace.
    #[arg(long, default_value = NAMESPACE, requires = "install")]
    pub namespace: String,
    /// With --install: namespaces to watch, comma-separated; Roles in each replace the
    /// ClusterRole. Empty: all namespaces.
    #[arg(long, value_delimiter = ',', requires = "install")]
    pub watch_namespaces: Vec<String>,
    /// With --install: the operator image.
    #[arg(long, requires = "install")]
    pub image: Option<String>,
    /// With --install: replicas of the operator (leader election keeps one active).
    #[arg(long, default_value_t = 1, requires = "install")]
    pub replicas: i32,
}

pub fn run(args: CrdArgs) -> ExitCode {
    let result = if args.install {
        let defaults = InstallOptions::default();
        let opts = InstallOptions {
            namespace: args.namespace,
            watch_namespaces: args
                .watch_namespaces
                .into_iter()
                .filter(|n| !n.is_empty())
                .collect(),
            image: args.image.unwrap_or(defaults.image),
            replicas: args.replicas,
        };
        generate::install_yaml(&opts)
            .map(|yaml| print!("{yaml}"))
            .map_err(|e| e.to_string())
    } else {
        match args.write {
            None => generate::crd_yaml()
                .map(|yaml| print!("{yaml}"))
                .map_err(|e| e.to_string()),
            Some(root) => write_all(&root),
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("besu-operator crd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_all(root: &std::path::Path) -> Result<(), String> {
    let files = generate::generated_files().map_err(|e| e.to_string())?;
    for f in files {
        let path = root.join(&f.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        if std::fs::read_to_string(&path).is_ok_and(|c| c == f.contents) {
            continue;
        }
        std::fs::write(&path, f.contents)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
