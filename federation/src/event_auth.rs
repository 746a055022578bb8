//! The spec's authorization rules for an event, run by ruma-state-res against the auth events
//! the event cites and against the room state before it.

use std::collections::HashMap;

use ruma::{
    EventId, OwnedEventId, UserId,
    events::{StateEventType, TimelineEventType},
    room_version_rules::AuthorizationRules,
    state_res,
};
use serde_json::value::RawValue as RawJsonValue;

use crate::Pdu;

/// The (type, state_key) pairs whose current events a new event must cite as `auth_events`.
pub fn auth_types_for_event(
    event_type: &str,
    sender: &UserId,
    state_key: Option<&str>,
    content: &RawJsonValue,
    rules: &AuthorizationRules,
) -> Result<Vec<(String, String)>, String> {
    let types =
        state_res::auth_types_for_event(&TimelineEventType::from(event_type), sender, state_key, content, rules)?;
    Ok(types.into_iter().map(|(kind, key)| (kind.to_string(), key)).collect())
}

/// Checks `event` against the rules: first against the events it cites (`auth_events`), then
/// against `state` — the room state before the event, keyed by (type, state_key), which must
/// hold at least the create event and every pair `auth_types_for_event` names.
///
/// The maps may hold `Pdu`s, `AuthEvent`s or shared `Arc`s of either, so callers holding cached
/// events need not copy them.
pub fn check_event<A: state_res::Event, S: state_res::Event>(
    rules: &AuthorizationRules,
    event: &Pdu,
    auth_events: &HashMap<OwnedEventId, A>,
    state: &HashMap<(String, String), S>,
) -> Result<(), String> {
    state_res::check_state_independent_auth_rules(rules, event, |id: &EventId| auth_events.get(id))?;
    state_res::check_state_dependent_auth_rules(rules, event, |kind: &StateEventType, key: &str| {
        state.get(&(kind.to_string(), key.to_owned()))
    })
}

#[cfg(test)]
mod tests {
    //! The authorization rules (spec: Room versions v10 § Authorization rules) on a small room
    //! built event by event: each event cites the state it needs, as a server would.
    use super::*;
    use crate::{NewPdu, SigningKey, room_versions::rules_for, to_canonical_object};
    use ruma::{CanonicalJsonValue, RoomId, UserId, room_version_rules::RoomVersionRules, state_res::Event};
    use serde_json::{Value, json};

    struct Room {
        rules: RoomVersionRules,
        key: SigningKey,
        state: HashMap<(String, String), Pdu>,
        events: HashMap<OwnedEventId, Pdu>,
        last: Option<OwnedEventId>,
    }

    const ROOM: &str = "!room:domain";

    impl Room {
        fn new() -> Self {
            Self::of_version("10")
        }

        fn of_version(version: &str) -> Self {
            let mut room = Self {
                rules: rules_for(version).unwrap(),
                key: SigningKey::generate(),
                state: HashMap::new(),
                events: HashMap::new(),
                last: None,
            };
            let alice = "@alice:domain";
            room.add(alice, "m.room.create", Some(""), json!({"creator": alice, "room_version": version})).unwrap();
            room.add(alice, "m.room.member", Some(alice), json!({"membership": "join"})).unwrap();
            let power = json!({"users": {alice: 100}, "users_default": 0, "events_default": 0, "state_default": 50,
                               "ban": 50, "kick": 50, "invite": 0, "redact": 50, "events": {"m.room.name": 50}});
            room.add(alice, "m.room.power_levels", Some(""), power).unwrap();
            room.add(alice, "m.room.join_rules", Some(""), json!({"join_rule": "invite"})).unwrap();
            room
        }

        /// Builds the event on the current state (citing what the rules ask for), checks it,
        /// and on success applies it. The error is the rules' verdict.
        fn add(&mut self, sender: &str, kind: &str, state_key: Option<&str>, content: Value) -> Result<(), String> {
            let sender_id = UserId::parse(sender).unwrap();
            let raw = serde_json::value::to_raw_value(&content).unwrap();
            let mut auth_types =
                auth_types_for_event(kind, &sender_id, state_key, &raw, &self.rules.authorization).unwrap();
            let create = ("m.room.create".to_owned(), String::new());
            if !auth_types.contains(&create) {
                auth_types.push(create);
            }
            let auth_events: Vec<OwnedEventId> =
                auth_types.iter().filter_map(|key| self.state.get(key)).map(|pdu| pdu.event_id().to_owned()).collect();
            let room_id = RoomId::parse(ROOM).unwrap();
            let cited_hashes: HashMap<OwnedEventId, String> = self
                .events
                .values()
                .map(|pdu| (pdu.event_id().to_owned(), pdu.content_hash().unwrap().to_owned()))
                .collect();
            let new = NewPdu {
                room_id: Some(&room_id),
                sender: &sender_id,
                event_type: kind,
                state_key,
                content: to_canonical_object(content).unwrap(),
                prev_events: self.last.iter().cloned().collect(),
                auth_events,
                depth: self.events.len() as u64 + 1,
                origin_server_ts: 1,
                redacts: None,
                cited_hashes: &cited_hashes,
            };
            let pdu = Pdu::build_and_sign(new, &self.rules, "domain", &self.key).unwrap();
            check_event(&self.rules.authorization, &pdu, &self.events, &self.state)?;
            if let Some(key) = state_key {
                self.state.insert((kind.to_owned(), key.to_owned()), pdu.clone());
            }
            self.last = Some(pdu.event_id().to_owned());
            self.events.insert(pdu.event_id().to_owned(), pdu);
            Ok(())
        }
    }

    #[test]
    fn room_version_2_events_carry_their_ids_and_cite_events_with_hashes() {
        let mut room = Room::of_version("2");
        room.add("@alice:domain", "m.room.message", None, json!({"body": "hi"})).unwrap();
        assert!(room.add("@mallory:domain", "m.room.message", None, json!({"body": "hi"})).is_err());
        let last = &room.events[room.last.as_ref().unwrap()];
        assert!(last.event_id().as_str().ends_with(":domain"), "{}", last.event_id());
        assert_eq!(crate::event_id_of(last.json(), &room.rules).unwrap(), last.event_id());
        let prev = &last.json()["prev_events"];
        let CanonicalJsonValue::Array(prev) = prev else { panic!("prev_events: {prev:?}") };
        let CanonicalJsonValue::Array(pair) = &prev[0] else { panic!("not a pair: {prev:?}") };
        let CanonicalJsonValue::Object(hashes) = &pair[1] else { panic!("no hashes: {pair:?}") };
        assert!(hashes.contains_key("sha256"));
        // Parsing it again (as from storage or a peer) reads the pairs back into ids.
        let again = Pdu::from_signed(last.event_id().to_owned(), last.json().clone(), &room.rules).unwrap();
        assert_eq!(again.prev_events().count(), 1);
        // A v2 event citing plain ids is malformed.
        let mut plain = last.json().clone();
        plain.insert("prev_events".into(), CanonicalJsonValue::Array(vec![pair[0].clone()]));
        assert!(Pdu::from_signed(last.event_id().to_owned(), plain, &room.rules).is_err());
    }

    #[test]
    fn room_version_1_resolves_conflicts_by_the_first_algorithm() {
        let mut room = Room::of_version("1");
        let (alice, bob, carol) = ("@alice:domain", "@bob:domain", "@carol:domain");
        room.add(alice, "m.room.member", Some(bob), json!({"membership": "invite"})).unwrap();
        room.add(bob, "m.room.member", Some(bob), json!({"membership": "join"})).unwrap();
        let power = |users: Value| {
            json!({"users": users, "users_default": 0, "events_default": 0, "state_default": 50,
                   "ban": 50, "kick": 50, "invite": 0, "redact": 50})
        };
        room.add(alice, "m.room.power_levels", Some(""), power(json!({alice: 100, bob: 50}))).unwrap();
        let (fork_state, fork_last) = (room.state.clone(), room.last.clone());
        let ids = |room: &Room| -> HashMap<(String, String), OwnedEventId> {
            room.state.iter().map(|(key, pdu)| (key.clone(), pdu.event_id().to_owned())).collect()
        };
        // Branch A: Alice demotes Bob and names the room.
        room.add(alice, "m.room.power_levels", Some(""), power(json!({alice: 100}))).unwrap();
        room.add(alice, "m.room.name", Some(""), json!({"name": "A"})).unwrap();
        let branch_a = ids(&room);
        // Branch B, deeper: Bob (still 50 there) promotes Carol and names the room.
        room.state = fork_state;
        room.last = fork_last;
        room.add(bob, "m.room.power_levels", Some(""), power(json!({alice: 100, bob: 50, carol: 50}))).unwrap();
        room.add(bob, "m.room.name", Some(""), json!({"name": "B"})).unwrap();
        let branch_b = ids(&room);

        let resolved =
            crate::state_res_v1::resolve(&room.rules.authorization, &[branch_a.clone(), branch_b], &room.events);
        let key = |kind: &str| (kind.to_owned(), String::new());
        // Power levels by ascending depth: A's demotion first, then Bob's change is refused in
        // that state; so Bob's later (deeper) name is refused too, and Alice's stands.
        assert_eq!(resolved[&key("m.room.power_levels")], branch_a[&key("m.room.power_levels")]);
        assert_eq!(resolved[&key("m.room.name")], branch_a[&key("m.room.name")]);
        // What both agree on is kept.
        assert_eq!(resolved[&key("m.room.create")], branch_a[&key("m.room.create")]);
        assert_eq!(
            resolved[&("m.room.member".to_owned(), bob.to_owned())],
            branch_a[&("m.room.member".to_owned(), bob.to_owned())]
        );
        // Resolving one state is that state.
        assert_eq!(
            crate::state_res_v1::resolve(&room.rules.authorization, std::slice::from_ref(&branch_a), &room.events),
            branch_a
        );
    }

    #[test]
    fn members_speak_and_outsiders_do_not() {
        let mut room = Room::new();
        assert!(room.add("@alice:domain", "m.room.message", None, json!({"body": "hi"})).is_ok());
        assert!(room.add("@mallory:domain", "m.room.message", None, json!({"body": "hi"})).is_err());
    }

    #[test]
    fn an_invite_only_room_needs_an_invite_and_a_ban_keeps_out() {
        let mut room = Room::new();
        let bob = "@bob:domain";
        assert!(room.add(bob, "m.room.member", Some(bob), json!({"membership": "join"})).is_err(), "not invited");
        room.add("@alice:domain", "m.room.member", Some(bob), json!({"membership": "invite"})).unwrap();
        room.add(bob, "m.room.member", Some(bob), json!({"membership": "join"})).unwrap();
        // Bob (power 0) may not ban Alice; Alice bans Bob, who cannot come back.
        let carol = "@carol:domain";
        assert!(room.add(bob, "m.room.member", Some("@alice:domain"), json!({"membership": "ban"})).is_err());
        room.add("@alice:domain", "m.room.member", Some(bob), json!({"membership": "ban"})).unwrap();
        assert!(room.add(bob, "m.room.member", Some(bob), json!({"membership": "join"})).is_err(), "banned");
        assert!(room.add(bob, "m.room.message", None, json!({"body": "still here?"})).is_err());
        assert!(room.add(carol, "m.room.member", Some(carol), json!({"membership": "join"})).is_err());
    }

    #[test]
    fn power_levels_decide_who_changes_state() {
        let mut room = Room::new();
        let bob = "@bob:domain";
        room.add("@alice:domain", "m.room.member", Some(bob), json!({"membership": "invite"})).unwrap();
        room.add(bob, "m.room.member", Some(bob), json!({"membership": "join"})).unwrap();
        assert!(room.add(bob, "m.room.name", Some(""), json!({"name": "Bob's"})).is_err(), "power 0 < 50");
        // Bob may not raise himself; Alice makes him a moderator, and then he may rename.
        let raised = json!({"users": {"@alice:domain": 100, bob: 50}, "state_default": 50, "ban": 50,
                            "kick": 50, "invite": 0, "redact": 50, "events": {"m.room.name": 50}});
        assert!(room.add(bob, "m.room.power_levels", Some(""), raised.clone()).is_err());
        room.add("@alice:domain", "m.room.power_levels", Some(""), raised).unwrap();
        room.add(bob, "m.room.name", Some(""), json!({"name": "Bob's"})).unwrap();
        // Nobody may give more power than they hold.
        let too_much = json!({"users": {"@alice:domain": 100, bob: 100}, "state_default": 50});
        assert!(room.add(bob, "m.room.power_levels", Some(""), too_much).is_err());
    }
}
