//! Which member events each device already has, for lazy-loaded sync (spec: § Lazy-loading
//! room members, `include_redundant_members: false`). An incremental sync sends the member
//! event of a timeline sender the device has not been sent yet; later changes to that member
//! reach the device through the timeline. Kept in memory: losing it (a restart, eviction) only
//! means a member event is sent again, which the spec allows.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::Mutex,
};

/// Devices remembered at once, and (room, member) pairs per device; past either bound the
/// oldest entries are forgotten wholesale.
const MAX_DEVICES: usize = 20_000;
const MAX_PER_DEVICE: usize = 5_000;

/// Per device (`user` NUL `device`), the (room, member) pairs whose member events it has, as
/// sorted pairs of 64-bit keyed hashes: 16 bytes a pair instead of a string per member and a
/// set per room (a thousand devices held 1.4 MiB that way). Two pairs of one device would
/// have to agree in all 128 bits to be mistaken for each other.
type Sent = HashMap<String, Vec<(u64, u64)>>;

#[derive(Default)]
pub struct LazyMembers {
    sent: Mutex<Sent>,
    /// Random per process, so no one can choose ids that collide.
    hasher: RandomState,
}

fn device_key(user: &str, device: &str) -> String {
    format!("{user}\u{0}{device}")
}

impl LazyMembers {
    fn pair(&self, room: &str, member: &str) -> (u64, u64) {
        (self.hasher.hash_one(room), self.hasher.hash_one(member))
    }

    /// Of `members` of `room`, those the device has not been sent.
    pub fn missing<'a>(&self, user: &str, device: &str, room: &str, members: &[&'a str]) -> Vec<&'a str> {
        let sent = self.sent.lock().expect("lazy members lock");
        let Some(known) = sent.get(&device_key(user, device)) else {
            return members.to_vec();
        };
        members.iter().copied().filter(|member| known.binary_search(&self.pair(room, member)).is_err()).collect()
    }

    /// Records that the device now has these members' events of `room`.
    pub fn record<'a>(&self, user: &str, device: &str, room: &str, members: impl IntoIterator<Item = &'a str>) {
        let mut sent = self.sent.lock().expect("lazy members lock");
        if sent.len() >= MAX_DEVICES {
            sent.clear();
        }
        let known = sent.entry(device_key(user, device)).or_default();
        for member in members {
            let pair = self.pair(room, member);
            if let Err(at) = known.binary_search(&pair) {
                if known.len() >= MAX_PER_DEVICE {
                    known.clear();
                    known.push(pair);
                } else {
                    known.insert(at, pair);
                }
            }
        }
    }

    /// Forgets what the device was sent of `room` (an initial or gappy sync resends it).
    pub fn forget_room(&self, user: &str, device: &str, room: &str) {
        if let Some(known) = self.sent.lock().expect("lazy members lock").get_mut(&device_key(user, device)) {
            let room = self.hasher.hash_one(room);
            known.retain(|(r, _)| *r != room);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_sent_once_per_device() {
        let lazy = LazyMembers::default();
        assert_eq!(lazy.missing("@u:hs", "D1", "!r", &["@a:hs", "@b:hs"]), vec!["@a:hs", "@b:hs"]);
        lazy.record("@u:hs", "D1", "!r", ["@a:hs"]);
        assert_eq!(lazy.missing("@u:hs", "D1", "!r", &["@a:hs", "@b:hs"]), vec!["@b:hs"]);
        assert_eq!(lazy.missing("@u:hs", "D2", "!r", &["@a:hs"]), vec!["@a:hs"], "another device has nothing");
        assert_eq!(lazy.missing("@u:hs", "D1", "!other", &["@a:hs"]), vec!["@a:hs"]);
        lazy.record("@u:hs", "D1", "!other", ["@a:hs", "@c:hs"]);
        lazy.forget_room("@u:hs", "D1", "!r");
        assert_eq!(lazy.missing("@u:hs", "D1", "!r", &["@a:hs"]), vec!["@a:hs"]);
        assert!(lazy.missing("@u:hs", "D1", "!other", &["@a:hs", "@c:hs"]).is_empty(), "other rooms stay");
    }
}
