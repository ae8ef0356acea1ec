//! Poll parameters: the poll id that every command must carry, the number of
//! vote options V, the cost mode, and the two deadlines.

use triad_maci::command::FIELD_BITS;

/// The largest number of vote options a poll may have.
///
/// MACI bounds V by the capacity of its vote-option tree (`5^depth`; v3
/// also records the exact V). The triad's bound is its own: every voter's
/// ballot holds V weights, and in the MPC phase every message step costs
/// about 2V ring multiplications, so V stays small.
pub const MAX_VOTE_OPTIONS: u64 = 1 << 12;

/// The default [`PollParams::window`]: how many of the most recent
/// well-formed messages naming one state index can count.
pub const DEFAULT_WINDOW: u64 = 32;

/// How a vote weight is paid for in voice credits (MACI `EMode`).
///
/// MACI's third mode, `FULL` (the whole balance on one option), is not
/// supported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Quadratic voting (MACI `EMode.QV`): weight `w` costs `w²` credits.
    Quadratic,
    /// MACI `EMode.NON_QV`: weight `w` costs `w` credits.
    Linear,
}

impl Mode {
    /// The credits a weight costs. Exact for every `u64` weight: `w² ≤
    /// (2^64 − 1)² < 2^128`, so a weight whose square overflows `u64` is
    /// simply too expensive, never a wrap or a panic.
    pub fn cost(self, weight: u64) -> u128 {
        let w = u128::from(weight);
        match self {
            Mode::Quadratic => w * w,
            Mode::Linear => w,
        }
    }
}

/// Why poll parameters are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("a poll needs at least one vote option")]
    NoVoteOptions,
    #[error("{got} vote options; at most {MAX_VOTE_OPTIONS}")]
    TooManyVoteOptions { got: u64 },
    #[error("poll id {got} does not fit in a command's {FIELD_BITS}-bit field")]
    PollIdTooLarge { got: u64 },
    #[error("the sign-up deadline {signup} is after the voting deadline {voting}")]
    DeadlinesOutOfOrder { signup: u64, voting: u64 },
    #[error("the message window must be at least 1")]
    EmptyWindow,
}

/// The public parameters of one poll. Built only through
/// [`PollParams::new`], so every value is in range.
///
/// Deadlines are seconds (any fixed epoch; the log's timestamps use the
/// same) and exclusive: a sign-up counts if its timestamp is before
/// `signup_deadline`, a message if its timestamp is before
/// `voting_deadline`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollParams {
    poll_id: u64,
    vote_options: u64,
    mode: Mode,
    signup_deadline: u64,
    voting_deadline: u64,
    window: u64,
}

impl PollParams {
    /// Checks `1 ≤ vote_options ≤ MAX_VOTE_OPTIONS`, `poll_id < 2^50` (a
    /// larger id could never be signed: commands pack it into 50 bits) and
    /// `signup_deadline ≤ voting_deadline`.
    pub fn new(
        poll_id: u64,
        vote_options: u64,
        mode: Mode,
        signup_deadline: u64,
        voting_deadline: u64,
    ) -> Result<Self, ParamsError> {
        if vote_options == 0 {
            return Err(ParamsError::NoVoteOptions);
        }
        if vote_options > MAX_VOTE_OPTIONS {
            return Err(ParamsError::TooManyVoteOptions { got: vote_options });
        }
        if poll_id >> FIELD_BITS != 0 {
            return Err(ParamsError::PollIdTooLarge { got: poll_id });
        }
        if signup_deadline > voting_deadline {
            return Err(ParamsError::DeadlinesOutOfOrder {
                signup: signup_deadline,
                voting: voting_deadline,
            });
        }
        Ok(PollParams {
            poll_id,
            vote_options,
            mode,
            signup_deadline,
            voting_deadline,
            window: DEFAULT_WINDOW,
        })
    }

    /// The same poll with another message window K (at least 1; see
    /// [`PollParams::window`]).
    pub fn with_window(self, window: u64) -> Result<Self, ParamsError> {
        if window == 0 {
            return Err(ParamsError::EmptyWindow);
        }
        Ok(PollParams { window, ..self })
    }

    /// K: of the messages naming one state index that are well-formed
    /// (poll id right, logged before the voting deadline, signature valid
    /// under the key the client names), only the K most recently logged
    /// can count; older ones are [`crate::Invalid::Window`]. The MPC scan
    /// runs K steps, so its cost grows linearly with K. MACI has no such
    /// bound (docs/polls.md, "The window K").
    pub fn window(&self) -> u64 {
        self.window
    }

    /// The id every command of this poll must carry.
    pub fn poll_id(&self) -> u64 {
        self.poll_id
    }

    /// V: valid option indices are `0..V`.
    pub fn vote_options(&self) -> u64 {
        self.vote_options
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Sign-ups at or after this time cannot vote.
    pub fn signup_deadline(&self) -> u64 {
        self.signup_deadline
    }

    /// Messages at or after this time do not count.
    pub fn voting_deadline(&self) -> u64 {
        self.voting_deadline
    }

    /// V as a length (at most [`MAX_VOTE_OPTIONS`], so it fits).
    pub(crate) fn options_len(&self) -> usize {
        self.vote_options as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks() {
        assert!(PollParams::new(0, 1, Mode::Quadratic, 0, 0).is_ok());
        assert_eq!(
            PollParams::new(0, 0, Mode::Quadratic, 0, 0),
            Err(ParamsError::NoVoteOptions)
        );
        assert!(PollParams::new(0, MAX_VOTE_OPTIONS, Mode::Linear, 0, 0).is_ok());
        assert_eq!(
            PollParams::new(0, MAX_VOTE_OPTIONS + 1, Mode::Linear, 0, 0),
            Err(ParamsError::TooManyVoteOptions {
                got: MAX_VOTE_OPTIONS + 1
            })
        );
        assert!(PollParams::new((1 << 50) - 1, 3, Mode::Linear, 0, 0).is_ok());
        assert_eq!(
            PollParams::new(1 << 50, 3, Mode::Linear, 0, 0),
            Err(ParamsError::PollIdTooLarge { got: 1 << 50 })
        );
        assert_eq!(
            PollParams::new(0, 3, Mode::Linear, 2, 1),
            Err(ParamsError::DeadlinesOutOfOrder {
                signup: 2,
                voting: 1
            })
        );
    }

    #[test]
    fn window() {
        let p = PollParams::new(0, 1, Mode::Quadratic, 0, 0).unwrap();
        assert_eq!(p.window(), DEFAULT_WINDOW);
        assert_eq!(p.clone().with_window(0), Err(ParamsError::EmptyWindow));
        assert_eq!(p.clone().with_window(u64::MAX).unwrap().window(), u64::MAX);
    }

    #[test]
    fn costs() {
        assert_eq!(Mode::Quadratic.cost(0), 0);
        assert_eq!(Mode::Quadratic.cost(3), 9);
        assert_eq!(Mode::Linear.cost(3), 3);
        // 2^32 squared is 2^64: one more than u64::MAX, exact in u128.
        assert_eq!(Mode::Quadratic.cost(1 << 32), 1u128 << 64);
        assert_eq!(
            Mode::Quadratic.cost(u64::MAX),
            u128::from(u64::MAX) * u128::from(u64::MAX)
        );
    }
}
