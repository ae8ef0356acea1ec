//! Fixtures shared by the integration tests: fixed keys, a poll with
//! deadlines at 100 (sign-up) and 200 (voting), commands and messages.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use triad_maci::{Command, Fr, PrivKey, PubKey};
use triad_polls::{Message, Mode, PollParams, SignUp};

pub const POLL: u64 = 7;
pub const SIGNUP_DEADLINE: u64 = 100;
pub const VOTING_DEADLINE: u64 = 200;
/// A sign-up time before the sign-up deadline.
pub const SIGNED_UP: u64 = 10;
/// A message time before the voting deadline.
pub const SENT: u64 = 150;

/// A fixed private key per label.
pub fn key(label: u8) -> PrivKey {
    PrivKey::from_bytes([label; 32])
}

/// `key(label)`'s public key, computed once per label (tests look keys up
/// by comparing public keys).
pub fn pk(label: u8) -> PubKey {
    static CACHE: OnceLock<Mutex<HashMap<u8, PubKey>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    *cache
        .lock()
        .unwrap()
        .entry(label)
        .or_insert_with(|| key(label).public_key())
}

pub fn params(options: u64, mode: Mode) -> PollParams {
    PollParams::new(POLL, options, mode, SIGNUP_DEADLINE, VOTING_DEADLINE).unwrap()
}

pub fn qv(options: u64) -> PollParams {
    params(options, Mode::Quadratic)
}

pub fn signup(label: u8, credits: u64) -> SignUp {
    SignUp {
        pub_key: pk(label),
        voice_credits: credits,
        timestamp: SIGNED_UP,
    }
}

/// A command of this poll; the salt is fixed (it only has to be signed).
pub fn command(state_index: u64, option: u64, weight: u64, nonce: u64, new_key: u8) -> Command {
    Command {
        state_index,
        vote_option_index: option,
        new_vote_weight: weight,
        nonce,
        poll_id: POLL,
        new_pub_key: pk(new_key),
        salt: Fr::from(u64::from(new_key) + 1000 * nonce),
    }
}

/// `command` signed by `signer`, sent before the deadline.
pub fn signed(signer: u8, command: Command) -> Message {
    Message::sign_with(command, &key(signer), SENT).unwrap()
}

/// A vote by leaf `index`, signed with `signer`, keeping or changing to
/// `new_key`.
pub fn vote(index: u64, signer: u8, option: u64, weight: u64, nonce: u64, new_key: u8) -> Message {
    signed(signer, command(index, option, weight, nonce, new_key))
}

/// A deactivation of leaf `index` signed with `signer`, carrying
/// `Poseidon(secret, 1)` in its salt.
pub fn deactivation(index: u64, signer: u8, secret: u64) -> Message {
    let mut c = command(index, 0, 0, 1, signer);
    c.salt = triad_polls::rekey::deactivation_commitment(&Fr::from(secret));
    signed(signer, c)
}

/// A re-key with `secret` to `key(new_key)`, logged before the deadline.
pub fn rekey(secret: u64, new_key: u8) -> triad_polls::rekey::Rekey {
    triad_polls::rekey::Rekey {
        secret: Fr::from(secret),
        new_key: pk(new_key),
        timestamp: SENT,
    }
}

/// One entry of a party's view: direction, peer, message length.
pub type Event = (bool, usize, usize);

/// A transport that records the length of everything sent and received.
pub struct Recording {
    pub inner: triad_mpc::network::MemNetwork,
    pub log: std::sync::Arc<Mutex<Vec<Event>>>,
}

impl triad_mpc::Network for Recording {
    fn id(&self) -> triad_mpc::PartyId {
        self.inner.id()
    }
    fn send(&mut self, to: triad_mpc::PartyId, msg: Vec<u8>) -> Result<(), triad_mpc::NetError> {
        self.log.lock().unwrap().push((true, to.index(), msg.len()));
        self.inner.send(to, msg)
    }
    fn recv(&mut self, from: triad_mpc::PartyId) -> Result<Vec<u8>, triad_mpc::NetError> {
        let m = self.inner.recv(from)?;
        self.log
            .lock()
            .unwrap()
            .push((false, from.index(), m.len()));
        Ok(m)
    }
    fn stats(&self) -> triad_mpc::NetStats {
        self.inner.stats()
    }
}

/// Runs `f` at three parties over recording transports with fixed party
/// randomness; returns each party's view (message lengths, the seed
/// exchange of `Party::setup` left out) and its result.
pub fn recorded<T: Send>(
    f: impl Fn(&mut triad_mpc::Party) -> T + Sync,
) -> ([Vec<Event>; 3], Vec<T>) {
    use triad_mpc::prg::Prg;
    let logs: [std::sync::Arc<Mutex<Vec<Event>>>; 3] = Default::default();
    let nets = triad_mpc::network::MemNetwork::triple(triad_mpc::testing::TEST_TIMEOUT);
    let out: Vec<T> = std::thread::scope(|s| {
        let hs: Vec<_> = nets
            .into_iter()
            .zip(&logs)
            .map(|(net, log)| {
                let log = log.clone();
                let f = &f;
                s.spawn(move || {
                    let mut party =
                        triad_mpc::Party::setup(Box::new(Recording { inner: net, log })).unwrap();
                    let i = party.id.index();
                    // Fixed pairwise seeds: seed k is shared by parties k and k+1.
                    party.prg_next = Prg::new([i as u8 + 1; 16]);
                    party.prg_prev = Prg::new([((i + 2) % 3) as u8 + 1; 16]);
                    party.prg_own = Prg::new([i as u8 + 100; 16]);
                    f(&mut party)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let views = logs.map(|l| {
        let mut v = l.lock().unwrap().clone();
        v.drain(..2);
        v
    });
    (views, out)
}
