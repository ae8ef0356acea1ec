//! `triad bench poll --voters N --messages M`: a whole poll processed by
//! the three parties (phase 1 signatures, grouping, the K-step scan, the
//! tally), checked against the plaintext oracle.
//!
//! The driver builds the poll once (keys, signed messages, the oracle's
//! tally) and writes it into the benchmark's private directory; each party
//! reads it, keeps its own shares from the seeded dealer, and runs
//! `triad_polls::mpc::process_shared`. The mix of messages is what a real
//! poll sees: voters sending batches of 1–3 votes (nonces k..1 logged in
//! that order, as MACI clients do), a fifth of the batches with a key
//! change, and about a fifth of the messages invalid in one way: a
//! signature by another key (refused publicly in phase 1), a valid
//! signature under another voter's registered key (refused secretly in the
//! scan), a wrong nonce, unaffordable credits, an out-of-range option.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rand::{rngs::StdRng, Rng, SeedableRng};
use triad_maci::{Command, Fr, PrivKey, PubKey};
use triad_mpc::{Party, Ring};
use triad_polls::mpc::encode::{FR, WORDS};
use triad_polls::mpc::process::process_shared_registry;
use triad_polls::mpc::rekey::{
    deactivate_shared, fr_words, rekey_shared, SharedDeactivations, SharedRegistry, SharedRekeys,
    C_WORDS,
};
use triad_polls::mpc::{encode, process_shared, share_messages, PlainMessage};
use triad_polls::rekey::{deactivation_commitment, process_poll_with_epochs, Epoch, Rekey};
use triad_polls::{Message, Mode, PollParams, SignUp, Tally};

const OPTIONS: u64 = 4;
const POLL_ID: u64 = 1;
const SIGNUP_DEADLINE: u64 = 1_000;
/// Far after every message of the log (timestamps are 10 + log position).
const VOTING_DEADLINE: u64 = 1 << 40;
const BUDGET: u64 = 100;

fn params() -> PollParams {
    PollParams::new(
        POLL_ID,
        OPTIONS,
        Mode::Quadratic,
        SIGNUP_DEADLINE,
        VOTING_DEADLINE,
    )
    .expect("constant parameters are valid")
}

fn key(seed: u64, i: u64) -> PrivKey {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&seed.to_le_bytes());
    b[8..16].copy_from_slice(&i.to_le_bytes());
    b[16] = 0x7a;
    PrivKey::from_bytes(b)
}

/// The poll: sign-ups, the re-keying epoch and the log, in the clear
/// (driver side).
pub struct Workload {
    pub signups: Vec<SignUp>,
    pub epoch: Epoch,
    pub messages: Vec<Message>,
}

/// One epoch of `n` deactivations and `n` re-keys by the first `n` voters:
/// about 10 % of the deactivations signed by another voter's key (invalid,
/// secretly), 10 % of the re-keys with a wrong secret (their key never
/// counts), 5 % repeating an earlier secret (refused publicly). Then each
/// new leaf votes once, at the end of the log (replacing as many of the
/// `messages`); the messages of the deactivated keys stay in the log and
/// no longer count.
fn rekey_epoch(
    w: &mut Workload,
    keys: &[PrivKey],
    n: usize,
    seed: u64,
    rng: &mut StdRng,
) -> Result<()> {
    if n > keys.len() {
        bail!("--rekeys must be at most --voters");
    }
    let params = params();
    let t0 = 10 + w.messages.len() as u64;
    let secrets: Vec<Fr> = (0..n)
        .map(|_| Fr::from(rng.gen::<u64>()) + Fr::from(1u64 << 63))
        .collect();
    for (v, s) in secrets.iter().enumerate() {
        let signing = if rng.gen_range(0..100) < 10 {
            keys[(v + 1) % keys.len()].clone()
        } else {
            keys[v].clone()
        };
        let c = Command {
            state_index: v as u64 + 1,
            vote_option_index: 0,
            new_vote_weight: 0,
            nonce: 1,
            poll_id: POLL_ID,
            new_pub_key: signing.public_key(),
            salt: deactivation_commitment(s),
        };
        w.epoch
            .deactivations
            .push(Message::sign_with(c, &signing, t0 + v as u64)?);
    }
    for (v, s) in secrets.iter().enumerate() {
        let secret = match rng.gen_range(0..100) {
            0..=9 => *s + Fr::from(1u64),
            10..=14 if v > 0 => secrets[v - 1],
            _ => *s,
        };
        w.epoch.rekeys.push(Rekey {
            secret,
            new_key: key(seed ^ 0xfeed, v as u64).public_key(),
            timestamp: t0 + (n + v) as u64,
        });
    }
    let mut reg = triad_polls::rekey::Registry::new(&w.signups);
    reg.deactivate(&params, &w.epoch.deactivations);
    let verdicts = reg.rekey(&params, &w.epoch.rekeys);
    let keep = w.messages.len().saturating_sub(n);
    w.messages.truncate(keep);
    for (v, r) in verdicts.iter().enumerate() {
        let Ok((index, _)) = r else { continue };
        let c = Command {
            state_index: *index,
            vote_option_index: rng.gen_range(0..OPTIONS),
            new_vote_weight: rng.gen_range(1..=10),
            nonce: 1,
            poll_id: POLL_ID,
            new_pub_key: key(seed ^ 0xfeed, v as u64).public_key(),
            salt: Fr::from(rng.gen::<u64>()),
        };
        let ts = 10 + (w.messages.len() + 2 * n) as u64;
        w.messages
            .push(Message::sign_with(c, &key(seed ^ 0xfeed, v as u64), ts)?);
    }
    Ok(())
}

/// Builds a poll of `voters` sign-ups and `messages` log entries (see the
/// module docs for the mix).
pub fn workload(voters: usize, messages: usize, rekeys: usize, seed: u64) -> Result<Workload> {
    if voters == 0 {
        bail!("--voters must be at least 1");
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9011);
    let keys: Vec<PrivKey> = (0..voters as u64).map(|i| key(seed, i)).collect();
    let pubs: Vec<PubKey> = keys.iter().map(|k| k.public_key()).collect();
    let signups: Vec<SignUp> = pubs
        .iter()
        .map(|&pub_key| SignUp {
            pub_key,
            voice_credits: BUDGET,
            timestamp: 1,
        })
        .collect();
    // Each voter's current key in the generator's view (key changes move it).
    let mut current: Vec<PrivKey> = keys.clone();
    let mut fresh = voters as u64;
    let mut out: Vec<Message> = Vec::with_capacity(messages);
    while out.len() < messages {
        let v = rng.gen_range(0..voters);
        let index = v as u64 + 1;
        let k = rng.gen_range(1..=3u64).min((messages - out.len()) as u64);
        let change = rng.gen_bool(0.2);
        let old = current[v].clone();
        let new = if change {
            fresh += 1;
            key(seed, fresh)
        } else {
            old.clone()
        };
        // Logged in order nonce k, …, 1: the nonce-1 message is processed
        // first; it carries the key change, signed with the old key.
        for nonce in (1..=k).rev() {
            let signer = if nonce == 1 { &old } else { &new };
            let mut c = Command {
                state_index: index,
                vote_option_index: rng.gen_range(0..OPTIONS),
                new_vote_weight: rng.gen_range(0..6),
                nonce,
                poll_id: POLL_ID,
                new_pub_key: new.public_key(),
                salt: Fr::from(rng.gen::<u64>()),
            };
            let mut signing = signer.clone();
            let mut claimed = None;
            match rng.gen_range(0..100) {
                0..=4 => {
                    // Signed by someone else, naming the voter's key.
                    signing = key(seed, u64::MAX - rng.gen_range(0..1000));
                    claimed = Some(signer.public_key());
                }
                5..=9 => signing = keys[rng.gen_range(0..voters)].clone(),
                10..=14 => c.nonce += 1 + rng.gen_range(0..3),
                15..=17 => c.new_vote_weight = 11 + rng.gen_range(0..100),
                18..=19 => c.vote_option_index = OPTIONS + rng.gen_range(0..3),
                _ => {}
            }
            let mut m = Message::sign_with(c, &signing, 10 + out.len() as u64)?;
            if let Some(pk) = claimed {
                m.signer = pk;
            }
            out.push(m);
        }
        current[v] = new;
    }
    let mut w = Workload {
        signups,
        epoch: Epoch::default(),
        messages: out,
    };
    if rekeys > 0 {
        rekey_epoch(&mut w, &keys, rekeys, seed, &mut rng)?;
    }
    Ok(w)
}

/// Field elements in the engine's wire encoding (checked on decode).
fn put_fr(out: &mut Vec<u8>, x: &Fr) {
    Fr::encode(std::slice::from_ref(x), out);
}

fn get_fr(b: &[u8]) -> Result<Fr> {
    Fr::decode(b).context("field element not reduced")
}

/// Writes what the parties need: the sign-ups, the plain messages (the
/// dealer's input), their timestamps, and the oracle's tally.
pub fn prepare(dir: &Path, voters: usize, messages: usize, rekeys: usize, seed: u64) -> Result<()> {
    let w = workload(voters, messages, rekeys, seed)?;
    let want = process_poll_with_epochs(
        &params(),
        &w.signups,
        std::slice::from_ref(&w.epoch),
        &w.messages,
    )
    .0
    .tally;
    let mut out = Vec::new();
    out.extend_from_slice(&(w.signups.len() as u64).to_le_bytes());
    for s in &w.signups {
        let [x, y] = s.pub_key.to_fields();
        put_fr(&mut out, &x);
        put_fr(&mut out, &y);
        out.extend_from_slice(&s.voice_credits.to_le_bytes());
        out.extend_from_slice(&s.timestamp.to_le_bytes());
    }
    out.extend_from_slice(&(w.messages.len() as u64).to_le_bytes());
    for m in &w.messages {
        let p = encode(m)?;
        for word in p.words {
            out.extend_from_slice(&word.to_le_bytes());
        }
        for x in &p.fr {
            put_fr(&mut out, x);
        }
        out.extend_from_slice(&m.timestamp.to_le_bytes());
    }
    out.extend_from_slice(&(w.epoch.deactivations.len() as u64).to_le_bytes());
    for m in &w.epoch.deactivations {
        let p = encode(m)?;
        for word in p.words.iter().chain(&fr_words(&m.command.salt)) {
            out.extend_from_slice(&word.to_le_bytes());
        }
        for x in &p.fr {
            put_fr(&mut out, x);
        }
        out.extend_from_slice(&m.timestamp.to_le_bytes());
    }
    out.extend_from_slice(&(w.epoch.rekeys.len() as u64).to_le_bytes());
    for r in &w.epoch.rekeys {
        put_fr(&mut out, &r.secret);
        for word in fr_words(&deactivation_commitment(&r.secret)) {
            out.extend_from_slice(&word.to_le_bytes());
        }
        let [x, y] = r.new_key.to_fields();
        put_fr(&mut out, &x);
        put_fr(&mut out, &y);
        out.extend_from_slice(&r.timestamp.to_le_bytes());
    }
    triad_files::write_private(&dir.join("poll.bin"), &out)?;
    triad_files::write_private(
        &dir.join("poll-tally.json"),
        serde_json::to_string(&tally_json(&want))?.as_bytes(),
    )?;
    Ok(())
}

fn tally_json(t: &Tally) -> serde_json::Value {
    let s = |v: &[u128]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    serde_json::json!({
        "votes": s(&t.votes),
        "spent": t.spent.to_string(),
        "spent_per_option": s(&t.spent_per_option),
    })
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.0.len() < n {
            bail!("poll.bin is truncated");
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }
    fn fr(&mut self) -> Result<Fr> {
        get_fr(self.take(32)?)
    }
}

/// What a party reports beyond time and bytes.
pub struct PartyOutcome {
    pub correct: bool,
    pub well_formed: usize,
    pub steps: usize,
    /// The re-keying epoch's share of the time.
    pub rekey_seconds: f64,
}

/// The benchmark's timer: aligns the parties, runs the closure, returns
/// its time and verdict.
pub type Timer<'a> =
    dyn FnMut(&mut Party, &mut dyn FnMut(&mut Party) -> Result<bool>) -> Result<(f64, bool)> + 'a;

/// One party: read the poll, keep this party's shares, process, compare.
pub fn party(
    p: &mut Party,
    dir: &Path,
    seed: u64,
    time: &mut Timer,
) -> Result<(f64, PartyOutcome)> {
    let bytes = std::fs::read(dir.join("poll.bin")).context("reading poll.bin")?;
    let mut r = Reader(&bytes);
    let n = r.u64()? as usize;
    let mut signups = Vec::with_capacity(n);
    for _ in 0..n {
        let (x, y) = (r.fr()?, r.fr()?);
        signups.push(SignUp {
            pub_key: PubKey::new(x, y)?,
            voice_credits: r.u64()?,
            timestamp: r.u64()?,
        });
    }
    let m = r.u64()? as usize;
    let (mut plain, mut times) = (Vec::with_capacity(m), Vec::with_capacity(m));
    for _ in 0..m {
        let mut words = [0u64; WORDS];
        for w in words.iter_mut() {
            *w = r.u64()?;
        }
        let mut fr = [Fr::from(0u64); FR];
        for x in fr.iter_mut() {
            *x = r.fr()?;
        }
        plain.push(PlainMessage { words, fr });
        times.push(r.u64()?);
    }
    // The epoch: deactivations (words, c's bits, field elements, time),
    // then re-keys (secret, c*'s bits, new key, time).
    let nd = r.u64()? as usize;
    let (mut dplain, mut dbits, mut dtimes) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..nd {
        let mut words = [0u64; WORDS];
        for w in words.iter_mut() {
            *w = r.u64()?;
        }
        for _ in 0..C_WORDS {
            dbits.push(triad_mpc::Bits(r.u64()?));
        }
        let mut fr = [Fr::from(0u64); FR];
        for x in fr.iter_mut() {
            *x = r.fr()?;
        }
        dplain.push(PlainMessage { words, fr });
        dtimes.push(r.u64()?);
    }
    let nr = r.u64()? as usize;
    let (mut secrets, mut rbits, mut new_keys, mut rtimes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..nr {
        secrets.push(r.fr()?);
        for _ in 0..C_WORDS {
            rbits.push(triad_mpc::Bits(r.u64()?));
        }
        let (x, y) = (r.fr()?, r.fr()?);
        new_keys.push(PubKey::new(x, y)?);
        rtimes.push(r.u64()?);
    }
    let want: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("poll-tally.json"))?)?;
    let i = p.id.index();
    let mut rng = StdRng::seed_from_u64(seed);
    let mine = share_messages(&plain, &mut rng)[i].clone();
    let deact = SharedDeactivations {
        msgs: share_messages(&dplain, &mut rng)[i].clone(),
        c_bits: triad_mpc::share::share_plain(&dbits, &mut rng)[i].clone(),
    };
    let rekeys = SharedRekeys {
        secret: triad_mpc::share::share_plain(&secrets, &mut rng)[i].clone(),
        c_bits: triad_mpc::share::share_plain(&rbits, &mut rng)[i].clone(),
    };
    let params = params();
    let mut result = None;
    let mut rekey_seconds = 0.0;
    let (seconds, _) = time(p, &mut |p| {
        let t = std::time::Instant::now();
        if nd + nr == 0 {
            result = Some(process_shared(p, &params, &signups, &times, &mine)?);
            return Ok(true);
        }
        let mut reg = SharedRegistry::new(p, &signups);
        deactivate_shared(p, &params, &mut reg, &deact, &dtimes)?;
        rekey_shared(p, &params, &mut reg, &rekeys, &new_keys, &rtimes, None)?;
        rekey_seconds = t.elapsed().as_secs_f64();
        result = Some(process_shared_registry(p, &params, &reg, &times, &mine)?);
        Ok(true)
    })?;
    let (tally, stats) = result.context("the poll ran")?;
    Ok((
        seconds,
        PartyOutcome {
            correct: tally_json(&tally) == want,
            well_formed: stats.well_formed,
            steps: stats.steps,
            rekey_seconds,
        },
    ))
}
