//! End-to-end encryption endpoints on both backends: keys upload, query and claim (one-time
//! keys handed out exactly once under concurrency, then the fallback key), device list tracking
//! in /sync and /keys/changes, to-device messages across sync boundaries, cross-signing keys and
//! signatures, key backup, and who may see or do what.

use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use reqwest::StatusCode;
use ruma::signatures::Ed25519KeyPair;
use serde_json::{Value, json};

use crate::helpers::{Backend, Session, TestApp, assert_error, password_auth, spawn_app, spawn_app_with};

both_backends!(
    keys_are_uploaded_queried_and_claimed,
    each_one_time_key_goes_to_exactly_one_claimer,
    to_device_messages_arrive_once_and_are_never_lost,
    device_list_changes_reach_those_who_share_a_room,
    cross_signing_keys_and_signatures_are_checked_and_published,
    key_backup_keeps_the_best_copy_of_each_session,
    encryption_endpoints_need_a_token_and_valid_input,
    an_encrypted_room_stays_encrypted,
    stream_positions_are_not_reused_after_a_restart,
    a_dehydrated_device_receives_keys_while_nobody_is_logged_in,
    a_server_name_with_a_port_is_still_local,
);

pub(crate) struct Key {
    pair: Ed25519KeyPair,
    public: String,
}

/// An ed25519 key whose id is `ed25519:<id>` (the public key itself when `id` is None, as
/// cross-signing keys are named).
pub(crate) fn key(id: Option<&str>) -> Key {
    let der = Ed25519KeyPair::generate();
    let public = STANDARD_NO_PAD.encode(Ed25519KeyPair::from_der(&der, "x".into()).unwrap().public_key());
    let pair = Ed25519KeyPair::from_der(&der, id.map_or(public.clone(), str::to_owned)).unwrap();
    Key { pair, public }
}

pub(crate) fn sign(value: Value, signer: &str, key: &Key) -> Value {
    let mut object = hearth_federation::to_canonical_object(value).unwrap();
    ruma::signatures::sign_json(signer, &key.pair, &mut object).unwrap();
    serde_json::to_value(object).unwrap()
}

/// Signed device keys for the session's device; returns them with the device's signing key.
fn device_keys(user: &Session) -> (Value, Key) {
    let signing = key(Some(&user.device_id));
    let keys = json!({
        "user_id": user.user_id,
        "device_id": user.device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            format!("curve25519:{}", user.device_id): STANDARD_NO_PAD.encode(rand_bytes()),
            format!("ed25519:{}", user.device_id): signing.public,
        },
    });
    (sign(keys, &user.user_id, &signing), signing)
}

fn rand_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for b in &mut bytes {
        *b = rand::random();
    }
    bytes
}

fn one_time_keys(prefix: &str, count: usize) -> Value {
    let keys: serde_json::Map<String, Value> = (0..count)
        .map(|i| {
            (format!("signed_curve25519:{prefix}{i:03}"), json!({"key": format!("{prefix}-key-{i}"), "signatures": {}}))
        })
        .collect();
    Value::Object(keys)
}

async fn upload(app: &TestApp, user: &Session, body: Value) -> (StatusCode, Value) {
    app.post("/_matrix/client/v3/keys/upload", Some(&user.token), body).await
}

async fn claim(app: &TestApp, claimer: &Session, owner: &Session) -> Value {
    let (status, body) = app
        .post(
            "/_matrix/client/v3/keys/claim",
            Some(&claimer.token),
            json!({"one_time_keys": {owner.user_id.clone(): {owner.device_id.clone(): "signed_curve25519"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["one_time_keys"][&owner.user_id][&owner.device_id].clone()
}

async fn keys_are_uploaded_queried_and_claimed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let (keys, _) = device_keys(&alice);
    let (status, body) =
        upload(&app, &alice, json!({"device_keys": keys, "one_time_keys": one_time_keys("a", 3)})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["one_time_key_counts"]["signed_curve25519"], 3);
    // Uploading the same keys again changes nothing; another key under a used id is refused.
    let (status, body) = upload(&app, &alice, json!({"one_time_keys": one_time_keys("a", 3)})).await;
    assert_eq!((status, body["one_time_key_counts"]["signed_curve25519"].clone()), (StatusCode::OK, json!(3)));
    let conflict = upload(&app, &alice, json!({"one_time_keys": {"signed_curve25519:a000": {"key": "other"}}})).await;
    assert_error(&conflict, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let (_, fallback) = device_keys(&alice);
    let fallback_key = json!({"key": fallback.public, "fallback": true, "signatures": {}});
    let (status, _) = upload(&app, &alice, json!({"fallback_keys": {"signed_curve25519:fb1": fallback_key}})).await;
    assert_eq!(status, StatusCode::OK);

    // Bob sees Alice's device exactly as uploaded, with its display name beside it once it has one.
    let (status, query) = app
        .post("/_matrix/client/v3/keys/query", Some(&bob.token), json!({"device_keys": {alice.user_id.clone(): []}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{query}");
    let device = &query["device_keys"][&alice.user_id][&alice.device_id];
    assert_eq!(device["keys"], keys["keys"]);
    assert_eq!(device["signatures"], keys["signatures"]);
    assert!(device["unsigned"].get("device_display_name").is_none(), "no name, no field (not null): {device}");
    assert_eq!(query["failures"], json!({}));
    let path = format!("/_matrix/client/v3/devices/{}", alice.device_id);
    assert_eq!(app.put(&path, Some(&alice.token), json!({"display_name": "Alice's phone"})).await.0, StatusCode::OK);
    let (_, named) = app
        .post("/_matrix/client/v3/keys/query", Some(&bob.token), json!({"device_keys": {alice.user_id.clone(): []}}))
        .await;
    assert_eq!(
        named["device_keys"][&alice.user_id][&alice.device_id]["unsigned"]["device_display_name"],
        "Alice's phone"
    );
    let (_, only_other) = app
        .post(
            "/_matrix/client/v3/keys/query",
            Some(&bob.token),
            json!({"device_keys": {alice.user_id.clone(): ["NOSUCH"]}}),
        )
        .await;
    assert_eq!(only_other["device_keys"][&alice.user_id], json!({}));

    // Three one-time keys, each handed out once, then the fallback key (again and again).
    let mut seen = Vec::new();
    for _ in 0..3 {
        let claimed = claim(&app, &bob, &alice).await;
        let (id, key) = claimed.as_object().unwrap().iter().next().unwrap();
        assert!(id.starts_with("signed_curve25519:a"), "{id}");
        assert!(key["key"].is_string());
        seen.push(id.clone());
    }
    seen.dedup();
    assert_eq!(seen.len(), 3);
    let sync = app.sync(&alice.token, None, 0).await;
    assert_eq!(sync["device_one_time_keys_count"]["signed_curve25519"], 0);
    assert_eq!(sync["device_unused_fallback_key_types"], json!(["signed_curve25519"]));
    for _ in 0..2 {
        let claimed = claim(&app, &bob, &alice).await;
        assert_eq!(claimed["signed_curve25519:fb1"]["fallback"], true, "{claimed}");
    }
    let sync = app.sync(&alice.token, None, 0).await;
    assert_eq!(sync["device_unused_fallback_key_types"], json!([]), "the fallback key was used");
}

async fn each_one_time_key_goes_to_exactly_one_claimer(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let owner = app.register("owner").await;
    let (keys, _) = device_keys(&owner);
    let (status, _) = upload(&app, &owner, json!({"device_keys": keys, "one_time_keys": one_time_keys("k", 5)})).await;
    assert_eq!(status, StatusCode::OK);
    let mut claimers = Vec::new();
    for i in 0..12 {
        claimers.push(app.register(&format!("claimer{i}")).await);
    }
    let app = std::sync::Arc::new(app);
    let jobs: Vec<_> = claimers
        .into_iter()
        .map(|claimer| {
            let (app, owner) = (app.clone(), owner.clone());
            tokio::spawn(async move { claim(&app, &claimer, &owner).await })
        })
        .collect();
    let mut handed_out = Vec::new();
    for job in jobs {
        let claimed = job.await.unwrap();
        if let Some(map) = claimed.as_object() {
            handed_out.extend(map.keys().cloned());
        }
    }
    let mut unique = handed_out.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(handed_out.len(), 5, "five keys, five winners: {handed_out:?}");
    assert_eq!(unique.len(), 5, "no key twice: {handed_out:?}");
}

async fn send_to_device(app: &TestApp, sender: &Session, txn: &str, messages: Value) -> StatusCode {
    let (status, body) = app
        .put(
            &format!("/_matrix/client/v3/sendToDevice/m.test/{txn}"),
            Some(&sender.token),
            json!({"messages": messages}),
        )
        .await;
    assert!(body.is_object());
    status
}

fn to_device(sync: &Value) -> Vec<Value> {
    sync["to_device"]["events"].as_array().cloned().unwrap_or_default()
}

async fn to_device_messages_arrive_once_and_are_never_lost(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let (_, bob_laptop) = app.login("bob", crate::helpers::PASSWORD).await;
    let bob_laptop = crate::helpers::session_from(&bob_laptop);
    let first = app.sync(&bob.token, None, 0).await;
    let t0 = first["next_batch"].as_str().unwrap().to_owned();

    // A long-poll wakes for a to-device message.
    let waiting = {
        let (client, base, token, since) = (app.client.clone(), app.base.clone(), bob.token.clone(), t0.clone());
        tokio::spawn(async move {
            let url = format!("{base}/_matrix/client/v3/sync?since={since}&timeout=10000");
            let started = std::time::Instant::now();
            let body: Value = client.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap();
            (body, started.elapsed())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let messages = json!({bob.user_id.clone(): {bob.device_id.clone(): {"n": 1}}});
    assert_eq!(send_to_device(&app, &alice, "t1", messages.clone()).await, StatusCode::OK);
    // A retried request (same txn id) is not delivered twice.
    assert_eq!(send_to_device(&app, &alice, "t1", messages).await, StatusCode::OK);
    let (woken, waited) = waiting.await.unwrap();
    assert!(waited < std::time::Duration::from_secs(5), "woken by the message, not the timeout");
    let events = to_device(&woken);
    assert_eq!(events.len(), 1, "{woken}");
    assert_eq!(events[0], json!({"sender": alice.user_id, "type": "m.test", "content": {"n": 1}}));
    let t1 = woken["next_batch"].as_str().unwrap().to_owned();

    // The laptop did not get Bob's phone's message.
    assert!(to_device(&app.sync(&bob_laptop.token, None, 0).await).is_empty());

    // A response that is lost: syncing again from the old token delivers the message again.
    let all = json!({bob.user_id.clone(): {"*": {"n": 2}}});
    assert_eq!(send_to_device(&app, &alice, "t2", all).await, StatusCode::OK);
    let lost = app.sync(&bob.token, Some(&t1), 0).await;
    assert_eq!(to_device(&lost).len(), 1);
    let again = app.sync(&bob.token, Some(&t1), 0).await;
    assert_eq!(to_device(&again), to_device(&lost), "not acknowledged, so not deleted");
    let t2 = again["next_batch"].as_str().unwrap().to_owned();
    // Syncing from the newer token acknowledges it: never twice after that.
    let after = app.sync(&bob.token, Some(&t2), 0).await;
    assert!(to_device(&after).is_empty(), "{after}");
    assert!(to_device(&app.sync(&bob.token, Some(&t1), 0).await).is_empty(), "deleted once acknowledged");
    // `*` reached every device of Bob's.
    let laptop = to_device(&app.sync(&bob_laptop.token, None, 0).await);
    assert_eq!(laptop.len(), 1);
    assert_eq!(laptop[0]["content"]["n"], 2);
}

async fn device_list_changes_reach_those_who_share_a_room(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let room = app.create_room(&alice.token, json!({"preset": "public_chat"})).await;
    app.join(&bob.token, &room).await;
    let since = app.sync(&bob.token, None, 0).await["next_batch"].as_str().unwrap().to_owned();
    let carol_since = app.sync(&carol.token, None, 0).await["next_batch"].as_str().unwrap().to_owned();

    let (keys, _) = device_keys(&alice);
    assert_eq!(upload(&app, &alice, json!({"device_keys": keys})).await.0, StatusCode::OK);
    let sync = app.sync(&bob.token, Some(&since), 5000).await;
    assert_eq!(sync["device_lists"]["changed"], json!([alice.user_id]), "{sync}");
    // Carol shares no room with Alice: nothing for her.
    let quiet = app.sync(&carol.token, Some(&carol_since), 0).await;
    assert_eq!(quiet["device_lists"]["changed"], json!([]), "{quiet}");
    let (_, changes) = app
        .get(
            &format!("/_matrix/client/v3/keys/changes?from={since}&to={}", sync["next_batch"].as_str().unwrap()),
            Some(&bob.token),
        )
        .await;
    assert_eq!(changes["changed"], json!([alice.user_id]));

    // Carol joins: Bob learns to fetch her keys; she leaves: Bob no longer tracks her.
    let since = sync["next_batch"].as_str().unwrap().to_owned();
    app.join(&carol.token, &room).await;
    let sync = app.sync(&bob.token, Some(&since), 5000).await;
    assert!(sync["device_lists"]["changed"].as_array().unwrap().contains(&json!(carol.user_id)), "{sync}");
    let since = sync["next_batch"].as_str().unwrap().to_owned();
    let (status, _) = app.post(&app.room_path(&room, "leave"), Some(&carol.token), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let sync = app.sync(&bob.token, Some(&since), 5000).await;
    assert_eq!(sync["device_lists"]["left"], json!([carol.user_id]), "{sync}");

    // Alice logs out a device: Bob hears of it, and its keys are gone.
    let since = sync["next_batch"].as_str().unwrap().to_owned();
    let (status, _) = app.post("/_matrix/client/v3/logout", Some(&alice.token), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let sync = app.sync(&bob.token, Some(&since), 5000).await;
    assert_eq!(sync["device_lists"]["changed"], json!([alice.user_id]), "{sync}");
    let (_, query) = app
        .post("/_matrix/client/v3/keys/query", Some(&bob.token), json!({"device_keys": {alice.user_id.clone(): []}}))
        .await;
    assert_eq!(query["device_keys"][&alice.user_id], json!({}));
}

pub(crate) fn cross_signing_key(user: &Session, usage: &str, key: &Key) -> Value {
    json!({"user_id": user.user_id, "usage": [usage], "keys": {format!("ed25519:{}", key.public): key.public}})
}

async fn cross_signing_keys_and_signatures_are_checked_and_published(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let (device, device_key) = device_keys(&alice);
    assert_eq!(upload(&app, &alice, json!({"device_keys": device.clone()})).await.0, StatusCode::OK);
    let (master, self_signing, user_signing) = (key(None), key(None), key(None));
    let master_json = cross_signing_key(&alice, "master", &master);
    let self_json = sign(cross_signing_key(&alice, "self_signing", &self_signing), &alice.user_id, &master);
    let user_json = sign(cross_signing_key(&alice, "user_signing", &user_signing), &alice.user_id, &master);

    // Badly signed: refused.
    let unsigned = cross_signing_key(&alice, "self_signing", &self_signing);
    let refused = app
        .post(
            "/_matrix/client/v3/keys/device_signing/upload",
            Some(&alice.token),
            json!({"master_key": master_json, "self_signing_key": unsigned}),
        )
        .await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "M_INVALID_SIGNATURE");
    // The first upload needs no password (there is nothing to protect yet).
    let body = json!({"master_key": master_json, "self_signing_key": self_json, "user_signing_key": user_json});
    let (status, response) = app.post("/_matrix/client/v3/keys/device_signing/upload", Some(&alice.token), body).await;
    assert_eq!(status, StatusCode::OK, "{response}");
    // Replacing the master key does.
    let other = key(None);
    let replace = json!({"master_key": cross_signing_key(&alice, "master", &other)});
    let (status, challenge) =
        app.post("/_matrix/client/v3/keys/device_signing/upload", Some(&alice.token), replace.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{challenge}");
    let mut with_auth = replace;
    with_auth["auth"] = password_auth(&alice.user_id, crate::helpers::PASSWORD, challenge["session"].as_str());
    let (status, _) = app.post("/_matrix/client/v3/keys/device_signing/upload", Some(&alice.token), with_auth).await;
    assert_eq!(status, StatusCode::OK);
    // Back to the first master key (with the password again), for the signatures below.
    let (_, challenge) = app
        .post("/_matrix/client/v3/keys/device_signing/upload", Some(&alice.token), json!({"master_key": master_json}))
        .await;
    let restore = json!({"master_key": master_json, "self_signing_key": self_json, "user_signing_key": user_json,
        "auth": password_auth(&alice.user_id, crate::helpers::PASSWORD, challenge["session"].as_str())});
    assert_eq!(
        app.post("/_matrix/client/v3/keys/device_signing/upload", Some(&alice.token), restore).await.0,
        StatusCode::OK
    );

    // Bob sees the master and self-signing keys, not the user-signing key; Alice sees all three.
    let query = |who: &Session| {
        let body = json!({"device_keys": {alice.user_id.clone(): []}});
        let (app, token) = (&app, who.token.clone());
        async move { app.post("/_matrix/client/v3/keys/query", Some(&token), body).await.1 }
    };
    let seen_by_bob = query(&bob).await;
    assert_eq!(seen_by_bob["master_keys"][&alice.user_id]["keys"], master_json["keys"]);
    assert!(seen_by_bob["self_signing_keys"][&alice.user_id].is_object());
    assert!(seen_by_bob["user_signing_keys"].get(&alice.user_id).is_none());
    assert!(query(&alice).await["user_signing_keys"][&alice.user_id].is_object());

    // Alice's self-signing key signs her device; the signature shows in everyone's query.
    let mut to_sign = device.clone();
    to_sign.as_object_mut().unwrap().remove("signatures");
    let signed_device = sign(to_sign, &alice.user_id, &self_signing);
    let (status, result) = app
        .post(
            "/_matrix/client/v3/keys/signatures/upload",
            Some(&alice.token),
            json!({alice.user_id.clone(): {alice.device_id.clone(): signed_device}}),
        )
        .await;
    assert_eq!((status, result["failures"].clone()), (StatusCode::OK, json!({})), "{result}");
    let device_seen = &query(&bob).await["device_keys"][&alice.user_id][&alice.device_id];
    let sigs = &device_seen["signatures"][&alice.user_id];
    assert!(sigs.get(format!("ed25519:{}", self_signing.public)).is_some(), "{device_seen}");
    assert!(sigs.get(format!("ed25519:{}", alice.device_id)).is_some(), "the device's own signature stays");

    // A forged signature is reported and not stored.
    let forged_key = key(Some(&self_signing.public));
    let mut to_forge = device.clone();
    to_forge.as_object_mut().unwrap().remove("signatures");
    let forged = sign(to_forge, &alice.user_id, &forged_key);
    let (_, result) = app
        .post(
            "/_matrix/client/v3/keys/signatures/upload",
            Some(&alice.token),
            json!({alice.user_id.clone(): {alice.device_id.clone(): forged}}),
        )
        .await;
    assert_eq!(result["failures"][&alice.user_id][&alice.device_id]["errcode"], "M_INVALID_SIGNATURE", "{result}");
    let _ = device_key;
}

async fn key_backup_keeps_the_best_copy_of_each_session(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let token = Some(alice.token.as_str());
    let missing = app.get("/_matrix/client/v3/room_keys/version", token).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let algorithm = "m.megolm_backup.v1.curve25519-aes-sha2";
    let (status, created) = app
        .post(
            "/_matrix/client/v3/room_keys/version",
            token,
            json!({"algorithm": algorithm, "auth_data": {"public_key": "abc"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let version = created["version"].as_str().unwrap().to_owned();
    let (_, info) = app.get("/_matrix/client/v3/room_keys/version", token).await;
    assert_eq!((info["version"].as_str(), info["count"].as_i64()), (Some(version.as_str()), Some(0)));
    // Bob cannot see Alice's backup.
    assert_error(
        &app.get(&format!("/_matrix/client/v3/room_keys/version/{version}"), Some(&bob.token)).await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );

    let session = |index: i64, verified: bool, data: &str| json!({"first_message_index": index, "forwarded_count": 0, "is_verified": verified, "session_data": {"ciphertext": data}});
    let path = |rest: &str| format!("/_matrix/client/v3/room_keys/keys{rest}?version={version}");
    let (status, put) = app
        .put(&path(""), token, json!({"rooms": {"!r1:localhost": {"sessions": {"s1": session(5, false, "first"), "s2": session(0, true, "two")}}}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["count"], 2);
    let etag = put["etag"].clone();
    // A worse copy (later first index) does not replace the stored one; a better one does.
    let (_, same) = app.put(&path("/!r1:localhost/s1"), token, session(9, false, "worse")).await;
    assert_eq!(same["etag"], etag, "nothing changed");
    let (_, better) = app.put(&path("/!r1:localhost/s1"), token, session(1, false, "better")).await;
    assert_ne!(better["etag"], etag);
    let (_, one) = app.get(&path("/!r1:localhost/s1"), token).await;
    assert_eq!(one["session_data"]["ciphertext"], "better");
    let (_, room) = app.get(&path("/!r1:localhost"), token).await;
    assert_eq!(room["sessions"].as_object().unwrap().len(), 2);
    let (_, all) = app.get(&path(""), token).await;
    assert_eq!(all["rooms"]["!r1:localhost"]["sessions"]["s2"]["session_data"]["ciphertext"], "two");
    assert_error(&app.get(&path("/!r1:localhost/nosuch"), token).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let (_, deleted) = app.delete(&path("/!r1:localhost/s2"), token, json!({})).await;
    assert_eq!(deleted["count"], 1);

    // The algorithm cannot change; writes to an old version are refused with the current one.
    let changed = app
        .put(
            &format!("/_matrix/client/v3/room_keys/version/{version}"),
            token,
            json!({"algorithm": "other", "auth_data": {}}),
        )
        .await;
    assert_error(&changed, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let (_, newer) =
        app.post("/_matrix/client/v3/room_keys/version", token, json!({"algorithm": algorithm, "auth_data": {}})).await;
    let stale = app.put(&path(""), token, json!({"rooms": {}})).await;
    assert_error(&stale, StatusCode::FORBIDDEN, "M_WRONG_ROOM_KEYS_VERSION");
    assert_eq!(stale.1["current_version"], newer["version"]);
    let (status, _) = app
        .delete(
            &format!("/_matrix/client/v3/room_keys/version/{}", newer["version"].as_str().unwrap()),
            token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, current) = app.get("/_matrix/client/v3/room_keys/version", token).await;
    assert_eq!(current["version"].as_str(), Some(version.as_str()), "the older one is current again");
}

async fn encryption_endpoints_need_a_token_and_valid_input(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    for (path, body) in [
        ("/_matrix/client/v3/keys/upload", json!({})),
        ("/_matrix/client/v3/keys/query", json!({"device_keys": {}})),
        ("/_matrix/client/v3/keys/claim", json!({"one_time_keys": {}})),
        ("/_matrix/client/v3/room_keys/version", json!({})),
    ] {
        assert_error(&app.post(path, None, body).await, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    }
    // Keys for someone else's device are refused.
    let (keys, _) = device_keys(&bob);
    assert_error(&upload(&app, &alice, json!({"device_keys": keys})).await, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    assert_error(
        &upload(&app, &alice, json!({"one_time_keys": {"nocolon": {}}})).await,
        StatusCode::BAD_REQUEST,
        "M_BAD_JSON",
    );
    assert_error(&upload(&app, &alice, json!({"one_time_keys": []})).await, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    let missing = app.post("/_matrix/client/v3/keys/query", Some(&alice.token), json!({})).await;
    assert_error(&missing, StatusCode::BAD_REQUEST, "M_MISSING_PARAM");
    let bad = app.put("/_matrix/client/v3/sendToDevice/m.test/t1", Some(&alice.token), json!({"messages": []})).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    let bad_changes = app.get("/_matrix/client/v3/keys/changes?from=nonsense&to=s1", Some(&alice.token)).await;
    assert_error(&bad_changes, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let bad_backup =
        app.post("/_matrix/client/v3/room_keys/version", Some(&alice.token), json!({"algorithm": "x"})).await;
    assert_error(&bad_backup, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    let no_version = app.get("/_matrix/client/v3/room_keys/keys?version=99", Some(&alice.token)).await;
    assert_error(&no_version, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

async fn an_encrypted_room_stays_encrypted(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let encryption =
        json!({"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}});
    let room = app.create_room(&alice.token, json!({"preset": "private_chat", "initial_state": [encryption]})).await;
    let path = app.room_path(&room, "state/m.room.encryption");
    let (_, current) = app.get(&path, Some(&alice.token)).await;
    assert_eq!(current["algorithm"], "m.megolm.v1.aes-sha2");
    for content in [json!({}), json!({"algorithm": "m.none"})] {
        assert_error(&app.put(&path, Some(&alice.token), content).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    }
    let same = json!({"algorithm": "m.megolm.v1.aes-sha2", "rotation_period_ms": 604800000});
    let (status, sent) = app.put(&path, Some(&alice.token), same).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let event_id = sent["event_id"].as_str().unwrap();
    let redact = app
        .put(
            &app.room_path(&room, &format!("redact/{}/r1", crate::helpers::encode(event_id))),
            Some(&alice.token),
            json!({}),
        )
        .await;
    assert_error(&redact, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

async fn stream_positions_are_not_reused_after_a_restart(backend: Backend) {
    let Some(mut app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let start = app.sync(&bob.token, None, 0).await["next_batch"].as_str().unwrap().to_owned();
    // The newest positions belong to to-device messages, which Bob then acknowledges (deletes).
    for txn in ["a", "b"] {
        let messages = json!({bob.user_id.clone(): {bob.device_id.clone(): {"txn": txn}}});
        assert_eq!(send_to_device(&app, &alice, txn, messages).await, StatusCode::OK);
    }
    let got = app.sync(&bob.token, Some(&start), 0).await;
    assert_eq!(to_device(&got).len(), 2);
    let token = got["next_batch"].as_str().unwrap().to_owned();
    assert!(to_device(&app.sync(&bob.token, Some(&token), 0).await).is_empty());

    app.restart().await;
    // A change after the restart gets a position past every token handed out before it.
    let (status, _) = app
        .put(
            &format!("/_matrix/client/v3/user/{}/account_data/m.test", bob.user_id),
            Some(&bob.token),
            json!({"after": "restart"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let sync = app.sync(&bob.token, Some(&token), 5000).await;
    let events = sync["account_data"]["events"].as_array().cloned().unwrap_or_default();
    assert!(events.iter().any(|e| e["type"] == "m.test"), "the change is not skipped: {sync}");
}

async fn a_dehydrated_device_receives_keys_while_nobody_is_logged_in(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let base = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device";
    assert_error(&app.get(base, Some(&alice.token)).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let dehydrated = Session { device_id: "DEHYDRATED1".into(), ..alice.clone() };
    let (keys, _) = device_keys(&dehydrated);
    let body = json!({
        "device_id": "DEHYDRATED1",
        "device_data": {"algorithm": "org.matrix.msc3814.v1.olm", "device_pickle": "opaque"},
        "initial_device_display_name": "Dehydrated device",
        "device_keys": keys,
        "one_time_keys": one_time_keys("d", 2),
    });
    let (status, put) = app.put(base, Some(&alice.token), body).await;
    assert_eq!((status, put["device_id"].as_str()), (StatusCode::OK, Some("DEHYDRATED1")), "{put}");
    let (_, got) = app.get(base, Some(&alice.token)).await;
    assert_eq!(got["device_data"]["device_pickle"], "opaque");

    // Bob encrypts for it like for any device: its keys are listed and claimable.
    let (_, query) = app
        .post("/_matrix/client/v3/keys/query", Some(&bob.token), json!({"device_keys": {alice.user_id.clone(): []}}))
        .await;
    assert!(query["device_keys"][&alice.user_id].get("DEHYDRATED1").is_some(), "{query}");
    assert_eq!(claim(&app, &bob, &dehydrated).await.as_object().map(|m| m.len()), Some(1));
    for (txn, n) in [("k1", 1), ("k2", 2)] {
        let messages = json!({alice.user_id.clone(): {"DEHYDRATED1": {"room_key": n}}});
        assert_eq!(send_to_device(&app, &bob, txn, messages).await, StatusCode::OK);
    }

    // Alice's new login reads what the dehydrated device received, then an empty page.
    let events_path = format!("{base}/DEHYDRATED1/events");
    let (status, first) = app.post(&events_path, Some(&alice.token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let contents: Vec<Value> = first["events"].as_array().unwrap().iter().map(|e| e["content"].clone()).collect();
    assert_eq!(contents, vec![json!({"room_key": 1}), json!({"room_key": 2})]);
    let (_, last) = app.post(&events_path, Some(&alice.token), json!({"next_batch": first["next_batch"]})).await;
    assert_eq!(last["events"], json!([]));
    let (_, again) = app.post(&events_path, Some(&alice.token), json!({})).await;
    assert_eq!(again["events"].as_array().unwrap().len(), 2, "nothing was deleted: a failed rehydration can restart");
    // The GET form (matrix-js-sdk): the last page carries no next_batch.
    let (status, got) = app.get(&events_path, Some(&alice.token)).await;
    assert_eq!((status, got["events"].as_array().map(Vec::len)), (StatusCode::OK, Some(2)), "{got}");
    assert!(got.get("next_batch").is_none(), "{got}");
    let wrong = app.post(&format!("{base}/{}/events", alice.device_id), Some(&alice.token), json!({})).await;
    assert_error(&wrong, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_error(&app.post(&events_path, Some(&bob.token), json!({})).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    // A new dehydrated device replaces the old one; deleting leaves none.
    let replacement = json!({"device_id": "DEHYDRATED2", "device_data": {"algorithm": "x"}});
    assert_eq!(app.put(base, Some(&alice.token), replacement).await.0, StatusCode::OK);
    let (_, query) = app
        .post("/_matrix/client/v3/keys/query", Some(&bob.token), json!({"device_keys": {alice.user_id.clone(): []}}))
        .await;
    assert!(query["device_keys"][&alice.user_id].get("DEHYDRATED1").is_none(), "{query}");
    let (status, deleted) = app.delete(base, Some(&alice.token), json!({})).await;
    assert_eq!((status, deleted["device_id"].as_str()), (StatusCode::OK, Some("DEHYDRATED2")));
    assert_error(&app.get(base, Some(&alice.token)).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let taken = json!({"device_id": alice.device_id, "device_data": {"algorithm": "x"}});
    assert_error(&app.put(base, Some(&alice.token), taken).await, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
}

/// `@alice:example.org:8448`: the server part is everything after the first colon.
async fn a_server_name_with_a_port_is_still_local(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |config| config.server_name = "localhost:8448".into()).await else {
        return;
    };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    assert_eq!(alice.user_id, "@alice:localhost:8448");
    let (keys, _) = device_keys(&alice);
    assert_eq!(
        upload(&app, &alice, json!({"device_keys": keys, "one_time_keys": one_time_keys("p", 1)})).await.0,
        StatusCode::OK
    );
    let (_, query) = app
        .post("/_matrix/client/v3/keys/query", Some(&bob.token), json!({"device_keys": {alice.user_id.clone(): []}}))
        .await;
    assert!(query["device_keys"][&alice.user_id].get(&alice.device_id).is_some(), "{query}");
    assert_eq!(query["failures"], json!({}));
    assert_eq!(claim(&app, &bob, &alice).await.as_object().map(|m| m.len()), Some(1));
    let messages = json!({alice.user_id.clone(): {alice.device_id.clone(): {"hello": true}}});
    assert_eq!(send_to_device(&app, &bob, "p1", messages).await, StatusCode::OK);
    assert_eq!(to_device(&app.sync(&alice.token, None, 0).await).len(), 1);
}
