//! Which member events each device already has, for lazy-loaded sync (spec: § Lazy-loading
//! room members, `include_redundant_members: false`). An incremental sync sends the member
//! event of a timeline sender the device has not been sent yet; later changes to that member
//! reach the device through the timeline. Kept in memory: losing it (a restart, eviction) only
//! means a member event is sent again, which the spec allows.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

/// Devices remembered at once, and (room, member) pairs per device; past either bound the
/// oldest entries are forgotten wholesale.
const MAX_DEVICES: usize = 20_000;
const MAX_PER_DEVICE: usize = 5_000;

/// Per device (`user` NUL `device`), per room, the members whose events it has.
type Sent = HashMap<String, HashMap<String, HashSet<String>>>;

#[derive(Default)]
pub struct LazyMembers {
    sent: Mutex<Sent>,
}

fn device_key(user: &str, device: &str) -> String {
    format!("{user}\u{0}{device}")
}

impl LazyMembers {
    /// Of `members` of `room`, those the device has not been sent.
    pub fn missing<'a>(&self, user: &str, device: &str, room: &str, members: &[&'a str]) -> Vec<&'a str> {
        let sent = self.sent.lock().expect("lazy members lock");
        let Some(known) = sent.get(&device_key(user, device)).and_then(|rooms| rooms.get(room)) else {
            return members.to_vec();
        };
        members.iter().copied().filter(|member| !known.contains(*member)).collect()
    }

    /// Records that the device now has these members' events of `room`.
    pub fn record<'a>(&self, user: &str, device: &str, room: &str, members: impl IntoIterator<Item = &'a str>) {
        let mut sent = self.sent.lock().expect("lazy members lock");
        if sent.len() >= MAX_DEVICES {
            sent.clear();
        }
        let rooms = sent.entry(device_key(user, device)).or_default();
        if rooms.values().map(HashSet::len).sum::<usize>() >= MAX_PER_DEVICE {
            rooms.clear();
        }
        let known = rooms.entry(room.to_owned()).or_default();
        for member in members {
            if !known.contains(member) {
                known.insert(member.to_owned());
            }
        }
    }

    /// Forgets what the device was sent of `room` (an initial or gappy sync resends it).
    pub fn forget_room(&self, user: &str, device: &str, room: &str) {
        if let Some(rooms) = self.sent.lock().expect("lazy members lock").get_mut(&device_key(user, device)) {
            rooms.remove(room);
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
        lazy.forget_room("@u:hs", "D1", "!r");
        assert_eq!(lazy.missing("@u:hs", "D1", "!r", &["@a:hs"]), vec!["@a:hs"]);
    }
}
