//! Authenticated federation media (spec: Server-Server API § Content repository): this
//! server's files for other servers, as `multipart/mixed` — a JSON metadata part, then the file.

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;

use super::auth::Signed;
use crate::{
    api::extract::{MatrixPath, MatrixQuery},
    error::{ApiError, ApiResult},
    services::media::{Download, multipart, thumbnail},
    state::AppState,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/federation/v1/media/download/{media_id}", get(download))
        .route("/_matrix/federation/v1/media/thumbnail/{media_id}", get(thumbnail))
}

/// The download as a multipart/mixed response.
fn multipart_response(download: Download) -> Response {
    let disposition =
        download.file_name.as_deref().map(|name| format!("inline; filename=\"{}\"", name.replace('"', "")));
    let (head, tail) = multipart::envelope(&download.content_type, disposition.as_deref());
    let length = head.len() as u64 + download.size + tail.len() as u64;
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(head) })
        .chain(download.body)
        .chain(futures_util::stream::once(async move { Ok(tail) }));
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("multipart/mixed; boundary={}", multipart::BOUNDARY)) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// GET /_matrix/federation/v1/media/download/{mediaId}
async fn download(
    State(state): State<AppState>,
    MatrixPath(media_id): MatrixPath<String>,
    _signed: Signed<Value>,
) -> ApiResult<Response> {
    let server = state.config.server_name.clone();
    let download = state.media.download(&server, &media_id, None, std::time::Duration::from_secs(20), false).await?;
    Ok(multipart_response(download))
}

#[derive(Deserialize)]
struct ThumbnailQuery {
    width: u32,
    height: u32,
    method: Option<String>,
    animated: Option<bool>,
}

/// GET /_matrix/federation/v1/media/thumbnail/{mediaId}?width=…&height=…
async fn thumbnail(
    State(state): State<AppState>,
    MatrixPath(media_id): MatrixPath<String>,
    MatrixQuery(query): MatrixQuery<ThumbnailQuery>,
    _signed: Signed<Value>,
) -> ApiResult<Response> {
    let method = match query.method.as_deref() {
        None | Some("scale") => thumbnail::Method::Scale,
        Some("crop") => thumbnail::Method::Crop,
        Some(_) => return Err(ApiError::invalid_param("method must be crop or scale")),
    };
    let server = state.config.server_name.clone();
    let made = state
        .media
        .thumbnail(
            &server,
            &media_id,
            query.width,
            query.height,
            method,
            query.animated.unwrap_or(false),
            std::time::Duration::from_secs(20),
            false,
        )
        .await?;
    Ok(multipart_response(made))
}
