//! The coordinator's limits: token-bucket rates (per client IP and global,
//! on submit and ready; [`triad_wire::limits`]) and admission bounds.

pub use triad_wire::limits::{RateLimit, RateLimited, RateLimiter};

/// Rate limits and admission bounds.
#[derive(Clone, Debug)]
pub struct Limits {
    pub per_ip_per_sec: f64,
    pub per_ip_burst: f64,
    pub global_per_sec: f64,
    pub global_burst: f64,
    /// Most submissions in awaiting_shares, queued or processing at once.
    pub max_queue: usize,
    /// Largest request body, bytes.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_ip_per_sec: 2000.0,
            per_ip_burst: 4000.0,
            global_per_sec: 5000.0,
            global_burst: 10000.0,
            max_queue: 20_000,
            max_body: 64 * 1024,
        }
    }
}

impl Limits {
    pub fn rate(&self) -> RateLimit {
        RateLimit {
            per_ip_per_sec: self.per_ip_per_sec,
            per_ip_burst: self.per_ip_burst,
            global_per_sec: self.global_per_sec,
            global_burst: self.global_burst,
        }
    }
}
