//! The stand-in's chain: genesis, blocks with their validator votes, and the copy under
//! the data path that a restarted process reads back.
//!
//! Rules (besu-facts §6; hyperledger/besu @ 3fd224e2), with the tally of
//! [`crate::chain::VoteTally`]:
//! - a block's header lists the validators that must seal it: the set after its parent
//!   (`BlockValidatorProvider.getValidatorsAfterBlock`), sorted ascending after genesis
//!   (`BftValidatorsValidationRule`);
//! - it needs commit seals from at least `ceil(2n/3)` of them
//!   (`BftCommitSealsValidationRule`, `BftHelpers.calculateRequiredValidatorQuorum`);
//! - its timestamp is at least the parent's plus `blockperiodseconds`
//!   (`TimestampMoreRecentThanParent`);
//! - its vote is tallied (`VoteTallyUpdater.updateForBlock`), except in an epoch block
//!   (`number % epochlength == 0`), which discards all outstanding votes instead; a change
//!   applies from the next block.
//!
//! Storage: `<data-path>/besu-standin/chain.jsonl`, a first line naming the genesis
//! hash, then one block a line, appended and synced as blocks are imported. A torn last
//! line (a kill mid-write) is cut off at start. The directory is the stand-in's own, not
//! Besu's database layout.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::block::{Block, H256, genesis_hash};
use crate::besu::{Address, Consensus, Vote, VoteKind, commit_quorum};
use crate::chain::{ValidatorChange, VoteTally};

/// What the genesis file says, as far as the stand-in needs it.
#[derive(Clone, Debug)]
pub struct GenesisInfo {
    pub consensus: Consensus,
    pub chain_id: u64,
    pub block_period_seconds: u64,
    pub epoch_length: u64,
    /// `requesttimeoutseconds` (`JsonBftConfigOptions`, default 1).
    pub request_timeout_seconds: u64,
    pub gas_limit: u64,
    pub timestamp: u64,
    /// In extraData order.
    pub validators: Vec<Address>,
    /// The genesis extraData bytes.
    pub extra_data: Vec<u8>,
    pub hash: H256,
}

fn get_ci<'a>(map: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => s.parse().ok(),
        },
        _ => None,
    }
}

impl GenesisInfo {
    /// Reads a genesis document: consensus, validators and BFT options through
    /// [`crate::genesis::chain_params`] (Besu's rules, see there), plus
    /// `requesttimeoutseconds` and `gasLimit`.
    pub fn parse(text: &str) -> anyhow::Result<GenesisInfo> {
        let params = crate::genesis::chain_params(text)?;
        let root: Value = serde_json::from_str(text)?;
        let obj = root
            .as_object()
            .ok_or_else(|| anyhow!("genesis is not an object"))?;
        let bft = get_ci(obj, "config")
            .and_then(Value::as_object)
            .and_then(|c| get_ci(c, params.consensus.genesis_key()))
            .and_then(Value::as_object);
        let request_timeout_seconds = bft
            .and_then(|b| get_ci(b, "requesttimeoutseconds"))
            .and_then(as_u64)
            .unwrap_or(1)
            .max(1);
        Ok(GenesisInfo {
            consensus: params.consensus,
            chain_id: params.chain_id,
            block_period_seconds: params.block_period_seconds,
            epoch_length: params.epoch_length,
            request_timeout_seconds,
            gas_limit: get_ci(obj, "gasLimit").and_then(as_u64).unwrap_or(0),
            timestamp: params.genesis_timestamp,
            validators: params.genesis_validators,
            extra_data: get_ci(obj, "extraData")
                .and_then(Value::as_str)
                .and_then(|s| hex::decode(s.strip_prefix("0x").unwrap_or(s)).ok())
                .unwrap_or_default(),
            hash: genesis_hash(&root),
        })
    }

    pub fn genesis_block(&self) -> Block {
        Block {
            number: 0,
            parent_hash: H256::default(),
            timestamp: self.timestamp,
            proposer: Address::default(),
            round: 0,
            validators: self.validators.clone(),
            vote: None,
            seals: Vec::new(),
            genesis_hash: Some(self.hash),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    genesis: H256,
    consensus: Consensus,
}

/// The append-only block file.
struct Store {
    file: File,
}

/// The chain of this node.
pub struct Chain {
    pub genesis: GenesisInfo,
    blocks: Vec<Block>,
    hashes: Vec<H256>,
    /// The tally after the head: its validators seal the next block.
    pub tally: VoteTally,
    store: Option<Store>,
}

impl Chain {
    /// A chain at its genesis block, kept in memory only.
    pub fn in_memory(genesis: GenesisInfo) -> Chain {
        let g = genesis.genesis_block();
        Chain {
            tally: VoteTally::new(genesis.validators.iter().copied()),
            hashes: vec![g.hash(genesis.consensus)],
            blocks: vec![g],
            genesis,
            store: None,
        }
    }

    /// The chain stored under `data_path` (created if absent). A store of another
    /// genesis is refused with Besu's message (`DefaultBlockchain` constructor).
    pub fn open(genesis: GenesisInfo, data_path: &Path) -> anyhow::Result<Chain> {
        let dir = data_path.join("besu-standin");
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let path = dir.join("chain.jsonl");
        let mut chain = Chain::in_memory(genesis);
        let mut good_len: u64 = 0;
        if path.exists() {
            let reader = BufReader::new(
                File::open(&path).with_context(|| format!("open {}", path.display()))?,
            );
            let mut offset: u64 = 0;
            for (i, line) in reader.split(b'\n').enumerate() {
                let line = line.with_context(|| format!("read {}", path.display()))?;
                let len = line.len() as u64 + 1;
                if i == 0 {
                    let header: Header = match serde_json::from_slice(&line) {
                        Ok(h) => h,
                        Err(_) => break,
                    };
                    if header.genesis != chain.genesis.hash {
                        bail!(
                            "Supplied genesis block does not match chain data stored in {}\nPlease specify a different data directory with --data-path, specify the original genesis file with --genesis-file or supply a testnet/mainnet option with --network.",
                            data_path.display()
                        );
                    }
                } else {
                    let Ok(block) = serde_json::from_slice::<Block>(&line) else {
                        break;
                    };
                    if chain.import(block).is_err() {
                        break;
                    }
                }
                offset += len;
                good_len = offset;
            }
            let file_len = std::fs::metadata(&path)?.len();
            if good_len < file_len {
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(good_len)?;
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("open {}", path.display()))?;
        if good_len == 0 {
            let header = Header {
                genesis: chain.genesis.hash,
                consensus: chain.genesis.consensus,
            };
            writeln!(file, "{}", serde_json::to_string(&header)?)?;
            file.sync_data()?;
        }
        chain.store = Some(Store { file });
        Ok(chain)
    }

    pub fn store_path(data_path: &Path) -> PathBuf {
        data_path.join("besu-standin").join("chain.jsonl")
    }

    pub fn consensus(&self) -> Consensus {
        self.genesis.consensus
    }

    pub fn head(&self) -> &Block {
        &self.blocks[self.blocks.len() - 1]
    }

    pub fn head_number(&self) -> u64 {
        self.blocks.len() as u64 - 1
    }

    pub fn head_hash(&self) -> H256 {
        self.hashes[self.hashes.len() - 1]
    }

    pub fn block(&self, number: u64) -> Option<&Block> {
        self.blocks.get(usize::try_from(number).ok()?)
    }

    pub fn hash_of(&self, number: u64) -> Option<H256> {
        self.hashes.get(usize::try_from(number).ok()?).copied()
    }

    pub fn number_of_hash(&self, hash: &H256) -> Option<u64> {
        self.hashes.iter().position(|h| h == hash).map(|i| i as u64)
    }

    /// The sorted validators that seal the next block.
    pub fn next_validators(&self) -> Vec<Address> {
        self.tally.validators().iter().copied().collect()
    }

    pub fn is_epoch_block(&self, number: u64) -> bool {
        number.is_multiple_of(self.genesis.epoch_length.max(1))
    }

    /// Whether `block` may follow the head (everything but the seals).
    pub fn check_header(&self, block: &Block) -> Result<(), String> {
        let head = self.head();
        if block.number != head.number + 1 {
            return Err(format!(
                "block #{} does not follow the head #{}",
                block.number, head.number
            ));
        }
        if block.parent_hash != self.head_hash() {
            return Err(format!(
                "block #{} has parent {}, the head is {}",
                block.number,
                block.parent_hash.short(),
                self.head_hash().short()
            ));
        }
        if block.genesis_hash.is_some() {
            return Err("only block 0 names a genesis".into());
        }
        let validators = self.next_validators();
        if block.validators != validators {
            return Err(format!(
                "block #{} lists validators {:?}, expected {:?}",
                block.number, block.validators, validators
            ));
        }
        if !validators.contains(&block.proposer) {
            return Err(format!(
                "block #{} proposer {} is not a validator",
                block.number, block.proposer
            ));
        }
        let min_ts = head.timestamp + self.genesis.block_period_seconds;
        if block.timestamp < min_ts {
            return Err(format!(
                "block #{} timestamp {} is before parent + block period ({min_ts})",
                block.number, block.timestamp
            ));
        }
        Ok(())
    }

    /// Appends `block` after checking it (header and at least `ceil(2n/3)` distinct
    /// validators' seals), tallies its vote and stores it. Returns the validator change
    /// it causes (effective from the next block).
    pub fn import(&mut self, block: Block) -> Result<Option<ValidatorChange>, String> {
        self.check_header(&block)?;
        let consensus = self.consensus();
        let signers = block.seal_signers(consensus);
        let valid = signers
            .iter()
            .filter(|s| block.validators.contains(s))
            .count();
        let needed = commit_quorum(block.validators.len());
        if valid < needed {
            return Err(format!(
                "block #{} has {valid} valid commit seals, {needed} needed",
                block.number
            ));
        }
        let mut change = None;
        if self.is_epoch_block(block.number) {
            self.tally.discard_outstanding_votes();
        } else if let Some(v) = block.vote {
            change = self.tally.add_vote(
                block.proposer,
                Vote {
                    recipient: v.subject,
                    kind: if v.add { VoteKind::Add } else { VoteKind::Drop },
                },
            );
        }
        if let Some(store) = &mut self.store {
            let line = serde_json::to_string(&block).map_err(|e| e.to_string())?;
            writeln!(store.file, "{line}")
                .and_then(|_| store.file.sync_data())
                .map_err(|e| format!("store block #{}: {e}", block.number))?;
        }
        self.hashes.push(block.hash(consensus));
        self.blocks.push(block);
        Ok(change)
    }
}

#[cfg(test)]
pub mod test_support {
    use super::*;
    use crate::besu::NodeKey;
    use crate::standin::block::commit_seal;

    /// A genesis with `keys` as validators (QBFT unless said otherwise).
    pub fn genesis_for(keys: &[NodeKey], consensus: Consensus, period: u64) -> GenesisInfo {
        let addrs: Vec<Address> = keys.iter().map(NodeKey::address).collect();
        let text = crate::genesis::test_support::genesis(consensus, 1337, period, &addrs);
        GenesisInfo::parse(&text).unwrap()
    }

    /// The next block, sealed by `sealers`.
    pub fn next_block(
        chain: &Chain,
        proposer: &NodeKey,
        sealers: &[&NodeKey],
        vote: Option<(Address, bool)>,
    ) -> Block {
        let mut b = Block {
            number: chain.head_number() + 1,
            parent_hash: chain.head_hash(),
            timestamp: chain.head().timestamp + chain.genesis.block_period_seconds,
            proposer: proposer.address(),
            round: 0,
            validators: chain.next_validators(),
            vote: vote.map(|(subject, add)| crate::standin::block::HeaderVote { subject, add }),
            seals: Vec::new(),
            genesis_hash: None,
        };
        let h = b.hash(chain.consensus());
        b.seals = sealers.iter().map(|k| commit_seal(k, &h)).collect();
        b
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    use crate::genesis::test_support::keys;

    /// `ceil(2n/3)` distinct validators' seals: 3 of 4; a repeated seal or an outsider's
    /// does not count.
    #[test]
    fn import_needs_a_commit_quorum_of_seals() {
        let k = keys(5);
        let mut chain = Chain::in_memory(genesis_for(&k[..4], Consensus::Qbft, 1));
        let two = next_block(&chain, &k[0], &[&k[0], &k[1], &k[1], &k[4]], None);
        assert!(
            chain
                .import(two)
                .unwrap_err()
                .contains("2 valid commit seals, 3 needed")
        );
        let three = next_block(&chain, &k[0], &[&k[0], &k[1], &k[2]], None);
        assert_eq!(chain.import(three), Ok(None));
        assert_eq!(chain.head_number(), 1);
        // Wrong parent, proposer or timestamp.
        let mut b = next_block(&chain, &k[1], &[&k[0], &k[1], &k[2]], None);
        b.timestamp -= 1;
        assert!(chain.import(b).unwrap_err().contains("timestamp"));
        let b = next_block(&chain, &k[4], &[&k[0], &k[1], &k[2]], None);
        assert!(chain.import(b).unwrap_err().contains("not a validator"));
    }

    /// Three votes of four validators add a fifth, from the next block on.
    #[test]
    fn votes_change_the_set_after_the_deciding_block() {
        let k = keys(5);
        let mut chain = Chain::in_memory(genesis_for(&k[..4], Consensus::Ibft2, 1));
        let five = k[4].address();
        let all = [&k[0], &k[1], &k[2], &k[3]];
        for (i, voter) in k[..3].iter().enumerate() {
            let b = next_block(&chain, voter, &all, Some((five, true)));
            let change = chain.import(b).unwrap();
            assert_eq!(change.is_some(), i == 2);
            assert_eq!(chain.head().validators.len(), 4);
        }
        assert_eq!(chain.next_validators().len(), 5);
        // The next block must list five and needs ceil(10/3) = 4 seals.
        let b = next_block(&chain, &k[3], &all[..3], None);
        assert!(chain.import(b).is_err());
        let b = next_block(&chain, &k[3], &all, None);
        chain.import(b).unwrap();
        assert!(chain.head().validators.contains(&five));
    }

    /// A restarted process reads its chain back; a torn line is cut; another genesis is
    /// refused.
    #[test]
    fn the_store_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let k = keys(4);
        let g = genesis_for(&k, Consensus::Qbft, 1);
        {
            let mut chain = Chain::open(g.clone(), dir.path()).unwrap();
            for _ in 0..3 {
                let b = next_block(&chain, &k[0], &[&k[0], &k[1], &k[2]], None);
                chain.import(b).unwrap();
            }
        }
        let path = Chain::store_path(dir.path());
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"number\":4,\"par").unwrap();
        drop(f);
        let chain = Chain::open(g.clone(), dir.path()).unwrap();
        assert_eq!(chain.head_number(), 3);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("}\n"));
        let other = genesis_for(&k[..3], Consensus::Qbft, 1);
        let err = Chain::open(other, dir.path()).err().unwrap().to_string();
        assert!(err.starts_with("Supplied genesis block does not match chain data stored in "));
    }
}
