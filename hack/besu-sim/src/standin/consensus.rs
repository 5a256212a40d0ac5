//! A small QBFT-like agreement among the validators of one height, as a pure state
//! machine driven by an explicit clock (milliseconds) and the messages it is given.
//!
//! What it models (hyperledger/besu @ 3fd224e2, `consensus/qbft-core/.../statemachine`,
//! `consensus/common/.../bft`; besu-facts §5, §6):
//! - Block timer (`BlockTimer`, `QbftBlockHeightManager.handleBlockTimerExpiry`): round 0
//!   of height h starts `blockperiodseconds` after the parent's timestamp; its proposer
//!   then proposes at once, with timestamp `round(now / 1 s)` (at least parent +
//!   period).
//! - Proposer (`BftProposerSelector`, changeEachBlock): round-robin over the sorted
//!   validators, starting after the parent's proposer, plus the round number
//!   ([`crate::chain::proposer_order`]).
//! - Rounds (`RoundState`, `QbftRound`): validators answer the round's proposal with a
//!   PREPARE; with `ceil(2n/3)` prepares (`BftHelpers.calculateRequiredValidatorQuorum`)
//!   the round is prepared and each sends a COMMIT carrying its commit seal; with
//!   `ceil(2n/3)` commits the block is imported with those seals.
//! - Round timer (`RoundTimer`, `BftRoundExpiryTimeCalculator`): a round expires after
//!   `requesttimeoutseconds × 2^round`; the validator then moves to the next round and
//!   sends a ROUND-CHANGE carrying its latest prepared block
//!   (`QbftBlockHeightManager.roundExpired` / `doRoundChange`).
//! - Round changes (`handleRoundChangePayload`, early round change off, Besu's default):
//!   with `ceil(2n/3)` round changes for a round ahead of its own, a validator moves to
//!   that round; the proposer of that round then proposes, re-using the prepared block of
//!   the highest round among them (`startRoundWith`, `replaceRoundInBlock`) or a new
//!   block. A proposal for a later round from that round's proposer also moves a
//!   validator there (`handleProposalPayload` for a future round).
//! - Messages for a later height are kept until the node reaches it (up to
//!   `futuremessagesmaxdistance` = 10 heights, `futuremessageslimit` = 1000).
//!
//! Simplifications: justifications (prepared certificates with their prepare messages,
//! round-change certificates in proposals) are not carried or checked: the stand-in
//! assumes crash faults, not Byzantine validators. Message authenticity is checked by the
//! caller (each message is signed by its author, see `node.rs`); commit seals are
//! checked here.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::block::{Block, H256, HeaderVote, commit_seal, seal_signer};
use crate::besu::{Address, Consensus, NodeKey, Vote, VoteKind, commit_quorum};
use crate::chain::proposer_order;

/// `futuremessagesmaxdistance` and `futuremessageslimit` defaults (`JsonBftConfigOptions`).
const FUTURE_DISTANCE: u64 = 10;
const FUTURE_LIMIT: usize = 1000;

/// A prepared block and the round it was prepared in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepared {
    pub round: u32,
    pub block: Block,
}

/// A consensus message's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Payload {
    Proposal {
        height: u64,
        round: u32,
        block: Block,
    },
    Prepare {
        height: u64,
        round: u32,
        digest: H256,
    },
    Commit {
        height: u64,
        round: u32,
        digest: H256,
        seal: String,
    },
    RoundChange {
        height: u64,
        round: u32,
        prepared: Option<Prepared>,
    },
}

impl Payload {
    pub fn height(&self) -> u64 {
        match self {
            Payload::Proposal { height, .. }
            | Payload::Prepare { height, .. }
            | Payload::Commit { height, .. }
            | Payload::RoundChange { height, .. } => *height,
        }
    }

    pub fn round(&self) -> u32 {
        match self {
            Payload::Proposal { round, .. }
            | Payload::Prepare { round, .. }
            | Payload::Commit { round, .. }
            | Payload::RoundChange { round, .. } => *round,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Payload::Proposal { .. } => "proposal",
            Payload::Prepare { .. } => "prepare",
            Payload::Commit { .. } => "commit",
            Payload::RoundChange { .. } => "round-change",
        }
    }
}

/// What the node must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Sign and send to every peer (it was already applied here).
    Broadcast(Payload),
    /// Import this block (with its commit seals): the height is decided.
    Import(Block),
    /// Something worth a log line.
    Log(String),
}

#[derive(Clone, Debug, Default)]
struct RoundState {
    proposal: Option<Block>,
    prepares: BTreeSet<Address>,
    /// Commit seals by author, for the digest they named.
    commits: BTreeMap<Address, (H256, String)>,
    sent_prepare: bool,
    sent_commit: bool,
    proposed: bool,
    imported: bool,
}

/// One validator's view of the agreement on the next block.
pub struct Bft {
    key: NodeKey,
    me: Address,
    consensus: Consensus,
    period_secs: u64,
    base_timeout_ms: u64,
    height: u64,
    parent: Block,
    parent_hash: H256,
    validators: Vec<Address>,
    block_timer_ms: u64,
    round: Option<u32>,
    round_expiry_ms: u64,
    rounds: BTreeMap<u32, RoundState>,
    round_changes: BTreeMap<u32, BTreeMap<Address, Option<Prepared>>>,
    latest_prepared: Option<Prepared>,
    future: Vec<(Address, Payload)>,
}

impl Bft {
    pub fn new(
        key: NodeKey,
        consensus: Consensus,
        period_secs: u64,
        request_timeout_secs: u64,
        genesis: &Block,
        genesis_hash: H256,
    ) -> Bft {
        let me = key.address();
        let mut bft = Bft {
            key,
            me,
            consensus,
            period_secs,
            base_timeout_ms: request_timeout_secs.max(1) * 1000,
            height: 0,
            parent: genesis.clone(),
            parent_hash: genesis_hash,
            validators: Vec::new(),
            block_timer_ms: 0,
            round: None,
            round_expiry_ms: 0,
            rounds: BTreeMap::new(),
            round_changes: BTreeMap::new(),
            latest_prepared: None,
            future: Vec::new(),
        };
        let mut validators = genesis.validators.clone();
        validators.sort();
        bft.new_height(genesis.clone(), genesis_hash, validators, 0, &mut |_| None);
        bft
    }

    pub fn height(&self) -> u64 {
        self.height
    }

    pub fn round(&self) -> Option<u32> {
        self.round
    }

    pub fn is_validator(&self) -> bool {
        self.validators.contains(&self.me)
    }

    pub fn validators(&self) -> &[Address] {
        &self.validators
    }

    fn quorum(&self) -> usize {
        commit_quorum(self.validators.len())
    }

    /// The proposer of `round` at this height.
    pub fn proposer_for(&self, round: u32) -> Option<Address> {
        let set: BTreeSet<Address> = self.validators.iter().copied().collect();
        let order = proposer_order(&self.parent.proposer, &set);
        if order.is_empty() {
            return None;
        }
        Some(order[round as usize % order.len()])
    }

    /// The chain's head moved to `parent` (`hash`): agree on the block after it, sealed
    /// by `validators` (sorted). Replays kept messages of the new height.
    pub fn new_height(
        &mut self,
        parent: Block,
        hash: H256,
        validators: Vec<Address>,
        now_ms: u64,
        vote_of: &mut dyn FnMut(&Address) -> Option<Vote>,
    ) -> Vec<Action> {
        self.height = parent.number + 1;
        self.block_timer_ms = (parent.timestamp + self.period_secs) * 1000;
        self.parent = parent;
        self.parent_hash = hash;
        self.validators = validators;
        self.round = None;
        self.round_expiry_ms = 0;
        self.rounds.clear();
        self.round_changes.clear();
        self.latest_prepared = None;
        let kept = std::mem::take(&mut self.future);
        let mut actions = Vec::new();
        for (author, payload) in kept {
            if payload.height() >= self.height {
                actions.extend(self.handle(author, payload, now_ms, vote_of));
            }
        }
        actions
    }

    /// Timers: the block timer starts round 0; an expired round moves to the next.
    pub fn tick(
        &mut self,
        now_ms: u64,
        vote_of: &mut dyn FnMut(&Address) -> Option<Vote>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        if !self.is_validator() {
            return actions;
        }
        match self.round {
            None if now_ms >= self.block_timer_ms => {
                self.start_round(0, now_ms, &mut actions);
                if self.proposer_for(0) == Some(self.me) {
                    self.propose(0, None, now_ms, vote_of, &mut actions);
                }
            }
            Some(r) if now_ms >= self.round_expiry_ms => {
                actions.push(Action::Log(format!(
                    "Round {r} of block #{} expired, moving to round {}",
                    self.height,
                    r + 1
                )));
                self.change_round(r + 1, now_ms, vote_of, &mut actions);
            }
            _ => {}
        }
        actions
    }

    fn start_round(&mut self, round: u32, now_ms: u64, actions: &mut Vec<Action>) {
        self.round = Some(round);
        let exp = round.min(30);
        self.round_expiry_ms = now_ms + self.base_timeout_ms.saturating_mul(1u64 << exp);
        self.round_changes.retain(|r, _| *r >= round);
        // A proposal that arrived early for this round is answered now.
        self.maybe_prepare(round, actions);
        self.maybe_commit(round, actions);
    }

    fn change_round(
        &mut self,
        round: u32,
        now_ms: u64,
        vote_of: &mut dyn FnMut(&Address) -> Option<Vote>,
        actions: &mut Vec<Action>,
    ) {
        if self.round.is_some_and(|r| r >= round) {
            return;
        }
        self.start_round(round, now_ms, actions);
        let rc = Payload::RoundChange {
            height: self.height,
            round,
            prepared: self.latest_prepared.clone(),
        };
        actions.push(Action::Broadcast(rc.clone()));
        let me = self.me;
        actions.extend(self.handle(me, rc, now_ms, vote_of));
    }

    fn propose(
        &mut self,
        round: u32,
        prepared: Option<Prepared>,
        now_ms: u64,
        vote_of: &mut dyn FnMut(&Address) -> Option<Vote>,
        actions: &mut Vec<Action>,
    ) {
        let state = self.rounds.entry(round).or_default();
        if state.proposed {
            return;
        }
        state.proposed = true;
        let block = match prepared {
            Some(p) => p.block.with_round(round),
            None => {
                let vote = vote_of(&self.me).map(|v| HeaderVote {
                    subject: v.recipient,
                    add: v.kind == VoteKind::Add,
                });
                Block {
                    number: self.height,
                    parent_hash: self.parent_hash,
                    // `Math.round(clock.millis() / 1000D)`, at least parent + period.
                    timestamp: (now_ms.saturating_add(500) / 1000)
                        .max(self.parent.timestamp + self.period_secs),
                    proposer: self.me,
                    round,
                    validators: self.validators.clone(),
                    vote,
                    seals: Vec::new(),
                    genesis_hash: None,
                }
            }
        };
        actions.push(Action::Log(format!(
            "Proposing block #{} in round {round}{}",
            self.height,
            block
                .vote
                .map(|v| format!(
                    " with a vote to {} {}",
                    if v.add { "add" } else { "drop" },
                    v.subject
                ))
                .unwrap_or_default()
        )));
        let p = Payload::Proposal {
            height: self.height,
            round,
            block,
        };
        actions.push(Action::Broadcast(p.clone()));
        let me = self.me;
        actions.extend(self.handle(me, p, now_ms, vote_of));
    }

    /// Whether a proposed block fits this height (`QbftBlockHeightManager` validators:
    /// height, parent, validators in the header, proposer a validator, round, timestamp).
    fn block_fits(&self, round: u32, block: &Block) -> Result<(), String> {
        if block.number != self.height || block.parent_hash != self.parent_hash {
            return Err("does not extend the head".into());
        }
        if block.round != round {
            return Err("round differs from the message's".into());
        }
        if block.validators != self.validators || !self.validators.contains(&block.proposer) {
            return Err("validators or proposer do not match".into());
        }
        if block.timestamp < self.parent.timestamp + self.period_secs {
            return Err("timestamp before parent + block period".into());
        }
        if !block.seals.is_empty() || block.genesis_hash.is_some() {
            return Err("a proposal carries no seals".into());
        }
        Ok(())
    }

    /// A message from `author` (already authenticated).
    pub fn handle(
        &mut self,
        author: Address,
        payload: Payload,
        now_ms: u64,
        vote_of: &mut dyn FnMut(&Address) -> Option<Vote>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let height = payload.height();
        if height < self.height {
            return actions;
        }
        if height > self.height {
            if height <= self.height + FUTURE_DISTANCE && self.future.len() < FUTURE_LIMIT {
                self.future.push((author, payload));
            }
            return actions;
        }
        if !self.validators.contains(&author) {
            return actions;
        }
        match payload {
            Payload::Proposal { round, block, .. } => {
                if self.proposer_for(round) != Some(author) {
                    return actions;
                }
                if self.round.is_some_and(|r| round < r) {
                    return actions;
                }
                if let Err(why) = self.block_fits(round, &block) {
                    actions.push(Action::Log(format!(
                        "Ignoring proposal for block #{} round {round} from {author}: {why}",
                        self.height
                    )));
                    return actions;
                }
                let state = self.rounds.entry(round).or_default();
                if state.proposal.is_none() {
                    state.proposal = Some(block);
                }
                match self.round {
                    Some(r) if r == round => {
                        self.maybe_prepare(round, &mut actions);
                        self.maybe_commit(round, &mut actions);
                    }
                    // A proposal can beat the block timer (round 0), or come from a
                    // round the others moved to: follow it.
                    _ => self.start_round(round, now_ms, &mut actions),
                }
                self.maybe_import(round, &mut actions);
            }
            Payload::Prepare { round, digest, .. } => {
                let state = self.rounds.entry(round).or_default();
                if state
                    .proposal
                    .as_ref()
                    .is_some_and(|b| b.hash(self.consensus) != digest)
                {
                    return actions;
                }
                state.prepares.insert(author);
                self.maybe_commit(round, &mut actions);
            }
            Payload::Commit {
                round,
                digest,
                seal,
                ..
            } => {
                if seal_signer(&digest, &seal) != Some(author) {
                    return actions;
                }
                self.rounds
                    .entry(round)
                    .or_default()
                    .commits
                    .insert(author, (digest, seal));
                self.maybe_import(round, &mut actions);
            }
            Payload::RoundChange {
                round, prepared, ..
            } => {
                if self.round.is_some_and(|r| round < r) {
                    return actions;
                }
                self.round_changes
                    .entry(round)
                    .or_default()
                    .insert(author, prepared);
                let count = self.round_changes.get(&round).map_or(0, BTreeMap::len);
                if count < self.quorum() {
                    return actions;
                }
                if self.round.is_none_or(|r| round > r) {
                    actions.push(Action::Log(format!(
                        "Received sufficient RoundChange messages to change round to targetRound={round} (block #{})",
                        self.height
                    )));
                    self.start_round(round, now_ms, &mut actions);
                }
                if round > 0 && self.proposer_for(round) == Some(self.me) {
                    let best = self
                        .round_changes
                        .get(&round)
                        .into_iter()
                        .flat_map(|m| m.values())
                        .flatten()
                        .max_by_key(|p| p.round)
                        .cloned();
                    self.propose(round, best, now_ms, vote_of, &mut actions);
                }
            }
        }
        actions
    }

    fn maybe_prepare(&mut self, round: u32, actions: &mut Vec<Action>) {
        if self.round != Some(round) || !self.is_validator() {
            return;
        }
        let height = self.height;
        let consensus = self.consensus;
        let me = self.me;
        let state = self.rounds.entry(round).or_default();
        let Some(block) = &state.proposal else {
            return;
        };
        if state.sent_prepare {
            return;
        }
        state.sent_prepare = true;
        let digest = block.hash(consensus);
        state.prepares.insert(me);
        actions.push(Action::Broadcast(Payload::Prepare {
            height,
            round,
            digest,
        }));
    }

    fn maybe_commit(&mut self, round: u32, actions: &mut Vec<Action>) {
        if self.round != Some(round) || !self.is_validator() {
            return;
        }
        let quorum = self.quorum();
        let height = self.height;
        let consensus = self.consensus;
        let me = self.me;
        let state = self.rounds.entry(round).or_default();
        let Some(block) = state.proposal.clone() else {
            return;
        };
        if state.sent_commit || state.prepares.len() < quorum {
            return;
        }
        state.sent_commit = true;
        let digest = block.hash(consensus);
        let seal = commit_seal(&self.key, &digest);
        state.commits.insert(me, (digest, seal.clone()));
        self.latest_prepared = Some(Prepared { round, block });
        actions.push(Action::Broadcast(Payload::Commit {
            height,
            round,
            digest,
            seal,
        }));
        self.maybe_import(round, actions);
    }

    fn maybe_import(&mut self, round: u32, actions: &mut Vec<Action>) {
        let quorum = self.quorum();
        let consensus = self.consensus;
        let state = self.rounds.entry(round).or_default();
        if state.imported {
            return;
        }
        let Some(block) = &state.proposal else {
            return;
        };
        let digest = block.hash(consensus);
        let seals: Vec<String> = state
            .commits
            .values()
            .filter(|(d, _)| *d == digest)
            .map(|(_, s)| s.clone())
            .collect();
        if seals.len() < quorum {
            return;
        }
        state.imported = true;
        let mut sealed = block.clone();
        sealed.seals = seals;
        actions.push(Action::Import(sealed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standin::chain::Chain;
    use crate::standin::chain::test_support::genesis_for;

    use crate::genesis::test_support::keys;

    /// A network of `n` validators on one clock; `up` says who runs and receives.
    struct Net {
        chains: Vec<Chain>,
        nodes: Vec<Bft>,
        up: Vec<bool>,
        now: u64,
    }

    impl Net {
        fn new(n: usize) -> Net {
            Net::with(n, Consensus::Qbft)
        }

        fn with(n: usize, consensus: Consensus) -> Net {
            let k = keys(n);
            let g = genesis_for(&k, consensus, 1);
            let chains: Vec<Chain> = (0..n).map(|_| Chain::in_memory(g.clone())).collect();
            let nodes = k
                .iter()
                .map(|key| Bft::new(key.clone(), consensus, 1, 1, &g.genesis_block(), g.hash))
                .collect();
            Net {
                chains,
                nodes,
                up: vec![true; n],
                now: g.timestamp * 1000,
            }
        }

        fn me(&self, i: usize) -> Address {
            self.nodes[i].me
        }

        /// Delivers actions until quiet.
        fn run(&mut self, mut queue: Vec<(usize, Action)>) {
            while let Some((from, action)) = queue.pop() {
                match action {
                    Action::Broadcast(p) => {
                        let author = self.me(from);
                        for j in 0..self.nodes.len() {
                            if j != from && self.up[j] {
                                let acts =
                                    self.nodes[j]
                                        .handle(author, p.clone(), self.now, &mut |_| None);
                                queue.extend(acts.into_iter().map(|a| (j, a)));
                            }
                        }
                    }
                    Action::Import(b) => {
                        let chain = &mut self.chains[from];
                        if b.number == chain.head_number() + 1 {
                            chain.import(b).expect("a decided block imports");
                            let head = chain.head().clone();
                            let hash = chain.head_hash();
                            let vs = chain.next_validators();
                            let acts =
                                self.nodes[from]
                                    .new_height(head, hash, vs, self.now, &mut |_| None);
                            queue.extend(acts.into_iter().map(|a| (from, a)));
                        }
                    }
                    Action::Log(_) => {}
                }
            }
        }

        /// Advances the clock by `ms` in 100 ms steps, ticking every running node.
        fn advance(&mut self, ms: u64) {
            let end = self.now + ms;
            while self.now < end {
                self.now += 100;
                let mut queue = Vec::new();
                for i in 0..self.nodes.len() {
                    if self.up[i] {
                        let acts = self.nodes[i].tick(self.now, &mut |_| None);
                        queue.extend(acts.into_iter().map(|a| (i, a)));
                    }
                }
                self.run(queue);
            }
        }

        fn heights(&self) -> Vec<u64> {
            self.chains.iter().map(Chain::head_number).collect()
        }
    }

    #[test]
    fn four_validators_produce_a_block_per_period() {
        let mut net = Net::new(4);
        net.advance(5_050);
        let h = net.heights();
        assert!(h.iter().all(|x| *x == h[0]), "{h:?}");
        assert!((4..=5).contains(&h[0]), "{h:?}");
        // Every block sealed by a quorum, proposers rotating.
        let proposers: BTreeSet<Address> = (1..=h[0])
            .map(|n| net.chains[0].block(n).unwrap().proposer)
            .collect();
        assert!(proposers.len() >= 3);
    }

    /// `ceil(2n/3)`: 2 of 4 up stall the chain; a third resumes it, after round changes
    /// (the dead proposers' rounds time out).
    #[test]
    fn two_of_four_stall_and_three_resume() {
        let mut net = Net::new(4);
        net.advance(2_050);
        let before = net.heights()[0];
        net.up[2] = false;
        net.up[3] = false;
        net.advance(10_000);
        assert_eq!(net.heights()[0], before);
        assert!(net.nodes[0].round().unwrap() >= 2);
        // Node 2 comes back with the chain it had and catches the others' round.
        net.up[2] = true;
        let head = net.chains[2].head().clone();
        let hash = net.chains[2].head_hash();
        let vs = net.chains[2].next_validators();
        net.nodes[2].new_height(head, hash, vs, net.now, &mut |_| None);
        net.advance(40_000);
        let after = net.heights();
        assert!(after[0] > before, "{after:?}");
        assert_eq!(after[0], after[1]);
        assert!(after[2] >= after[0] - 1);
    }

    /// IBFT 2.0 runs the same agreement; its blocks carry IBFT extraData.
    #[test]
    fn ibft2_validators_agree_too() {
        let mut net = Net::with(4, Consensus::Ibft2);
        net.advance(3_050);
        let h = net.heights();
        assert!(h.iter().all(|x| *x == h[0] && *x >= 2), "{h:?}");
        let b = net.chains[0].head().clone();
        let d =
            crate::besu::extradata::decode(Consensus::Ibft2, &b.extra_data(Consensus::Ibft2, true))
                .unwrap();
        assert!(d.seals >= 3);
    }

    #[test]
    fn a_single_validator_seals_alone() {
        let mut net = Net::new(1);
        net.advance(3_050);
        assert_eq!(net.heights()[0], 3);
    }

    #[test]
    fn proposals_from_the_wrong_proposer_are_ignored() {
        let mut net = Net::new(4);
        net.now += 1000;
        let wrong = (0..4)
            .find(|i| Some(net.me(*i)) != net.nodes[0].proposer_for(0))
            .unwrap();
        let block = Block {
            number: 1,
            parent_hash: net.chains[0].head_hash(),
            timestamp: net.now / 1000,
            proposer: net.me(wrong),
            round: 0,
            validators: net.nodes[0].validators().to_vec(),
            vote: None,
            seals: vec![],
            genesis_hash: None,
        };
        let author = net.me(wrong);
        let now = net.now;
        let acts = net.nodes[1].handle(
            author,
            Payload::Proposal {
                height: 1,
                round: 0,
                block,
            },
            now,
            &mut |_| None,
        );
        assert!(acts.is_empty(), "{acts:?}");
    }
}
