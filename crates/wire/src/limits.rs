//! Token-bucket rate limits, one bucket per client IP and one global, for
//! the endpoints providers write to (the coordinator's submit and ready, a
//! party's share intake).

use crate::ErrorCode;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::ApiError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Rates (per second) and bursts of the two buckets.
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    pub per_ip_per_sec: f64,
    pub per_ip_burst: f64,
    pub global_per_sec: f64,
    pub global_burst: f64,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.at = now;
    }

    /// Seconds until one token is available (0 if one is).
    fn wait(&self, rate: f64) -> f64 {
        if self.tokens >= 1.0 {
            0.0
        } else if rate <= 0.0 {
            60.0
        } else {
            (1.0 - self.tokens) / rate
        }
    }
}

/// Refused by a limit: answer 429 with `Retry-After`.
#[derive(Debug)]
pub struct RateLimited {
    pub retry_after_secs: u64,
}

impl IntoResponse for RateLimited {
    fn into_response(self) -> Response {
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            format!("too many requests; retry in {} s", self.retry_after_secs),
        )
        .into_response();
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(self.retry_after_secs),
        );
        r
    }
}

/// Above this many tracked IPs, idle (full) buckets are dropped.
const MAX_TRACKED_IPS: usize = 100_000;

pub struct RateLimiter {
    limits: RateLimit,
    state: Mutex<(Bucket, HashMap<IpAddr, Bucket>)>,
}

impl RateLimiter {
    pub fn new(limits: RateLimit) -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new((Bucket::full(limits.global_burst, now), HashMap::new())),
            limits,
        }
    }

    /// Takes one token from the IP's bucket and one from the global bucket,
    /// or neither.
    pub fn check(&self, ip: IpAddr) -> Result<(), RateLimited> {
        let l = &self.limits;
        let now = Instant::now();
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (global, per_ip) = &mut *guard;
        if per_ip.len() >= MAX_TRACKED_IPS {
            per_ip.retain(|_, b| {
                b.refill(l.per_ip_per_sec, l.per_ip_burst, now);
                b.tokens < l.per_ip_burst
            });
        }
        let ipb = per_ip
            .entry(ip)
            .or_insert_with(|| Bucket::full(l.per_ip_burst, now));
        ipb.refill(l.per_ip_per_sec, l.per_ip_burst, now);
        global.refill(l.global_per_sec, l.global_burst, now);
        let wait = ipb
            .wait(l.per_ip_per_sec)
            .max(global.wait(l.global_per_sec));
        if wait > 0.0 {
            return Err(RateLimited {
                retry_after_secs: (wait.ceil() as u64).max(1),
            });
        }
        ipb.tokens -= 1.0;
        global.tokens -= 1.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_then_refill() {
        let rl = RateLimiter::new(RateLimit {
            per_ip_per_sec: 1000.0,
            per_ip_burst: 3.0,
            global_per_sec: 1000.0,
            global_burst: 1000.0,
        });
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            rl.check(ip).unwrap();
        }
        assert!(rl.check(ip).is_err());
        // Another IP has its own bucket.
        rl.check("10.0.0.2".parse().unwrap()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        rl.check(ip).unwrap();
    }
}
