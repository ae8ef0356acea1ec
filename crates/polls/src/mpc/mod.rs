//! Poll processing over secret shares: the triad is MACI's coordinator, and
//! no single party sees a vote, a key, or which messages counted.
//!
//! The pipeline (docs/polls.md, "Processing in MPC"; the design of
//! `shared/research/maci.md` §7.2):
//!
//! * [`encode`]: what a client shares per message (bits and field elements);
//! * [`signature`] (phase 1): every signature checked under the key the
//!   client names, one opened verdict per message;
//! * [`process`] (phases 2–4): the messages grouped by state index with a
//!   shuffle-then-sort, the reverse-order MACI state machine as a K-step
//!   scan ([`step::apply_step`] each step), the tally opened; in a
//!   malicious session `checked` does the same over binary shares and
//!   `F_r`, every gate and product checked;
//! * [`edwards`]: Baby Jubjub arithmetic over shares, used by phase 1.

pub mod bitvec;
mod checked;
pub mod edwards;
pub mod encode;
pub mod process;
pub mod rekey;
pub mod signature;
pub mod step;

pub use encode::{encode, share_messages, PlainMessage, SharedMessages};
pub use process::{process_shared, ProcessStats};
pub use signature::verify_signatures;
pub use step::{apply_plain, apply_step, OneHot, PlainState, StepInput, StepOutput};
