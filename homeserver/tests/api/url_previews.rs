//! URL previews against a small web site on loopback: OpenGraph data with the page's image
//! stored as our media, images previewed directly, and the SSRF guard: internal addresses,
//! names resolving to them and redirects into them refused unless the admin allowed the range.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{
    Router,
    http::{StatusCode as HttpStatus, header},
    response::{IntoResponse, Redirect},
    routing::get,
};
use reqwest::StatusCode;

use crate::{
    helpers::{Backend, Session, TestApp, assert_error, encode, spawn_app_with},
    media::png,
};

both_backends!(previews_are_off_by_default, internal_addresses_are_refused, pages_and_images_are_previewed);

/// A web site on 127.0.0.1 (random port), counting how often its page is fetched.
async fn web_site() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let page = "<!doctype html><html><head><title>Fallback title</title>\
        <meta property=\"og:title\" content=\"Hearth 1.0 is out\">\
        <meta property=\"og:description\" content=\"A homeserver  for   everyone.\">\
        <meta property=\"og:image\" content=\"/cover.png\">\
        <meta property=\"og:image:width\" content=\"9999\"></head><body>Hello</body></html>";
    let site = Router::new()
        .route(
            "/page",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async move { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page) }
            }),
        )
        .route("/cover.png", get(|| async { ([(header::CONTENT_TYPE, "image/png")], png(64, 48)) }))
        .route("/plain", get(|| async { ([(header::CONTENT_TYPE, "text/plain")], "just text") }))
        .route("/missing", get(|| async { (HttpStatus::NOT_FOUND, "no such page").into_response() }))
        .route("/to-page", get(|| async { Redirect::temporary("/page") }))
        .route(
            "/to-internal",
            get(move || async move { Redirect::temporary(&format!("http://127.0.0.2:{port}/page")) }),
        );
    tokio::spawn(async move { axum::serve(listener, site).await });
    (format!("http://127.0.0.1:{port}"), hits)
}

async fn preview(app: &TestApp, user: &Session, url: &str) -> (StatusCode, serde_json::Value) {
    app.get(&format!("/_matrix/client/v1/media/preview_url?url={}", encode(url)), Some(&user.token)).await
}

async fn previews_are_off_by_default(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |_| {}).await else { return };
    let alice = app.register("alice").await;
    let (site, hits) = web_site().await;
    assert_error(&preview(&app, &alice, &format!("{site}/page")).await, StatusCode::NOT_FOUND, "M_UNRECOGNIZED");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

async fn internal_addresses_are_refused(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |config| config.media.url_preview.enabled = true).await else {
        return;
    };
    let alice = app.register("alice").await;
    let (site, hits) = web_site().await;
    let port = site.rsplit(':').next().unwrap();
    for url in [
        format!("{site}/page"),
        format!("http://localhost:{port}/page"),
        format!("http://[::1]:{port}/page"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "file:///etc/passwd".to_owned(),
    ] {
        assert_error(&preview(&app, &alice, &url).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing internal was fetched");
    assert_error(&preview(&app, &alice, "not a url").await, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let missing = app.get("/_matrix/client/v1/media/preview_url", Some(&alice.token)).await;
    assert_eq!(missing.0, StatusCode::BAD_REQUEST, "{}", missing.1);
    let anonymous = app.get(&format!("/_matrix/client/v1/media/preview_url?url={}", encode(&site)), None).await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
}

async fn pages_and_images_are_previewed(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.media.url_preview.enabled = true;
        config.media.url_preview.allowed_ip_ranges = vec!["127.0.0.1/32".into()];
    })
    .await
    else {
        return;
    };
    let alice = app.register("alice").await;
    let (site, hits) = web_site().await;

    let (status, page) = preview(&app, &alice, &format!("{site}/page")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["og:title"], "Hearth 1.0 is out");
    assert_eq!(page["og:description"], "A homeserver for everyone.");
    assert_eq!(page["og:image:width"], 64, "the stored image's own size, not the page's claim");
    assert_eq!(page["og:image:height"], 48);
    assert_eq!(page["og:image:type"], "image/png");
    let cover = png(64, 48);
    assert_eq!(page["matrix:image:size"], cover.len());
    let image = page["og:image"].as_str().expect("the image is stored as our media");
    let downloaded = app
        .client
        .get(format!("{}/_matrix/client/v1/media/download/{}", app.base, image.strip_prefix("mxc://").unwrap()))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(downloaded.status(), StatusCode::OK);
    assert_eq!(downloaded.bytes().await.unwrap().as_ref(), cover.as_slice());

    // Answers are reused: the page is fetched once for any number of previews (fragment aside).
    let (_, again) = preview(&app, &alice, &format!("{site}/page#comments")).await;
    assert_eq!(again, page);
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // The deprecated endpoint answers the same (with a token).
    let legacy = app
        .get(&format!("/_matrix/media/v3/preview_url?url={}", encode(&format!("{site}/page"))), Some(&alice.token))
        .await;
    assert_eq!(legacy, (StatusCode::OK, page.clone()));

    let (status, direct) = preview(&app, &alice, &format!("{site}/cover.png")).await;
    assert_eq!(status, StatusCode::OK, "{direct}");
    assert_eq!(direct["og:image:width"], 64);
    assert!(direct["og:image"].as_str().unwrap().starts_with("mxc://localhost/"));

    let (status, followed) = preview(&app, &alice, &format!("{site}/to-page")).await;
    assert_eq!(status, StatusCode::OK, "{followed}");
    assert_eq!(followed["og:title"], "Hearth 1.0 is out");

    let (status, plain) = preview(&app, &alice, &format!("{site}/plain")).await;
    assert_eq!((status, plain), (StatusCode::OK, serde_json::json!({})));

    // A redirect into a range that is not allowed is refused like a direct request.
    assert_error(&preview(&app, &alice, &format!("{site}/to-internal")).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_error(&preview(&app, &alice, &format!("{site}/missing")).await, StatusCode::BAD_GATEWAY, "M_UNKNOWN");
}
