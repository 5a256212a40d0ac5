//! BFT quorum arithmetic, as Besu computes it.
//!
//! Sources: hyperledger/besu `consensus/common/.../bft/BftHelpers.java`
//! (`calculateRequiredValidatorQuorum`, `calculateRequiredFutureRCQuorum`) and
//! `consensus/common/.../VoteTally.java` (`validatorLimit`).

/// Commit quorum: how many of `n` validators must seal a block,
/// `ceil(2n/3)` (`BftHelpers.calculateRequiredValidatorQuorum`).
pub fn commit_quorum(n: usize) -> usize {
    (2 * n).div_ceil(3)
}

/// How many of `n` validators can stop while the rest still reach the commit
/// quorum and keep producing blocks: `n - ceil(2n/3)`. This is the limit on
/// validators the operator may take down at once. (It is not the Byzantine
/// bound `f = floor((n-1)/3)`: for n = 6 it is 2 while f is 1.)
pub fn fault_tolerance(n: usize) -> usize {
    n - commit_quorum(n)
}

/// How many distinct validators must vote to add or remove a validator,
/// `floor(n/2) + 1` (`VoteTally.validatorLimit`).
pub fn vote_threshold(n: usize) -> usize {
    n / 2 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// hyperledger/besu `consensus/common/src/test/java/org/hyperledger/besu/consensus/common/bft/BftHelpersTest.java`
    /// `calculateRequiredValidatorQuorum{1,2,3,4,5,7,10,15,20}Validator`.
    #[test]
    fn commit_quorum_matches_bft_helpers_test() {
        for (n, q) in [
            (1, 1),
            (2, 2),
            (3, 2),
            (4, 3),
            (5, 4),
            (7, 5),
            (10, 7),
            (15, 10),
            (20, 14),
        ] {
            assert_eq!(commit_quorum(n), q, "n={n}");
        }
        assert_eq!(commit_quorum(0), 0);
    }

    /// besu-docs `private-networks/concepts/poa.md`: "4–5 validators tolerate 1, 6–8
    /// tolerate 2"; by the same formula 3 tolerate 1 and 1–2 tolerate none.
    #[test]
    fn fault_tolerance_matches_besu_docs() {
        for (n, f) in [
            (1, 0),
            (2, 0),
            (3, 1),
            (4, 1),
            (5, 1),
            (6, 2),
            (7, 2),
            (8, 2),
            (9, 3),
        ] {
            assert_eq!(fault_tolerance(n), f, "n={n}");
        }
        // Taking down fault_tolerance(n) still leaves a commit quorum; one more does not.
        for n in 1..=100 {
            assert!(n - fault_tolerance(n) >= commit_quorum(n));
            assert!(n - fault_tolerance(n) - 1 < commit_quorum(n));
        }
    }

    /// hyperledger/besu `VoteTallyTest`: with 4 validators, 2 votes do not add, 3 do.
    #[test]
    fn vote_threshold_matches_vote_tally() {
        assert_eq!(vote_threshold(4), 3);
        for (n, t) in [(1, 1), (2, 2), (3, 2), (5, 3), (6, 4), (7, 4)] {
            assert_eq!(vote_threshold(n), t, "n={n}");
        }
    }
}
