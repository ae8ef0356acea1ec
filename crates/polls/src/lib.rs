//! MACI v3 poll semantics and the plaintext oracle of the triad's poll
//! processing (`docs/polls.md` has the full description).
//!
//! A poll has V options, a voice-credit budget per voter, quadratic
//! (cost = weight²) or linear (cost = weight) pricing, a sign-up deadline and
//! a voting deadline ([`PollParams`]). Voters sign up with a MACI key
//! ([`SignUp`]) and log signed commands ([`Message`]: `triad_maci::Command`
//! and its `Signature`). [`process_poll`] is a pure function from those to
//! the final state, the validity of each message, and the [`Tally`].
//!
//! # Processing (MACI v3 `packages/core/ts/Poll.ts`, `processMessage`)
//!
//! Messages are applied in **reverse log order**. A message is valid iff
//! all of these hold (see [`Invalid`]):
//!
//! 1. every command field fits in 50 bits (otherwise it cannot be signed);
//! 2. `1 ≤ stateIndex < number of leaves`; leaf 0 is MACI's blank leaf and
//!    sign-up i (from 0) is leaf i + 1, so the valid indices are
//!    `1..=signups.len()`;
//! 3. `pollId` equals the poll's id (**triad only**);
//! 4. the message was logged before the voting deadline and its leaf signed
//!    up before the sign-up deadline (**triad**: MACI v3 leaves both to its
//!    contract);
//! 5. the signature verifies under the leaf's **current** key;
//! 6. `nonce == ballot.nonce + 1`;
//! 7. `voteOptionIndex < V`;
//! 8. `left = balance + cost(ballot.votes[option]) − cost(newVoteWeight) ≥ 0`.
//!
//! A valid message sets `balance ← left`, `key ← newPubKey`,
//! `ballot.nonce ← nonce`, `ballot.votes[option] ← newVoteWeight` (replace,
//! not add). An invalid message changes nothing.
//!
//! # Nonces, as MACI actually uses them
//!
//! The ballot nonce starts at 0 and each valid message sets it to its own
//! nonce, i.e. adds 1. Since the log is processed from its end, a leaf's
//! ballot nonce, when a message is reached, counts the valid messages of
//! that leaf logged **after** it. Consequences (all tested in
//! `tests/scenarios.rs`):
//!
//! * The **last** message a voter logs must carry nonce 1 to count, the one
//!   before it nonce 2, and so on. A voter who wants k messages to count
//!   together numbers them 1..k and logs them in reverse (MACI clients such
//!   as clrfund's build a batch with nonces 1..k and publish it reversed).
//! * Logging nonces 1, 2, 3 in that order counts only the first: 3 and 2
//!   are reached while the ballot nonce is still 0.
//! * A key change sent last carries nonce 1 and is processed first; every
//!   earlier message signed with the old key then fails the signature check
//!   — this is MACI's defence against bribery: a briber who watched the
//!   voter sign cannot know whether a later key change voided the vote.
//! * Without a key change, a newer batch of j messages does not retire an
//!   older batch: the older messages with nonces j+1, j+2, … are valid in
//!   turn, and, processed later, their weights replace the newer ones for
//!   the same option. Only a key change retires everything older.
//!
//! # Deviations from MACI v3
//!
//! * The poll id is checked (MACI v3 passes it to the circuit but checks it
//!   nowhere; only the per-poll coordinator key stops cross-poll replay).
//! * Deadlines are processing rules (see 4 above).
//! * Fields of 2^50 or more are refused (MACI's TypeScript accepts 2^50).
//! * Credits and weights are integers, not field elements: budgets are
//!   `u64`, weights `< 2^50`, costs exact in `u128`; a weight whose square
//!   overflows `u64` is simply unaffordable.
//! * The tally reports spent credits per option in linear mode too.
//! * At most [`MAX_VOTE_OPTIONS`] options; MACI's `FULL` mode is not
//!   supported.
//!
//! * Only the K most recent *well-formed* messages naming a state index can
//!   count ([`PollParams::window`], default [`DEFAULT_WINDOW`]); the oracle
//!   and the MPC both enforce it (`docs/polls.md`, "The window K").
//!
//! # Anonymous deactivation and re-keying ([`rekey`])
//!
//! Before the final processing, epochs of deactivations and re-keys turn
//! the sign-ups into the leaves the votes are processed against: a
//! deactivated leaf stops counting, and a re-key appends a fresh leaf that
//! counts (with the deactivated leaf's budget) only if its secret matched a
//! valid deactivation ([`rekey::Registry`]).
#![forbid(unsafe_code)]

pub mod mpc;
pub mod params;
pub mod process;
pub mod rekey;
pub mod state;
pub mod tally;

pub use params::{Mode, ParamsError, PollParams, DEFAULT_WINDOW, MAX_VOTE_OPTIONS};
pub use process::{process_poll, process_poll_from, well_formed, Outcome};
pub use state::{Ballot, Invalid, Message, PollState, SignUp, StateLeaf};
pub use tally::Tally;
