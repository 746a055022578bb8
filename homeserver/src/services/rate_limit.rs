//! Request rate limits per class (governor token buckets). The login and register classes are
//! keyed by client IP; the client class by user id, so one user cannot exhaust the server and
//! users behind one NAT do not share a bucket; the federation class by the requesting server.

use std::{num::NonZeroU32, time::Duration};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};

use crate::{
    config::{RateLimit, RateLimitConfig},
    error::{ApiError, ApiResult, ErrorKind},
};

#[derive(Clone, Copy, Debug)]
pub enum RateClass {
    Login,
    Register,
    Client,
    /// Requests from another server, keyed by its name.
    Federation,
}

/// The limiters, or none at all when rate limiting is switched off (benchmarks).
pub struct RateLimiters {
    classes: Option<[DefaultKeyedRateLimiter<String>; 4]>,
}

fn limiter(limit: RateLimit) -> DefaultKeyedRateLimiter<String> {
    // Config validation guarantees both are positive.
    let quota = Quota::with_period(Duration::from_millis(limit.period_ms))
        .expect("period_ms > 0")
        .allow_burst(NonZeroU32::new(limit.burst).expect("burst > 0"));
    RateLimiter::keyed(quota)
}

impl RateLimiters {
    pub fn new(config: &RateLimitConfig) -> Self {
        let classes = config.enabled.then(|| {
            [limiter(config.login), limiter(config.register), limiter(config.client), limiter(config.federation)]
        });
        Self { classes }
    }

    /// Takes one request from `key`'s bucket in `class`, or answers M_LIMIT_EXCEEDED.
    pub fn check(&self, class: RateClass, key: &str) -> ApiResult<()> {
        let Some(classes) = &self.classes else { return Ok(()) };
        let limiter = &classes[class as usize];
        // `check_key` takes an owned key type by reference; the String is only built here.
        match limiter.check_key(&key.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                let retry_after_ms = (wait.as_millis() as u64).max(1);
                Err(ApiError::new(ErrorKind::LimitExceeded { retry_after_ms }, "Too many requests"))
            }
        }
    }

    /// Forgets buckets that are full again, so memory stays bounded (run periodically).
    pub fn prune(&self) {
        if let Some(classes) = &self.classes {
            for limiter in classes {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_limited_per_key() {
        let config = RateLimitConfig {
            enabled: true,
            login: RateLimit { period_ms: 60_000, burst: 2 },
            ..RateLimitConfig::default()
        };
        let limits = RateLimiters::new(&config);
        assert!(limits.check(RateClass::Login, "1.2.3.4").is_ok());
        assert!(limits.check(RateClass::Login, "1.2.3.4").is_ok());
        let error = limits.check(RateClass::Login, "1.2.3.4").unwrap_err();
        assert!(matches!(error.kind, ErrorKind::LimitExceeded { retry_after_ms } if retry_after_ms > 1000));
        assert!(limits.check(RateClass::Login, "5.6.7.8").is_ok(), "other keys have their own bucket");
    }

    #[test]
    fn disabled_limits_never_refuse() {
        let limits = RateLimiters::new(&RateLimitConfig { enabled: false, ..RateLimitConfig::default() });
        for _ in 0..1000 {
            assert!(limits.check(RateClass::Login, "k").is_ok());
        }
    }
}
