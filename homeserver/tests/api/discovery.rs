//! Versions, well-known, capabilities, unknown endpoints and CORS.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Backend, assert_error, spawn_app};

both_backends!(
    versions_lists_spec_versions_without_auth,
    well_known_points_at_the_server,
    capabilities_need_auth_and_list_what_is_real,
    unknown_paths_and_wrong_methods_are_unrecognized,
    cors_preflight_allows_browser_clients,
    health_reports_the_database,
);

async fn versions_lists_spec_versions_without_auth(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (status, body) = app.get("/_matrix/client/versions", None).await;
    assert_eq!(status, StatusCode::OK);
    let versions: Vec<&str> = body["versions"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(versions.contains(&"v1.1"), "Element needs one of v1.1..v1.13: {versions:?}");
    assert!(body["unstable_features"].is_object());
}

async fn well_known_points_at_the_server(backend: Backend) {
    // Without public_baseurl nothing is advertised: the bind address may be unreachable.
    let Some(app) = spawn_app(backend).await else { return };
    assert_error(&app.get("/.well-known/matrix/client", None).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let alice = app.register("alice").await;
    let (_, login) = app.login("alice", crate::helpers::PASSWORD).await;
    assert!(login.get("well_known").is_none(), "{login}");
    let _ = alice;

    let Some(app) =
        crate::helpers::spawn_app_with(backend, |c| c.public_baseurl = Some("https://matrix.example.org".into())).await
    else {
        return;
    };
    let (status, body) = app.get("/.well-known/matrix/client", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["m.homeserver"]["base_url"], "https://matrix.example.org/");
    app.register("alice").await;
    let (_, login) = app.login("alice", crate::helpers::PASSWORD).await;
    assert_eq!(login["well_known"]["m.homeserver"]["base_url"], "https://matrix.example.org/");
}

async fn capabilities_need_auth_and_list_what_is_real(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    assert_error(&app.get("/_matrix/client/v3/capabilities", None).await, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    let alice = app.register("alice").await;
    let (status, body) = app.get("/_matrix/client/v3/capabilities", Some(&alice.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["capabilities"]["m.change_password"]["enabled"], true);
    assert_eq!(body["capabilities"]["m.3pid_changes"]["enabled"], false);
    assert_eq!(body["capabilities"]["m.room_versions"]["default"], "12");
    for version in ["10", "11", "12"] {
        assert_eq!(body["capabilities"]["m.room_versions"]["available"][version], "stable");
    }
}

async fn unknown_paths_and_wrong_methods_are_unrecognized(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    assert_error(&app.get("/_matrix/client/v3/no/such/endpoint", None).await, StatusCode::NOT_FOUND, "M_UNRECOGNIZED");
    assert_error(&app.get("/", None).await, StatusCode::NOT_FOUND, "M_UNRECOGNIZED");
    let wrong_method = app.request(Method::DELETE, "/_matrix/client/versions", None, None).await;
    assert_error(&wrong_method, StatusCode::METHOD_NOT_ALLOWED, "M_UNRECOGNIZED");
    let wrong_method = app.put("/_matrix/client/v3/login", None, json!({})).await;
    assert_error(&wrong_method, StatusCode::METHOD_NOT_ALLOWED, "M_UNRECOGNIZED");
}

async fn cors_preflight_allows_browser_clients(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let response = app
        .client
        .request(Method::OPTIONS, format!("{}/_matrix/client/v3/login", app.base))
        .header("Origin", "https://app.element.io")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "authorization, content-type")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    for method in ["GET", "POST", "PUT", "DELETE", "OPTIONS"] {
        assert!(methods.contains(method), "{methods}");
    }
    let allowed = headers["access-control-allow-headers"].to_str().unwrap().to_lowercase();
    for header in ["x-requested-with", "content-type", "authorization"] {
        assert!(allowed.contains(header), "{allowed}");
    }
    // Plain responses carry the header too.
    let response = app
        .client
        .get(format!("{}/_matrix/client/versions", app.base))
        .header("Origin", "https://app.element.io")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
}

async fn health_reports_the_database(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (status, body) = app.get("/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let expected = if backend == Backend::Sqlite { "sqlite" } else { "postgres" };
    assert_eq!(body["database"], expected);
}
