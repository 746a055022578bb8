//! The media repository: uploads (direct and asynchronous), authenticated downloads with
//! ranges and the spec's headers, and every refusal (type mismatches, disallowed types, size
//! limits), which must leave no file behind.

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{Backend, Session, Storage, TestApp, assert_error, spawn_app_on};

media_backends!(
    uploads_download_byte_for_byte_with_the_specs_headers,
    refused_uploads_say_why_and_leave_nothing_behind,
    async_uploads_arrive_once_by_their_reserver,
    downloads_need_a_token_and_a_real_media_id,
);

/// A real PNG of noise (it does not compress, so its size follows its dimensions).
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let mut seed = 0x2545_f491_u32;
    let image = image::RgbImage::from_fn(width, height, |_, _| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let [a, b, c, _] = seed.to_le_bytes();
        image::Rgb([a, b, c])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

pub async fn upload(
    app: &TestApp,
    user: &Session,
    content_type: &str,
    file_name: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut url = format!("{}/_matrix/media/v3/upload", app.base);
    if let Some(name) = file_name {
        url.push_str(&format!("?filename={}", crate::helpers::encode(name)));
    }
    let response = app
        .client
        .post(url)
        .bearer_auth(&user.token)
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

fn media_path(uri: &str) -> String {
    uri.strip_prefix("mxc://").unwrap().to_owned()
}

async fn download(app: &TestApp, token: Option<&str>, path: &str, range: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(format!("{}{path}", app.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(range) = range {
        request = request.header(header::RANGE, range);
    }
    request.send().await.unwrap()
}

async fn uploads_download_byte_for_byte_with_the_specs_headers(backend: Backend, storage: Storage) {
    let Some(app) = spawn_app_on(backend, storage, |_| {}).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let picture = png(64, 48);
    let (status, body) = upload(&app, &alice, "image/png", Some("cat.png"), picture.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let uri = body["content_uri"].as_str().unwrap();
    assert!(uri.starts_with("mxc://localhost/"), "{uri}");
    let path = format!("/_matrix/client/v1/media/download/{}", media_path(uri));

    let response = download(&app, Some(&bob.token), &path, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers[header::CONTENT_TYPE], "image/png");
    assert_eq!(headers[header::CONTENT_DISPOSITION], "inline; filename=\"cat.png\"; filename*=utf-8''cat.png");
    assert!(headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().starts_with("sandbox;"));
    assert_eq!(headers["cross-origin-resource-policy"], "cross-origin");
    assert_eq!(headers[header::ACCEPT_RANGES], "bytes");
    assert_eq!(response.bytes().await.unwrap().to_vec(), picture, "the same bytes");
    let on_disk = app.data_dir().join("media/localhost").exists();
    assert_eq!(on_disk, storage == Storage::Local, "the bytes are in the configured store");

    // A name in the path wins; a document is an attachment.
    let (_, text) = upload(&app, &alice, "text/plain", Some("notes.txt"), b"remember the milk".to_vec()).await;
    let named =
        format!("/_matrix/client/v1/media/download/{}/shopping.txt", media_path(text["content_uri"].as_str().unwrap()));
    let response = download(&app, Some(&bob.token), &named, None).await;
    assert!(response.headers()[header::CONTENT_DISPOSITION].to_str().unwrap().contains("shopping.txt"));

    // Ranges, as video players ask for them.
    let response = download(&app, Some(&bob.token), &path, Some("bytes=0-9")).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.headers()[header::CONTENT_RANGE], format!("bytes 0-9/{}", picture.len()));
    assert_eq!(response.bytes().await.unwrap().to_vec(), picture[..10].to_vec());
    let response = download(&app, Some(&bob.token), &path, Some("bytes=-5")).await;
    assert_eq!(response.bytes().await.unwrap().to_vec(), picture[picture.len() - 5..].to_vec());
    let response = download(&app, Some(&bob.token), &path, Some(&format!("bytes={}-", picture.len() + 10))).await;
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    let (status, config) = app.get("/_matrix/client/v1/media/config", Some(&alice.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(config["m.upload.size"].as_u64().unwrap() >= 100 * 1024 * 1024);
}

fn leftover_uploads(app: &TestApp) -> usize {
    std::fs::read_dir(app.data_dir().join("media/incoming")).map(|dir| dir.count()).unwrap_or(0)
}

async fn refused_uploads_say_why_and_leave_nothing_behind(backend: Backend, storage: Storage) {
    let Some(app) = spawn_app_on(backend, storage, |config| config.media.max_image_bytes = 10_000).await else {
        return;
    };
    let alice = app.register("alice").await;
    let refusals = [
        ("image/png", Some("cat.png"), b"<html><script>alert(1)</script></html>".to_vec(), "M_UNKNOWN"),
        ("application/pdf", Some("report.pdf"), png(8, 8), "M_UNKNOWN"),
        ("image/jpeg", Some("photo.jpg"), png(8, 8), "M_UNKNOWN"),
        ("text/html", Some("page.html"), b"<html></html>".to_vec(), "M_UNKNOWN"),
        ("application/x-shockwave-flash", None, b"FWS".to_vec(), "M_UNKNOWN"),
        ("image/png", Some("huge.png"), png(400, 400), "M_TOO_LARGE"),
    ];
    for (content_type, name, body, errcode) in refusals {
        let response = upload(&app, &alice, content_type, name, body).await;
        let status = if errcode == "M_TOO_LARGE" { StatusCode::PAYLOAD_TOO_LARGE } else { StatusCode::BAD_REQUEST };
        assert_error(&response, status, errcode);
    }
    assert_eq!(leftover_uploads(&app), 0, "refused uploads leave no partial files");
    let (status, _) = upload(&app, &alice, "image/png", Some("small.png"), png(8, 8)).await;
    assert_eq!(status, StatusCode::OK, "a small image still fits");
    let response = upload(&app, &alice, "image/png", Some("bad/name.png"), png(8, 8)).await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
}

async fn async_uploads_arrive_once_by_their_reserver(backend: Backend, storage: Storage) {
    let Some(app) = spawn_app_on(backend, storage, |config| config.media.max_pending_uploads = 2).await else { return };
    let alice = app.register("alice").await;
    let eve = app.register("eve").await;
    let (status, created) = app.post("/_matrix/media/v1/create", Some(&alice.token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let uri = created["content_uri"].as_str().unwrap();
    assert!(created["unused_expires_at"].as_i64().is_some());
    let path = format!("/_matrix/client/v1/media/download/{}?timeout_ms=200", media_path(uri));
    let response = download(&app, Some(&alice.token), &path, None).await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(response.json::<Value>().await.unwrap()["errcode"], "M_NOT_YET_UPLOADED");

    let put = |token: String, body: Vec<u8>| {
        let url = format!("{}/_matrix/media/v3/upload/{}", app.base, media_path(uri));
        let client = app.client.clone();
        async move {
            let response = client
                .put(url)
                .bearer_auth(token)
                .header(header::CONTENT_TYPE, "text/plain")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    assert_error(&put(eve.token.clone(), b"mine now".to_vec()).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    // A download waiting for the content returns it as soon as it arrives.
    let long_wait = format!("/_matrix/client/v1/media/download/{}?timeout_ms=10000", media_path(uri));
    let waiting = download(&app, Some(&alice.token), &long_wait, None);
    let (response, uploaded) = tokio::join!(waiting, async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        put(alice.token.clone(), b"hello later".to_vec()).await
    });
    assert_eq!(uploaded.0, StatusCode::OK, "{}", uploaded.1);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"hello later");
    assert_error(&put(alice.token.clone(), b"again".to_vec()).await, StatusCode::CONFLICT, "M_CANNOT_OVERWRITE_MEDIA");

    // Reservations are limited per user.
    for _ in 0..2 {
        assert_eq!(app.post("/_matrix/media/v1/create", Some(&alice.token), json!({})).await.0, StatusCode::OK);
    }
    let too_many = app.post("/_matrix/media/v1/create", Some(&alice.token), json!({})).await;
    assert_error(&too_many, StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED");
}

async fn downloads_need_a_token_and_a_real_media_id(backend: Backend, storage: Storage) {
    let Some(app) = spawn_app_on(backend, storage, |_| {}).await else { return };
    let alice = app.register("alice").await;
    let (_, body) = upload(&app, &alice, "image/png", None, png(16, 16)).await;
    let id = media_path(body["content_uri"].as_str().unwrap());
    let response = download(&app, None, &format!("/_matrix/client/v1/media/download/{id}"), None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // The unauthenticated endpoints are frozen by default.
    let legacy = download(&app, None, &format!("/_matrix/media/v3/download/{id}"), None).await;
    assert_eq!(legacy.status(), StatusCode::NOT_FOUND);
    for missing in ["localhost/doesnotexist", "localhost/..%2F..%2Fsigning.key", "not%20a%20server/abc"] {
        let response =
            download(&app, Some(&alice.token), &format!("/_matrix/client/v1/media/download/{missing}"), None).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(response.json::<Value>().await.unwrap()["errcode"], "M_NOT_FOUND");
    }
    // Another server's media is fetched from it; one that cannot be reached is a 502.
    let path = "/_matrix/client/v1/media/download/elsewhere.invalid/abcdef";
    let response = download(&app, Some(&alice.token), path, None).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(response.json::<Value>().await.unwrap()["errcode"], "M_UNKNOWN");
    let unauthenticated_upload =
        app.client.post(format!("{}/_matrix/media/v3/upload", app.base)).body("x").send().await.unwrap();
    assert_eq!(unauthenticated_upload.status(), StatusCode::UNAUTHORIZED);

    // With the legacy endpoints unfrozen they serve the same bytes without a token.
    let Some(open) =
        spawn_app_on(backend, storage, |config| config.media.legacy_unauthenticated_downloads = true).await
    else {
        return;
    };
    let bob = open.register("bob").await;
    let (_, body) = upload(&open, &bob, "text/plain", None, b"public".to_vec()).await;
    let id = media_path(body["content_uri"].as_str().unwrap());
    let response = download(&open, None, &format!("/_matrix/media/v3/download/{id}"), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "public, max-age=86400, immutable");
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"public");
}
