//! The simulated chain: Besu's block-header voting and BFT liveness rules, as pure
//! state machines driven by an explicit clock (milliseconds since the Unix epoch).
//!
//! Sources (hyperledger/besu @ 3fd224e2, see `../shared/besu-facts.md` §6):
//! - `consensus/common/.../validator/blockbased/VoteTally.java`: distinct voters per
//!   (subject, add/drop), threshold `floor(n/2)+1` (`validatorLimit`), a voter's add
//!   and drop votes for one subject exclude each other, a removed validator's own
//!   outstanding votes are dropped.
//! - `VoteTallyUpdater.updateForBlock`: at an epoch block (`EpochManager.isEpochBlock`,
//!   `number % epochlength == 0`) all outstanding votes are discarded and the header's
//!   vote is ignored.
//! - `VoteTallyCache.getVoteTallyAfterBlock` / `BlockValidatorProvider.getValidatorsAfterBlock`:
//!   a vote in block N changes the set that validates block N+1.
//! - `VoteProposer.java`: each node's proposals live in its memory; a proposal is kept
//!   (also after it took effect) until `discardValidatorVote`; a block carries at most
//!   one of the proposer's votes that are "not yet cast" (`voteNotYetCast`), chosen
//!   round-robin (`votePosition`).
//! - `BftHelpers.calculateRequiredValidatorQuorum`: a block needs `ceil(2n/3)` of the
//!   current validators.
//! - `BftProposerSelector.selectProposerForRound`: round-robin from the previous
//!   block's proposer over the sorted validator set.
//!
//! Simplifications (documented in the crate README):
//! - A block is produced when it is due (one block period after the previous one) and
//!   enough validators are up. Its proposer is the first *up* validator in Besu's
//!   round order: the validator Besu would reach after round changes, but without the
//!   round-change timeouts (`requesttimeoutseconds`, doubling per round) that a down
//!   proposer costs a real network.
//! - A chain resumes as soon as a quorum is back (no round-change back-off).

use std::collections::{BTreeMap, BTreeSet};

use crate::besu::{Address, Consensus, Vote, VoteKind, commit_quorum, vote_threshold};
use serde::Serialize;

/// The zero address: the genesis block's coinbase, which Besu's
/// `BftBlockInterface.getProposerOfBlock` reports as the genesis "proposer".
pub const ZERO_ADDRESS: Address = Address([0u8; 20]);

/// A validator set change that took effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ValidatorChange {
    pub address: Address,
    pub added: bool,
}

/// Besu's `VoteTally`: the current validators and the outstanding votes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VoteTally {
    validators: BTreeSet<Address>,
    add_votes: BTreeMap<Address, BTreeSet<Address>>,
    drop_votes: BTreeMap<Address, BTreeSet<Address>>,
}

/// Outstanding votes for one subject (for views).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub subject: Address,
    pub add: Vec<Address>,
    pub drop: Vec<Address>,
    /// Votes needed for a change now: `floor(n/2)+1`.
    pub threshold: usize,
}

impl VoteTally {
    pub fn new(validators: impl IntoIterator<Item = Address>) -> VoteTally {
        VoteTally {
            validators: validators.into_iter().collect(),
            ..VoteTally::default()
        }
    }

    /// The validators after all votes so far (a `TreeSet` in Besu: sorted).
    pub fn validators(&self) -> &BTreeSet<Address> {
        &self.validators
    }

    fn votes_for(
        map: &BTreeMap<Address, BTreeSet<Address>>,
        subject: &Address,
        voter: &Address,
    ) -> bool {
        map.get(subject).is_some_and(|s| s.contains(voter))
    }

    /// `VoteTally.addVote`: records `proposer`'s vote; when a side reaches
    /// `floor(n/2)+1` distinct voters the set changes and the subject's outstanding
    /// votes are discarded; a removed validator's own votes are discarded too.
    pub fn add_vote(&mut self, proposer: Address, vote: Vote) -> Option<ValidatorChange> {
        let subject = vote.recipient;
        let add = self.add_votes.entry(subject).or_default();
        let drop = self.drop_votes.entry(subject).or_default();
        match vote.kind {
            VoteKind::Add => {
                add.insert(proposer);
                drop.remove(&proposer);
            }
            VoteKind::Drop => {
                drop.insert(proposer);
                add.remove(&proposer);
            }
        }
        let (adds, drops) = (add.len(), drop.len());
        let limit = vote_threshold(self.validators.len());
        if adds >= limit {
            self.validators.insert(subject);
            self.discard_votes_for(&subject);
            return Some(ValidatorChange {
                address: subject,
                added: true,
            });
        }
        if drops >= limit {
            self.validators.remove(&subject);
            self.discard_votes_for(&subject);
            for voters in self
                .add_votes
                .values_mut()
                .chain(self.drop_votes.values_mut())
            {
                voters.remove(&subject);
            }
            return Some(ValidatorChange {
                address: subject,
                added: false,
            });
        }
        None
    }

    fn discard_votes_for(&mut self, subject: &Address) {
        self.add_votes.remove(subject);
        self.drop_votes.remove(subject);
    }

    /// `VoteTally.discardOutstandingVotes`, done at every epoch block.
    pub fn discard_outstanding_votes(&mut self) {
        self.add_votes.clear();
        self.drop_votes.clear();
    }

    /// Whether `voter` has an outstanding add (`true`) or drop (`false`) vote for `subject`.
    pub fn has_voted(&self, voter: &Address, subject: &Address, add: bool) -> bool {
        if add {
            Self::votes_for(&self.add_votes, subject, voter)
        } else {
            Self::votes_for(&self.drop_votes, subject, voter)
        }
    }

    /// Every subject with at least one outstanding vote.
    pub fn outstanding(&self) -> Vec<Tally> {
        let subjects: BTreeSet<&Address> = self
            .add_votes
            .iter()
            .chain(self.drop_votes.iter())
            .filter(|(_, v)| !v.is_empty())
            .map(|(s, _)| s)
            .collect();
        subjects
            .into_iter()
            .map(|s| Tally {
                subject: *s,
                add: self
                    .add_votes
                    .get(s)
                    .map(|v| v.iter().copied().collect())
                    .unwrap_or_default(),
                drop: self
                    .drop_votes
                    .get(s)
                    .map(|v| v.iter().copied().collect())
                    .unwrap_or_default(),
                threshold: vote_threshold(self.validators.len()),
            })
            .collect()
    }
}

/// Besu's `VoteProposer`: one node's proposals, in its memory only (a restarted node
/// starts with none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VoteProposer {
    /// Besu keeps a `ConcurrentHashMap` (hash order); this keeps address order.
    proposals: BTreeMap<Address, VoteKind>,
    position: usize,
}

impl VoteProposer {
    /// `auth` / `drop`: (re)places the proposal for `subject`.
    pub fn propose(&mut self, subject: Address, add: bool) {
        self.proposals
            .insert(subject, if add { VoteKind::Add } else { VoteKind::Drop });
    }

    /// `discard`: forgets the proposal for `subject`, if any.
    pub fn discard(&mut self, subject: &Address) {
        self.proposals.remove(subject);
    }

    /// `getProposals`, as `qbft_getPendingVotes` returns them (true = add).
    pub fn proposals(&self) -> BTreeMap<Address, bool> {
        self.proposals
            .iter()
            .map(|(a, k)| (*a, *k == VoteKind::Add))
            .collect()
    }

    /// `voteNotYetCast`: a proposal still worth casting given the tally.
    fn not_yet_cast(local: &Address, subject: &Address, kind: VoteKind, tally: &VoteTally) -> bool {
        let voted_add = tally.has_voted(local, subject, true);
        let voted_drop = tally.has_voted(local, subject, false);
        let is_validator = tally.validators().contains(subject);
        match kind {
            VoteKind::Drop => (is_validator && !voted_drop) || voted_add,
            VoteKind::Add => (!is_validator && !voted_add) || voted_drop,
        }
    }

    /// `getVote`: the vote `local` puts into the block it proposes, round-robin over
    /// the proposals not yet cast (`votePosition.updateAndGet(i -> ++i % size)`).
    pub fn get_vote(&mut self, local: &Address, tally: &VoteTally) -> Option<Vote> {
        let valid: Vec<(Address, VoteKind)> = self
            .proposals
            .iter()
            .filter(|(s, k)| Self::not_yet_cast(local, s, **k, tally))
            .map(|(s, k)| (*s, *k))
            .collect();
        if valid.is_empty() {
            return None;
        }
        self.position = (self.position + 1) % valid.len();
        let (recipient, kind) = valid[self.position];
        Some(Vote { recipient, kind })
    }
}

/// `BftProposerSelector`: the proposers of rounds 0, 1, 2, … of the block after one
/// proposed by `previous`, over the (sorted) validators for the new block.
pub fn proposer_order(previous: &Address, validators: &BTreeSet<Address>) -> Vec<Address> {
    let list: Vec<Address> = validators.iter().copied().collect();
    if list.is_empty() {
        return list;
    }
    let start = match list.iter().position(|v| v == previous) {
        // handleWithExistingProposer, changeEachBlock = true: the next one.
        Some(i) => i + 1,
        // handleMissingProposer: the first validator after the missing one.
        None => list.iter().position(|v| v > previous).unwrap_or(0),
    };
    (0..list.len())
        .map(|r| list[(start + r) % list.len()])
        .collect()
}

/// What the genesis file says about the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainParams {
    pub consensus: Consensus,
    pub chain_id: u64,
    pub block_period_seconds: u64,
    pub epoch_length: u64,
    /// Validators in genesis extraData order.
    pub genesis_validators: Vec<Address>,
    pub genesis_timestamp: u64,
}

/// One block, as recorded for tests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Block {
    pub number: u64,
    /// Header timestamp (seconds).
    pub timestamp: u64,
    /// When the simulator produced it (ms since the epoch); 0 for genesis.
    pub produced_at_ms: u64,
    /// None for genesis.
    pub proposer: Option<Address>,
    /// The round it was produced in: how many proposers were skipped as down.
    pub round: u32,
    /// The validators in the header: the set that produced this block.
    pub validators: Vec<Address>,
    /// Those of `validators` that were up (pod Running and Ready, node in sync).
    pub validators_up: Vec<Address>,
    /// The vote in the header, if any.
    pub vote: Option<BlockVote>,
    /// The change the vote caused, effective from the next block.
    pub change: Option<ValidatorChange>,
}

/// A vote as recorded in a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BlockVote {
    pub subject: Address,
    pub add: bool,
    /// False in an epoch block, where Besu ignores the vote.
    pub counted: bool,
}

/// The outcome of [`Chain::step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Less than a block period since the last block.
    NotDue,
    /// Due, but fewer than `ceil(2n/3)` validators are up.
    Stalled {
        up: usize,
        needed: usize,
        validators: usize,
    },
    /// A new block.
    Produced(u64),
}

/// One simulated chain.
#[derive(Clone, Debug)]
pub struct Chain {
    pub params: ChainParams,
    pub blocks: Vec<Block>,
    /// The tally after the head: its validators produce the next block.
    pub tally: VoteTally,
    pub next_due_ms: u64,
}

impl Chain {
    /// A chain at its genesis block; the first block is due one period after `now_ms`.
    pub fn new(params: ChainParams, now_ms: u64) -> Chain {
        let genesis = Block {
            number: 0,
            timestamp: params.genesis_timestamp,
            produced_at_ms: 0,
            proposer: None,
            round: 0,
            validators: params.genesis_validators.clone(),
            validators_up: Vec::new(),
            vote: None,
            change: None,
        };
        Chain {
            tally: VoteTally::new(params.genesis_validators.iter().copied()),
            next_due_ms: now_ms + params.block_period_seconds.max(1) * 1000,
            params,
            blocks: vec![genesis],
        }
    }

    pub fn period_ms(&self) -> u64 {
        self.params.block_period_seconds.max(1) * 1000
    }

    pub fn head(&self) -> u64 {
        self.blocks.len() as u64 - 1
    }

    pub fn head_block(&self) -> &Block {
        // `blocks` always holds at least the genesis block.
        &self.blocks[self.blocks.len() - 1]
    }

    pub fn block(&self, number: u64) -> Option<&Block> {
        self.blocks.get(usize::try_from(number).ok()?)
    }

    /// `getValidatorsAfterBlock(number)`: the set for block `number + 1`.
    pub fn validators_after(&self, number: u64) -> Option<Vec<Address>> {
        if number == self.head() {
            return Some(self.tally.validators().iter().copied().collect());
        }
        let mut next = self.block(number + 1)?.validators.clone();
        next.sort();
        Some(next)
    }

    /// `EpochManager.isEpochBlock` (no QBFT `startblock` transition).
    pub fn is_epoch_block(&self, number: u64) -> bool {
        number.is_multiple_of(self.params.epoch_length.max(1))
    }

    /// Produces the next block if it is due and `up` holds a commit quorum of the
    /// current validators. `vote_of` gives the proposer's vote (its `VoteProposer`).
    pub fn step(
        &mut self,
        now_ms: u64,
        up: &BTreeSet<Address>,
        mut vote_of: impl FnMut(&Address, &VoteTally) -> Option<Vote>,
    ) -> Step {
        if now_ms < self.next_due_ms {
            return Step::NotDue;
        }
        let validators = self.tally.validators().clone();
        let up_validators: Vec<Address> = validators.intersection(up).copied().collect();
        let needed = commit_quorum(validators.len());
        if validators.is_empty() || up_validators.len() < needed {
            return Step::Stalled {
                up: up_validators.len(),
                needed,
                validators: validators.len(),
            };
        }
        let previous = self.head_block().proposer.unwrap_or(ZERO_ADDRESS);
        let order = proposer_order(&previous, &validators);
        // A quorum is up, so some validator is.
        let Some((round, proposer)) = order
            .iter()
            .enumerate()
            .find(|(_, a)| up.contains(a))
            .map(|(r, a)| (r as u32, *a))
        else {
            return Step::Stalled {
                up: up_validators.len(),
                needed,
                validators: validators.len(),
            };
        };
        let vote = vote_of(&proposer, &self.tally);
        let number = self.head() + 1;
        let epoch = self.is_epoch_block(number);
        let mut change = None;
        if epoch {
            self.tally.discard_outstanding_votes();
        } else if let Some(v) = vote {
            change = self.tally.add_vote(proposer, v);
        }
        self.blocks.push(Block {
            number,
            timestamp: (now_ms / 1000).max(self.head_block().timestamp + 1),
            produced_at_ms: now_ms,
            proposer: Some(proposer),
            round,
            validators: validators.iter().copied().collect(),
            validators_up: up_validators,
            vote: vote.map(|v| BlockVote {
                subject: v.recipient,
                add: v.kind == VoteKind::Add,
                counted: !epoch,
            }),
            change,
        });
        let due = self.next_due_ms;
        let period = self.period_ms();
        self.next_due_ms = if now_ms - due < period {
            due + period
        } else {
            now_ms + period
        };
        Step::Produced(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> Address {
        let mut a = [0u8; 20];
        a[19] = n;
        Address(a)
    }

    fn add(n: u8) -> Vote {
        Vote {
            recipient: addr(n),
            kind: VoteKind::Add,
        }
    }

    fn drop(n: u8) -> Vote {
        Vote {
            recipient: addr(n),
            kind: VoteKind::Drop,
        }
    }

    fn set(ns: &[u8]) -> BTreeSet<Address> {
        ns.iter().map(|n| addr(*n)).collect()
    }

    fn params(validators: &[u8], epoch: u64) -> ChainParams {
        ChainParams {
            consensus: Consensus::Qbft,
            chain_id: 1337,
            block_period_seconds: 1,
            epoch_length: epoch,
            genesis_validators: validators.iter().map(|n| addr(*n)).collect(),
            genesis_timestamp: 0,
        }
    }

    /// Steps the chain one period later with `up`; each proposer's vote from `proposers`.
    fn produce(
        chain: &mut Chain,
        now: &mut u64,
        up: &BTreeSet<Address>,
        proposers: &mut BTreeMap<Address, VoteProposer>,
    ) -> Step {
        *now += 1000;
        chain.step(*now, up, |p, tally| {
            proposers.get_mut(p).and_then(|vp| vp.get_vote(p, tally))
        })
    }

    /// Besu `VoteTallyTest.validatorsAreNotAddedBeforeRequiredVoteCountReached` and
    /// `validatorsAreAddedAfterRequiredVoteCountReached`: 4 validators, 2 votes do not
    /// add, the 3rd (`floor(4/2)+1`) does.
    #[test]
    fn vote_threshold_is_more_than_half_of_distinct_validators() {
        let mut t = VoteTally::new(set(&[1, 2, 3, 4]));
        assert_eq!(t.add_vote(addr(1), add(5)), None);
        // The same voter twice still counts once (a set of voters).
        assert_eq!(t.add_vote(addr(1), add(5)), None);
        assert_eq!(t.add_vote(addr(2), add(5)), None);
        assert!(!t.validators().contains(&addr(5)));
        assert_eq!(
            t.add_vote(addr(3), add(5)),
            Some(ValidatorChange {
                address: addr(5),
                added: true
            })
        );
        assert_eq!(t.validators(), &set(&[1, 2, 3, 4, 5]));
        // The subject's outstanding votes are gone (discardOutstandingVotesFor).
        assert!(t.outstanding().is_empty());
    }

    /// Besu `VoteTallyTest.validatorsAreRemovedAfterRequiredVoteCountReached` and
    /// `removedValidatorsVotesAreDiscarded`: a dropped validator's own votes go.
    #[test]
    fn drop_removes_and_discards_the_removed_validators_votes() {
        let mut t = VoteTally::new(set(&[1, 2, 3, 4]));
        t.add_vote(addr(4), add(9));
        t.add_vote(addr(1), drop(4));
        t.add_vote(addr(2), drop(4));
        let change = t.add_vote(addr(3), drop(4));
        assert_eq!(
            change,
            Some(ValidatorChange {
                address: addr(4),
                added: false
            })
        );
        assert_eq!(t.validators(), &set(&[1, 2, 3]));
        assert!(!t.has_voted(&addr(4), &addr(9), true));
    }

    /// The validators of hyperledger/besu
    /// `consensus/common/src/test/java/org/hyperledger/besu/consensus/common/validator/blockbased/VoteTallyTest.java`
    /// (`validator1` … `validator5`, ascending).
    fn besu_validator(n: usize) -> Address {
        [
            "0x000d836201318ec6899a67540690382780743280",
            "0x001762430ea9c3a26e5749afdb70da5f78ddbb8c",
            "0x001d14804b399c6ef80e64576f657660804fec0b",
            "0x0032403587947b9f15622a68d104d54d33dbd1cd",
            "0x00497e92cdc0e0b963d752b2296acb87da828b24",
        ][n - 1]
            .parse()
            .unwrap()
    }

    fn besu_vote(t: &mut VoteTally, voter: usize, kind: VoteKind, subject: usize) {
        t.add_vote(
            besu_validator(voter),
            Vote {
                recipient: besu_validator(subject),
                kind,
            },
        );
    }

    fn besu_set(t: &VoteTally) -> Vec<usize> {
        t.validators()
            .iter()
            .map(|a| (1..=5).find(|n| besu_validator(*n) == *a).unwrap())
            .collect()
    }

    /// `VoteTallyTest` scenarios with Besu's own addresses: `clearVotesAboutAValidatorWhenItIsAdded`,
    /// `removedValidatorsVotesAreDiscarded`, `trackMultipleOngoingVotesIndependently`,
    /// `proposerChangingAddVoteToDropBeforeLimitReachedDiscardsAddVote`.
    #[test]
    fn vote_tally_test_scenarios() {
        use VoteKind::{Add, Drop};
        let four = || VoteTally::new((1..=4).map(besu_validator));

        let mut t = four();
        for v in [1, 2, 3] {
            besu_vote(&mut t, v, Add, 5);
        }
        assert_eq!(besu_set(&t), [1, 2, 3, 4, 5]);
        for v in [2, 3, 4] {
            besu_vote(&mut t, v, Drop, 5);
        }
        assert_eq!(besu_set(&t), [1, 2, 3, 4]);
        // validator1's earlier add vote was discarded with the change.
        besu_vote(&mut t, 2, Add, 5);
        besu_vote(&mut t, 3, Add, 5);
        assert_eq!(besu_set(&t), [1, 2, 3, 4]);

        let mut t = four();
        besu_vote(&mut t, 4, Add, 5);
        besu_vote(&mut t, 4, Drop, 3);
        for v in [1, 2, 3] {
            besu_vote(&mut t, v, Drop, 4);
        }
        assert_eq!(besu_set(&t), [1, 2, 3]);
        besu_vote(&mut t, 1, Add, 5);
        besu_vote(&mut t, 1, Drop, 3);
        assert_eq!(besu_set(&t), [1, 2, 3]);

        let mut t = four();
        for v in [1, 2] {
            besu_vote(&mut t, v, Add, 5);
        }
        besu_vote(&mut t, 1, Drop, 3);
        besu_vote(&mut t, 2, Drop, 1);
        assert_eq!(besu_set(&t), [1, 2, 3, 4]);
        besu_vote(&mut t, 3, Add, 5);
        besu_vote(&mut t, 3, Drop, 1);
        assert_eq!(besu_set(&t), [1, 2, 3, 4, 5]);
        besu_vote(&mut t, 4, Add, 5);
        besu_vote(&mut t, 4, Drop, 1);
        assert_eq!(besu_set(&t), [2, 3, 4, 5]);

        let mut t = four();
        besu_vote(&mut t, 1, Add, 5);
        besu_vote(&mut t, 1, Drop, 5);
        besu_vote(&mut t, 2, Add, 5);
        besu_vote(&mut t, 3, Add, 5);
        assert_eq!(besu_set(&t), [1, 2, 3, 4]);
    }

    /// Besu `VoteTallyTest.authVotesAfterDropVotesFromSameValidatorReplaceThem` (a
    /// voter's add and drop for one subject exclude each other).
    #[test]
    fn a_voters_later_vote_replaces_its_earlier_one() {
        let mut t = VoteTally::new(set(&[1, 2, 3, 4]));
        t.add_vote(addr(1), add(5));
        t.add_vote(addr(1), drop(5));
        assert!(!t.has_voted(&addr(1), &addr(5), true));
        assert!(t.has_voted(&addr(1), &addr(5), false));
    }

    /// The threshold uses the set size at the time of the vote
    /// (`VoteTally.validatorLimit`): after growing to 5, adding a 6th needs 3.
    #[test]
    fn threshold_follows_the_current_set_size() {
        let mut t = VoteTally::new(set(&[1, 2, 3]));
        t.add_vote(addr(1), add(4));
        assert!(t.add_vote(addr(2), add(4)).is_some()); // floor(3/2)+1 = 2
        t.add_vote(addr(1), add(5));
        assert!(t.add_vote(addr(2), add(5)).is_none()); // now floor(4/2)+1 = 3
        assert!(t.add_vote(addr(3), add(5)).is_some());
    }

    /// `BlockValidatorProvider.getValidatorsAfterBlock`: the block carrying the
    /// deciding vote is still produced by the old set; the new set is in force from
    /// the next block.
    #[test]
    fn a_change_takes_effect_from_the_next_block() {
        let mut chain = Chain::new(params(&[1, 2, 3, 4], 30000), 0);
        let up = set(&[1, 2, 3, 4]);
        let mut proposers: BTreeMap<Address, VoteProposer> = BTreeMap::new();
        for v in [1, 2, 3] {
            proposers.entry(addr(v)).or_default().propose(addr(5), true);
        }
        let mut now = 0;
        let mut decided = None;
        for _ in 0..12 {
            produce(&mut chain, &mut now, &up, &mut proposers);
            let head = chain.head_block();
            if head.change.is_some() {
                decided = Some(head.number);
                break;
            }
        }
        let decided = decided.expect("three votes are cast within 12 blocks");
        let block = chain.block(decided).unwrap();
        assert!(
            !block.validators.contains(&addr(5)),
            "old set produced the deciding block"
        );
        assert_eq!(chain.validators_after(decided).unwrap().len(), 5);
        produce(&mut chain, &mut now, &up, &mut proposers);
        assert!(chain.head_block().validators.contains(&addr(5)));
        // Three distinct voting validators: at least three blocks with a vote for 5.
        let votes = chain.blocks.iter().filter(|b| b.vote.is_some()).count();
        assert_eq!(votes, 3);
    }

    /// `VoteTallyUpdater.updateForBlock`: an epoch block discards every outstanding vote
    /// and its own vote is ignored; the proposals stay in memory and are cast again.
    #[test]
    fn epoch_block_discards_tallies_and_ignores_its_vote() {
        let mut chain = Chain::new(params(&[1, 2, 3, 4], 4), 0);
        let up = set(&[1, 2, 3, 4]);
        let mut proposers: BTreeMap<Address, VoteProposer> = BTreeMap::new();
        for v in [1, 2, 3, 4] {
            proposers.entry(addr(v)).or_default().propose(addr(9), true);
        }
        let mut now = 0;
        // Blocks 1..3: proposers 1, 2, 3 each vote; the 3rd vote decides at block 3.
        // To see the epoch reset, use only two voters before the epoch.
        proposers.get_mut(&addr(3)).unwrap().discard(&addr(9));
        proposers.get_mut(&addr(4)).unwrap().discard(&addr(9));
        for _ in 0..3 {
            produce(&mut chain, &mut now, &up, &mut proposers);
        }
        assert_eq!(chain.tally.outstanding()[0].add.len(), 2);
        // Block 4 is an epoch block: tallies are discarded, its vote ignored.
        proposers.get_mut(&addr(4)).unwrap().propose(addr(9), true);
        produce(&mut chain, &mut now, &up, &mut proposers);
        let b4 = chain.head_block();
        assert_eq!(b4.number, 4);
        assert_eq!(b4.proposer, Some(addr(4)));
        assert!(!b4.vote.unwrap().counted);
        assert!(chain.tally.outstanding().is_empty());
        // The proposals are cast again after the epoch and then decide.
        proposers.get_mut(&addr(3)).unwrap().propose(addr(9), true);
        for _ in 0..4 {
            produce(&mut chain, &mut now, &up, &mut proposers);
        }
        assert!(chain.tally.validators().contains(&addr(9)));
    }

    /// `BftHelpers.calculateRequiredValidatorQuorum`: with 4 validators 3 must be up;
    /// 2 stall the chain; it resumes when a 3rd is back.
    #[test]
    fn blocks_only_with_a_commit_quorum_up() {
        let mut chain = Chain::new(params(&[1, 2, 3, 4], 30000), 0);
        let mut none = BTreeMap::new();
        let mut now = 0;
        assert_eq!(
            produce(&mut chain, &mut now, &set(&[1, 2]), &mut none),
            Step::Stalled {
                up: 2,
                needed: 3,
                validators: 4
            }
        );
        // Up nodes that are not validators do not count.
        assert!(matches!(
            produce(&mut chain, &mut now, &set(&[1, 2, 7, 8]), &mut none),
            Step::Stalled { .. }
        ));
        assert_eq!(chain.head(), 0);
        assert_eq!(
            produce(&mut chain, &mut now, &set(&[1, 2, 4]), &mut none),
            Step::Produced(1)
        );
        assert_eq!(
            chain.head_block().validators_up,
            vec![addr(1), addr(2), addr(4)]
        );
        // Not due again before a block period has passed.
        assert_eq!(
            chain.step(now + 10, &set(&[1, 2, 3, 4]), |_, _| None),
            Step::NotDue
        );
    }

    /// `BftProposerSelector`: round-robin from the previous proposer; a proposer that is
    /// down is skipped as round changes would (round number = skipped proposers).
    #[test]
    fn proposers_rotate_and_skip_down_validators() {
        let vs = set(&[1, 2, 3, 4]);
        assert_eq!(proposer_order(&ZERO_ADDRESS, &vs)[0], addr(1));
        assert_eq!(
            proposer_order(&addr(2), &vs),
            vec![addr(3), addr(4), addr(1), addr(2)]
        );
        // handleMissingProposer: previous proposer no longer a validator.
        assert_eq!(proposer_order(&addr(3), &set(&[1, 2, 4]))[0], addr(4));
        assert_eq!(proposer_order(&addr(9), &set(&[1, 2, 4]))[0], addr(1));

        let mut chain = Chain::new(params(&[1, 2, 3, 4], 30000), 0);
        let mut none = BTreeMap::new();
        let mut now = 0;
        let up = set(&[1, 2, 4]);
        let mut seen = Vec::new();
        for _ in 0..6 {
            produce(&mut chain, &mut now, &up, &mut none);
            let b = chain.head_block();
            seen.push((b.proposer.unwrap(), b.round));
        }
        assert_eq!(
            seen,
            vec![
                (addr(1), 0),
                (addr(2), 0),
                (addr(4), 1),
                (addr(1), 0),
                (addr(2), 0),
                (addr(4), 1)
            ]
        );
    }

    /// `VoteProposer.getVote`: one vote per block, round-robin over the proposals not
    /// yet cast; a proposal that took effect is kept but no longer cast; it becomes
    /// castable again if the set changes back (`voteNotYetCast`).
    #[test]
    fn vote_proposer_round_robin_and_kept_proposals() {
        let mut tally = VoteTally::new(set(&[1, 2, 3, 4]));
        let mut vp = VoteProposer::default();
        vp.propose(addr(5), true);
        vp.propose(addr(6), true);
        vp.propose(addr(2), false);
        // Dropping a non-validator or adding a validator is not castable.
        vp.propose(addr(7), false);
        vp.propose(addr(3), true);
        let me = addr(1);
        let mut cast = BTreeSet::new();
        for _ in 0..3 {
            cast.insert(vp.get_vote(&me, &tally).unwrap().recipient);
        }
        assert_eq!(cast, set(&[2, 5, 6]));
        // Once cast (in the tally), not cast again.
        tally.add_vote(me, add(5));
        for _ in 0..4 {
            assert_ne!(vp.get_vote(&me, &tally).unwrap().recipient, addr(5));
        }
        // 5 is added by others: the proposal stays (getPendingVotes) but is inert.
        tally.add_vote(addr(2), add(5));
        tally.add_vote(addr(3), add(5));
        assert!(tally.validators().contains(&addr(5)));
        assert_eq!(vp.proposals().get(&addr(5)), Some(&true));
        vp.discard(&addr(6));
        vp.discard(&addr(2));
        assert_eq!(vp.get_vote(&me, &tally), None);
        // If 5 is dropped again, the kept add proposal is castable again.
        for v in [2, 3, 4] {
            tally.add_vote(addr(v), drop(5));
        }
        assert!(!tally.validators().contains(&addr(5)));
        assert_eq!(vp.get_vote(&me, &tally), Some(add(5)));
        // Changing one's mind: an earlier add vote makes a drop proposal castable.
        let mut t2 = VoteTally::new(set(&[1, 2, 3, 4]));
        t2.add_vote(me, add(8));
        let mut vp2 = VoteProposer::default();
        vp2.propose(addr(8), false);
        assert_eq!(vp2.get_vote(&me, &t2), Some(drop(8)));
    }

    /// Proposals live in the node's memory (`VoteProposer.proposals`): a node process
    /// that restarts has none, so a vote that was not cast before is never cast.
    #[test]
    fn proposals_are_lost_with_the_process() {
        let mut chain = Chain::new(params(&[1, 2, 3, 4], 30000), 0);
        let up = set(&[1, 2, 3, 4]);
        let mut proposers: BTreeMap<Address, VoteProposer> = BTreeMap::new();
        for v in [1, 2, 3] {
            proposers.entry(addr(v)).or_default().propose(addr(5), true);
        }
        // Validator 3 restarts before its turn: a new process, empty VoteProposer.
        proposers.insert(addr(3), VoteProposer::default());
        let mut now = 0;
        for _ in 0..12 {
            produce(&mut chain, &mut now, &up, &mut proposers);
        }
        assert!(!chain.tally.validators().contains(&addr(5)));
        assert_eq!(chain.tally.outstanding()[0].add, vec![addr(1), addr(2)]);
        // Re-issuing the vote to the restarted node completes the change.
        proposers.get_mut(&addr(3)).unwrap().propose(addr(5), true);
        for _ in 0..4 {
            produce(&mut chain, &mut now, &up, &mut proposers);
        }
        assert!(chain.tally.validators().contains(&addr(5)));
    }

    #[test]
    fn schedule_keeps_cadence_and_resumes_after_a_stall() {
        let mut chain = Chain::new(params(&[1], 30000), 0);
        let up = set(&[1]);
        assert_eq!(chain.step(999, &up, |_, _| None), Step::NotDue);
        assert_eq!(chain.step(1050, &up, |_, _| None), Step::Produced(1));
        // On time: the next one is due a period after the previous due time.
        assert_eq!(chain.next_due_ms, 2000);
        assert!(matches!(
            chain.step(2000, &set(&[]), |_, _| None),
            Step::Stalled { .. }
        ));
        // Late (after a stall): due a period after it was produced.
        assert_eq!(chain.step(7300, &up, |_, _| None), Step::Produced(2));
        assert_eq!(chain.next_due_ms, 8300);
        assert_eq!(chain.head_block().timestamp, 7);
    }
}
