//! `besu-operator key generate|inspect`: node keys in Besu's `key` file format.
//!
//! Output is one JSON object on one line. User errors exit with code 2 and a
//! one-line message on stderr that names the bad value; a private key is never
//! printed by `inspect` nor quoted in any error.

use std::fs::OpenOptions;
use std::io::Write;
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use besu_operator::chain::{NodeKey, enode_url, parse_enode};
use serde::Serialize;

#[derive(clap::Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(clap::Subcommand)]
enum KeyCommand {
    /// Generate a new secp256k1 node key in Besu's key-file format (0x + 64 hex digits).
    ///
    /// Without --out, prints {"privateKey","publicKey","address"}. With --out, writes the
    /// key to FILE (mode 0600; an existing file is never overwritten, since a key is a
    /// node's identity) and prints only {"publicKey","address"}.
    Generate {
        /// Write the key to this file instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print a key's public key, address and enode URL as JSON (never the private key).
    Inspect {
        /// The private key as hex (0x optional). Prefer --file: arguments are visible to
        /// other local users.
        #[arg(value_name = "KEY_HEX")]
        key: Option<String>,
        /// Read the key from a Besu key file.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Host for the enode URL: an IP address or a DNS name.
        #[arg(long, value_name = "H", default_value = "127.0.0.1")]
        host: String,
        /// TCP (and UDP discovery) port for the enode URL.
        #[arg(
            long,
            value_name = "P",
            default_value = "30303",
            allow_hyphen_values = true
        )]
        port: String,
    },
}

/// How a subcommand failed: bad input (exit 2) or anything else (exit 1).
pub(super) enum Failure {
    Usage(String),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

pub(super) fn usage(msg: impl Into<String>) -> Failure {
    Failure::Usage(msg.into())
}

/// Prints the outcome as the CLI contract says and returns the exit code.
pub(super) fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Other(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Prints `value` as one line of JSON.
pub(super) fn print_json(value: &impl Serialize) -> Result<(), Failure> {
    let line = serde_json::to_string(value).context("encoding output")?;
    println!("{line}");
    Ok(())
}

/// Parses a port given as text.
pub(super) fn parse_port(flag: &str, text: &str) -> Result<u16, Failure> {
    text.parse::<u16>().map_err(|_| {
        usage(format!(
            "invalid {flag} {text:?}: expected a port number 0-65535"
        ))
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Generated {
    private_key: String,
    public_key: String,
    address: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PublicInfo {
    public_key: String,
    address: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Inspected {
    public_key: String,
    address: String,
    enode: String,
}

pub fn run(args: KeyArgs) -> ExitCode {
    finish(match args.command {
        KeyCommand::Generate { out } => generate(out.as_deref()),
        KeyCommand::Inspect {
            key,
            file,
            host,
            port,
        } => inspect(key, file.as_deref(), &host, &port),
    })
}

fn generate(out: Option<&Path>) -> Result<(), Failure> {
    let key = NodeKey::generate();
    match out {
        None => print_json(&Generated {
            private_key: key.to_besu_key_file(),
            public_key: key.public_key().to_string(),
            address: key.address().to_string(),
        }),
        Some(path) => {
            write_new_secret_file(path, &key.to_besu_key_file())?;
            print_json(&PublicInfo {
                public_key: key.public_key().to_string(),
                address: key.address().to_string(),
            })
        }
    }
}

/// Creates `path` with mode 0600 and writes `contents`; refuses an existing file.
pub(super) fn write_new_secret_file(path: &Path, contents: &str) -> Result<(), Failure> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(usage(format!(
                "refusing to overwrite {}: it already exists, and a node key is a node's identity",
                path.display()
            )));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("creating {}", path.display()))
                .into());
        }
    };
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn inspect(
    key: Option<String>,
    file: Option<&Path>,
    host: &str,
    port: &str,
) -> Result<(), Failure> {
    let key = match (key, file) {
        (Some(text), None) => {
            NodeKey::parse(&text).map_err(|e| usage(format!("invalid KEY_HEX: {e}")))?
        }
        (None, Some(path)) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| usage(format!("key file {} is not text", path.display())))?;
            NodeKey::parse(&text).map_err(|e| usage(format!("key file {}: {e}", path.display())))?
        }
        (Some(_), Some(_)) => {
            return Err(usage(
                "give the key either as KEY_HEX or with --file, not both",
            ));
        }
        (None, None) => return Err(usage("give the key as KEY_HEX or with --file FILE")),
    };
    let port = parse_port("--port", port)?;
    let public_key = key.public_key();
    let enode = enode_url(&public_key, host, port, None);
    // The host must make a URL Besu can parse back (an IP literal or a DNS name).
    parse_enode(&enode).map_err(|_| {
        usage(format!(
            "invalid --host {host:?}: expected an IP address or a DNS name"
        ))
    })?;
    print_json(&Inspected {
        public_key: public_key.to_string(),
        address: key.address().to_string(),
        enode,
    })
}
