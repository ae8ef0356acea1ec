//! The whole poll as one pure function: sign-ups and the message log in,
//! final state, per-message validity and tally out.

use crate::params::PollParams;
use crate::state::{Invalid, Message, PollState, SignUp};
use crate::tally::Tally;

/// The result of [`process_poll`]. Only `tally` is ever published; the
/// state and the validity of each message are for tests (in the MPC phase
/// they stay secret-shared).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub state: PollState,
    /// `validity[i]` is the verdict on `messages[i]`, by *log* position
    /// (not processing order).
    pub validity: Vec<Result<(), Invalid>>,
    pub tally: Tally,
}

impl Outcome {
    /// Log positions of the messages that counted.
    pub fn valid_positions(&self) -> Vec<usize> {
        (0..self.validity.len())
            .filter(|&i| self.validity[i].is_ok())
            .collect()
    }
}

/// Processes a poll as MACI v3 does (with the triad's extra checks, see the
/// crate documentation): the state starts from the sign-ups, the messages
/// are applied **from the last logged to the first** with
/// [`PollState::process_message`], then the ballots are tallied.
///
/// Pure and deterministic; never panics on any input.
pub fn process_poll(params: &PollParams, signups: &[SignUp], messages: &[Message]) -> Outcome {
    let mut state = PollState::new(params, signups);
    let mut validity = vec![Ok(()); messages.len()];
    for (position, message) in messages.iter().enumerate().rev() {
        validity[position] = state.process_message(params, message);
    }
    let tally = state.tally(params);
    Outcome {
        state,
        validity,
        tally,
    }
}
