//! Failed-login backoff per account: after `free_failures` wrong passwords, each further attempt
//! must wait twice as long as the one before, up to `max_backoff`. A correct password resets it.
//! The wait is capped, so an attacker can slow the owner down but never lock them out for good.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::error::{ApiError, ApiResult, ErrorKind};

struct Failures {
    count: u32,
    last: Instant,
}

pub struct LoginBackoff {
    free_failures: u32,
    max_backoff: Duration,
    failures: Mutex<HashMap<String, Failures>>,
}

impl LoginBackoff {
    pub fn new(free_failures: u32, max_backoff: Duration) -> Self {
        Self { free_failures, max_backoff, failures: Mutex::new(HashMap::new()) }
    }

    fn delay_for(&self, count: u32) -> Duration {
        if count < self.free_failures {
            return Duration::ZERO;
        }
        let doublings = (count - self.free_failures).min(30);
        Duration::from_secs(1u64 << doublings).min(self.max_backoff)
    }

    /// Refuses the attempt with M_LIMIT_EXCEEDED while the account is in its backoff window.
    pub fn check(&self, user_id: &str) -> ApiResult<()> {
        self.check_at(user_id, Instant::now())
    }

    fn check_at(&self, user_id: &str, now: Instant) -> ApiResult<()> {
        let failures = self.failures.lock().expect("backoff lock");
        let Some(entry) = failures.get(user_id) else { return Ok(()) };
        let ready_at = entry.last + self.delay_for(entry.count);
        if now >= ready_at {
            return Ok(());
        }
        let retry_after_ms = (ready_at - now).as_millis() as u64;
        Err(ApiError::new(
            ErrorKind::LimitExceeded { retry_after_ms: retry_after_ms.max(1) },
            "Too many failed login attempts",
        ))
    }

    pub fn record_failure(&self, user_id: &str) {
        self.record_failure_at(user_id, Instant::now());
    }

    fn record_failure_at(&self, user_id: &str, now: Instant) {
        let mut failures = self.failures.lock().expect("backoff lock");
        // Forget accounts that have been quiet for longer than the longest wait.
        if failures.len() > 10_000 {
            let max = self.max_backoff;
            failures.retain(|_, f| now.duration_since(f.last) < max * 2);
        }
        let entry = failures.entry(user_id.to_owned()).or_insert(Failures { count: 0, last: now });
        if now.duration_since(entry.last) > self.max_backoff * 2 {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last = now;
    }

    pub fn record_success(&self, user_id: &str) {
        self.failures.lock().expect("backoff lock").remove(user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_after_the_free_failures_and_are_capped() {
        let backoff = LoginBackoff::new(3, Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..2 {
            backoff.record_failure_at("@a:hs", start);
        }
        assert!(backoff.check_at("@a:hs", start).is_ok(), "two failures are free");
        backoff.record_failure_at("@a:hs", start);
        assert!(backoff.check_at("@a:hs", start).is_err(), "the third failure imposes a wait");
        assert!(backoff.check_at("@a:hs", start + Duration::from_secs(1)).is_ok());
        for _ in 0..20 {
            backoff.record_failure_at("@a:hs", start);
        }
        assert!(backoff.check_at("@a:hs", start + Duration::from_secs(59)).is_err());
        assert!(backoff.check_at("@a:hs", start + Duration::from_secs(60)).is_ok(), "never longer than the cap");
        assert!(backoff.check_at("@other:hs", start).is_ok(), "per account");
        backoff.record_success("@a:hs");
        assert!(backoff.check_at("@a:hs", start).is_ok());
    }
}
