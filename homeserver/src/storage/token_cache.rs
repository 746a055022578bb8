//! Access tokens resolved from memory: every authenticated request looks its token up, and a
//! query per request was the largest single cost of a busy /sync. Entries are dropped for a
//! user whenever any of their tokens is deleted or replaced (logout, device deletion, password
//! change, refresh, deactivation, a guest's upgrade), after the change commits.
//!
//! A lookup that read the database before such a change must not put its stale answer back
//! afterwards: every invalidation bumps a generation, and a lookup only fills the cache if the
//! generation did not move while it was reading. One process owns its cache; several Hearth
//! processes on one PostgreSQL would need the invalidation to travel (see ARCHITECTURE.md).

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use super::tokens::AccessTokenRecord;

/// Tokens remembered at once; past it the cache starts over (a reload is one query each).
const CAPACITY: usize = 100_000;

#[derive(Default, Debug)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, AccessTokenRecord>>,
    generation: AtomicU64,
}

impl TokenCache {
    pub fn get(&self, token_hash: &str) -> Option<AccessTokenRecord> {
        self.entries.lock().expect("token cache lock").get(token_hash).cloned()
    }

    /// The generation to pass to `fill` after reading the database.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub fn fill(&self, token_hash: &str, record: &AccessTokenRecord, generation_before_read: u64) {
        let mut entries = self.entries.lock().expect("token cache lock");
        // Checked under the lock: an invalidation takes the same lock after bumping.
        if self.generation.load(Ordering::SeqCst) != generation_before_read {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(token_hash.to_owned(), record.clone());
    }

    /// Forgets every token of `user_id` (call after the change is committed).
    pub fn forget_user(&self, user_id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.lock().expect("token cache lock").retain(|_, record| record.user_id != user_id);
    }

    /// Records the new last-seen time of the device a cached token belongs to.
    pub fn touch(&self, token_hash: &str, ts: i64) {
        if let Some(record) = self.entries.lock().expect("token cache lock").get_mut(token_hash) {
            record.last_seen_ts = Some(ts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(user: &str) -> AccessTokenRecord {
        AccessTokenRecord {
            user_id: user.into(),
            device_id: "D".into(),
            expires_ts: None,
            last_seen_ts: None,
            is_guest: false,
        }
    }

    #[test]
    fn a_lookup_that_raced_an_invalidation_is_not_cached() {
        let cache = TokenCache::default();
        let before = cache.generation();
        cache.forget_user("@a:hs"); // a logout committed while the lookup was reading
        cache.fill("h1", &record("@a:hs"), before);
        assert!(cache.get("h1").is_none());
        cache.fill("h1", &record("@a:hs"), cache.generation());
        assert!(cache.get("h1").is_some());
        cache.forget_user("@b:hs");
        assert!(cache.get("h1").is_some(), "other users' tokens stay");
        cache.forget_user("@a:hs");
        assert!(cache.get("h1").is_none());
    }
}
