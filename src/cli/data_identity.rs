//! `besu-operator data-identity`: the first init container of an EthereumNode with
//! backup or restore. A replica's volumes may start as a copy of another replica's (a
//! backup seeding a new replica, a restore into another node): the copy carries the
//! other's P2P identity (its node key), and two peers with one identity disturb each
//! other and everyone who dials them. Each volume records which pod it belongs to
//! (`.nodeops-owner` at its root); a volume whose record names another pod loses the
//! identity files given (the client makes a new key at start), and is recorded as this
//! pod's. A volume with no record is recorded as it is: its identity is its own.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// The record at a volume's root naming the pod it belongs to.
pub const OWNER_FILE: &str = ".nodeops-owner";

/// Forget a copied P2P identity.
#[derive(clap::Args)]
pub struct DataIdentityArgs {
    /// This pod, `<namespace>/<name>`.
    #[arg(long)]
    pub owner: String,
    /// A data volume's mount point (repeatable).
    #[arg(long, value_name = "DIR")]
    pub volume: Vec<PathBuf>,
    /// An identity file (or directory) inside one of the volumes, removed when that volume
    /// was another pod's (repeatable).
    #[arg(long, value_name = "PATH")]
    pub forget: Vec<PathBuf>,
}

pub fn run(args: DataIdentityArgs) -> ExitCode {
    match forget_copied(&args.owner, &args.volume, &args.forget) {
        Ok(lines) => {
            for l in lines {
                eprintln!("data-identity: {l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "besu-operator data-identity: {}",
                format!("{e:#}").replace('\n', " ")
            );
            ExitCode::from(2)
        }
    }
}

/// Removes the identity files of every volume whose owner record names another pod,
/// then records `owner` in each volume. Returns what it did, a line per volume.
pub fn forget_copied(
    owner: &str,
    roots: &[PathBuf],
    forget: &[PathBuf],
) -> anyhow::Result<Vec<String>> {
    let mut volumes: Vec<(PathBuf, Vec<&PathBuf>)> =
        roots.iter().map(|r| (r.clone(), Vec::new())).collect();
    for f in forget {
        let (_, files) = volumes
            .iter_mut()
            .filter(|(r, _)| f.starts_with(r) && f != r)
            .max_by_key(|(r, _)| r.components().count())
            .with_context(|| format!("{} is not inside any --volume", f.display()))?;
        files.push(f);
    }
    let mut out = Vec::new();
    for (root, files) in volumes {
        let record = root.join(OWNER_FILE);
        let previous = match std::fs::read_to_string(&record) {
            Ok(s) => Some(s.trim().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("read {}", record.display())),
        };
        match previous {
            Some(p) if p == owner => {
                out.push(format!("{}: this pod's", root.display()));
                continue;
            }
            Some(p) => {
                let mut removed = Vec::new();
                for f in files {
                    let gone = if f.is_dir() {
                        std::fs::remove_dir_all(f)
                    } else {
                        std::fs::remove_file(f)
                    };
                    match gone {
                        Ok(()) => removed.push(f.display().to_string()),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(e).with_context(|| format!("remove {}", f.display()));
                        }
                    }
                }
                out.push(format!(
                    "{}: copied from {p}; removed {} (a new P2P identity)",
                    root.display(),
                    if removed.is_empty() {
                        "nothing".to_string()
                    } else {
                        removed.join(", ")
                    }
                ));
            }
            None => out.push(format!("{}: recorded as this pod's", root.display())),
        }
        let tmp = root.join(format!("{OWNER_FILE}.tmp"));
        std::fs::write(&tmp, format!("{owner}\n"))
            .with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, &record).with_context(|| format!("write {}", record.display()))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copied_volume_forgets_its_identity_and_an_own_one_keeps_it() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let exec = dir.path().join("execution");
        let cons = dir.path().join("consensus");
        std::fs::create_dir_all(exec.join("geth"))?;
        std::fs::create_dir_all(&cons)?;
        let key = exec.join("geth/nodekey");
        let p2p = cons.join("network-keys");
        std::fs::write(&key, "k")?;
        std::fs::write(exec.join("geth/chaindata"), "blocks")?;
        std::fs::write(&p2p, "p")?;
        let roots = [exec.clone(), cons.clone()];
        let forget = [key.clone(), p2p.clone()];
        // First start: no record, the identity is the volume's own.
        let lines = forget_copied("ns/full-0", &roots, &forget)?;
        assert!(lines.iter().all(|l| l.contains("recorded")), "{lines:?}");
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(key.exists() && p2p.exists());
        // Same pod again: kept.
        forget_copied("ns/full-0", &roots, &forget)?;
        assert!(key.exists() && p2p.exists());
        // Another pod on a copy: the identity goes, the chain stays, the record moves.
        let lines = forget_copied("ns/full-1", &roots, &forget)?;
        assert!(!key.exists() && !p2p.exists(), "{lines:?}");
        assert!(exec.join("geth/chaindata").exists());
        assert!(lines[0].contains("copied from ns/full-0"), "{lines:?}");
        assert!(lines[1].contains("network-keys"), "{lines:?}");
        assert_eq!(
            std::fs::read_to_string(exec.join(OWNER_FILE))?.trim(),
            "ns/full-1"
        );
        assert_eq!(
            std::fs::read_to_string(cons.join(OWNER_FILE))?.trim(),
            "ns/full-1"
        );
        // A path outside the volumes is refused.
        assert!(forget_copied("ns/x", &roots, &[PathBuf::from("/key")]).is_err());
        Ok(())
    }
}
