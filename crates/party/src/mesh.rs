//! MPC sessions with the other two parties. Each job (a batch check, a
//! release) opens a fresh mutual-TLS mesh on the party's MPC port and
//! first compares a tag (what job, over which inputs) with both peers, so a
//! party never mixes two jobs or computes over a different input set.
//! One session at a time: the caller runs jobs on a single worker thread.

use std::net::{SocketAddr, TcpListener};
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use triad_mpc::{MpcError, Party, PartyId};
use triad_net::{Identity, TcpConfig, TcpNetwork};

pub struct Mesh {
    pub id: PartyId,
    identity: Identity,
    certs: [Vec<u8>; 3],
    addrs: [SocketAddr; 3],
    listener: TcpListener,
    /// The link model every session uses (the same at all three parties).
    link: triad_mpc::LinkModel,
    modes: Modes,
}

/// The security modes of the sessions (the same at all three parties).
#[derive(Clone, Copy, Debug)]
pub struct Modes {
    /// The statistics' sessions ([`Mesh::session`]).
    pub statistics: triad_mpc::Security,
    /// The poll jobs' sessions ([`Mesh::poll_session`]).
    pub polls: triad_mpc::Security,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("MPC: {0}")]
    Mpc(#[from] MpcError),
    #[error("MPC listener: {0}")]
    Io(#[from] std::io::Error),
    #[error("peer {0:?} is working on a different job or input set, or in another security mode")]
    TagMismatch(PartyId),
}

impl Mesh {
    pub fn new(
        id: PartyId,
        identity: Identity,
        certs: [Vec<u8>; 3],
        addrs: [SocketAddr; 3],
        listener: TcpListener,
        link: triad_mpc::LinkModel,
        modes: Modes,
    ) -> Self {
        Self {
            id,
            identity,
            certs,
            addrs,
            listener,
            link,
            modes,
        }
    }

    /// The mode of the statistics' sessions ([`Mesh::session`]).
    pub fn security(&self) -> triad_mpc::Security {
        self.modes.statistics
    }

    /// Connects to both peers and checks they run the job named `tag` in
    /// the same mode; `job` names it in the metrics.
    pub fn session(&self, job: &'static str, tag: [u8; 32]) -> Result<Session, SessionError> {
        self.session_in(job, tag, self.modes.statistics)
    }

    /// [`Mesh::session`] for a poll job, in the poll jobs' mode: malicious
    /// checks every phase of the tally and the re-keying epochs at several
    /// times their semi-honest cost (docs/security.md, "Polls' tally:
    /// malicious-secure when asked").
    pub fn poll_session(&self, job: &'static str, tag: [u8; 32]) -> Result<Session, SessionError> {
        self.session_in(job, tag, self.modes.polls)
    }

    fn session_in(
        &self,
        job: &'static str,
        tag: [u8; 32],
        security: triad_mpc::Security,
    ) -> Result<Session, SessionError> {
        let started = Instant::now();
        let party = self.connect(tag, security)?;
        Ok(Session {
            party,
            job,
            started,
        })
    }

    fn connect(&self, tag: [u8; 32], security: triad_mpc::Security) -> Result<Party, SessionError> {
        let mut cfg = TcpConfig::new(
            self.id,
            self.identity.clone(),
            self.certs.clone(),
            self.addrs,
        );
        // A peer that is down makes the job fail quickly; the coordinator
        // aborts and retries.
        cfg.setup_timeout = Duration::from_secs(10);
        cfg.timeout = Duration::from_secs(60);
        let net = TcpNetwork::establish(cfg, self.listener.try_clone()?).map_err(MpcError::from)?;
        let mut p = Party::setup(Box::new(net))?;
        p.link = self.link;
        p.security = security;
        // The job's tag and the security mode: parties in different modes
        // would desynchronise at the first check.
        let mut hello = tag.to_vec();
        hello.push(match security {
            triad_mpc::Security::SemiHonest => 0,
            triad_mpc::Security::Malicious => 1,
        });
        let (prev, next) = (p.prev(), p.next());
        for to in [prev, next] {
            p.net.send(to, hello.clone()).map_err(MpcError::from)?;
        }
        for from in [prev, next] {
            if p.net.recv(from).map_err(MpcError::from)? != hello {
                return Err(SessionError::TagMismatch(from));
            }
        }
        Ok(p)
    }
}

/// A party in one MPC session. When it ends (dropped), the session's
/// duration and the bytes this party sent and received go to the metrics
/// (`triad_mpc_job_seconds`, `triad_mpc_bytes_sent_total`,
/// `triad_mpc_bytes_received_total`, by job).
pub struct Session {
    party: Party,
    job: &'static str,
    started: Instant,
}

impl Deref for Session {
    type Target = Party;
    fn deref(&self) -> &Party {
        &self.party
    }
}

impl DerefMut for Session {
    fn deref_mut(&mut self) -> &mut Party {
        &mut self.party
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        use triad_wire::metrics;
        let stats = self.party.net.stats();
        let job = [("job", self.job)];
        metrics::observe(
            "triad_mpc_job_seconds",
            "MPC session durations (setup included) by job",
            &job,
            self.started.elapsed(),
        );
        metrics::count(
            "triad_mpc_bytes_sent_total",
            "Bytes this party sent to the other two, by job",
            &job,
            stats.bytes_sent as f64,
        );
        metrics::count(
            "triad_mpc_bytes_received_total",
            "Bytes this party received from the other two, by job",
            &job,
            stats.bytes_received as f64,
        );
    }
}
