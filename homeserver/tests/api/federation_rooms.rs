//! Rooms across two Hearth servers over loopback TLS: a user of one server joins a room on
//! the other (by id with `via`, and by alias), messages go both ways and arrive in /sync, and
//! messages sent while the peer was down all arrive, in order, once it is back.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, Session, TestApp, encode, spawn_federating};

both_backends!(
    a_remote_user_joins_and_messages_flow_both_ways,
    messages_sent_while_a_peer_is_down_arrive_after_it_returns,
    invites_cross_servers_both_ways,
    typing_presence_and_read_receipts_cross_servers,
    a_server_acl_shuts_a_server_out,
    a_join_through_one_server_reaches_the_others,
    invites_are_rejected_across_servers,
    knocks_cross_servers,
    history_from_before_the_join_is_backfilled,
    a_jump_to_a_date_before_the_join_fetches_that_history,
    a_remote_room_is_left_and_rejoined,
    to_device_messages_survive_a_restart_while_the_peer_is_down,
    a_version_1_or_2_room_spans_two_servers,
    a_returning_peer_is_retried_as_soon_as_it_calls,
);

/// Retries of failed sends after 100 ms, at most a second apart.
fn fast_retries(config: &mut hearth::Config) {
    config.federation.retry_min_ms = 100;
    config.federation.retry_max_ms = 1_000;
}

async fn pair(backend: Backend) -> Option<(TestApp, TestApp)> {
    let a = spawn_federating(backend, fast_retries).await?;
    let b = spawn_federating(backend, fast_retries).await?;
    Some((a, b))
}

/// Syncs until the room's timeline (from `since` on) holds message bodies satisfying `done`;
/// returns every message body seen, in order, and the last token. Bounded to 20 seconds.
async fn sync_until(
    app: &TestApp,
    user: &Session,
    room_id: &str,
    mut since: Option<String>,
    done: impl Fn(&[String]) -> bool,
) -> (Vec<String>, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut bodies = Vec::new();
    loop {
        let sync = app.sync(&user.token, since.as_deref(), 2_000).await;
        for event in crate::helpers::timeline(&sync, room_id) {
            if event["type"] == "m.room.message" {
                bodies.push(event["content"]["body"].as_str().unwrap_or_default().to_owned());
            }
        }
        since = Some(sync["next_batch"].as_str().unwrap().to_owned());
        if done(&bodies) {
            return (bodies, since.unwrap());
        }
        assert!(Instant::now() < deadline, "timed out; saw {bodies:?}");
    }
}

async fn a_remote_user_joins_and_messages_flow_both_ways(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let room_id = b
        .create_room(&bob.token, json!({"preset": "public_chat", "name": "Across", "room_alias_name": "across"}))
        .await;
    b.send_text(&bob.token, &room_id, "before you came").await;

    // Alice joins through B, by room id with via.
    let path = format!("/_matrix/client/v3/join/{}?via={}", encode(&room_id), encode(b.server_name()));
    let (status, joined) = a.post(&path, Some(&alice.token), json!({})).await;
    assert_eq!((status, joined["room_id"].as_str()), (StatusCode::OK, Some(room_id.as_str())), "{joined}");

    // A knows the room's state: its name, both members.
    let (status, name) = a.get(&a.room_path(&room_id, "state/m.room.name/"), Some(&alice.token)).await;
    assert_eq!((status, name["name"].as_str()), (StatusCode::OK, Some("Across")), "{name}");
    let (status, members) = a.get(&a.room_path(&room_id, "joined_members"), Some(&alice.token)).await;
    assert_eq!(status, StatusCode::OK, "{members}");
    let joined = members["joined"].as_object().unwrap();
    assert!(joined.contains_key(&alice.user_id) && joined.contains_key(&bob.user_id), "{members}");

    // B's side sees Alice's join.
    let (_, members) = b.get(&b.room_path(&room_id, "joined_members"), Some(&bob.token)).await;
    assert!(members["joined"].as_object().unwrap().contains_key(&alice.user_id), "{members}");

    // Messages both ways, each arriving in the other server's /sync.
    let (_, a_token) = sync_until(&a, &alice, &room_id, None, |_| true).await;
    let (_, b_token) = sync_until(&b, &bob, &room_id, None, |_| true).await;
    b.send_text(&bob.token, &room_id, "hello from B").await;
    let (seen, _) = sync_until(&a, &alice, &room_id, Some(a_token), |seen| seen.contains(&"hello from B".into())).await;
    assert_eq!(seen, ["hello from B"]);
    a.send_text(&alice.token, &room_id, "hello from A").await;
    let (seen, _) = sync_until(&b, &bob, &room_id, Some(b_token), |seen| seen.contains(&"hello from A".into())).await;
    assert_eq!(seen, ["hello from B", "hello from A"], "Bob's own message, then Alice's");

    // A second user of A joins by alias: A is in the room now, so that join is local and
    // reaches B like any event.
    let carol = a.register("carol").await;
    let alias = format!("#across:{}", b.server_name());
    let (status, body) =
        a.post(&format!("/_matrix/client/v3/join/{}", encode(&alias)), Some(&carol.token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, members) = b.get(&b.room_path(&room_id, "joined_members"), Some(&bob.token)).await;
        if members["joined"].as_object().is_some_and(|joined| joined.contains_key(&carol.user_id)) {
            break;
        }
        assert!(Instant::now() < deadline, "Carol's join never reached B: {members}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Room versions 1 and 2 (events carry ids their server gave them and cite others as [id,
/// hashes] pairs): a user of A joins B's room, messages and a redaction cross both ways.
async fn a_version_1_or_2_room_spans_two_servers(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    for version in ["1", "2"] {
        let room_id = b.create_room(&bob.token, json!({"preset": "public_chat", "room_version": version})).await;
        let path = format!("/_matrix/client/v3/join/{}?via={}", encode(&room_id), encode(b.server_name()));
        let (status, joined) = a.post(&path, Some(&alice.token), json!({})).await;
        assert_eq!(status, StatusCode::OK, "v{version}: {joined}");
        let (_, a_token) = sync_until(&a, &alice, &room_id, None, |_| true).await;
        let (_, b_token) = sync_until(&b, &bob, &room_id, None, |_| true).await;
        let from_b = b.send_text(&bob.token, &room_id, "from B").await;
        assert!(from_b.ends_with(&format!(":{}", b.server_name())), "{from_b}");
        sync_until(&a, &alice, &room_id, Some(a_token), |seen| seen.contains(&"from B".into())).await;
        let from_a = a.send_text(&alice.token, &room_id, "from A").await;
        assert!(from_a.ends_with(&format!(":{}", a.server_name())), "{from_a}");
        sync_until(&b, &bob, &room_id, Some(b_token), |seen| seen.contains(&"from A".into())).await;
        // Alice deletes her message; B shows it redacted.
        let redact = a.room_path(&room_id, &format!("redact/{}/r{version}", encode(&from_a)));
        let (status, body) = a.put(&redact, Some(&alice.token), json!({})).await;
        assert_eq!(status, StatusCode::OK, "v{version}: {body}");
        let event_path = b.room_path(&room_id, &format!("event/{}", encode(&from_a)));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, event) = b.get(&event_path, Some(&bob.token)).await;
            if event["content"] == json!({}) {
                break;
            }
            assert!(Instant::now() < deadline, "v{version}: the redaction never reached B: {event}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Alice (on A) joins Bob's public room on B; her sync token once she is in.
async fn alice_joins_bobs_room(a: &TestApp, b: &TestApp) -> (Session, Session, String, String) {
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let room_id = b.create_room(&bob.token, json!({"preset": "public_chat"})).await;
    let path = format!("/_matrix/client/v3/join/{}?via={}", encode(&room_id), encode(b.server_name()));
    assert_eq!(a.post(&path, Some(&alice.token), json!({})).await.0, StatusCode::OK);
    let (_, token) = sync_until(a, &alice, &room_id, None, |_| true).await;
    (alice, bob, room_id, token)
}

async fn messages_sent_while_a_peer_is_down_arrive_after_it_returns(backend: Backend) {
    let Some((mut a, b)) = pair(backend).await else { return };
    let (alice, bob, room_id, token) = alice_joins_bobs_room(&a, &b).await;

    // A goes down; B keeps sending, and its users are not held up by the dead peer.
    a.shutdown.trigger();
    a.server.take().unwrap().await.unwrap().unwrap();
    let sent: Vec<String> = (0..10).map(|i| format!("while you were away {i}")).collect();
    let started = Instant::now();
    for body in &sent {
        b.send_text(&bob.token, &room_id, body).await;
    }
    assert!(started.elapsed() < Duration::from_secs(5), "sending to a room with a dead peer stays fast");

    // A comes back (same port, same data); every message arrives, in order, none twice.
    a.restart().await;
    let (seen, _) = sync_until(&a, &alice, &room_id, Some(token), |seen| seen.len() >= sent.len()).await;
    assert_eq!(seen, sent);
}

/// B backs off for a minute after failing to reach A; when A is back and sends B something,
/// B retries at once instead of waiting the minute out.
async fn a_returning_peer_is_retried_as_soon_as_it_calls(backend: Backend) {
    let Some(mut a) = spawn_federating(backend, fast_retries).await else { return };
    let Some(b) = spawn_federating(backend, |config| {
        config.federation.retry_min_ms = 60_000;
        config.federation.retry_max_ms = 600_000;
    })
    .await
    else {
        return;
    };
    let (alice, bob, room_id, token) = alice_joins_bobs_room(&a, &b).await;

    a.shutdown.trigger();
    a.server.take().unwrap().await.unwrap().unwrap();
    b.send_text(&bob.token, &room_id, "sent while A was down").await;
    // Long enough for B to have tried A, failed and backed off for a minute.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    a.restart().await;
    let started = Instant::now();
    a.send_text(&alice.token, &room_id, "I am back").await;
    let (seen, _) =
        sync_until(&a, &alice, &room_id, Some(token), |seen| seen.contains(&"sent while A was down".into())).await;
    assert!(seen.contains(&"sent while A was down".into()), "{seen:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "B retried A when A called, not after its backoff");
}

/// Syncs until the user holds an invite to `room_id`; returns its invite_state events.
async fn invited(app: &TestApp, user: &Session, room_id: &str) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut since: Option<String> = None;
    loop {
        let sync = app.sync(&user.token, since.as_deref(), 2_000).await;
        if let Some(events) = sync["rooms"]["invite"][room_id]["invite_state"]["events"].as_array() {
            return events.clone();
        }
        since = sync["next_batch"].as_str().map(str::to_owned);
        assert!(Instant::now() < deadline, "no invite to {room_id} arrived");
    }
}

async fn invites_cross_servers_both_ways(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;

    // Bob (on B) invites Alice (on A) into a private DM: she sees it with the room's name and
    // joins without naming a server.
    let dm =
        b.create_room(&bob.token, json!({"preset": "private_chat", "is_direct": true, "name": "Bob and Alice"})).await;
    let (status, body) = b.post(&b.room_path(&dm, "invite"), Some(&bob.token), json!({"user_id": alice.user_id})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let state = invited(&a, &alice, &dm).await;
    assert!(state.iter().any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Bob and Alice"), "{state:?}");
    assert!(state.iter().any(|e| e["type"] == "m.room.member" && e["sender"] == bob.user_id.as_str()), "{state:?}");
    let (status, body) = a.join(&alice.token, &dm).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    b.send_text(&bob.token, &dm, "you made it").await;
    sync_until(&a, &alice, &dm, None, |seen| seen.contains(&"you made it".into())).await;

    // Alice invites Bob into a private room on A; he joins through A.
    let room = a.create_room(&alice.token, json!({"preset": "private_chat", "name": "Alice's"})).await;
    let (status, body) =
        a.post(&a.room_path(&room, "invite"), Some(&alice.token), json!({"user_id": bob.user_id})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    invited(&b, &bob, &room).await;
    let (status, body) = b.join(&bob.token, &room).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    b.send_text(&bob.token, &room, "thanks for the invite").await;
    sync_until(&a, &alice, &room, None, |seen| seen.contains(&"thanks for the invite".into())).await;

    // Inviting a user who does not exist on the other server fails cleanly.
    let nobody = format!("@nobody:{}", b.server_name());
    let (status, body) = a.post(&a.room_path(&room, "invite"), Some(&alice.token), json!({"user_id": nobody})).await;
    assert_eq!((status, body["errcode"].as_str()), (StatusCode::NOT_FOUND, Some("M_NOT_FOUND")), "{body}");
}

/// Syncs until the room's ephemeral events satisfy `done`.
async fn ephemeral_until(app: &TestApp, user: &Session, room_id: &str, done: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut since: Option<String> = None;
    loop {
        let sync = app.sync(&user.token, since.as_deref(), 2_000).await;
        for event in sync["rooms"]["join"][room_id]["ephemeral"]["events"].as_array().into_iter().flatten() {
            if done(event) {
                return;
            }
        }
        since = sync["next_batch"].as_str().map(str::to_owned);
        assert!(Instant::now() < deadline, "the ephemeral event never arrived");
    }
}

async fn typing_presence_and_read_receipts_cross_servers(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let room_id = b.create_room(&bob.token, json!({"preset": "public_chat"})).await;
    let path = format!("/_matrix/client/v3/join/{}?via={}", encode(&room_id), encode(b.server_name()));
    assert_eq!(a.post(&path, Some(&alice.token), json!({})).await.0, StatusCode::OK);

    // Alice types on A; Bob on B sees it.
    let typing = a.room_path(&room_id, &format!("typing/{}", encode(&alice.user_id)));
    let (status, body) = a.put(&typing, Some(&alice.token), json!({"typing": true, "timeout": 10_000})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let alice_id = alice.user_id.clone();
    ephemeral_until(&b, &bob, &room_id, |event| {
        event["type"] == "m.typing"
            && event["content"]["user_ids"].as_array().is_some_and(|ids| ids.iter().any(|id| id == alice_id.as_str()))
    })
    .await;

    // Presence: Bob's status on B shows in Alice's sync on A.
    let presence = format!("/_matrix/client/v3/presence/{}/status", encode(&bob.user_id));
    let status = b.put(&presence, Some(&bob.token), json!({"presence": "unavailable", "status_msg": "back soon"}));
    assert_eq!(status.await.0, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut since: Option<String> = None;
    loop {
        let sync = a.sync(&alice.token, since.as_deref(), 2_000).await;
        let events = sync["presence"]["events"].as_array().cloned().unwrap_or_default();
        if events.iter().any(|e| {
            e["sender"] == bob.user_id.as_str()
                && e["content"]["presence"] == "unavailable"
                && e["content"]["status_msg"] == "back soon"
        }) {
            break;
        }
        since = sync["next_batch"].as_str().map(str::to_owned);
        assert!(Instant::now() < deadline, "Bob's presence never reached A: {sync}");
    }

    // Bob reads Alice's message on B; Alice sees his read receipt on A.
    let event_id = a.send_text(&alice.token, &room_id, "did you read this?").await;
    sync_until(&b, &bob, &room_id, None, |seen| seen.contains(&"did you read this?".into())).await;
    let receipt = b.room_path(&room_id, &format!("receipt/m.read/{}", encode(&event_id)));
    assert_eq!(b.post(&receipt, Some(&bob.token), json!({})).await.0, StatusCode::OK);
    let bob_id = bob.user_id.clone();
    ephemeral_until(&a, &alice, &room_id, |event| {
        event["type"] == "m.receipt" && event["content"][&event_id]["m.read"][&bob_id].is_object()
    })
    .await;
}

async fn a_server_acl_shuts_a_server_out(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let room_id = b.create_room(&bob.token, json!({"preset": "public_chat"})).await;
    let path = format!("/_matrix/client/v3/join/{}?via={}", encode(&room_id), encode(b.server_name()));
    assert_eq!(a.post(&path, Some(&alice.token), json!({})).await.0, StatusCode::OK);
    a.send_text(&alice.token, &room_id, "before the ACL").await;
    let (_, token) = sync_until(&b, &bob, &room_id, None, |seen| seen.contains(&"before the ACL".into())).await;

    // Bob bans A's host (ports do not matter) from the room.
    let acl = b.room_path(&room_id, "state/m.room.server_acl/");
    let (status, body) =
        b.put(&acl, Some(&bob.token), json!({"allow": ["*"], "deny": ["127.0.0.1"], "allow_ip_literals": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    a.send_text(&alice.token, &room_id, "after the ACL").await;
    b.send_text(&bob.token, &room_id, "marker").await;
    let (seen, _) = sync_until(&b, &bob, &room_id, Some(token), |seen| seen.contains(&"marker".into())).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, messages) = b.get(&b.room_path(&room_id, "messages?dir=b&limit=20"), Some(&bob.token)).await;
    let bodies: Vec<&str> =
        messages["chunk"].as_array().unwrap().iter().filter_map(|e| e["content"]["body"].as_str()).collect();
    assert!(!bodies.contains(&"after the ACL") && !seen.contains(&"after the ACL".into()), "{bodies:?}");

    // A new user of A joining (locally, A is in the room) never becomes a member on B.
    let carol = a.register("carol").await;
    assert_eq!(a.post(&path, Some(&carol.token), json!({})).await.0, StatusCode::OK);
    b.send_text(&bob.token, &room_id, "second marker").await;
    sync_until(&b, &bob, &room_id, None, |seen| seen.contains(&"second marker".into())).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, members) = b.get(&b.room_path(&room_id, "joined_members"), Some(&bob.token)).await;
    assert!(!members["joined"].as_object().unwrap().contains_key(&carol.user_id), "{members}");

    // Nor may A invite B's users into the room: B refuses to countersign the invite.
    let dave = b.register("dave").await;
    let invite = a.room_path(&room_id, "invite");
    let (status, body) = a.post(&invite, Some(&alice.token), json!({"user_id": dave.user_id})).await;
    assert_ne!(status, StatusCode::OK, "{body}");
    let sync = b.sync(&dave.token, None, 0).await;
    assert!(sync["rooms"]["invite"].get(&room_id).is_none(), "{sync}");
}

async fn a_join_through_one_server_reaches_the_others(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let Some(c) = spawn_federating(backend, fast_retries).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let carol = c.register("carol").await;
    let room_id = b.create_room(&bob.token, json!({"preset": "public_chat"})).await;
    let via_b = format!("/_matrix/client/v3/join/{}?via={}", encode(&room_id), encode(b.server_name()));
    assert_eq!(a.post(&via_b, Some(&alice.token), json!({})).await.0, StatusCode::OK);
    // Carol joins through B only; A hears of her join from B, so Alice's messages reach C.
    assert_eq!(c.post(&via_b, Some(&carol.token), json!({})).await.0, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, members) = a.get(&a.room_path(&room_id, "joined_members"), Some(&alice.token)).await;
        if members["joined"].as_object().is_some_and(|joined| joined.contains_key(&carol.user_id)) {
            break;
        }
        assert!(Instant::now() < deadline, "A never heard of Carol's join: {members}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.send_text(&alice.token, &room_id, "hello Carol, from A").await;
    sync_until(&c, &carol, &room_id, None, |seen| seen.contains(&"hello Carol, from A".into())).await;
}

/// Syncs until `room_id` shows in the user's sync under `section` (`invite`, `knock`, `leave`);
/// returns that entry. Starts from `since` when given (a leave shows only in incremental syncs:
/// pass a token from before it).
async fn in_section(
    app: &TestApp,
    user: &Session,
    section: &str,
    room_id: &str,
    mut since: Option<String>,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sync = app.sync(&user.token, since.as_deref(), 2_000).await;
        if let Some(entry) = sync["rooms"][section].get(room_id) {
            return entry.clone();
        }
        since = sync["next_batch"].as_str().map(str::to_owned);
        assert!(Instant::now() < deadline, "{room_id} never showed under rooms.{section}");
    }
}

/// Waits until `app` holds `membership` for `user_id` in `room_id` (read by `viewer`).
async fn membership_becomes(app: &TestApp, viewer: &Session, room_id: &str, user_id: &str, membership: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let path = app.room_path(room_id, &format!("state/m.room.member/{}", encode(user_id)));
    loop {
        let (_, content) = app.get(&path, Some(&viewer.token)).await;
        if content["membership"] == membership {
            return;
        }
        assert!(Instant::now() < deadline, "{user_id} never became {membership}: {content}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn invites_are_rejected_across_servers(backend: Backend) {
    let Some((a, mut b)) = pair(backend).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;

    // Bob invites Alice; she rejects through B (make_leave/send_leave): B sees her leave, her
    // sync moves the room to `leave` with the rejection in its timeline.
    let room = b.create_room(&bob.token, json!({"preset": "private_chat", "name": "Declined"})).await;
    let invite = b.room_path(&room, "invite");
    assert_eq!(b.post(&invite, Some(&bob.token), json!({"user_id": alice.user_id})).await.0, StatusCode::OK);
    invited(&a, &alice, &room).await;
    let first = a.sync(&alice.token, None, 0).await;
    let (status, body) = a.post(&a.room_path(&room, "leave"), Some(&alice.token), json!({"reason": "no thanks"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    membership_becomes(&b, &bob, &room, &alice.user_id, "leave").await;
    let sync = a.sync(&alice.token, first["next_batch"].as_str(), 5_000).await;
    let left = &sync["rooms"]["leave"][&room]["timeline"]["events"];
    assert!(
        left.as_array().is_some_and(|events| events.iter().any(|e| e["content"]["membership"] == "leave"
            && e["content"]["reason"] == "no thanks"
            && e["state_key"] == alice.user_id.as_str())),
        "{sync}"
    );
    assert!(sync["rooms"]["invite"].get(&room).is_none(), "{sync}");

    // Invited again, she can still accept.
    assert_eq!(b.post(&invite, Some(&bob.token), json!({"user_id": alice.user_id})).await.0, StatusCode::OK);
    invited(&a, &alice, &room).await;
    assert_eq!(a.join(&alice.token, &room).await.0, StatusCode::OK);
    membership_becomes(&b, &bob, &room, &alice.user_id, "join").await;

    // Bob withdraws an invite (kicks the invitee): Alice's invite is gone on A too.
    let withdrawn = b.create_room(&bob.token, json!({"preset": "private_chat"})).await;
    let invite = b.room_path(&withdrawn, "invite");
    assert_eq!(b.post(&invite, Some(&bob.token), json!({"user_id": alice.user_id})).await.0, StatusCode::OK);
    invited(&a, &alice, &withdrawn).await;
    let before = a.sync(&alice.token, None, 0).await["next_batch"].as_str().map(str::to_owned);
    let kick = b.room_path(&withdrawn, "kick");
    assert_eq!(b.post(&kick, Some(&bob.token), json!({"user_id": alice.user_id})).await.0, StatusCode::OK);
    in_section(&a, &alice, "leave", &withdrawn, before).await;

    // With B down, rejecting still rids Alice of the invite (a leave signed on A alone).
    let stranded = b.create_room(&bob.token, json!({"preset": "private_chat"})).await;
    let invite = b.room_path(&stranded, "invite");
    assert_eq!(b.post(&invite, Some(&bob.token), json!({"user_id": alice.user_id})).await.0, StatusCode::OK);
    invited(&a, &alice, &stranded).await;
    b.shutdown.trigger();
    b.server.take().unwrap().await.unwrap().unwrap();
    let (status, body) = a.post(&a.room_path(&stranded, "leave"), Some(&alice.token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, joined) = a.get("/_matrix/client/v3/joined_rooms", Some(&alice.token)).await;
    assert!(!joined["joined_rooms"].as_array().unwrap().iter().any(|id| id == stranded.as_str()), "{joined}");
    // Leaving a room she was never invited to stays an error.
    let (status, body) = a.post(&a.room_path("!nowhere:example.org", "leave"), Some(&alice.token), json!({})).await;
    assert_eq!((status, body["errcode"].as_str()), (StatusCode::FORBIDDEN, Some("M_FORBIDDEN")), "{body}");
}

async fn knocks_cross_servers(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let room = b
        .create_room(
            &bob.token,
            json!({"preset": "private_chat", "name": "Knock first",
                   "initial_state": [{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}]}),
        )
        .await;
    let knock = format!("/_matrix/client/v3/knock/{}?via={}", encode(&room), encode(b.server_name()));

    // Alice knocks through B: she sees the room's name under `knock`; Bob sees her knock.
    let (status, body) = a.post(&knock, Some(&alice.token), json!({"reason": "let me in"})).await;
    assert_eq!((status, body["room_id"].as_str()), (StatusCode::OK, Some(room.as_str())), "{body}");
    let entry = in_section(&a, &alice, "knock", &room, None).await;
    let state = entry["knock_state"]["events"].as_array().unwrap();
    assert!(state.iter().any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Knock first"), "{entry}");
    membership_becomes(&b, &bob, &room, &alice.user_id, "knock").await;

    // Carol knocks and is refused (Bob kicks the knock): her sync shows the room as left.
    let carol = a.register("carol").await;
    let (status, body) = a.post(&knock, Some(&carol.token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    membership_becomes(&b, &bob, &room, &carol.user_id, "knock").await;
    let before = a.sync(&carol.token, None, 0).await["next_batch"].as_str().map(str::to_owned);
    let kick = b.room_path(&room, "kick");
    assert_eq!(b.post(&kick, Some(&bob.token), json!({"user_id": carol.user_id})).await.0, StatusCode::OK);
    in_section(&a, &carol, "leave", &room, before).await;

    // Dave knocks and thinks better of it: his leave reaches B.
    let dave = a.register("dave").await;
    assert_eq!(a.post(&knock, Some(&dave.token), json!({})).await.0, StatusCode::OK);
    membership_becomes(&b, &bob, &room, &dave.user_id, "knock").await;
    let (status, body) = a.post(&a.room_path(&room, "leave"), Some(&dave.token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    membership_becomes(&b, &bob, &room, &dave.user_id, "leave").await;

    // Bob lets Alice in with an invite; she joins.
    let invite = b.room_path(&room, "invite");
    assert_eq!(b.post(&invite, Some(&bob.token), json!({"user_id": alice.user_id})).await.0, StatusCode::OK);
    invited(&a, &alice, &room).await;
    assert_eq!(a.join(&alice.token, &room).await.0, StatusCode::OK);
    membership_becomes(&b, &bob, &room, &alice.user_id, "join").await;

    // Knocking on a room that does not allow it is refused by its server.
    let closed = b.create_room(&bob.token, json!({"preset": "private_chat"})).await;
    let knock = format!("/_matrix/client/v3/knock/{}?via={}", encode(&closed), encode(b.server_name()));
    let (status, body) = a.post(&knock, Some(&carol.token), json!({})).await;
    assert_eq!((status, body["errcode"].as_str()), (StatusCode::FORBIDDEN, Some("M_FORBIDDEN")), "{body}");
}

async fn history_from_before_the_join_is_backfilled(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let room_id = b.create_room(&bob.token, json!({"preset": "public_chat", "name": "Old news"})).await;
    let earlier: Vec<String> = (0..30).map(|i| format!("earlier {i}")).collect();
    for body in &earlier {
        b.send_text(&bob.token, &room_id, body).await;
    }
    b.put(&b.room_path(&room_id, "state/m.room.topic/"), Some(&bob.token), json!({"topic": "history"})).await;
    let path = format!("/_matrix/client/v3/join/{}?via={}", encode(&room_id), encode(b.server_name()));
    assert_eq!(a.post(&path, Some(&alice.token), json!({})).await.0, StatusCode::OK);
    a.send_text(&alice.token, &room_id, "after joining").await;

    // Alice pages back from now: her own message, her join, then B's history (asked of B as she
    // goes), down to the room's creation.
    let mut bodies = Vec::new();
    let mut types = Vec::new();
    let mut from: Option<String> = None;
    for _ in 0..20 {
        let mut query = "messages?dir=b&limit=10".to_owned();
        if let Some(token) = &from {
            query = format!("{query}&from={}", encode(token));
        }
        let (status, page) = a.get(&a.room_path(&room_id, &query), Some(&alice.token)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for event in page["chunk"].as_array().unwrap() {
            types.push(event["type"].as_str().unwrap().to_owned());
            if let Some(body) = event["content"]["body"].as_str() {
                bodies.push(body.to_owned());
            }
        }
        from = page["end"].as_str().map(str::to_owned);
        if from.is_none() {
            break;
        }
    }
    let mut expected: Vec<String> = earlier.iter().rev().cloned().collect();
    expected.insert(0, "after joining".to_owned());
    assert_eq!(bodies, expected, "every message once, newest first");
    assert_eq!(types.last().map(String::as_str), Some("m.room.create"), "{types:?}");
    assert_eq!(types.iter().filter(|t| *t == "m.room.create").count(), 1, "{types:?}");
    assert!(types.contains(&"m.room.topic".to_owned()), "{types:?}");

    // Paging forwards from the start reads the same history, oldest first, without asking B.
    let (status, page) = a.get(&a.room_path(&room_id, "messages?dir=f&limit=100"), Some(&alice.token)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let forward: Vec<&str> =
        page["chunk"].as_array().unwrap().iter().filter_map(|e| e["content"]["body"].as_str()).collect();
    let oldest_first: Vec<&str> = expected.iter().rev().map(String::as_str).collect();
    assert_eq!(forward, oldest_first);
}

async fn a_jump_to_a_date_before_the_join_fetches_that_history(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let room_id = b.create_room(&bob.token, json!({"preset": "public_chat"})).await;
    let mut sent = Vec::new();
    for i in 0..30 {
        let event_id = b.send_text(&bob.token, &room_id, &format!("old {i}")).await;
        let (_, event) = b.get(&b.room_path(&room_id, &format!("event/{}", encode(&event_id))), Some(&bob.token)).await;
        sent.push((event_id, event["origin_server_ts"].as_i64().unwrap()));
        // Distinct timestamps, so each message is the one nearest its own.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let path = format!("/_matrix/client/v3/join/{}?via={}", encode(&room_id), encode(b.server_name()));
    assert_eq!(a.post(&path, Some(&alice.token), json!({})).await.0, StatusCode::OK);

    // Alice jumps to the time of Bob's sixth message: A holds nothing that old, asks B for the
    // history back to then, and answers with that message, which /context then shows.
    let (target, ts) = &sent[5];
    for dir in ["f", "b"] {
        let path = format!("/_matrix/client/v1/rooms/{}/timestamp_to_event?ts={ts}&dir={dir}", encode(&room_id));
        let (status, found) = a.get(&path, Some(&alice.token)).await;
        assert_eq!(status, StatusCode::OK, "{found}");
        assert_eq!(found["event_id"], target.as_str(), "dir={dir}: {found}");
        assert_eq!(found["origin_server_ts"], *ts);
    }
    let context = a.room_path(&room_id, &format!("context/{}?limit=2", encode(target)));
    let (status, around) = a.get(&context, Some(&alice.token)).await;
    assert_eq!(status, StatusCode::OK, "{around}");
    assert_eq!(around["event"]["content"]["body"], "old 5");
    assert_eq!(around["events_before"][0]["content"]["body"], "old 4", "{around}");
    assert_eq!(around["events_after"][0]["content"]["body"], "old 6", "{around}");
}

async fn a_remote_room_is_left_and_rejoined(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let carol = b.register("carol").await;
    let room_id = b.create_room(&bob.token, json!({"preset": "public_chat", "name": "Club"})).await;
    let via_b = format!("/_matrix/client/v3/join/{}?via={}", encode(&room_id), encode(b.server_name()));
    assert_eq!(a.post(&via_b, Some(&alice.token), json!({})).await.0, StatusCode::OK);

    // Alice leaves; while A is out of the room, it is renamed and Carol joins.
    assert_eq!(a.post(&a.room_path(&room_id, "leave"), Some(&alice.token), json!({})).await.0, StatusCode::OK);
    membership_becomes(&b, &bob, &room_id, &alice.user_id, "leave").await;
    let rename = b.room_path(&room_id, "state/m.room.name/");
    assert_eq!(b.put(&rename, Some(&bob.token), json!({"name": "Club, renamed"})).await.0, StatusCode::OK);
    assert_eq!(b.join(&carol.token, &room_id).await.0, StatusCode::OK);
    b.send_text(&bob.token, &room_id, "you missed this").await;

    // She rejoins through B: A takes in the room's state as it is now.
    let (status, body) = a.post(&via_b, Some(&alice.token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, name) = a.get(&a.room_path(&room_id, "state/m.room.name/"), Some(&alice.token)).await;
    assert_eq!(name["name"], "Club, renamed");
    let (_, members) = a.get(&a.room_path(&room_id, "joined_members"), Some(&alice.token)).await;
    let mut joined: Vec<&String> = members["joined"].as_object().unwrap().keys().collect();
    joined.sort();
    let mut expected = vec![&alice.user_id, &bob.user_id, &carol.user_id];
    expected.sort();
    assert_eq!(joined, expected, "{members}");
    membership_becomes(&b, &bob, &room_id, &alice.user_id, "join").await;
    b.send_text(&bob.token, &room_id, "welcome back").await;
    sync_until(&a, &alice, &room_id, None, |seen| seen.contains(&"welcome back".into())).await;
    a.send_text(&alice.token, &room_id, "glad to be back").await;
    sync_until(&b, &carol, &room_id, None, |seen| seen.contains(&"glad to be back".into())).await;

    // Out again, then invited back: the invite reaches her although A is no longer in the room,
    // and she accepts it without naming a server.
    assert_eq!(a.post(&a.room_path(&room_id, "leave"), Some(&alice.token), json!({})).await.0, StatusCode::OK);
    membership_becomes(&b, &bob, &room_id, &alice.user_id, "leave").await;
    let invite = b.room_path(&room_id, "invite");
    assert_eq!(b.post(&invite, Some(&bob.token), json!({"user_id": alice.user_id})).await.0, StatusCode::OK);
    let state = invited(&a, &alice, &room_id).await;
    assert!(state.iter().any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Club, renamed"), "{state:?}");
    let (status, body) = a.join(&alice.token, &room_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    membership_becomes(&b, &bob, &room_id, &alice.user_id, "join").await;

    // Out once more, invited, and this time she declines: B hears it.
    assert_eq!(a.post(&a.room_path(&room_id, "leave"), Some(&alice.token), json!({})).await.0, StatusCode::OK);
    membership_becomes(&b, &bob, &room_id, &alice.user_id, "leave").await;
    assert_eq!(b.post(&invite, Some(&bob.token), json!({"user_id": alice.user_id})).await.0, StatusCode::OK);
    membership_becomes(&b, &bob, &room_id, &alice.user_id, "invite").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = a.post(&a.room_path(&room_id, "leave"), Some(&alice.token), json!({})).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "the invite never reached A: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    membership_becomes(&b, &bob, &room_id, &alice.user_id, "leave").await;
}

async fn to_device_messages_survive_a_restart_while_the_peer_is_down(backend: Backend) {
    let Some((mut a, mut b)) = pair(backend).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let since = b.sync(&bob.token, None, 0).await["next_batch"].as_str().unwrap().to_owned();

    // B is down when Alice sends Bob's device a message (a room key, say); then A restarts.
    b.shutdown.trigger();
    b.server.take().unwrap().await.unwrap().unwrap();
    let path = "/_matrix/client/v3/sendToDevice/m.room_key_request/txn1";
    let body = json!({"messages": {&bob.user_id: {&bob.device_id: {"secret": "for Bob only"}}}});
    let (status, answer) = a.put(path, Some(&alice.token), body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    a.restart().await;

    // B comes back: the message, kept by A through its restart, arrives once.
    b.restart().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut since = since;
    let mut received = Vec::new();
    while received.is_empty() {
        let sync = b.sync(&bob.token, Some(&since), 2_000).await;
        since = sync["next_batch"].as_str().unwrap().to_owned();
        received.extend(sync["to_device"]["events"].as_array().cloned().unwrap_or_default());
        assert!(Instant::now() < deadline, "the to-device message never arrived");
    }
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["sender"], alice.user_id.as_str());
    assert_eq!(received[0]["content"]["secret"], "for Bob only");
}
