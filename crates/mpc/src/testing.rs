//! The one three-party harness: runs a protocol in three threads connected
//! by the in-memory transport, optionally with a faulty link, so every test
//! (here and in dependent crates) compares against a plaintext oracle the
//! same way.

use std::time::Duration;

use rand::{rngs::StdRng, SeedableRng};

use crate::network::{MemNetwork, NetError, NetStats, Network};
use crate::{MpcError, Party, PartyId};

/// Long enough for debug builds on a loaded machine, short enough that a
/// protocol bug shows up as a timeout instead of a hung test run.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Deterministic randomness for sharing test inputs.
pub fn test_rng() -> StdRng {
    StdRng::seed_from_u64(0x7124d)
}

/// Runs `f` as each of the three parties over the in-memory transport.
pub fn run3<R, F>(f: F) -> [R; 3]
where
    R: Send,
    F: Fn(&mut Party) -> R + Sync,
{
    let nets = MemNetwork::triple(TEST_TIMEOUT);
    run3_on(nets.map(|n| Box::new(n) as Box<dyn Network>), |p| Ok(f(p)))
        .map(|r| r.expect("party setup failed"))
}

/// Runs `f` with `fault` applied to the `nth` message party `who` sends
/// (in-memory endpoints with receive timeout `timeout`); returns the two
/// honest parties' outcomes, in party order. The cheating-party tests'
/// one harness.
pub fn run3_cheating<R, F>(
    who: PartyId,
    fault: Fault,
    nth: u64,
    timeout: Duration,
    f: F,
) -> Vec<Result<R, MpcError>>
where
    R: Send,
    F: Fn(&mut Party) -> Result<R, MpcError> + Sync,
{
    let mut k = 0;
    let nets = MemNetwork::triple(timeout).map(|n| {
        let n = Box::new(n) as Box<dyn Network>;
        k += 1;
        if k - 1 == who.index() {
            Box::new(FaultyNetwork::new(n, fault, nth)) as Box<dyn Network>
        } else {
            n
        }
    });
    run3_on(nets, f)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != who.index())
        .map(|(_, r)| r)
        .collect()
}

/// Runs `f` over the given endpoints; setup errors are returned, not panics.
pub fn run3_on<R, F>(nets: [Box<dyn Network>; 3], f: F) -> [Result<R, MpcError>; 3]
where
    R: Send,
    F: Fn(&mut Party) -> Result<R, MpcError> + Sync,
{
    std::thread::scope(|s| {
        let handles = nets.map(|net| {
            let f = &f;
            s.spawn(move || {
                let mut p = Party::setup(net)?;
                f(&mut p)
            })
        });
        handles.map(|h| h.join().expect("party thread panicked"))
    })
}

/// The cheating-party tests' verdict on one run: at least one honest
/// party aborted, and none returned anything but the honest result.
pub fn assert_caught<R: PartialEq + std::fmt::Debug>(
    out: &[Result<R, MpcError>],
    honest: &R,
    what: impl std::fmt::Display,
) {
    assert!(
        out.iter().any(|r| r.is_err()),
        "{what}: no honest party aborted"
    );
    for r in out.iter().flatten() {
        assert_eq!(r, honest, "{what}: a wrong result");
    }
}

/// What a faulty link does to one message.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Cut the message in half.
    Truncate,
    /// Replace the message by bytes that are no valid element encoding.
    Garbage,
    /// Never deliver it (the receiver must time out, not hang).
    Drop,
    /// XOR `mask` into the byte at `at` (modulo the length): a flipped bit.
    Flip { at: usize, mask: u8 },
    /// XOR a nonzero pattern into the 8 bytes at `at` (modulo the length):
    /// a replaced value.
    Replace { at: usize },
}

/// Wraps an endpoint and applies `fault` to its `nth` outgoing message.
pub struct FaultyNetwork {
    inner: Box<dyn Network>,
    fault: Fault,
    nth: u64,
    sent: u64,
}

impl FaultyNetwork {
    pub fn new(inner: Box<dyn Network>, fault: Fault, nth: u64) -> Self {
        Self {
            inner,
            fault,
            nth,
            sent: 0,
        }
    }
}

impl Network for FaultyNetwork {
    fn id(&self) -> PartyId {
        self.inner.id()
    }

    fn send(&mut self, to: PartyId, mut msg: Vec<u8>) -> Result<(), NetError> {
        self.sent += 1;
        if self.sent == self.nth {
            match self.fault {
                Fault::Truncate => msg.truncate(msg.len() / 2),
                Fault::Garbage => msg.iter_mut().for_each(|b| *b = 0xff),
                Fault::Drop => return Ok(()),
                Fault::Flip { at, mask } => {
                    if !msg.is_empty() {
                        let k = at % msg.len();
                        msg[k] ^= mask;
                    }
                }
                Fault::Replace { at } => {
                    let len = msg.len();
                    for (j, pattern) in (0..8.min(len)).zip(0x5au8..) {
                        msg[(at + j) % len] ^= pattern;
                    }
                }
            }
        }
        self.inner.send(to, msg)
    }

    fn recv(&mut self, from: PartyId) -> Result<Vec<u8>, NetError> {
        self.inner.recv(from)
    }

    /// The inner endpoint's figures, but `messages_sent` counts every
    /// message the protocol sent, a dropped one included: a test can tell
    /// whether the fault fired (`messages_sent >= nth`).
    fn stats(&self) -> NetStats {
        NetStats {
            messages_sent: self.sent,
            ..self.inner.stats()
        }
    }
}

/// Every message one party received, in order: (sender, bytes).
pub type View = Vec<(PartyId, Vec<u8>)>;

/// Wraps an endpoint and records what it receives (privacy tests compare
/// views across inputs).
pub struct RecordingNetwork {
    inner: Box<dyn Network>,
    view: std::sync::Arc<std::sync::Mutex<View>>,
}

impl Network for RecordingNetwork {
    fn id(&self) -> PartyId {
        self.inner.id()
    }

    fn send(&mut self, to: PartyId, msg: Vec<u8>) -> Result<(), NetError> {
        self.inner.send(to, msg)
    }

    fn recv(&mut self, from: PartyId) -> Result<Vec<u8>, NetError> {
        let m = self.inner.recv(from)?;
        self.view.lock().expect("view lock").push((from, m.clone()));
        Ok(m)
    }

    fn stats(&self) -> NetStats {
        self.inner.stats()
    }
}

/// Like [`run3`], also returning each party's view of `f` (messages of the
/// setup excluded).
pub fn run3_viewed<R, F>(f: F) -> ([R; 3], [View; 3])
where
    R: Send,
    F: Fn(&mut Party) -> R + Sync,
{
    let views: [std::sync::Arc<std::sync::Mutex<View>>; 3] = Default::default();
    let nets = MemNetwork::triple(TEST_TIMEOUT);
    let mut k = 0;
    let nets = nets.map(|n| {
        let net = Box::new(RecordingNetwork {
            inner: Box::new(n),
            view: views[k].clone(),
        }) as Box<dyn Network>;
        k += 1;
        net
    });
    let out = run3_on(nets, |p| {
        views[p.id.index()].lock().expect("view lock").clear();
        Ok(f(p))
    })
    .map(|r| r.expect("party setup failed"));
    let views = views.map(|v| std::mem::take(&mut *v.lock().expect("view lock")));
    (out, views)
}
