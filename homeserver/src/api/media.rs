//! The content repository's HTTP endpoints (spec: Client-Server API § Content repository):
//! uploads under `/_matrix/media/v3` and `/v1/create`, authenticated downloads, thumbnails and
//! config under `/_matrix/client/v1/media`, and the deprecated unauthenticated download and
//! thumbnail endpoints under `/_matrix/media/v3` (frozen unless configured otherwise).

use std::time::Duration;

use axum::{
    Json, Router,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    api::extract::{AuthUser, MatrixPath, MatrixQuery},
    error::{ApiError, ApiResult},
    services::media::{Download, checks::content_disposition, thumbnail::Method},
    state::AppState,
};

pub fn routes() -> Router<AppState> {
    let legacy = Router::new()
        .route("/upload", post(upload))
        .route("/upload/{server_name}/{media_id}", put(upload_reserved))
        .route("/config", get(config))
        .route("/download/{server_name}/{media_id}", get(legacy_download))
        .route("/download/{server_name}/{media_id}/{file_name}", get(legacy_download_named))
        .route("/thumbnail/{server_name}/{media_id}", get(legacy_thumbnail))
        .route("/preview_url", get(preview_url));
    let authenticated = Router::new()
        .route("/config", get(config))
        .route("/download/{server_name}/{media_id}", get(download))
        .route("/download/{server_name}/{media_id}/{file_name}", get(download_named))
        .route("/thumbnail/{server_name}/{media_id}", get(thumbnail))
        .route("/preview_url", get(preview_url));
    Router::new()
        .nest("/_matrix/media/v3", legacy.clone())
        .nest("/_matrix/media/r0", legacy)
        .route("/_matrix/media/v1/create", post(create))
        .nest("/_matrix/client/v1/media", authenticated)
}

#[derive(Deserialize)]
struct UploadQuery {
    filename: Option<String>,
}

fn declared_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

/// POST /_matrix/media/v3/upload
async fn upload(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixQuery(query): MatrixQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let uri = state
        .media
        .upload(&user.user_id, declared_type(&headers), query.filename.as_deref(), body.into_data_stream())
        .await?;
    Ok(Json(json!({"content_uri": uri})))
}

/// POST /_matrix/media/v1/create
async fn create(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Value>> {
    let (uri, expires) = state.media.create(&user.user_id).await?;
    Ok(Json(json!({"content_uri": uri, "unused_expires_at": expires})))
}

/// PUT /_matrix/media/v3/upload/{serverName}/{mediaId}
async fn upload_reserved(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((server_name, media_id)): MatrixPath<(String, String)>,
    MatrixQuery(query): MatrixQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    state
        .media
        .upload_reserved(
            &user.user_id,
            &server_name,
            &media_id,
            declared_type(&headers),
            query.filename.as_deref(),
            body.into_data_stream(),
        )
        .await?;
    Ok(Json(json!({})))
}

/// GET /_matrix/client/v1/media/config (and the deprecated /_matrix/media/v3/config)
async fn config(State(state): State<AppState>, _user: AuthUser) -> Json<Value> {
    Json(json!({"m.upload.size": state.media.config().max_upload_bytes()}))
}

#[derive(Deserialize)]
struct DownloadQuery {
    timeout_ms: Option<String>,
}

fn wait(query: &DownloadQuery) -> ApiResult<Duration> {
    match query.timeout_ms.as_deref() {
        None => Ok(Duration::from_secs(20)),
        Some(ms) => ms
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| ApiError::invalid_param("timeout_ms must be a number of milliseconds")),
    }
}

async fn serve(
    state: &AppState,
    (server_name, media_id, file_name): (&str, &str, Option<&str>),
    query: &DownloadQuery,
    headers: &HeaderMap,
    legacy: bool,
) -> ApiResult<Response> {
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let download = state.media.download(server_name, media_id, range, wait(query)?, legacy).await?;
    Ok(media_response(download, file_name, !legacy))
}

/// The headers the spec recommends for serving user content: a sandboxing CSP, cross-origin
/// resource policy, inline only for safe types, and caching that suits authenticated media.
fn media_response(download: Download, file_name: Option<&str>, authenticated: bool) -> Response {
    let Download { content_type, file_name: stored_name, size, range, body } = download;
    let name = file_name.or(stored_name.as_deref());
    let (status, length) = match range {
        Some((first, last)) => (StatusCode::PARTIAL_CONTENT, last - first + 1),
        None => (StatusCode::OK, size),
    };
    let mut response = (status, Body::from_stream(body)).into_response();
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: header::HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set(headers, header::CONTENT_TYPE, &content_type);
    set(headers, header::CONTENT_DISPOSITION, &content_disposition(&content_type, name));
    set(headers, header::CONTENT_LENGTH, &length.to_string());
    set(headers, header::ACCEPT_RANGES, "bytes");
    if let Some((first, last)) = range {
        set(headers, header::CONTENT_RANGE, &format!("bytes {first}-{last}/{size}"));
    }
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';",
    );
    set(headers, header::HeaderName::from_static("cross-origin-resource-policy"), "cross-origin");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Media never changes; authenticated media must not sit in shared caches.
    let cache = if authenticated { "private, max-age=86400, immutable" } else { "public, max-age=86400, immutable" };
    set(headers, header::CACHE_CONTROL, cache);
    response
}

/// GET /_matrix/client/v1/media/download/{serverName}/{mediaId}
async fn download(
    State(state): State<AppState>,
    _user: AuthUser,
    MatrixPath((server_name, media_id)): MatrixPath<(String, String)>,
    MatrixQuery(query): MatrixQuery<DownloadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    serve(&state, (&server_name, &media_id, None), &query, &headers, false).await
}

/// GET /_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}
async fn download_named(
    State(state): State<AppState>,
    _user: AuthUser,
    MatrixPath((server_name, media_id, file_name)): MatrixPath<(String, String, String)>,
    MatrixQuery(query): MatrixQuery<DownloadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    serve(&state, (&server_name, &media_id, Some(&file_name)), &query, &headers, false).await
}

/// GET /_matrix/media/v3/download/{serverName}/{mediaId} (deprecated, unauthenticated)
async fn legacy_download(
    State(state): State<AppState>,
    MatrixPath((server_name, media_id)): MatrixPath<(String, String)>,
    MatrixQuery(query): MatrixQuery<DownloadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    serve(&state, (&server_name, &media_id, None), &query, &headers, true).await
}

/// GET /_matrix/media/v3/download/{serverName}/{mediaId}/{fileName} (deprecated)
async fn legacy_download_named(
    State(state): State<AppState>,
    MatrixPath((server_name, media_id, file_name)): MatrixPath<(String, String, String)>,
    MatrixQuery(query): MatrixQuery<DownloadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    serve(&state, (&server_name, &media_id, Some(&file_name)), &query, &headers, true).await
}

#[derive(Deserialize)]
struct ThumbnailQuery {
    width: Option<String>,
    height: Option<String>,
    method: Option<String>,
    animated: Option<String>,
    timeout_ms: Option<String>,
}

async fn serve_thumbnail(
    state: &AppState,
    (server_name, media_id): (&str, &str),
    query: ThumbnailQuery,
    legacy: bool,
) -> ApiResult<Response> {
    let dimension = |value: Option<&str>, name: &str| -> ApiResult<u32> {
        let value = value.ok_or_else(|| ApiError::missing_param(format!("'{name}' is required")))?;
        match value.parse::<u32>() {
            Ok(n) if (1..=4096).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid_param(format!("{name} must be a number of pixels from 1 to 4096"))),
        }
    };
    let width = dimension(query.width.as_deref(), "width")?;
    let height = dimension(query.height.as_deref(), "height")?;
    let method = match query.method.as_deref() {
        None => Method::Scale,
        Some(method) => Method::parse(method).ok_or_else(|| ApiError::invalid_param("method must be crop or scale"))?,
    };
    let animated = match query.animated.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid_param("animated must be true or false")),
    };
    let timeout = wait(&DownloadQuery { timeout_ms: query.timeout_ms })?;
    let thumbnail =
        state.media.thumbnail(server_name, media_id, width, height, method, animated, timeout, legacy).await?;
    Ok(media_response(thumbnail, None, !legacy))
}

/// GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}
async fn thumbnail(
    State(state): State<AppState>,
    _user: AuthUser,
    MatrixPath((server_name, media_id)): MatrixPath<(String, String)>,
    MatrixQuery(query): MatrixQuery<ThumbnailQuery>,
) -> ApiResult<Response> {
    serve_thumbnail(&state, (&server_name, &media_id), query, false).await
}

/// GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId} (deprecated, unauthenticated)
async fn legacy_thumbnail(
    State(state): State<AppState>,
    MatrixPath((server_name, media_id)): MatrixPath<(String, String)>,
    MatrixQuery(query): MatrixQuery<ThumbnailQuery>,
) -> ApiResult<Response> {
    serve_thumbnail(&state, (&server_name, &media_id), query, true).await
}

#[derive(Deserialize)]
struct PreviewQuery {
    url: String,
    // `ts`, the point in time wanted, is not read: the spec lets a server answer a newer
    // preview, and this one keeps only the latest.
}

/// GET /_matrix/client/v1/media/preview_url (and the deprecated /_matrix/media/v3/preview_url,
/// which takes a token too)
async fn preview_url(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixQuery(query): MatrixQuery<PreviewQuery>,
) -> ApiResult<Json<Value>> {
    let preview = state.url_previews.preview(&user.user_id, &query.url).await?;
    Ok(Json(Value::clone(&preview)))
}
