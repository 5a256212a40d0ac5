//! `besu-operator genesis extradata|generate`: BFT extraData and whole genesis
//! documents with their validator keys.
//!
//! User errors exit with code 2 and a one-line message on stderr naming the
//! bad value.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::Context;
use besu_operator::chain::{
    Address, Consensus, GenesisAccount, GenesisSpec, NodeKey, encode_genesis_extra_data,
    genesis_json, genesis_sha256,
};
use serde::Serialize;

use super::key::{Failure, finish, print_json, usage, write_new_secret_file};

/// The most validators `genesis generate` creates (Besu's docs report IBFT 2.0
/// tested up to about 30; this only guards against typos).
const MAX_GENERATED_VALIDATORS: usize = 256;

#[derive(clap::Args)]
pub struct GenesisArgs {
    #[command(subcommand)]
    command: GenesisCommand,
}

#[derive(clap::Subcommand)]
enum GenesisCommand {
    /// Print the genesis extraData (0x + hex) for the given validators, in the order given
    /// (as `besu rlp encode` does).
    Extradata {
        /// qbft or ibft2.
        #[arg(long)]
        consensus: String,
        /// Comma-separated validator addresses (0x + 40 hex digits each).
        #[arg(long, value_name = "0xA,0xB,...")]
        validators: String,
    },
    /// Generate N validator keys and a genesis naming them (sorted), as
    /// DIR/genesis.json and DIR/keys/<0xaddress>/{key,key.pub}.
    Generate(GenerateArgs),
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// qbft or ibft2.
    #[arg(long)]
    consensus: String,
    /// How many validators to create.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    validators: String,
    /// Chain ID (positive).
    #[arg(
        long,
        value_name = "ID",
        default_value = "1337",
        allow_hyphen_values = true
    )]
    chain_id: String,
    /// blockperiodseconds (Besu's default 1).
    #[arg(long, value_name = "S", allow_hyphen_values = true)]
    block_period: Option<String>,
    /// epochlength (Besu's default 30000).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    epoch_length: Option<String>,
    /// requesttimeoutseconds (Besu's default 1).
    #[arg(long, value_name = "S", allow_hyphen_values = true)]
    request_timeout: Option<String>,
    /// Genesis block gas limit (default 700000000).
    #[arg(long, value_name = "GAS", allow_hyphen_values = true)]
    gas_limit: Option<String>,
    /// Free-gas network: zeroBaseFee in genesis.
    #[arg(long)]
    zero_base_fee: bool,
    /// contractSizeLimit in bytes.
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    contract_size_limit: Option<String>,
    /// Pre-fund an account: 0xADDRESS=BALANCE (wei, decimal or 0x hex). Repeatable.
    #[arg(long, value_name = "0xADDRESS=BALANCE")]
    alloc: Vec<String>,
    /// Output directory; must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

pub fn run(args: GenesisArgs) -> ExitCode {
    finish(match args.command {
        GenesisCommand::Extradata {
            consensus,
            validators,
        } => extradata(&consensus, &validators),
        GenesisCommand::Generate(args) => {
            parse_generate(args).and_then(|(options, out)| generate(options, &out))
        }
    })
}

fn parse_generate(args: GenerateArgs) -> Result<(GenerateOptions, PathBuf), Failure> {
    let contract_size_limit = match args.contract_size_limit {
        None => None,
        Some(s) => {
            let n = parse_positive("--contract-size-limit", &s)?;
            Some(u32::try_from(n).map_err(|_| {
                usage(format!(
                    "invalid --contract-size-limit {s:?}: at most 4294967295"
                ))
            })?)
        }
    };
    let options = GenerateOptions {
        consensus: parse_consensus(&args.consensus)?,
        count: parse_count(&args.validators)?,
        chain_id: parse_positive("--chain-id", &args.chain_id)?,
        block_period: opt_positive("--block-period", args.block_period)?,
        epoch_length: opt_positive("--epoch-length", args.epoch_length)?,
        request_timeout: opt_positive("--request-timeout", args.request_timeout)?,
        gas_limit: opt_positive("--gas-limit", args.gas_limit)?,
        zero_base_fee: args.zero_base_fee,
        contract_size_limit,
        alloc: parse_alloc(&args.alloc)?,
    };
    Ok((options, args.out))
}

fn parse_consensus(text: &str) -> Result<Consensus, Failure> {
    Consensus::from_str(text).map_err(|e| usage(format!("invalid --consensus: {e}")))
}

fn parse_address(flag: &str, text: &str) -> Result<Address, Failure> {
    text.parse::<Address>()
        .map_err(|e| usage(format!("invalid {flag}: {e}")))
}

fn parse_positive(flag: &str, text: &str) -> Result<u64, Failure> {
    match text.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(usage(format!(
            "invalid {flag} {text:?}: expected a positive integer"
        ))),
    }
}

fn opt_positive(flag: &str, text: Option<String>) -> Result<Option<u64>, Failure> {
    text.map(|t| parse_positive(flag, &t)).transpose()
}

fn parse_count(text: &str) -> Result<usize, Failure> {
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_GENERATED_VALIDATORS).contains(&n) => Ok(n),
        _ => Err(usage(format!(
            "invalid --validators {text:?}: expected a number of validators from 1 to {MAX_GENERATED_VALIDATORS}"
        ))),
    }
}

fn parse_alloc(entries: &[String]) -> Result<BTreeMap<Address, GenesisAccount>, Failure> {
    let mut alloc = BTreeMap::new();
    for entry in entries {
        let (address, balance) = entry.split_once('=').ok_or_else(|| {
            usage(format!(
                "invalid --alloc {entry:?}: expected 0xADDRESS=BALANCE"
            ))
        })?;
        let address = parse_address("--alloc", address.trim())?;
        let account = GenesisAccount {
            balance: balance.trim().to_owned(),
            ..GenesisAccount::default()
        };
        if alloc.insert(address, account).is_some() {
            return Err(usage(format!(
                "invalid --alloc: {address} is listed more than once"
            )));
        }
    }
    Ok(alloc)
}

fn extradata(consensus: &str, validators: &str) -> Result<(), Failure> {
    let consensus = parse_consensus(consensus)?;
    let mut seen = BTreeSet::new();
    let mut list = Vec::new();
    for text in validators
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let address = parse_address("--validators", text)?;
        if !seen.insert(address) {
            return Err(usage(format!(
                "invalid --validators: duplicate validator address {address}"
            )));
        }
        list.push(address);
    }
    println!(
        "0x{}",
        hex::encode(encode_genesis_extra_data(consensus, &list))
    );
    Ok(())
}

struct GenerateOptions {
    consensus: Consensus,
    count: usize,
    chain_id: u64,
    block_period: Option<u64>,
    epoch_length: Option<u64>,
    request_timeout: Option<u64>,
    gas_limit: Option<u64>,
    zero_base_fee: bool,
    contract_size_limit: Option<u32>,
    alloc: BTreeMap<Address, GenesisAccount>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Generated {
    genesis: String,
    genesis_checksum: String,
    consensus: Consensus,
    chain_id: u64,
    validators: Vec<Address>,
}

fn generate(options: GenerateOptions, out: &Path) -> Result<(), Failure> {
    check_output_dir(out)?;
    let keys: Vec<NodeKey> = (0..options.count).map(|_| NodeKey::generate()).collect();
    let mut validators: Vec<Address> = keys.iter().map(NodeKey::address).collect();
    let spec = GenesisSpec {
        consensus: options.consensus,
        chain_id: options.chain_id,
        block_period_seconds: options.block_period,
        epoch_length: options.epoch_length,
        request_timeout_seconds: options.request_timeout,
        gas_limit: options.gas_limit,
        zero_base_fee: options.zero_base_fee,
        contract_size_limit: options.contract_size_limit,
        alloc: options.alloc,
        validators: validators.clone(),
    };
    // Everything is checked before anything is written.
    let json = genesis_json(&spec).map_err(|e| usage(e.to_string()))?;
    validators.sort();

    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for key in &keys {
        let dir = out.join("keys").join(key.address().to_string());
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        write_new_secret_file(&dir.join("key"), &key.to_besu_key_file())?;
        write_new_public_file(&dir.join("key.pub"), &key.public_key().to_string())?;
    }
    let genesis_path = out.join("genesis.json");
    write_new_public_file(&genesis_path, &json)?;
    print_json(&Generated {
        genesis: genesis_path.display().to_string(),
        genesis_checksum: genesis_sha256(&json),
        consensus: options.consensus,
        chain_id: options.chain_id,
        validators,
    })
}

/// The output directory must not exist, or be an empty directory.
fn check_output_dir(out: &Path) -> Result<(), Failure> {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(usage(format!(
                    "refusing to write into {}: the directory is not empty",
                    out.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) if out.exists() => Err(usage(format!(
            "refusing to write into {}: it exists and is not a directory",
            out.display()
        ))),
        Err(e) => Err(anyhow::Error::new(e)
            .context(format!("reading {}", out.display()))
            .into()),
    }
}

/// Creates `path` (mode 0644, refusing an existing file) with `contents`.
fn write_new_public_file(path: &Path, contents: &str) -> Result<(), Failure> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o644);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
