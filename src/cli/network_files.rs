//! `besu-operator network-files`: the init container of an EthereumNode on a custom
//! network whose ConfigMap holds gzip-compressed files (a genesis state larger than a
//! ConfigMap can hold, 1 MiB): copies the ConfigMap volume's files into a pod-local
//! directory, decompressing every `*.gz` to its name without `.gz`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

/// Copy a mounted ConfigMap's files, decompressing `*.gz`.
#[derive(clap::Args)]
pub struct NetworkFilesArgs {
    /// The mounted ConfigMap (its `..data` directory is read when present, so that the
    /// volume's own symlinks are not copied twice).
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// Where the files go (an emptyDir).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
}

pub fn run(args: NetworkFilesArgs) -> ExitCode {
    match copy(&args.from, &args.to) {
        Ok(n) => {
            eprintln!("network-files: {n} file(s) into {}", args.to.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "besu-operator network-files: {}",
                format!("{e:#}").replace('\n', " ")
            );
            ExitCode::from(2)
        }
    }
}

/// Copies every regular file of `from` (or `from/..data`) into `to`; returns how many.
pub fn copy(from: &Path, to: &Path) -> anyhow::Result<usize> {
    let data = from.join("..data");
    let source = if data.is_dir() {
        data
    } else {
        from.to_path_buf()
    };
    std::fs::create_dir_all(to).with_context(|| format!("create {}", to.display()))?;
    let mut n = 0;
    for entry in std::fs::read_dir(&source).with_context(|| format!("read {}", source.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        let path = entry.path();
        if name.starts_with("..") || !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
        let (out_name, contents) = match name.strip_suffix(".gz") {
            Some(stem) => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(bytes.as_slice())
                    .read_to_end(&mut out)
                    .with_context(|| format!("{name} is not valid gzip"))?;
                (stem.to_string(), out)
            }
            None => (name, bytes),
        };
        let target = to.join(&out_name);
        std::fs::write(&target, contents).with_context(|| format!("write {}", target.display()))?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn copies_and_decompresses_and_skips_the_volume_links() {
        let from = tempfile::tempdir().expect("tmp");
        let to = tempfile::tempdir().expect("tmp");
        let data = from.path().join("..data");
        std::fs::create_dir(&data).expect("mkdir");
        std::fs::write(data.join("config.yaml"), "A: 1\n").expect("write");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&[0u8; 4096]).expect("gz");
        std::fs::write(data.join("genesis.ssz.gz"), gz.finish().expect("gz")).expect("write");
        std::fs::write(data.join("bad.gz"), b"not gzip").expect("write");
        let err = copy(from.path(), to.path()).unwrap_err();
        assert!(
            format!("{err:#}").contains("bad.gz is not valid gzip"),
            "{err:#}"
        );
        std::fs::remove_file(data.join("bad.gz")).expect("rm");
        assert_eq!(copy(from.path(), to.path()).expect("copy"), 2);
        assert_eq!(
            std::fs::read(to.path().join("genesis.ssz")).expect("read"),
            vec![0u8; 4096]
        );
        assert_eq!(
            std::fs::read_to_string(to.path().join("config.yaml")).expect("read"),
            "A: 1\n"
        );
    }
}
