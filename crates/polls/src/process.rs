//! The whole poll as one pure function: sign-ups and the message log in,
//! final state, per-message validity and tally out.

use std::collections::HashMap;

use triad_maci::verify_command;

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

/// Whether a message takes a place in its state index's window: its poll
/// id is this poll's, it was logged before the voting deadline, and its
/// signature verifies under the key it names. All three are known before
/// processing (the MPC learns the last two publicly and the first as a
/// secret bit), and none depends on the voter's state.
pub fn well_formed(params: &PollParams, message: &Message) -> bool {
    let c = &message.command;
    c.poll_id == params.poll_id()
        && message.timestamp < params.voting_deadline()
        && verify_command(&message.signer, c, &message.signature).is_ok()
}

/// Processes a poll as MACI v3 does (with the triad's extra checks, see the
/// crate documentation): the state starts from the sign-ups, the messages
/// are applied **from the last logged to the first** with
/// [`PollState::process_message`], then the ballots are tallied. A message
/// outside its state index's window ([`PollParams::window`]) is
/// [`Invalid::Window`] and changes nothing.
///
/// Pure and deterministic; never panics on any input.
pub fn process_poll(params: &PollParams, signups: &[SignUp], messages: &[Message]) -> Outcome {
    process_poll_from(params, PollState::new(params, signups), messages)
}

/// [`process_poll`] from a given initial state (leaves with `active`
/// flags after re-keying epochs, [`crate::rekey::Registry::initial_state`]).
pub fn process_poll_from(params: &PollParams, state: PollState, messages: &[Message]) -> Outcome {
    let mut state = state;
    let mut validity = vec![Ok(()); messages.len()];
    let mut seen: HashMap<u64, u64> = HashMap::new();
    for (position, message) in messages.iter().enumerate().rev() {
        if well_formed(params, message) {
            let rank = seen.entry(message.command.state_index).or_insert(0);
            *rank += 1;
            if *rank > params.window() {
                validity[position] = Err(Invalid::Window);
                continue;
            }
        }
        validity[position] = state.process_message(params, message);
    }
    let tally = state.tally(params);
    Outcome {
        state,
        validity,
        tally,
    }
}
