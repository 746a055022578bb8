//! Two Hearth servers federating over loopback TLS: profiles, aliases, device keys and
//! one-time key claims of one server's users asked for by the other's; signed-request checks
//! (no header, forged, wrong destination); key fetching, caching and notarising; unreachable
//! and private-address peers.

use hearth_federation::{SigningKey, request_auth};
use reqwest::{Method, StatusCode};
use ruma::ServerName;
use serde_json::{Value, json};

use crate::helpers::{Backend, Session, TestApp, assert_error, encode, spawn_app_with, spawn_federating};

both_backends!(
    profiles_and_aliases_are_asked_of_the_users_server,
    keys_are_queried_and_claimed_across_servers,
    only_correctly_signed_requests_are_answered,
    keys_are_cached_and_notarised,
    unreachable_and_private_peers_fail_cleanly,
    media_is_fetched_from_its_server_and_kept,
    garbage_and_forged_events_change_nothing,
    device_changes_are_announced_to_servers_sharing_a_room,
    directories_and_times_are_asked_of_other_servers,
    a_rotated_signing_key_stays_published_and_peers_follow,
    an_event_the_room_no_longer_allows_is_soft_failed,
    concurrent_state_is_resolved_where_branches_meet,
    events_following_another_branch_keep_its_state,
    only_the_inviting_server_withdraws_an_invite,
    keys_are_fetched_through_a_notary_when_their_server_is_down,
    a_tampered_event_is_kept_redacted_and_members_read_the_room,
    a_server_sending_too_fast_is_told_to_wait,
    history_hidden_from_a_servers_users_reaches_it_redacted,
);

async fn pair(backend: Backend) -> Option<(TestApp, TestApp)> {
    let a = spawn_federating(backend, |_| {}).await?;
    let b = spawn_federating(backend, |_| {}).await?;
    Some((a, b))
}

/// Sends a request to `to`'s federation listener, signed (or not) as `from` with `key`.
async fn federation_request(
    to: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    signer: Option<(&str, &SigningKey, &str)>,
) -> (StatusCode, Value) {
    try_federation_request(to, method, path, body, signer).await.expect("TLS request")
}

/// `federation_request`, with the transport error when the server cut the request off.
async fn try_federation_request(
    to: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    signer: Option<(&str, &SigningKey, &str)>,
) -> Result<(StatusCode, Value), reqwest::Error> {
    let response = federation_response(to, method, path, body, signer).await?;
    let status = response.status();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// The response to a federation request, whatever its content type.
async fn federation_response(
    to: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    signer: Option<(&str, &SigningKey, &str)>,
) -> Result<reqwest::Response, reqwest::Error> {
    let bytes = body.map(|body| serde_json::to_vec(&body).unwrap()).unwrap_or_default();
    let client = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
    let mut request = client.request(method.clone(), format!("https://127.0.0.1:{}{path}", to.extra_addrs[0].port()));
    if let Some((origin, key, destination)) = signer {
        let to_sign = axum::http::Request::builder().method(method).uri(path).body(bytes.clone()).unwrap();
        let header = request_auth::sign_request(
            key,
            &ServerName::parse(origin).unwrap(),
            &ServerName::parse(destination).unwrap(),
            &to_sign,
        )
        .unwrap();
        request = request.header("Authorization", header);
    }
    if !bytes.is_empty() {
        request = request.header("Content-Type", "application/json").body(bytes);
    }
    request.send().await
}

fn signing_key(app: &TestApp) -> SigningKey {
    SigningKey::load_or_generate(&app.data_dir().join("signing.key")).unwrap()
}

async fn profiles_and_aliases_are_asked_of_the_users_server(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let displayname = json!({"displayname": "Bob from B"});
    let path = format!("/_matrix/client/v3/profile/{}/displayname", encode(&bob.user_id));
    assert_eq!(b.put(&path, Some(&bob.token), displayname).await.0, StatusCode::OK);

    let (status, profile) = a.get(&format!("/_matrix/client/v3/profile/{}", encode(&bob.user_id)), None).await;
    assert_eq!((status, profile["displayname"].as_str()), (StatusCode::OK, Some("Bob from B")), "{profile}");
    let (status, name) = a.get(&path, Some(&alice.token)).await;
    assert_eq!((status, name), (StatusCode::OK, json!({"displayname": "Bob from B"})));
    // An unknown user on the other server is 404, as it would be there.
    let nobody = format!("@nobody:{}", b.server_name());
    assert_error(
        &a.get(&format!("/_matrix/client/v3/profile/{}", encode(&nobody)), None).await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );

    // An alias made on B resolves from A to B's room.
    let room_id = b.create_room(&bob.token, json!({"room_alias_name": "lobby"})).await;
    let alias = format!("#lobby:{}", b.server_name());
    let (status, resolved) = a.get(&format!("/_matrix/client/v3/directory/room/{}", encode(&alias)), None).await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["room_id"], room_id.as_str());
    assert_eq!(resolved["servers"], json!([b.server_name()]));
    let missing = format!("#missing:{}", b.server_name());
    assert_error(
        &a.get(&format!("/_matrix/client/v3/directory/room/{}", encode(&missing)), None).await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
}

/// Device keys for `user`'s device, as a client uploads them (signed by the device's key).
fn device_keys(user: &Session) -> Value {
    let pair = ruma::signatures::Ed25519KeyPair::from_der(
        &ruma::signatures::Ed25519KeyPair::generate(),
        user.device_id.clone(),
    )
    .unwrap();
    let public = base64_public(&pair);
    let keys = json!({
        "user_id": user.user_id,
        "device_id": user.device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            format!("curve25519:{}", user.device_id): "dGhpcyBpcyBhIGN1cnZlIGtleSBmb3IgdGVzdGluZw",
            format!("ed25519:{}", user.device_id): public,
        },
    });
    let mut object = hearth_federation::to_canonical_object(keys).unwrap();
    ruma::signatures::sign_json(&user.user_id, &pair, &mut object).unwrap();
    serde_json::to_value(object).unwrap()
}

fn base64_public(pair: &ruma::signatures::Ed25519KeyPair) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(pair.public_key())
}

async fn keys_are_queried_and_claimed_across_servers(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let keys = device_keys(&bob);
    let one_time: serde_json::Map<String, Value> = (0..2)
        .map(|i| (format!("signed_curve25519:otk{i}"), json!({"key": format!("one-time-{i}"), "signatures": {}})))
        .collect();
    let (status, body) = b
        .post(
            "/_matrix/client/v3/keys/upload",
            Some(&bob.token),
            json!({"device_keys": keys, "one_time_keys": one_time}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let query = json!({"device_keys": {bob.user_id.clone(): []}});
    let (status, found) = a.post("/_matrix/client/v3/keys/query", Some(&alice.token), query).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["failures"], json!({}));
    let device = &found["device_keys"][&bob.user_id][&bob.device_id];
    for field in ["user_id", "device_id", "algorithms", "keys", "signatures"] {
        assert_eq!(device[field], keys[field], "{field} arrives verbatim");
    }

    // Each one-time key goes to one claim; then there are none left.
    let claim = json!({"one_time_keys": {bob.user_id.clone(): {bob.device_id.clone(): "signed_curve25519"}}});
    let mut claimed = Vec::new();
    for _ in 0..3 {
        let (status, body) = a.post("/_matrix/client/v3/keys/claim", Some(&alice.token), claim.clone()).await;
        assert_eq!((status, &body["failures"]), (StatusCode::OK, &json!({})), "{body}");
        if let Some(keys) = body["one_time_keys"][&bob.user_id][&bob.device_id].as_object() {
            claimed.extend(keys.keys().cloned());
        }
    }
    claimed.sort();
    assert_eq!(claimed, ["signed_curve25519:otk0", "signed_curve25519:otk1"]);

    // B's device list as the other server sees it.
    let key = signing_key(&a);
    let path = format!("/_matrix/federation/v1/user/devices/{}", encode(&bob.user_id));
    let (status, devices) =
        federation_request(&b, Method::GET, &path, None, Some((a.server_name(), &key, b.server_name()))).await;
    assert_eq!(status, StatusCode::OK, "{devices}");
    assert_eq!(devices["user_id"], bob.user_id.as_str());
    assert_eq!(devices["devices"][0]["device_id"], bob.device_id.as_str());
    assert_eq!(devices["devices"][0]["keys"]["keys"], keys["keys"]);
    assert!(devices["stream_id"].as_i64().unwrap() > 0);
}

async fn only_correctly_signed_requests_are_answered(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    b.register("bob").await;
    let path = format!("/_matrix/federation/v1/query/profile?user_id={}", encode(&format!("@bob:{}", b.server_name())));
    let key = signing_key(&a);
    let (origin, destination) = (a.server_name(), b.server_name());

    let (status, body) = federation_request(&b, Method::GET, &path, None, Some((origin, &key, destination))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    assert_error(
        &federation_request(&b, Method::GET, &path, None, None).await,
        StatusCode::UNAUTHORIZED,
        "M_UNAUTHORIZED",
    );
    // A key that is not A's, claiming to be A.
    let forger = SigningKey::generate();
    assert_error(
        &federation_request(&b, Method::GET, &path, None, Some((origin, &forger, destination))).await,
        StatusCode::UNAUTHORIZED,
        "M_UNAUTHORIZED",
    );
    // Meant for another server.
    assert_error(
        &federation_request(&b, Method::GET, &path, None, Some((origin, &key, "elsewhere.example"))).await,
        StatusCode::UNAUTHORIZED,
        "M_UNAUTHORIZED",
    );
    // An origin that does not exist: its key cannot be fetched.
    assert_error(
        &federation_request(&b, Method::GET, &path, None, Some(("127.0.0.1:1", &key, destination))).await,
        StatusCode::UNAUTHORIZED,
        "M_UNAUTHORIZED",
    );
    // A body other than the one signed.
    let claim_path = "/_matrix/federation/v1/user/keys/claim";
    let signed_body = json!({"one_time_keys": {}});
    let to_sign = axum::http::Request::builder()
        .method("POST")
        .uri(claim_path)
        .body(serde_json::to_vec(&signed_body).unwrap())
        .unwrap();
    let header = request_auth::sign_request(
        &key,
        &ServerName::parse(origin).unwrap(),
        &ServerName::parse(destination).unwrap(),
        &to_sign,
    )
    .unwrap();
    let response = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .post(format!("https://127.0.0.1:{}{claim_path}", b.extra_addrs[0].port()))
        .header("Authorization", header)
        .json(&json!({"one_time_keys": {"@bob:x": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

async fn keys_are_cached_and_notarised(backend: Backend) {
    let Some((a, mut b)) = pair(backend).await else { return };
    // B vouches for A's keys: A's own document, countersigned by B.
    let (status, answer) =
        b.post("/_matrix/key/v2/query", None, json!({"server_keys": {a.server_name(): {}, "127.0.0.1:1": {}}})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let documents = answer["server_keys"].as_array().unwrap();
    assert_eq!(documents.len(), 1, "only the reachable server: {answer}");
    let object = hearth_federation::to_canonical_object(documents[0].clone()).unwrap();
    hearth_federation::server_keys::check_key_document(&object, a.server_name()).expect("A's own signature");
    let (_, b_keys) = b.get("/_matrix/key/v2/server", None).await;
    let (b_key_id, b_key) = b_keys["verify_keys"].as_object().unwrap().iter().next().unwrap();
    assert!(hearth_federation::server_keys::verify_signature(
        &object,
        b.server_name(),
        b_key_id,
        b_key["key"].as_str().unwrap()
    ));
    let (status, by_get) = b.get(&format!("/_matrix/key/v2/query/{}", encode(a.server_name())), None).await;
    assert_eq!(
        (status, by_get["server_keys"][0]["verify_keys"].clone()),
        (StatusCode::OK, documents[0]["verify_keys"].clone())
    );

    // A signs a request; B has A's key stored, so it still verifies after B restarts with A
    // gone.
    let key = signing_key(&a);
    let (a_name, b_name) = (a.server_name().to_owned(), b.server_name().to_owned());
    drop(a);
    b.restart().await;
    let path = format!("/_matrix/federation/v1/query/profile?user_id={}", encode(&format!("@bob:{b_name}")));
    b.register("bob").await;
    let (status, body) = federation_request(&b, Method::GET, &path, None, Some((&a_name, &key, &b_name))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn unreachable_and_private_peers_fail_cleanly(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    // Nothing listens on port 1: a 502 for the profile, a failure entry for the keys.
    let ghost = "@ghost:127.0.0.1:1";
    let (status, body) = a.get(&format!("/_matrix/client/v3/profile/{}", encode(ghost)), None).await;
    assert_eq!((status, body["errcode"].as_str()), (StatusCode::BAD_GATEWAY, Some("M_UNKNOWN")), "{body}");
    let query = json!({"device_keys": {ghost: [], bob.user_id.clone(): []}});
    let (status, found) = a.post("/_matrix/client/v3/keys/query", Some(&alice.token), query).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert!(found["failures"]["127.0.0.1:1"]["status"].is_number(), "{found}");
    assert!(found["device_keys"][&bob.user_id].is_object(), "the reachable server still answers: {found}");

    // A server with the default policy refuses to reach loopback peers at all.
    let Some(strict) = spawn_app_with(backend, |config| {
        config.federation.verify_certificates = false;
    })
    .await
    else {
        return;
    };
    let (status, body) = strict.get(&format!("/_matrix/client/v3/profile/{}", encode(&bob.user_id)), None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(body["error"].as_str().unwrap().contains("private network"), "{body}");

    // Nor, allowed loopback, does a server that checks certificates (the default) accept B's
    // self-signed one.
    let Some(verifying) = spawn_app_with(backend, |config| {
        config.federation.allowed_ip_ranges = vec!["127.0.0.0/8".into()];
    })
    .await
    else {
        return;
    };
    assert!(verifying.config().federation.verify_certificates, "certificates are checked by default");
    let (status, body) = verifying.get(&format!("/_matrix/client/v3/profile/{}", encode(&bob.user_id)), None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
}

/// Each server's signed requests are rate limited: past its burst, 429 with a retry time.
async fn a_server_sending_too_fast_is_told_to_wait(backend: Backend) {
    let Some(a) = spawn_federating(backend, |_| {}).await else { return };
    let Some(b) = spawn_federating(backend, |config| {
        config.rate_limits.enabled = true;
        config.rate_limits.federation = hearth::config::RateLimit { period_ms: 60_000, burst: 3 };
    })
    .await
    else {
        return;
    };
    let bob = b.register("bob").await;
    let key = signing_key(&a);
    let path = format!("/_matrix/federation/v1/query/profile?user_id={}", encode(&bob.user_id));
    let mut statuses = Vec::new();
    let mut limited = Value::Null;
    for _ in 0..6 {
        let (status, body) =
            federation_request(&b, Method::GET, &path, None, Some((a.server_name(), &key, b.server_name()))).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = body;
        }
        statuses.push(status);
    }
    assert_eq!(statuses[..3], [StatusCode::OK; 3], "{statuses:?}");
    assert_eq!(statuses[3..], [StatusCode::TOO_MANY_REQUESTS; 3], "{statuses:?}");
    assert_eq!(limited["errcode"], "M_LIMIT_EXCEEDED", "{limited}");
    assert!(limited["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{limited}");
}

async fn media_is_fetched_from_its_server_and_kept(backend: Backend) {
    let Some((a, mut b)) = pair(backend).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let picture = crate::media::png(640, 480);
    let (status, uploaded) = crate::media::upload(&a, &alice, "image/png", Some("holiday.png"), picture.clone()).await;
    assert_eq!(status, StatusCode::OK, "{uploaded}");
    let path = uploaded["content_uri"].as_str().unwrap().strip_prefix("mxc://").unwrap().to_owned();

    let get = |app: &TestApp, what: String| {
        let request = app.client.get(format!("{}/_matrix/client/v1/media/{what}", app.base)).bearer_auth(&bob.token);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
            (status, content_type, response.bytes().await.unwrap().to_vec())
        }
    };
    // Bob, on B, downloads Alice's picture: B fetches it from A over federation.
    let (status, content_type, bytes) = get(&b, format!("download/{path}")).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!((content_type.as_deref(), bytes == picture), (Some("image/png"), true));
    // And a thumbnail of it, made on B.
    let (status, content_type, thumb) = get(&b, format!("thumbnail/{path}?width=64&height=64&method=crop")).await;
    assert_eq!((status, content_type.as_deref()), (StatusCode::OK, Some("image/png")));
    assert!(thumb.len() < picture.len());
    // A serves other servers thumbnails too (multipart/mixed: a JSON part, then the image).
    let media_id = path.rsplit('/').next().unwrap();
    let thumbnail = format!("/_matrix/federation/v1/media/thumbnail/{media_id}?width=64&height=64&method=scale");
    let key = signing_key(&b);
    let response =
        federation_response(&a, Method::GET, &thumbnail, None, Some((b.server_name(), &key, a.server_name())))
            .await
            .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("multipart/mixed"), "{content_type}");
    let body = response.bytes().await.unwrap();
    let png_at = body.windows(4).position(|w| w == b"\x89PNG").expect("an image part");
    assert!(body.len() - png_at < picture.len(), "a thumbnail, smaller than the picture");
    // An unknown id on A is a 404 on B.
    let missing = format!("download/{}/doesnotexist", a.server_name());
    assert_eq!(get(&b, missing).await.0, StatusCode::NOT_FOUND);

    // B keeps what it fetched: with A gone, it still serves the picture.
    drop(a);
    b.restart().await;
    let bob_again = b.login("bob", crate::helpers::PASSWORD).await.1;
    let response = b
        .client
        .get(format!("{}/_matrix/client/v1/media/download/{path}", b.base))
        .bearer_auth(bob_again["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().to_vec(), picture);
}

/// A trusts B as a notary. C's server is down when C's request reaches A (A never saw C's
/// keys): A asks B, which vouches for the keys it fetched from C earlier, and answers C.
async fn keys_are_fetched_through_a_notary_when_their_server_is_down(backend: Backend) {
    let Some(b) = spawn_federating(backend, |_| {}).await else { return };
    let Some(mut c) = spawn_federating(backend, |_| {}).await else { return };
    let notary = b.server_name().to_owned();
    let Some(a) = spawn_federating(backend, |config| config.federation.trusted_key_servers = vec![notary]).await else {
        return;
    };
    let alice = a.register("alice").await;
    let (status, answer) = b.post("/_matrix/key/v2/query", None, json!({"server_keys": {c.server_name(): {}}})).await;
    assert_eq!((status, answer["server_keys"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)), "{answer}");
    let (c_name, c_key) = (c.server_name().to_owned(), signing_key(&c));
    c.shutdown.trigger();
    c.server.take().unwrap().await.unwrap().unwrap();

    let path = format!("/_matrix/federation/v1/query/profile?user_id={}", encode(&alice.user_id));
    let (status, body) =
        federation_request(&a, Method::GET, &path, None, Some((&c_name, &c_key, a.server_name()))).await;
    assert_eq!(status, StatusCode::OK, "C's key came through the notary: {body}");
}

async fn garbage_and_forged_events_change_nothing(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let bob = b.register("bob").await;
    let room_id = b.create_room(&bob.token, json!({"preset": "public_chat"})).await;
    b.send_text(&bob.token, &room_id, "the only message").await;
    let key = signing_key(&a);
    let (origin, destination) = (a.server_name().to_owned(), b.server_name().to_owned());
    let (_, before) = b.get(&b.room_path(&room_id, "messages?dir=b&limit=50"), Some(&bob.token)).await;

    // An event "from Bob" made and signed by A: Bob's server did not sign it.
    let forged_as_bob = json!({
        "room_id": room_id, "sender": bob.user_id, "type": "m.room.message", "content": {"body": "forged"},
        "prev_events": [], "auth_events": [], "depth": 5, "origin_server_ts": 1,
        "hashes": {"sha256": "AAAA"}, "signatures": {origin.clone(): {key.key_id(): "AAAA"}},
    });
    // A well-signed event of A's user, who is not in the room.
    let mut intruder = hearth_federation::to_canonical_object(json!({
        "room_id": room_id, "sender": format!("@mallory:{origin}"), "type": "m.room.message",
        "content": {"body": "let me in"}, "prev_events": [], "auth_events": [], "depth": 5, "origin_server_ts": 1,
    }))
    .unwrap();
    let rules = hearth_federation::room_versions::rules_for("12").unwrap();
    key.hash_and_sign_event(&origin, &mut intruder, &rules).unwrap();
    let forged_id =
        hearth_federation::event_id_of(&hearth_federation::to_canonical_object(forged_as_bob.clone()).unwrap(), &rules)
            .unwrap()
            .to_string();
    let transaction = json!({
        "origin": origin, "origin_server_ts": 1,
        "pdus": ["not an event", {"room_id": "!unknown:nowhere"}, forged_as_bob, intruder],
        "edus": [{"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": bob.user_id, "typing": true}}],
    });
    let (status, answer) = federation_request(
        &b,
        Method::PUT,
        "/_matrix/federation/v1/send/garbage1",
        Some(transaction),
        Some((&origin, &key, &destination)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let results = answer["pdus"].as_object().unwrap();
    assert!(results.values().all(|result| result["error"].is_string()), "{answer}");
    // Events that have an id are named with their error (the forged one and the intruder's);
    // what is not an event of a known room has none.
    assert_eq!(results.len(), 2, "{answer}");
    assert!(results[&forged_id]["error"].as_str().unwrap().contains("signed"), "{answer}");
    let (_, after) = b.get(&b.room_path(&room_id, "messages?dir=b&limit=50"), Some(&bob.token)).await;
    let ids = |page: &Value| -> Vec<Value> {
        page["chunk"].as_array().unwrap().iter().map(|e| e["event_id"].clone()).collect()
    };
    assert_eq!(ids(&before), ids(&after), "nothing was added to the room");

    // A transaction naming another origin than the signer is refused outright, and a body
    // beyond the federation limit is 413.
    let (status, _) = federation_request(
        &b,
        Method::PUT,
        "/_matrix/federation/v1/send/garbage2",
        Some(json!({"origin": "elsewhere.example", "pdus": [], "edus": []})),
        Some((&origin, &key, &destination)),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let huge = json!({"origin": origin, "pdus": [], "edus": [], "padding": "x".repeat(9 * 1024 * 1024)});
    let path = "/_matrix/federation/v1/send/garbage3";
    match try_federation_request(&b, Method::PUT, path, Some(huge), Some((&origin, &key, &destination))).await {
        Ok((status, body)) => assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}"),
        // The server may answer 413 and close before the client has written the whole body;
        // the client then sees the connection cut instead of the answer.
        Err(error) => assert!(error.is_request() || error.is_body(), "{error:?}"),
    }
    // Either way the server took nothing in and carries on.
    let (status, _) = federation_request(&b, Method::GET, "/_matrix/key/v2/server", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, after_huge) = b.get(&b.room_path(&room_id, "messages?dir=b&limit=50"), Some(&bob.token)).await;
    assert_eq!(ids(&before), ids(&after_huge));
}

/// Syncs `user` on `app` from `since` until `user_id` is listed in `device_lists.changed`;
/// returns the next token. Bounded to 20 seconds.
async fn until_devices_changed(app: &TestApp, user: &Session, since: String, user_id: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut since = since;
    loop {
        let sync = app.sync(&user.token, Some(&since), 2_000).await;
        since = sync["next_batch"].as_str().unwrap().to_owned();
        let changed = sync["device_lists"]["changed"].as_array().cloned().unwrap_or_default();
        if changed.iter().any(|id| id == user_id) {
            return since;
        }
        assert!(std::time::Instant::now() < deadline, "{user_id}'s device change never reached the other server");
    }
}

async fn device_changes_are_announced_to_servers_sharing_a_room(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let room_id = b.create_room(&bob.token, json!({"preset": "public_chat"})).await;
    let path = format!("/_matrix/client/v3/join/{}?via={}", encode(&room_id), encode(b.server_name()));
    assert_eq!(a.post(&path, Some(&alice.token), json!({})).await.0, StatusCode::OK);
    let token = a.sync(&alice.token, None, 0).await["next_batch"].as_str().unwrap().to_owned();

    // Bob's new device keys on B: B sends m.device_list_update, Alice's sync on A lists him.
    let (status, body) =
        b.post("/_matrix/client/v3/keys/upload", Some(&bob.token), json!({"device_keys": device_keys(&bob)})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = until_devices_changed(&a, &alice, token, &bob.user_id).await;

    // A second device of Bob's logs out: announced too.
    let (status, second) = b.login("bob", crate::helpers::PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let second = crate::helpers::session_from(&second);
    assert_eq!(b.post("/_matrix/client/v3/logout", Some(&second.token), json!({})).await.0, StatusCode::OK);
    let token = until_devices_changed(&a, &alice, token, &bob.user_id).await;

    // Bob sets up cross-signing on B: B sends m.signing_key_update, Alice's sync on A lists him
    // again, and A's answer to her key query holds his new keys.
    use crate::e2ee::{cross_signing_key, key, sign};
    let (master, self_signing) = (key(None), key(None));
    let master_json = cross_signing_key(&bob, "master", &master);
    let self_json = sign(cross_signing_key(&bob, "self_signing", &self_signing), &bob.user_id, &master);
    let upload = json!({"master_key": master_json, "self_signing_key": self_json});
    let (status, body) = b.post("/_matrix/client/v3/keys/device_signing/upload", Some(&bob.token), upload).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    until_devices_changed(&a, &alice, token, &bob.user_id).await;
    let query = json!({"device_keys": {bob.user_id.clone(): []}});
    let (status, found) = a.post("/_matrix/client/v3/keys/query", Some(&alice.token), query).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["master_keys"][&bob.user_id]["keys"], master_json["keys"], "{found}");
    assert!(found["self_signing_keys"][&bob.user_id].is_object(), "{found}");
}

async fn directories_and_times_are_asked_of_other_servers(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    for (name, topic) in [("Gardening", "plants"), ("Cooking", "recipes")] {
        b.create_room(
            &bob.token,
            json!({"preset": "public_chat", "visibility": "public", "name": name, "topic": topic}),
        )
        .await;
    }
    b.create_room(&bob.token, json!({"preset": "private_chat", "name": "Secret"})).await;

    // Alice browses B's directory from A: both public rooms, not the private one.
    let path = format!("/_matrix/client/v3/publicRooms?server={}", encode(b.server_name()));
    let (status, page) = a.get(&path, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let mut names: Vec<&str> = page["chunk"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["Cooking", "Gardening"], "{page}");
    // Searched and paged through A.
    let (status, page) = a.post(&path, Some(&alice.token), json!({"filter": {"generic_search_term": "recipe"}})).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let chunk = page["chunk"].as_array().unwrap();
    assert_eq!((chunk.len(), chunk[0]["name"].as_str()), (1, Some("Cooking")), "{page}");
    let (_, first) = a.post(&path, Some(&alice.token), json!({"limit": 1})).await;
    assert_eq!(first["chunk"].as_array().unwrap().len(), 1, "{first}");
    let since = first["next_batch"].as_str().expect("a next page").to_owned();
    let (_, second) = a.post(&path, Some(&alice.token), json!({"limit": 1, "since": since})).await;
    assert_ne!(first["chunk"][0]["room_id"], second["chunk"][0]["room_id"], "{second}");
    // An unreachable server's directory is a clean error.
    let (status, body) = a.get("/_matrix/client/v3/publicRooms?server=unreachable.invalid", None).await;
    assert_eq!((status, body["errcode"].as_str()), (StatusCode::BAD_GATEWAY, Some("M_UNKNOWN")), "{body}");

    // timestamp_to_event: A, once in a room on B, asks B for the event nearest a time.
    let room_id = b.create_room(&bob.token, json!({"preset": "public_chat"})).await;
    let key = signing_key(&a);
    let signer = Some((a.server_name(), &key, b.server_name()));
    let before = hearth::storage::now_ms();
    let path = format!("/_matrix/federation/v1/timestamp_to_event/{}?ts={before}&dir=f", encode(&room_id));
    let (status, body) = federation_request(&b, Method::GET, &path, None, signer).await;
    assert_eq!((status, body["errcode"].as_str()), (StatusCode::FORBIDDEN, Some("M_FORBIDDEN")), "{body}");
    let join = format!("/_matrix/client/v3/join/{}?via={}", encode(&room_id), encode(b.server_name()));
    assert_eq!(a.post(&join, Some(&alice.token), json!({})).await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let event_id = b.send_text(&bob.token, &room_id, "what time is it").await;
    let after_join = hearth::storage::now_ms();
    let path = format!("/_matrix/federation/v1/timestamp_to_event/{}?ts={after_join}&dir=b", encode(&room_id));
    let (status, body) = federation_request(&b, Method::GET, &path, None, signer).await;
    assert_eq!((status, body["event_id"].as_str()), (StatusCode::OK, Some(event_id.as_str())), "{body}");
    assert!(body["origin_server_ts"].as_i64().unwrap() >= before, "{body}");
    let path = format!("/_matrix/federation/v1/timestamp_to_event/{}?ts={after_join}&dir=sideways", encode(&room_id));
    let (status, body) = federation_request(&b, Method::GET, &path, None, signer).await;
    assert_eq!((status, body["errcode"].as_str()), (StatusCode::BAD_REQUEST, Some("M_INVALID_PARAM")), "{body}");
}

async fn a_rotated_signing_key_stays_published_and_peers_follow(backend: Backend) {
    let fast_retries = |config: &mut hearth::Config| {
        config.federation.retry_min_ms = 200;
        config.federation.retry_max_ms = 2_000;
    };
    let Some(mut a) = spawn_federating(backend, fast_retries).await else { return };
    let Some(b) = spawn_federating(backend, fast_retries).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let room_id = b.create_room(&bob.token, json!({"preset": "public_chat"})).await;
    let join = format!("/_matrix/client/v3/join/{}?via={}", encode(&room_id), encode(b.server_name()));
    assert_eq!(a.post(&join, Some(&alice.token), json!({})).await.0, StatusCode::OK);
    let (_, before) = federation_request(&a, Method::GET, "/_matrix/key/v2/server", None, None).await;
    let old_id = before["verify_keys"].as_object().unwrap().keys().next().unwrap().clone();
    let old_key = before["verify_keys"][&old_id]["key"].clone();

    // The admin rotates A's key (`hearth rotate-signing-key`) and restarts it.
    let (rotated, new_id) = hearth::app::rotate_signing_key(a.config()).unwrap();
    assert_eq!(rotated, old_id);
    a.restart().await;
    let (status, after) = federation_request(&a, Method::GET, "/_matrix/key/v2/server", None, None).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["verify_keys"].as_object().unwrap().keys().collect::<Vec<_>>(), [&new_id], "{after}");
    assert_eq!(after["old_verify_keys"][&old_id]["key"], old_key, "{after}");
    assert!(after["old_verify_keys"][&old_id]["expired_ts"].as_i64().unwrap() > 0, "{after}");
    assert!(after["signatures"][a.server_name()][&new_id].is_string(), "signed with the new key: {after}");

    // B learns the new key when A first signs with it (B asks A for keys at most every 10 s, so
    // a peer that fetched them just before the rotation takes up to that long).
    a.send_text(&alice.token, &room_id, "signed with my new key").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, messages) = b.get(&b.room_path(&room_id, "messages?dir=b&limit=5"), Some(&bob.token)).await;
        let bodies: Vec<&str> =
            messages["chunk"].as_array().unwrap().iter().filter_map(|e| e["content"]["body"].as_str()).collect();
        if bodies.contains(&"signed with my new key") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "A's message never reached B: {bodies:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // As a notary, B now vouches for A's new key and for the old one, expired, so others can
    // still check what A signed before (its join, say).
    let path = format!("/_matrix/key/v2/query/{}", encode(a.server_name()));
    let (status, notarised) = federation_request(&b, Method::GET, &path, None, None).await;
    assert_eq!(status, StatusCode::OK, "{notarised}");
    let keys = notarised["server_keys"].as_array().unwrap();
    assert!(
        keys.iter()
            .any(|doc| doc["verify_keys"][&new_id].is_object() && doc["old_verify_keys"][&old_id]["key"] == old_key),
        "{notarised}"
    );
}

/// Alice (on A) joined Bob's public room on B: the ids of its power levels and of her join,
/// which events crafted as A's cite.
struct JoinedRoom {
    alice: Session,
    bob: Session,
    room_id: String,
    power: String,
    alice_join: String,
}

impl JoinedRoom {
    async fn on(a: &TestApp, b: &TestApp) -> Self {
        Self::with(a, b, json!({"preset": "public_chat"})).await
    }

    /// The room made with the `/createRoom` body `create`.
    async fn with(a: &TestApp, b: &TestApp, create: Value) -> Self {
        let alice = a.register("alice").await;
        let bob = b.register("bob").await;
        let room_id = b.create_room(&bob.token, create).await;
        let join = format!("/_matrix/client/v3/join/{}?via={}", encode(&room_id), encode(b.server_name()));
        assert_eq!(a.post(&join, Some(&alice.token), json!({})).await.0, StatusCode::OK);
        let (_, state) = b.get(&b.room_path(&room_id, "state"), Some(&bob.token)).await;
        let event_id = |kind: &str, key: &str| -> String {
            let found = state.as_array().unwrap().iter().find(|e| e["type"] == kind && e["state_key"] == key);
            found.unwrap_or_else(|| panic!("no {kind} in {state}"))["event_id"].as_str().unwrap().to_owned()
        };
        let (power, alice_join) = (event_id("m.room.power_levels", ""), event_id("m.room.member", &alice.user_id));
        Self { alice, bob, room_id, power, alice_join }
    }
}

async fn an_event_the_room_no_longer_allows_is_soft_failed(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let JoinedRoom { alice, bob, room_id, power, alice_join } = JoinedRoom::on(&a, &b).await;

    // Bob bans Alice. A message of hers that A made before hearing of it cites her join: its auth
    // events allow it, the room as it is now does not.
    let ban = b.room_path(&room_id, "ban");
    assert_eq!(b.post(&ban, Some(&bob.token), json!({"user_id": alice.user_id})).await.0, StatusCode::OK);
    let key = signing_key(&a);
    let origin = a.server_name().to_owned();
    let late =
        signed_message(&a, &room_id, &alice, "sent before I heard of the ban", &alice_join, [&power, &alice_join], 100);
    let late_id = v12_event_id(&late);
    let transaction = json!({"origin": origin, "origin_server_ts": 1, "pdus": [late], "edus": []});
    let signer = Some((origin.as_str(), &key, b.server_name()));
    let (status, answer) =
        federation_request(&b, Method::PUT, "/_matrix/federation/v1/send/late1", Some(transaction), signer).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["pdus"][&late_id], json!({}), "accepted (soft-failed), not rejected: {answer}");

    // Kept out of the room's timeline, and B's next event does not build on it.
    b.send_text(&bob.token, &room_id, "after the ban").await;
    let (_, page) = b.get(&b.room_path(&room_id, "messages?dir=b&limit=50"), Some(&bob.token)).await;
    let bodies: Vec<&str> =
        page["chunk"].as_array().unwrap().iter().filter_map(|e| e["content"]["body"].as_str()).collect();
    assert_eq!(bodies, ["after the ban"], "{page}");
    let (_, sync) = (StatusCode::OK, b.sync(&bob.token, None, 0).await);
    let timeline = crate::helpers::timeline(&sync, &room_id);
    assert!(timeline.iter().all(|e| e["event_id"] != late_id.as_str()), "{sync}");

    // A message of hers made after the ban (citing the room's latest event) but citing her old
    // join as its authority: the state before it is the current state, which bans her, so it
    // is rejected outright.
    let latest = timeline.last().unwrap()["event_id"].as_str().unwrap().to_owned();
    let after = signed_message(&a, &room_id, &alice, "sent after the ban", &latest, [&power, &alice_join], 200);
    let after_id = v12_event_id(&after);
    let result = send_pdu(&a, &b, "late2", after, &after_id).await;
    assert!(result["error"].as_str().is_some_and(|error| error.contains("state before it")), "{result}");
    let (status, _) = b.get(&b.room_path(&room_id, &format!("event/{}", encode(&after_id))), Some(&bob.token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// An event whose content was changed after it was signed (its signature, over the redacted
/// form, still holds; its content hash does not) is kept redacted (spec: Server-Server API §
/// Checks performed on receipt of a PDU). The room's servers read events, state and auth chains
/// over /event, /state and /event_auth; a server with no one in the room may not.
async fn a_tampered_event_is_kept_redacted_and_members_read_the_room(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let Some(c) = spawn_federating(backend, |_| {}).await else { return };
    let JoinedRoom { alice, bob, room_id, power, alice_join } = JoinedRoom::on(&a, &b).await;

    let key = signing_key(&a);
    let rules = hearth_federation::room_versions::rules_for("12").unwrap();
    let mut event = signed_message(&a, &room_id, &alice, "what Alice said", &alice_join, [&power, &alice_join], 100);
    event.insert(
        "content".into(),
        hearth_federation::to_canonical_object(json!({"msgtype": "m.text", "body": "what Alice never said"}))
            .unwrap()
            .into(),
    );
    let tampered_id = v12_event_id(&event);
    assert_eq!(send_pdu(&a, &b, "tampered1", event, &tampered_id).await, json!({}));
    let (status, seen) =
        b.get(&b.room_path(&room_id, &format!("event/{}", encode(&tampered_id))), Some(&bob.token)).await;
    assert_eq!((status, &seen["content"]), (StatusCode::OK, &json!({})), "kept redacted: {seen}");

    // A (in the room) reads the event, the state at it and its auth chain.
    let a_signs = Some((a.server_name(), &key, b.server_name()));
    let path = format!("/_matrix/federation/v1/event/{}", encode(&tampered_id));
    let (status, answer) = federation_request(&b, Method::GET, &path, None, a_signs).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["pdus"][0]["content"], json!({}), "{answer}");
    let path = format!("/_matrix/federation/v1/state/{}?event_id={}", encode(&room_id), encode(&tampered_id));
    let (status, answer) = federation_request(&b, Method::GET, &path, None, a_signs).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let types: Vec<&str> = answer["pdus"].as_array().unwrap().iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(types.contains(&"m.room.create") && types.contains(&"m.room.member"), "{answer}");
    assert!(!answer["auth_chain"].as_array().unwrap().is_empty(), "{answer}");
    let path = format!("/_matrix/federation/v1/event_auth/{}/{}", encode(&room_id), encode(&tampered_id));
    let (status, answer) = federation_request(&b, Method::GET, &path, None, a_signs).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let chain: Vec<&str> =
        answer["auth_chain"].as_array().unwrap().iter().filter_map(|e| e["event_id"].as_str()).collect();
    let chain_ids: Vec<String> = answer["auth_chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "${}",
                ruma::signatures::reference_hash(&hearth_federation::to_canonical_object(e.clone()).unwrap(), &rules)
                    .unwrap()
            )
        })
        .collect();
    assert!(chain.is_empty(), "v12 events do not carry their ids: {answer}");
    assert!(chain_ids.contains(&power) && chain_ids.contains(&alice_join), "{answer}");

    // C has no one in the room: refused.
    let c_key = signing_key(&c);
    let path = format!("/_matrix/federation/v1/event/{}", encode(&tampered_id));
    let (status, answer) =
        federation_request(&b, Method::GET, &path, None, Some((c.server_name(), &c_key, b.server_name()))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
}

/// In a room whose history is visible to joined members only, what was said before any of A's
/// users joined reaches A redacted over /backfill and /event; what came after arrives whole.
async fn history_hidden_from_a_servers_users_reaches_it_redacted(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let hidden =
        json!({"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "joined"}});
    let room_id = b.create_room(&bob.token, json!({"preset": "public_chat", "initial_state": [hidden]})).await;
    let before = b.send_text(&bob.token, &room_id, "before Alice came").await;
    let join = format!("/_matrix/client/v3/join/{}?via={}", encode(&room_id), encode(b.server_name()));
    assert_eq!(a.post(&join, Some(&alice.token), json!({})).await.0, StatusCode::OK);
    let after = b.send_text(&bob.token, &room_id, "after Alice came").await;

    let key = signing_key(&a);
    let a_signs = Some((a.server_name(), &key, b.server_name()));
    let path = format!("/_matrix/federation/v1/backfill/{}?v={}&limit=50", encode(&room_id), encode(&after));
    let (status, answer) = federation_request(&b, Method::GET, &path, None, a_signs).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let rules = hearth_federation::room_versions::rules_for("12").unwrap();
    let by_id = |id: &str| -> Value {
        answer["pdus"]
            .as_array()
            .unwrap()
            .iter()
            .find(|pdu| {
                let object = hearth_federation::to_canonical_object((*pdu).clone()).unwrap();
                format!("${}", ruma::signatures::reference_hash(&object, &rules).unwrap()) == id
            })
            .unwrap_or_else(|| panic!("{id} not in {answer}"))
            .clone()
    };
    assert_eq!(by_id(&before)["content"], json!({}), "hidden from A's users: redacted");
    assert_eq!(by_id(&after)["content"]["body"], "after Alice came");
    let path = format!("/_matrix/federation/v1/event/{}", encode(&before));
    let (status, answer) = federation_request(&b, Method::GET, &path, None, a_signs).await;
    assert_eq!((status, &answer["pdus"][0]["content"]), (StatusCode::OK, &json!({})), "{answer}");
}

/// A message of `sender` (a user of `from`) in a v12 room, citing `prev` and `auth`, signed
/// with `from`'s key.
fn signed_message(
    from: &TestApp,
    room_id: &str,
    sender: &Session,
    body: &str,
    prev: &str,
    auth: [&str; 2],
    depth: u64,
) -> ruma::CanonicalJsonObject {
    let rules = hearth_federation::room_versions::rules_for("12").unwrap();
    let mut event = hearth_federation::to_canonical_object(json!({
        "room_id": room_id, "sender": sender.user_id, "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": body},
        "prev_events": [prev], "auth_events": auth, "depth": depth,
        "origin_server_ts": hearth::storage::now_ms(),
    }))
    .unwrap();
    signing_key(from).hash_and_sign_event(from.server_name(), &mut event, &rules).unwrap();
    event
}

/// A v12 event's id: its reference hash.
fn v12_event_id(event: &ruma::CanonicalJsonObject) -> String {
    let rules = hearth_federation::room_versions::rules_for("12").unwrap();
    format!("${}", ruma::signatures::reference_hash(event, &rules).unwrap())
}

/// Sends one PDU to `to` as a transaction from `from` (signed with its key); the PDU's result.
async fn send_pdu(from: &TestApp, to: &TestApp, txn: &str, pdu: ruma::CanonicalJsonObject, event_id: &str) -> Value {
    let key = signing_key(from);
    let transaction = json!({"origin": from.server_name(), "origin_server_ts": 1, "pdus": [pdu], "edus": []});
    let signer = Some((from.server_name(), &key, to.server_name()));
    let path = format!("/_matrix/federation/v1/send/{txn}");
    let (status, answer) = federation_request(to, Method::PUT, &path, Some(transaction), signer).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["pdus"][event_id].clone()
}

/// A public room on B named "Original" that Alice (on A) joined and Bob made her a moderator
/// of (she may rename it): the power levels event doing so is where the tests' branches part.
struct ModeratedRoom {
    alice: Session,
    bob: Session,
    room_id: String,
    fork_point: String,
    /// The room's state after the fork point.
    state: Value,
}

impl ModeratedRoom {
    async fn on(a: &TestApp, b: &TestApp) -> Self {
        let JoinedRoom { alice, bob, room_id, .. } =
            JoinedRoom::with(a, b, json!({"preset": "public_chat", "name": "Original"})).await;
        let power_path = b.room_path(&room_id, "state/m.room.power_levels/");
        let (_, mut power) = b.get(&power_path, Some(&bob.token)).await;
        power["users"][&alice.user_id] = json!(50);
        let (status, set) = b.put(&power_path, Some(&bob.token), power).await;
        assert_eq!(status, StatusCode::OK, "{set}");
        let fork_point = set["event_id"].as_str().unwrap().to_owned();
        let (_, state) = b.get(&b.room_path(&room_id, "state"), Some(&bob.token)).await;
        Self { alice, bob, room_id, fork_point, state }
    }

    /// The event id of a state entry after the fork point.
    fn state_id(&self, kind: &str, key: &str) -> String {
        let state = &self.state;
        let found = state.as_array().unwrap().iter().find(|e| e["type"] == kind && e["state_key"] == key);
        found.unwrap_or_else(|| panic!("no {kind} in {state}"))["event_id"].as_str().unwrap().to_owned()
    }
}

async fn concurrent_state_is_resolved_where_branches_meet(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let room = ModeratedRoom::on(&a, &b).await;
    let alice_join = room.state_id("m.room.member", &room.alice.user_id);
    let ModeratedRoom { alice, bob, room_id, fork_point, .. } = room;

    // Bob renames the room on B; meanwhile (on her branch, not having seen his rename) Alice
    // renamed it too, earlier. Where the branches meet, state resolution orders the two by
    // time: Bob's, the later, stands — although Alice's arrived last.
    let name_path = b.room_path(&room_id, "state/m.room.name/");
    assert_eq!(b.put(&name_path, Some(&bob.token), json!({"name": "Bob's name"})).await.0, StatusCode::OK);
    let rules = hearth_federation::room_versions::rules_for("12").unwrap();
    let key = signing_key(&a);
    let rename = |name: &str, ts: i64| {
        let mut event = hearth_federation::to_canonical_object(json!({
            "room_id": room_id, "sender": alice.user_id, "type": "m.room.name", "state_key": "",
            "content": {"name": name}, "prev_events": [fork_point], "auth_events": [fork_point, alice_join],
            "depth": 50, "origin_server_ts": ts,
        }))
        .unwrap();
        key.hash_and_sign_event(a.server_name(), &mut event, &rules).unwrap();
        let id = format!("${}", ruma::signatures::reference_hash(&event, &rules).unwrap());
        (event, id)
    };
    let now = hearth::storage::now_ms();
    let (earlier, earlier_id) = rename("Alice's earlier name", now - 60_000);
    assert_eq!(send_pdu(&a, &b, "fork1", earlier, &earlier_id).await, json!({}));
    let (_, name) = b.get(&name_path, Some(&bob.token)).await;
    assert_eq!(name["name"], "Bob's name", "resolution keeps the later rename");
    // Her event is in the room's history all the same.
    let (_, page) = b.get(&b.room_path(&room_id, "messages?dir=b&limit=10"), Some(&bob.token)).await;
    assert!(page["chunk"].as_array().unwrap().iter().any(|e| e["event_id"] == earlier_id.as_str()), "{page}");

    // A rename of hers from that branch made after Bob's wins the same way.
    let (later, later_id) = rename("Alice's later name", now + 1_000);
    assert_eq!(send_pdu(&a, &b, "fork2", later, &later_id).await, json!({}));
    let (_, name) = b.get(&name_path, Some(&bob.token)).await;
    assert_eq!(name["name"], "Alice's later name");
}

async fn events_following_another_branch_keep_its_state(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let room = ModeratedRoom::on(&a, &b).await;
    let (original_name, alice_join) =
        (room.state_id("m.room.name", ""), room.state_id("m.room.member", &room.alice.user_id));
    let ModeratedRoom { alice, bob, room_id, fork_point, .. } = room;
    let name_path = b.room_path(&room_id, "state/m.room.name/");
    let (_, bobs) = b.put(&name_path, Some(&bob.token), json!({"name": "Bob's name"})).await;
    let bobs_name = bobs["event_id"].as_str().unwrap().to_owned();

    // On Alice's branch (which never saw Bob's rename): her rename, then a message after it.
    let rules = hearth_federation::room_versions::rules_for("12").unwrap();
    let key = signing_key(&a);
    let sign = |mut event: ruma::CanonicalJsonObject| {
        key.hash_and_sign_event(a.server_name(), &mut event, &rules).unwrap();
        let id = format!("${}", ruma::signatures::reference_hash(&event, &rules).unwrap());
        (event, id)
    };
    let now = hearth::storage::now_ms();
    let (rename, rename_id) = sign(
        hearth_federation::to_canonical_object(json!({
            "room_id": room_id, "sender": alice.user_id, "type": "m.room.name", "state_key": "",
            "content": {"name": "Alice's name"}, "prev_events": [fork_point], "auth_events": [fork_point, alice_join],
            "depth": 50, "origin_server_ts": now - 60_000,
        }))
        .unwrap(),
    );
    assert_eq!(send_pdu(&a, &b, "branch1", rename, &rename_id).await, json!({}));
    let (message, message_id) = sign(
        hearth_federation::to_canonical_object(json!({
            "room_id": room_id, "sender": alice.user_id, "type": "m.room.message",
            "content": {"msgtype": "m.text", "body": "on my branch"}, "prev_events": [rename_id],
            "auth_events": [fork_point, alice_join], "depth": 51, "origin_server_ts": now - 59_000,
        }))
        .unwrap(),
    );
    assert_eq!(send_pdu(&a, &b, "branch2", message, &message_id).await, json!({}));
    // Where the branches met, Bob's later rename stands.
    let (_, name) = b.get(&name_path, Some(&bob.token)).await;
    assert_eq!(name["name"], "Bob's name");

    // Each event's state is the one of its own branch: her rename was made over the original
    // name, her message over her rename; Bob's rename is in neither.
    let state_ids = |event_id: &str| {
        let path = format!("/_matrix/federation/v1/state_ids/{}?event_id={}", encode(&room_id), encode(event_id));
        let (a, b, key) = (&a, &b, &key);
        async move {
            let signer = Some((a.server_name(), key, b.server_name()));
            let (status, answer) = federation_request(b, Method::GET, &path, None, signer).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            answer["pdu_ids"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    let before_rename = state_ids(&rename_id).await;
    assert!(before_rename.contains(&original_name) && !before_rename.contains(&bobs_name), "{before_rename:?}");
    let before_message = state_ids(&message_id).await;
    assert!(before_message.contains(&rename_id) && !before_message.contains(&bobs_name), "{before_message:?}");
    // B's own next event follows both branches: before it, the resolved state.
    let merged = b.send_text(&bob.token, &room_id, "merged").await;
    let before_merged = state_ids(&merged).await;
    assert!(before_merged.contains(&bobs_name) && !before_merged.contains(&rename_id), "{before_merged:?}");
}

async fn only_the_inviting_server_withdraws_an_invite(backend: Backend) {
    let Some((a, b)) = pair(backend).await else { return };
    let Some(c) = spawn_federating(backend, |_| {}).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let room_id = b.create_room(&bob.token, json!({"preset": "private_chat"})).await;
    let invite = b.room_path(&room_id, "invite");
    assert_eq!(b.post(&invite, Some(&bob.token), json!({"user_id": alice.user_id})).await.0, StatusCode::OK);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while a.sync(&alice.token, None, 0).await["rooms"]["invite"].get(&room_id).is_none() {
        assert!(std::time::Instant::now() < deadline, "the invite never reached A");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // A third server, not in the room, signs a leave for Alice's invite: A refuses it.
    let rules = hearth_federation::room_versions::rules_for("12").unwrap();
    let key = signing_key(&c);
    let mut leave = hearth_federation::to_canonical_object(json!({
        "room_id": room_id, "sender": format!("@mallory:{}", c.server_name()), "type": "m.room.member",
        "state_key": alice.user_id, "content": {"membership": "leave"}, "prev_events": [], "auth_events": [],
        "depth": 5, "origin_server_ts": hearth::storage::now_ms(),
    }))
    .unwrap();
    key.hash_and_sign_event(c.server_name(), &mut leave, &rules).unwrap();
    let leave_id = format!("${}", ruma::signatures::reference_hash(&leave, &rules).unwrap());
    let transaction = json!({"origin": c.server_name(), "origin_server_ts": 1, "pdus": [leave], "edus": []});
    let signer = Some((c.server_name(), &key, a.server_name()));
    let (status, answer) =
        federation_request(&a, Method::PUT, "/_matrix/federation/v1/send/withdraw1", Some(transaction), signer).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let outcome = answer["pdus"].get(&leave_id);
    assert!(outcome.is_none_or(|outcome| outcome["error"].is_string()), "not accepted: {answer}");
    let sync = a.sync(&alice.token, None, 0).await;
    assert!(sync["rooms"]["invite"].get(&room_id).is_some(), "the invite stands: {sync}");
    // She can still accept it.
    assert_eq!(a.join(&alice.token, &room_id).await.0, StatusCode::OK);
}
