//! The tally (MACI v3 `Poll.tallyVotes`, circuit `VoteTally`): per option
//! the sum of weights, the credits spent per option, and the total.

use crate::params::PollParams;
use crate::state::PollState;

/// What a poll opens: nothing else about the ballots leaves the triad.
///
/// Sums are `u128`: each voter adds at most its budget (< 2^64) to the
/// spent totals and at most 2^64 to a vote count, and there are fewer than
/// 2^64 voters, so no sum can overflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    /// `votes[o] = Σ_voters ballot.votes[o]` (in QV the weights, not their
    /// squares, as in MACI).
    pub votes: Vec<u128>,
    /// `Σ_o spent_per_option[o]`: all credits spent.
    pub spent: u128,
    /// `spent_per_option[o] = Σ_voters cost(ballot.votes[o])`. MACI computes
    /// and commits to it only in QV mode; the triad reports it in both (in
    /// linear mode it equals `votes`).
    pub spent_per_option: Vec<u128>,
}

impl PollState {
    /// Tallies every ballot (the blank leaf's is all zeros).
    pub fn tally(&self, params: &PollParams) -> Tally {
        let v = params.options_len();
        let mode = params.mode();
        let mut votes = vec![0u128; v];
        let mut spent_per_option = vec![0u128; v];
        for ballot in self.ballots() {
            for (o, &w) in ballot.votes.iter().enumerate() {
                votes[o] += u128::from(w);
                spent_per_option[o] += mode.cost(w);
            }
        }
        let spent = spent_per_option.iter().sum();
        Tally {
            votes,
            spent,
            spent_per_option,
        }
    }
}
