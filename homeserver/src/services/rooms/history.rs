//! Which events of a room a user may see (spec: Client-Server API § History visibility). The
//! decision is made per event, from the `m.room.history_visibility` setting in force when the
//! event was sent and the viewer's membership at that moment:
//!
//! 1. `world_readable` → visible;
//! 2. the viewer was joined → visible;
//! 3. `shared`, and the viewer joined at some point after the event → visible;
//! 4. the viewer was invited and the setting was `invited` → visible;
//! 5. otherwise hidden.
//!
//! A history visibility event itself is visible if the setting before *or* after it allows it,
//! and likewise the viewer's own membership events with their membership before or after.
//! Both inputs change rarely, so a view is built from the list of their changes and each event
//! is then judged without a query.

use std::sync::Arc;

use serde_json::Value;

use crate::storage::rooms::StoredEvent;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistorySetting {
    WorldReadable,
    Shared,
    Invited,
    Joined,
}

impl HistorySetting {
    /// From an `m.room.history_visibility` content; anything unknown counts as `shared`, the
    /// spec's default.
    pub fn from_content(content: &Value) -> Self {
        match content["history_visibility"].as_str() {
            Some("world_readable") => Self::WorldReadable,
            Some("invited") => Self::Invited,
            Some("joined") => Self::Joined,
            _ => Self::Shared,
        }
    }
}

/// A room's history visibility changes, oldest first: (stream position of the event, setting).
pub type SettingChanges = Arc<Vec<(i64, HistorySetting)>>;

/// What one user may see of one room.
#[derive(Clone, Debug)]
pub struct HistoryView {
    viewer: String,
    settings: SettingChanges,
    /// The viewer's membership changes, oldest first: (stream position, membership).
    memberships: Vec<(i64, String)>,
    /// Everything is visible (the room was only ever `shared`/`world_readable` and the viewer
    /// is joined now); `memberships` is then not loaded.
    everything: bool,
}

impl HistoryView {
    /// A view for a viewer who is joined now, in a room whose settings never hid anything from
    /// members; None when the per-event rules need the viewer's membership history.
    pub fn for_current_member(viewer: &str, settings: &SettingChanges) -> Option<Self> {
        let hides = settings.iter().any(|(_, s)| matches!(s, HistorySetting::Invited | HistorySetting::Joined));
        (!hides).then(|| Self {
            viewer: viewer.to_owned(),
            settings: settings.clone(),
            memberships: Vec::new(),
            everything: true,
        })
    }

    pub fn new(viewer: &str, settings: SettingChanges, memberships: Vec<(i64, String)>) -> Self {
        Self { viewer: viewer.to_owned(), settings, memberships, everything: false }
    }

    /// The setting in force just before the event at `stream` (`shared` before any was set).
    fn setting_before(&self, stream: i64) -> HistorySetting {
        self.settings.iter().rev().find(|(at, _)| *at < stream).map_or(HistorySetting::Shared, |(_, s)| *s)
    }

    fn setting_at(&self, stream: i64) -> HistorySetting {
        self.settings.iter().rev().find(|(at, _)| *at <= stream).map_or(HistorySetting::Shared, |(_, s)| *s)
    }

    fn membership_before(&self, stream: i64) -> Option<&str> {
        self.memberships.iter().rev().find(|(at, _)| *at < stream).map(|(_, m)| m.as_str())
    }

    fn membership_at(&self, stream: i64) -> Option<&str> {
        self.memberships.iter().rev().find(|(at, _)| *at <= stream).map(|(_, m)| m.as_str())
    }

    fn joined_after(&self, stream: i64) -> bool {
        self.memberships.iter().any(|(at, m)| *at > stream && m == "join")
    }

    fn allowed(&self, stream: i64, setting: HistorySetting, membership: Option<&str>) -> bool {
        match (setting, membership) {
            (HistorySetting::WorldReadable, _) | (_, Some("join")) => true,
            (HistorySetting::Shared, _) => self.joined_after(stream),
            (HistorySetting::Invited, Some("invite")) => true,
            _ => false,
        }
    }

    /// Whether the viewer may see this event.
    pub fn can_see(&self, event: &StoredEvent) -> bool {
        if self.everything {
            return true;
        }
        let stream = event.stream;
        let setting = self.setting_before(stream);
        let membership = self.membership_before(stream);
        if self.allowed(stream, setting, membership) {
            return true;
        }
        match (event.event_type.as_str(), event.state_key.as_deref()) {
            ("m.room.history_visibility", Some("")) => self.allowed(stream, self.setting_at(stream), membership),
            ("m.room.member", Some(target)) if target == self.viewer => {
                self.allowed(stream, setting, self.membership_at(stream))
            }
            _ => false,
        }
    }

    /// No event at or below the returned position is visible, so reads need not fetch them.
    pub fn floor(&self) -> i64 {
        if self.everything {
            return ROOM_START;
        }
        // Visibility only changes where a setting or the viewer's membership changes; the first
        // change point (or the room's start) from which something is visible bounds the rest.
        let mut points: Vec<i64> = std::iter::once(ROOM_START)
            .chain(self.settings.iter().map(|(at, _)| *at))
            .chain(self.memberships.iter().map(|(at, _)| *at))
            .collect();
        points.sort_unstable();
        points.dedup();
        for point in points {
            // Events right after `point` see the state at `point`; a change event itself may be
            // visible by its after-state.
            let setting_changes_here = self.settings.iter().any(|(at, _)| *at == point);
            let membership_changes_here = self.memberships.iter().any(|(at, _)| *at == point);
            if self.allowed(point + 1, self.setting_at(point), self.membership_at(point))
                || (setting_changes_here && self.allowed(point, self.setting_at(point), self.membership_before(point)))
                || (membership_changes_here
                    && self.allowed(point, self.setting_before(point), self.membership_at(point)))
            {
                return (point - 1).max(ROOM_START);
            }
        }
        i64::MAX
    }
}

/// Below every position an event can hold: a room's history begins here (history backfilled
/// from other servers sits below position 0).
pub const ROOM_START: i64 = i64::MIN / 4;

#[cfg(test)]
mod tests {
    use super::*;

    fn event(stream: i64, event_type: &str, state_key: Option<&str>) -> StoredEvent {
        StoredEvent {
            stream,
            event_id: format!("$e{stream}"),
            room_id: "!r:hs".into(),
            sender: "@a:hs".into(),
            event_type: event_type.into(),
            state_key: state_key.map(str::to_owned),
            json: "{}".into(),
            redacted_because: None,
        }
    }

    fn message(stream: i64) -> StoredEvent {
        event(stream, "m.room.message", None)
    }

    fn view(settings: &[(i64, HistorySetting)], memberships: &[(i64, &str)]) -> HistoryView {
        HistoryView::new(
            "@b:hs",
            Arc::new(settings.to_vec()),
            memberships.iter().map(|(at, m)| (*at, (*m).to_owned())).collect(),
        )
    }

    #[test]
    fn shared_history_is_visible_to_anyone_who_joined_later() {
        let view = view(&[(3, HistorySetting::Shared)], &[(10, "join")]);
        assert!(view.can_see(&message(5)));
        assert!(view.can_see(&message(12)));
        assert_eq!(view.floor(), ROOM_START);
    }

    #[test]
    fn joined_history_starts_at_the_join_and_ends_at_the_leave() {
        let view = view(&[(3, HistorySetting::Joined)], &[(10, "join"), (20, "leave")]);
        assert!(!view.can_see(&message(5)));
        assert!(view.can_see(&event(10, "m.room.member", Some("@b:hs"))), "their own join, by its after-state");
        assert!(view.can_see(&message(11)));
        assert!(view.can_see(&event(20, "m.room.member", Some("@b:hs"))), "their own leave, by its before-state");
        assert!(!view.can_see(&message(21)));
        assert_eq!(view.floor(), ROOM_START, "what came before the setting was shared, and they joined later");
        let from_the_start = self::view(&[(ROOM_START, HistorySetting::Joined)], &[(10, "join")]);
        assert_eq!(from_the_start.floor(), 9, "nothing before their join");
    }

    #[test]
    fn invited_history_starts_at_the_invite() {
        let view = view(&[(3, HistorySetting::Invited)], &[(8, "invite"), (10, "join")]);
        assert!(!view.can_see(&message(7)));
        assert!(view.can_see(&message(9)));
        let joined_only = self::view(&[(3, HistorySetting::Joined)], &[(8, "invite"), (10, "join")]);
        assert!(!joined_only.can_see(&message(9)));
    }

    #[test]
    fn the_setting_in_force_at_each_event_decides() {
        // Shared until 10, joined from 10 on; the viewer joins at 30.
        let view = view(&[(3, HistorySetting::Shared), (10, HistorySetting::Joined)], &[(30, "join")]);
        assert!(view.can_see(&message(5)), "sent while shared");
        assert!(view.can_see(&event(10, "m.room.history_visibility", Some(""))), "visible by its before-state");
        assert!(!view.can_see(&message(15)), "sent while joined-only, before the viewer joined");
        assert!(view.can_see(&message(31)));
    }

    #[test]
    fn world_readable_events_are_visible_to_non_members() {
        let view = view(&[(3, HistorySetting::WorldReadable), (10, HistorySetting::Shared)], &[]);
        assert!(view.can_see(&message(5)));
        assert!(view.can_see(&event(10, "m.room.history_visibility", Some(""))));
        assert!(!view.can_see(&message(11)));
    }

    #[test]
    fn members_of_rooms_that_never_hid_history_see_everything() {
        let settings = Arc::new(vec![(3, HistorySetting::Shared)]);
        assert!(HistoryView::for_current_member("@b:hs", &settings).unwrap().can_see(&message(1)));
        let hiding = Arc::new(vec![(3, HistorySetting::Joined)]);
        assert!(HistoryView::for_current_member("@b:hs", &hiding).is_none());
    }
}
