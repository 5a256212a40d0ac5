//! How many validators a BFT chain needs: to seal a block, and to change the validator set.

/// The commit quorum: how many of `n` validators must take part for a block to be
/// sealed, `ceil(2n/3)`.
///
/// Besu: `consensus/common/.../bft/BftHelpers.java`, `calculateRequiredValidatorQuorum`
/// (`Util.fastDivCeiling(2 * validatorCount, 3)`). A chain whose up validators are
/// fewer stops producing blocks.
pub fn commit_quorum(n: usize) -> usize {
    (2 * n).div_ceil(3)
}

/// How many distinct current validators must vote for a subject before it is added or
/// removed: more than half, `floor(n/2) + 1`, with `n` the size of the set at the time
/// of the vote.
///
/// Besu: `consensus/common/.../validator/blockbased/VoteTally.java`, `validatorLimit()`,
/// used by `addVote`.
pub fn vote_threshold(n: usize) -> usize {
    n / 2 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// hyperledger/besu `consensus/common/src/test/java/org/hyperledger/besu/consensus/common/bft/BftHelpersTest.java`:
    /// `calculateRequiredValidatorQuorum{1,2,3,4,5,7,10,15,20}Validator` (the only sizes
    /// Besu pins).
    #[test]
    fn commit_quorum_matches_bft_helpers_test() {
        let table: [(usize, usize); 9] = [
            (1, 1),
            (2, 2),
            (3, 2),
            (4, 3),
            (5, 4),
            (7, 5),
            (10, 7),
            (15, 10),
            (20, 14),
        ];
        for (n, quorum) in table {
            assert_eq!(commit_quorum(n), quorum, "n={n}");
        }
    }

    /// besu-docs `docs/private-networks/concepts/poa.md` ("Four to five validators
    /// tolerates one unresponsive validator. Six to eight validators tolerates two"):
    /// validators that may stop while the rest still reach the commit quorum.
    #[test]
    fn stoppable_validators_match_besu_docs() {
        let table: [(usize, usize); 5] = [(4, 1), (5, 1), (6, 2), (7, 2), (8, 2)];
        for (n, tolerated) in table {
            assert_eq!(n - commit_quorum(n), tolerated, "n={n}");
        }
    }

    /// hyperledger/besu `consensus/common/src/test/java/org/hyperledger/besu/consensus/common/validator/blockbased/VoteTallyTest.java`:
    /// - n=1 → 1: `requiresASingleVoteWhenThereIsOnlyOneValidator`;
    /// - n=2 → 2: `requiresTwoVotesWhenThereAreTwoValidators`;
    /// - n=3 → 2: `removedValidatorsVotesAreDiscarded` ("Now adding only requires 2 votes
    ///   (>50% of the 3 remaining validators)");
    /// - n=4 → 3: `validatorsAreNotAddedBeforeRequiredVoteCountReached` (2 do not add) and
    ///   `validatorAddedToListWhenMoreThanHalfOfProposersVoteToAdd` (3 do);
    /// - n=5 → 3: `clearVotesAboutAValidatorWhenItIsDropped` (3 drops of 5 remove).
    #[test]
    fn vote_threshold_matches_vote_tally_test() {
        let table: [(usize, usize); 5] = [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)];
        for (n, votes) in table {
            assert_eq!(vote_threshold(n), votes, "n={n}");
        }
    }
}
