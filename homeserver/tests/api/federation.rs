//! The Server-Server API, first slice: the signed server key document and the version
//! endpoint, as another server (Synapse, a notary) fetches them.

use reqwest::StatusCode;
use ruma::signatures::{PublicKeyMap, PublicKeySet};
use serde_json::Value;

use crate::helpers::{Backend, assert_error, spawn_app, spawn_app_with};

both_backends!(
    the_server_publishes_its_signed_keys_and_keeps_them_across_restarts,
    well_known_server_delegates_only_when_configured,
);

fn verify(document: &Value) {
    let server = document["server_name"].as_str().unwrap();
    let mut keys = PublicKeySet::new();
    for (id, key) in document["verify_keys"].as_object().unwrap() {
        keys.insert(id.clone(), ruma::serde::Base64::parse(key["key"].as_str().unwrap()).unwrap());
    }
    let mut map = PublicKeyMap::new();
    map.insert(server.to_owned(), keys);
    let object = hearth_federation::to_canonical_object(document.clone()).unwrap();
    ruma::signatures::verify_json(&map, &object).expect("the document is signed by the key it publishes");
}

async fn the_server_publishes_its_signed_keys_and_keeps_them_across_restarts(backend: Backend) {
    let Some(mut app) = spawn_app(backend).await else { return };
    let (status, document) = app.get("/_matrix/key/v2/server", None).await;
    assert_eq!(status, StatusCode::OK, "{document}");
    assert_eq!(document["server_name"], "localhost");
    assert_eq!(document["old_verify_keys"], serde_json::json!({}));
    let now = hearth::storage::now_ms();
    let valid_until = document["valid_until_ts"].as_i64().unwrap();
    assert!(valid_until > now + 3600 * 1000, "valid for a while: {valid_until} vs {now}");
    verify(&document);
    let key_ids: Vec<String> = document["verify_keys"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(key_ids.len(), 1);
    assert!(key_ids[0].starts_with("ed25519:"));

    // The deprecated form with a key id answers the same keys.
    let (status, by_id) = app.get(&format!("/_matrix/key/v2/server/{}", key_ids[0]), None).await;
    assert_eq!((status, &by_id["verify_keys"]), (StatusCode::OK, &document["verify_keys"]));

    let (status, version) = app.get("/_matrix/federation/v1/version", None).await;
    assert_eq!((status, version["server"]["name"].as_str()), (StatusCode::OK, Some("Hearth")));

    // The key lives in the data directory: a restart publishes the same one.
    app.restart().await;
    let (_, after) = app.get("/_matrix/key/v2/server", None).await;
    assert_eq!(after["verify_keys"], document["verify_keys"]);
    verify(&after);
}

async fn well_known_server_delegates_only_when_configured(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    assert_error(&app.get("/.well-known/matrix/server", None).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    drop(app);
    let Some(app) = spawn_app_with(backend, |config| {
        config.federation.well_known_server = Some("matrix.example.org:443".into());
    })
    .await
    else {
        return;
    };
    let (status, body) = app.get("/.well-known/matrix/server", None).await;
    assert_eq!((status, body), (StatusCode::OK, serde_json::json!({"m.server": "matrix.example.org:443"})));
}
